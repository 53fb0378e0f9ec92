//! Resuming a participant after its WebSocket dropped (docs/protocol.md, "Reconnecting"),
//! with real WebSocket clients over TCP: the others see one participant throughout, the
//! resumed connection gets its id, tracks and sessions back, a participant that does not come
//! back leaves after the grace period, and tokens resume once.
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use rtc_core::SessionId;
use serde_json::{Value, json};
use signaling::SignalingConfig;
use support::tokens::{self, join, token};
use support::{Call, Client, offer, start};
use tokio::time::Instant;

const GRACE: Duration = Duration::from_millis(1500);

fn config() -> SignalingConfig {
    SignalingConfig {
        resume_grace: GRACE,
        ..SignalingConfig::default()
    }
}

/// A resume token as the server sends it: 32 lowercase hex digits.
fn resume_token(joined: &Value) -> String {
    let token = joined["resume"]
        .as_str()
        .expect("joined carries a resume token");
    assert_eq!(token.len(), 32, "{joined}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{joined}");
    token.to_owned()
}

/// Connects and sends `join` with `resume`; returns the client and the server's reply.
async fn resume(addr: SocketAddr, room: &str, name: &str, token: &str) -> (Client, Value) {
    let mut client = Client::connect(addr).await;
    client
        .send(json!({"type": "join", "room": room, "name": name, "resume": token}))
        .await;
    let reply = client.recv().await;
    (client, reply)
}

/// Reads what comes within `wait` and fails on a message of one of `kinds`.
async fn expect_none_of(client: &mut Client, kinds: &[&str], wait: Duration) -> Vec<Value> {
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    while let Some(message) = client
        .next_within(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            assert!(
                !kinds.contains(&value["type"].as_str().unwrap_or("")),
                "unexpected {value} after {seen:?}"
            );
            seen.push(value);
        }
    }
    seen
}

/// Ada and Bob in room `r`, Bob publishing audio and video, Ada having answered the offer.
/// Returns Ada, Bob, Bob's joined message and Bob's publish session.
async fn room_with_publisher(addr: SocketAddr) -> (Client, Client, Value, SessionId) {
    let (mut ada, _) = Client::join(addr, "r", "Ada").await;
    let (mut bob, bob_joined) = Client::join(addr, "r", "Bob").await;
    ada.expect("participant_joined").await;
    bob.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    let published = bob.expect("published").await;
    let session = SessionId(
        published["sdp"]
            .as_str()
            .unwrap()
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap(),
    );
    ada.expect("tracks").await;
    let subscribe = ada.expect("subscribe").await;
    assert_eq!(subscribe["new_session"], true, "{subscribe}");
    ada.send(json!({"type": "answer", "sdp": "v=0\r\ns=answer\r\n"}))
        .await;
    (ada, bob, bob_joined, session)
}

#[tokio::test]
async fn a_dropped_participant_resumes_unseen_by_the_others() {
    let server = start(config()).await;
    let (mut ada, bob, bob_joined, bob_session) = room_with_publisher(server.addr).await;
    let bob_id = bob_joined["id"].as_str().unwrap().to_owned();
    let first_token = resume_token(&bob_joined);

    // Bob's socket goes away without a word (no leave, no close frame).
    drop(bob);
    expect_none_of(
        &mut ada,
        &["participant_left", "participant_joined"],
        Duration::from_millis(500),
    )
    .await;

    // Ada mutes meanwhile; Bob, coming back, hears of it in the room state.
    ada.send(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await;
    let (mut bob, joined) = resume(server.addr, "r", "Bob", &first_token).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["resumed"], true);
    assert_eq!(joined["id"], bob_id.as_str());
    assert_eq!(joined["muted"], json!({"audio": false, "video": false}));
    let next_token = resume_token(&joined);
    assert_ne!(next_token, first_token, "a token resumes once");
    let others = joined["participants"].as_array().unwrap();
    assert_eq!(others.len(), 1, "{joined}");
    assert_eq!(others[0]["name"], "Ada");
    assert_eq!(others[0]["muted"]["audio"], true);

    // Chat goes both ways on the new connection, under the same id.
    bob.send(json!({"type": "chat", "text": "back"})).await;
    let heard = ada.expect("chat").await;
    assert_eq!(
        (heard["from"].as_str(), heard["text"].as_str()),
        (Some(bob_id.as_str()), Some("back"))
    );
    assert_eq!(bob.expect("chat").await["text"], "back");
    ada.send(json!({"type": "chat", "text": "welcome"})).await;
    ada.expect("chat").await;
    assert_eq!(bob.expect("chat").await["text"], "welcome");

    // The publish session was never closed, and renegotiating it still works.
    bob.send(json!({"type": "publish", "sdp": offer(&["audio"])}))
        .await;
    bob.expect("published").await;
    assert!(!server.media.calls().contains(&Call::Close {
        session: bob_session
    }));
    assert!(server.media.calls().contains(&Call::Publish {
        room: "r".into(),
        session: bob_session,
        renegotiated: true,
    }));

    // The grace period of the dropped connection ends without effect: Bob stays.
    let seen = expect_none_of(&mut ada, &["participant_left"], GRACE + GRACE / 2).await;
    assert!(
        seen.iter().all(|m| m["type"] != "participant_joined"),
        "{seen:?}"
    );
    bob.send(json!({"type": "chat", "text": "still here"}))
        .await;
    assert_eq!(ada.expect("chat").await["text"], "still here");
}

