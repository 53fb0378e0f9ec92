//! The admin API under `/api/` (docs/api.md): JSON over HTTP, authorized by an access token
//! as `Authorization: Bearer` with a `roomList` grant (list and look at every room) or a
//! `roomAdmin` grant for one room (look at it, remove a participant, mute a track, close it).
//! Without API keys configured it is open, like everything else.

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use rtc_core::SessionId;
use rtc_core::sdp::MediaKind;
use serde_json::{Value, json};

use crate::auth::Action;
use crate::http::{Body, auth_error, bearer_token, error, percent_decode, respond};
use crate::hub::{CLOSE_REMOVED, Hub};
use crate::media::MediaPlane;
use crate::quality::DownlinkReport;
use crate::room::{Participant, ParticipantId, Room, track_wire};

/// The largest request body the API reads (a mute is a dozen bytes).
const MAX_BODY_BYTES: usize = 4096;

/// One admin call, parsed from its method and path.
#[derive(Debug)]
enum Call {
    ListRooms,
    ShowRoom(String),
    CloseRoom(String),
    RemoveParticipant(String, String),
    MuteTrack(String, String, String),
    RoomLimits(String),
    ParticipantLimits(String, String),
}

impl Call {
    fn action(&self) -> Action<'_> {
        match self {
            Self::ListRooms => Action::List,
            Self::ShowRoom(room) => Action::Inspect(room),
            Self::CloseRoom(room)
            | Self::RemoveParticipant(room, _)
            | Self::MuteTrack(room, _, _)
            | Self::RoomLimits(room)
            | Self::ParticipantLimits(room, _) => Action::Admin(room),
        }
    }
}

/// Why a path under `/api/` is not a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotACall {
    NotFound,
    MethodNotAllowed,
}

impl NotACall {
    fn response(self) -> Response<Body> {
        match self {
            Self::NotFound => error(StatusCode::NOT_FOUND, "not found"),
            Self::MethodNotAllowed => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        }
    }
}

/// The call at `segments` (the path after `/api/`).
fn parse(method: &Method, segments: &[&str]) -> Result<Call, NotACall> {
    let decode = |segment: &str| {
        percent_decode(segment)
            .filter(|s| !s.is_empty())
            .ok_or(NotACall::NotFound)
    };
    let expect = |wanted: Method| {
        if *method == wanted {
            Ok(())
        } else {
            Err(NotACall::MethodNotAllowed)
        }
    };
    match segments {
        ["rooms"] => expect(Method::GET).map(|()| Call::ListRooms),
        ["rooms", room] => match *method {
            Method::GET => Ok(Call::ShowRoom(decode(room)?)),
            Method::DELETE => Ok(Call::CloseRoom(decode(room)?)),
            _ => Err(NotACall::MethodNotAllowed),
        },
        ["rooms", room, "participants", id] => {
            expect(Method::DELETE)?;
            Ok(Call::RemoveParticipant(decode(room)?, decode(id)?))
        }
        ["rooms", room, "limits"] => {
            expect(Method::POST)?;
            Ok(Call::RoomLimits(decode(room)?))
        }
        ["rooms", room, "participants", id, "limits"] => {
            expect(Method::POST)?;
            Ok(Call::ParticipantLimits(decode(room)?, decode(id)?))
        }
        ["rooms", room, "participants", id, "tracks", track, "mute"] => {
            expect(Method::POST)?;
            Ok(Call::MuteTrack(decode(room)?, decode(id)?, decode(track)?))
        }
        _ => Err(NotACall::NotFound),
    }
}

fn ok(value: &Value) -> Response<Body> {
    respond(StatusCode::OK, "application/json", value.to_string())
}

