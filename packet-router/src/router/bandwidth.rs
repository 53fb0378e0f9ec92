//! Each subscriber session's downlink estimate and the layers it gets: transport-wide
//! feedback from the subscriber feeds its [`SendSideEstimator`], and the allocator
//! ([`crate::allocator`]) turns the estimate into a layer cap for each simulcast track it
//! receives.

use std::time::{Duration, Instant};

use rtc_core::rtcp::TransportCc;

use rtc_core::media_api::TrackPriority;

use super::{Location, Router};
use crate::allocator::{Allocation, MAX_TRACKS, TrackDemand, allocate};
use crate::bandwidth::SendSideEstimator;
use crate::config::MediaKind;
use crate::{RouterError, SessionId, SubscriptionId, TrackId};

/// Where a subscriber's estimate starts by default ([`super::RouterConfig::start_bitrate_bps`]).
pub const START_BITRATE_BPS: u64 = 1_000_000;
/// The allocation runs again when the estimate moved this much since it last ran...
const REALLOCATE_CHANGE: f64 = 0.15;
/// ...and at least this often.
const REALLOCATE_INTERVAL: Duration = Duration::from_secs(2);
/// A layer is chosen only after it has been active this long.
pub(super) const LAYER_SETTLED: Duration = Duration::from_secs(2);
/// After a down-switch the estimate forced, no up-switch for this long.
const UP_SWITCH_HOLD: Duration = Duration::from_secs(8);
/// The layer a subscription forwards counts for this share of its rate, the layers above it
/// for this share (percent): up- and down-switches need a margin.
const KEEP_PERCENT: u64 = 95;
const RAISE_PERCENT: u64 = 110;
/// Simulcast layers of one track the allocator looks at.
const MAX_LAYERS: usize = 4;
/// A probe cluster lasts this long, sent in steps of `PROBE_STEP`. Short, so that what it
/// sends above a narrow link's rate fits in the link's queue (at twice a 600 kbit/s link,
/// 7.5 KB, some of it passed at once by a token bucket) rather than overflowing it and
/// taking media packets with it; long enough that the rate after such a burst is measured.
const PROBE_DURATION: Duration = Duration::from_millis(100);
const PROBE_STEP: Duration = Duration::from_millis(5);
/// The padding is at least this share of a probe's rate, so that a cluster has packets
/// enough for a result whatever the media sent beside it.
const PROBE_MIN_PADDING_SHARE: f64 = 0.25;
/// A probe asks for this much more than the allocator wants, at most this many times the
/// estimate.
const PROBE_OVERSHOOT: f64 = 1.25;
const PROBE_MAX_FACTOR: f64 = 2.0;
/// The least time between two probes of a session (doubling after each probe up to the
/// longest, back to the least after an up-switch), and how long a probe waits for its
/// feedback before it is abandoned. The longest is what a link that opens again waits at
/// most for its first probe: a cluster is short enough to cost a narrow link little.
const PROBE_INTERVAL: Duration = Duration::from_secs(3);
const LONGEST_PROBE_INTERVAL: Duration = Duration::from_secs(8);
/// No probe for this long after the allocation changed a layer, nor with more loss than this.
const PROBE_AFTER_CHANGE: Duration = Duration::from_secs(3);
const PROBE_AFTER_CHANGE_VALIDATING: Duration = Duration::from_secs(1);
const PROBE_MAX_LOSS: f64 = 0.02;
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// A probe that raised the validated rate by this share or more is followed by the next at
/// once.
const PROBE_SUCCESS_GAIN: f64 = 0.1;
/// Padding bytes of one probe packet (RFC 3550 padding: at most 255).
const PROBE_PADDING: usize = 255;

/// One simulcast track of a session as its allocation sees it: subscription, client cap,
/// priority, rank forwarded now, paused now.
type Demand = (
    Option<SubscriptionId>,
    Option<usize>,
    u8,
    Option<usize>,
    bool,
);

