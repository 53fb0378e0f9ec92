//! Virtual-time tests of the router through its public API: fan-out and rewriting, loss and
//! reordering, NACK and RTX in both directions, keyframe requests, publisher restarts, and the
//! RTCP reports.

use std::time::{Duration, Instant};

use packet_router::{
    Codec, CodecParams, ExtensionIds, MediaKind, PublishedStream, RetransmitBudgetConfig, Router,
    RouterConfig, RouterEvent, SessionId, SubscribedStream, TrackId, TransmitKind, TransmitQueue,
};
use rtc_core::rtcp::{RtcpPacket, iter_compound};
use rtc_core::rtp::RtpPacket;
use rtc_core::{Pt, Ssrc};

/// The origin of the test's virtual time: `std` makes an `Instant` only by reading the
/// clock, so the test reads it once here and only adds durations from there.
#[expect(
    clippy::disallowed_methods,
    reason = "the one clock read of this test crate: std makes an Instant no other way"
)]
fn origin() -> Instant {
    Instant::now()
}

const PUBLISHER: SessionId = SessionId(1);
const VP8_PT: Pt = Pt(96);
const VP8_RTX_PT: Pt = Pt(97);
const PUB_SSRC: Ssrc = Ssrc(0x1111);
const PUB_RTX_SSRC: Ssrc = Ssrc(0x2222);

fn video_stream(ssrc: Ssrc, rtx: Ssrc) -> PublishedStream {
    PublishedStream {
        kind: MediaKind::Video,
        ssrc,
        rtx_ssrc: Some(rtx),
        codecs: vec![CodecParams {
            codec: Codec::Vp8,
            pt: VP8_PT,
            rtx_pt: Some(VP8_RTX_PT),
        }],
        extensions: ExtensionIds {
            mid: Some(4),
            abs_send_time: Some(2),
            transport_cc: Some(3),
            ..ExtensionIds::default()
        },
        nack: true,
        mid: None,
        rids: Vec::new(),
    }
}

/// A subscriber stream with its own payload types and extension ids.
fn subscriber_stream(index: u32, rtx: bool) -> SubscribedStream {
    SubscribedStream {
        ssrc: Ssrc(0xA000 + index),
        rtx_ssrc: rtx.then_some(Ssrc(0xB000 + index)),
        codecs: vec![CodecParams {
            codec: Codec::Vp8,
            pt: Pt(100),
            rtx_pt: rtx.then_some(Pt(101)),
        }],
        extensions: ExtensionIds {
            mid: Some(1),
            abs_send_time: Some(5),
            transport_cc: Some(7),
            ..ExtensionIds::default()
        },
        red_pt: None,
        initial_seq: 65_500 + index as u16,
        initial_timestamp: 1_000 * index,
    }
}

/// An RTP packet with a one-byte extension block (mid, abs-send-time, transport-cc) and a
/// payload that names its sequence number.
fn rtp(ssrc: Ssrc, pt: Pt, seq: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x90, pt.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    packet[2..4].copy_from_slice(&seq.to_be_bytes());
    packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
    packet[8..12].copy_from_slice(&ssrc.0.to_be_bytes());
    // 0xBEDE, 3 words: mid (id 4, "0"), abs-send-time (id 2, 3 bytes), twcc (id 3, 2 bytes).
    packet.extend_from_slice(&[0xBE, 0xDE, 0, 3]);
    packet.extend_from_slice(&[0x40, b'0', 0x22, 1, 2, 3, 0x31, 0xFF, 0xFF, 0, 0, 0]);
    packet.extend_from_slice(payload);
    packet
}

fn payload_for(seq: u16) -> Vec<u8> {
    let mut payload = seq.to_be_bytes().to_vec();
    payload.extend((0..200u16).map(|i| (i as u8) ^ (seq as u8)));
    payload
}

/// The RTX form of a packet (RFC 4588): the original sequence number before the payload.
fn rtx_of(seq: u16, rtx_seq: u16, timestamp: u32) -> Vec<u8> {
    let mut payload = seq.to_be_bytes().to_vec();
    payload.extend(payload_for(seq));
    rtp(PUB_RTX_SSRC, VP8_RTX_PT, rtx_seq, timestamp, &payload)
}

struct Harness {
    router: Router,
    out: TransmitQueue,
    now: Instant,
    track: TrackId,
}

impl Harness {
    fn new(subscribers: u32, rtx: bool) -> Self {
        Self::with_config(RouterConfig::default(), subscribers, rtx)
    }

    fn with_config(config: RouterConfig, subscribers: u32, rtx: bool) -> Self {
        let now = origin();
        let mut router = Router::new(config);
        let mut out = TransmitQueue::with_capacity(16);
        let track = router
            .add_published_stream(now, PUBLISHER, video_stream(PUB_SSRC, PUB_RTX_SSRC))
            .expect("track added");
        for i in 0..subscribers {
            router
                .subscribe(
                    now,
                    SessionId(100 + u64::from(i)),
                    track,
                    subscriber_stream(i, rtx),
                    &mut out,
                )
                .expect("subscribed");
        }
        let mut harness = Harness {
            router,
            out,
            now,
            track,
        };
        harness.out.clear();
        harness
    }

    fn send(&mut self, packet: &[u8]) -> usize {
        let mut packet = packet.to_vec();
        self.out.clear();
        self.router
            .handle_rtp(self.now, PUBLISHER, &mut packet, &mut self.out)
            .unwrap_or(0)
    }

