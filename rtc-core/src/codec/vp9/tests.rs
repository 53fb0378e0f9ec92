//! VP9 descriptor tests: packets captured from libvpx-vp9 through FFmpeg's packetizer (see
//! `tests/vectors/README.md`), which sends only the B and E bits, then hand-written
//! descriptors for flexible mode, 15-bit PictureIDs, layer indices and a full scalability
//! structure, and every truncation.

use super::*;
use crate::codec::tests::rtp_payload;

const KEYFRAME_FIRST: &[u8] = include_bytes!("../../../tests/vectors/vp9/keyframe_first.rtp");
const KEYFRAME_LAST: &[u8] = include_bytes!("../../../tests/vectors/vp9/keyframe_last.rtp");
const DELTA: &[u8] = include_bytes!("../../../tests/vectors/vp9/delta.rtp");
const DELTA_LAST: &[u8] = include_bytes!("../../../tests/vectors/vp9/delta_last.rtp");

fn res(width: u16, height: u16) -> Resolution {
    Resolution { width, height }
}

#[test]
fn libvpx_keyframe_through_ffmpeg() {
    let p = Vp9Packet::parse(rtp_payload(KEYFRAME_FIRST)).unwrap();
    assert_eq!(p.descriptor_len(), 1);
    assert!(p.is_beginning_of_frame() && !p.is_end_of_frame());
    assert!(!p.is_inter_predicted() && !p.is_flexible());
    assert_eq!(
        (p.picture_id(), p.tid(), p.sid(), p.tl0_pic_idx()),
        (None, None, None, None)
    );
    assert!(p.scalability_structure().is_none());
    let header = p.frame_header().unwrap();
    assert_eq!(header.profile, 0);
    assert!(header.keyframe && header.show_frame);
    assert_eq!(header.resolution, Some(res(640, 360)));
    assert!(p.is_keyframe() && p.is_start_of_frame());
    assert_eq!(p.resolution(), Some(res(640, 360)));

    let last = Vp9Packet::parse(rtp_payload(KEYFRAME_LAST)).unwrap();
    assert!(last.is_end_of_frame() && !last.is_beginning_of_frame());
    assert!(!last.is_keyframe() && last.frame_header().is_none());
}

#[test]
fn libvpx_delta_frames_are_not_keyframes_although_p_is_clear() {
    let p = Vp9Packet::parse(rtp_payload(DELTA)).unwrap();
    assert!(p.is_beginning_of_frame() && p.is_end_of_frame());
    assert!(!p.is_inter_predicted(), "FFmpeg never sets P");
    let header = p.frame_header().unwrap();
    assert!(!header.keyframe && header.resolution.is_none());
    assert!(p.is_start_of_frame() && !p.is_keyframe());
    assert_eq!(p.resolution(), None);
    let last = Vp9Packet::parse(rtp_payload(DELTA_LAST)).unwrap();
    assert!(last.is_end_of_frame() && !last.is_start_of_frame());
}

/// Flexible mode: I P L F B V, PictureID 0x1234 (15 bits), TID 2 U SID 1 D, P_DIFFs 3 and
/// 5, and an SS of three spatial layers with sizes and a two-picture group; then the first
/// byte of a non-key frame.
const FLEXIBLE: [u8; 28] = [
    0xfa, 0x92, 0x34, 0x53, 0x07, 0x0a, 0x58, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x05,
    0x00, 0x02, 0xd0, 0x02, 0x04, 0x04, 0x38, 0x01, 0x02, 0x86, 0x00, 0x00,
];

/// Non-flexible mode: I L B E, PictureID 5 (7 bits), TID 1 SID 0, TL0PICIDX 0x33, then a
/// keyframe's uncompressed header (profile 0, 8-bit, 320x180).
const NON_FLEXIBLE: [u8; 14] = [
    0xac, 0x05, 0x20, 0x33, 0x82, 0x49, 0x83, 0x42, 0x00, 0x13, 0xf0, 0x0b, 0x30, 0x00,
];

