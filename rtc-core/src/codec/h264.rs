//! H.264 RTP payloads (RFC 6184) in the packetization modes browsers use, single NAL unit,
//! STAP-A and FU-A: [`H264Packet`] validates the packet's structure once, iterates its NAL
//! units (or its fragment) without allocating, and answers keyframe and start-of-frame
//! questions; [`H264Sps`] reads a sequence parameter set (H.264 section 7.3.2.1.1) far enough
//! to know the picture size. STAP-B, MTAP16, MTAP24 and FU-B (interleaved mode only) are
//! recognized and refused with [`CodecError::Unsupported`].
//!
//! H.264 has no frame boundaries in its RTP payload: the RTP marker bit ends an access unit,
//! and a packet starts one when it carries a parameter set, SEI or access unit delimiter, or
//! a slice whose `first_mb_in_slice` is 0 (a picture split into slices has several slice NAL
//! units, only the first of which starts at macroblock 0).

use super::bits::BitReader;
use super::{CodecDescriptor, CodecError, Resolution};

/// NAL unit types (H.264 table 7-1, RFC 6184 table 1) that matter here.
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture: a keyframe.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
    /// Single-time aggregation packet A.
    pub const STAP_A: u8 = 24;
    /// Single-time aggregation packet B (interleaved mode).
    pub const STAP_B: u8 = 25;
    /// Multi-time aggregation packet, 16-bit timestamp offsets.
    pub const MTAP16: u8 = 26;
    /// Multi-time aggregation packet, 24-bit timestamp offsets.
    pub const MTAP24: u8 = 27;
    /// Fragmentation unit A.
    pub const FU_A: u8 = 28;
    /// Fragmentation unit B (interleaved mode).
    pub const FU_B: u8 = 29;
}

const TYPE_MASK: u8 = 0x1f;
/// Length of a STAP-A NAL unit size field.
const STAP_SIZE_LEN: usize = 2;
/// FU indicator plus FU header.
const FU_HEADER_LEN: usize = 2;
const FU_START: u8 = 0x80;
const FU_END: u8 = 0x40;

/// How the packet carries its NAL units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packetization {
    /// One whole NAL unit (types 1..=23).
    SingleNal,
    /// Several whole NAL units, each after a 16-bit size.
    StapA,
    /// A fragment of one NAL unit.
    FuA,
}

/// Where an FU-A fragment sits in its NAL unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// S: the first fragment.
    pub start: bool,
    /// E: the last fragment.
    pub end: bool,
}

/// One NAL unit of a packet, or the fragment of one an FU-A carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NalUnit<'a> {
    /// The NAL unit header (for a fragment, rebuilt from the FU indicator and header).
    header: u8,
    /// What follows the header: the whole NAL unit payload, or the fragment's bytes.
    body: &'a [u8],
    fragment: Option<Fragment>,
}

impl<'a> NalUnit<'a> {
    /// The one-byte NAL unit header.
    pub fn header(&self) -> u8 {
        self.header
    }

    /// nal_unit_type, 1..=23.
    pub fn nal_type(&self) -> u8 {
        self.header & TYPE_MASK
    }

    /// nal_ref_idc: 0 means no other picture refers to this one.
    pub fn nri(&self) -> u8 {
        (self.header >> 5) & 0x03
    }

    /// The bytes after the header (still with emulation prevention bytes). For a fragment,
    /// only this packet's part.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// `Some` if this is an FU-A fragment rather than a whole NAL unit.
    pub fn fragment(&self) -> Option<Fragment> {
        self.fragment
    }

    /// Whether this packet has the start of the NAL unit (whole, or the first fragment),
    /// so the first bytes of its body are the start of its syntax.
    pub fn has_start(&self) -> bool {
        self.fragment.is_none_or(|f| f.start)
    }

