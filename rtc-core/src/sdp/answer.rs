//! Answering an offer as Sluice's server side: publishers (WHIP, the room app) offer
//! sendonly or sendrecv media, WHEP players offer recvonly. Sluice is ICE-lite and always the
//! DTLS server, bundles everything on one transport with RTCP multiplexed, and keeps only
//! the codecs, feedback and header extensions it can forward.

use super::SdpError;
use super::attribute::{Attribute, Direction, Extmap, Rid, Setup, Simulcast, SimulcastStream};
use super::codec::{Codec, HeaderExtension};
use super::error::MlineRef;
use super::local::{LocalParams, codec_attributes, codec_formats};
use super::negotiated::{
    MediaKind, NegotiatedMedia, NegotiatedSession, RemoteTransport, offered_encodings,
    remote_streams, remote_transport, section_msid, select_codecs, select_extensions,
};
use super::session::{MediaSection, SessionDescription};
use super::subscriber::{OutgoingTrack, source_attributes};

/// What the caller lets a negotiation pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Codecs Sluice may accept, in preference order (the answer lists them in this order,
    /// so a browser sends the first one it supports).
    pub codecs: Vec<Codec>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            codecs: Codec::ALL.to_vec(),
        }
    }
}

/// Answers `offer`: returns the answer text and what was negotiated.
///
/// Unservable m-lines (data channels, non-RTP protocols, outside the BUNDLE group, no common
/// codec) are rejected with port 0; if none is left the error says why the first one was.
pub fn answer_offer(
    offer: &str,
    local: &LocalParams,
    capabilities: &Capabilities,
) -> Result<(String, NegotiatedSession), SdpError> {
    answer_offer_sending(offer, local, capabilities, &[])
}

/// Answers `offer` like [`answer_offer`], announcing what Sluice sends on the m-lines where
/// it sends (a WHEP player's receive-only offer): each such m-line gets the first unused
/// source of its kind from `sources` (its `mid`, `codecs` and `active` fields are not used
/// here). m-lines left without a source still answer `sendonly`, with no source announced.
pub fn answer_offer_sending(
    offer: &str,
    local: &LocalParams,
    capabilities: &Capabilities,
    sources: &[OutgoingTrack],
) -> Result<(String, NegotiatedSession), SdpError> {
    let offer = SessionDescription::parse(offer)?;
    let bundle = offer.bundle_group().ok_or(SdpError::NoBundle)?;
    check_mids(&offer)?;

    let mut transport: Option<RemoteTransport> = None;
    let mut first_rejection = None;
    let mut negotiated = Vec::with_capacity(offer.media.len());
    for (index, section) in offer.media.iter().enumerate() {
        let at = MlineRef::new(index, section.mid());
        match accept(&offer, section, at, bundle, capabilities)? {
            Ok((media, remote)) => {
                transport.get_or_insert(remote);
                negotiated.push(media);
            }
            Err(reason) => {
                // Keep the first specific reason ("no codec in common") over a generic one.
                if first_rejection.is_none_or(|r| r == SdpError::NothingToServe) {
                    first_rejection = Some(reason);
                }
                negotiated.push(NegotiatedMedia::rejected(section));
            }
        }
    }
    let Some(transport) = transport else {
        return Err(first_rejection.unwrap_or(SdpError::NothingToServe));
    };

    let accepted_mids: Vec<String> = negotiated
        .iter()
        .filter(|m| m.accepted)
        .map(|m| m.mid.clone())
        .collect();
    let allow_mixed = offer.extmap_allow_mixed();
    // An offerer that insists on being the DTLS server (FFmpeg's WHIP muxer says
    // `setup:passive`) gets Sluice as the client; everyone else gets Sluice as the server.
    let local_setup = if transport.setup == Setup::Passive {
        Setup::Active
    } else {
        Setup::Passive
    };
    let mut answer = local.session(accepted_mids.clone(), allow_mixed);
    let mut unused: Vec<&OutgoingTrack> = sources.iter().collect();
    answer.media = offer
        .media
        .iter()
        .zip(&negotiated)
        .map(|(section, media)| {
            let mut answered = answer_section(local, section, media, local_setup);
            let sends = media.accepted
                && matches!(media.direction, Direction::SendOnly | Direction::SendRecv);
            if sends && let Some(at) = unused.iter().position(|s| s.kind == media.kind) {
                let source = unused.remove(at);
                // Before the candidates, which close the section's transport attributes.
                let at = answered
                    .attributes
                    .iter()
                    .position(|a| matches!(a, Attribute::Candidate(_)))
                    .unwrap_or(answered.attributes.len());
                answered
                    .attributes
                    .splice(at..at, source_attributes(source));
            }
            answered
        })
        .collect();

    let session = NegotiatedSession {
        remote_ice: transport.ice,
        remote_fingerprint: transport.fingerprint,
        remote_setup: transport.setup,
        extmap_allow_mixed: allow_mixed,
        bundle: accepted_mids,
        media: negotiated,
    };
    Ok((answer.to_string(), session))
}

