//! Video payload descriptors: what an SFU must read from (and sometimes rewrite in) the first
//! bytes of a VP8, VP9, H.264 or AV1 RTP payload to forward layers without decoding: where a
//! frame starts, whether it is a keyframe, which spatial and temporal layer it belongs to, the
//! picture size when the packet carries it, and the picture ids a simulcast switch rewrites.
//!
//! Each codec has a borrowed view over the RTP payload (the bytes after the RTP header, see
//! [`crate::rtp::RtpPacket::payload`]) that validates once in `parse`; after that no accessor
//! or setter can panic, and nothing allocates. [`dependency_descriptor`] reads the
//! codec-independent Dependency Descriptor header extension that libwebrtc sends with AV1
//! (and, in newer versions, with VP8, VP9 and H.264). [`CodecDescriptor`] is the summary every
//! view answers, and [`PayloadDescriptor`] picks the view by [`Codec`].

pub mod av1;
mod bits;
pub mod dependency_descriptor;
pub mod h264;
pub mod vp8;
pub mod vp9;

use crate::sdp::Codec;
pub use av1::Av1Packet;
pub use dependency_descriptor::{DependencyDescriptor, DependencyStructure};
pub use h264::{H264Packet, H264Sps};
pub use vp8::Vp8Packet;
pub use vp9::Vp9Packet;

/// Errors found while validating a payload descriptor. The context names the field that did
/// not fit, so a log line says where a hostile or unusual packet went wrong without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecError {
    /// The payload ends before the named field.
    Truncated(&'static str),
    /// The named field holds a value the format forbids.
    Malformed(&'static str),
    /// A valid feature of the format that Sluice does not handle (e.g. H.264 STAP-B).
    Unsupported(&'static str),
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Truncated(what) => write!(f, "payload truncated in {what}"),
            CodecError::Malformed(what) => write!(f, "malformed {what}"),
            CodecError::Unsupported(what) => write!(f, "unsupported {what}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// A picture size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Resolution {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
}

/// A VP8 or VP9 PictureID with the width it has on the wire. A rewrite keeps the width, so
/// the descriptor keeps its length and the packet is rewritten in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureId {
    /// The 7-bit form (M bit clear).
    Short(u8),
    /// The 15-bit form (M bit set).
    Long(u16),
}

impl PictureId {
    /// The value, whatever its width.
    pub fn value(self) -> u16 {
        match self {
            PictureId::Short(v) => u16::from(v),
            PictureId::Long(v) => v,
        }
    }

    /// The largest value this width holds (0x7f or 0x7fff); ids wrap around after it.
    pub fn max(self) -> u16 {
        match self {
            PictureId::Short(_) => 0x7f,
            PictureId::Long(_) => 0x7fff,
        }
    }
}

/// Reads a PictureID field (RFC 7741 section 4.2, RFC 9628 section 4.2: the same encoding)
/// at the start of `bytes`: its value and length, or `None` if it is cut off.
fn read_picture_id(bytes: &[u8]) -> Option<(PictureId, usize)> {
    match bytes {
        [hi, lo, ..] if hi & 0x80 != 0 => {
            Some((PictureId::Long(u16::from_be_bytes([hi & 0x7f, *lo])), 2))
        }
        [b, ..] if b & 0x80 == 0 => Some((PictureId::Short(*b), 1)),
        _ => None,
    }
}

/// Rewrites the PictureID field at the start of `bytes` with `value` truncated to the
/// field's width (the M bit is kept).
/// Rewrites the PictureID that starts at `offset` of `buf` (0: the descriptor has none; the
/// payload descriptor's first byte is never its PictureID), keeping its width.
fn set_picture_id_at(buf: &mut [u8], offset: u16, value: u16) {
    if offset != 0
        && let Some(field) = buf.get_mut(usize::from(offset)..)
    {
        write_picture_id(field, value);
    }
}

/// Rewrites the TL0PICIDX byte at `offset` of `buf` (0: the descriptor has none).
fn set_tl0_pic_idx_at(buf: &mut [u8], offset: u16, value: u8) {
    if offset != 0
        && let Some(field) = buf.get_mut(usize::from(offset))
    {
        *field = value;
    }
}

fn write_picture_id(bytes: &mut [u8], value: u16) {
    match bytes {
        [hi, lo, ..] if *hi & 0x80 != 0 => {
            let [h, l] = (value & 0x7fff).to_be_bytes();
            *hi = 0x80 | h;
            *lo = l;
        }
        [b, ..] if *b & 0x80 == 0 => *b = (value & 0x7f) as u8,
        _ => {}
    }
}

/// What a forwarding decision needs from any codec's payload, answered by every view.
pub trait CodecDescriptor {
    /// Whether the packet starts a keyframe: a point where a decoder can start (see each
    /// codec's view for the exact rule).
    fn is_keyframe(&self) -> bool;
    /// Whether the packet carries the first bytes of a frame (of its spatial layer).
    fn is_start_of_frame(&self) -> bool;
    /// The temporal layer, when the payload says.
    fn temporal_id(&self) -> Option<u8>;
    /// The spatial layer, when the payload says.
    fn spatial_id(&self) -> Option<u8>;
    /// The picture size, when this packet carries it (usually only a keyframe's first).
    fn resolution(&self) -> Option<Resolution>;
}

/// A payload parsed by the view of its codec.
#[derive(Debug, Clone)]
pub enum PayloadDescriptor<'a> {
    /// RFC 7741.
    Vp8(Vp8Packet<&'a [u8]>),
    /// RFC 9628.
    Vp9(Vp9Packet<&'a [u8]>),
    /// RFC 6184.
    H264(H264Packet<'a>),
    /// The AV1 RTP payload format.
    Av1(Av1Packet<'a>),
}

impl<'a> PayloadDescriptor<'a> {
    /// Parses `payload` as `codec` carries it; audio has no descriptor.
    pub fn parse(codec: Codec, payload: &'a [u8]) -> Result<Self, CodecError> {
        Ok(match codec {
            Codec::Vp8 => PayloadDescriptor::Vp8(Vp8Packet::parse(payload)?),
            Codec::Vp9 => PayloadDescriptor::Vp9(Vp9Packet::parse(payload)?),
            Codec::H264 => PayloadDescriptor::H264(H264Packet::parse(payload)?),
            Codec::Av1 => PayloadDescriptor::Av1(Av1Packet::parse(payload)?),
            Codec::Opus => return Err(CodecError::Unsupported("audio codec")),
        })
    }

    fn inner(&self) -> &dyn CodecDescriptor {
        match self {
            PayloadDescriptor::Vp8(p) => p,
            PayloadDescriptor::Vp9(p) => p,
            PayloadDescriptor::H264(p) => p,
            PayloadDescriptor::Av1(p) => p,
        }
    }
}

impl CodecDescriptor for PayloadDescriptor<'_> {
    fn is_keyframe(&self) -> bool {
        self.inner().is_keyframe()
    }
    fn is_start_of_frame(&self) -> bool {
        self.inner().is_start_of_frame()
    }
    fn temporal_id(&self) -> Option<u8> {
        self.inner().temporal_id()
    }
    fn spatial_id(&self) -> Option<u8> {
        self.inner().spatial_id()
    }
    fn resolution(&self) -> Option<Resolution> {
        self.inner().resolution()
    }
}

#[cfg(test)]
mod tests;
