//! Virtual-time tests of rid simulcast through the router's public API: a publisher sends
//! three VP8 layers, each with three temporal layers (pattern 0, 2, 1, 2), whose SSRCs the
//! router learns from the mid and rid header extensions, with a sender report per layer
//! on its own timestamp base; subscribers switch between them and cap temporal layers.
//! Each subscriber's output must stay one stream: no sequence gap, timestamps that never go
//! back and keep each picture's capture time across switches (aligned by the sender
//! reports), contiguous PictureID and TL0PICIDX, a keyframe of the new layer first after
//! every switch, and no picture above the temporal cap. NACKs across switches and filtered
//! pictures must repair the packets the subscriber was sent, and a layer that stops must be
//! left within 1.5 s.

use std::time::{Duration, Instant};

use packet_router::{
    Codec, CodecParams, ExtensionIds, MediaKind, PublishedStream, Router, RouterConfig, SessionId,
    SubscribedStream, SubscriptionId, TrackId, TransmitKind, TransmitQueue,
};
use rtc_core::codec::{CodecDescriptor, Vp8Packet};
use rtc_core::rtcp::{RtcpPacket, iter_compound};
use rtc_core::rtp::RtpPacket;
use rtc_core::{Pt, Ssrc};

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
const MID_ID: u8 = 4;
const RID_ID: u8 = 10;
const REPAIRED_RID_ID: u8 = 11;
const FRAME: Duration = Duration::from_millis(33);
/// The rids in a=simulcast order: highest first, so the order by resolution is not the
/// rid order.
const RIDS: [&str; 3] = ["f", "h", "q"];
const WIDTHS: [u16; 3] = [1280, 640, 320];
/// RTP ticks per frame at 90 kHz (33 ms).
const FRAME_TICKS: u32 = 2_970;
/// The temporal layer of each frame in a group of four (libvpx's three-layer pattern).
const TEMPORAL_PATTERN: [u8; 4] = [0, 2, 1, 2];

