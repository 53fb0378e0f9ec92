//! A published track: one m-line of a publisher, with its negotiated codecs and the layers it
//! is sent in (one per simulcast rid, each under its own SSRC learned from its first packets
//! or, for legacy simulcast, from signaling; or one layer on the announced SSRC), the order of its layers by resolution, and the
//! subscriptions attached to it. The router finds a track by (session, SSRC) and the
//! layer through the track's layers. The track's periodic output is written here: NACKs and
//! receiver reports per layer to the publisher, and sender reports to each subscriber that
//! match its rewritten timestamps.

use std::time::{Duration, Instant};

use rtc_core::codec::Resolution;
use rtc_core::media_api::TrackPriority;
use rtc_core::{Pt, SeqNo, Ssrc};

use crate::audio_red::{AudioRedMode, RedEncoder};
use crate::config::{MediaKind, PublishedStream};
use crate::event::{EventQueue, RouterEvent};
use crate::layer::{Layer, StreamRole};
use crate::router::RouterConfig;
use crate::subscription::Subscription;
use crate::transmit::{TransmitKind, TransmitQueue};
use crate::{RouterError, SessionId};
use crate::{SubscriptionId, TrackId};

/// A publisher's track as the router keeps it.
#[derive(Debug)]
pub(crate) struct Track {
    pub(crate) publisher: SessionId,
    pub(crate) stream: PublishedStream,
    pub(crate) clock_rate: u32,
    /// RTX payload type -> primary payload type.
    rtx_apt: [Option<Pt>; 128],
    known_pt: [bool; 128],
    /// The per-SSRC streams: one per rid in rid order, or the one announced.
    pub(crate) layers: Vec<Layer>,
    /// Layer indices from the lowest resolution to the highest (measured from keyframes;
    /// layers not measured yet come first, in rid order, and layers not bound yet last).
    pub(crate) order: Vec<usize>,
    /// Which of the report slots of the report interval this track reports in.
    pub(crate) report_slot: u8,
    pub(crate) subscriptions: Vec<Subscription>,
    /// Audio packets received and voiced ones (RFC 6464 level) since the last report.
    pub(crate) audio_packets: u16,
    pub(crate) audio_voiced: u16,
    /// Its priority in every subscriber's allocation (signaling sets it: screen share,
    /// dominant speaker...).
    pub(crate) priority: TrackPriority,
    /// The RED payloads of an audio track, unless redundant audio is off.
    pub(crate) red: Option<Box<RedEncoder>>,
}

impl Track {
    /// The track of `stream`, sent by `publisher` in one layer. Fails when the stream has no
    /// codec or its kind is not its codec's.
    pub(crate) fn new(
        publisher: SessionId,
        stream: PublishedStream,
        config: &RouterConfig,
        report_slot: u8,
    ) -> Result<Self, RouterError> {
        let first = stream.codecs.first().ok_or(RouterError::NoCodec)?;
        if kind_of(first.codec) != stream.kind {
            return Err(RouterError::KindMismatch);
        }
        let clock_rate = first.codec.clock_rate();
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
        let layers: Vec<Layer> = if stream.rids.is_empty() {
            vec![Layer::new(
                Some(stream.ssrc),
                stream.rtx_ssrc,
                stream.kind,
                clock_rate,
                config,
            )]
        } else {
            stream
                .rids
                .iter()
                .map(|_| Layer::new(None, None, stream.kind, clock_rate, config))
                .collect()
        };
        let stream_kind = stream.kind;
        Ok(Track {
            publisher,
            clock_rate,
            rtx_apt,
            known_pt,
            order: (0..layers.len()).collect(),
            layers,
            report_slot,
            subscriptions: Vec::new(),
            stream,
            audio_packets: 0,
            audio_voiced: 0,
            priority: TrackPriority::NORMAL,
            red: (stream_kind == MediaKind::Audio && config.audio_red != AudioRedMode::Off)
                .then(RedEncoder::new),
        })
    }

