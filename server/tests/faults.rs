//! Faults with real, independent peers over real UDP: a peer that sends media but no binding
//! requests keeps its session (consent refreshed by authenticated media); 10% loss with
//! reordering between a publisher and the server still gives the subscribers every payload.
//! (A peer that vanishes and loses consent is tested in virtual time, in media-plane's
//! lifecycle tests.)

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use server::{MediaConfig, MediaEvent, Sfu};
use support::media::Kind;
use support::media::{Expectation, MediaPlan, send_plan};
use support::proxy::{Impairment, LossyProxy, Tampering};
use support::room::{close_room, connect_publisher, connect_subscribers};
use support::within;

/// An SFU with a short consent timeout, its event stream, and a proxy that forwards
/// everything (no loss) for at most 60 s, for a peer whose network the test can take away.
async fn with_consent_timeout_behind_a_proxy(
    consent_timeout: Duration,
) -> anyhow::Result<(
    Sfu,
    tokio::sync::mpsc::UnboundedReceiver<MediaEvent>,
    LossyProxy,
)> {
    let sfu = Sfu::start(MediaConfig {
        consent_timeout,
        ..MediaConfig::loopback()
    })?;
    let events = sfu.take_events().context("the event stream")?;
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
    Ok((sfu, events, proxy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_loss_with_reordering_still_gives_continuous_media() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let impairment = Impairment {
        loss: 0.10,
        seed: 0x10_7E_0D_E4,
        lifetime: Duration::from_secs(90),
        max_datagrams: 200_000,
    };
    let tampering = Tampering {
        reorder: 0.10,
        ..Tampering::default()
    };
    let proxy = LossyProxy::start_tampering(sfu.media_addr(), impairment, tampering).await?;
    let room = "impaired";
    let publisher = connect_publisher(&sfu, room, Some(&proxy)).await?;
    let subscribers = connect_subscribers(&sfu, room, publisher.session, 2).await?;
    let plan = MediaPlan::STANDARD;
    // Losses in the last moments are never noticed, so the plan runs on beyond what is checked.
    let sent = plan.with_tail(Duration::from_secs(1));
    within(
        sent.duration() + Duration::from_secs(10),
        "the publisher to send the plan",
        send_plan(&sent, &publisher.audio, &publisher.video),
    )
    .await??;
    let complete = || {
        subscribers.iter().all(|s| {
            [Kind::Audio, Kind::Video].iter().all(|&kind| {
                expectation(&sent, kind).distinct_below(&s.peer.received(kind), plan.count(kind))
                    == plan.count(kind) as usize
            })
        })
    };
    let outcome = support::wait_until(
        Duration::from_secs(20),
        "every payload at every subscriber",
        complete,
    )
    .await;
    eprintln!(
        "proxy: {} from the publisher, {} dropped, {} reordered; stats {:?}",
        proxy.client_datagrams(),
        proxy.dropped(),
        proxy.reordered(),
        sfu.stats()
    );
    outcome?;
    ensure!(
        proxy.dropped() > 0 && proxy.reordered() > 0,
        "the path was not impaired"
    );
    for subscriber in &subscribers {
        for kind in [Kind::Audio, Kind::Video] {
            expectation(&sent, kind)
                .check_complete_below(&subscriber.peer.received(kind), plan.count(kind))
                .with_context(|| format!("{kind:?} at {}", subscriber.peer.name))?;
        }
    }
    close_room(&sfu, (&publisher.peer, publisher.session), subscribers).await;
    proxy.shutdown().await;
    Ok(())
}

fn expectation(plan: &MediaPlan, kind: Kind) -> Expectation<'_> {
    Expectation {
        plan,
        kind,
        foreign_ssrc: None,
        declared_ssrcs: &[],
    }
}

/// A publisher whose binding requests stop while its media flows (Pion checks only an idle
/// path) keeps its session, and its subscriber keeps receiving, for several consent timeouts;
/// once the peer goes silent altogether, consent still expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_without_binding_requests_keeps_a_session_alive() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let consent_timeout = Duration::from_secs(3);
    let (sfu, mut events, proxy) = with_consent_timeout_behind_a_proxy(consent_timeout).await?;
    let room = "media-only-consent";
    let publisher = connect_publisher(&sfu, room, Some(&proxy)).await?;
    let subscribers = connect_subscribers(&sfu, room, publisher.session, 1).await?;
    proxy.block_client_stun(true);
    // Nearly three consent timeouts of media with no binding request reaching the server.
    let plan = MediaPlan::STANDARD.with_tail(Duration::from_secs(5));
    within(
        plan.duration() + Duration::from_secs(10),
        "the publisher to send the plan",
        send_plan(&plan, &publisher.audio, &publisher.video),
    )
    .await??;
    ensure!(
        proxy.stun_blocked() > 0,
        "the publisher sent no binding request to block"
    );
    // Reports of who speaks and of the subscriber's downlink may have come; no end.
    let ended_early = std::iter::from_fn(|| events.try_recv().ok())
        .find(|event| matches!(event, MediaEvent::SessionEnded { .. }));
    ensure!(
        ended_early.is_none(),
        "a session ended while media flowed: {ended_early:?}"
    );
    ensure!(sfu.stats().sessions == 2, "stats {:?}", sfu.stats());
    let subscriber = &subscribers[0];
    support::wait_until(
        Duration::from_secs(5),
        "every video payload at the subscriber",
        || {
            expectation(&plan, Kind::Video).distinct_below(
                &subscriber.peer.received(Kind::Video),
                plan.count(Kind::Video),
            ) == plan.count(Kind::Video) as usize
        },
    )
    .await?;

    // Now the publisher's network goes away: consent expires as before.
    let vanished_at = Instant::now();
    proxy.shutdown().await;
    // The publisher's end also ends its player (the subscriber), in either order.
    let mut ended = Vec::new();
    while ended.len() < 2 {
        let event = within(
            consent_timeout * 5,
            "the media plane to end the vanished session and its player",
            events.recv(),
        )
        .await?;
        match event {
            Some(MediaEvent::SessionEnded { session }) => ended.push(session),
            // Who is speaking and how the subscriber's downlink is: reported while the
            // media flowed.
            Some(MediaEvent::AudioActivity { .. } | MediaEvent::DownlinkQuality { .. }) => {}
            other => anyhow::bail!("unexpected event {other:?}"),
        }
    }
    eprintln!(
        "sessions ended {:?} after the peer vanished (consent timeout {consent_timeout:?})",
        vanished_at.elapsed()
    );
    ended.sort();
    let mut expected = vec![publisher.session, subscribers[0].session];
    expected.sort();
    ensure!(ended == expected, "ended {ended:?}, expected {expected:?}");
    close_room(&sfu, (&publisher.peer, publisher.session), subscribers).await;
    Ok(())
}
