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
        /// An access token, when it did not come with the WebSocket's URL.
        token: Option<&'a str>,
        /// The resume token of a participant this connection takes over (docs/protocol.md,
        /// "Reconnecting").
        resume: Option<&'a str>,
    },
    Publish {
        offer: &'a str,
        /// The client's `sources`: mid -> "camera" | "microphone" | "screen".
        sources: Option<&'a Map<String, Value>>,
        /// The offer comes from a new peer connection (the old one failed): it gets a new
        /// publish session, which replaces the old one.
        new_session: bool,
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
    /// Asks for a new subscribe connection: a fresh session and its first offer.
    Resubscribe,
    /// Caps the simulcast layer the participant receives of a track (0 the lowest
    /// resolution, `None` the highest the publisher sends, the default) and its temporal
    /// layer (0 the base frame rate, `None` all).
    SetLayer {
        track: rtc_core::TrackId,
        cap: crate::media::LayerCap,
    },
    /// How the participant shows a track (adaptive stream): its tile's size in device
    /// pixels, whether it is visible, whether it is pinned.
    View {
        track: rtc_core::TrackId,
        view: crate::media::TrackView,
    },
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
        (
            "publish" | "answer" | "mute" | "chat" | "leave" | "resubscribe" | "set_layer" | "view",
            false,
        ) => Err(Invalid::new("not_joined", "send join first")),
        ("publish", true) => Ok(ClientMessage::Publish {
            offer: sdp_field(message, limits.max_sdp_bytes, limits.max_tracks)?,
            sources: message.get("sources").and_then(Value::as_object),
            new_session: message.get("new_session") == Some(&Value::Bool(true)),
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
        ("resubscribe", true) => Ok(ClientMessage::Resubscribe),
        ("set_layer", true) => set_layer(message),
        ("view", true) => view(message),
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
    let token = match message.get("token") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => Some(token.as_str()),
        Some(_) => return Err(Invalid::new("bad_token", "token must be a string")),
    };
    let resume = match message.get("resume") {
        None | Some(Value::Null) => None,
        Some(Value::String(resume)) if crate::resume::is_token_shaped(resume) => {
            Some(resume.as_str())
        }
        Some(_) => {
            return Err(Invalid::new(
                "resume_failed",
                "resume must be a resume token from joined",
            ));
        }
    };
    Ok(ClientMessage::Join {
        room,
        name,
        token,
        resume,
    })
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

/// The highest simulcast layer a client may name (`set_layer`, WHEP's `?layer=`).
pub(crate) const MAX_LAYER: usize = 15;

/// The highest temporal layer a client may name (`set_layer`'s `temporal`, WHEP's
/// `?temporal=`): VP8 and VP9 carry a 2- and a 3-bit TID.
pub(crate) const MAX_TEMPORAL_LAYER: u8 = 7;

fn set_layer(message: &Map<String, Value>) -> Result<ClientMessage<'_>, Invalid> {
    const BAD: Invalid = Invalid::new(
        "bad_layer",
        "set_layer needs a track id and a layer: a number from 0 (the lowest) or null (the highest); \
         temporal, if given, is a number from 0 to 7 or null",
    );
    let track = message
        .get("track")
        .and_then(Value::as_str)
        .and_then(crate::room::parse_track_wire)
        .ok_or(BAD)?;
    let layer = match message.get("layer") {
        Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|l| usize::try_from(l).ok())
                .filter(|&l| l <= MAX_LAYER)
                .ok_or(BAD)?,
        ),
        None => return Err(BAD),
    };
    let temporal = match message.get("temporal") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|t| u8::try_from(t).ok())
                .filter(|&t| t <= MAX_TEMPORAL_LAYER)
                .ok_or(BAD)?,
        ),
    };
    let cap = crate::media::LayerCap {
        spatial: layer,
        temporal,
    };
    Ok(ClientMessage::SetLayer { track, cap })
}

/// The largest tile side a client may report (`view`), in device pixels.
pub(crate) const MAX_VIEW_SIDE: u64 = 16_384;

