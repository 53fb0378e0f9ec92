//! RTCP (RFC 3550, RFC 4585, RFC 5104, REMB, transport-wide congestion control): iteration
//! over a compound packet yielding typed borrowed views, and writers for the packets an SFU
//! sends. Every view is validated when the compound iterator yields it, so its accessors
//! and iterators cannot fail afterwards.
//!
//! - [`report`]: sender and receiver reports, SDES, BYE, APP.
//! - [`feedback`]: generic NACK, PLI, FIR, REMB.
//! - [`twcc`]: transport-wide congestion control feedback.
//! - [`ntp`]: NTP timestamps and their compact form in report blocks.

pub mod feedback;
pub mod ntp;
pub mod report;
pub mod twcc;

pub use feedback::{Fir, Nack, Pli, Remb, write_fir, write_nack, write_pli, write_remb};
pub use report::{
    App, Bye, ReceiverReport, ReportBlock, ReportBlocks, Sdes, SdesChunk, SenderInfo, SenderReport,
    write_bye, write_receiver_report, write_sender_report,
};
pub use twcc::{
    TransportCc, TwccStatuses, TwccWritten, write_transport_cc, write_transport_cc_from,
};

/// Length of the common RTCP header.
pub const HEADER_LEN: usize = 4;

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// Packet type of source description.
pub const PT_SDES: u8 = 202;
/// Packet type of goodbye.
pub const PT_BYE: u8 = 203;
/// Packet type of application-defined packets.
pub const PT_APP: u8 = 204;
/// Packet type of transport-layer feedback (RFC 4585).
pub const PT_RTPFB: u8 = 205;
/// Packet type of payload-specific feedback (RFC 4585).
pub const PT_PSFB: u8 = 206;

/// Errors found while validating an RTCP packet, or while writing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpError {
    /// Fewer bytes than the header, its length field or the packet's fields need.
    Truncated,
    /// The version field is not 2.
    BadVersion,
    /// The P bit is set but the padding length byte is zero or reaches into the header.
    BadPadding,
    /// An SDES chunk or item overruns the packet.
    BadSdes,
    /// A transport-cc packet uses the reserved status symbol or lacks receive deltas.
    BadTransportCc,
    /// The output buffer is too small for the packet to write.
    BufferTooSmall,
    /// More items than the packet's count field can carry (e.g. 32 report blocks).
    TooManyItems,
    /// The writer's input is unusable (e.g. unsorted or empty transport-cc records).
    InvalidInput,
}

impl std::fmt::Display for RtcpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RtcpError::Truncated => "packet shorter than its header or fields need",
            RtcpError::BadVersion => "RTCP version is not 2",
            RtcpError::BadPadding => "padding length is zero or longer than the packet",
            RtcpError::BadSdes => "SDES chunk or item overruns the packet",
            RtcpError::BadTransportCc => "transport-cc status chunks or deltas are malformed",
            RtcpError::BufferTooSmall => "output buffer too small",
            RtcpError::TooManyItems => "too many items for the packet's count field",
            RtcpError::InvalidInput => "writer input is empty or not sorted",
        })
    }
}

impl std::error::Error for RtcpError {}

