//! The packet router's facade and dispatch: [`Router`] owns the tracks, the subscriptions and
//! the per-session state, finds what each input concerns and hands it to the part that
//! handles it, between the SRTP unprotect of a publisher's packet and the SRTP protect of
//! each subscriber's copy.
//!
//! For each RTP packet of a publisher the router parses it once, finds the track by
//! (session, SSRC) and the layer through the track's layers (`track.rs`, `layer.rs`),
//! repairs RTX into the original packet in place, records it for loss detection and
//! retransmission, and has the copy writers (`copy_writer.rs`) write one rewritten copy per
//! subscription (`subscription.rs`) into the [`TransmitQueue`]. RTCP from subscribers is
//! answered too (`router/feedback.rs`): NACKs from the layer's retransmission cache (on RTX
//! when negotiated) within each subscriber's retransmission budget, PLI and FIR throttled to
//! the publisher. Periodic reports (sender reports to subscribers that match the rewritten
//! timestamps, receiver reports and NACKs to publishers) are produced on
//! [`Router::handle_timeout`] (`router/timers.rs`); what the router did or saw is told by
//! [`Router::poll_event`].
//!
//! Subscriptions outlive the tracks they receive: when a publisher leaves, its subscriptions
//! are detached, and attaching them to the track that replaces it keeps each subscriber's
//! stream continuous.

use std::time::{Duration, Instant};

use rtc_core::Ssrc;
use rtc_core::rtp::RtpPacket;

use crate::IdHashMap;
use crate::bandwidth::ReceiveSideEstimator;
use crate::config::{MediaKind, PublishedStream, SubscribedStream};
use crate::copy_writer::{AbsSendTime, FanOut, HeaderTemplate};
use crate::event::{EventQueue, RouterEvent};
use crate::keyframe_throttle::DEFAULT_KEYFRAME_REQUEST_INTERVAL;
use crate::layer::StreamRole;
use crate::loss_tracker::{LossTrackerConfig, PacketArrival};
use crate::publisher_remb::PublisherRemb;
use crate::retransmit_budget::{RetransmitBudget, RetransmitBudgetConfig};
use crate::rewrite::SourcePacket;
use crate::subscription::Subscription;
use crate::track::Track;
use crate::transmit::{TransmitKind, TransmitQueue};
use crate::transport_feedback::TransportFeedback;
use crate::transport_sequence::TransportSequence;
use crate::{RouterError, RouterStats, SessionId, SubscriptionId, TrackId};

mod audio_red;
mod bandwidth;
mod feedback;
mod simulcast;
mod timers;

pub use simulcast::MAX_FAILED_BINDINGS;

use feedback::queue_pli;

/// Tuning of the router.
#[derive(Debug, Clone, Copy)]
pub struct RouterConfig {
    /// Minimum time between keyframe requests to one publisher layer.
    pub keyframe_request_interval: Duration,
    /// NACK generation towards publishers.
    pub loss: LossTrackerConfig,
    /// Interval of sender and receiver reports.
    pub report_interval: Duration,
    /// The SSRC Sluice uses as the sender of its feedback to publishers.
    pub feedback_ssrc: Ssrc,
    /// What each subscriber session's NACKs may have resent.
    pub retransmit_budget: RetransmitBudgetConfig,
    /// A layer that received no packet for this long is reported inactive
    /// ([`RouterEvent::LayerInactive`]); checked on the track's report slot, so noticed
    /// within one report interval after that.
    pub layer_timeout: Duration,
    /// Where the router's track and subscription ids are minted: its node and worker, which
    /// every id carries (see [`rtc_core::IdSpace`]).
    pub ids: rtc_core::IdSpace,
    /// When subscribers that negotiated redundant audio get it.
    pub audio_red: crate::AudioRedMode,
    /// Where a subscriber's downlink estimate starts, before its feedback says more.
    pub start_bitrate_bps: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            keyframe_request_interval: DEFAULT_KEYFRAME_REQUEST_INTERVAL,
            loss: LossTrackerConfig::default(),
            report_interval: Duration::from_secs(1),
            feedback_ssrc: Ssrc(1),
            retransmit_budget: RetransmitBudgetConfig::default(),
            layer_timeout: Duration::from_secs(2),
            ids: rtc_core::IdSpace::default(),
            audio_red: crate::AudioRedMode::default(),
            start_bitrate_bps: bandwidth::START_BITRATE_BPS,
        }
    }
}

