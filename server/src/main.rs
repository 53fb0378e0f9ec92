//! The `sluice` binary: reads its configuration from flags and `SLUICE_*` variables, runs the
//! media plane on the UDP port and the signaling service (web app, room protocol, WHIP, WHEP)
//! on the HTTP address, until SIGINT or SIGTERM, when it shuts down gracefully: WebSockets
//! are closed with a reason, HTTP requests in flight finish, and media peers get RTCP BYE.
//!
//! `sluice token --room R --identity ID ...` prints an access token instead (see
//! `server::token`).

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use server::config::Config;
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
    let config = Config::parse();
    let tls = server::https::tls_from_config(&config)?;
    let access = config.access_keys().context("--api-key / --api-secret")?;
    match &config.api_secret {
        None => eprintln!(
            "sluice: WARNING: no API key configured, so Sluice runs OPEN: anyone who can reach \
             {} may join any room, publish into it, play every participant over WHEP, use the \
             admin API and read /metrics. Set --api-key and --api-secret (SLUICE_API_KEY, \
             SLUICE_API_SECRET) to require access tokens.",
            config.http
        ),
        Some(secret) if secret.len() < MIN_SECRET_BYTES => eprintln!(
            "sluice: WARNING: the API secret is shorter than {MIN_SECRET_BYTES} bytes; a short \
             secret can be guessed offline from any token"
        ),
        Some(_) => {}
    }
    if let Some(keys) = &access {
        let names: Vec<&str> = keys.keys().collect();
        eprintln!(
            "sluice: access tokens required (API key {})",
            names.join(", ")
        );
    }
    let sfu = Arc::new(Sfu::start(MediaConfig {
        udp: config.udp,
        public_ips: config.public_ip.clone(),
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
            "sluice: web app on {scheme}://{} ; media on udp {} (candidates announce {}), {} workers",
            listener.local_addr()?,
            sfu.media_addr(),
            announced.join(", "),
            sfu.workers()
        );
        signaling::serve(
            listener,
            Arc::clone(&sfu),
            signaling::SignalingConfig {
                tls,
                max_connections: config.max_connections,
                max_connections_per_ip: config.max_connections_per_ip,
                access,
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
