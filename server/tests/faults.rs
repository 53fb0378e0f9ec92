//! Faults: a peer that vanishes without a goodbye (no DTLS close, no RTCP BYE, its packets just
//! stop) is ended when ICE consent expires, and the signaling side is told.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use server::{MediaConfig, MediaEvent, Sfu};
use support::media::Kind;
use support::peer::Peer;
use support::proxy::{Impairment, LossyProxy};
use support::{sdp, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_vanishes_is_ended_when_consent_expires() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let consent_timeout = Duration::from_secs(3);
    let sfu = Sfu::start(MediaConfig {
        consent_timeout,
        ..MediaConfig::loopback()
    })?;
    let mut events = sfu.take_events().context("the event stream")?;
    // The peer reaches the server only through this proxy, so stopping the proxy is its
    // network going away.
    let proxy = LossyProxy::start(
        sfu.media_addr(),
        Impairment {
            loss: 0.0,
            seed: 1,
            lifetime: Duration::from_secs(60),
            max_datagrams: 100_000,
        },
    )
    .await?;
    let peer = Peer::new("vanishing").await?;
    let _audio = peer.add_send_track(Kind::Audio, 0x0AD1_0001).await?;
    let offer = peer.complete_offer().await?;
    let published = sfu
        .publish("faults", &offer)
        .await
        .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
    let (answer, rewritten) =
        sdp::redirect_candidates(&published.sdp, sfu.media_addr(), proxy.addr);
    ensure!(rewritten > 0, "no candidate to point at the proxy");
    peer.accept_answer(&answer).await?;
    peer.connected(Duration::from_secs(30)).await?;
    ensure!(sfu.stats().sessions == 1);

    let vanished_at = Instant::now();
    proxy.shutdown().await;
    let event = within(
        consent_timeout * 5,
        "the media plane to end the vanished session",
        events.recv(),
    )
    .await?;
    eprintln!(
        "session ended {:?} after the peer vanished (consent timeout {consent_timeout:?})",
        vanished_at.elapsed()
    );
    ensure!(
        event
            == Some(MediaEvent::SessionEnded {
                session: published.session
            }),
        "unexpected event {event:?}"
    );
    // The counters are published after the worker's round that ended the session.
    support::wait_until(
        Duration::from_secs(5),
        "the session's state to be freed",
        || sfu.stats().sessions == 0,
    )
    .await?;
    peer.close().await;
    Ok(())
}
