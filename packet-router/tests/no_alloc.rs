//! The forwarding path allocates nothing: after warm-up, thousands of packets routed to
//! several subscribers (with RTX repairs, subscriber NACKs and timers in between) leave the
//! allocation counter of this test binary unchanged. The same holds for a rid-simulcast
//! track whose subscribers switch layers all along, and for audio sent with redundancy.
#![allow(unsafe_code)] // A counting global allocator needs `unsafe impl GlobalAlloc`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use packet_router::{
    AudioRedMode, Codec, CodecParams, ExtensionIds, MediaKind, PublishedStream, Router,
    RouterConfig, SessionId, SubscribedStream, TransmitQueue,
};
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

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Counting on this thread only: the tests of this file run in parallel, and another
    /// one's set-up allocates.
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Starts or stops counting this thread's allocations.
fn counting(on: bool) {
    COUNTING.with(|c| c.set(on));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a side
// effect that does not touch the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.try_with(std::cell::Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.try_with(std::cell::Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The counter is global: the tests of this binary take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn packet(ssrc: u32, pt: u8, seq: u16, timestamp: u32, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x90, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 2];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&timestamp.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    // The transport-wide sequence number (id 3) follows the RTP one; RTX packets get their
    // own range, as they are counted on the same transport.
    let transport_seq = if pt == 97 {
        seq.wrapping_add(40_000)
    } else {
        seq
    };
    let [high, low] = transport_seq.to_be_bytes();
    p.extend_from_slice(&[0x22, 1, 2, 3, 0x31, high, low, 0]);
    p.extend((0..payload_len).map(|i| i as u8));
    p
}