/// One packet of a compound RTCP datagram, as a typed borrowed view.
#[derive(Debug, Clone)]
pub enum RtcpPacket<'a> {
    /// Sender report (PT 200).
    SenderReport(SenderReport<'a>),
    /// Receiver report (PT 201).
    ReceiverReport(ReceiverReport<'a>),
    /// Source description (PT 202).
    Sdes(Sdes<'a>),
    /// Goodbye (PT 203).
    Bye(Bye<'a>),
    /// Application-defined (PT 204).
    App(App<'a>),
    /// Generic NACK (PT 205, FMT 1).
    Nack(Nack<'a>),
    /// Transport-wide congestion control feedback (PT 205, FMT 15).
    TransportCc(TransportCc<'a>),
    /// Picture loss indication (PT 206, FMT 1).
    Pli(Pli),
    /// Full intra request (PT 206, FMT 4).
    Fir(Fir<'a>),
    /// Receiver estimated maximum bitrate (PT 206, FMT 15, "REMB").
    Remb(Remb<'a>),
    /// Any other packet type or feedback format.
    Unknown(UnknownPacket<'a>),
}

/// A packet this module has no view for: its header fields and body.
#[derive(Debug, Clone, Copy)]
pub struct UnknownPacket<'a> {
    /// The packet type.
    pub packet_type: u8,
    /// The 5-bit count / feedback message type field.
    pub count: u8,
    /// Everything after the 4-byte header, without padding.
    pub body: &'a [u8],
}

impl<'a> RtcpPacket<'a> {
    /// Validates one RTCP packet from the 5-bit count field, the packet type and the body
    /// (the bytes after the common header, padding removed).
    fn parse(count: u8, packet_type: u8, body: &'a [u8]) -> Result<Self, RtcpError> {
        Ok(match (packet_type, count) {
            (PT_SR, _) => RtcpPacket::SenderReport(SenderReport::parse(count, body)?),
            (PT_RR, _) => RtcpPacket::ReceiverReport(ReceiverReport::parse(count, body)?),
            (PT_SDES, _) => RtcpPacket::Sdes(Sdes::parse(count, body)?),
            (PT_BYE, _) => RtcpPacket::Bye(Bye::parse(count, body)?),
            (PT_APP, _) => RtcpPacket::App(App::parse(count, body)?),
            (PT_RTPFB, 1) => RtcpPacket::Nack(Nack::parse(body)?),
            (PT_RTPFB, 15) => RtcpPacket::TransportCc(TransportCc::parse(body)?),
            (PT_PSFB, 1) => RtcpPacket::Pli(Pli::parse(body)?),
            (PT_PSFB, 4) => RtcpPacket::Fir(Fir::parse(body)?),
            (PT_PSFB, 15) if body.get(8..12) == Some(b"REMB") => {
                RtcpPacket::Remb(Remb::parse(body)?)
            }
            _ => RtcpPacket::Unknown(UnknownPacket {
                packet_type,
                count,
                body,
            }),
        })
    }
}

/// Iterates the packets of a compound RTCP datagram (which may also be a single packet).
pub fn iter_compound(datagram: &[u8]) -> CompoundIter<'_> {
    CompoundIter { rest: datagram }
}

/// Iterator over a compound RTCP datagram. A malformed packet yields one error item and
/// ends the iteration, since its length cannot be trusted to find the next packet.
#[derive(Debug, Clone)]
pub struct CompoundIter<'a> {
    rest: &'a [u8],
}

impl<'a> CompoundIter<'a> {
    fn next_packet(&mut self) -> Result<RtcpPacket<'a>, RtcpError> {
        let &[first, packet_type, len_hi, len_lo, ..] = self.rest else {
            return Err(RtcpError::Truncated);
        };
        if first >> 6 != 2 {
            return Err(RtcpError::BadVersion);
        }
        let len = (usize::from(u16::from_be_bytes([len_hi, len_lo])) + 1) * 4;
        let (packet, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or(RtcpError::Truncated)?;
        self.rest = rest;
        let mut body = packet.get(HEADER_LEN..).unwrap_or(&[]);
        if first & 0x20 != 0 {
            let pad = usize::from(*body.last().ok_or(RtcpError::BadPadding)?);
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::BadPadding);
            }
            body = body.get(..body.len() - pad).unwrap_or(&[]);
        }
        RtcpPacket::parse(first & 0x1f, packet_type, body)
    }
}

impl<'a> Iterator for CompoundIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.next_packet();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

/// Reads a big-endian u32 at `at`; 0 past the end (views only read validated offsets).
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// Reads a big-endian u16 at `at`; 0 past the end.
fn u16_at(bytes: &[u8], at: usize) -> u16 {
    bytes
        .get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u16::from_be_bytes)
}

/// Sequential writer into a caller's buffer whose total length was checked up front.
struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    /// Starts a packet of `len` bytes (a multiple of 4) with its common header.
    fn start(buf: &'b mut [u8], len: usize, count: u8, packet_type: u8) -> Result<Self, RtcpError> {
        if buf.len() < len {
            return Err(RtcpError::BufferTooSmall);
        }
        let words = u16::try_from(len / 4 - 1).map_err(|_| RtcpError::TooManyItems)?;
        let mut w = Writer { buf, pos: 0 };
        w.put(&[0x80 | (count & 0x1f), packet_type])?;
        w.put(&words.to_be_bytes())?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), RtcpError> {
        let end = self.pos + bytes.len();
        self.buf
            .get_mut(self.pos..end)
            .ok_or(RtcpError::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn u32(&mut self, v: u32) -> Result<(), RtcpError> {
        self.put(&v.to_be_bytes())
    }
}

#[cfg(test)]
mod tests;
