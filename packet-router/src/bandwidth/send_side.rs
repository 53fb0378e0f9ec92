//! The send-side estimate of one subscriber session's downlink, from transport-wide feedback
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01): every copy Sluice sends with a
//! transport-wide sequence number is recorded in a fixed send history; each feedback says
//! when the subscriber received which, and the delay-based estimator (the same groups,
//! trend and AIMD as on the receiving side) and a loss-based limit make the estimate. Probe
//! clusters measure a rate above the estimate when the allocator wants more.

use std::time::Instant;

use rtc_core::rtcp::TransportCc;

use super::{AimdRateControl, BandwidthUsage, IncomingRate, InterArrival, Trendline};

/// Copies remembered (a power of two): over a second at 10 Mbit/s, far more than the 100 ms
/// between feedbacks.
const HISTORY: usize = 1024;
/// Microseconds per receive-delta tick and per reference-time unit.
const DELTA_TICK_US: i64 = 250;
const REFERENCE_UNIT_US: i64 = 64_000;
const MIN_BITRATE_BPS: u64 = 30_000;
const MAX_BITRATE_BPS: u64 = 50_000_000;
/// Loss above this cuts the estimate, by half the loss; below the lower one the loss-based
/// limit grows 8 % a second until it no longer limits.
const HIGH_LOSS: f64 = 0.10;
const LOW_LOSS: f64 = 0.02;
/// Loss at which the link is taken to carry only what arrives.
const OVERLOAD_LOSS: f64 = 0.2;
/// Outcomes needed for a loss measurement (and at least this long of them), and the least
/// time between two cuts: a burst of loss at a switch (a keyframe through a full queue) is
/// one measurement and one cut, not several.
const LOSS_SAMPLE_PACKETS: u32 = 50;
const LOSS_SAMPLE_US: i64 = 500_000;
const LOSS_CUT_INTERVAL_US: i64 = 1_000_000;
/// A probe result counts when this share of the cluster arrived.
const PROBE_MIN_ARRIVED: f64 = 0.8;
/// Packets of a cluster needed for a result.
const PROBE_MIN_PACKETS: u32 = 5;
/// A probe costs the estimate at most this much (what it keeps of it), for this long after
/// it started (the cluster's feedback comes within it).
const PROBE_FLOOR: f64 = 0.85;
const PROBE_GUARD_US: i64 = 1_500_000;
/// Feedback older than this says nothing about the delay now.
const STALE_FEEDBACK_US: i64 = 1_000_000;

/// What happened to a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Sent, no feedback about it yet.
    Pending,
    /// Reported received (counted once, however many feedbacks report it).
    Received,
    /// Reported lost (a later report of it received corrects it).
    Lost,
}

/// One copy as the feedback handling sees it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    sent_us: i64,
    bytes: u16,
    /// The probe cluster's tag ([`cluster_tag`]).
    cluster: Option<u8>,
}

/// One copy in the send history, packed into 12 bytes: a copy is recorded for every packet
/// sent, and the rings of many subscriber sessions must stay in cache.
#[derive(Debug, Clone, Copy, Default)]
struct Record {
    /// The send time's low 32 bits of microseconds (71 minutes around: feedback comes within
    /// a second).
    sent_us: u32,
    seq: u16,
    bytes: u16,
    /// 0, or the probe cluster's tag.
    cluster: u8,
    /// 0: empty; else an [`Outcome`] (1 pending, 2 received, 3 lost).
    outcome: u8,
}

impl Record {
    fn outcome(&self) -> Option<Outcome> {
        match self.outcome {
            1 => Some(Outcome::Pending),
            2 => Some(Outcome::Received),
            3 => Some(Outcome::Lost),
            _ => None,
        }
    }

    fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = match outcome {
            Outcome::Pending => 1,
            Outcome::Received => 2,
            Outcome::Lost => 3,
        };
    }

    /// The copy, its send time restored from the low bits against `now_us` (later).
    fn sent(&self, now_us: i64) -> Sent {
        let back = (now_us as u32).wrapping_sub(self.sent_us);
        Sent {
            sent_us: now_us - i64::from(back),
            bytes: self.bytes,
            cluster: (self.cluster != 0).then_some(self.cluster),
        }
    }
}