    /// RTP packets queued for `session`: (ssrc, pt, seq, timestamp, payload).
    fn rtp_for(&self, session: SessionId) -> Vec<(Ssrc, Pt, u16, u32, Vec<u8>)> {
        self.out
            .as_slice()
            .iter()
            .filter(|t| t.session == session && t.kind == TransmitKind::Rtp)
            .map(|t| {
                let view = RtpPacket::parse(t.packet()).expect("valid RTP out");
                (
                    view.ssrc(),
                    view.payload_type(),
                    view.sequence_number(),
                    view.timestamp(),
                    view.payload().to_vec(),
                )
            })
            .collect()
    }

    fn rtcp_for(&self, session: SessionId) -> Vec<Vec<u8>> {
        self.out
            .as_slice()
            .iter()
            .filter(|t| t.session == session && t.kind == TransmitKind::Rtcp)
            .map(|t| t.packet().to_vec())
            .collect()
    }
}

fn count_plis(packets: &[Vec<u8>]) -> usize {
    packets
        .iter()
        .flat_map(|p| iter_compound(p).collect::<Vec<_>>())
        .filter(|item| matches!(item, Ok(RtcpPacket::Pli(_))))
        .count()
}

#[test]
fn every_subscriber_gets_its_own_continuous_rewritten_stream() {
    let mut h = Harness::new(3, true);
    let origin = h.now;
    for i in 0..100u16 {
        let seq = 65_480u16.wrapping_add(i);
        // 10 ms apart: the last packet is routed 990 ms after the first.
        h.now = origin + Duration::from_millis(u64::from(i) * 10);
        let copies = h.send(&rtp(
            PUB_SSRC,
            VP8_PT,
            seq,
            90_000 + u32::from(i) * 3000,
            &payload_for(seq),
        ));
        assert_eq!(copies, 3);
        for s in 0..3u32 {
            let got = h.rtp_for(SessionId(100 + u64::from(s)));
            assert_eq!(got.len(), 1);
            let (ssrc, pt, out_seq, ts, payload) = &got[0];
            assert_eq!(*ssrc, Ssrc(0xA000 + s));
            assert_eq!(*pt, Pt(100));
            assert_eq!(*out_seq, (65_500 + s as u16).wrapping_add(i));
            assert_eq!(*ts, 1_000 * s + u32::from(i) * 3000);
            assert_eq!(payload, &payload_for(seq), "payload byte-identical");
        }
    }
    // Extension ids are the subscriber's; mid is dropped; transport-cc is per subscriber.
    let transmit = &h.out.as_slice()[0];
    let view = RtpPacket::parse(transmit.packet()).expect("valid");
    let ids: Vec<u8> = view.extensions().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![5, 7]);
    // abs-send-time is Sluice's send time (0.99 s in 6.18 fixed point), not the publisher's.
    let sent_at = (990u32 << 18) / 1000;
    assert_eq!(view.extension(5), Some(&sent_at.to_be_bytes()[1..]));
    assert_eq!(view.extension(7), Some(&99u16.to_be_bytes()[..]));
    assert_eq!(h.router.stats().rtp_forwarded, 300);
}

