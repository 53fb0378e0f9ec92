//! The room protocol over a real TCP socket and a real WebSocket client, against a media
//! plane that records calls (see support/).
mod support;

use std::time::Duration;

use rtc_core::{SessionId, TrackId};
use serde_json::{Value, json};
use signaling::{MediaEvent, SignalingConfig, TrackPriority, TrackView};
use support::{Call, Client, offer, start};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn health_static_files_and_unknown_paths() {
    let server = start(SignalingConfig::default()).await;
    let health = support::http(server.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(
        (health.status, health.body.as_slice()),
        (200, b"ok".as_slice())
    );
    let metrics = support::http(server.addr, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert_eq!(metrics.status, 200);
    assert!(text.contains("\nsluice_rooms 0\n"), "{text}");
    assert!(
        text.contains("recording_media_calls 1"),
        "the media plane's part: {text}"
    );
    let missing = support::http(server.addr, "GET", "/nope", &[], b"").await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());
    let missing_file = support::http(server.addr, "GET", "/app/../../Cargo.toml", &[], b"").await;
    assert_eq!(missing_file.status, 404);
    assert_eq!(
        support::http(server.addr, "POST", "/healthz", &[], b"")
            .await
            .status,
        405
    );
    let not_upgrade = support::http(server.addr, "GET", "/ws", &[], b"").await;
    assert_eq!(not_upgrade.status, 400);
    assert!(not_upgrade.json()["error"].is_string());
    let index =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../client-js/app/index.html");
    let root = support::http(server.addr, "GET", "/", &[], b"").await;
    if let Ok(expected) = std::fs::read(index) {
        assert_eq!(root.status, 200);
        assert_eq!(
            root.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(root.body, expected);
    } else {
        assert_eq!(root.status, 404);
    }
}

#[tokio::test]
async fn join_publish_subscribe_mute_chat_and_leave() {
    let server = start(SignalingConfig::default()).await;
    let (mut ada, joined) = Client::join(server.addr, "lobby", "  Ada ").await;
    let ada_id = joined["id"].as_str().unwrap().to_owned();
    assert_eq!(joined["room"], "lobby");
    assert_eq!(joined["participants"], json!([]));
    assert_eq!(joined["chat"], json!([]));

    let (mut grace, joined) = Client::join(server.addr, "lobby", "Grace").await;
    let grace_id = joined["id"].as_str().unwrap().to_owned();
    assert_eq!(joined["participants"][0]["id"], ada_id.as_str());
    assert_eq!(
        joined["participants"][0]["name"], "Ada",
        "names are trimmed"
    );
    let arrival = ada.expect("participant_joined").await;
    assert_eq!(arrival["participant"]["id"], grace_id.as_str());
    assert_eq!(
        arrival["participant"]["muted"],
        json!({"audio": false, "video": false})
    );

    // Ada publishes; Grace hears of the tracks and gets a subscribe offer carrying them.
    ada.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    let published = ada.expect("published").await;
    assert!(published["sdp"].as_str().unwrap().starts_with("v=0"));
    let tracks = grace.expect("tracks").await;
    assert_eq!(tracks["participant"], ada_id.as_str());
    let sources: Vec<_> = tracks["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["source"].clone())
        .collect();
    assert_eq!(sources, [json!("microphone"), json!("camera")]);
    let subscribe = grace.expect("subscribe").await;
    let mids = subscribe["tracks"].as_object().unwrap();
    assert_eq!(mids.len(), 2);
    for (i, (_, entry)) in mids.iter().enumerate() {
        assert_eq!(entry["participant"], ada_id.as_str());
        assert_eq!(entry["track"], tracks["tracks"][i]["id"]);
    }
    grace
        .send(json!({"type": "answer", "sdp": "v=0\r\ns=grace answer\r\n"}))
        .await;

    // Renegotiating replaces the track list (screen share added).
    ada.send(
        json!({"type": "publish", "sdp": offer(&["audio", "video", "video"]),
                    "sources": {"2": "screen"}}),
    )
    .await;
    ada.expect("published").await;
    let tracks = grace.expect("tracks").await;
    assert_eq!(tracks["tracks"].as_array().unwrap().len(), 3);
    assert_eq!(tracks["tracks"][2]["source"], "screen");
    assert_eq!(
        grace.expect("subscribe").await["tracks"]
            .as_object()
            .unwrap()
            .len(),
        3
    );
    grace
        .send(json!({"type": "answer", "sdp": "v=0\r\ns=second\r\n"}))
        .await;

    ada.send(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await;
    let mute = grace.expect("mute").await;
    assert_eq!(
        (
            mute["participant"].as_str(),
            mute["kind"].as_str(),
            mute["muted"].as_bool()
        ),
        (Some(ada_id.as_str()), Some("audio"), Some(true))
    );

    grace
        .send(json!({"type": "chat", "text": "<b>hi</b>"}))
        .await;
    for client in [&mut ada, &mut grace] {
        let chat = client.expect("chat").await;
        assert_eq!(
            (chat["from"].as_str(), chat["name"].as_str()),
            (Some(grace_id.as_str()), Some("Grace"))
        );
        assert_eq!(
            chat["text"], "<b>hi</b>",
            "chat is passed on as text, untouched"
        );
        assert!(chat["at"].as_u64().unwrap() > 1_700_000_000_000);
    }

    // A late joiner sees everyone's state, the chat history and gets Ada's tracks offered.
    let (mut linus, joined) = Client::join(server.addr, "lobby", "Linus").await;
    let participants = joined["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 2);
    assert_eq!(participants[0]["muted"]["audio"], true);
    assert_eq!(participants[0]["tracks"].as_array().unwrap().len(), 3);
    assert_eq!(joined["chat"][0]["text"], "<b>hi</b>");
    assert_eq!(
        linus.expect("subscribe").await["tracks"]
            .as_object()
            .unwrap()
            .len(),
        3
    );

    ada.expect("participant_joined").await;
    // Ada leaves: the others are told, their offers drop her tracks, her sessions close.
    ada.send(json!({"type": "leave"})).await;
    assert_eq!(
        grace.expect("participant_joined").await["participant"]["name"],
        "Linus"
    );
    assert_eq!(
        grace.expect("participant_left").await["id"],
        ada_id.as_str()
    );
    assert_eq!(grace.expect("subscribe").await["tracks"], json!({}));
    assert_eq!(
        linus.expect("participant_left").await["id"],
        ada_id.as_str()
    );
    let calls = server.media.calls();
    let ada_publish = calls.iter().find_map(|c| match c {
        Call::Publish {
            session,
            renegotiated: false,
            ..
        } => Some(*session),
        _ => None,
    });
    assert!(calls.contains(&Call::Close {
        session: ada_publish.unwrap()
    }));
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::Answer { sdp, .. } if sdp.contains("grace answer")))
    );
    assert!(calls.iter().any(|c| matches!(
        c,
        Call::Publish {
            renegotiated: true,
            ..
        }
    )));

    // After leaving, the connection may join again; the room disappears with its last member.
    ada.send(json!({"type": "chat", "text": "still here?"}))
        .await;
    ada.expect_error("not_joined").await;
    // They leave for good (a dropped socket would be kept for a resume, tests/resume.rs).
    grace.send(json!({"type": "leave"})).await;
    linus.send(json!({"type": "leave"})).await;
    drop(grace);
    drop(linus);
    tokio::time::sleep(Duration::from_millis(200)).await;
    ada.send(json!({"type": "join", "room": "lobby", "name": "Ada"}))
        .await;
    let joined = ada.expect("joined").await;
    assert_eq!(joined["participants"], json!([]), "a fresh room");
    assert_eq!(
        joined["chat"],
        json!([]),
        "the old room's chat went with it"
    );
}

#[tokio::test]
async fn offers_wait_for_the_answer_to_the_previous_one() {
    let server = start(SignalingConfig::default()).await;
    let (mut viewer, _) = Client::join(server.addr, "r", "viewer").await;
    let (mut first, _) = Client::join(server.addr, "r", "first").await;
    let (mut second, _) = Client::join(server.addr, "r", "second").await;
    viewer.expect("participant_joined").await;
    viewer.expect("participant_joined").await;
    first
        .send(json!({"type": "publish", "sdp": offer(&["video"; 5])}))
        .await;
    viewer.expect("tracks").await;
    assert_eq!(
        viewer.expect("subscribe").await["tracks"]
            .as_object()
            .unwrap()
            .len(),
        5
    );
    second
        .send(json!({"type": "publish", "sdp": offer(&["video"; 5])}))
        .await;
    viewer.expect("tracks").await;
    viewer.expect_silence().await;
    viewer
        .send(json!({"type": "answer", "sdp": offer(&["video"; 5])}))
        .await;
    assert_eq!(
        viewer.expect("subscribe").await["tracks"]
            .as_object()
            .unwrap()
            .len(),
        10
    );
    viewer
        .send(json!({"type": "answer", "sdp": offer(&["video"; 10])}))
        .await;
    viewer.expect_silence().await;
    let answers = server
        .media
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Answer { .. }))
        .count();
    assert_eq!(answers, 2);
}

