//! The outcome of a negotiation, [`NegotiatedSession`]: what the rest of Sluice needs to
//! route media (per mid: kind, direction, payload types, header extension ids, rids, remote
//! SSRCs) and to run the transport (remote ICE credentials, DTLS fingerprint and role).
//! Also the checks and selections both negotiation directions share.

use std::collections::HashMap;

use super::SdpError;
use super::attribute::{Attribute, Direction, Fingerprint, Msid, Setup};
use super::codec::{Codec, HeaderExtension, RtcpFeedback};
use super::error::{MlineRef, Snippet};
use super::session::{MediaSection, SessionDescription};
use crate::{Pt, Ssrc};

/// The media type of an m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `m=audio`.
    Audio,
    /// `m=video`.
    Video,
    /// `m=application` (data channels; always rejected by Sluice today).
    Application,
    /// Anything else.
    Other,
}

impl MediaKind {
    /// Classifies an m-line's media type.
    pub fn from_media(media: &str) -> Self {
        match media {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "application" => MediaKind::Application,
            _ => MediaKind::Other,
        }
    }

    /// The m-line media type (`other` for [`MediaKind::Other`]).
    pub const fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Application => "application",
            MediaKind::Other => "other",
        }
    }
}

/// The remote peer's ICE credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// `a=ice-ufrag`.
    pub ufrag: String,
    /// `a=ice-pwd`.
    pub pwd: String,
}

/// A codec both sides agreed on, with its RTX pairing and feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    /// Its payload type on this connection.
    pub pt: Pt,
    /// Which codec it is.
    pub codec: Codec,
    /// Encoding name as the peer wrote it.
    pub name: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channel count (audio).
    pub channels: Option<u16>,
    /// Format parameters as the peer wrote them.
    pub fmtp: Option<String>,
    /// Payload type of its RTX stream (RFC 4588), when negotiated.
    pub rtx_pt: Option<Pt>,
    /// Payload type of redundant audio (RFC 2198) whose blocks are this codec (`red/48000/2`
    /// with `a=fmtp:<red> <pt>/<pt>`), when negotiated.
    pub red_pt: Option<Pt>,
    /// Feedback both sides use for it.
    pub rtcp_fb: Vec<RtcpFeedback>,
}

/// Header extension ids of one m-line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtensionMap {
    entries: Vec<(u8, HeaderExtension)>,
}

impl ExtensionMap {
    /// The id negotiated for `ext`.
    pub fn id(&self, ext: HeaderExtension) -> Option<u8> {
        self.entries
            .iter()
            .find(|(_, e)| *e == ext)
            .map(|(id, _)| *id)
    }

    /// The extension negotiated under `id`.
    pub fn get(&self, id: u8) -> Option<HeaderExtension> {
        self.entries.iter().find(|(i, _)| *i == id).map(|(_, e)| *e)
    }

    /// All `(id, extension)` pairs in SDP order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, HeaderExtension)> + '_ {
        self.entries.iter().copied()
    }

    /// Keeps only the entries `keep` approves.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u8, HeaderExtension) -> bool) {
        self.entries.retain(|(id, ext)| keep(*id, *ext));
    }

    /// Whether nothing was negotiated.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A source the remote peer announced with `a=ssrc` / `a=ssrc-group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStream {
    /// The media SSRC.
    pub ssrc: Ssrc,
    /// Its RTX SSRC (`a=ssrc-group:FID <ssrc> <rtx>`).
    pub rtx_ssrc: Option<Ssrc>,
    /// `cname` source attribute.
    pub cname: Option<String>,
    /// `msid` source attribute, or the m-line's `a=msid`.
    pub msid: Option<Msid>,
}

/// One m-line of a negotiated session, in m-line order. Rejected lines keep their slot so
/// that indexes and mids stay stable across renegotiations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// `a=mid` (empty for a rejected line without one).
    pub mid: String,
    /// Audio or video (or what was rejected).
    pub kind: MediaKind,
    /// `false` when the m-line is rejected or removed (port 0).
    pub accepted: bool,
    /// Sluice's direction: `RecvOnly` means Sluice receives media from the peer here.
    pub direction: Direction,
    /// Codecs in preference order; the first is what a sender should use.
    pub codecs: Vec<NegotiatedCodec>,
    /// Negotiated header extension ids.
    pub extensions: ExtensionMap,
    /// Simulcast rids the peer sends, in its `a=simulcast` order (empty without simulcast).
    pub rids: Vec<String>,
    /// Sources the peer announced.
    pub remote_streams: Vec<RemoteStream>,
    /// SSRCs of the peer's `a=ssrc-group:SIM`, lowest layer first (legacy simulcast).
    pub remote_simulcast_ssrcs: Vec<Ssrc>,
    /// The peer's `a=msid` for the m-line.
    pub msid: Option<Msid>,
    /// Whether reduced-size RTCP (RFC 5506) may be sent.
    pub rtcp_rsize: bool,
}

