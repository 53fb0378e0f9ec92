//! Per-subscription layer selection for simulcast tracks, and what keeps a subscriber's stream
//! one stream across layer switches.
//!
//! Each subscription of a simulcast track (rid or legacy) forwards one layer at a time. Its wanted layer
//! is the highest active one (a packet within [`LAYER_FALLBACK`]) at or below its cap; when
//! that differs from the layer it forwards, the wanted layer becomes its target, a throttled
//! PLI goes to the publisher for it (again every [`SWITCH_REQUEST_INTERVAL`] until it comes),
//! and the current layer keeps flowing until the target's next keyframe, where the switch
//! happens. The switch restarts the subscriber's numbering ([`SubscriberRewriter::restart`]:
//! the next sequence number follows the last one sent, the timestamp moves on from the last
//! one) and its VP8/VP9 PictureID and TL0PICIDX (`PictureRewriter`).
//!
//! All of it runs on the packets of the track (no timer): a silent layer is noticed on the
//! packets of the others, which is when a fallback can happen anyway.
//!
//! [`SubscriberRewriter::restart`]: crate::rewrite::SubscriberRewriter::restart

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc_core::Ssrc;
use rtc_core::codec::{CodecDescriptor, PayloadDescriptor, PictureId, Vp8Packet, Vp9Packet};
use rtc_core::media_api::TrackView;
use rtc_core::rtp::RtpPacket;

use crate::config::Codec;
use crate::layer::Layer;
use crate::track::Track;

/// A layer that sent nothing for this long is no longer chosen: its subscriptions fall back
/// to the next lower active one.
pub const LAYER_FALLBACK: Duration = Duration::from_millis(1500);

/// How long a subscription waits for its target layer's keyframe before asking again.
pub const SWITCH_REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// The subscription's layer index before its first switch: it forwards nothing until a
/// keyframe of its target.
pub(crate) const NO_LAYER: usize = usize::MAX;

/// Which layers a subscription forwards and wants, as layer indices of its track (rid order;
/// [`crate::Router::layer_order`] sorts them by resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LayerSelection {
    /// The layer forwarded now; `None` before the first keyframe.
    pub current: Option<usize>,
    /// The layer waited for (its keyframe makes the switch).
    pub target: Option<usize>,
    /// The cap: the highest rank in the layer order it may receive (0: the lowest).
    pub max_rank: Option<usize>,
    /// The highest temporal layer it receives (`None`: all).
    pub max_temporal: Option<u8>,
    /// The bandwidth allocator's cap on the rank (`None`: none); the lower of it and
    /// `max_rank` is in force.
    pub allocated_rank: Option<usize>,
    /// The allocator paused it: not even the lowest layer fits the subscriber's estimate.
    pub paused: bool,
    /// How the subscriber shows the track (tile size, visibility, pinned).
    pub view: TrackView,
}

/// A subscription's choice state on a simulcast track.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LayerChoice {
    pub(crate) target: Option<usize>,
    pub(crate) max_rank: Option<usize>,
    /// The bandwidth allocator's cap (`None`: none), below the client's or not.
    pub(crate) allocated_rank: Option<usize>,
    /// The allocator paused the subscription: not even its lowest layer fits. Nothing is
    /// forwarded and no keyframe is asked for until it resumes.
    pub(crate) paused: bool,
    /// The highest temporal layer forwarded (`None`: all).
    pub(crate) max_temporal: Option<u8>,
    /// The temporal cap asked for; a raise waits for a picture of temporal layer 0, after
    /// which every higher picture's references were forwarded.
    pub(crate) wanted_temporal: Option<u8>,
    /// How the subscriber shows the track: a hidden one forwards nothing, and the layer
    /// stays within the smallest one that covers the tile.
    pub(crate) view: TrackView,
    /// When a keyframe of the target was last asked for.
    requested_at: Option<Instant>,
}

