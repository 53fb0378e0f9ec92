//! The packet router: published tracks, their subscriptions, and everything that happens to
//! a packet between the SRTP unprotect of a publisher's packet and the SRTP protect of each
//! subscriber's copy.
//!
//! For each RTP packet of a publisher the router finds the track by (session, SSRC), repairs
//! RTX into the original packet, records it for loss detection and retransmission, and writes
//! one rewritten copy per subscriber into the [`TransmitQueue`]: the subscriber's SSRC,
//! sequence number, timestamp, payload type and header-extension ids, and its own
//! transport-wide sequence number. RTCP from subscribers is answered here too: NACKs from the
//! retransmission cache (on RTX when negotiated) within each subscriber's retransmission
//! budget, PLI and FIR throttled to the publisher.
//! Periodic reports (sender reports to subscribers that match the rewritten timestamps,
//! receiver reports and NACKs to publishers) are produced on [`Router::handle_timeout`].
//!
//! Subscriptions outlive the tracks they receive: when a publisher leaves, its subscriptions
//! are detached, and attaching them to the track that replaces it keeps each subscriber's
//! stream continuous.

use std::time::{Duration, Instant};

use rtc_core::rtp::{RtpPacket, SeqNoUnwrapper};
use rtc_core::{Pt, SeqNo, Ssrc};

use crate::IdHashMap;
use crate::config::{CodecParams, ExtensionIds, MediaKind, PublishedStream, SubscribedStream};
use crate::keyframe_throttle::{DEFAULT_KEYFRAME_REQUEST_INTERVAL, KeyframeRequestThrottle};
use crate::loss_tracker::{LossTracker, LossTrackerConfig, PacketArrival};
use crate::reception::ReceptionStats;
use crate::retransmit_budget::{RetransmitBudget, RetransmitBudgetConfig};
use crate::retransmit_cache::RetransmitCache;
use crate::rewrite::{RewrittenPacket, SourcePacket, SubscriberRewriter};
use crate::transmit::{PacketKind, TransmitQueue};
use crate::transport_feedback::TransportFeedback;
use crate::{RouterError, RouterStats, SessionId};

/// Identifies a published track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u64);

/// Identifies a subscription (one subscriber's stream of one track at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub u64);

/// Tuning of the router.
#[derive(Debug, Clone, Copy)]
pub struct RouterConfig {
    /// Minimum time between keyframe requests to one publisher track.
    pub keyframe_request_interval: Duration,
    /// NACK generation towards publishers.
    pub loss: LossTrackerConfig,
    /// Interval of sender and receiver reports.
    pub report_interval: Duration,
    /// The SSRC Sluice uses as the sender of its feedback to publishers.
    pub feedback_ssrc: Ssrc,
    /// What each subscriber session's NACKs may have resent.
    pub retransmit_budget: RetransmitBudgetConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            keyframe_request_interval: DEFAULT_KEYFRAME_REQUEST_INTERVAL,
            loss: LossTrackerConfig::default(),
            report_interval: Duration::from_secs(1),
            feedback_ssrc: Ssrc(1),
            retransmit_budget: RetransmitBudgetConfig::default(),
        }
    }
}

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

/// Which stream of a track an SSRC names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamRole {
    Media,
    Rtx,
}

/// A packet goes to one subscriber at most once in this interval however often it is NACKed,
/// so that repeated sequence numbers in one NACK, or a flood of NACKs, do not multiply the
/// traffic a subscriber can make the server send.
const MIN_RESEND_INTERVAL: Duration = Duration::from_millis(20);

/// A subscriber's copy of a track. `repr(C)` keeps the declared order: what every forwarded
/// copy reads and writes comes first, together in the first cache lines, then the maps
/// (indexed by the few payload types and extension ids in use), and last what only
/// signaling, retransmissions and reports touch.
#[derive(Debug)]
#[repr(C)]
struct Subscription {
    subscriber: SessionId,
    /// The subscriber's SSRC and RTX SSRC for this track.
    media_ssrc: Ssrc,
    rtx_ssrc: Option<Ssrc>,
    /// The subscriber's transport-wide sequence number extension id, if negotiated.
    transport_cc_id: Option<u8>,
    /// Index of the subscriber's transport-wide sequence number in
    /// [`Router::transport_cc_counters`].
    counter: usize,
    packets_sent: u32,
    octets_sent: u32,
    rtx_seq: u16,
    rewriter: SubscriberRewriter,
    /// Publisher payload type -> (subscriber payload type, subscriber RTX payload type).
    pt_map: [Option<(Pt, Option<Pt>)>; 128],
    /// Publisher extension id -> subscriber extension id (0: drop the element).
    ext_map: [u8; 256],
    /// The subscriber's ids of the forwarded extensions: within one track, subscriptions with
    /// equal keys have equal `ext_map`s and share one header template per packet.
    ext_key: u64,
    id: SubscriptionId,
    stream: SubscribedStream,
    /// The packet last retransmitted from each slot of the track's retransmission cache, and
    /// when. It mirrors the cache's slots, so every packet the cache can answer has its own.
    resent: Box<[Option<(SeqNo, Instant)>]>,
    /// `octets_sent` when the session's retransmission budget was last credited with this
    /// subscription's forwarded bytes.
    budget_seen_octets: u32,
}

impl Subscription {
    /// The subscriber's payload type and RTX payload type for the publisher's `pt`, when the
    /// subscriber negotiated its codec.
    fn mapped_payload_types(&self, pt: Pt) -> Option<(Pt, Option<Pt>)> {
        self.pt_map.get(usize::from(pt.0 & 0x7f)).copied().flatten()
    }
}

