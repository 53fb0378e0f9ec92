//! Criterion bench: the whole per-packet path of the media plane for one publisher's video
//! packet and N subscribers, without the sockets: SRTP unprotect in place, routing (track
//! lookup, loss tracking, retransmission cache), and per subscriber a copy, the rewrite of
//! SSRC, sequence number, timestamp, payload type and header-extension ids, and SRTP protect.
//!
//! Next to it, in the same run, the floor of that work: one unprotect and per subscriber a copy
//! and a protect, with no routing at all. Throughput is in forwarded packets (copies), so
//! criterion's elements per second read as forwarded packets per second on one core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use packet_router::{
    Codec, CodecParams, ExtensionIds, MediaKind, PublishedStream, Router, RouterConfig, SessionId,
    SubscribedStream, TransmitQueue,
};
use rtc_core::keying::{SrtpMasterKey, SrtpProfile};
use rtc_core::srtp::SrtpContext;
use rtc_core::{Pt, Ssrc};

const PAYLOAD_LEN: usize = 1160;
const PUBLISHER: SessionId = SessionId(1);

fn master(seed: u8) -> SrtpMasterKey {
    SrtpMasterKey {
        key: [seed; 32],
        salt: [seed ^ 0x5a; 14],
    }
}

fn context(seed: u8) -> SrtpContext {
    SrtpContext::new(SrtpProfile::AeadAes128Gcm, &master(seed)).expect("context")
}

/// A browser-like video packet: one-byte extensions (mid, abs-send-time, transport-cc) and a
/// 1160-byte payload, 1200 bytes in all.
fn plaintext(seq: u16) -> Vec<u8> {
    let mut p = vec![
        0x90, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x01, 0xBE, 0xDE, 0, 3,
    ];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&[0x40, b'1', 0x22, 1, 2, 3, 0x31, 0, 0, 0, 0, 0]);
    p.extend((0..PAYLOAD_LEN).map(|i| i as u8));
    p
}

/// Produces the publisher's protected packets, each with the next sequence number.
struct Publisher {
    srtp: SrtpContext,
    seq: u16,
}

impl Publisher {
    fn next(&mut self) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut buf = plaintext(self.seq);
        let len = buf.len();
        buf.resize(len + 32, 0);
        let protected = self.srtp.protect_rtp(&mut buf, len).expect("protect");
        buf.truncate(protected);
        buf
    }
}

fn router_with(subscribers: usize) -> (Router, Vec<SrtpContext>) {
    let now = Instant::now();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::default();
    let codecs = vec![CodecParams {
        codec: Codec::Vp8,
        pt: Pt(96),
        rtx_pt: Some(Pt(97)),
    }];
    let track = router
        .add_published_stream(
            now,
            PUBLISHER,
            PublishedStream {
                kind: MediaKind::Video,
                ssrc: Ssrc(0x1001),
                rtx_ssrc: Some(Ssrc(0x1002)),
                codecs: codecs.clone(),
                extensions: ExtensionIds {
                    mid: Some(4),
                    abs_send_time: Some(2),
                    transport_cc: Some(3),
                    ..ExtensionIds::default()
                },
                nack: true,
            },
        )
        .expect("track");
    let mut contexts = Vec::new();
    for i in 0..subscribers {
        router
            .subscribe(
                now,
                SessionId(100 + i as u64),
                track,
                SubscribedStream {
                    ssrc: Ssrc(0xA000 + i as u32),
                    rtx_ssrc: Some(Ssrc(0xB000 + i as u32)),
                    codecs: vec![CodecParams {
                        codec: Codec::Vp8,
                        pt: Pt(100),
                        rtx_pt: Some(Pt(101)),
                    }],
                    extensions: ExtensionIds {
                        mid: Some(1),
                        abs_send_time: Some(5),
                        transport_cc: Some(7),
                        ..ExtensionIds::default()
                    },
                    initial_seq: i as u16,
                    initial_timestamp: i as u32,
                },
                &mut out,
            )
            .expect("subscribed");
        contexts.push(context(0x40 + i as u8));
    }
    (router, contexts)
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward_1200B_video");
    for subscribers in [1usize, 4, 10, 25] {
        group.throughput(Throughput::Elements(subscribers as u64));

        let mut publisher = Publisher {
            srtp: context(7),
            seq: 0,
        };
        let mut inbound = context(7);
        let (mut router, mut outbound) = router_with(subscribers);
        let mut out = TransmitQueue::with_capacity(subscribers + 4);
        let mut now = Instant::now();
        group.bench_function(format!("sluice_path/{subscribers}_subscribers"), |b| {
            b.iter_batched_ref(
                || publisher.next(),
                |packet| {
                    now += Duration::from_micros(100);
                    let len = inbound.unprotect_rtp(packet).expect("unprotect");
                    out.clear();
                    let copies = router
                        .handle_rtp(now, PUBLISHER, &mut packet[..len], &mut out)
                        .expect("routed");
                    for (transmit, srtp) in out.as_mut_slice().iter_mut().zip(&mut outbound) {
                        let len = transmit.len;
                        black_box(
                            srtp.protect_rtp(&mut transmit.buf[..], len)
                                .expect("protect"),
                        );
                    }
                    copies
                },
                BatchSize::SmallInput,
            )
        });

        let mut publisher = Publisher {
            srtp: context(9),
            seq: 0,
        };
        let mut inbound = context(9);
        let mut outbound: Vec<SrtpContext> =
            (0..subscribers).map(|i| context(0x80 + i as u8)).collect();
        let mut buffers = vec![[0u8; 1600]; subscribers];
        group.bench_function(format!("floor/{subscribers}_subscribers"), |b| {
            b.iter_batched_ref(
                || publisher.next(),
                |packet| {
                    let len = inbound.unprotect_rtp(packet).expect("unprotect");
                    for (buffer, srtp) in buffers.iter_mut().zip(&mut outbound) {
                        buffer[..len].copy_from_slice(&packet[..len]);
                        black_box(srtp.protect_rtp(buffer, len).expect("protect"));
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
