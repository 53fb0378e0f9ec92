//! The bare forwarder: the physical limit Sluice is measured against. It takes the same
//! traffic from the same load generator, through the same signaling (Sluice's WHIP and WHEP
//! endpoints, served by `signaling::serve`), the same ICE-lite, DTLS and SRTP code (rtc-core,
//! ice-lite) and the same socket code (`server::udp`: recvmmsg and sendmmsg), and does only
//! the work no SFU can avoid: per received packet one SRTP unprotect, and per subscriber a
//! copy, an SRTP protect and a place in a batched send (sendmmsg; with UDP GSO, a subscriber's
//! run of a publisher's packets is one entry). Nothing is rewritten: packets keep the
//! publisher's SSRC, sequence number and timestamp (each subscriber has its own SRTP context,
//! so that is sound). RTCP is dropped, there is no NACK, no keyframe request, no per-packet
//! statistic beyond plain counters.
//!
//! One media thread owns one UDP socket and every session; signaling reaches it through a
//! channel and a mio waker.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::sync::Arc;
//!
//! let forwarder = Arc::new(benches::bare::BareForwarder::start("127.0.0.1:0".parse()?, true)?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! signaling::serve(
//!     listener,
//!     Arc::clone(&forwarder),
//!     signaling::SignalingConfig::default(),
//!     std::future::pending(),
//! )
//! .await?;
//! # Ok(()) }
//! ```

mod counters;
mod forward;
mod media;
mod negotiation;
mod session;
mod table;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ice_lite::Candidate;
use mio::{Interest, Poll, Waker};
use packet_router::{SessionId, TrackId};
use rtc_core::dtls::DtlsCertificate;
use signaling::{MediaError, MediaEvent, Played, Published, SubscriberOffer};
use tokio::sync::oneshot;

pub use counters::{Counters, DropReason};

use media::{Command, MediaThread};
use negotiation::LocalContext;

/// How long a session may take from its answer to a completed DTLS handshake (as Sluice).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The running bare forwarder: the handle signaling drives.
#[derive(Debug)]
pub struct BareForwarder {
    media_addr: SocketAddr,
    gso: bool,
    commands: mpsc::Sender<Command>,
    waker: Waker,
    events: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<MediaEvent>>>,
    counters: Arc<Mutex<Counters>>,
    thread: Mutex<Option<JoinHandle<Counters>>>,
}

impl BareForwarder {
    /// Binds the media port, generates the DTLS certificate and starts the media thread.
    /// Candidates announce the bound address (loopback when it is unspecified). With `gso`,
    /// each subscriber's run of a publisher's packets goes out as one UDP GSO send where the
    /// kernel offers it (as Sluice does by default).
    pub fn start(udp: SocketAddr, gso: bool) -> anyhow::Result<BareForwarder> {
        let socket = server::udp::bind_reuse_port(udp)
            .with_context(|| format!("binding the media port {udp}"))?;
        let media_addr = socket.local_addr()?;
        let candidate_ip = if media_addr.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            media_addr.ip()
        };
        let candidate = Candidate::host(candidate_ip, media_addr.port()).to_string();
        let candidate = candidate
            .strip_prefix("candidate:")
            .unwrap_or(&candidate)
            .to_owned();
        let certificate = DtlsCertificate::generate(&mut rand::rng())
            .map_err(|e| anyhow::anyhow!("generating the DTLS certificate: {e}"))?;
        let context = Arc::new(LocalContext {
            fingerprint: certificate.fingerprint().to_string(),
            certificate,
            candidate,
            setup_timeout: SETUP_TIMEOUT,
            next_id: AtomicU64::new(1),
        });

        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), media::WAKER)?;
        let mut socket = mio::net::UdpSocket::from_std(socket);
        poll.registry()
            .register(&mut socket, media::SOCKET, Interest::READABLE)?;
        let (commands, receiver) = mpsc::channel();
        let (events, events_receiver) = tokio::sync::mpsc::unbounded_channel();
        let counters = Arc::new(Mutex::new(Counters::default()));
        let now = Instant::now();
        let mut socket = server::udp::BatchSocket::new(socket)?;
        let gso = socket.set_gso(gso);
        let thread = MediaThread {
            socket,
            poll,
            commands: receiver,
            events,
            context,
            shared_counters: Arc::clone(&counters),
            table: table::SessionTable::default(),
            pending: forward::PendingFanOut::default(),
            queue: forward::SendQueue::default(),
            counters: Counters::default(),
            now,
            next_timeout: None,
            next_snapshot: now,
            scratch: vec![0; 2048],
            due: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("bare-media".to_owned())
            .spawn(move || thread.run())?;
        Ok(BareForwarder {
            media_addr,
            gso,
            commands,
            waker,
            events: Mutex::new(Some(events_receiver)),
            counters,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The bound media address.
    pub fn media_addr(&self) -> SocketAddr {
        self.media_addr
    }

    /// Whether sends use UDP GSO (asked for, and offered by the kernel).
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// The counters as of the last second.
    pub fn counters(&self) -> Counters {
        self.counters.lock().map(|c| *c).unwrap_or_default()
    }

    /// Stops the media thread and returns its final counters (`None` once stopped).
    pub fn shutdown(&self) -> Option<Counters> {
        let thread = self.thread.lock().ok()?.take()?;
        self.send(Command::Shutdown).ok();
        thread.join().ok()
    }

    fn send(&self, command: Command) -> Result<(), MediaError> {
        self.commands
            .send(command)
            .map_err(|_| MediaError::Stopped)?;
        self.waker.wake().map_err(|_| MediaError::Stopped)
    }

    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, MediaError>>) -> Command,
    ) -> Result<T, MediaError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply))?;
        answer.await.map_err(|_| MediaError::Stopped)?
    }
}