impl LayerChoice {
    /// The cap in force on a track with these layers: the lowest of the client's, its view's
    /// and the allocator's.
    pub(crate) fn cap(&self, layers: &[Layer], order: &[usize]) -> Option<usize> {
        [self.client_cap(layers, order), self.allocated_rank]
            .into_iter()
            .flatten()
            .min()
    }

    /// What the client allows: the lower of the rank it asked for and the smallest layer
    /// covering its tile.
    pub(crate) fn client_cap(&self, layers: &[Layer], order: &[usize]) -> Option<usize> {
        let view = self
            .view
            .size
            .and_then(|size| covering_rank(layers, order, size));
        [self.max_rank, view].into_iter().flatten().min()
    }

    /// Whether nothing is forwarded: the allocator paused it or the subscriber hides it.
    pub(crate) fn forwards_nothing(&self) -> bool {
        self.paused || !self.view.visible
    }

    /// Sets the allocator's cap on a track with these layers; true when the cap in force
    /// changed (only then is the target chosen again).
    pub(crate) fn set_allocated_rank(
        &mut self,
        rank: Option<usize>,
        layers: &[Layer],
        order: &[usize],
    ) -> bool {
        let before = self.cap(layers, order);
        self.allocated_rank = rank;
        let changed = self.cap(layers, order) != before;
        if changed {
            self.reset_target();
        }
        changed
    }

    /// Asks for temporal cap `max`: a lower one applies at once (lower layers never
    /// reference higher ones), a higher one at the next picture of temporal layer 0.
    pub(crate) fn set_max_temporal(&mut self, max: Option<u8>) {
        self.wanted_temporal = max;
        let lower = match (max, self.max_temporal) {
            (Some(new), Some(old)) => new < old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if lower {
            self.max_temporal = max;
        }
    }

    /// Whether `picture` is left out, applying a raised temporal cap at a picture of
    /// temporal layer 0.
    pub(crate) fn filters(&mut self, picture: SourcePicture) -> bool {
        if self.wanted_temporal != self.max_temporal && picture.temporal == Some(0) {
            self.max_temporal = self.wanted_temporal;
        }
        picture.is_filtered_by(self.max_temporal)
    }

    /// The keyframe request just made was not sent: the next packet makes it again.
    pub(crate) fn request_again(&mut self) {
        self.requested_at = None;
    }

    /// Forgets the target (a new track, or a new cap).
    pub(crate) fn reset_target(&mut self) {
        self.target = None;
        self.requested_at = None;
    }
}

/// The picture numbering of one packet of a simulcast layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourcePicture {
    pub(crate) vp9: bool,
    pub(crate) picture_id: PictureId,
    pub(crate) tl0_pic_idx: Option<u8>,
    /// The temporal layer (VP8 TID, VP9 TID), when the descriptor carries one.
    pub(crate) temporal: Option<u8>,
}

impl SourcePicture {
    /// Whether a subscription capped at temporal layer `max` (`None`: no cap) leaves this
    /// picture out. A picture without a temporal layer is always kept.
    pub(crate) fn is_filtered_by(&self, max: Option<u8>) -> bool {
        matches!((self.temporal, max), (Some(tid), Some(max)) if tid > max)
    }
}

/// What the router learned from a packet of a simulcast track.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PacketInfo {
    pub(crate) keyframe: bool,
    pub(crate) picture: Option<SourcePicture>,
}

/// Reads what layer switching needs from `packet` of `track`, recording a keyframe's
/// resolution on the layer (which may reorder the track's layers).
pub(crate) fn inspect<T: AsRef<[u8]>>(
    track: &mut Track,
    layer: usize,
    packet: &RtpPacket<T>,
) -> PacketInfo {
    let Some(codec) = track.codec_of(packet.payload_type()) else {
        return PacketInfo::default();
    };
    let Ok(descriptor) = PayloadDescriptor::parse(codec, packet.payload()) else {
        return PacketInfo::default();
    };
    let keyframe = descriptor.is_keyframe();
    if keyframe && let Some(resolution) = descriptor.resolution() {
        track.observe_resolution(layer, resolution);
    }
    PacketInfo {
        keyframe,
        picture: picture_in(&descriptor),
    }
}

