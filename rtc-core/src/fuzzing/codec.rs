//! Fuzz harnesses for the codec payload descriptors: each parses the input as one codec's
//! RTP payload, reads every accessor, and checks the invariants a forwarding decision relies
//! on: the parts of the packet add up to its length, a keyframe starts a frame, and a
//! PictureID or TL0PICIDX rewrite reads back (at the field's width) and touches nothing else.

use crate::codec::av1::{Av1Packet, Av1SequenceHeader};
use crate::codec::dependency_descriptor::{DependencyDescriptor, DependencyStructure};
use crate::codec::h264::{H264Packet, H264Sps, Packetization, nal_type};
use crate::codec::vp8::Vp8Packet;
use crate::codec::vp9::{Vp9FrameHeader, Vp9Packet};
use crate::codec::{CodecDescriptor, PictureId};

/// Largest input rewritten in the stack copy.
const COPY_LEN: usize = 1500;

/// Reads the summary every view answers and checks that a keyframe starts a frame.
fn read_summary(packet: &impl CodecDescriptor) {
    if packet.is_keyframe() {
        assert!(packet.is_start_of_frame());
    }
    if let Some(size) = packet.resolution() {
        assert!(size.width > 0 && size.height > 0);
    }
    let _ = (packet.temporal_id(), packet.spatial_id());
}

/// Rewrites the PictureID and TL0PICIDX of a copy of `data` through `rewrite` and checks
/// that they read back and that only their bytes changed.
fn check_rewrite(
    data: &[u8],
    picture_id: Option<PictureId>,
    tl0_pic_idx: Option<u8>,
    rewrite: impl FnOnce(&mut [u8]) -> (Option<PictureId>, Option<u8>),
) {
    let mut copy = [0u8; COPY_LEN];
    let Some(dst) = copy.get_mut(..data.len()) else {
        return;
    };
    dst.copy_from_slice(data);
    let (new_id, new_tl0) = rewrite(dst);
    let expected = picture_id.map(|id| match id {
        PictureId::Short(_) => PictureId::Short(0x5a),
        PictureId::Long(_) => PictureId::Long(0x5a5a),
    });
    assert_eq!(new_id, expected, "a rewrite keeps the PictureID's width");
    assert_eq!(new_tl0, tl0_pic_idx.map(|_| 0xa5));
    let changed = data.iter().zip(dst.iter()).filter(|(a, b)| a != b).count();
    assert!(changed <= 3);
}

/// Feeds arbitrary bytes through the VP8 descriptor view.
pub fn vp8(data: &[u8]) {
    let Ok(packet) = Vp8Packet::parse(data) else {
        return;
    };
    read_summary(&packet);
    assert_eq!(packet.descriptor_len() + packet.payload().len(), data.len());
    assert!(!packet.payload().is_empty());
    let _ = (
        packet.is_non_reference(),
        packet.partition_index(),
        packet.tid(),
        packet.is_layer_sync(),
        packet.key_idx(),
        packet.frame_tag(),
        packet.keyframe_size(),
    );
    if packet.is_keyframe() {
        assert!(packet.frame_tag().is_some_and(|tag| tag.keyframe));
    }
    let (picture_id, tl0) = (packet.picture_id(), packet.tl0_pic_idx());
    check_rewrite(data, picture_id, tl0, |dst| {
        let mut copy = Vp8Packet::parse(dst).unwrap_or_else(|_| unreachable!());
        copy.set_picture_id(0x5a5a);
        copy.set_tl0_pic_idx(0xa5);
        let reparsed = Vp8Packet::parse(copy.as_bytes()).unwrap_or_else(|_| unreachable!());
        assert_eq!(reparsed.descriptor_len(), packet.descriptor_len());
        assert_eq!(reparsed.tid(), packet.tid());
        assert_eq!(reparsed.key_idx(), packet.key_idx());
        (reparsed.picture_id(), reparsed.tl0_pic_idx())
    });
}

/// Feeds arbitrary bytes through the H.264 packet view, and through the SPS parser as if
/// they were an SPS body.
pub fn h264(data: &[u8]) {
    if let Ok(sps) = H264Sps::parse(data) {
        assert!(sps.resolution.width >= 1 && sps.resolution.height >= 1);
        assert!(sps.chroma_format_idc <= 3 && sps.pic_order_cnt_type <= 2);
    }
    let Ok(packet) = H264Packet::parse(data) else {
        return;
    };
    read_summary(&packet);
    let mut units = 0usize;
    let mut covered = 0usize;
    for unit in packet.nal_units() {
        assert!(matches!(unit.nal_type(), 1..=23));
        units += 1;
        covered += 1 + unit.body().len();
        if unit.nal_type() == nal_type::SPS && unit.fragment().is_none() {
            let _ = H264Sps::parse(unit.body());
        }
    }
    match packet.packetization() {
        Packetization::SingleNal => assert_eq!((units, covered), (1, data.len())),
        Packetization::FuA => {
            assert_eq!((units, covered + 1), (1, data.len()));
            assert!(packet.fragment().is_some_and(|f| !(f.start && f.end)));
        }
        // One STAP-A header, then a 2-byte size before each unit.
        Packetization::StapA => assert_eq!(1 + covered + 2 * units, data.len()),
    }
    if packet.is_keyframe() {
        assert!(packet.contains(nal_type::SPS) || packet.contains(nal_type::IDR));
    }
    if let Some(Ok(sps)) = packet.sps() {
        assert_eq!(packet.resolution(), Some(sps.resolution));
    }
}

