//! Interop of the media plane with an independent WebRTC implementation (webrtc-rs) over
//! loopback: a publisher and subscribers negotiate with `Sfu::publish` and `Sfu::subscribe`
//! (non-trickle, WHIP and WHEP style), connect through ICE-lite and DTLS-SRTP, and the payloads
//! the publisher sends must reach every subscriber byte-identical, also through loss; peers
//! that fail the checks (a forged DTLS fingerprint, an address that never passed ICE) get
//! nothing. The harness is in `support/` and is tested on its own in `interop_harness.rs`.
//!
//! No timing is asserted: every wait is bounded and generous, and the log says where a run
//! stopped.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, ensure};
use server::{MediaConfig, SessionId, Sfu, SfuError};
use support::media::{Expectation, Kind, MediaPlan, send_plan};
use support::peer::{Peer, SendTrack};
use support::proxy::{Impairment, LossyProxy};
use support::room::{CONNECT_LIMIT, PUBLISHER_VIDEO_SSRC, Publisher, publisher_ssrc};
use support::{sdp, wait_until, within};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

fn sfu_error(context: &'static str) -> impl FnOnce(SfuError) -> anyhow::Error {
    move |error| anyhow!("{context}: {error}")
}

/// The answer is what the media plane promises: ICE-lite, one host candidate at the media
/// port, the passive DTLS role, and a SHA-256 fingerprint.
fn check_answer(answer: &str, media_addr: SocketAddr) -> anyhow::Result<()> {
    ensure!(
        sdp::has_attribute(answer, "a=ice-lite"),
        "the answer lacks a=ice-lite:\n{answer}"
    );
    ensure!(
        sdp::has_attribute(answer, "a=setup:passive"),
        "the answer lacks a=setup:passive:\n{answer}"
    );
    let fingerprints = sdp::fingerprints(answer);
    ensure!(
        !fingerprints.is_empty()
            && fingerprints
                .iter()
                .all(|value| value.to_ascii_lowercase().starts_with("sha-256 ")),
        "the answer's fingerprints are not SHA-256: {fingerprints:?}"
    );
    let candidates = sdp::candidates(answer);
    ensure!(
        !candidates.is_empty() && candidates.iter().all(|&candidate| candidate == media_addr),
        "the answer's candidates {candidates:?} are not the media address {media_addr}"
    );
    ensure!(
        answer
            .lines()
            .filter(|line| line.starts_with("a=candidate:"))
            .all(|line| line.contains(" typ host")),
        "the answer has a candidate that is not a host candidate:\n{answer}"
    );
    Ok(())
}

/// A publisher connected to the SFU, with its Opus and VP8 tracks negotiated.
/// Publishes into `room` (through `via` when given) and checks the answer is what the media
/// plane promises.
async fn connect_publisher(
    sfu: &Sfu,
    room: &str,
    via: Option<&LossyProxy>,
) -> anyhow::Result<Publisher> {
    let publisher = support::room::connect_publisher(sfu, room, via).await?;
    eprintln!("[publisher] session {:?}", publisher.session);
    check_answer(&publisher.answer, sfu.media_addr())?;
    Ok(publisher)
}

/// A receive-only subscriber of `publisher`'s tracks, connected. `forge_fingerprint` puts a
/// fingerprint of no certificate it holds into its offer, and then it is not waited for.
async fn connect_subscriber(
    sfu: &Sfu,
    room: &str,
    publisher: SessionId,
    name: &str,
    forge_fingerprint: bool,
) -> anyhow::Result<(Peer, SessionId)> {
    let peer = Peer::new(name).await?;
    peer.add_receive_only(Kind::Audio).await?;
    peer.add_receive_only(Kind::Video).await?;
    let mut offer = peer.complete_offer().await?;
    if forge_fingerprint {
        let (forged, count) = sdp::forge_fingerprints(&offer);
        ensure!(count > 0, "the offer has no fingerprint to forge");
        offer = forged;
    }
    let answer = sfu
        .subscribe(room, publisher, &offer)
        .await
        .map_err(sfu_error("subscribe"))?;
    eprintln!("[{name}] session {:?}", answer.session);
    check_answer(&answer.sdp, sfu.media_addr())?;
    peer.accept_answer(&answer.sdp).await?;
    if !forge_fingerprint {
        peer.connected(CONNECT_LIMIT).await?;
    }
    Ok((peer, answer.session))
}

