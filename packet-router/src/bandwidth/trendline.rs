//! The delay trend and the overuse detector of the delay-based estimator: the slope of the
//! smoothed accumulated queuing delay over a window of group deltas (a least-squares line
//! through it), compared with an adaptive threshold (as in libwebrtc's GoogCC trendline
//! estimator and overuse detector, whose constants these are).

/// Group deltas in the window the slope is fitted to.
const WINDOW: usize = 20;
/// Exponential smoothing of the accumulated delay.
const SMOOTHING: f64 = 0.9;
/// The slope is scaled by this (and by the number of deltas so far, up to 60) before it is
/// compared with the threshold.
const THRESHOLD_GAIN: f64 = 4.0;
const MAX_DELTAS_SCALE: f64 = 60.0;
/// The threshold follows the scaled slope up slowly and down fast, between these bounds
/// (milliseconds).
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
const INITIAL_THRESHOLD_MS: f64 = 12.5;
const MIN_THRESHOLD_MS: f64 = 6.0;
const MAX_THRESHOLD_MS: f64 = 600.0;
/// A slope this far beyond the threshold is a spike the threshold does not adapt to.
const MAX_ADAPT_OFFSET_MS: f64 = 15.0;
/// Overuse needs the slope above the threshold for this long and more than once.
const OVERUSE_TIME_MS: f64 = 10.0;

/// What the delay says about the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BandwidthUsage {
    /// Delay is steady.
    #[default]
    Normal,
    /// Delay grows: a queue is building, the rate is above the path's capacity.
    Overusing,
    /// Delay shrinks: a queue is draining.
    Underusing,
}

/// The trend of the queuing delay and the usage it signals.
#[derive(Debug, Clone)]
pub struct Trendline {
    /// (arrival ms since the first delta, smoothed accumulated delay ms), a ring.
    points: [(f64, f64); WINDOW],
    len: usize,
    next: usize,
    first_arrival_ms: Option<f64>,
    accumulated_delay_ms: f64,
    smoothed_delay_ms: f64,
    deltas: u32,
    threshold_ms: f64,
    last_threshold_update_ms: Option<f64>,
    previous_trend: f64,
    /// How long the slope has been above the threshold (`None`: it is not).
    overusing_for_ms: Option<f64>,
    overuse_count: u32,
    usage: BandwidthUsage,
}

impl Default for Trendline {
    fn default() -> Self {
        Self {
            points: [(0.0, 0.0); WINDOW],
            len: 0,
            next: 0,
            first_arrival_ms: None,
            accumulated_delay_ms: 0.0,
            smoothed_delay_ms: 0.0,
            deltas: 0,
            threshold_ms: INITIAL_THRESHOLD_MS,
            last_threshold_update_ms: None,
            previous_trend: 0.0,
            overusing_for_ms: None,
            overuse_count: 0,
            usage: BandwidthUsage::Normal,
        }
    }
}

impl Trendline {
    /// The usage now.
    pub fn usage(&self) -> BandwidthUsage {
        self.usage
    }

    /// One group delta: how much later it arrived and was sent than the previous group
    /// (milliseconds), and when it arrived (milliseconds on the receiver's clock).
    pub fn update(
        &mut self,
        arrival_delta_ms: f64,
        send_delta_ms: f64,
        arrival_ms: f64,
    ) -> BandwidthUsage {
        let delay_ms = arrival_delta_ms - send_delta_ms;
        self.deltas = self.deltas.saturating_add(1).min(1000);
        self.accumulated_delay_ms += delay_ms;
        self.smoothed_delay_ms =
            SMOOTHING * self.smoothed_delay_ms + (1.0 - SMOOTHING) * self.accumulated_delay_ms;
        let first = *self.first_arrival_ms.get_or_insert(arrival_ms);
        if let Some(point) = self.points.get_mut(self.next) {
            *point = (arrival_ms - first, self.smoothed_delay_ms);
        }
        self.next = (self.next + 1) % WINDOW;
        self.len = (self.len + 1).min(WINDOW);
        let mut trend = self.previous_trend;
        if self.len == WINDOW
            && let Some(slope) = slope(&self.points)
        {
            trend = slope;
        }
        self.detect(trend, send_delta_ms, arrival_ms);
        self.usage
    }

