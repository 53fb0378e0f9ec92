//! The copy writers: each subscriber's rewritten copy of a publisher's packet, written
//! straight into its buffer in the [`TransmitQueue`]. A copy gets the subscriber's SSRC,
//! sequence number, timestamp, payload type and header-extension ids, and its session's
//! transport-wide sequence number; a retransmission goes out on the subscriber's RTX stream
//! when negotiated.
//!
//! A packet forwarded for the first time is copied from a header template: the subscribers
//! of a track that negotiated the same extension ids share one remapped header per packet,
//! built once from the parsed view, so a copy is two `memcpy`s and a few fixed-offset
//! writes. Nothing here parses a packet: every writer takes the view the router parsed.
//!
//! An audio track's packet is also built once as a RED payload (RFC 2198, `audio_red.rs`)
//! when some subscription has redundancy on; those subscriptions get that payload instead.

use std::time::{Duration, Instant};

use rtc_core::Pt;
use rtc_core::rtp::RtpPacket;

use crate::TrackId;
use crate::audio_red::RedEncoder;
use crate::event::{EventQueue, RouterEvent};
use crate::rewrite::{RewrittenPacket, SourcePacket};
use crate::simulcast::{SourcePicture, write_picture};
use crate::subscription::Subscription;
use crate::transmit::{MAX_PACKET, TransmitKind, TransmitQueue};
use crate::transport_sequence::TransportSequence;

/// Sluice's send time in the abs-send-time extension's format: seconds in 6.18 fixed point,
/// 24 bits (it wraps every 64 s; receivers use only its differences). Copies carry
/// Sluice's own send time, not the publisher's: the subscriber's receive-side estimator
/// measures Sluice's path to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbsSendTime(pub(crate) [u8; 3]);

impl AbsSendTime {
    /// The send time `since` the router's first packet.
    pub(crate) fn after(since: Duration) -> Self {
        let fixed = (since.as_micros() << 18) / 1_000_000;
        let [_, _, _, _, _, a, b, c] = (fixed as u64).to_be_bytes();
        AbsSendTime([a, b, c])
    }

    /// Writes it into the header of `packet` under the subscriber's `id`, if present.
    fn write<T: AsRef<[u8]> + AsMut<[u8]>>(self, view: &mut RtpPacket<T>, id: Option<u8>) {
        if let Some(value) = id.and_then(|id| view.extension_mut(id))
            && let Some(bytes) = value.get_mut(..3)
        {
            bytes.copy_from_slice(&self.0);
        }
    }
}

/// The header of the packet being routed as one group of subscribers receives it.
#[derive(Debug)]
pub(crate) struct HeaderTemplate {
    bytes: Box<[u8; MAX_PACKET]>,
}

impl Default for HeaderTemplate {
    fn default() -> Self {
        HeaderTemplate {
            bytes: Box::new([0; MAX_PACKET]),
        }
    }
}

/// What [`HeaderTemplate::build`] wrote.
#[derive(Debug, Clone, Copy)]
struct TemplateShape {
    len: usize,
    /// Where the transport-wide sequence number goes, when the subscribers negotiated one and
    /// the packet has it.
    transport_cc_at: Option<usize>,
}

