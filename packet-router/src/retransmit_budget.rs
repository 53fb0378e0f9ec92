//! The retransmission budget of one subscriber session: a token bucket, in bytes, that
//! bounds what its NACKs can make the server resend.
//!
//! Without it one NACK may name hundreds of packets (each FCI entry covers 17), and a
//! subscriber that NACKs everything turns the server into an amplifier of its own downlink
//! and of the worker's time. Real senders bound it the same way: libwebrtc's RTP sender
//! resends through a rate limiter capped at its target bitrate, Licode's retransmission
//! handler through a token bucket at a fraction of the measured send rate with a burst of 20
//! full packets. Here the bucket fills at a share of what the subscriber was forwarded (so a
//! 3 Mbit/s video stream can be repaired in proportion) plus a small fixed rate (so a stream
//! that has only just started can still be repaired), up to a burst that covers a lost
//! keyframe's worth of packets. What does not fit is counted and not sent; the subscriber
//! then asks again, or for a keyframe.
//!
//! Sans-IO: time is an argument, and the forwarded bytes are handed in by the router, which
//! already counts them for sender reports, so the forwarding path pays nothing for it.

use std::time::Instant;

/// Tuning of the budget ([`crate::RouterConfig::retransmit_budget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitBudgetConfig {
    /// Percent of the bytes forwarded to a subscriber that it may have resent (the share
    /// of its stream it may spend on repair).
    pub share_percent: u32,
    /// Bytes per second a subscriber may have resent whatever it was forwarded.
    pub floor_bytes_per_second: u64,
    /// The most a subscriber may have resent at once (the bucket's size; it starts full).
    pub burst_bytes: u64,
}

impl RetransmitBudgetConfig {
    /// No budget: every NACKed packet still in the cache is resent (the behaviour before the
    /// budget existed; for tests and measurements).
    pub const UNLIMITED: RetransmitBudgetConfig = RetransmitBudgetConfig {
        share_percent: 0,
        floor_bytes_per_second: u64::MAX,
        burst_bytes: u64::MAX,
    };
}

impl Default for RetransmitBudgetConfig {
    /// 25 % of the forwarded bytes plus 32 kB/s, in bursts of up to 100 kB (about 80
    /// full-size packets). At 5 % loss a stream needs a fifth of that share; a browser's
    /// NACK for a burst loss of a keyframe fits the burst.
    fn default() -> Self {
        RetransmitBudgetConfig {
            share_percent: 25,
            floor_bytes_per_second: 32_000,
            burst_bytes: 100_000,
        }
    }
}

/// One subscriber session's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitBudget {
    /// Bytes that may be resent now.
    tokens: u64,
    /// When the fixed rate was last added; `None` before the first use.
    refilled_at: Option<Instant>,
}

impl RetransmitBudget {
    /// A full bucket.
    pub fn new(config: &RetransmitBudgetConfig) -> Self {
        RetransmitBudget {
            tokens: config.burst_bytes,
            refilled_at: None,
        }
    }

    /// Adds the fixed rate for the time since the last refill, and `share_percent` of
    /// `forwarded_bytes` (bytes forwarded to the subscriber since the last call).
    pub fn refill(&mut self, now: Instant, config: &RetransmitBudgetConfig, forwarded_bytes: u64) {
        let elapsed = self
            .refilled_at
            .map_or(0, |at| now.saturating_duration_since(at).as_micros());
        self.refilled_at = Some(now);
        let by_time = u64::try_from(
            elapsed.saturating_mul(u128::from(config.floor_bytes_per_second)) / 1_000_000,
        )
        .unwrap_or(u64::MAX);
        let by_share = forwarded_bytes.saturating_mul(u64::from(config.share_percent)) / 100;
        self.tokens = self
            .tokens
            .saturating_add(by_time)
            .saturating_add(by_share)
            .min(config.burst_bytes);
    }

    /// Takes `bytes` for one retransmission; false (and nothing taken) if they do not fit.
    pub fn try_take(&mut self, bytes: u64) -> bool {
        match self.tokens.checked_sub(bytes) {
            Some(left) => {
                self.tokens = left;
                true
            }
            None => false,
        }
    }

    /// Bytes that may be resent now.
    pub fn available(&self) -> u64 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const CONFIG: RetransmitBudgetConfig = RetransmitBudgetConfig {
        share_percent: 25,
        floor_bytes_per_second: 10_000,
        burst_bytes: 50_000,
    };

    #[test]
    fn starts_full_and_refuses_what_does_not_fit() {
        let mut budget = RetransmitBudget::new(&CONFIG);
        budget.refill(crate::test_time::origin(), &CONFIG, 0);
        let taken = (0..100).take_while(|_| budget.try_take(1200)).count();
        assert_eq!(taken, 50_000 / 1200);
        assert!(!budget.try_take(1200));
        assert!(budget.try_take(budget.available()));
        assert_eq!(budget.available(), 0);
    }

    #[test]
    fn fills_at_the_fixed_rate_plus_a_share_of_the_forwarded_bytes_up_to_the_burst() {
        let t0 = crate::test_time::origin();
        let mut budget = RetransmitBudget::new(&CONFIG);
        budget.refill(t0, &CONFIG, 0);
        assert!(budget.try_take(50_000));
        budget.refill(t0 + Duration::from_millis(100), &CONFIG, 0);
        assert_eq!(budget.available(), 1_000);
        budget.refill(t0 + Duration::from_millis(100), &CONFIG, 8_000);
        assert_eq!(budget.available(), 3_000);
        budget.refill(t0 + Duration::from_secs(60), &CONFIG, 1 << 40);
        assert_eq!(budget.available(), 50_000);
        // Time going backwards adds nothing and breaks nothing.
        budget.refill(t0, &CONFIG, 0);
        assert_eq!(budget.available(), 50_000);
    }

    #[test]
    fn unlimited_never_refuses() {
        let config = RetransmitBudgetConfig::UNLIMITED;
        let mut budget = RetransmitBudget::new(&config);
        let t0 = crate::test_time::origin();
        for i in 0..10_000u64 {
            budget.refill(t0 + Duration::from_micros(i), &config, 0);
            assert!(budget.try_take(1500));
        }
    }
}