#[test]
fn forwarding_allocates_nothing_per_packet() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const SUBSCRIBERS: u64 = 8;
    const PACKETS: u16 = 5_000;
    let mut now = origin();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::with_capacity(64);
    let codecs = vec![CodecParams {
        codec: Codec::Vp8,
        pt: Pt(96),
        rtx_pt: Some(Pt(97)),
    }];
    let extensions = ExtensionIds {
        abs_send_time: Some(2),
        transport_cc: Some(3),
        ..ExtensionIds::default()
    };
    let publisher = SessionId(1);
    let track = router
        .add_published_stream(
            now,
            publisher,
            PublishedStream {
                kind: MediaKind::Video,
                ssrc: Ssrc(10),
                rtx_ssrc: Some(Ssrc(11)),
                codecs: codecs.clone(),
                extensions,
                nack: true,
                mid: None,
                rids: Vec::new(),
            },
        )
        .expect("track");
    for i in 0..SUBSCRIBERS {
        router
            .subscribe(
                now,
                SessionId(100 + i),
                track,
                SubscribedStream {
                    ssrc: Ssrc(1000 + i as u32),
                    rtx_ssrc: Some(Ssrc(2000 + i as u32)),
                    codecs: codecs.clone(),
                    extensions,
                    red_pt: None,
                    initial_seq: i as u16,
                    initial_timestamp: 0,
                },
                &mut out,
            )
            .expect("subscribed");
    }
    // Every packet of the run, prepared up front; the 7th of every 100 is "lost" and
    // repaired by RTX, and every 50th packet a subscriber NACKs one that is still cached.
    let mut stream: Vec<Vec<u8>> = Vec::new();
    for seq in 0..PACKETS {
        if seq % 100 != 7 {
            stream.push(packet(10, 96, seq, u32::from(seq) * 3000, 1100));
        }
        if seq % 100 == 9 {
            let lost = seq - 2;
            let mut rtx = packet(11, 97, seq, u32::from(lost) * 3000, 0);
            rtx.extend_from_slice(&lost.to_be_bytes());
            rtx.extend((0..1100).map(|i| i as u8));
            stream.push(rtx);
        }
    }

    let run = |router: &mut Router,
               out: &mut TransmitQueue,
               now: &mut Instant,
               packets: &mut [Vec<u8>]| {
        let mut forwarded = 0usize;
        for (i, p) in packets.iter_mut().enumerate() {
            out.clear();
            *now += Duration::from_millis(3);
            forwarded += router.handle_rtp(*now, publisher, p, out).unwrap_or(0);
            if i % 50 == 0 {
                // Subscriber 100 (numbered like the source) lost the packet 5 before this one.
                let seq = u16::from_be_bytes([p[2], p[3]]).wrapping_sub(5);
                let mut nack = [0u8; 16];
                let len =
                    rtc_core::rtcp::feedback::write_nack(&mut nack, Ssrc(5), Ssrc(1000), &[seq])
                        .expect("nack");
                router.handle_rtcp(*now, SessionId(100), &nack[..len], out);
            }
            if i % 500 == 250 {
                // Subscriber 101 (numbered one above the source) NACKs the last 200 packets:
                // a storm beyond its retransmission budget, refused without allocating.
                let newest = u16::from_be_bytes([p[2], p[3]]).wrapping_add(1);
                let lost: [u16; 200] =
                    std::array::from_fn(|k| newest.wrapping_sub(199).wrapping_add(k as u16));
                let mut nack = [0u8; 256];
                let len =
                    rtc_core::rtcp::feedback::write_nack(&mut nack, Ssrc(5), Ssrc(1001), &lost)
                        .expect("nack");
                router.handle_rtcp(*now, SessionId(101), &nack[..len], out);
            }
            if router.poll_timeout().is_some_and(|at| at <= *now) {
                router.handle_timeout(*now, out);
            }
            // Events wait in a ring allocated with the router.
            while router.poll_event().is_some() {}
        }
        forwarded
    };
    // Warm-up: the queue and scratch buffers grow to their working size.
    let (warm, measured) = stream.split_at_mut(500);
    run(&mut router, &mut out, &mut now, warm);

    let retransmitted_before = router.stats().retransmissions_sent;
    let feedback_before = router.stats().transport_feedback_sent;
    let over_budget_before = router.stats().retransmissions_over_budget;
    ALLOCATIONS.store(0, Ordering::SeqCst);
    counting(true);
    let forwarded = run(&mut router, &mut out, &mut now, measured);
    counting(false);

    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(forwarded as u64 >= (measured.len() as u64 - 60) * SUBSCRIBERS);
    assert!(router.stats().retransmissions_sent > retransmitted_before + 50);
    assert!(router.stats().rtx_received > 0);
    assert!(
        router.stats().transport_feedback_sent > feedback_before + 50,
        "transport-wide feedback went to the publisher: {:?}",
        router.stats()
    );
    assert!(
        router.stats().retransmissions_over_budget > over_budget_before + 500,
        "the storms went over budget: {:?}",
        router.stats()
    );
    assert_eq!(
        allocations, 0,
        "{allocations} allocations while forwarding {forwarded} copies"
    );
}

