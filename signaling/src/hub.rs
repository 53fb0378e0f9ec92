//! The hub: every room, and which participant or player owns each media session and each
//! WHIP/WHEP resource. One lock guards it; it is never held across an await, so media-plane
//! calls happen outside it and their results are applied afterwards (re-checking that the
//! participant is still there).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rtc_core::SessionId;

use crate::SignalingConfig;
use crate::auth::{Action, AuthError, Grant, RefusedTokens, unix_now};
use crate::media::{MediaEvent, MediaPlane};
use crate::room::{Outbound, Participant, ParticipantId, Room};

/// The WebSocket close code sent when a participant's media connection ended.
pub const CLOSE_MEDIA_ENDED: u16 = 4000;

/// The WebSocket close code when the server shuts down ("going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// The WebSocket close code when an administrator removed the participant.
pub const CLOSE_REMOVED: u16 = 4001;

/// The WebSocket close code when an administrator closed the room.
pub const CLOSE_ROOM_CLOSED: u16 = 4002;

/// Who a media session belongs to.
#[derive(Debug, Clone)]
enum SessionOwner {
    Participant {
        room: String,
        id: ParticipantId,
    },
    /// A WHEP player, by its resource token, with its downlink's last allocation report.
    Player {
        token: String,
        downlink: Option<crate::quality::DownlinkReport>,
    },
}

/// A WHIP or WHEP resource: what its URL's token controls.
#[derive(Debug, Clone)]
pub enum Resource {
    Whip {
        room: String,
        participant: ParticipantId,
    },
    Whep {
        room: String,
        session: SessionId,
    },
}

#[derive(Debug, Default)]
pub struct HubState {
    pub rooms: HashMap<String, Room>,
    sessions: HashMap<SessionId, SessionOwner>,
    resources: HashMap<String, Resource>,
    next_participant: u64,
    /// The ICE session behind each WHIP or WHEP resource, by its token.
    ice: HashMap<String, crate::whip::IceSession>,
    /// WebSocket participants that may be resumed, by resume token (see `resume.rs`).
    pub(crate) resumable: HashMap<String, crate::resume::Resumable>,
}

impl HubState {
    /// The WHEP players of `room`: resource token and media session.
    fn players_of<'a>(&'a self, room: &'a str) -> impl Iterator<Item = (&'a String, SessionId)> {
        self.resources.iter().filter_map(move |(token, r)| match r {
            Resource::Whep { room: r, session } if r == room => Some((token, *session)),
            _ => None,
        })
    }
}

/// Why a participant could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitError {
    RoomFull,
    TooManyRooms,
}

impl AdmitError {
    pub fn code(self) -> &'static str {
        match self {
            Self::RoomFull => "room_full",
            Self::TooManyRooms => "too_many_rooms",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::RoomFull => "the room is full",
            Self::TooManyRooms => "too many rooms are open",
        }
    }
}

#[derive(Debug)]
pub struct Hub<M> {
    pub media: Arc<M>,
    pub config: SignalingConfig,
    state: Mutex<HubState>,
    /// Turns true when the server shuts down: WebSockets close with a reason, HTTP
    /// connections finish their request and close.
    pub shutting_down: tokio::sync::watch::Sender<bool>,
    /// Connections (HTTP and WebSocket) still open, so that a shutdown can wait for them.
    pub live: tokio::sync::watch::Sender<usize>,
    /// The caps on open HTTP connections and their refusals.
    pub connections: Arc<crate::listener::ConnectionLimits>,
    /// Requests refused for their access token, by reason.
    pub refused: RefusedTokens,
    /// Signaling's counters, served with the gauges at `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
    /// `GET /metrics` is served on its own address, not on the main one.
    pub metrics_elsewhere: bool,
    /// WebSockets the server closed because a limit ran out.
    pub closed: ClosedCounters,
    /// Participants whose WebSocket dropped, by what became of them.
    pub resumes: crate::resume::ResumeCounters,
}

/// WebSockets the server closed because a time limit ran out, by reason.
#[derive(Debug, Default)]
pub struct ClosedCounters {
    /// No participant within the join timeout.
    pub join_timeout: AtomicU64,
    /// Nothing heard (not even a pong) within the pong timeout.
    pub keepalive_timeout: AtomicU64,
}

