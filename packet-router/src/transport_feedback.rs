//! Transport-wide congestion-control feedback to a publisher (draft-holmer-rmcat-transport-
//! wide-cc-extensions-01): the arrival time of every packet that carried the transport-wide
//! sequence number, sent back every [`FEEDBACK_INTERVAL`] so that the publisher's send-side
//! estimator (GoogCC in browsers) sees its packets acknowledged and ramps up. Without it a
//! browser that negotiated `transport-cc` backs off to its floor (30 kbit/s at 320 px).
//!
//! One [`TransportFeedback`] per publisher session, since the sequence number is per
//! transport. Arrivals go into a fixed ring indexed by sequence number, so reordered packets
//! land in place and a feedback is written from the ring in order, without sorting and
//! without allocating. Each feedback starts at the lowest sequence number not yet reported,
//! so that packets lost between two feedbacks are reported as lost; a packet that arrives
//! after it was reported lost is reported again, with the ones after it, if its feedback went
//! out less than [`LATE_REPORT_WINDOW`] ago.

use std::time::{Duration, Instant};

use rtc_core::rtcp::write_transport_cc_from;
use rtc_core::rtp::SeqNoUnwrapper;
use rtc_core::{SeqNo, Ssrc};

use crate::SessionId;
use crate::transmit::{TransmitKind, TransmitQueue};

/// How often feedback goes to a publisher that sends (libwebrtc sends every 50 to 100 ms).
pub const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);

/// How long after its feedback a packet reported lost that then arrives is still reported.
pub const LATE_REPORT_WINDOW: Duration = Duration::from_millis(500);

/// Arrivals remembered: more than a feedback interval of a 20 Mbit/s publisher.
const RING: usize = 2048;

/// Records per feedback packet: each costs at most 2 bytes of delta and a share of a 2-byte
/// status chunk, so 400 keep a packet under 1,200 bytes.
const MAX_RECORDS_PER_PACKET: usize = 400;

/// Feedbacks whose first sequence number is remembered, for late arrivals.
const HISTORY: usize = 16;

/// The transport-wide feedback state of one publisher session.
#[derive(Debug)]
pub struct TransportFeedback {
    /// The publisher's id of the transport-wide sequence number extension.
    extension_id: u8,
    /// Where feedback goes (the publisher's first media SSRC; receivers match on the
    /// transport, not on it).
    media_ssrc: Ssrc,
    unwrapper: SeqNoUnwrapper,
    /// `ring[seq % RING]`: the packet's sequence number and arrival (microseconds since
    /// `epoch`).
    ring: Box<[Option<(SeqNo, u64)>]>,
    epoch: Option<Instant>,
    /// The lowest sequence number the next feedback reports.
    next_base: Option<SeqNo>,
    highest: Option<SeqNo>,
    /// When the next feedback is due: set by the first arrival after a feedback.
    due: Option<Instant>,
    fb_count: u8,
    /// (when, first sequence number) of recent feedbacks.
    history: [Option<(Instant, SeqNo)>; HISTORY],
    history_at: usize,
    records: Vec<(SeqNo, u64)>,
}

impl TransportFeedback {
    /// Addresses the feedback to `ssrc` when it has no media SSRC yet (0: the session's first
    /// track was a rid-simulcast one, whose SSRCs are learned from its packets). The feedback
    /// is about the whole transport, but it names one of the publisher's SSRCs, as libwebrtc
    /// does.
    pub fn adopt_media_ssrc(&mut self, ssrc: Ssrc) {
        if self.media_ssrc == Ssrc(0) {
            self.media_ssrc = ssrc;
        }
    }

    /// The SSRC the feedback is addressed to.
    pub fn media_ssrc(&self) -> Ssrc {
        self.media_ssrc
    }

    /// Feedback addressed to `media_ssrc` for the packets that carry extension
    /// `extension_id`.
    pub fn new(extension_id: u8, media_ssrc: Ssrc) -> Self {
        Self {
            extension_id,
            media_ssrc,
            unwrapper: SeqNoUnwrapper::new(),
            ring: vec![None; RING].into_boxed_slice(),
            epoch: None,
            next_base: None,
            highest: None,
            due: None,
            fb_count: 0,
            history: [None; HISTORY],
            history_at: 0,
            records: Vec::with_capacity(RING),
        }
    }

    /// The publisher's id of the transport-wide sequence number extension: the router reads
    /// the number from the packet it has already parsed.
    pub fn extension_id(&self) -> u8 {
        self.extension_id
    }