/// The picture numbering of a packet of `codec`, if it has one (VP8 and VP9).
pub(crate) fn picture_of(codec: Codec, payload: &[u8]) -> Option<SourcePicture> {
    if !matches!(codec, Codec::Vp8 | Codec::Vp9) {
        return None;
    }
    picture_in(&PayloadDescriptor::parse(codec, payload).ok()?)
}

fn picture_in(descriptor: &PayloadDescriptor<'_>) -> Option<SourcePicture> {
    match descriptor {
        PayloadDescriptor::Vp8(p) => p.picture_id().map(|picture_id| SourcePicture {
            vp9: false,
            picture_id,
            tl0_pic_idx: p.tl0_pic_idx(),
            temporal: p.tid(),
        }),
        PayloadDescriptor::Vp9(p) => p.picture_id().map(|picture_id| SourcePicture {
            vp9: true,
            picture_id,
            tl0_pic_idx: p.tl0_pic_idx(),
            temporal: p.tid(),
        }),
        _ => None,
    }
}

/// The rank of the lowest layer in `order` whose keyframes' resolution covers a tile of
/// `size` (width and height at least the tile's); `None` when none does (the top is the
/// closest) or no resolution is known.
pub(crate) fn covering_rank(layers: &[Layer], order: &[usize], size: (u16, u16)) -> Option<usize> {
    let (width, height) = size;
    order.iter().position(|&index| {
        layers
            .get(index)
            .and_then(Layer::resolution)
            .is_some_and(|r| r.width >= width && r.height >= height)
    })
}

/// The layer a subscription capped at `max_rank` wants now: the highest active one in
/// `order` at or below the cap. `None` when none is active.
pub(crate) fn wanted_layer(
    layers: &[Layer],
    order: &[usize],
    max_rank: Option<usize>,
    now: Instant,
) -> Option<usize> {
    let top = max_rank.map_or(order.len(), |cap| (cap + 1).min(order.len()));
    order.get(..top)?.iter().rev().copied().find(|&index| {
        layers
            .get(index)
            .is_some_and(|l| l.is_active_within(now, LAYER_FALLBACK))
    })
}

/// What a subscription should do on a packet of layer `layer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing changes.
    Stay,
    /// Switch to `layer` now (this packet is its keyframe).
    Switch,
    /// Ask the publisher for a keyframe of this layer.
    RequestKeyframe(usize),
}

impl LayerChoice {
    /// Updates the target of a subscription forwarding `current` from what it `wants`, and
    /// says what to do on this packet (of `layer`, a keyframe or not).
    pub(crate) fn step(
        &mut self,
        now: Instant,
        current: usize,
        wants: Option<usize>,
        layer: usize,
        keyframe: bool,
    ) -> Step {
        match wants {
            Some(wanted) if wanted != current => {
                if self.target != Some(wanted) {
                    self.target = Some(wanted);
                    self.requested_at = None;
                }
            }
            // The current layer is wanted, or nothing is active (keep what flows).
            _ => self.reset_target(),
        }
        let Some(target) = self.target else {
            return Step::Stay;
        };
        if target == layer && keyframe {
            self.reset_target();
            return Step::Switch;
        }
        if self
            .requested_at
            .is_none_or(|at| now.saturating_duration_since(at) >= SWITCH_REQUEST_INTERVAL)
        {
            self.requested_at = Some(now);
            return Step::RequestKeyframe(target);
        }
        Step::Stay
    }
}

