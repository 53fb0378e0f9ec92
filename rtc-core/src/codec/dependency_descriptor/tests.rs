//! Dependency Descriptor tests on hand-written extensions (no encoder available here sends
//! one): an L1T3 structure with chains and resolutions and the frames that follow it, an
//! L2T1 structure, custom DTIs/diffs/chains, the active decode target mask, stale template
//! ids and every truncation.

use super::*;
use crate::codec::tests::BitWriter;

fn res(width: u16, height: u16) -> Resolution {
    Resolution { width, height }
}

/// Mandatory fields.
fn mandatory(w: &mut BitWriter, start: bool, end: bool, template_id: u8, frame: u16) {
    w.bit(start);
    w.bit(end);
    w.bits(u64::from(template_id), 6);
    w.bits(u64::from(frame), 16);
}

/// A keyframe's descriptor with an L1T3 structure: templates T0 (key), T0, T1, T2 at offset
/// 5, three decode targets (up to T0, T1, T2), one chain, 640x360.
fn l1t3_keyframe() -> Vec<u8> {
    let mut w = BitWriter::default();
    mandatory(&mut w, true, false, 5, 100);
    w.bit(true); // template_dependency_structure_present_flag
    w.bit(false);
    w.bit(false);
    w.bit(false);
    w.bit(false);
    w.bits(5, 6); // template_id_offset
    w.bits(2, 5); // three decode targets
    for idc in [0, 1, 1, 3] {
        w.bits(idc, 2);
    }
    // DTIs (target 0, 1, 2) per template: S=2, R=3, D=1, -=0.
    for dtis in [[2, 2, 2], [3, 3, 3], [0, 3, 3], [0, 0, 1]] {
        for dti in dtis {
            w.bits(dti, 2);
        }
    }
    // Frame diffs: none, [3], [2], [1].
    for diffs in [&[][..], &[3], &[2], &[1]] {
        for &d in diffs {
            w.bit(true);
            w.bits(d - 1, 4);
        }
        w.bit(false);
    }
    w.ns(4, 1); // one chain
    for _ in 0..3 {
        w.ns(1, 0); // every target protected by chain 0 (no bits)
    }
    for diff in [0, 4, 2, 1] {
        w.bits(diff, 4);
    }
    w.bit(true); // resolutions_present_flag
    w.bits(639, 16);
    w.bits(359, 16);
    w.bytes()
}

#[test]
fn l1t3_structure_then_frames() {
    let mut structure = None;
    let key = DependencyDescriptor::parse(&l1t3_keyframe(), &mut structure).unwrap();
    assert!(key.start_of_frame && !key.end_of_frame);
    assert_eq!((key.template_id, key.frame_number), (5, 100));
    assert!(key.structure_attached);
    assert_eq!(key.active_decode_targets, Some(0b111));
    assert_eq!(key.layer, Some((0, 0)));
    assert_eq!(key.dti(0), Some(Dti::Switch));
    assert_eq!(key.resolution, Some(res(640, 360)));

    let s = structure.clone().unwrap();
    assert_eq!((s.decode_targets(), s.templates(), s.chains()), (3, 4, 1));
    assert_eq!((s.template_id_offset(), s.spatial_layers()), (5, 1));
    assert_eq!(s.template_layer(3), Some((0, 2)));
    assert_eq!(s.template_layer(4), None);
    assert_eq!(s.template_dti(2, 0), Some(Dti::NotPresent));
    assert_eq!(s.template_dti(3, 2), Some(Dti::Discardable));
    assert_eq!(s.template_dti(0, 3), None);
    assert_eq!(
        (0..3)
            .map(|dt| s.decode_target_layer(dt))
            .collect::<Vec<_>>(),
        [Some((0, 0)), Some((0, 1)), Some((0, 2))]
    );
    assert_eq!(s.resolution(0), Some(res(640, 360)));
    assert_eq!(s.resolution(1), None);

    // Later frames carry only the mandatory fields: template 8 (index 3) is T2.
    let mut w = BitWriter::default();
    mandatory(&mut w, true, true, 8, 101);
    let t2 = DependencyDescriptor::parse(&w.bytes(), &mut structure).unwrap();
    assert_eq!((t2.spatial_id(), t2.temporal_id()), (Some(0), Some(2)));
    assert_eq!(t2.dti(2), Some(Dti::Discardable));
    assert_eq!(t2.dti(0), Some(Dti::NotPresent));
    assert!(!t2.structure_attached && t2.end_of_frame);
    assert_eq!(t2.active_decode_targets, None);
    assert_eq!(t2.resolution, Some(res(640, 360)));
    assert_eq!(structure.as_ref(), Some(&s));

    // Template id 9 names index 4, which the structure does not have.
    let mut w = BitWriter::default();
    mandatory(&mut w, true, true, 9, 102);
    assert_eq!(
        DependencyDescriptor::parse(&w.bytes(), &mut structure).unwrap_err(),
        CodecError::Malformed("DD template id not in the structure")
    );
}

