//! The router's side of rid simulcast: binding an unknown SSRC to the layer its packet names
//! (mid and rid or repaired-rid header extensions, once, never rebound) or, for legacy
//! simulcast, to the layer signaling named ([`Router::bind_layer`]), running each
//! subscription's layer choice on the packets of a simulcast track (`crate::simulcast`),
//! and the API to cap and read a subscription's layer.

use std::time::Instant;

use rtc_core::Ssrc;
use rtc_core::media_api::TrackView;
use rtc_core::rtp::RtpPacket;

use super::feedback::queue_pli;
use super::{Location, Router};
use crate::event::{EventQueue, RouterEvent};
use crate::layer::StreamRole;
use crate::simulcast::{LayerSelection, NO_LAYER, SourcePicture, Step, inspect, wanted_layer};
use crate::track::Track;
use crate::transmit::TransmitQueue;
use crate::{RouterError, RouterStats, SessionId, SubscriptionId, TrackId};

/// How many packets of unknown SSRCs a session may have looked up for a rid layer without a
/// match; later ones are dropped unexamined (counted in
/// [`RouterStats::bindings_refused`]), so a flood of made-up SSRCs costs one map lookup
/// each.
pub const MAX_FAILED_BINDINGS: u32 = 64;

impl Router {
    /// Binds `packet`'s SSRC to the unbound rid layer it names among `from`'s tracks, and
    /// returns that track.
    pub(super) fn bind_ssrc<T: AsRef<[u8]>>(
        &mut self,
        from: SessionId,
        packet: &RtpPacket<T>,
    ) -> Option<TrackId> {
        let routes = self.sessions.get_mut(&from)?;
        let tracks = &mut self.tracks;
        let mut unbound = routes
            .tracks
            .iter()
            .filter(|id| tracks.get(id).is_some_and(Track::has_unbound_layers))
            .peekable();
        unbound.peek()?;
        if routes.failed_bindings >= MAX_FAILED_BINDINGS {
            self.stats.bindings_refused += 1;
            return None;
        }
        let ssrc = packet.ssrc();
        let mut bound = None;
        for &id in routes.tracks.iter() {
            let Some(track) = tracks.get_mut(&id) else {
                continue;
            };
            if !track.has_unbound_layers() {
                continue;
            }
            let ids = track.stream.extensions;
            let mid = ids.mid.and_then(|id| packet.extension(id));
            let named = match ids.repaired_rid.and_then(|id| packet.extension(id)) {
                Some(rid) => Some((rid, true)),
                None => ids.rid.and_then(|id| packet.extension(id)).map(|rid| {
                    // RTX sent with the rid extension instead of repaired-rid.
                    let rtx = track.primary_payload_type(packet.payload_type()).is_some();
                    (rid, rtx)
                }),
            };
            let Some((rid, repaired)) = named else {
                continue;
            };
            if track.bind(ssrc, mid, rid, repaired).is_some() {
                track.sort_layers();
                bound = Some(id);
                break;
            }
        }
        let Some(id) = bound else {
            routes.failed_bindings += 1;
            return None;
        };
        self.track_by_ssrc.insert((from, ssrc), id);
        self.stats.ssrcs_bound += 1;
        if let Some(feedback) = self.transport_feedback.get_mut(&from) {
            feedback.adopt_media_ssrc(ssrc);
        }
        Some(id)
    }

