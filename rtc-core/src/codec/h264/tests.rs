//! H.264 tests: packets captured from libx264 (see `tests/vectors/README.md`) in every
//! packetization FFmpeg uses, SPS of four profiles, then hand-written packets and parameter
//! sets for what x264 does not produce (scaling lists in the SPS, pic_order_cnt_type 1,
//! emulation prevention inside the fields read, the interleaved-mode types).

use super::*;
use crate::codec::tests::{BitWriter, escape, rtp_payload};

const STAP_A: &[u8] = include_bytes!("../../../tests/vectors/h264/stap_a_sps_pps_sei.rtp");
const FU_A_START: &[u8] = include_bytes!("../../../tests/vectors/h264/fu_a_idr_start.rtp");
const FU_A_MIDDLE: &[u8] = include_bytes!("../../../tests/vectors/h264/fu_a_idr_middle.rtp");
const FU_A_END: &[u8] = include_bytes!("../../../tests/vectors/h264/fu_a_idr_end.rtp");
const FU_A_SLICE2_END: &[u8] =
    include_bytes!("../../../tests/vectors/h264/fu_a_idr_slice2_end.rtp");
const SINGLE_SLICE: &[u8] = include_bytes!("../../../tests/vectors/h264/single_slice.rtp");
const SINGLE_SLICE2: &[u8] = include_bytes!("../../../tests/vectors/h264/single_slice2.rtp");
const STAP_A_HIGH: &[u8] = include_bytes!("../../../tests/vectors/h264/stap_a_high.rtp");
const STAP_A_444I: &[u8] =
    include_bytes!("../../../tests/vectors/h264/stap_a_high444_interlaced.rtp");
const STAP_A_MONO: &[u8] = include_bytes!("../../../tests/vectors/h264/stap_a_monochrome.rtp");

const VGA360: Resolution = Resolution {
    width: 640,
    height: 360,
};

fn parse(rtp: &[u8]) -> H264Packet<'_> {
    H264Packet::parse(rtp_payload(rtp)).unwrap()
}

#[test]
fn x264_parameter_sets_in_a_stap_a() {
    let p = parse(STAP_A);
    assert_eq!(p.packetization(), Packetization::StapA);
    let units: Vec<(u8, usize)> = p
        .nal_units()
        .map(|u| (u.nal_type(), u.body().len() + 1))
        .collect();
    assert_eq!(
        units,
        [
            (nal_type::SPS, 25),
            (nal_type::PPS, 4),
            (nal_type::SEI, 604)
        ]
    );
    assert!(p.nal_units().all(|u| u.fragment().is_none()));
    assert!(p.is_keyframe() && p.is_start_of_frame());
    assert!(p.contains(nal_type::PPS) && !p.contains(nal_type::IDR));
    let sps = p.sps().unwrap().unwrap();
    assert_eq!(sps.profile_idc, 66); // constrained baseline
    assert_eq!(sps.constraint_flags, 0xc0);
    assert_eq!(sps.level_idc, 30);
    assert_eq!(sps.sps_id, 0);
    assert_eq!(sps.chroma_format_idc, 1);
    assert!(sps.frame_mbs_only);
    // 640x368 in macroblocks, cropped by 8 lines.
    assert_eq!(sps.resolution, VGA360);
    assert_eq!(p.resolution(), Some(VGA360));
    assert_eq!((p.temporal_id(), p.spatial_id()), (None, None));
}

#[test]
fn x264_fu_a_fragments_of_an_idr_picture() {
    let start = parse(FU_A_START);
    assert_eq!(start.packetization(), Packetization::FuA);
    let unit = start.nal_units().next().unwrap();
    assert_eq!(
        (unit.nal_type(), unit.nri(), unit.header()),
        (nal_type::IDR, 3, 0x65)
    );
    assert_eq!(
        start.fragment(),
        Some(Fragment {
            start: true,
            end: false
        })
    );
    assert!(start.is_keyframe() && start.is_start_of_frame());
    assert_eq!(start.resolution(), None);

    let middle = parse(FU_A_MIDDLE);
    assert_eq!(
        middle.fragment(),
        Some(Fragment {
            start: false,
            end: false
        })
    );
    assert!(middle.contains(nal_type::IDR));
    assert!(!middle.is_keyframe() && !middle.is_start_of_frame());

    for end in [FU_A_END, FU_A_SLICE2_END] {
        let end = parse(end);
        assert_eq!(
            end.fragment().map(|f| (f.start, f.end)),
            Some((false, true))
        );
        assert!(!end.is_keyframe() && !end.is_start_of_frame());
    }
}

#[test]
fn x264_single_nal_slices() {
    let first = parse(SINGLE_SLICE);
    assert_eq!(first.packetization(), Packetization::SingleNal);
    assert_eq!(first.nal_units().count(), 1);
    let unit = first.nal_units().next().unwrap();
    assert_eq!((unit.nal_type(), unit.nri()), (nal_type::SLICE, 2));
    assert_eq!(first.fragment(), None);
    assert!(first.is_start_of_frame() && !first.is_keyframe());
    // The picture's second slice starts at macroblock 480 (row 12 of 40-macroblock rows).
    let second = parse(SINGLE_SLICE2);
    assert!(!second.is_start_of_frame() && !second.is_keyframe());
}