    /// Whether this NAL unit (or its first fragment) begins an access unit: a parameter
    /// set, SEI or delimiter, or a slice starting at macroblock 0.
    fn starts_access_unit(&self) -> bool {
        if !self.has_start() {
            return false;
        }
        match self.nal_type() {
            nal_type::SEI | nal_type::SPS | nal_type::PPS | nal_type::AUD => true,
            // first_mb_in_slice is ue(v), first in the slice header: it is 0 exactly when
            // its first bit is 1 (an emulation prevention byte cannot come first).
            nal_type::SLICE | nal_type::IDR => self.body.first().is_some_and(|b| b & 0x80 != 0),
            _ => false,
        }
    }
}

/// A borrowed view over an H.264 RTP payload, validated once at construction.
#[derive(Debug, Clone)]
pub struct H264Packet<'a> {
    bytes: &'a [u8],
    packetization: Packetization,
}

impl<'a> H264Packet<'a> {
    /// Validates the packet: a known NAL unit type; for STAP-A, NAL units that fill the
    /// packet exactly, none empty; for FU-A, both headers, a fragmented type that is a
    /// plain NAL unit type, and not both S and E.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CodecError> {
        let header = *bytes
            .first()
            .ok_or(CodecError::Truncated("H.264 NAL unit header"))?;
        let packetization = match header & TYPE_MASK {
            1..=23 => Packetization::SingleNal,
            nal_type::STAP_A => {
                validate_stap_a(bytes.get(1..).unwrap_or(&[]))?;
                Packetization::StapA
            }
            nal_type::FU_A => {
                let fu = *bytes
                    .get(FU_HEADER_LEN - 1)
                    .ok_or(CodecError::Truncated("H.264 FU header"))?;
                if fu & FU_START != 0 && fu & FU_END != 0 {
                    return Err(CodecError::Malformed("H.264 FU-A with both S and E"));
                }
                if !matches!(fu & TYPE_MASK, 1..=23) {
                    return Err(CodecError::Malformed("H.264 FU-A fragmented NAL unit type"));
                }
                Packetization::FuA
            }
            nal_type::STAP_B => return Err(CodecError::Unsupported("H.264 STAP-B")),
            nal_type::MTAP16 => return Err(CodecError::Unsupported("H.264 MTAP16")),
            nal_type::MTAP24 => return Err(CodecError::Unsupported("H.264 MTAP24")),
            nal_type::FU_B => return Err(CodecError::Unsupported("H.264 FU-B")),
            _ => return Err(CodecError::Malformed("H.264 NAL unit type")),
        };
        Ok(Self {
            bytes,
            packetization,
        })
    }

    /// The payload as given.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The packetization mode of this packet.
    pub fn packetization(&self) -> Packetization {
        self.packetization
    }

    /// The NAL units in the packet: one for a single NAL unit packet, each aggregated unit
    /// of a STAP-A, or the one fragment of an FU-A.
    pub fn nal_units(&self) -> NalUnits<'a> {
        let (single, stap) = match self.packetization {
            Packetization::SingleNal | Packetization::FuA => (self.unit(), &[][..]),
            Packetization::StapA => (None, self.bytes.get(1..).unwrap_or(&[])),
        };
        NalUnits { single, stap }
    }

    fn unit(&self) -> Option<NalUnit<'a>> {
        let (&first, rest) = self.bytes.split_first()?;
        match self.packetization {
            Packetization::SingleNal => Some(NalUnit {
                header: first,
                body: rest,
                fragment: None,
            }),
            Packetization::FuA => {
                let (&fu, body) = rest.split_first()?;
                Some(NalUnit {
                    header: (first & !TYPE_MASK) | (fu & TYPE_MASK),
                    body,
                    fragment: Some(Fragment {
                        start: fu & FU_START != 0,
                        end: fu & FU_END != 0,
                    }),
                })
            }
            Packetization::StapA => None,
        }
    }

    /// The FU-A S/E bits, if this is a fragment.
    pub fn fragment(&self) -> Option<Fragment> {
        self.unit().and_then(|u| u.fragment)
    }

    /// Whether a NAL unit of this type is in the packet (a fragment counts).
    pub fn contains(&self, nal_type: u8) -> bool {
        self.nal_units().any(|u| u.nal_type() == nal_type)
    }

    /// The first whole SPS in the packet, parsed.
    pub fn sps(&self) -> Option<Result<H264Sps, CodecError>> {
        self.nal_units()
            .find(|u| u.nal_type() == nal_type::SPS && u.fragment.is_none())
            .map(|u| H264Sps::parse(u.body))
    }
}

