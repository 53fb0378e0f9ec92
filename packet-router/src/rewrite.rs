//! Per-subscriber rewriting of sequence numbers and timestamps.
//!
//! Every subscriber sees each outgoing stream as one continuous RTP stream with its own SSRC,
//! even when the packets behind it come from different sources over time: a publisher that
//! reconnects with a new SSRC and a random sequence/timestamp base, a track replaced by
//! another, or a simulcast layer switch. The receiver's jitter buffer must see neither a jump
//! in sequence numbers (it would count a huge loss or discard everything as old) nor a jump
//! in timestamps (it would stall playout). [`SubscriberRewriter`] keeps the output
//! continuous:
//! - within one source it adds fixed offsets, so loss and reordering are passed through
//!   faithfully and NACKs map back;
//! - on a switch of source it re-bases the offsets so that the next output sequence number
//!   is the last one plus one and the timestamp moves on, by the sources' sender reports when
//!   the caller knows them ([`SubscriberRewriter::restart_aligned`]) or by the wall-clock
//!   time that elapsed;
//! - a packet the caller drops on purpose (a filtered temporal layer) is
//!   [skipped](SubscriberRewriter::skip): later packets close the gap, so the subscriber
//!   sees no loss.
//!
//! Each run of output numbers with one offset is a segment; the last [`SEGMENTS`] of them
//! are kept so that a NACK maps back to the source packet across switches and skips.
//!
//! Time is an argument; nothing here reads a clock.

use std::collections::VecDeque;
use std::time::Instant;

use rtc_core::{SeqNo, Ssrc};

/// How many runs of output numbers (between switches and skips) stay mappable for NACKs:
/// dropping the top temporal layer of 30 frame/s video makes about 15 a second.
pub const SEGMENTS: usize = 64;

/// The input side of one packet: which source it came from and its position in that source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePacket {
    /// The publisher's SSRC for this stream.
    pub source: Ssrc,
    /// The sequence number extended to 64 bits over rollovers of that source.
    pub seq: SeqNo,
    /// The RTP timestamp as sent by the source.
    pub timestamp: u32,
}

/// What the subscriber receives: the rewritten sequence number and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewrittenPacket {
    /// The sequence number in the subscriber's stream.
    pub seq: u16,
    /// The timestamp in the subscriber's stream.
    pub timestamp: u32,
}

/// Why a packet was not forwarded to this subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RewriteDrop {
    /// The packet belongs to a source that was active before the current one (a late packet
    /// after a switch): forwarding it would collide with numbers already used.
    StaleSource,
    /// The packet precedes the first packet forwarded from the current source; its output
    /// number would fall before the switch point.
    BeforeSwitchPoint,
    /// The packet was skipped before (a late copy of a filtered packet).
    Skipped,
}

/// Source numbers from `source_start` on map to output numbers from `output_start` on,
/// up to the next segment's start.
#[derive(Debug, Clone, Copy)]
struct Segment {
    ssrc: Ssrc,
    /// First extended source sequence number of the segment.
    source_start: SeqNo,
    /// Its extended output sequence number.
    output_start: u64,
    /// Added (wrapping) to the source's timestamp.
    timestamp_offset: u32,
    /// How many ticks `timestamp_offset` is ahead of the sender-report alignment (a switch
    /// to a picture of the same instant as the last one sent moves on by one tick, which
    /// the next aligned switch takes back so that it does not add up).
    aligned_error: u32,
    /// The segment starts a switch of source: earlier packets of the source belong to
    /// numbers of the past.
    switch: bool,
}

impl Segment {
    fn output_of(&self, seq: SeqNo) -> u64 {
        self.output_start + (seq.0 - self.source_start.0)
    }
}

/// Keeps one outgoing stream of one subscriber continuous across sources.
#[derive(Debug, Clone)]
pub struct SubscriberRewriter {
    clock_rate: u32,
    /// The last [`SEGMENTS`] segments, oldest first; the last one is active.
    segments: VecDeque<Segment>,
    /// The source before the current one, so that its late packets are recognized.
    previous_source: Option<Ssrc>,
    /// The next packet starts a new mapping whatever its source, with this timestamp shift
    /// from the current source's clock to the new one's when known.
    restart_pending: Option<Option<u32>>,
    /// Highest source number forwarded or skipped since the last switch.
    highest_source: Option<SeqNo>,
    /// Highest output sequence number sent, extended, with the timestamp and send time of
    /// the packet that carried the highest timestamp (used to re-base on a switch).
    highest_out_seq: u64,
    last_out_timestamp: u32,
    last_out_at: Option<Instant>,
}

