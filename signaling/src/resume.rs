//! Resumable participants (docs/protocol.md, "Reconnecting"). A WebSocket participant gets a
//! resume token with `joined`. When its socket drops without `leave` (closed, lost, silent past
//! the pong timeout), the participant stays in its room for
//! [`crate::SignalingConfig::resume_grace`]: the others hear nothing of the drop and its media
//! sessions keep running. A new socket whose `join` carries the token takes the participant
//! over (same id, tracks and sessions) and gets `joined` with `resumed: true`. Each token
//! resumes once; the resumed `joined` carries the next one. When the grace period ends without
//! a resume, the participant leaves as if its socket had just closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::hub::{Hub, HubState};
use crate::media::MediaPlane;
use crate::room::{Outbound, Outbox, ParticipantId};

/// The close code sent to a connection whose participant was resumed on another connection.
pub const CLOSE_RESUMED: u16 = 4005;

/// What wakes a participant's subscribe task (`ws::renegotiate_loop`), which outlives the
/// connections that carry the participant.
#[derive(Debug, Default)]
pub struct ParticipantSignals {
    /// The participant answered the last subscribe offer.
    pub answered: Notify,
    /// The participant left: the task ends.
    pub stop: Notify,
    /// The client asked for a new subscribe connection (`resubscribe`).
    pub resubscribe: Notify,
    /// A new connection took the participant over: the last offer may never have reached it.
    pub attached: Notify,
}

/// Resumes by outcome, for `GET /metrics`.
#[derive(Debug, Default)]
pub struct ResumeCounters {
    /// A connection took its participant over.
    pub resumed: AtomicU64,
    /// A resume token matched nobody (unknown, used, or its grace period over).
    pub failed: AtomicU64,
    /// A grace period ended without a resume; the participant left.
    pub expired: AtomicU64,
}

impl ResumeCounters {
    /// The counters, by outcome.
    pub fn metrics(&self) -> [crate::MediaMetric; 3] {
        const NAME: &str = "sluice_ws_resumes";
        const HELP: &str = "Participants whose WebSocket dropped, by what became of them.";
        let counter = |outcome, value: &AtomicU64| crate::MediaMetric {
            label: Some(("outcome", outcome)),
            ..crate::MediaMetric::counter(NAME, HELP, value.load(Ordering::Relaxed))
        };
        [
            counter("resumed", &self.resumed),
            counter("failed", &self.failed),
            counter("expired", &self.expired),
        ]
    }
}

/// A participant that a resume token may take over.
#[derive(Debug)]
pub struct Resumable {
    pub room: String,
    pub id: ParticipantId,
    pub signals: Arc<ParticipantSignals>,
    /// The participant has no WebSocket: its grace period is running.
    pub detached: bool,
}

/// What became of the participant of a connection that dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Kept for the grace period, for a resume.
    Kept,
    /// No longer this connection's (it left, was removed, or was resumed elsewhere).
    NotOurs,
    /// To leave now: resuming is off.
    Leave,
}

/// A participant taken over by a new connection.
#[derive(Debug)]
pub struct Resumed {
    pub id: ParticipantId,
    pub signals: Arc<ParticipantSignals>,
    /// The token for the next resume.
    pub token: String,
}

/// A new 128-bit random token, as 32 lowercase hex digits.
pub fn new_token() -> String {
    crate::random_hex::<16>()
}

