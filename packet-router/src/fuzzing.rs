//! Fuzz harness of the media path of one room: SRTP and SRTCP datagrams from a publisher and
//! two subscribers, unprotected with each session's inbound keys, routed, and every packet the
//! router queues protected again with the session's outbound keys, as a media worker does.
//!
//! The input is a sequence of records. Each starts with a big-endian `u16` length:
//! - length 0 advances a virtual clock by 50 ms and runs [`Router::handle_timeout`];
//! - otherwise a flags byte follows, then `length` bytes of datagram (or what is left).
//!   Flags bit 0: the datagram is plaintext, protect it with the sender's key first, so the
//!   fuzzer reaches the router with authentic packets; bit 1: it comes from a subscriber
//!   rather than the publisher; bit 2: which subscriber.
//!
//! RTP and RTCP are told apart by the second byte (RFC 5761). The harness panics when an
//! invariant breaks: every transmit is a valid RTP packet or RTCP compound packet, every RTP
//! transmit goes to a subscriber with one of its own SSRCs, the router never queues more than
//! `(subscribers + 2)` transmits per input record plus one retransmission per distinct packet
//! the record's NACKs ask for, every RED copy (the audio subscriptions negotiated RED; an
//! input of even length has it always on, an odd one when its feedback shows loss) holds a
//! valid RED payload, and its state stays as set up.

use std::time::{Duration, Instant};

use rtc_core::keying::{SrtpMasterKey, SrtpProfile};
use rtc_core::rtcp::{RtcpPacket, iter_compound};
use rtc_core::rtp::RtpPacket;
use rtc_core::srtp::SrtpContext;
use rtc_core::{Pt, Ssrc};

use crate::{
    Codec, CodecParams, ExtensionIds, MediaKind, PublishedStream, Router, RouterConfig,
    RouterStats, SessionId, SubscribedStream, TransmitKind, TransmitQueue,
};

const PUBLISHER: SessionId = SessionId(1);
const SUBSCRIBERS: [SessionId; 2] = [SessionId(100), SessionId(101)];
const VIDEO_SSRC: Ssrc = Ssrc(0x1111);
const VIDEO_RTX_SSRC: Ssrc = Ssrc(0x2222);
const AUDIO_SSRC: Ssrc = Ssrc(0x3333);
const PROFILE: SrtpProfile = SrtpProfile::AeadAes128Gcm;
const TICK: Duration = Duration::from_millis(50);
/// Transmits one input record may cause: a copy per subscriber plus feedback to the publisher.
const TRANSMITS_PER_RECORD: usize = SUBSCRIBERS.len() + 2;

/// The SSRCs the router may send RTP with to subscriber `index`: video, video RTX, audio.
fn subscriber_ssrcs(index: u32) -> [Ssrc; 3] {
    [
        Ssrc(0xA000 + index),
        Ssrc(0xB000 + index),
        Ssrc(0xC000 + index),
    ]
}

fn published(kind: MediaKind) -> PublishedStream {
    let (ssrc, rtx_ssrc, codec) = match kind {
        MediaKind::Video => (
            VIDEO_SSRC,
            Some(VIDEO_RTX_SSRC),
            CodecParams {
                codec: Codec::Vp8,
                pt: Pt(96),
                rtx_pt: Some(Pt(97)),
            },
        ),
        _ => (
            AUDIO_SSRC,
            None,
            CodecParams {
                codec: Codec::Opus,
                pt: Pt(111),
                rtx_pt: None,
            },
        ),
    };
    PublishedStream {
        kind,
        ssrc,
        rtx_ssrc,
        codecs: vec![codec],
        extensions: ExtensionIds {
            mid: Some(4),
            abs_send_time: Some(2),
            transport_cc: Some(3),
            audio_level: Some(1),
            ..ExtensionIds::default()
        },
        nack: true,
        mid: None,
        rids: Vec::new(),
    }
}

/// The subscribers' payload type of redundant audio.
const RED_PT: Pt = Pt(63);

fn subscribed(kind: MediaKind, index: u32) -> SubscribedStream {
    let [video, rtx, audio] = subscriber_ssrcs(index);
    let (ssrc, rtx_ssrc, codec) = match kind {
        MediaKind::Video => (
            video,
            Some(rtx),
            CodecParams {
                codec: Codec::Vp8,
                pt: Pt(100),
                rtx_pt: Some(Pt(101)),
            },
        ),
        _ => (
            audio,
            None,
            CodecParams {
                codec: Codec::Opus,
                pt: Pt(109),
                rtx_pt: None,
            },
        ),
    };
    SubscribedStream {
        ssrc,
        rtx_ssrc,
        codecs: vec![codec],
        extensions: ExtensionIds {
            mid: Some(1),
            abs_send_time: Some(5),
            transport_cc: Some(7),
            audio_level: Some(10),
            ..ExtensionIds::default()
        },
        red_pt: (kind == MediaKind::Audio).then_some(RED_PT),
        initial_seq: 65_500_u16.wrapping_add(index as u16),
        initial_timestamp: 1_000 * index,
    }
}