/// Checks that `units` is a sequence of (16-bit size, NAL unit) filling it exactly.
fn validate_stap_a(mut units: &[u8]) -> Result<(), CodecError> {
    if units.is_empty() {
        return Err(CodecError::Truncated("H.264 STAP-A without NAL units"));
    }
    while !units.is_empty() {
        let Some((&[hi, lo], rest)) = units.split_first_chunk::<STAP_SIZE_LEN>() else {
            return Err(CodecError::Truncated("H.264 STAP-A NAL unit size"));
        };
        let size = usize::from(u16::from_be_bytes([hi, lo]));
        if size == 0 {
            return Err(CodecError::Malformed("H.264 STAP-A empty NAL unit"));
        }
        let unit = rest
            .get(..size)
            .ok_or(CodecError::Truncated("H.264 STAP-A NAL unit"))?;
        if !matches!(unit.first().map(|h| h & TYPE_MASK), Some(1..=23)) {
            return Err(CodecError::Malformed(
                "H.264 STAP-A aggregated NAL unit type",
            ));
        }
        units = rest.get(size..).unwrap_or(&[]);
    }
    Ok(())
}

/// Iterator over the NAL units of a packet (see [`H264Packet::nal_units`]).
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    single: Option<NalUnit<'a>>,
    /// The STAP-A units not yet returned (validated by `parse`).
    stap: &'a [u8],
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = NalUnit<'a>;

    fn next(&mut self) -> Option<NalUnit<'a>> {
        if let Some(unit) = self.single.take() {
            return Some(unit);
        }
        let (&[hi, lo], rest) = self.stap.split_first_chunk::<STAP_SIZE_LEN>()?;
        let size = usize::from(u16::from_be_bytes([hi, lo]));
        let (unit, rest) = rest.split_at_checked(size)?;
        self.stap = rest;
        let (&header, body) = unit.split_first()?;
        Some(NalUnit {
            header,
            body,
            fragment: None,
        })
    }
}

impl CodecDescriptor for H264Packet<'_> {
    /// The packet starts an access unit (see [`CodecDescriptor::is_start_of_frame`]) and
    /// carries an SPS or the start of an IDR slice. Browsers send SPS and PPS in a STAP-A
    /// (or alone) right before each IDR picture, so both that packet and the IDR's first
    /// packet qualify. The later fragments of an IDR slice do not, nor does a second slice
    /// of the IDR picture: a subscriber switched there would miss the picture's top.
    fn is_keyframe(&self) -> bool {
        self.is_start_of_frame()
            && self.nal_units().any(|u| {
                u.nal_type() == nal_type::SPS || (u.nal_type() == nal_type::IDR && u.has_start())
            })
    }

    /// The packet's first NAL unit begins an access unit (see the module comment).
    fn is_start_of_frame(&self) -> bool {
        self.nal_units()
            .next()
            .is_some_and(|u| u.starts_access_unit())
    }

    /// H.264 SVC is not supported: no temporal layer is signalled in the payload.
    fn temporal_id(&self) -> Option<u8> {
        None
    }

    fn spatial_id(&self) -> Option<u8> {
        None
    }

    /// The size an SPS in this packet announces.
    fn resolution(&self) -> Option<Resolution> {
        self.sps()?.ok().map(|sps| sps.resolution)
    }
}

/// The fields of a sequence parameter set up to the picture size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Sps {
    /// profile_idc (66 baseline, 77 main, 100 high, ...).
    pub profile_idc: u8,
    /// The constraint_set flags byte.
    pub constraint_flags: u8,
    /// level_idc (e.g. 31 for level 3.1).
    pub level_idc: u8,
    /// seq_parameter_set_id, 0..=31.
    pub sps_id: u8,
    /// chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// Luma sample bit depth.
    pub bit_depth_luma: u8,
    /// pic_order_cnt_type, 0..=2.
    pub pic_order_cnt_type: u8,
    /// max_num_ref_frames.
    pub max_num_ref_frames: u32,
    /// frame_mbs_only_flag: false for interlaced (field) coding.
    pub frame_mbs_only: bool,
    /// The displayed size: macroblocks times 16, minus the cropping window.
    pub resolution: Resolution,
}

