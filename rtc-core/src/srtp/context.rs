//! [`SrtpContext`]: SRTP and SRTCP protection of one direction, in place, with per-SSRC
//! rollover counters and replay windows.

use super::SrtpError;
use super::replay::{ReplayWindow, StreamTable, estimate_index};
use super::transform::{PacketKind, RTCP_CLEAR_LEN, SRTCP_E_FLAG, Transform};
use crate::keying::{SrtpMasterKey, SrtpProfile};

/// How many SSRC streams a context tracks, per packet kind, unless told otherwise.
pub const DEFAULT_MAX_STREAMS: usize = 1024;

/// The largest SRTCP index (31 bits).
const MAX_SRTCP_INDEX: u32 = 0x7fff_ffff;

/// SRTP/SRTCP state of one direction: the session keys derived from one master key, and per
/// SSRC the highest packet index (which carries the rollover counter) and a 128-packet replay
/// window.
///
/// Use a context either to protect (what this endpoint sends) or to unprotect (what it
/// receives), never both: the stream state of the two would mix.
///
/// Inbound stream state is created or advanced only after a packet authenticates, so forged
/// packets cannot move it. The number of SSRC streams is bounded (by default
/// [`DEFAULT_MAX_STREAMS`] for RTP and as many for RTCP): at the bound, a packet of a new SSRC
/// fails with [`SrtpError::TooManyStreams`] and the known streams carry on unaffected;
/// [`Self::remove_stream`] frees a slot when a stream ends.
#[derive(Debug)]
pub struct SrtpContext {
    profile: SrtpProfile,
    rtp: Transform,
    rtcp: Transform,
    rtp_streams: StreamTable<ReplayWindow>,
    rtcp_streams: StreamTable<ReplayWindow>,
    next_srtcp_index: u32,
}

impl SrtpContext {
    /// Derives the session keys of `master` and sets up the cipher contexts.
    pub fn new(profile: SrtpProfile, master: &SrtpMasterKey) -> Result<Self, SrtpError> {
        Ok(Self::from_transforms(
            profile,
            Transform::new(profile, master, PacketKind::Rtp)?,
            Transform::new(profile, master, PacketKind::Rtcp)?,
        ))
    }

    pub(crate) fn from_transforms(profile: SrtpProfile, rtp: Transform, rtcp: Transform) -> Self {
        Self {
            profile,
            rtp,
            rtcp,
            rtp_streams: StreamTable::new(DEFAULT_MAX_STREAMS),
            rtcp_streams: StreamTable::new(DEFAULT_MAX_STREAMS),
            next_srtcp_index: 0,
        }
    }

    /// Starts the outbound SRTCP index at `index` (test vectors use arbitrary indices).
    #[cfg(test)]
    pub(crate) fn set_next_srtcp_index(&mut self, index: u32) {
        self.next_srtcp_index = index;
    }

    /// Sets the bound on SSRC streams (per packet kind) this context tracks.
    pub fn with_max_streams(mut self, max_streams: usize) -> Self {
        self.rtp_streams.set_max_streams(max_streams);
        self.rtcp_streams.set_max_streams(max_streams);
        self
    }