#[test]
fn custom_fields_and_active_decode_targets() {
    let mut structure = None;
    DependencyDescriptor::parse(&l1t3_keyframe(), &mut structure).unwrap();
    let mut w = BitWriter::default();
    mandatory(&mut w, false, true, 6, 7);
    w.bit(false);
    w.bit(true); // active_decode_targets_present_flag
    w.bit(true); // custom_dtis_flag
    w.bit(true); // custom_fdiffs_flag
    w.bit(true); // custom_chains_flag
    w.bits(0b011, 3); // targets 0 and 1 active
    for dti in [3, 2, 0] {
        w.bits(dti, 2);
    }
    w.bits(1, 2); // a 4-bit diff
    w.bits(0, 4);
    w.bits(3, 2); // a 12-bit diff
    w.bits(0x123, 12);
    w.bits(0, 2);
    w.bits(0xab, 8); // the one chain's diff
    let dd = DependencyDescriptor::parse(&w.bytes(), &mut structure).unwrap();
    assert_eq!(dd.active_decode_targets, Some(0b011));
    assert_eq!(dd.layer, Some((0, 0)));
    assert_eq!(
        (dd.dti(0), dd.dti(1), dd.dti(2)),
        (
            Some(Dti::Required),
            Some(Dti::Switch),
            Some(Dti::NotPresent)
        )
    );
    assert!(!dd.start_of_frame && dd.end_of_frame);
}

#[test]
fn l2t1_structure_with_two_resolutions() {
    let mut w = BitWriter::default();
    mandatory(&mut w, true, true, 1, 0xffff);
    w.bits(0b10000, 5);
    w.bits(0, 6); // offset 0
    w.bits(1, 5); // two decode targets
    w.bits(2, 2); // S0T0 then S1T0
    w.bits(3, 2);
    for dtis in [[2, 2], [0, 2]] {
        for dti in dtis {
            w.bits(dti, 2);
        }
    }
    w.bit(false);
    w.bit(true);
    w.bits(0, 4);
    w.bit(false);
    w.ns(3, 0); // no chains
    w.bit(true);
    w.bits(319, 16);
    w.bits(179, 16);
    w.bits(639, 16);
    w.bits(359, 16);
    let mut structure = None;
    let dd = DependencyDescriptor::parse(&w.bytes(), &mut structure).unwrap();
    assert_eq!(dd.layer, Some((1, 0)));
    assert_eq!(dd.resolution, Some(res(640, 360)));
    let s = structure.unwrap();
    assert_eq!((s.spatial_layers(), s.chains()), (2, 0));
    assert_eq!(s.decode_target_layer(0), Some((0, 0)));
    assert_eq!(s.decode_target_layer(1), Some((1, 0)));
    assert_eq!(s.resolution(0), Some(res(320, 180)));
}

#[test]
fn without_a_structure_only_mandatory_fields() {
    let mut structure = None;
    let dd = DependencyDescriptor::parse(&[0x85, 0x12, 0x34], &mut structure).unwrap();
    assert!(dd.start_of_frame && !dd.end_of_frame);
    assert_eq!((dd.template_id, dd.frame_number), (5, 0x1234));
    assert_eq!((dd.layer, dd.dtis, dd.resolution), (None, None, None));
    // Extended fields without a structure: the flags read, the rest cannot.
    let dd = DependencyDescriptor::parse(&[0x85, 0x12, 0x34, 0x38], &mut structure).unwrap();
    assert_eq!(dd.layer, None);
    assert!(structure.is_none());
}

#[test]
fn truncations_are_errors_and_keep_the_old_structure() {
    let key = l1t3_keyframe();
    let mut known = None;
    DependencyDescriptor::parse(&key, &mut known).unwrap();
    for len in 0..key.len() {
        let mut structure = known.clone();
        let parsed = DependencyDescriptor::parse(&key[..len], &mut structure);
        match len {
            3 => assert!(parsed.is_ok()),
            _ => assert!(parsed.is_err(), "length {len}"),
        }
        assert_eq!(
            structure, known,
            "a failed parse leaves the structure alone"
        );
    }
}

#[test]
fn too_many_templates_or_spatial_layers() {
    // 65 templates: 64 times "same layer", never the end.
    let mut w = BitWriter::default();
    mandatory(&mut w, true, true, 0, 0);
    w.bits(0b10000, 5);
    w.bits(0, 6);
    w.bits(0, 5);
    for _ in 0..64 {
        w.bits(0, 2);
    }
    w.bits(3, 2);
    assert_eq!(
        DependencyDescriptor::parse(&w.bytes(), &mut None).unwrap_err(),
        CodecError::Malformed("DD more than 64 templates")
    );
    let mut w = BitWriter::default();
    mandatory(&mut w, true, true, 0, 0);
    w.bits(0b10000, 5);
    w.bits(0, 6);
    w.bits(0, 5);
    for _ in 0..8 {
        w.bits(2, 2);
    }
    w.bits(3, 2);
    assert_eq!(
        DependencyDescriptor::parse(&w.bytes(), &mut None).unwrap_err(),
        CodecError::Unsupported("DD more than 8 spatial layers")
    );
}
