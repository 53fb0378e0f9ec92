//! The admin API (docs/api.md) over real HTTP connections, with room-protocol clients and a
//! WHIP publisher in the room: each call with the grant it needs, and refused without it.
mod support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use signaling::VideoGrant;
use support::tokens::{self, bearer, join, token};
use support::{Call, Client, HttpResponse, http, offer, start};

fn admin_of(room: &str) -> String {
    bearer(&token(
        "admin",
        VideoGrant {
            room: Some(room.into()),
            room_admin: true,
            ..VideoGrant::default()
        },
    ))
}

fn lister() -> String {
    bearer(&token(
        "lister",
        VideoGrant {
            room_list: true,
            ..VideoGrant::default()
        },
    ))
}

async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> HttpResponse {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    http(addr, method, path, &headers, body).await
}

/// Joins `room` as `identity` with a plain join grant.
async fn member(addr: SocketAddr, room: &str, identity: &str) -> (Client, String) {
    let token = token(identity, join(room));
    let mut client = Client::connect_to(addr, &format!("/ws?access_token={token}"), &[]).await;
    client
        .send(json!({"type": "join", "room": room, "name": identity}))
        .await;
    let joined = client.expect("joined").await;
    (client, joined["id"].as_str().unwrap().to_owned())
}

fn assert_refused(response: &HttpResponse, status: u16) {
    assert_eq!(
        response.status,
        status,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert!(response.json()["error"].is_string());
}

#[tokio::test]
async fn rooms_are_listed_and_shown() {
    let server = start(tokens::config()).await;
    let addr = server.addr;
    let (mut ada, ada_id) = member(addr, "lobby", "ada").await;
    let (_b, _) = member(addr, "stage", "bob").await;
    ada.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    ada.expect("published").await;
    let hidden = VideoGrant {
        hidden: true,
        ..join("lobby")
    };
    let mut recorder = Client::connect_to(
        addr,
        &format!("/ws?access_token={}", token("rec", hidden)),
        &[],
    )
    .await;
    recorder
        .send(json!({"type": "join", "room": "lobby", "name": "Recorder"}))
        .await;
    recorder.expect("joined").await;

    assert_refused(&api(addr, "GET", "/api/rooms", None, b"").await, 401);
    assert_refused(
        &api(addr, "GET", "/api/rooms", Some(&admin_of("lobby")), b"").await,
        403,
    );
    let listed = api(addr, "GET", "/api/rooms", Some(&lister()), b"").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.header("content-type"), Some("application/json"));
    assert_eq!(
        listed.json(),
        json!({"rooms": [
            {"name": "lobby", "participants": 2, "publishers": 1, "players": 0},
            {"name": "stage", "participants": 1, "publishers": 0, "players": 0},
        ]})
    );

    // One room: with roomAdmin for it, or roomList; the admin sees hidden participants too.
    let shown = api(
        addr,
        "GET",
        "/api/rooms/lobby",
        Some(&admin_of("lobby")),
        b"",
    )
    .await;
    assert_eq!(shown.status, 200);
    let room = shown.json();
    assert_eq!(room["name"], "lobby");
    let participants = room["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 2);
    assert_eq!(participants[0]["id"], ada_id.as_str());
    assert_eq!(participants[0]["identity"], "ada");
    assert_eq!(participants[0]["kind"], "room");
    assert_eq!(participants[0]["publishing"], true);
    let tracks = participants[0]["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[0]["kind"], "audio");
    assert_eq!(participants[1]["hidden"], true);
    assert_eq!(
        api(addr, "GET", "/api/rooms/lobby", Some(&lister()), b"")
            .await
            .status,
        200
    );
    assert_refused(
        &api(
            addr,
            "GET",
            "/api/rooms/lobby",
            Some(&admin_of("stage")),
            b"",
        )
        .await,
        403,
    );
    let join_only = bearer(&token("ada", join("lobby")));
    assert_refused(
        &api(addr, "GET", "/api/rooms/lobby", Some(&join_only), b"").await,
        403,
    );
    assert_refused(
        &api(addr, "GET", "/api/rooms/nowhere", Some(&lister()), b"").await,
        404,
    );
    assert_refused(
        &api(addr, "PUT", "/api/rooms", Some(&lister()), b"").await,
        405,
    );
    assert_refused(
        &api(addr, "GET", "/api/nothing", Some(&lister()), b"").await,
        404,
    );
}

#[tokio::test]
async fn an_admin_mutes_a_track() {
    let server = start(tokens::config()).await;
    let addr = server.addr;
    let (mut ada, ada_id) = member(addr, "r", "ada").await;
    let (mut bob, _) = member(addr, "r", "bob").await;
    ada.expect("participant_joined").await;
    ada.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    ada.expect("published").await;
    let tracks = bob.expect("tracks").await;
    bob.expect("subscribe").await;
    let video = tracks["tracks"][1]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/rooms/r/participants/{ada_id}/tracks/{video}/mute");

    assert_refused(
        &api(addr, "POST", &path, None, br#"{"muted":true}"#).await,
        401,
    );
    let bob_token = bearer(&token("bob", join("r")));
    assert_refused(
        &api(addr, "POST", &path, Some(&bob_token), br#"{"muted":true}"#).await,
        403,
    );
    assert_refused(
        &api(addr, "POST", &path, Some(&lister()), br#"{"muted":true}"#).await,
        403,
    );
    assert_refused(
        &api(
            addr,
            "POST",
            &path,
            Some(&admin_of("r")),
            br#"{"muted":"yes"}"#,
        )
        .await,
        400,
    );
    assert_refused(
        &api(addr, "POST", &path, Some(&admin_of("r")), b"not json").await,
        400,
    );
    let unknown_track = format!("/api/rooms/r/participants/{ada_id}/tracks/t999/mute");
    assert_refused(
        &api(
            addr,
            "POST",
            &unknown_track,
            Some(&admin_of("r")),
            br#"{"muted":true}"#,
        )
        .await,
        404,
    );
    ada.expect_silence().await;

    // By identity as well as by id; everyone hears it, the muted participant too.
    let by_identity = format!("/api/rooms/r/participants/ada/tracks/{video}/mute");
    let muted = api(
        addr,
        "POST",
        &by_identity,
        Some(&admin_of("r")),
        br#"{"muted":true}"#,
    )
    .await;
    assert_eq!(muted.status, 200);
    assert_eq!(
        muted.json(),
        json!({"participant": ada_id, "track": video, "muted": true})
    );
    for client in [&mut ada, &mut bob] {
        let mute = client.expect("mute").await;
        assert_eq!(
            mute,
            json!({"type": "mute", "participant": ada_id, "kind": "video", "track": video,
                   "muted": true, "by": "admin"})
        );
    }
    let room = api(addr, "GET", "/api/rooms/r", Some(&admin_of("r")), b"")
        .await
        .json();
    assert_eq!(
        room["participants"][0]["muted"],
        json!({"audio": false, "video": true})
    );
    let unmuted = api(
        addr,
        "POST",
        &path,
        Some(&admin_of("r")),
        br#"{"muted":false}"#,
    )
    .await;
    assert_eq!(unmuted.status, 200);
    assert_eq!(bob.expect("mute").await["muted"], false);
}

#[tokio::test]
async fn an_admin_removes_a_participant() {
    let server = start(tokens::config()).await;
    let addr = server.addr;
    let (mut ada, ada_id) = member(addr, "r", "ada").await;
    let (mut bob, bob_id) = member(addr, "r", "bob").await;
    ada.expect("participant_joined").await;
    bob.send(json!({"type": "publish", "sdp": offer(&["video"])}))
        .await;
    bob.expect("published").await;
    ada.expect("tracks").await;
    ada.expect("subscribe").await;

    let path = format!("/api/rooms/r/participants/{bob_id}");
    assert_refused(&api(addr, "DELETE", &path, None, b"").await, 401);
    assert_refused(&api(addr, "DELETE", &path, Some(&lister()), b"").await, 403);
    assert_refused(
        &api(addr, "DELETE", &path, Some(&admin_of("other")), b"").await,
        403,
    );
    assert_refused(
        &api(
            addr,
            "DELETE",
            "/api/rooms/r/participants/p999",
            Some(&admin_of("r")),
            b"",
        )
        .await,
        404,
    );
    bob.expect_silence().await;

    let removed = api(addr, "DELETE", &path, Some(&admin_of("r")), b"").await;
    assert_eq!(removed.status, 200);
    assert_eq!(removed.json(), json!({"removed": bob_id, "room": "r"}));
    let told = bob.expect_close(4001).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["code"], "removed");
    let left = ada.expect("participant_left").await;
    assert_eq!(left["id"], bob_id.as_str());
    // Bob's publish session was closed; Ada is still there.
    let closed: Vec<Call> = server
        .media
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Close { .. }))
        .collect();
    assert!(!closed.is_empty(), "bob's sessions closed");
    let room = api(addr, "GET", "/api/rooms/r", Some(&admin_of("r")), b"")
        .await
        .json();
    let ids: Vec<&Value> = room["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, [&json!(ada_id)]);
    assert_refused(
        &api(addr, "DELETE", &path, Some(&admin_of("r")), b"").await,
        404,
    );
}

#[tokio::test]
async fn an_admin_closes_a_room() {
    let server = start(tokens::config()).await;
    let addr = server.addr;
    let (mut ada, _) = member(addr, "r", "ada").await;
    let (mut bob, _) = member(addr, "r", "bob").await;
    let (mut bystander, _) = member(addr, "other", "carol").await;
    ada.expect("participant_joined").await;
    let sdp = offer(&["audio", "video"]);
    let publisher = bearer(&token("cam", join("r")));
    let whip = http(
        addr,
        "POST",
        "/whip/r",
        &[
            ("Content-Type", "application/sdp"),
            ("Authorization", &publisher),
        ],
        sdp.as_bytes(),
    )
    .await;
    assert_eq!(whip.status, 201);
    let whep = http(
        addr,
        "POST",
        "/whep/r",
        &[
            ("Content-Type", "application/sdp"),
            ("Authorization", &publisher),
        ],
        sdp.as_bytes(),
    )
    .await;
    assert_eq!(whep.status, 201);
    let listed = api(addr, "GET", "/api/rooms", Some(&lister()), b"")
        .await
        .json();
    assert_eq!(listed["rooms"][1]["players"], 1);

    assert_refused(&api(addr, "DELETE", "/api/rooms/r", None, b"").await, 401);
    assert_refused(
        &api(addr, "DELETE", "/api/rooms/r", Some(&lister()), b"").await,
        403,
    );
    assert_refused(
        &api(
            addr,
            "DELETE",
            "/api/rooms/r",
            Some(&admin_of("other")),
            b"",
        )
        .await,
        403,
    );
    assert_refused(
        &api(
            addr,
            "DELETE",
            "/api/rooms/nowhere",
            Some(&admin_of("nowhere")),
            b"",
        )
        .await,
        404,
    );

    let closed = api(addr, "DELETE", "/api/rooms/r", Some(&admin_of("r")), b"").await;
    assert_eq!(closed.status, 200);
    assert_eq!(
        closed.json(),
        json!({"closed": "r", "participants": 3, "players": 1})
    );
    for client in [&mut ada, &mut bob] {
        let told = client.expect_close(4002).await;
        let last = told.last().unwrap();
        assert_eq!(
            (&last["type"], &last["code"]),
            (&json!("error"), &json!("room_closed")),
            "{told:?}"
        );
    }
    assert_refused(
        &api(addr, "GET", "/api/rooms/r", Some(&admin_of("r")), b"").await,
        404,
    );
    // The WHIP and WHEP resources are gone, and every media session of the room closed.
    let whip_location = whip.header("location").unwrap();
    assert_eq!(
        http(addr, "DELETE", whip_location, &[], b"").await.status,
        404
    );
    let whep_location = whep.header("location").unwrap();
    assert_eq!(
        http(addr, "DELETE", whep_location, &[], b"").await.status,
        404
    );
    let calls = server.media.calls();
    let opened: Vec<_> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Publish { room, session, .. } | Call::Play { room, session, .. }
                if room == "r" =>
            {
                Some(*session)
            }
            _ => None,
        })
        .collect();
    for session in opened {
        assert!(
            calls.contains(&Call::Close { session }),
            "{session:?} closed: {calls:?}"
        );
    }
    // The other room is untouched.
    bystander
        .send(json!({"type": "chat", "text": "still here"}))
        .await;
    assert_eq!(bystander.expect("chat").await["text"], "still here");
}

#[tokio::test]
async fn without_keys_the_api_is_open() {
    let server = start(signaling::SignalingConfig::default()).await;
    let (_ada, joined) = Client::join(server.addr, "r", "Ada").await;
    let id = joined["id"].as_str().unwrap();
    let room = api(server.addr, "GET", "/api/rooms/r", None, b"").await;
    assert_eq!(room.status, 200);
    assert_eq!(room.json()["participants"][0]["identity"], Value::Null);
    let removed = api(
        server.addr,
        "DELETE",
        &format!("/api/rooms/r/participants/{id}"),
        None,
        b"",
    )
    .await;
    assert_eq!(removed.status, 200);
}

/// The publish limits told to the media plane so far, in order.
fn limits_told(server: &support::Server) -> Vec<(u64, Option<u64>)> {
    server
        .media
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::PublisherMaxBitrate {
                session,
                max_bitrate,
            } => Some((session.0, max_bitrate)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn publish_limits_come_from_the_token_the_room_and_the_participant() {
    let server = start(tokens::config()).await;
    let addr = server.addr;
    // Ada's token limits her to 800 kbit/s; the WHIP camera's has no limit.
    let limited = VideoGrant {
        max_publish_bitrate: Some(800_000),
        ..join("r")
    };
    let mut ada = Client::connect_to(
        addr,
        &format!("/ws?access_token={}", token("ada", limited)),
        &[],
    )
    .await;
    ada.send(json!({"type": "join", "room": "r", "name": "Ada"}))
        .await;
    let ada_id = ada.expect("joined").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ada.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    ada.expect("published").await;
    let camera = bearer(&token("cam", join("r")));
    let whip = http(
        addr,
        "POST",
        "/whip/r",
        &[
            ("Content-Type", "application/sdp"),
            ("Authorization", &camera),
        ],
        offer(&["video"]).as_bytes(),
    )
    .await;
    assert_eq!(whip.status, 201);
    let sessions: Vec<u64> = server
        .media
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Publish { session, .. } => Some(session.0),
            _ => None,
        })
        .collect();
    let [ada_session, camera_session] = sessions[..] else {
        panic!("two publish sessions expected: {sessions:?}");
    };
    // A publisher without a limit of its own is not told anything.
    assert_eq!(limits_told(&server), [(ada_session, Some(800_000))]);

    // Refused: without the grant, a bad body, out of range, an unknown room.
    let admin = admin_of("r");
    let room_limits = "/api/rooms/r/limits";
    let body = br#"{"maxPublishBitrate": 500000}"#;
    assert_refused(&api(addr, "POST", room_limits, None, body).await, 401);
    let ada_token = bearer(&token("ada", join("r")));
    assert_refused(
        &api(addr, "POST", room_limits, Some(&ada_token), body).await,
        403,
    );
    for bad in [
        &br#"{"maxPublishBitrate": 0}"#[..],
        br#"{"maxPublishBitrate": -5}"#,
        br#"{"maxPublishBitrate": 1.5e3}"#,
        br#"{"maxPublishBitrate": 200000000}"#,
        br#"{"maxPublishBitrate": "fast"}"#,
        br#"{}"#,
        b"not json",
    ] {
        let response = api(addr, "POST", room_limits, Some(&admin), bad).await;
        assert_refused(&response, 400);
    }
    assert_refused(&api(addr, "GET", room_limits, Some(&admin), b"").await, 405);
    assert_refused(
        &api(
            addr,
            "POST",
            "/api/rooms/elsewhere/limits",
            Some(&admin_of("elsewhere")),
            body,
        )
        .await,
        404,
    );
    assert_eq!(
        limits_told(&server).len(),
        1,
        "a refused call changes nothing"
    );

    // The room's limit: every publisher gets the lower of it and its own.
    let set = api(addr, "POST", room_limits, Some(&admin), body).await;
    assert_eq!(set.status, 200);
    assert_eq!(
        set.json(),
        json!({"room": "r", "limits": {"maxPublishBitrate": 500000}})
    );
    let told = limits_told(&server);
    assert!(
        told[1..].contains(&(ada_session, Some(500_000))),
        "{told:?}"
    );
    assert!(
        told[1..].contains(&(camera_session, Some(500_000))),
        "{told:?}"
    );
    let shown = api(addr, "GET", "/api/rooms/r", Some(&admin), b"")
        .await
        .json();
    assert_eq!(shown["limits"]["maxPublishBitrate"], 500_000);
    let ada_shown = shown["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == ada_id.as_str())
        .unwrap();
    assert_eq!(ada_shown["limits"]["maxPublishBitrate"], 800_000);

    // A participant's limit by identity, lower than the room's; then lifted.
    let ada_limits = "/api/rooms/r/participants/ada/limits";
    let lower = api(
        addr,
        "POST",
        ada_limits,
        Some(&admin),
        br#"{"maxPublishBitrate": 300000}"#,
    )
    .await;
    assert_eq!(lower.status, 200);
    assert_eq!(
        lower.json(),
        json!({"participant": ada_id, "room": "r", "limits": {"maxPublishBitrate": 300000}})
    );
    assert_eq!(
        limits_told(&server).last(),
        Some(&(ada_session, Some(300_000)))
    );
    let lifted = api(
        addr,
        "POST",
        ada_limits,
        Some(&admin),
        br#"{"maxPublishBitrate": null}"#,
    )
    .await;
    assert_eq!(lifted.status, 200);
    assert_eq!(
        limits_told(&server).last(),
        Some(&(ada_session, Some(500_000)))
    );
    assert_refused(
        &api(
            addr,
            "POST",
            "/api/rooms/r/participants/nobody/limits",
            Some(&admin),
            body,
        )
        .await,
        404,
    );

    // Lifting the room's limit leaves every publisher without one.
    let before = limits_told(&server).len();
    let none = api(
        addr,
        "POST",
        room_limits,
        Some(&admin),
        br#"{"maxPublishBitrate": null}"#,
    )
    .await;
    assert_eq!(none.status, 200);
    let told = limits_told(&server);
    assert!(told[before..].contains(&(ada_session, None)), "{told:?}");
    assert!(told[before..].contains(&(camera_session, None)), "{told:?}");
}

#[tokio::test]
async fn a_token_with_an_unusable_publish_limit_is_refused() {
    let server = start(tokens::config()).await;
    for bits in [0, 31_999, 100_000_001] {
        let grant = VideoGrant {
            max_publish_bitrate: Some(bits),
            ..join("r")
        };
        let camera = bearer(&token("cam", grant));
        let whip = http(
            server.addr,
            "POST",
            "/whip/r",
            &[
                ("Content-Type", "application/sdp"),
                ("Authorization", &camera),
            ],
            offer(&["video"]).as_bytes(),
        )
        .await;
        assert_refused(&whip, 401);
    }
    assert!(
        server
            .media
            .calls()
            .iter()
            .all(|c| !matches!(c, Call::Publish { .. }))
    );
}