    /// Every SSRC the publisher sends this track with (each layer's media and RTX).
    pub(crate) fn ssrcs(&self) -> impl Iterator<Item = Ssrc> + '_ {
        self.layers.iter().flat_map(Layer::ssrcs)
    }

    /// The layer `ssrc` belongs to, by index, and which of its streams it names.
    pub(crate) fn layer_of(&self, ssrc: Ssrc) -> Option<(usize, StreamRole)> {
        self.layers
            .iter()
            .enumerate()
            .find_map(|(index, layer)| Some((index, layer.role_of(ssrc)?)))
    }

    /// Whether the track is sent in rid layers (and subscriptions choose among them).
    pub(crate) fn is_simulcast(&self) -> bool {
        !self.stream.rids.is_empty()
    }

    /// Whether some layer of a rid track still waits for its SSRC, or for its RTX SSRC when
    /// RTX was negotiated.
    pub(crate) fn has_unbound_layers(&self) -> bool {
        let rtx = self.stream.codecs.iter().any(|c| c.rtx_pt.is_some());
        self.is_simulcast()
            && self
                .layers
                .iter()
                .any(|l| !l.is_bound() || (rtx && !l.is_rtx_bound()))
    }

    /// Binds `ssrc` to the layer of `rid` if the packet belongs here: `mid` (when the packet
    /// carries one) must be the track's. `repaired` says the rid came in the repaired-rid
    /// extension or on an RTX payload type: the SSRC is the layer's RTX stream. Returns the
    /// layer index and role when bound.
    pub(crate) fn bind(
        &mut self,
        ssrc: Ssrc,
        mid: Option<&[u8]>,
        rid: &[u8],
        repaired: bool,
    ) -> Option<(usize, StreamRole)> {
        if let Some(mid) = mid
            && self.stream.mid.as_deref().map(str::as_bytes) != Some(mid)
        {
            return None;
        }
        let index = self.stream.rids.iter().position(|r| r.as_bytes() == rid)?;
        let role = if repaired {
            StreamRole::Rtx
        } else {
            StreamRole::Media
        };
        self.layers
            .get_mut(index)?
            .bind(role, ssrc)
            .then_some((index, role))
    }

    /// The codec a media payload type carries.
    pub(crate) fn codec_of(&self, pt: Pt) -> Option<rtc_core::sdp::Codec> {
        self.stream
            .codecs
            .iter()
            .find(|c| c.pt == pt)
            .map(|c| c.codec)
    }

    /// Layer indices from the lowest resolution to the highest.
    pub(crate) fn layer_order(&self) -> &[usize] {
        &self.order
    }

    /// Records a keyframe's resolution on layer `index` and re-sorts the order when it
    /// changed (in place: no allocation).
    pub(crate) fn observe_resolution(&mut self, index: usize, resolution: Resolution) {
        let Some(layer) = self.layers.get_mut(index) else {
            return;
        };
        if !layer.set_resolution(resolution) {
            return;
        }
        self.sort_layers();
    }

    /// Sorts the layer order (in place: no allocation): layers whose SSRC is not known yet
    /// (a rid never sent) last, since nothing of them can be forwarded; the others by the
    /// area of their last keyframe, those not measured yet first, in rid order.
    pub(crate) fn sort_layers(&mut self) {
        let layers = &self.layers;
        self.order.sort_unstable_by_key(|&i| {
            let layer = layers.get(i);
            let unbound = !layer.is_some_and(Layer::is_bound);
            let area = layer
                .and_then(Layer::resolution)
                .map(|r| u32::from(r.width) * u32::from(r.height));
            (unbound, area, i)
        });
    }

    /// Whether `pt` is one of the track's media payload types.
    pub(crate) fn is_media_payload_type(&self, pt: Pt) -> bool {
        self.known_pt
            .get(usize::from(pt.0))
            .copied()
            .unwrap_or(false)
    }

    /// The media payload type an RTX payload type repairs.
    pub(crate) fn primary_payload_type(&self, rtx_pt: Pt) -> Option<Pt> {
        self.rtx_apt.get(usize::from(rtx_pt.0)).copied().flatten()
    }

    /// The attached subscription `id`.
    pub(crate) fn subscription_mut(&mut self, id: SubscriptionId) -> Option<&mut Subscription> {
        self.subscriptions.iter_mut().find(|s| s.id == id)
    }

    /// Detaches subscription `id` from the track.
    pub(crate) fn take_subscription(&mut self, id: SubscriptionId) -> Option<Subscription> {
        let index = self.subscriptions.iter().position(|s| s.id == id)?;
        Some(self.subscriptions.swap_remove(index))
    }

    /// The earliest NACK deadline of the track's layers, when the publisher takes NACKs.
    /// Without NACK the layers keep their (bounded) loss record for duplicate and gap
    /// detection only; their deadlines must not wake the worker, which would never clear
    /// them.
    pub(crate) fn nack_timeout(&self) -> Option<Instant> {
        if !self.stream.nack {
            return None;
        }
        self.layers.iter().filter_map(Layer::nack_timeout).min()
    }

    /// Sends the NACKs due now, one per layer with missing packets. Returns how many.
    pub(crate) fn send_nacks(
        &mut self,
        now: Instant,
        feedback_ssrc: Ssrc,
        scratch: &mut Vec<SeqNo>,
        wire_scratch: &mut Vec<u16>,
        out: &mut TransmitQueue,
    ) -> u64 {
        if !self.stream.nack {
            return 0;
        }
        let mut sent = 0;
        for layer in &mut self.layers {
            if layer.nack_timeout().is_none_or(|at| at > now) {
                continue;
            }
            scratch.clear();
            layer.poll_nacks(now, scratch);
            if scratch.is_empty() {
                continue;
            }
            wire_scratch.clear();
            wire_scratch.extend(scratch.iter().map(|s| s.wire()));
            let lost = &wire_scratch[..];
            let media_ssrc = layer.ssrc();
            if out.push_with(self.publisher, TransmitKind::Rtcp, |buf| {
                rtc_core::rtcp::feedback::write_nack(buf, feedback_ssrc, media_ssrc, lost).ok()
            }) {
                sent += 1;
            }
        }
        sent
    }

    /// Tells the publisher the most it may send (REMB, draft-alvestrand-rmcat-remb) for the
    /// media SSRCs of this track's bound layers; false when there is none yet. A browser's
    /// estimator takes it as a ceiling on everything it sends on the connection.
    pub(crate) fn send_remb(
        &self,
        feedback_ssrc: Ssrc,
        bitrate: u64,
        out: &mut TransmitQueue,
    ) -> bool {
        const MAX_REMB_SSRCS: usize = 8;
        let mut ssrcs = [Ssrc(0); MAX_REMB_SSRCS];
        let mut count = 0;
        for layer in self.layers.iter().filter(|l| l.is_bound()) {
            if let Some(slot) = ssrcs.get_mut(count) {
                *slot = layer.ssrc();
                count += 1;
            }
        }
        let Some(ssrcs) = ssrcs.get(..count).filter(|s| !s.is_empty()) else {
            return false;
        };
        out.push_with(self.publisher, TransmitKind::Rtcp, |buf| {
            rtc_core::rtcp::write_remb(buf, feedback_ssrc, bitrate, ssrcs).ok()
        })
    }

    /// The track's reports: a receiver report per layer to the publisher, and to each
    /// subscriber that was sent something a sender report whose RTP time matches its
    /// rewritten timestamps. Returns how many sender reports were queued.
    pub(crate) fn send_reports(
        &mut self,
        now: Instant,
        feedback_ssrc: Ssrc,
        out: &mut TransmitQueue,
    ) -> u64 {
        use rtc_core::rtcp::SenderInfo;
        use rtc_core::rtcp::report::{write_receiver_report, write_sender_report};
        let mut sender_reports = 0;
        for (index, layer) in self.layers.iter_mut().enumerate() {
            if !layer.is_bound() {
                continue;
            }
            let block = layer.report_block(now);
            out.push_with(self.publisher, TransmitKind::Rtcp, |buf| {
                write_receiver_report(buf, feedback_ssrc, &[block]).ok()
            });
            let Some((ntp_now, rtp_now)) = layer.sender_clock_at(now, self.clock_rate) else {
                continue;
            };
            for subscription in self.subscriptions.iter().filter(|s| s.layer == index) {
                if subscription.packets_sent == 0 {
                    continue;
                }
                let Some(offset) = subscription.rewriter.timestamp_offset(layer.ssrc()) else {
                    continue;
                };
                let info = SenderInfo {
                    ssrc: subscription.stream.ssrc,
                    ntp_time: ntp_now,
                    rtp_time: rtp_now.wrapping_add(offset),
                    packet_count: subscription.packets_sent,
                    octet_count: subscription.octets_sent,
                };
                if out.push_with(subscription.subscriber, TransmitKind::Rtcp, |buf| {
                    write_sender_report(buf, &info, &[]).ok()
                }) {
                    sender_reports += 1;
                }
            }
        }
        sender_reports
    }

    /// Marks the layers that received nothing for `timeout` inactive, with an event each.
    pub(crate) fn check_layers(
        &mut self,
        now: Instant,
        timeout: Duration,
        id: TrackId,
        events: &mut EventQueue,
    ) {
        for layer in &mut self.layers {
            if layer.check_inactive(now, timeout) {
                events.push(RouterEvent::LayerInactive {
                    track: id,
                    ssrc: layer.ssrc(),
                });
            }
        }
    }
}

