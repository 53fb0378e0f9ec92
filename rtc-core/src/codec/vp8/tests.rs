//! VP8 descriptor tests: packets captured from libvpx (see `tests/vectors/README.md`), then
//! hand-written descriptors for the fields FFmpeg never sends (7-bit PictureID, TL0PICIDX,
//! TID/Y, KEYIDX) and every truncation.

use super::*;
use crate::rtp::RtpPacket;

const KEYFRAME_FIRST: &[u8] = include_bytes!("../../../tests/vectors/vp8/keyframe_first.rtp");
const KEYFRAME_LAST: &[u8] = include_bytes!("../../../tests/vectors/vp8/keyframe_last.rtp");
const DELTA: &[u8] = include_bytes!("../../../tests/vectors/vp8/delta.rtp");
const DELTA_LAST: &[u8] = include_bytes!("../../../tests/vectors/vp8/delta_last.rtp");

fn payload(rtp: &[u8]) -> &[u8] {
    let packet = RtpPacket::parse(rtp).unwrap();
    let start = packet.header_len();
    &rtp[start..start + packet.payload().len()]
}

#[test]
fn libvpx_keyframe_first_packet() {
    let p = Vp8Packet::parse(payload(KEYFRAME_FIRST)).unwrap();
    // FFmpeg writes X=1 S=1, I=1 and a 15-bit PictureID counting frames from 0.
    assert_eq!(p.descriptor_len(), 4);
    assert_eq!(p.picture_id(), Some(PictureId::Long(0)));
    assert!(p.is_start_of_partition() && p.partition_index() == 0);
    assert!(!p.is_non_reference());
    assert_eq!((p.tl0_pic_idx(), p.tid(), p.key_idx()), (None, None, None));
    assert!(p.is_start_of_frame() && p.is_keyframe());
    let tag = p.frame_tag().unwrap();
    assert!(tag.keyframe && tag.show_frame);
    assert_eq!(tag.version, 0);
    assert!(tag.first_partition_size > 0);
    let size = p.keyframe_size().unwrap();
    assert_eq!(
        size.resolution,
        Resolution {
            width: 640,
            height: 360
        }
    );
    assert_eq!((size.horizontal_scale, size.vertical_scale), (0, 0));
    assert_eq!(p.resolution(), Some(size.resolution));
    assert_eq!(p.spatial_id(), None);
}

#[test]
fn libvpx_continuation_and_delta_packets() {
    let last = Vp8Packet::parse(payload(KEYFRAME_LAST)).unwrap();
    assert_eq!(last.picture_id(), Some(PictureId::Long(0)));
    assert!(!last.is_start_of_frame() && !last.is_keyframe());
    assert_eq!((last.frame_tag(), last.resolution()), (None, None));

    let delta = Vp8Packet::parse(payload(DELTA)).unwrap();
    assert_eq!(delta.picture_id(), Some(PictureId::Long(1)));
    assert!(delta.is_start_of_frame() && !delta.is_keyframe());
    assert!(!delta.frame_tag().unwrap().keyframe);
    assert_eq!(delta.resolution(), None);

    let later = Vp8Packet::parse(payload(DELTA_LAST)).unwrap();
    assert_eq!(later.picture_id(), Some(PictureId::Long(9)));
    assert!(!later.is_start_of_frame());
}

#[test]
fn rewrites_15_bit_picture_id_in_place() {
    let mut bytes = payload(KEYFRAME_FIRST).to_vec();
    let original = bytes.clone();
    let mut p = Vp8Packet::parse(&mut bytes[..]).unwrap();
    p.set_picture_id(0x1234);
    assert_eq!(p.picture_id(), Some(PictureId::Long(0x1234)));
    // Wider values wrap to 15 bits; the M bit stays.
    p.set_picture_id(0xffff);
    assert_eq!(p.picture_id(), Some(PictureId::Long(0x7fff)));
    p.set_tl0_pic_idx(7); // no TL0PICIDX field: nothing changes
    assert_eq!(p.tl0_pic_idx(), None);
    assert_eq!(&bytes[..2], &original[..2]);
    assert_eq!(&bytes[4..], &original[4..]);
    assert_eq!(&bytes[2..4], &[0xff, 0xff]);
}

