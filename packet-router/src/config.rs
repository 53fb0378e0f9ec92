//! What the router needs to know of each side of a stream, as negotiated in SDP: codecs and
//! their payload types, RTX, SSRCs and header-extension ids. The media plane fills these from
//! the negotiated session; the router never sees SDP, only the codec and media-kind types of
//! the negotiation.

pub use rtc_core::sdp::{Codec, MediaKind};
use rtc_core::{Pt, Ssrc};

/// One negotiated codec of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecParams {
    /// The codec.
    pub codec: Codec,
    /// Its payload type.
    pub pt: Pt,
    /// The payload type of its RTX (RFC 4588) stream, when negotiated.
    pub rtx_pt: Option<Pt>,
}

/// Header-extension ids negotiated on one side (RFC 8285); `None` when not negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtensionIds {
    /// urn:ietf:params:rtp-hdrext:sdes:mid
    pub mid: Option<u8>,
    /// urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
    pub rid: Option<u8>,
    /// urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
    pub repaired_rid: Option<u8>,
    /// http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
    pub abs_send_time: Option<u8>,
    /// http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
    pub transport_cc: Option<u8>,
    /// urn:ietf:params:rtp-hdrext:ssrc-audio-level
    pub audio_level: Option<u8>,
    /// https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension
    pub dependency_descriptor: Option<u8>,
}

/// A stream a publisher sends, as negotiated with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedStream {
    /// Audio or video.
    pub kind: MediaKind,
    /// The publisher's SSRC of the media.
    pub ssrc: Ssrc,
    /// The publisher's SSRC of the RTX stream, when it sends one.
    pub rtx_ssrc: Option<Ssrc>,
    /// The codecs it may send, in preference order.
    pub codecs: Vec<CodecParams>,
    /// Its header-extension ids.
    pub extensions: ExtensionIds,
    /// Whether the publisher accepts NACKs for this stream.
    pub nack: bool,
    /// The m-line's mid, which the publisher's packets carry in the mid header extension
    /// (used to bind the SSRCs of rid layers).
    pub mid: Option<String>,
    /// The simulcast encodings' rids (RFC 8851), in a=simulcast order. When not empty the
    /// track has one layer per rid whose SSRCs are learned from the first packets (by the
    /// mid and rid or repaired-rid header extensions), and `ssrc` and `rtx_ssrc` are not
    /// used; when empty the track has one layer on `ssrc`.
    pub rids: Vec<String>,
}

/// A stream a subscriber receives, as negotiated with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribedStream {
    /// The SSRC Sluice sends the media with to this subscriber.
    pub ssrc: Ssrc,
    /// The SSRC of the RTX stream to this subscriber, when RTX was negotiated.
    pub rtx_ssrc: Option<Ssrc>,
    /// The codecs the subscriber accepts, with its payload types.
    pub codecs: Vec<CodecParams>,
    /// The subscriber's header-extension ids.
    pub extensions: ExtensionIds,
    /// The subscriber's payload type of redundant audio (RFC 2198) over its audio codec,
    /// when negotiated.
    pub red_pt: Option<Pt>,
    /// Random bases for the subscriber's sequence numbers and timestamps.
    pub initial_seq: u16,
    /// See `initial_seq`.
    pub initial_timestamp: u32,
}
