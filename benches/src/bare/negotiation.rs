//! WHIP and WHEP offers on the media thread: rtc-core's SDP negotiation (the same answers
//! Sluice writes: ICE-lite, one host candidate on the media port, DTLS server), then a new
//! session in the table. A player's answer announces the publisher's own SSRCs, because the
//! bare forwarder sends every packet on unchanged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ice_lite::{IceCredentials, IceLiteAgent, IceLiteConfig};
use media_plane::PeerTransport;
use packet_router::{SessionId, TrackId};
use rand::Rng;
use rtc_core::dtls::{DtlsCertificate, DtlsRole, Fingerprint};
use rtc_core::sdp::{
    Capabilities, Direction, LocalParams, MediaKind, NegotiatedMedia, NegotiatedSession,
    OutgoingTrack, answer_offer, answer_offer_sending,
};
use signaling::{MediaError, Played, Published, PublishedTrack};

use super::session::{Publisher, Session, SessionRole, Source};
use super::table::SessionTable;

/// What every session shares: the certificate, its fingerprint and the host candidate.
#[derive(Debug)]
pub(crate) struct LocalContext {
    pub(crate) certificate: DtlsCertificate,
    pub(crate) fingerprint: String,
    /// The host candidate as an `a=candidate:` value.
    pub(crate) candidate: String,
    pub(crate) setup_timeout: Duration,
    pub(crate) next_id: AtomicU64,
}