/// Where a subscriber's sequence number came from, for answering its NACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceMapping {
    /// The source's SSRC.
    pub source: Ssrc,
    /// The source's extended sequence number.
    pub seq: SeqNo,
    /// Added (wrapping) to the source's timestamp for this subscriber.
    pub timestamp_offset: u32,
}

/// A timestamp shift from sender reports is trusted up to this far ahead of the last
/// timestamp sent, in seconds; beyond it the wall clock decides.
const MAX_ALIGNED_ADVANCE_SECS: u32 = 5;

impl SubscriberRewriter {
    /// A rewriter for a stream with the given RTP clock rate. `initial_seq` and
    /// `initial_timestamp` are the subscriber's own random bases (drawn by the caller).
    pub fn new(clock_rate: u32, initial_seq: u16, initial_timestamp: u32) -> Self {
        SubscriberRewriter {
            clock_rate: clock_rate.max(1),
            segments: VecDeque::with_capacity(SEGMENTS),
            previous_source: None,
            restart_pending: None,
            highest_source: None,
            // The first output number is `initial_seq`, so "the one before it" is stored,
            // extended far enough from zero that going back never underflows.
            highest_out_seq: (1 << 16) + u64::from(initial_seq.wrapping_sub(1)),
            last_out_timestamp: initial_timestamp,
            last_out_at: None,
        }
    }

    /// The offset that maps a source timestamp to the subscriber's timestamp, for rewriting
    /// the RTP time of sender reports so that they match the rewritten stream.
    pub fn timestamp_offset(&self, source: Ssrc) -> Option<u32> {
        self.segments
            .iter()
            .rev()
            .find(|segment| segment.ssrc == source)
            .map(|segment| segment.timestamp_offset)
    }

    /// Makes the next packet start a new mapping (continuing the sequence numbers and
    /// timestamps sent so far) even from a source seen before: a simulcast layer switch,
    /// made at a keyframe of the new layer. The timestamp moves on by the wall-clock time
    /// since the last packet. The mapping before stays for NACKs.
    pub fn restart(&mut self) {
        self.restart_pending = Some(None);
    }

    /// [`SubscriberRewriter::restart`] with the new source's clock aligned to the current
    /// one: `shift` is the new source's RTP time minus the current source's at the same
    /// instant (from their sender reports), so that a frame keeps its capture time across
    /// the switch and audio/video sync holds. `None` (no reports yet) falls back to the
    /// wall clock, as does a shift that would move the timestamp back or far ahead.
    pub fn restart_aligned(&mut self, shift: Option<u32>) {
        self.restart_pending = Some(shift);
    }

    /// Maps a subscriber sequence number back to the source's, for answering a NACK from the
    /// retransmission cache. `None` when the number was never sent or is older than the
    /// mappings kept.
    pub fn source_seq(&self, subscriber_seq: u16) -> Option<SourceMapping> {
        let out = extend_near(self.highest_out_seq, subscriber_seq);
        if out > self.highest_out_seq {
            return None;
        }
        let segment = self
            .segments
            .iter()
            .rev()
            .find(|segment| segment.output_start <= out)?;
        Some(SourceMapping {
            source: segment.ssrc,
            seq: SeqNo(segment.source_start.0 + (out - segment.output_start)),
            timestamp_offset: segment.timestamp_offset,
        })
    }

    /// Rewrites one packet. `now` is when it is forwarded.
    pub fn rewrite(
        &mut self,
        now: Instant,
        packet: SourcePacket,
    ) -> Result<RewrittenPacket, RewriteDrop> {
        let (out, timestamp_offset) = match (self.restart_pending.take(), self.segments.back()) {
            (Some(shift), _) => self.switch_to(now, packet, shift),
            (None, Some(active)) if active.ssrc == packet.source => self.map_in_epoch(packet)?,
            (None, Some(_)) if self.previous_source == Some(packet.source) => {
                return Err(RewriteDrop::StaleSource);
            }
            (None, _) => self.switch_to(now, packet, None),
        };
        let timestamp = packet.timestamp.wrapping_add(timestamp_offset);
        self.note_sent(now, out, timestamp, packet.seq);
        Ok(RewrittenPacket {
            seq: out as u16,
            timestamp,
        })
    }

