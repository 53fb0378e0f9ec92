//! Tests of the RTCP views and writers: byte fixtures, rejection paths, writer round trips,
//! and agreement with the independent `rtc-rtcp` crate in both directions.

use super::feedback::{write_fir, write_nack, write_pli, write_remb};
use super::report::{write_receiver_report, write_sender_report};
use super::twcc::write_transport_cc;
use super::*;
use crate::{SeqNo, Ssrc};
use rtc_shared::marshal::Marshal;

fn parse_all(datagram: &[u8]) -> Vec<RtcpPacket<'_>> {
    iter_compound(datagram).collect::<Result<_, _>>().unwrap()
}

fn only(datagram: &[u8]) -> RtcpPacket<'_> {
    let mut all = parse_all(datagram);
    assert_eq!(all.len(), 1);
    all.remove(0)
}

/// SR (ssrc 0x902f9e2e, one report block) followed by SDES with a CNAME, as sent by a
/// browser at the start of a call.
const SR_SDES: [u8; 72] = [
    // SR: V=2 RC=1 PT=200 length=12
    0x81, 0xc8, 0x00, 0x0c, 0x90, 0x2f, 0x9e, 0x2e, 0xda, 0x8b, 0xd1, 0xfc, 0xdd, 0xdd, 0xa0, 0x5a,
    0xaa, 0xf4, 0xed, 0xd5, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
    // report block
    0xbc, 0x5e, 0x9a, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46, 0xe1, 0x00, 0x00, 0x01, 0x11,
    0x09, 0xf3, 0x64, 0x32, 0x00, 0x02, 0x4a, 0x79,
    // SDES: V=2 SC=1 PT=202 length=4, chunk: ssrc, CNAME "12345678", null, pad
    0x81, 0xca, 0x00, 0x04, 0x90, 0x2f, 0x9e, 0x2e, 0x01, 0x08, b'1', b'2', b'3', b'4', b'5', b'6',
    b'7', b'8', 0x00, 0x00,
];

#[test]
fn parses_sr_sdes_fixture() {
    let packets = parse_all(&SR_SDES);
    assert_eq!(packets.len(), 2);
    let RtcpPacket::SenderReport(sr) = &packets[0] else {
        panic!("{:?}", packets[0]);
    };
    let info = sr.sender_info();
    assert_eq!(info.ssrc, Ssrc(0x902f9e2e));
    assert_eq!(info.ntp_time, 0xda8bd1fcdddda05a);
    assert_eq!(info.rtp_time, 0xaaf4edd5);
    assert_eq!(info.packet_count, 1);
    assert_eq!(info.octet_count, 2);
    let blocks: Vec<_> = sr.report_blocks().collect();
    assert_eq!(
        blocks,
        vec![ReportBlock {
            ssrc: Ssrc(0xbc5e9a40),
            fraction_lost: 0,
            cumulative_lost: 0,
            extended_highest_seq: 0x46e1,
            jitter: 0x111,
            last_sr: 0x09f36432,
            delay_since_last_sr: 0x24a79,
        }]
    );
    let RtcpPacket::Sdes(sdes) = &packets[1] else {
        panic!("{:?}", packets[1]);
    };
    let chunks: Vec<_> = sdes.chunks().collect();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].ssrc, Ssrc(0x902f9e2e));
    assert_eq!(chunks[0].cname(), Some(&b"12345678"[..]));
    assert_eq!(chunks[0].items().count(), 1);
}

#[test]
fn rejects_malformed_and_stops() {
    // Bad version in the second packet: first yields, then one error, then the end.
    let mut bad = SR_SDES;
    bad[52] = 0x41;
    let items: Vec<_> = iter_compound(&bad).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err(), &RtcpError::BadVersion);
    // Length pointing past the datagram.
    let mut long = SR_SDES;
    long[3] = 0x20;
    assert_eq!(
        iter_compound(&long).next().unwrap().unwrap_err(),
        RtcpError::Truncated
    );
    // Report count larger than the packet.
    let mut rc = SR_SDES;
    rc[0] = 0x82;
    assert_eq!(
        iter_compound(&rc).next().unwrap().unwrap_err(),
        RtcpError::Truncated
    );
    // Fewer than 4 bytes.
    assert_eq!(
        iter_compound(&[0x80, 0xc9]).next().unwrap().unwrap_err(),
        RtcpError::Truncated
    );
    // SDES item overrunning its packet.
    let mut sdes = SR_SDES;
    sdes[61] = 0x20;
    let items: Vec<_> = iter_compound(&sdes).collect();
    assert_eq!(items[1].as_ref().unwrap_err(), &RtcpError::BadSdes);
    // Padding: zero, or longer than the packet.
    let mut pad = [0x81, 0xc9, 0x00, 0x01, 0, 0, 0, 0];
    pad[0] |= 0x20;
    assert_eq!(
        iter_compound(&pad).next().unwrap().unwrap_err(),
        RtcpError::BadPadding
    );
    pad[7] = 9;
    assert_eq!(
        iter_compound(&pad).next().unwrap().unwrap_err(),
        RtcpError::BadPadding
    );
    assert!(iter_compound(&[]).next().is_none());
}