/// The profiles whose SPS carries chroma format, bit depths and scaling matrices
/// (H.264 section 7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

impl H264Sps {
    /// Parses an SPS from the bytes after its NAL unit header, emulation prevention bytes
    /// included (the reader skips them).
    pub fn parse(body: &[u8]) -> Result<Self, CodecError> {
        let mut r = BitReader::new_unescaped(body, "H.264 SPS");
        let profile_idc = r.bits_u8(8)?;
        let constraint_flags = r.bits_u8(8)?;
        let level_idc = r.bits_u8(8)?;
        let sps_id = small(r.ue()?, 31)?;
        let (mut chroma_format_idc, mut separate_colour_plane) = (1u8, false);
        let mut bit_depth_luma = 8;
        if HIGH_PROFILES.contains(&profile_idc) {
            chroma_format_idc = small(r.ue()?, 3)?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()?;
            }
            bit_depth_luma = 8 + small(r.ue()?, 6)?;
            small(r.ue()?, 6)?; // bit_depth_chroma_minus8
            r.bit()?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? {
                // seq_scaling_matrix_present_flag: six 4x4 lists, then two or six 8x8.
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        small(r.ue()?, 12)?; // log2_max_frame_num_minus4
        let pic_order_cnt_type = small(r.ue()?, 2)?;
        match pic_order_cnt_type {
            0 => {
                small(r.ue()?, 12)?; // log2_max_pic_order_cnt_lsb_minus4
            }
            1 => {
                r.bit()?; // delta_pic_order_always_zero_flag
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                let cycle = small(r.ue()?, 255)?;
                for _ in 0..cycle {
                    r.se()?; // offset_for_ref_frame
                }
            }
            _ => {}
        }
        let max_num_ref_frames = r.ue()?;
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = u64::from(r.ue()?) + 1;
        let height_map_units = u64::from(r.ue()?) + 1;
        let frame_mbs_only = r.bit()?;
        if !frame_mbs_only {
            r.bit()?; // mb_adaptive_frame_field_flag
        }
        r.bit()?; // direct_8x8_inference_flag
        let [mut left, mut right, mut top, mut bottom] = [0u64; 4];
        if r.bit()? {
            // frame_cropping_flag
            for offset in [&mut left, &mut right, &mut top, &mut bottom] {
                *offset = u64::from(r.ue()?);
            }
        }
        // Table 6-1: the cropping offsets count chroma samples (and field pairs).
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let (crop_x, crop_y) = match (separate_colour_plane, chroma_format_idc) {
            (true, _) | (_, 0) => (1, field_factor),
            (_, 1) => (2, 2 * field_factor),
            (_, 2) => (2, field_factor),
            _ => (1, field_factor),
        };
        let width = (width_mbs * 16).checked_sub(crop_x * (left + right));
        let height = (field_factor * height_map_units * 16).checked_sub(crop_y * (top + bottom));
        let size = |v: Option<u64>| {
            v.filter(|&v| v > 0)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or(CodecError::Malformed("H.264 SPS picture size"))
        };
        Ok(Self {
            profile_idc,
            constraint_flags,
            level_idc,
            sps_id,
            chroma_format_idc,
            bit_depth_luma,
            pic_order_cnt_type,
            max_num_ref_frames,
            frame_mbs_only,
            resolution: Resolution {
                width: size(width)?,
                height: size(height)?,
            },
        })
    }
}

/// Checks a decoded number against the largest value the standard allows for its field.
fn small(value: u32, max: u8) -> Result<u8, CodecError> {
    u8::try_from(value)
        .ok()
        .filter(|&v| v <= max)
        .ok_or(CodecError::Malformed("H.264 SPS"))
}

/// Reads past one scaling_list() (H.264 section 7.3.2.1.1.1): delta_scale values follow
/// until a delta makes the next scale 0, after which the rest of the list repeats the last
/// scale and is not sent.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(r.malformed());
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