/// A context with the fixed key of session `session` (both directions of a session share it
/// here; separate contexts keep their replay and index state apart).
fn context(session: SessionId) -> Option<SrtpContext> {
    let mut master = SrtpMasterKey {
        key: *b"sluice media session fuzz key 32",
        salt: *b"media fuzz sal",
    };
    // Distinct keys per session, so a packet protected for one session fails at another.
    master.key[0] ^= session.0 as u8;
    SrtpContext::new(PROFILE, &master).ok()
}

/// The SRTP contexts of one session: the peer's sender (to make authentic inputs), our
/// receiver, and our sender.
struct SessionKeys {
    session: SessionId,
    peer_sender: SrtpContext,
    inbound: SrtpContext,
    outbound: SrtpContext,
}

impl SessionKeys {
    fn new(session: SessionId) -> Option<Self> {
        Some(SessionKeys {
            session,
            peer_sender: context(session)?,
            inbound: context(session)?,
            outbound: context(session)?,
        })
    }
}

/// RFC 5761: RTCP packet types 192-223 sit where RTP has the marker bit and payload type.
fn is_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram.get(1), Some(192..=223))
}

/// Feeds the records of `data` through a router of one publisher (video and audio) and two
/// subscribers of both tracks, with virtual time starting at `start` (the caller reads the
/// clock; the crate never does). Panics when an invariant breaks.
pub fn media_session(data: &[u8], start: Instant) {
    run(data, start);
}

/// The harness proper; returns the router's counters (`None` when the setup failed).
fn run(data: &[u8], start: Instant) -> Option<RouterStats> {
    let mut now = start;
    let audio_red = if data.len().is_multiple_of(2) {
        crate::AudioRedMode::Always
    } else {
        crate::AudioRedMode::OnLoss
    };
    let mut router = Router::new(RouterConfig {
        audio_red,
        ..RouterConfig::default()
    });
    let mut out = TransmitQueue::with_capacity(16);
    let mut tracks = 0;
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let track = router
            .add_published_stream(now, PUBLISHER, published(kind))
            .ok()?;
        tracks += 1;
        for (index, subscriber) in (0u32..).zip(SUBSCRIBERS) {
            router
                .subscribe(now, subscriber, track, subscribed(kind, index), &mut out)
                .ok()?;
        }
    }
    let mut keys = [PUBLISHER, SUBSCRIBERS[0], SUBSCRIBERS[1]]
        .into_iter()
        .map(SessionKeys::new)
        .collect::<Option<Vec<_>>>()?;
    check_and_protect(&mut out, &mut keys, TRANSMITS_PER_RECORD * 2);

    let mut buf = vec![0u8; usize::from(u16::MAX) + 64];
    let mut rest = data;
    while let [high, low, after @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low]));
        let mut limit;
        if len == 0 {
            // A timeout may send each track a NACK and a receiver report, and each of its
            // subscribers a sender report.
            limit = tracks * TRANSMITS_PER_RECORD;
            now += TICK;
            router.handle_timeout(now, &mut out);
            rest = after;
        } else {
            let [flags, after @ ..] = after else {
                break;
            };
            let (datagram, after) = after.split_at_checked(len).unwrap_or((after, &[]));
            rest = after;
            limit = TRANSMITS_PER_RECORD;
            let sender = match (flags & 0b10 != 0, flags & 0b100 != 0) {
                (false, _) => 0,
                (true, false) => 1,
                (true, true) => 2,
            };
            let from = keys.get_mut(sender)?;
            if let Some(packet) = receive(datagram, flags & 1 != 0, from, &mut buf) {
                let session = from.session;
                if is_rtcp(packet) {
                    limit += nacked_packets(packet);
                    router.handle_rtcp(now, session, packet, &mut out);
                } else {
                    let _ = router.handle_rtp(now, session, packet, &mut out);
                }
            }
        }
        check_and_protect(&mut out, &mut keys, limit);
        check_router(&router, tracks);
    }
    Some(router.stats().clone())
}

/// Copies the datagram into `buf`, protects it first when it is plaintext, and unprotects it
/// with the session's inbound keys: the plaintext packet, or `None` when it does not
/// authenticate.
fn receive<'a>(
    datagram: &[u8],
    plaintext: bool,
    keys: &mut SessionKeys,
    buf: &'a mut [u8],
) -> Option<&'a mut [u8]> {
    let rtcp = is_rtcp(datagram);
    let mut len = datagram.len();
    buf.get_mut(..len)?.copy_from_slice(datagram);
    if plaintext {
        let protected = if rtcp {
            keys.peer_sender.protect_rtcp(buf, len)
        } else {
            keys.peer_sender.protect_rtp(buf, len)
        };
        len = protected.ok()?;
    }
    let packet = buf.get_mut(..len)?;
    let plain = if rtcp {
        keys.inbound.unprotect_rtcp(packet)
    } else {
        keys.inbound.unprotect_rtp(packet)
    };
    let plain = plain.ok()?;
    buf.get_mut(..plain)
}