impl HeaderTemplate {
    /// Fills the template with the header of `packet` as subscribers with `ext_map` receive
    /// it (extension ids remapped). `None` if the header does not fit.
    fn build<T: AsRef<[u8]>>(
        &mut self,
        packet: &RtpPacket<T>,
        subscription: &Subscription,
        send_time: AbsSendTime,
    ) -> Option<TemplateShape> {
        let ext_map = &subscription.ext_map;
        let transport_cc_id = subscription.transport_cc_id;
        let mut view = packet.copy_header_into(&mut self.bytes[..])?;
        view.remap_extension_ids(|id| ext_map.get(usize::from(id)).copied().filter(|&to| to != 0));
        send_time.write(&mut view, subscription.stream.extensions.abs_send_time);
        let start = view.as_bytes().as_ptr() as usize;
        let found = transport_cc_id
            .and_then(|id| view.extension_mut(id))
            .filter(|value| value.len() >= 2)
            .map(|value| value.as_ptr() as usize - start);
        let header_len = packet.header_len();
        let (len, transport_cc_at) = match (found, transport_cc_id) {
            (Some(at), _) => (header_len, Some(at)),
            // The publisher's packets carry no transport-wide number: the copies get one of
            // their own (the header grows), so that the subscriber's feedback covers them.
            (None, Some(id)) => {
                add_transport_cc(&mut self.bytes[..], header_len, packet.as_bytes().len(), id)
            }
            (None, None) => (header_len, None),
        };
        Some(TemplateShape {
            len,
            transport_cc_at,
        })
    }
}

/// Adds a transport-wide sequence number element (`id`, two bytes) to the header at the
/// start of `buf`; returns the header's length and the number's offset, or the header as it
/// was and `None` when it cannot take one (a full buffer, an id its block's form cannot
/// carry).
fn add_transport_cc(
    buf: &mut [u8],
    header_len: usize,
    packet_len: usize,
    id: u8,
) -> (usize, Option<usize>) {
    // A packet near the largest size keeps its header: the copy must still fit.
    if packet_len + MAX_GROWTH > MAX_PACKET {
        return (header_len, None);
    }
    match rtc_core::rtp::add_extension(buf, header_len, id, 2) {
        Some((len, at)) => (len, Some(at)),
        None => (header_len, None),
    }
}

/// The most a header grows by an added transport-wide number (a new block: 4 bytes of block
/// header and 4 of element).
const MAX_GROWTH: usize = 8;

/// The router's state that one packet's fan-out borrows besides the track.
#[derive(Debug)]
pub(crate) struct FanOut<'a> {
    pub(crate) template: &'a mut HeaderTemplate,
    /// Each session's transport-wide sequence number, by [`Subscription::counter`].
    pub(crate) counters: &'a mut [TransportSequence],
    pub(crate) events: &'a mut EventQueue,
    pub(crate) out: &'a mut TransmitQueue,
    /// The packet's picture numbering, on a simulcast track or when a subscription filters
    /// temporal layers (rewritten per subscriber).
    pub(crate) picture: Option<SourcePicture>,
    pub(crate) send_time: AbsSendTime,
    /// The track's RED payloads (audio tracks, unless redundancy is off), and the count of
    /// copies sent with redundancy.
    pub(crate) red: Option<&'a mut RedEncoder>,
    pub(crate) red_copies: &'a mut u64,
}

