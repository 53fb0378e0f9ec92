//! A subscriber session's transport-wide sequence numbers, and the send history its
//! bandwidth estimator keeps of the copies sent with them.

use std::time::Instant;

use crate::bandwidth::SendSideEstimator;

/// The next transport-wide sequence number of one session, and its estimator once the
/// session negotiated transport-wide feedback.
#[derive(Debug, Clone, Default)]
pub(crate) struct TransportSequence {
    next: u16,
    pub(crate) estimator: Option<Box<SendSideEstimator>>,
    /// The probe cluster the copies sent now belong to.
    pub(crate) cluster: Option<u32>,
}

impl TransportSequence {
    /// A fresh sequence (a session slot reused) without an estimator.
    pub(crate) fn reset(&mut self) {
        self.next = 0;
        self.estimator = None;
        self.cluster = None;
    }

    /// The number for a copy of `bytes` sent at `now`, recorded in the send history.
    pub(crate) fn take(&mut self, now: Instant, bytes: usize) -> u16 {
        let seq = self.next;
        self.next = seq.wrapping_add(1);
        if let Some(estimator) = &mut self.estimator {
            estimator.on_sent(now, seq, bytes, self.cluster);
        }
        seq
    }

    /// The next number, not taken.
    #[cfg(test)]
    pub(crate) fn peek(&self) -> u16 {
        self.next
    }

    #[cfg(test)]
    pub(crate) fn starting_at(next: u16) -> Self {
        Self {
            next,
            ..Self::default()
        }
    }
}