    /// Takes `packet` of the current source out of the subscriber's stream on purpose (a
    /// filtered temporal layer): the packets after it get the numbers from its own on, so
    /// the subscriber sees no gap. A packet older than one forwarded already cannot give its
    /// number back; it stays a gap (which the subscriber may NACK; the caller then declines).
    pub fn skip(&mut self, packet: SourcePacket) {
        if self.restart_pending.is_some() {
            return;
        }
        let Some(active) = self.segments.back_mut() else {
            return;
        };
        if active.ssrc != packet.source
            || packet.seq < active.source_start
            || self.highest_source.is_some_and(|h| packet.seq <= h)
        {
            return;
        }
        self.highest_source = Some(packet.seq);
        if packet.seq == active.source_start {
            // Nothing was mapped by this segment yet: it starts one later.
            active.source_start = SeqNo(packet.seq.0 + 1);
            return;
        }
        let next = Segment {
            source_start: SeqNo(packet.seq.0 + 1),
            output_start: active.output_of(packet.seq),
            switch: false,
            ..*active
        };
        self.push(next);
    }

    /// The output number and timestamp offset of a packet of the active source, from the
    /// segments since its switch.
    fn map_in_epoch(&self, packet: SourcePacket) -> Result<(u64, u32), RewriteDrop> {
        let mut newer: Option<&Segment> = None;
        for segment in self.segments.iter().rev() {
            if packet.seq >= segment.source_start {
                let out = segment.output_of(packet.seq);
                if newer.is_some_and(|next| out >= next.output_start) {
                    return Err(RewriteDrop::Skipped);
                }
                return Ok((out, segment.timestamp_offset));
            }
            if segment.switch {
                break;
            }
            newer = Some(segment);
        }
        Err(RewriteDrop::BeforeSwitchPoint)
    }

    fn switch_to(&mut self, now: Instant, packet: SourcePacket, shift: Option<u32>) -> (u64, u32) {
        let output_start = self.highest_out_seq + 1;
        let max_advance = MAX_ALIGNED_ADVANCE_SECS.saturating_mul(self.clock_rate);
        let aligned = shift
            .zip(self.segments.back())
            .and_then(|(shift, current)| {
                let offset = current
                    .timestamp_offset
                    .wrapping_sub(current.aligned_error)
                    .wrapping_sub(shift);
                let aligned = packet.timestamp.wrapping_add(offset);
                let advance = aligned.wrapping_sub(self.last_out_timestamp);
                let behind = self.last_out_timestamp.wrapping_sub(aligned);
                if advance != 0 && advance <= max_advance {
                    Some((offset, 0))
                } else if behind <= current.aligned_error {
                    // The same instant as the last picture sent, or just before it by the ticks
                    // earlier switches added: one tick after the last one, never equal.
                    let error = behind + 1;
                    Some((offset.wrapping_add(error), error))
                } else {
                    // Back in time or far ahead: the reports do not describe these packets.
                    None
                }
            });
        let (timestamp_offset, aligned_error) = aligned.unwrap_or_else(|| {
            // After a previous source, advance by the time that passed (at least one tick so
            // the timestamp moves), in the stream's clock; the very first packet starts at
            // the base.
            let ticks = self.last_out_at.map_or(0, |at| {
                let elapsed = now.saturating_duration_since(at);
                (elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000).max(1)
            });
            let offset = self
                .last_out_timestamp
                .wrapping_add(u32::try_from(ticks).unwrap_or(u32::MAX))
                .wrapping_sub(packet.timestamp);
            (offset, 0)
        });
        self.previous_source = self.segments.back().map(|old| old.ssrc);
        self.highest_source = None;
        self.push(Segment {
            ssrc: packet.source,
            source_start: packet.seq,
            output_start,
            timestamp_offset,
            aligned_error,
            switch: true,
        });
        (output_start, timestamp_offset)
    }