#[test]
fn loss_and_reordering_pass_through_and_losses_are_nacked_to_the_publisher() {
    let mut h = Harness::new(1, true);
    let order = [0u16, 1, 2, 4, 3, 7, 8, 9];
    let mut seen = Vec::new();
    for seq in order {
        h.send(&rtp(
            PUB_SSRC,
            VP8_PT,
            seq,
            u32::from(seq) * 3000,
            &payload_for(seq),
        ));
        seen.extend(h.rtp_for(SessionId(100)).into_iter().map(|p| p.2));
    }
    let base = 65_500u16;
    let expected: Vec<u16> = order.iter().map(|s| base.wrapping_add(*s)).collect();
    assert_eq!(seen, expected, "gaps and order are preserved");

    // 5 and 6 are missing: the next timeout NACKs them to the publisher.
    h.out.clear();
    let due = h.router.poll_timeout().expect("a NACK is due");
    assert!(due <= h.now);
    h.router.handle_timeout(h.now, &mut h.out);
    let nacked: Vec<u16> = h
        .rtcp_for(PUBLISHER)
        .iter()
        .flat_map(|p| iter_compound(p).collect::<Vec<_>>())
        .filter_map(|item| match item {
            Ok(RtcpPacket::Nack(nack)) => {
                assert_eq!(nack.media_ssrc(), PUB_SSRC);
                Some(nack.lost().collect::<Vec<_>>())
            }
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(nacked, vec![5, 6]);

    // The publisher repairs 5 on RTX: the subscriber gets the original payload at its number.
    h.send(&rtx_of(5, 700, 15_000));
    let got = h.rtp_for(SessionId(100));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, base.wrapping_add(5));
    assert_eq!(got[0].0, Ssrc(0xA000));
    assert_eq!(got[0].4, payload_for(5));
    // A duplicate of it is not forwarded twice.
    assert_eq!(h.send(&rtx_of(5, 701, 15_000)), 0);
    assert_eq!(h.router.stats().rtx_received, 2);
}

#[test]
fn subscriber_nacks_are_answered_from_the_cache_on_rtx() {
    let mut h = Harness::new(2, true);
    for seq in 10..20u16 {
        h.send(&rtp(
            PUB_SSRC,
            VP8_PT,
            seq,
            u32::from(seq) * 3000,
            &payload_for(seq),
        ));
    }
    // Subscriber 0 lost its numbers for source 12 and 15.
    let lost = [65_500u16.wrapping_add(2), 65_500u16.wrapping_add(5)];
    let mut nack = [0u8; 64];
    let len = rtc_core::rtcp::feedback::write_nack(&mut nack, Ssrc(9), Ssrc(0xA000), &lost)
        .expect("nack written");
    h.out.clear();
    h.router
        .handle_rtcp(h.now, SessionId(100), &nack[..len], &mut h.out);
    let got = h.rtp_for(SessionId(100));
    assert_eq!(got.len(), 2);
    for ((ssrc, pt, _, ts, payload), (asked, source)) in
        got.iter().zip(lost.iter().zip([12u16, 15]))
    {
        assert_eq!(*ssrc, Ssrc(0xB000), "sent on the subscriber's RTX SSRC");
        assert_eq!(*pt, Pt(101));
        assert_eq!(
            &payload[..2],
            &asked.to_be_bytes(),
            "OSN is the subscriber's number"
        );
        assert_eq!(&payload[2..], payload_for(source).as_slice());
        assert_eq!(*ts, u32::from(source) * 3000 - 30_000);
    }
    assert!(
        h.rtp_for(SessionId(101)).is_empty(),
        "only the one who asked"
    );
    assert_eq!(h.router.stats().retransmissions_sent, 2);
}

#[test]
fn a_packet_nacked_again_and_again_is_resent_once_per_interval() {
    let mut h = Harness::new(1, true);
    for seq in 10..20u16 {
        h.send(&rtp(
            PUB_SSRC,
            VP8_PT,
            seq,
            u32::from(seq) * 3000,
            &payload_for(seq),
        ));
    }
    // One compound packet asking for the same two packets three times, on both SSRCs.
    let lost = [65_502u16, 65_505];
    let mut compound = Vec::new();
    for ssrc in [Ssrc(0xA000), Ssrc(0xB000), Ssrc(0xA000)] {
        let mut nack = [0u8; 64];
        let len = rtc_core::rtcp::feedback::write_nack(&mut nack, Ssrc(9), ssrc, &lost)
            .expect("nack written");
        compound.extend_from_slice(&nack[..len]);
    }
    h.out.clear();
    h.router
        .handle_rtcp(h.now, SessionId(100), &compound, &mut h.out);
    assert_eq!(h.rtp_for(SessionId(100)).len(), 2, "each packet once");
    // A NACK after the interval (the retransmission was lost too) is answered again.
    h.now += Duration::from_millis(30);
    h.out.clear();
    h.router
        .handle_rtcp(h.now, SessionId(100), &compound, &mut h.out);
    assert_eq!(h.rtp_for(SessionId(100)).len(), 2);
    assert_eq!(h.router.stats().retransmissions_sent, 4);
}

#[test]
fn nacks_alternating_numbers_resend_each_packet_once() {
    let mut h = Harness::new(1, true);
    for seq in 10..90u16 {
        h.send(&rtp(PUB_SSRC, VP8_PT, seq, 0, &payload_for(seq)));
    }
    // Numbers 64 apart, then one that shares a slot of the 512-packet cache but was never sent.
    let first = 65_502u16;
    let mut compound = Vec::new();
    for asked in [0u16, 64, 0, 64, 512, 0] {
        let mut nack = [0u8; 64];
        let lost = [first.wrapping_add(asked)];
        let len = rtc_core::rtcp::feedback::write_nack(&mut nack, Ssrc(9), Ssrc(0xA000), &lost)
            .expect("nack written");
        compound.extend_from_slice(&nack[..len]);
    }
    h.out.clear();
    h.router
        .handle_rtcp(h.now, SessionId(100), &compound, &mut h.out);
    assert_eq!(h.rtp_for(SessionId(100)).len(), 2);
}

#[test]
fn without_rtx_a_nack_is_answered_with_the_original_packet() {
    let mut h = Harness::new(1, false);
    for seq in 0..5u16 {
        h.send(&rtp(
            PUB_SSRC,
            VP8_PT,
            seq,
            u32::from(seq) * 3000,
            &payload_for(seq),
        ));
    }
    h.out.clear();
    h.router
        .retransmit(h.now, SessionId(100), Ssrc(0xA000), &[65_502], &mut h.out);
    let got = h.rtp_for(SessionId(100));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Ssrc(0xA000));
    assert_eq!(got[0].2, 65_502);
    assert_eq!(got[0].4, payload_for(2));
    // A number never sent, or long expired, is not answered.
    h.out.clear();
    h.router.retransmit(
        h.now + Duration::from_secs(5),
        SessionId(100),
        Ssrc(0xA000),
        &[65_503],
        &mut h.out,
    );
    assert!(h.rtp_for(SessionId(100)).is_empty());
}

#[test]
fn keyframe_requests_are_throttled_and_sent_on_subscribe() {
    let now = origin();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::default();
    let track = router
        .add_published_stream(now, PUBLISHER, video_stream(PUB_SSRC, PUB_RTX_SSRC))
        .expect("track");
    router
        .subscribe(
            now,
            SessionId(100),
            track,
            subscriber_stream(0, true),
            &mut out,
        )
        .expect("subscribed");
    let publisher_rtcp: Vec<Vec<u8>> = out
        .as_slice()
        .iter()
        .filter(|t| t.session == PUBLISHER)
        .map(|t| t.packet().to_vec())
        .collect();
    assert_eq!(
        count_plis(&publisher_rtcp),
        1,
        "a new subscriber asks for a keyframe"
    );

    let mut pli = [0u8; 12];
    let len = rtc_core::rtcp::feedback::write_pli(&mut pli, Ssrc(5), Ssrc(0xA000)).expect("pli");
    let mut forwarded = 0;
    for step in 0..40u64 {
        out.clear();
        router.handle_rtcp(
            now + Duration::from_millis(step * 50),
            SessionId(100),
            &pli[..len],
            &mut out,
        );
        let rtcp: Vec<Vec<u8>> = out.as_slice().iter().map(|t| t.packet().to_vec()).collect();
        forwarded += count_plis(&rtcp);
    }
    // 2 s of PLIs every 50 ms: one per 500 ms reaches the publisher, and the one at 0 ms is
    // covered by the request the subscription itself made.
    assert_eq!(forwarded, 3);
    assert_eq!(router.stats().keyframe_requests_received, 40);
}

