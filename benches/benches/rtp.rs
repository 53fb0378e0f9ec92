//! Criterion benches of the RTP and RTCP hot paths: parsing a 1200-byte RTP packet with a
//! one-byte extension block (mid, abs-send-time, transport-wide sequence number), the
//! per-subscriber in-place rewrite (SSRC, sequence number, timestamp, payload type and
//! extension id remap), and parsing a typical SR+SDES compound and a TWCC feedback.

use criterion::{Criterion, criterion_group, criterion_main};
use rtc_core::rtcp::twcc::write_transport_cc;
use rtc_core::rtcp::{RtcpPacket, iter_compound};
use rtc_core::rtp::RtpPacket;
use rtc_core::{Pt, SeqNo, Ssrc};
use std::hint::black_box;

/// A 1200-byte video packet: mid (id 1), abs-send-time (id 2), transport-cc (id 3).
fn video_packet() -> Vec<u8> {
    let mut p = vec![
        0x90, 0xe0, 0x10, 0x92, 0, 1, 0x5f, 0x90, 0xab, 0xcd, 0xef, 0x01,
    ];
    p.extend_from_slice(&[0xbe, 0xde, 0, 3]);
    p.extend_from_slice(&[
        0x10, b'0', 0x22, 0x12, 0x34, 0x56, 0x31, 0x00, 0x2a, 0, 0, 0,
    ]);
    p.resize(1200, 0x55);
    p
}

/// SR with one report block followed by SDES with a CNAME.
const SR_SDES: [u8; 72] = [
    0x81, 0xc8, 0x00, 0x0c, 0x90, 0x2f, 0x9e, 0x2e, 0xda, 0x8b, 0xd1, 0xfc, 0xdd, 0xdd, 0xa0, 0x5a,
    0xaa, 0xf4, 0xed, 0xd5, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0xbc, 0x5e, 0x9a, 0x40,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46, 0xe1, 0x00, 0x00, 0x01, 0x11, 0x09, 0xf3, 0x64, 0x32,
    0x00, 0x02, 0x4a, 0x79, 0x81, 0xca, 0x00, 0x04, 0x90, 0x2f, 0x9e, 0x2e, 0x01, 0x08, b'1', b'2',
    b'3', b'4', b'5', b'6', b'7', b'8', 0x00, 0x00,
];

fn bench_rtp(c: &mut Criterion) {
    let packet = video_packet();
    c.bench_function("rtp_parse_1200B_3ext", |b| {
        b.iter(|| {
            let p = RtpPacket::parse(black_box(&packet[..])).unwrap();
            black_box((
                p.ssrc(),
                p.sequence_number(),
                p.extension(3).map(<[u8]>::len),
                p.payload().len(),
            ))
        })
    });

    let mut buf = packet.clone();
    let mut seq = 0u16;
    c.bench_function("rtp_rewrite_subscriber", |b| {
        b.iter(|| {
            let mut p = RtpPacket::parse(black_box(&mut buf[..])).unwrap();
            seq = seq.wrapping_add(1);
            p.set_ssrc(Ssrc(0x1234_5678));
            p.set_sequence_number(seq);
            p.set_timestamp(u32::from(seq) * 3000);
            p.set_payload_type(Pt(96));
            // Publisher -> subscriber ids: mid 1 <-> 4, transport-cc 3 <-> 5, abs-send-time
            // 2 stays. The map is its own inverse, so every iteration does the same work.
            p.remap_extension_ids(|id| match id {
                1 => Some(4),
                4 => Some(1),
                3 => Some(5),
                5 => Some(3),
                2 => Some(2),
                _ => None,
            });
        })
    });
}

fn bench_rtcp(c: &mut Criterion) {
    c.bench_function("rtcp_parse_sr_sdes", |b| {
        b.iter(|| {
            let mut blocks = 0;
            for packet in iter_compound(black_box(&SR_SDES)) {
                match packet.unwrap() {
                    RtcpPacket::SenderReport(sr) => blocks += sr.report_blocks().count(),
                    RtcpPacket::Sdes(sdes) => blocks += sdes.chunks().count(),
                    _ => {}
                }
            }
            black_box(blocks)
        })
    });

    // Feedback for 100 packets over ~100 ms with a few losses and one late packet.
    let records: Vec<_> = (0..110u64)
        .filter(|i| i % 17 != 5)
        .map(|i| {
            (
                SeqNo(1000 + i),
                5_000_000 + i * 950 + if i == 40 { 30_000 } else { 0 },
            )
        })
        .collect();
    let mut twcc = vec![0u8; 1500];
    let written = write_transport_cc(&mut twcc, Ssrc(1), Ssrc(2), 7, &records).unwrap();
    twcc.truncate(written.len);
    c.bench_function("rtcp_parse_twcc_100", |b| {
        b.iter(|| {
            let mut received = 0;
            for packet in iter_compound(black_box(&twcc)) {
                if let RtcpPacket::TransportCc(cc) = packet.unwrap() {
                    received += cc.statuses().filter(|(_, d)| d.is_some()).count();
                }
            }
            black_box(received)
        })
    });
    let mut out = [0u8; 1500];
    c.bench_function("rtcp_write_twcc_100", |b| {
        b.iter(|| write_transport_cc(&mut out, Ssrc(1), Ssrc(2), 7, black_box(&records)).unwrap())
    });
}

criterion_group!(benches, bench_rtp, bench_rtcp);
criterion_main!(benches);
