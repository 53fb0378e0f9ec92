//! Janus end to end, in both configurations started by `benches/janus/janus.sh`:
//!
//! - signaling: a handcrafted sendonly Opus+VP8 offer published through [`JanusTarget`] gets an
//!   answer with a 127.0.0.1 host candidate, a fingerprint and the codecs; a subscription to a
//!   room's dummy publisher gets Janus's offer;
//! - media: the load generator's sessions (real ICE, DTLS and SRTP) in a room of two connect
//!   and every subscription receives packets. Counts only, never timings.
//!
//! Skipped, with the reason printed, when Janus is not installed, except under CI (`CI` set),
//! where scripts/test.sh has installed it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use benches::load::janus::JanusTarget;
use benches::load::scenario::{Layout, RunOptions, run_step};
use benches::load::target::{SdpSide, Target};
use rtc_core::sdp::{Attribute, Direction, SessionDescription, Setup};
use serde_json::json;

/// A minimal publisher offer as a WebRTC client sends it: BUNDLE, rtcp-mux, one host candidate.
const PUBLISH_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS load\r\n\
m=audio 40000 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 127.0.0.1\r\n\
a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n\
a=end-of-candidates\r\n\
a=ice-ufrag:loadpub1\r\n\
a=ice-pwd:loadgeneratorpassword0001\r\n\
a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=ssrc:1111 cname:load\r\n\
m=video 40000 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 127.0.0.1\r\n\
a=ice-ufrag:loadpub1\r\n\
a=ice-pwd:loadgeneratorpassword0001\r\n\
a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n\
a=setup:actpass\r\n\
a=mid:1\r\n\
a=sendonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 nack\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=ssrc:2222 cname:load\r\n";

#[test]
fn janus_publishes_and_offers_subscriptions_in_both_configurations() -> anyhow::Result<()> {
    if !janus_installed() {
        return Ok(());
    }
    for config in ["default", "event-loops-1"] {
        let janus = RunningJanus::start(config)?;
        let loops = if config == "default" { 0 } else { 1 };
        check_event_loops(&janus.url, loops).with_context(|| format!("Janus {config}"))?;
        check_signaling(&janus.url, config).with_context(|| format!("Janus {config}"))?;
    }
    Ok(())
}

#[test]
fn janus_forwards_a_room_of_two_in_both_configurations() -> anyhow::Result<()> {
    if !janus_installed() {
        return Ok(());
    }
    for config in ["default", "event-loops-1"] {
        let janus = RunningJanus::start(config)?;
        let mut target = JanusTarget::connect(&janus.url, config)?;
        let options = RunOptions {
            window: Duration::from_secs(1),
            warmup: Duration::from_millis(300),
            ..RunOptions::default()
        };
        let result = run_step(&mut target, &Layout::room(2), &options)
            .with_context(|| format!("room of two on Janus {config}"))?;
        let sessions = result.publishers + result.subscriptions;
        ensure!(
            result.connected == sessions && sessions == 4,
            "Janus {config}: {} of {sessions} sessions connected",
            result.connected
        );
        ensure!(
            result.delivered > 0 && result.silent_subscriptions == 0,
            "Janus {config}: {} packets delivered, {} silent subscriptions",
            result.delivered,
            result.silent_subscriptions
        );
    }
    Ok(())
}

/// Whether Janus is here to test against. scripts/test.sh installs it, so under CI a missing
/// Janus is a failure, not a skip.
fn janus_installed() -> bool {
    let installed = Command::new("janus").arg("--version").output().is_ok();
    if !installed {
        assert!(
            std::env::var("CI").is_err(),
            "janus is not installed; scripts/test.sh installs it (benches/janus/janus.sh install)"
        );
        println!("SKIPPED: janus is not installed (run benches/janus/janus.sh install as root)");
    }
    installed
}

fn check_signaling(url: &str, label: &str) -> anyhow::Result<()> {
    let mut target = JanusTarget::connect(url, label)?;
    assert_eq!(target.label(), label);

    target.prepare_room("publish", 2, 0)?;
    let publication = target.publish("publish", "p1", PUBLISH_OFFER)?;
    ensure!(
        publication.publisher_id.parse::<u64>().is_ok(),
        "feed {}",
        publication.publisher_id
    );
    let answer = SessionDescription::parse(&publication.answer)
        .map_err(|e| anyhow::anyhow!("Janus's answer does not parse: {e:?}"))?;
    ensure!(answer.media.len() == 2, "answer: {}", publication.answer);
    for section in &answer.media {
        ensure!(
            answer.direction(section) == Direction::RecvOnly,
            "{section:?}"
        );
        ensure!(answer.setup(section) == Some(Setup::Active), "{section:?}");
    }
    check_transport(&answer, &publication.answer)?;
    ensure!(
        has_codec(&answer.media[0].attributes, "opus"),
        "no Opus: {}",
        publication.answer
    );
    ensure!(
        has_codec(&answer.media[1].attributes, "VP8"),
        "no VP8: {}",
        publication.answer
    );
    target.hang_up(&publication.resource)?;

    // A real publisher's feed is subscribable once its PeerConnection is up, which needs media;
    // the dummy publisher exists for subscriptions made before that and stands in for it here.
    target.prepare_room_with("subscribe", 2, &json!({"dummy_publisher": true}))?;
    let feeds = target.publisher_ids("subscribe")?;
    let Some(dummy) = feeds.first() else {
        bail!("no dummy publisher listed")
    };
    let dummy_publication = benches::load::target::Publication {
        answer: String::new(),
        publisher_id: dummy.to_string(),
        resource: publication.resource.clone(),
    };
    let mut side = RecordingAnswerer::default();
    let subscription = target.subscribe("subscribe", &dummy_publication, &mut side)?;
    let offer = SessionDescription::parse(&side.offer)
        .map_err(|e| anyhow::anyhow!("Janus's offer does not parse: {e:?}"))?;
    ensure!(!offer.media.is_empty(), "offer: {}", side.offer);
    for section in &offer.media {
        ensure!(offer.setup(section) == Some(Setup::ActPass), "{section:?}");
    }
    check_transport(&offer, &side.offer)?;
    target.hang_up(&subscription)?;
    Ok(())
}