    fn push(&mut self, segment: Segment) {
        if self.segments.len() >= SEGMENTS {
            self.segments.pop_front();
        }
        self.segments.push_back(segment);
    }

    fn note_sent(&mut self, now: Instant, out: u64, timestamp: u32, source: SeqNo) {
        self.highest_out_seq = self.highest_out_seq.max(out);
        self.highest_source = Some(self.highest_source.map_or(source, |h| h.max(source)));
        // Timestamps of reordered packets are older; only a newer one moves the reference.
        if self.last_out_at.is_none() || timestamp_newer(timestamp, self.last_out_timestamp) {
            self.last_out_timestamp = timestamp;
            self.last_out_at = Some(now);
        }
    }
}

/// Extends a 16-bit number to the 64-bit value nearest to `reference`.
fn extend_near(reference: u64, seq: u16) -> u64 {
    let delta = seq.wrapping_sub(reference as u16);
    if delta < 0x8000 {
        reference + u64::from(delta)
    } else {
        reference.saturating_sub(u64::from(delta.wrapping_neg()))
    }
}

fn timestamp_newer(a: u32, b: u32) -> bool {
    let delta = a.wrapping_sub(b);
    delta != 0 && delta < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const VIDEO: u32 = 90_000;

    /// Where `subscriber_seq` came from, as (source, 16-bit source number).
    fn source_of(rw: &SubscriberRewriter, subscriber_seq: u16) -> Option<(Ssrc, u16)> {
        rw.source_seq(subscriber_seq)
            .map(|mapping| (mapping.source, mapping.seq.wire()))
    }

    fn pkt(source: u32, seq: u64, timestamp: u32) -> SourcePacket {
        SourcePacket {
            source: Ssrc(source),
            seq: SeqNo(seq),
            timestamp,
        }
    }

    #[test]
    fn first_packet_starts_at_the_subscriber_bases() {
        let t0 = crate::test_time::origin();
        let mut rw = SubscriberRewriter::new(VIDEO, 1000, 5000);
        let out = rw.rewrite(t0, pkt(1, 70_000, 123_456)).expect("forwarded");
        assert_eq!(out.seq, 1000);
        assert_eq!(out.timestamp, 5000);
    }

    #[test]
    fn loss_and_reordering_pass_through_with_fixed_offsets() {
        let t0 = crate::test_time::origin();
        let mut rw = SubscriberRewriter::new(VIDEO, 65_530, 0);
        let order = [10u64, 11, 13, 12, 16, 14, 20];
        let mut seen = Vec::new();
        for (i, seq) in order.iter().enumerate() {
            let now = t0 + Duration::from_millis(i as u64 * 33);
            let out = rw
                .rewrite(now, pkt(7, *seq, (*seq as u32) * 3000))
                .expect("forwarded");
            seen.push(out.seq);
        }
        // Offsets are constant: gaps and order survive, and the numbers wrap cleanly.
        let expected: Vec<u16> = order
            .iter()
            .map(|s| 65_530u16.wrapping_add((*s - 10) as u16))
            .collect();
        assert_eq!(seen, expected);
        assert!(seen.contains(&0), "wrapped past 65535");
    }

    #[test]
    fn publisher_restart_keeps_the_output_continuous() {
        let t0 = crate::test_time::origin();
        let mut rw = SubscriberRewriter::new(VIDEO, 100, 1_000);
        let mut last = None;
        for i in 0..30u64 {
            let out = rw
                .rewrite(
                    t0 + Duration::from_millis(i * 33),
                    pkt(1, 500 + i, 9_000 + i as u32 * 3000),
                )
                .expect("forwarded");
            last = Some(out);
        }
        let last = last.expect("sent");
        // The publisher comes back 2 s later with a new SSRC and random bases.
        let back = t0 + Duration::from_millis(29 * 33 + 2_000);
        let first_new = rw
            .rewrite(back, pkt(2, 40_000, 3_000_000_000))
            .expect("forwarded");
        assert_eq!(first_new.seq, last.seq.wrapping_add(1));
        let advanced = first_new.timestamp.wrapping_sub(last.timestamp);
        assert_eq!(advanced, 2 * VIDEO, "timestamp advances by the 2 s gap");
        let second_new = rw
            .rewrite(
                back + Duration::from_millis(33),
                pkt(2, 40_001, 3_000_003_000),
            )
            .expect("forwarded");
        assert_eq!(second_new.seq, first_new.seq.wrapping_add(1));
        assert_eq!(second_new.timestamp, first_new.timestamp.wrapping_add(3000));
        // A late packet of the old source is dropped rather than colliding.
        assert_eq!(
            rw.rewrite(back, pkt(1, 529, 96_000)),
            Err(RewriteDrop::StaleSource)
        );
        // And a packet of the new source from before its first forwarded one too.
        assert_eq!(
            rw.rewrite(back, pkt(2, 39_999, 2_999_997_000)),
            Err(RewriteDrop::BeforeSwitchPoint)
        );
    }

    #[test]
    fn a_restart_switches_back_and_forth_and_keeps_the_mapping_before_for_nacks() {
        let t0 = crate::test_time::origin();
        let mut rw = SubscriberRewriter::new(VIDEO, 10, 0);
        for i in 0..3u64 {
            rw.rewrite(t0, pkt(1, 100 + i, 3000 * i as u32)).unwrap();
        }
        rw.restart();
        let later = t0 + Duration::from_millis(10);
        let b = rw.rewrite(later, pkt(2, 7_000, 50_000)).unwrap();
        assert_eq!(b.seq, 13, "follows the last one sent");
        assert_eq!(b.timestamp, 6000 + 900, "10 ms after the last timestamp");
        // Numbers sent before the switch map to the layer they came from.
        assert_eq!(source_of(&rw, 12), Some((Ssrc(1), 102)));
        assert_eq!(source_of(&rw, 13), Some((Ssrc(2), 7_000)));
        assert_eq!(source_of(&rw, 9), None, "before anything was sent");
        assert!(rw.timestamp_offset(Ssrc(1)).is_some());
        // Back to the first source: a restart, not a stale packet.
        rw.restart();
        let a = rw.rewrite(later, pkt(1, 200, 9_000)).unwrap();
        assert_eq!(a.seq, 14);
        assert_eq!(
            a.timestamp,
            b.timestamp + 1,
            "never back, at least one tick on"
        );
        assert_eq!(source_of(&rw, 13), Some((Ssrc(2), 7_000)));
        assert_eq!(source_of(&rw, 14), Some((Ssrc(1), 200)));
    }

    #[test]
    fn nacked_numbers_map_back_to_the_source() {
        let t0 = crate::test_time::origin();
        let mut rw = SubscriberRewriter::new(VIDEO, 65_535, 0);
        for i in 0..5u64 {
            rw.rewrite(t0, pkt(9, 65_534 + i, 0)).expect("forwarded");
        }
        // Subscriber numbers 65535, 0, 1, 2, 3 are source numbers 65534, 65535, 0, 1, 2.
        assert_eq!(source_of(&rw, 0), Some((Ssrc(9), 65_535)));
        assert_eq!(source_of(&rw, 3), Some((Ssrc(9), 2)));
        assert_eq!(
            source_of(&rw, 65_534),
            None,
            "before the first forwarded packet"
        );
        assert_eq!(rw.timestamp_offset(Ssrc(9)), Some(0));
        assert_eq!(rw.timestamp_offset(Ssrc(8)), None);
    }

    #[test]
    fn timestamp_reference_ignores_reordered_older_packets() {
        let t0 = crate::test_time::origin();
        let mut rw = SubscriberRewriter::new(48_000, 0, 0);
        rw.rewrite(t0, pkt(1, 10, 9600)).expect("forwarded");
        rw.rewrite(t0 + Duration::from_millis(20), pkt(1, 12, 11_520))
            .expect("forwarded");
        // The late, older packet 11 arrives 40 ms after 12.
        rw.rewrite(t0 + Duration::from_millis(60), pkt(1, 11, 10_560))
            .expect("forwarded");
        let switched = rw
            .rewrite(t0 + Duration::from_millis(120), pkt(2, 0, 0))
            .expect("forwarded");
        // 100 ms after packet 12 (output timestamp 1920), at 48 kHz.
        assert_eq!(switched.timestamp, 1_920 + 4_800);
        assert_eq!(switched.seq, 3);
    }

    #[test]
    fn skipped_packets_leave_no_gap_and_nacks_still_map_to_their_packets() {
        let t0 = crate::test_time::origin();
        let mut rw = SubscriberRewriter::new(VIDEO, 65_534, 0);
        let mut sent = Vec::new();
        // Source 100..=120: every third packet is filtered, 110 is late (after 111), 113
        // is lost and arrives after 114 was skipped.
        let order = [
            100u64, 101, 102, 103, 104, 105, 106, 107, 108, 109, 111, 110, 112, 114, 113, 115, 116,
            117, 118, 119, 120,
        ];
        for &seq in &order {
            let packet = pkt(1, seq, seq as u32 * 10);
            if seq % 3 == 0 {
                rw.skip(packet);
            } else {
                let out = rw.rewrite(t0, packet).expect("forwarded");
                sent.push((out.seq, seq));
            }
        }
        let mut numbers: Vec<u16> = sent.iter().map(|(out, _)| *out).collect();
        numbers.sort_unstable_by_key(|n| n.wrapping_sub(65_534));
        let expected: Vec<u16> = (0..numbers.len() as u16)
            .map(|i| 65_534u16.wrapping_add(i))
            .collect();
        assert_eq!(numbers, expected, "no gap, no number used twice");
        for (out, source) in &sent {
            assert_eq!(source_of(&rw, *out), Some((Ssrc(1), *source as u16)));
        }
        // A late copy of a skipped packet is not forwarded under someone else's number.
        assert_eq!(
            rw.rewrite(t0, pkt(1, 117, 1_170)),
            Err(RewriteDrop::Skipped)
        );
    }

    #[test]
    fn a_skip_of_a_late_packet_leaves_its_gap() {
        let t0 = crate::test_time::origin();
        let mut rw = SubscriberRewriter::new(VIDEO, 0, 0);
        rw.rewrite(t0, pkt(1, 10, 0)).unwrap();
        rw.rewrite(t0, pkt(1, 12, 0)).unwrap();
        // 11 arrives after 12: its number (1) was given already, so it stays a gap.
        rw.skip(pkt(1, 11, 0));
        assert_eq!(rw.rewrite(t0, pkt(1, 13, 0)).unwrap().seq, 3);
        assert_eq!(source_of(&rw, 1), Some((Ssrc(1), 11)));
    }

    #[test]
    fn an_aligned_restart_keeps_capture_times_and_never_repeats_a_timestamp() {
        let t0 = crate::test_time::origin();
        let mut rw = SubscriberRewriter::new(VIDEO, 0, 500);
        // Source 2's clock reads 40,000 more than source 1's at the same instant.
        let shift = 40_000u32;
        rw.rewrite(t0, pkt(1, 1, 9_000)).unwrap();
        rw.restart_aligned(Some(shift));
        // The next picture, 3,000 ticks later, on source 2 (whatever the wall clock says).
        let b = rw
            .rewrite(
                t0 + Duration::from_secs(2),
                pkt(2, 50, 9_000 + shift + 3_000),
            )
            .unwrap();
        assert_eq!(b.timestamp, 500 + 3_000);
        // Back to source 1 at the same instant as that picture: one tick on, not equal.
        rw.restart_aligned(Some(shift.wrapping_neg()));
        let a = rw.rewrite(t0, pkt(1, 2, 12_000)).unwrap();
        assert_eq!(a.timestamp, 500 + 3_001);
        // And the tick is taken back at the next aligned switch.
        rw.restart_aligned(Some(shift));
        let b = rw.rewrite(t0, pkt(2, 51, 9_000 + shift + 6_000)).unwrap();
        assert_eq!(b.timestamp, 500 + 6_000);
        // A shift that would go back in time falls back to the wall clock.
        rw.restart_aligned(Some(1_000_000));
        let later = t0 + Duration::from_millis(100);
        let a = rw.rewrite(later, pkt(1, 3, 0)).unwrap();
        assert_eq!(
            a.timestamp,
            500 + 6_000 + 9_000,
            "100 ms after the last one"
        );
    }
}