/// The one-byte tag of probe cluster `id` in the history (never 0).
fn cluster_tag(id: u32) -> u8 {
    (id % 255 + 1) as u8
}

/// Arrivals of one probe cluster kept for its result (a cluster of 100 ms at 4 Mbit/s of
/// media and padding has fewer); later ones count in the totals only.
const PROBE_ARRIVALS: usize = 256;
/// A cluster's receive rate is measured on the bytes after this share of it arrived: a
/// token bucket on the path lets the first of them through at the line's rate, and the
/// rest come at the link's.
const PROBE_BURST_SHARE: f64 = 0.5;

/// A cluster received at less than this share of its send rate met the path's capacity.
const PROBE_LIMITED: f64 = 0.98;

/// What a probe cluster measured so far.
#[derive(Debug, Clone)]
struct Cluster {
    id: u32,
    sent: u32,
    /// The sender sent its last copy: a result waits for this.
    complete: bool,
    received: u32,
    /// Arrival time, send time and size of each copy reported received, in the order
    /// reported.
    arrivals: [Arrival; PROBE_ARRIVALS],
    recorded: usize,
}

/// One copy of a probe cluster that arrived.
#[derive(Debug, Clone, Copy, Default)]
struct Arrival {
    arrival_us: i64,
    sent_us: i64,
    bytes: u16,
}

impl Cluster {
    fn new(id: u32) -> Self {
        Self {
            id,
            sent: 0,
            complete: false,
            received: 0,
            arrivals: [Arrival::default(); PROBE_ARRIVALS],
            recorded: 0,
        }
    }

    fn on_received(&mut self, arrival: Arrival) {
        self.received += 1;
        if let Some(slot) = self.arrivals.get_mut(self.recorded) {
            *slot = arrival;
            self.recorded += 1;
        }
    }

    /// The rate the cluster measured, on the copies that arrived after its first
    /// [`PROBE_BURST_SHARE`]: the lower of their send and receive rates, and less when they
    /// were received slower than sent (the path's capacity). Sorts the arrivals.
    fn result(&mut self) -> Option<u64> {
        if self.received < PROBE_MIN_PACKETS
            || f64::from(self.received) < f64::from(self.sent) * PROBE_MIN_ARRIVED
        {
            return None;
        }
        let arrivals = self.arrivals.get_mut(..self.recorded).unwrap_or_default();
        arrivals.sort_unstable_by_key(|a| a.arrival_us);
        let total: u64 = arrivals.iter().map(|a| u64::from(a.bytes)).sum();
        let burst = (total as f64 * PROBE_BURST_SHARE) as u64;
        let mut seen = 0u64;
        let start = arrivals.iter().position(|a| {
            seen += u64::from(a.bytes);
            seen >= burst
        })?;
        let measured = arrivals.get(start..)?;
        let (first, rest) = measured.split_first()?;
        let last = rest.last()?;
        if measured.len() < PROBE_MIN_PACKETS as usize {
            return None;
        }
        // The bytes after the first arrival over the time to the last; the same copies'
        // bytes but the last sent over their send times' span.
        let receive_us = last.arrival_us - first.arrival_us;
        let first_sent = measured.iter().map(|a| a.sent_us).min()?;
        let last_sent = measured.iter().max_by_key(|a| a.sent_us)?;
        let send_us = last_sent.sent_us - first_sent;
        if receive_us <= 0 || send_us <= 0 {
            return None;
        }
        let measured_bytes: u64 = measured.iter().map(|a| u64::from(a.bytes)).sum();
        let receive_bps =
            (measured_bytes - u64::from(first.bytes)) as f64 * 8e6 / receive_us as f64;
        let send_bps = (measured_bytes - u64::from(last_sent.bytes)) as f64 * 8e6 / send_us as f64;
        // Received slower than sent: the path's capacity, less a margin (arrival times are
        // reported in steps of 250 us, which alone moves a 50 ms span by half a percent).
        let rate = if receive_bps < PROBE_LIMITED * send_bps {
            0.95 * receive_bps
        } else {
            send_bps.min(receive_bps)
        };
        Some(rate as u64)
    }
}