/// Every m-line that is not rejected by the offerer needs a unique mid for BUNDLE.
fn check_mids(offer: &SessionDescription) -> Result<(), SdpError> {
    for (index, section) in offer.media.iter().enumerate() {
        let at = MlineRef::new(index, section.mid());
        let Some(mid) = section.mid() else {
            if section.is_rejected() {
                continue;
            }
            return Err(SdpError::MissingMid(at));
        };
        let earlier = offer.media.get(..index).unwrap_or_default();
        if earlier.iter().any(|m| m.mid() == Some(mid)) {
            return Err(SdpError::DuplicateMid(at));
        }
    }
    Ok(())
}

/// Decides one m-line. The outer error aborts the negotiation (a rule violation); the inner
/// one rejects just this line and is reported only if nothing can be served.
#[allow(clippy::type_complexity)] // The two levels of Result are the point.
fn accept(
    offer: &SessionDescription,
    section: &MediaSection,
    at: MlineRef,
    bundle: &[String],
    capabilities: &Capabilities,
) -> Result<Result<(NegotiatedMedia, RemoteTransport), SdpError>, SdpError> {
    let kind = MediaKind::from_media(&section.media);
    let in_bundle = section
        .mid()
        .is_some_and(|mid| bundle.iter().any(|b| b == mid));
    if section.is_rejected()
        || !matches!(kind, MediaKind::Audio | MediaKind::Video)
        || !section.protocol.ends_with("RTP/SAVPF")
        || !in_bundle
    {
        return Ok(Err(SdpError::NothingToServe));
    }
    let remote = remote_transport(offer, section, at)?;
    if remote.setup == Setup::HoldConn {
        return Err(SdpError::UnsupportedSetup {
            mline: at,
            setup: remote.setup,
        });
    }

    let allowed: Vec<Codec> = capabilities
        .codecs
        .iter()
        .copied()
        .filter(|c| c.is_audio() == (kind == MediaKind::Audio))
        .collect();
    let mut codecs = select_codecs(section, &allowed);
    if codecs.is_empty() {
        let offered = offered_encodings(section);
        return Ok(Err(SdpError::NoCommonCodec { mline: at, offered }));
    }
    // Stable: equal codecs keep the offerer's order.
    codecs.sort_by_key(|c| allowed.iter().position(|a| *a == c.codec));

    let remote_direction = offer.direction(section);
    // Sluice forwards publishers' audio as it is and adds redundancy per receiver: a
    // publisher is not offered RED.
    if remote_direction.sends() {
        codecs.iter_mut().for_each(|c| c.red_pt = None);
    }
    let (remote_streams, remote_simulcast_ssrcs) = remote_streams(section);
    let mut extensions = select_extensions(section);
    // The dependency descriptor is not negotiated in either direction. Towards receivers
    // Sluice does not rewrite it across simulcast switches and dropped temporal layers (a
    // receiver that trusted a stale one would assemble frames wrongly). From publishers:
    // with it, Chromium leaves PictureID, TL0PICIDX and TID out of its VP8 descriptors,
    // which are what layer switching and temporal filtering read and rewrite.
    extensions.retain(|_, ext| ext != HeaderExtension::DependencyDescriptor);
    let media = NegotiatedMedia {
        mid: section.mid().unwrap_or_default().to_owned(),
        kind,
        accepted: true,
        direction: remote_direction.reverse(),
        codecs,
        extensions,
        rids: if remote_direction.sends() {
            simulcast_rids(section)
        } else {
            Vec::new()
        },
        remote_streams,
        remote_simulcast_ssrcs,
        msid: section_msid(section),
        rtcp_rsize: section.has(&Attribute::RtcpRsize),
    };
    Ok(Ok((media, remote)))
}