impl NegotiatedMedia {
    /// The codec negotiated under payload type `pt` (not counting RTX).
    pub fn codec_by_pt(&self, pt: Pt) -> Option<&NegotiatedCodec> {
        self.codecs.iter().find(|c| c.pt == pt)
    }

    pub(crate) fn rejected(section: &MediaSection) -> Self {
        NegotiatedMedia {
            mid: section.mid().unwrap_or_default().to_owned(),
            kind: MediaKind::from_media(&section.media),
            accepted: false,
            direction: Direction::Inactive,
            codecs: Vec::new(),
            extensions: ExtensionMap::default(),
            rids: Vec::new(),
            remote_streams: Vec::new(),
            remote_simulcast_ssrcs: Vec::new(),
            msid: None,
            rtcp_rsize: false,
        }
    }
}

/// Everything a negotiation decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedSession {
    /// The peer's ICE credentials (of the bundle transport).
    pub remote_ice: IceCredentials,
    /// The peer's sha-256 DTLS certificate fingerprint.
    pub remote_fingerprint: Fingerprint,
    /// The peer's `a=setup`: Sluice is the DTLS client when it is `passive`, else the server.
    pub remote_setup: Setup,
    /// Whether RTP header extensions may mix one- and two-byte forms (RFC 8285).
    pub extmap_allow_mixed: bool,
    /// The bundled mids, in group order.
    pub bundle: Vec<String>,
    /// One entry per m-line, in order.
    pub media: Vec<NegotiatedMedia>,
}

impl NegotiatedSession {
    /// The m-line with this mid.
    pub fn media_by_mid(&self, mid: &str) -> Option<&NegotiatedMedia> {
        self.media.iter().find(|m| m.mid == mid)
    }
}

/// The transport parameters of an accepted m-line, checked against Sluice's rules.
pub(crate) struct RemoteTransport {
    pub(crate) ice: IceCredentials,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) setup: Setup,
}

/// Checks rtcp-mux, ICE credentials and a sha-256 fingerprint; `a=setup` defaults to
/// `active` when absent (RFC 4145) and is judged by the caller.
pub(crate) fn remote_transport(
    sdp: &SessionDescription,
    section: &MediaSection,
    at: MlineRef,
) -> Result<RemoteTransport, SdpError> {
    if !section.has(&Attribute::RtcpMux) {
        return Err(SdpError::NoRtcpMux(at));
    }
    let (ufrag, pwd) = sdp
        .ice_credentials(section)
        .ok_or(SdpError::MissingIceCredentials(at))?;
    let fingerprints = sdp.fingerprints(section);
    if fingerprints.is_empty() {
        return Err(SdpError::MissingFingerprint(at));
    }
    let fingerprint = fingerprints
        .into_iter()
        .find(|fp| fp.hash == "sha-256")
        .ok_or(SdpError::NoSha256Fingerprint(at))?
        .clone();
    Ok(RemoteTransport {
        ice: IceCredentials {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
        },
        fingerprint,
        setup: sdp.setup(section).unwrap_or(Setup::Active),
    })
}

/// Picks the codecs of `section` that Sluice forwards and `allowed` permits, in the
/// section's order, each with its RTX payload type and the feedback Sluice acts on.
pub(crate) fn select_codecs(section: &MediaSection, allowed: &[Codec]) -> Vec<NegotiatedCodec> {
    let mut rtpmaps = HashMap::new();
    let mut fmtps = HashMap::new();
    for attr in &section.attributes {
        match attr {
            Attribute::Rtpmap(r) => {
                rtpmaps.entry(r.pt).or_insert(r);
            }
            Attribute::Fmtp(f) => {
                fmtps.entry(f.pt).or_insert(f);
            }
            _ => {}
        }
    }
    let formats: Vec<Pt> = section
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .map(Pt)
        .collect();
    let rtx_for = |pt: Pt| {
        formats.iter().copied().find(|rtx| {
            rtpmaps
                .get(rtx)
                .is_some_and(|r| r.name.eq_ignore_ascii_case("rtx"))
                && fmtps
                    .get(rtx)
                    .and_then(|f| f.param("apt")?.parse::<u8>().ok())
                    == Some(pt.0)
        })
    };
    // RFC 2198's fmtp lists the blocks' payload types ("111/111"); Sluice sends and accepts
    // only redundancy of one codec.
    let red_for = |pt: Pt, clock_rate: u32| {
        formats.iter().copied().find(|red| {
            rtpmaps
                .get(red)
                .is_some_and(|r| r.name.eq_ignore_ascii_case("red") && r.clock_rate == clock_rate)
                && fmtps.get(red).is_some_and(|f| {
                    let mut blocks = f.params.trim().split('/');
                    blocks.clone().next().is_some()
                        && blocks.all(|b| b.trim().parse::<u8>().ok() == Some(pt.0))
                })
        })
    };
    let mut codecs: Vec<NegotiatedCodec> = Vec::new();
    for &pt in &formats {
        let Some(rtpmap) = rtpmaps.get(&pt) else {
            continue;
        };
        let fmtp = fmtps.get(&pt).map(|f| f.params.as_str());
        let Some(codec) = Codec::classify(rtpmap, fmtp).filter(|c| allowed.contains(c)) else {
            continue;
        };
        if codecs.iter().any(|c| c.pt == pt) {
            continue;
        }
        let mut rtcp_fb = Vec::new();
        for attr in &section.attributes {
            if let Attribute::RtcpFb(fb) = attr {
                let applies = fb.pt.is_none_or(|p| p == pt);
                let known = RtcpFeedback::from_parts(&fb.kind, fb.param.as_deref());
                if let Some(known) = known.filter(|k| applies && !rtcp_fb.contains(k)) {
                    rtcp_fb.push(known);
                }
            }
        }
        codecs.push(NegotiatedCodec {
            pt,
            codec,
            name: rtpmap.name.clone(),
            clock_rate: rtpmap.clock_rate,
            channels: rtpmap.channels,
            fmtp: fmtp.map(str::to_owned),
            rtx_pt: rtx_for(pt),
            red_pt: codec
                .is_audio()
                .then(|| red_for(pt, rtpmap.clock_rate))
                .flatten(),
            rtcp_fb,
        });
    }
    codecs
}

