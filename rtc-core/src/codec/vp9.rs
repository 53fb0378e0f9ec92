//! VP9 payload descriptor (RFC 9628 section 4.2): [`Vp9Packet`] validates the descriptor
//! once and reads the I/P/L/F/B/E/V/Z bits, the PictureID, the layer indices (TID, U, SID,
//! D), TL0PICIDX in non-flexible mode, the reference list (P_DIFF) in flexible mode and the
//! scalability structure ([`Vp9ScalabilityStructure`]: layer sizes and the picture group);
//! it rewrites PictureID and TL0PICIDX in place for layer switches. At the start of a frame
//! it also reads the VP9 uncompressed header (VP9 bitstream specification section 6.2) far
//! enough for the frame type and a keyframe's size.
//!
//! ```text
//!  0 1 2 3 4 5 6 7
//! |I|P|L|F|B|E|V|Z| required
//! |M| PictureID   | if I (M: a second byte follows, 15 bits)
//! |TID|U| SID |D  | if L
//! |   TL0PICIDX   | if L and not F
//! | P_DIFF      |N| if F and P, up to 3 times (N: another follows)
//! |     SS        | if V
//! ```

use super::bits::BitReader;
use super::{
    CodecDescriptor, CodecError, PictureId, Resolution, read_picture_id, set_picture_id_at,
    set_tl0_pic_idx_at,
};

const I_BIT: u8 = 0x80;
const P_BIT: u8 = 0x40;
const L_BIT: u8 = 0x20;
const F_BIT: u8 = 0x10;
const B_BIT: u8 = 0x08;
const E_BIT: u8 = 0x04;
const V_BIT: u8 = 0x02;
const Z_BIT: u8 = 0x01;

/// Most P_DIFF entries a flexible-mode descriptor carries.
const MAX_P_DIFFS: usize = 3;
/// The SS's Y bit: sizes follow; G bit: a picture group description follows.
const SS_Y_BIT: u8 = 0x10;
const SS_G_BIT: u8 = 0x08;
/// Width and height of one spatial layer in the SS.
const SS_SIZE_LEN: usize = 4;

/// A borrowed view over a VP9 RTP payload, validated once at construction.
#[derive(Debug, Clone)]
pub struct Vp9Packet<T> {
    buf: T,
    /// Offsets of the optional fields (0: absent; the required byte is never one of them).
    picture_id: u16,
    layer: u16,
    tl0_pic_idx: u16,
    p_diff: u16,
    p_diff_count: u8,
    ss: u16,
    payload: u16,
}

/// One entry of the picture group in the scalability structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9PictureGroupEntry<'a> {
    /// Temporal layer of the picture.
    pub tid: u8,
    /// U: switching up point.
    pub switching_up: bool,
    /// The reference pictures' distances in PictureIDs (0 to 3 of them).
    pub p_diffs: &'a [u8],
}

/// The scalability structure (RFC 9628 section 4.2.1), sent with keyframes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9ScalabilityStructure<'a> {
    bytes: &'a [u8],
}

impl<'a> Vp9ScalabilityStructure<'a> {
    /// Validates the structure at the start of `bytes` and returns it with its length.
    fn parse(bytes: &'a [u8]) -> Result<(Self, usize), CodecError> {
        let first = *bytes.first().ok_or(CodecError::Truncated("VP9 SS"))?;
        let mut len = 1;
        if first & SS_Y_BIT != 0 {
            len += SS_SIZE_LEN * usize::from((first >> 5) + 1);
        }
        if first & SS_G_BIT != 0 {
            let groups = *bytes.get(len).ok_or(CodecError::Truncated("VP9 SS N_G"))?;
            len += 1;
            for _ in 0..groups {
                let entry = *bytes
                    .get(len)
                    .ok_or(CodecError::Truncated("VP9 SS picture group"))?;
                len += 1 + usize::from((entry >> 2) & 0x03);
            }
        }
        let bytes = bytes.get(..len).ok_or(CodecError::Truncated("VP9 SS"))?;
        Ok((Self { bytes }, len))
    }

    fn first(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }

    /// N_S + 1: the number of spatial layers.
    pub fn spatial_layers(&self) -> u8 {
        (self.first() >> 5) + 1
    }