/// The estimate of what reaches one subscriber session.
#[derive(Debug, Clone)]
pub struct SendSideEstimator {
    origin: Option<Instant>,
    history: Box<[Record]>,
    groups: InterArrival,
    trendline: Trendline,
    acknowledged: IncomingRate,
    control: AimdRateControl,
    /// The loss-based limit, when loss made one.
    loss_limit_bps: Option<f64>,
    received_since: u32,
    lost_since: u32,
    last_loss_cut_us: Option<i64>,
    last_loss_update_us: Option<i64>,
    /// The last loss measured (0 to 1).
    loss: f64,
    /// The cluster being measured (one at a time).
    cluster: Option<Cluster>,
    next_cluster: u32,
    /// When the last feedback arrived (microseconds on Sluice's clock).
    last_feedback_us: Option<i64>,
    /// The acknowledged rate last measured.
    last_acknowledged_bps: Option<u64>,
    /// While a probe runs and for a second after it, the estimate does not fall below this:
    /// a probe overflows a narrow link's queue by design, and the overuse that follows says
    /// nothing about the rate the media had (microseconds on Sluice's clock, bits per second).
    probe_floor: Option<(i64, u64)>,
    /// The last probe result, and when it came (microseconds on Sluice's clock).
    probe_result: Option<(i64, u64)>,
    /// The highest acknowledged rate of the current window of [`ACKNOWLEDGED_WINDOW_US`]
    /// (its start and the rate) and of the one before.
    acknowledged_peak: (i64, u64),
    previous_acknowledged_peak: u64,
}

/// The acknowledged rate validates for two windows of this: a switch between layers leaves a
/// second with less acknowledged than the link carried just before.
const ACKNOWLEDGED_WINDOW_US: i64 = 2_500_000;

/// A probe result validates a rate for this long.
const PROBE_RESULT_VALID_US: i64 = 5_000_000;

impl SendSideEstimator {
    /// An estimator that starts at `start_bps`.
    pub fn new(start_bps: u64) -> Self {
        let mut control = AimdRateControl::new(MIN_BITRATE_BPS, MAX_BITRATE_BPS, 100_000);
        control.set_start(start_bps);
        Self {
            origin: None,
            history: vec![Record::default(); HISTORY].into_boxed_slice(),
            groups: InterArrival::default(),
            trendline: Trendline::default(),
            acknowledged: IncomingRate::default(),
            control,
            loss_limit_bps: None,
            received_since: 0,
            lost_since: 0,
            last_loss_cut_us: None,
            last_loss_update_us: None,
            loss: 0.0,
            cluster: None,
            next_cluster: 1,
            last_feedback_us: None,
            last_acknowledged_bps: None,
            probe_floor: None,
            probe_result: None,
            acknowledged_peak: (0, 0),
            previous_acknowledged_peak: 0,
        }
    }

    /// The estimate in bits per second.
    pub fn estimate(&self) -> u64 {
        let delay_based = self.control.bitrate().unwrap_or(MIN_BITRATE_BPS);
        match self.loss_limit_bps {
            Some(limit) => delay_based.min(limit as u64).max(MIN_BITRATE_BPS),
            None => delay_based,
        }
    }

    /// The delay signal at `now`: the last one, or `Normal` once no feedback came for a
    /// second (nothing was sent, so nothing overuses).
    pub fn usage(&mut self, now: Instant) -> BandwidthUsage {
        let now_us = self.micros(now);
        match self.last_feedback_us {
            Some(at) if now_us - at < STALE_FEEDBACK_US => self.trendline.usage(),
            _ => BandwidthUsage::Normal,
        }
    }

    /// The transport-wide loss last measured (0 to 1).
    pub fn loss(&self) -> f64 {
        self.loss
    }