/// Whether `text` could be a token of [`new_token`]'s (anything else is refused unread).
pub fn is_token_shaped(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Registers `token` for participant `id`, which just joined `room` on a connection.
pub fn register(
    state: &mut HubState,
    token: &str,
    room: &str,
    id: ParticipantId,
    signals: Arc<ParticipantSignals>,
) {
    state.resumable.insert(
        token.to_owned(),
        Resumable {
            room: room.to_owned(),
            id,
            signals,
            detached: false,
        },
    );
}

/// Forgets the resume token of participant `id` of `room`, which is leaving, and stops its
/// subscribe task.
pub fn forget(resumable: &mut HashMap<String, Resumable>, room: &str, id: ParticipantId) {
    resumable.retain(|_, r| {
        let leaving = r.room == room && r.id == id;
        if leaving {
            r.signals.stop.notify_one();
        }
        !leaving
    });
}

/// Adds `field: value` to a message object.
pub fn insert_field(message: &mut Value, field: &str, value: Value) {
    if let Value::Object(fields) = message {
        fields.insert(field.to_owned(), value);
    }
}

impl<M: MediaPlane> Hub<M> {
    /// Whether the connection of `outbox` is the one participant `id` of `room` is on now.
    pub fn is_connection_of(&self, room: &str, id: ParticipantId, outbox: &Outbox) -> bool {
        self.with_room(room, |r| {
            r.get(id)
                .and_then(|p| p.outbox.as_ref())
                .is_some_and(|o| o.same(outbox))
        })
        .unwrap_or(false)
    }

    /// The connection of `outbox` dropped without `leave`: keeps its participant for the
    /// grace period when it is still this connection's and has a resume `token`.
    pub fn detach(
        self: &Arc<Self>,
        room: &str,
        id: ParticipantId,
        outbox: &Outbox,
        token: Option<&str>,
    ) -> Dropped {
        let grace = self.config.resume_grace;
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(participant) = state.rooms.get_mut(room).and_then(|r| r.get_mut(id)) else {
            return Dropped::NotOurs;
        };
        if !participant.outbox.as_ref().is_some_and(|o| o.same(outbox)) {
            return Dropped::NotOurs;
        }
        let Some((token, entry)) = token
            .filter(|_| !grace.is_zero())
            .and_then(|t| state.resumable.get_mut(t).map(|entry| (t, entry)))
        else {
            return Dropped::Leave;
        };
        participant.outbox = None;
        entry.detached = true;
        drop(guard);
        let hub = Arc::clone(self);
        let token = token.to_owned();
        let expiry = async move {
            tokio::time::sleep(grace).await;
            hub.grace_ended(&token).await;
        };
        tokio::spawn(tracing::Instrument::instrument(
            expiry,
            tracing::Span::current(),
        ));
        Dropped::Kept
    }

    /// The grace period of the participant detached with `token` ended: it leaves, unless a
    /// connection resumed it meanwhile (which replaced the token).
    async fn grace_ended(&self, token: &str) {
        let expired = self
            .state()
            .resumable
            .get(token)
            .filter(|r| r.detached)
            .map(|r| (r.room.clone(), r.id));
        if let Some((room, id)) = expired {
            self.resumes.expired.fetch_add(1, Ordering::Relaxed);
            self.remove_participant_because(&room, id, "resume grace ended")
                .await;
        }
    }

    /// Takes the participant of resume `token` in `room` over for the connection of `outbox`,
    /// which gets `joined` (with `resumed: true`, the next token and the participant's own
    /// mute state) before anything else. A connection still holding the participant is closed
    /// with [`CLOSE_RESUMED`]. None when there is no such participant (any more), or its token
    /// identity is not `identity`.
    pub fn resume(
        &self,
        token: &str,
        room: &str,
        identity: Option<&str>,
        outbox: &Outbox,
    ) -> Option<Resumed> {
        let mut guard = self.state();
        let state = &mut *guard;
        let entry = state.resumable.get(token).filter(|r| r.room == room)?;
        let (id, signals) = (entry.id, Arc::clone(&entry.signals));
        let room_state = state.rooms.get_mut(room)?;
        let participant = room_state.get_mut(id)?;
        if participant.identity.as_deref() != identity {
            return None;
        }
        let previous = participant.outbox.replace(outbox.clone());
        let muted = json!({"audio": participant.muted_audio, "video": participant.muted_video});
        let next = new_token();
        let mut joined = room_state.joined_message(id);
        insert_field(&mut joined, "resumed", Value::Bool(true));
        insert_field(&mut joined, "resume", Value::String(next.clone()));
        insert_field(&mut joined, "muted", muted);
        outbox.send(Outbound::Text(joined.to_string()));
        if let Some(previous) = previous.filter(|p| !p.same(outbox)) {
            previous.send(Outbound::Close(
                CLOSE_RESUMED,
                "resumed on another connection",
            ));
        }
        state.resumable.remove(token);
        register(state, &next, room, id, Arc::clone(&signals));
        signals.attached.notify_one();
        Some(Resumed {
            id,
            signals,
            token: next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_hex_and_only_that_shape_is_taken() {
        let token = new_token();
        assert!(is_token_shaped(&token), "{token}");
        assert_ne!(token, new_token());
        for junk in ["", "00", &"g".repeat(32), &"A".repeat(32), &"0".repeat(33)] {
            assert!(!is_token_shaped(junk), "{junk}");
        }
    }
}
