//! AIMD rate control of the delay-based estimator: the estimate grows while the delay is
//! steady (8 % a second far from the path's known capacity, about one packet per response
//! time near it), holds while a queue drains, and drops to 85 % of what was measured
//! arriving on overuse (as libwebrtc's GoogCC does, whose constants these are).

/// The drop on overuse: this much of the measured incoming rate...
const BETA: f64 = 0.85;
/// ...but at most to this share of the estimate in one step.
const MAX_DECREASE: f64 = 0.5;
/// Multiplicative growth a second.
const GROWTH_PER_SECOND: f64 = 1.08;
/// Frames a second assumed for the additive step.
const FRAMES_PER_SECOND: f64 = 30.0;
const PACKET_BITS: f64 = 1200.0 * 8.0;
/// The estimate stays within this of what arrives: 1.5 times it plus this.
const ABOVE_INCOMING_BPS: f64 = 10_000.0;
/// How long after a decrease another is allowed.
const DECREASE_INTERVAL_US: i64 = 200_000;

/// The state of the rate controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Hold,
    Increase,
    Decrease,
}

/// The capacity the path showed when it last overused: an average of the incoming rates
/// at each decrease, with a normalised variance (kbit/s, as libwebrtc keeps it).
#[derive(Debug, Clone, Copy)]
struct LinkCapacity {
    estimate_kbps: f64,
    variance: f64,
}

impl LinkCapacity {
    fn deviation_kbps(&self) -> f64 {
        (self.variance * self.estimate_kbps).sqrt()
    }

    fn upper_bps(&self) -> f64 {
        (self.estimate_kbps + 3.0 * self.deviation_kbps()) * 1000.0
    }

    fn lower_bps(&self) -> f64 {
        (self.estimate_kbps - 3.0 * self.deviation_kbps()) * 1000.0
    }

    fn update(&mut self, sample_bps: f64) {
        const ALPHA: f64 = 0.05;
        let sample_kbps = sample_bps / 1000.0;
        self.estimate_kbps = (1.0 - ALPHA) * self.estimate_kbps + ALPHA * sample_kbps;
        let error = self.estimate_kbps - sample_kbps;
        let norm = self.estimate_kbps.max(1.0);
        self.variance =
            ((1.0 - ALPHA) * self.variance + ALPHA * error * error / norm).clamp(0.4, 2.5);
    }
}

/// Additive-increase, multiplicative-decrease control of an estimate in bits per second.
#[derive(Debug, Clone)]
pub struct AimdRateControl {
    bitrate_bps: Option<f64>,
    min_bps: f64,
    max_bps: f64,
    state: State,
    capacity: Option<LinkCapacity>,
    last_update_us: Option<i64>,
    last_decrease_us: Option<i64>,
    /// Round-trip time plus the time a sender takes to react (microseconds).
    response_time_us: i64,
}

impl AimdRateControl {
    /// A controller between `min_bps` and `max_bps` with no estimate yet; `rtt_us` is the
    /// round-trip time to the sender.
    pub fn new(min_bps: u64, max_bps: u64, rtt_us: i64) -> Self {
        Self {
            bitrate_bps: None,
            min_bps: min_bps as f64,
            max_bps: max_bps as f64,
            state: State::Hold,
            capacity: None,
            last_update_us: None,
            last_decrease_us: None,
            response_time_us: rtt_us + 100_000,
        }
    }

    /// The estimate, once there is one.
    pub fn bitrate(&self) -> Option<u64> {
        self.bitrate_bps.map(|b| b as u64)
    }

    /// Starts the estimate at `bps` (the first measured incoming rate, or a configured
    /// start).
    pub fn set_start(&mut self, bps: u64) {
        self.bitrate_bps = Some((bps as f64).clamp(self.min_bps, self.max_bps));
    }

    /// Whether a decrease at `now_us` would be allowed (one per interval, so that a sender
    /// has time to react to the last one before it is asked again).
    pub fn may_decrease(&self, now_us: i64) -> bool {
        self.last_decrease_us
            .is_none_or(|at| now_us - at >= DECREASE_INTERVAL_US)
    }