    /// The transport-wide loss last measured, or 0 when that is over two seconds old (nothing
    /// was sent since, a paused subscriber).
    pub fn recent_loss(&mut self, now: Instant) -> f64 {
        let now_us = self.micros(now);
        match self.last_loss_update_us {
            Some(at) if now_us - at < 2 * STALE_FEEDBACK_US => self.loss,
            _ => 0.0,
        }
    }

    /// The rate the subscriber acknowledged receiving over the last second, last measured.
    pub fn acknowledged(&self) -> Option<u64> {
        self.last_acknowledged_bps
    }

    /// The highest rate the link has been seen to carry lately: the highest rate
    /// acknowledged (over a second) in the last 2.5 to 5 s, or the last probe's result in
    /// the last 5 s, whichever is higher (0 before either). The estimate may grow past it
    /// while the media sent leaves it untested; what goes beyond it is an up-switch that
    /// needs a probe first.
    pub fn validated(&mut self, now: Instant) -> u64 {
        let now_us = self.micros(now);
        let probed = match self.probe_result {
            Some((at, rate)) if now_us - at < PROBE_RESULT_VALID_US => rate,
            _ => 0,
        };
        let (start, peak) = self.acknowledged_peak;
        let acknowledged = match now_us - start {
            age if age < ACKNOWLEDGED_WINDOW_US => peak.max(self.previous_acknowledged_peak),
            age if age < 2 * ACKNOWLEDGED_WINDOW_US => peak,
            _ => 0,
        };
        acknowledged.max(probed)
    }

    /// Whether a probe cluster is being measured.
    pub fn probing(&self) -> bool {
        self.cluster.is_some()
    }

    /// Starts a probe cluster at `now`; the copies sent for it are recorded with its id.
    pub fn start_probe(&mut self, now: Instant) -> u32 {
        let now_us = self.micros(now);
        let floor = (self.estimate() as f64 * PROBE_FLOOR) as u64;
        self.probe_floor = Some((now_us + PROBE_GUARD_US, floor));
        let id = self.next_cluster;
        self.next_cluster = self.next_cluster.wrapping_add(1);
        self.cluster = Some(Cluster::new(id));
        id
    }

    /// The cluster's last copy was sent: its result comes once every copy was reported.
    pub fn probe_sent(&mut self) {
        if let Some(probe) = &mut self.cluster {
            probe.complete = true;
        }
        self.finish_probe();
    }

    /// Ends the cluster without a result (it never got its feedback).
    pub fn abandon_probe(&mut self) {
        self.cluster = None;
    }

    /// Records a copy sent at `now` with transport-wide sequence number `seq`, of `bytes`,
    /// part of probe cluster `cluster` if any.
    pub fn on_sent(&mut self, now: Instant, seq: u16, bytes: usize, cluster: Option<u32>) {
        let sent_us = self.micros(now);
        let bytes = u16::try_from(bytes).unwrap_or(u16::MAX);
        if let Some(slot) = self.history.get_mut(usize::from(seq) % HISTORY) {
            *slot = Record {
                sent_us: sent_us as u32,
                seq,
                bytes,
                cluster: cluster.map_or(0, cluster_tag),
                outcome: 1,
            };
        }
        if let Some(probe) = &mut self.cluster
            && cluster == Some(probe.id)
        {
            probe.sent += 1;
        }
    }