#[test]
fn redundant_audio_allocates_nothing_per_packet() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const SUBSCRIBERS: u64 = 8;
    let mut now = origin();
    let mut router = Router::new(RouterConfig {
        audio_red: AudioRedMode::Always,
        ..RouterConfig::default()
    });
    let mut out = TransmitQueue::with_capacity(64);
    let codecs = vec![CodecParams {
        codec: Codec::Opus,
        pt: Pt(111),
        rtx_pt: None,
    }];
    let extensions = ExtensionIds {
        transport_cc: Some(3),
        ..ExtensionIds::default()
    };
    let publisher = SessionId(1);
    let published = PublishedStream {
        kind: MediaKind::Audio,
        ssrc: Ssrc(10),
        rtx_ssrc: None,
        codecs: codecs.clone(),
        extensions,
        nack: false,
        mid: None,
        rids: Vec::new(),
    };
    let track = router
        .add_published_stream(now, publisher, published)
        .expect("track");
    for i in 0..SUBSCRIBERS {
        // Half of them negotiated RED.
        let stream = SubscribedStream {
            ssrc: Ssrc(1000 + i as u32),
            rtx_ssrc: None,
            codecs: codecs.clone(),
            extensions,
            red_pt: (i % 2 == 0).then_some(Pt(63)),
            initial_seq: i as u16,
            initial_timestamp: 0,
        };
        router
            .subscribe(now, SessionId(100 + i), track, stream, &mut out)
            .expect("subscribed");
    }
    // 20 ms Opus packets of 60 to 160 bytes; every 25th is missing (the run of redundancy
    // starts again after it).
    let mut stream: Vec<Vec<u8>> = (0..5_000u16)
        .filter(|seq| seq % 25 != 7)
        .map(|seq| {
            packet(
                10,
                111,
                seq,
                u32::from(seq) * 960,
                60 + usize::from(seq % 100),
            )
        })
        .collect();
    let run = |router: &mut Router,
               out: &mut TransmitQueue,
               now: &mut Instant,
               packets: &mut [Vec<u8>]| {
        let mut forwarded = 0usize;
        for p in packets.iter_mut() {
            out.clear();
            *now += Duration::from_millis(20);
            forwarded += router.handle_rtp(*now, publisher, p, out).unwrap_or(0);
            if router.poll_timeout().is_some_and(|at| at <= *now) {
                router.handle_timeout(*now, out);
            }
            while router.poll_event().is_some() {}
        }
        forwarded
    };
    let (warm, measured) = stream.split_at_mut(200);
    run(&mut router, &mut out, &mut now, warm);
    let red_before = router.stats().red_packets_sent;
    ALLOCATIONS.store(0, Ordering::SeqCst);
    counting(true);
    let forwarded = run(&mut router, &mut out, &mut now, measured);
    counting(false);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(forwarded as u64, measured.len() as u64 * SUBSCRIBERS);
    assert_eq!(
        router.stats().red_packets_sent - red_before,
        measured.len() as u64 * SUBSCRIBERS / 2,
        "the subscribers that negotiated RED got every packet with redundancy"
    );
    assert_eq!(
        allocations, 0,
        "{allocations} allocations while forwarding {forwarded} copies"
    );
}

#[test]
fn receive_side_estimation_allocates_nothing_per_packet() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let start = origin();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::with_capacity(64);
    let codecs = vec![CodecParams {
        codec: Codec::Vp8,
        pt: Pt(96),
        rtx_pt: None,
    }];
    // abs-send-time without transport-wide sequence numbers: Sluice estimates and tells
    // the publisher with REMB.
    let extensions = ExtensionIds {
        abs_send_time: Some(2),
        ..ExtensionIds::default()
    };
    let publisher = SessionId(1);
    let track = router
        .add_published_stream(
            start,
            publisher,
            PublishedStream {
                kind: MediaKind::Video,
                ssrc: Ssrc(10),
                rtx_ssrc: None,
                codecs: codecs.clone(),
                extensions,
                nack: true,
                mid: None,
                rids: Vec::new(),
            },
        )
        .expect("track");
    for i in 0..4u64 {
        router
            .subscribe(
                start,
                SessionId(100 + i),
                track,
                SubscribedStream {
                    ssrc: Ssrc(1000 + i as u32),
                    rtx_ssrc: None,
                    codecs: codecs.clone(),
                    extensions,
                    red_pt: None,
                    initial_seq: 0,
                    initial_timestamp: 0,
                },
                &mut out,
            )
            .expect("subscribed");
    }
    // 2 Mbit/s sent (a 1100-byte packet every 4.4 ms) into a 1 Mbit/s bottleneck: the queue
    // grows, the estimator sees overuse and REMBs go out, at once and on the report slots.
    let mut packets: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut link_free = start;
    for seq in 0..6_000u16 {
        let sent = Duration::from_micros(4_400) * u32::from(seq);
        let mut p = packet(10, 96, seq, u32::from(seq) * 3000, 1100);
        let units = ((sent.as_secs_f64() * f64::from(1u32 << 18)) as u32) & 0x00FF_FFFF;
        let [_, a, b, c] = units.to_be_bytes();
        p[17..20].copy_from_slice(&[a, b, c]);
        let wire = Duration::from_secs_f64(p.len() as f64 * 8.0 / 1_000_000.0);
        link_free = link_free.max(start + sent) + wire;
        if link_free - (start + sent) > Duration::from_millis(300) {
            // Dropped at the full queue.
            link_free -= wire;
            continue;
        }
        packets.push((link_free, p));
    }
    let run = |router: &mut Router, out: &mut TransmitQueue, packets: &mut [(Instant, Vec<u8>)]| {
        for (at, p) in packets.iter_mut() {
            out.clear();
            router.handle_rtp(*at, publisher, p, out).expect("routed");
            if router.poll_timeout().is_some_and(|due| due <= *at) {
                router.handle_timeout(*at, out);
            }
            while router.poll_event().is_some() {}
        }
    };
    let (warm, measured) = packets.split_at_mut(500);
    run(&mut router, &mut out, warm);
    let rembs_before = router.stats().remb_sent;
    ALLOCATIONS.store(0, Ordering::SeqCst);
    counting(true);
    run(&mut router, &mut out, measured);
    counting(false);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(
        router.stats().remb_sent > rembs_before + 5,
        "the estimate was told: {:?}",
        router.stats()
    );
    assert_eq!(allocations, 0, "{allocations} allocations while estimating");
}

