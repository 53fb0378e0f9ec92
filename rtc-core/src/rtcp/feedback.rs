//! RTCP feedback messages an SFU reads and sends: generic NACK (RFC 4585, PT 205 FMT 1),
//! picture loss indication (RFC 4585, PT 206 FMT 1), full intra request (RFC 5104, PT 206
//! FMT 4) and receiver estimated maximum bitrate (draft-alvestrand-rmcat-remb, PT 206 FMT 15).

use super::{PT_PSFB, PT_RTPFB, RtcpError, Writer, u16_at, u32_at};
use crate::Ssrc;

/// Length of the two SSRCs that open every feedback message.
const FEEDBACK_SSRCS_LEN: usize = 8;

/// Splits a feedback body into (sender ssrc, media ssrc, feedback control information).
pub(super) fn split_feedback(body: &[u8]) -> Result<(Ssrc, Ssrc, &[u8]), RtcpError> {
    let (ssrcs, fci) = body
        .split_at_checked(FEEDBACK_SSRCS_LEN)
        .ok_or(RtcpError::Truncated)?;
    Ok((Ssrc(u32_at(ssrcs, 0)), Ssrc(u32_at(ssrcs, 4)), fci))
}

/// View of a generic NACK: the media source and its lost sequence numbers.
#[derive(Debug, Clone, Copy)]
pub struct Nack<'a> {
    sender_ssrc: Ssrc,
    media_ssrc: Ssrc,
    fci: &'a [u8],
}

impl<'a> Nack<'a> {
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, RtcpError> {
        let (sender_ssrc, media_ssrc, fci) = split_feedback(body)?;
        Ok(Self {
            sender_ssrc,
            media_ssrc,
            fci,
        })
    }

    /// The SSRC of the packet's sender.
    pub fn sender_ssrc(&self) -> Ssrc {
        self.sender_ssrc
    }

    /// The media source whose packets were lost.
    pub fn media_ssrc(&self) -> Ssrc {
        self.media_ssrc
    }

    /// The (PID, BLP) pairs as sent.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + 'a {
        self.fci
            .chunks_exact(4)
            .map(|c| (u16_at(c, 0), u16_at(c, 2)))
    }

    /// Every lost sequence number: each PID followed by the ones its bitmask flags.
    pub fn lost(&self) -> impl Iterator<Item = u16> + 'a {
        self.pairs().flat_map(|(pid, blp)| {
            std::iter::once(pid).chain(
                (0..16u16)
                    .filter(move |bit| blp & (1 << bit) != 0)
                    .map(move |bit| pid.wrapping_add(bit + 1)),
            )
        })
    }
}

/// Writes a generic NACK for `lost` (sequence numbers in ascending order, wrapping allowed:
/// each number is packed into the current PID's bitmask when it lies 1..=16 after it);
/// returns its length.
pub fn write_nack(
    buf: &mut [u8],
    sender_ssrc: Ssrc,
    media_ssrc: Ssrc,
    lost: &[u16],
) -> Result<usize, RtcpError> {
    // The FCI is written after the fixed part first, the header once its length is known.
    let mut fci_len = 0;
    let mut current: Option<(u16, u16)> = None;
    let mut flush = |pair: (u16, u16), fci_len: &mut usize| -> Result<(), RtcpError> {
        let at = 12 + *fci_len;
        let slot = buf.get_mut(at..at + 4).ok_or(RtcpError::BufferTooSmall)?;
        slot.get_mut(..2)
            .ok_or(RtcpError::BufferTooSmall)?
            .copy_from_slice(&pair.0.to_be_bytes());
        slot.get_mut(2..)
            .ok_or(RtcpError::BufferTooSmall)?
            .copy_from_slice(&pair.1.to_be_bytes());
        *fci_len += 4;
        Ok(())
    };
    for &seq in lost {
        match current {
            Some((pid, ref mut blp)) => {
                let distance = seq.wrapping_sub(pid);
                if distance == 0 {
                    continue;
                }
                if distance <= 16 {
                    *blp |= 1 << (distance - 1);
                    continue;
                }
                flush((pid, *blp), &mut fci_len)?;
                current = Some((seq, 0));
            }
            None => current = Some((seq, 0)),
        }
    }
    let Some(last) = current else {
        return Err(RtcpError::InvalidInput);
    };
    flush(last, &mut fci_len)?;
    let len = 12 + fci_len;
    let mut w = Writer::start(buf, len, 1, PT_RTPFB)?;
    w.u32(sender_ssrc.0)?;
    w.u32(media_ssrc.0)?;
    Ok(len)
}

/// View of a picture loss indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pli {
    /// The SSRC of the packet's sender.
    pub sender_ssrc: Ssrc,
    /// The media source that should send a keyframe.
    pub media_ssrc: Ssrc,
}