#[test]
fn a_publisher_that_leaves_and_comes_back_continues_every_subscriber_stream() {
    let mut h = Harness::new(2, true);
    let mut last = Vec::new();
    for seq in 1000..1010u16 {
        h.send(&rtp(
            PUB_SSRC,
            VP8_PT,
            seq,
            u32::from(seq) * 3000,
            &payload_for(seq),
        ));
        last = h.rtp_for(SessionId(100));
    }
    let last_seq = last[0].2;
    let last_ts = last[0].3;
    h.router.remove_session(PUBLISHER);
    assert_eq!(h.router.detached_subscriptions().count(), 2);
    assert_eq!(
        h.send(&rtp(PUB_SSRC, VP8_PT, 1010, 0, b"x")),
        0,
        "track is gone"
    );

    // Back 3 s later as a new session with new SSRCs and random bases.
    h.now += Duration::from_secs(3);
    let returning = SessionId(2);
    let new_track = h
        .router
        .add_published_stream(h.now, returning, video_stream(Ssrc(0x7777), Ssrc(0x8888)))
        .expect("track");
    let detached: Vec<_> = h.router.detached_subscriptions().collect();
    for (subscription, _) in detached {
        h.router
            .attach(h.now, subscription, new_track, &mut h.out)
            .expect("attached");
    }
    h.out.clear();
    let mut packet = rtp(
        Ssrc(0x7777),
        VP8_PT,
        50_000,
        4_000_000_000,
        &payload_for(50_000),
    );
    h.router
        .handle_rtp(h.now, returning, &mut packet, &mut h.out)
        .expect("routed");
    let got = h.rtp_for(SessionId(100));
    assert_eq!(
        got[0].2,
        last_seq.wrapping_add(1),
        "no jump in sequence numbers"
    );
    assert_eq!(
        got[0].3,
        last_ts.wrapping_add(3 * 90_000),
        "timestamp advances by 3 s"
    );
    assert_eq!(got[0].0, Ssrc(0xA000), "the subscriber keeps its SSRC");
    assert_eq!(h.router.tracks_of(returning).count(), 1);
    let _ = h.track;
}

#[test]
fn sender_reports_to_subscribers_match_the_rewritten_timestamps() {
    let mut h = Harness::new(1, true);
    for seq in 0..10u16 {
        h.send(&rtp(
            PUB_SSRC,
            VP8_PT,
            seq,
            500_000 + u32::from(seq) * 3000,
            &payload_for(seq),
        ));
    }
    // The publisher's SR maps NTP time T to RTP time 527_000.
    let mut sr = [0u8; 28];
    let info = rtc_core::rtcp::SenderInfo {
        ssrc: PUB_SSRC,
        ntp_time: 0x0000_0010_8000_0000,
        rtp_time: 527_000,
        packet_count: 10,
        octet_count: 2000,
    };
    let len = rtc_core::rtcp::report::write_sender_report(&mut sr, &info, &[]).expect("sr");
    h.router
        .handle_rtcp(h.now, PUBLISHER, &sr[..len], &mut h.out);

    h.out.clear();
    let at = h.now + Duration::from_secs(1);
    h.router.handle_timeout(at, &mut h.out);
    let reports = h.rtcp_for(SessionId(100));
    let sender_info = reports
        .iter()
        .flat_map(|p| iter_compound(p).collect::<Vec<_>>())
        .find_map(|item| match item {
            Ok(RtcpPacket::SenderReport(report)) => Some(report.sender_info()),
            _ => None,
        })
        .expect("a sender report to the subscriber");
    assert_eq!(sender_info.ssrc, Ssrc(0xA000));
    assert_eq!(sender_info.packet_count, 10);
    // One second later: NTP + 1 s, RTP + 90000, shifted by the subscriber's offset.
    assert_eq!(sender_info.ntp_time, 0x0000_0011_8000_0000);
    // Subscriber 0's timestamps start at 0 where the source's started at 500_000.
    let offset = 0u32.wrapping_sub(500_000);
    assert_eq!(
        sender_info.rtp_time,
        527_000u32.wrapping_add(90_000).wrapping_add(offset)
    );

    // And a receiver report went to the publisher about its stream.
    let rr = h
        .rtcp_for(PUBLISHER)
        .iter()
        .flat_map(|p| iter_compound(p).collect::<Vec<_>>())
        .find_map(|item| match item {
            Ok(RtcpPacket::ReceiverReport(report)) => report.report_blocks().next(),
            _ => None,
        })
        .expect("a receiver report to the publisher");
    assert_eq!(rr.ssrc, PUB_SSRC);
    assert_eq!(rr.extended_highest_seq, 9);
    assert_eq!(rr.last_sr, 0x0010_8000);
}