    /// The size of each spatial layer, lowest first, if the Y bit is set.
    pub fn resolutions(&self) -> impl Iterator<Item = Resolution> + 'a {
        let count = if self.first() & SS_Y_BIT != 0 {
            usize::from(self.spatial_layers())
        } else {
            0
        };
        self.bytes
            .get(1..1 + SS_SIZE_LEN * count)
            .unwrap_or(&[])
            .chunks_exact(SS_SIZE_LEN)
            .map(|size| match size {
                &[w0, w1, h0, h1] => Resolution {
                    width: u16::from_be_bytes([w0, w1]),
                    height: u16::from_be_bytes([h0, h1]),
                },
                _ => Resolution {
                    width: 0,
                    height: 0,
                },
            })
    }

    /// The size of spatial layer `sid`, if the structure has sizes (a layer announced as
    /// 0 wide or high counts as unknown).
    pub fn resolution(&self, sid: u8) -> Option<Resolution> {
        self.resolutions()
            .nth(usize::from(sid))
            .filter(|size| size.width > 0 && size.height > 0)
    }

    /// N_G: the number of pictures in the picture group (0 without a G bit).
    pub fn picture_group_len(&self) -> u8 {
        if self.first() & SS_G_BIT == 0 {
            return 0;
        }
        self.bytes.get(self.group_start()).copied().unwrap_or(0)
    }

    fn group_start(&self) -> usize {
        if self.first() & SS_Y_BIT != 0 {
            1 + SS_SIZE_LEN * usize::from(self.spatial_layers())
        } else {
            1
        }
    }

    /// The picture group's entries in order.
    pub fn picture_group(&self) -> impl Iterator<Item = Vp9PictureGroupEntry<'a>> + 'a {
        let mut rest = if self.picture_group_len() > 0 {
            self.bytes.get(self.group_start() + 1..).unwrap_or(&[])
        } else {
            &[]
        };
        std::iter::from_fn(move || {
            let (&entry, tail) = rest.split_first()?;
            let (p_diffs, tail) = tail.split_at_checked(usize::from((entry >> 2) & 0x03))?;
            rest = tail;
            Some(Vp9PictureGroupEntry {
                tid: entry >> 5,
                switching_up: entry & 0x10 != 0,
                p_diffs,
            })
        })
    }
}

/// What the VP9 uncompressed header at the start of a frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9FrameHeader {
    /// The profile, 0..=3.
    pub profile: u8,
    /// frame_type is KEY_FRAME (and the frame is not a repeat of a shown one).
    pub keyframe: bool,
    /// show_frame (or show_existing_frame).
    pub show_frame: bool,
    /// A keyframe's size.
    pub resolution: Option<Resolution>,
}

impl Vp9FrameHeader {
    /// Reads the uncompressed header's first fields from a frame's first bytes.
    pub fn parse(frame: &[u8]) -> Result<Self, CodecError> {
        let mut r = BitReader::new(frame, "VP9 uncompressed header");
        if r.bits(2)? != 2 {
            return Err(CodecError::Malformed("VP9 frame marker"));
        }
        let low = r.bits_u8(1)?;
        let profile = (r.bits_u8(1)? << 1) | low;
        if profile == 3 {
            r.skip(1)?;
        }
        if r.bit()? {
            // show_existing_frame: a repeat of a decoded frame, no frame type.
            return Ok(Self {
                profile,
                keyframe: false,
                show_frame: true,
                resolution: None,
            });
        }
        let keyframe = !r.bit()?;
        let show_frame = r.bit()?;
        r.skip(1)?; // error_resilient_mode
        let mut header = Self {
            profile,
            keyframe,
            show_frame,
            resolution: None,
        };
        if keyframe {
            if r.bits(24)? != 0x49_83_42 {
                return Err(CodecError::Malformed("VP9 frame sync code"));
            }
            // color_config()
            if profile >= 2 {
                r.skip(1)?; // ten_or_twelve_bit
            }
            let color_space = r.bits(3)?;
            let odd_profile = profile == 1 || profile == 3;
            if color_space != 7 {
                // color_range, then subsampling_x, subsampling_y, reserved_zero.
                r.skip(if odd_profile { 4 } else { 1 })?;
            } else if odd_profile {
                r.skip(1)?; // reserved_zero (sRGB is 4:4:4)
            }
            let width = r.bits(16)? + 1;
            let height = r.bits(16)? + 1;
            header.resolution = Some(Resolution {
                width: u16::try_from(width).map_err(|_| r.malformed())?,
                height: u16::try_from(height).map_err(|_| r.malformed())?,
            });
        }
        Ok(header)
    }
}

