//! The bare forwarder with independent peers (webrtc-rs, through the interop harness of
//! server/tests/support): a publisher connects over WHIP and two players over WHEP, all through
//! `signaling::serve` on loopback HTTP exactly as the load generator drives Sluice, and every
//! payload the publisher sends reaches both players once, in order and byte-identical, on the
//! publisher's own SSRCs (the bare forwarder rewrites nothing).

#[path = "../../server/tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use benches::bare::{BareForwarder, DropReason};
use support::media::{Expectation, Kind, MediaPlan, send_plan};
use support::peer::Peer;
use support::room::{CONNECT_LIMIT, PUBLISHER_AUDIO_SSRC, PUBLISHER_VIDEO_SSRC, publisher_ssrc};

/// An HTTP response as far as WHIP and WHEP need it.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`, so the body ends with
/// the stream), made with blocking std IO off the runtime's threads.
async fn http(
    server: SocketAddr,
    method: &str,
    path: &str,
    sdp: Option<&str>,
) -> anyhow::Result<Response> {
    let body = sdp.unwrap_or_default();
    let content_type = if sdp.is_some() {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {server}\r\n{content_type}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let raw = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(server)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Ok(raw)
    })
    .await??;
    let text = String::from_utf8(raw).context("the response is not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the response has no header end")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .context("the response has no status")?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// POSTs an offer and returns the answer and the resource's location.
async fn post_offer(
    server: SocketAddr,
    path: &str,
    offer: &str,
) -> anyhow::Result<(Response, String)> {
    let response = http(server, "POST", path, Some(offer)).await?;
    if response.status != 201 {
        bail!(
            "POST {path}: status {}, body {}",
            response.status,
            response.body
        );
    }
    let location = response
        .header("location")
        .context("no Location header")?
        .to_owned();
    Ok((response, location))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_two_players_get_every_payload_byte_identical() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let forwarder = Arc::new(BareForwarder::start("127.0.0.1:0".parse()?)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(signaling::serve(
        listener,
        Arc::clone(&forwarder),
        signaling::SignalingConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let publisher = Peer::new("publisher").await?;
    let mut audio = publisher
        .add_send_track(Kind::Audio, PUBLISHER_AUDIO_SSRC)
        .await?;
    let mut video = publisher
        .add_send_track(Kind::Video, PUBLISHER_VIDEO_SSRC)
        .await?;
    let offer = publisher.complete_offer().await?;
    let (published, publisher_location) = post_offer(server, "/whip/bench", &offer).await?;
    let participant = published
        .header("x-sluice-participant")
        .context("no X-Sluice-Participant header")?
        .to_owned();
    publisher.accept_answer(&published.body).await?;
    publisher.connected(CONNECT_LIMIT).await?;
    audio.resolve_payload_type().await?;
    video.resolve_payload_type().await?;

    let mut players = Vec::new();
    let mut player_locations = Vec::new();
    for number in 1..=2 {
        let player = Peer::new(&format!("player-{number}")).await?;
        player.add_receive_only(Kind::Audio).await?;
        player.add_receive_only(Kind::Video).await?;
        let offer = player.complete_offer().await?;
        let (played, location) =
            post_offer(server, &format!("/whep/bench/{participant}"), &offer).await?;
        for ssrc in [PUBLISHER_AUDIO_SSRC, PUBLISHER_VIDEO_SSRC] {
            ensure!(
                played.body.contains(&format!("a=ssrc:{ssrc} ")),
                "the WHEP answer does not announce the publisher's SSRC {ssrc}:\n{}",
                played.body
            );
        }
        player.accept_answer(&played.body).await?;
        player.connected(CONNECT_LIMIT).await?;
        players.push(player);
        player_locations.push(location);
    }

    let plan = MediaPlan::STANDARD;
    send_plan(&plan, &audio, &video).await?;
    let arrived = support::wait_until(
        Duration::from_secs(20),
        "every packet at both players",
        || {
            players.iter().all(|player| {
                [Kind::Audio, Kind::Video]
                    .iter()
                    .all(|&kind| player.received_count(kind) >= plan.count(kind) as usize)
            })
        },
    )
    .await;
    for player in &players {
        eprintln!(
            "[{}] received {} audio, {} video packets",
            player.name,
            player.received_count(Kind::Audio),
            player.received_count(Kind::Video)
        );
    }
    arrived?;
    // A duplicate would arrive right behind the last packet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for player in &players {
        for kind in [Kind::Audio, Kind::Video] {
            let declared = player.declared_ssrcs(kind);
            Expectation {
                plan: &plan,
                kind,
                foreign_ssrc: None,
                declared_ssrcs: &declared,
            }
            .check_exact(&player.received(kind))
            .with_context(|| format!("{kind:?} at {}", player.name))?;
            ensure!(
                player
                    .received(kind)
                    .iter()
                    .all(|packet| packet.ssrc == publisher_ssrc(kind)),
                "{kind:?} at {}: not on the publisher's SSRC",
                player.name
            );
        }
    }

    // Sessions end on DELETE; the publisher's DELETE ends nothing else, the players are gone.
    for location in &player_locations {
        let deleted = http(server, "DELETE", location, None).await?;
        ensure!(
            deleted.status == 200,
            "DELETE {location}: {}",
            deleted.status
        );
    }
    let deleted = http(server, "DELETE", &publisher_location, None).await?;
    ensure!(
        deleted.status == 200,
        "DELETE publisher: {}",
        deleted.status
    );
    support::wait_until(Duration::from_secs(5), "no session left", || {
        forwarder.counters().sessions == 0
    })
    .await?;
    for player in &players {
        player.close().await;
    }
    publisher.close().await;

    let _ = stop.send(());
    serving.await??;
    let counters = forwarder
        .shutdown()
        .context("the media thread had stopped")?;
    eprintln!("{counters}");
    let sent = u64::from(plan.count(Kind::Audio) + plan.count(Kind::Video));
    ensure!(
        counters.rtp_received >= sent,
        "{} RTP packets unprotected, {sent} sent",
        counters.rtp_received
    );
    ensure!(
        counters.forwarded == 2 * counters.rtp_received,
        "{} copies forwarded for {} packets and two players",
        counters.forwarded,
        counters.rtp_received
    );
    ensure!(counters.dropped(DropReason::Unprotect) == 0, "{counters}");
    Ok(())
}
