//! The crate's error type: one variant per protocol, each wrapping that module's small
//! `Copy` error enum so that rejecting a hostile packet never allocates.

use std::fmt;

/// Any error produced by rtc-core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An RTP packet or header extension was malformed.
    Rtp(crate::rtp::RtpError),
    /// An RTCP packet was malformed or a writer ran out of room.
    Rtcp(crate::rtcp::RtcpError),
    /// SRTP/SRTCP protection or unprotection failed.
    Srtp(crate::srtp::SrtpError),
    /// The DTLS handshake failed or the peer could not be verified.
    Dtls(crate::dtls::DtlsError),
    /// An SDP could not be parsed or negotiated.
    Sdp(crate::sdp::SdpError),
    /// A video payload descriptor was malformed or uses an unsupported feature.
    Codec(crate::codec::CodecError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rtp(e) => write!(f, "rtp: {e}"),
            Error::Rtcp(e) => write!(f, "rtcp: {e}"),
            Error::Srtp(e) => write!(f, "srtp: {e}"),
            Error::Dtls(e) => write!(f, "dtls: {e}"),
            Error::Sdp(e) => write!(f, "sdp: {e}"),
            Error::Codec(e) => write!(f, "codec: {e}"),
        }
    }
}

impl std::error::Error for Error {}

macro_rules! from_module_error {
    ($variant:ident, $ty:path) => {
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::$variant(e)
            }
        }
    };
}

from_module_error!(Rtp, crate::rtp::RtpError);
from_module_error!(Rtcp, crate::rtcp::RtcpError);
from_module_error!(Srtp, crate::srtp::SrtpError);
from_module_error!(Dtls, crate::dtls::DtlsError);
from_module_error!(Sdp, crate::sdp::SdpError);
from_module_error!(Codec, crate::codec::CodecError);