/// Janus's `info` reports the configured number of static event loops (0: a loop per handle).
fn check_event_loops(url: &str, expected: u64) -> anyhow::Result<()> {
    let text = ureq::get(&format!("{url}/info"))
        .call()?
        .body_mut()
        .read_to_string()?;
    let info: serde_json::Value = serde_json::from_str(&text)?;
    let loops = info
        .get("static-event-loops")
        .and_then(serde_json::Value::as_u64);
    ensure!(
        loops == Some(expected),
        "static-event-loops {loops:?} in {text}"
    );
    Ok(())
}

/// Every section carries Janus's 127.0.0.1 host candidate (full candidates: half trickle) and
/// a sha-256 fingerprint.
fn check_transport(sdp: &SessionDescription, text: &str) -> anyhow::Result<()> {
    for section in &sdp.media {
        let loopback_host = section.attributes.iter().any(|a| {
            matches!(a, Attribute::Candidate(c)
                if c.contains(" udp ") && c.contains(" 127.0.0.1 ") && c.ends_with("typ host"))
        });
        ensure!(loopback_host, "no 127.0.0.1 host candidate in {text}");
        ensure!(
            section.has(&Attribute::EndOfCandidates),
            "candidates not complete: {text}"
        );
        ensure!(
            sdp.fingerprints(section)
                .iter()
                .any(|f| f.hash == "sha-256"),
            "no fingerprint: {text}"
        );
        ensure!(
            sdp.ice_credentials(section).is_some(),
            "no ICE credentials: {text}"
        );
    }
    Ok(())
}

fn has_codec(attributes: &[Attribute], name: &str) -> bool {
    attributes
        .iter()
        .any(|a| matches!(a, Attribute::Rtpmap(r) if r.name.eq_ignore_ascii_case(name)))
}

/// Answers Janus's subscriber offer with `recvonly` for each section, keeping its first
/// format; remembers the offer.
#[derive(Debug, Default)]
struct RecordingAnswerer {
    offer: String,
}

impl SdpSide for RecordingAnswerer {
    fn offer(&mut self) -> anyhow::Result<String> {
        bail!("Janus offers subscriptions itself")
    }

    fn accept_answer(&mut self, _answer: &str) -> anyhow::Result<()> {
        bail!("Janus offers subscriptions itself")
    }

    fn answer(&mut self, offer: &str) -> anyhow::Result<String> {
        self.offer = offer.to_owned();
        let parsed = SessionDescription::parse(offer)
            .map_err(|e| anyhow::anyhow!("Janus's offer does not parse: {e:?}"))?;
        let mids: Vec<&str> = parsed.media.iter().filter_map(|m| m.mid()).collect();
        let mut answer = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\n",
            mids.join(" ")
        );
        for section in &parsed.media {
            let format = section.formats.first().map_or("0", String::as_str);
            answer += &format!(
                "m={} 40001 {} {format}\r\nc=IN IP4 127.0.0.1\r\n\
                 a=candidate:1 1 udp 2130706431 127.0.0.1 40001 typ host\r\n\
                 a=ice-ufrag:loadsub1\r\na=ice-pwd:loadgeneratorpassword0002\r\n\
                 a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\n\
                 a=setup:active\r\na=mid:{}\r\na=recvonly\r\na=rtcp-mux\r\n",
                section.media,
                section.protocol,
                section.mid().unwrap_or("0"),
            );
        }
        Ok(answer)
    }
}

/// A Janus started by janus.sh in a private work directory, stopped on drop.
struct RunningJanus {
    url: String,
    workdir: PathBuf,
}

impl RunningJanus {
    fn start(config: &str) -> anyhow::Result<Self> {
        // A port the kernel just handed out is free with high probability; Janus fails to start
        // otherwise and janus.sh says so.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // Tests run in parallel: each instance gets its own directory.
        static INSTANCES: AtomicUsize = AtomicUsize::new(0);
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let workdir = std::env::temp_dir().join(format!(
            "sluice-janus-{config}-{}-{instance}",
            std::process::id()
        ));
        let output = Command::new(script())
            .args(["start", config, &port.to_string()])
            .arg(&workdir)
            .output()
            .context("running janus.sh start")?;
        ensure!(
            output.status.success(),
            "janus.sh start {config} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(Self {
            url: format!("http://127.0.0.1:{port}/janus"),
            workdir,
        })
    }
}

impl Drop for RunningJanus {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(&self.workdir)
            .status();
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("janus/janus.sh")
}