async fn connect_subscribers(
    sfu: &Sfu,
    room: &str,
    publisher: SessionId,
    count: usize,
) -> anyhow::Result<Vec<(Peer, SessionId)>> {
    let mut subscribers = Vec::with_capacity(count);
    for number in 1..=count {
        subscribers.push(
            connect_subscriber(sfu, room, publisher, &format!("subscriber-{number}"), false)
                .await?,
        );
    }
    Ok(subscribers)
}

/// Sends `plan` in the background, for tests that look at something else meanwhile.
fn spawn_sending(
    plan: MediaPlan,
    audio: SendTrack,
    video: SendTrack,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move { send_plan(&plan, &audio, &video).await })
}

fn expectation<'a>(plan: &'a MediaPlan, kind: Kind, declared: &'a [u32]) -> Expectation<'a> {
    Expectation {
        plan,
        kind,
        foreign_ssrc: Some(publisher_ssrc(kind)),
        declared_ssrcs: declared,
    }
}

async fn close_all(sfu: &Sfu, peers: Vec<(Peer, SessionId)>) {
    for (peer, session) in peers {
        peer.close().await;
        sfu.close(session).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_every_payload_to_three_subscribers() -> anyhow::Result<()> {
    forward_to_three_subscribers(MediaConfig::loopback()).await
}

/// The same with four workers sharing the port: the kernel spreads the peers' flows over the
/// four sockets, and datagrams that land on a worker that does not own their session are handed
/// over to the one that does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_every_payload_across_four_workers() -> anyhow::Result<()> {
    forward_to_three_subscribers(MediaConfig {
        workers: 4,
        ..MediaConfig::loopback()
    })
    .await
}

async fn forward_to_three_subscribers(config: MediaConfig) -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(config)?;
    eprintln!(
        "SFU media port {} with {} workers",
        sfu.media_addr(),
        sfu.workers()
    );
    let room = "forwarding";
    let publisher = connect_publisher(&sfu, room, None).await?;
    let subscribers = connect_subscribers(&sfu, room, publisher.session, 3).await?;

    let plan = MediaPlan::STANDARD;
    eprintln!("all connected; sending {plan:?}");
    within(
        plan.duration() + Duration::from_secs(10),
        "the publisher to send the plan",
        send_plan(&plan, &publisher.audio, &publisher.video),
    )
    .await??;
    let all_arrived = || {
        subscribers.iter().all(|(peer, _)| {
            [Kind::Audio, Kind::Video]
                .iter()
                .all(|&kind| peer.received_count(kind) >= plan.count(kind) as usize)
        })
    };
    let arrival = wait_until(
        Duration::from_secs(20),
        "every packet at every subscriber",
        all_arrived,
    )
    .await;
    for (peer, _) in &subscribers {
        eprintln!(
            "[{}] received {} audio, {} video packets",
            peer.name,
            peer.received_count(Kind::Audio),
            peer.received_count(Kind::Video)
        );
    }
    eprintln!("stats: {:?}", sfu.stats());
    arrival?;
    // Anything extra (a duplicate, a stray packet) would arrive right behind the last one.
    tokio::time::sleep(Duration::from_millis(500)).await;

    for (peer, _) in &subscribers {
        for kind in [Kind::Audio, Kind::Video] {
            let declared = peer.declared_ssrcs(kind);
            expectation(&plan, kind, &declared)
                .check_exact(&peer.received(kind))
                .with_context(|| format!("at {}", peer.name))?;
        }
    }
    let stats = sfu.stats();
    let sent = u64::from(plan.count(Kind::Audio) + plan.count(Kind::Video));
    ensure!(
        stats.forwarded_rtp >= sent,
        "stats count {} forwarded RTP packets, {sent} were sent",
        stats.forwarded_rtp
    );
    ensure!(
        stats.sessions >= 4,
        "stats count {} sessions, 4 are open",
        stats.sessions
    );

    close_all(&sfu, subscribers).await;
    close_all(&sfu, vec![(publisher.peer, publisher.session)]).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_publisher_loss_with_nack() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    eprintln!("SFU media port {}", sfu.media_addr());
    let impairment = Impairment {
        loss: 0.05,
        seed: 0x5EED_1055,
        lifetime: Duration::from_secs(90),
        max_datagrams: 200_000,
    };
    let proxy = LossyProxy::start(sfu.media_addr(), impairment).await?;
    let room = "lossy";
    let publisher = connect_publisher(&sfu, room, Some(&proxy)).await?;
    let subscribers = connect_subscribers(&sfu, room, publisher.session, 3).await?;

    let plan = MediaPlan::STANDARD;
    // A loss at the very end of a stream is never noticed, so the plan goes on for a second
    // beyond what every subscriber must receive.
    let sent = plan.with_tail(Duration::from_secs(1));
    eprintln!(
        "all connected; sending {sent:?} through {:.0}% loss",
        impairment.loss * 100.0
    );
    within(
        sent.duration() + Duration::from_secs(10),
        "the publisher to send the plan",
        send_plan(&sent, &publisher.audio, &publisher.video),
    )
    .await??;

    // Everything is repaired: video by NACK and RTX, audio by NACK and plain retransmission
    // (the test peers negotiate NACK for Opus).
    let required = |kind| plan.count(kind);
    let distinct = |peer: &Peer, kind| {
        expectation(&sent, kind, &[]).distinct_below(&peer.received(kind), required(kind))
    };
    let repaired = || {
        subscribers.iter().all(|(peer, _)| {
            [Kind::Audio, Kind::Video]
                .iter()
                .all(|&kind| distinct(peer, kind) == required(kind) as usize)
        })
    };
    let outcome = wait_until(
        Duration::from_secs(20),
        "every payload at every subscriber",
        repaired,
    )
    .await;
    eprintln!(
        "proxy: {} datagrams from the publisher, {} dropped, {} from the SFU",
        proxy.client_datagrams(),
        proxy.dropped(),
        proxy.server_datagrams()
    );
    for (peer, _) in &subscribers {
        eprintln!(
            "[{}] distinct audio {} of {}, distinct video {} of {}",
            peer.name,
            distinct(peer, Kind::Audio),
            required(Kind::Audio),
            distinct(peer, Kind::Video),
            required(Kind::Video),
        );
    }
    eprintln!("stats: {:?}", sfu.stats());
    outcome?;
    ensure!(
        proxy.dropped() > 0,
        "the proxy dropped nothing, so nothing was repaired"
    );
    ensure!(sfu.stats().nacks_sent > 0, "no NACK went to the publisher");

    for (peer, _) in &subscribers {
        for kind in [Kind::Audio, Kind::Video] {
            let declared = peer.declared_ssrcs(kind);
            expectation(&sent, kind, &declared)
                .check_complete_below(&peer.received(kind), required(kind))
                .with_context(|| format!("{kind:?} at {}", peer.name))?;
        }
    }

    close_all(&sfu, subscribers).await;
    close_all(&sfu, vec![(publisher.peer, publisher.session)]).await;
    proxy.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_certificate_gets_no_media() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    eprintln!("SFU media port {}", sfu.media_addr());
    let room = "forged";
    let publisher = connect_publisher(&sfu, room, None).await?;
    // An honest subscriber shows that media flows while the forger is refused.
    let honest = connect_subscriber(&sfu, room, publisher.session, "honest", false).await?;
    let mismatches_before = sfu.stats().dtls_fingerprint_mismatch;

    // Twelve seconds of media: enough to outlast the forger's attempt and the watch after it.
    let plan = MediaPlan {
        video_frames: 360,
        packets_per_frame: 2,
        audio_packets: 600,
    };
    let Publisher {
        peer: publisher_peer,
        session: publisher_session,
        audio,
        video,
        ..
    } = publisher;
    let sending = spawn_sending(plan, audio, video);

    let forger = connect_subscriber(&sfu, room, publisher_session, "forger", true).await?;
    let refused = wait_until(
        Duration::from_secs(15),
        "the SFU to count a fingerprint mismatch",
        || sfu.stats().dtls_fingerprint_mismatch > mismatches_before,
    )
    .await;
    eprintln!("stats: {:?}", sfu.stats());
    refused?;
    eprintln!("refused; watching the forger for 3 s");
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (forger_peer, _) = &forger;
    let forged_media =
        forger_peer.received_count(Kind::Audio) + forger_peer.received_count(Kind::Video);
    let honest_media = honest.0.received_count(Kind::Audio) + honest.0.received_count(Kind::Video);
    eprintln!(
        "forger: state {}, {forged_media} packets; honest: {honest_media} packets",
        forger_peer.state()
    );
    ensure!(
        forged_media == 0,
        "the forger received {forged_media} RTP packets"
    );
    ensure!(
        forger_peer.state() != webrtc::peer_connection::RTCPeerConnectionState::Connected,
        "the forger's connection reached connected"
    );
    ensure!(
        honest_media > 0,
        "no media flowed to the honest subscriber either, so the test proved nothing"
    );

    sending.abort();
    close_all(
        &sfu,
        vec![forger, honest, (publisher_peer, publisher_session)],
    )
    .await;
    Ok(())
}

