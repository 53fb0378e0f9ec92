//! A room on a running `Sfu`: a webrtc-rs publisher with Opus and VP8 tracks and receive-only
//! subscribers, connected non-trickle (WHIP and WHEP style), each kept with the SDP it sent and
//! got, since the hostile-traffic tests need the ICE credentials in them.

use std::time::Duration;

use anyhow::{Context, anyhow, ensure};
use server::{SessionId, Sfu};

use super::media::{Expectation, Kind, MediaPlan};
use super::peer::{Peer, SendTrack};
use super::proxy::LossyProxy;
use super::sdp;

pub const CONNECT_LIMIT: Duration = Duration::from_secs(30);
pub const PUBLISHER_AUDIO_SSRC: u32 = 0x0A0D_1000;
pub const PUBLISHER_VIDEO_SSRC: u32 = 0x0B1D_E000;

pub struct Publisher {
    pub peer: Peer,
    pub session: SessionId,
    /// Its offer, and the SFU's answer as the SFU wrote it (before any redirection to a proxy).
    pub offer: String,
    pub answer: String,
    /// The tracks the SFU made of the offer.
    pub tracks: Vec<server::TrackId>,
    pub audio: SendTrack,
    pub video: SendTrack,
}

pub struct Subscriber {
    pub peer: Peer,
    pub session: SessionId,
    pub offer: String,
    pub answer: String,
}

/// Publishes into `room`; with `via`, the publisher reaches the SFU only through that proxy.
pub async fn connect_publisher(
    sfu: &Sfu,
    room: &str,
    via: Option<&LossyProxy>,
) -> anyhow::Result<Publisher> {
    let peer = Peer::new("publisher").await?;
    let mut audio = peer
        .add_send_track(Kind::Audio, PUBLISHER_AUDIO_SSRC)
        .await?;
    let mut video = peer
        .add_send_track(Kind::Video, PUBLISHER_VIDEO_SSRC)
        .await?;
    let offer = peer.complete_offer().await?;
    let answer = sfu
        .publish(room, &offer)
        .await
        .map_err(|error| anyhow!("publish: {error}"))?;
    let seen_by_peer = match via {
        Some(proxy) => {
            let (edited, rewritten) =
                sdp::redirect_candidates(&answer.sdp, sfu.media_addr(), proxy.addr);
            ensure!(rewritten > 0, "no candidate to point at the proxy");
            edited
        }
        None => answer.sdp.clone(),
    };
    peer.accept_answer(&seen_by_peer).await?;
    peer.connected(CONNECT_LIMIT).await?;
    audio.resolve_payload_type().await?;
    video.resolve_payload_type().await?;
    Ok(Publisher {
        peer,
        session: answer.session,
        offer,
        answer: answer.sdp,
        tracks: answer.tracks.iter().map(|t| t.id).collect(),
        audio,
        video,
    })
}

/// `count` receive-only subscribers of `publisher`, connected.
pub async fn connect_subscribers(
    sfu: &Sfu,
    room: &str,
    publisher: SessionId,
    count: usize,
) -> anyhow::Result<Vec<Subscriber>> {
    let mut subscribers = Vec::with_capacity(count);
    for number in 1..=count {
        let peer = Peer::new(&format!("subscriber-{number}")).await?;
        peer.add_receive_only(Kind::Audio).await?;
        peer.add_receive_only(Kind::Video).await?;
        let offer = peer.complete_offer().await?;
        let answer = sfu
            .subscribe(room, publisher, &offer)
            .await
            .map_err(|error| anyhow!("subscribe: {error}"))?;
        peer.accept_answer(&answer.sdp).await?;
        peer.connected(CONNECT_LIMIT).await?;
        subscribers.push(Subscriber {
            peer,
            session: answer.session,
            offer,
            answer: answer.sdp,
        });
    }
    Ok(subscribers)
}

/// The SSRC the publisher sends `kind` with (a subscriber must never see it).
pub fn publisher_ssrc(kind: Kind) -> u32 {
    match kind {
        Kind::Audio => PUBLISHER_AUDIO_SSRC,
        Kind::Video => PUBLISHER_VIDEO_SSRC,
    }
}

/// Waits until every subscriber has at least the plan's packets, then a little longer for
/// anything extra (a duplicate would arrive right behind), and checks each stream exactly:
/// every payload once, in order, byte-identical.
pub async fn check_every_payload_exactly(
    plan: &MediaPlan,
    subscribers: &[Subscriber],
) -> anyhow::Result<()> {
    let arrived = super::wait_until(
        Duration::from_secs(20),
        "every packet at every subscriber",
        || {
            subscribers.iter().all(|subscriber| {
                [Kind::Audio, Kind::Video]
                    .iter()
                    .all(|&kind| subscriber.peer.received_count(kind) >= plan.count(kind) as usize)
            })
        },
    )
    .await;
    for subscriber in subscribers {
        eprintln!(
            "[{}] received {} audio, {} video packets",
            subscriber.peer.name,
            subscriber.peer.received_count(Kind::Audio),
            subscriber.peer.received_count(Kind::Video)
        );
    }
    arrived?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for subscriber in subscribers {
        for kind in [Kind::Audio, Kind::Video] {
            let declared = subscriber.peer.declared_ssrcs(kind);
            Expectation {
                plan,
                kind,
                foreign_ssrc: Some(publisher_ssrc(kind)),
                declared_ssrcs: &declared,
            }
            .check_exact(&subscriber.peer.received(kind))
            .with_context(|| format!("{kind:?} at {}", subscriber.peer.name))?;
        }
    }
    Ok(())
}

/// Closes the subscribers and then the publisher's peer and session.
pub async fn close_room(sfu: &Sfu, publisher: (&Peer, SessionId), subscribers: Vec<Subscriber>) {
    for subscriber in subscribers {
        subscriber.peer.close().await;
        sfu.close(subscriber.session).await;
    }
    let (peer, session) = publisher;
    peer.close().await;
    sfu.close(session).await;
}