#[test]
fn x264_sps_of_other_profiles() {
    let high = parse(STAP_A_HIGH).sps().unwrap().unwrap();
    assert_eq!((high.profile_idc, high.chroma_format_idc), (100, 1));
    assert_eq!(high.bit_depth_luma, 8);
    assert_eq!(high.resolution, VGA360);

    let interlaced = parse(STAP_A_444I).sps().unwrap().unwrap();
    assert_eq!(
        (interlaced.profile_idc, interlaced.chroma_format_idc),
        (244, 3)
    );
    assert!(!interlaced.frame_mbs_only);
    assert_eq!(interlaced.resolution, VGA360);

    let mono = parse(STAP_A_MONO).sps().unwrap().unwrap();
    assert_eq!((mono.profile_idc, mono.chroma_format_idc), (100, 0));
    assert_eq!(mono.resolution, VGA360);
}

/// A High-profile 1920x1080 SPS with both scaling list forms (one list cut short by a delta
/// that makes the next scale 0, one 8x8 list in full), pic_order_cnt_type 1 and cropping.
fn high_profile_sps_with_scaling_lists() -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(100, 8); // profile_idc
    w.bits(0, 8);
    w.bits(40, 8); // level 4.0
    w.ue(3); // sps_id
    w.ue(1); // chroma_format_idc 4:2:0
    w.ue(2); // bit_depth_luma_minus8: 10 bits
    w.ue(2);
    w.bit(false);
    w.bit(true); // seq_scaling_matrix_present_flag
    for i in 0..8 {
        match i {
            0 => {
                // Ends early: 8 + (-8) = 0 on the third entry.
                w.bit(true);
                w.se(2);
                w.se(-2);
                w.se(-8);
            }
            6 => {
                w.bit(true);
                for j in 0..64 {
                    w.se(if j % 2 == 0 { 1 } else { -1 });
                }
            }
            _ => w.bit(false),
        }
    }
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(1); // pic_order_cnt_type
    w.bit(false);
    w.se(-3);
    w.se(5);
    w.ue(2); // num_ref_frames_in_pic_order_cnt_cycle
    w.se(1);
    w.se(-7);
    w.ue(4); // max_num_ref_frames
    w.bit(false);
    w.ue(119); // 120 macroblocks: 1920
    w.ue(67); // 68 macroblocks: 1088
    w.bit(true); // frame_mbs_only_flag
    w.bit(true);
    w.bit(true); // frame_cropping_flag
    w.ue(0);
    w.ue(0);
    w.ue(0);
    w.ue(4); // 8 lines off the bottom
    w.bit(false); // no VUI
    w.finish()
}

#[test]
fn hand_written_high_profile_sps() {
    let sps = H264Sps::parse(&high_profile_sps_with_scaling_lists()).unwrap();
    assert_eq!(sps.profile_idc, 100);
    assert_eq!(sps.sps_id, 3);
    assert_eq!(sps.bit_depth_luma, 10);
    assert_eq!(sps.pic_order_cnt_type, 1);
    assert_eq!(sps.max_num_ref_frames, 4);
    assert_eq!(
        sps.resolution,
        Resolution {
            width: 1920,
            height: 1080
        }
    );
}

#[test]
fn emulation_prevention_inside_the_sps() {
    // profile_idc 0 and no constraint flags put 00 00 before level_idc 1, which the
    // encoder must escape as 00 00 03 01; escaped, the SPS reads the same.
    let mut w = BitWriter::default();
    w.bits(0, 8);
    w.bits(0, 8);
    w.bits(1, 8);
    w.ue(0);
    w.ue(0);
    w.ue(2); // pic_order_cnt_type 2
    w.ue(1);
    w.bit(false);
    w.ue(0); // 16 pixels wide
    w.ue(0);
    w.bit(true);
    w.bit(true);
    w.bit(false);
    w.bit(false);
    let rbsp = w.finish();
    let escaped = escape(&rbsp);
    assert!(escaped.len() > rbsp.len(), "the fixture must need escaping");
    let plain = H264Sps::parse(&rbsp).unwrap();
    assert_eq!(H264Sps::parse(&escaped).unwrap(), plain);
    assert_eq!(plain.level_idc, 1);
    assert_eq!(
        plain.resolution,
        Resolution {
            width: 16,
            height: 16
        }
    );
}