/// The allocator's view of a session's tracks at `rates` (with the hysteresis or without).
fn demand_table<'a>(
    rates: &'a [[Option<u64>; MAX_LAYERS]; MAX_TRACKS],
    demands: &[Demand; MAX_TRACKS],
) -> [TrackDemand<'a>; MAX_TRACKS] {
    std::array::from_fn(|i| TrackDemand {
        layers: rates.get(i).map_or(&[][..], |r| &r[..]),
        max_rank: demands.get(i).and_then(|d| d.1),
        priority: demands.get(i).map_or(0, |d| d.2),
    })
}

/// The allocation state of one subscriber session.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SessionAllocation {
    /// The estimate the allocation last ran with, and when.
    last_run: Option<(Instant, u64)>,
    /// No up-switch before this (a down-switch happened)...
    hold_up_until: Option<Instant>,
    /// ...that takes the session above what it was allocated then, in bits per second of
    /// the layers' own rates (so that another track going up as one goes down, when the
    /// dominant speaker changes, is not held).
    held_bps: u64,
    /// The probe cluster being sent, if any.
    probe: Option<Probe>,
    /// When the last probe started.
    last_probe_at: Option<Instant>,
    /// The wait before the next probe (`None`: the least).
    probe_interval: Option<Duration>,
    /// When the allocation last changed a cap.
    last_change_at: Option<Instant>,
}

/// What a probe is sized from, in bits per second: the estimate, the budget the tracks
/// could go up within, what they want, what the session gets whatever the allocation, and
/// what it is sent now (its media counts in the probe: the padding makes up the rest).
#[derive(Debug, Clone, Copy)]
struct ProbeRates {
    estimate: u64,
    budget: u64,
    wanted: u64,
    fixed: u64,
    sending: u64,
    /// The probe would validate what the estimate allows already.
    validating: bool,
}

/// A probe cluster in progress: padding on an RTX stream, sent in steps. Every copy the
/// session is sent meanwhile, media too, belongs to the cluster, so that its result is the
/// rate of all it carried.
#[derive(Debug, Clone, Copy)]
struct Probe {
    cluster: u32,
    started: Instant,
    next_step: Instant,
    /// Bytes still to send, and bytes per step.
    bytes_left: usize,
    bytes_per_step: usize,
}

impl Router {
    /// Gives `subscriber` a send-side estimator, once (it negotiated transport-wide
    /// feedback).
    pub(super) fn ensure_estimator(&mut self, subscriber: SessionId) {
        let counter = self.routes_mut(subscriber).counter;
        let start = self.config.start_bitrate_bps;
        if let Some(sequence) = self.transport_cc_counters.get_mut(counter) {
            sequence
                .estimator
                .get_or_insert_with(|| Box::new(SendSideEstimator::new(start)));
        }
    }

    /// The estimate of what reaches `subscriber`, in bits per second, when it sends
    /// transport-wide feedback.
    pub fn send_estimate(&self, subscriber: SessionId) -> Option<u64> {
        self.estimator(subscriber).map(SendSideEstimator::estimate)
    }

    /// The send-side estimator of `session`, when it negotiated transport-wide feedback.
    pub(super) fn estimator(&self, session: SessionId) -> Option<&SendSideEstimator> {
        let counter = self.sessions.get(&session)?.counter;
        self.transport_cc_counters
            .get(counter)?
            .estimator
            .as_deref()
    }

    fn estimator_mut(&mut self, session: SessionId) -> Option<&mut SendSideEstimator> {
        let counter = self.sessions.get(&session)?.counter;
        self.transport_cc_counters
            .get_mut(counter)?
            .estimator
            .as_deref_mut()
    }

