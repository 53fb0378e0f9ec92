//! Commands from the signaling side, executed on the worker that owns the sessions: SDP
//! negotiation for publishers and subscribers, session setup (ICE-lite credentials, DTLS
//! endpoint), binding streams to the router, and teardown.

use std::sync::atomic::{AtomicU64, Ordering};

use ice_lite::{IceCredentials, IceLiteAgent, IceLiteConfig};
use packet_router::{
    CodecParams, ExtensionIds, MediaKind, PublishedStream, SessionId, SubscribedStream, TrackId,
};
use rand::Rng;
use rtc_core::Ssrc;
use rtc_core::dtls::{DtlsCertificate, DtlsEndpoint, Fingerprint};
use rtc_core::sdp::{
    Capabilities, Direction, HeaderExtension, LocalParams, NegotiatedMedia, NegotiatedSession,
    OutgoingTrack, RtcpFeedback, answer_offer, answer_offer_sending,
};

use crate::session::{Role, Session};
use crate::worker::WorkerState;
use crate::{Answer, Command, SfuError};

/// What every session of this server shares: its certificate, fingerprint and candidate.
#[derive(Debug)]
pub(crate) struct LocalContext {
    pub(crate) certificate: DtlsCertificate,
    pub(crate) fingerprint: String,
    /// The host candidate as an `a=candidate:` value.
    pub(crate) candidate: String,
    /// See [`crate::MediaConfig::setup_timeout`].
    pub(crate) setup_timeout: std::time::Duration,
    pub(crate) next_session: AtomicU64,
}

/// The characters of ICE username fragments; the first one of a ufrag Sluice generates
/// names the worker that owns the session.
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Fresh credentials whose ufrag starts with the character of `worker`.
fn credentials_for(worker: usize) -> IceCredentials {
    let generated = IceCredentials::generate(&mut rand::rng());
    let prefix = ICE_CHARS.get(worker).copied().map_or('A', char::from);
    IceCredentials::new(&format!("{prefix}{}", generated.ufrag()), generated.pwd())
        .unwrap_or(generated)
}

/// The worker a ufrag of ours belongs to.
pub(crate) fn ufrag_owner(ufrag: &str) -> Option<usize> {
    let first = *ufrag.as_bytes().first()?;
    ICE_CHARS.iter().position(|&c| c == first)
}

/// A subscription waiting for its session's DTLS handshake, so that the first packet the
/// subscriber gets follows the keyframe requested when it attaches.
#[derive(Debug, Clone)]
pub(crate) struct PendingSubscription {
    pub(crate) track: TrackId,
    pub(crate) stream: SubscribedStream,
}

pub(crate) fn handle_command(state: &mut WorkerState, command: Command) {
    match command {
        Command::Publish { room, offer, reply } => {
            let _ = reply.send(publish(state, room, &offer));
        }
        Command::Subscribe {
            room,
            publisher,
            offer,
            reply,
        } => {
            let _ = reply.send(subscribe(state, &room, publisher, &offer));
        }
        Command::Close { session, reply } => {
            remove_session(state, session);
            let _ = reply.send(());
        }
        Command::Shutdown => {}
    }
}

fn local_params(state: &WorkerState, credentials: &IceCredentials) -> LocalParams {
    let mut rng = rand::rng();
    LocalParams {
        ice_ufrag: credentials.ufrag().to_owned(),
        ice_pwd: credentials.pwd().to_owned(),
        fingerprint: state.context.fingerprint.clone(),
        candidates: vec![state.context.candidate.clone()],
        session_id: rng.random_range(1..i64::MAX as u64),
        session_version: 1,
    }
}

/// Creates the session of a negotiated offer.
fn new_session(
    state: &mut WorkerState,
    room: String,
    role: Role,
    credentials: IceCredentials,
    negotiated: &NegotiatedSession,
) -> Result<SessionId, SfuError> {
    let remote = IceCredentials::new(&negotiated.remote_ice.ufrag, &negotiated.remote_ice.pwd)
        .map_err(|e| SfuError::BadOffer(format!("remote ICE credentials: {e}")))?;
    let fingerprint = Fingerprint::parse(&format!(
        "{} {}",
        negotiated.remote_fingerprint.hash, negotiated.remote_fingerprint.value
    ))
    .map_err(|e| SfuError::BadOffer(format!("a=fingerprint: {e}")))?;
    let counter = state.context.next_session.fetch_add(1, Ordering::Relaxed);
    let id = SessionId(counter << 8 | state.index as u64);
    let mut ice = IceLiteAgent::new(credentials, IceLiteConfig::default());
    ice.set_remote_credentials(remote);
    let local_ufrag = ice.local_credentials().ufrag().to_owned();
    let session = Session {
        id,
        room,
        role,
        local_ufrag: local_ufrag.clone(),
        ice,
        dtls: DtlsEndpoint::new_server(&state.context.certificate, fingerprint, state.now),
        srtp: None,
        remote: None,
        setup_deadline: state.now + state.context.setup_timeout,
        pending: Vec::new(),
    };
    state.by_ufrag.insert(local_ufrag, id);
    state.sessions.insert(id, session);
    Ok(id)
}

fn extension_ids(media: &NegotiatedMedia) -> ExtensionIds {
    let id = |ext| media.extensions.id(ext);
    ExtensionIds {
        mid: id(HeaderExtension::Mid),
        rid: id(HeaderExtension::RtpStreamId),
        repaired_rid: id(HeaderExtension::RepairedRtpStreamId),
        abs_send_time: id(HeaderExtension::AbsSendTime),
        transport_cc: id(HeaderExtension::TransportWideCc),
        audio_level: id(HeaderExtension::AudioLevel),
        dependency_descriptor: id(HeaderExtension::DependencyDescriptor),
    }
}