/// The offsets from one layer's PictureID and TL0PICIDX to the subscriber's, from the
/// source picture `from` on.
#[derive(Debug, Clone, Copy)]
struct PictureMap {
    ssrc: Ssrc,
    from: u16,
    picture_id: u16,
    tl0_pic_idx: u8,
    /// The map starts a switch: earlier pictures of the source are of the past.
    switch: bool,
}

/// How many picture maps (between switches and skipped pictures) stay usable for
/// retransmissions.
const PICTURE_MAPS: usize = crate::rewrite::SEGMENTS;

/// Keeps a subscriber's VP8/VP9 PictureID and TL0PICIDX contiguous across layer switches
/// (the new layer's first picture gets the number after the last one sent) and across
/// pictures left out by a temporal-layer cap (the next picture takes the skipped one's
/// number). Pictures left out never carry TL0PICIDX forward (only temporal layer 0 does).
#[derive(Debug, Clone)]
pub(crate) struct PictureRewriter {
    /// Oldest first; the last one is current.
    maps: VecDeque<PictureMap>,
    last_picture_id: Option<u16>,
    last_tl0_pic_idx: Option<u8>,
    /// The source pictures skipped last, newest last: a retransmission of one of them is
    /// declined (its number went to the next picture).
    skipped: VecDeque<(Ssrc, u16)>,
    restart_pending: bool,
}

/// Whether picture `id` is `from` or after it, in a numbering of `modulus` values.
fn at_or_after(id: u16, from: u16, modulus: u16) -> bool {
    id.wrapping_sub(from) % modulus < modulus / 2
}

impl Default for PictureRewriter {
    /// With room for all its maps, so that forwarding never allocates.
    fn default() -> Self {
        PictureRewriter {
            maps: VecDeque::with_capacity(PICTURE_MAPS),
            last_picture_id: None,
            last_tl0_pic_idx: None,
            skipped: VecDeque::with_capacity(PICTURE_MAPS),
            restart_pending: false,
        }
    }
}

impl PictureRewriter {
    /// Whether pictures are renumbered (once a map exists, for good: the subscriber's
    /// numbering must stay continuous).
    pub(crate) fn is_mapping(&self) -> bool {
        !self.maps.is_empty()
    }

    /// The next picture starts a new mapping (a switch).
    pub(crate) fn restart(&mut self) {
        self.restart_pending = true;
    }

    fn push(&mut self, map: PictureMap) {
        if self.maps.len() >= PICTURE_MAPS {
            self.maps.pop_front();
        }
        self.maps.push_back(map);
    }

    /// The subscriber's numbers for a fresh packet of `source`.
    pub(crate) fn map_fresh(&mut self, source: Ssrc, picture: SourcePicture) -> (u16, u8) {
        let modulus = picture.picture_id.max().wrapping_add(1);
        let value = picture.picture_id.value();
        let tl0 = picture.tl0_pic_idx.unwrap_or(0);
        let in_epoch = if self.restart_pending {
            None
        } else {
            self.map_in_epoch(source, value, modulus)
                .or_else(|| self.maps.back().copied().filter(|m| m.ssrc == source))
        };
        let map = match in_epoch {
            Some(map) => map,
            None => {
                self.restart_pending = false;
                let next_id = self
                    .last_picture_id
                    .map_or(value, |last| last.wrapping_add(1) % modulus);
                let next_tl0 = self
                    .last_tl0_pic_idx
                    .map_or(tl0, |last| last.wrapping_add(1));
                let map = PictureMap {
                    ssrc: source,
                    from: value,
                    picture_id: next_id.wrapping_sub(value),
                    tl0_pic_idx: next_tl0.wrapping_sub(tl0),
                    switch: true,
                };
                self.push(map);
                map
            }
        };
        let (id, tl0) = apply(map, picture);
        let ahead = |last: u16| {
            let delta = id.wrapping_sub(last) % modulus;
            delta != 0 && delta < modulus / 2
        };
        if self.last_picture_id.is_none_or(ahead) {
            self.last_picture_id = Some(id);
            self.last_tl0_pic_idx = Some(tl0);
        }
        (id, tl0)
    }