    /// One transport-wide feedback from the subscriber, arrived at `now`.
    pub fn on_feedback(&mut self, now: Instant, feedback: &TransportCc<'_>) {
        let now_us = self.micros(now);
        self.last_feedback_us = Some(now_us);
        // The receiver's clock: only differences between its arrival times matter.
        let mut arrival_us = i64::from(feedback.reference_time()) * REFERENCE_UNIT_US;
        for (seq, delta) in feedback.statuses() {
            if let Some(delta) = delta {
                arrival_us += i64::from(delta) * DELTA_TICK_US;
            }
            let Some(record) = self
                .history
                .get_mut(usize::from(seq) % HISTORY)
                .filter(|r| r.seq == seq)
            else {
                continue;
            };
            let Some(outcome) = record.outcome() else {
                continue;
            };
            // A probe may overflow a queue by design: its losses are its result's.
            let counted = record.cluster == 0;
            match (delta, outcome) {
                (_, Outcome::Received) | (None, Outcome::Lost) => {}
                (None, Outcome::Pending) => {
                    record.set_outcome(Outcome::Lost);
                    if counted {
                        self.lost_since += 1;
                    }
                }
                (Some(_), previous) => {
                    if previous == Outcome::Lost && counted {
                        self.lost_since = self.lost_since.saturating_sub(1);
                    }
                    record.set_outcome(Outcome::Received);
                    if counted {
                        self.received_since += 1;
                    }
                    let sent = record.sent(now_us);
                    self.on_received(sent, arrival_us);
                }
            }
        }
        self.update_loss(now_us);
        self.finish_probe();
    }

    fn on_received(&mut self, sent: Sent, arrival_us: i64) {
        let bytes = usize::from(sent.bytes);
        self.acknowledged.add(arrival_us, bytes);
        if let Some(probe) = &mut self.cluster
            && sent.cluster == Some(cluster_tag(probe.id))
        {
            probe.on_received(Arrival {
                arrival_us,
                sent_us: sent.sent_us,
                bytes: sent.bytes,
            });
        }
        // A cluster's delays are its result's too: it fills a narrow queue by design, and
        // the overuse its copies would signal would reject its result (or take back the
        // estimate it raised) for the queue it built itself.
        if sent.cluster.is_some() {
            return;
        }
        let Some(delta) = self.groups.packet(sent.sent_us, arrival_us, bytes) else {
            return;
        };
        let usage = self.trendline.update(
            delta.arrival_delta_us as f64 / 1000.0,
            delta.send_delta_us as f64 / 1000.0,
            delta.arrival_us as f64 / 1000.0,
        );
        let acknowledged = self.acknowledged.bitrate(arrival_us);
        if let Some(rate) = acknowledged {
            self.last_acknowledged_bps = acknowledged;
            // The peak windows run on the sender's clock, like `validated`'s reads.
            let (start, peak) = self.acknowledged_peak;
            let age = sent.sent_us - start;
            if age >= ACKNOWLEDGED_WINDOW_US {
                self.previous_acknowledged_peak = if age < 2 * ACKNOWLEDGED_WINDOW_US {
                    peak
                } else {
                    0
                };
                self.acknowledged_peak = (sent.sent_us, rate);
            } else {
                self.acknowledged_peak.1 = peak.max(rate);
            }
        }
        // The controller runs on the sender's clock, where its timers are.
        self.control.update(usage, acknowledged, sent.sent_us);
        if let Some((until, floor)) = self.probe_floor {
            if self.probing() || sent.sent_us < until {
                if self.control.bitrate().is_some_and(|b| b < floor) {
                    self.control.set_start(floor);
                }
            } else {
                self.probe_floor = None;
            }
        }
    }

    fn update_loss(&mut self, now_us: i64) {
        let outcomes = self.received_since + self.lost_since;
        let long_enough = self
            .last_loss_update_us
            .is_none_or(|at| now_us - at >= LOSS_SAMPLE_US);
        if outcomes < LOSS_SAMPLE_PACKETS || !long_enough {
            return;
        }
        let loss = f64::from(self.lost_since) / f64::from(outcomes);
        self.loss = loss;
        self.received_since = 0;
        self.lost_since = 0;
        let elapsed_us = self
            .last_loss_update_us
            .map_or(0, |at| (now_us - at).clamp(0, 1_000_000));
        self.last_loss_update_us = Some(now_us);
        if loss > HIGH_LOSS {
            let may_cut = self
                .last_loss_cut_us
                .is_none_or(|at| now_us - at >= LOSS_CUT_INTERVAL_US);
            if may_cut {
                let current = self.estimate() as f64;
                let mut limit = current * (1.0 - 0.5 * loss);
                // Losing a fifth or more, the link carries what arrives and no more: the
                // estimate goes there at once rather than by halves of the loss a second
                // (a full drop-tail queue's delay is flat, so the delay says nothing then).
                if loss >= OVERLOAD_LOSS
                    && let Some(acknowledged) = self.last_acknowledged_bps
                {
                    limit = limit.min(acknowledged as f64);
                }
                self.loss_limit_bps = Some(limit);
                self.last_loss_cut_us = Some(now_us);
            }
        } else if loss < LOW_LOSS
            && let Some(limit) = self.loss_limit_bps
        {
            let grown = limit * 1.08f64.powf(elapsed_us as f64 / 1e6);
            let delay_based = self.control.bitrate().unwrap_or(0) as f64;
            self.loss_limit_bps = (grown < delay_based).then_some(grown);
        }
    }

