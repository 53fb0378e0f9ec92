//! Tests of the RTP view: byte fixtures, every rejection path, in-place rewrites, both
//! extension forms, and agreement with the independent `rtc-rtp` crate.

use super::*;
use crate::SeqNo;
use bytes::Bytes;
use rtc_shared::marshal::{Marshal, Unmarshal};

/// V=2 P=1 X=1 CC=1 M=1 PT=111 seq=0x1234 ts=0xdeadbeef ssrc=0x11223344 csrc=0x55667788,
/// one-byte extensions: id 1 "ab", padding byte, id 3 three bytes 0x010203; payload "hi";
/// two padding bytes (P=1).
const ONE_BYTE: [u8; 36] = [
    0xb1, 0xef, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    0xbe, 0xde, 0x00, 0x02, 0x11, b'a', b'b', 0x00, 0x32, 0x01, 0x02, 0x03, b'h', b'i', 0xaa, 0xbb,
    0xcc, 0xdd, 0x00, 0x02,
];

#[test]
fn parses_fixture_fields() {
    let bytes = ONE_BYTE;
    let p = RtpPacket::parse(&bytes[..]).unwrap();
    assert!(p.marker());
    assert_eq!(p.payload_type(), Pt(111));
    assert_eq!(p.sequence_number(), 0x1234);
    assert_eq!(p.timestamp(), 0xdeadbeef);
    assert_eq!(p.ssrc(), Ssrc(0x11223344));
    assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![Ssrc(0x55667788)]);
    assert_eq!(p.header_len(), 28);
    assert_eq!(header_len(&bytes).unwrap(), 28);
    assert_eq!(p.payload(), b"hi\xaa\xbb\xcc\xdd");
    assert_eq!(p.padding_len(), 2);
    assert_eq!(p.extension_form(), ExtensionForm::OneByte);
    let exts: Vec<_> = p.extensions().collect();
    assert_eq!(exts, vec![(1, &b"ab"[..]), (3, &[1u8, 2, 3][..])]);
    assert_eq!(p.extension(3), Some(&[1u8, 2, 3][..]));
    assert_eq!(p.extension(2), None);
}

#[test]
fn header_only_view_ignores_padding() {
    let mut bytes = ONE_BYTE;
    *bytes.last_mut().unwrap() = 0; // invalid padding length: as if encrypted
    assert_eq!(
        RtpPacket::parse(&bytes[..]).unwrap_err(),
        RtpError::BadPadding
    );
    let p = RtpPacket::parse_header_only(&bytes[..]).unwrap();
    assert_eq!(p.payload().len(), 8);
    assert_eq!(p.padding_len(), 0);
    assert_eq!(p.extension(1), Some(&b"ab"[..]));
}

#[test]
fn rejects_malformed() {
    assert_eq!(RtpPacket::parse(&[][..]).unwrap_err(), RtpError::Truncated);
    assert_eq!(
        RtpPacket::parse(&ONE_BYTE[..11]).unwrap_err(),
        RtpError::Truncated
    );
    let mut v1 = ONE_BYTE;
    v1[0] = (v1[0] & 0x3f) | 0x40;
    assert_eq!(RtpPacket::parse(&v1[..]).unwrap_err(), RtpError::BadVersion);
    // CSRC count larger than the packet.
    let mut cc = ONE_BYTE;
    cc[0] |= 0x0f;
    assert_eq!(RtpPacket::parse(&cc[..]).unwrap_err(), RtpError::Truncated);
    // Extension length beyond the packet.
    let mut ext = ONE_BYTE;
    ext[19] = 0x20;
    assert_eq!(RtpPacket::parse(&ext[..]).unwrap_err(), RtpError::Truncated);
    // Element claiming more bytes than the block: id 3, length 16.
    let mut elem = ONE_BYTE;
    elem[24] = 0x3f;
    assert_eq!(
        RtpPacket::parse(&elem[..]).unwrap_err(),
        RtpError::BadExtension
    );
    // Padding longer than the payload.
    let mut pad = ONE_BYTE;
    pad[35] = 9;
    assert_eq!(
        RtpPacket::parse(&pad[..]).unwrap_err(),
        RtpError::BadPadding
    );
    // Padding that exactly consumes the payload is fine.
    pad[35] = 8;
    assert_eq!(RtpPacket::parse(&pad[..]).unwrap().payload(), b"");
}