    /// A subscriber's transport-wide feedback: its estimate, and a new allocation when the
    /// estimate moved enough or the last one is old.
    pub(super) fn handle_transport_feedback(
        &mut self,
        now: Instant,
        from: SessionId,
        feedback: &TransportCc<'_>,
    ) {
        let Some(estimator) = self.estimator_mut(from) else {
            return;
        };
        let (was_probing, before) = (estimator.probing(), estimator.validated(now));
        estimator.on_feedback(now, feedback);
        let loss = estimator.recent_loss(now);
        let estimate = estimator.estimate();
        // A probe that raised the validated rate clearly: the layers may go up now, and the
        // link may carry more still, so the next probe may follow at once.
        let probe_finished = was_probing && !estimator.probing();
        let probe_succeeded = probe_finished
            && estimator.validated(now) as f64 >= before as f64 * (1.0 + PROBE_SUCCESS_GAIN);
        self.update_audio_red(now, from, loss);
        self.stats.transport_feedback_received += 1;
        if probe_succeeded && let Some(routes) = self.sessions.get_mut(&from) {
            let allocation = &mut routes.allocation;
            allocation.probe = None;
            allocation.last_probe_at = None;
            allocation.probe_interval = None;
        }
        let last_run = self.sessions.get(&from).and_then(|r| r.allocation.last_run);
        let due = probe_finished
            || match last_run {
                None => true,
                Some((at, last)) => {
                    let change = (estimate as f64 - last as f64).abs() / (last.max(1) as f64);
                    change >= REALLOCATE_CHANGE
                        || now.saturating_duration_since(at) >= REALLOCATE_INTERVAL
                }
            };
        if due {
            self.allocate_layers(now, from, estimate);
        }
    }

    /// Sets `track`'s priority in the allocation of every subscriber it has (signaling's
    /// choice: screen share, dominant speaker, recent speakers); their allocations run again
    /// at once.
    pub fn set_track_priority(
        &mut self,
        now: Instant,
        track: TrackId,
        priority: TrackPriority,
    ) -> Result<(), RouterError> {
        let entry = self
            .tracks
            .get_mut(&track)
            .ok_or(RouterError::UnknownTrack)?;
        if entry.priority == priority {
            return Ok(());
        }
        entry.priority = priority;
        const MAX_PER_CALL: usize = 256;
        let mut subscribers = [None; MAX_PER_CALL];
        for (slot, subscription) in subscribers.iter_mut().zip(&entry.subscriptions) {
            *slot = Some(subscription.subscriber);
        }
        for subscriber in subscribers.into_iter().flatten() {
            self.reallocate(now, subscriber);
        }
        Ok(())
    }

    /// Runs `subscriber`'s allocation now with its current estimate (what it wants changed),
    /// when it has one.
    pub(super) fn reallocate(&mut self, now: Instant, subscriber: SessionId) {
        if let Some(estimate) = self.send_estimate(subscriber) {
            self.allocate_layers(now, subscriber, estimate);
        }
    }

    /// Runs the allocation of every session with an estimate whose last run is old, or that
    /// never had one while a new track waits at its lowest layer (a paused session gets no
    /// feedback: this is how its probes start; a session whose feedback never comes is
    /// allocated on the start estimate). Called once a second.
    pub(super) fn reallocate_stale(&mut self, now: Instant) {
        const MAX_PER_CALL: usize = 256;
        let mut stale = [None; MAX_PER_CALL];
        let mut count = 0;
        for (&session, routes) in &self.sessions {
            let old = match routes.allocation.last_run {
                Some((at, _)) => now.saturating_duration_since(at) >= REALLOCATE_INTERVAL,
                // Never run (no feedback came yet): due when a track waits at its lowest
                // layer for the allocation; the start estimate decides.
                None => routes.subscriptions.iter().any(|id| {
                    self.subscription(*id)
                        .is_some_and(|s| s.choice.allocated_rank.is_some())
                }),
            };
            let estimate = self.send_estimate(session);
            if old
                && let Some(estimate) = estimate
                && let Some(slot) = stale.get_mut(count)
            {
                *slot = Some((session, estimate));
                count += 1;
            }
        }
        for (session, estimate) in stale.into_iter().flatten() {
            self.allocate_layers(now, session, estimate);
        }
    }