    /// Records the arrival at `now` of the packet with transport-wide sequence number `seq`.
    pub fn handle_packet(&mut self, now: Instant, seq: u16) {
        let seq = self.unwrapper.unwrap(seq);
        let epoch = *self.epoch.get_or_insert(now);
        let arrival =
            u64::try_from(now.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX);
        let highest = self.highest.map_or(seq, |h| h.max(seq));
        if highest.0 - seq.0 >= RING as u64 {
            // Older than anything the ring can still report.
            return;
        }
        if let Some(slot) = self.ring.get_mut((seq.0 % RING as u64) as usize) {
            if slot.is_some_and(|(s, _)| s == seq) {
                return; // a duplicate keeps its first arrival
            }
            *slot = Some((seq, arrival));
        }
        self.highest = Some(highest);
        match self.next_base {
            None => self.next_base = Some(seq),
            Some(base) if seq < base => {
                if self.reported_recently(now, seq) {
                    self.next_base = Some(seq);
                }
            }
            Some(_) => {}
        }
        if self.due.is_none() {
            self.due = Some(now + FEEDBACK_INTERVAL);
        }
    }

    /// Whether `seq` was in a feedback sent less than [`LATE_REPORT_WINDOW`] ago.
    fn reported_recently(&self, now: Instant, seq: SeqNo) -> bool {
        self.history
            .iter()
            .flatten()
            .filter(|(at, _)| now.saturating_duration_since(*at) < LATE_REPORT_WINDOW)
            .any(|&(_, base)| base <= seq)
    }

