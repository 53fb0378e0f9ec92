//! AV1 RTP payloads (the AOMedia "RTP Payload Format For AV1", section 4): [`Av1Packet`]
//! validates the aggregation header and the OBU elements once, iterates the elements with
//! their LEB128 lengths without allocating, reads each OBU header (type, temporal and
//! spatial ids), and reads a sequence header (AV1 specification section 5.5) far enough for
//! the maximum frame size. The Dependency Descriptor extension that usually travels with AV1
//! is in [`super::dependency_descriptor`].
//!
//! ```text
//!  0 1 2 3 4 5 6 7
//! |Z|Y| W |N|-|-|-| aggregation header
//! ```
//! Z: the first element continues an OBU from the previous packet; Y: the last element
//! continues in the next; W: 0, or the number of elements (1..=3, the last without a
//! length); N: the first packet of a coded video sequence.

use super::bits::{BitReader, leb128};
use super::{CodecDescriptor, CodecError, Resolution};

/// OBU types (AV1 specification section 6.2.2) that matter here.
pub mod obu_type {
    /// Sequence header.
    pub const SEQUENCE_HEADER: u8 = 1;
    /// Temporal delimiter (packetizers should drop it).
    pub const TEMPORAL_DELIMITER: u8 = 2;
    /// Frame header.
    pub const FRAME_HEADER: u8 = 3;
    /// Tile group.
    pub const TILE_GROUP: u8 = 4;
    /// Metadata.
    pub const METADATA: u8 = 5;
    /// Frame header and tile group together.
    pub const FRAME: u8 = 6;
    /// Redundant frame header.
    pub const REDUNDANT_FRAME_HEADER: u8 = 7;
    /// Tile list.
    pub const TILE_LIST: u8 = 8;
    /// Padding.
    pub const PADDING: u8 = 15;
}

const Z_BIT: u8 = 0x80;
const Y_BIT: u8 = 0x40;
const W_SHIFT: u8 = 4;
const N_BIT: u8 = 0x08;
/// The OBU header's forbidden bit, extension flag and has_size_field flag.
const OBU_FORBIDDEN: u8 = 0x80;
const OBU_EXTENSION: u8 = 0x04;
const OBU_HAS_SIZE: u8 = 0x02;

/// An OBU header (AV1 specification section 5.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObuHeader {
    /// obu_type (see [`obu_type`]).
    pub obu_type: u8,
    /// temporal_id and spatial_id, if the extension header is present.
    pub layer: Option<(u8, u8)>,
    /// obu_has_size_field: an obu_size follows the header (packetizers should remove it).
    pub has_size_field: bool,
}

impl ObuHeader {
    /// Reads an OBU header at the start of `obu`, with its length (1 or 2).
    pub fn parse(obu: &[u8]) -> Result<(Self, usize), CodecError> {
        let first = *obu.first().ok_or(CodecError::Truncated("AV1 OBU header"))?;
        if first & OBU_FORBIDDEN != 0 {
            return Err(CodecError::Malformed("AV1 OBU forbidden bit"));
        }
        let mut header = Self {
            obu_type: (first >> 3) & 0x0f,
            layer: None,
            has_size_field: first & OBU_HAS_SIZE != 0,
        };
        if first & OBU_EXTENSION == 0 {
            return Ok((header, 1));
        }
        let ext = *obu
            .get(1)
            .ok_or(CodecError::Truncated("AV1 OBU extension header"))?;
        header.layer = Some((ext >> 5, (ext >> 3) & 0x03));
        Ok((header, 2))
    }

    /// temporal_id, if the extension header is present.
    pub fn temporal_id(&self) -> Option<u8> {
        self.layer.map(|(t, _)| t)
    }

    /// spatial_id, if the extension header is present.
    pub fn spatial_id(&self) -> Option<u8> {
        self.layer.map(|(_, s)| s)
    }
}

/// One OBU element of a packet: a whole OBU, or a fragment of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObuElement<'a> {
    data: &'a [u8],
    /// Continues an OBU from the previous packet (Z on the first element).
    continued: bool,
    /// Continues in the next packet (Y on the last element).
    continues: bool,
}

impl<'a> ObuElement<'a> {
    /// The element's bytes (never empty).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Whether the element continues an OBU begun in the previous packet: it has no OBU
    /// header of its own.
    pub fn is_continuation(&self) -> bool {
        self.continued
    }

    /// Whether the OBU continues in the next packet.
    pub fn continues_in_next(&self) -> bool {
        self.continues
    }

    /// Whether the element is a whole OBU.
    pub fn is_whole(&self) -> bool {
        !self.continued && !self.continues
    }

    /// The OBU header, unless the element is a continuation (validated by `parse`).
    pub fn header(&self) -> Option<ObuHeader> {
        if self.continued {
            return None;
        }
        ObuHeader::parse(self.data).ok().map(|(h, _)| h)
    }

