//! Access tokens over real TCP, WebSocket and HTTP clients: each action (join, publish,
//! subscribe, chat, WHIP, WHEP, metrics) allowed by the grant that includes it and refused
//! with 401/403 or `unauthorized`/`forbidden` without it; tokens that are expired, not yet
//! valid, forged, unsigned or for another room refused and counted in /metrics; and a token
//! made by hand (not with jsonwebtoken) accepted.
mod support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use signaling::{Claims, SignalingConfig, VideoGrant};
use support::tokens::{self, KEY, SECRET, bearer, claims, join, sign, token};
use support::{Call, Client, http, offer, start};

const SDP: (&str, &str) = ("Content-Type", "application/sdp");

/// Connects with `token` in the URL and sends a join for `room`.
async fn join_with(addr: SocketAddr, room: &str, token: &str) -> Client {
    let mut client = Client::connect_to(addr, &format!("/ws?access_token={token}"), &[]).await;
    client
        .send(json!({"type": "join", "room": room, "name": "Typed"}))
        .await;
    client
}

/// Joins `room` with `token` and returns the client and its `joined` message.
async fn joined(addr: SocketAddr, room: &str, token: &str) -> (Client, Value) {
    let mut client = join_with(addr, room, token).await;
    let joined = client.expect("joined").await;
    (client, joined)
}

