//! WHIP (RFC 9725) and WHEP over real HTTP/1.1 connections, with a room protocol client
//! watching the room, against a media plane that records calls (see support/).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::json;
use signaling::{MediaEvent, SignalingConfig};
use support::{Call, Client, http, offer, start};

/// Method, path, headers, body and the expected status.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16);

const SDP: (&str, &str) = ("Content-Type", "application/sdp");

#[tokio::test]
async fn a_whip_publisher_joins_the_room_and_whep_plays_it() {
    let server = start(SignalingConfig::default()).await;
    let (mut viewer, _) = Client::join(server.addr, "stage one", "Viewer").await;

    let created = http(
        server.addr,
        "POST",
        "/whip/stage%20one?name=Cam+1",
        &[SDP],
        offer(&["audio", "video"]).as_bytes(),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.header("content-type"), Some("application/sdp"));
    assert!(created.body.starts_with(b"v=0"));
    assert_eq!(created.header("access-control-allow-origin"), Some("*"));
    assert!(
        created
            .header("access-control-expose-headers")
            .unwrap()
            .contains("Location")
    );
    let location = created.header("location").unwrap().to_owned();
    let token = location
        .strip_prefix("/whip/stage%20one/")
        .expect("Location under the room");
    assert_eq!(token.len(), 32, "128-bit token in hex");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let etag = created.header("etag").unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"'));

    // The WHIP publisher is a participant that the room protocol sees, with its tracks.
    let joined = viewer.expect("participant_joined").await;
    assert_eq!(joined["participant"]["name"], "Cam 1");
    assert_eq!(joined["participant"]["tracks"].as_array().unwrap().len(), 2);
    let publisher_id = joined["participant"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("x-sluice-participant"),
        Some(publisher_id.as_str())
    );
    let subscribe = viewer.expect("subscribe").await;
    assert_eq!(subscribe["tracks"].as_object().unwrap().len(), 2);
    let whip_session = server
        .media
        .calls()
        .iter()
        .find_map(|c| match c {
            Call::Publish { session, room, .. } if room == "stage one" => Some(*session),
            _ => None,
        })
        .unwrap();

    // CORS preflight and trickle.
    let preflight = http(server.addr, "OPTIONS", "/whip/stage%20one", &[], b"").await;
    assert_eq!(preflight.status, 204);
    assert!(
        preflight
            .header("access-control-allow-methods")
            .unwrap()
            .contains("PATCH")
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("Content-Type")
    );
    let frag = ("Content-Type", "application/trickle-ice-sdpfrag");
    let candidate = b"a=ice-ufrag:peer\r\na=ice-pwd:peerpasswordpeerpasswd\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n";
    assert_eq!(
        http(server.addr, "PATCH", &location, &[frag], candidate)
            .await
            .status,
        204
    );
    assert_eq!(
        http(server.addr, "PATCH", &location, &[SDP], candidate)
            .await
            .status,
        415
    );
    let forged = format!("/whip/stage%20one/{}", "0".repeat(32));
    assert_eq!(
        http(server.addr, "PATCH", &forged, &[frag], candidate)
            .await
            .status,
        404
    );
    assert_eq!(
        http(server.addr, "DELETE", &forged, &[], b"").await.status,
        404
    );

    // WHEP: the room's first publisher, or a named participant.
    let played = http(
        server.addr,
        "POST",
        "/whep/stage%20one",
        &[SDP],
        offer(&["audio", "video"]).as_bytes(),
    )
    .await;
    assert_eq!(
        played.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&played.body)
    );
    assert!(played.body.starts_with(b"v=0"));
    let player = played.header("location").unwrap().to_owned();
    assert!(player.starts_with(&format!("/whep/stage%20one/{publisher_id}/")));
    let named = http(
        server.addr,
        "POST",
        &format!("/whep/stage%20one/{publisher_id}"),
        &[SDP],
        offer(&["video"]).as_bytes(),
    )
    .await;
    assert_eq!(named.status, 201);
    let plays = server
        .media
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Play { publisher, .. } if *publisher == whip_session))
        .count();
    assert_eq!(plays, 2);
    let viewer_id = {
        let (_, joined) = Client::join(server.addr, "elsewhere", "x").await;
        joined["id"].as_str().unwrap().to_owned()
    };
    for (path, why) in [
        ("/whep/nowhere", "unknown room"),
        ("/whep/stage%20one/p999", "unknown participant"),
        ("/whep/stage%20one/junk", "malformed participant"),
        (
            &*format!("/whep/stage%20one/{viewer_id}"),
            "participant of another room",
        ),
    ] {
        let refused = http(
            server.addr,
            "POST",
            path,
            &[SDP],
            offer(&["video"]).as_bytes(),
        )
        .await;
        assert_eq!(refused.status, 404, "{why}");
        assert!(refused.json()["error"].is_string(), "{why}");
    }
    assert_eq!(
        http(server.addr, "DELETE", &player, &[], b"").await.status,
        200
    );
    assert_eq!(
        http(server.addr, "DELETE", &player, &[], b"").await.status,
        404
    );
    // A WHEP token does not end a WHIP session and vice versa.
    let named_location = named.header("location").unwrap();
    let named_token = named_location.rsplit('/').next().unwrap();
    assert_eq!(
        http(
            server.addr,
            "DELETE",
            &format!("/whip/stage%20one/{named_token}"),
            &[],
            b""
        )
        .await
        .status,
        404
    );

    // DELETE on the WHIP resource: the participant leaves the room.
    assert_eq!(
        http(server.addr, "DELETE", &location, &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(
        viewer.expect("participant_left").await["id"],
        publisher_id.as_str()
    );
    assert!(server.media.calls().contains(&Call::Close {
        session: whip_session
    }));
    assert_eq!(
        http(server.addr, "DELETE", &location, &[], b"")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn bad_whip_and_whep_requests_get_4xx_with_json() {
    let server = start(SignalingConfig::default()).await;
    let good = offer(&["video"]);
    let huge = format!("{good}{}", "a=x\r\n".repeat(20_000));
    let rejected = format!("{good}a=reject\r\n");
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/whip/r",
            vec![("Content-Type", "text/plain")],
            good.as_bytes(),
            415,
        ),
        ("POST", "/whip/r", vec![], good.as_bytes(), 415),
        ("POST", "/whip/r", vec![SDP], huge.as_bytes(), 400),
        ("POST", "/whip/r", vec![SDP], b"hello", 400),
        ("POST", "/whip/r", vec![SDP], b"v=0\r\n\xff\xfe", 400),
        ("POST", "/whip/r", vec![SDP], rejected.as_bytes(), 400),
        ("POST", "/whip/r?name=", vec![SDP], good.as_bytes(), 400),
        ("POST", "/whip/r?name=%01", vec![SDP], good.as_bytes(), 400),
        ("POST", "/whip/a%0Ab", vec![SDP], good.as_bytes(), 400),
        ("POST", "/whip/%ZZ", vec![SDP], good.as_bytes(), 404),
        ("POST", "/whep/r", vec![SDP], good.as_bytes(), 404),
        ("POST", "/whep/r", vec![SDP], b"nonsense", 400),
        ("GET", "/whip/r", vec![], b"", 405),
    ];
    for (method, path, headers, body, status) in cases {
        let response = http(server.addr, method, path, &headers, body).await;
        assert_eq!(response.status, status, "{method} {path}");
        assert!(
            response.json()["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{method} {path}"
        );
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    }
    assert!(
        server
            .media
            .calls()
            .iter()
            .all(|c| !matches!(c, Call::Publish { .. })),
        "nothing reached a session"
    );
    // The service is still fine.
    assert_eq!(
        http(server.addr, "POST", "/whip/r", &[SDP], good.as_bytes())
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn whip_respects_the_room_limits_and_media_session_ends() {
    let config = SignalingConfig {
        max_participants: 1,
        ..SignalingConfig::default()
    };
    let server = start(config).await;
    let first = http(
        server.addr,
        "POST",
        "/whip/r",
        &[SDP],
        offer(&["video"]).as_bytes(),
    )
    .await;
    assert_eq!(first.status, 201);
    let full = http(
        server.addr,
        "POST",
        "/whip/r",
        &[SDP],
        offer(&["video"]).as_bytes(),
    )
    .await;
    assert_eq!(full.status, 409);
    assert_eq!(full.json()["error"], "the room is full");

    // The publisher's session ends in the media plane: it leaves and its resource is gone.
    let session = server
        .media
        .calls()
        .iter()
        .find_map(|c| match c {
            Call::Publish { session, .. } => Some(*session),
            _ => None,
        })
        .unwrap();
    server
        .events
        .send(MediaEvent::SessionEnded { session })
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let location = first.header("location").unwrap();
    assert_eq!(
        http(server.addr, "DELETE", location, &[], b"").await.status,
        404
    );
    let (_, joined) = Client::join(server.addr, "r", "after").await;
    assert_eq!(joined["participants"], json!([]));
}