/// Writes the copy of `packet` (`source` in the publisher's numbering, from layer `layer`
/// of track `track`) for every subscription that receives that layer. Returns how many
/// copies were queued.
pub(crate) fn forward<T: AsRef<[u8]>>(
    now: Instant,
    track: TrackId,
    layer: usize,
    packet: &RtpPacket<T>,
    source: SourcePacket,
    subscriptions: &mut [Subscription],
    fan_out: FanOut<'_>,
) -> usize {
    let FanOut {
        template,
        counters,
        events,
        out,
        picture,
        send_time,
        mut red,
        red_copies,
    } = fan_out;
    let pt = packet.payload_type();
    // The payload as forwarded: everything after the header, padding included.
    let payload = packet
        .as_bytes()
        .get(packet.header_len()..)
        .unwrap_or_default();
    // A padded packet is forwarded as it is (a RED block holds no padding).
    let plain = packet.padding_len() == 0;
    // The packet's RED payload, built for the first subscription that has redundancy on:
    // whether it was tried, and whether it fits.
    let mut red_built: Option<bool> = None;
    // Whether a subscriber of this packet negotiated RED: only then is its payload kept for
    // the next ones (a track no subscriber can take RED for copies nothing), on or off, so
    // that redundancy is complete from the first RED packet when it goes on.
    let mut any_red = false;
    let mut copies = 0;
    // The key of the subscribers the template was last built for, and its shape.
    let mut built: Option<(u64, Option<TemplateShape>)> = None;
    for subscription in subscriptions.iter_mut().filter(|s| s.layer == layer) {
        if let Some(picture) = picture
            && subscription.choice.filters(picture)
        {
            subscription.skip(source, picture);
            continue;
        }
        let counter = counters.get_mut(subscription.counter);
        let shape = match built {
            Some((key, shape)) if key == subscription.ext_key => shape,
            _ => {
                let shape = template.build(packet, subscription, send_time);
                built = Some((subscription.ext_key, shape));
                shape
            }
        };
        let header =
            shape.and_then(|shape| Some((template.bytes.get(..shape.len)?, shape.transport_cc_at)));
        any_red |= subscription.stream.red_pt.is_some();
        let redundant = match (subscription.red, red.as_deref_mut()) {
            (Some(red_pt), Some(encoder)) if plain => {
                let fits = *red_built.get_or_insert_with(|| {
                    let key = (source.seq, source.timestamp, pt);
                    encoder.build(key, payload, packet.header_len() + MAX_GROWTH)
                });
                encoder
                    .built()
                    .filter(|_| fits)
                    .map(|built| (red_pt, built))
            }
            _ => None,
        };
        let body = match redundant {
            Some((red_pt, built)) => Body::Red {
                red_pt,
                payload: built.payload,
                redundant_blocks: built.redundant_blocks,
            },
            None => Body::Plain(payload),
        };
        let queued = match header {
            Some(header) => write_fresh_copy(
                now,
                subscription,
                source,
                (pt, picture),
                header,
                body,
                counter,
                out,
            ),
            // Not reached (the template holds any packet the router accepts); the general
            // path stays correct.
            None => write_copy(
                now,
                subscription,
                source,
                packet,
                counter,
                out,
                (Numbering::Fresh, send_time),
                None,
            ),
        };
        if queued {
            copies += 1;
            if redundant.is_some() && header.is_some() {
                *red_copies += 1;
            }
            if subscription.awaiting_first_packet {
                subscription.awaiting_first_packet = false;
                events.push(RouterEvent::SubscriptionStarted {
                    subscription: subscription.id,
                    subscriber: subscription.subscriber,
                    track,
                });
            }
        }
    }
    if plain
        && any_red
        && let Some(encoder) = red
    {
        encoder.remember(source.seq, source.timestamp, payload);
    }
    copies
}

/// What follows a fresh copy's header.
#[derive(Debug, Clone, Copy)]
enum Body<'a> {
    /// The publisher's payload.
    Plain(&'a [u8]),
    /// The track's RED payload of the packet, sent with the subscriber's RED payload type
    /// (its blocks get the subscriber's payload type of the codec).
    Red {
        red_pt: Pt,
        payload: &'a [u8],
        redundant_blocks: usize,
    },
}

