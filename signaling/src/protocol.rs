//! The synchronous half of the room protocol (docs/protocol.md): a client's text message
//! parsed and validated into a [`ClientMessage`], and the steps that apply one to a [`Room`].
//! The WebSocket handler calls these between its awaits on the hub and the media plane; the
//! fuzz harness calls the same functions without sockets.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::room::{ChatEntry, Outbox, Participant, ParticipantId, Room};
use crate::validate::{self, Invalid};

/// One validated client message; the strings borrow from the parsed JSON.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClientMessage<'a> {
    Join {
        room: &'a str,
        /// Trimmed.
        name: &'a str,
    },
    Publish {
        offer: &'a str,
        /// The client's `sources`: mid -> "camera" | "microphone" | "screen".
        sources: Option<&'a Map<String, Value>>,
    },
    Answer {
        answer: &'a str,
    },
    Mute {
        video: bool,
        muted: bool,
    },
    Chat {
        text: &'a str,
    },
    Leave,
}

/// The limits message validation applies (from the service's configuration).
#[derive(Debug, Clone, Copy)]
pub struct MessageLimits {
    pub max_sdp_bytes: usize,
    /// Media sections in a publish offer.
    pub max_tracks: usize,
}

/// A text frame as one JSON object.
pub fn parse_object(text: &str) -> Result<Map<String, Value>, Invalid> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(message)) => Ok(message),
        _ => Err(Invalid::new(
            "bad_json",
            "each message must be one JSON object",
        )),
    }
}

/// Validates a message of a connection that has (`joined`) or has not yet joined a room.
pub fn client_message<'a>(
    message: &'a Map<String, Value>,
    joined: bool,
    limits: MessageLimits,
) -> Result<ClientMessage<'a>, Invalid> {
    let Some(kind) = message.get("type").and_then(Value::as_str) else {
        return Err(Invalid::new(
            "bad_json",
            "the message has no string \"type\"",
        ));
    };
    match (kind, joined) {
        ("join", false) => join(message),
        ("join", true) => Err(Invalid::new(
            "already_joined",
            "this connection has already joined a room",
        )),
        ("publish" | "answer" | "mute" | "chat" | "leave", false) => {
            Err(Invalid::new("not_joined", "send join first"))
        }
        ("publish", true) => Ok(ClientMessage::Publish {
            offer: sdp_field(message, limits.max_sdp_bytes, limits.max_tracks)?,
            sources: message.get("sources").and_then(Value::as_object),
        }),
        // An answer to a subscribe offer has one m-line per remote track, so it is not bounded.
        ("answer", true) => Ok(ClientMessage::Answer {
            answer: sdp_field(message, limits.max_sdp_bytes, usize::MAX)?,
        }),
        ("mute", true) => mute(message),
        ("chat", true) => {
            let bad = || Invalid::new("bad_chat", "chat text must be a string");
            let text = message
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            Ok(ClientMessage::Chat {
                text: validate::chat_text(text)?,
            })
        }
        ("leave", true) => Ok(ClientMessage::Leave),
        _ => Err(Invalid::new("unknown_type", "unknown message type")),
    }
}

fn join(message: &Map<String, Value>) -> Result<ClientMessage<'_>, Invalid> {
    let bad_room = || Invalid::new("bad_room", "room must be a string");
    let room = validate::room_name(
        message
            .get("room")
            .and_then(Value::as_str)
            .ok_or_else(bad_room)?,
    )?;
    let bad_name = || Invalid::new("bad_name", "name must be a string");
    let name = validate::display_name(
        message
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(bad_name)?,
    )?;
    Ok(ClientMessage::Join { room, name })
}

/// The message's `sdp`, checked for size and shape, with at most `max_media` m-lines.
fn sdp_field(
    message: &Map<String, Value>,
    max_bytes: usize,
    max_media: usize,
) -> Result<&str, Invalid> {
    let sdp = message
        .get("sdp")
        .and_then(Value::as_str)
        .ok_or(Invalid::new("bad_sdp", "sdp must be a string"))?;
    validate::sdp(sdp, max_bytes, max_media)
}

fn mute(message: &Map<String, Value>) -> Result<ClientMessage<'_>, Invalid> {
    const BAD: Invalid = Invalid::new(
        "bad_mute",
        "mute needs kind \"audio\" or \"video\" and a boolean muted",
    );
    let video = match message.get("kind").and_then(Value::as_str) {
        Some("audio") => false,
        Some("video") => true,
        _ => return Err(BAD),
    };
    let muted = message.get("muted").and_then(Value::as_bool).ok_or(BAD)?;
    Ok(ClientMessage::Mute { video, muted })
}

/// The source a publisher declared for the m-line `mid`, when it is one the protocol knows.
pub fn declared_source(sources: Option<&Map<String, Value>>, mid: &str) -> Option<String> {
    let source = sources?.get(mid)?.as_str()?;
    matches!(source, "camera" | "microphone" | "screen").then(|| source.to_owned())
}

/// Adds a chat message from `from` (under its current name) to the room and sends it to all.
pub fn apply_chat(room: &mut Room, from: ParticipantId, text: &str, at: u64) {
    let name = room.get(from).map(|p| p.name.clone()).unwrap_or_default();
    room.chat(ChatEntry {
        from,
        name,
        text: text.to_owned(),
        at,
    });
}

/// A participant who just joined over a WebSocket: no tracks, nothing muted, no sessions yet.
pub fn participant(
    id: ParticipantId,
    name: &str,
    outbox: Option<Outbox>,
    renegotiate: Option<Arc<Notify>>,
) -> Participant {
    Participant {
        id,
        name: name.to_owned(),
        muted_audio: false,
        muted_video: false,
        tracks: Vec::new(),
        publish: None,
        subscribe: None,
        outbox,
        renegotiate,
    }
}
