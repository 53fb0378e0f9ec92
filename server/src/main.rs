//! The `sluice` binary: reads its configuration from flags, `SLUICE_*` variables and an
//! optional `--config` file, runs the media plane on the UDP port and the signaling service
//! (web app, room protocol, WHIP, WHEP) on the HTTP address, until SIGINT or SIGTERM, when it
//! shuts down gracefully: WebSockets are closed with a reason, HTTP requests in flight finish,
//! and media peers get RTCP BYE.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use server::config::Config;
use server::config_file::LoadError;
use server::{MediaConfig, Sfu};

fn main() -> anyhow::Result<()> {
    let config = match Config::load() {
        Ok(config) => config,
        // Help, the version, and wrong flags, with clap's own wording and exit code.
        Err(LoadError::Args(error)) => error.exit(),
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "sluice: {error}");
            std::process::exit(2);
        }
    };
    if config.print_config {
        std::io::stdout().write_all(config.print_config().as_bytes())?;
        return Ok(());
    }
    server::logging::init(config.log_format);
    if let Err(error) = run(&config) {
        tracing::error!("{error:#}");
        return Err(error);
    }
    Ok(())
}

fn run(config: &Config) -> anyhow::Result<()> {
    let sfu = Arc::new(Sfu::start(MediaConfig {
        udp: config.udp,
        public_ip: config.public_ip,
        workers: config.worker_count(),
        setup_timeout: server::DEFAULT_SETUP_TIMEOUT,
        consent_timeout: server::DEFAULT_CONSENT_TIMEOUT,
        gso: config.gso(),
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
        let metrics_listener = match config.metrics_http {
            Some(address) => Some(
                tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding the metrics address {address}"))?,
            ),
            None => None,
        };
        let http = listener.local_addr()?;
        let metrics = match &metrics_listener {
            Some(listener) => format!("http://{}/metrics", listener.local_addr()?),
            None => format!("http://{http}/metrics"),
        };
        // The first line names the addresses (tests and scripts read it: "http://ADDR ").
        tracing::info!(
            %http,
            media = %sfu.media_addr(),
            candidates = %config.candidate_ip(),
            workers = sfu.workers(),
            metrics = %metrics,
            "web app on http://{http} ; media on udp {} (candidates announce {}), {} workers",
            sfu.media_addr(),
            config.candidate_ip(),
            sfu.workers()
        );
        signaling::serve_with_metrics(
            listener,
            metrics_listener,
            Arc::clone(&sfu),
            signaling::SignalingConfig::default(),
            shutdown_signal(),
        )
        .await
        .context("serving HTTP")
    })?;
    // Signaling has closed its WebSockets with a reason and drained HTTP; now the media plane
    // says goodbye (RTCP BYE) to its peers.
    sfu.shutdown();
    tracing::info!("stopped");
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
