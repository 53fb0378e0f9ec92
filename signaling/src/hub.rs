//! The hub: every room, and which participant or player owns each media session and each
//! WHIP/WHEP resource. One lock guards it; it is never held across an await, so media-plane
//! calls happen outside it and their results are applied afterwards (re-checking that the
//! participant is still there).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use packet_router::SessionId;
use rand::RngCore;

use crate::SignalingConfig;
use crate::media::{MediaEvent, MediaPlane};
use crate::room::{Outbound, Participant, ParticipantId, Room};

/// The WebSocket close code sent when a participant's media connection ended.
pub const CLOSE_MEDIA_ENDED: u16 = 4000;

/// The WebSocket close code when the server shuts down ("going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Who a media session belongs to.
#[derive(Debug, Clone)]
enum SessionOwner {
    Participant {
        room: String,
        id: ParticipantId,
    },
    /// A WHEP player, by its resource token.
    Player {
        token: String,
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
    /// WebSockets the server closed because a limit ran out.
    pub closed: ClosedCounters,
}

/// WebSockets the server closed because a time limit ran out, by reason.
#[derive(Debug, Default)]
pub struct ClosedCounters {
    /// No participant within the join timeout.
    pub join_timeout: AtomicU64,
    /// Nothing heard (not even a pong) within the pong timeout.
    pub keepalive_timeout: AtomicU64,
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
            config,
            state: Mutex::new(HubState::default()),
            shutting_down: tokio::sync::watch::Sender::new(false),
            live: tokio::sync::watch::Sender::new(0),
            closed: ClosedCounters::default(),
        }
    }

    /// Signaling's own gauges in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let (rooms, participants) = {
            let state = self.state();
            let participants: usize = state.rooms.values().map(Room::len).sum();
            (state.rooms.len(), participants)
        };
        let connections = *self.live.borrow();
        let join_timeout = self.closed.join_timeout.load(Ordering::Relaxed);
        let keepalive_timeout = self.closed.keepalive_timeout.load(Ordering::Relaxed);
        format!(
            "# HELP sluice_rooms Rooms open now.\n# TYPE sluice_rooms gauge\nsluice_rooms {rooms}\n\
             # HELP sluice_participants Participants in all rooms now.\n# TYPE sluice_participants gauge\nsluice_participants {participants}\n\
             # HELP sluice_http_connections HTTP and WebSocket connections open now.\n# TYPE sluice_http_connections gauge\nsluice_http_connections {connections}\n\
             # HELP sluice_ws_closed_total WebSockets the server closed because a time limit ran out.\n# TYPE sluice_ws_closed_total counter\n\
             sluice_ws_closed_total{{reason=\"join_timeout\"}} {join_timeout}\n\
             sluice_ws_closed_total{{reason=\"keepalive_timeout\"}} {keepalive_timeout}\n"
        )
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
        let entry = state
            .rooms
            .entry(room.to_owned())
            .or_insert_with(|| Room::new(room.to_owned()));
        if let Some(outbox) = &participant.outbox {
            outbox.send(Outbound::Text(entry.joined_message(id).to_string()));
        }
        entry.add(participant);
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

    /// Runs `f` on the room of a participant, if both still exist.
    pub fn with_room<R>(&self, room: &str, f: impl FnOnce(&mut Room) -> R) -> Option<R> {
        self.state().rooms.get_mut(room).map(f)
    }

    /// Removes a participant, tells the others, drops an emptied room and closes the
    /// participant's sessions. Calling it again for the same participant does nothing.
    pub async fn remove_participant(&self, room: &str, id: ParticipantId) {
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
            }
            gone
        };
        if let Some(gone) = gone {
            for session in gone.sessions() {
                self.media.close(session).await;
            }
        }
    }

    /// A new 128-bit random resource token, registered to `resource`.
    pub fn add_resource(&self, resource: Resource) -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut state = self.state();
        if let Resource::Whep { session, .. } = &resource {
            state.sessions.insert(
                *session,
                SessionOwner::Player {
                    token: token.clone(),
                },
            );
        }
        state.resources.insert(token.clone(), resource);
        token
    }

    pub fn resource(&self, token: &str) -> Option<Resource> {
        self.state().resources.get(token).cloned()
    }

    /// Ends a WHIP or WHEP resource; false if there was none.
    pub async fn remove_resource(&self, token: &str) -> bool {
        let removed = self.state().resources.remove(token);
        match removed {
            Some(Resource::Whip { room, participant }) => {
                self.remove_participant(&room, participant).await;
                true
            }
            Some(Resource::Whep { session, .. }) => {
                self.state().sessions.remove(&session);
                self.media.close(session).await;
                true
            }
            None => false,
        }
    }

    /// Applies one media-plane event.
    pub async fn handle_media_event(&self, event: MediaEvent) {
        let MediaEvent::SessionEnded { session } = event;
        let owner = self.state().sessions.get(&session).cloned();
        match owner {
            Some(SessionOwner::Participant { room, id }) => {
                let outbox = self
                    .with_room(&room, |r| r.get(id).and_then(|p| p.outbox.clone()))
                    .flatten();
                self.remove_participant(&room, id).await;
                if let Some(outbox) = outbox {
                    outbox.send(Outbound::Close(CLOSE_MEDIA_ENDED, "media connection ended"));
                }
            }
            Some(SessionOwner::Player { token }) => {
                self.remove_resource(&token).await;
            }
            None => {}
        }
    }
}