impl Drop for BareForwarder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the bare forwarder does not do: the room protocol (server-offered subscriber
/// connections) and renegotiation.
fn out_of_scope(what: &str) -> MediaError {
    MediaError::BadSdp(format!(
        "the bare forwarder serves WHIP publish and WHEP play only, not {what}"
    ))
}

impl signaling::MediaPlane for BareForwarder {
    async fn publish(
        &self,
        room: &str,
        session: Option<SessionId>,
        offer: &str,
    ) -> Result<Published, MediaError> {
        if session.is_some() {
            return Err(out_of_scope("renegotiation"));
        }
        self.request(|reply| Command::Publish {
            room: room.to_owned(),
            offer: offer.to_owned(),
            reply,
        })
        .await
    }

    async fn play(
        &self,
        room: &str,
        publisher: SessionId,
        offer: &str,
    ) -> Result<Played, MediaError> {
        self.request(|reply| Command::Play {
            room: room.to_owned(),
            publisher,
            offer: offer.to_owned(),
            reply,
        })
        .await
    }

    async fn create_subscriber(&self, _room: &str) -> Result<SessionId, MediaError> {
        Err(out_of_scope("the room protocol"))
    }

    async fn offer_tracks_with_ice_restart(
        &self,
        _subscriber: SessionId,
        _tracks: &[TrackId],
    ) -> Result<SubscriberOffer, MediaError> {
        Err(out_of_scope("the room protocol"))
    }

    async fn restart_ice(
        &self,
        _session: SessionId,
        _remote_ufrag: &str,
        _remote_pwd: &str,
    ) -> Result<signaling::LocalIceCredentials, MediaError> {
        Err(out_of_scope("ICE restarts"))
    }

    async fn offer_tracks(
        &self,
        _subscriber: SessionId,
        _tracks: &[TrackId],
    ) -> Result<SubscriberOffer, MediaError> {
        Err(out_of_scope("the room protocol"))
    }

    async fn answer_subscriber(
        &self,
        _subscriber: SessionId,
        _answer: &str,
    ) -> Result<(), MediaError> {
        Err(out_of_scope("the room protocol"))
    }

    async fn close(&self, session: SessionId) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Close { session, reply }).is_ok() {
            let _ = done.await;
        }
    }

    fn events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<MediaEvent>> {
        self.events.lock().ok()?.take()
    }

    fn metrics(&self) -> Vec<signaling::MediaMetric> {
        self.counters().metrics()
    }
}
