//! AV1 payload tests: packets captured from libaom through FFmpeg's packetizer (see
//! `tests/vectors/README.md`), then hand-written aggregation headers and OBUs for what it
//! does not send (W=0 with LEB128 lengths, extension headers, a sequence header with timing
//! and decoder model information), every rejection and every truncation.

use super::*;
use crate::codec::tests::{BitWriter, rtp_payload};

const KEYFRAME_FIRST: &[u8] = include_bytes!("../../../tests/vectors/av1/keyframe_first.rtp");
const KEYFRAME_LAST: &[u8] = include_bytes!("../../../tests/vectors/av1/keyframe_last.rtp");
const DELTA: &[u8] = include_bytes!("../../../tests/vectors/av1/delta.rtp");
const DELTA_FIRST: &[u8] = include_bytes!("../../../tests/vectors/av1/delta_first.rtp");
const DELTA_LAST: &[u8] = include_bytes!("../../../tests/vectors/av1/delta_last.rtp");

fn res(width: u16, height: u16) -> Resolution {
    Resolution { width, height }
}

#[test]
fn libaom_keyframe_with_sequence_header() {
    let payload = rtp_payload(KEYFRAME_FIRST);
    let p = Av1Packet::parse(payload).unwrap();
    assert!(p.is_new_coded_video_sequence() && p.ends_with_fragment());
    assert!(!p.starts_with_continuation());
    assert_eq!(p.element_count_field(), 2);
    let elements: Vec<_> = p.elements().collect();
    assert_eq!(elements.len(), 2);
    assert_eq!(elements[0].data().len(), 12);
    assert!(elements[0].is_whole());
    assert_eq!(
        elements[0].header(),
        Some(ObuHeader {
            obu_type: obu_type::SEQUENCE_HEADER,
            layer: None,
            has_size_field: false
        })
    );
    assert_eq!(elements[1].header().unwrap().obu_type, obu_type::FRAME);
    assert!(elements[1].continues_in_next() && !elements[1].is_whole());
    assert_eq!(elements[1].data().len(), payload.len() - 1 - 1 - 12);
    let seq = p.sequence_header().unwrap().unwrap();
    assert_eq!(seq.seq_profile, 0);
    assert!(!seq.still_picture);
    assert_eq!((seq.operating_points, seq.operating_point_idc), (1, 0));
    assert_eq!(seq.max_frame_size, res(640, 360));
    assert!(p.is_keyframe() && p.is_start_of_frame());
    assert_eq!(p.resolution(), Some(res(640, 360)));
    assert_eq!((p.temporal_id(), p.spatial_id()), (None, None));
}

#[test]
fn libaom_continuations_and_delta_frames() {
    for rtp in [KEYFRAME_LAST, DELTA_LAST] {
        let p = Av1Packet::parse(rtp_payload(rtp)).unwrap();
        assert!(p.starts_with_continuation() && !p.ends_with_fragment());
        let element = p.elements().next().unwrap();
        assert!(element.is_continuation() && element.header().is_none());
        assert!(!p.is_keyframe() && !p.is_start_of_frame());
        assert!(p.sequence_header().is_none());
    }
    let delta = Av1Packet::parse(rtp_payload(DELTA)).unwrap();
    assert_eq!(delta.element_count_field(), 1);
    assert_eq!(delta.elements().count(), 1);
    assert!(delta.elements().next().unwrap().is_whole());
    assert!(delta.is_start_of_frame() && !delta.is_keyframe());
    assert_eq!(delta.resolution(), None);
    let first = Av1Packet::parse(rtp_payload(DELTA_FIRST)).unwrap();
    assert!(first.ends_with_fragment() && first.is_start_of_frame());
}

/// Writes a sequence header OBU payload with timing info, a decoder model and initial
/// display delays for two operating points (the second scalable), 1920x1080.
fn rich_sequence_header() -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(0, 3); // seq_profile
    w.bit(false);
    w.bit(false);
    w.bit(true); // timing_info_present_flag
    w.bits(1001, 32);
    w.bits(60000, 32);
    w.bit(true); // equal_picture_interval
    w.bits(0b00101, 5); // uvlc: two zeros, a one, two bits
    w.bit(true); // decoder_model_info_present_flag
    w.bits(9, 5); // buffer_delay_length_minus_1: 10-bit delays
    w.bits(1, 32);
    w.bits(4, 5);
    w.bits(4, 5);
    w.bit(true); // initial_display_delay_present_flag
    w.bits(1, 5); // two operating points
    // Operating point 0: spatial layers 0-1, temporal layers 0-2, level 8 (tier follows).
    w.bits(0x307, 12);
    w.bits(8, 5);
    w.bit(false);
    w.bit(true); // decoder_model_present_for_this_op
    w.bits(0x155, 10);
    w.bits(0x2aa, 10);
    w.bit(false);
    w.bit(true); // initial_display_delay_present_for_this_op
    w.bits(3, 4);
    // Operating point 1: level 4, no model, no delay.
    w.bits(0x101, 12);
    w.bits(4, 5);
    w.bit(false);
    w.bit(false);
    w.bits(10, 4); // frame_width_bits_minus_1
    w.bits(10, 4);
    w.bits(1919, 11);
    w.bits(1079, 11);
    w.bytes()
}