/// How many distinct packets (stream and sequence number) the NACKs of an RTCP compound
/// packet ask for: each may be retransmitted once.
fn nacked_packets(packet: &[u8]) -> usize {
    let mut nacked: Vec<(u32, u16)> = Vec::new();
    for item in iter_compound(packet).map_while(Result::ok) {
        let RtcpPacket::Nack(nack) = item else {
            continue;
        };
        // A NACK may name the subscriber's RTX SSRC: it maps to the same subscription.
        let ssrc = nack.media_ssrc().0;
        let stream = if ssrc & 0xF000 == 0xB000 {
            ssrc ^ 0x1000
        } else {
            ssrc
        };
        nacked.extend(nack.lost().map(|seq| (stream, seq)));
    }
    nacked.sort_unstable();
    nacked.dedup();
    nacked.len()
}

/// Checks every queued transmit, protects it with its session's outbound keys, and empties
/// the queue as a media worker does after a send.
fn check_and_protect(out: &mut TransmitQueue, keys: &mut [SessionKeys], limit: usize) {
    assert!(
        out.len() <= limit,
        "{} transmits queued for one input record (at most {limit} expected)",
        out.len()
    );
    for transmit in out.as_mut_slice() {
        let packet = transmit.packet();
        match transmit.kind {
            TransmitKind::Rtp => {
                let ssrc = match RtpPacket::parse(packet) {
                    Ok(view) if view.payload_type() == RED_PT => {
                        let red = rtc_core::rtp::red::RedPayload::parse(view.payload());
                        assert!(red.is_ok(), "invalid RED copy: {packet:02x?}");
                        view.ssrc()
                    }
                    Ok(view) => view.ssrc(),
                    Err(error) => panic!("invalid RTP transmit ({error}): {packet:02x?}"),
                };
                let index = SUBSCRIBERS
                    .iter()
                    .position(|s| *s == transmit.session)
                    .unwrap_or_else(|| panic!("RTP sent to {:?}", transmit.session));
                assert!(
                    subscriber_ssrcs(index as u32).contains(&ssrc),
                    "RTP to {:?} with a foreign SSRC {ssrc:?}",
                    transmit.session
                );
            }
            TransmitKind::Rtcp => {
                let mut items = 0;
                for item in iter_compound(packet) {
                    assert!(item.is_ok(), "invalid RTCP transmit: {packet:02x?}");
                    items += 1;
                }
                assert!(items > 0, "empty RTCP transmit");
            }
        }
        let Some(keys) = keys.iter_mut().find(|k| k.session == transmit.session) else {
            panic!("transmit to unknown session {:?}", transmit.session);
        };
        let len = transmit.len;
        let buf = transmit.buf.as_mut_slice();
        let protected = match transmit.kind {
            TransmitKind::Rtp => keys.outbound.protect_rtp(buf, len),
            TransmitKind::Rtcp => keys.outbound.protect_rtcp(buf, len),
        };
        assert!(
            protected.is_ok(),
            "router output does not protect: {protected:?}"
        );
    }
    out.clear();
}

/// The routing state must stay what was set up: fuzzed packets add no tracks or sessions.
fn check_router(router: &Router, tracks: usize) {
    assert_eq!(router.tracks_of(PUBLISHER).count(), tracks);
    for subscriber in SUBSCRIBERS {
        assert_eq!(router.tracks_of(subscriber).count(), 0);
    }
    assert_eq!(router.detached_subscriptions().count(), 0);
    let stats = router.stats();
    assert!(stats.rtp_forwarded <= stats.rtp_received * SUBSCRIBERS.len() as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(flags: u8, packet: &[u8]) -> Vec<u8> {
        let mut out = (packet.len() as u16).to_be_bytes().to_vec();
        out.push(flags);
        out.extend_from_slice(packet);
        out
    }

    fn vp8(seq: u16) -> Vec<u8> {
        let mut packet = vec![0x80, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x11];
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&[0x10, 0x00, 0x9d, 0x01, 0x2a, 0, 0, 0, 0]);
        packet
    }

    #[test]
    fn plaintext_records_reach_both_subscribers() {
        let input = [record(1, &vp8(1)), record(1, &vp8(2)), vec![0, 0]].concat();
        let stats = run(&input, crate::test_time::origin()).unwrap();
        assert_eq!(stats.rtp_received, 2);
        assert_eq!(stats.rtp_forwarded, 4);
    }

    #[test]
    fn records_without_the_plaintext_flag_must_authenticate() {
        let input = [record(0, &vp8(1)), record(0b010, &vp8(2))].concat();
        let stats = run(&input, crate::test_time::origin()).unwrap();
        assert_eq!(stats.rtp_received + stats.rtp_dropped, 0);
    }

    #[test]
    fn seed_corpus_forwards_and_answers_nacks() {
        let seed =
            include_bytes!("../../fuzz/corpus/media_session/subscriber_nack_answered_from_cache");
        let stats = run(seed, crate::test_time::origin()).unwrap();
        assert_eq!(stats.rtp_forwarded, 12);
        assert_eq!(stats.nacks_received, 2);
        assert!(stats.retransmissions_sent > 0);
    }
}