#[test]
fn unknown_ssrcs_payload_types_and_garbage_are_dropped_and_counted() {
    let mut h = Harness::new(1, true);
    assert_eq!(h.send(&rtp(Ssrc(0xDEAD), VP8_PT, 1, 0, b"x")), 0);
    assert_eq!(h.send(&rtp(PUB_SSRC, Pt(111), 1, 0, b"x")), 0);
    assert_eq!(h.send(&[0x80, 0x60, 0]), 0);
    // RTX padding probe: no original sequence number.
    assert_eq!(h.send(&rtp(PUB_RTX_SSRC, VP8_RTX_PT, 1, 0, b"")), 0);
    assert_eq!(h.router.stats().rtp_dropped, 4);
    h.router
        .handle_rtcp(h.now, SessionId(100), &[0x81, 0xCD, 0xFF, 0xFF], &mut h.out);
    assert_eq!(h.router.stats().rtcp_malformed, 1);
}

#[test]
fn unsubscribed_and_removed_tracks_stop_forwarding() {
    let mut h = Harness::new(2, true);
    h.send(&rtp(PUB_SSRC, VP8_PT, 1, 0, &payload_for(1)));
    assert_eq!(h.rtp_for(SessionId(101)).len(), 1);
    // Subscriber 101 drops the track: only 100 keeps receiving.
    let subscription = h.router.detached_subscriptions().next().map(|(id, _)| id);
    assert_eq!(subscription, None, "both are attached");
    let track = h.track;
    h.router.remove_published_stream(track);
    assert_eq!(h.send(&rtp(PUB_SSRC, VP8_PT, 2, 0, &payload_for(2))), 0);
    let detached: Vec<_> = h.router.detached_subscriptions().collect();
    assert_eq!(detached.len(), 2, "subscriptions outlive the removed track");
    let (gone, who) = detached
        .iter()
        .copied()
        .find(|(_, session)| *session == SessionId(101))
        .expect("101's subscription");
    h.router.unsubscribe(who, gone);
    assert_eq!(h.router.detached_subscriptions().count(), 1);
    // A replacement track picks up the remaining subscriber only.
    let replacement = h
        .router
        .add_published_stream(h.now, PUBLISHER, video_stream(Ssrc(0x3333), Ssrc(0x4444)))
        .expect("track");
    let (remaining, _) = h.router.detached_subscriptions().next().expect("one left");
    h.router
        .attach(h.now, remaining, replacement, &mut h.out)
        .expect("attached");
    assert_eq!(h.send(&rtp(Ssrc(0x3333), VP8_PT, 9, 0, &payload_for(9))), 1);
    assert_eq!(h.rtp_for(SessionId(100)).len(), 1);
    assert!(h.rtp_for(SessionId(101)).is_empty());
    assert_eq!(h.router.track_ssrc(replacement), Some(Ssrc(0x3333)));
    assert_eq!(h.router.track_ssrc(track), None);
}

#[test]
fn goodbye_sends_a_bye_for_every_ssrc_of_every_session() {
    let mut h = Harness::new(2, true);
    h.out.clear();
    h.router.goodbye(&mut h.out);
    let byes = |session| -> Vec<Ssrc> {
        h.rtcp_for(session)
            .iter()
            .flat_map(|p| iter_compound(p).collect::<Vec<_>>())
            .filter_map(|item| match item {
                Ok(RtcpPacket::Bye(bye)) => {
                    assert_eq!(bye.reason(), Some(&b"server shutting down"[..]));
                    Some(bye.ssrcs().collect::<Vec<_>>())
                }
                _ => None,
            })
            .flatten()
            .collect()
    };
    assert_eq!(byes(SessionId(100)), vec![Ssrc(0xA000), Ssrc(0xB000)]);
    assert_eq!(byes(SessionId(101)), vec![Ssrc(0xA001), Ssrc(0xB001)]);
    assert_eq!(byes(PUBLISHER), vec![RouterConfig::default().feedback_ssrc]);
}

#[test]
fn a_gap_on_a_track_without_nack_does_not_keep_the_router_due() {
    let now = origin();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::with_capacity(16);
    let stream = PublishedStream {
        nack: false,
        ..video_stream(PUB_SSRC, PUB_RTX_SSRC)
    };
    let track = router
        .add_published_stream(now, PUBLISHER, stream)
        .expect("track added");
    router
        .subscribe(
            now,
            SessionId(100),
            track,
            subscriber_stream(0, false),
            &mut out,
        )
        .expect("subscribed");
    for seq in [0u16, 1, 5] {
        let mut packet = rtp(PUB_SSRC, VP8_PT, seq, 0, &payload_for(seq));
        router
            .handle_rtp(now, PUBLISHER, &mut packet, &mut out)
            .expect("routed");
    }
    // Nothing is ever NACKed on this track, so its missing packets must not wake the worker
    // (it would spin): the next work is the report interval.
    assert!(router.poll_timeout().is_some_and(|at| at > now));
}

