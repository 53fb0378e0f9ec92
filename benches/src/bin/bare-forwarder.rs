//! `bare-forwarder`: the physical limit for Sluice's benchmarks. It serves Sluice's WHIP
//! (`POST /whip/{room}`) and WHEP (`POST /whep/{room}/{publisher}`) endpoints on `--http` and
//! forwards media on the one UDP port `--udp` doing only the unavoidable work per packet (see
//! `benches::bare`). On SIGINT or SIGTERM it prints its counters and exits 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use benches::bare::BareForwarder;
use clap::Parser;

/// The bare forwarder: receive, one SRTP unprotect, and per subscriber a copy, an SRTP protect
/// and a batched send.
#[derive(Debug, Parser)]
#[command(name = "bare-forwarder", version)]
struct Args {
    /// Address of the HTTP service (WHIP and WHEP).
    #[arg(long = "http", env = "BARE_HTTP", default_value = "127.0.0.1:8081")]
    http: SocketAddr,

    /// Address of the one UDP media port.
    #[arg(long = "udp", env = "BARE_UDP", default_value = "127.0.0.1:3479")]
    udp: SocketAddr,

    /// Send each subscriber's run of packets as one UDP GSO send ("on" or "off"), as Sluice
    /// does by default.
    #[arg(
        long = "gso",
        env = "BARE_GSO",
        default_value = "on",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    gso: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let forwarder = Arc::new(BareForwarder::start(args.udp, args.gso)?);
    // The same signaling runtime as the `sluice` binary, so that both spend alike off the
    // media path.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bare-signaling")
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.http)
            .await
            .with_context(|| format!("binding the HTTP address {}", args.http))?;
        println!(
            "bare-forwarder: WHIP/WHEP on http://{} ; media on udp {} (GSO {})",
            listener.local_addr()?,
            forwarder.media_addr(),
            if forwarder.gso() { "on" } else { "off" }
        );
        signaling::serve(
            listener,
            Arc::clone(&forwarder),
            signaling::SignalingConfig::default(),
            shutdown_signal(),
        )
        .await
        .context("serving HTTP")
    })?;
    let counters = forwarder.shutdown().unwrap_or_else(|| forwarder.counters());
    print!("bare-forwarder: stopped\n{counters}");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (never, if they cannot be watched).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
