//! Redundant audio (RFC 2198) through the router in virtual time: an Opus publisher sending
//! 20 ms packets, a subscriber that negotiated RED behind a link that loses one packet in
//! ten, and then none; the subscriber's feedback (transport-wide, or receiver reports without
//! it) is played by Sluice's own feedback generator and report writer. The subscriber gets
//! RED once its loss lasts, every lost packet is in the next one's redundancy, and plain Opus
//! again once its link has been clean for a while.

use std::time::{Duration, Instant};

use packet_router::{
    AudioRedMode, Codec, CodecParams, ExtensionIds, MediaKind, PublishedStream, Router,
    RouterConfig, SessionId, SubscribedStream, TransmitKind, TransmitQueue, TransportFeedback,
};
use rtc_core::rtcp::{ReportBlock, write_receiver_report};
use rtc_core::rtp::RtpPacket;
use rtc_core::rtp::red::RedPayload;
use rtc_core::{Pt, Ssrc};

#[expect(
    clippy::disallowed_methods,
    reason = "the one clock read of this test crate: std makes an Instant no other way"
)]
fn origin() -> Instant {
    Instant::now()
}

const PUBLISHER: SessionId = SessionId(1);
const SUBSCRIBER: SessionId = SessionId(100);
const PUBLISHED_OPUS: Pt = Pt(109);
const OPUS: Pt = Pt(111);
const RED: Pt = Pt(63);
const TWCC_ID: u8 = 3;
const SUBSCRIBER_SSRC: Ssrc = Ssrc(0xA000);

fn audio_stream() -> PublishedStream {
    PublishedStream {
        kind: MediaKind::Audio,
        ssrc: Ssrc(0x55),
        rtx_ssrc: None,
        codecs: vec![CodecParams {
            codec: Codec::Opus,
            pt: PUBLISHED_OPUS,
            rtx_pt: None,
        }],
        extensions: ExtensionIds::default(),
        nack: false,
        mid: None,
        rids: Vec::new(),
    }
}

fn subscriber_stream(transport_cc: bool, red: bool) -> SubscribedStream {
    SubscribedStream {
        ssrc: SUBSCRIBER_SSRC,
        rtx_ssrc: None,
        codecs: vec![CodecParams {
            codec: Codec::Opus,
            pt: OPUS,
            rtx_pt: None,
        }],
        extensions: ExtensionIds {
            transport_cc: transport_cc.then_some(TWCC_ID),
            ..ExtensionIds::default()
        },
        red_pt: red.then_some(RED),
        initial_seq: 500,
        initial_timestamp: 0,
    }
}

/// The publisher's packet `n`: its payload says which one it is.
fn opus_packet(n: u16) -> Vec<u8> {
    let mut p = vec![0x80, PUBLISHED_OPUS.0];
    p.extend_from_slice(&n.to_be_bytes());
    p.extend_from_slice(&(u32::from(n) * 960).to_be_bytes());
    p.extend_from_slice(&0x55u32.to_be_bytes());
    p.extend_from_slice(format!("opus frame {n:05}").as_bytes());
    p
}

/// What the subscriber received of one packet the publisher sent.
struct Arrival {
    /// The publisher's packet number, and when it was sent.
    n: u16,
    at: Duration,
    /// Whether the link lost it.
    lost: bool,
    /// Whether it came as RED, and the frames it carried (redundant ones first).
    red: bool,
    frames: Vec<String>,
}

/// Runs `length` of a call: the link loses every tenth packet while `lossy` says so; the
/// subscriber sends transport-wide feedback every 50 ms, or (without it) a receiver report
/// every second.
fn run(
    mode: AudioRedMode,
    stream: SubscribedStream,
    length: Duration,
    lossy: impl Fn(Duration) -> bool,
) -> Vec<Arrival> {
    let start = origin();
    let mut router = Router::new(RouterConfig {
        audio_red: mode,
        ..RouterConfig::default()
    });
    let mut out = TransmitQueue::with_capacity(64);
    let transport_cc = stream.extensions.transport_cc.is_some();
    let track = router
        .add_published_stream(start, PUBLISHER, audio_stream())
        .expect("track");
    router
        .subscribe(start, SUBSCRIBER, track, stream, &mut out)
        .expect("subscribed");
    out.clear();
    let mut feedback = TransportFeedback::new(TWCC_ID, SUBSCRIBER_SSRC);
    let mut feedback_out = TransmitQueue::with_capacity(16);
    let (mut received, mut lost_since_report, mut sent_since_report) = (Vec::new(), 0u32, 0u32);
    let mut elapsed = Duration::ZERO;
    let mut n: u16 = 0;
    while elapsed < length {
        let now = start + elapsed;
        let mut packet = opus_packet(n);
        router
            .handle_rtp(now, PUBLISHER, &mut packet, &mut out)
            .expect("routed");
        for transmit in out.as_slice() {
            if transmit.session != SUBSCRIBER || transmit.kind != TransmitKind::Rtp {
                continue;
            }
            let view = RtpPacket::parse(transmit.packet()).expect("valid copy");
            let lost = lossy(elapsed) && n % 10 == 5;
            sent_since_report += 1;
            if lost {
                lost_since_report += 1;
            } else if let Some(&[high, low]) = view.extension(TWCC_ID) {
                feedback.handle_packet(now, u16::from_be_bytes([high, low]));
            }
            let red = view.payload_type() == RED;
            let frames = if red {
                let payload = RedPayload::parse(view.payload()).expect("valid RED");
                payload
                    .blocks()
                    .map(|b| {
                        assert_eq!(b.pt, OPUS, "blocks in the subscriber's Opus payload type");
                        String::from_utf8_lossy(b.data).into_owned()
                    })
                    .collect()
            } else {
                assert_eq!(view.payload_type(), OPUS);
                vec![String::from_utf8_lossy(view.payload()).into_owned()]
            };
            received.push(Arrival {
                n,
                at: elapsed,
                lost,
                red,
                frames,
            });
        }
        out.clear();
        if transport_cc && elapsed.as_millis().is_multiple_of(60) {
            feedback_out.clear();
            feedback.poll_feedback(now, SUBSCRIBER, Ssrc(0xB0B), &mut feedback_out);
            for transmit in feedback_out.as_slice() {
                router.handle_rtcp(now, SUBSCRIBER, transmit.packet(), &mut out);
            }
        }
        if !transport_cc && elapsed.as_millis().is_multiple_of(1000) && sent_since_report > 0 {
            let block = ReportBlock {
                ssrc: SUBSCRIBER_SSRC,
                fraction_lost: (lost_since_report * 256 / sent_since_report) as u8,
                ..ReportBlock::default()
            };
            let mut report = [0u8; 64];
            let len = write_receiver_report(&mut report, Ssrc(0xB0B), &[block]).expect("fits");
            router.handle_rtcp(now, SUBSCRIBER, &report[..len], &mut out);
            (lost_since_report, sent_since_report) = (0, 0);
        }
        if router.poll_timeout().is_some_and(|at| at <= now) {
            router.handle_timeout(now, &mut out);
        }
        out.clear();
        n = n.wrapping_add(1);
        elapsed += Duration::from_millis(20);
    }
    received
}