#[tokio::test]
async fn bad_input_is_answered_with_errors_and_disturbs_no_one() {
    let server = start(SignalingConfig::default()).await;
    let (mut bystander, _) = Client::join(server.addr, "calm", "Bystander").await;
    let mut client = Client::connect(server.addr).await;

    client.send(json!({"type": "chat", "text": "hi"})).await;
    client.expect_error("not_joined").await;
    for junk in ["{", "[]", "42", "{\"type\": 7}", "{}"] {
        client.send_text(junk.into()).await;
        client.expect_error("bad_json").await;
    }
    client.ws.send_binary_helper().await;
    client.expect_error("bad_json").await;
    client.send(json!({"type": "dance"})).await;
    client.expect_error("unknown_type").await;
    for name in [
        json!(""),
        json!("   "),
        json!("x".repeat(65)),
        json!(42),
        json!(null),
        json!("a\u{7}b"),
        json!(["Ada"]),
    ] {
        client
            .send(json!({"type": "join", "room": "calm", "name": name}))
            .await;
        client.expect_error("bad_name").await;
    }
    for room in [json!(""), json!("r".repeat(65)), json!(1), json!("a\nb")] {
        client
            .send(json!({"type": "join", "room": room, "name": "Ada"}))
            .await;
        client.expect_error("bad_room").await;
    }
    client
        .send(json!({"type": "join", "room": "calm", "name": "Ada"}))
        .await;
    client.expect("joined").await;
    bystander.expect("participant_joined").await;
    client
        .send(json!({"type": "join", "room": "calm", "name": "Ada"}))
        .await;
    client.expect_error("already_joined").await;
    for text in [json!(""), json!("x".repeat(1001)), json!(5)] {
        client.send(json!({"type": "chat", "text": text})).await;
        client.expect_error("bad_chat").await;
    }
    for mute in [
        json!({"kind": "smell", "muted": true}),
        json!({"kind": "audio", "muted": "yes"}),
        json!({}),
    ] {
        let mut message = mute;
        message["type"] = json!("mute");
        client.send(message).await;
        client.expect_error("bad_mute").await;
    }
    for sdp in [json!(null), json!("hello"), json!("x".repeat(60_000))] {
        client.send(json!({"type": "publish", "sdp": sdp})).await;
        client.expect_error("bad_sdp").await;
    }
    client
        .send(json!({"type": "publish", "sdp": offer(&["video"; 9])}))
        .await;
    client.expect_error("too_many_tracks").await;
    client
        .send(json!({"type": "publish", "sdp": format!("{}a=reject\r\n", offer(&["video"]))}))
        .await;
    client.expect_error("bad_sdp").await;
    client
        .send(json!({"type": "answer", "sdp": "v=0\r\n"}))
        .await;
    // The subscriber exists (created on join), so the media plane gets the answer.
    client.expect_silence().await;

    // The bystander heard nothing of all that and the room still works.
    bystander.expect_silence().await;
    client.send(json!({"type": "chat", "text": "fine"})).await;
    assert_eq!(bystander.expect("chat").await["text"], "fine");
}