    /// Binds layer `layer` (rid order) of a simulcast track to SSRCs the publisher announced,
    /// ahead of its packets: legacy simulcast (`a=ssrc-group:SIM`, whose packets carry no
    /// rid), each layer named by its position. Fails when the track or layer does not exist
    /// or a stream of the layer is bound already, or the session uses an SSRC elsewhere.
    pub fn bind_layer(
        &mut self,
        track: TrackId,
        layer: usize,
        ssrc: Ssrc,
        rtx_ssrc: Option<Ssrc>,
    ) -> Result<(), RouterError> {
        let published = self
            .tracks
            .get_mut(&track)
            .ok_or(RouterError::UnknownTrack)?;
        let publisher = published.publisher;
        let ssrcs = std::iter::once(ssrc).chain(rtx_ssrc);
        if ssrcs
            .clone()
            .any(|ssrc| self.track_by_ssrc.contains_key(&(publisher, ssrc)))
        {
            return Err(RouterError::SsrcInUse);
        }
        let target = published
            .layers
            .get_mut(layer)
            .ok_or(RouterError::UnknownTrack)?;
        if target.is_bound() || (rtx_ssrc.is_some() && target.is_rtx_bound()) {
            return Err(RouterError::SsrcInUse);
        }
        target.bind(StreamRole::Media, ssrc);
        if let Some(rtx) = rtx_ssrc {
            target.bind(StreamRole::Rtx, rtx);
        }
        published.sort_layers();
        for ssrc in ssrcs {
            self.track_by_ssrc.insert((publisher, ssrc), track);
        }
        if let Some(feedback) = self.transport_feedback.get_mut(&publisher) {
            feedback.adopt_media_ssrc(ssrc);
        }
        Ok(())
    }

    /// Caps the layer `subscription` receives at `max_rank` in its track's layer order (0:
    /// the lowest resolution; `None`: the highest). On the track's next packet the layer
    /// chosen is requested (a PLI); the switch happens at its keyframe. On a track without
    /// rids (one layer) it changes nothing.
    pub fn set_max_layer(
        &mut self,
        subscription: SubscriptionId,
        max_rank: Option<usize>,
    ) -> Result<(), RouterError> {
        let subscription = self
            .subscription_mut(subscription)
            .ok_or(RouterError::UnknownSubscription)?;
        if subscription.choice.max_rank != max_rank {
            subscription.choice.max_rank = max_rank;
            subscription.choice.reset_target();
        }
        Ok(())
    }

    /// How the subscriber shows the track of `subscription` (adaptive stream): its layer stays
    /// within the smallest one covering the tile, a hidden track forwards nothing (and asks
    /// for no keyframe) until shown again, and a pinned one goes before the dominant speaker
    /// in the allocation, which runs again at once. Applies to simulcast tracks; a track of
    /// one layer is forwarded whatever the view.
    pub fn set_track_view(
        &mut self,
        now: Instant,
        subscription: SubscriptionId,
        view: TrackView,
    ) -> Result<(), RouterError> {
        let entry = self
            .subscription_mut(subscription)
            .ok_or(RouterError::UnknownSubscription)?;
        if entry.choice.view == view {
            return Ok(());
        }
        entry.choice.view = view;
        entry.choice.reset_target();
        let subscriber = entry.subscriber;
        self.reallocate(now, subscriber);
        Ok(())
    }

    /// Caps the temporal layer `subscription` receives at `max_temporal` (VP8 and VP9 TID;
    /// `None`: all). Pictures of higher temporal layers are left out from the next packet on,
    /// without a gap in the subscriber's sequence numbers or PictureIDs; a raised cap
    /// applies from the next picture of temporal layer 0 (whose successors reference only
    /// pictures forwarded). No keyframe is needed either way.
    pub fn set_max_temporal_layer(
        &mut self,
        subscription: SubscriptionId,
        max_temporal: Option<u8>,
    ) -> Result<(), RouterError> {
        let subscription = self
            .subscription_mut(subscription)
            .ok_or(RouterError::UnknownSubscription)?;
        subscription.choice.set_max_temporal(max_temporal);
        Ok(())
    }

    /// The layer a subscription forwards and waits for, and its cap.
    pub fn layer_selection(&self, subscription: SubscriptionId) -> Option<LayerSelection> {
        let subscription = self.subscription(subscription)?;
        Some(LayerSelection {
            current: (subscription.layer != NO_LAYER).then_some(subscription.layer),
            target: subscription.choice.target,
            max_rank: subscription.choice.max_rank,
            max_temporal: subscription.choice.max_temporal,
            allocated_rank: subscription.choice.allocated_rank,
            paused: subscription.choice.paused,
            view: subscription.choice.view,
        })
    }

    /// The layer indices of a track (rid order) from the lowest resolution to the highest,
    /// as measured from keyframes; layers not measured yet come first, in rid order, and layers
    /// whose SSRC is not known yet (never sent) last.
    pub fn layer_order(&self, track: TrackId) -> Option<&[usize]> {
        self.tracks.get(&track).map(Track::layer_order)
    }

