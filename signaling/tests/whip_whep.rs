//! WHIP (RFC 9725) and WHEP over real HTTP/1.1 connections, with a room protocol client
//! watching the room, against a media plane that records calls (see support/).
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
    let cases: Vec<Case<'_>> = vec![
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

const FRAG: (&str, &str) = ("Content-Type", "application/trickle-ice-sdpfrag");

/// Why, headers, body and the expected status of a PATCH.
type PatchCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16);

/// A fragment with credentials, one m-section (`mid`) and a candidate.
fn fragment(ufrag: &str, pwd: &str, mid: &str) -> String {
    format!(
        "a=ice-options:trickle ice2\r\na=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
         a=mid:{mid}\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n\
         a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0\r\n\
         a=end-of-candidates\r\n"
    )
}

async fn whip_resource(server: &support::Server, room: &str) -> (String, String) {
    let created = http(
        server.addr,
        "POST",
        &format!("/whip/{room}"),
        &[SDP],
        offer(&["audio", "video"]).as_bytes(),
    )
    .await;
    assert_eq!(created.status, 201);
    (
        created.header("location").unwrap().to_owned(),
        created.header("etag").unwrap().to_owned(),
    )
}

#[tokio::test]
async fn patch_trickles_candidates_and_restarts_ice_with_new_etags() {
    use support::{OFFER_PWD, OFFER_UFRAG};
    let server = start(SignalingConfig::default()).await;
    let (location, etag) = whip_resource(&server, "r").await;
    let trickle = fragment(OFFER_UFRAG, OFFER_PWD, "0");

    // Candidates of the current ICE session: 204, with or without a matching If-Match.
    for if_match in [None, Some(etag.as_str()), Some("*"), Some("\"x\", ")] {
        let mut headers = vec![FRAG];
        if let Some(tag) = if_match {
            headers.push(("If-Match", tag));
        }
        let response = http(
            server.addr,
            "PATCH",
            &location,
            &headers,
            trickle.as_bytes(),
        )
        .await;
        let expected = if if_match == Some("\"x\", ") {
            412
        } else {
            204
        };
        assert_eq!(response.status, expected, "If-Match {if_match:?}");
        if expected == 204 {
            assert!(response.body.is_empty());
            assert_eq!(response.header("content-type"), None);
        } else {
            assert!(
                response.json()["error"]
                    .as_str()
                    .unwrap()
                    .contains("If-Match")
            );
        }
    }
    // A different entity-tag, or a weak one, fails the precondition before anything else.
    for tag in ["\"0123456789abcdef\"", &format!("W/{etag}")] {
        let refused = http(
            server.addr,
            "PATCH",
            &location,
            &[FRAG, ("If-Match", tag)],
            b"not even a fragment",
        )
        .await;
        assert_eq!(refused.status, 412, "{tag}");
    }

    // New credentials: an ICE restart, answered with Sluice's new ones and a new ETag.
    let new_pwd = "newpeerpasswordnewpeer";
    let restart = fragment("peer2", new_pwd, "0");
    let restarted = http(
        server.addr,
        "PATCH",
        &location,
        &[FRAG, ("If-Match", "*")],
        restart.as_bytes(),
    )
    .await;
    assert_eq!(restarted.status, 200);
    assert_eq!(
        restarted.header("content-type"),
        Some("application/trickle-ice-sdpfrag")
    );
    let new_etag = restarted.header("etag").unwrap().to_owned();
    assert!(new_etag.starts_with('"') && new_etag.ends_with('"'));
    assert_ne!(new_etag, etag, "a new ICE session has a new entity-tag");
    let body = String::from_utf8(restarted.body.clone()).unwrap();
    assert_eq!(
        restarted.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    for line in [
        "a=ice-ufrag:Srst1",
        "a=ice-pwd:restartpwd10000000000000",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:0",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 3478 typ host",
        "a=end-of-candidates",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} in {body}");
    }
    let session = server
        .media
        .calls()
        .iter()
        .find_map(|c| match c {
            Call::Publish { session, .. } => Some(*session),
            _ => None,
        })
        .unwrap();
    assert!(server.media.calls().contains(&Call::RestartIce {
        session,
        ufrag: "peer2".into(),
        pwd: new_pwd.into(),
    }));

    // The old entity-tag no longer matches; the new one does, with the new credentials.
    let retrickle = fragment("peer2", new_pwd, "0");
    let stale = http(
        server.addr,
        "PATCH",
        &location,
        &[FRAG, ("If-Match", &etag)],
        retrickle.as_bytes(),
    )
    .await;
    assert_eq!(stale.status, 412);
    let fresh = http(
        server.addr,
        "PATCH",
        &location,
        &[FRAG, ("If-Match", &new_etag)],
        retrickle.as_bytes(),
    )
    .await;
    assert_eq!(fresh.status, 204);

    // Fragments that are wrong, or cannot be applied.
    let bad_ufrag = fragment("abc", new_pwd, "0");
    let short_pwd = fragment("peer3", "tooshort", "0");
    let unknown_mid = fragment("peer2", new_pwd, "7");
    let same_ufrag_new_pwd = fragment("peer2", "anotherpasswordanother", "0");
    let same_pwd = fragment("peer3", new_pwd, "0");
    let ufrag_only = "a=ice-ufrag:peer4\r\n".to_owned();
    let cases: Vec<PatchCase<'_>> = vec![
        ("bad ufrag", vec![FRAG], bad_ufrag.as_bytes(), 400),
        ("short pwd", vec![FRAG], short_pwd.as_bytes(), 400),
        ("not a fragment", vec![FRAG], b"hello world", 400),
        ("not UTF-8", vec![FRAG], b"a=ice-ufrag:\xff\xfe", 400),
        (
            "same ufrag, new pwd",
            vec![FRAG],
            same_ufrag_new_pwd.as_bytes(),
            400,
        ),
        ("restart, same pwd", vec![FRAG], same_pwd.as_bytes(), 400),
        (
            "restart without pwd",
            vec![FRAG],
            ufrag_only.as_bytes(),
            400,
        ),
        ("unknown mid", vec![FRAG], unknown_mid.as_bytes(), 422),
        ("SDP body", vec![SDP], retrickle.as_bytes(), 415),
        ("no content type", vec![], retrickle.as_bytes(), 415),
    ];
    for (why, headers, body, status) in cases {
        let response = http(server.addr, "PATCH", &location, &headers, body).await;
        assert_eq!(response.status, status, "{why}");
        assert!(
            response.json()["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{why}"
        );
    }
    let restarts = |media: &support::RecordingMedia| {
        media
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::RestartIce { .. }))
            .count()
    };
    assert_eq!(
        restarts(&server.media),
        1,
        "refused fragments restart nothing"
    );

    // WHEP resources restart the same way.
    let played = http(
        server.addr,
        "POST",
        "/whep/r",
        &[SDP],
        offer(&["audio", "video"]).as_bytes(),
    )
    .await;
    assert_eq!(played.status, 201);
    let player = played.header("location").unwrap().to_owned();
    let player_restart = http(
        server.addr,
        "PATCH",
        &player,
        &[FRAG, ("If-Match", played.header("etag").unwrap())],
        fragment("viewer2", new_pwd, "1").as_bytes(),
    )
    .await;
    assert_eq!(player_restart.status, 200);
    assert!(String::from_utf8_lossy(&player_restart.body).contains("a=ice-ufrag:Srst2"));

    // Gone or never there: 404.
    assert_eq!(
        http(server.addr, "DELETE", &location, &[], b"")
            .await
            .status,
        200
    );
    for path in [location.clone(), format!("/whip/r/{}", "0".repeat(32))] {
        let gone = http(server.addr, "PATCH", &path, &[FRAG], restart.as_bytes()).await;
        assert_eq!(gone.status, 404, "{path}");
        assert!(gone.json()["error"].is_string());
    }
    assert_eq!(restarts(&server.media), 2);
}