    /// The OBU's payload after its header and size field, for a whole OBU.
    fn obu_payload(&self) -> Option<&'a [u8]> {
        if !self.is_whole() {
            return None;
        }
        let (header, len) = ObuHeader::parse(self.data).ok()?;
        let rest = self.data.get(len..)?;
        if header.has_size_field {
            let (size, len) = leb128(rest).ok()?;
            rest.get(len..len.checked_add(usize::try_from(size).ok()?)?)
        } else {
            Some(rest)
        }
    }
}

/// An element's bytes and the packet's bytes after it.
type ElementSplit<'a> = (&'a [u8], &'a [u8]);

/// Iterator over the OBU elements of a packet (validated by [`Av1Packet::parse`]).
#[derive(Debug, Clone)]
pub struct ObuElements<'a> {
    rest: &'a [u8],
    /// Elements returned so far.
    index: u8,
    /// W: the element count (0: every element has a length).
    count: u8,
    z: bool,
    y: bool,
}

impl<'a> ObuElements<'a> {
    /// The next element and the bytes after it, or an error saying why the layout is bad.
    fn split(&self) -> Result<Option<ElementSplit<'a>>, CodecError> {
        if self.rest.is_empty() {
            return if self.count != 0 && self.index < self.count {
                Err(CodecError::Truncated("AV1 OBU element"))
            } else {
                Ok(None)
            };
        }
        let (element, rest) = if self.count != 0 && self.index + 1 == self.count {
            (self.rest, &[][..])
        } else {
            let (size, len) = leb128(self.rest)?;
            let size = usize::try_from(size).map_err(|_| CodecError::Malformed("AV1 OBU size"))?;
            let body = self.rest.get(len..).unwrap_or(&[]);
            body.split_at_checked(size)
                .ok_or(CodecError::Truncated("AV1 OBU element"))?
        };
        if element.is_empty() {
            return Err(CodecError::Malformed("AV1 empty OBU element"));
        }
        Ok(Some((element, rest)))
    }
}

impl<'a> Iterator for ObuElements<'a> {
    type Item = ObuElement<'a>;

    fn next(&mut self) -> Option<ObuElement<'a>> {
        let (data, rest) = self.split().ok().flatten()?;
        let first = self.index == 0;
        self.rest = rest;
        self.index = self.index.saturating_add(1);
        Some(ObuElement {
            data,
            continued: first && self.z,
            continues: rest.is_empty() && self.y,
        })
    }
}

/// A borrowed view over an AV1 RTP payload, validated once at construction.
#[derive(Debug, Clone)]
pub struct Av1Packet<'a> {
    bytes: &'a [u8],
}

impl<'a> Av1Packet<'a> {
    /// Validates the aggregation header and every OBU element: LEB128 lengths inside the
    /// packet, exactly W elements when W is not 0, no empty element, a valid OBU header at
    /// the start of every element that is not a continuation, and N only on a packet that
    /// does not continue an OBU.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CodecError> {
        let header = *bytes
            .first()
            .ok_or(CodecError::Truncated("AV1 aggregation header"))?;
        if header & N_BIT != 0 && header & Z_BIT != 0 {
            return Err(CodecError::Malformed("AV1 N set on a continuation"));
        }
        let packet = Self { bytes };
        let mut elements = packet.elements();
        if bytes.len() == 1 {
            return Err(CodecError::Truncated("AV1 OBU element"));
        }
        while let Some((data, rest)) = elements.split()? {
            if !(elements.index == 0 && elements.z) {
                ObuHeader::parse(data)?;
            }
            elements.rest = rest;
            elements.index = elements.index.saturating_add(1);
        }
        Ok(packet)
    }

    fn header(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }

    /// The payload as given.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Z: the first element continues an OBU from the previous packet.
    pub fn starts_with_continuation(&self) -> bool {
        self.header() & Z_BIT != 0
    }

    /// Y: the last element continues in the next packet.
    pub fn ends_with_fragment(&self) -> bool {
        self.header() & Y_BIT != 0
    }

    /// W: the number of OBU elements, or 0 if each carries its length.
    pub fn element_count_field(&self) -> u8 {
        (self.header() >> W_SHIFT) & 0x03
    }

    /// N: the packet is the first of a coded video sequence.
    pub fn is_new_coded_video_sequence(&self) -> bool {
        self.header() & N_BIT != 0
    }

    /// The OBU elements, in order.
    pub fn elements(&self) -> ObuElements<'a> {
        ObuElements {
            rest: self.bytes.get(1..).unwrap_or(&[]),
            index: 0,
            count: self.element_count_field(),
            z: self.starts_with_continuation(),
            y: self.ends_with_fragment(),
        }
    }

    /// The first whole sequence header OBU in the packet, parsed.
    pub fn sequence_header(&self) -> Option<Result<Av1SequenceHeader, CodecError>> {
        self.elements()
            .find(|e| {
                e.is_whole() && e.header().map(|h| h.obu_type) == Some(obu_type::SEQUENCE_HEADER)
            })
            .map(|e| Av1SequenceHeader::parse(e.obu_payload().unwrap_or(&[])))
    }
}