/// The rids of the offer's `a=simulcast:send`, first declared alternative of each stream.
fn simulcast_rids(section: &MediaSection) -> Vec<String> {
    let declared = |id: &str| {
        section
            .attributes
            .iter()
            .any(|a| matches!(a, Attribute::Rid(r) if r.send && r.id == id))
    };
    let Some(simulcast) = section.attributes.iter().find_map(|a| match a {
        Attribute::Simulcast(s) => Some(s),
        _ => None,
    }) else {
        return Vec::new();
    };
    simulcast
        .send
        .iter()
        .filter_map(|stream| stream.alternatives.iter().find(|(rid, _)| declared(rid)))
        .map(|(rid, _)| rid.clone())
        .collect()
}

fn answer_section(
    local: &LocalParams,
    offered: &MediaSection,
    media: &NegotiatedMedia,
    local_setup: Setup,
) -> MediaSection {
    if !media.accepted {
        let mut attributes = Vec::new();
        if let Some(mid) = offered.mid() {
            attributes.push(Attribute::Mid(mid.to_owned()));
        }
        return MediaSection {
            media: offered.media.clone(),
            port: 0,
            protocol: offered.protocol.clone(),
            formats: offered.formats.clone(),
            connection: Some("IN IP4 0.0.0.0".to_owned()),
            attributes,
        };
    }
    let (port, connection) = local.default_address();
    let mut attributes = vec![Attribute::Mid(media.mid.clone())];
    attributes.extend(local.transport_attributes(local_setup));
    attributes.push(Attribute::Direction(media.direction));
    attributes.push(Attribute::RtcpMux);
    if media.rtcp_rsize {
        attributes.push(Attribute::RtcpRsize);
    }
    for attr in &offered.attributes {
        if let Attribute::Extmap(e) = attr {
            let known = HeaderExtension::from_uri(&e.uri);
            if known.is_some() && media.extensions.get(e.id) == known {
                attributes.push(Attribute::Extmap(Extmap {
                    id: e.id,
                    direction: e.direction.map(Direction::reverse),
                    uri: e.uri.clone(),
                    attributes: None,
                }));
            }
        }
    }
    attributes.extend(codec_attributes(&media.codecs));
    if !media.rids.is_empty() {
        for rid in &media.rids {
            attributes.push(Attribute::Rid(Rid {
                id: rid.clone(),
                send: false,
                restrictions: None,
            }));
        }
        let recv = media
            .rids
            .iter()
            .map(|rid| SimulcastStream {
                alternatives: vec![(rid.clone(), false)],
            })
            .collect();
        attributes.push(Attribute::Simulcast(Simulcast {
            send: Vec::new(),
            recv,
        }));
    }
    attributes.extend(local.candidate_attributes());
    MediaSection {
        media: offered.media.clone(),
        port,
        protocol: offered.protocol.clone(),
        formats: codec_formats(&media.codecs),
        connection: Some(connection),
        attributes,
    }
}
