//! RTP (RFC 3550) wire view: [`RtpPacket`] validates a datagram once in
//! [`RtpPacket::parse`] and then reads every header field without any possibility of panic,
//! and rewrites the fields an SFU changes per subscriber (SSRC, sequence number, timestamp,
//! payload type, marker) in place. Header extensions (RFC 8285) live in [`ext`], 64-bit
//! unwrapping of sequence numbers and timestamps in [`unwrap`], the restore of RTX packets
//! (RFC 4588) in [`rtx`], redundant audio payloads (RFC 2198) in [`red`].

pub mod ext;
pub mod red;
pub mod rtx;
pub mod unwrap;

use crate::{Pt, Ssrc};
pub use ext::{ExtensionForm, ExtensionIter};
pub use unwrap::{SeqNoUnwrapper, TimestampUnwrapper};

/// Length of the fixed RTP header.
pub const FIXED_HEADER_LEN: usize = 12;

/// Offset of the byte with the marker bit and the payload type.
const MARKER_PT_AT: usize = 1;
/// Offset of the sequence number.
const SEQ_AT: usize = 2;
/// Offset of the timestamp.
const TIMESTAMP_AT: usize = 4;
/// Offset of the SSRC.
const SSRC_AT: usize = 8;

/// Writes the fixed-header fields an SFU changes in each copy (the payload type beside the
/// marker bit, the sequence number, the timestamp and the SSRC) straight into `header`, at
/// their RFC 3550 offsets, without a view. For a buffer that holds a header already known
/// to be valid, such as a copy of a parsed packet's header: making a view of it would
/// validate its extension block again, which per copy costs more than the rewrite itself.
/// `None` when `header` is shorter than the fixed header.
pub fn write_fixed_fields(
    header: &mut [u8],
    pt: Pt,
    seq: u16,
    timestamp: u32,
    ssrc: Ssrc,
) -> Option<()> {
    let fixed: &mut [u8; FIXED_HEADER_LEN] = header.get_mut(..FIXED_HEADER_LEN)?.try_into().ok()?;
    fixed[MARKER_PT_AT] = (fixed[MARKER_PT_AT] & 0x80) | (pt.0 & 0x7f);
    fixed[SEQ_AT..SEQ_AT + 2].copy_from_slice(&seq.to_be_bytes());
    fixed[TIMESTAMP_AT..TIMESTAMP_AT + 4].copy_from_slice(&timestamp.to_be_bytes());
    fixed[SSRC_AT..SSRC_AT + 4].copy_from_slice(&ssrc.0.to_be_bytes());
    Some(())
}

/// Errors found while validating an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtpError {
    /// Fewer bytes than the fixed header, CSRC list or extension block need.
    Truncated,
    /// The version field is not 2.
    BadVersion,
    /// The P bit is set but the padding length byte is zero or reaches into the header.
    BadPadding,
    /// An RFC 8285 header extension element runs past the end of the extension block.
    BadExtension,
}

impl std::fmt::Display for RtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RtpError::Truncated => "packet truncated",
            RtpError::BadVersion => "RTP version is not 2",
            RtpError::BadPadding => "padding length is zero or longer than the payload",
            RtpError::BadExtension => "header extension element overruns the extension block",
        })
    }
}

impl std::error::Error for RtpError {}

/// Length of the RTP header (fixed part, CSRC list and header extension block) of `packet`,
/// that is, the offset where the payload starts. Works on SRTP packets too, since the header
/// is sent in the clear. Padding is not examined (it is encrypted under SRTP).
pub fn header_len(packet: &[u8]) -> Result<usize, RtpError> {
    let first = *packet.first().ok_or(RtpError::Truncated)?;
    if first >> 6 != 2 {
        return Err(RtpError::BadVersion);
    }
    let csrc_count = usize::from(first & 0x0f);
    let mut len = FIXED_HEADER_LEN + 4 * csrc_count;
    if packet.len() < len {
        return Err(RtpError::Truncated);
    }
    if first & 0x10 != 0 {
        let Some(&[_, _, hi, lo]) = packet.get(len..len + 4) else {
            return Err(RtpError::Truncated);
        };
        let words = usize::from(u16::from_be_bytes([hi, lo]));
        len += 4 + 4 * words;
        if packet.len() < len {
            return Err(RtpError::Truncated);
        }
    }
    Ok(len)
}