    /// Updates the estimate with the usage the delay signals and the rate measured arriving
    /// (`None` until there is a measurement). Returns the estimate.
    pub fn update(
        &mut self,
        usage: super::BandwidthUsage,
        incoming_bps: Option<u64>,
        now_us: i64,
    ) -> Option<u64> {
        use super::BandwidthUsage;
        let incoming = incoming_bps.map(|b| b as f64);
        let elapsed_us = self
            .last_update_us
            .map_or(0, |at| (now_us - at).clamp(0, 1_000_000));
        self.last_update_us = Some(now_us);
        let Some(bitrate) = self.bitrate_bps else {
            // No estimate yet: the first overuse starts it from what arrives.
            if usage == BandwidthUsage::Overusing
                && let Some(incoming) = incoming
            {
                self.set_start((incoming * BETA) as u64);
                self.last_decrease_us = Some(now_us);
            }
            return self.bitrate();
        };
        self.state = match (usage, self.state) {
            (BandwidthUsage::Normal, State::Hold) => State::Increase,
            (BandwidthUsage::Normal, state) => state,
            (BandwidthUsage::Overusing, _) => State::Decrease,
            (BandwidthUsage::Underusing, _) => State::Hold,
        };
        let next = match self.state {
            State::Hold => bitrate,
            State::Increase => {
                if let (Some(capacity), Some(incoming)) = (self.capacity, incoming)
                    && incoming > capacity.upper_bps()
                {
                    // More gets through than the old capacity: it is no longer known.
                    self.capacity = None;
                }
                let seconds = elapsed_us as f64 / 1e6;
                let step = if self.capacity.is_some() {
                    self.additive_rate(bitrate) * seconds
                } else {
                    (bitrate * (GROWTH_PER_SECOND.powf(seconds) - 1.0)).max(1000.0 * seconds)
                };
                let grown = bitrate + step;
                match incoming {
                    // Never far above what actually arrives.
                    Some(incoming) => grown.min((1.5 * incoming + ABOVE_INCOMING_BPS).max(bitrate)),
                    None => grown,
                }
            }
            State::Decrease => {
                self.state = State::Hold;
                match incoming {
                    Some(incoming) if self.may_decrease(now_us) => {
                        if let Some(capacity) = self.capacity
                            && incoming < capacity.lower_bps()
                        {
                            self.capacity = None;
                        }
                        // Never below half the estimate in one step: a rate measured over a
                        // second that held a switch or a burst of loss can be far too low.
                        let mut decreased = (incoming * BETA).max(bitrate * MAX_DECREASE);
                        if decreased > bitrate
                            && let Some(capacity) = self.capacity
                        {
                            decreased = BETA * capacity.estimate_kbps * 1000.0;
                        }
                        match &mut self.capacity {
                            Some(capacity) => capacity.update(incoming),
                            None => {
                                self.capacity = Some(LinkCapacity {
                                    estimate_kbps: incoming / 1000.0,
                                    variance: 0.4,
                                });
                            }
                        }
                        self.last_decrease_us = Some(now_us);
                        decreased.min(bitrate)
                    }
                    _ => bitrate,
                }
            }
        };
        self.bitrate_bps = Some(next.clamp(self.min_bps, self.max_bps));
        self.bitrate()
    }

    /// Near the known capacity: about one packet more per response time, a second.
    fn additive_rate(&self, bitrate: f64) -> f64 {
        let bits_per_frame = bitrate / FRAMES_PER_SECOND;
        let packets_per_frame = (bits_per_frame / PACKET_BITS).ceil().max(1.0);
        let packet_bits = bits_per_frame / packets_per_frame;
        let response_seconds = self.response_time_us as f64 / 1e6;
        (packet_bits / response_seconds).max(4000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::BandwidthUsage;
    use super::*;

    #[test]
    fn far_from_a_known_capacity_the_estimate_grows_eight_percent_a_second() {
        let mut control = AimdRateControl::new(30_000, 50_000_000, 100_000);
        control.set_start(1_000_000);
        for step in 0..=40 {
            control.update(BandwidthUsage::Normal, Some(10_000_000), step * 25_000);
        }
        let bitrate = control.bitrate().unwrap();
        assert!((1_075_000..=1_085_000).contains(&bitrate), "{bitrate}");
    }

    #[test]
    fn overuse_drops_to_85_percent_of_what_arrives_then_grows_additively() {
        let mut control = AimdRateControl::new(30_000, 50_000_000, 100_000);
        control.set_start(1_500_000);
        control.update(BandwidthUsage::Normal, Some(1_000_000), 0);
        let dropped = control.update(BandwidthUsage::Overusing, Some(1_000_000), 25_000);
        assert_eq!(dropped, Some(850_000));
        // Another overuse right after is not a second drop.
        assert_eq!(
            control.update(BandwidthUsage::Overusing, Some(800_000), 50_000),
            Some(850_000)
        );
        // Near the capacity now known: tens of kbit/s a second, not 8 %.
        for step in 3..=42 {
            control.update(BandwidthUsage::Normal, Some(900_000), step * 25_000);
        }
        let grown = control.bitrate().unwrap();
        assert!((860_000..=900_000).contains(&grown), "{grown}");
    }

    #[test]
    fn one_overuse_never_takes_more_than_half() {
        let mut control = AimdRateControl::new(30_000, 50_000_000, 100_000);
        control.set_start(2_000_000);
        // What arrived in the last second was low (a switch, a burst of loss).
        assert_eq!(
            control.update(BandwidthUsage::Overusing, Some(300_000), 0),
            Some(1_000_000)
        );
    }

    #[test]
    fn the_estimate_stays_near_what_arrives_and_within_its_bounds() {
        let mut control = AimdRateControl::new(30_000, 2_000_000, 100_000);
        control.set_start(500_000);
        for step in 0..400 {
            control.update(BandwidthUsage::Normal, Some(100_000), step * 25_000);
        }
        assert_eq!(
            control.bitrate(),
            Some(500_000),
            "held, never raised above 1.5x + 10k"
        );
        for step in 400..2000 {
            control.update(BandwidthUsage::Normal, Some(5_000_000), step * 25_000);
        }
        assert_eq!(control.bitrate(), Some(2_000_000));
    }
}