#[test]
fn copies_to_one_session_share_its_transport_wide_sequence_numbers() {
    let mut h = Harness::new(1, false);
    let second = h
        .router
        .add_published_stream(
            h.now,
            SessionId(2),
            video_stream(Ssrc(0x5555), Ssrc(0x6666)),
        )
        .expect("second track");
    let mut stream = subscriber_stream(1, false);
    stream.ssrc = Ssrc(0xC000);
    h.router
        .subscribe(h.now, SessionId(100), second, stream, &mut h.out)
        .expect("second subscription");
    let mut numbers = Vec::new();
    for seq in 0..3u16 {
        for (publisher, ssrc) in [(PUBLISHER, PUB_SSRC), (SessionId(2), Ssrc(0x5555))] {
            let mut packet = rtp(ssrc, VP8_PT, seq, 0, &payload_for(seq));
            h.out.clear();
            h.router
                .handle_rtp(h.now, publisher, &mut packet, &mut h.out)
                .expect("routed");
            for transmit in h.out.as_slice() {
                let view = RtpPacket::parse(transmit.packet()).expect("valid RTP out");
                let value = view.extension(7).expect("transport-cc");
                numbers.push(u16::from_be_bytes([value[0], value[1]]));
            }
        }
    }
    assert_eq!(numbers, vec![0, 1, 2, 3, 4, 5]);
    // A session that comes after one that left starts its own count from zero.
    h.router.remove_session(SessionId(100));
    h.router
        .subscribe(
            h.now,
            SessionId(200),
            h.track,
            subscriber_stream(2, false),
            &mut h.out,
        )
        .expect("new subscriber");
    let mut packet = rtp(PUB_SSRC, VP8_PT, 3, 0, &payload_for(3));
    h.out.clear();
    h.router
        .handle_rtp(h.now, PUBLISHER, &mut packet, &mut h.out)
        .expect("routed");
    let transmit = h.out.as_slice().first().expect("one copy");
    let view = RtpPacket::parse(transmit.packet()).expect("valid RTP out");
    assert_eq!(view.extension(7), Some(&0u16.to_be_bytes()[..]));
}

#[test]
fn subscribers_with_different_extension_ids_each_get_their_own() {
    let now = origin();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::with_capacity(16);
    let track = router
        .add_published_stream(now, PUBLISHER, video_stream(PUB_SSRC, PUB_RTX_SSRC))
        .expect("track added");
    // (abs-send-time id, transport-cc id) per subscriber; the first and the last share theirs,
    // the middle one has its own, the fourth has no transport-cc.
    let ids = [(5, Some(7)), (9, Some(11)), (5, Some(7)), (5, None)];
    for (index, &(abs_send_time, transport_cc)) in ids.iter().enumerate() {
        let mut stream = subscriber_stream(index as u32, false);
        stream.extensions = ExtensionIds {
            mid: Some(1),
            abs_send_time: Some(abs_send_time),
            transport_cc,
            ..ExtensionIds::default()
        };
        router
            .subscribe(now, SessionId(100 + index as u64), track, stream, &mut out)
            .expect("subscribed");
    }
    for seq in 0..2u16 {
        let payload = payload_for(seq);
        let mut packet = rtp(PUB_SSRC, VP8_PT, seq, 0, &payload);
        out.clear();
        let copies = router
            .handle_rtp(now, PUBLISHER, &mut packet, &mut out)
            .expect("routed");
        assert_eq!(copies, ids.len());
        for (index, &(abs_send_time, transport_cc)) in ids.iter().enumerate() {
            let session = SessionId(100 + index as u64);
            let transmit = out
                .as_slice()
                .iter()
                .find(|t| t.session == session)
                .expect("a copy for each subscriber");
            let view = RtpPacket::parse(transmit.packet()).expect("valid RTP out");
            assert_eq!(view.ssrc(), Ssrc(0xA000 + index as u32));
            assert_eq!(view.payload_type(), Pt(100));
            assert_eq!(view.payload(), &payload[..]);
            // Sluice's send time: the first packet routed is its origin.
            assert_eq!(view.extension(abs_send_time), Some(&[0u8, 0, 0][..]));
            // The publisher's mid (id 4) is not the subscriber's: dropped.
            assert_eq!(view.extension(4), None);
            match transport_cc {
                Some(id) => assert_eq!(view.extension(id), Some(&seq.to_be_bytes()[..])),
                None => assert!(view.extension(3).is_none() && view.extension(7).is_none()),
            }
        }
    }
}

#[test]
fn reports_are_spread_over_the_interval_and_every_track_reports_once_per_interval() {
    const TRACKS: u64 = 40;
    let start = origin();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::with_capacity(64);
    for i in 0..TRACKS {
        let ssrc = Ssrc(0x1000 + u32::try_from(i).expect("small"));
        router
            .add_published_stream(
                start,
                SessionId(1000 + i),
                video_stream(ssrc, Ssrc(ssrc.0 + 0x100)),
            )
            .expect("track added");
    }
    // Drive the router through one report interval at its own deadlines and count the
    // receiver reports each wake-up sends (one per track when it reports).
    let interval = RouterConfig::default().report_interval;
    let mut reports_per_track = vec![0usize; usize::try_from(TRACKS).expect("small")];
    let mut most_in_one_wake_up = 0;
    let mut wake_ups = 0;
    while let Some(at) = router.poll_timeout() {
        if at > start + interval {
            break;
        }
        out.clear();
        router.handle_timeout(at, &mut out);
        wake_ups += 1;
        let sent: Vec<u64> = out
            .as_slice()
            .iter()
            .filter(|t| t.kind == TransmitKind::Rtcp)
            .map(|t| t.session.0 - 1000)
            .collect();
        most_in_one_wake_up = most_in_one_wake_up.max(sent.len());
        for track in sent {
            reports_per_track[usize::try_from(track).expect("small")] += 1;
        }
        assert!(wake_ups <= 100, "the report timer must advance");
    }
    assert!(
        reports_per_track.iter().all(|&n| n == 1),
        "every track reports exactly once per interval: {reports_per_track:?}"
    );
    assert!(
        most_in_one_wake_up <= 2,
        "40 tracks over 20 slots: at most 2 reports at once, saw {most_in_one_wake_up}"
    );
}