/// An audio packet is voiced when its RFC 6464 level is at most this (in -dBov: 0 is the
/// loudest, 127 silence), i.e. louder than -50 dBov.
pub const VOICED_LEVEL: u8 = 50;

/// Why a packet was not routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteDrop {
    /// Not a valid RTP packet.
    Malformed,
    /// No track of this session has this SSRC.
    UnknownSsrc,
    /// The payload type is not one negotiated for the track.
    UnknownPayloadType,
    /// An RTX packet without an original sequence number (a padding-only probe).
    EmptyRetransmission,
    /// Larger than the router's packet buffers.
    TooLarge,
}

/// The report interval is cut into this many slots and each track reports in one of them, so
/// that a worker with thousands of subscriptions sends a twentieth of its reports every 50 ms
/// instead of all of them at once (which stalled forwarding for milliseconds every second).
const REPORT_SLOTS: u8 = 20;

#[derive(Debug)]
struct SessionRoutes {
    tracks: Vec<TrackId>,
    subscriptions: Vec<SubscriptionId>,
    /// Index of the session's transport-wide sequence number in
    /// [`Router::transport_cc_counters`].
    counter: usize,
    /// Packets of unknown SSRCs that bound no rid layer (see [`MAX_FAILED_BINDINGS`]).
    failed_bindings: u32,
    /// The layer allocation of a subscriber session.
    allocation: bandwidth::SessionAllocation,
    /// Whether the session's audio subscriptions get redundancy.
    audio_red: crate::audio_red::AudioRedSwitch,
}

/// Where a subscription lives: in a track's list, or detached (its track is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Attached(TrackId),
    Detached,
}

/// The router of one media worker. Sans-IO: time is an argument, output goes to a
/// [`TransmitQueue`] and events wait for [`Router::poll_event`].
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    next_id: u64,
    tracks: IdHashMap<TrackId, Track>,
    /// Every SSRC of every layer of a session's tracks; the layer is found in the track.
    track_by_ssrc: IdHashMap<(SessionId, Ssrc), TrackId>,
    subscription_by_ssrc: IdHashMap<(SessionId, Ssrc), SubscriptionId>,
    locations: IdHashMap<SubscriptionId, Location>,
    detached: IdHashMap<SubscriptionId, Subscription>,
    sessions: IdHashMap<SessionId, SessionRoutes>,
    /// Each session's transport-wide sequence number (shared by all its subscriptions), by
    /// [`SessionRoutes::counter`]: a subscription indexes it directly, so a copy costs no
    /// lookup of its session.
    transport_cc_counters: Vec<TransportSequence>,
    /// Slots of `transport_cc_counters` whose session is gone, reused first.
    free_counters: Vec<usize>,
    /// Each subscriber session's retransmission budget, by the same slot as its
    /// transport-wide counter.
    retransmit_budgets: Vec<RetransmitBudget>,
    /// No later than the earliest NACK deadline of any track, so that
    /// [`Router::poll_timeout`] need not look at every track. It may be early (a gap that
    /// was repaired by reordering); [`Router::handle_timeout`] then makes it exact again.
    nack_deadline: Option<Instant>,
    /// When the next report slot is due, and which slot that is.
    next_report: Option<Instant>,
    report_slot: u8,
    /// The slot the next new track reports in (tracks are dealt round the slots).
    next_track_slot: u8,
    /// Transport-wide feedback to each publisher session that negotiated it.
    transport_feedback: IdHashMap<SessionId, TransportFeedback>,
    /// What publishers are told with REMB on their video tracks' report slots: their caps
    /// and, without transport-wide feedback, Sluice's receive-side estimate.
    publisher_remb: IdHashMap<SessionId, PublisherRemb>,
    /// No later than the earliest prompt REMB due (an estimate that fell); may be early.
    remb_deadline: Option<Instant>,
    /// When the next step of a probe cluster is due.
    probe_deadline: Option<Instant>,
    /// No later than the earliest feedback due; like `nack_deadline`, it may be early.
    feedback_deadline: Option<Instant>,
    nack_scratch: Vec<rtc_core::SeqNo>,
    nack_wire_scratch: Vec<u16>,
    header_template: HeaderTemplate,
    /// When the first packet was routed: the origin of the abs-send-time Sluice writes.
    epoch: Option<Instant>,
    events: EventQueue,
    stats: RouterStats,
}