#[test]
fn hand_written_sequence_header() {
    let seq = Av1SequenceHeader::parse(&rich_sequence_header()).unwrap();
    assert_eq!(seq.operating_points, 2);
    assert_eq!(seq.operating_point_idc, 0x307);
    assert_eq!(seq.seq_level_idx, 8);
    assert_eq!(seq.max_frame_size, res(1920, 1080));
    // Reduced still picture header: profile 1, level 5, 8x8 in 3-bit fields.
    let mut w = BitWriter::default();
    w.bits(1, 3);
    w.bit(true);
    w.bit(true);
    w.bits(5, 5);
    w.bits(2, 4);
    w.bits(2, 4);
    w.bits(7, 3);
    w.bits(7, 3);
    let still = Av1SequenceHeader::parse(&w.bytes()).unwrap();
    assert!(still.still_picture);
    assert_eq!((still.seq_profile, still.seq_level_idx), (1, 5));
    assert_eq!(still.max_frame_size, res(8, 8));
    let rich = rich_sequence_header();
    for len in 0..rich.len() {
        assert!(
            Av1SequenceHeader::parse(&rich[..len]).is_err(),
            "length {len}"
        );
    }
}

#[test]
fn w0_elements_with_lengths_and_extension_headers() {
    let seq = rich_sequence_header();
    let mut packet = vec![0x08]; // N, W=0
    // A sequence header OBU with obu_has_size_field (the size is inside the element too).
    packet.push(u8::try_from(2 + seq.len()).unwrap());
    packet.push(0x0a);
    packet.push(u8::try_from(seq.len()).unwrap());
    packet.extend_from_slice(&seq);
    // A frame OBU with an extension header (temporal 2, spatial 1) and 200 bytes: the
    // element length takes two LEB128 bytes.
    packet.extend_from_slice(&[0xca, 0x01, 0x34, 0b0100_1000]);
    packet.extend_from_slice(&[0x55; 200]);
    let p = Av1Packet::parse(&packet[..]).unwrap();
    let elements: Vec<_> = p.elements().collect();
    assert_eq!(elements.len(), 2);
    assert_eq!(elements[1].data().len(), 202);
    let frame = elements[1].header().unwrap();
    assert_eq!(frame.obu_type, obu_type::FRAME);
    assert_eq!(
        (frame.temporal_id(), frame.spatial_id()),
        (Some(2), Some(1))
    );
    assert_eq!((p.temporal_id(), p.spatial_id()), (Some(2), Some(1)));
    assert!(elements[0].header().unwrap().has_size_field);
    assert_eq!(p.resolution(), Some(res(1920, 1080)));
    assert!(p.is_keyframe() && p.is_start_of_frame());
    // Cut anywhere but between elements, the packet is rejected; cut between, it is a
    // shorter packet.
    let boundary = 2 + 2 + seq.len();
    for len in 0..packet.len() {
        let parsed = Av1Packet::parse(&packet[..len]);
        assert_eq!(parsed.is_ok(), len == boundary, "length {len}");
    }
}

#[test]
fn rejects_malformed_aggregation() {
    let cases: [(&[u8], CodecError); 8] = [
        (&[], CodecError::Truncated("AV1 aggregation header")),
        (&[0x10], CodecError::Truncated("AV1 OBU element")),
        (
            &[0x88, 0x30],
            CodecError::Malformed("AV1 N set on a continuation"),
        ),
        // W=2 but only one element fits.
        (
            &[0x20, 0x01, 0x30],
            CodecError::Truncated("AV1 OBU element"),
        ),
        (
            &[0x00, 0x05, 0x30],
            CodecError::Truncated("AV1 OBU element"),
        ),
        (
            &[0x00, 0x00],
            CodecError::Malformed("AV1 empty OBU element"),
        ),
        (
            &[0x10, 0xb0],
            CodecError::Malformed("AV1 OBU forbidden bit"),
        ),
        (
            &[0x10, 0x34],
            CodecError::Truncated("AV1 OBU extension header"),
        ),
    ];
    for (packet, want) in cases {
        assert_eq!(Av1Packet::parse(packet).unwrap_err(), want, "{packet:02x?}");
    }
    // Z: the first element is not an OBU start, so its first byte is not checked.
    assert!(Av1Packet::parse(&[0x90, 0xff]).is_ok());
    // A tile group does not start a frame.
    let tiles = Av1Packet::parse(&[0x10, 0x20, 0x00]).unwrap();
    assert!(!tiles.is_start_of_frame());
}

#[test]
fn every_prefix_of_every_vector_is_handled() {
    for rtp in [KEYFRAME_FIRST, KEYFRAME_LAST, DELTA, DELTA_FIRST] {
        let payload = rtp_payload(rtp);
        for len in 0..payload.len().min(64) {
            if let Ok(p) = Av1Packet::parse(&payload[..len]) {
                let _ = (p.is_keyframe(), p.resolution(), p.elements().count());
            }
        }
    }
}
