//! Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
//! extensions-01, RTCP PT 205 FMT 15): a view that iterates `(sequence number, receive
//! delta)` without allocating, and a writer that encodes received-packet records with
//! run-length and status-vector chunks.
//!
//! Layout of the feedback control information: base sequence number (16), packet status
//! count (16), reference time (24, in 64 ms), feedback packet count (8), then packet status
//! chunks (16 bits each) covering `status count` packets, then one receive delta per
//! received packet (8 bits unsigned for "small", 16 bits signed for "large"), in 250 us.

use super::feedback::split_feedback;
use super::{PT_RTPFB, RtcpError, Writer, u16_at, u32_at};
use crate::{SeqNo, Ssrc};

/// Status symbol: packet not received.
const NOT_RECEIVED: u8 = 0;
/// Status symbol: received, delta in one unsigned byte.
const SMALL_DELTA: u8 = 1;
/// Status symbol: received, delta in two signed bytes.
const LARGE_DELTA: u8 = 2;

/// Longest run a run-length chunk can carry (13 bits).
const MAX_RUN: usize = 0x1fff;
/// Microseconds per receive-delta tick.
const DELTA_TICK_US: u64 = 250;
/// Receive-delta ticks per reference-time unit (64 ms).
const TICKS_PER_REFERENCE: i64 = 256;

/// The status symbol at `index` of `chunk` and how many symbols the chunk holds.
fn chunk_symbol(chunk: u16, index: usize) -> (u8, usize) {
    if chunk & 0x8000 == 0 {
        (((chunk >> 13) & 0x3) as u8, usize::from(chunk & 0x1fff))
    } else if chunk & 0x4000 == 0 {
        let shift = 13usize.saturating_sub(index);
        (((chunk >> shift) & 0x1) as u8, 14)
    } else {
        let shift = 12usize.saturating_sub(2 * index);
        (((chunk >> shift) & 0x3) as u8, 7)
    }
}

/// Bytes of receive delta a status symbol carries.
fn delta_size(symbol: u8) -> usize {
    match symbol {
        SMALL_DELTA => 1,
        LARGE_DELTA => 2,
        _ => 0,
    }
}

/// View of a transport-wide congestion control feedback packet.
#[derive(Debug, Clone, Copy)]
pub struct TransportCc<'a> {
    sender_ssrc: Ssrc,
    media_ssrc: Ssrc,
    fci: &'a [u8],
    /// Offset in `fci` where the receive deltas start.
    deltas_at: usize,
}

impl<'a> TransportCc<'a> {
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, RtcpError> {
        let (sender_ssrc, media_ssrc, fci) = split_feedback(body)?;
        if fci.len() < 8 {
            return Err(RtcpError::Truncated);
        }
        let mut remaining = usize::from(u16_at(fci, 2));
        let mut pos = 8;
        let mut delta_bytes = 0;
        while remaining > 0 {
            let chunk = fci
                .get(pos..pos + 2)
                .map(|_| u16_at(fci, pos))
                .ok_or(RtcpError::Truncated)?;
            pos += 2;
            let (first, capacity) = chunk_symbol(chunk, 0);
            let covered = capacity.min(remaining);
            if chunk & 0x8000 == 0 {
                if first == 3 && covered > 0 {
                    return Err(RtcpError::BadTransportCc);
                }
                delta_bytes += covered * delta_size(first);
            } else {
                for index in 0..covered {
                    let (symbol, _) = chunk_symbol(chunk, index);
                    if symbol == 3 {
                        return Err(RtcpError::BadTransportCc);
                    }
                    delta_bytes += delta_size(symbol);
                }
            }
            remaining -= covered;
        }
        if pos + delta_bytes > fci.len() {
            return Err(RtcpError::BadTransportCc);
        }
        Ok(Self {
            sender_ssrc,
            media_ssrc,
            fci,
            deltas_at: pos,
        })
    }

    /// The SSRC of the packet's sender.
    pub fn sender_ssrc(&self) -> Ssrc {
        self.sender_ssrc
    }

    /// The media source field (unused by the draft; usually the first media SSRC).
    pub fn media_ssrc(&self) -> Ssrc {
        self.media_ssrc
    }

    /// Transport-wide sequence number of the first packet described.
    pub fn base_seq(&self) -> u16 {
        u16_at(self.fci, 0)
    }

    /// Number of packets described, received or not.
    pub fn status_count(&self) -> u16 {
        u16_at(self.fci, 2)
    }