impl LocalContext {
    fn local_params(&self, credentials: &IceCredentials) -> LocalParams {
        LocalParams {
            ice_ufrag: credentials.ufrag().to_owned(),
            ice_pwd: credentials.pwd().to_owned(),
            fingerprint: self.fingerprint.clone(),
            candidates: vec![self.candidate.clone()],
            session_id: rand::rng().random_range(1..i64::MAX as u64),
            session_version: 1,
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

fn bad_sdp(why: impl std::fmt::Display) -> MediaError {
    MediaError::BadSdp(why.to_string())
}

/// A session for a peer that offered: DTLS server, expecting the offer's fingerprint.
fn new_session(
    context: &LocalContext,
    now: Instant,
    room: &str,
    role: SessionRole,
    credentials: IceCredentials,
    negotiated: &NegotiatedSession,
) -> Result<Session, MediaError> {
    let remote = &negotiated.remote_ice;
    let remote_credentials =
        IceCredentials::new(&remote.ufrag, &remote.pwd).map_err(|e| bad_sdp(e.to_string()))?;
    let fingerprint = Fingerprint::parse(&format!(
        "{} {}",
        negotiated.remote_fingerprint.hash, negotiated.remote_fingerprint.value
    ))
    .map_err(|e| bad_sdp(format!("a=fingerprint: {e}")))?;
    let local_ufrag = credentials.ufrag().to_owned();
    let mut ice = IceLiteAgent::new(credentials, IceLiteConfig::default());
    ice.set_remote_credentials(remote_credentials);
    let mut transport = PeerTransport::new_lite(ice, now + context.setup_timeout);
    transport.start_dtls(now, &context.certificate, fingerprint, DtlsRole::Server);
    Ok(Session {
        id: SessionId(context.next_id()),
        room: room.to_owned(),
        role,
        local_ufrag,
        transport,
    })
}

/// The m-lines on which the peer sends to us.
fn receiving(negotiated: &NegotiatedSession) -> impl Iterator<Item = &NegotiatedMedia> {
    negotiated
        .media
        .iter()
        .filter(|m| m.accepted && matches!(m.direction, Direction::RecvOnly | Direction::SendRecv))
}

/// The m-lines on which we send to the peer.
fn sending(negotiated: &NegotiatedSession) -> impl Iterator<Item = &NegotiatedMedia> {
    negotiated
        .media
        .iter()
        .filter(|m| m.accepted && matches!(m.direction, Direction::SendOnly | Direction::SendRecv))
}

/// WHIP: answers a publisher's offer and adds its session.
pub(crate) fn publish(
    context: &LocalContext,
    table: &mut SessionTable,
    now: Instant,
    room: &str,
    offer: &str,
) -> Result<Published, MediaError> {
    let credentials = IceCredentials::generate(&mut rand::rng());
    let local = context.local_params(&credentials);
    let (answer, negotiated) =
        answer_offer(offer, &local, &Capabilities::default()).map_err(bad_sdp)?;
    let mut sources = Vec::new();
    let mut tracks = Vec::new();
    for media in receiving(&negotiated) {
        let codec = media.codecs.first().map(|c| (c.codec, c.pt));
        for stream in &media.remote_streams {
            sources.push(Source {
                kind: media.kind,
                ssrc: stream.ssrc,
                rtx_ssrc: stream.rtx_ssrc,
                codec,
            });
            tracks.push(PublishedTrack {
                id: TrackId(context.next_id()),
                kind: media.kind,
                mid: media.mid.clone(),
            });
        }
    }
    if sources.is_empty() {
        return Err(bad_sdp(
            "the offer announces no audio or video source (a=ssrc) to publish",
        ));
    }
    let role = SessionRole::Publisher(Box::new(Publisher {
        sources,
        inbound: None,
        subscribers: Vec::new(),
    }));
    let session = new_session(context, now, room, role, credentials, &negotiated)?;
    let id = session.id;
    table.insert(session);
    Ok(Published {
        session: id,
        sdp: answer,
        tracks,
    })
}

/// WHEP: answers a player's receive-only offer for `publisher`'s sources and adds its
/// session. The player must receive each codec under the payload type the publisher sends
/// it with, since nothing is rewritten.
pub(crate) fn play(
    context: &LocalContext,
    table: &mut SessionTable,
    now: Instant,
    room: &str,
    publisher: SessionId,
    offer: &str,
) -> Result<Played, MediaError> {
    let publisher_slot = table.slot_of(publisher).ok_or(MediaError::UnknownSession)?;
    let sources = match table.get(publisher_slot) {
        Some(Session {
            room: publisher_room,
            role: SessionRole::Publisher(p),
            ..
        }) if publisher_room == room => p.sources.clone(),
        _ => return Err(MediaError::UnknownSession),
    };
    let cname = format!("bare-{}", publisher.0);
    let outgoing: Vec<OutgoingTrack> = sources
        .iter()
        .enumerate()
        .map(|(index, source)| OutgoingTrack {
            mid: String::new(),
            kind: source.kind,
            ssrc: source.ssrc,
            // Browsers refuse an RTX group on an audio m-line.
            rtx_ssrc: source.rtx_ssrc.filter(|_| source.kind == MediaKind::Video),
            cname: cname.clone(),
            stream_id: cname.clone(),
            track_id: format!("{cname}-{index}"),
            codecs: Vec::new(),
            active: true,
        })
        .collect();
    let credentials = IceCredentials::generate(&mut rand::rng());
    let local = context.local_params(&credentials);
    let (answer, negotiated) =
        answer_offer_sending(offer, &local, &Capabilities::default(), &outgoing)
            .map_err(bad_sdp)?;
    let mut served = 0;
    for media in sending(&negotiated) {
        for source in sources.iter().filter(|s| s.kind == media.kind) {
            let Some((codec, pt)) = source.codec else {
                continue;
            };
            if media.codec_by_pt(pt).map(|c| c.codec) != Some(codec) {
                return Err(bad_sdp(format!(
                    "mid {}: the publisher sends {codec:?} as payload type {}, which this offer \
                     does not receive under that number (the bare forwarder rewrites nothing)",
                    media.mid, pt.0
                )));
            }
            served += 1;
        }
    }
    if served == 0 {
        return Err(bad_sdp(
            "the offer receives none of the publisher's sources",
        ));
    }
    let role = SessionRole::Player {
        publisher: publisher_slot,
    };
    let session = new_session(context, now, room, role, credentials, &negotiated)?;
    let id = session.id;
    table.insert(session);
    Ok(Played {
        session: id,
        sdp: answer,
    })
}
