//! Subscriber connections, where Sluice is the offerer: one sendonly m-line per outgoing
//! track with fixed payload types and header extension ids (the packet router rewrites to
//! them), and the browser's recvonly answer applied back. Renegotiation reuses the same
//! calls: mids are stable, and a track that is gone keeps its slot as an inactive m-line so that
//! the m-line order never changes.

use super::SdpError;
use super::attribute::{Attribute, Direction, Extmap, Msid, Setup, SsrcAttribute, SsrcGroup};
use super::codec::{Codec, HeaderExtension, RtcpFeedback};
use super::error::MlineRef;
use super::local::{LocalParams, codec_attributes, codec_formats};
use super::negotiated::{
    MediaKind, NegotiatedCodec, NegotiatedMedia, NegotiatedSession, RemoteTransport,
    offered_encodings, remote_streams, remote_transport, section_msid, select_codecs,
    select_extensions,
};
use super::session::{MediaSection, SessionDescription};
use crate::{Pt, Ssrc};

/// A track Sluice sends to a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingTrack {
    /// Stable mid of its m-line.
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// The SSRC Sluice sends it with.
    pub ssrc: Ssrc,
    /// The SSRC of its retransmissions (video).
    pub rtx_ssrc: Option<Ssrc>,
    /// RTCP CNAME of the sending participant.
    pub cname: String,
    /// msid stream id (groups a participant's tracks for lip sync).
    pub stream_id: String,
    /// msid track id.
    pub track_id: String,
    /// Codecs to offer in preference order (put the publisher's codec first); empty offers
    /// every codec of the kind.
    pub codecs: Vec<Codec>,
    /// `false` once the track is gone: the m-line stays, with port 0 and `a=inactive`.
    pub active: bool,
}

/// The payload type of redundant Opus (RFC 2198) Sluice offers subscribers: Chromium's.
const RED_PT: Pt = Pt(63);

/// The payload types Sluice offers subscribers: the browsers' usual numbers, so that the
/// rewrite is often a no-op.
const fn fixed_payload_types(codec: Codec) -> (Pt, Option<Pt>, Option<&'static str>) {
    match codec {
        Codec::Opus => (Pt(111), None, Some("minptime=10;useinbandfec=1")),
        Codec::Vp8 => (Pt(96), Some(Pt(97)), None),
        Codec::Vp9 => (Pt(98), Some(Pt(99)), Some("profile-id=0")),
        Codec::H264 => (
            Pt(102),
            Some(Pt(103)),
            Some("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
        ),
        Codec::Av1 => (Pt(45), Some(Pt(46)), Some("level-idx=5;profile=0;tier=0")),
    }
}

/// The header extension ids Sluice offers subscribers. Not the dependency descriptor: it is
/// not rewritten across simulcast switches and dropped temporal layers.
const fn fixed_extension_ids(kind: MediaKind) -> &'static [(u8, HeaderExtension)] {
    match kind {
        MediaKind::Audio => &[
            (1, HeaderExtension::AudioLevel),
            (2, HeaderExtension::AbsSendTime),
            (3, HeaderExtension::TransportWideCc),
            (4, HeaderExtension::Mid),
        ],
        _ => &[
            (2, HeaderExtension::AbsSendTime),
            (3, HeaderExtension::TransportWideCc),
            (4, HeaderExtension::Mid),
        ],
    }
}

/// The codec list offered for `track`.
fn offered_codecs(track: &OutgoingTrack) -> Vec<NegotiatedCodec> {
    let audio = track.kind == MediaKind::Audio;
    let wanted: Vec<Codec> = if track.codecs.is_empty() {
        Codec::ALL.to_vec()
    } else {
        track.codecs.clone()
    };
    let mut codecs: Vec<NegotiatedCodec> = Vec::new();
    for codec in wanted.into_iter().filter(|c| c.is_audio() == audio) {
        if codecs.iter().any(|c| c.codec == codec) {
            continue;
        }
        let (pt, rtx_pt, fmtp) = fixed_payload_types(codec);
        let rtcp_fb = if audio {
            vec![RtcpFeedback::TransportCc]
        } else {
            RtcpFeedback::ALL.to_vec()
        };
        codecs.push(NegotiatedCodec {
            pt,
            codec,
            name: codec.name().to_owned(),
            clock_rate: codec.clock_rate(),
            channels: codec.channels(),
            fmtp: fmtp.map(str::to_owned),
            rtx_pt: if track.rtx_ssrc.is_some() {
                rtx_pt
            } else {
                None
            },
            // Redundancy is sent when a subscriber's link loses packets.
            red_pt: (codec == Codec::Opus).then_some(RED_PT),
            rtcp_fb,
        });
    }
    codecs
}