/// The join is refused with `code` and the socket closed with the matching close code.
async fn refused_join(addr: SocketAddr, room: &str, token: &str, code: &str) {
    let mut client = join_with(addr, room, token).await;
    let close = if code == "forbidden" { 4403 } else { 4401 };
    let before = client.expect_close(close).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["type"], "error");
    assert_eq!(before[0]["code"], code, "{before:?}");
    assert!(before[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// The value of `sluice_auth_refused_total{reason="<reason>"}`.
async fn refused(addr: SocketAddr, reason: &str) -> u64 {
    let admin = token(
        "metrics",
        VideoGrant {
            room_list: true,
            ..VideoGrant::default()
        },
    );
    let metrics = http(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", &bearer(&admin))],
        b"",
    )
    .await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body).unwrap();
    let prefix = format!("sluice_auth_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
        .parse()
        .unwrap()
}

fn whip_post(auth: &str) -> Vec<(&str, &str)> {
    vec![SDP, ("Authorization", auth)]
}

#[tokio::test]
async fn joining_needs_a_token_for_the_room() {
    let server = start(tokens::config()).await;
    let addr = server.addr;

    // No token at all.
    let mut bare = Client::connect(addr).await;
    bare.send(json!({"type": "join", "room": "r", "name": "N"}))
        .await;
    let before = bare.expect_close(4401).await;
    assert_eq!(before[0]["code"], "unauthorized");
    assert_eq!(refused(addr, "missing").await, 1);

    // A token for another room, and one without roomJoin.
    refused_join(addr, "r", &token("a", join("elsewhere")), "forbidden").await;
    assert_eq!(refused(addr, "wrong_room").await, 1);
    let no_join = VideoGrant {
        room: Some("r".into()),
        can_subscribe: Some(true),
        ..VideoGrant::default()
    };
    refused_join(addr, "r", &token("a", no_join), "forbidden").await;
    assert_eq!(refused(addr, "not_granted").await, 1);

    // A good token: in the URL, in the join message, or as a bearer header.
    let (_ada, ada_joined) = joined(addr, "r", &token("ada", join("r"))).await;
    assert_eq!(ada_joined["room"], "r");
    let mut in_message = Client::connect(addr).await;
    in_message
        .send(json!({"type": "join", "room": "r", "name": "M", "token": token("m", join("r"))}))
        .await;
    in_message.expect("joined").await;
    let auth = bearer(&token("h", join("r")));
    let mut with_header = Client::connect_to(addr, "/ws", &[("Authorization", &auth)]).await;
    with_header
        .send(json!({"type": "join", "room": "r", "name": "H"}))
        .await;
    let joined = with_header.expect("joined").await;
    assert_eq!(joined["participants"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn identity_and_name_come_from_the_token() {
    let server = start(tokens::config()).await;
    let (mut ada, _) = joined(server.addr, "r", &token("ada", join("r"))).await;
    let mut named = claims("grace-1", join("r"));
    named.name = Some("Grace Hopper".into());
    let (_grace, grace_joined) = joined(server.addr, "r", &sign(&named)).await;
    let arrival = ada.expect("participant_joined").await;
    assert_eq!(arrival["participant"]["identity"], "grace-1");
    assert_eq!(
        arrival["participant"]["name"], "Grace Hopper",
        "the token's name wins over the typed one"
    );
    let seen = &grace_joined["participants"][0];
    assert_eq!(
        (&seen["identity"], &seen["name"]),
        (&json!("ada"), &json!("Typed"))
    );
}

#[tokio::test]
async fn publish_subscribe_and_chat_follow_the_grant() {
    let server = start(tokens::config()).await;
    let addr = server.addr;
    let viewer_grant = VideoGrant {
        can_publish: Some(false),
        can_publish_data: Some(false),
        ..join("r")
    };
    let (mut viewer, _) = joined(addr, "r", &token("viewer", viewer_grant)).await;
    let deaf_grant = VideoGrant {
        can_subscribe: Some(false),
        ..join("r")
    };
    let (mut deaf, _) = joined(addr, "r", &token("deaf", deaf_grant)).await;
    viewer.expect("participant_joined").await;

    // Publishing without canPublish: refused, and the media plane never sees the offer.
    viewer
        .send(json!({"type": "publish", "sdp": offer(&["video"])}))
        .await;
    viewer.expect_error("forbidden").await;
    // Chat without canPublishData: refused, and nobody hears it.
    viewer.send(json!({"type": "chat", "text": "hi"})).await;
    viewer.expect_error("forbidden").await;
    deaf.expect_silence().await;

    // The publisher without canSubscribe publishes; the viewer gets the subscribe offer.
    deaf.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    deaf.expect("published").await;
    viewer.expect("tracks").await;
    viewer.expect("subscribe").await;
    deaf.send(json!({"type": "chat", "text": "hello"})).await;
    assert_eq!(deaf.expect("chat").await["text"], "hello");
    assert_eq!(viewer.expect("chat").await["text"], "hello");
    // Answering without canSubscribe is refused; there is no subscribe connection at all.
    deaf.send(json!({"type": "answer", "sdp": "v=0\r\n"})).await;
    deaf.expect_error("forbidden").await;
    let calls = server.media.calls();
    let publishes = calls
        .iter()
        .filter(|c| matches!(c, Call::Publish { .. }))
        .count();
    let subscribers = calls
        .iter()
        .filter(|c| matches!(c, Call::CreateSubscriber { .. }))
        .count();
    assert_eq!(publishes, 1, "only the permitted publish: {calls:?}");
    assert_eq!(subscribers, 1, "only the viewer subscribes: {calls:?}");
    assert_eq!(refused(addr, "not_granted").await, 3);
}

#[tokio::test]
async fn hidden_participants_are_not_announced() {
    let server = start(tokens::config()).await;
    let (mut ada, _) = joined(server.addr, "r", &token("ada", join("r"))).await;
    let hidden = VideoGrant {
        hidden: true,
        ..join("r")
    };
    let (mut recorder, recorder_joined) = joined(server.addr, "r", &token("rec", hidden)).await;
    assert_eq!(recorder_joined["participants"].as_array().unwrap().len(), 1);
    ada.expect_silence().await;
    // The hidden participant still receives the room's media.
    ada.send(json!({"type": "publish", "sdp": offer(&["video"])}))
        .await;
    ada.expect("published").await;
    recorder.expect("tracks").await;
    recorder.expect("subscribe").await;
    let (_late, late_joined) = joined(server.addr, "r", &token("late", join("r"))).await;
    assert_eq!(
        late_joined["participants"].as_array().unwrap().len(),
        1,
        "only Ada: {late_joined}"
    );
    ada.expect("participant_joined").await;
    drop(recorder);
    ada.expect_silence().await;
}

#[tokio::test]
async fn invalid_tokens_are_refused_and_counted() {
    let server = start(tokens::config()).await;
    let addr = server.addr;
    let now = tokens::now();
    let expired = sign(&Claims {
        exp: Some(now - 3600),
        ..claims("a", join("r"))
    });
    let early = sign(&Claims {
        nbf: Some(now + 3600),
        exp: Some(now + 7200),
        ..claims("a", join("r"))
    });
    let other_secret = signaling::AccessKeys::single(KEY, "another secret entirely")
        .unwrap()
        .sign(KEY, &claims("a", join("r")))
        .unwrap();
    let unknown_key = signaling::AccessKeys::single("other-key", SECRET)
        .unwrap()
        .sign("other-key", &claims("a", join("r")))
        .unwrap();
    let payload = serde_json::to_string(&Claims {
        iss: Some(KEY.into()),
        ..claims("a", join("r"))
    })
    .unwrap();
    let unsigned = format!(
        "{}.{}.",
        tokens::base64url(br#"{"alg":"none","typ":"JWT"}"#),
        tokens::base64url(payload.as_bytes())
    );
    // The right secret, but declared as HS512 and signed as such: only HS256 is accepted.
    let hs512 = {
        let input = format!(
            "{}.{}",
            tokens::base64url(br#"{"alg":"HS512","typ":"JWT"}"#),
            tokens::base64url(payload.as_bytes())
        );
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            tokens::base64url(&mac.finalize().into_bytes())
        )
    };
    let cases = [
        (expired.as_str(), "expired"),
        (early.as_str(), "not_yet_valid"),
        (other_secret.as_str(), "bad_signature"),
        (unknown_key.as_str(), "unknown_key"),
        (unsigned.as_str(), "algorithm"),
        (hs512.as_str(), "algorithm"),
        ("not-a-jwt", "malformed"),
    ];
    for (token, reason) in cases {
        let before = refused(addr, reason).await;
        refused_join(addr, "r", token, "unauthorized").await;
        let auth = bearer(token);
        let whip = http(
            addr,
            "POST",
            "/whip/r",
            &whip_post(&auth),
            offer(&["video"]).as_bytes(),
        )
        .await;
        assert_eq!(whip.status, 401, "{reason}");
        assert_eq!(whip.json()["code"], "unauthorized");
        assert!(
            whip.header("www-authenticate")
                .unwrap()
                .starts_with("Bearer")
        );
        let whep = http(
            addr,
            "POST",
            "/whep/r",
            &whip_post(&auth),
            offer(&["video"]).as_bytes(),
        )
        .await;
        assert_eq!(whep.status, 401, "{reason}");
        assert_eq!(
            refused(addr, reason).await,
            before + 3,
            "{reason} counted thrice"
        );
    }
    // For another room: valid, so 403 / forbidden.
    let other_room = token("a", join("elsewhere"));
    refused_join(addr, "r", &other_room, "forbidden").await;
    let whip = http(
        addr,
        "POST",
        "/whip/r",
        &whip_post(&bearer(&other_room)),
        offer(&["video"]).as_bytes(),
    )
    .await;
    assert_eq!(
        (whip.status, whip.json()["code"].clone()),
        (403, json!("forbidden"))
    );
    assert_eq!(refused(addr, "wrong_room").await, 2);
    assert!(
        server.media.calls().is_empty(),
        "no refused request reached the media plane"
    );
}

#[tokio::test]
async fn a_token_made_without_jsonwebtoken_is_accepted() {
    let server = start(tokens::config()).await;
    let exp = tokens::now() + 300;
    let payload = format!(
        r#"{{"iss":"{KEY}","sub":"hand","name":"By Hand","nbf":{},"exp":{exp},"jti":"x1",
            "video":{{"room":"r","roomJoin":true,"canPublish":true,"canSubscribe":true}},
            "metadata":"ignored"}}"#,
        exp - 300
    );
    let token = tokens::hand_made(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &payload,
        SECRET.as_bytes(),
    );
    let (_watcher, _) = joined(server.addr, "r", &tokens::token("w", join("r"))).await;
    let (_hand, hand_joined) = joined(server.addr, "r", &token).await;
    assert_eq!(hand_joined["participants"][0]["identity"], "w");
    let whip = http(
        server.addr,
        "POST",
        "/whip/r",
        &whip_post(&bearer(&token)),
        offer(&["video"]).as_bytes(),
    )
    .await;
    assert_eq!(whip.status, 201);
    // The same bytes with one signature character changed are refused.
    let mut forged = token.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    refused_join(server.addr, "r", &forged, "unauthorized").await;
}

#[tokio::test]
async fn whip_and_whep_take_bearer_tokens() {
    let server = start(tokens::config()).await;
    let addr = server.addr;
    let sdp = offer(&["audio", "video"]);

    let missing = http(addr, "POST", "/whip/r", &[SDP], sdp.as_bytes()).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert!(missing.json()["error"].is_string());
    // A preflight carries no credentials and is answered.
    let preflight = http(addr, "OPTIONS", "/whip/r", &[], b"").await;
    assert_eq!(preflight.status, 204);

    let subscribe_only = VideoGrant {
        room: Some("r".into()),
        can_subscribe: Some(true),
        ..VideoGrant::default()
    };
    let player = bearer(&token("player", subscribe_only.clone()));
    let no_publish = http(addr, "POST", "/whip/r", &whip_post(&player), sdp.as_bytes()).await;
    assert_eq!(
        (no_publish.status, no_publish.json()["code"].clone()),
        (403, json!("forbidden"))
    );
    let cannot_publish = VideoGrant {
        can_publish: Some(false),
        ..join("r")
    };
    let refused_whip = http(
        addr,
        "POST",
        "/whip/r",
        &whip_post(&bearer(&token("x", cannot_publish))),
        sdp.as_bytes(),
    )
    .await;
    assert_eq!(refused_whip.status, 403);

    let (mut watcher, _) = joined(addr, "r", &token("watch", join("r"))).await;
    let mut named = claims("cam-1", join("r"));
    named.name = Some("Camera One".into());
    let publisher = bearer(&sign(&named));
    let created = http(
        addr,
        "POST",
        "/whip/r?name=Ignored",
        &whip_post(&publisher),
        sdp.as_bytes(),
    )
    .await;
    assert_eq!(created.status, 201);
    let arrival = watcher.expect("participant_joined").await;
    assert_eq!(arrival["participant"]["identity"], "cam-1");
    assert_eq!(arrival["participant"]["name"], "Camera One");

    // WHEP: canSubscribe for the room, no more.
    let cannot_subscribe = bearer(&token(
        "p",
        VideoGrant {
            can_subscribe: Some(false),
            ..join("r")
        },
    ));
    let whep_refused = http(
        addr,
        "POST",
        "/whep/r",
        &whip_post(&cannot_subscribe),
        sdp.as_bytes(),
    )
    .await;
    assert_eq!(whep_refused.status, 403);
    let whep_wrong_room = http(
        addr,
        "POST",
        "/whep/elsewhere",
        &whip_post(&player),
        sdp.as_bytes(),
    )
    .await;
    assert_eq!(whep_wrong_room.status, 403);
    let played = http(addr, "POST", "/whep/r", &whip_post(&player), sdp.as_bytes()).await;
    assert_eq!(played.status, 201);

    // The resource URLs stay authorized by their own token.
    let whip_location = created.header("location").unwrap().to_owned();
    let trickle = http(
        addr,
        "PATCH",
        &whip_location,
        &[("Content-Type", "application/trickle-ice-sdpfrag")],
        b"a=end-of-candidates\r\n",
    )
    .await;
    assert_eq!(trickle.status, 204);
    let whep_location = played.header("location").unwrap().to_owned();
    assert_eq!(
        http(addr, "DELETE", &whep_location, &[], b"").await.status,
        200
    );
    assert_eq!(
        http(addr, "DELETE", &whip_location, &[], b"").await.status,
        200
    );
    watcher.expect("subscribe").await;
    watcher.expect("participant_left").await;
}

#[tokio::test]
async fn metrics_need_an_admin_or_list_grant() {
    let server = start(tokens::config()).await;
    let addr = server.addr;
    let get = |auth: Option<String>| async move {
        let headers: Vec<(&str, &str)> = match &auth {
            Some(a) => vec![("Authorization", a.as_str())],
            None => vec![],
        };
        http(addr, "GET", "/metrics", &headers, b"").await.status
    };
    assert_eq!(get(None).await, 401);
    assert_eq!(get(Some(bearer(&token("a", join("r"))))).await, 403);
    let admin = VideoGrant {
        room: Some("r".into()),
        room_admin: true,
        ..VideoGrant::default()
    };
    assert_eq!(get(Some(bearer(&token("a", admin)))).await, 200);
    assert_eq!(refused(addr, "missing").await, 1);
    assert_eq!(refused(addr, "not_granted").await, 1);
    // Health stays open for probes.
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").await.status, 200);
}

#[tokio::test]
async fn without_keys_everything_stays_open() {
    let server = start(SignalingConfig::default()).await;
    let (_a, _) = Client::join(server.addr, "r", "A").await;
    let metrics = http(server.addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("sluice_auth_refused_total{reason=\"missing\"} 0\n"),
        "{text}"
    );
    let rooms = http(server.addr, "GET", "/api/rooms", &[], b"").await;
    assert_eq!(rooms.status, 200);
    assert_eq!(rooms.json()["rooms"][0]["name"], "r");
    // A token is ignored when none is required, even a bad one.
    let mut client = join_with(server.addr, "r", "garbage").await;
    client.expect("joined").await;
}