    /// The media and RTX SSRCs bound to each layer of a track (rid order), `None` while
    /// unbound: what a renegotiation that re-creates the track binds again with
    /// [`Router::bind_layer`], since a browser stops sending mid and rid once its SSRCs were
    /// acknowledged in receiver reports.
    pub fn layer_streams(
        &self,
        track: TrackId,
    ) -> impl Iterator<Item = (Option<Ssrc>, Option<Ssrc>)> + '_ {
        self.tracks
            .get(&track)
            .map(|t| t.layers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|l| (l.is_bound().then(|| l.ssrc()), l.rtx_ssrc()))
    }

    /// The SSRC bound to each layer of a track (rid order), `None` while unbound.
    pub fn layer_ssrcs(&self, track: TrackId) -> impl Iterator<Item = Option<Ssrc>> + '_ {
        self.tracks
            .get(&track)
            .map(|t| t.layers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|l| l.is_bound().then(|| l.ssrc()))
    }

    pub(super) fn subscription_mut(
        &mut self,
        id: SubscriptionId,
    ) -> Option<&mut crate::subscription::Subscription> {
        match self.locations.get(&id)? {
            Location::Attached(track) => self.tracks.get_mut(track)?.subscription_mut(id),
            Location::Detached => self.detached.get_mut(&id),
        }
    }
}

/// One packet's run of the layer choices of a simulcast track's subscriptions.
#[derive(Debug, Clone, Copy)]
pub(super) struct Choose {
    pub(super) now: Instant,
    pub(super) track_id: TrackId,
    /// The layer the packet belongs to.
    pub(super) layer: usize,
    pub(super) feedback_ssrc: Ssrc,
}

impl Choose {
    /// Inspects the packet, moves each subscription's choice on (switching those whose
    /// target's keyframe this is, asking for the keyframes awaited) and returns the packet's
    /// picture numbering for the copies.
    pub(super) fn run<T: AsRef<[u8]>>(
        self,
        track: &mut Track,
        packet: &RtpPacket<T>,
        events: &mut EventQueue,
        stats: &mut RouterStats,
        out: &mut TransmitQueue,
    ) -> Option<SourcePicture> {
        let info = inspect(track, self.layer, packet);
        let publisher = track.publisher;
        let Track {
            layers,
            order,
            subscriptions,
            clock_rate,
            ..
        } = track;
        for subscription in subscriptions.iter_mut() {
            if subscription.choice.forwards_nothing() {
                // Paused or hidden: forwards nothing; the first keyframe after it resumes
                // starts it again.
                subscription.layer = NO_LAYER;
                subscription.choice.reset_target();
                continue;
            }
            let wants = wanted_layer(
                layers,
                order.as_slice(),
                subscription.choice.cap(layers, order),
                self.now,
            );
            let step = subscription.choice.step(
                self.now,
                subscription.layer,
                wants,
                self.layer,
                info.keyframe,
            );
            match step {
                Step::Stay => {}
                Step::Switch => {
                    // The new layer's timestamps continue the old one's on the wall clock of
                    // their sender reports, when both have sent one.
                    let shift = layers.get(self.layer).and_then(|new| {
                        new.clock_shift_from(layers.get(subscription.layer)?, *clock_rate)
                    });
                    subscription.layer = self.layer;
                    subscription.rewriter.restart_aligned(shift);
                    subscription.pictures.restart();
                }
                Step::RequestKeyframe(target) => {
                    if let Some(layer) = layers.get_mut(target)
                        && layer.is_bound()
                        && layer.allow_keyframe_request(self.now)
                    {
                        queue_pli(out, publisher, self.feedback_ssrc, layer.ssrc());
                        stats.keyframe_requests_sent += 1;
                        events.push(RouterEvent::KeyframeRequested {
                            track: self.track_id,
                            ssrc: layer.ssrc(),
                        });
                    } else {
                        // The layer's throttle held the request back (another subscription
                        // asked moments ago): ask again on its next packet rather than a
                        // second from now; the throttle still bounds what the publisher gets.
                        subscription.choice.request_again();
                    }
                }
            }
        }
        info.picture
    }
}