#[test]
fn padded_rr_and_unknown() {
    // RR with no blocks, then 4 bytes of padding (P set).
    let rr = [0xa0, 0xc9, 0x00, 0x02, 0, 0, 0, 7, 0, 0, 0, 4];
    let RtcpPacket::ReceiverReport(rr) = only(&rr) else {
        panic!()
    };
    assert_eq!(rr.ssrc(), Ssrc(7));
    assert_eq!(rr.report_blocks().count(), 0);
    // XR (PT 207) is passed through as unknown.
    let xr = [0x80, 0xcf, 0x00, 0x01, 1, 2, 3, 4];
    let RtcpPacket::Unknown(u) = only(&xr) else {
        panic!()
    };
    assert_eq!(
        (u.packet_type, u.count, u.body),
        (207, 0, &[1u8, 2, 3, 4][..])
    );
}

#[test]
fn bye_and_app() {
    let bye = [
        0x82, 0xcb, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 2, 5, b'b', b'y', b'e', b'!', 0, 0, 0,
    ];
    let RtcpPacket::Bye(bye) = only(&bye) else {
        panic!()
    };
    assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![Ssrc(1), Ssrc(2)]);
    assert_eq!(bye.reason(), Some(&b"bye!\0"[..]));
    let app = [
        0x83, 0xcc, 0x00, 0x03, 0, 0, 0, 9, b'q', b'o', b'e', b'1', 1, 2, 3, 4,
    ];
    let RtcpPacket::App(app) = only(&app) else {
        panic!()
    };
    assert_eq!(app.subtype(), 3);
    assert_eq!(app.ssrc(), Ssrc(9));
    assert_eq!(&app.name(), b"qoe1");
    assert_eq!(app.data(), &[1, 2, 3, 4]);
}

#[test]
fn report_writers_round_trip() {
    let info = SenderInfo {
        ssrc: Ssrc(1),
        ntp_time: 0x0102030405060708,
        rtp_time: 90_000,
        packet_count: 10,
        octet_count: 12_000,
    };
    let blocks = [
        ReportBlock {
            ssrc: Ssrc(2),
            fraction_lost: 25,
            cumulative_lost: -3,
            extended_highest_seq: 0x1_0005,
            jitter: 40,
            last_sr: 0x0304_0506,
            delay_since_last_sr: 65536,
        },
        ReportBlock {
            ssrc: Ssrc(3),
            cumulative_lost: 0x7f_ffff,
            ..Default::default()
        },
    ];
    let mut buf = [0u8; 200];
    let n = write_sender_report(&mut buf, &info, &blocks).unwrap();
    assert_eq!(n, 28 + 48);
    let RtcpPacket::SenderReport(sr) = only(&buf[..n]) else {
        panic!()
    };
    assert_eq!(sr.sender_info(), info);
    assert_eq!(sr.report_blocks().collect::<Vec<_>>(), blocks);
    let n = write_receiver_report(&mut buf, Ssrc(5), &blocks).unwrap();
    let RtcpPacket::ReceiverReport(rr) = only(&buf[..n]) else {
        panic!()
    };
    assert_eq!(rr.ssrc(), Ssrc(5));
    assert_eq!(rr.report_blocks().collect::<Vec<_>>(), blocks);
    assert_eq!(
        write_sender_report(&mut buf[..75], &info, &blocks),
        Err(RtcpError::BufferTooSmall)
    );
    assert_eq!(
        write_receiver_report(&mut buf, Ssrc(5), &[ReportBlock::default(); 32]),
        Err(RtcpError::TooManyItems)
    );
}

