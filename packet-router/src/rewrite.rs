//! Per-subscriber rewriting of sequence numbers and timestamps.
//!
//! Every subscriber sees each outgoing stream as one continuous RTP stream with its own SSRC,
//! even when the packets behind it come from different sources over time: a publisher that
//! reconnects with a new SSRC and a random sequence/timestamp base, or a track replaced by
//! another. The receiver's jitter buffer must see neither a jump in sequence numbers (it would
//! count a huge loss or discard everything as old) nor a jump in timestamps (it would stall
//! playout). [`SubscriberRewriter`] keeps the output continuous: within one source it adds
//! fixed offsets (so loss and reordering are passed through faithfully and NACKs map back);
//! on a switch of source it re-bases the offsets so that the next output sequence number is
//! the last one plus one and the timestamp advances by the wall-clock time that elapsed.
//!
//! Time is an argument; nothing here reads a clock.

use std::time::Instant;

use rtc_core::{SeqNo, Ssrc};

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
}

#[derive(Debug, Clone, Copy)]
struct ActiveSource {
    ssrc: Ssrc,
    /// First extended sequence number forwarded from this source.
    first_seq: SeqNo,
    /// Added (wrapping) to the source's sequence number.
    seq_offset: u16,
    /// Added (wrapping) to the source's timestamp.
    timestamp_offset: u32,
}

/// Keeps one outgoing stream of one subscriber continuous across sources.
#[derive(Debug, Clone)]
pub struct SubscriberRewriter {
    clock_rate: u32,
    active: Option<ActiveSource>,
    /// The previous source, kept so that its late packets are recognized and dropped.
    previous_source: Option<Ssrc>,
    /// The mapping before a [`SubscriberRewriter::restart`], so that NACKs for packets
    /// sent before the switch still map back to their source.
    previous: Option<ActiveSource>,
    /// The next packet starts a new mapping whatever its source.
    restart_pending: bool,
    /// Highest output sequence number sent, extended, with the timestamp and send time of
    /// the packet that carried the highest timestamp (used to re-base on a switch).
    highest_out_seq: Option<u64>,
    last_out_timestamp: u32,
    last_out_at: Option<Instant>,
}

impl SubscriberRewriter {
    /// A rewriter for a stream with the given RTP clock rate. `initial_seq` and
    /// `initial_timestamp` are the subscriber's own random bases (drawn by the caller).
    pub fn new(clock_rate: u32, initial_seq: u16, initial_timestamp: u32) -> Self {
        SubscriberRewriter {
            clock_rate: clock_rate.max(1),
            active: None,
            previous_source: None,
            previous: None,
            restart_pending: false,
            // The first output number is `initial_seq`, so "the one before it" is stored.
            highest_out_seq: Some(u64::from(initial_seq.wrapping_sub(1))),
            last_out_timestamp: initial_timestamp,
            last_out_at: None,
        }
    }

    /// The offset that maps a source timestamp to the subscriber's timestamp, for rewriting
    /// the RTP time of sender reports so that they match the rewritten stream.
    pub fn timestamp_offset(&self, source: Ssrc) -> Option<u32> {
        self.active
            .filter(|active| active.ssrc == source)
            .or(self.previous.filter(|previous| previous.ssrc == source))
            .map(|active| active.timestamp_offset)
    }

    /// Makes the next packet start a new mapping (continuing the sequence numbers and
    /// timestamps sent so far) even from a source seen before: a simulcast layer switch,
    /// made at a keyframe of the new layer. The mapping before stays for NACKs.
    pub fn restart(&mut self) {
        self.restart_pending = true;
    }

    /// Maps a subscriber sequence number back to the source's, for answering a NACK from the
    /// retransmission cache. `None` when the number predates the current source.
    pub fn source_seq(&self, subscriber_seq: u16) -> Option<(Ssrc, u16)> {
        let active = self.active?;
        let seq = subscriber_seq.wrapping_sub(active.seq_offset);
        let back = active.first_seq.wire().wrapping_sub(seq);
        // A number up to half the space behind the first forwarded one is from before the
        // switch; the cache of the previous source no longer applies to it, but the mapping
        // before a restart does.
        if back != 0 && back < 0x8000 {
            let previous = self.previous?;
            let seq = subscriber_seq.wrapping_sub(previous.seq_offset);
            let back = previous.first_seq.wire().wrapping_sub(seq);
            if back != 0 && back < 0x8000 {
                return None;
            }
            return Some((previous.ssrc, seq));
        }
        Some((active.ssrc, seq))
    }