fn first_red(arrivals: &[Arrival]) -> Option<Duration> {
    arrivals.iter().find(|a| a.red).map(|a| a.at)
}

fn last_red(arrivals: &[Arrival]) -> Option<Duration> {
    arrivals.iter().rev().find(|a| a.red).map(|a| a.at)
}

/// Packets lost on the link that the next two packets did not carry.
fn unrecovered(arrivals: &[Arrival]) -> usize {
    arrivals
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            let frame = format!("opus frame {:05}", a.n);
            a.lost
                && !arrivals
                    .iter()
                    .skip(i + 1)
                    .take(2)
                    .any(|next| !next.lost && next.frames.contains(&frame))
        })
        .count()
}

#[test]
fn lasting_loss_turns_redundancy_on_and_a_clean_link_turns_it_off() {
    let loss_ends = Duration::from_secs(5);
    let arrivals = run(
        AudioRedMode::OnLoss,
        subscriber_stream(true, true),
        Duration::from_secs(20),
        |t| t < loss_ends,
    );
    let on = first_red(&arrivals).expect("RED was turned on");
    // The loss has to be measured over half-second samples and last a second.
    assert!(
        on >= Duration::from_millis(1000) && on <= Duration::from_millis(3000),
        "RED from {on:?}"
    );
    // From then on every lost packet is carried by the next packets, each RED packet
    // repeating the two before it.
    assert!(
        arrivals
            .iter()
            .filter(|a| a.at >= on && a.at < loss_ends)
            .all(|a| a.red)
    );
    let lossy_after_on: Vec<&Arrival> = arrivals
        .iter()
        .filter(|a| a.at > on && a.at < loss_ends)
        .collect();
    assert!(lossy_after_on.iter().any(|a| a.lost));
    assert_eq!(
        unrecovered(&arrivals[on.as_millis() as usize / 20 + 1..]),
        0
    );
    for arrival in &lossy_after_on {
        let n = arrival.n;
        let expected: Vec<String> = (n - 2..=n).map(|k| format!("opus frame {k:05}")).collect();
        assert_eq!(arrival.frames, expected, "packet {n}");
    }
    // Clean for 10 s: plain Opus again.
    let off = last_red(&arrivals).expect("RED");
    assert!(
        off >= loss_ends + Duration::from_secs(9) && off <= loss_ends + Duration::from_secs(12),
        "RED until {off:?}"
    );
    assert!(arrivals.iter().filter(|a| a.at > off).all(|a| !a.red));
}

#[test]
fn without_transport_wide_feedback_receiver_reports_measure_the_loss() {
    let arrivals = run(
        AudioRedMode::OnLoss,
        subscriber_stream(false, true),
        Duration::from_secs(6),
        |_| true,
    );
    let on = first_red(&arrivals).expect("RED was turned on");
    // Reports come every second; the second one that shows loss turns it on.
    assert!(on <= Duration::from_millis(2100), "RED from {on:?}");
    let after_on = on.as_millis() as usize / 20 + 1;
    assert_eq!(unrecovered(&arrivals[after_on..]), 0);
}

#[test]
fn modes_and_negotiation_decide_who_gets_redundancy() {
    let always = run(
        AudioRedMode::Always,
        subscriber_stream(true, true),
        Duration::from_secs(2),
        |_| false,
    );
    assert!(
        always.iter().all(|a| a.red),
        "always: from the first packet"
    );
    assert_eq!(always[0].frames.len(), 1, "nothing to repeat yet");
    assert_eq!(unrecovered(&always), 0);
    for (mode, stream) in [
        (AudioRedMode::Off, subscriber_stream(true, true)),
        (AudioRedMode::OnLoss, subscriber_stream(true, false)),
        (AudioRedMode::Always, subscriber_stream(true, false)),
    ] {
        let arrivals = run(mode, stream, Duration::from_secs(6), |_| true);
        assert_eq!(first_red(&arrivals), None, "{mode:?}");
        assert!(unrecovered(&arrivals) > 20, "{mode:?}: loss stays loss");
    }
}