#[test]
fn nack_packs_pid_blp() {
    let lost = [100, 101, 116, 117, 200, 65535, 0, 3];
    let mut buf = [0u8; 64];
    let n = write_nack(&mut buf, Ssrc(1), Ssrc(2), &lost).unwrap();
    let RtcpPacket::Nack(nack) = only(&buf[..n]) else {
        panic!()
    };
    assert_eq!(nack.media_ssrc(), Ssrc(2));
    assert_eq!(nack.sender_ssrc(), Ssrc(1));
    // 100 covers 101 and 116 (bits 0 and 15); 117 starts a new pair; 65535 covers 0 and 3.
    assert_eq!(
        nack.pairs().collect::<Vec<_>>(),
        vec![(100, 0x8001), (117, 0), (200, 0), (65535, 0b1001)]
    );
    assert_eq!(nack.lost().collect::<Vec<_>>(), lost);
    assert_eq!(
        write_nack(&mut buf, Ssrc(1), Ssrc(2), &[]),
        Err(RtcpError::InvalidInput)
    );
    assert_eq!(
        write_nack(&mut buf[..15], Ssrc(1), Ssrc(2), &[1]),
        Err(RtcpError::BufferTooSmall)
    );
}

#[test]
fn pli_fir_remb_round_trip() {
    let mut buf = [0u8; 64];
    let n = write_pli(&mut buf, Ssrc(1), Ssrc(2)).unwrap();
    assert_eq!(
        only(&buf[..n]).clone_pli(),
        Some(Pli {
            sender_ssrc: Ssrc(1),
            media_ssrc: Ssrc(2)
        })
    );
    let n = write_fir(&mut buf, Ssrc(1), &[(Ssrc(7), 3), (Ssrc(8), 255)]).unwrap();
    let RtcpPacket::Fir(fir) = only(&buf[..n]) else {
        panic!()
    };
    assert_eq!(fir.sender_ssrc(), Ssrc(1));
    assert_eq!(
        fir.entries().collect::<Vec<_>>(),
        vec![(Ssrc(7), 3), (Ssrc(8), 255)]
    );
    for bitrate in [0, 1, 262_143, 262_144, 1_500_000, 2_000_000_000_000] {
        let n = write_remb(&mut buf, Ssrc(1), bitrate, &[Ssrc(4), Ssrc(5)]).unwrap();
        let RtcpPacket::Remb(remb) = only(&buf[..n]) else {
            panic!()
        };
        assert_eq!(remb.sender_ssrc(), Ssrc(1));
        assert!(remb.bitrate() <= bitrate && remb.bitrate() >= bitrate - bitrate / 100_000);
        assert_eq!(remb.ssrcs().collect::<Vec<_>>(), vec![Ssrc(4), Ssrc(5)]);
    }
}

impl RtcpPacket<'_> {
    fn clone_pli(&self) -> Option<Pli> {
        match self {
            RtcpPacket::Pli(p) => Some(*p),
            _ => None,
        }
    }
}

/// Draft example captured from a browser (with one padding byte, P set): one packet
/// received with a small delta of 148 ticks.
const TWCC_EXAMPLE1: [u8; 24] = [
    0xaf, 0xcd, 0x0, 0x5, 0xfa, 0x17, 0xfa, 0x17, 0x43, 0x3, 0x2f, 0xa0, 0x0, 0x99, 0x0, 0x1, 0x3d,
    0xe8, 0x2, 0x17, 0x20, 0x1, 0x94, 0x1,
];

/// Two run-length chunks: two large deltas then four small ones.
const TWCC_EXAMPLE3: [u8; 32] = [
    0x8f, 0xcd, 0x0, 0x7, 0xfa, 0x17, 0xfa, 0x17, 0x19, 0x3d, 0xd8, 0xbb, 0x1, 0x74, 0x0, 0x6,
    0x45, 0xb1, 0x5a, 0x40, 0x40, 0x2, 0x20, 0x04, 0x1f, 0xfe, 0x1f, 0x9a, 0xd0, 0x0, 0xd0, 0x0,
];