/// Adds a header-extension element with `id` and `data_len` zero bytes of data to the
/// header at the start of `buf` (`header_len` long, as a parsed packet's header is, with
/// nothing after it that matters): into the extension block's padding when it fits there,
/// else by growing the block, or by adding a one-byte block when there is none. Returns the
/// new header length and the offset of the element's data. `None` (and `buf` unchanged)
/// when `buf` has no room, the block's form cannot carry the id or length, or the block
/// stops processing early (a one-byte id 15).
pub fn add_extension(
    buf: &mut [u8],
    header_len: usize,
    id: u8,
    data_len: usize,
) -> Option<(usize, usize)> {
    let first = *buf.first()?;
    let block_at = FIXED_HEADER_LEN + 4 * usize::from(first & 0x0f);
    let round_up = |n: usize| n.div_ceil(4) * 4;
    let one_byte_fits = (1..=14).contains(&id) && (1..=16).contains(&data_len);
    // The element header of each form, its length byte being the data length (less one in
    // the one-byte form).
    let one_byte_header = (id << 4) | (data_len.saturating_sub(1) as u8 & 0x0f);
    if first & 0x10 == 0 {
        if header_len != block_at || !one_byte_fits {
            return None;
        }
        let elements = round_up(1 + data_len);
        let new_len = block_at + 4 + elements;
        let block = buf.get_mut(block_at..new_len)?;
        block.fill(0);
        let words = u16::try_from(elements / 4).ok()?;
        let [p0, p1] = 0xBEDE_u16.to_be_bytes();
        let [w0, w1] = words.to_be_bytes();
        if let [b0, b1, b2, b3, element, ..] = block {
            (*b0, *b1, *b2, *b3, *element) = (p0, p1, w0, w1, one_byte_header);
        }
        if let Some(first) = buf.first_mut() {
            *first |= 0x10;
        }
        return Some((new_len, block_at + 5));
    }
    let profile = buf.get(block_at..block_at + 2)?;
    let form =
        ExtensionForm::from_profile(u16::from_be_bytes([*profile.first()?, *profile.get(1)?]));
    let element_header: &[u8] = match form {
        ExtensionForm::OneByte if one_byte_fits => &[one_byte_header],
        ExtensionForm::TwoByte if id != 0 && data_len <= 255 => &[id, data_len as u8],
        _ => return None,
    };
    let elements_at = block_at + 4;
    let used = ext::used_len(form, buf.get(elements_at..header_len)?)?;
    let start = elements_at + used;
    let end = start + element_header.len() + data_len;
    let new_len = header_len.max(elements_at + round_up(end - elements_at));
    let words = u16::try_from((new_len - elements_at) / 4).ok()?;
    let element = buf.get_mut(start..new_len)?;
    element.fill(0);
    element
        .get_mut(..element_header.len())?
        .copy_from_slice(element_header);
    buf.get_mut(block_at + 2..block_at + 4)?
        .copy_from_slice(&words.to_be_bytes());
    Some((new_len, start + element_header.len()))
}

/// A borrowed view over an RTP packet, validated once at construction.
///
/// After [`RtpPacket::parse`] (or [`RtpPacket::parse_header_only`]) succeeded, no accessor
/// or setter can fail or panic: the offsets they use were checked against the buffer.
#[derive(Debug, Clone)]
pub struct RtpPacket<T> {
    buf: T,
    header_len: usize,
    payload_end: usize,
    /// Where the extension elements start and end (both 0 without an extension block).
    ext_start: usize,
    ext_end: usize,
    ext_form: ExtensionForm,
}

