//! The one error type of the media plane's commands.

/// Why a request to the media plane failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SfuError {
    /// The offer (or answer) does not parse or breaks an offer/answer rule: rtc-core's SDP
    /// error as it is, formatted only where it reaches a client.
    Sdp(rtc_core::sdp::SdpError),
    /// The offer (or answer) parses but cannot be served here; the text says why.
    BadOffer(String),
    /// No publisher with that id in that room.
    UnknownPublisher,
    /// No such session, or not one that takes this request.
    UnknownSession,
    /// A track to offer does not exist (its publisher left).
    UnknownTrack,
    /// A subscriber connection has too many m-lines.
    TooManyTracks,
    /// An answer came with no offer of Sluice's waiting for it.
    NoOfferPending,
    /// The media plane has stopped.
    Stopped,
}

impl std::fmt::Display for SfuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SfuError::Sdp(error) => write!(f, "the description cannot be served: {error}"),
            SfuError::BadOffer(why) => write!(f, "the description cannot be served: {why}"),
            SfuError::UnknownPublisher => f.write_str("no such publisher in this room"),
            SfuError::UnknownSession => f.write_str("no such session"),
            SfuError::UnknownTrack => f.write_str("no such track"),
            SfuError::TooManyTracks => f.write_str("too many tracks on one connection"),
            SfuError::NoOfferPending => f.write_str("no offer is waiting for an answer"),
            SfuError::Stopped => f.write_str("the media plane has stopped"),
        }
    }
}

impl std::error::Error for SfuError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SfuError::Sdp(error) => Some(error),
            _ => None,
        }
    }
}

impl From<rtc_core::sdp::SdpError> for SfuError {
    fn from(error: rtc_core::sdp::SdpError) -> Self {
        SfuError::Sdp(error)
    }
}