fn codec_params(media: &NegotiatedMedia) -> Vec<CodecParams> {
    media
        .codecs
        .iter()
        .map(|c| CodecParams {
            codec: c.codec,
            pt: c.pt,
            rtx_pt: c.rtx_pt,
        })
        .collect()
}

fn publish(state: &mut WorkerState, room: String, offer: &str) -> Result<Answer, SfuError> {
    let credentials = credentials_for(state.index);
    let local = local_params(state, &credentials);
    let (answer, negotiated) = answer_offer(offer, &local, &Capabilities::default())
        .map_err(|e| SfuError::BadOffer(e.to_string()))?;
    let receiving: Vec<&NegotiatedMedia> = negotiated
        .media
        .iter()
        .filter(|m| m.accepted && matches!(m.direction, Direction::RecvOnly | Direction::SendRecv))
        .collect();
    if receiving.is_empty() {
        return Err(SfuError::BadOffer(
            "the offer sends no audio or video to publish".to_owned(),
        ));
    }
    let id = new_session(state, room, Role::Publisher, credentials, &negotiated)?;
    for media in receiving {
        for stream in &media.remote_streams {
            let published = PublishedStream {
                kind: media.kind,
                ssrc: stream.ssrc,
                rtx_ssrc: stream.rtx_ssrc,
                codecs: codec_params(media),
                extensions: extension_ids(media),
                nack: media
                    .codecs
                    .iter()
                    .any(|c| c.rtcp_fb.contains(&RtcpFeedback::Nack)),
            };
            if let Err(e) = state.router.add_published_stream(state.now, id, published) {
                remove_session(state, id);
                return Err(SfuError::BadOffer(format!("mid {}: {e}", media.mid)));
            }
        }
    }
    Ok(Answer {
        session: id,
        sdp: answer,
    })
}

fn subscribe(
    state: &mut WorkerState,
    room: &str,
    publisher: SessionId,
    offer: &str,
) -> Result<Answer, SfuError> {
    match state.sessions.get(&publisher) {
        Some(session) if session.room == room && session.role == Role::Publisher => {}
        _ => return Err(SfuError::UnknownPublisher),
    }
    let tracks: Vec<(TrackId, MediaKind)> = state.router.tracks_of(publisher).collect();
    let mut rng = rand::rng();
    // One outgoing source per kind the publisher has, with our own SSRCs.
    let cname = format!("sluice-{}", publisher.0);
    let sources: Vec<OutgoingTrack> = tracks
        .iter()
        .map(|(track, kind)| OutgoingTrack {
            kind: *kind,
            ssrc: Ssrc(rng.random()),
            rtx_ssrc: Some(Ssrc(rng.random())),
            cname: cname.clone(),
            stream_id: cname.clone(),
            track_id: format!("track-{}", track.0),
            mid: String::new(),
            codecs: Vec::new(),
            active: true,
        })
        .collect();
    let credentials = credentials_for(state.index);
    let local = local_params(state, &credentials);
    let (answer, negotiated) =
        answer_offer_sending(offer, &local, &Capabilities::default(), &sources)
            .map_err(|e| SfuError::BadOffer(e.to_string()))?;
    let mut pending = Vec::new();
    for media in negotiated
        .media
        .iter()
        .filter(|m| m.accepted && matches!(m.direction, Direction::SendOnly | Direction::SendRecv))
    {
        let Some(((track, _), source)) = tracks
            .iter()
            .zip(&sources)
            .find(|((_, kind), _)| *kind == media.kind)
        else {
            continue;
        };
        let has_rtx = media.codecs.iter().any(|c| c.rtx_pt.is_some());
        pending.push(PendingSubscription {
            track: *track,
            stream: SubscribedStream {
                ssrc: source.ssrc,
                rtx_ssrc: source.rtx_ssrc.filter(|_| has_rtx),
                codecs: codec_params(media),
                extensions: extension_ids(media),
                initial_seq: rng.random(),
                initial_timestamp: rng.random(),
            },
        });
    }
    if pending.is_empty() {
        return Err(SfuError::BadOffer(
            "the offer receives none of the publisher's tracks".to_owned(),
        ));
    }
    let id = new_session(
        state,
        room.to_owned(),
        Role::Subscriber { publisher },
        credentials,
        &negotiated,
    )?;
    if let Some(session) = state.sessions.get_mut(&id) {
        session.pending = pending;
    }
    Ok(Answer {
        session: id,
        sdp: answer,
    })
}

/// DTLS completed: bind the session's pending subscriptions.
pub(crate) fn session_connected(state: &mut WorkerState, id: SessionId) {
    let Some(session) = state.sessions.get_mut(&id) else {
        return;
    };
    let pending = std::mem::take(&mut session.pending);
    for subscription in pending {
        // A track that vanished meanwhile (its publisher left) is skipped.
        let _ = state.router.subscribe(
            state.now,
            id,
            subscription.track,
            subscription.stream,
            &mut state.out,
        );
    }
}

/// Removes a session and everything routed to or from it.
pub(crate) fn remove_session(state: &mut WorkerState, id: SessionId) {
    let Some(session) = state.sessions.remove(&id) else {
        return;
    };
    state.router.remove_session(id);
    state.by_ufrag.remove(&session.local_ufrag);
    let index = state.index;
    let shared = &state.shared;
    state.by_address.retain(|address, owner| {
        if *owner != id {
            return true;
        }
        if shared.workers.len() > 1
            && let Ok(mut owners) = shared.owners.write()
            && owners.get(address) == Some(&index)
        {
            owners.remove(address);
        }
        false
    });
}