#[tokio::test]
async fn methods_status_codes_and_cors_follow_rfc_9725() {
    let server = start(SignalingConfig::default()).await;
    let (location, _) = whip_resource(&server, "r").await;
    let created = http(
        server.addr,
        "POST",
        "/whip/r2",
        &[SDP],
        offer(&["video"]).as_bytes(),
    )
    .await;
    assert_eq!(
        created.header("accept-patch"),
        Some("application/trickle-ice-sdpfrag")
    );
    let exposed = created.header("access-control-expose-headers").unwrap();
    for name in ["Location", "ETag", "Link", "Accept-Patch"] {
        assert!(exposed.contains(name), "{name} exposed: {exposed}");
    }
    assert!(
        created.header_all("link").is_empty(),
        "no ICE servers configured"
    );

    // 405 with Allow for what a URL does not take.
    for (method, path, allow) in [
        ("GET", "/whip/r", "POST, OPTIONS"),
        ("PUT", "/whip/r", "POST, OPTIONS"),
        ("DELETE", "/whip/r", "POST, OPTIONS"),
        ("GET", &*location, "PATCH, DELETE, OPTIONS"),
        ("PUT", &*location, "PATCH, DELETE, OPTIONS"),
        ("POST", &*location, "PATCH, DELETE, OPTIONS"),
        ("GET", "/whep/r", "POST, OPTIONS"),
        ("PATCH", "/whep/r/p1", "POST, OPTIONS"),
        ("GET", "/whep/r/p1/token", "PATCH, DELETE, OPTIONS"),
    ] {
        let refused = http(server.addr, method, path, &[], b"").await;
        assert_eq!(refused.status, 405, "{method} {path}");
        assert_eq!(refused.header("allow"), Some(allow), "{method} {path}");
        assert!(refused.json()["error"].is_string());
        assert_eq!(refused.header("access-control-allow-origin"), Some("*"));
    }

    // Preflight: the endpoint takes SDP, the resource fragments.
    let endpoint = http(
        server.addr,
        "OPTIONS",
        "/whip/r",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    )
    .await;
    assert_eq!(endpoint.status, 204);
    assert_eq!(
        endpoint.header("access-control-allow-methods"),
        Some("POST, PATCH, DELETE, OPTIONS")
    );
    assert_eq!(
        endpoint.header("access-control-allow-headers"),
        Some("Content-Type, If-Match, Authorization")
    );
    assert_eq!(endpoint.header("accept-post"), Some("application/sdp"));
    assert!(endpoint.body.is_empty());
    let resource = http(server.addr, "OPTIONS", &location, &[], b"").await;
    assert_eq!(resource.status, 204);
    assert_eq!(
        resource.header("accept-patch"),
        Some("application/trickle-ice-sdpfrag")
    );
    assert!(resource.header("access-control-expose-headers").is_some());

    // 415 for a POST that is not SDP; 400 for SDP that does not parse.
    let text = http(
        server.addr,
        "POST",
        "/whep/r",
        &[("Content-Type", "text/plain")],
        offer(&["video"]).as_bytes(),
    )
    .await;
    assert_eq!(text.status, 415);
    assert_eq!(
        http(server.addr, "POST", "/whip/r3", &[SDP], b"nonsense")
            .await
            .status,
        400
    );

    // DELETE: 200 with an empty body that says so.
    let deleted = http(server.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.header("content-length"), Some("0"));
    assert_eq!(deleted.header("content-type"), None);
    assert!(deleted.body.is_empty());
    // A refused DELETE is a JSON error.
    let again = http(server.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(again.status, 404);
    assert!(again.json()["error"].is_string());
}

#[tokio::test]
async fn link_headers_announce_the_configured_ice_servers() {
    let config = SignalingConfig {
        ice_servers: vec![
            "stun:stun.example.org:3478".parse().unwrap(),
            "turn:turn.example.org:3478?transport=udp;username=sluice;credential=s3cret"
                .parse()
                .unwrap(),
        ],
        ..SignalingConfig::default()
    };
    let server = start(config).await;
    let expected = [
        "<stun:stun.example.org:3478>; rel=\"ice-server\"",
        "<turn:turn.example.org:3478?transport=udp>; rel=\"ice-server\"; username=\"sluice\"; \
         credential=\"s3cret\"; credential-type=\"password\"",
    ];
    let created = http(
        server.addr,
        "POST",
        "/whip/r",
        &[SDP],
        offer(&["video"]).as_bytes(),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.header_all("link"), expected);
    let played = http(
        server.addr,
        "POST",
        "/whep/r",
        &[SDP],
        offer(&["video"]).as_bytes(),
    )
    .await;
    assert_eq!(played.status, 201);
    assert_eq!(played.header_all("link"), expected);
    let options = http(server.addr, "OPTIONS", "/whip/r", &[], b"").await;
    assert_eq!(options.status, 204);
    assert_eq!(options.header_all("link"), expected);
    // Not on refusals, and not on the resource.
    let refused = http(server.addr, "POST", "/whip/r", &[], b"").await;
    assert_eq!(refused.status, 415);
    assert!(refused.header_all("link").is_empty());
    let location = created.header("location").unwrap();
    let resource = http(server.addr, "OPTIONS", location, &[], b"").await;
    assert!(resource.header_all("link").is_empty());
}