impl ClosedCounters {
    /// The counters, by reason, for `GET /metrics`.
    pub fn metrics(&self) -> [crate::MediaMetric; 2] {
        const NAME: &str = "sluice_ws_closed";
        const HELP: &str = "WebSockets the server closed because a time limit ran out.";
        let counter = |reason, value: &AtomicU64| crate::MediaMetric {
            label: Some(("reason", reason)),
            ..crate::MediaMetric::counter(NAME, HELP, value.load(Ordering::Relaxed))
        };
        [
            counter("join_timeout", &self.join_timeout),
            counter("keepalive_timeout", &self.keepalive_timeout),
        ]
    }
}

/// Counts one open connection in [`Hub::live`] for as long as it is held.
pub struct LiveConnection(tokio::sync::watch::Sender<usize>);

impl LiveConnection {
    pub fn new(live: &tokio::sync::watch::Sender<usize>) -> Self {
        live.send_modify(|n| *n += 1);
        Self(live.clone())
    }
}

impl Drop for LiveConnection {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl<M: MediaPlane> Hub<M> {
    pub fn new(media: Arc<M>, config: SignalingConfig) -> Self {
        Self {
            media,
            state: Mutex::new(HubState::default()),
            shutting_down: tokio::sync::watch::Sender::new(false),
            live: tokio::sync::watch::Sender::new(0),
            connections: crate::listener::ConnectionLimits::new(
                config.max_connections,
                config.max_connections_per_ip,
            ),
            refused: RefusedTokens::default(),
            metrics: crate::metrics::Metrics::new(),
            metrics_elsewhere: false,
            closed: ClosedCounters::default(),
            resumes: crate::resume::ResumeCounters::default(),
            config,
        }
    }

    /// The grant of a request that came with `token`: everything when no key is configured,
    /// else what the verified token grants. A refusal is counted.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Grant, AuthError> {
        let Some(keys) = &self.config.access else {
            return Ok(Grant::open());
        };
        let verified = token
            .ok_or(AuthError::Missing)
            .and_then(|token| keys.verify(token, unix_now()))
            .map(Grant::from_claims);
        if let Err(error) = verified {
            self.refused.count(error);
        }
        verified
    }

    /// Whether `grant` allows `action`; a refusal is counted.
    pub fn permit(&self, grant: &Grant, action: Action<'_>) -> Result<(), AuthError> {
        let checked = grant.check(action);
        if let Err(error) = checked {
            self.refused.count(error);
        }
        checked
    }

    /// [`Self::authenticate`], then [`Self::permit`] `action`.
    pub fn authorize(&self, token: Option<&str>, action: Action<'_>) -> Result<Grant, AuthError> {
        let grant = self.authenticate(token)?;
        self.permit(&grant, action)?;
        Ok(grant)
    }

    /// Signaling's gauges now: totals and, per room, participants, publishers and tracks.
    pub fn gauges(&self) -> crate::metrics::HubGauges {
        let per_room: Vec<crate::metrics::RoomGauges> = {
            let state = self.state();
            state
                .rooms
                .values()
                .map(|room| crate::metrics::RoomGauges {
                    room: room.name.clone(),
                    participants: room.len() as u64,
                    publishers: room.participants().filter(|p| p.publish.is_some()).count() as u64,
                    tracks: room.participants().map(|p| p.tracks.len() as u64).sum(),
                })
                .collect()
        };
        let mut quality = [0u64; 3];
        for participant in self.state().rooms.values().flat_map(|r| r.participants()) {
            if let Some(level) = participant.quality.level()
                && let Some(index) = crate::quality::QualityLevel::ALL
                    .iter()
                    .position(|l| *l == level)
                && let Some(count) = quality.get_mut(index)
            {
                *count += 1;
            }
        }
        crate::metrics::HubGauges {
            rooms: per_room.len() as u64,
            participants: per_room.iter().map(|r| r.participants).sum(),
            connections: *self.live.borrow() as u64,
            per_room,
            downlink_quality: quality,
        }
    }

    /// The state, also after a panic elsewhere poisoned the lock: every update to it is
    /// complete before any code that could fail runs.
    pub fn state(&self) -> MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a participant may join `room` now.
    pub fn check_admit(&self, state: &HubState, room: &str) -> Result<(), AdmitError> {
        match state.rooms.get(room) {
            Some(existing) if existing.len() >= self.config.max_participants => {
                Err(AdmitError::RoomFull)
            }
            Some(_) => Ok(()),
            None if state.rooms.len() >= self.config.max_rooms => Err(AdmitError::TooManyRooms),
            None => Ok(()),
        }
    }