impl Router {
    /// An empty router.
    pub fn new(config: RouterConfig) -> Self {
        Router {
            config,
            next_id: 1,
            tracks: IdHashMap::default(),
            track_by_ssrc: IdHashMap::default(),
            subscription_by_ssrc: IdHashMap::default(),
            locations: IdHashMap::default(),
            detached: IdHashMap::default(),
            sessions: IdHashMap::default(),
            transport_cc_counters: Vec::new(),
            free_counters: Vec::new(),
            retransmit_budgets: Vec::new(),
            nack_deadline: None,
            next_report: None,
            report_slot: 0,
            next_track_slot: 0,
            transport_feedback: IdHashMap::default(),
            publisher_remb: IdHashMap::default(),
            remb_deadline: None,
            probe_deadline: None,
            feedback_deadline: None,
            nack_scratch: Vec::with_capacity(64),
            nack_wire_scratch: Vec::with_capacity(64),
            header_template: HeaderTemplate::default(),
            epoch: None,
            events: EventQueue::default(),
            stats: RouterStats::default(),
        }
    }

    /// Counters of what the router did.
    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// The next thing the router did or saw, oldest first. Events wait in a ring of
    /// [`crate::event::EVENT_CAPACITY`]; when it is full, new ones are dropped and counted in
    /// [`RouterStats::events_dropped`].
    pub fn poll_event(&mut self) -> Option<RouterEvent> {
        self.events.pop()
    }

    /// Brings [`RouterStats::events_dropped`] up to date after an input that may have
    /// produced events.
    fn count_dropped_events(&mut self) {
        self.stats.events_dropped = self.events.dropped();
    }