/// Writes one subscriber's copy of a packet forwarded for the first time: the header template
/// of its group ([`HeaderTemplate::build`]), the payload, the fixed fields and the
/// transport-wide sequence number. Returns whether a copy was queued.
#[allow(clippy::too_many_arguments)] // The hot path; bundling would cost a struct per packet.
fn write_fresh_copy(
    now: Instant,
    subscription: &mut Subscription,
    source: SourcePacket,
    (pt, picture): (Pt, Option<SourcePicture>),
    (header, transport_cc_at): (&[u8], Option<usize>),
    body: Body<'_>,
    transport_cc_seq: Option<&mut TransportSequence>,
    out: &mut TransmitQueue,
) -> bool {
    let Some((codec_pt, _)) = subscription.mapped_payload_types(pt) else {
        return false;
    };
    let (out_pt, payload, red_blocks) = match body {
        Body::Plain(payload) => (codec_pt, payload, None),
        Body::Red {
            red_pt,
            payload,
            redundant_blocks,
        } => (red_pt, payload, Some(redundant_blocks)),
    };
    let Ok(rewritten) = subscription.rewriter.rewrite(now, source) else {
        return false;
    };
    let picture = picture
        .filter(|_| subscription.rewrites_pictures())
        .map(|p| (p.vp9, subscription.pictures.map_fresh(source.source, p)));
    let ssrc = subscription.media_ssrc;
    let queued = out.push_with(subscription.subscriber, TransmitKind::Rtp, |buf| {
        let len = header.len() + payload.len();
        buf.get_mut(..header.len())?.copy_from_slice(header);
        let body = buf.get_mut(header.len()..len)?;
        body.copy_from_slice(payload);
        if let Some((vp9, numbers)) = picture {
            write_picture(body, vp9, numbers);
        }
        if let Some(blocks) = red_blocks {
            rtc_core::rtp::red::set_block_payload_types(body, blocks, codec_pt);
        }
        rtc_core::rtp::write_fixed_fields(buf, out_pt, rewritten.seq, rewritten.timestamp, ssrc)?;
        if let (Some(at), Some(sequence)) = (transport_cc_at, transport_cc_seq) {
            let field = buf.get_mut(at..at + 2)?;
            field.copy_from_slice(&sequence.take(now, len).to_be_bytes());
        }
        Some(len)
    });
    if queued {
        subscription.count_sent(payload.len());
    }
    queued
}

/// How a subscriber's copy is numbered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Numbering {
    /// A packet forwarded for the first time: the rewriter assigns its number.
    Fresh,
    /// A retransmission of the packet the subscriber knows as `subscriber_seq`, whose
    /// timestamp it received with `timestamp_offset` added.
    Retransmission {
        subscriber_seq: u16,
        timestamp_offset: u32,
    },
}

