//! The `sluice` binary: reads its configuration from flags and `SLUICE_*` variables, runs the
//! media plane on the UDP port and the signaling service (web app, room protocol, WHIP, WHEP)
//! on the HTTP address, until SIGINT or SIGTERM, when it shuts down gracefully: WebSockets
//! are closed with a reason, HTTP requests in flight finish, and media peers get RTCP BYE.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use server::config::Config;
use server::{MediaConfig, Sfu};

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let tls = server::https::tls_from_config(&config)?;
    let sfu = Arc::new(Sfu::start(MediaConfig {
        udp: config.udp,
        public_ips: config.public_ip.clone(),
        workers: config.worker_count(),
        setup_timeout: server::DEFAULT_SETUP_TIMEOUT,
        consent_timeout: server::DEFAULT_CONSENT_TIMEOUT,
        gso: config.gso(),
        ice_tcp: config.ice_tcp,
    })?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-signaling")
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .with_context(|| format!("binding the HTTP address {}", config.http))?;
        if let Some(tls) = &tls {
            server::https::spawn_reload_on_sighup(tls.clone());
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let announced: Vec<String> = sfu
            .candidate_ips()
            .iter()
            .map(ToString::to_string)
            .collect();
        println!(
            "sluice: web app on {scheme}://{} ; media on udp {} (candidates announce {}), {} workers{}",
            listener.local_addr()?,
            sfu.media_addr(),
            announced.join(", "),
            sfu.workers(),
            if config.ice_tcp { ", ICE-TCP on the same port" } else { "" }
        );
        signaling::serve(
            listener,
            Arc::clone(&sfu),
            signaling::SignalingConfig {
                tls,
                max_connections: config.max_connections,
                max_connections_per_ip: config.max_connections_per_ip,
                ..signaling::SignalingConfig::default()
            },
            shutdown_signal(),
        )
        .await
        .context("serving HTTP")
    })?;
    // Signaling has closed its WebSockets with a reason and drained HTTP; now the media plane
    // says goodbye (RTCP BYE) to its peers.
    sfu.shutdown();
    println!("sluice: stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
