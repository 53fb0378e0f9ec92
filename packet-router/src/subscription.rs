//! A subscription: one subscriber's stream of one track. It holds the subscriber's SSRCs,
//! the payload-type and extension-id maps from the publisher's numbering to the
//! subscriber's, the rewriter that keeps the subscriber's sequence numbers and timestamps
//! continuous across sources, the layer of the track it receives, what it was sent (for
//! sender reports), and which packets it had resent recently. Answering the subscriber's
//! NACKs from the layer's retransmission cache, within its session's budget, happens here.

use std::time::{Duration, Instant};

use rtc_core::rtp::RtpPacket;
use rtc_core::{Pt, SeqNo, Ssrc};

use crate::SubscriptionId;
use crate::TransmitKind;
use crate::config::{CodecParams, ExtensionIds, PublishedStream, SubscribedStream};
use crate::copy_writer::{AbsSendTime, Numbering, write_copy};
use crate::layer::{Layer, StreamRole};
use crate::retransmit_budget::{RetransmitBudget, RetransmitBudgetConfig};
use crate::rewrite::{SourcePacket, SubscriberRewriter};
use crate::simulcast::{LayerChoice, PictureRewriter, SourcePicture};
use crate::transmit::TransmitQueue;
use crate::transport_sequence::TransportSequence;
use crate::{RouterError, RouterStats, SessionId};

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
pub(crate) struct Subscription {
    pub(crate) subscriber: SessionId,
    /// The subscriber's SSRC and RTX SSRC for this track.
    pub(crate) media_ssrc: Ssrc,
    pub(crate) rtx_ssrc: Option<Ssrc>,
    /// The subscriber's transport-wide sequence number extension id, if negotiated.
    pub(crate) transport_cc_id: Option<u8>,
    /// The subscriber's RED payload type while it gets redundant audio (`audio_red.rs`).
    pub(crate) red: Option<Pt>,
    /// Index of the subscriber's transport-wide sequence number in the router's counters
    /// (shared by the session's subscriptions).
    pub(crate) counter: usize,
    /// Which layer of the track this subscription receives.
    pub(crate) layer: usize,
    /// No packet was forwarded since the subscription was attached to its track.
    pub(crate) awaiting_first_packet: bool,
    pub(crate) packets_sent: u32,
    pub(crate) octets_sent: u32,
    pub(crate) rtx_seq: u16,
    pub(crate) rewriter: SubscriberRewriter,
    /// Publisher payload type -> (subscriber payload type, subscriber RTX payload type).
    pt_map: [Option<(Pt, Option<Pt>)>; 128],
    /// Publisher extension id -> subscriber extension id (0: drop the element).
    pub(crate) ext_map: [u8; 256],
    /// The subscriber's ids of the forwarded extensions: within one track, subscriptions with
    /// equal keys have equal `ext_map`s and share one header template per packet.
    pub(crate) ext_key: u64,
    pub(crate) id: SubscriptionId,
    pub(crate) stream: SubscribedStream,
    /// Attached to a simulcast track: the layer is chosen per subscription and picture
    /// numbers are rewritten.
    pub(crate) simulcast: bool,
    pub(crate) choice: LayerChoice,
    pub(crate) pictures: PictureRewriter,
    /// The packet last retransmitted from each slot of the layer's retransmission cache, and
    /// when. It mirrors the cache's slots, so every packet the cache can answer has its own.
    resent: Box<[Option<(SeqNo, Instant)>]>,
    /// `octets_sent` when the session's retransmission budget was last credited with this
    /// subscription's forwarded bytes.
    budget_seen_octets: u32,
}

impl Subscription {
    /// A subscription not attached to any track yet, with its numbering drawn by the caller
    /// (`stream.initial_seq`, `stream.initial_timestamp`) and its payload types and
    /// extension ids mapped from `published`.
    pub(crate) fn new(
        id: SubscriptionId,
        subscriber: SessionId,
        counter: usize,
        stream: SubscribedStream,
        published: &PublishedStream,
        clock_rate: u32,
    ) -> Result<Self, RouterError> {
        let mut subscription = Subscription {
            id,
            subscriber,
            media_ssrc: stream.ssrc,
            rtx_ssrc: stream.rtx_ssrc,
            transport_cc_id: stream.extensions.transport_cc,
            red: None,
            counter,
            layer: 0,
            awaiting_first_packet: true,
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
            simulcast: false,
            choice: LayerChoice::default(),
            pictures: PictureRewriter::default(),
            budget_seen_octets: 0,
        };
        subscription.map_stream(published)?;
        Ok(subscription)
    }

