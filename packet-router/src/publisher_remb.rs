//! What a publisher session is told with REMB (draft-alvestrand-rmcat-remb): the most it may
//! send (a limit of the server, its room or its participant) and, for a publisher that sends
//! no transport-wide sequence numbers, Sluice's receive-side estimate of what reaches it; the
//! lower of the two. A browser keeps the last REMB it got as a ceiling, so a limit that is
//! lifted is lifted with REMB too.

use std::time::Instant;

use crate::bandwidth::ReceiveSideEstimator;

/// What a lifted limit is replaced with: more than any publisher sends.
pub(crate) const NO_LIMIT_BPS: u64 = 1_000_000_000;
/// How many REMBs lift a limit (several, in case one is lost).
const LIFTING_REMBS: u8 = 5;

/// The REMB state of one publisher session.
#[derive(Debug, Clone, Default)]
pub(crate) struct PublisherRemb {
    /// The most it may send, in bits per second.
    cap: Option<u64>,
    /// The receive-side estimate, for a publisher without transport-wide feedback.
    pub(crate) estimator: Option<ReceiveSideEstimator>,
    /// REMBs still to send that lift a removed cap.
    lifting: u8,
}

impl PublisherRemb {
    /// Sets or (`None`) lifts the cap.
    pub(crate) fn set_cap(&mut self, cap: Option<u64>) {
        if cap.is_none() && self.cap.is_some() {
            self.lifting = LIFTING_REMBS;
        }
        if cap.is_some() {
            self.lifting = 0;
        }
        self.cap = cap;
    }

    /// Nothing left to tell: the entry can go.
    pub(crate) fn is_idle(&self) -> bool {
        self.cap.is_none() && self.estimator.is_none() && self.lifting == 0
    }

    /// What to tell the publisher now, if anything.
    pub(crate) fn bitrate(&self) -> Option<u64> {
        let estimate = self
            .estimator
            .as_ref()
            .and_then(ReceiveSideEstimator::estimate);
        match [self.cap, estimate].into_iter().flatten().min() {
            Some(bitrate) => Some(bitrate),
            None => (self.lifting > 0).then_some(NO_LIMIT_BPS),
        }
    }

    /// Whether the estimate fell enough to be told before the next report.
    pub(crate) fn decrease_due(&self, now: Instant) -> bool {
        self.estimator.as_ref().is_some_and(|e| e.decrease_due(now))
    }

    /// Records that `bitrate` was told at `now`.
    pub(crate) fn told(&mut self, now: Instant, bitrate: u64) {
        if let Some(estimator) = &mut self.estimator {
            estimator.told(now, bitrate);
        }
        if bitrate == NO_LIMIT_BPS {
            self.lifting = self.lifting.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_is_told_until_lifted_then_lifted_five_times() {
        let mut remb = PublisherRemb::default();
        assert_eq!(remb.bitrate(), None);
        assert!(remb.is_idle());
        remb.set_cap(Some(400_000));
        assert_eq!(remb.bitrate(), Some(400_000));
        remb.set_cap(None);
        let now = crate::test_time::origin();
        for _ in 0..LIFTING_REMBS {
            assert_eq!(remb.bitrate(), Some(NO_LIMIT_BPS));
            remb.told(now, NO_LIMIT_BPS);
        }
        assert_eq!(remb.bitrate(), None);
        assert!(remb.is_idle());
        // Lifting a cap that was never set tells nothing.
        remb.set_cap(None);
        assert_eq!(remb.bitrate(), None);
    }
}