#[test]
fn without_padding_flag_trailing_bytes_are_payload() {
    let mut bytes = ONE_BYTE;
    bytes[0] &= !0x20;
    let p = RtpPacket::parse(&bytes[..]).unwrap();
    assert_eq!(p.padding_len(), 0);
    assert_eq!(p.payload(), b"hi\xaa\xbb\xcc\xdd\x00\x02");
}

#[test]
fn one_byte_id_15_stops_processing() {
    let mut bytes = ONE_BYTE;
    bytes[23] = 0xf0; // the padding byte between the two elements becomes id 15
    let p = RtpPacket::parse(&bytes[..]).unwrap();
    assert_eq!(p.extensions().count(), 1);
}

#[test]
fn setters_rewrite_in_place() {
    let mut bytes = ONE_BYTE;
    let mut p = RtpPacket::parse(&mut bytes[..]).unwrap();
    p.set_ssrc(Ssrc(0xcafebabe));
    p.set_sequence_number(0xfffe);
    p.set_timestamp(7);
    p.set_payload_type(Pt(96));
    p.set_marker(false);
    assert_eq!(p.ssrc(), Ssrc(0xcafebabe));
    assert_eq!(p.sequence_number(), 0xfffe);
    assert_eq!(p.timestamp(), 7);
    assert_eq!(p.payload_type(), Pt(96));
    assert!(!p.marker());
    p.set_marker(true);
    assert!(p.marker());
    assert_eq!(p.payload_type(), Pt(96));
    // The first byte (V, P, X, CC) and everything after the fixed header are untouched.
    assert_eq!(bytes[0], ONE_BYTE[0]);
    assert_eq!(bytes[12..], ONE_BYTE[12..]);
}

#[test]
fn extension_mut_and_remap() {
    let mut bytes = ONE_BYTE;
    let mut p = RtpPacket::parse(&mut bytes[..]).unwrap();
    p.extension_mut(3).unwrap().copy_from_slice(&[9, 8, 7]);
    assert!(p.extension_mut(5).is_none());
    // 1 -> 5; 3 has no mapping and is neutralized.
    p.remap_extension_ids(|id| (id == 1).then_some(5));
    let exts: Vec<_> = p.extensions().collect();
    assert_eq!(exts, vec![(5, &b"ab"[..])]);
    assert_eq!(bytes[24..28], [0, 0, 0, 0]);
    // Ids a one-byte element cannot carry are neutralized too.
    let mut p = RtpPacket::parse(&mut bytes[..]).unwrap();
    p.remap_extension_ids(|_| Some(15));
    assert_eq!(p.extensions().count(), 0);
    assert!(RtpPacket::parse(&bytes[..]).is_ok());
}

#[test]
fn fixed_fields_are_written_without_a_view() {
    let mut bytes = ONE_BYTE;
    write_fixed_fields(&mut bytes, Pt(96), 0xabcd, 0x0102_0304, Ssrc(0x0a0b_0c0d)).unwrap();
    let p = RtpPacket::parse(&bytes[..]).unwrap();
    assert!(p.marker(), "the marker bit is kept");
    assert_eq!(p.payload_type(), Pt(96));
    assert_eq!(p.sequence_number(), 0xabcd);
    assert_eq!(p.timestamp(), 0x0102_0304);
    assert_eq!(p.ssrc(), Ssrc(0x0a0b_0c0d));
    // Everything after the fixed header is untouched.
    assert_eq!(bytes[12..], ONE_BYTE[12..]);
    assert!(write_fixed_fields(&mut bytes[..11], Pt(1), 1, 1, Ssrc(1)).is_none());
}