    /// The SSRCs Sluice sends this subscription with: media, then RTX.
    pub(crate) fn ssrcs(&self) -> impl Iterator<Item = Ssrc> + use<> {
        std::iter::once(self.stream.ssrc).chain(self.stream.rtx_ssrc)
    }

    /// Queues one padding-only packet (RFC 3550 padding, `padding` bytes up to 255) on the
    /// subscription's RTX stream with the session's next transport-wide sequence number: a
    /// probe the subscriber drops but acknowledges. Returns its size; `None` without RTX or
    /// transport-wide feedback, or when the queue is full.
    pub(crate) fn write_padding(
        &mut self,
        now: Instant,
        send_time: AbsSendTime,
        padding: usize,
        sequence: &mut TransportSequence,
        out: &mut TransmitQueue,
    ) -> Option<usize> {
        let ssrc = self.rtx_ssrc?;
        let pt = self.stream.codecs.iter().find_map(|c| c.rtx_pt)?;
        let transport_cc = self.transport_cc_id?;
        let padding = padding.clamp(1, 255);
        // One-byte extensions: transport-wide sequence number, then abs-send-time.
        let mut extensions = [0u8; 8];
        let mut used: usize = 3;
        if let Some(first) = extensions.get_mut(0) {
            *first = transport_cc << 4 | 1;
        }
        if let Some(id) = self.stream.extensions.abs_send_time
            && let Some(slot) = extensions.get_mut(3..7)
        {
            let [a, b, c] = send_time.0;
            slot.copy_from_slice(&[id << 4 | 2, a, b, c]);
            used = 7;
        }
        let words = used.div_ceil(4);
        let header_len = 12 + 4 + words * 4;
        let len = header_len + padding;
        let seq = self.rtx_seq;
        let queued = out.push_with(self.subscriber, TransmitKind::Rtp, |buf| {
            let packet = buf.get_mut(..len)?;
            packet.fill(0);
            // V=2, padding, extension; the RTX payload type; the RTX stream's numbering.
            packet.get_mut(..2)?.copy_from_slice(&[0xB0, pt.0]);
            packet.get_mut(2..4)?.copy_from_slice(&seq.to_be_bytes());
            packet
                .get_mut(8..12)?
                .copy_from_slice(&ssrc.0.to_be_bytes());
            packet.get_mut(12..14)?.copy_from_slice(&[0xBE, 0xDE]);
            packet
                .get_mut(14..16)?
                .copy_from_slice(&(words as u16).to_be_bytes());
            packet
                .get_mut(16..16 + words * 4)?
                .copy_from_slice(extensions.get(..words * 4)?);
            let transport_seq = sequence.take(now, len);
            packet
                .get_mut(17..19)?
                .copy_from_slice(&transport_seq.to_be_bytes());
            *packet.last_mut()? = padding as u8;
            Some(len)
        });
        if queued {
            self.rtx_seq = seq.wrapping_add(1);
            Some(len)
        } else {
            None
        }
    }

    /// The subscriber's payload type and RTX payload type for the publisher's `pt`, when the
    /// subscriber negotiated its codec.
    pub(crate) fn mapped_payload_types(&self, pt: Pt) -> Option<(Pt, Option<Pt>)> {
        self.pt_map.get(usize::from(pt.0 & 0x7f)).copied().flatten()
    }