    /// Rewrites one packet. `now` is when it is forwarded.
    pub fn rewrite(
        &mut self,
        now: Instant,
        packet: SourcePacket,
    ) -> Result<RewrittenPacket, RewriteDrop> {
        let active = match self.active {
            _ if self.restart_pending => {
                self.restart_pending = false;
                self.previous = self.active;
                self.switch_to(now, packet)
            }
            Some(active) if active.ssrc == packet.source => active,
            _ if self.previous_source == Some(packet.source) => {
                return Err(RewriteDrop::StaleSource);
            }
            _ => {
                self.previous = None;
                self.switch_to(now, packet)
            }
        };
        if packet.seq < active.first_seq {
            return Err(RewriteDrop::BeforeSwitchPoint);
        }
        let seq = packet.seq.wire().wrapping_add(active.seq_offset);
        let timestamp = packet.timestamp.wrapping_add(active.timestamp_offset);
        self.note_sent(now, seq, timestamp);
        Ok(RewrittenPacket { seq, timestamp })
    }

    fn switch_to(&mut self, now: Instant, packet: SourcePacket) -> ActiveSource {
        let next_seq = self
            .highest_out_seq
            .map_or(0, |highest| (highest as u16).wrapping_add(1));
        // After a previous source, advance by the time that passed (at least one tick so the
        // timestamp moves), in the stream's clock; the very first packet starts at the base.
        let ticks = self.last_out_at.map_or(0, |at| {
            let elapsed = now.saturating_duration_since(at);
            (elapsed.as_micros() * u128::from(self.clock_rate) / 1_000_000).max(1)
        });
        let next_timestamp = self
            .last_out_timestamp
            .wrapping_add(u32::try_from(ticks).unwrap_or(u32::MAX));
        let active = ActiveSource {
            ssrc: packet.source,
            first_seq: packet.seq,
            seq_offset: next_seq.wrapping_sub(packet.seq.wire()),
            timestamp_offset: next_timestamp.wrapping_sub(packet.timestamp),
        };
        self.previous_source = self.active.map(|old| old.ssrc);
        self.active = Some(active);
        active
    }

    fn note_sent(&mut self, now: Instant, seq: u16, timestamp: u32) {
        let extended = extend_near(self.highest_out_seq, seq);
        if self
            .highest_out_seq
            .is_none_or(|highest| extended > highest)
        {
            self.highest_out_seq = Some(extended);
        }
        // Timestamps of reordered packets are older; only a newer one moves the reference.
        if self.last_out_at.is_none() || timestamp_newer(timestamp, self.last_out_timestamp) {
            self.last_out_timestamp = timestamp;
            self.last_out_at = Some(now);
        }
    }
}

/// Extends a 16-bit number to the 64-bit value nearest to `reference`.
fn extend_near(reference: Option<u64>, seq: u16) -> u64 {
    let Some(reference) = reference else {
        return u64::from(seq) + (1 << 16);
    };
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
        assert_eq!(rw.source_seq(12), Some((Ssrc(1), 102)));
        assert_eq!(rw.source_seq(13), Some((Ssrc(2), 7_000)));
        assert_eq!(rw.source_seq(9), None, "before anything was sent");
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
        assert_eq!(rw.source_seq(13), Some((Ssrc(2), 7_000)));
        assert_eq!(rw.source_seq(14), Some((Ssrc(1), 200)));
    }

    #[test]
    fn nacked_numbers_map_back_to_the_source() {
        let t0 = crate::test_time::origin();
        let mut rw = SubscriberRewriter::new(VIDEO, 65_535, 0);
        for i in 0..5u64 {
            rw.rewrite(t0, pkt(9, 65_534 + i, 0)).expect("forwarded");
        }
        // Subscriber numbers 65535, 0, 1, 2, 3 are source numbers 65534, 65535, 0, 1, 2.
        assert_eq!(rw.source_seq(0), Some((Ssrc(9), 65_535)));
        assert_eq!(rw.source_seq(3), Some((Ssrc(9), 2)));
        assert_eq!(
            rw.source_seq(65_534),
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
}
