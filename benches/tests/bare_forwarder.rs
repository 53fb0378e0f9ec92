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
use benches::bare::{BareForwarder, Counters, DropReason};
use support::media::{Expectation, Kind, MediaPlan, send_plan};
use support::peer::{Peer, SendTrack};
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
async fn http_request(
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
    let response = http_request(server, "POST", path, Some(offer)).await?;
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

/// The bare forwarder's media thread and the signaling service on loopback.
struct Running {
    forwarder: Arc<BareForwarder>,
    http: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(gso: bool) -> anyhow::Result<Running> {
        let forwarder = Arc::new(BareForwarder::start("127.0.0.1:0".parse()?, gso)?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let http = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(signaling::serve(
            listener,
            Arc::clone(&forwarder),
            signaling::SignalingConfig::default(),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Running {
            forwarder,
            http,
            stop,
            serving,
        })
    }

    /// Stops signaling and the media thread; returns the final counters.
    async fn stop(self) -> anyhow::Result<Counters> {
        let _ = self.stop.send(());
        self.serving.await??;
        self.forwarder
            .shutdown()
            .context("the media thread had stopped")
    }
}

/// A webrtc-rs publisher of Opus and VP8, published over WHIP (not yet connected).
struct Publishing {
    peer: Peer,
    audio: SendTrack,
    video: SendTrack,
    answer: String,
    participant: String,
    location: String,
}

async fn publish(http: SocketAddr) -> anyhow::Result<Publishing> {
    let peer = Peer::new("publisher").await?;
    let audio = peer
        .add_send_track(Kind::Audio, PUBLISHER_AUDIO_SSRC)
        .await?;
    let video = peer
        .add_send_track(Kind::Video, PUBLISHER_VIDEO_SSRC)
        .await?;
    let offer = peer.complete_offer().await?;
    let (published, location) = post_offer(http, "/whip/bench", &offer).await?;
    let participant = published
        .header("x-sluice-participant")
        .context("no X-Sluice-Participant header")?
        .to_owned();
    Ok(Publishing {
        peer,
        audio,
        video,
        answer: published.body,
        participant,
        location,
    })
}

/// A receive-only offer for Opus and VP8.
async fn player_offer(peer: &Peer) -> anyhow::Result<String> {
    peer.add_receive_only(Kind::Audio).await?;
    peer.add_receive_only(Kind::Video).await?;
    peer.complete_offer().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_two_players_get_every_payload_byte_identical() -> anyhow::Result<()> {
    every_payload_byte_identical(false).await
}

/// The same through UDP GSO sends (each player's run of a batch's packets in one send).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payload_byte_identical_with_gso() -> anyhow::Result<()> {
    every_payload_byte_identical(true).await
}

async fn every_payload_byte_identical(gso: bool) -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let running = Running::start(gso).await?;
    eprintln!("GSO asked {gso}, on {}", running.forwarder.gso());
    let http = running.http;
    let Publishing {
        peer: publisher,
        mut audio,
        mut video,
        answer,
        participant,
        location: publisher_location,
    } = publish(http).await?;
    publisher.accept_answer(&answer).await?;
    publisher.connected(CONNECT_LIMIT).await?;
    audio.resolve_payload_type().await?;
    video.resolve_payload_type().await?;

    let mut players = Vec::new();
    let mut player_locations = Vec::new();
    for number in 1..=2 {
        let player = Peer::new(&format!("player-{number}")).await?;
        let offer = player_offer(&player).await?;
        let (played, location) =
            post_offer(http, &format!("/whep/bench/{participant}"), &offer).await?;
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

    // Sessions end on DELETE.
    for location in player_locations.iter().chain([&publisher_location]) {
        let deleted = http_request(http, "DELETE", location, None).await?;
        ensure!(
            deleted.status == 200,
            "DELETE {location}: {}",
            deleted.status
        );
    }
    support::wait_until(Duration::from_secs(5), "no session left", || {
        running.forwarder.counters().sessions == 0
    })
    .await?;
    for player in &players {
        player.close().await;
    }
    publisher.close().await;

    let counters = running.stop().await?;
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

/// The bare forwarder rewrites nothing, so a player that would receive VP8 under another
/// payload type than the publisher sends it with is refused with a reason, and what it does not
/// serve (an unknown publisher, the room protocol's subscriber connections) is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_it_cannot_serve_unchanged_are_refused() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let running = Running::start(true).await?;
    let http = running.http;
    let publishing = publish(http).await?;

    let player = Peer::new("player").await?;
    let offer = player_offer(&player).await?;
    let renumbered = offer
        .replace(" 96 ", " 100 ")
        .replace(" 96\r\n", " 100\r\n")
        .replace(":96 ", ":100 ")
        .replace("apt=96", "apt=100");
    ensure!(renumbered != offer, "the offer has no VP8 on 96:\n{offer}");
    let path = format!("/whep/bench/{}", publishing.participant);
    let refused = http_request(http, "POST", &path, Some(&renumbered)).await?;
    ensure!(
        refused.status == 400 && refused.body.contains("payload type"),
        "a renumbered VP8 got {}: {}",
        refused.status,
        refused.body
    );
    let unknown = http_request(http, "POST", "/whep/bench/p999", Some(&offer)).await?;
    ensure!(
        unknown.status == 404,
        "an unknown publisher got {}",
        unknown.status
    );
    // The unchanged offer is served.
    post_offer(http, &path, &offer).await?;

    player.close().await;
    publishing.peer.close().await;
    let counters = running.stop().await?;
    ensure!(counters.forwarded == 0, "{counters}");
    Ok(())
}