fn simulcast_stream() -> PublishedStream {
    PublishedStream {
        kind: MediaKind::Video,
        ssrc: Ssrc(0),
        rtx_ssrc: None,
        codecs: vec![CodecParams {
            codec: Codec::Vp8,
            pt: VP8_PT,
            rtx_pt: Some(VP8_RTX_PT),
        }],
        extensions: ExtensionIds {
            mid: Some(MID_ID),
            rid: Some(RID_ID),
            repaired_rid: Some(REPAIRED_RID_ID),
            ..ExtensionIds::default()
        },
        nack: true,
        mid: Some("v".to_owned()),
        rids: RIDS.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn subscriber_stream(index: u32) -> SubscribedStream {
    SubscribedStream {
        ssrc: Ssrc(0xA000 + index),
        rtx_ssrc: None,
        codecs: vec![CodecParams {
            codec: Codec::Vp8,
            pt: Pt(100),
            rtx_pt: None,
        }],
        extensions: ExtensionIds::default(),
        red_pt: None,
        initial_seq: 65_000,
        initial_timestamp: 7_000,
    }
}

/// An RTP packet with one-byte header extensions.
fn rtp(
    ssrc: Ssrc,
    pt: Pt,
    seq: u16,
    timestamp: u32,
    exts: &[(u8, &[u8])],
    payload: &[u8],
) -> Vec<u8> {
    let mut block = Vec::new();
    for (id, value) in exts {
        block.push(id << 4 | (value.len() as u8 - 1));
        block.extend_from_slice(value);
    }
    while block.len() % 4 != 0 {
        block.push(0);
    }
    let mut packet = vec![if exts.is_empty() { 0x80 } else { 0x90 }, pt.0];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&ssrc.0.to_be_bytes());
    if !exts.is_empty() {
        packet.extend_from_slice(&[0xBE, 0xDE]);
        packet.extend_from_slice(&((block.len() / 4) as u16).to_be_bytes());
        packet.extend_from_slice(&block);
    }
    packet.extend_from_slice(payload);
    packet
}

/// One layer as the publisher sends it.
struct PublishedLayer {
    ssrc: Ssrc,
    seq: u16,
    /// The layer's RTP time at frame 0 (every layer has its own).
    timestamp_base: u32,
    /// Position in [`TEMPORAL_PATTERN`]; a keyframe starts it over.
    pattern: usize,
    picture_id: u16,
    tl0: u8,
    keyframe_due: bool,
    sending: bool,
}

struct World {
    router: Router,
    out: TransmitQueue,
    now: Instant,
    track: TrackId,
    layers: Vec<PublishedLayer>,
    subscriptions: Vec<SubscriptionId>,
    /// What each subscriber received: (seq, timestamp, payload).
    received: Vec<Vec<(u16, u32, Vec<u8>)>>,
    packets_in: usize,
    /// The next packet of this layer is lost on the way (and kept in `lost`).
    lose_next: Option<usize>,
    lost: Vec<(u16, u32, Vec<u8>)>,
    /// Legacy simulcast: the layers' SSRCs were announced, the packets carry no mid or rid.
    legacy: bool,
    /// Frames sent so far (the capture clock).
    frames: u32,
    /// Subscriber 0's temporal cap asked for, and the one in force (a raise waits for a
    /// picture of temporal layer 0).
    temporal_wanted: Option<u8>,
    temporal_in_force: Option<u8>,
}

impl World {
    fn new(subscribers: u32) -> Self {
        let now = origin();
        let mut router = Router::new(RouterConfig::default());
        let mut out = TransmitQueue::with_capacity(64);
        let track = router
            .add_published_stream(now, PUBLISHER, simulcast_stream())
            .expect("track");
        let subscriptions = (0..subscribers)
            .map(|i| {
                router
                    .subscribe(
                        now,
                        SessionId(100 + u64::from(i)),
                        track,
                        subscriber_stream(i),
                        &mut out,
                    )
                    .expect("subscribed")
            })
            .collect();
        let layers = (0..3u32)
            .map(|i| PublishedLayer {
                ssrc: Ssrc(0x100 + i),
                seq: (20_000 * i + 65_530) as u16,
                timestamp_base: 1_000_000 * i + 4_000_000_000,
                pattern: 0,
                picture_id: (9_000 * i as u16 + 32_760) & 0x7fff,
                tl0: (100 * i) as u8,
                keyframe_due: true,
                sending: true,
            })
            .collect();
        World {
            router,
            out,
            now,
            track,
            layers,
            subscriptions,
            received: vec![Vec::new(); subscribers as usize],
            packets_in: 0,
            lose_next: None,
            lost: Vec::new(),
            legacy: false,
            frames: 0,
            temporal_wanted: None,
            temporal_in_force: None,
        }
    }

    /// Legacy simulcast (`a=ssrc-group:SIM`): the layers bound from signaling.
    fn legacy(subscribers: u32) -> Self {
        let mut world = World::new(subscribers);
        for layer in 0..3u32 {
            world
                .router
                .bind_layer(
                    world.track,
                    layer as usize,
                    Ssrc(0x100 + layer),
                    Some(Ssrc(0x200 + layer)),
                )
                .expect("bound");
        }
        world.legacy = true;
        world
    }

    /// One frame of every sending layer, two packets each; keyframes where a PLI asked. A
    /// sender report of every sending layer once a second, each at another time.
    fn frame(&mut self) {
        for layer in 0..self.layers.len() {
            if self.frames % 30 == 1 + 7 * layer as u32 {
                self.sender_report(layer);
            }
        }
        let frame = self.frames;
        for index in 0..self.layers.len() {
            if !self.layers[index].sending {
                continue;
            }
            let layer = &mut self.layers[index];
            let keyframe = std::mem::take(&mut layer.keyframe_due);
            if keyframe {
                layer.pattern = 0;
            }
            let temporal = TEMPORAL_PATTERN[layer.pattern % TEMPORAL_PATTERN.len()];
            layer.pattern += 1;
            layer.picture_id = (layer.picture_id + 1) & 0x7fff;
            if temporal == 0 {
                layer.tl0 = layer.tl0.wrapping_add(1);
            }
            let timestamp = layer
                .timestamp_base
                .wrapping_add(frame.wrapping_mul(FRAME_TICKS));
            let (ssrc, picture_id, tl0) = (layer.ssrc, layer.picture_id, layer.tl0);
            for part in 0..2u8 {
                let layer = &mut self.layers[index];
                layer.seq = layer.seq.wrapping_add(1);
                let seq = layer.seq;
                let [hi, lo] = picture_id.to_be_bytes();
                let start = if part == 0 { 0x10 } else { 0 };
                // X; I, L, T; a 15-bit PictureID; TL0PICIDX; TID with the layer-sync bit.
                let mut payload = vec![0x80 | start, 0xE0, 0x80 | hi, lo, tl0, temporal << 6];
                if part == 0 {
                    if keyframe {
                        payload.extend_from_slice(&[0x10, 0, 0, 0x9d, 0x01, 0x2a]);
                        payload.extend_from_slice(&WIDTHS[index].to_le_bytes());
                        payload.extend_from_slice(&(WIDTHS[index] * 9 / 16).to_le_bytes());
                    } else {
                        payload.extend_from_slice(&[0x11, 0, 0]);
                    }
                }
                payload.extend_from_slice(&[0x55; 40]);
                payload.push(index as u8);
                payload.extend_from_slice(&frame.to_be_bytes());
                payload.extend_from_slice(&seq.to_be_bytes());
                let exts: &[(u8, &[u8])] = &[(MID_ID, b"v"), (RID_ID, RIDS[index].as_bytes())];
                let packet = rtp(ssrc, VP8_PT, seq, timestamp, exts, &payload);
                if self.lose_next == Some(index) {
                    self.lose_next = None;
                    self.lost.push((seq, timestamp, payload));
                    continue;
                }
                self.send(packet);
            }
        }
        self.frames += 1;
        self.now += FRAME;
    }

    /// A sender report of `layer` if it is sending: the capture clock in NTP time with the
    /// layer's RTP time for it.
    fn sender_report(&mut self, layer: usize) {
        let PublishedLayer {
            ssrc,
            timestamp_base,
            sending,
            ..
        } = self.layers[layer];
        if !sending {
            return;
        }
        let ntp = (1_000u64 << 32) + u64::from(self.frames) * ((33u64 << 32) / 1_000);
        let info = rtc_core::rtcp::report::SenderInfo {
            ssrc,
            ntp_time: ntp,
            rtp_time: timestamp_base.wrapping_add(self.frames.wrapping_mul(FRAME_TICKS)),
            packet_count: 0,
            octet_count: 0,
        };
        let mut sr = [0u8; 64];
        let len = rtc_core::rtcp::report::write_sender_report(&mut sr, &info, &[]).unwrap();
        self.out.clear();
        self.router
            .handle_rtcp(self.now, PUBLISHER, &sr[..len], &mut self.out);
        self.collect();
    }

    /// Subscriber 0 NACKs `lost` (its numbers); returns what was resent as (seq,
    /// timestamp, payload).
    fn nack(&mut self, lost: &[u16]) -> Vec<(u16, u32, Vec<u8>)> {
        self.out.clear();
        self.router
            .retransmit(self.now, SessionId(100), Ssrc(0xA000), lost, &mut self.out);
        let resent = self
            .out
            .as_slice()
            .iter()
            .filter(|t| t.kind == TransmitKind::Rtp)
            .map(|t| {
                let view = RtpPacket::parse(t.packet()).unwrap();
                (
                    view.sequence_number(),
                    view.timestamp(),
                    view.payload().to_vec(),
                )
            })
            .collect();
        self.out.clear();
        resent
    }

    /// Caps subscriber 0's temporal layer.
    fn set_temporal_cap(&mut self, cap: Option<u8>) {
        self.router
            .set_max_temporal_layer(self.subscriptions[0], cap)
            .unwrap();
        let lower = match (cap, self.temporal_in_force) {
            (Some(new), Some(old)) => new < old,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if lower {
            self.temporal_in_force = cap;
        }
        self.temporal_wanted = cap;
    }

    fn send(&mut self, mut packet: Vec<u8>) {
        self.out.clear();
        self.packets_in += 1;
        let _ = self
            .router
            .handle_rtp(self.now, PUBLISHER, &mut packet, &mut self.out);
        self.collect();
    }

    /// Records the subscribers' copies and answers PLIs with keyframes on the next frame.
    fn collect(&mut self) {
        for transmit in self.out.as_slice() {
            if transmit.session == PUBLISHER {
                for item in iter_compound(transmit.packet()).flatten() {
                    if let RtcpPacket::Pli(pli) = item
                        && let Some(layer) =
                            self.layers.iter_mut().find(|l| l.ssrc == pli.media_ssrc)
                    {
                        layer.keyframe_due = true;
                    }
                }
            } else if transmit.kind == TransmitKind::Rtp {
                let index = (transmit.session.0 - 100) as usize;
                let view = RtpPacket::parse(transmit.packet()).expect("valid RTP");
                if index == 0 {
                    let vp8 = Vp8Packet::parse(view.payload()).expect("VP8");
                    let temporal = vp8.tid().expect("a temporal layer");
                    if temporal == 0 {
                        self.temporal_in_force = self.temporal_wanted;
                    }
                    assert!(
                        self.temporal_in_force.is_none_or(|cap| temporal <= cap),
                        "temporal layer {temporal} above the cap {:?}",
                        self.temporal_in_force
                    );
                }
                self.received[index].push((
                    view.sequence_number(),
                    view.timestamp(),
                    view.payload().to_vec(),
                ));
            }
        }
    }
}

/// The publisher layer a copy came from (the marker at the end of each payload).
fn layer_of(payload: &[u8]) -> u8 {
    payload[payload.len() - 7]
}

/// The frame (capture time) a copy came from.
fn frame_of(payload: &[u8]) -> u32 {
    let at = payload.len() - 6;
    u32::from_be_bytes(payload[at..at + 4].try_into().unwrap())
}

/// Checks that one subscriber's output is one clean stream; returns the switches seen.
fn check_stream(received: &[(u16, u32, Vec<u8>)]) -> usize {
    assert!(received.len() > 10, "the subscriber was sent its stream");
    // Each picture keeps its capture time: the output timestamp minus the capture clock
    // stays what it was at the first packet (a tick more for each switch in a row to a
    // picture of the instant sent last, since a timestamp never repeats across pictures).
    let capture_offset = |(_, ts, payload): &(u16, u32, Vec<u8>)| {
        ts.wrapping_sub(frame_of(payload).wrapping_mul(FRAME_TICKS))
    };
    let first_offset = capture_offset(&received[0]);
    for packet in received {
        let drift = capture_offset(packet).wrapping_sub(first_offset);
        assert!(
            drift <= 2,
            "the capture time holds across switches: {drift}"
        );
    }
    let mut switches = 0;
    for pair in received.windows(2) {
        let ((seq0, ts0, p0), (seq1, ts1, p1)) = (&pair[0], &pair[1]);
        assert_eq!(seq1.wrapping_sub(*seq0), 1, "no sequence gap");
        assert!(
            ts1.wrapping_sub(*ts0) < 0x8000_0000,
            "timestamps never go back"
        );
        let (v0, v1) = (
            Vp8Packet::parse(&p0[..]).unwrap(),
            Vp8Packet::parse(&p1[..]).unwrap(),
        );
        let (id0, id1) = (
            v0.picture_id().unwrap().value(),
            v1.picture_id().unwrap().value(),
        );
        let step = id1.wrapping_sub(id0) & 0x7fff;
        assert!(step <= 1, "PictureID contiguous: {id0} -> {id1}");
        let tl0_step = v1
            .tl0_pic_idx()
            .unwrap()
            .wrapping_sub(v0.tl0_pic_idx().unwrap());
        let base_picture = step == 1 && v1.tid() == Some(0);
        assert_eq!(
            tl0_step,
            u8::from(base_picture),
            "TL0PICIDX counts the pictures of temporal layer 0"
        );
        if step == 1 {
            assert!(v1.is_start_of_frame(), "a new picture starts a frame");
        }
        if layer_of(p0) != layer_of(p1) {
            switches += 1;
            assert!(v1.is_keyframe(), "a switch starts on a keyframe");
            let size = v1.keyframe_size().unwrap().resolution;
            assert_eq!(
                size.width,
                WIDTHS[usize::from(layer_of(p1))],
                "of the new layer"
            );
        }
    }
    switches
}

#[test]
fn layers_are_bound_from_rids_and_ordered_by_resolution() {
    let mut world = World::new(1);
    assert_eq!(world.router.layer_order(world.track), Some(&[0, 1, 2][..]));
    world.frame();
    let ssrcs: Vec<_> = world.router.layer_ssrcs(world.track).collect();
    assert_eq!(
        ssrcs,
        [Some(Ssrc(0x100)), Some(Ssrc(0x101)), Some(Ssrc(0x102))]
    );
    assert_eq!(world.router.stats().ssrcs_bound, 3);
    assert_eq!(world.router.layer_order(world.track), Some(&[2, 1, 0][..]));
    for _ in 0..5 {
        world.frame();
    }
    let selection = world
        .router
        .layer_selection(world.subscriptions[0])
        .unwrap();
    assert_eq!(
        selection.current,
        Some(0),
        "the highest resolution by default"
    );
    assert_eq!(selection.target, None);
    check_stream(&world.received[0]);
}

#[test]
fn unknown_ssrcs_are_looked_up_a_bounded_number_of_times() {
    let mut world = World::new(1);
    for i in 0..100u32 {
        let packet = rtp(
            Ssrc(0x9000 + i),
            VP8_PT,
            1,
            0,
            &[(MID_ID, b"v")],
            &[0x10, 0, 0],
        );
        world.send(packet);
    }
    let stats = world.router.stats();
    assert_eq!(
        stats.bindings_refused,
        100 - u64::from(packet_router::router::MAX_FAILED_BINDINGS)
    );
    assert_eq!(stats.ssrcs_bound, 0);
    // The real layers still bind: a mid of another m-line binds nothing either.
    world.frame();
    assert_eq!(world.router.stats().ssrcs_bound, 0, "the budget is spent");
}

#[test]
fn ten_thousand_packets_with_fifty_switches_and_temporal_filtering_stay_one_clean_stream() {
    let mut world = World::new(2);
    // Subscriber 1 stays at the top with every temporal layer all along.
    let caps = [0usize, 2, 1, 0, 1, 2];
    let temporal_caps = [Some(0u8), None, Some(1), Some(0), Some(2), None, Some(1)];
    let mut switches_asked = 0;
    let mut nacked = 0;
    let mut frame = 0;
    // A small deterministic generator for which packets the subscriber "lost".
    let mut lcg = 0x2545_f491_u32;
    while world.packets_in < 10_000 {
        if frame % 33 == 10 && switches_asked < 50 {
            let cap = caps[switches_asked % caps.len()];
            world
                .router
                .set_max_layer(world.subscriptions[0], Some(cap))
                .unwrap();
            switches_asked += 1;
        }
        if frame % 23 == 5 {
            world.set_temporal_cap(temporal_caps[(frame / 23) % temporal_caps.len()]);
        }
        if frame % 17 == 16 {
            nacked += nack_and_compare(&mut world, &mut lcg);
        }
        world.frame();
        frame += 1;
    }
    assert_eq!(switches_asked, 50);
    assert!(nacked >= 500, "NACKs answered: {nacked}");
    // Subscriber 1 got every frame (two packets a frame); subscriber 0 fewer, all it kept.
    assert!(world.received[1].len() >= 2 * frame - 4);
    assert!(
        world.received[0].len() < world.received[1].len() * 3 / 4,
        "temporal layers were filtered: {} of {}",
        world.received[0].len(),
        world.received[1].len()
    );
    assert_eq!(check_stream(&world.received[0]), 50);
    assert_eq!(check_stream(&world.received[1]), 0);
    // Layer 0 is the highest resolution, rank 2.
    let last = world.received[0].last().unwrap();
    assert_eq!(layer_of(&last.2), 0, "the last cap was rank 2");
}

/// Subscriber 0 NACKs 12 of the packets it was sent in the last 20 frames (distinct
/// numbers, within the cache's age); each must come back as the very copy first sent
/// (sequence number, timestamp, payload with its rewritten PictureID). Returns how many
/// were resent.
fn nack_and_compare(world: &mut World, lcg: &mut u32) -> usize {
    let since = world.frames.saturating_sub(20);
    let received = &world.received[0];
    let recent: Vec<_> = received
        .iter()
        .rev()
        .take_while(|r| frame_of(&r.2) >= since)
        .cloned()
        .collect();
    if recent.len() < 24 {
        return 0;
    }
    let mut lost: Vec<u16> = Vec::new();
    while lost.len() < 12 {
        *lcg = lcg.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let seq = recent[(*lcg >> 16) as usize % recent.len()].0;
        if !lost.contains(&seq) {
            lost.push(seq);
        }
    }
    let resent = world.nack(&lost);
    assert_eq!(resent.len(), lost.len(), "every packet NACKed was resent");
    for copy in &resent {
        let original = recent.iter().find(|r| r.0 == copy.0).expect("was sent");
        assert_eq!(copy, original, "the same packet as first sent");
    }
    resent.len()
}

#[test]
fn a_switch_whose_keyframe_request_was_throttled_asks_again_when_allowed() {
    let mut world = World::new(2);
    for _ in 0..10 {
        world.frame();
    }
    // Subscriber 1 asks for the lowest layer (rank 0, layer 2): its PLI goes out, and the
    // keyframe switches it.
    world
        .router
        .set_max_layer(world.subscriptions[1], Some(0))
        .unwrap();
    for _ in 0..3 {
        world.frame();
    }
    assert_eq!(layer_of(&world.received[1].last().unwrap().2), 2);
    // Right after, subscriber 0 asks for the same layer: the layer's throttle (500 ms) holds
    // its first request back. It must ask again once allowed, not a second later.
    let asked = world.now;
    world
        .router
        .set_max_layer(world.subscriptions[0], Some(0))
        .unwrap();
    while layer_of(&world.received[0].last().unwrap().2) != 2 {
        assert!(world.now < asked + Duration::from_secs(2), "never switched");
        world.frame();
    }
    let took = world.now - asked;
    assert!(
        took <= Duration::from_millis(600),
        "switched {} ms after asking",
        took.as_millis()
    );
    check_stream(&world.received[0]);
}

#[test]
fn nacks_across_a_switch_repair_the_packets_sent() {
    let mut world = World::new(1);
    for _ in 0..10 {
        world.frame();
    }
    world
        .router
        .set_max_layer(world.subscriptions[0], Some(0))
        .unwrap();
    for _ in 0..3 {
        world.frame();
    }
    let received = world.received[0].clone();
    let switch = received
        .windows(2)
        .position(|p| layer_of(&p[0].2) != layer_of(&p[1].2))
        .expect("switched")
        + 1;
    let lost = [
        received[switch - 2].0,
        received[switch - 1].0,
        received[switch].0,
        received[switch + 1].0,
    ];
    let resent = world.nack(&lost);
    assert_eq!(resent.len(), 4);
    for (resent, original) in resent.iter().zip(&received[switch - 2..switch + 2]) {
        assert_eq!(resent, original, "the same packet as first sent");
    }
}

#[test]
fn a_layer_that_stops_is_left_within_one_and_a_half_seconds() {
    let mut world = World::new(1);
    for _ in 0..10 {
        world.frame();
    }
    assert_eq!(layer_of(&world.received[0].last().unwrap().2), 0);
    world.layers[0].sending = false;
    let stopped = world.now;
    while world.now < stopped + Duration::from_secs(3) {
        world.frame();
        if layer_of(&world.received[0].last().unwrap().2) != 0 {
            break;
        }
    }
    assert_eq!(
        layer_of(&world.received[0].last().unwrap().2),
        1,
        "the next lower layer"
    );
    assert!(world.now <= stopped + Duration::from_millis(1500) + FRAME * 3);
    check_stream(&world.received[0]);
    // It comes back: the subscriber returns to it.
    world.layers[0].sending = true;
    world.layers[0].keyframe_due = true;
    for _ in 0..3 {
        world.frame();
    }
    assert_eq!(layer_of(&world.received[0].last().unwrap().2), 0);
    check_stream(&world.received[0]);
}

#[test]
fn a_track_on_an_announced_ssrc_next_to_it_is_forwarded_as_before() {
    let mut world = World::new(1);
    let other = SessionId(2);
    let plain = world
        .router
        .add_published_stream(
            world.now,
            other,
            PublishedStream {
                ssrc: Ssrc(0x777),
                mid: None,
                rids: Vec::new(),
                ..simulcast_stream()
            },
        )
        .expect("track");
    assert_eq!(world.router.track_ssrc(plain), Some(Ssrc(0x777)));
    assert_eq!(world.router.track_ssrc(world.track), None);
    world
        .router
        .subscribe(
            world.now,
            SessionId(200),
            plain,
            subscriber_stream(9),
            &mut world.out,
        )
        .expect("subscribed");
    world.frame();
    // No keyframe wait, no PictureID rewrite: the payload goes out as it came.
    let payload = [0x90, 0x80, 0x80, 0x05, 0x11, 0, 0, 1, 2, 3];
    for seq in 0..5u16 {
        let mut packet = rtp(Ssrc(0x777), VP8_PT, seq, 3000, &[], &payload);
        world.out.clear();
        let copies = world
            .router
            .handle_rtp(world.now, other, &mut packet, &mut world.out)
            .expect("routed");
        assert_eq!(copies, 1);
        let copy = RtpPacket::parse(world.out.as_slice()[0].packet()).unwrap();
        assert_eq!(copy.sequence_number(), 65_000u16.wrapping_add(seq));
        assert_eq!(copy.payload(), payload);
    }
    assert!(
        world
            .router
            .layer_selection(world.subscriptions[0])
            .is_some()
    );
}

#[test]
fn rtx_is_bound_by_repaired_rid_and_repairs_the_layer_forwarded() {
    let mut world = World::new(1);
    for _ in 0..5 {
        world.frame();
    }
    world.lose_next = Some(0);
    for _ in 0..3 {
        world.frame();
    }
    let (seq, timestamp, payload) = world.lost.pop().expect("one lost");
    // RFC 4588 on the layer's RTX SSRC, named by repaired-rid only.
    let mut rtx_payload = seq.to_be_bytes().to_vec();
    rtx_payload.extend_from_slice(&payload);
    let exts: &[(u8, &[u8])] = &[(MID_ID, b"v"), (REPAIRED_RID_ID, RIDS[0].as_bytes())];
    let before = world.received[0].len();
    world.send(rtp(
        Ssrc(0x200),
        VP8_RTX_PT,
        1,
        timestamp,
        exts,
        &rtx_payload,
    ));
    assert_eq!(world.router.stats().ssrcs_bound, 4);
    assert_eq!(world.router.stats().rtx_received, 1);
    let repaired = world.received[0]
        .get(before)
        .expect("the repair was forwarded");
    assert_eq!(
        repaired.2, payload,
        "the lost packet, its PictureID rewritten as sent"
    );
    let mut seqs: Vec<u16> = world.received[0].iter().map(|r| r.0).collect();
    seqs.sort_unstable_by_key(|s| s.wrapping_sub(65_000));
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "the gap is filled"
    );
}

#[test]
fn legacy_simulcast_layers_bound_from_signaling_switch_alike() {
    let mut world = World::legacy(1);
    let ssrcs: Vec<_> = world.router.layer_ssrcs(world.track).collect();
    assert_eq!(
        ssrcs,
        [Some(Ssrc(0x100)), Some(Ssrc(0x101)), Some(Ssrc(0x102))]
    );
    assert!(
        world
            .router
            .bind_layer(world.track, 0, Ssrc(0x300), None)
            .is_err(),
        "never rebound"
    );
    for round in 0..12 {
        world
            .router
            .set_max_layer(world.subscriptions[0], Some(round % 3))
            .unwrap();
        for _ in 0..10 {
            world.frame();
        }
    }
    assert_eq!(
        world.router.stats().ssrcs_bound,
        0,
        "nothing learned from packets"
    );
    // The first cap picks the first layer; each later one is a switch.
    assert_eq!(check_stream(&world.received[0]), 11);
}

#[test]
fn transport_wide_feedback_of_a_rid_only_publisher_names_its_first_bound_ssrc() {
    const TWCC_ID: u8 = 5;
    let now = origin();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::with_capacity(64);
    let mut stream = simulcast_stream();
    stream.extensions.transport_cc = Some(TWCC_ID);
    router
        .add_published_stream(now, PUBLISHER, stream)
        .expect("track");
    // The quarter layer's first packet, with mid, rid and a transport-wide sequence number.
    let mut packet = rtp(
        Ssrc(0x102),
        VP8_PT,
        1,
        1000,
        &[
            (MID_ID, b"v"),
            (RID_ID, b"q"),
            (TWCC_ID, &7u16.to_be_bytes()),
        ],
        &[0x90, 0x80, 0x01, 0x00],
    );
    router
        .handle_rtp(now, PUBLISHER, &mut packet, &mut out)
        .expect("bound and routed");
    out.clear();
    let later = now + Duration::from_millis(200);
    router.handle_timeout(later, &mut out);
    let media_ssrcs: Vec<Ssrc> = out
        .as_slice()
        .iter()
        .flat_map(|t| iter_compound(t.packet()).collect::<Vec<_>>())
        .filter_map(|item| match item {
            Ok(RtcpPacket::TransportCc(feedback)) => Some(feedback.media_ssrc()),
            _ => None,
        })
        .collect();
    // Not 0: the SSRC learned from the packet.
    assert_eq!(media_ssrcs, [Ssrc(0x102)]);
}
