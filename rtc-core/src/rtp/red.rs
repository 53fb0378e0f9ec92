//! Redundant audio payloads (RFC 2198): a RED payload carries earlier packets' payloads
//! beside the current one, so that a receiver that lost a packet recovers it from the next.
//!
//! The payload starts with one 4-byte header per redundant block (F bit set, the block's
//! payload type, its timestamp offset back from the packet's timestamp in 14 bits, its length
//! in 10 bits), then a 1-byte header for the primary block (F bit clear, its payload type),
//! then the blocks' data in the same order, the primary last. [`write_red`] builds one,
//! [`RedPayload::parse`] validates one and [`RedPayload::blocks`] reads its blocks.

use crate::Pt;

/// The largest timestamp offset a redundant block header holds (14 bits).
pub const MAX_TIMESTAMP_OFFSET: u32 = 0x3fff;
/// The largest redundant block a header describes (10 bits).
pub const MAX_BLOCK_LEN: usize = 0x3ff;
/// Length of a redundant block's header.
const REDUNDANT_HEADER_LEN: usize = 4;
/// The F bit: another header follows.
const FOLLOWS: u8 = 0x80;

/// Why a RED payload is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedError {
    /// The headers run past the payload, or there is no primary header.
    Truncated,
    /// The redundant blocks' lengths add up to more than the payload holds.
    BlocksOverrun,
}

impl std::fmt::Display for RedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedError::Truncated => "RED headers truncated",
            RedError::BlocksOverrun => "RED block lengths overrun the payload",
        })
    }
}

impl std::error::Error for RedError {}

/// One block of a RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedBlock<'a> {
    /// The payload type of its data.
    pub pt: Pt,
    /// How far its timestamp is behind the packet's (0 for the primary block).
    pub timestamp_offset: u16,
    /// Its data.
    pub data: &'a [u8],
}

/// Writes a RED payload into `out`: the `redundant` blocks (oldest first, each a timestamp
/// offset and the data) and then `primary`, every block of payload type `pt`. Returns its
/// length; `None` when a block is longer than [`MAX_BLOCK_LEN`], an offset is above
/// [`MAX_TIMESTAMP_OFFSET`], or `out` is too short.
pub fn write_red<'a, I>(out: &mut [u8], pt: Pt, redundant: I, primary: &[u8]) -> Option<usize>
where
    I: IntoIterator<Item = (u16, &'a [u8])>,
    I::IntoIter: Clone,
{
    let redundant = redundant.into_iter();
    let mut at = 0;
    for (offset, data) in redundant.clone() {
        if u32::from(offset) > MAX_TIMESTAMP_OFFSET || data.len() > MAX_BLOCK_LEN {
            return None;
        }
        let word =
            u32::from(FOLLOWS | (pt.0 & 0x7f)) << 24 | u32::from(offset) << 10 | data.len() as u32;
        out.get_mut(at..at + REDUNDANT_HEADER_LEN)?
            .copy_from_slice(&word.to_be_bytes());
        at += REDUNDANT_HEADER_LEN;
    }
    *out.get_mut(at)? = pt.0 & 0x7f;
    at += 1;
    for data in redundant
        .map(|(_, data)| data)
        .chain(std::iter::once(primary))
    {
        out.get_mut(at..at + data.len())?.copy_from_slice(data);
        at += data.len();
    }
    Some(at)
}

/// Sets the payload type of every block of a valid RED payload with `blocks` redundant
/// blocks (as [`write_red`] wrote it) to `pt`, in place: a copy for a receiver that numbers
/// the codec differently.
pub fn set_block_payload_types(payload: &mut [u8], redundant_blocks: usize, pt: Pt) {
    for index in 0..=redundant_blocks {
        let follows = if index < redundant_blocks { FOLLOWS } else { 0 };
        if let Some(byte) = payload.get_mut(index * REDUNDANT_HEADER_LEN) {
            *byte = follows | (pt.0 & 0x7f);
        }
    }
}

/// A validated RED payload.
#[derive(Debug, Clone, Copy)]
pub struct RedPayload<'a> {
    payload: &'a [u8],
    redundant: usize,
}

impl<'a> RedPayload<'a> {
    /// Validates `payload` (an RTP payload without padding): every header present, the
    /// redundant blocks inside it.
    pub fn parse(payload: &'a [u8]) -> Result<Self, RedError> {
        let mut at = 0;
        let mut redundant = 0;
        let mut data_len = 0;
        loop {
            let first = *payload.get(at).ok_or(RedError::Truncated)?;
            if first & FOLLOWS == 0 {
                at += 1;
                break;
            }
            let header = payload
                .get(at..at + REDUNDANT_HEADER_LEN)
                .ok_or(RedError::Truncated)?;
            data_len += usize::from(
                u16::from_be_bytes([
                    header.get(2).copied().unwrap_or_default(),
                    header.get(3).copied().unwrap_or_default(),
                ]) & 0x3ff,
            );
            redundant += 1;
            at += REDUNDANT_HEADER_LEN;
        }
        if at + data_len > payload.len() {
            return Err(RedError::BlocksOverrun);
        }
        Ok(RedPayload { payload, redundant })
    }