#[test]
fn twcc_fixtures() {
    let RtcpPacket::TransportCc(cc) = only(&TWCC_EXAMPLE1) else {
        panic!()
    };
    assert_eq!(cc.sender_ssrc(), Ssrc(4195875351));
    assert_eq!(cc.media_ssrc(), Ssrc(1124282272));
    assert_eq!(cc.base_seq(), 153);
    assert_eq!(cc.status_count(), 1);
    assert_eq!(cc.reference_time(), 4057090);
    assert_eq!(cc.fb_count(), 23);
    assert_eq!(cc.statuses().collect::<Vec<_>>(), vec![(153, Some(148))]);

    let RtcpPacket::TransportCc(cc) = only(&TWCC_EXAMPLE3) else {
        panic!()
    };
    assert_eq!(cc.reference_time(), 4567386);
    assert_eq!(cc.fb_count(), 64);
    assert_eq!(
        cc.statuses().collect::<Vec<_>>(),
        vec![
            (372, Some(8190)),
            (373, Some(8090)),
            (374, Some(208)),
            (375, Some(0)),
            (376, Some(208)),
            (377, Some(0)),
        ]
    );
    // One delta byte missing.
    let mut short = TWCC_EXAMPLE3;
    short[3] = 0x6;
    assert_eq!(
        iter_compound(&short[..28]).next().unwrap().unwrap_err(),
        RtcpError::BadTransportCc
    );
    // The reserved symbol 3 in a run.
    let mut reserved = TWCC_EXAMPLE3;
    reserved[20] = 0x60;
    assert_eq!(
        iter_compound(&reserved).next().unwrap().unwrap_err(),
        RtcpError::BadTransportCc
    );
}

/// Expected statuses of records as the writer should encode them.
fn expected_statuses(records: &[(SeqNo, u64)]) -> Vec<(u16, Option<i16>)> {
    let first = records[0];
    let mut prev = (first.1 / 64_000 * 256) as i64;
    let mut out = vec![];
    let mut next = 0;
    for seq in first.0.0..=records.last().unwrap().0.0 {
        if records[next].0.0 == seq {
            let now = (records[next].1 / 250) as i64;
            out.push((seq as u16, Some((now - prev) as i16)));
            prev = now;
            next += 1;
        } else {
            out.push((seq as u16, None));
        }
    }
    out
}

fn twcc_round_trip(records: &[(SeqNo, u64)]) -> Vec<(u16, Option<i16>)> {
    let mut buf = vec![0u8; 20_000];
    let written = write_transport_cc(&mut buf, Ssrc(1), Ssrc(2), 9, records).unwrap();
    assert_eq!(written.records, records.len());
    assert_eq!(written.len % 4, 0);
    let RtcpPacket::TransportCc(cc) = only(&buf[..written.len]) else {
        panic!()
    };
    assert_eq!(cc.fb_count(), 9);
    assert_eq!(u64::from(cc.reference_time()), records[0].1 / 64_000);
    let got: Vec<_> = cc.statuses().collect();
    assert_eq!(got, expected_statuses(records));
    got
}

#[test]
fn twcc_writer_round_trips() {
    let t0 = 1_000_000_000u64;
    // Dense small deltas.
    let dense: Vec<_> = (0..50).map(|i| (SeqNo(65530 + i), t0 + i * 1000)).collect();
    twcc_round_trip(&dense);
    // Gaps, a long loss run, negative and large deltas, wrap of the 16-bit number.
    let mut mixed = vec![
        (SeqNo(65534), t0),
        (SeqNo(65535), t0 + 70_000),
        (SeqNo(65537), t0 + 60_000),
        (SeqNo(65540), t0 + 61_000),
    ];
    mixed.push((SeqNo(65540 + 9000), t0 + 5_000_000));
    mixed.push((SeqNo(65540 + 9001), t0 + 5_000_250));
    mixed.extend((0..20).map(|i| (SeqNo(75_000 + 2 * i), t0 + 6_000_000 + i * 100)));
    let statuses = twcc_round_trip(&mixed);
    assert_eq!(statuses.len(), (75_038 - 65_534 + 1) as usize);
    // A single record.
    twcc_round_trip(&[(SeqNo(5), 123_456_789)]);
}

