//! RTP (RFC 3550) wire views (placeholder: filled in by the RTP work).

/// Errors found while validating an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Fewer bytes than the fixed header, CSRC list or extension block need.
    Truncated,
    /// The version field is not 2.
    BadVersion,
}

impl std::fmt::Display for RtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RtpError::Truncated => f.write_str("packet truncated"),
            RtpError::BadVersion => f.write_str("RTP version is not 2"),
        }
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
    let mut len = 12 + 4 * csrc_count;
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