    /// Adds a participant (creating the room if needed); `build` gets its new id. For a
    /// WebSocket participant the `joined` message is queued before any other message.
    pub fn admit(
        &self,
        room: &str,
        build: impl FnOnce(ParticipantId) -> Participant,
    ) -> Result<ParticipantId, AdmitError> {
        self.admit_with(room, build, |_, _, _| {})
    }

    /// [`Self::admit`], calling `before_joined` under the lock with the new id and the
    /// `joined` message before it is queued (the resume token goes in there).
    pub fn admit_with(
        &self,
        room: &str,
        build: impl FnOnce(ParticipantId) -> Participant,
        before_joined: impl FnOnce(&mut HubState, ParticipantId, &mut serde_json::Value),
    ) -> Result<ParticipantId, AdmitError> {
        let mut state = self.state();
        self.check_admit(&state, room)?;
        state.next_participant += 1;
        let participant = build(ParticipantId(state.next_participant));
        let id = participant.id;
        for session in participant.sessions() {
            state.sessions.insert(
                session,
                SessionOwner::Participant {
                    room: room.to_owned(),
                    id,
                },
            );
        }
        let mut joined = state
            .rooms
            .entry(room.to_owned())
            .or_insert_with(|| Room::new(room.to_owned()))
            .joined_message(id);
        before_joined(&mut state, id, &mut joined);
        if let Some(outbox) = &participant.outbox {
            outbox.send(Outbound::Text(joined.to_string()));
        }
        state
            .rooms
            .entry(room.to_owned())
            .or_insert_with(|| Room::new(room.to_owned()))
            .add(participant);
        Ok(id)
    }

    /// Records that `session` now belongs to participant `id`; false if it left meanwhile.
    pub fn bind_session(
        &self,
        room: &str,
        id: ParticipantId,
        session: SessionId,
        publish: bool,
    ) -> bool {
        let mut state = self.state();
        let Some(participant) = state.rooms.get_mut(room).and_then(|r| r.get_mut(id)) else {
            return false;
        };
        if publish {
            participant.publish = Some(session);
        } else {
            participant.subscribe = Some(session);
        }
        state.sessions.insert(
            session,
            SessionOwner::Participant {
                room: room.to_owned(),
                id,
            },
        );
        true
    }

    /// Forgets that `session` belongs to participant `id` (it is being replaced); false if
    /// the participant left meanwhile or holds another session there.
    pub fn unbind_session(
        &self,
        room: &str,
        id: ParticipantId,
        session: SessionId,
        publish: bool,
    ) -> bool {
        let mut state = self.state();
        let Some(participant) = state.rooms.get_mut(room).and_then(|r| r.get_mut(id)) else {
            return false;
        };
        let slot = if publish {
            &mut participant.publish
        } else {
            &mut participant.subscribe
        };
        if *slot != Some(session) {
            return false;
        }
        *slot = None;
        state.sessions.remove(&session);
        true
    }

    /// Tells the media plane the publish limit of participant `id` (the lower of its own and
    /// its room's), when it has a publish session; `changed` tells it also when there is no
    /// limit (one was lifted), else a new session without a limit needs no word.
    pub async fn apply_publish_limit(&self, room: &str, id: ParticipantId, changed: bool) {
        let limit = self.with_room(room, |r| r.publish_limit(id)).flatten();
        if let Some((session, max_bitrate)) = limit
            && (changed || max_bitrate.is_some())
        {
            self.tell_publish_limit(session, max_bitrate).await;
        }
    }

    /// Tells the media plane every publish limit of `room` (after the room's changed).
    pub async fn apply_room_publish_limits(&self, room: &str) {
        let limits = self
            .with_room(room, |r| r.publish_limits())
            .unwrap_or_default();
        for (session, max_bitrate) in limits {
            self.tell_publish_limit(session, max_bitrate).await;
        }
    }

    async fn tell_publish_limit(&self, session: SessionId, max_bitrate: Option<u64>) {
        if let Err(error) = self
            .media
            .set_publisher_max_bitrate(session, max_bitrate)
            .await
        {
            // The session ended meanwhile: nothing left to limit.
            tracing::debug!(session = session.0, %error, "publish limit not applied");
        }
    }