/// A publisher's track as the router keeps it.
#[derive(Debug)]
struct PublishedTrack {
    publisher: SessionId,
    stream: PublishedStream,
    clock_rate: u32,
    /// RTX payload type -> primary payload type.
    rtx_apt: [Option<Pt>; 128],
    known_pt: [bool; 128],
    unwrapper: SeqNoUnwrapper,
    cache: RetransmitCache,
    loss: LossTracker,
    keyframe: KeyframeRequestThrottle,
    reception: ReceptionStats,
    /// The publisher's last sender report: NTP time, RTP time and when it arrived.
    last_sender_report: Option<(u64, u32, Instant)>,
    /// Which of the [`REPORT_SLOTS`] parts of the report interval this track reports in.
    report_slot: u8,
    subscriptions: Vec<Subscription>,
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
}

/// Where a subscription lives: in a track's list, or detached (its track is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Attached(TrackId),
    Detached,
}

/// The router of one media worker. Sans-IO: time is an argument and output goes to a
/// [`TransmitQueue`].
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    next_id: u64,
    tracks: IdHashMap<TrackId, PublishedTrack>,
    track_by_ssrc: IdHashMap<(SessionId, Ssrc), (TrackId, StreamRole)>,
    subscription_by_ssrc: IdHashMap<(SessionId, Ssrc), SubscriptionId>,
    locations: IdHashMap<SubscriptionId, Location>,
    detached: IdHashMap<SubscriptionId, Subscription>,
    sessions: IdHashMap<SessionId, SessionRoutes>,
    /// Each session's transport-wide sequence number (shared by all its subscriptions), by
    /// [`SessionRoutes::counter`]: a subscription indexes it directly, so a copy costs no
    /// lookup of its session.
    transport_cc_counters: Vec<u16>,
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
    /// No later than the earliest feedback due; like `nack_deadline`, it may be early.
    feedback_deadline: Option<Instant>,
    nack_scratch: Vec<SeqNo>,
    nack_wire_scratch: Vec<u16>,
    /// The header of the packet being routed as one group of subscribers receives it.
    header_template: Box<[u8; crate::transmit::MAX_PACKET]>,
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
            feedback_deadline: None,
            nack_scratch: Vec::with_capacity(64),
            nack_wire_scratch: Vec::with_capacity(64),
            header_template: Box::new([0; crate::transmit::MAX_PACKET]),
            stats: RouterStats::default(),
        }
    }

    /// Counters of what the router did.
    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// The routes of `session`, created with a transport-wide counter slot on first use.
    fn routes_mut(&mut self, session: SessionId) -> &mut SessionRoutes {
        let counters = &mut self.transport_cc_counters;
        let free = &mut self.free_counters;
        let budgets = &mut self.retransmit_budgets;
        let budget = RetransmitBudget::new(&self.config.retransmit_budget);
        self.sessions.entry(session).or_insert_with(|| {
            let counter = free.pop().unwrap_or_else(|| {
                counters.push(0);
                counters.len() - 1
            });
            if let Some(value) = counters.get_mut(counter) {
                *value = 0;
            }
            budgets.resize(counters.len(), budget);
            if let Some(slot) = budgets.get_mut(counter) {
                *slot = budget;
            }
            SessionRoutes {
                tracks: Vec::new(),
                subscriptions: Vec::new(),
                counter,
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
        let first = stream.codecs.first().ok_or(RouterError::NoCodec)?;
        if kind_of(first.codec) != stream.kind {
            return Err(RouterError::KindMismatch);
        }
        let ssrcs = std::iter::once(stream.ssrc).chain(stream.rtx_ssrc);
        if ssrcs
            .clone()
            .any(|ssrc| self.track_by_ssrc.contains_key(&(publisher, ssrc)))
        {
            return Err(RouterError::SsrcInUse);
        }
        let mut rtx_apt = [None; 128];
        let mut known_pt = [false; 128];
        for codec in &stream.codecs {
            if let Some(slot) = known_pt.get_mut(usize::from(codec.pt.0 & 0x7f)) {
                *slot = true;
            }
            if let Some(rtx) = codec.rtx_pt
                && let Some(slot) = rtx_apt.get_mut(usize::from(rtx.0 & 0x7f))
            {
                *slot = Some(codec.pt);
            }
        }
        if let Some(extension_id) = stream.extensions.transport_cc {
            // One per session: the sequence number counts the whole transport.
            self.transport_feedback
                .entry(publisher)
                .or_insert_with(|| TransportFeedback::new(extension_id, stream.ssrc));
        }
        let id = TrackId(self.next_id());
        self.track_by_ssrc
            .insert((publisher, stream.ssrc), (id, StreamRole::Media));
        if let Some(rtx) = stream.rtx_ssrc {
            self.track_by_ssrc
                .insert((publisher, rtx), (id, StreamRole::Rtx));
        }
        let cache = if stream.kind == MediaKind::Audio {
            RetransmitCache::for_audio()
        } else {
            RetransmitCache::for_video()
        };
        let track = PublishedTrack {
            publisher,
            clock_rate: first.codec.clock_rate(),
            rtx_apt,
            known_pt,
            unwrapper: SeqNoUnwrapper::new(),
            cache,
            loss: LossTracker::new(self.config.loss),
            keyframe: KeyframeRequestThrottle::new(self.config.keyframe_request_interval),
            reception: ReceptionStats::new(first.codec.clock_rate()),
            last_sender_report: None,
            report_slot: self.next_track_slot,
            subscriptions: Vec::new(),
            stream,
        };
        self.next_track_slot = (self.next_track_slot + 1) % REPORT_SLOTS;
        self.tracks.insert(id, track);
        self.routes_mut(publisher).tracks.push(id);
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
        let id = SubscriptionId(self.next_id());
        let counter = self.routes_mut(subscriber).counter;
        let mut subscription = Subscription {
            id,
            subscriber,
            media_ssrc: stream.ssrc,
            rtx_ssrc: stream.rtx_ssrc,
            transport_cc_id: stream.extensions.transport_cc,
            counter,
            pt_map: [None; 128],
            ext_map: [0; 256],
            ext_key: 0,
            rewriter: SubscriberRewriter::new(
                clock_rate,
                stream.initial_seq,
                stream.initial_timestamp,
            ),
            rtx_seq: stream.initial_seq.wrapping_add(0x4000),
            resent: Box::default(),
            packets_sent: 0,
            octets_sent: 0,
            stream,
            budget_seen_octets: 0,
        };
        map_stream(&mut subscription, &published_stream)?;
        for ssrc in std::iter::once(subscription.stream.ssrc).chain(subscription.stream.rtx_ssrc) {
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
            Location::Attached(current) => self.take_attached(current, subscription),
            Location::Detached => self.detached.remove(&subscription),
        }
        .ok_or(RouterError::UnknownSubscription)?;
        if let Err(e) = map_stream(&mut moving, &target) {
            self.detached.insert(subscription, moving);
            self.locations.insert(subscription, Location::Detached);
            return Err(e);
        }
        let kind = target.kind;
        if let Some(target) = self.tracks.get_mut(&track) {
            // Sequence numbers start over with the new source.
            moving.resent = vec![None; target.cache.capacity()].into_boxed_slice();
            target.subscriptions.push(moving);
        }
        self.locations
            .insert(subscription, Location::Attached(track));
        if kind == MediaKind::Video {
            self.request_keyframe(now, track, out);
        }
        Ok(())
    }

    fn take_attached(
        &mut self,
        track: TrackId,
        subscription: SubscriptionId,
    ) -> Option<Subscription> {
        let subscriptions = &mut self.tracks.get_mut(&track)?.subscriptions;
        let index = subscriptions.iter().position(|s| s.id == subscription)?;
        Some(subscriptions.swap_remove(index))
    }

    /// The subscriptions left without a track (their publisher left), with the subscriber.
    pub fn detached_subscriptions(&self) -> impl Iterator<Item = (SubscriptionId, SessionId)> {
        self.detached.values().map(|s| (s.id, s.subscriber))
    }

    /// Removes everything a session published and subscribed. Subscriptions of others to its
    /// tracks are detached, not removed.
    pub fn remove_session(&mut self, session: SessionId) {
        self.transport_feedback.remove(&session);
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
            Some(Location::Attached(track)) => self.take_attached(track, id),
            Some(Location::Detached) => self.detached.remove(&id),
            None => None,
        };
        if let Some(subscription) = subscription {
            for ssrc in
                std::iter::once(subscription.stream.ssrc).chain(subscription.stream.rtx_ssrc)
            {
                self.subscription_by_ssrc.remove(&(subscriber, ssrc));
            }
        }
    }

    fn drop_track(&mut self, publisher: SessionId, id: TrackId) {
        let Some(track) = self.tracks.remove(&id) else {
            return;
        };
        for ssrc in std::iter::once(track.stream.ssrc).chain(track.stream.rtx_ssrc) {
            self.track_by_ssrc.remove(&(publisher, ssrc));
        }
        for subscription in track.subscriptions {
            self.locations.insert(subscription.id, Location::Detached);
            self.detached.insert(subscription.id, subscription);
        }
    }

    /// The media kind of a published track.
    pub fn track_kind(&self, track: TrackId) -> Option<MediaKind> {
        self.tracks.get(&track).map(|t| t.stream.kind)
    }

    /// The SSRC of a published track, as the publisher sends it.
    pub fn track_ssrc(&self, track: TrackId) -> Option<Ssrc> {
        self.tracks.get(&track).map(|t| t.stream.ssrc)
    }

    /// Says goodbye to every session (RTCP BYE for every SSRC Sluice sends it, in a compound
    /// after an empty receiver report), for a shutdown.
    pub fn goodbye(&mut self, out: &mut TransmitQueue) {
        use rtc_core::rtcp::{write_bye, write_receiver_report};
        let mut ssrcs: Vec<Ssrc> = Vec::new();
        for (&session, routes) in &self.sessions {
            ssrcs.clear();
            for id in &routes.subscriptions {
                let subscription = match self.locations.get(id) {
                    Some(Location::Attached(track)) => self
                        .tracks
                        .get(track)
                        .and_then(|t| t.subscriptions.iter().find(|s| s.id == *id)),
                    Some(Location::Detached) => self.detached.get(id),
                    None => None,
                };
                if let Some(subscription) = subscription {
                    ssrcs.push(subscription.stream.ssrc);
                    ssrcs.extend(subscription.stream.rtx_ssrc);
                }
            }
            if !routes.tracks.is_empty() {
                ssrcs.push(self.config.feedback_ssrc);
            }
            let Some(&sender) = ssrcs.first() else {
                continue;
            };
            ssrcs.truncate(31);
            out.push_with(session, PacketKind::Rtcp, |buf| {
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
        let view = RtpPacket::parse(&*packet).map_err(|_| RouteDrop::Malformed)?;
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
        let (track_id, role) = *self
            .track_by_ssrc
            .get(&(from, view.ssrc()))
            .ok_or(RouteDrop::UnknownSsrc)?;
        let track = self
            .tracks
            .get_mut(&track_id)
            .ok_or(RouteDrop::UnknownSsrc)?;
        let len = match role {
            StreamRole::Media => {
                let pt = usize::from(view.payload_type().0);
                if !track.known_pt.get(pt).copied().unwrap_or(false) {
                    return Err(RouteDrop::UnknownPayloadType);
                }
                packet.len()
            }
            StreamRole::Rtx => {
                let primary_pt = track
                    .rtx_apt
                    .get(usize::from(view.payload_type().0))
                    .copied()
                    .flatten()
                    .ok_or(RouteDrop::UnknownPayloadType)?;
                self.stats.rtx_received += 1;
                restore_from_rtx(packet, track.stream.ssrc, primary_pt)?
            }
        };
        let packet = packet.get_mut(..len).ok_or(RouteDrop::Malformed)?;
        let view = RtpPacket::parse(&*packet).map_err(|_| RouteDrop::Malformed)?;
        let seq = track.unwrapper.unwrap(view.sequence_number());
        let timestamp = view.timestamp();
        track.reception.handle_packet(now, seq, timestamp);
        let arrival = track.loss.handle_packet(now, seq);
        if arrival == PacketArrival::Old {
            // A duplicate (or far too late): already forwarded, or beyond repair.
            return Ok(0);
        }
        if matches!(arrival, PacketArrival::Gap(_)) && track.stream.nack {
            // The new missing packets are due for a NACK now.
            self.nack_deadline = Some(self.nack_deadline.map_or(now, |at| at.min(now)));
        }
        if let PacketArrival::TooLargeGap(_) = arrival {
            let publisher = track.publisher;
            let media_ssrc = track.stream.ssrc;
            if track.keyframe.handle_request(now) {
                queue_pli(out, publisher, self.config.feedback_ssrc, media_ssrc);
                self.stats.keyframe_requests_sent += 1;
            }
        }
        track.cache.store(now, seq, packet);

        let source = SourcePacket {
            source: track.stream.ssrc,
            seq,
            timestamp,
        };
        let pt = view.payload_type();
        let (header, payload) = packet
            .split_at_checked(view.header_len())
            .ok_or(RouteDrop::Malformed)?;
        let mut copies = 0;
        let counters = &mut self.transport_cc_counters;
        let template = &mut self.header_template[..];
        // The key of the subscribers the template was last built for, and its shape.
        let mut built: Option<(u64, Option<TemplateShape>)> = None;
        for subscription in &mut track.subscriptions {
            let counter = counters.get_mut(subscription.counter);
            let shape = match built {
                Some((key, shape)) if key == subscription.ext_key => shape,
                _ => {
                    let shape = build_header_template(
                        template,
                        header,
                        &subscription.ext_map,
                        subscription.transport_cc_id,
                    );
                    built = Some((subscription.ext_key, shape));
                    shape
                }
            };
            let header =
                shape.and_then(|shape| Some((template.get(..shape.len)?, shape.transport_cc_at)));
            let queued = match header {
                Some(template) => write_fresh_copy(
                    now,
                    subscription,
                    source,
                    pt,
                    template,
                    payload,
                    counter,
                    out,
                ),
                // Not reached for a packet that parsed; the general path stays correct.
                None => write_copy(
                    now,
                    subscription,
                    source,
                    pt,
                    packet,
                    counter,
                    out,
                    Numbering::Fresh,
                ),
            };
            if queued {
                copies += 1;
            }
        }
        Ok(copies)
    }

    /// Requests a keyframe of `track` from its publisher (throttled).
    pub fn request_keyframe(&mut self, now: Instant, track: TrackId, out: &mut TransmitQueue) {
        let Some(track) = self.tracks.get_mut(&track) else {
            return;
        };
        if track.stream.kind != MediaKind::Video || !track.keyframe.handle_request(now) {
            return;
        }
        queue_pli(
            out,
            track.publisher,
            self.config.feedback_ssrc,
            track.stream.ssrc,
        );
        self.stats.keyframe_requests_sent += 1;
    }

    /// Handles a plaintext RTCP compound packet from `from`.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        from: SessionId,
        packet: &[u8],
        out: &mut TransmitQueue,
    ) {
        use rtc_core::rtcp::{RtcpPacket, iter_compound};
        for item in iter_compound(packet) {
            let Ok(item) = item else {
                self.stats.rtcp_malformed += 1;
                return;
            };
            match item {
                RtcpPacket::Nack(nack) => {
                    self.stats.nacks_received += 1;
                    self.nack_wire_scratch.clear();
                    self.nack_wire_scratch.extend(nack.lost());
                    let lost = std::mem::take(&mut self.nack_wire_scratch);
                    self.retransmit(now, from, nack.media_ssrc(), &lost, out);
                    self.nack_wire_scratch = lost;
                }
                RtcpPacket::Pli(pli) => {
                    self.stats.keyframe_requests_received += 1;
                    self.keyframe_request_from(now, from, pli.media_ssrc, out);
                }
                RtcpPacket::Fir(fir) => {
                    self.stats.keyframe_requests_received += 1;
                    for (ssrc, _) in fir.entries() {
                        self.keyframe_request_from(now, from, ssrc, out);
                    }
                }
                RtcpPacket::SenderReport(report) => {
                    let info = report.sender_info();
                    if let Some((track, StreamRole::Media)) =
                        self.track_by_ssrc.get(&(from, info.ssrc)).copied()
                        && let Some(track) = self.tracks.get_mut(&track)
                    {
                        track.last_sender_report = Some((info.ntp_time, info.rtp_time, now));
                        track.reception.handle_sender_report(now, info.ntp_time);
                    }
                }
                _ => {}
            }
        }
    }

    fn keyframe_request_from(
        &mut self,
        now: Instant,
        subscriber: SessionId,
        media_ssrc: Ssrc,
        out: &mut TransmitQueue,
    ) {
        let Some(id) = self.subscription_by_ssrc.get(&(subscriber, media_ssrc)) else {
            return;
        };
        if let Some(Location::Attached(track)) = self.locations.get(id).copied() {
            self.request_keyframe(now, track, out);
        }
    }

    /// Answers a subscriber's NACK for `lost` (its sequence numbers) from the retransmission
    /// cache, as far as the subscriber session's retransmission budget allows
    /// ([`RouterConfig::retransmit_budget`]); the rest is counted in
    /// [`RouterStats::retransmissions_over_budget`].
    pub fn retransmit(
        &mut self,
        now: Instant,
        subscriber: SessionId,
        media_ssrc: Ssrc,
        lost: &[u16],
        out: &mut TransmitQueue,
    ) {
        let Some(id) = self
            .subscription_by_ssrc
            .get(&(subscriber, media_ssrc))
            .copied()
        else {
            return;
        };
        let Some(Location::Attached(track_id)) = self.locations.get(&id).copied() else {
            return;
        };
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let highest = track.unwrapper.highest();
        let Some(subscription) = track.subscriptions.iter_mut().find(|s| s.id == id) else {
            return;
        };
        let mut transport_cc = self.transport_cc_counters.get_mut(subscription.counter);
        let mut budget = self.retransmit_budgets.get_mut(subscription.counter);
        if let Some(budget) = budget.as_deref_mut() {
            let forwarded = subscription
                .octets_sent
                .wrapping_sub(subscription.budget_seen_octets);
            budget.refill(now, &self.config.retransmit_budget, u64::from(forwarded));
        }
        subscription.budget_seen_octets = subscription.octets_sent;
        for &seq in lost {
            let Some((_, source_seq)) = subscription.rewriter.source_seq(seq) else {
                self.stats.retransmissions_missed += 1;
                continue;
            };
            let Some(highest) = highest else {
                continue;
            };
            let extended = extend_below(highest, source_seq);
            let slot = (extended.0 % (subscription.resent.len().max(1) as u64)) as usize;
            let recently_resent = |entry: &Option<(SeqNo, Instant)>| {
                matches!(*entry, Some((resent, at))
                    if resent == extended
                        && now.saturating_duration_since(at) < MIN_RESEND_INTERVAL)
            };
            if subscription.resent.get(slot).is_some_and(recently_resent) {
                continue;
            }
            let Some(original) = track.cache.get(now, extended) else {
                self.stats.retransmissions_missed += 1;
                continue;
            };
            let Ok(view) = RtpPacket::parse(original) else {
                continue;
            };
            let source = SourcePacket {
                source: track.stream.ssrc,
                seq: extended,
                timestamp: view.timestamp(),
            };
            let pt = view.payload_type();
            // What the copy costs the subscriber's budget: the packet, and the RTX header's
            // original sequence number when RTX is negotiated.
            let cost = original.len() as u64 + 2;
            if budget.as_deref().is_some_and(|b| b.available() < cost) {
                self.stats.retransmissions_over_budget += 1;
                continue;
            }
            if write_copy(
                now,
                subscription,
                source,
                pt,
                original,
                transport_cc.as_deref_mut(),
                out,
                Numbering::Retransmission {
                    subscriber_seq: seq,
                },
            ) {
                if let Some(budget) = budget.as_deref_mut() {
                    budget.try_take(cost);
                }
                self.stats.retransmissions_sent += 1;
                if let Some(entry) = subscription.resent.get_mut(slot) {
                    *entry = Some((extended, now));
                }
            }
        }
    }

    fn schedule_reports(&mut self, now: Instant) {
        if self.next_report.is_none() {
            self.next_report = Some(now + self.report_slot_length());
        }
    }

    fn report_slot_length(&self) -> Duration {
        self.config.report_interval / u32::from(REPORT_SLOTS)
    }

    /// When [`Router::handle_timeout`] next has work.
    ///
    /// It costs no scan of the tracks: it may be early after a gap that reordering repaired,
    /// never late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.nack_deadline, self.next_report, self.feedback_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// The earliest NACK deadline of the tracks that send NACKs. Tracks without NACK keep
    /// their (bounded) loss record for duplicate and gap detection only; their deadlines must
    /// not wake the worker, which would never clear them.
    fn earliest_nack_deadline(&self) -> Option<Instant> {
        self.tracks
            .values()
            .filter(|t| t.stream.nack)
            .filter_map(|t| t.loss.poll_timeout())
            .min()
    }

    /// Sends what is due: NACKs to publishers, and on the report interval sender reports to
    /// subscribers and receiver reports to publishers.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut TransmitQueue) {
        let feedback_ssrc = self.config.feedback_ssrc;
        if self.feedback_deadline.is_some_and(|at| at <= now) {
            let mut next = None;
            for (&publisher, feedback) in &mut self.transport_feedback {
                let sent = feedback.poll_feedback(now, publisher, feedback_ssrc, out);
                self.stats.transport_feedback_sent += sent as u64;
                next = [next, feedback.poll_timeout()].into_iter().flatten().min();
            }
            self.feedback_deadline = next;
        }
        let nacks_due = self.nack_deadline.is_some_and(|at| at <= now);
        for track in self.tracks.values_mut() {
            if !nacks_due
                || !track.stream.nack
                || track.loss.poll_timeout().is_none_or(|at| at > now)
            {
                continue;
            }
            self.nack_scratch.clear();
            track.loss.poll_nacks(now, &mut self.nack_scratch);
            if self.nack_scratch.is_empty() {
                continue;
            }
            self.nack_wire_scratch.clear();
            self.nack_wire_scratch
                .extend(self.nack_scratch.iter().map(|s| s.wire()));
            let lost = &self.nack_wire_scratch;
            let media_ssrc = track.stream.ssrc;
            if out.push_with(track.publisher, PacketKind::Rtcp, |buf| {
                rtc_core::rtcp::feedback::write_nack(buf, feedback_ssrc, media_ssrc, lost).ok()
            }) {
                self.stats.nacks_sent += 1;
            }
        }
        if nacks_due {
            self.nack_deadline = self.earliest_nack_deadline();
        }
        if self.next_report.is_some_and(|at| at <= now) {
            let slot = self.report_slot;
            self.send_reports(now, slot, out);
            self.report_slot = (slot + 1) % REPORT_SLOTS;
            self.next_report = if self.tracks.is_empty() {
                None
            } else {
                Some(now + self.report_slot_length())
            };
        }
    }

    /// Reports of the tracks in report slot `slot`.
    fn send_reports(&mut self, now: Instant, slot: u8, out: &mut TransmitQueue) {
        use rtc_core::rtcp::SenderInfo;
        use rtc_core::rtcp::report::{write_receiver_report, write_sender_report};
        let feedback_ssrc = self.config.feedback_ssrc;
        for track in self.tracks.values_mut().filter(|t| t.report_slot == slot) {
            let block = track.reception.report_block(now, track.stream.ssrc);
            out.push_with(track.publisher, PacketKind::Rtcp, |buf| {
                write_receiver_report(buf, feedback_ssrc, &[block]).ok()
            });
            let Some((ntp, rtp, received_at)) = track.last_sender_report else {
                continue;
            };
            // Carry the publisher's NTP <-> RTP mapping forward to now, so each subscriber's
            // report pairs the same wall-clock time with its rewritten timestamp.
            let elapsed = now.saturating_duration_since(received_at);
            let ntp_now = ntp.wrapping_add(duration_to_ntp(elapsed));
            let rtp_now = rtp.wrapping_add(
                u32::try_from(elapsed.as_micros() * u128::from(track.clock_rate) / 1_000_000)
                    .unwrap_or(u32::MAX),
            );
            for subscription in &track.subscriptions {
                if subscription.packets_sent == 0 {
                    continue;
                }
                let Some(offset) = subscription.rewriter.timestamp_offset(track.stream.ssrc) else {
                    continue;
                };
                let info = SenderInfo {
                    ssrc: subscription.stream.ssrc,
                    ntp_time: ntp_now,
                    rtp_time: rtp_now.wrapping_add(offset),
                    packet_count: subscription.packets_sent,
                    octet_count: subscription.octets_sent,
                };
                if out.push_with(subscription.subscriber, PacketKind::Rtcp, |buf| {
                    write_sender_report(buf, &info, &[]).ok()
                }) {
                    self.stats.sender_reports_sent += 1;
                }
            }
        }
    }
}

/// Maps the publisher's payload types and extension ids to the subscriber's, by codec and by
/// extension meaning.
fn map_stream(
    subscription: &mut Subscription,
    published: &PublishedStream,
) -> Result<(), RouterError> {
    let mut pt_map = [None; 128];
    let mut any = false;
    for codec in &published.codecs {
        let Some(theirs) = subscription
            .stream
            .codecs
            .iter()
            .find(|c: &&CodecParams| c.codec == codec.codec)
        else {
            continue;
        };
        if let Some(slot) = pt_map.get_mut(usize::from(codec.pt.0 & 0x7f)) {
            *slot = Some((theirs.pt, theirs.rtx_pt));
            any = true;
        }
    }
    if !any {
        return Err(RouterError::NoCommonCodec);
    }
    subscription.pt_map = pt_map;
    subscription.ext_map = extension_map(&published.extensions, &subscription.stream.extensions);
    subscription.ext_key = forwarded_extensions(&subscription.stream.extensions)
        .iter()
        .fold(0u64, |key, id| {
            key << 16 | id.map_or(0, |id| 0x100 | u64::from(id))
        });
    Ok(())
}

/// The media kind a codec carries.
fn kind_of(codec: rtc_core::sdp::Codec) -> MediaKind {
    if codec.is_audio() {
        MediaKind::Audio
    } else {
        MediaKind::Video
    }
}

/// Publisher extension id -> subscriber extension id for the extensions forwarded as they
/// are. mid, rid and repaired-rid describe the publisher's session and are dropped; the
/// transport-wide sequence number is rewritten per subscriber after the remap.
fn extension_map(publisher: &ExtensionIds, subscriber: &ExtensionIds) -> [u8; 256] {
    let mut map = [0u8; 256];
    let pairs = forwarded_extensions(publisher)
        .into_iter()
        .zip(forwarded_extensions(subscriber));
    for (from, to) in pairs {
        if let (Some(from), Some(to)) = (from, to)
            && let Some(slot) = map.get_mut(usize::from(from))
        {
            *slot = to;
        }
    }
    map
}

/// The ids of the extensions forwarded as they are (the transport-wide sequence number is
/// rewritten after the remap), in a fixed order.
fn forwarded_extensions(ids: &ExtensionIds) -> [Option<u8>; 4] {
    [
        ids.abs_send_time,
        ids.audio_level,
        ids.dependency_descriptor,
        ids.transport_cc,
    ]
}

/// What [`build_header_template`] wrote.
#[derive(Debug, Clone, Copy)]
struct TemplateShape {
    len: usize,
    /// Where the transport-wide sequence number goes, when the subscribers negotiated one and
    /// the packet has it.
    transport_cc_at: Option<usize>,
}

/// Fills `template` with the header of a publisher's packet as subscribers with `ext_map`
/// receive it (extension ids remapped). `None` if the header does not parse.
fn build_header_template(
    template: &mut [u8],
    header: &[u8],
    ext_map: &[u8; 256],
    transport_cc_id: Option<u8>,
) -> Option<TemplateShape> {
    let bytes = template.get_mut(..header.len())?;
    bytes.copy_from_slice(header);
    let mut view = RtpPacket::parse_header_only(bytes).ok()?;
    view.remap_extension_ids(|id| ext_map.get(usize::from(id)).copied().filter(|&to| to != 0));
    let start = view.as_bytes().as_ptr() as usize;
    let transport_cc_at = transport_cc_id
        .and_then(|id| view.extension_mut(id))
        .filter(|value| value.len() >= 2)
        .map(|value| value.as_ptr() as usize - start);
    Some(TemplateShape {
        len: header.len(),
        transport_cc_at,
    })
}

/// Writes the fixed-header fields a subscriber's copy changes (RFC 3550 section 5.1: the
/// payload type beside the marker bit, sequence number, timestamp, SSRC) at their fixed
/// offsets. The parsed view's setters do the same, but making a view validates the extension
/// block again, which per copy costs more than the rest of the rewrite.
fn write_fixed_header(buf: &mut [u8], pt: Pt, seq: u16, timestamp: u32, ssrc: Ssrc) -> Option<()> {
    let header = buf.get_mut(..rtc_core::rtp::FIXED_HEADER_LEN)?;
    header[1] = (header[1] & 0x80) | (pt.0 & 0x7f);
    header[2..4].copy_from_slice(&seq.to_be_bytes());
    header[4..8].copy_from_slice(&timestamp.to_be_bytes());
    header[8..12].copy_from_slice(&ssrc.0.to_be_bytes());
    Some(())
}

/// Writes one subscriber's copy of a packet forwarded for the first time: the header template
/// of its group ([`build_header_template`]), the payload, the fixed fields and the
/// transport-wide sequence number. Returns whether a copy was queued.
#[allow(clippy::too_many_arguments)] // The hot path; bundling would cost a struct per packet.
fn write_fresh_copy(
    now: Instant,
    subscription: &mut Subscription,
    source: SourcePacket,
    pt: Pt,
    (header, transport_cc_at): (&[u8], Option<usize>),
    payload: &[u8],
    transport_cc_seq: Option<&mut u16>,
    out: &mut TransmitQueue,
) -> bool {
    let Some((out_pt, _)) = subscription.mapped_payload_types(pt) else {
        return false;
    };
    let Ok(rewritten) = subscription.rewriter.rewrite(now, source) else {
        return false;
    };
    let ssrc = subscription.media_ssrc;
    let queued = out.push_with(subscription.subscriber, PacketKind::Rtp, |buf| {
        let len = header.len() + payload.len();
        buf.get_mut(..header.len())?.copy_from_slice(header);
        buf.get_mut(header.len()..len)?.copy_from_slice(payload);
        write_fixed_header(buf, out_pt, rewritten.seq, rewritten.timestamp, ssrc)?;
        if let (Some(at), Some(counter)) = (transport_cc_at, transport_cc_seq) {
            buf.get_mut(at..at + 2)?
                .copy_from_slice(&counter.to_be_bytes());
            *counter = counter.wrapping_add(1);
        }
        Some(len)
    });
    if queued {
        count_sent(subscription, payload.len());
    }
    queued
}

/// Counts a fresh copy for the subscriber's sender reports.
fn count_sent(subscription: &mut Subscription, payload_len: usize) {
    subscription.packets_sent = subscription.packets_sent.wrapping_add(1);
    subscription.octets_sent = subscription
        .octets_sent
        .wrapping_add(u32::try_from(payload_len).unwrap_or(0));
}

/// How a subscriber's copy is numbered.
#[derive(Debug, Clone, Copy)]
enum Numbering {
    /// A packet forwarded for the first time: the rewriter assigns its number.
    Fresh,
    /// A retransmission of the packet the subscriber knows as `subscriber_seq`.
    Retransmission { subscriber_seq: u16 },
}

/// Writes one subscriber's copy of `packet` (a plaintext packet from the publisher, or from
/// the cache) into the queue: RTP with the subscriber's numbering, or RTX when `numbering`
/// is a retransmission and RTX is negotiated. Returns whether a copy was queued.
#[allow(clippy::too_many_arguments)] // The hot path; bundling would cost a struct per packet.
fn write_copy(
    now: Instant,
    subscription: &mut Subscription,
    source: SourcePacket,
    pt: Pt,
    packet: &[u8],
    transport_cc_seq: Option<&mut u16>,
    out: &mut TransmitQueue,
    numbering: Numbering,
) -> bool {
    let Some((out_pt, out_rtx_pt)) = subscription.mapped_payload_types(pt) else {
        return false;
    };
    let retransmission = matches!(numbering, Numbering::Retransmission { .. });
    let rewritten = match numbering {
        // A retransmission keeps the number the subscriber asked for and must not move the
        // rewriter.
        Numbering::Retransmission { subscriber_seq } => {
            let Some(offset) = subscription.rewriter.timestamp_offset(source.source) else {
                return false;
            };
            RewrittenPacket {
                seq: subscriber_seq,
                timestamp: source.timestamp.wrapping_add(offset),
            }
        }
        Numbering::Fresh => match subscription.rewriter.rewrite(now, source) {
            Ok(rewritten) => rewritten,
            Err(_) => return false,
        },
    };
    let rtx = match (retransmission, subscription.rtx_ssrc, out_rtx_pt) {
        (true, Some(ssrc), Some(pt)) => Some((ssrc, pt)),
        _ => None,
    };
    let ext_map = &subscription.ext_map;
    let transport_cc_id = subscription.transport_cc_id;
    let media_ssrc = subscription.media_ssrc;
    let rtx_seq = &mut subscription.rtx_seq;
    let queued = out.push_with(subscription.subscriber, PacketKind::Rtp, |buf| {
        let header_len = rtc_core::rtp::header_len(packet).ok()?;
        let (header, payload) = packet.split_at_checked(header_len)?;
        let (len, payload_at) = match rtx {
            None => (packet.len(), header_len),
            Some(_) => (packet.len() + 2, header_len + 2),
        };
        buf.get_mut(..header_len)?.copy_from_slice(header);
        buf.get_mut(payload_at..len)?.copy_from_slice(payload);
        if rtx.is_some() {
            buf.get_mut(header_len..header_len + 2)?
                .copy_from_slice(&rewritten.seq.to_be_bytes());
        }
        let mut view = RtpPacket::parse_header_only(buf.get_mut(..len)?).ok()?;
        match rtx {
            None => {
                view.set_ssrc(media_ssrc);
                view.set_sequence_number(rewritten.seq);
                view.set_payload_type(out_pt);
            }
            Some((rtx_ssrc, rtx_pt)) => {
                view.set_ssrc(rtx_ssrc);
                view.set_sequence_number(*rtx_seq);
                *rtx_seq = rtx_seq.wrapping_add(1);
                view.set_payload_type(rtx_pt);
            }
        }
        view.set_timestamp(rewritten.timestamp);
        view.remap_extension_ids(|id| ext_map.get(usize::from(id)).copied().filter(|&to| to != 0));
        if let (Some(id), Some(counter)) = (transport_cc_id, transport_cc_seq)
            && let Some(value) = view.extension_mut(id)
            && let Some(bytes) = value.get_mut(..2)
        {
            bytes.copy_from_slice(&counter.to_be_bytes());
            *counter = counter.wrapping_add(1);
        }
        Some(len)
    });
    if queued && !retransmission {
        let payload = packet
            .len()
            .saturating_sub(rtc_core::rtp::header_len(packet).unwrap_or(0));
        count_sent(subscription, payload);
    }
    queued
}

/// Turns an RTX packet (RFC 4588) back into the original in place: the first two payload
/// bytes are the original sequence number; the rest is the original payload. Returns the new
/// length.
fn restore_from_rtx(packet: &mut [u8], ssrc: Ssrc, pt: Pt) -> Result<usize, RouteDrop> {
    let view = RtpPacket::parse(&*packet).map_err(|_| RouteDrop::Malformed)?;
    let header_len = view.header_len();
    if view.payload().len() < 2 {
        return Err(RouteDrop::EmptyRetransmission);
    }
    let len = packet.len();
    let osn = packet
        .get(header_len..header_len + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_be_bytes)
        .ok_or(RouteDrop::Malformed)?;
    packet.copy_within(header_len + 2..len, header_len);
    let new_len = len - 2;
    let mut view =
        RtpPacket::parse_header_only(packet.get_mut(..new_len).ok_or(RouteDrop::Malformed)?)
            .map_err(|_| RouteDrop::Malformed)?;
    view.set_sequence_number(osn);
    view.set_ssrc(ssrc);
    view.set_payload_type(pt);
    Ok(new_len)
}

fn queue_pli(out: &mut TransmitQueue, publisher: SessionId, sender: Ssrc, media: Ssrc) {
    out.push_with(publisher, PacketKind::Rtcp, |buf| {
        rtc_core::rtcp::feedback::write_pli(buf, sender, media).ok()
    });
}

/// The extended sequence number at or below `highest` whose low 16 bits are `seq`.
fn extend_below(highest: SeqNo, seq: u16) -> SeqNo {
    let back = highest.wire().wrapping_sub(seq);
    SeqNo(highest.0.saturating_sub(u64::from(back)))
}

/// A duration in NTP units (32.32 fixed point seconds).
fn duration_to_ntp(duration: Duration) -> u64 {
    (duration.as_secs() << 32) + ((u64::from(duration.subsec_nanos()) << 32) / 1_000_000_000)
}
