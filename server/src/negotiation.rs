//! Commands from the signaling side, executed on the worker that owns the sessions: SDP
//! negotiation for publishers and subscribers, session setup (ICE-lite credentials, DTLS
//! endpoint), binding streams to the router, and teardown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ice_lite::{IceCredentials, IceLiteAgent, IceLiteConfig};
use packet_router::{
    CodecParams, ExtensionIds, MediaKind, PublishedStream, SessionId, SubscribedStream,
    SubscriptionId, TrackId,
};
use rand::Rng;
use rtc_core::Ssrc;
use rtc_core::dtls::{DtlsCertificate, DtlsEndpoint, Fingerprint};
use rtc_core::sdp::{
    Capabilities, Direction, HeaderExtension, LocalParams, NegotiatedMedia, NegotiatedSession,
    OutgoingTrack, RtcpFeedback, Setup, answer_offer, answer_offer_sending,
    apply_subscriber_answer, build_subscriber_offer,
};

use crate::session::{EndReason, Role, Session};
use crate::worker::WorkerState;
use crate::{
    Command, LocalIceCredentials, Played, Published, PublishedTrack, SfuError, SubscriberOffer,
};

/// What every session of this server shares: its certificate, fingerprint and candidate.
#[derive(Debug)]
pub(crate) struct LocalContext {
    pub(crate) certificate: DtlsCertificate,
    pub(crate) fingerprint: String,
    /// The host candidates as `a=candidate:` values, best first.
    pub(crate) candidates: Vec<String>,
    /// See [`crate::MediaConfig::setup_timeout`].
    pub(crate) setup_timeout: std::time::Duration,
    /// See [`crate::MediaConfig::consent_timeout`].
    pub(crate) consent_timeout: std::time::Duration,
    /// See [`crate::MediaConfig::gso`].
    pub(crate) gso: bool,
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

/// A subscriber connection's m-lines, in order. Mids never change and a slot is never
/// reused: a track that goes away leaves its m-line inactive.
#[derive(Debug, Default)]
pub(crate) struct SubscriberState {
    slots: Vec<Slot>,
    /// The last offer sent, which the answer is applied against.
    offer: Option<String>,
    /// `o=` session version of the next offer.
    version: u64,
    sdp_session_id: u64,
    cname: String,
    /// Sluice's new ICE credentials, offered for an ICE restart and taken up by the answer.
    pending_ice: Option<IceCredentials>,
}

#[derive(Debug)]
struct Slot {
    mid: String,
    kind: MediaKind,
    /// The track carried, or `None` once it is gone.
    track: Option<TrackId>,
    ssrc: Ssrc,
    rtx_ssrc: Ssrc,
    subscription: Option<SubscriptionId>,
}

pub(crate) fn handle_command(state: &mut WorkerState, command: Command) {
    match command {
        Command::Publish {
            room,
            session,
            offer,
            reply,
        } => {
            let result = match session {
                None => publish(state, room, &offer),
                Some(session) => republish(state, session, &offer),
            };
            let _ = reply.send(result);
        }
        Command::Play {
            room,
            publisher,
            offer,
            reply,
        } => {
            let _ = reply.send(play(state, &room, publisher, &offer));
        }
        Command::CreateSubscriber { room, reply } => {
            let _ = reply.send(create_subscriber(state, room));
        }
        Command::OfferTracks {
            session,
            tracks,
            restart_ice,
            reply,
        } => {
            let _ = reply.send(offer_tracks(state, session, &tracks, restart_ice));
        }
        Command::AnswerSubscriber {
            session,
            answer,
            reply,
        } => {
            let _ = reply.send(answer_subscriber(state, session, &answer));
        }
        Command::RestartIce {
            session,
            remote_ufrag,
            remote_pwd,
            reply,
        } => {
            let _ = reply.send(restart_ice(state, session, &remote_ufrag, &remote_pwd));
        }
        Command::Close { session, reply } => {
            remove_session(state, session, EndReason::Closed);
            let _ = reply.send(());
        }
        Command::Shutdown => {}
    }
}

fn local_params(
    session_id: u64,
    version: u64,
    state: &WorkerState,
    ice: &IceCredentials,
) -> LocalParams {
    LocalParams {
        ice_ufrag: ice.ufrag().to_owned(),
        ice_pwd: ice.pwd().to_owned(),
        fingerprint: state.context.fingerprint.clone(),
        candidates: state.context.candidates.clone(),
        session_id,
        session_version: version,
    }
}

fn remote_fingerprint(negotiated: &NegotiatedSession) -> Result<Fingerprint, SfuError> {
    Fingerprint::parse(&format!(
        "{} {}",
        negotiated.remote_fingerprint.hash, negotiated.remote_fingerprint.value
    ))
    .map_err(|e| SfuError::BadOffer(format!("a=fingerprint: {e}")))
}

fn remote_credentials(negotiated: &NegotiatedSession) -> Result<IceCredentials, SfuError> {
    IceCredentials::new(&negotiated.remote_ice.ufrag, &negotiated.remote_ice.pwd)
        .map_err(|e| SfuError::BadOffer(format!("remote ICE credentials: {e}")))
}

/// The DTLS endpoint for a peer's negotiated description: Sluice is the client when the peer
/// said `setup:passive` (FFmpeg's WHIP muxer offers so; a browser may answer so), and starts
/// the handshake once ICE has given it an address; otherwise it is the server.
fn dtls_endpoint(
    certificate: &DtlsCertificate,
    negotiated: &NegotiatedSession,
    now: Instant,
) -> Result<DtlsEndpoint, SfuError> {
    let fingerprint = remote_fingerprint(negotiated)?;
    Ok(if negotiated.remote_setup == Setup::Passive {
        DtlsEndpoint::new_client(certificate, fingerprint, now)
    } else {
        DtlsEndpoint::new_server(certificate, fingerprint, now)
    })
}

/// Creates a session; `remote` is the peer's negotiated description when it is known
/// (it offered), and `None` when Sluice offers first.
fn new_session(
    state: &mut WorkerState,
    room: String,
    role: Role,
    credentials: IceCredentials,
    remote: Option<&NegotiatedSession>,
) -> Result<SessionId, SfuError> {
    let ice_config = IceLiteConfig {
        consent_timeout: state.context.consent_timeout,
        ..IceLiteConfig::default()
    };
    let mut ice = IceLiteAgent::new(credentials, ice_config);
    let mut dtls = None;
    if let Some(negotiated) = remote {
        ice.set_remote_credentials(remote_credentials(negotiated)?);
        dtls = Some(dtls_endpoint(
            &state.context.certificate,
            negotiated,
            state.now,
        )?);
    }
    let counter = state.context.next_session.fetch_add(1, Ordering::Relaxed);
    let id = SessionId(counter << 8 | state.index as u64);
    let local_ufrag = ice.local_credentials().ufrag().to_owned();
    let session = Session {
        id,
        room,
        role,
        local_ufrag: local_ufrag.clone(),
        ice,
        dtls,
        srtp: None,
        remote: None,
        setup_deadline: state.now + state.context.setup_timeout,
        pending: Vec::new(),
        sdp_session_id: rand::rng().random_range(1..i64::MAX as u64),
        sdp_version: 1,
    };
    state.by_ufrag.insert(local_ufrag, id);
    state.timers.schedule(id, session.poll_timeout());
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

/// The m-lines on which Sluice receives media from the peer.
fn receiving(negotiated: &NegotiatedSession) -> impl Iterator<Item = &NegotiatedMedia> {
    negotiated
        .media
        .iter()
        .filter(|m| m.accepted && matches!(m.direction, Direction::RecvOnly | Direction::SendRecv))
}

fn publish(state: &mut WorkerState, room: String, offer: &str) -> Result<Published, SfuError> {
    let credentials = credentials_for(state.index);
    let local = local_params(
        rand::rng().random_range(1..i64::MAX as u64),
        1,
        state,
        &credentials,
    );
    let (answer, negotiated) =
        answer_offer(offer, &local, &Capabilities::default()).map_err(SfuError::Sdp)?;
    if receiving(&negotiated).next().is_none() {
        return Err(SfuError::BadOffer(
            "the offer sends no audio or video to publish".to_owned(),
        ));
    }
    let role = Role::Publisher { tracks: Vec::new() };
    let id = new_session(state, room, role, credentials, Some(&negotiated))?;
    if let Some(session) = state.sessions.get_mut(&id) {
        session.sdp_session_id = local.session_id;
    }
    match update_published_tracks(state, id, &negotiated) {
        Ok(tracks) => Ok(Published {
            session: id,
            sdp: answer,
            tracks,
        }),
        Err(e) => {
            remove_session(state, id, EndReason::OfferRefused);
            Err(e)
        }
    }
}

/// A publisher's new offer on its existing connection (a track added or removed): same DTLS
/// association, tracks updated by SSRC, the same ICE credentials unless the offer restarts
/// ICE (new credentials of its own), which restarts Sluice's side too.
fn republish(state: &mut WorkerState, id: SessionId, offer: &str) -> Result<Published, SfuError> {
    let (sdp_session_id, version, credentials) = {
        let session = state
            .sessions
            .get_mut(&id)
            .ok_or(SfuError::UnknownSession)?;
        if !matches!(session.role, Role::Publisher { .. }) {
            return Err(SfuError::UnknownSession);
        }
        session.sdp_version += 1;
        let credentials = session.ice.local_credentials().clone();
        (session.sdp_session_id, session.sdp_version, credentials)
    };
    let mut local = local_params(sdp_session_id, version, state, &credentials);
    let (mut answer, mut negotiated) =
        answer_offer(offer, &local, &Capabilities::default()).map_err(SfuError::Sdp)?;
    // New ICE credentials in the offer are an ICE restart (RFC 8839 4.4.1.1.1): Sluice
    // answers with new ones of its own.
    let restarted = state
        .sessions
        .get(&id)
        .and_then(|s| s.ice.remote_credentials())
        .is_some_and(|r| {
            r.ufrag() != negotiated.remote_ice.ufrag || r.pwd() != negotiated.remote_ice.pwd
        });
    if restarted {
        let (ufrag, pwd) = (&negotiated.remote_ice.ufrag, &negotiated.remote_ice.pwd);
        let fresh = restart_ice(state, id, ufrag, pwd)?;
        local.ice_ufrag = fresh.ufrag;
        local.ice_pwd = fresh.pwd;
        (answer, negotiated) =
            answer_offer(offer, &local, &Capabilities::default()).map_err(SfuError::Sdp)?;
    }
    let tracks = update_published_tracks(state, id, &negotiated)?;
    Ok(Published {
        session: id,
        sdp: answer,
        tracks,
    })
}

/// ICE restart: the peer's new credentials, new local ones for Sluice (their ufrag's first
/// character still names this worker), the session found by its new ufrag. The agent keeps
/// the selected address until a check on the new credentials arrives; DTLS and SRTP stay.
pub(crate) fn restart_ice(
    state: &mut WorkerState,
    id: SessionId,
    remote_ufrag: &str,
    remote_pwd: &str,
) -> Result<LocalIceCredentials, SfuError> {
    let remote = IceCredentials::new(remote_ufrag, remote_pwd)
        .map_err(|e| SfuError::BadOffer(format!("ICE credentials: {e}")))?;
    let local = unused_credentials(state);
    let session = state
        .sessions
        .get_mut(&id)
        .ok_or(SfuError::UnknownSession)?;
    if session.ice.remote_credentials().is_none() {
        return Err(SfuError::BadOffer(
            "the session has no ICE session to restart yet".to_owned(),
        ));
    }
    apply_ice_restart(
        &mut state.by_ufrag,
        session,
        state.now,
        local.clone(),
        remote,
    );
    Ok(LocalIceCredentials {
        ufrag: local.ufrag().to_owned(),
        pwd: local.pwd().to_owned(),
        candidates: state.context.candidates.clone(),
    })
}

/// Restarts the session's ICE agent with both sides' new credentials and finds the session
/// by its new ufrag from now on.
fn apply_ice_restart(
    by_ufrag: &mut HashMap<String, SessionId>,
    session: &mut Session,
    now: Instant,
    local: IceCredentials,
    remote: IceCredentials,
) {
    session.ice.restart(now, local, remote);
    by_ufrag.remove(&session.local_ufrag);
    session.local_ufrag = session.ice.local_credentials().ufrag().to_owned();
    by_ufrag.insert(session.local_ufrag.clone(), session.id);
    tracing::info!(
        session = session.id.0,
        room = %session.room,
        role = session.role.as_str(),
        ufrag = %session.local_ufrag,
        "ice restart"
    );
}

/// Makes the router's tracks of publisher `id` match what it now sends: new SSRCs become
/// tracks, SSRCs no longer offered are removed (their subscriptions detach).
fn update_published_tracks(
    state: &mut WorkerState,
    id: SessionId,
    negotiated: &NegotiatedSession,
) -> Result<Vec<PublishedTrack>, SfuError> {
    let current = match state.sessions.get_mut(&id).map(|s| &mut s.role) {
        Some(Role::Publisher { tracks }) => std::mem::take(tracks),
        _ => return Err(SfuError::UnknownSession),
    };
    let mut updated = Vec::new();
    let mut failure = None;
    for media in receiving(negotiated) {
        for stream in &media.remote_streams {
            if updated.len() >= MAX_TRACKS_PER_PUBLISHER {
                failure = Some(SfuError::BadOffer(format!(
                    "more than {MAX_TRACKS_PER_PUBLISHER} tracks"
                )));
                break;
            }
            let existing = current
                .iter()
                .find(|t| state.router.track_ssrc(t.id) == Some(stream.ssrc) && t.mid == media.mid);
            if let Some(track) = existing {
                updated.push(track.clone());
                continue;
            }
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
            match state.router.add_published_stream(state.now, id, published) {
                Ok(track) => updated.push(PublishedTrack {
                    id: track,
                    kind: media.kind,
                    mid: media.mid.clone(),
                }),
                Err(e) => failure = Some(SfuError::BadOffer(format!("mid {}: {e}", media.mid))),
            }
        }
    }
    for gone in current
        .iter()
        .filter(|t| !updated.iter().any(|u| u.id == t.id))
    {
        state.router.remove_published_stream(gone.id);
    }
    if let Some(Role::Publisher { tracks }) = state.sessions.get_mut(&id).map(|s| &mut s.role) {
        tracks.clone_from(&updated);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(updated),
    }
}

/// The most tracks one publisher may send.
pub(crate) const MAX_TRACKS_PER_PUBLISHER: usize = 8;

/// WHEP: a player's receive-only offer for `publisher`'s audio and video.
fn play(
    state: &mut WorkerState,
    room: &str,
    publisher: SessionId,
    offer: &str,
) -> Result<Played, SfuError> {
    match state.sessions.get(&publisher) {
        Some(session) if session.room == room && matches!(session.role, Role::Publisher { .. }) => {
        }
        _ => return Err(SfuError::UnknownPublisher),
    }
    let tracks: Vec<(TrackId, MediaKind)> = state.router.tracks_of(publisher).collect();
    let mut rng = rand::rng();
    // One outgoing source per track the publisher has, with our own SSRCs.
    let cname = format!("sluice-{}", publisher.0);
    let sources: Vec<OutgoingTrack> = tracks
        .iter()
        .map(|(track, kind)| OutgoingTrack {
            kind: *kind,
            ssrc: Ssrc(rng.random()),
            // Browsers refuse an RTX group on an audio m-line.
            rtx_ssrc: (*kind == MediaKind::Video).then(|| Ssrc(rng.random())),
            cname: cname.clone(),
            stream_id: cname.clone(),
            track_id: format!("track-{}", track.0),
            mid: String::new(),
            codecs: Vec::new(),
            active: true,
        })
        .collect();
    let credentials = credentials_for(state.index);
    let local = local_params(rng.random_range(1..i64::MAX as u64), 1, state, &credentials);
    let (answer, negotiated) =
        answer_offer_sending(offer, &local, &Capabilities::default(), &sources)
            .map_err(SfuError::Sdp)?;
    let mut pending = Vec::new();
    let mut used = vec![false; sources.len()];
    for media in negotiated
        .media
        .iter()
        .filter(|m| m.accepted && matches!(m.direction, Direction::SendOnly | Direction::SendRecv))
    {
        // The same pairing answer_offer_sending made: the first unused source of the kind.
        let Some(index) = (0..sources.len()).find(|&i| {
            !used.get(i).copied().unwrap_or(true)
                && sources.get(i).is_some_and(|s| s.kind == media.kind)
        }) else {
            continue;
        };
        if let Some(flag) = used.get_mut(index) {
            *flag = true;
        }
        let (Some((track, _)), Some(source)) = (tracks.get(index), sources.get(index)) else {
            continue;
        };
        pending.push(PendingSubscription {
            track: *track,
            stream: subscribed_stream(media, source.ssrc, source.rtx_ssrc),
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
        Role::Player { publisher },
        credentials,
        Some(&negotiated),
    )?;
    if let Some(session) = state.sessions.get_mut(&id) {
        session.pending = pending;
    }
    Ok(Played {
        session: id,
        sdp: answer,
    })
}

fn subscribed_stream(
    media: &NegotiatedMedia,
    ssrc: Ssrc,
    rtx_ssrc: Option<Ssrc>,
) -> SubscribedStream {
    let mut rng = rand::rng();
    let has_rtx = media.codecs.iter().any(|c| c.rtx_pt.is_some());
    SubscribedStream {
        ssrc,
        rtx_ssrc: rtx_ssrc.filter(|_| has_rtx),
        codecs: codec_params(media),
        extensions: extension_ids(media),
        initial_seq: rng.random(),
        initial_timestamp: rng.random(),
    }
}

/// A subscriber connection for the room's signaling: Sluice offers its tracks.
fn create_subscriber(state: &mut WorkerState, room: String) -> Result<SessionId, SfuError> {
    let credentials = credentials_for(state.index);
    let subscriber = SubscriberState {
        version: 1,
        sdp_session_id: rand::rng().random_range(1..i64::MAX as u64),
        cname: format!("sluice-{}", rand::rng().random::<u32>()),
        ..SubscriberState::default()
    };
    new_session(state, room, Role::Subscriber(subscriber), credentials, None)
}

/// Fresh credentials of this worker whose ufrag no session of it has.
fn unused_credentials(state: &WorkerState) -> IceCredentials {
    let mut local = credentials_for(state.index);
    // 48 random bits make a collision unlikely; a new ufrag must not take another's session.
    while state.by_ufrag.contains_key(local.ufrag()) {
        local = credentials_for(state.index);
    }
    local
}

/// Sluice's (re)offer to a subscriber carrying exactly `tracks`; with `restart_ice`, and
/// new ICE credentials of its own that the answer completes.
fn offer_tracks(
    state: &mut WorkerState,
    id: SessionId,
    tracks: &[TrackId],
    restart_ice: bool,
) -> Result<SubscriberOffer, SfuError> {
    let fresh = restart_ice.then(|| unused_credentials(state));
    let WorkerState {
        sessions, router, ..
    } = state;
    let session = sessions.get_mut(&id).ok_or(SfuError::UnknownSession)?;
    let Role::Subscriber(subscriber) = &mut session.role else {
        return Err(SfuError::UnknownSession);
    };
    if let Some(fresh) = fresh {
        if session.ice.remote_credentials().is_none() {
            return Err(SfuError::BadOffer(
                "the connection has no ICE session to restart yet".to_owned(),
            ));
        }
        subscriber.pending_ice.get_or_insert(fresh);
    }
    let kinds: Vec<(TrackId, MediaKind)> = tracks
        .iter()
        .filter_map(|track| Some((*track, router.track_kind(*track)?)))
        .collect();
    if kinds.len() != tracks.len() {
        return Err(SfuError::UnknownTrack);
    }
    // Tracks no longer wanted: their m-lines go inactive and their subscriptions end.
    for slot in &mut subscriber.slots {
        if slot.track.is_some_and(|t| !tracks.contains(&t)) {
            slot.track = None;
            if let Some(subscription) = slot.subscription.take() {
                router.unsubscribe(id, subscription);
            }
        }
    }
    let mut rng = rand::rng();
    for (track, kind) in kinds {
        if subscriber.slots.iter().any(|s| s.track == Some(track)) {
            continue;
        }
        if subscriber.slots.len() >= MAX_SUBSCRIBER_SLOTS {
            return Err(SfuError::TooManyTracks);
        }
        subscriber.slots.push(Slot {
            mid: subscriber.slots.len().to_string(),
            kind,
            track: Some(track),
            ssrc: Ssrc(rng.random()),
            rtx_ssrc: Ssrc(rng.random()),
            subscription: None,
        });
    }
    let outgoing: Vec<OutgoingTrack> = subscriber
        .slots
        .iter()
        .map(|slot| OutgoingTrack {
            mid: slot.mid.clone(),
            kind: slot.kind,
            ssrc: slot.ssrc,
            rtx_ssrc: (slot.kind == MediaKind::Video).then_some(slot.rtx_ssrc),
            cname: subscriber.cname.clone(),
            stream_id: slot
                .track
                .map_or_else(String::new, |t| format!("stream-{}", t.0)),
            track_id: slot
                .track
                .map_or_else(String::new, |t| format!("track-{}", t.0)),
            codecs: Vec::new(),
            active: slot.track.is_some(),
        })
        .collect();
    subscriber.version += 1;
    let ice = subscriber
        .pending_ice
        .as_ref()
        .unwrap_or(session.ice.local_credentials());
    let local = LocalParams {
        ice_ufrag: ice.ufrag().to_owned(),
        ice_pwd: ice.pwd().to_owned(),
        fingerprint: state.context.fingerprint.clone(),
        candidates: state.context.candidates.clone(),
        session_id: subscriber.sdp_session_id,
        session_version: subscriber.version,
    };
    let sdp = build_subscriber_offer(&local, &outgoing);
    subscriber.offer = Some(sdp.clone());
    let mids = subscriber
        .slots
        .iter()
        .filter_map(|slot| Some((slot.mid.clone(), slot.track?)))
        .collect();
    Ok(SubscriberOffer { sdp, mids })
}

/// The most m-lines a subscriber connection accumulates (inactive ones included).
pub(crate) const MAX_SUBSCRIBER_SLOTS: usize = 256;

/// Applies a subscriber's answer to Sluice's last offer: the first answer brings its ICE
/// credentials and fingerprint; every answer binds the tracks it accepted.
fn answer_subscriber(state: &mut WorkerState, id: SessionId, answer: &str) -> Result<(), SfuError> {
    let session = state
        .sessions
        .get_mut(&id)
        .ok_or(SfuError::UnknownSession)?;
    let Role::Subscriber(subscriber) = &mut session.role else {
        return Err(SfuError::UnknownSession);
    };
    let offer = subscriber
        .offer
        .as_deref()
        .ok_or(SfuError::NoOfferPending)?;
    let negotiated = apply_subscriber_answer(offer, answer).map_err(SfuError::Sdp)?;
    let first_answer = session.dtls.is_none();
    if first_answer {
        session
            .ice
            .set_remote_credentials(remote_credentials(&negotiated)?);
        session.dtls = Some(dtls_endpoint(
            &state.context.certificate,
            &negotiated,
            state.now,
        )?);
    }
    // The answer to an ICE-restarting offer: both sides' new credentials apply (below, once
    // the slots are read).
    let restart = if first_answer {
        None
    } else {
        subscriber.pending_ice.take()
    };
    let mut pending = Vec::new();
    for slot in &mut subscriber.slots {
        let (Some(track), None) = (slot.track, slot.subscription) else {
            continue;
        };
        let Some(media) = negotiated.media_by_mid(&slot.mid).filter(|m| m.accepted) else {
            continue;
        };
        let rtx = (slot.kind == MediaKind::Video).then_some(slot.rtx_ssrc);
        pending.push((
            slot.mid.clone(),
            PendingSubscription {
                track,
                stream: subscribed_stream(media, slot.ssrc, rtx),
            },
        ));
    }
    if let Some(local) = restart {
        let remote = remote_credentials(&negotiated)?;
        apply_ice_restart(&mut state.by_ufrag, session, state.now, local, remote);
    }
    if session.srtp.is_none() {
        session.pending.extend(pending.into_iter().map(|(_, p)| p));
        return Ok(());
    }
    for (mid, subscription) in pending {
        bind(state, id, &mid, subscription);
    }
    Ok(())
}

/// Subscribes `id` to a pending track, recording the subscription in its slot (by mid).
fn bind(state: &mut WorkerState, id: SessionId, mid: &str, pending: PendingSubscription) {
    let Ok(subscription) =
        state
            .router
            .subscribe(state.now, id, pending.track, pending.stream, &mut state.out)
    else {
        // The track vanished meanwhile (its publisher left).
        return;
    };
    if let Some(Role::Subscriber(subscriber)) = state.sessions.get_mut(&id).map(|s| &mut s.role)
        && let Some(slot) = subscriber.slots.iter_mut().find(|s| s.mid == mid)
    {
        slot.subscription = Some(subscription);
    }
}

/// DTLS completed: bind the session's pending subscriptions.
pub(crate) fn session_connected(state: &mut WorkerState, id: SessionId) {
    let Some(session) = state.sessions.get_mut(&id) else {
        return;
    };
    let pending = std::mem::take(&mut session.pending);
    let mids: Vec<Option<String>> = match &session.role {
        Role::Subscriber(subscriber) => pending
            .iter()
            .map(|p| {
                subscriber
                    .slots
                    .iter()
                    .find(|s| s.track == Some(p.track))
                    .map(|s| s.mid.clone())
            })
            .collect(),
        _ => vec![None; pending.len()],
    };
    for (subscription, mid) in pending.into_iter().zip(mids) {
        match mid {
            Some(mid) => bind(state, id, &mid, subscription),
            None => {
                let _ = state.router.subscribe(
                    state.now,
                    id,
                    subscription.track,
                    subscription.stream,
                    &mut state.out,
                );
            }
        }
    }
}

/// Ends a session by itself (consent expired, DTLS failed, never connected): removes it and
/// tells the signaling side.
pub(crate) fn end_session(state: &mut WorkerState, id: SessionId, reason: EndReason) {
    if state.sessions.contains_key(&id) {
        remove_session(state, id, reason);
        let _ = state
            .shared
            .events
            .send(crate::MediaEvent::SessionEnded { session: id });
    }
}

/// Removes a session and everything routed to or from it, logging why. The players of a
/// publisher that goes away end with it.
pub(crate) fn remove_session(state: &mut WorkerState, id: SessionId, reason: EndReason) {
    let Some(session) = state.sessions.remove(&id) else {
        return;
    };
    tracing::info!(
        session = id.0,
        room = %session.room,
        role = session.role.as_str(),
        reason = reason.as_str(),
        connected = session.srtp.is_some(),
        "session end"
    );
    if matches!(session.role, Role::Publisher { .. }) {
        let players: Vec<SessionId> = state
            .sessions
            .values()
            .filter(|s| matches!(s.role, Role::Player { publisher } if publisher == id))
            .map(|s| s.id)
            .collect();
        for player in players {
            end_session(state, player, EndReason::PublisherLeft);
        }
    }
    state.router.remove_session(id);
    state.timers.remove(id);
    state.by_ufrag.remove(&session.local_ufrag);
    let index = state.index;
    let shared = &state.shared;
    state.by_address.retain(|address, owner| {
        if *owner != id {
            return true;
        }
        if shared.workers.len() > 1 {
            shared.forget_owner(*address, index);
        }
        false
    });
}