    /// When [`TransportFeedback::poll_feedback`] has something to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due
    }

    /// Queues the feedback that is due (split into as many packets as it needs) for
    /// `publisher`, signed with `sender_ssrc`; returns how many packets were queued.
    pub fn poll_feedback(
        &mut self,
        now: Instant,
        publisher: SessionId,
        sender_ssrc: Ssrc,
        out: &mut TransmitQueue,
    ) -> usize {
        if self.due.is_none_or(|at| at > now) {
            return 0;
        }
        self.due = None;
        let (Some(base), Some(highest)) = (self.next_base, self.highest) else {
            return 0;
        };
        self.records.clear();
        let first = base.0.max(highest.0.saturating_sub(RING as u64 - 1));
        for seq in first..=highest.0 {
            if let Some(Some((s, arrival))) = self.ring.get((seq % RING as u64) as usize)
                && s.0 == seq
            {
                self.records.push((*s, *arrival));
            }
        }
        self.next_base = Some(SeqNo(highest.0 + 1));
        let Some(&(first_reported, _)) = self.records.first() else {
            return 0;
        };
        if let Some(entry) = self.history.get_mut(self.history_at) {
            *entry = Some((now, first_reported));
        }
        self.history_at = (self.history_at + 1) % HISTORY;
        let mut sent = 0;
        let mut rest = self.records.as_slice();
        // The first packet starts at the first number not reported yet, so the losses since
        // the last feedback are in it; later ones start at their first record.
        let mut start = SeqNo(base.0.max(first));
        while !rest.is_empty() {
            let chunk = rest
                .get(..MAX_RECORDS_PER_PACKET.min(rest.len()))
                .unwrap_or(rest);
            let media_ssrc = self.media_ssrc;
            let fb_count = self.fb_count;
            let mut covered = 0;
            let queued = out.push_with(publisher, TransmitKind::Rtcp, |buf| {
                let written =
                    write_transport_cc_from(buf, sender_ssrc, media_ssrc, fb_count, start, chunk)
                        .ok()?;
                covered = written.records;
                Some(written.len)
            });
            if !queued || covered == 0 {
                break;
            }
            self.fb_count = self.fb_count.wrapping_add(1);
            sent += 1;
            rest = rest.get(covered..).unwrap_or(&[]);
            if let Some(&(next, _)) = rest.first() {
                start = next;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_core::rtcp::{RtcpPacket, iter_compound};

    fn feedback_of(out: &TransmitQueue) -> Vec<(u16, Vec<(u16, bool)>)> {
        out.as_slice()
            .iter()
            .flat_map(|t| iter_compound(t.packet()).collect::<Vec<_>>())
            .filter_map(|p| match p {
                Ok(RtcpPacket::TransportCc(fb)) => Some((
                    fb.base_seq(),
                    fb.statuses()
                        .map(|(seq, delta)| (seq, delta.is_some()))
                        .collect(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn losses_between_feedbacks_and_reordering_are_reported_in_order() {
        let t0 = crate::test_time::origin();
        let mut fb = TransportFeedback::new(3, Ssrc(7));
        let mut out = TransmitQueue::with_capacity(8);
        let publisher = SessionId(1);
        for (i, seq) in [10u16, 11, 13, 12, 15].iter().enumerate() {
            fb.handle_packet(t0 + Duration::from_millis(i as u64 * 5), *seq);
        }
        assert_eq!(fb.poll_timeout(), Some(t0 + FEEDBACK_INTERVAL));
        assert_eq!(
            fb.poll_feedback(t0, publisher, Ssrc(1), &mut out),
            0,
            "not due yet"
        );
        assert_eq!(
            fb.poll_feedback(t0 + FEEDBACK_INTERVAL, publisher, Ssrc(1), &mut out),
            1
        );
        let reports = feedback_of(&out);
        assert_eq!(
            reports,
            [(
                10,
                vec![
                    (10, true),
                    (11, true),
                    (12, true),
                    (13, true),
                    (14, false),
                    (15, true)
                ]
            )]
        );
        // The next feedback starts after the last one's highest; 16 was lost.
        out.clear();
        fb.handle_packet(t0 + Duration::from_millis(60), 17);
        assert_eq!(
            fb.poll_feedback(
                t0 + Duration::from_millis(110),
                publisher,
                Ssrc(1),
                &mut out
            ),
            1
        );
        assert_eq!(feedback_of(&out), [(16, vec![(16, false), (17, true)])]);
        assert_eq!(fb.poll_timeout(), None, "nothing arrived since");
    }

    #[test]
    fn a_late_arrival_is_reported_again_within_the_window_only() {
        let t0 = crate::test_time::origin();
        let mut fb = TransportFeedback::new(3, Ssrc(7));
        let mut out = TransmitQueue::with_capacity(8);
        let publisher = SessionId(1);
        fb.handle_packet(t0, 100);
        fb.handle_packet(t0, 102);
        fb.poll_feedback(t0 + FEEDBACK_INTERVAL, publisher, Ssrc(1), &mut out);
        out.clear();
        // 101 arrives 100 ms later: reported now with what follows it.
        let late = t0 + Duration::from_millis(150);
        fb.handle_packet(late, 101);
        fb.handle_packet(late, 103);
        fb.poll_feedback(late + FEEDBACK_INTERVAL, publisher, Ssrc(1), &mut out);
        assert_eq!(
            feedback_of(&out),
            [(101, vec![(101, true), (102, true), (103, true)])]
        );
        out.clear();
        // 104 was never seen; when it turns up a second later its feedback is long gone.
        fb.handle_packet(late + Duration::from_millis(100), 105);
        fb.poll_feedback(
            late + Duration::from_millis(200),
            publisher,
            Ssrc(1),
            &mut out,
        );
        out.clear();
        fb.handle_packet(late + Duration::from_secs(2), 104);
        fb.handle_packet(late + Duration::from_secs(2), 106);
        fb.poll_feedback(late + Duration::from_secs(3), publisher, Ssrc(1), &mut out);
        assert_eq!(feedback_of(&out), [(106, vec![(106, true)])]);
    }

    #[test]
    fn a_long_interval_is_split_into_packets_that_cover_every_record() {
        let t0 = crate::test_time::origin();
        let mut fb = TransportFeedback::new(3, Ssrc(7));
        let mut out = TransmitQueue::with_capacity(8);
        for seq in 0..1000u16 {
            // Every third packet lost, 40 us apart: a 20 Mbit/s burst.
            if seq % 3 != 2 {
                fb.handle_packet(t0 + Duration::from_micros(u64::from(seq) * 40), seq);
            }
        }
        let packets = fb.poll_feedback(t0 + FEEDBACK_INTERVAL, SessionId(1), Ssrc(1), &mut out);
        assert!(packets >= 2, "{packets} packets");
        assert!(out.as_slice().iter().all(|t| t.packet().len() <= 1200));
        let received: usize = feedback_of(&out)
            .iter()
            .map(|(_, s)| s.iter().filter(|(_, r)| *r).count())
            .sum();
        assert_eq!(received, (0..1000).filter(|s| s % 3 != 2).count());
    }

    #[test]
    fn the_sequence_number_wraps_and_duplicates_count_once() {
        let t0 = crate::test_time::origin();
        let mut fb = TransportFeedback::new(3, Ssrc(7));
        let mut out = TransmitQueue::with_capacity(8);
        for seq in [65534u16, 65535, 65535, 0, 1] {
            fb.handle_packet(t0, seq);
        }
        fb.poll_feedback(t0 + FEEDBACK_INTERVAL, SessionId(1), Ssrc(1), &mut out);
        assert_eq!(
            feedback_of(&out),
            [(
                65534,
                vec![(65534, true), (65535, true), (0, true), (1, true)]
            )]
        );
    }
}