/// Writes one subscriber's copy of `packet` (a plaintext packet from the publisher, or from
/// the cache) into the queue: RTP with the subscriber's numbering, or RTX when `numbering`
/// is a retransmission and RTX is negotiated. Returns whether a copy was queued.
#[allow(clippy::too_many_arguments)] // Disjoint parts of the router, borrowed together.
pub(crate) fn write_copy<T: AsRef<[u8]>>(
    now: Instant,
    subscription: &mut Subscription,
    source: SourcePacket,
    packet: &RtpPacket<T>,
    transport_cc_seq: Option<&mut TransportSequence>,
    out: &mut TransmitQueue,
    (numbering, send_time): (Numbering, AbsSendTime),
    picture: Option<(bool, (u16, u8))>,
) -> bool {
    let Some((out_pt, out_rtx_pt)) = subscription.mapped_payload_types(packet.payload_type())
    else {
        return false;
    };
    let retransmission = matches!(numbering, Numbering::Retransmission { .. });
    let rewritten = match numbering {
        // A retransmission keeps the number the subscriber asked for and must not move the
        // rewriter.
        Numbering::Retransmission {
            subscriber_seq,
            timestamp_offset,
        } => RewrittenPacket {
            seq: subscriber_seq,
            timestamp: source.timestamp.wrapping_add(timestamp_offset),
        },
        Numbering::Fresh => match subscription.rewriter.rewrite(now, source) {
            Ok(rewritten) => rewritten,
            Err(_) => return false,
        },
    };
    let rtx = match (retransmission, subscription.rtx_ssrc, out_rtx_pt) {
        (true, Some(ssrc), Some(pt)) => Some((ssrc, pt)),
        _ => None,
    };
    // The payload as forwarded: everything after the header, padding included.
    let header_len = packet.header_len();
    let payload = packet.as_bytes().get(header_len..).unwrap_or_default();
    let ext_map = &subscription.ext_map;
    let transport_cc_id = subscription.transport_cc_id;
    let abs_send_time_id = subscription.stream.extensions.abs_send_time;
    let media_ssrc = subscription.media_ssrc;
    let rtx_seq = &mut subscription.rtx_seq;
    let queued = out.push_with(subscription.subscriber, TransmitKind::Rtp, |buf| {
        let mut view = packet.copy_header_into(buf)?;
        view.remap_extension_ids(|id| ext_map.get(usize::from(id)).copied().filter(|&to| to != 0));
        let start = view.as_bytes().as_ptr() as usize;
        let found = transport_cc_id
            .and_then(|id| view.extension_mut(id))
            .filter(|value| value.len() >= 2)
            .map(|value| value.as_ptr() as usize - start);
        let extra = rtx.map_or(0, |_| rtc_core::rtp::rtx::OSN_LEN);
        let (header_len, transport_cc_at) = match (found, transport_cc_id) {
            (Some(at), _) => (header_len, Some(at)),
            (None, Some(id)) => {
                add_transport_cc(buf, header_len, packet.as_bytes().len() + extra, id)
            }
            (None, None) => (header_len, None),
        };
        let (header, body) = buf.split_at_mut_checked(header_len)?;
        let mut view = RtpPacket::parse_header_only(header).ok()?;
        let len = match rtx {
            None => {
                let copy = body.get_mut(..payload.len())?;
                copy.copy_from_slice(payload);
                if let Some((vp9, numbers)) = picture {
                    write_picture(copy, vp9, numbers);
                }
                view.set_ssrc(media_ssrc);
                view.set_sequence_number(rewritten.seq);
                view.set_payload_type(out_pt);
                header_len + payload.len()
            }
            Some((rtx_ssrc, rtx_pt)) => {
                // RFC 4588: the original sequence number, then the original payload.
                let osn = rtc_core::rtp::rtx::OSN_LEN;
                body.get_mut(..osn)?
                    .copy_from_slice(&rewritten.seq.to_be_bytes());
                let copy = body.get_mut(osn..osn + payload.len())?;
                copy.copy_from_slice(payload);
                if let Some((vp9, numbers)) = picture {
                    write_picture(copy, vp9, numbers);
                }
                view.set_ssrc(rtx_ssrc);
                view.set_sequence_number(*rtx_seq);
                *rtx_seq = rtx_seq.wrapping_add(1);
                view.set_payload_type(rtx_pt);
                header_len + osn + payload.len()
            }
        };
        view.set_timestamp(rewritten.timestamp);
        send_time.write(&mut view, abs_send_time_id);
        if let (Some(at), Some(sequence)) = (transport_cc_at, transport_cc_seq)
            && let Some(bytes) = buf.get_mut(at..at + 2)
        {
            bytes.copy_from_slice(&sequence.take(now, len).to_be_bytes());
        }
        Some(len)
    });
    if queued && !retransmission {
        subscription.count_sent(payload.len());
    }
    queued
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionId;
    use crate::SubscriptionId;
    use crate::config::SubscribedStream;
    use crate::config::{Codec, CodecParams, ExtensionIds, MediaKind, PublishedStream};
    use rtc_core::{SeqNo, Ssrc};

    const PUBLISHED_IDS: ExtensionIds = ExtensionIds {
        mid: Some(1),
        rid: None,
        repaired_rid: None,
        abs_send_time: Some(2),
        transport_cc: Some(3),
        audio_level: None,
        dependency_descriptor: None,
    };

    fn subscription(id: u64, transport_cc: u8) -> Subscription {
        let codecs = vec![CodecParams {
            codec: Codec::Vp8,
            pt: Pt(100),
            rtx_pt: None,
        }];
        let published = PublishedStream {
            kind: MediaKind::Video,
            ssrc: Ssrc(10),
            rtx_ssrc: None,
            codecs: vec![CodecParams {
                codec: Codec::Vp8,
                pt: Pt(96),
                rtx_pt: None,
            }],
            extensions: PUBLISHED_IDS,
            nack: false,
            mid: None,
            rids: Vec::new(),
        };
        let stream = SubscribedStream {
            ssrc: Ssrc(1000),
            rtx_ssrc: None,
            codecs,
            extensions: ExtensionIds {
                abs_send_time: Some(5),
                transport_cc: Some(transport_cc),
                ..ExtensionIds::default()
            },
            red_pt: None,
            initial_seq: 40,
            initial_timestamp: 7,
        };
        let mut subscription = Subscription::new(
            SubscriptionId(id),
            SessionId(id),
            0,
            stream,
            &published,
            90_000,
        )
        .unwrap();
        subscription.attach_to_layer(0, 1);
        subscription
    }

    /// A publisher packet: mid "1", abs-send-time, transport-wide number 0x0102, payload.
    fn packet() -> Vec<u8> {
        let mut p = vec![
            0x90, 96, 0, 9, 0, 0, 0x0b, 0xb8, 0, 0, 0, 10, 0xbe, 0xde, 0, 3,
        ];
        p.extend_from_slice(&[0x10, b'1', 0x22, 1, 2, 3, 0x31, 1, 2, 0, 0, 0]);
        p.extend_from_slice(b"frame data");
        p
    }

    /// The router's state that a fan-out borrows, owned by a test.
    struct Parts {
        template: HeaderTemplate,
        counters: [TransportSequence; 1],
        events: EventQueue,
        out: TransmitQueue,
        red: Option<Box<RedEncoder>>,
        red_copies: u64,
    }

    impl Parts {
        /// One session whose next transport-wide number is `next`.
        fn new(next: u16) -> Self {
            Parts {
                template: HeaderTemplate::default(),
                counters: [TransportSequence::starting_at(next)],
                events: EventQueue::default(),
                out: TransmitQueue::with_capacity(4),
                red: None,
                red_copies: 0,
            }
        }

        /// Forwards `packet` of layer 0 of track 1 to `subscriptions`.
        fn forward(
            &mut self,
            now: Instant,
            packet: &RtpPacket<&[u8]>,
            source: SourcePacket,
            subscriptions: &mut [Subscription],
        ) -> usize {
            let fan_out = FanOut {
                template: &mut self.template,
                counters: &mut self.counters,
                events: &mut self.events,
                out: &mut self.out,
                picture: None,
                send_time: AbsSendTime([7, 8, 9]),
                red: self.red.as_deref_mut(),
                red_copies: &mut self.red_copies,
            };
            forward(now, TrackId(1), 0, packet, source, subscriptions, fan_out)
        }
    }

    #[test]
    fn the_template_path_writes_what_the_general_path_writes() {
        let now = crate::test_time::origin();
        let bytes = packet();
        let view = RtpPacket::parse(&bytes[..]).unwrap();
        let source = SourcePacket {
            source: Ssrc(10),
            seq: SeqNo(9),
            timestamp: 3000,
        };
        let mut subscriptions = [subscription(1, 6), subscription(2, 6)];
        let mut parts = Parts::new(500);
        let copies = parts.forward(now, &view, source, &mut subscriptions);
        assert_eq!(copies, 2);
        assert_eq!(
            parts.counters[0].peek(),
            502,
            "the session's counter moved once per copy"
        );

        let mut general = subscription(3, 6);
        let mut counter = TransportSequence::starting_at(500);
        assert!(write_copy(
            now,
            &mut general,
            source,
            &view,
            Some(&mut counter),
            &mut parts.out,
            (Numbering::Fresh, AbsSendTime([7, 8, 9])),
            None,
        ));
        let [first, _, third] = parts.out.as_slice() else {
            panic!("three copies");
        };
        assert_eq!(first.packet(), third.packet());
        let copy = RtpPacket::parse(first.packet()).unwrap();
        assert_eq!(copy.ssrc(), Ssrc(1000));
        assert_eq!(copy.payload_type(), Pt(100));
        assert_eq!(copy.sequence_number(), 40);
        assert_eq!(
            copy.extension(5),
            Some(&[7u8, 8, 9][..]),
            "abs-send-time is Sluice's send time"
        );
        assert_eq!(copy.extension(6), Some(&500u16.to_be_bytes()[..]));
        assert_eq!(copy.extension(1), None, "mid is dropped");
        assert_eq!(copy.payload(), b"frame data");
        assert_eq!(general.packets_sent, 1);
        assert_eq!(general.octets_sent, 10);
    }

    #[test]
    fn copies_of_a_packet_without_a_transport_wide_number_get_one() {
        let now = crate::test_time::origin();
        // As FFmpeg sends: no extension block at all; and one with a block but no number.
        let mut bare = vec![0x80, 96, 0, 9, 0, 0, 0x0b, 0xb8, 0, 0, 0, 10];
        bare.extend_from_slice(b"frame data");
        let mut with_mid = vec![
            0x90, 96, 0, 9, 0, 0, 0x0b, 0xb8, 0, 0, 0, 10, 0xbe, 0xde, 0, 1,
        ];
        with_mid.extend_from_slice(&[0x10, b'1', 0, 0]);
        with_mid.extend_from_slice(b"frame data");
        for bytes in [bare, with_mid] {
            let view = RtpPacket::parse(&bytes[..]).unwrap();
            let source = SourcePacket {
                source: Ssrc(10),
                seq: SeqNo(9),
                timestamp: 3000,
            };
            let mut subscriptions = [subscription(1, 6)];
            let mut parts = Parts::new(500);
            let view_copies = parts.forward(now, &view, source, &mut subscriptions);
            assert_eq!(view_copies, 1);
            // A copy through the general path gets the next number.
            let mut general = subscription(2, 6);
            assert!(write_copy(
                now,
                &mut general,
                source,
                &view,
                Some(&mut parts.counters[0]),
                &mut parts.out,
                (Numbering::Fresh, AbsSendTime([7, 8, 9])),
                None,
            ));
            for (transmit, number) in parts.out.as_slice().iter().zip([500u16, 501]) {
                let copy = RtpPacket::parse(transmit.packet()).unwrap();
                assert_eq!(copy.extension(6), Some(&number.to_be_bytes()[..]));
                assert_eq!(copy.extension(1), None, "mid is dropped");
                assert_eq!(copy.payload(), b"frame data");
                assert_eq!(copy.ssrc(), Ssrc(1000));
            }
        }
    }

    /// A subscription of an Opus track the publisher sends as 109, which the subscriber
    /// knows as 111 and its RED as 63; redundancy on when `red`.
    fn audio_subscription(id: u64, red: bool) -> Subscription {
        let published = PublishedStream {
            kind: MediaKind::Audio,
            ssrc: Ssrc(20),
            rtx_ssrc: None,
            codecs: vec![CodecParams {
                codec: Codec::Opus,
                pt: Pt(109),
                rtx_pt: None,
            }],
            extensions: ExtensionIds::default(),
            nack: false,
            mid: None,
            rids: Vec::new(),
        };
        let stream = SubscribedStream {
            ssrc: Ssrc(2000 + id as u32),
            rtx_ssrc: None,
            codecs: vec![CodecParams {
                codec: Codec::Opus,
                pt: Pt(111),
                rtx_pt: None,
            }],
            extensions: ExtensionIds::default(),
            red_pt: Some(Pt(63)),
            initial_seq: 100,
            initial_timestamp: 0,
        };
        let mut subscription = Subscription::new(
            SubscriptionId(id),
            SessionId(id),
            0,
            stream,
            &published,
            48_000,
        )
        .unwrap();
        subscription.attach_to_layer(0, 1);
        subscription.red = red.then_some(Pt(63));
        subscription
    }

    #[test]
    fn subscriptions_with_redundancy_get_the_shared_red_payload() {
        use rtc_core::rtp::red::RedPayload;
        let now = crate::test_time::origin();
        let mut subscriptions = [audio_subscription(1, true), audio_subscription(2, false)];
        let mut parts = Parts::new(0);
        parts.red = Some(RedEncoder::new());
        for (seq, payload) in [(7u16, b"first"), (8, b"secnd"), (9, b"third")] {
            let mut bytes = vec![0x80, 109, 0, seq as u8, 0, 0, 0, 0, 0, 0, 0, 20];
            let timestamp = u32::from(seq) * 960;
            bytes[4..8].copy_from_slice(&timestamp.to_be_bytes());
            bytes.extend_from_slice(payload);
            let view = RtpPacket::parse(&bytes[..]).unwrap();
            let source = SourcePacket {
                source: Ssrc(20),
                seq: SeqNo(u64::from(seq)),
                timestamp,
            };
            parts.out.clear();
            assert_eq!(parts.forward(now, &view, source, &mut subscriptions), 2);
        }
        assert_eq!(
            parts.red_copies, 3,
            "one RED copy per packet, to the one subscription"
        );
        let [red, plain] = parts.out.as_slice() else {
            panic!("two copies");
        };
        let plain = RtpPacket::parse(plain.packet()).unwrap();
        assert_eq!(
            (plain.payload_type(), plain.payload()),
            (Pt(111), &b"third"[..])
        );
        let red = RtpPacket::parse(red.packet()).unwrap();
        assert_eq!(red.payload_type(), Pt(63));
        assert_eq!(red.sequence_number(), plain.sequence_number());
        let blocks: Vec<_> = RedPayload::parse(red.payload()).unwrap().blocks().collect();
        let read: Vec<_> = blocks
            .iter()
            .map(|b| (b.pt, b.timestamp_offset, b.data))
            .collect();
        assert_eq!(
            read,
            [
                (Pt(111), 1920, &b"first"[..]),
                (Pt(111), 960, &b"secnd"[..]),
                (Pt(111), 0, &b"third"[..])
            ],
            "the two packets before, oldest first, in the subscriber's Opus payload type"
        );
    }

    #[test]
    fn abs_send_time_counts_seconds_in_six_point_eighteen_fixed_point() {
        assert_eq!(AbsSendTime::after(Duration::ZERO).0, [0, 0, 0]);
        assert_eq!(AbsSendTime::after(Duration::from_secs(1)).0, [0x04, 0, 0]);
        assert_eq!(
            AbsSendTime::after(Duration::from_millis(250)).0,
            [0x01, 0, 0]
        );
        // It wraps every 64 s.
        assert_eq!(AbsSendTime::after(Duration::from_secs(65)).0, [0x04, 0, 0]);
    }

    #[test]
    fn each_subscription_reports_its_first_copy_once() {
        let now = crate::test_time::origin();
        let bytes = packet();
        let view = RtpPacket::parse(&bytes[..]).unwrap();
        let mut subscriptions = [subscription(1, 6), subscription(2, 7)];
        subscriptions[1].layer = 1;
        let mut parts = Parts::new(0);
        for seq in [9, 10] {
            let source = SourcePacket {
                source: Ssrc(10),
                seq: SeqNo(seq),
                timestamp: 3000,
            };
            // Only the subscription of layer 0 receives it.
            assert_eq!(parts.forward(now, &view, source, &mut subscriptions), 1);
        }
        assert_eq!(
            parts.events.pop(),
            Some(RouterEvent::SubscriptionStarted {
                subscription: SubscriptionId(1),
                subscriber: SessionId(1),
                track: TrackId(1),
            })
        );
        assert_eq!(parts.events.pop(), None);
    }
}
