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

use std::time::{Duration, Instant};

use rtc_core::Pt;
use rtc_core::rtp::RtpPacket;

use crate::TrackId;
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
    } = fan_out;
    let pt = packet.payload_type();
    // The payload as forwarded: everything after the header, padding included.
    let payload = packet
        .as_bytes()
        .get(packet.header_len()..)
        .unwrap_or_default();
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
        let queued = match header {
            Some(header) => write_fresh_copy(
                now,
                subscription,
                source,
                (pt, picture),
                header,
                payload,
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
    copies
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
    payload: &[u8],
    transport_cc_seq: Option<&mut TransportSequence>,
    out: &mut TransmitQueue,
) -> bool {
    let Some((out_pt, _)) = subscription.mapped_payload_types(pt) else {
        return false;
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
        let (mut template, mut counters) = (
            HeaderTemplate::default(),
            [TransportSequence::starting_at(500)],
        );
        let (mut events, mut out) = (EventQueue::default(), TransmitQueue::with_capacity(4));
        let fan_out = FanOut {
            template: &mut template,
            counters: &mut counters,
            events: &mut events,
            out: &mut out,
            picture: None,
            send_time: AbsSendTime([7, 8, 9]),
        };
        let copies = forward(
            now,
            TrackId(1),
            0,
            &view,
            source,
            &mut subscriptions,
            fan_out,
        );
        assert_eq!(copies, 2);
        assert_eq!(
            counters[0].peek(),
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
            &mut out,
            (Numbering::Fresh, AbsSendTime([7, 8, 9])),
            None,
        ));
        let [first, _, third] = out.as_slice() else {
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
            let (mut template, mut counters) = (
                HeaderTemplate::default(),
                [TransportSequence::starting_at(500)],
            );
            let (mut events, mut out) = (EventQueue::default(), TransmitQueue::with_capacity(4));
            let fan_out = FanOut {
                template: &mut template,
                counters: &mut counters,
                events: &mut events,
                out: &mut out,
                picture: None,
                send_time: AbsSendTime([7, 8, 9]),
            };
            let view_copies = forward(
                now,
                TrackId(1),
                0,
                &view,
                source,
                &mut subscriptions,
                fan_out,
            );
            assert_eq!(view_copies, 1);
            // A retransmission through the general path gets the next number.
            let mut general = subscription(2, 6);
            assert!(write_copy(
                now,
                &mut general,
                source,
                &view,
                Some(&mut counters[0]),
                &mut out,
                (Numbering::Fresh, AbsSendTime([7, 8, 9])),
                None,
            ));
            for (transmit, number) in out.as_slice().iter().zip([500u16, 501]) {
                let copy = RtpPacket::parse(transmit.packet()).unwrap();
                assert_eq!(copy.extension(6), Some(&number.to_be_bytes()[..]));
                assert_eq!(copy.extension(1), None, "mid is dropped");
                assert_eq!(copy.payload(), b"frame data");
                assert_eq!(copy.ssrc(), Ssrc(1000));
            }
        }
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
        let (mut template, mut counters) =
            (HeaderTemplate::default(), [TransportSequence::default()]);
        let (mut events, mut out) = (EventQueue::default(), TransmitQueue::with_capacity(4));
        for seq in [9, 10] {
            let source = SourcePacket {
                source: Ssrc(10),
                seq: SeqNo(seq),
                timestamp: 3000,
            };
            let fan_out = FanOut {
                template: &mut template,
                counters: &mut counters,
                events: &mut events,
                out: &mut out,
                picture: None,
                send_time: AbsSendTime([7, 8, 9]),
            };
            // Only the subscription of layer 0 receives it.
            assert_eq!(
                forward(
                    now,
                    TrackId(4),
                    0,
                    &view,
                    source,
                    &mut subscriptions,
                    fan_out
                ),
                1
            );
        }
        assert_eq!(
            events.pop(),
            Some(RouterEvent::SubscriptionStarted {
                subscription: SubscriptionId(1),
                subscriber: SessionId(1),
                track: TrackId(4),
            })
        );
        assert_eq!(events.pop(), None);
    }
}