    /// Reference time in 64 ms units (24 bits).
    pub fn reference_time(&self) -> u32 {
        u32_at(self.fci, 4) >> 8
    }

    /// The feedback packet counter, to detect lost feedback.
    pub fn fb_count(&self) -> u8 {
        u32_at(self.fci, 4) as u8
    }

    /// Every described packet as `(sequence number, receive delta in 250 us units)`, the
    /// delta `None` when the packet was not received. The first delta is relative to the
    /// reference time, each following one to the previous received packet.
    pub fn statuses(&self) -> TwccStatuses<'a> {
        TwccStatuses {
            fci: self.fci,
            seq: self.base_seq(),
            remaining: self.status_count(),
            chunk_at: 8,
            index: 0,
            delta_at: self.deltas_at,
        }
    }
}

/// Iterator over the packets described by a [`TransportCc`].
#[derive(Debug, Clone)]
pub struct TwccStatuses<'a> {
    fci: &'a [u8],
    seq: u16,
    remaining: u16,
    chunk_at: usize,
    index: usize,
    delta_at: usize,
}

impl Iterator for TwccStatuses<'_> {
    type Item = (u16, Option<i16>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (symbol, capacity) = loop {
            let chunk = self.fci.get(self.chunk_at..self.chunk_at + 2)?;
            let (symbol, capacity) = chunk_symbol(u16_at(chunk, 0), self.index);
            if self.index < capacity {
                break (symbol, capacity);
            }
            // An empty run-length chunk: move on.
            self.chunk_at += 2;
            self.index = 0;
        };
        self.index += 1;
        if self.index >= capacity {
            self.chunk_at += 2;
            self.index = 0;
        }
        let delta = match symbol {
            SMALL_DELTA => {
                let d = *self.fci.get(self.delta_at)?;
                self.delta_at += 1;
                Some(i16::from(d))
            }
            LARGE_DELTA => {
                self.fci.get(self.delta_at + 1)?;
                let d = u16_at(self.fci, self.delta_at) as i16;
                self.delta_at += 2;
                Some(d)
            }
            _ => None,
        };
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        self.remaining -= 1;
        Some((seq, delta))
    }
}

/// What [`write_transport_cc`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwccWritten {
    /// Length of the packet in bytes.
    pub len: usize,
    /// How many records it covers; the rest belong in another feedback packet.
    pub records: usize,
}

/// Appends `bytes` at `*pos`.
fn put(buf: &mut [u8], bytes: &[u8], pos: &mut usize) -> Result<(), RtcpError> {
    buf.get_mut(*pos..*pos + bytes.len())
        .ok_or(RtcpError::BufferTooSmall)?
        .copy_from_slice(bytes);
    *pos += bytes.len();
    Ok(())
}

/// Receive-delta ticks (250 us) of an arrival time in microseconds.
fn ticks(arrival_us: u64) -> i64 {
    i64::try_from(arrival_us / DELTA_TICK_US).unwrap_or(i64::MAX)
}

fn delta_symbol(delta: i64) -> u8 {
    if (0..=255).contains(&delta) {
        SMALL_DELTA
    } else {
        LARGE_DELTA
    }
}

/// The status symbols of consecutive sequence numbers from the first record's onwards.
#[derive(Debug, Clone)]
struct Symbols<'r> {
    records: &'r [(SeqNo, u64)],
    seq: u64,
    prev_ticks: i64,
}

impl Iterator for Symbols<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&(seq, arrival), rest) = self.records.split_first()?;
        let symbol = if seq.0 == self.seq {
            self.records = rest;
            let now = ticks(arrival);
            let delta = now - self.prev_ticks;
            self.prev_ticks = now;
            delta_symbol(delta)
        } else {
            NOT_RECEIVED
        };
        self.seq += 1;
        Some(symbol)
    }
}

/// Writes transport-wide feedback for `records` of `(transport-wide sequence number,
/// arrival time in microseconds)`, sorted by strictly increasing sequence number. Missing
/// numbers between records are reported as not received. The packet ends early (see
/// [`TwccWritten::records`]) before a record whose receive delta would not fit 16 bits
/// (more than 8 s from the previous one) or that would make it describe more than 65535
/// packets.
pub fn write_transport_cc(
    buf: &mut [u8],
    sender_ssrc: Ssrc,
    media_ssrc: Ssrc,
    fb_count: u8,
    records: &[(SeqNo, u64)],
) -> Result<TwccWritten, RtcpError> {
    let Some(&(base, _)) = records.first() else {
        return Err(RtcpError::InvalidInput);
    };
    write_transport_cc_from(buf, sender_ssrc, media_ssrc, fb_count, base, records)
}

