//! The load generator's answering side (the one Janus drives: the server offers, the client
//! answers `a=setup:active`, the server is a full-ICE agent that also sends checks) tested
//! without a server: a publish session offers, a subscribe session answers, and the two
//! connect to each other through one engine. Media must flow from one to the other with ICE
//! checks both ways, the offerer as the DTLS server and the answerer as the DTLS client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::load::engine::Engine;
use benches::load::pending::{ClientRole, PendingSession};
use benches::load::target::SdpSide as _;
use rtc_core::dtls::DtlsCertificate;

#[test]
fn an_answering_session_connects_to_an_offering_one_and_receives_its_media() -> anyhow::Result<()> {
    let cert =
        Arc::new(DtlsCertificate::generate(&mut rand::rng()).map_err(|e| anyhow::anyhow!("{e}"))?);
    let mut offerer = PendingSession::loopback(
        Arc::clone(&cert),
        ClientRole::Publisher {
            index: 0,
            audio: true,
            video: true,
        },
    )?;
    let mut answerer = PendingSession::loopback(
        Arc::clone(&cert),
        ClientRole::Subscriber {
            publisher: 0,
            audio: true,
            video: true,
        },
    )?;
    let offer = offerer.publish_offer();
    let answer = answerer.answer(&offer)?;
    assert!(answer.contains("a=setup:active") && answer.contains("a=recvonly"));
    offerer.accept_answer(&answer)?;

    let engine = Engine::start(4, Vec::new())?;
    let now = Instant::now();
    engine.add(offerer.into_session(now, now)?)?;
    engine.add(answerer.into_session(now, now)?)?;

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snap = engine.snapshot()?;
        assert_eq!(snap.failed, 0, "{:?}", snap.failures);
        if snap.connected == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connected {} of 2",
            snap.connected
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(700));
    let snap = engine.snapshot()?;
    engine.stop();

    assert!(snap.sent > 0, "the offerer sent media");
    assert!(snap.received > 0, "the answerer received it");
    assert_eq!(
        snap.incomplete_subscriptions, 0,
        "audio and video both arrived"
    );
    assert!(snap.latency.count() > 0, "send times were read");
    Ok(())
}