/// Builds Sluice's offer to a subscriber: one sendonly m-line per track, in the given order.
pub fn build_subscriber_offer(local: &LocalParams, tracks: &[OutgoingTrack]) -> String {
    let bundle = tracks
        .iter()
        .filter(|t| !offered_codecs(t).is_empty())
        .map(|t| t.mid.clone())
        .collect();
    let mut offer = local.session(bundle, true);
    offer.media = tracks.iter().map(|t| offer_section(local, t)).collect();
    offer.to_string()
}

fn offer_section(local: &LocalParams, track: &OutgoingTrack) -> MediaSection {
    let codecs = offered_codecs(track);
    let mut formats = codec_formats(&codecs);
    if formats.is_empty() {
        // RFC 8866 needs at least one format even on a line that carries nothing.
        formats.push("0".to_owned());
    }
    let media = track.kind.as_str().to_owned();
    let protocol = "UDP/TLS/RTP/SAVPF".to_owned();
    if codecs.is_empty() {
        let attributes = vec![
            Attribute::Mid(track.mid.clone()),
            Attribute::Direction(Direction::Inactive),
        ];
        let connection = Some("IN IP4 0.0.0.0".to_owned());
        return MediaSection {
            media,
            port: 0,
            protocol,
            formats,
            connection,
            attributes,
        };
    }
    let (port, connection) = local.default_address();
    let mut attributes = vec![Attribute::Mid(track.mid.clone())];
    attributes.extend(local.transport_attributes(Setup::ActPass));
    // A track that is gone keeps its m-line, inactive and still bundled: receivers keep the
    // transceiver, and every implementation accepts it (a port-0 section is not understood
    // everywhere in a re-offer).
    let direction = if track.active {
        Direction::SendOnly
    } else {
        Direction::Inactive
    };
    attributes.push(Attribute::Direction(direction));
    attributes.push(Attribute::RtcpMux);
    attributes.push(Attribute::RtcpRsize);
    for &(id, ext) in fixed_extension_ids(track.kind) {
        let uri = ext.uri().to_owned();
        attributes.push(Attribute::Extmap(Extmap {
            id,
            direction: None,
            uri,
            attributes: None,
        }));
    }
    attributes.extend(codec_attributes(&codecs));
    if track.active {
        attributes.extend(source_attributes(track));
    }
    attributes.extend(local.candidate_attributes());
    MediaSection {
        media,
        port,
        protocol,
        formats,
        connection: Some(connection),
        attributes,
    }
}

/// The attributes that announce what Sluice sends for `track`: its msid, and its SSRC (and
/// RTX SSRC, grouped as FID) with CNAME and msid, so that the receiver maps the stream to the
/// m-line without waiting for a mid header extension.
pub(crate) fn source_attributes(track: &OutgoingTrack) -> Vec<Attribute> {
    let mut attributes = Vec::new();
    let msid = Msid {
        stream: track.stream_id.clone(),
        track: Some(track.track_id.clone()),
    };
    attributes.push(Attribute::Msid(msid.clone()));
    let ssrcs = std::iter::once(track.ssrc).chain(track.rtx_ssrc);
    if let Some(rtx) = track.rtx_ssrc {
        let group = SsrcGroup {
            semantics: "FID".to_owned(),
            ssrcs: vec![track.ssrc, rtx],
        };
        attributes.push(Attribute::SsrcGroup(group));
    }
    for ssrc in ssrcs {
        for (name, value) in [("cname", track.cname.clone()), ("msid", msid.to_string())] {
            let attr = SsrcAttribute {
                ssrc,
                name: name.to_owned(),
                value: Some(value),
            };
            attributes.push(Attribute::Ssrc(attr));
        }
    }
    attributes
}