fn view(message: &Map<String, Value>) -> Result<ClientMessage<'_>, Invalid> {
    const BAD: Invalid = Invalid::new(
        "bad_view",
        "view needs a track id; width and height, if given, are numbers of device pixels from 1 \
         to 16384 (both or neither); visible and pinned, if given, are booleans",
    );
    let track = message
        .get("track")
        .and_then(Value::as_str)
        .and_then(crate::room::parse_track_wire)
        .ok_or(BAD)?;
    let side = |name: &str| match message.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .filter(|&v| (1..=MAX_VIEW_SIDE).contains(&v))
            .and_then(|v| u16::try_from(v).ok())
            .map(Some)
            .ok_or(BAD),
    };
    let size = match (side("width")?, side("height")?) {
        (Some(width), Some(height)) => Some((width, height)),
        (None, None) => None,
        _ => return Err(BAD),
    };
    let flag = |name: &str, default: bool| match message.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value.as_bool().ok_or(BAD),
    };
    let view = crate::media::TrackView {
        size,
        visible: flag("visible", true)?,
        pinned: flag("pinned", false)?,
    };
    Ok(ClientMessage::View { track, view })
}

/// The source a publisher declared for the m-line `mid`, when it is one the protocol knows.
pub fn declared_source(sources: Option<&Map<String, Value>>, mid: &str) -> Option<String> {
    let source = sources?.get(mid)?.as_str()?;
    matches!(source, "camera" | "microphone" | "screen").then(|| source.to_owned())
}