    /// The protection profile.
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }

    /// Bytes [`Self::protect_rtp`] appends to an RTP packet.
    pub fn rtp_overhead(&self) -> usize {
        self.rtp.rtp_overhead()
    }

    /// Bytes [`Self::protect_rtcp`] appends to an RTCP packet.
    pub fn rtcp_overhead(&self) -> usize {
        self.rtcp.rtcp_overhead()
    }

    /// Protects the RTP packet in `buf[..len]` in place: encrypts the payload and appends the
    /// tag. `buf` must have [`Self::rtp_overhead`] bytes of room after the packet. Returns the
    /// protected length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let packet = buf.get(..len).ok_or(SrtpError::LengthOutOfBounds)?;
        let header_len = crate::rtp::header_len(packet).map_err(|_| SrtpError::MalformedHeader)?;
        let (seq, ssrc) = rtp_seq_ssrc(packet)?;
        if buf.len() < len + self.rtp.rtp_overhead() {
            return Err(SrtpError::BufferTooSmall);
        }
        let stream = self.rtp_streams.get(ssrc).copied();
        let index = match stream {
            Some(window) => estimate_index(window.highest(), seq)?,
            None => {
                self.rtp_streams.has_room()?;
                u64::from(seq)
            }
        };
        let protected_len = self.rtp.protect_rtp(buf, header_len, len, ssrc, index)?;
        self.record_rtp(ssrc, index)?;
        Ok(protected_len)
    }

    /// Authenticates and decrypts the SRTP packet `buf` in place and returns the length of
    /// the RTP packet now at its start. Fails without touching any state if the packet is
    /// malformed, forged, replayed or too old; `buf` is then left unspecified.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let header_len = crate::rtp::header_len(buf).map_err(|_| SrtpError::MalformedHeader)?;
        let (seq, ssrc) = rtp_seq_ssrc(buf)?;
        if buf.len() < header_len + self.rtp.rtp_overhead() {
            return Err(SrtpError::Truncated);
        }
        let index = match self.rtp_streams.get(ssrc) {
            Some(window) => {
                let index = estimate_index(window.highest(), seq)?;
                window.check(index)?;
                index
            }
            None => {
                // RFC 3711 section 3.3.1: a new stream starts with ROC 0.
                self.rtp_streams.has_room()?;
                u64::from(seq)
            }
        };
        let plain_len = self.rtp.unprotect_rtp(buf, header_len, ssrc, index)?;
        self.record_rtp(ssrc, index)?;
        Ok(plain_len)
    }

    /// Protects the RTCP packet (or compound packet) in `buf[..len]` in place: encrypts all
    /// but the first 8 bytes and appends the E-flag, this context's next SRTCP index and the
    /// tag. `buf` must have [`Self::rtcp_overhead`] bytes of room after the packet. Returns
    /// the protected length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let packet = buf.get(..len).ok_or(SrtpError::LengthOutOfBounds)?;
        let ssrc = rtcp_ssrc(packet)?;
        if buf.len() < len + self.rtcp.rtcp_overhead() {
            return Err(SrtpError::BufferTooSmall);
        }
        let index = self.next_srtcp_index;
        if index > MAX_SRTCP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }
        let protected_len = self.rtcp.protect_rtcp(buf, len, ssrc, index)?;
        self.next_srtcp_index = index + 1;
        Ok(protected_len)
    }

    /// Authenticates and (if its E-flag is set) decrypts the SRTCP packet `buf` in place and
    /// returns the length of the RTCP packet now at its start. Fails without touching any
    /// state if the packet is malformed, forged, replayed or too old.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let ssrc = rtcp_ssrc(buf)?;
        if buf.len() < RTCP_CLEAR_LEN + self.rtcp.rtcp_overhead() {
            return Err(SrtpError::Truncated);
        }
        let word_at = self
            .rtcp
            .srtcp_index_offset(buf.len())
            .ok_or(SrtpError::Truncated)?;
        let Some(&[a, b, c, d]) = buf.get(word_at..word_at + 4) else {
            return Err(SrtpError::Truncated);
        };
        let word = u32::from_be_bytes([a, b, c, d]);
        let index = u64::from(word & !SRTCP_E_FLAG);
        match self.rtcp_streams.get(ssrc) {
            Some(window) => window.check(index)?,
            None => self.rtcp_streams.has_room()?,
        }
        let plain_len = self.rtcp.unprotect_rtcp(buf, ssrc, word)?;
        match self.rtcp_streams.get_mut(ssrc) {
            Some(window) => window.accept(index),
            None => self.rtcp_streams.insert(ssrc, ReplayWindow::new(index))?,
        }
        Ok(plain_len)
    }

    /// Forgets the RTP and RTCP state of `ssrc`, freeing its slots. Returns whether there was
    /// any. An inbound stream that resumes afterwards starts again at ROC 0 with an empty
    /// replay window, so remove only streams that ended.
    pub fn remove_stream(&mut self, ssrc: u32) -> bool {
        let rtp = self.rtp_streams.remove(ssrc);
        let rtcp = self.rtcp_streams.remove(ssrc);
        rtp || rtcp
    }

    /// The highest SRTP packet index (ROC * 65536 + sequence number) accepted on `ssrc`.
    pub fn rtp_index(&self, ssrc: u32) -> Option<u64> {
        self.rtp_streams.get(ssrc).map(ReplayWindow::highest)
    }

    /// The highest SRTCP index accepted from `ssrc`.
    pub fn srtcp_index(&self, ssrc: u32) -> Option<u32> {
        self.rtcp_streams
            .get(ssrc)
            .and_then(|window| u32::try_from(window.highest()).ok())
    }

    /// How many RTP and RTCP streams this context tracks.
    pub fn stream_count(&self) -> (usize, usize) {
        (self.rtp_streams.len(), self.rtcp_streams.len())
    }

    fn record_rtp(&mut self, ssrc: u32, index: u64) -> Result<(), SrtpError> {
        match self.rtp_streams.get_mut(ssrc) {
            Some(window) => {
                window.accept(index);
                Ok(())
            }
            None => self.rtp_streams.insert(ssrc, ReplayWindow::new(index)),
        }
    }
}

/// The sequence number and SSRC of an RTP packet whose header length was validated.
fn rtp_seq_ssrc(packet: &[u8]) -> Result<(u16, u32), SrtpError> {
    let [_, _, s0, s1, _, _, _, _, i0, i1, i2, i3, ..] = *packet else {
        return Err(SrtpError::Truncated);
    };
    Ok((
        u16::from_be_bytes([s0, s1]),
        u32::from_be_bytes([i0, i1, i2, i3]),
    ))
}

/// The sender SSRC of an RTCP packet (the first of a compound packet).
fn rtcp_ssrc(packet: &[u8]) -> Result<u32, SrtpError> {
    let [first, _, _, _, i0, i1, i2, i3, ..] = *packet else {
        return Err(SrtpError::Truncated);
    };
    if first >> 6 != 2 {
        return Err(SrtpError::MalformedHeader);
    }
    Ok(u32::from_be_bytes([i0, i1, i2, i3]))
}
