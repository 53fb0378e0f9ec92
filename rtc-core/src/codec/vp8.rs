//! VP8 payload descriptor (RFC 7741 section 4.2) and payload header (section 4.3):
//! [`Vp8Packet`] validates the descriptor once and then reads the partition bits, PictureID,
//! TL0PICIDX, TID/Y and KEYIDX, detects keyframes from the first partition's P bit, reads a
//! keyframe's size from its uncompressed data chunk (RFC 6386 section 9.1), and rewrites
//! PictureID and TL0PICIDX in place, which a simulcast switch needs so the subscriber sees
//! one continuous stream.
//!
//! ```text
//!  0 1 2 3 4 5 6 7
//! |X|R|N|S|R| PID | required
//! |I|L|T|K| RSV   | if X
//! |M| PictureID   | if I (M: a second byte follows, 15 bits)
//! |   TL0PICIDX   | if L
//! |TID|Y| KEYIDX  | if T or K
//! ```

use super::{
    CodecDescriptor, CodecError, PictureId, Resolution, read_picture_id, set_picture_id_at,
    set_tl0_pic_idx_at,
};

/// Offset of the required first byte.
const REQUIRED: usize = 0;
/// Offset of the extended control bits when X is set.
const EXTENDED: usize = 1;

const X_BIT: u8 = 0x80;
const N_BIT: u8 = 0x20;
const S_BIT: u8 = 0x10;
const PID_MASK: u8 = 0x07;
const I_BIT: u8 = 0x80;
const L_BIT: u8 = 0x40;
const T_BIT: u8 = 0x20;
const K_BIT: u8 = 0x10;

/// Length of the frame tag that opens every VP8 frame (RFC 6386 section 9.1).
const FRAME_TAG_LEN: usize = 3;
/// The start code that follows a keyframe's frame tag.
const KEYFRAME_START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];
/// Frame tag, start code, then 16-bit width and height.
const KEYFRAME_HEADER_LEN: usize = FRAME_TAG_LEN + 3 + 4;

/// A borrowed view over a VP8 RTP payload, validated once at construction.
#[derive(Debug, Clone)]
pub struct Vp8Packet<T> {
    buf: T,
    /// Offsets of the optional fields (0: absent; the required byte is never one of them).
    picture_id: u8,
    tl0_pic_idx: u8,
    tid_key_idx: u8,
    payload: u8,
}

/// The 3-byte frame tag at the start of the first partition (RFC 6386 section 9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8FrameTag {
    /// Whether this is a keyframe (P bit clear).
    pub keyframe: bool,
    /// The version (0..=3 are defined: the reconstruction and loop filter variants).
    pub version: u8,
    /// Whether the frame is meant to be displayed.
    pub show_frame: bool,
    /// Size of the first partition in bytes (19 bits).
    pub first_partition_size: u32,
}

/// The size a VP8 keyframe announces, with its upscaling hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8KeyframeSize {
    /// Width and height (14 bits each).
    pub resolution: Resolution,
    /// The 2-bit horizontal scale (0: none, 1: 5/4, 2: 5/3, 3: 2).
    pub horizontal_scale: u8,
    /// The 2-bit vertical scale.
    pub vertical_scale: u8,
}

impl<T: AsRef<[u8]>> Vp8Packet<T> {
    /// Validates the descriptor: every field its bits announce is present and at least one
    /// byte of VP8 payload follows.
    pub fn parse(buf: T) -> Result<Self, CodecError> {
        let bytes = buf.as_ref();
        let first = *bytes
            .get(REQUIRED)
            .ok_or(CodecError::Truncated("VP8 descriptor"))?;
        let mut at = 1usize;
        let (mut picture_id, mut tl0_pic_idx, mut tid_key_idx) = (0, 0, 0);
        if first & X_BIT != 0 {
            let ext = *bytes
                .get(EXTENDED)
                .ok_or(CodecError::Truncated("VP8 extended control bits"))?;
            at += 1;
            if ext & I_BIT != 0 {
                let (_, len) = bytes
                    .get(at..)
                    .and_then(read_picture_id)
                    .ok_or(CodecError::Truncated("VP8 PictureID"))?;
                picture_id = at;
                at += len;
            }
            if ext & L_BIT != 0 {
                tl0_pic_idx = at;
                at += 1;
            }
            if ext & (T_BIT | K_BIT) != 0 {
                tid_key_idx = at;
                at += 1;
            }
        }
        if bytes.len() <= at {
            return Err(CodecError::Truncated("VP8 payload"));
        }
        // The descriptor is at most 6 bytes, so every offset fits a byte.
        Ok(Self {
            picture_id: picture_id as u8,
            tl0_pic_idx: tl0_pic_idx as u8,
            tid_key_idx: tid_key_idx as u8,
            payload: at as u8,
            buf,
        })
    }

    fn byte(&self, at: usize) -> u8 {
        self.buf.as_ref().get(at).copied().unwrap_or(0)
    }

    fn extended(&self) -> u8 {
        if self.byte(REQUIRED) & X_BIT != 0 {
            self.byte(EXTENDED)
        } else {
            0
        }
    }

    /// The whole payload as given.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// Length of the payload descriptor (1 to 6 bytes).
    pub fn descriptor_len(&self) -> usize {
        usize::from(self.payload)
    }