#[tokio::test]
async fn a_participant_that_does_not_come_back_leaves_after_the_grace_period() {
    let server = start(config()).await;
    let (mut ada, bob, bob_joined, bob_session) = room_with_publisher(server.addr).await;
    let token = resume_token(&bob_joined);
    let dropped = Instant::now();
    drop(bob);
    // Meanwhile the admin API shows Bob in the room, waiting without a connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listed = support::http(server.addr, "GET", "/api/rooms/r", &[], b"").await;
    assert_eq!(listed.status, 200);
    let listed = listed.json();
    let bob_listed = listed["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == bob_joined["id"])
        .cloned()
        .unwrap();
    assert_eq!(bob_listed["kind"], "room", "{bob_listed}");
    assert_eq!(bob_listed["connected"], false, "{bob_listed}");
    assert_eq!(bob_listed["publishing"], true, "{bob_listed}");
    assert_eq!(listed["participants"][0]["connected"], true, "{listed}");
    let left = ada.expect("participant_left").await;
    assert_eq!(left["id"], bob_joined["id"]);
    let after = dropped.elapsed();
    assert!(after >= GRACE, "left after {after:?}");
    assert!(after < GRACE * 3, "left after {after:?}");
    assert_eq!(ada.expect("subscribe").await["tracks"], json!({}));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(server.media.calls().contains(&Call::Close {
        session: bob_session
    }));

    // Too late: the token resumes nobody, and the connection may join afresh.
    let (mut late, reply) = resume(server.addr, "r", "Bob", &token).await;
    assert_eq!(reply["code"], "resume_failed", "{reply}");
    late.send(json!({"type": "join", "room": "r", "name": "Bob"}))
        .await;
    let fresh = late.expect("joined").await;
    assert_ne!(fresh["id"], bob_joined["id"]);
    assert!(fresh.get("resumed").is_none(), "{fresh}");
    assert_eq!(
        ada.expect("participant_joined").await["participant"]["name"],
        "Bob"
    );
}

#[tokio::test]
async fn bogus_used_and_foreign_tokens_fail_to_resume() {
    let server = start(config()).await;
    let (mut ada, ada_joined) = Client::join(server.addr, "r", "Ada").await;
    let (bob, bob_joined) = Client::join(server.addr, "r", "Bob").await;
    ada.expect("participant_joined").await;
    let bob_token = resume_token(&bob_joined);

    for bogus in [json!("0".repeat(32)), json!("not a token"), json!(17)] {
        let mut client = Client::connect(server.addr).await;
        client
            .send(json!({"type": "join", "room": "r", "name": "Eve", "resume": bogus}))
            .await;
        client.expect_error("resume_failed").await;
    }
    // The right token for another room.
    let (_, reply) = resume(server.addr, "elsewhere", "Bob", &bob_token).await;
    assert_eq!(reply["code"], "resume_failed", "{reply}");

    drop(bob);
    let (mut bob, joined) = resume(server.addr, "r", "Bob", &bob_token).await;
    assert_eq!(joined["resumed"], true, "{joined}");
    // The token was used: a second connection cannot take Bob with it.
    let (_, reply) = resume(server.addr, "r", "Bob", &bob_token).await;
    assert_eq!(reply["code"], "resume_failed", "{reply}");
    bob.send(json!({"type": "chat", "text": "mine"})).await;
    assert_eq!(bob.expect("chat").await["text"], "mine");
    // Nor does Ada's own token work on Bob.
    assert_ne!(resume_token(&ada_joined), bob_token);
    expect_none_of(
        &mut ada,
        &["participant_left", "participant_joined"],
        Duration::from_millis(300),
    )
    .await;
}

#[tokio::test]
async fn leave_ends_the_participant_at_once_and_its_token() {
    let server = start(SignalingConfig {
        resume_grace: Duration::from_secs(30),
        ..SignalingConfig::default()
    })
    .await;
    let (mut ada, _) = Client::join(server.addr, "r", "Ada").await;
    let (mut bob, bob_joined) = Client::join(server.addr, "r", "Bob").await;
    ada.expect("participant_joined").await;
    let token = resume_token(&bob_joined);
    let left_at = Instant::now();
    bob.send(json!({"type": "leave"})).await;
    ada.expect("participant_left").await;
    assert!(left_at.elapsed() < Duration::from_secs(2));
    let (_, reply) = resume(server.addr, "r", "Bob", &token).await;
    assert_eq!(reply["code"], "resume_failed", "{reply}");
}

#[tokio::test]
async fn resuming_takes_over_a_connection_the_server_still_thinks_alive() {
    let server = start(config()).await;
    let (mut ada, _) = Client::join(server.addr, "r", "Ada").await;
    let (mut old, bob_joined) = Client::join(server.addr, "r", "Bob").await;
    ada.expect("participant_joined").await;
    let (mut bob, joined) = resume(server.addr, "r", "Bob", &resume_token(&bob_joined)).await;
    assert_eq!(joined["resumed"], true, "{joined}");
    assert_eq!(joined["id"], bob_joined["id"]);
    // The old connection is told to go; its end makes nobody leave.
    old.expect_close(4005).await;
    drop(old);
    expect_none_of(&mut ada, &["participant_left"], GRACE + GRACE / 2).await;
    bob.send(json!({"type": "chat", "text": "one of me"})).await;
    assert_eq!(ada.expect("chat").await["text"], "one of me");
}

#[tokio::test]
async fn resubscribe_replaces_the_subscribe_session_and_a_new_publish_session_replaces_the_old() {
    let server = start(config()).await;
    let (mut ada, mut bob, _, bob_session) = room_with_publisher(server.addr).await;
    let old_subscriber = server
        .media
        .calls()
        .iter()
        .find_map(|c| match c {
            Call::OfferTracks { subscriber, tracks } if !tracks.is_empty() => Some(*subscriber),
            _ => None,
        })
        .unwrap();

    // Ada's subscribe connection failed: a new session, offered from scratch.
    ada.send(json!({"type": "resubscribe"})).await;
    let offer_again = ada.expect("subscribe").await;
    assert_eq!(offer_again["new_session"], true, "{offer_again}");
    assert_eq!(offer_again["tracks"].as_object().unwrap().len(), 2);
    let calls = server.media.calls();
    assert!(calls.contains(&Call::Close {
        session: old_subscriber
    }));
    let new_subscriber = calls
        .iter()
        .rev()
        .find_map(|c| match c {
            Call::CreateSubscriber { session, .. } => Some(*session),
            _ => None,
        })
        .unwrap();
    assert_ne!(new_subscriber, old_subscriber);
    ada.send(json!({"type": "answer", "sdp": "v=0\r\ns=answer\r\n"}))
        .await;

    // Bob's publish connection failed: his offer from a new peer connection gets a new
    // session; the room hears of his new tracks, and Ada gets them offered.
    bob.send(json!({"type": "publish", "sdp": offer(&["audio", "video"]), "new_session": true}))
        .await;
    bob.expect("published").await;
    let tracks = ada.expect("tracks").await;
    assert_eq!(tracks["tracks"].as_array().unwrap().len(), 2);
    let reoffer = ada.expect("subscribe").await;
    assert!(reoffer.get("new_session").is_none(), "{reoffer}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls = server.media.calls();
    assert!(calls.contains(&Call::Close {
        session: bob_session
    }));
    assert!(calls.iter().any(
        |c| matches!(c, Call::Publish { session, renegotiated: false, .. }
                if *session != bob_session)
    ));
    // Nobody left or joined for it.
    expect_none_of(
        &mut ada,
        &["participant_left", "participant_joined"],
        Duration::from_millis(300),
    )
    .await;
}

#[tokio::test]
async fn with_access_keys_a_resume_needs_a_token_that_still_grants_the_room() {
    let server = start(SignalingConfig {
        resume_grace: GRACE,
        ..tokens::config()
    })
    .await;
    let mut bob = Client::connect(server.addr).await;
    let bob_jwt = token("bob", join("r"));
    bob.send(json!({"type": "join", "room": "r", "name": "Bob", "token": bob_jwt}))
        .await;
    let joined = bob.expect("joined").await;
    let resume_with = resume_token(&joined);
    drop(bob);

    // No access token: refused as any join would be.
    let mut bare = Client::connect(server.addr).await;
    bare.send(json!({"type": "join", "room": "r", "name": "Bob", "resume": resume_with}))
        .await;
    bare.expect_close(4401).await;
    // Another identity's token: the resume token is not theirs.
    let mut eve = Client::connect(server.addr).await;
    eve.send(
        json!({"type": "join", "room": "r", "name": "Eve", "resume": resume_with,
                    "token": token("eve", join("r"))}),
    )
    .await;
    eve.expect_error("resume_failed").await;
    // Bob's own token still grants the room.
    let mut back = Client::connect(server.addr).await;
    back.send(
        json!({"type": "join", "room": "r", "name": "Bob", "resume": resume_with,
                     "token": token("bob", join("r"))}),
    )
    .await;
    let resumed = back.expect("joined").await;
    assert_eq!(resumed["resumed"], true, "{resumed}");
    assert_eq!(resumed["id"], joined["id"]);
}

#[tokio::test]
async fn a_resumed_subscriber_is_offered_the_current_tracks() {
    let server = start(config()).await;
    let (mut ada, _) = Client::join(server.addr, "r", "Ada").await;
    let (bob, bob_joined) = Client::join(server.addr, "r", "Bob").await;
    ada.expect("participant_joined").await;

    // Ada publishes while Bob is away: nothing can be offered to him then.
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    ada.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    ada.expect("published").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut bob, joined) = resume(server.addr, "r", "Bob", &resume_token(&bob_joined)).await;
    assert_eq!(joined["resumed"], true, "{joined}");
    assert_eq!(
        joined["participants"][0]["tracks"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{joined}"
    );
    // Right after joined: the session's first offer, with Ada's tracks.
    let first = bob.expect("subscribe").await;
    assert_eq!(first["tracks"].as_object().unwrap().len(), 2, "{first}");
    assert_eq!(first["new_session"], true, "{first}");
    let subscriber = server
        .media
        .calls()
        .iter()
        .find_map(|c| match c {
            Call::OfferTracks { subscriber, tracks } if !tracks.is_empty() => Some(*subscriber),
            _ => None,
        })
        .unwrap();

    // Bob drops before answering it: the next connection is offered the same again, on the
    // same session (no new_session: the client keeps its peer connection).
    let token = resume_token(&joined);
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut bob, joined) = resume(server.addr, "r", "Bob", &token).await;
    assert_eq!(joined["resumed"], true, "{joined}");
    let again = bob.expect("subscribe").await;
    assert_eq!(again["tracks"], first["tracks"], "{again}");
    assert!(again.get("new_session").is_none(), "{again}");
    bob.send(json!({"type": "answer", "sdp": "v=0\r\ns=bob\r\n"}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls = server.media.calls();
    assert!(calls.contains(&Call::Answer {
        subscriber,
        sdp: "v=0\r\ns=bob\r\n".into()
    }));
    assert_eq!(
        calls
            .iter()
            .filter(|c| matches!(c, Call::CreateSubscriber { .. }))
            .count(),
        2,
        "one subscriber session each, kept across resumes: {calls:?}"
    );
    bob.expect_silence().await;
}
