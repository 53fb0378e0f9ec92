//! What Sluice can forward: the codecs (with the fmtp constraints that keep every subscriber
//! able to decode what a publisher sends), the RTCP feedback types and the RTP header
//! extensions it understands. Anything else offered is dropped from answers.

use super::attribute::{Rtpmap, fmtp_param};

/// A media codec Sluice forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus, 48 kHz, 2 channels.
    Opus,
    /// VP8.
    Vp8,
    /// VP9 profile 0.
    Vp9,
    /// H.264 (constrained) baseline, packetization-mode 1.
    H264,
    /// AV1 main profile.
    Av1,
}

impl Codec {
    /// Every codec, in Sluice's default order of preference.
    pub const ALL: [Codec; 5] = [Codec::Opus, Codec::Vp8, Codec::H264, Codec::Vp9, Codec::Av1];

    /// The rtpmap encoding name.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Opus => "opus",
            Codec::Vp8 => "VP8",
            Codec::Vp9 => "VP9",
            Codec::H264 => "H264",
            Codec::Av1 => "AV1",
        }
    }

    /// Whether it is an audio codec (otherwise video).
    pub const fn is_audio(self) -> bool {
        matches!(self, Codec::Opus)
    }

    /// The RTP clock rate.
    pub const fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 90_000,
        }
    }

    /// The rtpmap channel count, written for audio only.
    pub const fn channels(self) -> Option<u16> {
        match self {
            Codec::Opus => Some(2),
            _ => None,
        }
    }

    /// Recognises an offered format: its rtpmap and (if any) its fmtp parameters must describe
    /// a codec variant Sluice forwards.
    pub fn classify(rtpmap: &Rtpmap, fmtp: Option<&str>) -> Option<Codec> {
        let codec = Codec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(&rtpmap.name))?;
        if rtpmap.clock_rate != codec.clock_rate() {
            return None;
        }
        let param = |key| fmtp.and_then(|f| fmtp_param(f, key));
        let accepted = match codec {
            Codec::Opus => rtpmap.channels == Some(2),
            Codec::Vp8 => true,
            Codec::Vp9 => matches!(param("profile-id"), None | Some("0")),
            Codec::Av1 => matches!(param("profile"), None | Some("0")),
            // Only packetization-mode 1 (FU-A/STAP-A), and only profile_idc 0x42 (baseline;
            // with constraint flags 0xe0 it is constrained baseline): every browser decodes it.
            // RFC 6184 makes 420010 the default when profile-level-id is absent.
            Codec::H264 => {
                param("packetization-mode") == Some("1")
                    && param("profile-level-id").is_none_or(|id| {
                        id.len() == 6 && id.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("42"))
                    })
            }
        };
        accepted.then_some(codec)
    }
}

/// An RTCP feedback type Sluice acts on (RFC 4585, RFC 5104, the transport-cc and REMB drafts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtcpFeedback {
    /// `nack`: generic NACK, answered from the retransmission cache.
    Nack,
    /// `nack pli`: picture loss indication.
    NackPli,
    /// `ccm fir`: full intra request.
    CcmFir,
    /// `transport-cc`: transport-wide congestion control feedback.
    TransportCc,
    /// `goog-remb`: receiver estimated maximum bitrate.
    GoogRemb,
}

impl RtcpFeedback {
    /// Every type, in the order written into SDP.
    pub const ALL: [RtcpFeedback; 5] = [
        RtcpFeedback::GoogRemb,
        RtcpFeedback::TransportCc,
        RtcpFeedback::CcmFir,
        RtcpFeedback::Nack,
        RtcpFeedback::NackPli,
    ];

    /// The `a=rtcp-fb` type and parameter.
    pub const fn as_parts(self) -> (&'static str, Option<&'static str>) {
        match self {
            RtcpFeedback::Nack => ("nack", None),
            RtcpFeedback::NackPli => ("nack", Some("pli")),
            RtcpFeedback::CcmFir => ("ccm", Some("fir")),
            RtcpFeedback::TransportCc => ("transport-cc", None),
            RtcpFeedback::GoogRemb => ("goog-remb", None),
        }
    }

    /// Recognises an `a=rtcp-fb` type and parameter.
    pub fn from_parts(kind: &str, param: Option<&str>) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|fb| fb.as_parts() == (kind, param))
    }
}