impl<T: AsRef<[u8]>> Vp9Packet<T> {
    /// Validates the descriptor: every field its bits announce is present (at most three
    /// P_DIFFs, a complete SS) and at least one byte of VP9 payload follows.
    pub fn parse(buf: T) -> Result<Self, CodecError> {
        let bytes = buf.as_ref();
        let first = *bytes
            .first()
            .ok_or(CodecError::Truncated("VP9 descriptor"))?;
        let mut at = 1usize;
        // Offsets are gathered in a bufferless view, then moved to the real one.
        let mut packet = Vp9Packet::<()> {
            picture_id: 0,
            layer: 0,
            tl0_pic_idx: 0,
            p_diff: 0,
            p_diff_count: 0,
            ss: 0,
            payload: 0,
            buf: (),
        };
        if first & I_BIT != 0 {
            let (_, len) = bytes
                .get(at..)
                .and_then(read_picture_id)
                .ok_or(CodecError::Truncated("VP9 PictureID"))?;
            packet.picture_id = offset(at);
            at += len;
        }
        if first & L_BIT != 0 {
            bytes
                .get(at)
                .ok_or(CodecError::Truncated("VP9 layer indices"))?;
            packet.layer = offset(at);
            at += 1;
            if first & F_BIT == 0 {
                bytes
                    .get(at)
                    .ok_or(CodecError::Truncated("VP9 TL0PICIDX"))?;
                packet.tl0_pic_idx = offset(at);
                at += 1;
            }
        }
        if first & (F_BIT | P_BIT) == F_BIT | P_BIT {
            packet.p_diff = offset(at);
            loop {
                let p_diff = *bytes.get(at).ok_or(CodecError::Truncated("VP9 P_DIFF"))?;
                at += 1;
                packet.p_diff_count += 1;
                if p_diff & 0x01 == 0 {
                    break;
                }
                if usize::from(packet.p_diff_count) == MAX_P_DIFFS {
                    return Err(CodecError::Malformed("VP9 P_DIFF list longer than 3"));
                }
            }
        }
        if first & V_BIT != 0 {
            let (_, len) = Vp9ScalabilityStructure::parse(bytes.get(at..).unwrap_or(&[]))?;
            packet.ss = offset(at);
            at += len;
        }
        if bytes.len() <= at {
            return Err(CodecError::Truncated("VP9 payload"));
        }
        packet.payload = offset(at);
        Ok(Self {
            buf,
            picture_id: packet.picture_id,
            layer: packet.layer,
            tl0_pic_idx: packet.tl0_pic_idx,
            p_diff: packet.p_diff,
            p_diff_count: packet.p_diff_count,
            ss: packet.ss,
            payload: packet.payload,
        })
    }

    fn byte(&self, at: u16) -> u8 {
        self.buf.as_ref().get(usize::from(at)).copied().unwrap_or(0)
    }

    fn first(&self) -> u8 {
        self.byte(0)
    }

    /// The whole payload as given.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Length of the payload descriptor.
    pub fn descriptor_len(&self) -> usize {
        usize::from(self.payload)
    }

    /// The VP9 payload after the descriptor (never empty).
    pub fn payload(&self) -> &[u8] {
        self.buf
            .as_ref()
            .get(usize::from(self.payload)..)
            .unwrap_or(&[])
    }

    /// P: the picture is predicted from earlier pictures (of its own spatial layer).
    pub fn is_inter_predicted(&self) -> bool {
        self.first() & P_BIT != 0
    }

    /// F: flexible mode (references listed as P_DIFFs rather than by a picture group).
    pub fn is_flexible(&self) -> bool {
        self.first() & F_BIT != 0
    }

    /// B: the packet starts a frame (of its spatial layer).
    pub fn is_beginning_of_frame(&self) -> bool {
        self.first() & B_BIT != 0
    }

    /// E: the packet ends a frame.
    pub fn is_end_of_frame(&self) -> bool {
        self.first() & E_BIT != 0
    }

    /// Z: no higher spatial layer of this picture uses this frame as a reference.
    pub fn is_not_upswitch_reference(&self) -> bool {
        self.first() & Z_BIT != 0
    }

    /// The PictureID with its wire width, if I is set.
    pub fn picture_id(&self) -> Option<PictureId> {
        if self.picture_id == 0 {
            return None;
        }
        let bytes = self.buf.as_ref().get(usize::from(self.picture_id)..)?;
        read_picture_id(bytes).map(|(id, _)| id)
    }

    fn layer(&self) -> Option<u8> {
        (self.layer != 0).then(|| self.byte(self.layer))
    }