/// Adds a chat message from `from` (under its current name) to the room and sends it to all.
/// Nothing happens when `from` is not in the room (any more: an administrator removed it).
pub fn apply_chat(room: &mut Room, from: ParticipantId, text: &str, at: u64) {
    let Some(name) = room.get(from).map(|p| p.name.clone()) else {
        return;
    };
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
        identity: None,
        hidden: false,
        name: name.to_owned(),
        muted_audio: false,
        muted_video: false,
        tracks: Vec::new(),
        publish: None,
        subscribe: None,
        max_publish_bitrate: None,
        outbox,
        renegotiate,
        quality: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: MessageLimits = MessageLimits {
        max_sdp_bytes: 1000,
        max_tracks: 2,
    };

    fn check(text: &str, joined: bool) -> Result<String, &'static str> {
        let message = parse_object(text).map_err(|e| e.code)?;
        client_message(&message, joined, LIMITS)
            .map(|m| format!("{m:?}"))
            .map_err(|e| e.code)
    }

    #[test]
    fn join_validates_room_and_trims_name() {
        assert_eq!(
            check(r#"{"type":"join","room":"r","name":"  Ann "}"#, false),
            Ok(r#"Join { room: "r", name: "Ann", token: None, resume: None }"#.to_owned())
        );
        assert_eq!(
            check(
                r#"{"type":"join","room":"r","name":"Ann","resume":7}"#,
                false
            ),
            Err("resume_failed")
        );
        assert_eq!(
            check(
                r#"{"type":"join","room":"r","name":"Ann","resume":"<b>"}"#,
                false
            ),
            Err("resume_failed")
        );
        assert_eq!(
            check(r#"{"type":"join","name":"Ann"}"#, false),
            Err("bad_room")
        );
        assert_eq!(
            check(r#"{"type":"join","room":"r","name":"\u0007"}"#, false),
            Err("bad_name")
        );
        assert_eq!(
            check(r#"{"type":"join","room":"r","name":"Ann"}"#, true),
            Err("already_joined")
        );
    }

    #[test]
    fn only_join_comes_before_joining() {
        for kind in [
            "publish",
            "answer",
            "mute",
            "chat",
            "leave",
            "resubscribe",
            "set_layer",
            "view",
        ] {
            assert_eq!(
                check(&format!(r#"{{"type":"{kind}"}}"#), false),
                Err("not_joined")
            );
        }
        assert_eq!(check(r#"{"type":"leave"}"#, true), Ok("Leave".to_owned()));
        assert_eq!(
            check(r#"{"type":"resubscribe"}"#, true),
            Ok("Resubscribe".to_owned())
        );
        assert_eq!(check(r#"{"type":"dance"}"#, true), Err("unknown_type"));
        assert_eq!(check(r#"{"type":1}"#, true), Err("bad_json"));
        assert_eq!(check("[1]", true), Err("bad_json"));
        assert_eq!(check("{", true), Err("bad_json"));
    }

    #[test]
    fn offers_are_bounded_in_media_sections_answers_are_not() {
        let three = r#""sdp":"v=0\r\nm=audio\r\nm=video\r\nm=video\r\n""#;
        assert_eq!(
            check(&format!(r#"{{"type":"publish",{three}}}"#), true),
            Err("too_many_tracks")
        );
        assert!(check(&format!(r#"{{"type":"answer",{three}}}"#), true).is_ok());
        assert_eq!(
            check(r#"{"type":"publish","sdp":"m=audio"}"#, true),
            Err("bad_sdp")
        );
    }

    #[test]
    fn view_names_a_track_and_optionally_a_size_visibility_and_a_pin() {
        assert_eq!(
            check(
                r#"{"type":"view","track":"t7","width":640,"height":360,"visible":true,"pinned":true}"#,
                true
            ),
            Ok("View { track: TrackId(7), view: TrackView { size: Some((640, 360)), visible: true, pinned: true } }".to_owned())
        );
        assert_eq!(
            check(r#"{"type":"view","track":"t7","visible":false}"#, true),
            Ok("View { track: TrackId(7), view: TrackView { size: None, visible: false, pinned: false } }".to_owned())
        );
        for bad in [
            r#"{"type":"view"}"#,
            r#"{"type":"view","track":"x"}"#,
            r#"{"type":"view","track":"t7","width":640}"#,
            r#"{"type":"view","track":"t7","width":0,"height":360}"#,
            r#"{"type":"view","track":"t7","width":99999,"height":360}"#,
            r#"{"type":"view","track":"t7","width":-1,"height":360}"#,
            r#"{"type":"view","track":"t7","visible":"yes"}"#,
            r#"{"type":"view","track":"t7","pinned":1}"#,
        ] {
            assert_eq!(check(bad, true), Err("bad_view"), "{bad}");
        }
    }

    #[test]
    fn set_layer_names_a_track_and_a_layer_or_null() {
        assert_eq!(
            check(r#"{"type":"set_layer","track":"t512","layer":0}"#, true),
            Ok(
                "SetLayer { track: TrackId(512), cap: LayerCap { spatial: Some(0), temporal: None } }"
                    .to_owned()
            )
        );
        assert_eq!(
            check(r#"{"type":"set_layer","track":"t512","layer":null}"#, true),
            Ok(
                "SetLayer { track: TrackId(512), cap: LayerCap { spatial: None, temporal: None } }"
                    .to_owned()
            )
        );
        assert_eq!(
            check(
                r#"{"type":"set_layer","track":"t512","layer":null,"temporal":1}"#,
                true
            ),
            Ok(
                "SetLayer { track: TrackId(512), cap: LayerCap { spatial: None, temporal: Some(1) } }"
                    .to_owned()
            )
        );
        for bad in [
            r#"{"type":"set_layer","track":"t512"}"#,
            r#"{"type":"set_layer","track":"512","layer":1}"#,
            r#"{"type":"set_layer","track":"t512","layer":-1}"#,
            r#"{"type":"set_layer","track":"t512","layer":16}"#,
            r#"{"type":"set_layer","track":"t512","layer":"high"}"#,
            r#"{"type":"set_layer","track":"t512","layer":0,"temporal":8}"#,
            r#"{"type":"set_layer","track":"t512","layer":0,"temporal":"low"}"#,
        ] {
            assert_eq!(check(bad, true), Err("bad_layer"), "{bad}");
        }
    }

    #[test]
    fn mute_and_chat_fields_are_checked() {
        assert_eq!(
            check(r#"{"type":"mute","kind":"video","muted":true}"#, true),
            Ok("Mute { video: true, muted: true }".to_owned())
        );
        assert_eq!(
            check(r#"{"type":"mute","kind":"video","muted":1}"#, true),
            Err("bad_mute")
        );
        assert_eq!(
            check(r#"{"type":"chat","text":"  "}"#, true),
            Err("bad_chat")
        );
        assert_eq!(check(r#"{"type":"chat","text":7}"#, true), Err("bad_chat"));
    }

    #[test]
    fn only_known_sources_are_taken() {
        let message = parse_object(r#"{"0":"screen","1":"projector","2":3}"#).unwrap();
        assert_eq!(
            declared_source(Some(&message), "0").as_deref(),
            Some("screen")
        );
        assert_eq!(declared_source(Some(&message), "1"), None);
        assert_eq!(declared_source(Some(&message), "2"), None);
        assert_eq!(declared_source(None, "0"), None);
    }

    #[test]
    fn chat_carries_the_senders_current_name() {
        let mut room = Room::new("r".to_owned());
        room.add(participant(ParticipantId(1), "Ann", None, None));
        apply_chat(&mut room, ParticipantId(1), "hi", 5);
        let entry = room.chat_history().next().unwrap();
        assert_eq!(
            (entry.name.as_str(), entry.text.as_str(), entry.at),
            ("Ann", "hi", 5)
        );
    }
}
