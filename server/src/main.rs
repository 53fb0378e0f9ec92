//! The `sluice` binary: reads its configuration from flags, `SLUICE_*` variables and an
//! optional `--config` file, runs the media plane on the UDP port and the signaling service
//! (web app, room protocol, WHIP, WHEP) on the HTTP address, until SIGINT or SIGTERM, when it
//! shuts down gracefully: WebSockets are closed with a reason, HTTP requests in flight finish,
//! and media peers get RTCP BYE.
//!
//! `sluice token --room R --identity ID ...` prints an access token instead (see
//! `server::token`).

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use server::config::Config;
use server::config_file::LoadError;
use server::{MediaConfig, Sfu};

/// Below this many bytes an API secret is easy to guess offline from one token.
const MIN_SECRET_BYTES: usize = 32;

fn main() -> anyhow::Result<()> {
    if std::env::args_os().nth(1).is_some_and(|a| a == "token") {
        let args = server::token::TokenArgs::parse_from(
            std::iter::once(std::ffi::OsString::from("sluice token"))
                .chain(std::env::args_os().skip(2)),
        );
        println!("{}", args.token(signaling::auth::unix_now())?);
        return Ok(());
    }
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

/// Says clearly at start whether access tokens are required, and warns when they are not.
fn announce_access(config: &Config, access: Option<&signaling::AccessKeys>) {
    match access {
        None => tracing::warn!(
            "no API key configured, so Sluice runs OPEN: anyone who can reach {} may join any \
             room, publish into it, play every participant over WHEP, use the admin API and \
             read /metrics. Set --api-key and --api-secret (SLUICE_API_KEY, SLUICE_API_SECRET) \
             or a [keys] table in the config file to require access tokens.",
            config.http
        ),
        Some(keys) => {
            let names: Vec<&str> = keys.keys().collect();
            tracing::info!("access tokens required (API key {})", names.join(", "));
            for name in names {
                if keys
                    .secret(name)
                    .is_some_and(|secret| secret.len() < MIN_SECRET_BYTES)
                {
                    tracing::warn!(
                        "the secret of API key {name} is shorter than {MIN_SECRET_BYTES} bytes; \
                         a short secret can be guessed offline from any token"
                    );
                }
            }
        }
    }
}

fn run(config: &Config) -> anyhow::Result<()> {
    let tls = server::https::tls_from_config(config)?;
    let access = config
        .access_keys()
        .context("the API keys (--api-key / --api-secret, [keys] in the config file)")?;
    let sfu = Arc::new(Sfu::start(MediaConfig {
        udp: config.udp,
        public_ips: config.public_ip.clone(),
        workers: config.worker_count(),
        setup_timeout: server::DEFAULT_SETUP_TIMEOUT,
        consent_timeout: server::DEFAULT_CONSENT_TIMEOUT,
        gso: config.gso(),
        ice_tcp: config.ice_tcp,
        max_publish_bitrate: config.max_publish_bitrate,
        audio_red: config.audio_red,
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
        if let Some(tls) = &tls {
            server::https::spawn_reload_on_sighup(tls.clone());
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let http = listener.local_addr()?;
        let metrics = match &metrics_listener {
            Some(listener) => format!("http://{}/metrics", listener.local_addr()?),
            None => format!("{scheme}://{http}/metrics"),
        };
        let announced: Vec<String> = sfu
            .candidate_ips()
            .iter()
            .map(ToString::to_string)
            .collect();
        let announced = announced.join(", ");
        // The first line names the addresses (tests and scripts read it: "http://ADDR ").
        tracing::info!(
            %http,
            media = %sfu.media_addr(),
            candidates = %announced,
            workers = sfu.workers(),
            metrics = %metrics,
            "web app on {scheme}://{http} ; media on udp {} (candidates announce {announced}), {} workers{}",
            sfu.media_addr(),
            sfu.workers(),
            if config.ice_tcp { ", ICE-TCP on the same port" } else { "" }
        );
        announce_access(config, access.as_ref());
        if let Some(tls) = &tls {
            server::https::warn_if_self_signed(config, tls);
        }
        signaling::serve_with_metrics(
            listener,
            metrics_listener,
            Arc::clone(&sfu),
            signaling::SignalingConfig {
                tls,
                max_connections: config.max_connections,
                max_connections_per_ip: config.max_connections_per_ip,
                access,
                ice_servers: config.ice_server.clone(),
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
