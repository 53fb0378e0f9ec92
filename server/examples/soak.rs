//! Soak run (outside CI): a room with churn against a running `sluice` process for a long time,
//! then a check that its memory and open sessions returned to their baseline.
//!
//! Every cycle a webrtc-rs publisher joins the room over WHIP, two players join over WHEP,
//! media flows for a few seconds, and all three leave (DELETE). The server's resident memory
//! (VmRSS) and its `/metrics` gauges are sampled as it goes.
//!
//! ```sh
//! cargo build --release -p server --bin sluice
//! cargo run --release -p server --example soak -- 1800   # seconds; default 1800
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use support::media::{Kind, MediaPlan, send_plan};
use support::peer::Peer;

const ROOM: &str = "soak";

/// A plain HTTP/1.1 exchange on a fresh connection: status, Location header, body.
fn http(
    server: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, Option<String>, String)> {
    let mut stream = TcpStream::connect(server)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end of the response head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let location = head
        .lines()
        .find_map(|line| {
            line.strip_prefix("location: ")
                .or(line.strip_prefix("Location: "))
        })
        .map(str::to_owned);
    Ok((status, location, body.to_owned()))
}

/// VmRSS of a process in KiB.
fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

/// One gauge from `/metrics`.
fn gauge(server: SocketAddr, name: &str) -> anyhow::Result<u64> {
    let (_, _, text) = http(server, "GET", "/metrics", "")?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .with_context(|| format!("no {name} in /metrics"))
}

struct Server {
    child: Child,
    http: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> anyhow::Result<Server> {
    let binary = std::env::var("SLUICE_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/sluice").to_owned()
    });
    let mut child = Command::new(&binary)
        .args(["--http", "127.0.0.1:0", "--udp", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {binary} (build it with --release first)"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let first = BufReader::new(stdout)
        .lines()
        .next()
        .context("no output")??;
    let http = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|address| address.parse().ok())
        .with_context(|| format!("no address in {first:?}"))?;
    Ok(Server { child, http })
}

/// One cycle of churn: a WHIP publisher and two WHEP players come, exchange media, and go.
async fn cycle(server: SocketAddr, plan: &MediaPlan) -> anyhow::Result<()> {
    let publisher = Peer::new("publisher").await?;
    let audio = publisher.add_send_track(Kind::Audio, 0x50A4_0001).await?;
    let video = publisher.add_send_track(Kind::Video, 0x50A4_0002).await?;
    let offer = publisher.complete_offer().await?;
    let (status, whip, answer) = http(server, "POST", &format!("/whip/{ROOM}"), &offer)?;
    ensure!(status == 201, "WHIP answered {status}: {answer}");
    publisher.accept_answer(&answer).await?;
    publisher.connected(Duration::from_secs(30)).await?;
    let mut audio = audio;
    let mut video = video;
    audio.resolve_payload_type().await?;
    video.resolve_payload_type().await?;

    let mut players = Vec::new();
    for number in 0..2 {
        let player = Peer::new(&format!("player-{number}")).await?;
        player.add_receive_only(Kind::Audio).await?;
        player.add_receive_only(Kind::Video).await?;
        let offer = player.complete_offer().await?;
        let (status, location, answer) = http(server, "POST", &format!("/whep/{ROOM}"), &offer)?;
        ensure!(status == 201, "WHEP answered {status}: {answer}");
        player.accept_answer(&answer).await?;
        player.connected(Duration::from_secs(30)).await?;
        players.push((player, location));
    }
    send_plan(plan, &audio, &video).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (player, _) in &players {
        ensure!(
            player.received_count(Kind::Video) > 0 && player.received_count(Kind::Audio) > 0,
            "{} received no media",
            player.name
        );
    }
    for (player, location) in players {
        if let Some(location) = location {
            http(server, "DELETE", &location, "")?;
        }
        player.close().await;
    }
    if let Some(whip) = whip {
        http(server, "DELETE", &whip, "")?;
    }
    publisher.close().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1800);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = start_server()?;
    let pid = server.child.id();
    let plan = MediaPlan {
        video_frames: 90,
        packets_per_frame: 3,
        audio_packets: 150,
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut cycles = 0u64;
    let mut failures = 0u64;
    let mut baseline = None;
    println!("minute  cycles  failures  rss_kib  sessions  participants");
    let mut next_sample = started;
    while Instant::now() < deadline {
        match runtime.block_on(cycle(server.http, &plan)) {
            Ok(()) => cycles += 1,
            Err(e) => {
                failures += 1;
                eprintln!("cycle {} failed: {e:#}", cycles + failures);
            }
        }
        if cycles == 3 && baseline.is_none() {
            // After warm-up: allocator pools, the embedded app, first sessions.
            baseline = Some(resident_kib(pid)?);
        }
        if Instant::now() >= next_sample {
            println!(
                "{:>6}  {cycles:>6}  {failures:>8}  {:>7}  {:>8}  {:>12}",
                started.elapsed().as_secs() / 60,
                resident_kib(pid)?,
                gauge(server.http, "sluice_sessions")?,
                gauge(server.http, "sluice_participants")?,
            );
            next_sample += Duration::from_secs(60);
        }
    }
    // Let consent and setup timers finish anything a failed cycle left behind.
    std::thread::sleep(Duration::from_secs(35));
    let sessions = gauge(server.http, "sluice_sessions")?;
    let participants = gauge(server.http, "sluice_participants")?;
    let rooms = gauge(server.http, "sluice_rooms")?;
    let rss = resident_kib(pid)?;
    let baseline = baseline.unwrap_or(rss);
    println!(
        "end: {cycles} cycles ({failures} failed) in {:?}; sessions {sessions}, participants \
         {participants}, rooms {rooms}; rss {rss} KiB (baseline after warm-up {baseline} KiB)",
        started.elapsed()
    );
    if sessions != 0 || participants != 0 || rooms != 0 {
        bail!("state left behind after the churn");
    }
    Ok(())
}