#[test]
fn a_header_copy_is_a_view_with_the_same_offsets() {
    let original = RtpPacket::parse(&ONE_BYTE[..]).unwrap();
    let mut buf = [0u8; 64];
    let mut copy = original.copy_header_into(&mut buf).unwrap();
    assert_eq!(copy.header_len(), 28);
    assert_eq!(copy.as_bytes(), &ONE_BYTE[..28]);
    assert_eq!(copy.payload(), b"");
    assert_eq!(copy.extension(3), Some(&[1u8, 2, 3][..]));
    copy.set_sequence_number(7);
    copy.remap_extension_ids(|id| (id == 3).then_some(4));
    copy.extension_mut(4).unwrap().copy_from_slice(&[9, 9, 9]);
    // What a fresh parse of the rewritten copy finds.
    buf[28..30].copy_from_slice(b"hi");
    let reparsed = RtpPacket::parse_header_only(&buf[..30]).unwrap();
    assert_eq!(reparsed.header_len(), 28);
    assert_eq!(reparsed.sequence_number(), 7);
    let exts: Vec<_> = reparsed.extensions().collect();
    assert_eq!(exts, vec![(4, &[9u8, 9, 9][..])]);
    assert_eq!(reparsed.payload(), b"hi");
    assert!(original.copy_header_into(&mut [0u8; 27]).is_none());
}

#[test]
fn two_byte_form() {
    // Profile 0x1000, 3 words: id 200 len 0, padding, id 7 len 3 "xyz", id 9 len 1, pad.
    let mut bytes = vec![0x90, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0x10, 0x00, 0, 3];
    bytes.extend_from_slice(&[200, 0, 0, 7, 3, b'x', b'y', b'z', 9, 1, 0xee, 0]);
    bytes.extend_from_slice(b"payload");
    let mut p = RtpPacket::parse(&mut bytes[..]).unwrap();
    assert_eq!(p.extension_form(), ExtensionForm::TwoByte);
    let exts: Vec<_> = p.extensions().map(|(i, d)| (i, d.to_vec())).collect();
    assert_eq!(
        exts,
        vec![(200, vec![]), (7, b"xyz".to_vec()), (9, vec![0xee])]
    );
    p.remap_extension_ids(|id| match id {
        7 => Some(250),
        9 => Some(1),
        _ => None,
    });
    let exts: Vec<_> = p.extensions().map(|(i, d)| (i, d.to_vec())).collect();
    assert_eq!(exts, vec![(250, b"xyz".to_vec()), (1, vec![0xee])]);
    assert_eq!(p.payload(), b"payload");
    // An element whose length byte is missing or that overruns the block is rejected.
    bytes[25] = 3;
    assert_eq!(
        RtpPacket::parse(&bytes[..]).unwrap_err(),
        RtpError::BadExtension
    );
}

#[test]
fn foreign_profile_has_no_elements() {
    let mut bytes = ONE_BYTE;
    bytes[16] = 0x12;
    let p = RtpPacket::parse(&bytes[..]).unwrap();
    assert_eq!(p.extension_form(), ExtensionForm::Other);
    assert_eq!(p.extensions().count(), 0);
    assert_eq!(p.header_len(), 28);
}

#[test]
fn seq_unwrapper_handles_wrap_and_reorder() {
    let mut u = SeqNoUnwrapper::new();
    assert_eq!(u.unwrap(65530), SeqNo(65530));
    assert_eq!(u.unwrap(65535), SeqNo(65535));
    assert_eq!(u.unwrap(2), SeqNo(65538));
    // Reordered packet from before the wrap.
    assert_eq!(u.unwrap(65533), SeqNo(65533));
    assert_eq!(u.unwrap(3), SeqNo(65539));
    assert_eq!(u.highest(), Some(SeqNo(65539)));
    assert_eq!(u.unwrap(3).rollover_count(), 1);
    // Older than the start cannot go below zero: it is taken as newer.
    let mut u = SeqNoUnwrapper::new();
    assert_eq!(u.unwrap(2), SeqNo(2));
    assert_eq!(u.unwrap(65535), SeqNo(65535));
    // Long forward jumps accumulate across several wraps.
    let mut u = SeqNoUnwrapper::new();
    let mut expected = 0u64;
    for _ in 0..10 {
        assert_eq!(u.unwrap(expected as u16), SeqNo(expected));
        expected += 30000;
    }
}

