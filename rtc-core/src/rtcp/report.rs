//! RTCP reports and session packets (RFC 3550 section 6): sender report, receiver report
//! with their report blocks, source description, goodbye and application-defined packets;
//! writers for the sender and receiver reports an SFU emits.

use super::{PT_BYE, PT_RR, PT_SR, RtcpError, Writer, u32_at};
use crate::Ssrc;

const REPORT_BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;

/// One reception report block (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: Ssrc,
    /// Fraction of packets lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24-bit signed on the wire).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last sender report received.
    pub last_sr: u32,
    /// Delay since that sender report, in 1/65536 seconds.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn read(b: &[u8]) -> Self {
        let lost_word = u32_at(b, 4);
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = ((lost_word << 8) as i32) >> 8;
        ReportBlock {
            ssrc: Ssrc(u32_at(b, 0)),
            fraction_lost: (lost_word >> 24) as u8,
            cumulative_lost,
            extended_highest_seq: u32_at(b, 8),
            jitter: u32_at(b, 12),
            last_sr: u32_at(b, 16),
            delay_since_last_sr: u32_at(b, 20),
        }
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), RtcpError> {
        // Clamp the loss to what 24 signed bits hold.
        let lost = self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0x00ff_ffff;
        w.u32(self.ssrc.0)?;
        w.u32(u32::from(self.fraction_lost) << 24 | lost)?;
        w.u32(self.extended_highest_seq)?;
        w.u32(self.jitter)?;
        w.u32(self.last_sr)?;
        w.u32(self.delay_since_last_sr)
    }
}

/// Iterator over the report blocks of an SR or RR.
pub type ReportBlocks<'a> =
    std::iter::Map<std::slice::ChunksExact<'a, u8>, fn(&'a [u8]) -> ReportBlock>;

fn report_blocks(blocks: &[u8]) -> ReportBlocks<'_> {
    blocks.chunks_exact(REPORT_BLOCK_LEN).map(ReportBlock::read)
}

/// Sender information of a sender report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// The sender's SSRC.
    pub ssrc: Ssrc,
    /// NTP timestamp (seconds in the high 32 bits, fraction in the low 32).
    pub ntp_time: u64,
    /// The RTP timestamp corresponding to `ntp_time`.
    pub rtp_time: u32,
    /// Packets sent since the start of transmission.
    pub packet_count: u32,
    /// Payload octets sent since the start of transmission.
    pub octet_count: u32,
}

/// View of a sender report (PT 200).
#[derive(Debug, Clone, Copy)]
pub struct SenderReport<'a> {
    body: &'a [u8],
    blocks: &'a [u8],
}

impl<'a> SenderReport<'a> {
    pub(super) fn parse(count: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        let start = 4 + SENDER_INFO_LEN;
        let blocks = body
            .get(start..start + REPORT_BLOCK_LEN * usize::from(count))
            .ok_or(RtcpError::Truncated)?;
        Ok(Self { body, blocks })
    }

    /// The sender information.
    pub fn sender_info(&self) -> SenderInfo {
        SenderInfo {
            ssrc: Ssrc(u32_at(self.body, 0)),
            ntp_time: u64::from(u32_at(self.body, 4)) << 32 | u64::from(u32_at(self.body, 8)),
            rtp_time: u32_at(self.body, 12),
            packet_count: u32_at(self.body, 16),
            octet_count: u32_at(self.body, 20),
        }
    }

    /// The sender's SSRC.
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(u32_at(self.body, 0))
    }

    /// The report blocks.
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        report_blocks(self.blocks)
    }
}

/// View of a receiver report (PT 201).
#[derive(Debug, Clone, Copy)]
pub struct ReceiverReport<'a> {
    ssrc: Ssrc,
    blocks: &'a [u8],
}

impl<'a> ReceiverReport<'a> {
    pub(super) fn parse(count: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        let blocks = body
            .get(4..4 + REPORT_BLOCK_LEN * usize::from(count))
            .ok_or(RtcpError::Truncated)?;
        Ok(Self {
            ssrc: Ssrc(u32_at(body, 0)),
            blocks,
        })
    }

    /// The reporter's SSRC.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The report blocks.
    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        report_blocks(self.blocks)
    }
}

fn block_count(blocks: &[ReportBlock]) -> Result<u8, RtcpError> {
    u8::try_from(blocks.len())
        .ok()
        .filter(|&n| n < 32)
        .ok_or(RtcpError::TooManyItems)
}

/// Writes a sender report with up to 31 report blocks; returns its length.
pub fn write_sender_report(
    buf: &mut [u8],
    info: &SenderInfo,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    let count = block_count(blocks)?;
    let len = 8 + SENDER_INFO_LEN + REPORT_BLOCK_LEN * blocks.len();
    let mut w = Writer::start(buf, len, count, PT_SR)?;
    w.u32(info.ssrc.0)?;
    w.put(&info.ntp_time.to_be_bytes())?;
    w.u32(info.rtp_time)?;
    w.u32(info.packet_count)?;
    w.u32(info.octet_count)?;
    for block in blocks {
        block.write(&mut w)?;
    }
    Ok(len)
}

/// Writes a receiver report with up to 31 report blocks; returns its length.
pub fn write_receiver_report(
    buf: &mut [u8],
    ssrc: Ssrc,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    let count = block_count(blocks)?;
    let len = 8 + REPORT_BLOCK_LEN * blocks.len();
    let mut w = Writer::start(buf, len, count, PT_RR)?;
    w.u32(ssrc.0)?;
    for block in blocks {
        block.write(&mut w)?;
    }
    Ok(len)
}