impl CodecDescriptor for Av1Packet<'_> {
    /// N: the packet starts a new coded video sequence, which begins with a keyframe (the
    /// packetizer sets N on the first packet of a keyframe that has a sequence header).
    fn is_keyframe(&self) -> bool {
        self.is_new_coded_video_sequence()
    }

    /// The packet does not continue an OBU and starts with a sequence header, temporal
    /// delimiter, frame header or frame OBU (or has N set). A frame split into several tile
    /// groups has packets that start with a tile group: those are not starts. The
    /// Dependency Descriptor's start_of_frame, when the stream has one, is exact.
    fn is_start_of_frame(&self) -> bool {
        if self.starts_with_continuation() {
            return false;
        }
        self.is_new_coded_video_sequence()
            || self
                .elements()
                .next()
                .and_then(|e| e.header())
                .is_some_and(|h| {
                    matches!(
                        h.obu_type,
                        obu_type::SEQUENCE_HEADER
                            | obu_type::TEMPORAL_DELIMITER
                            | obu_type::FRAME_HEADER
                            | obu_type::FRAME
                    )
                })
    }

    /// The temporal_id of the first OBU starting here with an extension header.
    fn temporal_id(&self) -> Option<u8> {
        self.elements()
            .find_map(|e| e.header().and_then(|h| h.temporal_id()))
    }

    /// The spatial_id of the first OBU starting here with an extension header.
    fn spatial_id(&self) -> Option<u8> {
        self.elements()
            .find_map(|e| e.header().and_then(|h| h.spatial_id()))
    }

    /// The maximum frame size of a sequence header in this packet.
    fn resolution(&self) -> Option<Resolution> {
        self.sequence_header()?.ok().map(|s| s.max_frame_size)
    }
}

/// The fields of a sequence header up to the maximum frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Av1SequenceHeader {
    /// seq_profile (0 main, 1 high, 2 professional).
    pub seq_profile: u8,
    /// still_picture.
    pub still_picture: bool,
    /// operating_points_cnt_minus_1 + 1.
    pub operating_points: u8,
    /// operating_point_idc of the first operating point: which temporal (low 8 bits) and
    /// spatial (next 4 bits) layers it decodes; 0 when the stream is not scalable.
    pub operating_point_idc: u16,
    /// seq_level_idx of the first operating point.
    pub seq_level_idx: u8,
    /// max_frame_width_minus_1 + 1 and max_frame_height_minus_1 + 1.
    pub max_frame_size: Resolution,
}

impl Av1SequenceHeader {
    /// Parses the OBU payload of a sequence header (after the OBU header and size).
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        let mut r = BitReader::new(payload, "AV1 sequence header");
        let seq_profile = r.bits_u8(3)?;
        let still_picture = r.bit()?;
        let reduced_still_picture_header = r.bit()?;
        let mut header = Self {
            seq_profile,
            still_picture,
            operating_points: 1,
            operating_point_idc: 0,
            seq_level_idx: 0,
            max_frame_size: Resolution {
                width: 0,
                height: 0,
            },
        };
        if reduced_still_picture_header {
            header.seq_level_idx = r.bits_u8(5)?;
        } else {
            let mut buffer_delay_length = 0;
            let mut decoder_model_info_present = false;
            if r.bit()? {
                // timing_info(): two 32-bit fields, then equal_picture_interval.
                r.skip(64)?;
                if r.bit()? {
                    skip_uvlc(&mut r)?;
                }
                decoder_model_info_present = r.bit()?;
                if decoder_model_info_present {
                    buffer_delay_length = r.bits(5)? + 1;
                    r.skip(32 + 5 + 5)?;
                }
            }
            let initial_display_delay_present = r.bit()?;
            header.operating_points = r.bits_u8(5)? + 1;
            for i in 0..header.operating_points {
                let idc = r.bits(12)?;
                let level = r.bits_u8(5)?;
                if i == 0 {
                    header.operating_point_idc = (idc & 0x0fff) as u16;
                    header.seq_level_idx = level;
                }
                if level > 7 {
                    r.skip(1)?; // seq_tier
                }
                if decoder_model_info_present && r.bit()? {
                    // operating_parameters_info(): two delays and low_delay_mode_flag.
                    r.skip(2 * buffer_delay_length + 1)?;
                }
                if initial_display_delay_present && r.bit()? {
                    r.skip(4)?;
                }
            }
        }
        let width_bits = r.bits(4)? + 1;
        let height_bits = r.bits(4)? + 1;
        let width = r.bits(width_bits)? + 1;
        let height = r.bits(height_bits)? + 1;
        header.max_frame_size = Resolution {
            width: u16::try_from(width).map_err(|_| r.malformed())?,
            height: u16::try_from(height).map_err(|_| r.malformed())?,
        };
        Ok(header)
    }
}

/// Reads past a uvlc() code (AV1 specification section 4.10.3).
fn skip_uvlc(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    let mut zeros = 0u32;
    while !r.bit()? {
        zeros += 1;
    }
    if zeros < 32 {
        r.skip(zeros)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