#[test]
fn twcc_writer_limits() {
    let mut buf = [0u8; 1500];
    // A delta beyond 16 bits ends the packet before that record.
    let records = [(SeqNo(1), 0), (SeqNo(2), 1_000), (SeqNo(3), 10_000_000)];
    let written = write_transport_cc(&mut buf, Ssrc(1), Ssrc(2), 0, &records).unwrap();
    assert_eq!(written.records, 2);
    let RtcpPacket::TransportCc(cc) = only(&buf[..written.len]) else {
        panic!()
    };
    assert_eq!(cc.status_count(), 2);
    // Unsorted or duplicate input and empty input are refused.
    let unsorted = [(SeqNo(2), 0), (SeqNo(1), 0)];
    assert_eq!(
        write_transport_cc(&mut buf, Ssrc(1), Ssrc(2), 0, &unsorted),
        Err(RtcpError::InvalidInput)
    );
    assert_eq!(
        write_transport_cc(&mut buf, Ssrc(1), Ssrc(2), 0, &[]),
        Err(RtcpError::InvalidInput)
    );
    let many: Vec<_> = (0..2000).map(|i| (SeqNo(i), i * 20_000)).collect();
    assert_eq!(
        write_transport_cc(&mut buf, Ssrc(1), Ssrc(2), 0, &many),
        Err(RtcpError::BufferTooSmall)
    );
}

// ---- agreement with rtc-rtcp ----

fn oracle_marshal(packets: Vec<Box<dyn rtc_rtcp::packet::Packet>>) -> Vec<u8> {
    rtc_rtcp::packet::marshal(&packets).unwrap().to_vec()
}

fn oracle_unmarshal(bytes: &[u8]) -> Vec<Box<dyn rtc_rtcp::packet::Packet>> {
    rtc_rtcp::packet::unmarshal(&mut &bytes[..]).unwrap()
}

fn downcast<T: 'static + Clone>(p: &dyn rtc_rtcp::packet::Packet) -> T {
    p.as_any().downcast_ref::<T>().unwrap().clone()
}

fn oracle_reception_report(b: &ReportBlock) -> rtc_rtcp::reception_report::ReceptionReport {
    rtc_rtcp::reception_report::ReceptionReport {
        ssrc: b.ssrc.0,
        fraction_lost: b.fraction_lost,
        total_lost: b.cumulative_lost as u32 & 0xff_ffff,
        last_sequence_number: b.extended_highest_seq,
        jitter: b.jitter,
        last_sender_report: b.last_sr,
        delay: b.delay_since_last_sr,
    }
}