    /// The map of the current source's epoch that picture `value` falls in.
    fn map_in_epoch(&self, source: Ssrc, value: u16, modulus: u16) -> Option<PictureMap> {
        for map in self.maps.iter().rev() {
            if map.ssrc != source {
                return None;
            }
            if at_or_after(value, map.from, modulus) {
                return Some(*map);
            }
            if map.switch {
                return None;
            }
        }
        None
    }

    /// Leaves a picture of `source` out of the subscriber's stream: the next picture gets
    /// its number. A picture older than the last one sent changes nothing.
    pub(crate) fn skip(&mut self, source: Ssrc, picture: SourcePicture) {
        let key = (source, picture.picture_id.value());
        if self.skipped.back() == Some(&key) {
            // A further packet of the picture skipped last.
            return;
        }
        if self.skipped.len() >= PICTURE_MAPS {
            self.skipped.pop_front();
        }
        self.skipped.push_back(key);
        if self.restart_pending {
            return;
        }
        let modulus = picture.picture_id.max().wrapping_add(1);
        let value = picture.picture_id.value();
        let Some(current) = self.maps.back_mut() else {
            return;
        };
        if current.ssrc != source || !at_or_after(value, current.from, modulus) {
            return;
        }
        let (id, _) = apply(*current, picture);
        if self
            .last_picture_id
            .is_some_and(|last| !at_or_after(id, last.wrapping_add(1) % modulus, modulus))
        {
            return;
        }
        let next = PictureMap {
            from: value.wrapping_add(1) % modulus,
            picture_id: current.picture_id.wrapping_sub(1),
            switch: false,
            ..*current
        };
        if current.from == value {
            // No picture was numbered by this map yet.
            *current = next;
        } else {
            self.push(next);
        }
    }

    /// Whether a picture of `source` was left out (recently).
    pub(crate) fn was_skipped(&self, source: Ssrc, picture: SourcePicture) -> bool {
        self.skipped.contains(&(source, picture.picture_id.value()))
    }

    /// The subscriber's numbers for a retransmitted packet of `source`, if it was sent
    /// under one of the maps kept.
    pub(crate) fn map_resent(&self, source: Ssrc, picture: SourcePicture) -> Option<(u16, u8)> {
        let modulus = picture.picture_id.max().wrapping_add(1);
        let map = self.maps.iter().rev().find(|m| {
            m.ssrc == source && at_or_after(picture.picture_id.value(), m.from, modulus)
        })?;
        Some(apply(*map, picture))
    }
}

fn apply(map: PictureMap, picture: SourcePicture) -> (u16, u8) {
    let modulus = picture.picture_id.max().wrapping_add(1);
    let id = picture.picture_id.value().wrapping_add(map.picture_id) % modulus;
    let tl0 = picture
        .tl0_pic_idx
        .unwrap_or(0)
        .wrapping_add(map.tl0_pic_idx);
    (id, tl0)
}

