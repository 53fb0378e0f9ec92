//! Criterion bench: the whole per-packet path of the media plane for one publisher's video
//! packet and N subscribers, without the sockets: SRTP unprotect in place, routing (track
//! lookup, loss tracking, retransmission cache), and per subscriber a copy, the rewrite of
//! SSRC, sequence number, timestamp, payload type and header-extension ids, and SRTP protect.
//! The workload is `packet_router::workload::ForwardWorkload`, which `scripts/profile.sh` also
//! runs under callgrind.
//!
//! `forward_1200B_simulcast` is the same path for a rid-simulcast publisher (three VP8
//! layers, three temporal layers each) whose subscribers are capped at each layer in turn,
//! every second one at temporal layer 1: layer selection per packet, PictureID renumbering
//! and temporal filtering. Its throughput counts incoming packets (each reaches a third of
//! the subscribers, or half of those), so it reads as publisher packets per second.
//!
//! Next to it, in the same run, the floor of that work: one unprotect and per subscriber a copy
//! and a protect, with no routing at all. Throughput is in forwarded packets (copies), so
//! criterion's elements per second read as forwarded packets per second on one core.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use packet_router::workload::{ForwardWorkload, srtp_context};
use rtc_core::srtp::SrtpContext;

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward_1200B_video");
    for subscribers in [1usize, 4, 10, 25] {
        group.throughput(Throughput::Elements(subscribers as u64));

        let mut workload = ForwardWorkload::new(subscribers, Instant::now());
        let mut packets = ForwardWorkload::new(0, Instant::now());
        group.bench_function(format!("sluice_path/{subscribers}_subscribers"), |b| {
            b.iter_batched_ref(
                || packets.next_datagram(),
                |packet| black_box(workload.forward(packet)),
                BatchSize::SmallInput,
            )
        });

        // The same publisher keys as the workload's, so its datagrams unprotect here too.
        let mut packets = ForwardWorkload::new(0, Instant::now());
        let mut inbound = srtp_context(7);
        let mut outbound: Vec<SrtpContext> = (0..subscribers)
            .map(|i| srtp_context(0x80 + i as u8))
            .collect();
        let mut buffers = vec![[0u8; 1600]; subscribers];
        group.bench_function(format!("floor/{subscribers}_subscribers"), |b| {
            b.iter_batched_ref(
                || packets.next_datagram(),
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

    let mut group = c.benchmark_group("forward_1200B_simulcast");
    for subscribers in [3usize, 12, 30] {
        group.throughput(Throughput::Elements(1));
        let mut workload = ForwardWorkload::simulcast(subscribers, Instant::now());
        let mut packets = ForwardWorkload::simulcast(0, Instant::now());
        // Past the first keyframes, so that every subscription forwards.
        for _ in 0..3_000 {
            let mut packet = packets.next_datagram();
            workload.forward(&mut packet);
        }
        group.bench_function(format!("sluice_path/{subscribers}_subscribers"), |b| {
            b.iter_batched_ref(
                || packets.next_datagram(),
                |packet| black_box(workload.forward(packet)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