#[test]
fn agrees_with_rtc_rtcp_reports() {
    use rtc_rtcp::source_description::{
        SdesType, SourceDescription, SourceDescriptionChunk, SourceDescriptionItem,
    };
    let block = ReportBlock {
        ssrc: Ssrc(0xabcdef01),
        fraction_lost: 12,
        cumulative_lost: 1234,
        extended_highest_seq: 0x2_0001,
        jitter: 99,
        last_sr: 0x1111_2222,
        delay_since_last_sr: 300,
    };
    let sr = rtc_rtcp::sender_report::SenderReport {
        ssrc: 42,
        ntp_time: 0xdead_beef_0000_0001,
        rtp_time: 5,
        packet_count: 6,
        octet_count: 7,
        reports: vec![oracle_reception_report(&block)],
        profile_extensions: Default::default(),
    };
    let rr = rtc_rtcp::receiver_report::ReceiverReport {
        ssrc: 43,
        reports: vec![oracle_reception_report(&block); 2],
        profile_extensions: Default::default(),
    };
    let sdes = SourceDescription {
        chunks: vec![
            SourceDescriptionChunk {
                source: 42,
                items: vec![SourceDescriptionItem {
                    sdes_type: SdesType::SdesCname,
                    text: bytes::Bytes::from_static(b"abcdefgh-cname"),
                }],
            },
            SourceDescriptionChunk {
                source: 44,
                items: vec![
                    SourceDescriptionItem {
                        sdes_type: SdesType::SdesCname,
                        text: bytes::Bytes::from_static(b"x"),
                    },
                    SourceDescriptionItem {
                        sdes_type: SdesType::SdesTool,
                        text: bytes::Bytes::from_static(b"tool"),
                    },
                ],
            },
        ],
    };
    let bye = rtc_rtcp::goodbye::Goodbye {
        sources: vec![42, 44],
        reason: bytes::Bytes::from_static(b"done"),
    };
    let wire = oracle_marshal(vec![
        Box::new(sr),
        Box::new(rr),
        Box::new(sdes),
        Box::new(bye),
    ]);
    let packets = parse_all(&wire);
    assert_eq!(packets.len(), 4);
    let RtcpPacket::SenderReport(ours) = &packets[0] else {
        panic!()
    };
    assert_eq!(ours.ssrc(), Ssrc(42));
    assert_eq!(ours.sender_info().ntp_time, 0xdead_beef_0000_0001);
    assert_eq!(ours.report_blocks().collect::<Vec<_>>(), vec![block]);
    let RtcpPacket::ReceiverReport(ours) = &packets[1] else {
        panic!()
    };
    assert_eq!(ours.report_blocks().collect::<Vec<_>>(), vec![block; 2]);
    let RtcpPacket::Sdes(ours) = &packets[2] else {
        panic!()
    };
    let chunks: Vec<_> = ours
        .chunks()
        .map(|c| {
            (
                c.ssrc,
                c.items().map(|(t, v)| (t, v.to_vec())).collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        chunks,
        vec![
            (Ssrc(42), vec![(1, b"abcdefgh-cname".to_vec())]),
            (Ssrc(44), vec![(1, b"x".to_vec()), (6, b"tool".to_vec())]),
        ]
    );
    let RtcpPacket::Bye(ours) = &packets[3] else {
        panic!()
    };
    assert_eq!(ours.ssrcs().collect::<Vec<_>>(), vec![Ssrc(42), Ssrc(44)]);
    assert_eq!(ours.reason(), Some(&b"done"[..]));

    // Ours -> oracle.
    let mut buf = [0u8; 256];
    let info = SenderInfo {
        ssrc: Ssrc(42),
        ntp_time: 77,
        rtp_time: 5,
        packet_count: 6,
        octet_count: 7,
    };
    let n = write_sender_report(&mut buf, &info, &[block]).unwrap();
    let m = write_receiver_report(&mut buf[n..], Ssrc(43), &[block, block]).unwrap();
    let theirs = oracle_unmarshal(&buf[..n + m]);
    let sr: rtc_rtcp::sender_report::SenderReport = downcast(theirs[0].as_ref());
    assert_eq!((sr.ssrc, sr.ntp_time, sr.rtp_time), (42, 77, 5));
    assert_eq!((sr.packet_count, sr.octet_count), (6, 7));
    assert_eq!(sr.reports, vec![oracle_reception_report(&block)]);
    let rr: rtc_rtcp::receiver_report::ReceiverReport = downcast(theirs[1].as_ref());
    assert_eq!(rr.ssrc, 43);
    assert_eq!(rr.reports, vec![oracle_reception_report(&block); 2]);
}

#[test]
fn agrees_with_rtc_rtcp_feedback() {
    use rtc_rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
    use rtc_rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc_rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
    use rtc_rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};

    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: 2,
        nacks: vec![
            NackPair {
                packet_id: 65530,
                lost_packets: 0b1000_0000_0010_0101,
            },
            NackPair {
                packet_id: 40,
                lost_packets: 0,
            },
        ],
    };
    let pli = PictureLossIndication {
        sender_ssrc: 1,
        media_ssrc: 3,
    };
    let fir = FullIntraRequest {
        sender_ssrc: 1,
        media_ssrc: 0,
        fir: vec![FirEntry {
            ssrc: 9,
            sequence_number: 77,
        }],
    };
    let remb = ReceiverEstimatedMaximumBitrate {
        sender_ssrc: 1,
        bitrate: 1_234_567.0,
        ssrcs: vec![10, 11],
    };
    let wire = oracle_marshal(vec![
        Box::new(nack.clone()),
        Box::new(pli),
        Box::new(fir),
        Box::new(remb),
    ]);
    let packets = parse_all(&wire);
    let RtcpPacket::Nack(ours) = &packets[0] else {
        panic!()
    };
    let their_lost: Vec<u16> = nack.nacks.iter().flat_map(|p| p.packet_list()).collect();
    assert_eq!(ours.lost().collect::<Vec<_>>(), their_lost);
    assert_eq!(their_lost, vec![65530, 65531, 65533, 0, 10, 40]);
    assert_eq!(
        packets[1].clone_pli(),
        Some(Pli {
            sender_ssrc: Ssrc(1),
            media_ssrc: Ssrc(3)
        })
    );
    let RtcpPacket::Fir(ours) = &packets[2] else {
        panic!()
    };
    assert_eq!(ours.entries().collect::<Vec<_>>(), vec![(Ssrc(9), 77)]);
    let RtcpPacket::Remb(ours) = &packets[3] else {
        panic!()
    };
    assert!(ours.bitrate().abs_diff(1_234_567) < 8, "{}", ours.bitrate());
    assert_eq!(ours.ssrcs().collect::<Vec<_>>(), vec![Ssrc(10), Ssrc(11)]);

    // Ours -> oracle.
    let lost: Vec<u16> = vec![65500, 65501, 65515, 65516, 3, 4];
    let mut buf = [0u8; 256];
    let mut n = write_nack(&mut buf, Ssrc(1), Ssrc(2), &lost).unwrap();
    n += write_pli(&mut buf[n..], Ssrc(1), Ssrc(3)).unwrap();
    n += write_fir(&mut buf[n..], Ssrc(1), &[(Ssrc(9), 78)]).unwrap();
    n += write_remb(&mut buf[n..], Ssrc(1), 2_500_000, &[Ssrc(10)]).unwrap();
    let theirs = oracle_unmarshal(&buf[..n]);
    let nack: TransportLayerNack = downcast(theirs[0].as_ref());
    let their_lost: Vec<u16> = nack.nacks.iter().flat_map(|p| p.packet_list()).collect();
    assert_eq!(their_lost, lost);
    let pli: PictureLossIndication = downcast(theirs[1].as_ref());
    assert_eq!((pli.sender_ssrc, pli.media_ssrc), (1, 3));
    let fir: FullIntraRequest = downcast(theirs[2].as_ref());
    assert_eq!((fir.fir[0].ssrc, fir.fir[0].sequence_number), (9, 78));
    let remb: ReceiverEstimatedMaximumBitrate = downcast(theirs[3].as_ref());
    assert_eq!(remb.bitrate, 2_500_000.0);
    assert_eq!(remb.ssrcs, vec![10]);
}