    /// How many redundant blocks it carries.
    pub fn redundant_blocks(&self) -> usize {
        self.redundant
    }

    /// Its blocks: the redundant ones oldest first, then the primary.
    pub fn blocks(&self) -> impl Iterator<Item = RedBlock<'a>> + 'a {
        let (payload, redundant) = (self.payload, self.redundant);
        let headers_len = redundant * REDUNDANT_HEADER_LEN + 1;
        let mut data_at = headers_len;
        (0..=redundant).filter_map(move |index| {
            let header = payload.get(index * REDUNDANT_HEADER_LEN..)?;
            let pt = Pt(header.first()? & 0x7f);
            if index == redundant {
                let data = payload.get(data_at..)?;
                return Some(RedBlock {
                    pt,
                    timestamp_offset: 0,
                    data,
                });
            }
            let word = u32::from_be_bytes(header.get(..4)?.try_into().ok()?);
            let len = (word & 0x3ff) as usize;
            let data = payload.get(data_at..data_at + len)?;
            data_at += len;
            Some(RedBlock {
                pt,
                timestamp_offset: ((word >> 10) & 0x3fff) as u16,
                data,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_payload_reads_back_block_by_block() {
        let mut out = [0u8; 64];
        let older: &[u8] = &[1, 2, 3];
        let previous: &[u8] = &[4, 5];
        let len = write_red(
            &mut out,
            Pt(111),
            [(1920, older), (960, previous)],
            &[6, 7, 8, 9],
        )
        .expect("fits");
        // Two 4-byte headers, the primary's 1-byte one, then 3 + 2 + 4 bytes of data.
        assert_eq!(len, 4 + 4 + 1 + 9);
        // RFC 2198 section 3: F=1, block PT, 14-bit offset, 10-bit length.
        assert_eq!(
            out[..4],
            [0x80 | 111, (1920 >> 6) as u8, ((1920 & 0x3f) << 2) as u8, 3]
        );
        assert_eq!(out[8], 111);
        let red = RedPayload::parse(&out[..len]).expect("valid");
        assert_eq!(red.redundant_blocks(), 2);
        let blocks: Vec<RedBlock<'_>> = red.blocks().collect();
        assert_eq!(blocks.len(), 3);
        assert_eq!((blocks[0].timestamp_offset, blocks[0].data), (1920, older));
        assert_eq!(
            (blocks[1].timestamp_offset, blocks[1].data),
            (960, previous)
        );
        assert_eq!(
            (blocks[2].timestamp_offset, blocks[2].data),
            (0, &[6u8, 7, 8, 9][..])
        );
        assert!(blocks.iter().all(|b| b.pt == Pt(111)));
    }

    #[test]
    fn block_payload_types_are_rewritten_in_place() {
        let mut out = [0u8; 32];
        let len = write_red(&mut out, Pt(111), [(960, &[1u8][..])], &[2]).expect("fits");
        set_block_payload_types(&mut out[..len], 1, Pt(109));
        let red = RedPayload::parse(&out[..len]).expect("valid");
        assert!(red.blocks().all(|b| b.pt == Pt(109)));
        assert_eq!(red.blocks().last().map(|b| b.data), Some(&[2u8][..]));
    }

    #[test]
    fn a_payload_without_redundancy_is_the_primary_alone() {
        let mut out = [0u8; 8];
        let none: [(u16, &[u8]); 0] = [];
        let len = write_red(&mut out, Pt(111), none, &[9, 9]).expect("fits");
        assert_eq!(&out[..len], &[111, 9, 9]);
    }

    #[test]
    fn what_a_header_cannot_describe_is_refused() {
        let mut out = [0u8; 2048];
        let long = [0u8; MAX_BLOCK_LEN + 1];
        assert_eq!(write_red(&mut out, Pt(111), [(960, &long[..])], &[1]), None);
        assert_eq!(
            write_red(&mut out, Pt(111), [(0x4000, &[1u8][..])], &[1]),
            None
        );
        let mut short = [0u8; 4];
        assert_eq!(
            write_red(&mut short, Pt(111), [(960, &[1u8][..])], &[1]),
            None
        );
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert_eq!(RedPayload::parse(&[]).err(), Some(RedError::Truncated));
        assert_eq!(
            RedPayload::parse(&[0x80 | 111, 0, 0]).err(),
            Some(RedError::Truncated)
        );
        // One redundant block of 5 bytes, but only 2 follow the headers.
        assert_eq!(
            RedPayload::parse(&[0x80 | 111, 0x0f, 0x00, 5, 111, 1, 2]).err(),
            Some(RedError::BlocksOverrun)
        );
        assert!(RedPayload::parse(&[111]).is_ok());
    }
}
