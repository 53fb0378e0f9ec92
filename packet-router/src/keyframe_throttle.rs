//! Throttling of keyframe requests (PLI and FIR) towards a publisher.
//!
//! Every subscriber that loses a reference frame or joins asks for a keyframe, and with many
//! subscribers those requests arrive in bursts. A keyframe is large, so the publisher must not
//! be asked more than once per interval per track: requests inside the interval are absorbed,
//! since the keyframe already requested answers them all.

use std::time::{Duration, Instant};

/// The default minimum interval between keyframe requests to one publisher track.
pub const DEFAULT_KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// Decides which keyframe requests for one published video track reach the publisher.
#[derive(Debug, Clone)]
pub struct KeyframeRequestThrottle {
    interval: Duration,
    last_forwarded: Option<Instant>,
    absorbed: u64,
}

impl Default for KeyframeRequestThrottle {
    fn default() -> Self {
        Self::new(DEFAULT_KEYFRAME_REQUEST_INTERVAL)
    }
}

impl KeyframeRequestThrottle {
    /// A throttle forwarding at most one request per `interval`.
    pub fn new(interval: Duration) -> Self {
        KeyframeRequestThrottle {
            interval,
            last_forwarded: None,
            absorbed: 0,
        }
    }

    /// Called for each keyframe request; true when it should be sent to the publisher now.
    pub fn handle_request(&mut self, now: Instant) -> bool {
        let due = self
            .last_forwarded
            .is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if due {
            self.last_forwarded = Some(now);
        } else {
            self.absorbed += 1;
        }
        due
    }

    /// How many requests were absorbed by the throttle so far.
    pub fn absorbed(&self) -> u64 {
        self.absorbed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_request_per_interval() {
        let t0 = crate::test_time::origin();
        let mut throttle = KeyframeRequestThrottle::default();
        let forwarded: Vec<u64> = (0..40u64)
            .filter(|i| throttle.handle_request(t0 + Duration::from_millis(i * 50)))
            .collect();
        // Requests every 50 ms over 2 s: one every 500 ms gets through.
        assert_eq!(forwarded, vec![0, 10, 20, 30]);
        assert_eq!(throttle.absorbed(), 36);
    }

    #[test]
    fn the_interval_is_configurable() {
        let t0 = crate::test_time::origin();
        let mut throttle = KeyframeRequestThrottle::new(Duration::from_millis(100));
        assert!(throttle.handle_request(t0));
        assert!(!throttle.handle_request(t0 + Duration::from_millis(99)));
        assert!(throttle.handle_request(t0 + Duration::from_millis(100)));
    }
}