/// An RTP header extension Sluice understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderExtension {
    /// `urn:ietf:params:rtp-hdrext:sdes:mid` (RFC 8843).
    Mid,
    /// `urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id`: the simulcast rid (RFC 8852).
    RtpStreamId,
    /// `urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id`: the rid an RTX stream repairs.
    RepairedRtpStreamId,
    /// `http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time`.
    AbsSendTime,
    /// The transport-wide sequence number of the transport-cc draft.
    TransportWideCc,
    /// `urn:ietf:params:rtp-hdrext:ssrc-audio-level` (RFC 6464).
    AudioLevel,
    /// The AV1 RTP specification's dependency descriptor.
    DependencyDescriptor,
}

impl HeaderExtension {
    /// Every extension.
    pub const ALL: [HeaderExtension; 7] = [
        HeaderExtension::Mid,
        HeaderExtension::RtpStreamId,
        HeaderExtension::RepairedRtpStreamId,
        HeaderExtension::AbsSendTime,
        HeaderExtension::TransportWideCc,
        HeaderExtension::AudioLevel,
        HeaderExtension::DependencyDescriptor,
    ];

    /// The extension URI.
    pub const fn uri(self) -> &'static str {
        match self {
            HeaderExtension::Mid => "urn:ietf:params:rtp-hdrext:sdes:mid",
            HeaderExtension::RtpStreamId => "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
            HeaderExtension::RepairedRtpStreamId => {
                "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
            }
            HeaderExtension::AbsSendTime => {
                "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
            }
            HeaderExtension::TransportWideCc => {
                "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
            }
            HeaderExtension::AudioLevel => "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            HeaderExtension::DependencyDescriptor => {
                "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"
            }
        }
    }

    /// Recognises a URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.uri() == uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pt;

    fn rtpmap(name: &str, clock_rate: u32, channels: Option<u16>) -> Rtpmap {
        Rtpmap {
            pt: Pt(96),
            name: name.into(),
            clock_rate,
            channels,
        }
    }

    #[test]
    fn classify_accepts_only_forwardable_variants() {
        let h264 = rtpmap("H264", 90_000, None);
        let fmtp = |s: &'static str| Some(s);
        assert_eq!(
            Codec::classify(&h264, fmtp("packetization-mode=1;profile-level-id=42e01f")),
            Some(Codec::H264)
        );
        assert_eq!(
            Codec::classify(&h264, fmtp("packetization-mode=1;profile-level-id=42001f")),
            Some(Codec::H264)
        );
        assert_eq!(
            Codec::classify(&h264, fmtp("packetization-mode=0;profile-level-id=42e01f")),
            None
        );
        assert_eq!(
            Codec::classify(&h264, fmtp("packetization-mode=1;profile-level-id=4d001f")),
            None
        );
        assert_eq!(
            Codec::classify(&h264, fmtp("packetization-mode=1;profile-level-id=f4001f")),
            None
        );
        assert_eq!(Codec::classify(&h264, None), None);
        let vp9 = rtpmap("VP9", 90_000, None);
        assert_eq!(
            Codec::classify(&vp9, fmtp("profile-id=0")),
            Some(Codec::Vp9)
        );
        assert_eq!(Codec::classify(&vp9, None), Some(Codec::Vp9));
        assert_eq!(Codec::classify(&vp9, fmtp("profile-id=2")), None);
        let av1 = rtpmap("AV1", 90_000, None);
        assert_eq!(
            Codec::classify(&av1, fmtp("level-idx=5;profile=0;tier=0")),
            Some(Codec::Av1)
        );
        assert_eq!(
            Codec::classify(&av1, fmtp("level-idx=5;profile=1;tier=0")),
            None
        );
        assert_eq!(
            Codec::classify(&rtpmap("opus", 48_000, Some(2)), None),
            Some(Codec::Opus)
        );
        assert_eq!(Codec::classify(&rtpmap("opus", 48_000, None), None), None);
        assert_eq!(
            Codec::classify(&rtpmap("vp8", 90_000, None), None),
            Some(Codec::Vp8)
        );
        assert_eq!(Codec::classify(&rtpmap("VP8", 48_000, None), None), None);
        assert_eq!(Codec::classify(&rtpmap("G722", 8_000, None), None), None);
        assert_eq!(Codec::classify(&rtpmap("red", 90_000, None), None), None);
    }

    #[test]
    fn feedback_and_extension_names_round_trip() {
        for fb in RtcpFeedback::ALL {
            let (kind, param) = fb.as_parts();
            assert_eq!(RtcpFeedback::from_parts(kind, param), Some(fb));
        }
        assert_eq!(RtcpFeedback::from_parts("nack", Some("sli")), None);
        for ext in HeaderExtension::ALL {
            assert_eq!(HeaderExtension::from_uri(ext.uri()), Some(ext));
        }
        assert_eq!(
            HeaderExtension::from_uri("urn:ietf:params:rtp-hdrext:toffset"),
            None
        );
    }
}