    /// The routes of `session`, created with a transport-wide counter slot on first use.
    fn routes_mut(&mut self, session: SessionId) -> &mut SessionRoutes {
        let counters = &mut self.transport_cc_counters;
        let free = &mut self.free_counters;
        let budgets = &mut self.retransmit_budgets;
        let budget = RetransmitBudget::new(&self.config.retransmit_budget);
        self.sessions.entry(session).or_insert_with(|| {
            let counter = free.pop().unwrap_or_else(|| {
                counters.push(TransportSequence::default());
                counters.len() - 1
            });
            if let Some(sequence) = counters.get_mut(counter) {
                sequence.reset();
            }
            budgets.resize(counters.len(), budget);
            if let Some(slot) = budgets.get_mut(counter) {
                *slot = budget;
            }
            SessionRoutes {
                tracks: Vec::new(),
                subscriptions: Vec::new(),
                counter,
                failed_bindings: 0,
                allocation: bandwidth::SessionAllocation::default(),
                audio_red: crate::audio_red::AudioRedSwitch::default(),
            }
        })
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Adds a stream that `publisher` sends. Returns the new track.
    pub fn add_published_stream(
        &mut self,
        now: Instant,
        publisher: SessionId,
        stream: PublishedStream,
    ) -> Result<TrackId, RouterError> {
        let track = Track::new(publisher, stream, &self.config, self.next_track_slot)?;
        if track
            .ssrcs()
            .any(|ssrc| self.track_by_ssrc.contains_key(&(publisher, ssrc)))
        {
            return Err(RouterError::SsrcInUse);
        }
        if let Some(extension_id) = track.stream.extensions.transport_cc {
            // One per session: the sequence number counts the whole transport.
            let media_ssrc = track.stream.ssrc;
            self.transport_feedback
                .entry(publisher)
                .or_insert_with(|| TransportFeedback::new(extension_id, media_ssrc))
                .adopt_media_ssrc(media_ssrc);
            // Its estimator is the publisher's own: no estimate from Sluice.
            if let Some(remb) = self.publisher_remb.get_mut(&publisher) {
                remb.estimator = None;
            }
        } else if let Some(extension_id) = track.stream.extensions.abs_send_time
            && track.stream.kind == MediaKind::Video
            && !self.transport_feedback.contains_key(&publisher)
        {
            // A publisher without transport-wide feedback learns what gets through from
            // Sluice's receive-side estimate, told with REMB.
            self.publisher_remb
                .entry(publisher)
                .or_default()
                .estimator
                .get_or_insert_with(|| ReceiveSideEstimator::new(extension_id));
        }
        let id = TrackId::new(self.config.ids, self.next_id());
        for ssrc in track.ssrcs() {
            self.track_by_ssrc.insert((publisher, ssrc), id);
        }
        self.next_track_slot = (self.next_track_slot + 1) % REPORT_SLOTS;
        self.tracks.insert(id, track);
        self.routes_mut(publisher).tracks.push(id);
        self.events.forget_unknown(publisher);
        self.schedule_reports(now);
        Ok(id)
    }

    /// The tracks a session publishes, with their kinds.
    pub fn tracks_of(&self, publisher: SessionId) -> impl Iterator<Item = (TrackId, MediaKind)> {
        self.sessions
            .get(&publisher)
            .map(|routes| routes.tracks.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.tracks.get(id).map(|track| (*id, track.stream.kind)))
    }

    /// Subscribes `subscriber` to `track` with the stream negotiated with it. For video a
    /// keyframe is requested from the publisher so the new subscriber can start decoding.
    pub fn subscribe(
        &mut self,
        now: Instant,
        subscriber: SessionId,
        track: TrackId,
        stream: SubscribedStream,
        out: &mut TransmitQueue,
    ) -> Result<SubscriptionId, RouterError> {
        let Some(published) = self.tracks.get(&track) else {
            return Err(RouterError::UnknownTrack);
        };
        let ssrcs = std::iter::once(stream.ssrc).chain(stream.rtx_ssrc);
        if ssrcs
            .clone()
            .any(|ssrc| self.subscription_by_ssrc.contains_key(&(subscriber, ssrc)))
        {
            return Err(RouterError::SsrcInUse);
        }
        let clock_rate = published.clock_rate;
        let published_stream = published.stream.clone();
        let id = SubscriptionId::new(self.config.ids, self.next_id());
        let counter = self.routes_mut(subscriber).counter;
        if stream.extensions.transport_cc.is_some() {
            self.ensure_estimator(subscriber);
        }
        let red = self.initial_red(subscriber, stream.red_pt);
        let mut subscription = Subscription::new(
            id,
            subscriber,
            counter,
            stream,
            &published_stream,
            clock_rate,
        )?;
        subscription.red = red;
        for ssrc in subscription.ssrcs() {
            self.subscription_by_ssrc.insert((subscriber, ssrc), id);
        }
        self.routes_mut(subscriber).subscriptions.push(id);
        self.locations.insert(id, Location::Detached);
        self.detached.insert(id, subscription);
        self.attach(now, id, track, out)?;
        Ok(id)
    }

    /// Moves a subscription to another track of the same kind (a replaced track, or the track
    /// of a publisher that came back). The subscriber's stream stays continuous.
    pub fn attach(
        &mut self,
        now: Instant,
        subscription: SubscriptionId,
        track: TrackId,
        out: &mut TransmitQueue,
    ) -> Result<(), RouterError> {
        let location = *self
            .locations
            .get(&subscription)
            .ok_or(RouterError::UnknownSubscription)?;
        let target = self
            .tracks
            .get(&track)
            .map(|t| t.stream.clone())
            .ok_or(RouterError::UnknownTrack)?;
        let mut moving = match location {
            Location::Attached(current) if current == track => return Ok(()),
            Location::Attached(current) => self
                .tracks
                .get_mut(&current)
                .and_then(|t| t.take_subscription(subscription)),
            Location::Detached => self.detached.remove(&subscription),
        }
        .ok_or(RouterError::UnknownSubscription)?;
        if let Err(e) = moving.map_stream(&target) {
            self.detached.insert(subscription, moving);
            self.locations.insert(subscription, Location::Detached);
            return Err(e);
        }
        let kind = target.kind;
        if let Some(target) = self.tracks.get_mut(&track) {
            // A simulcast subscription forwards nothing until a keyframe of the layer it
            // chooses; otherwise the one layer.
            let simulcast = target.is_simulcast();
            let layer = if simulcast {
                crate::simulcast::NO_LAYER
            } else {
                0
            };
            let capacity = target.layers.first().map_or(0, |l| l.cache_capacity());
            moving.attach_to_layer(layer, capacity);
            moving.simulcast = simulcast;
            // A subscriber whose downlink is estimated starts a track none of whose layers
            // has been active long enough to be allocated at its lowest layer: the
            // allocation raises it once it knows the layers' rates, rather than every new
            // publisher's top layer arriving before the estimate has a say.
            let estimated = self
                .transport_cc_counters
                .get(moving.counter)
                .is_some_and(|c| c.estimator.is_some());
            if simulcast
                && estimated
                && !target
                    .layers
                    .iter()
                    .any(|l| l.is_settled(now, bandwidth::LAYER_SETTLED))
            {
                moving.choice.allocated_rank = Some(0);
            }
            target.subscriptions.push(moving);
        }
        self.locations
            .insert(subscription, Location::Attached(track));
        if kind == MediaKind::Video {
            self.request_keyframe(now, track, out);
        }
        Ok(())
    }

    /// The subscriptions left without a track (their publisher left), with the subscriber.
    pub fn detached_subscriptions(&self) -> impl Iterator<Item = (SubscriptionId, SessionId)> {
        self.detached.values().map(|s| (s.id, s.subscriber))
    }

    /// Removes everything a session published and subscribed. Subscriptions of others to its
    /// tracks are detached, not removed.
    pub fn remove_session(&mut self, session: SessionId) {
        self.transport_feedback.remove(&session);
        self.publisher_remb.remove(&session);
        self.events.forget_unknown(session);
        let Some(routes) = self.sessions.remove(&session) else {
            return;
        };
        self.free_counters.push(routes.counter);
        for id in routes.subscriptions {
            self.drop_subscription(session, id);
        }
        for id in routes.tracks {
            self.drop_track(session, id);
        }
    }

    /// Removes one published track (the publisher stopped sending it). Its subscriptions are
    /// detached, so they can be attached to a replacement.
    pub fn remove_published_stream(&mut self, track: TrackId) {
        let Some(publisher) = self.tracks.get(&track).map(|t| t.publisher) else {
            return;
        };
        if let Some(routes) = self.sessions.get_mut(&publisher) {
            routes.tracks.retain(|id| *id != track);
        }
        self.drop_track(publisher, track);
        self.events.forget_unknown(publisher);
    }

    /// Ends one subscription (the subscriber no longer receives that track).
    pub fn unsubscribe(&mut self, subscriber: SessionId, subscription: SubscriptionId) {
        if let Some(routes) = self.sessions.get_mut(&subscriber) {
            routes.subscriptions.retain(|id| *id != subscription);
        }
        self.drop_subscription(subscriber, subscription);
    }

    fn drop_subscription(&mut self, subscriber: SessionId, id: SubscriptionId) {
        let subscription = match self.locations.remove(&id) {
            Some(Location::Attached(track)) => self
                .tracks
                .get_mut(&track)
                .and_then(|t| t.take_subscription(id)),
            Some(Location::Detached) => self.detached.remove(&id),
            None => None,
        };
        if let Some(subscription) = subscription {
            for ssrc in subscription.ssrcs() {
                self.subscription_by_ssrc.remove(&(subscriber, ssrc));
            }
        }
    }

    fn drop_track(&mut self, publisher: SessionId, id: TrackId) {
        let Some(track) = self.tracks.remove(&id) else {
            return;
        };
        for ssrc in track.ssrcs() {
            self.track_by_ssrc.remove(&(publisher, ssrc));
        }
        for subscription in track.subscriptions {
            self.locations.insert(subscription.id, Location::Detached);
            self.detached.insert(subscription.id, subscription);
        }
    }

    /// Caps what `publisher` sends at `max_bitrate` bits per second (`None`: no cap), told it
    /// with REMB once a second for each of its video tracks; a browser publisher's estimator
    /// then never goes above it, transport-wide feedback or not.
    pub fn set_publisher_max_bitrate(&mut self, publisher: SessionId, max_bitrate: Option<u64>) {
        let remb = self.publisher_remb.entry(publisher).or_default();
        remb.set_cap(max_bitrate);
        if remb.is_idle() {
            self.publisher_remb.remove(&publisher);
        }
    }

    /// The media kind of a published track.
    pub fn track_kind(&self, track: TrackId) -> Option<MediaKind> {
        self.tracks.get(&track).map(|t| t.stream.kind)
    }

    /// The SSRC of a published track, as the publisher sends it; `None` for a rid-simulcast
    /// track (see [`Router::layer_ssrcs`]).
    pub fn track_ssrc(&self, track: TrackId) -> Option<Ssrc> {
        self.tracks
            .get(&track)
            .filter(|t| !t.is_simulcast())
            .map(|t| t.stream.ssrc)
    }

    /// The rids of a rid-simulcast track (empty for a track on one announced SSRC).
    pub fn track_rids(&self, track: TrackId) -> Option<&[String]> {
        self.tracks.get(&track).map(|t| t.stream.rids.as_slice())
    }

    /// A subscription wherever it lives.
    fn subscription(&self, id: SubscriptionId) -> Option<&Subscription> {
        match self.locations.get(&id)? {
            Location::Attached(track) => self
                .tracks
                .get(track)?
                .subscriptions
                .iter()
                .find(|s| s.id == id),
            Location::Detached => self.detached.get(&id),
        }
    }

    /// Says goodbye to every session (RTCP BYE for every SSRC Sluice sends it, in a compound
    /// after an empty receiver report), for a shutdown.
    pub fn goodbye(&mut self, out: &mut TransmitQueue) {
        use rtc_core::rtcp::{write_bye, write_receiver_report};
        let mut ssrcs: Vec<Ssrc> = Vec::new();
        for (&session, routes) in &self.sessions {
            ssrcs.clear();
            for id in &routes.subscriptions {
                if let Some(subscription) = self.subscription(*id) {
                    ssrcs.extend(subscription.ssrcs());
                }
            }
            if !routes.tracks.is_empty() {
                ssrcs.push(self.config.feedback_ssrc);
            }
            let Some(&sender) = ssrcs.first() else {
                continue;
            };
            ssrcs.truncate(31);
            out.push_with(session, TransmitKind::Rtcp, |buf| {
                let report = write_receiver_report(buf, sender, &[]).ok()?;
                let bye = write_bye(
                    buf.get_mut(report..)?,
                    &ssrcs,
                    Some(b"server shutting down"),
                )
                .ok()?;
                Some(report + bye)
            });
        }
    }

    /// Sluice's abs-send-time for a copy sent at `now`.
    fn send_time(&mut self, now: Instant) -> AbsSendTime {
        AbsSendTime::after(now.saturating_duration_since(*self.epoch.get_or_insert(now)))
    }

    /// Routes one plaintext RTP packet from `from`. The packet may be modified in place (RTX is
    /// turned back into the original packet). Returns how many copies were queued.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        from: SessionId,
        packet: &mut [u8],
        out: &mut TransmitQueue,
    ) -> Result<usize, RouteDrop> {
        let result = self.route_rtp(now, from, packet, out);
        match result {
            Ok(copies) => {
                self.stats.rtp_received += 1;
                self.stats.rtp_forwarded += copies as u64;
            }
            Err(_) => self.stats.rtp_dropped += 1,
        }
        self.count_dropped_events();
        result
    }