/// What a NACK storm from one subscriber got out of the router, next to a bystander.
#[derive(Debug)]
struct Storm {
    /// Fresh (not retransmitted) packets each subscriber received.
    fresh: [usize; 2],
    /// Retransmissions to the attacker, and their bytes.
    attacker_resent: usize,
    attacker_resent_bytes: usize,
    /// What the bystander asked for and what it got back.
    bystander_asked: usize,
    bystander_resent: usize,
    /// Bytes forwarded fresh to the attacker.
    attacker_forwarded_bytes: usize,
    over_budget: u64,
}

/// Two seconds of a 200-packet-per-second video stream of 1100-byte payloads to two RTX
/// subscribers. Subscriber 100 NACKs the last 200 packets it was sent every 20 ms (the
/// shortest interval at which the router resends a packet at all); subscriber 101 NACKs two
/// packets every 100 ms, like a browser on a lossy link.
fn nack_storm(config: RouterConfig) -> Storm {
    const ATTACKER: SessionId = SessionId(100);
    const BYSTANDER: SessionId = SessionId(101);
    let mut h = Harness::with_config(config, 2, true);
    let payload = |seq: u16| -> Vec<u8> { (0..1100u16).map(|i| (i ^ seq) as u8).collect() };
    let mut attacker_seqs: Vec<u16> = Vec::new();
    let mut bystander_seqs: Vec<u16> = Vec::new();
    let mut storm = Storm {
        fresh: [0, 0],
        attacker_resent: 0,
        attacker_resent_bytes: 0,
        bystander_asked: 0,
        bystander_resent: 0,
        attacker_forwarded_bytes: 0,
        over_budget: 0,
    };
    let mut nack = vec![0u8; 1500];
    for step in 0..400u16 {
        h.now += Duration::from_millis(5);
        h.send(&rtp(
            PUB_SSRC,
            VP8_PT,
            1000 + step,
            u32::from(step) * 450,
            &payload(step),
        ));
        for (i, session) in [ATTACKER, BYSTANDER].into_iter().enumerate() {
            for t in h.out.as_slice().iter().filter(|t| t.session == session) {
                let view = RtpPacket::parse(t.packet()).expect("valid RTP out");
                assert_eq!(
                    view.ssrc(),
                    Ssrc(0xA000 + i as u32),
                    "fresh on the media SSRC"
                );
                storm.fresh[i] += 1;
                if i == 0 {
                    storm.attacker_forwarded_bytes += view.payload().len();
                    attacker_seqs.push(view.sequence_number());
                } else {
                    bystander_seqs.push(view.sequence_number());
                }
            }
        }
        if step % 4 == 3 {
            let lost = &attacker_seqs[attacker_seqs.len().saturating_sub(200)..];
            let len = rtc_core::rtcp::feedback::write_nack(&mut nack, Ssrc(9), Ssrc(0xA000), lost)
                .expect("nack written");
            h.out.clear();
            h.router
                .handle_rtcp(h.now, ATTACKER, &nack[..len], &mut h.out);
            for t in h.out.as_slice() {
                assert_eq!(t.session, ATTACKER, "only the one who asked");
                storm.attacker_resent += 1;
                storm.attacker_resent_bytes += t.packet().len();
            }
        }
        if step % 20 == 10 {
            let n = bystander_seqs.len();
            let lost = [bystander_seqs[n - 7], bystander_seqs[n - 3]];
            let len = rtc_core::rtcp::feedback::write_nack(&mut nack, Ssrc(9), Ssrc(0xA001), &lost)
                .expect("nack written");
            h.out.clear();
            h.router
                .handle_rtcp(h.now, BYSTANDER, &nack[..len], &mut h.out);
            storm.bystander_asked += lost.len();
            for t in h.out.as_slice() {
                assert_eq!(t.session, BYSTANDER);
                let view = RtpPacket::parse(t.packet()).expect("valid RTX out");
                assert_eq!(
                    view.ssrc(),
                    Ssrc(0xB001),
                    "resent on the bystander's RTX SSRC"
                );
                let osn = u16::from_be_bytes([view.payload()[0], view.payload()[1]]);
                assert!(lost.contains(&osn), "the packet it asked for");
                storm.bystander_resent += 1;
            }
        }
    }
    storm.over_budget = h.router.stats().retransmissions_over_budget;
    storm
}

#[test]
fn a_nack_storm_is_bounded_by_the_subscribers_budget_and_a_bystander_is_undisturbed() {
    let budget = RetransmitBudgetConfig::default();
    let storm = nack_storm(RouterConfig::default());
    // The attacker still gets its stream, and the bystander its stream and every repair.
    assert_eq!(storm.fresh, [400, 400], "{storm:?}");
    assert_eq!(storm.bystander_asked, 40);
    assert_eq!(storm.bystander_resent, storm.bystander_asked, "{storm:?}");
    // The attacker got no more than its budget: the burst, its share of what it was
    // forwarded, and the fixed rate for the two seconds.
    let bound = budget.burst_bytes as usize
        + storm.attacker_forwarded_bytes * budget.share_percent as usize / 100
        + 2 * budget.floor_bytes_per_second as usize;
    assert!(
        storm.attacker_resent_bytes <= bound,
        "{} bytes resent, budget {bound}: {storm:?}",
        storm.attacker_resent_bytes
    );
    // ... and it was not refused everything: the budget was spent, not withheld.
    assert!(storm.attacker_resent_bytes > bound * 3 / 4, "{storm:?}");
    // Each refused packet is counted.
    assert!(storm.over_budget > 10_000, "{storm:?}");

    // Without a budget the same storm resends every packet it names, each NACK.
    let unlimited = nack_storm(RouterConfig {
        retransmit_budget: RetransmitBudgetConfig::UNLIMITED,
        ..RouterConfig::default()
    });
    assert_eq!(unlimited.over_budget, 0);
    assert!(
        unlimited.attacker_resent > 10 * storm.attacker_resent,
        "unlimited {} vs budgeted {}",
        unlimited.attacker_resent,
        storm.attacker_resent
    );
}