#[test]
fn timestamp_unwrapper_handles_wrap_and_reorder() {
    let mut u = TimestampUnwrapper::new();
    assert_eq!(u.unwrap(u32::MAX - 100), u64::from(u32::MAX - 100));
    assert_eq!(u.unwrap(50), (1 << 32) + 50);
    assert_eq!(u.unwrap(u32::MAX - 10), u64::from(u32::MAX - 10));
    assert_eq!(u.unwrap(3000), (1 << 32) + 3000);
}

/// An extension element as `(id, data)`.
type Ext<'a> = (u8, &'a [u8]);

fn oracle_packet(profile: u16, exts: &[Ext<'_>], padding: u8) -> rtc_rtp::Packet {
    let mut header = rtc_rtp::Header {
        version: 2,
        marker: true,
        payload_type: 100,
        sequence_number: 4242,
        timestamp: 90_000,
        ssrc: 0x0a0b0c0d,
        csrc: vec![1, 2],
        extension: true,
        extension_profile: profile,
        ..Default::default()
    };
    for &(id, data) in exts {
        header
            .set_extension(id, Bytes::copy_from_slice(data))
            .unwrap();
    }
    header.padding = padding > 0;
    rtc_rtp::Packet {
        header,
        payload: Bytes::from_static(&[0x42; 100]),
    }
}

#[test]
fn agrees_with_rtc_rtp_both_forms() {
    let cases: [(u16, &[Ext<'_>]); 2] = [
        (0xBEDE, &[(1, b"v0"), (3, &[1, 2, 3]), (5, &[0x12, 0x34])]),
        (0x1000, &[(1, b""), (16, &[9; 20]), (200, b"mid")]),
    ];
    for (profile, exts) in cases {
        let packet = oracle_packet(profile, exts, 0);
        let wire = packet.marshal().unwrap();
        let ours = RtpPacket::parse(&wire[..]).unwrap();
        assert_eq!(ours.sequence_number(), 4242);
        assert_eq!(ours.timestamp(), 90_000);
        assert_eq!(ours.ssrc(), Ssrc(0x0a0b0c0d));
        assert_eq!(ours.payload_type(), Pt(100));
        assert!(ours.marker());
        assert_eq!(ours.csrcs().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(ours.payload(), &packet.payload[..]);
        let got: Vec<_> = ours.extensions().map(|(i, d)| (i, d.to_vec())).collect();
        let want: Vec<_> = exts.iter().map(|(i, d)| (*i, d.to_vec())).collect();
        assert_eq!(got, want);

        // And the other way: rewrite with ours, read back with the oracle.
        let mut copy = wire.to_vec();
        let mut ours = RtpPacket::parse(&mut copy[..]).unwrap();
        ours.set_ssrc(Ssrc(77));
        ours.set_sequence_number(9);
        ours.set_timestamp(123);
        ours.set_payload_type(Pt(96));
        ours.remap_extension_ids(|id| (id != 3).then_some(id + 1));
        let back = rtc_rtp::Packet::unmarshal(&mut &copy[..]).unwrap();
        assert_eq!(back.header.ssrc, 77);
        assert_eq!(back.header.sequence_number, 9);
        assert_eq!(back.header.timestamp, 123);
        assert_eq!(back.header.payload_type, 96);
        for (id, data) in exts {
            if *id == 3 {
                assert_eq!(back.header.get_extension(3), None);
            } else {
                assert_eq!(back.header.get_extension(id + 1).as_deref(), Some(*data));
            }
        }
    }
}

#[test]
fn padded_packet_agrees_with_rtc_rtp() {
    // Hand-built padding (the oracle computes padding on marshal from its own field).
    let mut wire = oracle_packet(0xBEDE, &[(2, b"x")], 0)
        .marshal()
        .unwrap()
        .to_vec();
    wire[0] |= 0x20;
    wire.extend_from_slice(&[0, 0, 0, 4]);
    let ours = RtpPacket::parse(&wire[..]).unwrap();
    let theirs = rtc_rtp::Packet::unmarshal(&mut &wire[..]).unwrap();
    assert_eq!(ours.payload(), &theirs.payload[..]);
    assert_eq!(ours.padding_len(), 4);
}

/// A packet with `header` (fixed part and any extension block) and a 4-byte payload, as
/// `add_extension` leaves room for it: the header first, the rest of the buffer free.
fn with_room(header: &[u8]) -> Vec<u8> {
    let mut buf = header.to_vec();
    buf.resize(header.len() + 64, 0xEE);
    buf
}

#[test]
fn add_extension_adds_a_block_grows_one_or_uses_its_padding() {
    let fixed = [0x80, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
    let payload = [1, 2, 3, 4];
    // The same with the X bit, for a block.
    let mut extended = fixed;
    extended[0] |= 0x10;
    let fixed_x = extended;
    // (header, id, data length) -> the new header length.
    let one_byte_with_padding = [
        &fixed_x[..],
        &[0xBE, 0xDE, 0, 2, 0x10, 0xAA, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    let one_byte_full = [&fixed_x[..], &[0xBE, 0xDE, 0, 1, 0x12, 0xAA, 0xBB, 0xCC]].concat();
    let two_byte = [&fixed_x[..], &[0x10, 0x00, 0, 1, 1, 1, 0xAA, 0]].concat();
    let cases: [(&[u8], u8, usize, usize); 4] = [
        (&fixed, 5, 2, 20),
        (&one_byte_with_padding, 5, 2, 24),
        (&one_byte_full, 5, 2, 24),
        (&two_byte, 200, 2, 24),
    ];
    for (header, id, data_len, new_len) in cases {
        let mut buf = with_room(header);
        let (len, at) =
            add_extension(&mut buf, header.len(), id, data_len).expect("an element is added");
        assert_eq!(len, new_len, "{header:02x?}");
        buf[at..at + data_len].copy_from_slice(&[0x12, 0x34][..data_len]);
        buf.truncate(len);
        buf.extend_from_slice(&payload);
        let packet = RtpPacket::parse(&buf[..]).expect("still a valid packet");
        assert_eq!(
            packet.extension(id),
            Some(&[0x12, 0x34][..data_len]),
            "{header:02x?}"
        );
        assert_eq!(packet.payload(), &payload);
        // What was there stays.
        let original = RtpPacket::parse_header_only(header).unwrap();
        for (old_id, data) in original.extensions() {
            assert_eq!(packet.extension(old_id), Some(data));
        }
    }
}

#[test]
fn add_extension_refuses_what_it_cannot_write() {
    let fixed = [0x80, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
    let fixed_x = [0x90, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
    // An id the one-byte form cannot carry, in a new block.
    assert_eq!(add_extension(&mut with_room(&fixed), 12, 15, 2), None);
    // No room after the header.
    let mut tight = fixed.to_vec();
    assert_eq!(add_extension(&mut tight, 12, 5, 2), None);
    assert_eq!(tight, fixed);
    // A block whose processing stops at id 15: an element after it would not be read.
    let stopped = [&fixed_x[..], &[0xBE, 0xDE, 0, 1, 0xF0, 0x11, 0, 0]].concat();
    assert_eq!(add_extension(&mut with_room(&stopped), 20, 5, 2), None);
    // A profile that is not RFC 8285.
    let other = [&fixed_x[..], &[0x12, 0x34, 0, 1, 1, 2, 3, 4]].concat();
    assert_eq!(add_extension(&mut with_room(&other), 20, 5, 2), None);
}