/// Applies a subscriber's answer to the offer Sluice sent (`offer` is that text).
///
/// The answer must keep the offer's m-lines and mids, bundle them, multiplex RTCP, carry
/// ICE credentials and a sha-256 fingerprint, and take a DTLS role (`setup:active`, or `setup:passive`, which makes Sluice the DTLS client).
/// Codecs and header extensions are those the answer accepted out of the offered ones.
pub fn apply_subscriber_answer(offer: &str, answer: &str) -> Result<NegotiatedSession, SdpError> {
    let offer = SessionDescription::parse(offer)?;
    let answer = SessionDescription::parse(answer)?;
    if answer.media.len() != offer.media.len() {
        let at = MlineRef::new(answer.media.len().min(offer.media.len()), None);
        let reason = "the answer does not have as many m-lines as the offer";
        return Err(SdpError::AnswerMismatch { mline: at, reason });
    }
    let bundle = answer
        .bundle_group()
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    let mut transport: Option<RemoteTransport> = None;
    let mut media = Vec::with_capacity(offer.media.len());
    for (index, (ours, theirs)) in offer.media.iter().zip(&answer.media).enumerate() {
        let at = MlineRef::new(index, theirs.mid());
        if ours.mid() != theirs.mid() {
            let reason = "the answer's mid differs from the offer's";
            return Err(SdpError::AnswerMismatch { mline: at, reason });
        }
        if ours.is_rejected() || theirs.is_rejected() {
            media.push(NegotiatedMedia::rejected(ours));
            continue;
        }
        if !theirs
            .mid()
            .is_some_and(|mid| bundle.iter().any(|b| b == mid))
        {
            let reason = "the answer leaves this m-line out of its BUNDLE group";
            return Err(SdpError::AnswerMismatch { mline: at, reason });
        }
        let remote = remote_transport(&answer, theirs, at)?;
        // Sluice offers actpass: the answer picks the DTLS client (active) or server (passive)
        // role for itself, and Sluice takes the other.
        if !matches!(remote.setup, Setup::Active | Setup::Passive) {
            return Err(SdpError::UnsupportedSetup {
                mline: at,
                setup: remote.setup,
            });
        }
        transport.get_or_insert(remote);
        media.push(accepted_media(&answer, ours, theirs, at)?);
    }
    let Some(transport) = transport else {
        return Err(SdpError::NothingToServe);
    };
    Ok(NegotiatedSession {
        remote_ice: transport.ice,
        remote_fingerprint: transport.fingerprint,
        remote_setup: transport.setup,
        extmap_allow_mixed: answer.extmap_allow_mixed(),
        bundle,
        media,
    })
}

fn accepted_media(
    answer: &SessionDescription,
    ours: &MediaSection,
    theirs: &MediaSection,
    at: MlineRef,
) -> Result<NegotiatedMedia, SdpError> {
    let offered_codecs = select_codecs(ours, &Codec::ALL);
    let allowed: Vec<Codec> = offered_codecs.iter().map(|c| c.codec).collect();
    let mut codecs = select_codecs(theirs, &allowed);
    // Only what was offered under the same payload type may be used.
    codecs.retain(|c| {
        offered_codecs
            .iter()
            .any(|o| o.pt == c.pt && o.codec == c.codec)
    });
    if codecs.is_empty() {
        let offered = offered_encodings(theirs);
        return Err(SdpError::NoCommonCodec { mline: at, offered });
    }
    let offered_extensions = select_extensions(ours);
    let mut extensions = select_extensions(theirs);
    extensions.retain(|id, ext| offered_extensions.get(id) == Some(ext));
    let (remote_streams, remote_simulcast_ssrcs) = remote_streams(theirs);
    Ok(NegotiatedMedia {
        mid: theirs.mid().unwrap_or_default().to_owned(),
        kind: MediaKind::from_media(&ours.media),
        accepted: true,
        direction: answer.direction(theirs).reverse(),
        codecs,
        extensions,
        rids: Vec::new(),
        remote_streams,
        remote_simulcast_ssrcs,
        msid: section_msid(theirs),
        rtcp_rsize: theirs.has(&Attribute::RtcpRsize),
    })
}