/// The media kind a codec carries.
fn kind_of(codec: rtc_core::sdp::Codec) -> MediaKind {
    if codec.is_audio() {
        MediaKind::Audio
    } else {
        MediaKind::Video
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Codec, CodecParams, ExtensionIds, SubscribedStream};

    fn video() -> PublishedStream {
        PublishedStream {
            kind: MediaKind::Video,
            ssrc: Ssrc(10),
            rtx_ssrc: Some(Ssrc(11)),
            codecs: vec![CodecParams {
                codec: Codec::Vp8,
                pt: Pt(96),
                rtx_pt: Some(Pt(97)),
            }],
            extensions: ExtensionIds::default(),
            nack: true,
            mid: None,
            rids: Vec::new(),
        }
    }

    fn track(stream: PublishedStream) -> Result<Track, RouterError> {
        Track::new(SessionId(1), stream, &RouterConfig::default(), 0)
    }

    #[test]
    fn a_track_has_one_layer_found_by_either_ssrc() {
        let track = track(video()).unwrap();
        assert_eq!(track.layers.len(), 1);
        assert_eq!(track.layer_of(Ssrc(10)), Some((0, StreamRole::Media)));
        assert_eq!(track.layer_of(Ssrc(11)), Some((0, StreamRole::Rtx)));
        assert_eq!(track.layer_of(Ssrc(12)), None);
        assert_eq!(track.ssrcs().collect::<Vec<_>>(), [Ssrc(10), Ssrc(11)]);
        assert_eq!(track.clock_rate, 90_000);
    }

    #[test]
    fn payload_types_and_their_rtx() {
        let track = track(video()).unwrap();
        assert!(track.is_media_payload_type(Pt(96)));
        assert!(!track.is_media_payload_type(Pt(97)));
        assert!(
            !track.is_media_payload_type(Pt(200)),
            "out of range is unknown"
        );
        assert_eq!(track.primary_payload_type(Pt(97)), Some(Pt(96)));
        assert_eq!(track.primary_payload_type(Pt(96)), None);
    }

    #[test]
    fn streams_without_a_codec_or_of_the_wrong_kind_are_refused() {
        let none = PublishedStream {
            codecs: Vec::new(),
            ..video()
        };
        assert_eq!(track(none).unwrap_err(), RouterError::NoCodec);
        let audio_vp8 = PublishedStream {
            kind: MediaKind::Audio,
            ..video()
        };
        assert_eq!(track(audio_vp8).unwrap_err(), RouterError::KindMismatch);
    }

    #[test]
    fn rid_layers_bind_by_mid_and_rid_and_order_by_resolution() {
        let mut track = track(PublishedStream {
            mid: Some("v".to_owned()),
            rids: vec!["f".to_owned(), "q".to_owned()],
            ..video()
        })
        .unwrap();
        assert!(track.is_simulcast());
        assert_eq!(track.ssrcs().count(), 0);
        assert_eq!(
            track.bind(Ssrc(5), Some(b"a"), b"f", false),
            None,
            "other mid"
        );
        assert_eq!(
            track.bind(Ssrc(5), Some(b"v"), b"x", false),
            None,
            "no such rid"
        );
        assert_eq!(
            track.bind(Ssrc(5), Some(b"v"), b"f", false),
            Some((0, StreamRole::Media))
        );
        assert_eq!(
            track.bind(Ssrc(6), None, b"f", false),
            None,
            "never rebound"
        );
        assert_eq!(
            track.bind(Ssrc(7), None, b"f", true),
            Some((0, StreamRole::Rtx))
        );
        assert_eq!(track.layer_of(Ssrc(7)), Some((0, StreamRole::Rtx)));
        assert!(track.has_unbound_layers());
        assert_eq!(track.layer_order(), [0, 1], "rid order until measured");
        let size = |width, height| Resolution { width, height };
        assert_eq!(
            track.bind(Ssrc(8), Some(b"v"), b"q", false),
            Some((1, StreamRole::Media))
        );
        track.sort_layers();
        assert_eq!(track.layer_order(), [0, 1], "rid order, both bound");
        track.observe_resolution(1, size(320, 180));
        assert_eq!(track.layer_order(), [0, 1], "unmeasured first");
        track.observe_resolution(0, size(1280, 720));
        assert_eq!(track.layer_order(), [1, 0]);
    }

    #[test]
    fn a_layer_never_sent_goes_last_in_the_order() {
        // Firefox starts its top layer late: until then a cap at rank 0 must mean the
        // smallest layer that flows, not the silent one first in rid order.
        let mut track = track(PublishedStream {
            mid: Some("v".to_owned()),
            rids: vec!["f".to_owned(), "h".to_owned(), "q".to_owned()],
            ..video()
        })
        .unwrap();
        let size = |width, height| Resolution { width, height };
        track.bind(Ssrc(5), Some(b"v"), b"h", false);
        track.bind(Ssrc(6), Some(b"v"), b"q", false);
        track.sort_layers();
        track.observe_resolution(1, size(640, 360));
        track.observe_resolution(2, size(320, 180));
        assert_eq!(track.layer_order(), [2, 1, 0]);
        track.bind(Ssrc(7), Some(b"v"), b"f", false);
        track.sort_layers();
        assert_eq!(
            track.layer_order(),
            [0, 2, 1],
            "bound, not measured yet: first"
        );
        track.observe_resolution(0, size(1280, 720));
        assert_eq!(track.layer_order(), [2, 1, 0]);
    }

    #[test]
    fn nacks_are_due_only_when_the_publisher_takes_them() {
        let now = crate::test_time::origin();
        let mut with = track(video()).unwrap();
        let mut without = track(PublishedStream {
            nack: false,
            ..video()
        })
        .unwrap();
        for track in [&mut with, &mut without] {
            track.layers[0].handle_packet(now, 1, 0);
            track.layers[0].handle_packet(now, 3, 0);
        }
        assert!(with.nack_timeout().is_some());
        assert_eq!(without.nack_timeout(), None);
        let mut out = TransmitQueue::with_capacity(4);
        let (mut scratch, mut wire) = (Vec::new(), Vec::new());
        let later = now + Duration::from_secs(1);
        assert_eq!(
            without.send_nacks(later, Ssrc(1), &mut scratch, &mut wire, &mut out),
            0
        );
        assert_eq!(
            with.send_nacks(later, Ssrc(1), &mut scratch, &mut wire, &mut out),
            1
        );
        assert_eq!(wire, [2]);
        assert_eq!(out.as_slice()[0].session, SessionId(1));
    }

    #[test]
    fn sender_reports_go_to_subscribers_of_the_layer_that_were_sent_something() {
        let now = crate::test_time::origin();
        let mut track = track(video()).unwrap();
        let subscribed = SubscribedStream {
            ssrc: Ssrc(1000),
            rtx_ssrc: None,
            codecs: track.stream.codecs.clone(),
            extensions: ExtensionIds::default(),
            red_pt: None,
            initial_seq: 0,
            initial_timestamp: 0,
        };
        for (i, sent) in [(1, true), (2, false)] {
            let mut subscription = Subscription::new(
                SubscriptionId(i),
                SessionId(100 + i),
                0,
                subscribed.clone(),
                &track.stream,
                90_000,
            )
            .unwrap();
            subscription.attach_to_layer(0, 1);
            if sent {
                let received = track.layers[0].handle_packet(now, 1, 5_000);
                let source = crate::rewrite::SourcePacket {
                    source: Ssrc(10),
                    seq: received.seq,
                    timestamp: 5_000,
                };
                subscription.rewriter.rewrite(now, source).unwrap();
                subscription.count_sent(100);
            }
            track.subscriptions.push(subscription);
        }
        let mut out = TransmitQueue::with_capacity(4);
        // Before any sender report from the publisher: only the receiver report.
        assert_eq!(track.send_reports(now, Ssrc(1), &mut out), 0);
        assert_eq!(out.len(), 1);
        track.layers[0].handle_sender_report(now, 1 << 32, 5_000);
        out.clear();
        assert_eq!(track.send_reports(now, Ssrc(1), &mut out), 1);
        assert_eq!(out.as_slice()[1].session, SessionId(101));
    }

    #[test]
    fn silent_layers_go_inactive_with_an_event() {
        let now = crate::test_time::origin();
        let mut track = track(video()).unwrap();
        let mut events = EventQueue::default();
        track.layers[0].handle_packet(now, 1, 0);
        let timeout = Duration::from_secs(2);
        track.check_layers(
            now + Duration::from_secs(1),
            timeout,
            TrackId(3),
            &mut events,
        );
        assert_eq!(events.pop(), None);
        track.check_layers(now + timeout, timeout, TrackId(3), &mut events);
        assert_eq!(
            events.pop(),
            Some(RouterEvent::LayerInactive {
                track: TrackId(3),
                ssrc: Ssrc(10)
            })
        );
    }
}