#[test]
fn flexible_mode_with_scalability_structure() {
    let p = Vp9Packet::parse(&FLEXIBLE[..]).unwrap();
    assert_eq!(p.descriptor_len(), 25);
    assert!(p.is_flexible() && p.is_inter_predicted());
    assert_eq!(p.picture_id(), Some(PictureId::Long(0x1234)));
    assert_eq!((p.tid(), p.sid()), (Some(2), Some(1)));
    assert_eq!((p.temporal_id(), p.spatial_id()), (Some(2), Some(1)));
    assert!(p.is_switching_up() && p.is_inter_layer_dependent());
    assert_eq!(p.tl0_pic_idx(), None);
    assert_eq!(p.p_diffs().collect::<Vec<_>>(), [3, 5]);
    let ss = p.scalability_structure().unwrap();
    assert_eq!(ss.spatial_layers(), 3);
    assert_eq!(
        ss.resolutions().collect::<Vec<_>>(),
        [res(320, 180), res(640, 360), res(1280, 720)]
    );
    assert_eq!(ss.picture_group_len(), 2);
    let group: Vec<_> = ss.picture_group().collect();
    assert_eq!(
        group,
        [
            Vp9PictureGroupEntry {
                tid: 0,
                switching_up: false,
                p_diffs: &[4]
            },
            Vp9PictureGroupEntry {
                tid: 1,
                switching_up: true,
                p_diffs: &[1, 2]
            },
        ]
    );
    // The packet's own layer (SID 1) size comes from the SS.
    assert_eq!(p.resolution(), Some(res(640, 360)));
    assert!(p.is_start_of_frame() && !p.is_keyframe());
    assert_eq!(p.payload(), &FLEXIBLE[25..]);

    let mut copy = FLEXIBLE;
    let mut p = Vp9Packet::parse(&mut copy[..]).unwrap();
    p.set_picture_id(0xfedc);
    p.set_tl0_pic_idx(9); // flexible mode has none
    assert_eq!(p.picture_id(), Some(PictureId::Long(0x7edc)));
    assert_eq!(p.tl0_pic_idx(), None);
    assert_eq!(copy[3..], FLEXIBLE[3..]);
}

#[test]
fn non_flexible_mode_keyframe() {
    let p = Vp9Packet::parse(&NON_FLEXIBLE[..]).unwrap();
    assert_eq!(p.descriptor_len(), 4);
    assert_eq!(p.picture_id(), Some(PictureId::Short(5)));
    assert_eq!(
        (p.tid(), p.sid(), p.tl0_pic_idx()),
        (Some(1), Some(0), Some(0x33))
    );
    assert_eq!(p.p_diffs().count(), 0);
    assert!(p.is_keyframe());
    assert_eq!(p.resolution(), Some(res(320, 180)));

    let mut copy = NON_FLEXIBLE;
    let mut p = Vp9Packet::parse(&mut copy[..]).unwrap();
    p.set_picture_id(0x0181);
    p.set_tl0_pic_idx(0x34);
    assert_eq!(p.picture_id(), Some(PictureId::Short(1)));
    assert_eq!(p.tl0_pic_idx(), Some(0x34));
    assert_eq!(copy[4..], NON_FLEXIBLE[4..]);

    // The same descriptor for spatial layer 1 is not a keyframe, nor is a P frame.
    let mut upper = NON_FLEXIBLE;
    upper[2] = 0x22;
    assert!(!Vp9Packet::parse(&upper[..]).unwrap().is_keyframe());
    let mut predicted = NON_FLEXIBLE;
    predicted[0] |= P_BIT;
    assert!(!Vp9Packet::parse(&predicted[..]).unwrap().is_keyframe());
}

#[test]
fn rejects_long_reference_lists_and_truncation() {
    // F P with four P_DIFFs all saying another follows.
    let long = [0x58, 0x03, 0x03, 0x03, 0x03, 0x00];
    assert_eq!(
        Vp9Packet::parse(&long[..]).unwrap_err(),
        CodecError::Malformed("VP9 P_DIFF list longer than 3")
    );
    for fixture in [
        &FLEXIBLE[..],
        &NON_FLEXIBLE[..],
        rtp_payload(KEYFRAME_FIRST),
    ] {
        let needed = Vp9Packet::parse(fixture).unwrap().descriptor_len() + 1;
        for len in 0..needed {
            assert!(
                matches!(
                    Vp9Packet::parse(&fixture[..len]),
                    Err(CodecError::Truncated(_))
                ),
                "length {len}"
            );
        }
        for len in needed..fixture.len().min(64) {
            let p = Vp9Packet::parse(&fixture[..len]).unwrap();
            let _ = (p.is_keyframe(), p.resolution(), p.frame_header());
        }
    }
    // A keyframe header cut short: the descriptor decides, the size is unknown.
    let p = Vp9Packet::parse(&NON_FLEXIBLE[..8]).unwrap();
    assert!(p.is_keyframe());
    assert_eq!(p.resolution(), None);
}

#[test]
fn uncompressed_header_variants() {
    assert_eq!(
        Vp9FrameHeader::parse(&[0x42]).unwrap_err(),
        CodecError::Malformed("VP9 frame marker")
    );
    assert_eq!(
        Vp9FrameHeader::parse(&[0x82, 0x49, 0x83, 0x43, 0, 0, 0, 0, 0]).unwrap_err(),
        CodecError::Malformed("VP9 frame sync code")
    );
    // show_existing_frame: never a keyframe.
    let h = Vp9FrameHeader::parse(&[0x88]).unwrap();
    assert!(!h.keyframe && h.show_frame);
    // Profile 1 (4:4:4), sRGB: one reserved bit before the size; 16x16.
    // 10 1 0 0 0 1 0 | sync | 111 0 w-1=15 h-1=15
    let h = Vp9FrameHeader::parse(&[0xa2, 0x49, 0x83, 0x42, 0xe0, 0x00, 0xf0, 0x00, 0xf0]).unwrap();
    assert_eq!((h.profile, h.keyframe), (1, true));
    assert_eq!(h.resolution, Some(res(16, 16)));
}