trait SendBinary {
    async fn send_binary_helper(&mut self);
}

impl<S: futures_util::Sink<Message> + Unpin> SendBinary for S
where
    S::Error: std::fmt::Debug,
{
    async fn send_binary_helper(&mut self) {
        use futures_util::SinkExt;
        self.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    }
}

#[tokio::test]
async fn oversized_messages_close_the_connection_with_1009() {
    let server = start(SignalingConfig::default()).await;
    let (mut bystander, _) = Client::join(server.addr, "r", "Bystander").await;
    let (mut client, _) = Client::join(server.addr, "r", "Big").await;
    bystander.expect("participant_joined").await;
    client
        .send(json!({"type": "chat", "text": "x".repeat(70_000)}))
        .await;
    client.expect_error("message_too_large").await;
    match client.next_within(Duration::from_secs(5)).await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected a close frame, got {other:?}"),
    }
    bystander.expect("participant_left").await;
    bystander
        .send(json!({"type": "chat", "text": "still fine"}))
        .await;
    bystander.expect("chat").await;
}

#[tokio::test]
async fn floods_are_rate_limited() {
    let config = SignalingConfig {
        messages_per_second: 1,
        message_burst: 5,
        ..SignalingConfig::default()
    };
    let server = start(config).await;
    let (mut client, _) = Client::join(server.addr, "r", "Flood").await;
    for i in 0..12 {
        client
            .send(json!({"type": "chat", "text": format!("m{i}")}))
            .await;
    }
    let (mut chats, mut limited) = (0, 0);
    while let Some(Message::Text(text)) = client.next_within(Duration::from_millis(300)).await {
        let message: Value = serde_json::from_str(&text).unwrap();
        match message["type"].as_str() {
            Some("chat") => chats += 1,
            Some("error") if message["code"] == "rate_limited" => limited += 1,
            _ => panic!("unexpected {message}"),
        }
    }
    // The join took one token of the burst; one more may have trickled in meanwhile.
    assert!((4..=5).contains(&chats), "{chats} chats passed");
    assert_eq!(limited, 1, "one warning per second, not one per message");
}