    fn detect(&mut self, trend: f64, send_delta_ms: f64, now_ms: f64) {
        let scaled = f64::from(self.deltas).min(MAX_DELTAS_SCALE) * trend * THRESHOLD_GAIN;
        if scaled > self.threshold_ms {
            let overusing_for = match self.overusing_for_ms {
                // The first sample above the threshold counts half its interval.
                None => send_delta_ms / 2.0,
                Some(ms) => ms + send_delta_ms,
            };
            self.overusing_for_ms = Some(overusing_for);
            self.overuse_count += 1;
            if overusing_for > OVERUSE_TIME_MS
                && self.overuse_count > 1
                && trend >= self.previous_trend
            {
                self.overusing_for_ms = Some(0.0);
                self.overuse_count = 0;
                self.usage = BandwidthUsage::Overusing;
            }
        } else if scaled < -self.threshold_ms {
            self.overusing_for_ms = None;
            self.overuse_count = 0;
            self.usage = BandwidthUsage::Underusing;
        } else {
            self.overusing_for_ms = None;
            self.overuse_count = 0;
            self.usage = BandwidthUsage::Normal;
        }
        self.previous_trend = trend;
        self.adapt_threshold(scaled, now_ms);
    }

    fn adapt_threshold(&mut self, scaled: f64, now_ms: f64) {
        let last = *self.last_threshold_update_ms.get_or_insert(now_ms);
        self.last_threshold_update_ms = Some(now_ms);
        if scaled.abs() > self.threshold_ms + MAX_ADAPT_OFFSET_MS {
            return;
        }
        let k = if scaled.abs() < self.threshold_ms {
            K_DOWN
        } else {
            K_UP
        };
        let elapsed_ms = (now_ms - last).clamp(0.0, 100.0);
        self.threshold_ms += k * (scaled.abs() - self.threshold_ms) * elapsed_ms;
        self.threshold_ms = self.threshold_ms.clamp(MIN_THRESHOLD_MS, MAX_THRESHOLD_MS);
    }
}

/// The least-squares slope of y over x; `None` when every x is the same.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (sum_x, sum_y) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mean_x, mean_y) = (sum_x / n, sum_y / n);
    let (numerator, denominator) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        let dx = x - mean_x;
        (num + dx * (y - mean_y), den + dx * dx)
    });
    (denominator != 0.0).then(|| numerator / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `groups` deltas 33 ms apart whose arrival delta exceeds the send delta by
    /// `growth_ms`; the usages seen.
    fn feed(
        trendline: &mut Trendline,
        start_ms: f64,
        groups: usize,
        growth_ms: f64,
    ) -> Vec<BandwidthUsage> {
        (0..groups)
            .map(|i| {
                let arrival = start_ms + 33.0 * i as f64;
                trendline.update(33.0 + growth_ms, 33.0, arrival)
            })
            .collect()
    }

    #[test]
    fn steady_delay_is_normal() {
        let mut trendline = Trendline::default();
        let usages = feed(&mut trendline, 0.0, 200, 0.0);
        assert!(usages.iter().all(|u| *u == BandwidthUsage::Normal));
    }

    #[test]
    fn a_growing_queue_is_overuse_and_a_draining_one_underuse() {
        let mut trendline = Trendline::default();
        feed(&mut trendline, 0.0, 60, 0.0);
        // Each frame waits 2 ms longer than the one before.
        let usages = feed(&mut trendline, 60.0 * 33.0, 40, 2.0);
        let first = usages.iter().position(|u| *u == BandwidthUsage::Overusing);
        assert!(first.is_some_and(|at| at < 20), "{usages:?}");
        let usages = feed(&mut trendline, 100.0 * 33.0, 40, -4.0);
        assert!(usages.contains(&BandwidthUsage::Underusing), "{usages:?}");
    }

    #[test]
    fn jitter_around_a_steady_delay_is_not_overuse() {
        let mut trendline = Trendline::default();
        let usages: Vec<_> = (0..600)
            .map(|i| {
                // +-3 ms of jitter, alternating, around a steady queue.
                let jitter = if i % 2 == 0 { 3.0 } else { -3.0 };
                trendline.update(33.0 + jitter, 33.0, 33.0 * f64::from(i))
            })
            .collect();
        assert!(!usages.contains(&BandwidthUsage::Overusing), "{usages:?}");
    }

    #[test]
    fn the_slope_is_the_least_squares_fit() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), Some(2.0));
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 3.0)]), None);
    }
}