/// The encodings a section offers, for the "no codec in common" message.
pub(crate) fn offered_encodings(section: &MediaSection) -> Snippet {
    let names: Vec<&str> = section
        .attributes
        .iter()
        .filter_map(|a| match a {
            Attribute::Rtpmap(r) if !r.name.eq_ignore_ascii_case("rtx") => Some(r.name.as_str()),
            _ => None,
        })
        .collect();
    Snippet::new(&names.join(", "))
}

/// The header extensions of `section` that Sluice understands, with the section's ids.
pub(crate) fn select_extensions(section: &MediaSection) -> ExtensionMap {
    let mut entries: Vec<(u8, HeaderExtension)> = Vec::new();
    for attr in &section.attributes {
        if let Attribute::Extmap(e) = attr {
            let Some(ext) = HeaderExtension::from_uri(&e.uri) else {
                continue;
            };
            if !entries
                .iter()
                .any(|(id, known)| *id == e.id || *known == ext)
            {
                entries.push((e.id, ext));
            }
        }
    }
    ExtensionMap { entries }
}

/// The sources `section` announces, RTX SSRCs folded into their media SSRC.
pub(crate) fn remote_streams(section: &MediaSection) -> (Vec<RemoteStream>, Vec<Ssrc>) {
    let line_msid = section_msid(section);
    let mut streams: Vec<RemoteStream> = Vec::new();
    let mut simulcast = Vec::new();
    let mut rtx_of: Vec<(Ssrc, Ssrc)> = Vec::new();
    let stream = |streams: &mut Vec<RemoteStream>, ssrc: Ssrc| -> usize {
        if let Some(i) = streams.iter().position(|s| s.ssrc == ssrc) {
            return i;
        }
        streams.push(RemoteStream {
            ssrc,
            rtx_ssrc: None,
            cname: None,
            msid: None,
        });
        streams.len() - 1
    };
    for attr in &section.attributes {
        match attr {
            Attribute::Ssrc(s) => {
                let i = stream(&mut streams, s.ssrc);
                let Some(entry) = streams.get_mut(i) else {
                    continue;
                };
                match (s.name.as_str(), &s.value) {
                    ("cname", Some(v)) => entry.cname = Some(v.clone()),
                    ("msid", Some(v)) => entry.msid = super::attribute::parse_msid(v),
                    _ => {}
                }
            }
            Attribute::SsrcGroup(g) if g.semantics == "FID" => {
                if let [media, rtx] = g.ssrcs.as_slice() {
                    rtx_of.push((*media, *rtx));
                }
            }
            Attribute::SsrcGroup(g) if g.semantics == "SIM" && simulcast.is_empty() => {
                simulcast = g.ssrcs.clone();
            }
            _ => {}
        }
    }
    for (media, rtx) in rtx_of {
        let i = stream(&mut streams, media);
        if let Some(entry) = streams.get_mut(i) {
            entry.rtx_ssrc = Some(rtx);
        }
    }
    let rtx_ssrcs: Vec<Ssrc> = streams.iter().filter_map(|s| s.rtx_ssrc).collect();
    streams.retain(|s| !rtx_ssrcs.contains(&s.ssrc));
    for s in &mut streams {
        if s.msid.is_none() {
            s.msid.clone_from(&line_msid);
        }
    }
    (streams, simulcast)
}

/// The section's own `a=msid`.
pub(crate) fn section_msid(section: &MediaSection) -> Option<Msid> {
    section.attributes.iter().find_map(|a| match a {
        Attribute::Msid(m) => Some(m.clone()),
        _ => None,
    })
}