impl Pli {
    pub(super) fn parse(body: &[u8]) -> Result<Self, RtcpError> {
        let (sender_ssrc, media_ssrc, _) = split_feedback(body)?;
        Ok(Self {
            sender_ssrc,
            media_ssrc,
        })
    }
}

/// Writes a picture loss indication; returns its length (12).
pub fn write_pli(buf: &mut [u8], sender_ssrc: Ssrc, media_ssrc: Ssrc) -> Result<usize, RtcpError> {
    let mut w = Writer::start(buf, 12, 1, PT_PSFB)?;
    w.u32(sender_ssrc.0)?;
    w.u32(media_ssrc.0)?;
    Ok(12)
}

/// View of a full intra request: entries of (media source, command sequence number).
#[derive(Debug, Clone, Copy)]
pub struct Fir<'a> {
    sender_ssrc: Ssrc,
    fci: &'a [u8],
}

impl<'a> Fir<'a> {
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, RtcpError> {
        let (sender_ssrc, _, fci) = split_feedback(body)?;
        Ok(Self { sender_ssrc, fci })
    }

    /// The SSRC of the packet's sender.
    pub fn sender_ssrc(&self) -> Ssrc {
        self.sender_ssrc
    }

    /// The requests: which source should send a keyframe, and the command sequence number
    /// (repeats of one request carry the same number).
    pub fn entries(&self) -> impl Iterator<Item = (Ssrc, u8)> + 'a {
        self.fci
            .chunks_exact(8)
            .map(|c| (Ssrc(u32_at(c, 0)), (u32_at(c, 4) >> 24) as u8))
    }
}

/// Writes a full intra request with one entry per `(media ssrc, command sequence number)`;
/// returns its length.
pub fn write_fir(
    buf: &mut [u8],
    sender_ssrc: Ssrc,
    entries: &[(Ssrc, u8)],
) -> Result<usize, RtcpError> {
    let len = 12 + 8 * entries.len();
    let mut w = Writer::start(buf, len, 4, PT_PSFB)?;
    w.u32(sender_ssrc.0)?;
    // RFC 5104 section 4.3.1.2: the media source field is unused and set to 0.
    w.u32(0)?;
    for &(ssrc, seq) in entries {
        w.u32(ssrc.0)?;
        w.u32(u32::from(seq) << 24)?;
    }
    Ok(len)
}

/// View of a receiver estimated maximum bitrate.
#[derive(Debug, Clone, Copy)]
pub struct Remb<'a> {
    sender_ssrc: Ssrc,
    bitrate: u64,
    ssrcs: &'a [u8],
}

impl<'a> Remb<'a> {
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, RtcpError> {
        let (sender_ssrc, _, fci) = split_feedback(body)?;
        let [_, _, _, _, count, _, _, _, ..] = *fci else {
            return Err(RtcpError::Truncated);
        };
        let word = u32_at(fci, 4);
        let exponent = (word >> 18) & 0x3f;
        let mantissa = u64::from(word & 0x3_ffff);
        // A huge exponent means "unlimited"; saturate instead of overflowing.
        let bitrate = if mantissa == 0 {
            0
        } else if mantissa.leading_zeros() < exponent {
            u64::MAX
        } else {
            mantissa << exponent
        };
        let ssrcs = fci
            .get(8..8 + 4 * usize::from(count))
            .ok_or(RtcpError::Truncated)?;
        Ok(Self {
            sender_ssrc,
            bitrate,
            ssrcs,
        })
    }

    /// The SSRC of the packet's sender.
    pub fn sender_ssrc(&self) -> Ssrc {
        self.sender_ssrc
    }

    /// The estimated maximum bitrate in bits per second.
    pub fn bitrate(&self) -> u64 {
        self.bitrate
    }

    /// The media sources the estimate applies to.
    pub fn ssrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        self.ssrcs.chunks_exact(4).map(|c| Ssrc(u32_at(c, 0)))
    }
}

/// Writes a REMB for `bitrate` bits per second (rounded down to an 18-bit mantissa) over
/// up to 255 media sources; returns its length.
pub fn write_remb(
    buf: &mut [u8],
    sender_ssrc: Ssrc,
    bitrate: u64,
    ssrcs: &[Ssrc],
) -> Result<usize, RtcpError> {
    let count = u8::try_from(ssrcs.len()).map_err(|_| RtcpError::TooManyItems)?;
    let exponent = (64 - bitrate.leading_zeros()).saturating_sub(18);
    let mantissa = (bitrate >> exponent) as u32;
    let len = 20 + 4 * ssrcs.len();
    let mut w = Writer::start(buf, len, 15, PT_PSFB)?;
    w.u32(sender_ssrc.0)?;
    w.u32(0)?;
    w.put(b"REMB")?;
    w.u32(u32::from(count) << 24 | exponent << 18 | mantissa)?;
    for ssrc in ssrcs {
        w.u32(ssrc.0)?;
    }
    Ok(len)
}