/// A VP8 packet of simulcast layer `layer` (rid "0", "1" or "2" with mid "v"): one packet a
/// frame, a keyframe of `width` when `keyframe`.
fn simulcast_packet(layer: u8, frame: u16, keyframe: bool) -> Vec<u8> {
    let seq = frame.wrapping_add(u16::from(layer) * 10_000);
    let mut p = vec![0x90, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 1];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(frame) * 3000).to_be_bytes());
    p[8..12].copy_from_slice(&(0x100 + u32::from(layer)).to_be_bytes());
    p.extend_from_slice(&[0x40, b'v', 0xA0, b'0' + layer]);
    let [hi, lo] = (frame & 0x7fff).to_be_bytes();
    p.extend_from_slice(&[0x90, 0xC0, 0x80 | hi, lo, frame as u8]);
    if keyframe {
        let width = 320u16 << layer;
        p.extend_from_slice(&[0x10, 0, 0, 0x9d, 0x01, 0x2a]);
        p.extend_from_slice(&width.to_le_bytes());
        p.extend_from_slice(&(width / 2).to_le_bytes());
    } else {
        p.extend_from_slice(&[0x11, 0, 0]);
    }
    p.extend((0..900).map(|i| i as u8));
    p
}

#[test]
fn simulcast_switching_allocates_nothing_per_packet() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const SUBSCRIBERS: u64 = 6;
    const FRAMES: u16 = 3_000;
    let mut now = origin();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::with_capacity(64);
    let codecs = vec![CodecParams {
        codec: Codec::Vp8,
        pt: Pt(96),
        rtx_pt: Some(Pt(97)),
    }];
    let publisher = SessionId(1);
    let track = router
        .add_published_stream(
            now,
            publisher,
            PublishedStream {
                kind: MediaKind::Video,
                ssrc: Ssrc(0),
                rtx_ssrc: None,
                codecs: codecs.clone(),
                extensions: ExtensionIds {
                    mid: Some(4),
                    rid: Some(10),
                    ..ExtensionIds::default()
                },
                nack: true,
                mid: Some("v".to_owned()),
                rids: vec!["0".to_owned(), "1".to_owned(), "2".to_owned()],
            },
        )
        .expect("track");
    let subscriptions: Vec<_> = (0..SUBSCRIBERS)
        .map(|i| {
            router
                .subscribe(
                    now,
                    SessionId(100 + i),
                    track,
                    SubscribedStream {
                        ssrc: Ssrc(1000 + i as u32),
                        rtx_ssrc: None,
                        codecs: codecs.clone(),
                        extensions: ExtensionIds::default(),
                        red_pt: None,
                        initial_seq: i as u16,
                        initial_timestamp: 0,
                    },
                    &mut out,
                )
                .expect("subscribed")
        })
        .collect();
    // Each layer sends a keyframe every 15 frames, the layers staggered.
    let mut stream: Vec<Vec<u8>> = Vec::new();
    for frame in 0..FRAMES {
        for layer in 0..3u8 {
            let keyframe = (frame + 5 * u16::from(layer)) % 15 == 0 || frame == 0;
            stream.push(simulcast_packet(layer, frame, keyframe));
        }
    }
    let run = |router: &mut Router,
               out: &mut TransmitQueue,
               now: &mut Instant,
               packets: &mut [Vec<u8>]| {
        let mut forwarded = 0usize;
        for (i, p) in packets.iter_mut().enumerate() {
            out.clear();
            if i % 3 == 0 {
                *now += Duration::from_millis(33);
            }
            if i % 60 == 0 {
                // Every 20 frames each subscriber gets another cap.
                for (k, id) in subscriptions.iter().enumerate() {
                    let cap = (i / 60 + k) % 4;
                    router
                        .set_max_layer(*id, (cap < 3).then_some(cap))
                        .expect("subscription");
                }
            }
            forwarded += router.handle_rtp(*now, publisher, p, out).unwrap_or(0);
            if router.poll_timeout().is_some_and(|at| at <= *now) {
                router.handle_timeout(*now, out);
            }
            while router.poll_event().is_some() {}
        }
        forwarded
    };
    let (warm, measured) = stream.split_at_mut(600);
    run(&mut router, &mut out, &mut now, warm);
    let switches_before = switched_layers(&router, &subscriptions);
    let requests_before = router.stats().keyframe_requests_sent;
    ALLOCATIONS.store(0, Ordering::SeqCst);
    counting(true);
    let forwarded = run(&mut router, &mut out, &mut now, measured);
    counting(false);
    let allocations = ALLOCATIONS.swap(0, Ordering::SeqCst);
    // One copy a frame per subscriber, less the frames waited for keyframes.
    assert!(forwarded as u64 > (measured.len() as u64 / 3) * SUBSCRIBERS / 2);
    assert!(router.stats().keyframe_requests_sent > requests_before + 100);
    assert_ne!(switched_layers(&router, &subscriptions), switches_before);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations while forwarding {forwarded} simulcast copies"
    );
}