/// Writes the subscriber's PictureID and TL0PICIDX into a copy's payload.
pub(crate) fn write_picture(payload: &mut [u8], vp9: bool, (id, tl0): (u16, u8)) {
    if vp9 {
        if let Ok(mut view) = Vp9Packet::parse(payload) {
            view.set_picture_id(id);
            view.set_tl0_pic_idx(tl0);
        }
    } else if let Ok(mut view) = Vp8Packet::parse(payload) {
        view.set_picture_id(id);
        view.set_tl0_pic_idx(tl0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(id: u16, tl0: u8) -> SourcePicture {
        SourcePicture {
            vp9: false,
            picture_id: PictureId::Long(id),
            tl0_pic_idx: Some(tl0),
            temporal: None,
        }
    }

    #[test]
    fn picture_ids_continue_across_a_switch() {
        let mut rw = PictureRewriter::default();
        assert_eq!(rw.map_fresh(Ssrc(1), picture(100, 7)), (100, 7));
        assert_eq!(rw.map_fresh(Ssrc(1), picture(101, 8)), (101, 8));
        rw.restart();
        assert_eq!(rw.map_fresh(Ssrc(2), picture(0x7fff, 200)), (102, 9));
        assert_eq!(rw.map_fresh(Ssrc(2), picture(0, 201)), (103, 10));
        assert_eq!(rw.map_resent(Ssrc(1), picture(101, 8)), Some((101, 8)));
        assert_eq!(rw.map_resent(Ssrc(3), picture(1, 1)), None);
    }

    #[test]
    fn skipped_pictures_give_their_numbers_to_the_next_ones() {
        let mut rw = PictureRewriter::default();
        let s = Ssrc(1);
        assert_eq!(rw.map_fresh(s, picture(0x7ffe, 1)), (0x7ffe, 1));
        rw.skip(s, picture(0x7fff, 1));
        rw.skip(s, picture(0x7fff, 1)); // its second packet
        assert_eq!(rw.map_fresh(s, picture(0, 1)), (0x7fff, 1));
        rw.skip(s, picture(1, 1));
        rw.skip(s, picture(2, 1));
        assert_eq!(rw.map_fresh(s, picture(3, 2)), (0, 2));
        // Retransmissions of pictures sent under earlier maps keep the numbers first sent.
        assert_eq!(rw.map_resent(s, picture(0x7ffe, 1)), Some((0x7ffe, 1)));
        assert_eq!(rw.map_resent(s, picture(0, 1)), Some((0x7fff, 1)));
        assert_eq!(rw.map_resent(s, picture(3, 2)), Some((0, 2)));
        // A late packet of a picture older than the last one sent changes nothing.
        rw.skip(s, picture(0x7ffd, 1));
        assert_eq!(rw.map_fresh(s, picture(4, 2)), (1, 2));
        assert!(rw.was_skipped(s, picture(0x7ffd, 1)));
        assert!(rw.was_skipped(s, picture(2, 1)));
        assert!(!rw.was_skipped(s, picture(3, 1)));
    }

    #[test]
    fn a_raised_temporal_cap_waits_for_a_base_layer_picture() {
        let mut choice = LayerChoice::default();
        let tid = |t| SourcePicture {
            temporal: Some(t),
            ..picture(1, 1)
        };
        choice.set_max_temporal(Some(0));
        assert!(choice.filters(tid(1)), "a lower cap applies at once");
        choice.set_max_temporal(Some(2));
        assert!(choice.filters(tid(2)), "not before a picture of layer 0");
        assert!(!choice.filters(tid(0)));
        assert!(!choice.filters(tid(2)));
        choice.set_max_temporal(Some(1));
        assert!(choice.filters(tid(2)));
        choice.set_max_temporal(None);
        assert!(!choice.filters(tid(0)));
        assert!(!choice.filters(tid(3)));
    }

    #[test]
    fn a_switch_waits_for_the_targets_keyframe_and_asks_again_each_second() {
        let now = crate::test_time::origin();
        let mut choice = LayerChoice::default();
        assert_eq!(choice.step(now, 2, Some(2), 2, false), Step::Stay);
        assert_eq!(
            choice.step(now, 2, Some(0), 2, false),
            Step::RequestKeyframe(0)
        );
        let soon = now + Duration::from_millis(500);
        assert_eq!(choice.step(soon, 2, Some(0), 0, false), Step::Stay);
        let later = now + SWITCH_REQUEST_INTERVAL;
        assert_eq!(
            choice.step(later, 2, Some(0), 2, true),
            Step::RequestKeyframe(0)
        );
        assert_eq!(choice.step(later, 2, Some(0), 0, true), Step::Switch);
        assert_eq!(choice.target, None);
    }
}
