//! HTTP signaling for Sluice: the room protocol over WebSocket, WHIP and WHEP, and the
//! embedded web app, served with hyper.
//!
//! The `sluice` binary calls [`serve`] with its media plane (an implementation of
//! [`MediaPlane`]):
//!
//! ```no_run
//! # async fn run<M: signaling::MediaPlane>(media: std::sync::Arc<M>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! signaling::serve(listener, media, signaling::SignalingConfig::default(), async {
//!     let _ = stopped.await;
//! })
//! .await
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod admin;
mod assets;
pub mod auth;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod http;
mod hub;
mod listener;
mod media;
mod metrics;
mod protocol;
pub mod quality;
mod resume;
mod room;
mod sdpfrag;
pub mod speaker;
pub mod tls;
mod validate;
mod whip;
mod ws;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

pub use auth::{AccessKeys, AuthError, Claims, VideoGrant};
pub use media::{
    LayerCap, LocalIceCredentials, MediaError, MediaEvent, MediaPlane, Played, Published,
    PublishedTrack, SubscriberOffer, TrackPriority, TrackView,
};
pub use metrics::{MediaMetric, MetricKind};
pub use tls::{TlsAcceptorHandle, TlsError};
pub use whip::IceServer;

/// Limits of the signaling service; the defaults are the ones docs/protocol.md states.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// Rooms open at once.
    pub max_rooms: usize,
    /// Participants per room (WebSocket and WHIP alike).
    pub max_participants: usize,
    /// Media sections (tracks) in one SDP offer.
    pub max_tracks: usize,
    /// Bytes of one SDP offer or answer.
    pub max_sdp_bytes: usize,
    /// Bytes of one WebSocket message.
    pub max_message_bytes: usize,
    /// Sustained WebSocket messages per second per connection.
    pub messages_per_second: u32,
    /// Messages a connection may send at once before the rate applies.
    pub message_burst: u32,
    /// How long a subscribe offer waits for its answer before a newer one may be sent.
    pub answer_timeout: Duration,
    /// Serve HTTPS (and WSS) with this certificate instead of plain HTTP; clones of the
    /// handle reload it for later connections.
    pub tls: Option<TlsAcceptorHandle>,
    /// HTTP connections (WebSockets included) open at once; more are answered `503`.
    pub max_connections: usize,
    /// HTTP connections open at once from one client IP address; more are answered `503`.
    pub max_connections_per_ip: usize,
    /// How long a client has to complete its TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// The API keys whose tokens grant access; None runs open: anyone who reaches the HTTP
    /// port may join, publish, play, administer and read the metrics. Some with no key in it
    /// refuses every request that needs a token.
    pub access: Option<AccessKeys>,
    /// How often the server pings each WebSocket.
    pub ping_interval: Duration,
    /// How long a WebSocket may stay silent (no frame of any kind, pongs included) before it
    /// is dropped as dead; its participant leaves as if the socket had closed.
    pub pong_timeout: Duration,
    /// How long a WebSocket may stay without a participant (after it opens, or after
    /// `leave`) before it is closed with the error `join_timeout`.
    pub join_timeout: Duration,
    /// STUN and TURN servers announced to WHIP and WHEP clients in `Link` headers (RFC 9725
    /// 4.6) on the `201` and on `OPTIONS` to an endpoint; none by default.
    pub ice_servers: Vec<IceServer>,
    /// How long a participant whose WebSocket dropped (closed without `leave`, lost, or
    /// silent past the pong timeout) is kept, unseen by the others and with its media
    /// sessions running, for a new WebSocket to resume it with its resume token. Zero turns
    /// resuming off: the participant leaves when its socket closes, and `joined` carries no
    /// resume token.
    pub resume_grace: Duration,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            max_rooms: 1000,
            max_participants: 32,
            max_tracks: 8,
            max_sdp_bytes: 64 * 1024,
            max_message_bytes: 64 * 1024,
            messages_per_second: 50,
            message_burst: 100,
            answer_timeout: Duration::from_secs(10),
            tls: None,
            max_connections: 10_000,
            max_connections_per_ip: 100,
            tls_handshake_timeout: Duration::from_secs(10),
            access: None,
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(30),
            join_timeout: Duration::from_secs(10),
            ice_servers: Vec::new(),
            resume_grace: Duration::from_secs(20),
        }
    }
}

/// Serves HTTP (HTTPS when [`SignalingConfig::tls`] is set) on `listener` until `shutdown`
/// completes: `GET /healthz`, the web app, the room protocol at `GET /ws`, WHIP at
/// `/whip/{room}`, WHEP at `/whep/{room}[/{id}]`, the admin API under `/api/` and
/// `GET /metrics`. Connections already open when `shutdown` fires are left to finish on the
/// runtime.
pub async fn serve<M: MediaPlane>(
    listener: TcpListener,
    media: Arc<M>,
    config: SignalingConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with_metrics(listener, None, media, config, shutdown).await
}

/// [`serve`], with `GET /metrics` (and `/healthz`) on `metrics_listener` instead of on the
/// main listener when one is given: then the main address answers `/metrics` with 404.
pub async fn serve_with_metrics<M: MediaPlane>(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    media: Arc<M>,
    config: SignalingConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut hub = hub::Hub::new(media, config);
    hub.metrics_elsewhere = metrics_listener.is_some();
    let hub = Arc::new(hub);
    if let Some(metrics_listener) = metrics_listener {
        tokio::spawn(serve_metrics(metrics_listener, Arc::clone(&hub)));
    }
    if let Some(mut events) = hub.media.events() {
        let hub = hub.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                hub.handle_media_event(event).await;
            }
        });
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            // Out of file descriptors or a connection reset before accept: back off briefly
            // rather than spin, and keep serving.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let span = tracing::info_span!("http", %client);
        tokio::spawn(tracing::Instrument::instrument(
            listener::run(hub.clone(), stream, client.ip()),
            span,
        ));
    }
    // Drain: WebSockets are closed with a reason (1001) and leave their rooms; HTTP requests
    // in flight finish. Connections that do not finish in time are dropped with the runtime.
    hub.shutting_down.send_replace(true);
    let mut live = hub.live.subscribe();
    let drained = async {
        let _ = live.wait_for(|&open| open == 0).await;
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
    Ok(())
}

/// Serves `GET /metrics` and `/healthz` on their own listener, for as long as the runtime
/// runs (a scrape in flight at shutdown is harmless).
async fn serve_metrics<M: MediaPlane>(listener: TcpListener, hub: Arc<hub::Hub<M>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            let service =
                service_fn(move |request| http::handle_metrics_only(hub.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `N` random bytes (the thread's CSPRNG, seeded by the OS) as `2 * N` lowercase hex
/// digits: resource tokens, resume tokens, entity-tags.
pub(crate) fn random_hex<const N: usize>() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long a shutdown waits for open connections to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
