//! The Sluice server: the media plane on one UDP port, and the API the signaling service (and
//! tests) use to create sessions.
//!
//! [`Sfu::start`] binds the media port and starts the media workers. [`Sfu::publish`] answers a
//! publisher's offer (WHIP style) and [`Sfu::subscribe`] answers a subscriber's receive-only
//! offer for one publisher's tracks (WHEP style). Each answer names Sluice as the ICE-lite,
//! DTLS-server side with one host candidate on the media port; the peer connects, and media
//! flows through the worker's router.
//!
//! ```no_run
//! # async fn example(offer: &str) -> anyhow::Result<()> {
//! use server::{MediaConfig, Sfu};
//!
//! let sfu = Sfu::start(MediaConfig::loopback())?;
//! let answer = sfu.publish("lobby", offer).await?;
//! tracing::info!(session = answer.session.0, "publisher answered:\n{}", answer.sdp);
//! # Ok(()) }
//! ```

pub mod candidates;
mod channels;
pub mod config;
pub mod config_file;
mod hand_over;
pub mod https;
pub mod logging;
mod stats;
pub mod tcp;
pub mod token;
pub mod udp;
mod worker;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use anyhow::Context as _;
use channels::{Inbound, Shared, WorkerHandle};
use media_plane::{Command, Reply};
use rtc_core::dtls::DtlsCertificate;
use tokio::sync::oneshot;

pub use media_plane::SfuError;
pub use packet_router::{MediaKind, SessionId, TrackId};
pub use signaling::{
    LayerCap, LocalIceCredentials, MediaEvent, Played, Published, PublishedTrack, SubscriberOffer,
    TrackPriority, TrackView,
};
pub use stats::SfuStats;

/// Where the media plane listens and what it announces.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The media port's address.
    pub udp: SocketAddr,
    /// The addresses put into host candidates (for a server behind 1:1 NAT, or with several
    /// public addresses). When empty: the bound address, or every usable interface address
    /// (loopback last) when that is unspecified; see [`candidates`].
    pub public_ips: Vec<IpAddr>,
    /// Number of media worker threads.
    pub workers: usize,
    /// How long a session may take from its answer to a completed DTLS handshake.
    pub setup_timeout: std::time::Duration,
    /// ICE consent freshness (RFC 7675): a session whose peer sends no valid check for this
    /// long ends.
    pub consent_timeout: std::time::Duration,
    /// Send runs of equal-sized packets to one peer as one UDP GSO send where the kernel
    /// offers it (see docs/profiling.md for what it gains).
    pub gso: bool,
    /// Also listen with TCP on the media port's address and number, and announce a passive
    /// TCP host candidate (RFC 6544) per address, for peers whose networks block UDP.
    pub ice_tcp: bool,
    /// The most each publisher may send, in bits per second (`None`: no cap), told to it
    /// with REMB: a browser's estimator never goes above it.
    pub max_publish_bitrate: Option<u64>,
    /// When subscribers that accept redundant audio (RED, RFC 2198) get it.
    pub audio_red: packet_router::AudioRedMode,
}

impl MediaConfig {
    /// An ephemeral port on 127.0.0.1 with one worker, for tests and local runs.
    pub fn loopback() -> Self {
        MediaConfig {
            udp: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            public_ips: Vec::new(),
            workers: 1,
            setup_timeout: DEFAULT_SETUP_TIMEOUT,
            consent_timeout: DEFAULT_CONSENT_TIMEOUT,
            gso: DEFAULT_GSO,
            ice_tcp: DEFAULT_ICE_TCP,
            max_publish_bitrate: None,
            audio_red: packet_router::AudioRedMode::default(),
        }
    }
}

/// The default of [`MediaConfig::ice_tcp`].
pub const DEFAULT_ICE_TCP: bool = true;

/// The default of [`MediaConfig::gso`].
pub const DEFAULT_GSO: bool = true;

/// The default of [`MediaConfig::consent_timeout`] (RFC 7675).
pub const DEFAULT_CONSENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The default of [`MediaConfig::setup_timeout`].
pub const DEFAULT_SETUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Which worker owns a session: the one whose index its id carries.
pub(crate) fn owner_of(session: SessionId) -> usize {
    session.worker()
}

