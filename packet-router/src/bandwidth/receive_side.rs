//! The receive-side estimate of one publisher session, from the abs-send-time of its packets
//! (draft-alvestrand-rmcat-remb): what Sluice tells, with REMB, a publisher that takes REMB
//! but sends no transport-wide sequence numbers.

use std::time::{Duration, Instant};

use super::{AimdRateControl, IncomingRate, InterArrival, Trendline};

/// abs-send-time counts 2^-18 s in 24 bits: it wraps every 64 s.
const ABS_SEND_TIME_BITS: u32 = 24;
const ABS_SEND_TIME_UNITS_PER_SECOND: i64 = 1 << 18;
/// The estimate's bounds.
const MIN_BITRATE_BPS: u64 = 30_000;
const MAX_BITRATE_BPS: u64 = 50_000_000;
/// A round-trip time assumed for the rate controller's response time.
const ASSUMED_RTT_US: i64 = 100_000;
/// An estimate this much below the last one told is told at once (else once a second).
const PROMPT_DECREASE: f64 = 0.97;
/// At most this often.
const MIN_REMB_INTERVAL: Duration = Duration::from_millis(200);

/// The estimate of what reaches Sluice from one publisher session.
#[derive(Debug, Clone)]
pub struct ReceiveSideEstimator {
    extension_id: u8,
    origin: Option<Instant>,
    /// The last abs-send-time and its unwrapped value (2^-18 s units).
    last_send_time: Option<(u32, i64)>,
    groups: InterArrival,
    trendline: Trendline,
    incoming: IncomingRate,
    control: AimdRateControl,
    /// When the last REMB with the estimate went out, and what it said.
    last_told: Option<(Instant, u64)>,
}

impl ReceiveSideEstimator {
    /// An estimator for packets that carry abs-send-time with `extension_id`.
    pub fn new(extension_id: u8) -> Self {
        Self {
            extension_id,
            origin: None,
            last_send_time: None,
            groups: InterArrival::default(),
            trendline: Trendline::default(),
            incoming: IncomingRate::default(),
            control: AimdRateControl::new(MIN_BITRATE_BPS, MAX_BITRATE_BPS, ASSUMED_RTT_US),
            last_told: None,
        }
    }

    /// The abs-send-time extension id.
    pub fn extension_id(&self) -> u8 {
        self.extension_id
    }

    /// One packet of `bytes` (all of it, headers too) that arrived at `now` with
    /// abs-send-time `send_time` (its three bytes).
    pub fn handle_packet(&mut self, now: Instant, send_time: [u8; 3], bytes: usize) {
        let arrival_us = self.micros_since_origin(now);
        let send_us = self.unwrap_send_time(send_time) * 1_000_000 / ABS_SEND_TIME_UNITS_PER_SECOND;
        self.incoming.add(arrival_us, bytes);
        let Some(delta) = self.groups.packet(send_us, arrival_us, bytes) else {
            return;
        };
        let usage = self.trendline.update(
            delta.arrival_delta_us as f64 / 1000.0,
            delta.send_delta_us as f64 / 1000.0,
            delta.arrival_us as f64 / 1000.0,
        );
        let incoming = self.incoming.bitrate(arrival_us);
        if self.control.bitrate().is_none()
            && let Some(incoming) = incoming
        {
            // The first second measured starts the estimate.
            self.control.set_start(incoming);
        }
        self.control.update(usage, incoming, arrival_us);
    }

    /// The estimate in bits per second, once a second of packets was measured.
    pub fn estimate(&self) -> Option<u64> {
        self.control.bitrate()
    }

    /// Whether the estimate fell enough since it was last told to tell it now rather than
    /// at the next report.
    pub fn decrease_due(&self, now: Instant) -> bool {
        match (self.estimate(), self.last_told) {
            (Some(estimate), Some((at, told))) => {
                (estimate as f64) < told as f64 * PROMPT_DECREASE
                    && now.saturating_duration_since(at) >= MIN_REMB_INTERVAL
            }
            _ => false,
        }
    }

    /// Records that `bitrate` was told at `now`.
    pub fn told(&mut self, now: Instant, bitrate: u64) {
        self.last_told = Some((now, bitrate));
    }

    fn micros_since_origin(&mut self, now: Instant) -> i64 {
        let origin = *self.origin.get_or_insert(now);
        super::micros(now.saturating_duration_since(origin))
    }

    /// abs-send-time unwrapped across its 64 s wrap (2^-18 s units since the first).
    fn unwrap_send_time(&mut self, bytes: [u8; 3]) -> i64 {
        let [a, b, c] = bytes;
        let raw = u32::from_be_bytes([0, a, b, c]);
        let unwrapped = match self.last_send_time {
            None => i64::from(raw),
            Some((last_raw, last)) => {
                // The shortest way round the 24-bit circle from the last value.
                let modulus = 1i64 << ABS_SEND_TIME_BITS;
                let mut diff = (i64::from(raw) - i64::from(last_raw)).rem_euclid(modulus);
                if diff >= modulus / 2 {
                    diff -= modulus;
                }
                last + diff
            }
        };
        self.last_send_time = Some((raw, unwrapped));
        unwrapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_time::origin;

    fn abs_send_time(seconds: f64) -> [u8; 3] {
        let units = (seconds * ABS_SEND_TIME_UNITS_PER_SECOND as f64) as u32 & 0x00FF_FFFF;
        let [_, a, b, c] = units.to_be_bytes();
        [a, b, c]
    }

    #[test]
    fn abs_send_time_unwraps_across_its_64_second_wrap() {
        let mut estimator = ReceiveSideEstimator::new(2);
        let near_end = estimator.unwrap_send_time(abs_send_time(63.9));
        let after_wrap = estimator.unwrap_send_time(abs_send_time(64.1));
        let seconds = (after_wrap - near_end) as f64 / ABS_SEND_TIME_UNITS_PER_SECOND as f64;
        assert!((seconds - 0.2).abs() < 0.001, "{seconds}");
        // A reordered, slightly older one is slightly older, not 64 s newer.
        let older = estimator.unwrap_send_time(abs_send_time(63.95));
        assert!(older < after_wrap);
    }

    #[test]
    fn a_sender_on_an_open_path_measures_its_rate_and_is_let_grow() {
        let mut estimator = ReceiveSideEstimator::new(2);
        let start = origin();
        // 960 kbit/s in frames of four 1000-byte packets, 30 a second, 20 ms on the way.
        for frame in 0..150u32 {
            for packet in 0..4u32 {
                let sent = f64::from(frame) / 30.0 + f64::from(packet) * 0.0005;
                let arrival = start + Duration::from_secs_f64(sent + 0.02);
                estimator.handle_packet(arrival, abs_send_time(sent), 1000);
            }
        }
        let estimate = estimator.estimate().expect("an estimate after 5 s");
        // Started from the ~960 kbit/s measured and let grow, never more than 1.5x + 10k.
        assert!((960_000..=1_460_000).contains(&estimate), "{estimate}");
        assert!(!estimator.decrease_due(start + Duration::from_secs(5)));
    }
}