/// Expands an oracle TWCC packet into `(seq, delta ticks)` like our iterator.
fn oracle_statuses(
    cc: &rtc_rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc,
) -> Vec<(u16, Option<i16>)> {
    use rtc_rtcp::transport_feedbacks::transport_layer_cc::{PacketStatusChunk, SymbolTypeTcc};
    let mut symbols = vec![];
    for chunk in &cc.packet_chunks {
        match chunk {
            PacketStatusChunk::RunLengthChunk(r) => symbols.extend(std::iter::repeat_n(
                r.packet_status_symbol,
                r.run_length.into(),
            )),
            PacketStatusChunk::StatusVectorChunk(v) => {
                symbols.extend(v.symbol_list.iter().copied())
            }
        }
    }
    symbols.truncate(cc.packet_status_count.into());
    let mut deltas = cc.recv_deltas.iter();
    symbols
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let seq = cc.base_sequence_number.wrapping_add(i as u16);
            let delta = match s {
                SymbolTypeTcc::PacketNotReceived => None,
                _ => Some((deltas.next().unwrap().delta / 250) as i16),
            };
            (seq, delta)
        })
        .collect()
}

#[test]
fn agrees_with_rtc_rtcp_transport_cc() {
    use rtc_rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
    let t0 = 3_000_000u64;
    let mut records: Vec<_> = (0..30).map(|i| (SeqNo(100 + i), t0 + i * 700)).collect();
    records.push((SeqNo(140), t0 + 20_000));
    records.push((SeqNo(141), t0 + 15_000));
    records.extend((0..40).map(|i| (SeqNo(200 + i), t0 + 100_000 + i * 100_000)));
    records.push((SeqNo(9000), t0 + 4_500_000));
    let mut buf = [0u8; 1500];
    let written = write_transport_cc(&mut buf, Ssrc(1), Ssrc(2), 3, &records).unwrap();
    assert_eq!(written.records, records.len());
    let theirs = oracle_unmarshal(&buf[..written.len]);
    let cc: TransportLayerCc = downcast(theirs[0].as_ref());
    assert_eq!(cc.base_sequence_number, 100);
    assert_eq!(cc.fb_pkt_count, 3);
    let RtcpPacket::TransportCc(ours) = only(&buf[..written.len]) else {
        panic!()
    };
    assert_eq!(oracle_statuses(&cc), ours.statuses().collect::<Vec<_>>());
    assert_eq!(
        ours.statuses().collect::<Vec<_>>(),
        expected_statuses(&records)
    );

    // Oracle -> ours: re-marshal the oracle's decoded packet and read it back.
    let wire = cc.marshal().unwrap();
    let RtcpPacket::TransportCc(again) = only(&wire) else {
        panic!()
    };
    assert_eq!(again.statuses().collect::<Vec<_>>(), oracle_statuses(&cc));
    for fixture in [&TWCC_EXAMPLE1[..], &TWCC_EXAMPLE3[..]] {
        let theirs = oracle_unmarshal(fixture);
        let cc: TransportLayerCc = downcast(theirs[0].as_ref());
        let RtcpPacket::TransportCc(ours) = only(fixture) else {
            panic!()
        };
        assert_eq!(ours.statuses().collect::<Vec<_>>(), oracle_statuses(&cc));
        assert_eq!(ours.reference_time(), cc.reference_time);
    }
}