    /// Runs `f` on the room of a participant, if both still exist.
    pub fn with_room<R>(&self, room: &str, f: impl FnOnce(&mut Room) -> R) -> Option<R> {
        self.state().rooms.get_mut(room).map(f)
    }

    /// Removes a participant, tells the others, drops an emptied room and closes the
    /// participant's sessions. Calling it again for the same participant does nothing.
    #[allow(dead_code)] // For callers with no more specific reason to log.
    pub async fn remove_participant(&self, room: &str, id: ParticipantId) {
        self.remove_participant_because(room, id, "left").await;
    }

    /// [`Hub::remove_participant`], logging `reason` with the leave.
    pub async fn remove_participant_because(
        &self,
        room: &str,
        id: ParticipantId,
        reason: &'static str,
    ) {
        let gone = {
            let mut state = self.state();
            let Some(existing) = state.rooms.get_mut(room) else {
                return;
            };
            let gone = existing.remove(id);
            if existing.is_empty() {
                state.rooms.remove(room);
            }
            if let Some(gone) = &gone {
                for session in gone.sessions() {
                    state.sessions.remove(&session);
                }
                state.resources.retain(
                    |_, r| !matches!(r, Resource::Whip { participant, .. } if *participant == id),
                );
                let HubState { resources, ice, .. } = &mut *state;
                ice.retain(|token, _| resources.contains_key(token));
                crate::resume::forget(&mut state.resumable, room, id);
            }
            gone
        };
        if let Some(gone) = gone {
            tracing::info!(
                room,
                participant = %id.wire(),
                name = %gone.name,
                reason,
                "leave"
            );
            for session in gone.sessions() {
                self.media.close(session).await;
            }
        }
    }

    /// A new 128-bit random resource token, registered to `resource`.
    pub fn add_resource(&self, resource: Resource) -> String {
        let token = crate::random_hex::<16>();
        let mut state = self.state();
        if let Resource::Whep { session, .. } = &resource {
            state.sessions.insert(
                *session,
                SessionOwner::Player {
                    token: token.clone(),
                    downlink: None,
                },
            );
        }
        state.resources.insert(token.clone(), resource);
        token
    }

    pub fn resource(&self, token: &str) -> Option<Resource> {
        self.state().resources.get(token).cloned()
    }

    /// Records the ICE session behind resource `token`.
    pub(crate) fn set_ice_session(&self, token: &str, ice: crate::whip::IceSession) {
        let mut state = self.state();
        if state.resources.contains_key(token) {
            state.ice.insert(token.to_owned(), ice);
        }
    }

    /// The ICE session behind resource `token`.
    pub(crate) fn ice_session(&self, token: &str) -> Option<crate::whip::IceSession> {
        self.state().ice.get(token).cloned()
    }

    /// Replaces the ICE session of resource `token` after a restart; false if the resource
    /// is gone.
    pub(crate) fn replace_ice_session(&self, token: &str, ice: crate::whip::IceSession) -> bool {
        match self.state().ice.get_mut(token) {
            Some(current) => {
                *current = ice;
                true
            }
            None => false,
        }
    }

    /// Ends a WHIP or WHEP resource; false if there was none.
    pub async fn remove_resource(&self, token: &str) -> bool {
        let removed = {
            let mut state = self.state();
            state.ice.remove(token);
            state.resources.remove(token)
        };
        match removed {
            Some(Resource::Whip { room, participant }) => {
                self.remove_participant_because(&room, participant, "whip resource deleted")
                    .await;
                true
            }
            Some(Resource::Whep { session, room }) => {
                tracing::info!(room, session = session.0, "whep player left");
                self.state().sessions.remove(&session);
                self.media.close(session).await;
                true
            }
            None => false,
        }
    }

    /// The WHEP players of `room`, by resource token.
    pub fn players(&self, room: &str) -> Vec<String> {
        self.state()
            .players_of(room)
            .map(|(token, _)| token.clone())
            .collect()
    }

    /// The WHEP players of `room` as the admin API lists them: media session and the last
    /// allocation report of its downlink, by session.
    pub fn player_downlinks(
        &self,
        room: &str,
    ) -> Vec<(SessionId, Option<crate::quality::DownlinkReport>)> {
        let state = self.state();
        let mut players: Vec<_> = state
            .players_of(room)
            .map(|(_, session)| {
                let downlink = match state.sessions.get(&session) {
                    Some(SessionOwner::Player { downlink, .. }) => *downlink,
                    _ => None,
                };
                (session, downlink)
            })
            .collect();
        players.sort_by_key(|(session, _)| session.0);
        players
    }