#[test]
fn sps_rejects_impossible_values() {
    // A crop wider than the picture.
    let mut w = BitWriter::default();
    w.bits(66, 8);
    w.bits(0, 16);
    w.ue(0);
    w.ue(0);
    w.ue(2);
    w.ue(1);
    w.bit(false);
    w.ue(0);
    w.ue(0);
    w.bit(true);
    w.bit(true);
    w.bit(true);
    w.ue(8);
    w.ue(0);
    w.ue(0);
    w.ue(0);
    assert_eq!(
        H264Sps::parse(&w.finish()),
        Err(CodecError::Malformed("H.264 SPS picture size"))
    );
    // pic_order_cnt_type 3.
    let mut w = BitWriter::default();
    w.bits(66, 8);
    w.bits(0, 16);
    w.ue(0);
    w.ue(0);
    w.ue(3);
    assert_eq!(
        H264Sps::parse(&w.finish()),
        Err(CodecError::Malformed("H.264 SPS"))
    );
    // Every prefix of real and hand-written parameter sets fails cleanly or parses.
    let high = high_profile_sps_with_scaling_lists();
    let real = parse(STAP_A).nal_units().next().unwrap().body();
    for sps in [&high[..], real] {
        for len in 0..sps.len() {
            let _ = H264Sps::parse(&sps[..len]);
        }
        assert!(H264Sps::parse(&sps[..5]).is_err());
    }
}

#[test]
fn hand_written_stap_a_with_several_units() {
    // SPS-like, PPS-like and an IDR slice start.
    let stap = [
        0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68, 0x00, 0x03, 0x65, 0x88, 0x00,
    ];
    let p = H264Packet::parse(&stap[..]).unwrap();
    let types: Vec<u8> = p.nal_units().map(|u| u.nal_type()).collect();
    assert_eq!(types, [7, 8, 5]);
    assert_eq!(p.nal_units().nth(2).unwrap().body(), &[0x88, 0x00]);
    assert!(p.is_keyframe() && p.is_start_of_frame());
    // The SPS is cut short: the packet is fine, the SPS is not.
    assert!(matches!(p.sps(), Some(Err(CodecError::Truncated(_)))));
    assert_eq!(p.resolution(), None);
    // A STAP-A cut between units is a shorter STAP-A; cut anywhere else, it is an error.
    let real = rtp_payload(STAP_A);
    for (packet, boundaries) in [(&stap[..], [5, 8]), (real, [28, 34])] {
        for len in 0..packet.len() {
            let parsed = H264Packet::parse(&packet[..len]);
            assert_eq!(parsed.is_ok(), boundaries.contains(&len), "length {len}");
        }
    }
}

#[test]
fn rejects_unsupported_and_malformed_packets() {
    for (header, want) in [
        (25u8, CodecError::Unsupported("H.264 STAP-B")),
        (26, CodecError::Unsupported("H.264 MTAP16")),
        (27, CodecError::Unsupported("H.264 MTAP24")),
        (29, CodecError::Unsupported("H.264 FU-B")),
        (0, CodecError::Malformed("H.264 NAL unit type")),
        (30, CodecError::Malformed("H.264 NAL unit type")),
        (31, CodecError::Malformed("H.264 NAL unit type")),
    ] {
        let packet = [0x60 | header, 0x85, 0x00, 0x00];
        assert_eq!(H264Packet::parse(&packet[..]).unwrap_err(), want);
    }
    let cases: [(&[u8], CodecError); 7] = [
        (&[], CodecError::Truncated("H.264 NAL unit header")),
        (&[0x7c], CodecError::Truncated("H.264 FU header")),
        (
            &[0x7c, 0xc5, 0x00],
            CodecError::Malformed("H.264 FU-A with both S and E"),
        ),
        (
            &[0x7c, 0x98, 0x00],
            CodecError::Malformed("H.264 FU-A fragmented NAL unit type"),
        ),
        (
            &[0x78],
            CodecError::Truncated("H.264 STAP-A without NAL units"),
        ),
        (
            &[0x78, 0x00, 0x00, 0x67],
            CodecError::Malformed("H.264 STAP-A empty NAL unit"),
        ),
        (
            &[0x78, 0x00, 0x01, 0x7c],
            CodecError::Malformed("H.264 STAP-A aggregated NAL unit type"),
        ),
    ];
    for (packet, want) in cases {
        assert_eq!(
            H264Packet::parse(packet).unwrap_err(),
            want,
            "{packet:02x?}"
        );
    }
}

#[test]
fn every_prefix_of_every_vector_is_handled() {
    for rtp in [
        STAP_A,
        FU_A_START,
        FU_A_END,
        FU_A_SLICE2_END,
        SINGLE_SLICE,
        STAP_A_444I,
    ] {
        let payload = rtp_payload(rtp);
        for len in 0..payload.len().min(80) {
            if let Ok(p) = H264Packet::parse(&payload[..len]) {
                let _ = (p.is_keyframe(), p.is_start_of_frame(), p.resolution());
                assert!(p.nal_units().count() >= 1);
            }
        }
    }
}

#[test]
fn the_second_slice_of_an_idr_picture_is_not_a_keyframe() {
    // An IDR FU-A start whose slice begins at macroblock 480 (first_mb_in_slice coded as
    // 8 zeros, a one and 8 bits), like x264's second slice of a keyframe.
    let p = H264Packet::parse(&[0x7c, 0x85, 0x00, 0xf0, 0x88][..]).unwrap();
    assert!(p.contains(nal_type::IDR));
    assert!(!p.is_start_of_frame() && !p.is_keyframe());
}