    /// Maps the publisher's payload types and extension ids to the subscriber's, by codec
    /// and by extension meaning. On error nothing changes.
    pub(crate) fn map_stream(&mut self, published: &PublishedStream) -> Result<(), RouterError> {
        let mut pt_map = [None; 128];
        let mut any = false;
        for codec in &published.codecs {
            let Some(theirs) = self
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
        self.pt_map = pt_map;
        self.ext_map = extension_map(&published.extensions, &self.stream.extensions);
        self.ext_key = forwarded_extensions(&self.stream.extensions)
            .iter()
            .fold(0u64, |key, id| {
                key << 16 | id.map_or(0, |id| 0x100 | u64::from(id))
            });
        Ok(())
    }

    /// Starts receiving `layer` of a (new) track, whose cache holds `cache_capacity`
    /// packets: sequence numbers start over with the new source, so the resend record does.
    pub(crate) fn attach_to_layer(&mut self, layer: usize, cache_capacity: usize) {
        self.layer = layer;
        self.simulcast = false;
        self.choice.reset_target();
        self.pictures.restart();
        self.resent = vec![None; cache_capacity].into_boxed_slice();
        self.awaiting_first_packet = true;
    }

    /// Whether this subscription's copies get their own VP8/VP9 picture numbers: on a
    /// simulcast track, under a temporal-layer cap, and for good once renumbered.
    pub(crate) fn rewrites_pictures(&self) -> bool {
        self.simulcast || self.choice.max_temporal.is_some() || self.pictures.is_mapping()
    }

    /// Leaves a fresh packet out on purpose (a filtered temporal layer) without a gap in
    /// the subscriber's numbering.
    pub(crate) fn skip(&mut self, source: SourcePacket, picture: SourcePicture) {
        self.rewriter.skip(source);
        self.pictures.skip(source.source, picture);
    }

    /// Counts a fresh copy for the subscriber's sender reports.
    pub(crate) fn count_sent(&mut self, payload_len: usize) {
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self
            .octets_sent
            .wrapping_add(u32::try_from(payload_len).unwrap_or(0));
    }

    /// Answers the subscriber's NACK for `lost` (its sequence numbers) from `layer`'s
    /// retransmission cache, on RTX when negotiated, as far as the session's `budget` allows
    /// and at most once per [`MIN_RESEND_INTERVAL`] per packet. Counts into `stats`.
    #[allow(clippy::too_many_arguments)] // Disjoint parts of the router, borrowed together.
    pub(crate) fn retransmit(
        &mut self,
        (now, send_time): (Instant, AbsSendTime),
        layers: &[Layer],
        lost: &[u16],
        mut transport_cc: Option<&mut TransportSequence>,
        mut budget: Option<&mut RetransmitBudget>,
        budget_config: &RetransmitBudgetConfig,
        stats: &mut RouterStats,
        out: &mut TransmitQueue,
    ) {
        if let Some(budget) = budget.as_deref_mut() {
            let forwarded = self.octets_sent.wrapping_sub(self.budget_seen_octets);
            budget.refill(now, budget_config, u64::from(forwarded));
        }
        self.budget_seen_octets = self.octets_sent;
        let Some(current) = layers.get(self.layer) else {
            return;
        };
        for &seq in lost {
            let Some(mapping) = self.rewriter.source_seq(seq) else {
                stats.retransmissions_missed += 1;
                continue;
            };
            // The layer sent before a simulcast switch, found by its SSRC; otherwise the
            // current one. A source no layer has any more (the track was replaced) has
            // nothing to resend.
            let layer = if mapping.source == current.ssrc() {
                current
            } else if let Some(layer) = layers
                .iter()
                .find(|l| l.role_of(mapping.source) == Some(StreamRole::Media))
            {
                layer
            } else {
                stats.retransmissions_missed += 1;
                continue;
            };
            let extended = mapping.seq;
            let slot = (extended.0 % (self.resent.len().max(1) as u64)) as usize;
            let recently_resent = |entry: &Option<(SeqNo, Instant)>| {
                matches!(*entry, Some((resent, at))
                    if resent == extended
                        && now.saturating_duration_since(at) < MIN_RESEND_INTERVAL)
            };
            if self.resent.get(slot).is_some_and(recently_resent) {
                continue;
            }
            let Some(original) = layer.cached(now, extended) else {
                stats.retransmissions_missed += 1;
                continue;
            };
            // The one parse of the cached copy; the writer reuses its offsets.
            let Ok(view) = RtpPacket::parse(original) else {
                continue;
            };
            let source = SourcePacket {
                source: layer.ssrc(),
                seq: extended,
                timestamp: view.timestamp(),
            };
            // What the copy costs the subscriber's budget: the packet, and the RTX header's
            // original sequence number when RTX is negotiated.
            let cost = original.len() as u64 + 2;
            if budget.as_deref().is_some_and(|b| b.available() < cost) {
                stats.retransmissions_over_budget += 1;
                continue;
            }
            let numbering = Numbering::Retransmission {
                subscriber_seq: seq,
                timestamp_offset: mapping.timestamp_offset,
            };
            let picture = if self.rewrites_pictures() {
                let picture = self.picture_of(&view);
                // A packet of a picture left out by the temporal cap (a gap the subscriber
                // could not be spared: it arrived late) is not sent now either.
                if picture.is_some_and(|p| self.pictures.was_skipped(source.source, p)) {
                    stats.retransmissions_missed += 1;
                    continue;
                }
                picture.and_then(|p| Some((p.vp9, self.pictures.map_resent(source.source, p)?)))
            } else {
                None
            };
            if write_copy(
                now,
                self,
                source,
                &view,
                transport_cc.as_deref_mut(),
                out,
                (numbering, send_time),
                picture,
            ) {
                if let Some(budget) = budget.as_deref_mut() {
                    budget.try_take(cost);
                }
                stats.retransmissions_sent += 1;
                if let Some(entry) = self.resent.get_mut(slot) {
                    *entry = Some((extended, now));
                }
            }
        }
    }
}

impl Subscription {
    /// The picture numbering of a (cached) packet, by the codec its payload type maps to.
    fn picture_of<T: AsRef<[u8]>>(&self, view: &RtpPacket<T>) -> Option<SourcePicture> {
        let (out_pt, _) = self.mapped_payload_types(view.payload_type())?;
        let codec = self.stream.codecs.iter().find(|c| c.pt == out_pt)?.codec;
        crate::simulcast::picture_of(codec, view.payload())
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
fn forwarded_extensions(ids: &ExtensionIds) -> [Option<u8>; 3] {
    [ids.abs_send_time, ids.audio_level, ids.transport_cc]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Codec, MediaKind};
    use crate::router::RouterConfig;
    use crate::transmit::TransmitKind;

    const VP8: Pt = Pt(96);
    const VP8_RTX: Pt = Pt(97);

    fn published() -> PublishedStream {
        PublishedStream {
            kind: MediaKind::Video,
            ssrc: Ssrc(10),
            rtx_ssrc: Some(Ssrc(11)),
            codecs: vec![
                CodecParams {
                    codec: Codec::Vp8,
                    pt: VP8,
                    rtx_pt: Some(VP8_RTX),
                },
                CodecParams {
                    codec: Codec::H264,
                    pt: Pt(102),
                    rtx_pt: None,
                },
            ],
            extensions: ExtensionIds {
                mid: Some(1),
                abs_send_time: Some(2),
                transport_cc: Some(3),
                ..ExtensionIds::default()
            },
            nack: true,
            mid: None,
            rids: Vec::new(),
        }
    }

    fn subscribed(codecs: Vec<CodecParams>, extensions: ExtensionIds) -> SubscribedStream {
        SubscribedStream {
            ssrc: Ssrc(1000),
            rtx_ssrc: Some(Ssrc(2000)),
            codecs,
            extensions,
            red_pt: None,
            initial_seq: 500,
            initial_timestamp: 0,
        }
    }

    fn vp8_subscriber(extensions: ExtensionIds) -> Subscription {
        let codecs = vec![CodecParams {
            codec: Codec::Vp8,
            pt: Pt(120),
            rtx_pt: Some(Pt(121)),
        }];
        Subscription::new(
            SubscriptionId(1),
            SessionId(7),
            0,
            subscribed(codecs, extensions),
            &published(),
            90_000,
        )
        .unwrap()
    }

    #[test]
    fn payload_types_map_by_codec() {
        let subscription = vp8_subscriber(ExtensionIds::default());
        assert_eq!(
            subscription.mapped_payload_types(VP8),
            Some((Pt(120), Some(Pt(121))))
        );
        assert_eq!(subscription.mapped_payload_types(Pt(102)), None, "no H264");
        assert_eq!(
            subscription.ssrcs().collect::<Vec<_>>(),
            [Ssrc(1000), Ssrc(2000)]
        );
    }

    #[test]
    fn a_subscriber_without_a_common_codec_is_refused() {
        let opus = vec![CodecParams {
            codec: Codec::Opus,
            pt: Pt(111),
            rtx_pt: None,
        }];
        let refused = Subscription::new(
            SubscriptionId(1),
            SessionId(7),
            0,
            subscribed(opus, ExtensionIds::default()),
            &published(),
            90_000,
        );
        assert_eq!(refused.unwrap_err(), RouterError::NoCommonCodec);
    }

    #[test]
    fn extensions_map_by_meaning_and_session_ones_are_dropped() {
        let ids = ExtensionIds {
            mid: Some(9),
            abs_send_time: Some(5),
            transport_cc: Some(6),
            ..ExtensionIds::default()
        };
        let subscription = vp8_subscriber(ids);
        assert_eq!(subscription.ext_map[2], 5, "abs-send-time");
        assert_eq!(subscription.ext_map[3], 6, "transport-cc");
        assert_eq!(
            subscription.ext_map[1], 0,
            "mid is the publisher's, dropped"
        );
        assert_eq!(subscription.transport_cc_id, Some(6));

        // Equal ids share a key (and so a header template); different ids do not.
        assert_eq!(vp8_subscriber(ids).ext_key, subscription.ext_key);
        let other = ExtensionIds {
            transport_cc: Some(7),
            ..ids
        };
        assert_ne!(vp8_subscriber(other).ext_key, subscription.ext_key);
        // mid is not forwarded, so it does not split groups.
        let other_mid = ExtensionIds {
            mid: Some(4),
            ..ids
        };
        assert_eq!(vp8_subscriber(other_mid).ext_key, subscription.ext_key);
    }

    fn packet(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, VP8.0, 0, 0, 0, 0, 0x0b, 0xb8, 0, 0, 0, 10];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(b"payload");
        p
    }