    /// TID, the temporal layer, if L is set.
    pub fn tid(&self) -> Option<u8> {
        self.layer().map(|l| l >> 5)
    }

    /// U: a switching up point (meaningful when L is set).
    pub fn is_switching_up(&self) -> bool {
        self.layer().is_some_and(|l| l & 0x10 != 0)
    }

    /// SID, the spatial layer, if L is set.
    pub fn sid(&self) -> Option<u8> {
        self.layer().map(|l| (l >> 1) & 0x07)
    }

    /// D: the frame depends on the spatial layer below (meaningful when L is set).
    pub fn is_inter_layer_dependent(&self) -> bool {
        self.layer().is_some_and(|l| l & 0x01 != 0)
    }

    /// TL0PICIDX, if L is set in non-flexible mode.
    pub fn tl0_pic_idx(&self) -> Option<u8> {
        (self.tl0_pic_idx != 0).then(|| self.byte(self.tl0_pic_idx))
    }

    /// The P_DIFF values (distances to reference PictureIDs) in flexible mode.
    pub fn p_diffs(&self) -> impl Iterator<Item = u8> + '_ {
        let start = usize::from(self.p_diff);
        let list = if self.p_diff != 0 {
            self.buf
                .as_ref()
                .get(start..start + usize::from(self.p_diff_count))
                .unwrap_or(&[])
        } else {
            &[]
        };
        list.iter().map(|b| b >> 1)
    }

    /// The scalability structure, if V is set.
    pub fn scalability_structure(&self) -> Option<Vp9ScalabilityStructure<'_>> {
        if self.ss == 0 {
            return None;
        }
        let bytes = self
            .buf
            .as_ref()
            .get(usize::from(self.ss)..usize::from(self.payload))?;
        Some(Vp9ScalabilityStructure { bytes })
    }

    /// The uncompressed header of the frame this packet starts, if it is a start (B set)
    /// and the header reads.
    pub fn frame_header(&self) -> Option<Vp9FrameHeader> {
        if !self.is_beginning_of_frame() {
            return None;
        }
        Vp9FrameHeader::parse(self.payload()).ok()
    }
}

/// An offset inside a descriptor. A descriptor is shorter than 1,100 bytes (its largest
/// part, a full SS, is 1 + 8 * 4 + 1 + 255 * 4), so this never saturates.
fn offset(at: usize) -> u16 {
    u16::try_from(at).unwrap_or(u16::MAX)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Vp9Packet<T> {
    /// Rewrites the PictureID, keeping its width: `value` is truncated to 7 or 15 bits.
    /// Does nothing if the descriptor has no PictureID.
    pub fn set_picture_id(&mut self, value: u16) {
        set_picture_id_at(self.buf.as_mut(), self.picture_id, value);
    }

    /// Rewrites TL0PICIDX. Does nothing if the descriptor has none.
    pub fn set_tl0_pic_idx(&mut self, value: u8) {
        set_tl0_pic_idx_at(self.buf.as_mut(), self.tl0_pic_idx, value);
    }
}

impl<T: AsRef<[u8]>> CodecDescriptor for Vp9Packet<T> {
    /// The start of a frame (B) that is not inter-picture predicted (P clear) in the lowest
    /// spatial layer (SID 0, or no layer indices), and whose uncompressed header, when it
    /// reads, says KEY_FRAME. The header check is there because some packetizers never set
    /// P (FFmpeg's, for one), which would make every frame look like a keyframe; when the
    /// header does not read (cut short, or encrypted end to end) the descriptor decides.
    fn is_keyframe(&self) -> bool {
        self.is_beginning_of_frame()
            && !self.is_inter_predicted()
            && self.sid().unwrap_or(0) == 0
            && self.frame_header().is_none_or(|h| h.keyframe)
    }

    /// B: the packet starts a frame of its spatial layer.
    fn is_start_of_frame(&self) -> bool {
        self.is_beginning_of_frame()
    }

    fn temporal_id(&self) -> Option<u8> {
        self.tid()
    }

    fn spatial_id(&self) -> Option<u8> {
        self.sid()
    }

    /// The packet's spatial layer size from the SS, or else a keyframe's size from its
    /// uncompressed header.
    fn resolution(&self) -> Option<Resolution> {
        self.scalability_structure()
            .and_then(|ss| ss.resolution(self.sid().unwrap_or(0)))
            .or_else(|| self.frame_header().and_then(|h| h.resolution))
    }
}

#[cfg(test)]
mod tests;
