//! Detects packets lost between a publisher and the server and decides when to NACK them.
//!
//! A gap in the extended sequence numbers marks the missing packets; each is NACKed at once,
//! then again every retry interval (about one round trip) until it arrives, its retries run
//! out, or it is older than the give-up age (by then a retransmission would arrive too late to
//! be played). The set of missing packets is bounded: a gap larger than the bound is a
//! restart of the stream or a catastrophe that a keyframe, not NACKs, repairs, and the caller
//! is told so.
//!
//! The state is preallocated; tracking a packet never allocates.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc_core::SeqNo;

/// Tuning of NACK generation.
#[derive(Debug, Clone, Copy)]
pub struct LossTrackerConfig {
    /// Most missing packets tracked at once; a larger gap asks for a keyframe instead.
    pub max_missing: usize,
    /// Time between NACKs of the same packet (about one round trip).
    pub retry_interval: Duration,
    /// How many NACKs are sent for one packet.
    pub max_nacks: u8,
    /// After this long a missing packet is given up.
    pub give_up_after: Duration,
}

impl Default for LossTrackerConfig {
    fn default() -> Self {
        LossTrackerConfig {
            max_missing: 512,
            retry_interval: Duration::from_millis(50),
            max_nacks: 10,
            give_up_after: Duration::from_millis(1000),
        }
    }
}

/// What a received packet told the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketArrival {
    /// The next packet in order.
    InOrder,
    /// A packet that opened a gap of this many missing packets, now tracked.
    Gap(u64),
    /// A packet that was missing (reordered, or repaired by a retransmission).
    Recovered,
    /// A duplicate or a packet older than anything tracked.
    Old,
    /// A gap too large to repair with NACKs: the caller should request a keyframe.
    TooLargeGap(u64),
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    seq: SeqNo,
    detected_at: Instant,
    last_nack_at: Option<Instant>,
    nacks_sent: u8,
}

/// Loss detection and NACK scheduling for one incoming stream.
#[derive(Debug)]
pub struct LossTracker {
    config: LossTrackerConfig,
    highest: Option<SeqNo>,
    missing: VecDeque<Missing>,
    given_up: u64,
}

impl LossTracker {
    /// A tracker with the given tuning.
    pub fn new(config: LossTrackerConfig) -> Self {
        LossTracker {
            missing: VecDeque::with_capacity(config.max_missing),
            config,
            highest: None,
            given_up: 0,
        }
    }

    /// Packets given up without being recovered so far.
    pub fn given_up(&self) -> u64 {
        self.given_up
    }

    /// Packets currently missing.
    pub fn missing_count(&self) -> usize {
        self.missing.len()
    }