    /// Removes a participant on an administrator's request: a WebSocket participant is told
    /// why (an `error` with `code`) and its socket closed with `close`; a WHIP publisher's
    /// resource ends. False if there was no such participant.
    pub async fn evict(
        &self,
        room: &str,
        id: ParticipantId,
        code: &'static str,
        close: (u16, &'static str),
    ) -> bool {
        let Some(outbox) = self.with_room(room, |r| r.get(id).map(|p| p.outbox.clone())) else {
            return false;
        };
        let Some(outbox) = outbox else {
            return false;
        };
        self.remove_participant(room, id).await;
        if let Some(outbox) = outbox {
            let text = serde_json::json!({"type": "error", "code": code, "message": close.1});
            outbox.send(Outbound::Text(text.to_string()));
            outbox.send(Outbound::Close(close.0, close.1));
        }
        true
    }

    /// Closes a room: everyone in it is told and removed, its WHIP and WHEP sessions end.
    /// The counts of participants and players removed, or None if there was no such room.
    pub async fn close_room(&self, room: &str) -> Option<(usize, usize)> {
        let ids: Vec<ParticipantId> =
            self.with_room(room, |r| r.participants().map(|p| p.id).collect())?;
        let mut removed = 0;
        for id in ids {
            let close = (CLOSE_ROOM_CLOSED, "the room was closed by an administrator");
            if self.evict(room, id, "room_closed", close).await {
                removed += 1;
            }
        }
        let players = self.players(room);
        let mut ended = 0;
        for token in players {
            if self.remove_resource(&token).await {
                ended += 1;
            }
        }
        Some((removed, ended))
    }

    /// Gives the media plane the priorities of `room`'s video tracks that changed (a new
    /// dominant speaker, a screen share published): what each receiver's bandwidth goes to
    /// first.
    pub async fn apply_track_priorities(&self, room: &str) {
        let changes = self
            .with_room(room, Room::priority_changes)
            .unwrap_or_default();
        for (track, priority) in changes {
            // A track that went meanwhile has no priority to set.
            let _ = self.media.set_track_priority(track, priority).await;
        }
    }

    /// Applies one media-plane event.
    pub async fn handle_media_event(&self, event: MediaEvent) {
        let session = match event {
            MediaEvent::SessionEnded { session } => session,
            MediaEvent::DownlinkQuality { session, .. } => session,
            MediaEvent::AudioActivity {
                publisher,
                packets,
                voiced,
                ..
            } => {
                let now = std::time::Instant::now();
                let changed_room = {
                    let mut state = self.state();
                    match state.sessions.get(&publisher).cloned() {
                        Some(SessionOwner::Participant { room, id }) => state
                            .rooms
                            .get_mut(&room)
                            .is_some_and(|r| r.audio_activity(now, id, packets, voiced))
                            .then_some(room),
                        _ => None,
                    }
                };
                if let Some(room) = changed_room {
                    self.apply_track_priorities(&room).await;
                }
                return;
            }
        };
        let owner = self.state().sessions.get(&session).cloned();
        if let Some(report) = crate::quality::DownlinkReport::of_event(&event) {
            match owner {
                Some(SessionOwner::Participant { room, id }) => {
                    self.with_room(&room, |r| r.downlink_quality(id, report));
                }
                Some(SessionOwner::Player { .. }) => {
                    if let Some(SessionOwner::Player { downlink, .. }) =
                        self.state().sessions.get_mut(&session)
                    {
                        *downlink = Some(report);
                    }
                }
                None => {}
            }
            return;
        }
        match owner {
            Some(SessionOwner::Participant { room, id }) => {
                let outbox = self
                    .with_room(&room, |r| r.get(id).and_then(|p| p.outbox.clone()))
                    .flatten();
                self.remove_participant_because(&room, id, "media connection ended")
                    .await;
                if let Some(outbox) = outbox {
                    outbox.send(Outbound::Close(CLOSE_MEDIA_ENDED, "media connection ended"));
                }
            }
            Some(SessionOwner::Player { token, .. }) => {
                self.remove_resource(&token).await;
            }
            None => {}
        }
    }
}
