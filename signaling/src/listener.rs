//! One accepted TCP connection, from accept to close: the caps on open connections (overall
//! and per client address), the TLS handshake with its timeout when HTTPS is on, and the
//! hand-over to hyper.
//!
//! A connection takes its slot when it is accepted, so that the cap also covers connections
//! still in their TLS handshake, and holds it for as long as its socket lives, also after a
//! WebSocket upgrade (the slot travels inside the socket, see [`Held`]). A connection over a
//! cap is answered `503` with `{"error": ...}` and `Connection: close` (after the TLS
//! handshake when HTTPS is on) and counted; connections already open are not touched.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::http;
use crate::hub::{Hub, LiveConnection};
use crate::media::MediaPlane;

/// Refused connections answered at once; beyond this many a refused connection is closed
/// without an answer, so that a flood of refused connections costs bounded work.
const MAX_REFUSING: usize = 256;

/// How long a refused connection may take to send its request head before it is closed.
const REFUSAL_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    ServerFull,
    /// `max_connections_per_ip` are open from this client address.
    AddressFull,
}

impl Refusal {
    fn message(self) -> &'static str {
        match self {
            Self::ServerFull => "too many connections are open; try again later",
            Self::AddressFull => "too many connections are open from your address",
        }
    }
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Open connections counted against the caps, and the refusals.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
    refusing: AtomicUsize,
    refused_server_full: AtomicU64,
    refused_address_full: AtomicU64,
    tls_failures: AtomicU64,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            open: Mutex::new(Open::default()),
            refusing: AtomicUsize::new(0),
            refused_server_full: AtomicU64::new(0),
            refused_address_full: AtomicU64::new(0),
            tls_failures: AtomicU64::new(0),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a slot for a connection from `ip`, or says which cap it is over (and counts it).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let ip = ip.to_canonical();
        let mut open = self.open();
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        let refusal = if open.total >= self.max_total {
            Some(Refusal::ServerFull)
        } else if from_ip >= self.max_per_ip {
            Some(Refusal::AddressFull)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            drop(open);
            let counter = match refusal {
                Refusal::ServerFull => &self.refused_server_full,
                Refusal::AddressFull => &self.refused_address_full,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(refusal);
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Ok(ConnectionSlot {
            limits: Arc::clone(self),
            ip,
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut open = self.open();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_ip.remove(&ip);
            }
        }
    }

    /// The caps' counters in the Prometheus text format.
    pub fn metrics(&self) -> [crate::MediaMetric; 3] {
        use crate::MediaMetric;
        const REFUSED: &str = "sluice_http_connections_refused";
        const REFUSED_HELP: &str = "HTTP connections refused over a cap.";
        [
            MediaMetric {
                label: Some(("reason", "server_full")),
                ..MediaMetric::counter(
                    REFUSED,
                    REFUSED_HELP,
                    self.refused_server_full.load(Ordering::Relaxed),
                )
            },
            MediaMetric {
                label: Some(("reason", "address_full")),
                ..MediaMetric::counter(
                    REFUSED,
                    REFUSED_HELP,
                    self.refused_address_full.load(Ordering::Relaxed),
                )
            },
            MediaMetric::counter(
                "sluice_tls_handshake_failures",
                "TLS handshakes that failed or timed out.",
                self.tls_failures.load(Ordering::Relaxed),
            ),
        ]
    }
}

/// One connection's place under the caps, given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limits.release(self.ip);
    }
}

/// A socket that holds its connection's slot: hyper hands the socket on to the WebSocket
/// after an upgrade, and the slot goes with it. The slot is declared first so that it is
/// given back before the socket closes: a client that sees the close may connect again at
/// once and find its slot free.
#[derive(Debug)]
struct Held<S> {
    _slot: ConnectionSlot,
    io: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Counts a refused connection in flight for as long as it is held.
struct Refusing(Arc<ConnectionLimits>);

impl Drop for Refusing {
    fn drop(&mut self) {
        self.0.refusing.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs one accepted connection to its end.
pub async fn run<M: MediaPlane>(hub: Arc<Hub<M>>, stream: TcpStream, ip: IpAddr) {
    let _ = stream.set_nodelay(true);
    match hub.connections.admit(ip) {
        Ok(slot) => {
            let _live = LiveConnection::new(&hub.live);
            let io = Held {
                _slot: slot,
                io: stream,
            };
            if hub.config.tls.is_none() {
                serve(hub, io).await;
            } else if let Some(tls) = handshake(&hub, io).await {
                serve(hub, tls).await;
            }
        }
        Err(refusal) => {
            let limits = Arc::clone(&hub.connections);
            if limits.refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
                limits.refusing.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            let _refusing = Refusing(limits);
            if hub.config.tls.is_none() {
                refuse(stream, refusal).await;
            } else if let Some(tls) = handshake(&hub, stream).await {
                refuse(tls, refusal).await;
            }
        }
    }
}

/// The server side of the TLS handshake, bounded by the handshake timeout; None (counted)
/// when it fails: plain HTTP, a scanner, a client that does not trust the certificate, or
/// one that never finished its hello. Nothing was served and the socket is closed.
async fn handshake<M, S>(hub: &Hub<M>, io: S) -> Option<tokio_rustls::server::TlsStream<S>>
where
    M: MediaPlane,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let acceptor = hub.config.tls.as_ref()?.acceptor();
    let timeout = hub.config.tls_handshake_timeout;
    match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(_)) | Err(_) => {
            hub.connections.tls_failures.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Serves HTTP (and WebSocket upgrades) on an admitted connection until it closes or the
/// server shuts down.
async fn serve<M, S>(hub: Arc<Hub<M>>, io: S)
where
    M: MediaPlane,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut shutting_down = hub.shutting_down.subscribe();
    let service = {
        let hub = hub.clone();
        service_fn(move |request| http::handle(hub.clone(), request))
    };
    // The timer enables hyper's header read timeout (30 s), so that a client that never
    // finishes its request head does not hold the connection forever.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service)
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
}

/// Answers the connection's first request `503` and closes it.
async fn refuse<S>(io: S, refusal: Refusal)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |_request| async move {
        let body = serde_json::json!({"error": refusal.message()}).to_string();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        Ok::<_, std::convert::Infallible>(response)
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_HEADER_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_per_address_and_overall_and_come_back_when_dropped() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        // An IPv4 client seen on a dual-stack socket is the same address.
        let a_mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let second = limits.admit(a_mapped).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::AddressFull);
        let third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::ServerFull);
        drop(second);
        let again = limits.admit(a).unwrap();
        drop((first, third, again));
        assert_eq!(limits.open().total, 0);
        assert!(limits.open().per_ip.is_empty(), "no entry is left behind");
        let refused: Vec<(Option<(&str, &str)>, u64)> = limits
            .metrics()
            .iter()
            .filter(|m| m.name == "sluice_http_connections_refused")
            .map(|m| (m.label, m.value))
            .collect();
        assert_eq!(
            refused,
            [
                (Some(("reason", "server_full")), 1),
                (Some(("reason", "address_full")), 1)
            ]
        );
    }
}