    /// Chooses the layer of each simulcast track `subscriber` receives within `estimate`.
    fn allocate_layers(&mut self, now: Instant, subscriber: SessionId, estimate: u64) {
        let now_us = self.micros_since_epoch(now);
        let Some(routes) = self.sessions.get_mut(&subscriber) else {
            return;
        };
        let mut layer_rates = [[None; MAX_LAYERS]; MAX_TRACKS];
        // The same without the hysteresis.
        let mut raw_rates = [[None; MAX_LAYERS]; MAX_TRACKS];
        let mut demands: [Demand; MAX_TRACKS] = [(None, None, 0, None, false); MAX_TRACKS];
        let mut count = 0;
        // What the session gets whatever the allocation: audio, and video in one layer.
        let mut fixed_bps = 0u64;
        let mut wanted_bps = 0u64;
        for &id in &routes.subscriptions {
            let Some(&Location::Attached(track_id)) = self.locations.get(&id) else {
                continue;
            };
            let Some(track) = self.tracks.get_mut(&track_id) else {
                continue;
            };
            let Some(subscription) = track.subscriptions.iter().find(|s| s.id == id) else {
                continue;
            };
            if track.stream.kind == MediaKind::Audio || !subscription.simulcast {
                // Audio, and a video track in one layer: nothing to choose, and what it
                // forwards comes off the budget before the layers are chosen.
                fixed_bps += track
                    .layers
                    .first_mut()
                    .and_then(|l| l.settled_bitrate(now, now_us, Duration::ZERO))
                    .unwrap_or(0);
                continue;
            }
            if !subscription.choice.view.visible {
                // Hidden: nothing forwarded, nothing allocated.
                continue;
            }
            let (Some(rates), Some(demand)) = (layer_rates.get_mut(count), demands.get_mut(count))
            else {
                break;
            };
            let max_rank = subscription.choice.client_cap(&track.layers, &track.order);
            let priority = if subscription.choice.view.pinned {
                track.priority.max(TrackPriority::PINNED)
            } else {
                track.priority
            };
            for (rank, &index) in track.order.iter().enumerate().take(MAX_LAYERS) {
                if let (Some(rate), Some(layer)) =
                    (rates.get_mut(rank), track.layers.get_mut(index))
                {
                    *rate = layer.settled_bitrate(now, now_us, LAYER_SETTLED);
                }
            }
            if let Some(raw) = raw_rates.get_mut(count) {
                *raw = *rates;
            }
            if rates.iter().all(Option::is_none) {
                // No layer active long enough to be chosen: leave the track as it is.
                continue;
            }
            let current_rank = track
                .order
                .iter()
                .position(|&index| index == subscription.layer);
            // Hysteresis: the layer forwarded counts for less than it takes and the layers
            // above it for more, so that an estimate moving around a layer's rate does not
            // switch back and forth.
            if let Some(current) = current_rank {
                for (rank, rate) in rates.iter_mut().enumerate() {
                    *rate = rate.map(|bps| match rank.cmp(&current) {
                        std::cmp::Ordering::Equal => bps * KEEP_PERCENT / 100,
                        std::cmp::Ordering::Greater => bps * RAISE_PERCENT / 100,
                        std::cmp::Ordering::Less => bps,
                    });
                }
            }
            let top = max_rank.map_or(MAX_LAYERS, |cap| (cap + 1).min(MAX_LAYERS));
            wanted_bps += rates.iter().take(top).flatten().copied().max().unwrap_or(0);
            *demand = (
                Some(id),
                max_rank,
                priority.0,
                current_rank,
                subscription.choice.paused,
            );
            count += 1;
        }
        let budget = estimate.saturating_sub(fixed_bps);
        let tracks = demand_table(&layer_rates, &demands);
        let mut chosen = [Allocation::Paused; MAX_TRACKS];
        let used = allocate(
            budget,
            tracks.get(..count).unwrap_or_default(),
            chosen.get_mut(..count).unwrap_or_default(),
        );
        // A paused track resumes only when it would fit with a fifth of the budget to spare.
        let mut with_margin = [Allocation::Paused; MAX_TRACKS];
        allocate(
            budget / 5 * 4,
            tracks.get(..count).unwrap_or_default(),
            with_margin.get_mut(..count).unwrap_or_default(),
        );
        // The layers stay within what the link has been seen to carry: the estimate grows
        // past that while the layers forwarded leave it untested, and a layer that does not
        // fit would overflow the queue into a stall. An up-switch beyond it asks a probe
        // first; a layer kept beyond it goes down (below, per track).
        let validated = self
            .transport_cc_counters
            .get_mut(routes.counter)
            .and_then(|s| s.estimator.as_mut())
            .map_or(estimate, |e| e.validated(now));
        // Against the layers' own rates (the hysteresis is for the estimate's swings), with a
        // tenth to spare: tracks trading layers within what was carried need no probe.
        let validated_budget = estimate
            .min(validated + validated / 10)
            .saturating_sub(fixed_bps);
        let raw_tracks = demand_table(&raw_rates, &demands);
        let mut within_validated = [Allocation::Paused; MAX_TRACKS];
        let validated_used = allocate(
            validated_budget,
            raw_tracks.get(..count).unwrap_or_default(),
            within_validated.get_mut(..count).unwrap_or_default(),
        );
        let mut unvalidated = false;
        // What the choice takes at the layers' own rates.
        let raw_used: u64 = chosen
            .iter()
            .zip(&raw_rates)
            .take(count)
            .filter_map(|(allocation, rates)| match allocation {
                Allocation::Layer(rank) => rates.get(*rank).copied().flatten(),
                Allocation::Paused => None,
            })
            .sum();
        let holding = routes
            .allocation
            .hold_up_until
            .is_some_and(|until| now < until)
            && raw_used > routes.allocation.held_bps;
        // The estimate fell: the link is congested now.
        let congested = routes
            .allocation
            .last_run
            .is_some_and(|(_, last)| (estimate as f64) < last as f64 * (1.0 - REALLOCATE_CHANGE));
        let mut down_switch = false;
        let mut up_switch = false;
        let mut changed = false;
        for (((demand, allocation), margin), within) in demands
            .iter()
            .zip(chosen)
            .zip(with_margin)
            .zip(within_validated)
            .take(count)
        {
            let (Some(id), _, _, current_rank, paused) = *demand else {
                continue;
            };
            let resume = matches!(margin, Allocation::Layer(_));
            let mut rank = match allocation {
                Allocation::Layer(rank) if !paused || resume => Some(rank),
                _ => None,
            };
            let validated_rank = match within {
                Allocation::Layer(rank) => Some(rank),
                Allocation::Paused => None,
            };
            if rank.is_some() && validated_rank < rank {
                // Beyond what was validated, ups and keeps alike go only as far as that: an
                // up-switch asks a probe for the rest, and a layer kept on an estimate that
                // grew untested would share the link with another's up-switch (the dominant
                // speaker changing) and overflow it. A track that flows keeps at least its
                // lowest layer (the estimate has it fit).
                unvalidated |= rank > current_rank.filter(|_| !paused);
                rank = if paused {
                    validated_rank
                } else {
                    validated_rank.max(Some(0))
                };
            }
            let up = match (rank, current_rank) {
                (Some(rank), Some(current)) => rank > current,
                (Some(_), None) => paused,
                (None, _) => false,
            };
            if up && holding {
                continue;
            }
            up_switch |= up;
            down_switch |= match (rank, current_rank) {
                (Some(rank), Some(current)) => rank < current,
                (None, _) => !paused,
                (Some(_), None) => false,
            };
            let Some(&Location::Attached(track_id)) = self.locations.get(&id) else {
                continue;
            };
            let top = self
                .tracks
                .get(&track_id)
                .map_or(0, |t| t.order.len().saturating_sub(1));
            if let Some(track) = self.tracks.get_mut(&track_id)
                && let Some(subscription) = track.subscriptions.iter_mut().find(|s| s.id == id)
            {
                let Some(rank) = rank else {
                    if !subscription.choice.paused {
                        subscription.choice.paused = true;
                        self.stats.allocation_changes += 1;
                        self.stats.subscriptions_paused += 1;
                        changed = true;
                    }
                    continue;
                };
                let resumed = std::mem::take(&mut subscription.choice.paused);
                // Going down on a congested link, the layer too big for it stops at once
                // rather than at the lower layer's keyframe: its packets would keep the queue
                // full and lossy, and that keyframe would come through it damaged (a stall of
                // seconds, against one keyframe's wait).
                if congested
                    && current_rank.is_some_and(|current| rank < current)
                    && subscription.layer != crate::simulcast::NO_LAYER
                {
                    subscription.layer = crate::simulcast::NO_LAYER;
                    subscription.choice.reset_target();
                }
                // The top layer needs no cap: a layer that appears above it is taken too.
                let cap = (rank < top).then_some(rank);
                if subscription
                    .choice
                    .set_allocated_rank(cap, &track.layers, &track.order)
                    || resumed
                {
                    self.stats.allocation_changes += 1;
                    changed = true;
                }
            }
        }
        if let Some(routes) = self.sessions.get_mut(&subscriber) {
            // A down-switch because the estimate fell holds up-switches back for a while;
            // one because a layer turned out bigger than the estimate does not.
            let estimate_fell = congested;
            routes.allocation.last_run = Some((now, estimate));
            if up_switch {
                routes.allocation.probe_interval = None;
            }
            if changed {
                routes.allocation.last_change_at = Some(now);
            }
            if down_switch && estimate_fell {
                routes.allocation.hold_up_until = Some(now + UP_SWITCH_HOLD);
                routes.allocation.held_bps = raw_used;
            }
        }
        let paused = demands
            .iter()
            .take(count)
            .filter_map(|d| d.0)
            .filter(|id| self.subscription(*id).is_some_and(|s| s.choice.paused))
            .count();
        let estimator = self.estimator(subscriber);
        let loss = estimator.map_or(0.0, |e| e.loss());
        let acknowledged = estimator.and_then(|e| e.acknowledged()).unwrap_or(0);
        self.events.push(crate::RouterEvent::Allocated {
            subscriber,
            estimate,
            acknowledged,
            allocated: used,
            wanted: wanted_bps,
            loss_per_mille: (loss * 1000.0) as u16,
            paused: u16::try_from(paused).unwrap_or(u16::MAX),
        });
        // Held back by validation, a probe is due for what the up-switch needs.
        let rates = ProbeRates {
            estimate,
            budget: if unvalidated {
                validated_budget
            } else {
                budget
            },
            wanted: wanted_bps,
            fixed: fixed_bps,
            sending: if unvalidated { validated_used } else { used } + fixed_bps,
            validating: unvalidated,
        };
        self.consider_probe(now, subscriber, rates);
    }