/// X S, I L T K, 7-bit PictureID 5, TL0PICIDX 0x11, TID 2 Y KEYIDX 3, then a delta frame
/// tag (P=1, show_frame).
const ALL_FIELDS: [u8; 9] = [0x90, 0xf0, 0x05, 0x11, 0b1010_0011, 0x31, 0x00, 0x00, 0xaa];

#[test]
fn every_extended_field() {
    let p = Vp8Packet::parse(&ALL_FIELDS[..]).unwrap();
    assert_eq!(p.descriptor_len(), 5);
    assert_eq!(p.picture_id(), Some(PictureId::Short(5)));
    assert_eq!(p.tl0_pic_idx(), Some(0x11));
    assert_eq!(p.tid(), Some(2));
    assert_eq!(p.temporal_id(), Some(2));
    assert!(p.is_layer_sync());
    assert_eq!(p.key_idx(), Some(3));
    assert!(p.is_start_of_frame() && !p.is_keyframe());
    assert_eq!(p.payload(), &ALL_FIELDS[5..]);

    let mut copy = ALL_FIELDS;
    let mut p = Vp8Packet::parse(&mut copy[..]).unwrap();
    p.set_picture_id(0x1ff); // 7 bits kept
    p.set_tl0_pic_idx(0xfe);
    assert_eq!(p.picture_id(), Some(PictureId::Short(0x7f)));
    assert_eq!(p.tl0_pic_idx(), Some(0xfe));
    assert_eq!(p.tid(), Some(2));
    assert_eq!(p.key_idx(), Some(3));
    assert_eq!(copy[..2], ALL_FIELDS[..2]);
    assert_eq!(copy[4..], ALL_FIELDS[4..]);
}

#[test]
fn key_idx_without_tid_and_minimal_descriptor() {
    // K alone: the TID/Y/KEYIDX byte is present but TID is not meaningful.
    let p = Vp8Packet::parse(&[0x80, 0x10, 0xdf, 0x00][..]).unwrap();
    assert_eq!((p.tid(), p.key_idx()), (None, Some(0x1f)));
    assert!(!p.is_layer_sync());
    // No X: one descriptor byte; N set, partition 3, not a frame start.
    let p = Vp8Packet::parse(&[0x23, 0x00][..]).unwrap();
    assert_eq!(p.descriptor_len(), 1);
    assert!(p.is_non_reference());
    assert_eq!(p.partition_index(), 3);
    assert!(!p.is_start_of_frame());
    assert_eq!(p.picture_id(), None);
    // S=1 PID=0 keyframe whose start code is damaged: a keyframe of unknown size.
    let mut damaged = payload(KEYFRAME_FIRST).to_vec();
    damaged[7] = 0;
    let p = Vp8Packet::parse(&damaged[..]).unwrap();
    assert!(p.is_keyframe());
    assert_eq!(p.resolution(), None);
    // A keyframe announcing 0 pixels wide (found by mutating the corpus): size unknown.
    let zero = [
        0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x00, 0x68, 0x01,
    ];
    let p = Vp8Packet::parse(&zero[..]).unwrap();
    assert!(p.is_keyframe());
    assert_eq!(p.keyframe_size(), None);
}

#[test]
fn truncated_descriptors_are_errors() {
    for fixture in [&ALL_FIELDS[..], payload(KEYFRAME_FIRST)] {
        let needed = Vp8Packet::parse(fixture).unwrap().descriptor_len() + 1;
        for len in 0..needed {
            assert!(
                matches!(
                    Vp8Packet::parse(&fixture[..len]),
                    Err(CodecError::Truncated(_))
                ),
                "length {len}"
            );
        }
        for len in needed..fixture.len().min(64) {
            let p = Vp8Packet::parse(&fixture[..len]).unwrap();
            // A keyframe's size needs 10 payload bytes; shorter, it is simply unknown.
            let _ = (p.resolution(), p.frame_tag(), p.picture_id());
        }
    }
}