/// An RTP packet with the publisher's video SSRC and payload type, in the clear, carrying a
/// payload no plan produces.
fn spoofed_rtp(sequence_number: u16, payload_type: u8) -> Vec<u8> {
    let mut datagram = vec![0x80, payload_type & 0x7F];
    datagram.extend_from_slice(&sequence_number.to_be_bytes());
    datagram.extend_from_slice(&0x0102_0304_u32.to_be_bytes());
    datagram.extend_from_slice(&PUBLISHER_VIDEO_SSRC.to_be_bytes());
    datagram.push(0x10);
    datagram.extend_from_slice(SPOOF_MARK);
    datagram.resize(200, 0xAB);
    datagram
}

/// An RTCP sender report (PT 200) for the publisher's video SSRC, in the clear.
fn spoofed_rtcp() -> Vec<u8> {
    let mut datagram = vec![0x80, 200, 0x00, 0x06];
    datagram.extend_from_slice(&PUBLISHER_VIDEO_SSRC.to_be_bytes());
    datagram.resize(28, 0);
    datagram
}

const SPOOF_MARK: &[u8] = b"SPOOFED-NOT-FROM-A-CHECKED-ADDRESS";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_from_unchecked_address_is_dropped() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    eprintln!("SFU media port {}", sfu.media_addr());
    let room = "unchecked";
    let publisher = connect_publisher(&sfu, room, None).await?;
    let subscribers = connect_subscribers(&sfu, room, publisher.session, 1).await?;
    let dropped_before = sfu.stats().dropped_unvalidated_source;
    let video_payload_type = publisher.video.payload_type.context("video payload type")?;

    const SPOOFED_RTP: u16 = 40;
    const SPOOFED_RTCP: u16 = 10;
    let stranger = UdpSocket::bind("127.0.0.1:0").await?;
    let media_addr = sfu.media_addr();
    let spoofing = async {
        for number in 0..SPOOFED_RTP {
            stranger
                .send_to(&spoofed_rtp(number, video_payload_type), media_addr)
                .await?;
            if number % 4 == 0 {
                stranger.send_to(&spoofed_rtcp(), media_addr).await?;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(())
    };
    let plan = MediaPlan::STANDARD;
    eprintln!(
        "sending {plan:?} while a stranger at {} sends RTP and RTCP",
        stranger.local_addr()?
    );
    let (sent, spoofed) = within(
        plan.duration() + Duration::from_secs(10),
        "sending and spoofing",
        async {
            tokio::join!(
                send_plan(&plan, &publisher.audio, &publisher.video),
                spoofing
            )
        },
    )
    .await?;
    sent?;
    spoofed?;

    let expected_drops = u64::from(SPOOFED_RTP + SPOOFED_RTCP);
    let counted = wait_until(
        Duration::from_secs(10),
        "the SFU to count the stranger's datagrams",
        || sfu.stats().dropped_unvalidated_source >= dropped_before + expected_drops,
    )
    .await;
    eprintln!("stats: {:?}", sfu.stats());
    counted?;

    let (subscriber, _) = subscribers.first().context("one subscriber")?;
    let arrived = || {
        [Kind::Audio, Kind::Video]
            .iter()
            .all(|&kind| subscriber.received_count(kind) >= plan.count(kind) as usize)
    };
    wait_until(
        Duration::from_secs(20),
        "the publisher's packets at the subscriber",
        arrived,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for kind in [Kind::Audio, Kind::Video] {
        let received = subscriber.received(kind);
        let spoofed = received
            .iter()
            .filter(|packet| {
                packet
                    .payload
                    .windows(SPOOF_MARK.len())
                    .any(|window| window == SPOOF_MARK)
            })
            .count();
        ensure!(
            spoofed == 0,
            "the subscriber received {spoofed} of the stranger's packets"
        );
        let declared = subscriber.declared_ssrcs(kind);
        expectation(&plan, kind, &declared)
            .check_exact(&received)
            .context("the publisher's media around the stranger's")?;
    }

    close_all(&sfu, subscribers).await;
    close_all(&sfu, vec![(publisher.peer, publisher.session)]).await;
    Ok(())
}

#[test]
fn answer_check_accepts_the_promised_shape_and_rejects_others() {
    let media_addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-lite\r\n\
                  a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                  a=setup:passive\r\na=fingerprint:sha-256 AB:CD\r\n\
                  a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n";
    check_answer(answer, media_addr).expect("the promised shape");
    for (wrong, right) in [
        ("a=ice-lite\r\n", ""),
        ("a=setup:passive", "a=setup:active"),
        ("sha-256", "sha-1"),
        ("40000 typ host", "40001 typ host"),
        ("typ host", "typ srflx"),
    ] {
        let broken = answer.replace(wrong, right);
        assert!(
            check_answer(&broken, media_addr).is_err(),
            "accepted with {wrong:?} -> {right:?}"
        );
    }
}

/// The room path: Sluice offers a subscriber connection its tracks and the subscriber
/// answers (no transceivers of its own). Every payload arrives exactly; a renegotiation that
/// drops the tracks stops the media and keeps the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_offered_subscription_delivers_and_renegotiates() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let room = "server-offers";
    let publisher = connect_publisher(&sfu, room, None).await?;
    ensure!(
        publisher.tracks.len() == 2,
        "audio and video: {:?}",
        publisher.tracks
    );
    // The same offer again (a renegotiation that changes nothing) keeps the same tracks.
    let republished = sfu
        .republish(publisher.session, &publisher.offer)
        .await
        .map_err(sfu_error("republish"))?;
    let tracks: Vec<_> = republished.tracks.iter().map(|t| t.id).collect();
    ensure!(tracks == publisher.tracks, "tracks churned: {tracks:?}");

    let viewer = Peer::new("viewer").await?;
    let session = sfu
        .create_subscriber(room)
        .await
        .map_err(sfu_error("create_subscriber"))?;
    let offer = sfu
        .offer_tracks(session, &tracks)
        .await
        .map_err(sfu_error("offer_tracks"))?;
    ensure!(
        offer.mids.len() == 2,
        "one m-line per track: {:?}",
        offer.mids
    );
    check_answer_shape_of_offer(&offer.sdp)?;
    viewer.apply_offer(&offer.sdp).await?;
    let answer = viewer.complete_answer().await?;
    sfu.answer_subscriber(session, &answer)
        .await
        .map_err(sfu_error("answer_subscriber"))?;
    viewer.connected(CONNECT_LIMIT).await?;

    let plan = MediaPlan::STANDARD;
    within(
        plan.duration() + Duration::from_secs(10),
        "the publisher to send the plan",
        send_plan(&plan, &publisher.audio, &publisher.video),
    )
    .await??;
    wait_until(
        Duration::from_secs(20),
        "every packet at the viewer",
        || {
            [Kind::Audio, Kind::Video]
                .iter()
                .all(|&kind| viewer.received_count(kind) >= plan.count(kind) as usize)
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for kind in [Kind::Audio, Kind::Video] {
        let declared = viewer.declared_ssrcs(kind);
        expectation(&plan, kind, &declared)
            .check_exact(&viewer.received(kind))
            .context("at the viewer")?;
    }

    // Renegotiate with no tracks: both m-lines go inactive, nothing more arrives.
    let reoffer = sfu
        .offer_tracks(session, &[])
        .await
        .map_err(sfu_error("offer_tracks"))?;
    ensure!(reoffer.mids.is_empty());
    ensure!(
        reoffer.sdp.matches("a=inactive").count() == 2,
        "both m-lines inactive:\n{}",
        reoffer.sdp
    );
    viewer.apply_offer(&reoffer.sdp).await?;
    let reanswer = viewer.complete_answer().await?;
    sfu.answer_subscriber(session, &reanswer)
        .await
        .map_err(sfu_error("answer_subscriber"))?;
    let before = viewer.received_count(Kind::Video);
    within(
        plan.duration() + Duration::from_secs(10),
        "the publisher to send again",
        send_plan(&plan, &publisher.audio, &publisher.video),
    )
    .await??;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        viewer.received_count(Kind::Video) == before,
        "media kept flowing after the tracks were removed"
    );
    ensure!(
        viewer.state() == webrtc::peer_connection::RTCPeerConnectionState::Connected,
        "the connection stays up: {:?}",
        viewer.state()
    );

    viewer.close().await;
    sfu.close(session).await;
    close_all(&sfu, vec![(publisher.peer, publisher.session)]).await;
    Ok(())
}

/// Sluice's offers are ICE-lite with one host candidate and let the peer choose the DTLS role.
fn check_answer_shape_of_offer(offer: &str) -> anyhow::Result<()> {
    ensure!(offer.contains("a=ice-lite"), "no a=ice-lite:\n{offer}");
    ensure!(offer.contains("a=setup:actpass"), "not actpass:\n{offer}");
    ensure!(offer.contains("a=ssrc:"), "no SSRCs announced:\n{offer}");
    Ok(())
}