    /// A layer that received and cached packets 0..10, and a subscriber that was forwarded
    /// all of them (so its numbering is active).
    fn forwarded(now: Instant) -> (Layer, Subscription) {
        let mut layer = Layer::new(
            Some(Ssrc(10)),
            Some(Ssrc(11)),
            MediaKind::Video,
            90_000,
            &RouterConfig::default(),
        );
        let mut subscription = vp8_subscriber(ExtensionIds::default());
        subscription.attach_to_layer(0, layer.cache_capacity());
        for seq in 0..10 {
            let received = layer.handle_packet(now, seq, 3000);
            layer.store(now, received.seq, &packet(seq));
            let source = SourcePacket {
                source: Ssrc(10),
                seq: received.seq,
                timestamp: 3000,
            };
            subscription.rewriter.rewrite(now, source).unwrap();
            subscription.count_sent(7);
        }
        (layer, subscription)
    }

    #[test]
    fn nacks_are_answered_on_rtx_once_per_interval_and_within_budget() {
        let now = crate::test_time::origin();
        let (layer, mut subscription) = forwarded(now);
        let mut out = TransmitQueue::with_capacity(8);
        let mut stats = RouterStats::default();
        let config = RetransmitBudgetConfig::default();
        let mut budget = RetransmitBudget::new(&config);
        // The subscriber knows source packet 3 as 503.
        subscription.retransmit(
            (now, AbsSendTime([0; 3])),
            std::slice::from_ref(&layer),
            &[503, 503],
            None,
            Some(&mut budget),
            &config,
            &mut stats,
            &mut out,
        );
        assert_eq!(stats.retransmissions_sent, 1, "the repeat is not resent");
        let rtx = out.as_slice()[0].packet();
        assert_eq!(out.as_slice()[0].kind, TransmitKind::Rtp);
        let view = RtpPacket::parse(rtx).unwrap();
        assert_eq!(view.ssrc(), Ssrc(2000));
        assert_eq!(view.payload_type(), Pt(121));
        assert_eq!(view.rtx_original_sequence_number(), Some(503));
        assert_eq!(view.payload().get(2..), Some(&b"payload"[..]));

        // Unknown numbers are missed; later the same packet may be resent again.
        let later = now + MIN_RESEND_INTERVAL;
        subscription.retransmit(
            (later, AbsSendTime([0; 3])),
            std::slice::from_ref(&layer),
            &[503, 400],
            None,
            Some(&mut budget),
            &config,
            &mut stats,
            &mut out,
        );
        assert_eq!(stats.retransmissions_sent, 2);
        assert_eq!(stats.retransmissions_missed, 1);

        // An empty budget refuses and counts.
        let mut empty = RetransmitBudget::new(&RetransmitBudgetConfig {
            burst_bytes: 0,
            ..config
        });
        empty.try_take(empty.available());
        subscription.retransmit(
            (later, AbsSendTime([0; 3])),
            std::slice::from_ref(&layer),
            &[504],
            None,
            Some(&mut empty),
            &RetransmitBudgetConfig {
                burst_bytes: 0,
                ..config
            },
            &mut stats,
            &mut out,
        );
        assert_eq!(stats.retransmissions_over_budget, 1);
        assert_eq!(stats.retransmissions_sent, 2);
    }

    #[test]
    fn attaching_starts_a_new_resend_record_and_awaits_a_first_packet() {
        let now = crate::test_time::origin();
        let (layer, mut subscription) = forwarded(now);
        subscription.awaiting_first_packet = false;
        subscription.attach_to_layer(0, layer.cache_capacity());
        assert!(subscription.awaiting_first_packet);
        assert_eq!(subscription.resent.len(), layer.cache_capacity());
        assert!(subscription.resent.iter().all(Option::is_none));
    }
}
