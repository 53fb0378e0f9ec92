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
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod assets;
pub mod fuzzing;
mod http;
mod hub;
mod media;
mod protocol;
mod room;
mod validate;
mod ws;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

pub use media::{
    MediaError, MediaEvent, MediaPlane, Played, Published, PublishedTrack, SubscriberOffer,
};

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
    /// How often the server pings each WebSocket.
    pub ping_interval: Duration,
    /// How long a WebSocket may stay silent (no frame of any kind, pongs included) before it
    /// is dropped as dead; its participant leaves as if the socket had closed.
    pub pong_timeout: Duration,
    /// How long a WebSocket may stay without a participant (after it opens, or after
    /// `leave`) before it is closed with the error `join_timeout`.
    pub join_timeout: Duration,
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
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(30),
            join_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves HTTP on `listener` until `shutdown` completes: `GET /healthz`, the web app, the
/// room protocol at `GET /ws`, WHIP at `/whip/{room}` and WHEP at `/whep/{room}[/{id}]`.
/// Connections already open when `shutdown` fires are left to finish on the runtime.
pub async fn serve<M: MediaPlane>(
    listener: TcpListener,
    media: Arc<M>,
    config: SignalingConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let hub = Arc::new(hub::Hub::new(media, config));
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
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors or a connection reset before accept: back off briefly
            // rather than spin, and keep serving.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let hub = hub.clone();
        tokio::spawn(async move {
            let _live = hub::LiveConnection::new(&hub.live);
            let mut shutting_down = hub.shutting_down.subscribe();
            let service = {
                let hub = hub.clone();
                service_fn(move |request| http::handle(hub.clone(), request))
            };
            // The timer enables hyper's header read timeout (30 s), so that a client that
            // never finishes its request head does not hold the connection forever.
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = async { let _ = shutting_down.wait_for(|&down| down).await; } => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
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

/// How long a shutdown waits for open connections to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