/// Feeds arbitrary bytes through the VP9 descriptor view and the uncompressed header reader.
pub fn vp9(data: &[u8]) {
    if let Ok(header) = Vp9FrameHeader::parse(data) {
        assert!(header.profile <= 3);
        assert!(header.keyframe || header.resolution.is_none());
    }
    let Ok(packet) = Vp9Packet::parse(data) else {
        return;
    };
    read_summary(&packet);
    assert_eq!(packet.descriptor_len() + packet.payload().len(), data.len());
    assert!(packet.p_diffs().count() <= 3);
    if packet.tl0_pic_idx().is_some() {
        assert!(!packet.is_flexible() && packet.tid().is_some());
    }
    let _ = (
        packet.is_end_of_frame(),
        packet.is_not_upswitch_reference(),
        packet.is_switching_up(),
        packet.is_inter_layer_dependent(),
        packet.frame_header(),
    );
    if let Some(ss) = packet.scalability_structure() {
        let sizes = ss.resolutions().count();
        assert!(sizes == 0 || sizes == usize::from(ss.spatial_layers()));
        assert_eq!(
            ss.picture_group().count(),
            usize::from(ss.picture_group_len())
        );
        assert!(ss.picture_group().all(|entry| entry.p_diffs.len() <= 3));
    }
    let (picture_id, tl0) = (packet.picture_id(), packet.tl0_pic_idx());
    check_rewrite(data, picture_id, tl0, |dst| {
        let mut copy = Vp9Packet::parse(dst).unwrap_or_else(|_| unreachable!());
        copy.set_picture_id(0x5a5a);
        copy.set_tl0_pic_idx(0xa5);
        let reparsed = Vp9Packet::parse(copy.as_bytes()).unwrap_or_else(|_| unreachable!());
        assert_eq!(reparsed.descriptor_len(), packet.descriptor_len());
        assert_eq!(
            (reparsed.tid(), reparsed.sid()),
            (packet.tid(), packet.sid())
        );
        assert!(reparsed.p_diffs().eq(packet.p_diffs()));
        (reparsed.picture_id(), reparsed.tl0_pic_idx())
    });
}

/// Feeds arbitrary bytes through the AV1 packet view, and through the sequence header
/// reader as if they were a sequence header's payload.
pub fn av1(data: &[u8]) {
    if let Ok(seq) = Av1SequenceHeader::parse(data) {
        assert!(seq.operating_points >= 1 && seq.operating_points <= 32);
        assert!(seq.max_frame_size.width >= 1 && seq.max_frame_size.height >= 1);
    }
    let Ok(packet) = Av1Packet::parse(data) else {
        return;
    };
    read_summary(&packet);
    let mut covered = 0usize;
    let mut count = 0usize;
    for element in packet.elements() {
        assert!(!element.data().is_empty());
        assert_eq!(element.header().is_none(), element.is_continuation());
        covered += element.data().len();
        count += 1;
    }
    assert!(count >= 1 && covered < data.len());
    let w = usize::from(packet.element_count_field());
    assert!(w == 0 || w == count);
    if w == 1 {
        // The only element is the rest of the packet, without a length.
        assert_eq!(covered + 1, data.len());
    }
    if packet.is_keyframe() {
        assert!(!packet.starts_with_continuation());
    }
    let _ = packet.sequence_header();
}

/// Feeds arbitrary bytes through the Dependency Descriptor reader: first with no structure
/// known, then against a structure that the input itself carries if it reads, then against
/// the structure found, which must give the same frame description.
pub fn dependency_descriptor(data: &[u8]) {
    let mut structure: Option<DependencyStructure> = None;
    let Ok(first) = DependencyDescriptor::parse(data, &mut structure) else {
        assert!(
            structure.is_none(),
            "a failed parse keeps the old structure"
        );
        return;
    };
    assert_eq!(first.structure_attached, structure.is_some());
    let Some(found) = structure.clone() else {
        assert!(first.layer.is_none() && first.dtis.is_none());
        return;
    };
    let (sid, tid) = first.layer.unwrap_or_else(|| unreachable!());
    assert!(sid < found.spatial_layers());
    assert_eq!(
        found
            .template_index(first.template_id)
            .and_then(|i| found.template_layer(i)),
        Some((sid, tid))
    );
    assert!(found.templates() >= 1 && found.templates() <= 64);
    assert!(found.decode_targets() >= 1 && found.decode_targets() <= 32);
    assert!(found.chains() <= found.decode_targets());
    for dt in 0..found.decode_targets() {
        let (max_sid, _) = found
            .decode_target_layer(dt)
            .unwrap_or_else(|| unreachable!());
        assert!(max_sid < found.spatial_layers());
    }
    let again = DependencyDescriptor::parse(data, &mut structure);
    assert_eq!(again, Ok(first));
    assert_eq!(structure, Some(found));
}