    /// Starts a probe cluster when the tracks want more than the estimate allows, the delay
    /// is steady and the last probe is a while ago.
    fn consider_probe(&mut self, now: Instant, subscriber: SessionId, rates: ProbeRates) {
        let ProbeRates {
            estimate,
            budget,
            wanted,
            fixed,
            sending,
            validating,
        } = rates;
        let Some(routes) = self.sessions.get_mut(&subscriber) else {
            return;
        };
        let allocation = &mut routes.allocation;
        let interval = allocation.probe_interval.unwrap_or(PROBE_INTERVAL);
        let recent = allocation
            .last_probe_at
            .is_some_and(|at| now.saturating_duration_since(at) < interval);
        let holding = allocation.hold_up_until.is_some_and(|until| now < until);
        // Not right after the layers changed: the new layer's keyframe is on its way (less
        // long when the probe is what an up-switch the estimate allows waits for).
        let after_change = if validating {
            PROBE_AFTER_CHANGE_VALIDATING
        } else {
            PROBE_AFTER_CHANGE
        };
        let settling = allocation
            .last_change_at
            .is_some_and(|at| now.saturating_duration_since(at) < after_change);
        if wanted <= budget || allocation.probe.is_some() || recent || holding || settling {
            return;
        }
        let Some(estimator) = self
            .transport_cc_counters
            .get_mut(routes.counter)
            .and_then(|s| s.estimator.as_mut())
        else {
            return;
        };
        // Not while the delay grows or the link loses packets.
        if estimator.usage(now) != crate::bandwidth::BandwidthUsage::Normal
            || estimator.probing()
            || estimator.recent_loss(now) > PROBE_MAX_LOSS
        {
            return;
        }
        // What the tracks want with what the session gets anyway, and a margin.
        let target =
            ((wanted + fixed) as f64 * PROBE_OVERSHOOT).min(estimate as f64 * PROBE_MAX_FACTOR);
        let steps = (PROBE_DURATION.as_micros() / PROBE_STEP.as_micros()).max(1) as usize;
        let padding = (target - sending as f64).max(target * PROBE_MIN_PADDING_SHARE);
        let bytes = (padding * PROBE_DURATION.as_secs_f64() / 8.0) as usize;
        let cluster = estimator.start_probe(now);
        allocation.last_probe_at = Some(now);
        allocation.probe_interval = Some((interval * 2).min(LONGEST_PROBE_INTERVAL));
        allocation.probe = Some(Probe {
            cluster,
            started: now,
            next_step: now,
            bytes_left: bytes,
            bytes_per_step: bytes.div_ceil(steps),
        });
        self.stats.probes_started += 1;
        self.probe_deadline = Some(self.probe_deadline.map_or(now, |at| at.min(now)));
    }