    fn route_rtp(
        &mut self,
        now: Instant,
        from: SessionId,
        packet: &mut [u8],
        out: &mut TransmitQueue,
    ) -> Result<usize, RouteDrop> {
        if packet.len() > crate::transmit::MAX_PACKET {
            return Err(RouteDrop::TooLarge);
        }
        let send_time = self.send_time(now);
        let now_us = self.micros_since_epoch(now);
        let bytes = packet.len();
        // The one parse of this packet: everything below reads and rewrites through this view.
        let view = RtpPacket::parse(packet).map_err(|_| RouteDrop::Malformed)?;
        // Every authenticated packet with the transport-wide sequence number is acknowledged,
        // whatever happens to it next (dropped, RTX, padding, an SSRC not known yet): the
        // publisher's estimator needs them all.
        if let Some(feedback) = self.transport_feedback.get_mut(&from)
            && let Some(&[high, low]) = view.extension(feedback.extension_id())
        {
            feedback.handle_packet(now, u16::from_be_bytes([high, low]));
            if let Some(due) = feedback.poll_timeout() {
                self.feedback_deadline = Some(self.feedback_deadline.map_or(due, |at| at.min(due)));
            }
        }
        if let Some(remb) = self.publisher_remb.get_mut(&from)
            && let Some(estimator) = &mut remb.estimator
            && let Some(&[a, b, c]) = view.extension(estimator.extension_id())
        {
            estimator.handle_packet(now, [a, b, c], bytes);
            if remb.decrease_due(now) {
                self.remb_deadline = Some(now);
            }
        }
        let ssrc = view.ssrc();
        let Some(track_id) = self
            .track_by_ssrc
            .get(&(from, ssrc))
            .copied()
            .or_else(|| self.bind_ssrc(from, &view))
        else {
            self.events.unknown_ssrc(from, ssrc);
            return Err(RouteDrop::UnknownSsrc);
        };
        let track = self
            .tracks
            .get_mut(&track_id)
            .ok_or(RouteDrop::UnknownSsrc)?;
        let (layer_index, role) = track.layer_of(ssrc).ok_or(RouteDrop::UnknownSsrc)?;
        let view = match role {
            StreamRole::Media => {
                if !track.is_media_payload_type(view.payload_type()) {
                    return Err(RouteDrop::UnknownPayloadType);
                }
                view
            }
            StreamRole::Rtx => {
                let primary_pt = track
                    .primary_payload_type(view.payload_type())
                    .ok_or(RouteDrop::UnknownPayloadType)?;
                self.stats.rtx_received += 1;
                // A rid layer's RTX can be bound before its media: it repairs nothing yet.
                let media_ssrc = track
                    .layers
                    .get(layer_index)
                    .filter(|layer| layer.is_bound())
                    .ok_or(RouteDrop::UnknownSsrc)?
                    .ssrc();
                view.restore_from_rtx(media_ssrc, primary_pt)
                    .ok_or(RouteDrop::EmptyRetransmission)?
            }
        };
        if let Some(id) = track.stream.extensions.audio_level
            && let Some(&[level]) = view.extension(id)
        {
            track.audio_packets = track.audio_packets.saturating_add(1);
            if level & 0x7f <= VOICED_LEVEL {
                track.audio_voiced = track.audio_voiced.saturating_add(1);
            }
        }
        let publisher = track.publisher;
        let nack = track.stream.nack;
        let layer = track
            .layers
            .get_mut(layer_index)
            .ok_or(RouteDrop::UnknownSsrc)?;
        let received = layer.handle_packet(now, view.sequence_number(), view.timestamp());
        layer.count_bytes(now_us, bytes);
        if received.activated {
            self.events.push(RouterEvent::LayerActive {
                track: track_id,
                ssrc: layer.ssrc(),
            });
        }
        let seq = received.seq;
        match received.arrival {
            // A duplicate (or far too late): already forwarded, or beyond repair.
            PacketArrival::Old => return Ok(0),
            // The new missing packets are due for a NACK now.
            PacketArrival::Gap(_) if nack => {
                self.nack_deadline = Some(self.nack_deadline.map_or(now, |at| at.min(now)));
            }
            PacketArrival::TooLargeGap(_) if layer.allow_keyframe_request(now) => {
                queue_pli(out, publisher, self.config.feedback_ssrc, layer.ssrc());
                self.stats.keyframe_requests_sent += 1;
                self.events.push(RouterEvent::KeyframeRequested {
                    track: track_id,
                    ssrc: layer.ssrc(),
                });
            }
            _ => {}
        }
        layer.store(now, seq, view.as_bytes());
        let source = SourcePacket {
            source: layer.ssrc(),
            seq,
            timestamp: view.timestamp(),
        };
        let picture = if track.is_simulcast() {
            let choose = simulcast::Choose {
                now,
                track_id,
                layer: layer_index,
                feedback_ssrc: self.config.feedback_ssrc,
            };
            choose.run(track, &view, &mut self.events, &mut self.stats, out)
        } else if track
            .subscriptions
            .iter()
            .any(Subscription::rewrites_pictures)
        {
            track
                .codec_of(view.payload_type())
                .and_then(|codec| crate::simulcast::picture_of(codec, view.payload()))
        } else {
            None
        };
        let fan_out = FanOut {
            send_time,
            template: &mut self.header_template,
            counters: &mut self.transport_cc_counters,
            events: &mut self.events,
            out,
            picture,
            red: track.red.as_deref_mut(),
            red_copies: &mut self.stats.red_packets_sent,
        };
        Ok(crate::copy_writer::forward(
            now,
            track_id,
            layer_index,
            &view,
            source,
            &mut track.subscriptions,
            fan_out,
        ))
    }
}