impl<T: AsRef<[u8]>> RtpPacket<T> {
    /// Validates a plaintext RTP packet: version, CSRC list, extension block and its
    /// RFC 8285 elements, and padding (if P is set the last byte counts the padding, at
    /// least 1 and not reaching into the header).
    pub fn parse(buf: T) -> Result<Self, RtpError> {
        let mut packet = Self::parse_header_only(buf)?;
        let bytes = packet.buf.as_ref();
        if bytes.first().is_some_and(|b| b & 0x20 != 0) {
            let pad = usize::from(*bytes.last().ok_or(RtpError::Truncated)?);
            if pad == 0 || pad > bytes.len() - packet.header_len {
                return Err(RtpError::BadPadding);
            }
            packet.payload_end = bytes.len() - pad;
        }
        Ok(packet)
    }

    /// Validates only the header (everything [`RtpPacket::parse`] checks except padding).
    ///
    /// For SRTP packets: the payload and the padding are encrypted (and followed by the
    /// authentication tag), so the padding length byte is meaningless before unprotection.
    /// On such a view [`RtpPacket::payload`] is everything after the header and
    /// [`RtpPacket::padding_len`] is 0.
    pub fn parse_header_only(buf: T) -> Result<Self, RtpError> {
        let bytes = buf.as_ref();
        let header_len = header_len(bytes)?;
        let (ext_start, ext_end, ext_form) = match bytes.first() {
            Some(first) if first & 0x10 != 0 => {
                let block = FIXED_HEADER_LEN + 4 * usize::from(first & 0x0f);
                let profile = bytes
                    .get(block..block + 2)
                    .and_then(|p| p.try_into().ok())
                    .map_or(0, u16::from_be_bytes);
                let form = ExtensionForm::from_profile(profile);
                let elements = bytes
                    .get(block + 4..header_len)
                    .ok_or(RtpError::Truncated)?;
                ext::validate(form, elements)?;
                (block + 4, header_len, form)
            }
            _ => (0, 0, ExtensionForm::Other),
        };
        Ok(Self {
            header_len,
            payload_end: bytes.len(),
            ext_start,
            ext_end,
            ext_form,
            buf,
        })
    }

    fn byte(&self, at: usize) -> u8 {
        self.buf.as_ref().get(at).copied().unwrap_or(0)
    }

    fn word(&self, at: usize) -> u32 {
        match self.buf.as_ref().get(at..at + 4) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    /// The whole packet as given.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The marker bit (end of frame for video).
    pub fn marker(&self) -> bool {
        self.byte(1) & 0x80 != 0
    }

    /// The payload type.
    pub fn payload_type(&self) -> Pt {
        Pt(self.byte(1) & 0x7f)
    }

    /// The 16-bit sequence number on the wire.
    pub fn sequence_number(&self) -> u16 {
        (self.word(0) & 0xffff) as u16
    }

    /// The RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        self.word(4)
    }