/// Serves one request under `/api/`; `segments` is the path after it.
pub async fn handle<M: MediaPlane>(
    hub: Arc<Hub<M>>,
    request: Request<Incoming>,
    segments: &[&str],
) -> Response<Body> {
    let call = match parse(request.method(), segments) {
        Ok(call) => call,
        Err(not) => return not.response(),
    };
    if let Err(refused) = hub.authorize(bearer_token(&request), call.action()) {
        return auth_error(refused);
    }
    match call {
        Call::ListRooms => ok(&list_rooms(&hub)),
        Call::ShowRoom(room) => {
            let players = hub.player_downlinks(&room);
            match hub.with_room(&room, |r| room_json(r, &players)) {
                Some(value) => ok(&value),
                None => error(StatusCode::NOT_FOUND, "unknown room"),
            }
        }
        Call::CloseRoom(room) => match hub.close_room(&room).await {
            Some((participants, players)) => {
                ok(&json!({"closed": room, "participants": participants, "players": players}))
            }
            None => error(StatusCode::NOT_FOUND, "unknown room"),
        },
        Call::RemoveParticipant(room, who) => {
            let Some(id) = find_participant(&hub, &room, &who) else {
                return error(StatusCode::NOT_FOUND, "unknown participant");
            };
            let close = (CLOSE_REMOVED, "removed from the room by an administrator");
            if hub.evict(&room, id, "removed", close).await {
                ok(&json!({"removed": id.wire(), "room": room}))
            } else {
                error(StatusCode::NOT_FOUND, "unknown participant")
            }
        }
        Call::MuteTrack(room, who, track) => {
            let muted = match read_muted(request).await {
                Ok(muted) => muted,
                Err(response) => return response,
            };
            let Some(id) = find_participant(&hub, &room, &who) else {
                return error(StatusCode::NOT_FOUND, "unknown participant");
            };
            let Some(track_id) = crate::room::parse_track_wire(&track) else {
                return error(StatusCode::NOT_FOUND, "unknown track");
            };
            match hub.with_room(&room, |r| r.admin_mute(id, track_id, muted)) {
                Some(Some(MediaKind::Audio | MediaKind::Video)) => ok(&json!({
                    "participant": id.wire(), "track": track_wire(track_id), "muted": muted,
                })),
                Some(Some(_)) => error(
                    StatusCode::BAD_REQUEST,
                    "only audio and video tracks can be muted",
                ),
                Some(None) | None => error(StatusCode::NOT_FOUND, "unknown track"),
            }
        }
        Call::RoomLimits(room) => {
            let limit = match read_max_publish_bitrate(request).await {
                Ok(limit) => limit,
                Err(response) => return response,
            };
            if hub
                .with_room(&room, |r| r.max_publish_bitrate = limit)
                .is_none()
            {
                return error(StatusCode::NOT_FOUND, "unknown room");
            }
            hub.apply_room_publish_limits(&room).await;
            ok(&json!({"room": room, "limits": {"maxPublishBitrate": limit}}))
        }
        Call::ParticipantLimits(room, who) => {
            let limit = match read_max_publish_bitrate(request).await {
                Ok(limit) => limit,
                Err(response) => return response,
            };
            let Some(id) = find_participant(&hub, &room, &who) else {
                return error(StatusCode::NOT_FOUND, "unknown participant");
            };
            let set = hub.with_room(&room, |r| {
                r.get_mut(id)
                    .map(|p| p.max_publish_bitrate = limit)
                    .is_some()
            });
            if set != Some(true) {
                return error(StatusCode::NOT_FOUND, "unknown participant");
            }
            hub.apply_publish_limit(&room, id, true).await;
            ok(&json!({
                "participant": id.wire(), "room": room, "limits": {"maxPublishBitrate": limit},
            }))
        }
    }
}

/// Every room, by name: its participant, publisher and WHEP player counts.
fn list_rooms<M: MediaPlane>(hub: &Hub<M>) -> Value {
    let mut rooms: Vec<(String, usize, usize)> = {
        let state = hub.state();
        state
            .rooms
            .values()
            .map(|r| {
                let publishers = r.participants().filter(|p| !p.tracks.is_empty()).count();
                (r.name.clone(), r.len(), publishers)
            })
            .collect()
    };
    rooms.sort();
    let rooms: Vec<Value> = rooms
        .into_iter()
        .map(|(name, participants, publishers)| {
            let players = hub.players(&name).len();
            json!({"name": name, "participants": participants, "publishers": publishers,
                   "players": players})
        })
        .collect();
    json!({ "rooms": rooms })
}

/// One room as the admin sees it: every participant (hidden ones too) with its tracks.
fn room_json(room: &Room, players: &[(SessionId, Option<DownlinkReport>)]) -> Value {
    let participants: Vec<Value> = room.participants().map(participant_json).collect();
    let player_sessions: Vec<Value> = players
        .iter()
        .map(|(session, downlink)| {
            json!({"session": session.0, "downlink": downlink.map(|d| d.to_json())})
        })
        .collect();
    json!({
        "name": room.name, "participants": participants, "players": players.len(),
        "playerSessions": player_sessions,
        "limits": {"maxPublishBitrate": room.max_publish_bitrate},
    })
}