/// Binds the media port once per worker (UDP with SO_REUSEPORT) and, with ICE-TCP, a TCP
/// listener per worker on the same address and number. For an ephemeral port (0) whose
/// number is taken for TCP, another number is tried.
fn bind_media_port(
    config: &MediaConfig,
    workers: usize,
) -> anyhow::Result<(Vec<std::net::UdpSocket>, Vec<std::net::TcpListener>)> {
    const EPHEMERAL_ATTEMPTS: usize = 16;
    let attempts = if config.udp.port() == 0 {
        EPHEMERAL_ATTEMPTS
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..attempts {
        let first = udp::bind_reuse_port(config.udp)
            .with_context(|| format!("binding the media port {}", config.udp))?;
        let media_addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..workers {
            sockets.push(
                udp::bind_reuse_port(media_addr)
                    .with_context(|| format!("binding the media port {media_addr} again"))?,
            );
        }
        if !config.ice_tcp {
            return Ok((sockets, Vec::new()));
        }
        let listeners: std::io::Result<Vec<_>> = (0..workers)
            .map(|_| tcp::bind_reuse_port(media_addr))
            .collect();
        match listeners {
            Ok(listeners) => return Ok((sockets, listeners)),
            Err(e) => {
                last_error = Some(anyhow::Error::new(e).context(format!(
                    "listening with TCP on the media port {media_addr} (ICE-TCP; \
                     --ice-tcp off turns it off)"
                )))
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("binding the media port failed")))
}

/// The running media plane.
#[derive(Debug)]
pub struct Sfu {
    media_addr: SocketAddr,
    candidate_ips: Vec<IpAddr>,
    events: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<MediaEvent>>>,
    fingerprint: String,
    shared: Arc<Shared>,
    stats: Vec<Arc<stats::PublishedStats>>,
    threads: Mutex<Vec<JoinHandle<std::io::Result<()>>>>,
}

/// How long [`Sfu::stats`] waits for the workers' fresh snapshots.
const STATS_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Most workers (the owner index must fit a byte and the ufrag alphabet).
pub const MAX_WORKERS: usize = 64;

impl Sfu {
    /// Binds the media port (once per worker, with SO_REUSEPORT), generates the DTLS
    /// certificate and starts the media workers.
    pub fn start(config: MediaConfig) -> anyhow::Result<Sfu> {
        let workers = config.workers.clamp(1, MAX_WORKERS);
        let (sockets, listeners) = bind_media_port(&config, workers)?;
        let media_addr = sockets
            .first()
            .context("no media socket was bound")?
            .local_addr()?;
        let candidate_ips = candidates::candidate_ips(
            media_addr.ip(),
            &config.public_ips,
            &candidates::interface_ips(),
        );
        let mut candidate_lines = candidates::host_candidates(&candidate_ips, media_addr.port());
        if config.ice_tcp {
            candidate_lines.extend(candidates::tcp_host_candidates(
                &candidate_ips,
                media_addr.port(),
            ));
        }
        let certificate = DtlsCertificate::generate(&mut rand::rng())
            .map_err(|e| anyhow::anyhow!("generating the DTLS certificate: {e}"))?;
        let fingerprint = certificate.fingerprint().to_string();

        let mut polls = Vec::new();
        let mut receivers = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..workers {
            let poll = mio::Poll::new()?;
            let (inbound, receiver) = mpsc::channel();
            handles.push(WorkerHandle {
                inbound,
                waker: worker::waker(&poll)?,
            });
            polls.push(poll);
            receivers.push(receiver);
        }
        let (events, events_receiver) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            workers: handles,
            events,
            owners: std::sync::RwLock::default(),
            owners_generation: AtomicU64::new(0),
        });
        let mut stats = Vec::new();
        let mut threads = Vec::new();
        let tcp_slots = tcp::TcpSlots::new(tcp::MAX_CONNECTIONS, tcp::MAX_CONNECTIONS_PER_IP);
        let mut listeners = listeners.into_iter();
        for (index, ((socket, poll), receiver)) in
            sockets.into_iter().zip(polls).zip(receivers).enumerate()
        {
            let listener = listeners.next().map(mio::net::TcpListener::from_std);
            let worker_stats = Arc::new(stats::PublishedStats::default());
            let core = media_plane::CoreConfig {
                ids: rtc_core::IdSpace {
                    node: rtc_core::NodeId::default(),
                    // At most MAX_WORKERS (64), so it fits.
                    worker: u8::try_from(index).unwrap_or(u8::MAX),
                },
                workers,
                certificate: certificate.clone(),
                fingerprint: fingerprint.clone(),
                candidates: candidate_lines.clone(),
                setup_timeout: config.setup_timeout,
                consent_timeout: config.consent_timeout,
                group_transmits: config.gso,
                publisher_max_bitrate: config.max_publish_bitrate,
                router: packet_router::RouterConfig {
                    audio_red: config.audio_red,
                    ..packet_router::RouterConfig::default()
                },
                seed: rand::random(),
            };
            let worker = worker::Worker::new(
                core,
                mio::net::UdpSocket::from_std(socket),
                poll,
                receiver,
                Arc::clone(&shared),
                Arc::clone(&worker_stats),
                listener,
                Arc::clone(&tcp_slots),
                config.gso,
            )?;
            threads.push(
                std::thread::Builder::new()
                    .name(format!("sluice-media-{index}"))
                    .spawn(move || worker.run())?,
            );
            stats.push(worker_stats);
        }
        Ok(Sfu {
            media_addr,
            candidate_ips,
            events: Mutex::new(Some(events_receiver)),
            fingerprint,
            shared,
            stats,
            threads: Mutex::new(threads),
        })
    }

    /// The bound media address.
    pub fn media_addr(&self) -> SocketAddr {
        self.media_addr
    }

    /// The addresses announced in ICE candidates (with the media port), best first.
    pub fn candidate_ips(&self) -> &[IpAddr] {
        &self.candidate_ips
    }

    /// The SHA-256 fingerprint of the DTLS certificate, as written in SDP.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Number of media workers.
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    fn worker(&self, index: usize) -> Result<&WorkerHandle, SfuError> {
        self.shared.workers.get(index).ok_or(SfuError::Stopped)
    }

    /// The worker that owns a room: every session of a room lives on one worker, so its
    /// router state is touched by one thread only.
    fn room_worker(&self, room: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        room.hash(&mut hasher);
        (hasher.finish() % self.shared.workers.len() as u64) as usize
    }

    /// Sends `command` to worker `index` and waits for its reply, which `expect` takes
    /// apart (a reply of another kind cannot come back; it reads as a stopped media plane).
    async fn request<T>(
        &self,
        index: usize,
        command: Command,
        expect: impl FnOnce(Reply) -> Option<Result<T, SfuError>>,
    ) -> Result<T, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.worker(index)?
            .send(Inbound::Command { command, reply })?;
        let reply = answer.await.map_err(|_| SfuError::Stopped)?;
        expect(reply).unwrap_or(Err(SfuError::Stopped))
    }

    /// Answers a publisher's offer: its audio and video become tracks of `room`.
    pub async fn publish(&self, room: &str, offer_sdp: &str) -> Result<Published, SfuError> {
        let command = Command::Publish {
            room: room.to_owned(),
            session: None,
            offer: offer_sdp.to_owned(),
        };
        self.request(self.room_worker(room), command, published)
            .await
    }

    /// Answers a publisher's new offer on its existing connection (tracks added or removed).
    pub async fn republish(
        &self,
        session: SessionId,
        offer_sdp: &str,
    ) -> Result<Published, SfuError> {
        let command = Command::Publish {
            room: String::new(),
            session: Some(session),
            offer: offer_sdp.to_owned(),
        };
        self.request(owner_of(session), command, published).await
    }

    /// Answers a player's receive-only offer with `publisher`'s audio and video (WHEP).
    pub async fn subscribe(
        &self,
        room: &str,
        publisher: SessionId,
        offer_sdp: &str,
    ) -> Result<Played, SfuError> {
        if owner_of(publisher) >= self.workers() {
            return Err(SfuError::UnknownPublisher);
        }
        let command = Command::Play {
            room: room.to_owned(),
            publisher,
            offer: offer_sdp.to_owned(),
        };
        self.request(owner_of(publisher), command, |reply| match reply {
            Reply::Played(result) => Some(result),
            _ => None,
        })
        .await
    }

    /// Creates a subscriber connection in `room` whose tracks Sluice offers
    /// ([`Sfu::offer_tracks`]).
    pub async fn create_subscriber(&self, room: &str) -> Result<SessionId, SfuError> {
        let command = Command::CreateSubscriber {
            room: room.to_owned(),
        };
        self.request(self.room_worker(room), command, |reply| match reply {
            Reply::SubscriberCreated(result) => Some(result),
            _ => None,
        })
        .await
    }

    /// Sluice's (re)offer to a subscriber connection carrying exactly `tracks` (of its room):
    /// mids are stable, and m-lines of tracks no longer listed become inactive.
    pub async fn offer_tracks(
        &self,
        session: SessionId,
        tracks: &[TrackId],
    ) -> Result<SubscriberOffer, SfuError> {
        let command = Command::OfferTracks {
            session,
            tracks: tracks.to_vec(),
            restart_ice: false,
        };
        self.request(owner_of(session), command, offered).await
    }

    /// [`Sfu::offer_tracks`] with new ICE credentials of Sluice's: an ICE restart of a
    /// subscriber connection, which Sluice offers. The peer's answer
    /// ([`Sfu::answer_subscriber`]) brings its new credentials and completes the restart;
    /// until then the current ICE session carries on, and re-offers before that answer
    /// repeat the same new credentials. The DTLS association and SRTP keys stay.
    pub async fn offer_tracks_with_ice_restart(
        &self,
        session: SessionId,
        tracks: &[TrackId],
    ) -> Result<SubscriberOffer, SfuError> {
        if owner_of(session) >= self.workers() {
            return Err(SfuError::UnknownSession);
        }
        let command = Command::OfferTracks {
            session,
            tracks: tracks.to_vec(),
            restart_ice: true,
        };
        self.request(owner_of(session), command, offered).await
    }

    /// Applies a subscriber's answer to Sluice's last offer.
    pub async fn answer_subscriber(
        &self,
        session: SessionId,
        answer_sdp: &str,
    ) -> Result<(), SfuError> {
        let command = Command::AnswerSubscriber {
            session,
            answer: answer_sdp.to_owned(),
        };
        self.request(owner_of(session), command, |reply| match reply {
            Reply::Answered(result) => Some(result),
            _ => None,
        })
        .await
    }

    /// ICE restart of `session` (publisher, player or subscriber alike) with the peer's new
    /// credentials: the session gets new local credentials (the ufrag still names its worker)
    /// and is found by them from now on; checks on the old ones are refused. The DTLS
    /// association and SRTP keys stay, and media keeps flowing to the selected address until
    /// a check on the new credentials moves it. Returns Sluice's new credentials and its
    /// candidates, for the answer (a WHIP/WHEP PATCH response, or a new SDP).
    pub async fn restart_ice(
        &self,
        session: SessionId,
        remote_ufrag: &str,
        remote_pwd: &str,
    ) -> Result<LocalIceCredentials, SfuError> {
        if owner_of(session) >= self.workers() {
            return Err(SfuError::UnknownSession);
        }
        let command = Command::RestartIce {
            session,
            remote_ufrag: remote_ufrag.to_owned(),
            remote_pwd: remote_pwd.to_owned(),
        };
        self.request(owner_of(session), command, |reply| match reply {
            Reply::IceRestarted(result) => Some(result),
            _ => None,
        })
        .await
    }

    /// Caps the simulcast layer `session` receives of `track` (0: the lowest resolution;
    /// `None`: the highest active, the default; the switch happens at the layer's keyframe)
    /// and its temporal layer.
    pub async fn set_layer_cap(
        &self,
        session: SessionId,
        track: TrackId,
        cap: LayerCap,
    ) -> Result<(), SfuError> {
        if owner_of(session) >= self.workers() {
            return Err(SfuError::UnknownSession);
        }
        let command = Command::SetLayerCap {
            session,
            track,
            cap,
        };
        self.request(owner_of(session), command, |reply| match reply {
            Reply::Answered(result) => Some(result),
            _ => None,
        })
        .await
    }

    /// How receiving `session` shows `track` (adaptive stream): the layer stays within the
    /// smallest one covering the tile, a hidden track gets nothing, a pinned one goes before
    /// the dominant speaker.
    pub async fn set_track_view(
        &self,
        session: SessionId,
        track: TrackId,
        view: TrackView,
    ) -> Result<(), SfuError> {
        if owner_of(session) >= self.workers() {
            return Err(SfuError::UnknownSession);
        }
        let command = Command::SetTrackView {
            session,
            track,
            view,
        };
        self.request(owner_of(session), command, |reply| match reply {
            Reply::Answered(result) => Some(result),
            _ => None,
        })
        .await
    }

    /// `track`'s priority in every receiver's allocation (screen share, dominant speaker).
    pub async fn set_track_priority(
        &self,
        track: TrackId,
        priority: TrackPriority,
    ) -> Result<(), SfuError> {
        if track.worker() >= self.workers() {
            return Err(SfuError::UnknownTrack);
        }
        let command = Command::SetTrackPriority { track, priority };
        self.request(track.worker(), command, |reply| match reply {
            Reply::Answered(result) => Some(result),
            _ => None,
        })
        .await
    }

    /// The most publisher `session` may send, in bits per second (`None`: only the server's
    /// `--max-publish-bitrate`); the lower of the two is told to it with REMB.
    pub async fn set_publisher_max_bitrate(
        &self,
        session: SessionId,
        max_bitrate: Option<u64>,
    ) -> Result<(), SfuError> {
        if owner_of(session) >= self.workers() {
            return Err(SfuError::UnknownSession);
        }
        let command = Command::SetPublisherMaxBitrate {
            session,
            max_bitrate,
        };
        self.request(owner_of(session), command, |reply| match reply {
            Reply::Answered(result) => Some(result),
            _ => None,
        })
        .await
    }

    /// The stream of [`MediaEvent`]s; the first call takes it, later calls get `None`.
    pub fn take_events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<MediaEvent>> {
        self.events.lock().ok()?.take()
    }

    /// Ends a session and frees everything it held.
    pub async fn close(&self, session: SessionId) {
        let (reply, done) = oneshot::channel();
        let Some(worker) = self.shared.workers.get(owner_of(session)) else {
            return;
        };
        let command = Command::Close { session };
        if worker.send(Inbound::Command { command, reply }).is_ok() {
            let _ = done.await;
        }
    }

    /// Stops the media plane: every worker sends RTCP BYE to its peers, frees its sessions
    /// and exits; returns once all have. Later requests fail with [`SfuError::Stopped`].
    pub fn shutdown(&self) {
        for worker in &self.shared.workers {
            let _ = worker.send(Inbound::Shutdown);
        }
        let threads = self
            .threads
            .lock()
            .map(|mut threads| std::mem::take(&mut *threads))
            .unwrap_or_default();
        for thread in threads {
            let _ = thread.join();
        }
    }

    /// A snapshot of the media plane's counters, summed over the workers. Workers publish
    /// their counters at a bounded rate; this asks each for a fresh snapshot and waits a
    /// little for it (a worker busy with a long batch, or stopped, answers with its last).
    pub fn stats(&self) -> SfuStats {
        for (stats, worker) in self.stats.iter().zip(&self.shared.workers) {
            if stats.request() {
                let _ = worker.wake();
            }
        }
        let give_up = std::time::Instant::now() + STATS_WAIT;
        while self.stats.iter().any(|stats| stats.pending()) && std::time::Instant::now() < give_up
        {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let mut total = SfuStats::default();
        for stats in &self.stats {
            total.add(&stats.snapshot());
        }
        total
    }
}