    /// Sends the probe steps that are due; the next one's time.
    pub(super) fn send_probes(&mut self, now: Instant, out: &mut crate::TransmitQueue) {
        let send_time = self.send_time(now);
        let mut next: Option<Instant> = None;
        for routes in self.sessions.values_mut() {
            let Some(mut probe) = routes.allocation.probe else {
                continue;
            };
            let Some(sequence) = self.transport_cc_counters.get_mut(routes.counter) else {
                continue;
            };
            if probe.bytes_left == 0 {
                // Sent: wait for the feedback, then give up on it. What the session is sent
                // from now on is no longer part of the cluster.
                sequence.cluster = None;
                let done = sequence.estimator.as_ref().is_none_or(|e| !e.probing());
                if done || now.saturating_duration_since(probe.started) >= PROBE_TIMEOUT {
                    if let Some(estimator) = sequence.estimator.as_mut()
                        && !done
                    {
                        estimator.abandon_probe();
                    }
                    routes.allocation.probe = None;
                } else {
                    let check = probe.started + PROBE_TIMEOUT;
                    next = Some(next.map_or(check, |at| at.min(check)));
                }
                continue;
            }
            if probe.next_step > now {
                next = Some(next.map_or(probe.next_step, |at| at.min(probe.next_step)));
                continue;
            }
            // The padding goes on the RTX stream of the session's first video subscription
            // that has one.
            let padder = routes.subscriptions.iter().find_map(|id| {
                let Some(&Location::Attached(track_id)) = self.locations.get(id) else {
                    return None;
                };
                let track = self.tracks.get(&track_id)?;
                if track.stream.kind != MediaKind::Video {
                    return None;
                }
                track
                    .subscriptions
                    .iter()
                    .find(|s| s.id == *id && s.rtx_ssrc.is_some())
                    .map(|s| (track_id, s.id))
            });
            let Some((track_id, subscription_id)) = padder else {
                // Nothing to pad with: no probe.
                sequence.cluster = None;
                if let Some(estimator) = sequence.estimator.as_mut() {
                    estimator.abandon_probe();
                }
                routes.allocation.probe = None;
                continue;
            };
            sequence.cluster = Some(probe.cluster);
            let mut step_bytes = 0;
            if let Some(subscription) = self
                .tracks
                .get_mut(&track_id)
                .and_then(|t| t.subscription_mut(subscription_id))
            {
                while step_bytes < probe.bytes_per_step.min(probe.bytes_left) {
                    let Some(len) =
                        subscription.write_padding(now, send_time, PROBE_PADDING, sequence, out)
                    else {
                        break;
                    };
                    step_bytes += len;
                    self.stats.probe_packets_sent += 1;
                }
            }
            probe.bytes_left = probe.bytes_left.saturating_sub(step_bytes.max(1));
            if probe.bytes_left == 0 {
                sequence.cluster = None;
                if let Some(estimator) = sequence.estimator.as_mut() {
                    estimator.probe_sent();
                }
            }
            probe.next_step = now + PROBE_STEP;
            routes.allocation.probe = Some(probe);
            next = Some(next.map_or(probe.next_step, |at| at.min(probe.next_step)));
        }
        self.probe_deadline = next;
    }

    /// Microseconds since the router's epoch (its first packet).
    pub(super) fn micros_since_epoch(&mut self, now: Instant) -> i64 {
        let epoch = *self.epoch.get_or_insert(now);
        crate::bandwidth::micros(now.saturating_duration_since(epoch))
    }
}