fn participant_json(participant: &Participant) -> Value {
    let mut value = participant.to_json();
    if let Value::Object(fields) = &mut value {
        // A room-protocol participant may be without its socket for a while (waiting for a
        // resume); only WHIP publishers never have one nor a subscribe task.
        let room_protocol = participant.outbox.is_some() || participant.renegotiate.is_some();
        let kind = if room_protocol { "room" } else { "whip" };
        fields.insert("kind".into(), kind.into());
        if room_protocol {
            fields.insert("connected".into(), participant.outbox.is_some().into());
        }
        fields.insert("hidden".into(), participant.hidden.into());
        fields.insert("publishing".into(), participant.publish.is_some().into());
        fields.insert("subscribing".into(), participant.subscribe.is_some().into());
        fields.entry("identity").or_insert(Value::Null);
        fields.insert(
            "limits".into(),
            json!({"maxPublishBitrate": participant.max_publish_bitrate}),
        );
        if let Some(report) = participant.quality.last {
            fields.insert("downlink".into(), report.to_json());
        }
    }
    value
}

/// A participant by its id (`p3`) or, failing that, by its token's identity.
fn find_participant<M: MediaPlane>(hub: &Hub<M>, room: &str, who: &str) -> Option<ParticipantId> {
    hub.with_room(room, |r| {
        ParticipantId::parse(who)
            .and_then(|id| r.get(id).map(|p| p.id))
            .or_else(|| {
                r.participants()
                    .find(|p| p.identity.as_deref() == Some(who))
                    .map(|p| p.id)
            })
    })
    .flatten()
}

/// The `muted` of a `{"muted": true}` body.
async fn read_muted(request: Request<Incoming>) -> Result<bool, Response<Body>> {
    let bad = || {
        error(
            StatusCode::BAD_REQUEST,
            "expected a JSON body {\"muted\": true|false}",
        )
    };
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| bad())?
        .to_bytes();
    let value: Value = serde_json::from_slice(&body).map_err(|_| bad())?;
    value.get("muted").and_then(Value::as_bool).ok_or_else(bad)
}

/// The `maxPublishBitrate` of a `{"maxPublishBitrate": 500000}` body (`null`: no limit).
async fn read_max_publish_bitrate(
    request: Request<Incoming>,
) -> Result<Option<u64>, Response<Body>> {
    let bad = |message: &str| error(StatusCode::BAD_REQUEST, message);
    let shape = "expected a JSON body {\"maxPublishBitrate\": bits per second or null}";
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| bad(shape))?
        .to_bytes();
    let value: Value = serde_json::from_slice(&body).map_err(|_| bad(shape))?;
    match value.get("maxPublishBitrate") {
        Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            // A negative or fractional number is out of range like 0.
            crate::validate::publish_bitrate(n.as_u64().unwrap_or(0))
                .map(Some)
                .map_err(|e| bad(e.message))
        }
        _ => Err(bad(shape)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_are_parsed() {
        assert!(matches!(
            parse(&Method::GET, &["rooms"]),
            Ok(Call::ListRooms)
        ));
        assert!(matches!(
            parse(&Method::GET, &["rooms", "a%20b"]),
            Ok(Call::ShowRoom(room)) if room == "a b"
        ));
        assert!(matches!(
            parse(&Method::POST, &["rooms", "r", "participants", "p1", "tracks", "t5", "mute"]),
            Ok(Call::MuteTrack(r, p, t)) if r == "r" && p == "p1" && t == "t5"
        ));
        assert_eq!(
            parse(&Method::POST, &["rooms"]).unwrap_err(),
            NotACall::MethodNotAllowed
        );
        assert_eq!(
            parse(&Method::GET, &["rooms", "r", "participants", "p1"]).unwrap_err(),
            NotACall::MethodNotAllowed
        );
        assert_eq!(
            parse(&Method::GET, &["rooms", "r", "nope"]).unwrap_err(),
            NotACall::NotFound
        );
        assert_eq!(
            parse(&Method::GET, &["rooms", "%ff"]).unwrap_err(),
            NotACall::NotFound
        );
        assert_eq!(
            crate::room::parse_track_wire("t12"),
            Some(rtc_core::TrackId(12))
        );
        assert_eq!(crate::room::parse_track_wire("12"), None);
        assert_eq!(crate::room::parse_track_wire("t-1"), None);
    }
}