#[test]
fn twcc_writer_chooses_compact_chunks() {
    let mut buf = [0u8; 1500];
    // 100 packets received with small deltas: one run-length chunk, one byte per delta.
    let dense: Vec<_> = (0..100).map(|i| (SeqNo(i), 64_000 + i * 1000)).collect();
    let written = write_transport_cc(&mut buf, Ssrc(1), Ssrc(2), 0, &dense).unwrap();
    assert_eq!(written.len, (20 + 2 + 100usize).next_multiple_of(4));
    assert_eq!(buf[20] >> 7, 0, "run-length chunk");
    // Every other packet lost, small deltas: 28 statuses in two one-bit vectors.
    let sparse: Vec<_> = (0..14).map(|i| (SeqNo(2 * i), 64_000 + i * 1000)).collect();
    let written = write_transport_cc(&mut buf, Ssrc(1), Ssrc(2), 0, &sparse).unwrap();
    assert_eq!(written.len, (20 + 2 * 2 + 14usize).next_multiple_of(4));
    assert_eq!(buf[20] >> 6, 0b10, "one-bit status vector");
    // A large delta among small ones needs two-bit vectors.
    let large = [
        (SeqNo(0), 64_000),
        (SeqNo(1), 64_000 + 500_000),
        (SeqNo(2), 64_000 + 500_100),
    ];
    let written = write_transport_cc(&mut buf, Ssrc(1), Ssrc(2), 0, &large).unwrap();
    assert_eq!(buf[20] >> 6, 0b11, "two-bit status vector");
    twcc_round_trip(&large);
    assert_eq!(written.records, 3);
}

#[test]
fn twcc_skips_empty_run_chunks() {
    // Status count 2: an empty run-length chunk, then a run of two small deltas.
    let fci = [0, 10, 0, 2, 0, 0, 1, 0, 0x00, 0x00, 0x20, 0x02, 4, 8, 0, 0];
    let mut packet = vec![0x8f, 0xcd, 0, 6, 0, 0, 0, 1, 0, 0, 0, 2];
    packet.extend_from_slice(&fci);
    let RtcpPacket::TransportCc(cc) = only(&packet) else {
        panic!()
    };
    assert_eq!(
        cc.statuses().collect::<Vec<_>>(),
        vec![(10, Some(4)), (11, Some(8))]
    );
}

#[test]
fn bye_writer_round_trips_with_and_without_reason() {
    let mut buf = [0u8; 64];
    for (ssrcs, reason) in [
        (&[Ssrc(1)][..], None),
        (
            &[Ssrc(1), Ssrc(0xDEAD_BEEF)][..],
            Some(&b"server shutting down"[..]),
        ),
        (&[][..], Some(&b"abc"[..])),
    ] {
        let len = write_bye(&mut buf, ssrcs, reason).expect("written");
        assert_eq!(len % 4, 0);
        let RtcpPacket::Bye(bye) = only(&buf[..len]) else {
            panic!("not a BYE");
        };
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), ssrcs);
        assert_eq!(bye.reason(), reason);
    }
    assert_eq!(
        write_bye(&mut buf[..7], &[Ssrc(1)], None),
        Err(RtcpError::BufferTooSmall)
    );
    assert_eq!(
        write_bye(&mut buf, &[Ssrc(1); 32], None),
        Err(RtcpError::TooManyItems)
    );
}