/// The layers the subscriptions forward now.
fn switched_layers(
    router: &Router,
    subscriptions: &[packet_router::SubscriptionId],
) -> Vec<Option<usize>> {
    subscriptions
        .iter()
        .map(|id| router.layer_selection(*id).and_then(|s| s.current))
        .collect()
}

/// [`simulcast_packet`] with the publisher's transport-wide sequence number (id 3).
fn simulcast_packet_with_transport_seq(layer: u8, frame: u16, keyframe: bool, seq: u16) -> Vec<u8> {
    let plain = simulcast_packet(layer, frame, keyframe);
    let mut p = plain[..12].to_vec();
    let [hi, lo] = seq.to_be_bytes();
    p.extend_from_slice(&[
        0xBE,
        0xDE,
        0,
        2,
        0x40,
        b'v',
        0xA0,
        b'0' + layer,
        0x31,
        hi,
        lo,
        0,
    ]);
    p.extend_from_slice(&plain[20..]);
    p
}

#[test]
fn downlink_estimation_allocation_pauses_and_probes_allocate_nothing() {
    use std::collections::VecDeque;
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const FRAMES: u16 = 3_000;
    let start = origin();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::with_capacity(256);
    let codecs = vec![CodecParams {
        codec: Codec::Vp8,
        pt: Pt(96),
        rtx_pt: Some(Pt(97)),
    }];
    let publisher = SessionId(1);
    let subscriber = SessionId(100);
    let track = router
        .add_published_stream(
            start,
            publisher,
            PublishedStream {
                kind: MediaKind::Video,
                ssrc: Ssrc(0),
                rtx_ssrc: None,
                codecs: codecs.clone(),
                extensions: ExtensionIds {
                    mid: Some(4),
                    rid: Some(10),
                    transport_cc: Some(3),
                    ..ExtensionIds::default()
                },
                nack: true,
                mid: Some("v".to_owned()),
                rids: vec!["0".to_owned(), "1".to_owned(), "2".to_owned()],
            },
        )
        .expect("track");
    router
        .subscribe(
            start,
            subscriber,
            track,
            SubscribedStream {
                ssrc: Ssrc(1000),
                rtx_ssrc: Some(Ssrc(2000)),
                codecs: codecs.clone(),
                extensions: ExtensionIds {
                    transport_cc: Some(7),
                    ..ExtensionIds::default()
                },
                red_pt: None,
                initial_seq: 0,
                initial_timestamp: 0,
            },
            &mut out,
        )
        .expect("subscribed");
    let mut stream: Vec<Vec<u8>> = Vec::new();
    let mut transport_seq = 0u16;
    for frame in 0..FRAMES {
        for layer in 0..3u8 {
            let keyframe = (frame + 5 * u16::from(layer)) % 30 == 0 || frame == 0;
            transport_seq = transport_seq.wrapping_add(1);
            stream.push(simulcast_packet_with_transport_seq(
                layer,
                frame,
                keyframe,
                transport_seq,
            ));
        }
    }
    // The subscriber's link: 600 kbit/s for the first 40 s, then 150 kbit/s (below the one
    // 220 kbit/s layer: paused, then probed); its feedback every 50 ms.
    let mut link_free = start;
    let mut in_flight: VecDeque<(Instant, u16)> = VecDeque::with_capacity(8192);
    let mut feedback = packet_router::TransportFeedback::new(7, Ssrc(1000));
    let mut feedback_out = TransmitQueue::with_capacity(16);
    let mut replies = TransmitQueue::with_capacity(256);
    let mut next_feedback = start;
    let send_on = |out: &TransmitQueue,
                   now: Instant,
                   link_free: &mut Instant,
                   in_flight: &mut VecDeque<(Instant, u16)>| {
        let capacity = if now - start < Duration::from_secs(40) {
            600_000.0
        } else {
            150_000.0
        };
        for t in out.as_slice() {
            if t.session != subscriber || t.kind != packet_router::TransmitKind::Rtp {
                continue;
            }
            let Ok(view) = rtc_core::rtp::RtpPacket::parse(t.packet()) else {
                continue;
            };
            let Some(&[hi, lo]) = view.extension(7) else {
                continue;
            };
            let begin = (*link_free).max(now);
            if begin - now > Duration::from_millis(200) {
                continue;
            }
            *link_free = begin + Duration::from_secs_f64(t.packet().len() as f64 * 8.0 / capacity);
            if in_flight.len() < in_flight.capacity() {
                in_flight.push_back((
                    *link_free + Duration::from_millis(25),
                    u16::from_be_bytes([hi, lo]),
                ));
            }
        }
    };
    let mut run =
        |router: &mut Router, out: &mut TransmitQueue, packets: &mut [Vec<u8>], from: usize| {
            for (i, p) in packets.iter_mut().enumerate() {
                let now = start + Duration::from_micros(11_111) * (from + i) as u32;
                out.clear();
                router.handle_rtp(now, publisher, p, out).ok();
                send_on(out, now, &mut link_free, &mut in_flight);
                while in_flight.front().is_some_and(|(at, _)| *at <= now) {
                    if let Some((at, seq)) = in_flight.pop_front() {
                        feedback.handle_packet(at, seq);
                    }
                }
                if now >= next_feedback {
                    feedback_out.clear();
                    feedback.poll_feedback(now, subscriber, Ssrc(5), &mut feedback_out);
                    for t in feedback_out.as_slice() {
                        replies.clear();
                        router.handle_rtcp(now, subscriber, t.packet(), &mut replies);
                    }
                    next_feedback = now + Duration::from_millis(50);
                }
                if router.poll_timeout().is_some_and(|at| at <= now) {
                    out.clear();
                    router.handle_timeout(now, out);
                    send_on(out, now, &mut link_free, &mut in_flight);
                }
                while router.poll_event().is_some() {}
            }
        };
    let (warm, measured) = stream.split_at_mut(1_500);
    run(&mut router, &mut out, warm, 0);
    let before = router.stats().clone();
    ALLOCATIONS.store(0, Ordering::SeqCst);
    counting(true);
    run(&mut router, &mut out, measured, 1_500);
    counting(false);
    let allocations = ALLOCATIONS.load(Ordering::SeqCst);
    let after = router.stats().clone();
    assert!(
        after.transport_feedback_received > before.transport_feedback_received + 200,
        "{after:?}"
    );
    assert!(
        after.subscriptions_paused > before.subscriptions_paused,
        "{after:?}"
    );
    assert!(
        after.probe_packets_sent > before.probe_packets_sent,
        "{after:?}"
    );
    assert_eq!(
        allocations, 0,
        "{allocations} allocations while estimating and allocating"
    );
}