/// Takes a publish reply apart.
fn published(reply: Reply) -> Option<Result<Published, SfuError>> {
    match reply {
        Reply::Published(result) => Some(result),
        _ => None,
    }
}

/// Takes an offer reply apart.
fn offered(reply: Reply) -> Option<Result<SubscriberOffer, SfuError>> {
    match reply {
        Reply::Offer(result) => Some(result),
        _ => None,
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What signaling makes of a media plane error.
fn media_error(error: SfuError) -> signaling::MediaError {
    match error {
        SfuError::UnknownPublisher | SfuError::UnknownSession | SfuError::UnknownTrack => {
            signaling::MediaError::UnknownSession
        }
        SfuError::Stopped => signaling::MediaError::Stopped,
        SfuError::Sdp(error) => signaling::MediaError::Sdp(error),
        _ => signaling::MediaError::BadSdp(error.to_string()),
    }
}

/// The signaling service drives the media plane through this.
impl signaling::MediaPlane for Sfu {
    async fn publish(
        &self,
        room: &str,
        session: Option<SessionId>,
        offer: &str,
    ) -> Result<Published, signaling::MediaError> {
        Ok(match session {
            None => Sfu::publish(self, room, offer).await.map_err(media_error)?,
            Some(session) => self.republish(session, offer).await.map_err(media_error)?,
        })
    }

    async fn play(
        &self,
        room: &str,
        publisher: SessionId,
        offer: &str,
    ) -> Result<Played, signaling::MediaError> {
        self.subscribe(room, publisher, offer)
            .await
            .map_err(media_error)
    }

    async fn create_subscriber(&self, room: &str) -> Result<SessionId, signaling::MediaError> {
        Sfu::create_subscriber(self, room)
            .await
            .map_err(media_error)
    }

    async fn offer_tracks(
        &self,
        subscriber: SessionId,
        tracks: &[TrackId],
    ) -> Result<SubscriberOffer, signaling::MediaError> {
        Sfu::offer_tracks(self, subscriber, tracks)
            .await
            .map_err(media_error)
    }

    async fn answer_subscriber(
        &self,
        subscriber: SessionId,
        answer: &str,
    ) -> Result<(), signaling::MediaError> {
        Sfu::answer_subscriber(self, subscriber, answer)
            .await
            .map_err(media_error)
    }

    async fn offer_tracks_with_ice_restart(
        &self,
        subscriber: SessionId,
        tracks: &[TrackId],
    ) -> Result<SubscriberOffer, signaling::MediaError> {
        Sfu::offer_tracks_with_ice_restart(self, subscriber, tracks)
            .await
            .map_err(media_error)
    }

    async fn restart_ice(
        &self,
        session: SessionId,
        remote_ufrag: &str,
        remote_pwd: &str,
    ) -> Result<LocalIceCredentials, signaling::MediaError> {
        Sfu::restart_ice(self, session, remote_ufrag, remote_pwd)
            .await
            .map_err(media_error)
    }

    async fn set_layer_cap(
        &self,
        session: SessionId,
        track: TrackId,
        cap: LayerCap,
    ) -> Result<(), signaling::MediaError> {
        Sfu::set_layer_cap(self, session, track, cap)
            .await
            .map_err(media_error)
    }

    async fn set_track_view(
        &self,
        session: SessionId,
        track: TrackId,
        view: TrackView,
    ) -> Result<(), signaling::MediaError> {
        Sfu::set_track_view(self, session, track, view)
            .await
            .map_err(media_error)
    }

    async fn set_track_priority(
        &self,
        track: TrackId,
        priority: TrackPriority,
    ) -> Result<(), signaling::MediaError> {
        Sfu::set_track_priority(self, track, priority)
            .await
            .map_err(media_error)
    }

    async fn set_publisher_max_bitrate(
        &self,
        session: SessionId,
        max_bitrate: Option<u64>,
    ) -> Result<(), signaling::MediaError> {
        Sfu::set_publisher_max_bitrate(self, session, max_bitrate)
            .await
            .map_err(media_error)
    }

    async fn close(&self, session: SessionId) {
        Sfu::close(self, session).await;
    }

    fn events(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<MediaEvent>> {
        self.take_events()
    }

    fn metrics(&self) -> Vec<signaling::MediaMetric> {
        self.stats().metrics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SDP error stays rtc-core's typed error on its way to signaling, and clients read
    /// the same text as when it travelled as a string.
    #[test]
    fn sdp_errors_reach_signaling_typed_with_the_text_clients_know() {
        let error = rtc_core::sdp::SdpError::NoBundle;
        let media = media_error(SfuError::from(error));
        assert_eq!(media, signaling::MediaError::Sdp(error));
        let as_text =
            signaling::MediaError::BadSdp(SfuError::BadOffer(error.to_string()).to_string());
        assert_eq!(media.to_string(), as_text.to_string());
    }
}