impl Harness {
    fn events(&mut self) -> Vec<RouterEvent> {
        std::iter::from_fn(|| self.router.poll_event()).collect()
    }
}

#[test]
fn events_tell_keyframe_requests_first_packets_silence_and_unknown_ssrcs() {
    let mut h = Harness::new(2, true);
    let track = h.track;
    // Subscribing requested a keyframe of the video track (once: the second is throttled).
    assert_eq!(
        h.events(),
        [RouterEvent::KeyframeRequested {
            track,
            ssrc: PUB_SSRC
        }]
    );

    assert_eq!(h.send(&rtp(PUB_SSRC, VP8_PT, 1, 0, &payload_for(1))), 2);
    let events = h.events();
    assert_eq!(
        events.first(),
        Some(&RouterEvent::LayerActive {
            track,
            ssrc: PUB_SSRC
        })
    );
    let started: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RouterEvent::SubscriptionStarted {
                subscriber,
                track: t,
                ..
            } if *t == track => Some(*subscriber),
            _ => None,
        })
        .collect();
    assert_eq!(started, [SessionId(100), SessionId(101)]);
    assert_eq!(events.len(), 3);
    // Later packets are news to nobody.
    h.send(&rtp(PUB_SSRC, VP8_PT, 2, 0, &payload_for(2)));
    assert_eq!(h.events(), []);

    // A stream the router cannot route is told once, however many packets it sends.
    for seq in 0..50 {
        h.send(&rtp(Ssrc(0xDEAD), VP8_PT, seq, 0, b"x"));
    }
    assert_eq!(
        h.events(),
        [RouterEvent::UnknownSsrc {
            session: PUBLISHER,
            ssrc: Ssrc(0xDEAD)
        }]
    );

    // Silence for longer than the layer timeout: inactive within a report interval, and
    // active again with the next packet.
    let end = h.now + RouterConfig::default().layer_timeout + Duration::from_secs(1);
    while let Some(at) = h.router.poll_timeout().filter(|at| *at <= end) {
        h.now = at;
        h.out.clear();
        h.router.handle_timeout(h.now, &mut h.out);
    }
    assert_eq!(
        h.events(),
        [RouterEvent::LayerInactive {
            track,
            ssrc: PUB_SSRC
        }]
    );
    h.send(&rtp(PUB_SSRC, VP8_PT, 3, 0, &payload_for(3)));
    assert_eq!(
        h.events(),
        [RouterEvent::LayerActive {
            track,
            ssrc: PUB_SSRC
        }]
    );
    assert_eq!(h.router.stats().events_dropped, 0);
}

#[test]
fn events_nobody_collects_are_dropped_and_counted_not_stored() {
    let mut h = Harness::new(1, true);
    let capacity = packet_router::event::EVENT_CAPACITY as u32;
    // Each new unknown SSRC is one event.
    for ssrc in 0..capacity + 10 {
        h.send(&rtp(Ssrc(0x10_0000 + ssrc), VP8_PT, 1, 0, b"x"));
    }
    assert_eq!(
        h.router.stats().events_dropped,
        11,
        "the keyframe request came first"
    );
    assert_eq!(h.events().len(), capacity as usize);
}

#[test]
fn a_capped_publisher_is_told_its_cap_with_remb_once_a_second() {
    let mut h = Harness::new(1, true);
    h.router
        .set_publisher_max_bitrate(PUBLISHER, Some(1_500_000));
    for seq in 0..5u16 {
        h.send(&rtp(
            PUB_SSRC,
            VP8_PT,
            seq,
            u32::from(seq) * 3000,
            &payload_for(seq),
        ));
    }
    let rembs = |h: &Harness| -> Vec<(u64, Vec<Ssrc>)> {
        h.rtcp_for(PUBLISHER)
            .iter()
            .flat_map(|p| iter_compound(p).collect::<Vec<_>>())
            .filter_map(|item| match item {
                Ok(RtcpPacket::Remb(remb)) => Some((remb.bitrate(), remb.ssrcs().collect())),
                _ => None,
            })
            .collect()
    };
    let mut seen = Vec::new();
    for step in 1..=40u32 {
        h.out.clear();
        h.router
            .handle_timeout(h.now + Duration::from_millis(50) * step, &mut h.out);
        seen.extend(rembs(&h));
    }
    // Two seconds of report slots: one REMB per second for the one video track, at the cap
    // (within the 18-bit mantissa's rounding) for the publisher's media SSRC.
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (bitrate, ssrcs) in &seen {
        assert!(*bitrate <= 1_500_000 && *bitrate > 1_490_000, "{bitrate}");
        assert_eq!(ssrcs, &vec![PUB_SSRC]);
    }
    assert_eq!(h.router.stats().remb_sent, 2);
    // Lifting the cap lifts it with REMB too (a browser keeps the last REMB as a ceiling):
    // five REMBs with no real limit, one a second, then none.
    h.router.set_publisher_max_bitrate(PUBLISHER, None);
    let mut after = Vec::new();
    for step in 41..=200u32 {
        h.out.clear();
        h.router
            .handle_timeout(h.now + Duration::from_millis(50) * step, &mut h.out);
        after.extend(rembs(&h));
    }
    assert_eq!(after.len(), 5, "{after:?}");
    for (bitrate, _) in &after {
        assert!(*bitrate >= 999_000_000, "{bitrate}");
    }
}