    /// Records the arrival of `seq`.
    pub fn handle_packet(&mut self, now: Instant, seq: SeqNo) -> PacketArrival {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            return PacketArrival::InOrder;
        };
        if seq <= highest {
            return match self.missing.binary_search_by_key(&seq, |m| m.seq) {
                Ok(index) => {
                    self.missing.remove(index);
                    PacketArrival::Recovered
                }
                Err(_) => PacketArrival::Old,
            };
        }
        self.highest = Some(seq);
        let gap = seq.0 - highest.0 - 1;
        if gap == 0 {
            return PacketArrival::InOrder;
        }
        if gap > self.config.max_missing as u64 {
            self.given_up += self.missing.len() as u64 + gap;
            self.missing.clear();
            return PacketArrival::TooLargeGap(gap);
        }
        for lost in highest.0 + 1..seq.0 {
            if self.missing.len() == self.config.max_missing {
                // The oldest is the least likely to be repaired in time.
                self.missing.pop_front();
                self.given_up += 1;
            }
            self.missing.push_back(Missing {
                seq: SeqNo(lost),
                detected_at: now,
                last_nack_at: None,
                nacks_sent: 0,
            });
        }
        PacketArrival::Gap(gap)
    }

    /// Appends to `out` the sequence numbers to NACK now (in increasing order), and forgets
    /// packets whose time is up. `out` is the caller's reusable buffer.
    pub fn poll_nacks(&mut self, now: Instant, out: &mut Vec<SeqNo>) {
        let config = self.config;
        let before = self.missing.len();
        self.missing.retain(|m| {
            now.saturating_duration_since(m.detected_at) <= config.give_up_after
                && !(m.nacks_sent >= config.max_nacks
                    && m.last_nack_at.is_some_and(|at| {
                        now.saturating_duration_since(at) >= config.retry_interval
                    }))
        });
        self.given_up += (before - self.missing.len()) as u64;
        for m in self.missing.iter_mut() {
            let due = m.nacks_sent < config.max_nacks
                && m.last_nack_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= config.retry_interval);
            if due {
                m.nacks_sent += 1;
                m.last_nack_at = Some(now);
                out.push(m.seq);
            }
        }
    }

    /// When [`poll_nacks`](Self::poll_nacks) next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.missing
            .iter()
            .map(|m| match m.last_nack_at {
                None => m.detected_at,
                Some(at) => {
                    (at + self.config.retry_interval).min(m.detected_at + self.config.give_up_after)
                }
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polled(tracker: &mut LossTracker, now: Instant) -> Vec<u64> {
        let mut out = Vec::new();
        tracker.poll_nacks(now, &mut out);
        out.into_iter().map(|s| s.0).collect()
    }

    #[test]
    fn a_gap_is_nacked_at_once_and_retried_until_repaired() {
        let t0 = crate::test_time::origin();
        let mut tracker = LossTracker::new(LossTrackerConfig::default());
        assert_eq!(tracker.handle_packet(t0, SeqNo(10)), PacketArrival::InOrder);
        assert_eq!(tracker.handle_packet(t0, SeqNo(11)), PacketArrival::InOrder);
        assert_eq!(tracker.handle_packet(t0, SeqNo(14)), PacketArrival::Gap(2));
        assert_eq!(tracker.poll_timeout(), Some(t0));
        assert_eq!(polled(&mut tracker, t0), vec![12, 13]);
        // Nothing more until the retry interval passes.
        assert_eq!(
            polled(&mut tracker, t0 + Duration::from_millis(10)),
            Vec::<u64>::new()
        );
        assert_eq!(tracker.poll_timeout(), Some(t0 + Duration::from_millis(50)));
        // 12 is repaired by a retransmission; only 13 is asked again.
        assert_eq!(
            tracker.handle_packet(t0, SeqNo(12)),
            PacketArrival::Recovered
        );
        assert_eq!(
            polled(&mut tracker, t0 + Duration::from_millis(50)),
            vec![13]
        );
        assert_eq!(tracker.handle_packet(t0, SeqNo(12)), PacketArrival::Old);
    }

    #[test]
    fn missing_packets_are_given_up_after_their_retries_or_age() {
        let t0 = crate::test_time::origin();
        let config = LossTrackerConfig {
            max_nacks: 3,
            ..LossTrackerConfig::default()
        };
        let mut tracker = LossTracker::new(config);
        tracker.handle_packet(t0, SeqNo(1));
        tracker.handle_packet(t0, SeqNo(3));
        let mut sent = 0;
        for step in 0..10u64 {
            sent += polled(&mut tracker, t0 + Duration::from_millis(step * 50)).len();
        }
        assert_eq!(sent, 3);
        assert_eq!(tracker.missing_count(), 0);
        assert_eq!(tracker.given_up(), 1);
        assert_eq!(tracker.poll_timeout(), None);

        tracker.handle_packet(t0, SeqNo(5));
        assert_eq!(polled(&mut tracker, t0).len(), 1);
        assert_eq!(
            polled(&mut tracker, t0 + Duration::from_millis(1001)).len(),
            0
        );
        assert_eq!(tracker.given_up(), 2);
    }

    #[test]
    fn huge_gaps_ask_for_a_keyframe_and_memory_stays_bounded() {
        let t0 = crate::test_time::origin();
        let config = LossTrackerConfig {
            max_missing: 8,
            ..LossTrackerConfig::default()
        };
        let mut tracker = LossTracker::new(config);
        tracker.handle_packet(t0, SeqNo(0));
        assert_eq!(
            tracker.handle_packet(t0, SeqNo(100)),
            PacketArrival::TooLargeGap(99)
        );
        assert_eq!(tracker.missing_count(), 0);
        // Several gaps, each within bounds, never hold more than the bound.
        for seq in (102..200).step_by(2) {
            tracker.handle_packet(t0, SeqNo(seq));
            assert!(tracker.missing_count() <= 8);
        }
        assert_eq!(
            polled(&mut tracker, t0),
            vec![183, 185, 187, 189, 191, 193, 195, 197]
        );
    }
}