#[tokio::test]
async fn room_and_participant_limits() {
    let config = SignalingConfig {
        max_rooms: 1,
        max_participants: 2,
        ..SignalingConfig::default()
    };
    let server = start(config).await;
    let (_a, _) = Client::join(server.addr, "one", "A").await;
    let (_b, _) = Client::join(server.addr, "one", "B").await;
    let mut c = Client::connect(server.addr).await;
    c.send(json!({"type": "join", "room": "one", "name": "C"}))
        .await;
    c.expect_error("room_full").await;
    c.send(json!({"type": "join", "room": "two", "name": "C"}))
        .await;
    c.expect_error("too_many_rooms").await;
}

#[tokio::test]
async fn a_media_session_that_ends_makes_its_participant_leave() {
    let server = start(SignalingConfig::default()).await;
    let (mut ada, _) = Client::join(server.addr, "r", "Ada").await;
    let (mut grace, joined) = Client::join(server.addr, "r", "Grace").await;
    let grace_id = joined["id"].clone();
    ada.expect("participant_joined").await;
    grace
        .send(json!({"type": "publish", "sdp": offer(&["video"])}))
        .await;
    grace.expect("published").await;
    ada.expect("tracks").await;
    ada.expect("subscribe").await;
    ada.send(json!({"type": "answer", "sdp": "v=0\r\n"})).await;
    let session = server
        .media
        .calls()
        .iter()
        .rev()
        .find_map(|c| match c {
            Call::Publish { session, .. } => Some(*session),
            _ => None,
        })
        .unwrap();
    server
        .events
        .send(MediaEvent::SessionEnded { session })
        .unwrap();
    server
        .events
        .send(MediaEvent::SessionEnded {
            session: SessionId(999_999),
        })
        .unwrap();
    assert_eq!(ada.expect("participant_left").await["id"], grace_id);
    assert_eq!(ada.expect("subscribe").await["tracks"], json!({}));
    match grace.next_within(Duration::from_secs(5)).await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 4000),
        other => panic!("expected a close frame, got {other:?}"),
    }
    ada.send(json!({"type": "chat", "text": "alone"})).await;
    ada.expect("chat").await;
}

