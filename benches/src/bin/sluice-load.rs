//! `sluice-load`: opens many WebRTC sessions over loopback (real ICE, DTLS and SRTP) against a
//! server under test, publishes synthetic audio and video, subscribes, and reports delivered
//! and lost packets, the server's CPU per forwarded packet, forwarded packets per server
//! CPU-second and the time packets spend inside the server.
//!
//! ```text
//! sluice-load --target sluice --url http://127.0.0.1:8080 --server-pid 1234 --cpu 1 room --size 4
//! sluice-load ... live --ramp 20,50,100,200
//! sluice-load ... audio --speakers 10 --listeners 300
//! ```

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use benches::load::janus::JanusTarget;
use benches::load::report::StepResult;
use benches::load::scenario::{Layout, RunOptions, run_step};
use benches::load::target::Target;
use benches::load::whip::WhipTarget;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(about = "Load generator for Sluice, the bare forwarder and Janus")]
struct Cli {
    /// The kind of server under test.
    #[arg(long, value_enum, default_value_t = TargetKind::Sluice)]
    target: TargetKind,
    /// The server's HTTP signaling address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The label in reports (defaults to the target kind).
    #[arg(long)]
    label: Option<String>,
    /// The server's pid, to read its CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds of the measurement window.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds between every session being connected and the window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Unprotect one received packet in this many to read its send time.
    #[arg(long, default_value_t = 8)]
    latency_sample: u64,
    /// Pin the load generator to this core.
    #[arg(long)]
    cpu: Option<usize>,
    /// Give every session its own socket on 127.0.0.1 instead of an address of its own
    /// (127.1.x.y) on one shared socket.
    #[arg(long)]
    socket_per_session: bool,
    /// Append one JSON object per result to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    /// Sluice over WHIP/WHEP.
    Sluice,
    /// The bare forwarder over WHIP/WHEP.
    Bare,
    /// Janus's videoroom over its HTTP API.
    Janus,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Everyone publishes audio and video and subscribes to everyone else; with --rooms,
    /// that many such meetings side by side (a list ramps like live --ramp).
    Room {
        /// Participants per room.
        #[arg(long, default_value_t = 4)]
        size: usize,
        /// Rooms side by side in successive steps, e.g. 1,2,4,8.
        #[arg(long, value_delimiter = ',')]
        rooms: Vec<usize>,
    },
    /// One publisher, many subscribers; with --ramp, steps until loss passes 1%, the
    /// server falls behind (2% of the window's packets still owed at its end) or its CPU
    /// passes 95% of a core.
    Live {
        /// Subscribers (one step).
        #[arg(long, default_value_t = 20)]
        subscribers: usize,
        /// Subscriber counts of successive steps, e.g. 20,50,100.
        #[arg(long, value_delimiter = ',')]
        ramp: Vec<usize>,
    },
    /// Audio only: every listener subscribes to every speaker.
    Audio {
        /// Publishers of audio.
        #[arg(long, default_value_t = 10)]
        speakers: usize,
        /// Listeners.
        #[arg(long, default_value_t = 300)]
        listeners: usize,
    },
}

/// A ramp stops once loss passes this fraction...
const RAMP_MAX_LOSS: f64 = 0.01;
/// ...or the server uses this share of one core...
const RAMP_MAX_CORE_SHARE: f64 = 0.95;
/// ...or it falls behind: this fraction of the window's packets is still owed at its end
/// (a server that keeps up owes only the packets in flight, well under this).
const RAMP_MAX_SHORTFALL: f64 = 0.02;

fn connect(kind: TargetKind, url: &str, label: Option<&str>) -> anyhow::Result<Box<dyn Target>> {
    let name = match kind {
        TargetKind::Sluice => "sluice",
        TargetKind::Bare => "bare",
        TargetKind::Janus => "janus",
    };
    let label = label.unwrap_or(name);
    Ok(match kind {
        TargetKind::Sluice | TargetKind::Bare => Box::new(WhipTarget::connect(url, label)?),
        TargetKind::Janus => Box::new(JanusTarget::connect(url, label)?),
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(cpu) = cli.cpu {
        benches::load::sys::pin_to_cpu(cpu).with_context(|| format!("pinning to core {cpu}"))?;
    }
    let options = RunOptions {
        window: Duration::from_secs_f64(cli.seconds),
        warmup: Duration::from_secs_f64(cli.warmup),
        latency_sample: cli.latency_sample,
        server_pid: cli.server_pid,
        socket_per_session: cli.socket_per_session,
        ..RunOptions::default()
    };
    let mut target = connect(cli.target, &cli.url, cli.label.as_deref())?;
    let steps: Vec<Layout> = match &cli.scenario {
        Scenario::Room { size, rooms } if rooms.is_empty() => vec![Layout::room(*size)],
        Scenario::Room { size, rooms } => rooms.iter().map(|&n| Layout::rooms(*size, n)).collect(),
        Scenario::Live { subscribers, ramp } if ramp.is_empty() => vec![Layout::live(*subscribers)],
        Scenario::Live { ramp, .. } => ramp.iter().map(|&n| Layout::live(n)).collect(),
        Scenario::Audio {
            speakers,
            listeners,
        } => vec![Layout::audio(*speakers, *listeners)],
    };
    println!("{}", StepResult::table_header());
    for (index, layout) in steps.iter().enumerate() {
        let result = match run_step(target.as_mut(), layout, &options) {
            Ok(result) => result,
            // A ramp step that cannot even be set up (the server stops answering signaling or
            // drops sessions under load) ends the ramp: the steps before it stand.
            Err(error) if index > 0 => {
                let error = format!("{error:#}");
                println!(
                    "# stopping the ramp: {} {} failed: {error}",
                    layout.scenario, layout.size
                );
                let record = serde_json::json!({
                    "target": target.label(),
                    "scenario": layout.scenario,
                    "size": layout.size,
                    "error": error,
                });
                append_json(cli.json.as_deref(), &record)?;
                break;
            }
            Err(error) => {
                return Err(error.context(format!(
                    "{} {} on {}",
                    layout.scenario,
                    layout.size,
                    target.label()
                )));
            }
        };
        println!("{}", result.table_row());
        append_json(cli.json.as_deref(), &result.to_json())?;
        let saturated = result.loss_ratio() > RAMP_MAX_LOSS
            || result.shortfall_ratio() > RAMP_MAX_SHORTFALL
            || result
                .server_core_share()
                .is_some_and(|s| s > RAMP_MAX_CORE_SHARE);
        if saturated && steps.len() > 1 {
            println!(
                "# stopping the ramp: loss {:.2}%, behind {:.2}%, server core share {}",
                result.loss_ratio() * 100.0,
                result.shortfall_ratio() * 100.0,
                result
                    .server_core_share()
                    .map_or("-".to_owned(), |s| format!("{:.0}%", s * 100.0))
            );
            break;
        }
    }
    Ok(())
}

/// Appends `record` as one line to the JSON file, when there is one.
fn append_json(path: Option<&std::path::Path>, record: &serde_json::Value) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{record}")?;
    Ok(())
}