/// Writes a goodbye for up to 31 `ssrcs` with an optional reason (at most 255 bytes); returns
/// its length.
pub fn write_bye(
    buf: &mut [u8],
    ssrcs: &[Ssrc],
    reason: Option<&[u8]>,
) -> Result<usize, RtcpError> {
    let count = u8::try_from(ssrcs.len())
        .ok()
        .filter(|&n| n < 32)
        .ok_or(RtcpError::TooManyItems)?;
    let reason_len = match reason {
        Some(reason) => {
            1 + usize::from(u8::try_from(reason.len()).map_err(|_| RtcpError::TooManyItems)?)
        }
        None => 0,
    };
    // The reason is padded with zeros to a 32-bit boundary.
    let len = (4 + 4 * ssrcs.len() + reason_len).next_multiple_of(4);
    let mut w = Writer::start(buf, len, count, PT_BYE)?;
    for ssrc in ssrcs {
        w.u32(ssrc.0)?;
    }
    if let Some(reason) = reason {
        w.put(&[u8::try_from(reason.len()).map_err(|_| RtcpError::TooManyItems)?])?;
        w.put(reason)?;
    }
    let padding = len - w.pos;
    w.put([0u8; 3].get(..padding).unwrap_or_default())?;
    Ok(len)
}

/// View of a source description (PT 202).
#[derive(Debug, Clone, Copy)]
pub struct Sdes<'a> {
    count: u8,
    body: &'a [u8],
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, Copy)]
pub struct SdesChunk<'a> {
    /// The source described.
    pub ssrc: Ssrc,
    items: &'a [u8],
}

/// Splits off the SDES chunk at `pos`: its SSRC, its item bytes (before the terminating
/// null) and where the next chunk starts (after padding to 32 bits).
fn sdes_chunk(body: &[u8], pos: usize) -> Result<(SdesChunk<'_>, usize), RtcpError> {
    let ssrc = Ssrc(
        body.get(pos..pos + 4)
            .ok_or(RtcpError::BadSdes)
            .map(|_| u32_at(body, pos))?,
    );
    let items_start = pos + 4;
    let mut at = items_start;
    loop {
        match body.get(at) {
            None => return Err(RtcpError::BadSdes),
            Some(0) => break,
            Some(_) => {
                let len = usize::from(*body.get(at + 1).ok_or(RtcpError::BadSdes)?);
                at += 2 + len;
            }
        }
    }
    let items = body.get(items_start..at).ok_or(RtcpError::BadSdes)?;
    let next = (at + 1).next_multiple_of(4);
    if next > body.len() {
        return Err(RtcpError::BadSdes);
    }
    Ok((SdesChunk { ssrc, items }, next))
}

impl<'a> Sdes<'a> {
    pub(super) fn parse(count: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        let mut pos = 0;
        for _ in 0..count {
            pos = sdes_chunk(body, pos)?.1;
        }
        Ok(Self { count, body })
    }

    /// The chunks, one per described source.
    pub fn chunks(&self) -> impl Iterator<Item = SdesChunk<'a>> + 'a {
        let body = self.body;
        let mut pos = 0;
        (0..self.count).map_while(move |_| {
            let (chunk, next) = sdes_chunk(body, pos).ok()?;
            pos = next;
            Some(chunk)
        })
    }
}

impl<'a> SdesChunk<'a> {
    /// The items as `(type, value)`, e.g. `(1, b"cname")`.
    pub fn items(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let mut rest = self.items;
        std::iter::from_fn(move || {
            let [kind, len, tail @ ..] = rest else {
                return None;
            };
            let (value, after) = tail.split_at_checked(usize::from(*len))?;
            rest = after;
            Some((*kind, value))
        })
    }

    /// The CNAME item (type 1), if present.
    pub fn cname(&self) -> Option<&'a [u8]> {
        self.items().find(|&(kind, _)| kind == 1).map(|(_, v)| v)
    }
}

/// View of a goodbye (PT 203).
#[derive(Debug, Clone, Copy)]
pub struct Bye<'a> {
    ssrcs: &'a [u8],
    reason: Option<&'a [u8]>,
}

impl<'a> Bye<'a> {
    pub(super) fn parse(count: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        let (ssrcs, rest) = body
            .split_at_checked(4 * usize::from(count))
            .ok_or(RtcpError::Truncated)?;
        let reason = match rest {
            [] => None,
            [len, text @ ..] => Some(text.get(..usize::from(*len)).ok_or(RtcpError::Truncated)?),
        };
        Ok(Self { ssrcs, reason })
    }

    /// The sources leaving.
    pub fn ssrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        self.ssrcs.chunks_exact(4).map(|c| Ssrc(u32_at(c, 0)))
    }

    /// The reason for leaving, if given.
    pub fn reason(&self) -> Option<&'a [u8]> {
        self.reason
    }
}

/// View of an application-defined packet (PT 204).
#[derive(Debug, Clone, Copy)]
pub struct App<'a> {
    subtype: u8,
    body: &'a [u8],
}

impl<'a> App<'a> {
    pub(super) fn parse(subtype: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        if body.len() < 8 {
            return Err(RtcpError::Truncated);
        }
        Ok(Self { subtype, body })
    }

    /// The 5-bit subtype.
    pub fn subtype(&self) -> u8 {
        self.subtype
    }

    /// The sender's SSRC.
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(u32_at(self.body, 0))
    }

    /// The four-character name.
    pub fn name(&self) -> [u8; 4] {
        u32_at(self.body, 4).to_be_bytes()
    }

    /// The application-dependent data.
    pub fn data(&self) -> &'a [u8] {
        self.body.get(8..).unwrap_or(&[])
    }
}