/// The next `speaker` message, skipping others, within `limit`; `None` when none came.
async fn next_speaker(client: &mut Client, limit: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_within(left).await {
            Some(Message::Text(text)) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["type"] == "speaker" {
                    return Some(message);
                }
            }
            Some(_) => {}
            None => return None,
        }
    }
}

#[tokio::test]
async fn the_dominant_speaker_is_announced_and_a_short_burst_does_not_take_over() {
    let server = start(SignalingConfig::default()).await;
    let (mut ada, ada_joined) = Client::join(server.addr, "r", "Ada").await;
    let (mut bob, bob_joined) = Client::join(server.addr, "r", "Bob").await;
    let (mut viewer, _) = Client::join(server.addr, "r", "Viewer").await;
    for client in [&mut ada, &mut bob] {
        client
            .send(json!({"type": "publish", "sdp": offer(&["audio"])}))
            .await;
        // Skips the announcements of the others that arrive meanwhile.
        while client.recv().await["type"] != "published" {}
    }
    let sessions: Vec<SessionId> = server
        .media
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::Publish { session, .. } => Some(*session),
            _ => None,
        })
        .collect();
    let (ada_session, bob_session) = (sessions[0], sessions[1]);
    // Every 100 ms, as the media plane reports: `talking` sessions voiced in all 5 packets.
    let report = |talking: &[SessionId]| {
        for &publisher in &[ada_session, bob_session] {
            let voiced = if talking.contains(&publisher) { 5 } else { 0 };
            server
                .events
                .send(MediaEvent::AudioActivity {
                    track: TrackId(publisher.0 * 100),
                    publisher,
                    packets: 5,
                    voiced,
                })
                .unwrap();
        }
    };
    let tick = Duration::from_millis(100);
    // Ada talks: announced to everyone within 1.5 s.
    let started = tokio::time::Instant::now();
    let speaking = tokio::spawn({
        let events = server.events.clone();
        async move {
            for _ in 0..30 {
                for (publisher, voiced) in [(ada_session, 5), (bob_session, 0)] {
                    let _ = events.send(MediaEvent::AudioActivity {
                        track: TrackId(publisher.0 * 100),
                        publisher,
                        packets: 5,
                        voiced,
                    });
                }
                tokio::time::sleep(tick).await;
            }
        }
    });
    let first = next_speaker(&mut viewer, Duration::from_secs(3))
        .await
        .expect("a speaker");
    assert_eq!(first["participant"], ada_joined["id"]);
    assert!(
        started.elapsed() <= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    speaking.await.unwrap();
    // Bob says something for 200 ms while Ada goes on: no change.
    for step in 0..20 {
        let burst = (5..7).contains(&step);
        let talking: &[SessionId] = if burst {
            &[ada_session, bob_session]
        } else {
            &[ada_session]
        };
        report(talking);
        tokio::time::sleep(tick).await;
    }
    assert!(
        next_speaker(&mut viewer, Duration::from_millis(100))
            .await
            .is_none()
    );
    // Ada stops, Bob talks: Bob within 1.5 s.
    let switched = tokio::time::Instant::now();
    let mut announced = None;
    for _ in 0..30 {
        report(&[bob_session]);
        if let Some(Message::Text(text)) = viewer.next_within(tick).await {
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["type"] == "speaker" {
                announced = Some((message, switched.elapsed()));
                break;
            }
        }
    }
    let (message, after) = announced.expect("Bob announced");
    assert_eq!(message["participant"], bob_joined["id"]);
    assert!(after <= Duration::from_millis(1500), "{after:?}");
    // A newcomer learns who speaks in its joined message.
    let (_late, joined) = Client::join(server.addr, "r", "Late").await;
    assert_eq!(joined["speaker"], bob_joined["id"]);
}