    /// Takes the cluster's result once every copy of it was reported.
    fn finish_probe(&mut self) {
        let Some(probe) = &self.cluster else {
            return;
        };
        let (tag, sent) = (cluster_tag(probe.id), probe.sent);
        if !probe.complete {
            return;
        }
        let reported = self
            .history
            .iter()
            .filter(|r| r.cluster == tag)
            .all(|r| r.outcome() != Some(Outcome::Pending));
        if sent == 0 || !reported {
            return;
        }
        let Some(rate) = self.cluster.take().and_then(|mut probe| probe.result()) else {
            return;
        };
        self.probe_result = self.last_feedback_us.map(|at| (at, rate));
        if rate > self.estimate() && self.trendline.usage() != BandwidthUsage::Overusing {
            self.control.set_start(rate);
            self.loss_limit_bps = self.loss_limit_bps.filter(|limit| *limit > rate as f64);
        }
    }

    fn micros(&mut self, now: Instant) -> i64 {
        let origin = *self.origin.get_or_insert(now);
        super::micros(now.saturating_duration_since(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster of `packets` copies of `bytes`, sent `send_gap_us` apart, received as a
    /// token bucket of `burst` bytes in front of a `link_bps` link delivers them.
    fn cluster_through_bucket(
        packets: u32,
        bytes: u16,
        send_gap_us: i64,
        burst: u64,
        link_bps: f64,
    ) -> Cluster {
        let mut cluster = Cluster::new(1);
        cluster.complete = true;
        let mut link_free_us = 0.0f64;
        let mut passed = 0u64;
        for i in 0..packets {
            let sent_us = i64::from(i) * send_gap_us;
            cluster.sent += 1;
            let arrival_us = if passed + u64::from(bytes) <= burst {
                // Tokens left: through at once.
                passed += u64::from(bytes);
                link_free_us = link_free_us.max(sent_us as f64);
                sent_us
            } else {
                let start = link_free_us.max(sent_us as f64);
                link_free_us = start + f64::from(bytes) * 8e6 / link_bps;
                link_free_us as i64
            };
            cluster.on_received(Arrival {
                arrival_us,
                sent_us,
                bytes,
            });
        }
        cluster
    }

    #[test]
    fn a_token_buckets_burst_does_not_count_as_the_links_rate() {
        // 100 ms at 1.2 Mbit/s into a 600 kbit/s link whose bucket passes 4 KB at once: the
        // whole cluster arrives at about 800 kbit/s, its second half at the link's rate.
        let mut cluster = cluster_through_bucket(50, 300, 2_000, 4_000, 600_000.0);
        let rate = cluster.result().expect("a result");
        assert!((540_000..=600_000).contains(&rate), "{rate}");
    }

    #[test]
    fn a_cluster_the_path_carried_measures_its_send_rate() {
        let mut cluster = cluster_through_bucket(50, 300, 2_000, 4_000, 10_000_000.0);
        let rate = cluster.result().expect("a result");
        assert!((1_150_000..=1_250_000).contains(&rate), "{rate}");
    }

    #[test]
    fn a_cluster_mostly_lost_has_no_result() {
        let mut cluster = cluster_through_bucket(50, 300, 2_000, 4_000, 10_000_000.0);
        cluster.sent = 100;
        assert_eq!(cluster.result(), None);
    }
}