/// [`write_transport_cc`] with the feedback starting at `base`, at or before the first
/// record: the numbers from `base` up to the first record are reported as not received (a
/// receiver reports the losses since its previous feedback so).
pub fn write_transport_cc_from(
    buf: &mut [u8],
    sender_ssrc: Ssrc,
    media_ssrc: Ssrc,
    fb_count: u8,
    base: SeqNo,
    records: &[(SeqNo, u64)],
) -> Result<TwccWritten, RtcpError> {
    let Some(&(first_seq, first_arrival)) = records.first() else {
        return Err(RtcpError::InvalidInput);
    };
    if first_seq < base || first_seq.0 - base.0 > 0xfffe {
        return Err(RtcpError::InvalidInput);
    }
    let reference = first_arrival / (DELTA_TICK_US * TICKS_PER_REFERENCE as u64);
    let reference_ticks = i64::try_from(reference).unwrap_or(i64::MAX) * TICKS_PER_REFERENCE;

    // How many records one packet can describe.
    let mut count = 0;
    let mut prev_ticks = reference_ticks;
    let mut prev_seq = None;
    for &(seq, arrival) in records {
        if prev_seq.is_some_and(|p| seq <= p) {
            return Err(RtcpError::InvalidInput);
        }
        let delta = ticks(arrival) - prev_ticks;
        if i16::try_from(delta).is_err() || seq.0 - base.0 > 0xfffe {
            break;
        }
        prev_seq = Some(seq);
        prev_ticks = ticks(arrival);
        count += 1;
    }
    let records = records.get(..count).unwrap_or(&[]);
    let last = prev_seq.unwrap_or(base);
    let status_count = (last.0 - base.0 + 1) as usize;

    // Chunks go right after the fixed part; their number is known only once encoded.
    let mut pos = 20;
    let mut symbols = Symbols {
        records,
        seq: base.0,
        prev_ticks: reference_ticks,
    };
    let mut left = status_count;
    while left > 0 {
        let first = symbols.clone().next().unwrap_or(NOT_RECEIVED);
        let run = symbols
            .clone()
            .take(left.min(MAX_RUN))
            .take_while(|&s| s == first)
            .count();
        let vector_len = left.min(14);
        let one_bit = symbols.clone().take(vector_len).all(|s| s <= SMALL_DELTA);
        let (chunk, used) = if run >= 14 || (run >= 7 && !one_bit) || run == left {
            ((u16::from(first) << 13) | run as u16, run)
        } else if one_bit {
            let mut chunk = 0x8000u16;
            for (i, s) in symbols.clone().take(vector_len).enumerate() {
                chunk |= u16::from(s) << (13 - i);
            }
            (chunk, vector_len)
        } else {
            let mut chunk = 0xc000u16;
            let used = left.min(7);
            for (i, s) in symbols.clone().take(used).enumerate() {
                chunk |= u16::from(s) << (12 - 2 * i);
            }
            (chunk, used)
        };
        put(buf, &chunk.to_be_bytes(), &mut pos)?;
        symbols.nth(used - 1);
        left -= used;
    }

    let mut prev_ticks = reference_ticks;
    for &(_, arrival) in records {
        let delta = ticks(arrival) - prev_ticks;
        prev_ticks = ticks(arrival);
        if delta_symbol(delta) == SMALL_DELTA {
            put(buf, &[delta as u8], &mut pos)?;
        } else {
            put(buf, &(delta as i16).to_be_bytes(), &mut pos)?;
        }
    }
    // Zero bytes up to the 32-bit boundary; the deltas' count tells readers where to stop.
    let len = pos.next_multiple_of(4);
    buf.get_mut(pos..len)
        .ok_or(RtcpError::BufferTooSmall)?
        .fill(0);

    let mut w = Writer::start(buf, len, 15, PT_RTPFB)?;
    w.u32(sender_ssrc.0)?;
    w.u32(media_ssrc.0)?;
    w.put(&(base.0 as u16).to_be_bytes())?;
    w.put(&(status_count as u16).to_be_bytes())?;
    w.u32(((reference as u32) << 8) | u32::from(fb_count))?;
    Ok(TwccWritten {
        len,
        records: count,
    })
}
