//! ICE restart over real UDP on loopback: a webrtc-rs publisher, then its webrtc-rs
//! subscriber, restart ICE with new credentials (`RTCOfferOptions { ice_restart: true }`);
//! Sluice's side restarts through `Sfu::restart_ice` (what a WHIP or WHEP `PATCH` does), the
//! peer applies Sluice's new credentials as its remote description, and media keeps reaching
//! the subscriber from the same two sessions, none of which ends. Checks on the old
//! credentials are refused afterwards, checks on the new ones answered. Last, the publisher
//! restarts with a renegotiated offer (`Sfu::republish`, the room protocol's way).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, ensure};
use ice_lite::{BindingRequest, Class, IntegrityKey, StunMessage};
use server::{MediaConfig, SessionId, Sfu};
use support::media::{Kind, MediaPlan, send_plan};
use support::peer::Peer;
use support::room::{Publisher, close_room, connect_publisher, connect_subscribers};
use support::{sdp, wait_until};
use tokio::net::UdpSocket;
use webrtc::peer_connection::RTCIceConnectionState;

/// `sdp` with its `a=ice-ufrag` and `a=ice-pwd` values replaced.
fn with_credentials(sdp: &str, ufrag: &str, pwd: &str) -> String {
    sdp.split_inclusive('\n')
        .map(|line| {
            if line.starts_with("a=ice-ufrag:") {
                format!("a=ice-ufrag:{ufrag}\r\n")
            } else if line.starts_with("a=ice-pwd:") {
                format!("a=ice-pwd:{pwd}\r\n")
            } else {
                line.to_owned()
            }
        })
        .collect()
}

/// What a restart changed: the credentials before and after, on both sides.
struct Restarted {
    old_local: (String, String),
    new_local: (String, String),
    new_remote: (String, String),
    /// The peer's ICE states up to the restart.
    ice_mark: usize,
}

/// Restarts ICE on `peer` (the offerer of `session`, whose current answer is `answer`) and
/// on Sluice's side; returns the answer with Sluice's new credentials, once applied.
async fn restart(
    sfu: &Sfu,
    peer: &Peer,
    session: SessionId,
    answer: &str,
) -> anyhow::Result<(String, Restarted)> {
    let (old_ufrag, old_pwd) = sdp::ice_credentials(answer).context("the answer's ICE")?;
    let ice_mark = peer.ice_states().len();
    let offer = peer.restart_offer().await?;
    let (ufrag, pwd) = sdp::ice_credentials(&offer).context("the restart offer's ICE")?;
    let local = sfu
        .restart_ice(session, ufrag, pwd)
        .await
        .map_err(|error| anyhow!("restart_ice: {error}"))?;
    eprintln!(
        "[{}] ICE restart: peer ufrag {ufrag}, Sluice's {} -> {}",
        peer.name, old_ufrag, local.ufrag
    );
    ensure!(
        local.ufrag != old_ufrag && local.pwd != old_pwd,
        "new local credentials"
    );
    ensure!(
        local.ufrag.as_bytes().first() == old_ufrag.as_bytes().first(),
        "the new ufrag keeps the worker's first character"
    );
    ensure!(
        local.candidates.iter().any(|c| c.contains(" typ host")),
        "the restart answers with host candidates: {:?}",
        local.candidates
    );
    let new_answer = with_credentials(answer, &local.ufrag, &local.pwd);
    peer.accept_answer(&new_answer).await?;
    Ok((
        new_answer,
        Restarted {
            old_local: (old_ufrag.to_owned(), old_pwd.to_owned()),
            new_local: (local.ufrag.clone(), local.pwd.clone()),
            new_remote: (ufrag.to_owned(), pwd.to_owned()),
            ice_mark,
        },
    ))
}

/// Sends one binding request from a fresh socket; whether a success response came back.
async fn check_answered(
    media: SocketAddr,
    local: &(String, String),
    remote_ufrag: &str,
) -> anyhow::Result<bool> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let mut request = vec![0; 256];
    let username = format!("{}:{remote_ufrag}", local.0);
    let len = BindingRequest {
        username: &username,
        priority: 1_845_501_695,
        ice_controlling: Some(0x0102_0304_0506_0708),
        ice_controlled: None,
        use_candidate: false,
    }
    .write(
        &mut request,
        &[9; 12],
        &IntegrityKey::new(local.1.as_bytes()),
    )
    .map_err(|error| anyhow!("writing a binding request: {error}"))?;
    socket.send_to(&request[..len], media).await?;
    let mut response = [0u8; 512];
    let received =
        tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut response)).await;
    let Ok(Ok(n)) = received else {
        return Ok(false);
    };
    let message = StunMessage::parse(&response[..n]).map_err(|e| anyhow!("{e}"))?;
    Ok(message.class() == Class::SuccessResponse
        && message
            .verify_integrity(&IntegrityKey::new(local.1.as_bytes()))
            .is_ok())
}