    /// The synchronization source.
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(self.word(8))
    }

    /// The contributing sources (empty unless a mixer produced the packet).
    pub fn csrcs(&self) -> impl Iterator<Item = Ssrc> + '_ {
        let count = usize::from(self.byte(0) & 0x0f);
        let list = self
            .buf
            .as_ref()
            .get(FIXED_HEADER_LEN..FIXED_HEADER_LEN + 4 * count)
            .unwrap_or(&[]);
        list.chunks_exact(4)
            .map(|c| Ssrc(c.try_into().map_or(0, u32::from_be_bytes)))
    }

    /// Whether the header carries an extension block (X bit).
    pub fn has_extension(&self) -> bool {
        self.byte(0) & 0x10 != 0
    }

    /// Length of the header: fixed part, CSRCs and extension block.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload, without padding.
    pub fn payload(&self) -> &[u8] {
        self.buf
            .as_ref()
            .get(self.header_len..self.payload_end)
            .unwrap_or(&[])
    }

    /// Number of padding bytes at the end (0 if P is not set or on a header-only view).
    pub fn padding_len(&self) -> usize {
        self.buf.as_ref().len() - self.payload_end
    }

    /// The RFC 8285 form of the extension block (`Other` for none or a foreign profile).
    pub fn extension_form(&self) -> ExtensionForm {
        self.ext_form
    }

    /// The header extension elements as `(id, data)`, padding skipped.
    pub fn extensions(&self) -> ExtensionIter<'_> {
        ExtensionIter::new(self.ext_form, self.ext_elements())
    }

    /// The data of the first extension element with this id.
    pub fn extension(&self, id: u8) -> Option<&[u8]> {
        self.extensions().find(|&(i, _)| i == id).map(|(_, d)| d)
    }

    /// Copies the header (fixed part, CSRCs, extension block) to the start of `buf` and
    /// returns a header-only view of the copy, to rewrite in place. The copy has this view's
    /// bytes and so its offsets: nothing is validated again. `None` when `buf` is shorter
    /// than the header.
    pub fn copy_header_into<'b>(&self, buf: &'b mut [u8]) -> Option<RtpPacket<&'b mut [u8]>> {
        let header_len = self.header_len;
        let copy = buf.get_mut(..header_len)?;
        copy.copy_from_slice(self.buf.as_ref().get(..header_len)?);
        Some(RtpPacket {
            buf: copy,
            header_len,
            payload_end: header_len,
            ext_start: self.ext_start,
            ext_end: self.ext_end,
            ext_form: self.ext_form,
        })
    }

    fn ext_elements(&self) -> &[u8] {
        self.buf
            .as_ref()
            .get(self.ext_start..self.ext_end)
            .unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RtpPacket<T> {
    fn fixed_mut(&mut self) -> Option<&mut [u8; FIXED_HEADER_LEN]> {
        self.buf
            .as_mut()
            .get_mut(..FIXED_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
    }

    /// Rewrites the marker bit.
    pub fn set_marker(&mut self, marker: bool) {
        if let Some(h) = self.fixed_mut() {
            h[MARKER_PT_AT] = (h[MARKER_PT_AT] & 0x7f) | (u8::from(marker) << 7);
        }
    }

    /// Rewrites the payload type (the low 7 bits are used).
    pub fn set_payload_type(&mut self, pt: Pt) {
        if let Some(h) = self.fixed_mut() {
            h[MARKER_PT_AT] = (h[MARKER_PT_AT] & 0x80) | (pt.0 & 0x7f);
        }
    }

    /// Rewrites the sequence number.
    pub fn set_sequence_number(&mut self, seq: u16) {
        if let Some(h) = self.fixed_mut() {
            h[SEQ_AT..SEQ_AT + 2].copy_from_slice(&seq.to_be_bytes());
        }
    }

    /// Rewrites the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        if let Some(h) = self.fixed_mut() {
            h[TIMESTAMP_AT..TIMESTAMP_AT + 4].copy_from_slice(&ts.to_be_bytes());
        }
    }

    /// Rewrites the SSRC.
    pub fn set_ssrc(&mut self, ssrc: Ssrc) {
        if let Some(h) = self.fixed_mut() {
            h[SSRC_AT..SSRC_AT + 4].copy_from_slice(&ssrc.0.to_be_bytes());
        }
    }

    /// Mutable access to the data of the first extension element with this id, e.g. to
    /// rewrite a transport-wide sequence number.
    pub fn extension_mut(&mut self, id: u8) -> Option<&mut [u8]> {
        let (start, end) = (self.ext_start, self.ext_end);
        let form = self.ext_form;
        let elements = self.buf.as_mut().get_mut(start..end)?;
        ext::element_mut(form, elements, id)
    }

    /// Rewrites every extension id through `map` (publisher id -> subscriber id). An element
    /// whose id maps to `None`, or to an id its form cannot carry, is zero-filled, which
    /// turns it into padding in both RFC 8285 forms.
    pub fn remap_extension_ids(&mut self, map: impl FnMut(u8) -> Option<u8>) {
        let (start, end) = (self.ext_start, self.ext_end);
        let form = self.ext_form;
        if let Some(elements) = self.buf.as_mut().get_mut(start..end) {
            ext::remap(form, elements, map);
        }
    }
}

#[cfg(test)]
mod tests;