    /// The VP8 payload after the descriptor (never empty).
    pub fn payload(&self) -> &[u8] {
        self.buf
            .as_ref()
            .get(usize::from(self.payload)..)
            .unwrap_or(&[])
    }

    /// N: the frame is not used as a reference, so it can be dropped without breaking the
    /// decoding of others.
    pub fn is_non_reference(&self) -> bool {
        self.byte(REQUIRED) & N_BIT != 0
    }

    /// S: the packet starts a VP8 partition.
    pub fn is_start_of_partition(&self) -> bool {
        self.byte(REQUIRED) & S_BIT != 0
    }

    /// PID: the index of the partition the packet starts or continues.
    pub fn partition_index(&self) -> u8 {
        self.byte(REQUIRED) & PID_MASK
    }

    /// The PictureID with its wire width, if I is set.
    pub fn picture_id(&self) -> Option<PictureId> {
        if self.picture_id == 0 {
            return None;
        }
        let bytes = self.buf.as_ref().get(usize::from(self.picture_id)..)?;
        read_picture_id(bytes).map(|(id, _)| id)
    }

    /// TL0PICIDX, the running index of the base temporal layer's frames, if L is set.
    pub fn tl0_pic_idx(&self) -> Option<u8> {
        (self.tl0_pic_idx != 0).then(|| self.byte(usize::from(self.tl0_pic_idx)))
    }

    /// TID, the temporal layer index, if T is set.
    pub fn tid(&self) -> Option<u8> {
        (self.tid_key_idx != 0 && self.extended() & T_BIT != 0)
            .then(|| self.byte(usize::from(self.tid_key_idx)) >> 6)
    }

    /// Y, layer sync: the frame depends only on the base layer (meaningful when T is set).
    pub fn is_layer_sync(&self) -> bool {
        self.tid().is_some() && self.byte(usize::from(self.tid_key_idx)) & 0x20 != 0
    }

    /// KEYIDX, the temporal key frame index, if K is set.
    pub fn key_idx(&self) -> Option<u8> {
        (self.tid_key_idx != 0 && self.extended() & K_BIT != 0)
            .then(|| self.byte(usize::from(self.tid_key_idx)) & 0x1f)
    }

    /// The frame tag, present when the packet starts the frame (S=1, PID=0).
    pub fn frame_tag(&self) -> Option<Vp8FrameTag> {
        if !self.is_start_of_frame() {
            return None;
        }
        let &[a, b, c] = self.payload().get(..FRAME_TAG_LEN)? else {
            return None;
        };
        Some(Vp8FrameTag {
            keyframe: a & 0x01 == 0,
            version: (a >> 1) & 0x07,
            show_frame: a & 0x10 != 0,
            first_partition_size: (u32::from(a) >> 5) | (u32::from(b) << 3) | (u32::from(c) << 11),
        })
    }

    /// A keyframe's size, from the uncompressed data chunk after its frame tag; `None` on
    /// other packets, or if the start code is wrong or the size is 0.
    pub fn keyframe_size(&self) -> Option<Vp8KeyframeSize> {
        if !self.frame_tag()?.keyframe {
            return None;
        }
        let header = self.payload().get(..KEYFRAME_HEADER_LEN)?;
        let (code, size) = header.get(FRAME_TAG_LEN..)?.split_at_checked(3)?;
        let &[w0, w1, h0, h1] = size else {
            return None;
        };
        if code != KEYFRAME_START_CODE {
            return None;
        }
        let (width, height) = (u16::from_le_bytes([w0, w1]), u16::from_le_bytes([h0, h1]));
        if width & 0x3fff == 0 || height & 0x3fff == 0 {
            // No decoder accepts an empty picture: the chunk is damaged.
            return None;
        }
        Some(Vp8KeyframeSize {
            resolution: Resolution {
                width: width & 0x3fff,
                height: height & 0x3fff,
            },
            horizontal_scale: (width >> 14) as u8,
            vertical_scale: (height >> 14) as u8,
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Vp8Packet<T> {
    /// Rewrites the PictureID, keeping its width: `value` is truncated to 7 or 15 bits, as
    /// the field on the wire has. Does nothing if the descriptor has no PictureID.
    pub fn set_picture_id(&mut self, value: u16) {
        set_picture_id_at(self.buf.as_mut(), u16::from(self.picture_id), value);
    }

    /// Rewrites TL0PICIDX. Does nothing if the descriptor has none.
    pub fn set_tl0_pic_idx(&mut self, value: u8) {
        set_tl0_pic_idx_at(self.buf.as_mut(), u16::from(self.tl0_pic_idx), value);
    }
}

impl<T: AsRef<[u8]>> CodecDescriptor for Vp8Packet<T> {
    /// The first packet of a frame (S=1, PID=0) whose frame tag has P clear.
    fn is_keyframe(&self) -> bool {
        self.frame_tag().is_some_and(|tag| tag.keyframe)
    }

    /// S=1 and PID=0: the frame tag is in this packet.
    fn is_start_of_frame(&self) -> bool {
        self.is_start_of_partition() && self.partition_index() == 0
    }

    fn temporal_id(&self) -> Option<u8> {
        self.tid()
    }

    /// VP8 has no spatial layers (simulcast streams are separate SSRCs).
    fn spatial_id(&self) -> Option<u8> {
        None
    }

    fn resolution(&self) -> Option<Resolution> {
        self.keyframe_size().map(|size| size.resolution)
    }
}

#[cfg(test)]
mod tests;