/// After a restart: the peer's ICE connects again on the new credentials, media keeps
/// reaching `receiver`, the old credentials are refused and the new ones answered.
async fn after_restart(
    sfu: &Sfu,
    peer: &Peer,
    receiver: &Peer,
    restarted: &Restarted,
) -> anyhow::Result<()> {
    wait_until(
        Duration::from_secs(20),
        "ICE to connect again after the restart",
        || {
            peer.ice_states()
                .get(restarted.ice_mark..)
                .is_some_and(|states| {
                    states.iter().any(|s| {
                        matches!(
                            s,
                            RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
                        )
                    })
                })
        },
    )
    .await
    .with_context(|| format!("ICE states of {}: {:?}", peer.name, peer.ice_states()))?;
    let before = receiver.received_count(Kind::Video);
    // 90 video packets a second: a second and a half of them after the restart.
    wait_until(Duration::from_secs(10), "video after the restart", || {
        receiver.received_count(Kind::Video) >= before + 135
    })
    .await?;
    ensure!(
        !check_answered(
            sfu.media_addr(),
            &restarted.old_local,
            &restarted.new_remote.0
        )
        .await?,
        "a check on Sluice's old credentials was answered"
    );
    ensure!(
        check_answered(
            sfu.media_addr(),
            &restarted.new_local,
            &restarted.new_remote.0
        )
        .await?,
        "a check on Sluice's new credentials was not answered"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restarts_keep_media_flowing_in_the_same_sessions() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let mut ended = sfu.take_events().context("the media events")?;
    let Publisher {
        peer: publisher,
        session: publisher_session,
        answer: publisher_answer,
        audio,
        video,
        ..
    } = connect_publisher(&sfu, "restarts", None).await?;
    let subscribers = connect_subscribers(&sfu, "restarts", publisher_session, 1).await?;
    let subscriber = &subscribers[0];
    // About 20 s of media, through the three restarts.
    let plan = MediaPlan::STANDARD.with_tail(Duration::from_secs(17));
    let sending = tokio::spawn(async move { send_plan(&plan, &audio, &video).await });
    wait_until(Duration::from_secs(10), "video before the restart", || {
        subscriber.peer.received_count(Kind::Video) >= 30
    })
    .await?;

    // The publisher restarts (a WHIP PATCH with new credentials).
    let (_, restarted) = restart(&sfu, &publisher, publisher_session, &publisher_answer).await?;
    after_restart(&sfu, &publisher, &subscriber.peer, &restarted).await?;

    // The subscriber restarts (a WHEP PATCH) while the publisher keeps sending.
    let (_, restarted) = restart(
        &sfu,
        &subscriber.peer,
        subscriber.session,
        &subscriber.answer,
    )
    .await?;
    after_restart(&sfu, &subscriber.peer, &subscriber.peer, &restarted).await?;

    // The publisher restarts once more with a renegotiated offer (the room protocol's way):
    // new credentials in an offer restart Sluice's side as well, and its answer has new ones.
    let old_answer = publisher_answer.clone();
    let (old_ufrag, old_pwd) = sdp::ice_credentials(&old_answer).context("the answer's ICE")?;
    let ice_mark = publisher.ice_states().len();
    let offer = publisher.restart_offer().await?;
    let renegotiated = sfu
        .republish(publisher_session, &offer)
        .await
        .map_err(|error| anyhow!("republish: {error}"))?;
    ensure!(
        renegotiated.session == publisher_session,
        "the same session"
    );
    let (new_ufrag, new_pwd) =
        sdp::ice_credentials(&renegotiated.sdp).context("the new answer's ICE")?;
    ensure!(
        new_ufrag != old_ufrag && new_pwd != old_pwd,
        "new credentials in the answer"
    );
    publisher.accept_answer(&renegotiated.sdp).await?;
    let (peer_ufrag, _) = sdp::ice_credentials(&offer).context("the offer's ICE")?;
    let restarted = Restarted {
        old_local: (old_ufrag.to_owned(), old_pwd.to_owned()),
        new_local: (new_ufrag.to_owned(), new_pwd.to_owned()),
        new_remote: (peer_ufrag.to_owned(), String::new()),
        ice_mark,
    };
    after_restart(&sfu, &publisher, &subscriber.peer, &restarted).await?;

    // One session each throughout: none ended, and the peers never failed.
    ensure!(
        !std::iter::from_fn(|| ended.try_recv().ok())
            .any(|event| matches!(event, server::MediaEvent::SessionEnded { .. })),
        "a session ended during the restarts"
    );
    let stats = sfu.stats();
    eprintln!("{stats:?}");
    ensure!(stats.sessions == 2, "sessions: {}", stats.sessions);
    ensure!(
        stats.dtls_connected == 2,
        "DTLS handshakes: {}",
        stats.dtls_connected
    );
    for peer in [&publisher, &subscriber.peer] {
        ensure!(
            !peer.ice_states().contains(&RTCIceConnectionState::Failed),
            "{}'s ICE failed: {:?}",
            peer.name,
            peer.ice_states()
        );
    }
    sending.await??;
    close_room(&sfu, (&publisher, publisher_session), subscribers).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_ice_refuses_bad_credentials_and_unknown_sessions() -> anyhow::Result<()> {
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let unknown = sfu
        .restart_ice(SessionId(0x4200), "abcd", "abcdefghijklmnopqrstuvwx")
        .await;
    ensure!(
        unknown == Err(server::SfuError::UnknownSession),
        "{unknown:?}"
    );
    let subscriber = sfu
        .create_subscriber("r")
        .await
        .map_err(|e| anyhow!("{e}"))?;
    // Sluice offered and nothing answered yet: no ICE session to restart.
    let early = sfu
        .restart_ice(subscriber, "abcd", "abcdefghijklmnopqrstuvwx")
        .await;
    ensure!(
        matches!(early, Err(server::SfuError::BadOffer(_))),
        "{early:?}"
    );
    let bad = sfu.restart_ice(subscriber, "ab", "short").await;
    ensure!(matches!(bad, Err(server::SfuError::BadOffer(_))), "{bad:?}");
    Ok(())
}

/// The room protocol's subscriber connection, which Sluice offers: Sluice restarts ICE with a
/// new offer (`Sfu::offer_tracks_with_ice_restart`), the peer answers with new credentials of
/// its own, and media keeps coming on the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_offered_connection_restarts_ice_with_a_new_offer() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let mut ended = sfu.take_events().context("the media events")?;
    let room = "server-offers";
    let Publisher {
        peer: publisher,
        session: publisher_session,
        tracks,
        audio,
        video,
        ..
    } = connect_publisher(&sfu, room, None).await?;
    let viewer = Peer::new("viewer").await?;
    let session = sfu
        .create_subscriber(room)
        .await
        .map_err(|e| anyhow!("create_subscriber: {e}"))?;
    let offer = sfu
        .offer_tracks(session, &tracks)
        .await
        .map_err(|e| anyhow!("offer_tracks: {e}"))?;
    viewer.apply_offer(&offer.sdp).await?;
    let answer = viewer.complete_answer().await?;
    sfu.answer_subscriber(session, &answer)
        .await
        .map_err(|e| anyhow!("answer_subscriber: {e}"))?;
    viewer.connected(support::room::CONNECT_LIMIT).await?;
    let plan = MediaPlan::STANDARD.with_tail(Duration::from_secs(7));
    let sending = tokio::spawn(async move { send_plan(&plan, &audio, &video).await });
    wait_until(Duration::from_secs(10), "video before the restart", || {
        viewer.received_count(Kind::Video) >= 30
    })
    .await?;

    let (old_ufrag, old_pwd) = sdp::ice_credentials(&offer.sdp).context("the offer's ICE")?;
    let ice_mark = viewer.ice_states().len();
    let reoffer = sfu
        .offer_tracks_with_ice_restart(session, &tracks)
        .await
        .map_err(|e| anyhow!("offer_tracks_with_ice_restart: {e}"))?;
    let (new_ufrag, new_pwd) = sdp::ice_credentials(&reoffer.sdp).context("the re-offer's ICE")?;
    ensure!(
        new_ufrag != old_ufrag && new_pwd != old_pwd,
        "new credentials offered"
    );
    // Offered again before the answer: the same new credentials.
    let again = sfu
        .offer_tracks_with_ice_restart(session, &tracks)
        .await
        .map_err(|e| anyhow!("offer_tracks_with_ice_restart: {e}"))?;
    ensure!(
        sdp::ice_credentials(&again.sdp) == Some((new_ufrag, new_pwd)),
        "a second restart offer before the answer changed the credentials"
    );
    viewer.apply_offer(&again.sdp).await?;
    let reanswer = viewer.complete_answer().await?;
    let (answer_ufrag, _) = sdp::ice_credentials(&answer).context("the answer's ICE")?;
    let (peer_ufrag, _) = sdp::ice_credentials(&reanswer).context("the re-answer's ICE")?;
    ensure!(
        peer_ufrag != answer_ufrag,
        "the peer answered with new credentials"
    );
    sfu.answer_subscriber(session, &reanswer)
        .await
        .map_err(|e| anyhow!("answer_subscriber: {e}"))?;
    let restarted = Restarted {
        old_local: (old_ufrag.to_owned(), old_pwd.to_owned()),
        new_local: (new_ufrag.to_owned(), new_pwd.to_owned()),
        new_remote: (peer_ufrag.to_owned(), String::new()),
        ice_mark,
    };
    after_restart(&sfu, &viewer, &viewer, &restarted).await?;
    ensure!(
        !std::iter::from_fn(|| ended.try_recv().ok())
            .any(|event| matches!(event, server::MediaEvent::SessionEnded { .. })),
        "a session ended during the restart"
    );
    ensure!(sfu.stats().sessions == 2, "two sessions");
    sending.await??;
    viewer.close().await;
    sfu.close(session).await;
    publisher.close().await;
    sfu.close(publisher_session).await;
    Ok(())
}

/// One HTTP/1.1 request on a fresh connection: status, headers (names in lower case), body.
async fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, Vec<(String, String)>, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    support::within(Duration::from_secs(10), "the HTTP response", async {
        stream.read_to_end(&mut raw).await
    })
    .await??;
    let raw = String::from_utf8(raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").context("a header end")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .context("a status line")?
        .parse()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok((status, headers, body.to_owned()))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The RFC 9725 4.4 restart fragment of an ICE-restarting offer: its first m-section's
/// m-line and mid, the new credentials and that section's candidates.
fn restart_fragment(offer: &str) -> anyhow::Result<String> {
    let (ufrag, pwd) = sdp::ice_credentials(offer).context("the offer's ICE")?;
    let mut sections = offer.split("\r\nm=").skip(1);
    let first = sections.next().context("an m-section")?;
    let mut lines = first.lines();
    let m_line = lines.next().context("an m-line")?;
    let mut fragment = format!("a=ice-options:trickle ice2\r\nm={m_line}\r\n");
    for line in lines {
        if line.starts_with("a=mid:") || line.starts_with("a=candidate:") {
            fragment.push_str(&format!("{line}\r\n"));
        }
    }
    fragment.push_str(&format!(
        "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=end-of-candidates\r\n"
    ));
    Ok(fragment)
}

/// The whole way: the real signaling service over HTTP in front of the real media plane; a
/// webrtc-rs WHIP publisher and WHEP player; the publisher restarts ICE with a `PATCH`
/// (`If-Match: *`, the RFC 9725 fragment of its restart offer), applies the `200`
/// fragment's credentials, and the player keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_patch_restarts_ice_end_to_end() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = std::sync::Arc::new(Sfu::start(MediaConfig::loopback())?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = signaling::SignalingConfig {
        ice_servers: vec![
            "stun:stun.example.org:3478"
                .parse()
                .map_err(|e| anyhow!("{e}"))?,
        ],
        ..signaling::SignalingConfig::default()
    };
    tokio::spawn(signaling::serve(
        listener,
        std::sync::Arc::clone(&sfu),
        config,
        async {
            let _ = stopped.await;
        },
    ));
    let sdp_type = ("Content-Type", "application/sdp");

    let publisher = Peer::new("whip").await?;
    let mut audio = publisher
        .add_send_track(Kind::Audio, support::room::PUBLISHER_AUDIO_SSRC)
        .await?;
    let mut video = publisher
        .add_send_track(Kind::Video, support::room::PUBLISHER_VIDEO_SSRC)
        .await?;
    let offer = publisher.complete_offer().await?;
    let (status, headers, answer) = http(address, "POST", "/whip/e2e", &[sdp_type], &offer).await?;
    ensure!(status == 201, "WHIP POST: {status} {answer}");
    ensure!(
        header(&headers, "link") == Some("<stun:stun.example.org:3478>; rel=\"ice-server\""),
        "{headers:?}"
    );
    let location = header(&headers, "location").context("Location")?.to_owned();
    let etag = header(&headers, "etag").context("ETag")?.to_owned();
    publisher.accept_answer(&answer).await?;
    publisher.connected(support::room::CONNECT_LIMIT).await?;
    audio.resolve_payload_type().await?;
    video.resolve_payload_type().await?;

    let player = Peer::new("whep").await?;
    player.add_receive_only(Kind::Audio).await?;
    player.add_receive_only(Kind::Video).await?;
    let play_offer = player.complete_offer().await?;
    let (status, _, play_answer) =
        http(address, "POST", "/whep/e2e", &[sdp_type], &play_offer).await?;
    ensure!(status == 201, "WHEP POST: {status} {play_answer}");
    player.accept_answer(&play_answer).await?;
    player.connected(support::room::CONNECT_LIMIT).await?;
    let plan = MediaPlan::STANDARD.with_tail(Duration::from_secs(7));
    let sending = tokio::spawn(async move { send_plan(&plan, &audio, &video).await });
    wait_until(Duration::from_secs(10), "video before the restart", || {
        player.received_count(Kind::Video) >= 30
    })
    .await?;

    let (old_ufrag, old_pwd) = sdp::ice_credentials(&answer).context("the answer's ICE")?;
    let ice_mark = publisher.ice_states().len();
    let restart_offer = publisher.restart_offer().await?;
    let fragment = restart_fragment(&restart_offer)?;
    let frag_type = ("Content-Type", "application/trickle-ice-sdpfrag");
    let (status, headers, body) = http(
        address,
        "PATCH",
        &location,
        &[frag_type, ("If-Match", "*")],
        &fragment,
    )
    .await?;
    ensure!(status == 200, "PATCH: {status} {body}\n{fragment}");
    eprintln!("[whip] PATCH fragment:\n{fragment}[whip] 200 fragment:\n{body}");
    ensure!(
        header(&headers, "content-type") == Some("application/trickle-ice-sdpfrag"),
        "{headers:?}"
    );
    let new_etag = header(&headers, "etag").context("a new ETag")?.to_owned();
    ensure!(new_etag != etag, "the ETag changed");
    let (new_ufrag, new_pwd) = sdp::ice_credentials(&body).context("the fragment's ICE")?;
    ensure!(body.contains("a=end-of-candidates"), "{body}");
    ensure!(
        sdp::candidates(&body).contains(&sfu.media_addr()),
        "the fragment's candidates: {body}"
    );
    publisher
        .accept_answer(&with_credentials(&answer, new_ufrag, new_pwd))
        .await?;
    let (peer_ufrag, _) = sdp::ice_credentials(&restart_offer).context("the offer's ICE")?;
    let restarted = Restarted {
        old_local: (old_ufrag.to_owned(), old_pwd.to_owned()),
        new_local: (new_ufrag.to_owned(), new_pwd.to_owned()),
        new_remote: (peer_ufrag.to_owned(), String::new()),
        ice_mark,
    };
    after_restart(&sfu, &publisher, &player, &restarted).await?;

    // The old ICE session's entity-tag no longer matches; DELETE ends the resource.
    let (status, _, _) = http(
        address,
        "PATCH",
        &location,
        &[frag_type, ("If-Match", &etag)],
        &fragment,
    )
    .await?;
    ensure!(status == 412, "PATCH with the old ETag: {status}");
    sending.await??;
    let (status, headers, body) = http(address, "DELETE", &location, &[], "").await?;
    ensure!(status == 200 && body.is_empty(), "DELETE: {status} {body}");
    ensure!(
        header(&headers, "content-length") == Some("0"),
        "{headers:?}"
    );
    player.close().await;
    publisher.close().await;
    Ok(())
}