/// The priorities given so far, in order.
fn priorities(server: &support::Server) -> Vec<(TrackId, TrackPriority)> {
    server
        .media
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::TrackPriority { track, priority } => Some((*track, *priority)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn screen_shares_and_the_dominant_speaker_go_first_in_every_receivers_bandwidth() {
    let server = start(SignalingConfig::default()).await;
    let (mut ada, _) = Client::join(server.addr, "r", "Ada").await;
    let (mut bob, _) = Client::join(server.addr, "r", "Bob").await;
    let (mut viewer, _) = Client::join(server.addr, "r", "Viewer").await;
    ada.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    while ada.recv().await["type"] != "published" {}
    bob.send(
        json!({"type": "publish", "sdp": offer(&["audio", "video", "video"]),
                    "sources": {"2": "screen"}}),
    )
    .await;
    while bob.recv().await["type"] != "published" {}
    let sessions: Vec<SessionId> = server
        .media
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::Publish { session, .. } => Some(*session),
            _ => None,
        })
        .collect();
    let (ada_session, bob_session) = (sessions[0], sessions[1]);
    // The fake media plane numbers tracks session * 100 + m-line.
    let ada_camera = TrackId(ada_session.0 * 100 + 1);
    let bob_camera = TrackId(bob_session.0 * 100 + 1);
    let bob_screen = TrackId(bob_session.0 * 100 + 2);
    assert_eq!(
        priorities(&server),
        [(bob_screen, TrackPriority::SCREEN_SHARE)]
    );
    // 100 ms audio reports with `talking` voiced, for `reports` of them.
    let talk = |talking: SessionId, reports: usize| {
        let events = server.events.clone();
        async move {
            for _ in 0..reports {
                for publisher in [ada_session, bob_session] {
                    let voiced = if publisher == talking { 5 } else { 0 };
                    let _ = events.send(MediaEvent::AudioActivity {
                        track: TrackId(publisher.0 * 100),
                        publisher,
                        packets: 5,
                        voiced,
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    talk(ada_session, 20).await;
    assert_eq!(
        priorities(&server),
        [
            (bob_screen, TrackPriority::SCREEN_SHARE),
            (ada_camera, TrackPriority::DOMINANT_SPEAKER)
        ]
    );
    // Bob takes over: his camera first, Ada's a recent speaker's; the screen stays first.
    talk(bob_session, 30).await;
    let given = priorities(&server);
    assert_eq!(given.len(), 4, "{given:?}");
    assert!(given.contains(&(bob_camera, TrackPriority::DOMINANT_SPEAKER)));
    assert!(given.contains(&(ada_camera, TrackPriority::RECENT_SPEAKER)));
    // A receiver's view of a track reaches the media plane for its subscribe connection.
    let wire = format!("t{}", bob_camera.0);
    viewer
        .send(
            json!({"type": "view", "track": wire, "width": 320, "height": 180,
                     "visible": false}),
        )
        .await;
    viewer
        .send(json!({"type": "view", "track": wire, "width": 320}))
        .await;
    let mut refused = None;
    while refused.is_none() {
        let message = viewer.recv().await;
        if message["type"] == "error" {
            refused = Some(message);
        }
    }
    assert_eq!(refused.unwrap()["code"], "bad_view");
    let views: Vec<(TrackId, TrackView)> = server
        .media
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::TrackView { track, view, .. } => Some((*track, *view)),
            _ => None,
        })
        .collect();
    assert_eq!(
        views,
        [(
            bob_camera,
            TrackView {
                size: Some((320, 180)),
                visible: false,
                pinned: false
            }
        )]
    );
}

#[tokio::test]
async fn a_participants_downlink_quality_is_shown_to_the_room_when_it_changes() {
    let server = start(SignalingConfig::default()).await;
    let (mut ada, _) = Client::join(server.addr, "r", "Ada").await;
    let (mut viewer, viewer_joined) = Client::join(server.addr, "r", "Viewer").await;
    ada.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    while ada.recv().await["type"] != "published" {}
    // The viewer's subscribe connection: the one offered Ada's tracks.
    let subscriber = waitable_subscriber(&server).await;
    let report = |allocated: u64, paused: u16| MediaEvent::DownlinkQuality {
        session: subscriber,
        estimate_bps: 1_000_000,
        allocated_bps: allocated,
        wanted_bps: 1_000_000,
        loss_per_mille: 0,
        paused,
    };
    // The first report sets the level at once; everyone hears it.
    server.events.send(report(1_000_000, 0)).unwrap();
    let first = next_quality(&mut ada).await;
    assert_eq!(first["participant"], viewer_joined["id"]);
    assert_eq!(first["quality"], "good");
    assert_eq!(next_quality(&mut viewer).await["quality"], "good");
    // One poor report is not enough; two in a row are.
    server.events.send(report(1_000_000, 1)).unwrap();
    server.events.send(report(1_000_000, 0)).unwrap();
    server.events.send(report(1_000_000, 1)).unwrap();
    server.events.send(report(1_000_000, 1)).unwrap();
    let poor = next_quality(&mut ada).await;
    assert_eq!(poor["quality"], "poor");
    // A newcomer sees it in the participant list.
    let (_late, joined) = Client::join(server.addr, "r", "Late").await;
    let listed = participant_in(&joined, &viewer_joined["id"]);
    assert_eq!(listed["quality"], "poor");
    // The admin API shows the last report.
    let room = support::http(server.addr, "GET", "/api/rooms/r", &[], b"").await;
    let shown = participant_in(&room.json(), &viewer_joined["id"]);
    assert_eq!(shown["quality"], "poor");
    assert_eq!(
        shown["downlink"],
        json!({"estimateBps": 1_000_000, "allocatedBps": 1_000_000, "wantedBps": 1_000_000,
               "loss": 0.0, "pausedTracks": 1})
    );
}

#[tokio::test]
async fn a_whep_players_downlink_is_shown_in_the_admin_api() {
    let server = start(SignalingConfig::default()).await;
    let (mut ada, _) = Client::join(server.addr, "r", "Ada").await;
    ada.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    while ada.recv().await["type"] != "published" {}
    let played = support::http(
        server.addr,
        "POST",
        "/whep/r",
        &[("Content-Type", "application/sdp")],
        offer(&["audio", "video"]).as_bytes(),
    )
    .await;
    assert_eq!(played.status, 201);
    let player = server
        .media
        .calls()
        .iter()
        .find_map(|c| match c {
            Call::Play { session, .. } => Some(*session),
            _ => None,
        })
        .expect("a play call");
    let room = support::http(server.addr, "GET", "/api/rooms/r", &[], b"").await;
    assert_eq!(room.json()["players"], 1);
    assert_eq!(
        room.json()["playerSessions"],
        json!([{"session": player.0, "downlink": null}])
    );
    server
        .events
        .send(MediaEvent::DownlinkQuality {
            session: player,
            estimate_bps: 600_000,
            allocated_bps: 350_000,
            wanted_bps: 800_000,
            loss_per_mille: 12,
            paused: 0,
        })
        .unwrap();
    let expected = json!([{"session": player.0, "downlink": {"estimateBps": 600_000,
        "allocatedBps": 350_000, "wantedBps": 800_000, "loss": 0.012, "pausedTracks": 0}}]);
    let mut shown = Value::Null;
    for _ in 0..100 {
        let room = support::http(server.addr, "GET", "/api/rooms/r", &[], b"").await;
        shown = room.json()["playerSessions"].clone();
        if shown == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shown, expected);
}

/// The participant `id` of a message's (or a room's) `participants`.
fn participant_in(message: &Value, id: &Value) -> Value {
    message["participants"]
        .as_array()
        .and_then(|list| list.iter().find(|p| &p["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("{id} not in {message}"))
}

/// The next `quality` message `client` gets, skipping others.
async fn next_quality(client: &mut Client) -> Value {
    loop {
        let message = client.recv().await;
        if message["type"] == "quality" {
            return message;
        }
    }
}

/// The subscribe connection offered tracks first (the only receiver's), once it exists.
async fn waitable_subscriber(server: &support::Server) -> SessionId {
    for _ in 0..100 {
        let offered = server.media.calls().iter().find_map(|c| match c {
            Call::OfferTracks { subscriber, tracks } if !tracks.is_empty() => Some(*subscriber),
            _ => None,
        });
        if let Some(session) = offered {
            return session;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no subscribe connection was offered tracks");
}
