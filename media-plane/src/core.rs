//! The worker core: everything a media worker decides, without its sockets. It owns the
//! sessions and their indices (by ICE ufrag, by validated address), the router, and each
//! session's whole life — created by a command, validated by ICE, connected by DTLS, its
//! subscriptions bound, ended by a command, by its peer or by a timer, its players ended
//! with it.
//!
//! The worker shell (the server's mio loop) feeds it datagrams, commands and the time, and
//! drains what it produced:
//!
//! ```no_run
//! # use std::time::Instant;
//! # use media_plane::{CoreConfig, CoreEvent, DatagramOutcome, WorkerCore};
//! # fn run(core: &mut WorkerCore, datagrams: &mut [(std::net::SocketAddr, Vec<u8>)],
//! #        send: &mut dyn FnMut(std::net::SocketAddr, &[u8])) {
//! let now = Instant::now();
//! for (source, datagram) in datagrams.iter_mut() {
//!     match core.handle_datagram(now, *source, datagram) {
//!         DatagramOutcome::Done | DatagramOutcome::Dropped => {}
//!         // Another worker's session: the shell hands the datagram over.
//!         DatagramOutcome::HandOver(_) | DatagramOutcome::UnknownSource => {}
//!     }
//! }
//! core.handle_timeout(now);
//! for (destination, bytes) in core.poll_transmits().iter() {
//!     send(destination, bytes);
//! }
//! core.clear_transmits();
//! while let Some(event) = core.poll_event() {
//!     // CoreEvent::SessionEnded { .. } goes to signaling, address claims to the
//!     // table that other workers read.
//! }
//! let _sleep_until = core.poll_timeout();
//! # }
//! ```
//!
//! Sans-IO: time is an argument, randomness comes from the seed in [`CoreConfig`], and
//! output is polled. The same core runs under the virtual-time tests of this crate.

mod commands;
mod transmits;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_lite::{DatagramKind, StunMessage, classify};
use packet_router::{IdHashMap, Router, RouterConfig, SessionId, TrackId, TransmitQueue};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rtc_core::IdSpace;
use rtc_core::dtls::DtlsCertificate;

pub use commands::{Command, MAX_SUBSCRIBER_SLOTS, MAX_TRACKS_PER_PUBLISHER, Reply};
pub use transmits::Transmits;

use crate::negotiation::ufrag_owner;
use crate::peer::{EndReason, Output, PeerDrop, PeerEvent, Received};
use crate::session::{Session, SessionRole};
use crate::stats::{DropReason, MediaStats};
use crate::timers::DeadlineQueue;

/// What a worker core is configured with once, at start.
#[derive(Debug)]
pub struct CoreConfig {
    /// The node and worker index its ids carry; the worker index is also the first
    /// character of its ICE ufrags.
    pub ids: IdSpace,
    /// How many workers share the media port (datagrams for another worker's ufrag are
    /// handed over only when there are several).
    pub workers: usize,
    /// The server's DTLS certificate and its fingerprint as SDP writes it.
    pub certificate: DtlsCertificate,
    pub fingerprint: String,
    /// The host candidates as `a=candidate:` values, best first.
    pub candidates: Vec<String>,
    /// A session that has not completed DTLS by then ends (never connected).
    pub setup_timeout: Duration,
    /// ICE consent: a session with no check (or authenticated media) for this long ends.
    pub consent_timeout: Duration,
    /// Send each session's transmits together, so that runs to one destination can be sent
    /// as one segmented (GSO) datagram.
    pub group_transmits: bool,
    /// The most each publisher may send, in bits per second (`None`: no cap): told to it
    /// with REMB, which a browser's estimator takes as its ceiling.
    pub publisher_max_bitrate: Option<u64>,
    /// The router's tuning (its ids are minted in [`CoreConfig::ids`] too).
    pub router: RouterConfig,
    /// Seeds every random choice of the core (ICE credentials, SSRCs, initial sequence
    /// numbers and timestamps, SDP session ids).
    pub seed: u64,
}

/// What [`WorkerCore::handle_datagram`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramOutcome {
    /// Taken in (its consequences come out of the poll methods).
    Done,
    /// A STUN request whose ufrag names another worker: hand it to that worker.
    HandOver(usize),
    /// DTLS or media from an address no session of this core has validated: it may be
    /// another worker's (the shell knows which addresses the others own); otherwise the
    /// shell counts it with [`WorkerCore::count_drop`].
    UnknownSource,
    /// Dropped and counted.
    Dropped,
}

/// What the core tells its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreEvent {
    /// A session ended by itself (consent expired, DTLS failed or closed, never connected,
    /// its publisher left): signaling must learn of it.
    SessionEnded {
        /// The session.
        session: SessionId,
        /// Why.
        reason: EndReason,
    },
    /// An audio track's last 100 ms: packets received and the voiced ones (RFC 6464 level),
    /// for the dominant-speaker decision in signaling.
    AudioActivity {
        track: TrackId,
        publisher: SessionId,
        packets: u16,
        voiced: u16,
    },
    /// A receiving session's downlink, after each run of its layer allocation: the estimate,
    /// what the video allocated takes and what it would take at the best layers the client
    /// allows (bits per second), the transport-wide loss (per mille), and the tracks paused.
    DownlinkQuality {
        session: SessionId,
        estimate_bps: u64,
        allocated_bps: u64,
        wanted_bps: u64,
        loss_per_mille: u16,
        paused: u16,
    },
    /// A remote address passed an ICE check: its datagrams belong to this worker.
    AddressClaimed(SocketAddr),
    /// A remote address no longer belongs to this worker.
    AddressReleased(SocketAddr),
}

/// Events kept until polled.
const MAX_EVENTS: usize = 4096;

/// The sans-IO core of one media worker.
#[derive(Debug)]
pub struct WorkerCore {
    config: CoreConfig,
    rng: ChaCha8Rng,
    next_serial: u64,
    sessions: IdHashMap<SessionId, Session>,
    /// Keyed by peer-chosen strings, so hashed with SipHash; STUN is not the hot path.
    by_ufrag: HashMap<String, SessionId>,
    by_address: IdHashMap<SocketAddr, SessionId>,
    /// When each session next needs its timers run.
    timers: DeadlineQueue,
    router: Router,
    /// What the router queued: media and RTCP, protected when polled.
    out: TransmitQueue,
    /// STUN responses and DTLS flights, ready to send.
    control: transmits::ControlQueue,
    /// Where each queued router transmit goes, and the order they are sent in.
    destinations: Vec<Option<SocketAddr>>,
    send_order: Vec<usize>,
    events: VecDeque<CoreEvent>,
    stats: MediaStats,
    /// Sessions whose timers are due, reused every round.
    due: Vec<SessionId>,
    scratch: Vec<u8>,
}

impl WorkerCore {
    /// A core with no sessions.
    pub fn new(config: CoreConfig) -> Self {
        WorkerCore {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            router: Router::new(RouterConfig {
                ids: config.ids,
                ..config.router
            }),
            config,
            next_serial: 1,
            sessions: IdHashMap::default(),
            by_ufrag: HashMap::new(),
            by_address: IdHashMap::default(),
            timers: DeadlineQueue::default(),
            out: TransmitQueue::with_capacity(256),
            control: transmits::ControlQueue::default(),
            destinations: Vec::with_capacity(256),
            send_order: Vec::with_capacity(256),
            events: VecDeque::new(),
            stats: MediaStats::default(),
            due: Vec::new(),
            scratch: vec![0; 2048],
        }
    }

    /// The worker index of this core.
    pub fn worker(&self) -> usize {
        usize::from(self.config.ids.worker)
    }

    /// How many sessions it holds.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The session whose ICE ufrag is `ufrag`.
    pub fn session_of_ufrag(&self, ufrag: &str) -> Option<SessionId> {
        self.by_ufrag.get(ufrag).copied()
    }

    /// The session that validated `address`.
    pub fn session_of_address(&self, address: &SocketAddr) -> Option<SessionId> {
        self.by_address.get(address).copied()
    }

    /// Whether the session exists.
    pub fn has_session(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// Whether the session is connected (DTLS done, SRTP keys installed).
    pub fn is_connected(&self, session: SessionId) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|s| s.transport.is_connected())
    }

    /// The address the session sends to.
    pub fn remote_of(&self, session: SessionId) -> Option<SocketAddr> {
        self.sessions.get(&session)?.transport.remote()
    }

    /// The router, for reading its state (tests, stats).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Counts a datagram the shell dropped on the core's behalf.
    pub fn count_drop(&mut self, reason: DropReason) {
        self.stats.dropped(reason);
    }

    /// The counters the shell keeps itself (datagrams received, socket errors, ...).
    pub fn stats_mut(&mut self) -> &mut MediaStats {
        &mut self.stats
    }

    /// The core's counters with the router's and the session count.
    pub fn stats(&self) -> MediaStats {
        let mut snapshot = self.stats.clone();
        snapshot.absorb_router(self.router.stats());
        snapshot.sessions = self.sessions.len() as u64;
        snapshot
    }

    /// The next event for the shell.
    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    /// When [`WorkerCore::handle_timeout`] must next run: the earliest session or router
    /// deadline. No session is scanned.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        [self.timers.next_deadline(), self.router.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Handles one datagram received on the media port from `source`, demultiplexed by its
    /// first byte (RFC 7983): STUN goes to the session its ufrag names, everything else to
    /// the session that validated the source address; SRTP and SRTCP are unprotected in
    /// place and handed to the router.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &mut [u8],
    ) -> DatagramOutcome {
        match classify(datagram) {
            DatagramKind::Stun => self.handle_stun(now, source, datagram),
            DatagramKind::Dtls => self.handle_dtls(now, source, datagram),
            DatagramKind::Rtp => self.handle_srtp(now, source, datagram, false),
            DatagramKind::Rtcp => self.handle_srtp(now, source, datagram, true),
            _ => {
                self.stats.dropped(DropReason::UnknownProtocol);
                DatagramOutcome::Dropped
            }
        }
    }

    fn handle_stun(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
    ) -> DatagramOutcome {
        let Ok(message) = StunMessage::parse(datagram) else {
            self.stats.dropped(DropReason::MalformedStun);
            return DatagramOutcome::Dropped;
        };
        // USERNAME is "<our ufrag>:<their ufrag>"; our ufrag names the session, and its first
        // character the worker that owns it.
        let local_ufrag = local_ufrag(&message);
        if let Some(owner) = local_ufrag.and_then(ufrag_owner)
            && owner != self.worker()
            && owner < self.config.workers
        {
            return DatagramOutcome::HandOver(owner);
        }
        let id = local_ufrag
            .and_then(|local| self.by_ufrag.get(local))
            .copied();
        let Some(session) = id.and_then(|id| self.sessions.get_mut(&id)) else {
            self.stats.dropped(DropReason::UnknownStunUsername);
            return DatagramOutcome::Dropped;
        };
        let id = session.id;
        let outcome = session.transport.handle_stun(now, source, &message);
        if outcome.response_len().is_some() {
            self.stats.stun_responses_sent += 1;
        }
        self.drive(now, id);
        DatagramOutcome::Done
    }

    fn handle_dtls(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
    ) -> DatagramOutcome {
        let Some(id) = self.by_address.get(&source).copied() else {
            return DatagramOutcome::UnknownSource;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return DatagramOutcome::UnknownSource;
        };
        let dropped_before = session.transport.dropped_dtls();
        let received = session.transport.handle_dtls(now, source, datagram);
        self.stats.dropped_dtls += session
            .transport
            .dropped_dtls()
            .saturating_sub(dropped_before);
        self.drive(now, id);
        match received {
            Received::Dropped(reason) => {
                self.count_peer_drop(reason);
                DatagramOutcome::Dropped
            }
            _ => DatagramOutcome::Done,
        }
    }

    fn handle_srtp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &mut [u8],
        rtcp: bool,
    ) -> DatagramOutcome {
        let Some(&id) = self.by_address.get(&source) else {
            return DatagramOutcome::UnknownSource;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            self.stats.dropped(DropReason::NoKeysYet);
            return DatagramOutcome::Dropped;
        };
        let len = match session.transport.handle_srtp(now, source, datagram, rtcp) {
            Received::Rtp(len) | Received::Rtcp(len) => len,
            Received::Handled => return DatagramOutcome::Done,
            Received::Dropped(reason) => {
                self.count_peer_drop(reason);
                return DatagramOutcome::Dropped;
            }
        };
        let Some(plain) = datagram.get_mut(..len) else {
            return DatagramOutcome::Dropped;
        };
        if rtcp {
            self.router.handle_rtcp(now, id, plain, &mut self.out);
        } else {
            // Drops are counted by the router.
            let _ = self.router.handle_rtp(now, id, plain, &mut self.out);
        }
        DatagramOutcome::Done
    }

    fn count_peer_drop(&mut self, reason: PeerDrop) {
        match reason {
            PeerDrop::Srtp(error) => self.stats.srtp_error(error),
            PeerDrop::NoKeysYet | PeerDrop::Ended => self.stats.dropped(DropReason::NoKeysYet),
            PeerDrop::UnvalidatedSource => self.stats.dropped(DropReason::UnvalidatedSource),
            PeerDrop::MalformedStun => self.stats.dropped(DropReason::MalformedStun),
            _ => self.stats.dropped(DropReason::UnknownProtocol),
        }
    }

    /// Runs the timers of the sessions that are due (each at most once per call, so one
    /// whose deadline does not move cannot hold the loop) and the router's.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        due.extend(std::iter::from_fn(|| self.timers.pop_due(now)));
        for &id in &due {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.transport.handle_timeout(now);
                self.drive(now, id);
            }
        }
        self.due = due;
        if self.router.poll_timeout().is_some_and(|at| at <= now) {
            self.router.handle_timeout(now, &mut self.out);
        }
    }

    /// Drains a session's transport after its input: datagrams into the control queue,
    /// events acted on, its next deadline into the queue.
    fn drive(&mut self, now: Instant, id: SessionId) {
        loop {
            let Some(session) = self.sessions.get_mut(&id) else {
                return;
            };
            match session.transport.poll_output(&mut self.scratch) {
                Output::Transmit { destination, len } => {
                    if let Some(bytes) = self.scratch.get(..len) {
                        self.control.push(destination, bytes);
                    }
                }
                Output::Event(event) => self.handle_peer_event(now, id, event),
                Output::Timeout(deadline) => {
                    self.timers.schedule(id, deadline);
                    return;
                }
            }
        }
    }

    fn handle_peer_event(&mut self, now: Instant, id: SessionId, event: PeerEvent) {
        match event {
            PeerEvent::AddressValidated(address) => {
                let previous = self.by_address.insert(address, id);
                if previous.is_none() {
                    self.push_event(CoreEvent::AddressClaimed(address));
                }
            }
            PeerEvent::Connected => {
                self.stats.dtls_connected += 1;
                if let Some(session) = self.sessions.get(&id) {
                    let remote = session
                        .transport
                        .remote()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    tracing::info!(
                        session = id.0,
                        room = %session.room,
                        role = session.role.as_str(),
                        remote,
                        "session connected"
                    );
                }
                self.bind_pending(now, id);
            }
            PeerEvent::Ended(reason) => {
                match reason {
                    EndReason::FingerprintMismatch => self.stats.dtls_fingerprint_mismatch += 1,
                    EndReason::DtlsFailed => self.stats.dtls_failures += 1,
                    _ => {}
                }
                self.end_session(id, reason);
            }
            PeerEvent::StunRefused => self.stats.dropped(DropReason::RejectedStun),
            _ => {}
        }
    }

    /// Ends a session by itself (consent expired, DTLS failed, never connected, publisher
    /// left): removes it and tells the shell, for signaling.
    fn end_session(&mut self, id: SessionId, reason: EndReason) {
        if self.sessions.contains_key(&id) {
            self.remove_session(id, reason);
            self.push_event(CoreEvent::SessionEnded {
                session: id,
                reason,
            });
        }
    }

    /// Removes a session and everything routed to or from it, logging why. The players of a
    /// publisher that goes away end with it.
    fn remove_session(&mut self, id: SessionId, reason: EndReason) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        tracing::info!(
            session = id.0,
            room = %session.room,
            role = session.role.as_str(),
            reason = reason.as_str(),
            connected = session.transport.is_connected(),
            "session end"
        );
        if matches!(session.role, SessionRole::Publisher { .. }) {
            let players: Vec<SessionId> = self
                .sessions
                .values()
                .filter(|s| matches!(s.role, SessionRole::Player { publisher } if publisher == id))
                .map(|s| s.id)
                .collect();
            for player in players {
                self.end_session(player, EndReason::PublisherLeft);
            }
        }
        self.router.remove_session(id);
        self.timers.remove(id);
        self.by_ufrag.remove(&session.local_ufrag);
        let events = &mut self.events;
        self.by_address.retain(|address, owner| {
            if *owner != id {
                return true;
            }
            events.push_back(CoreEvent::AddressReleased(*address));
            false
        });
    }

    /// The address's connection (ICE-TCP) closed: it no longer reaches `session`, and
    /// nothing is sent to it.
    pub fn release_address(&mut self, address: SocketAddr, session: SessionId) {
        if self.by_address.get(&address) == Some(&session) {
            self.by_address.remove(&address);
            self.push_event(CoreEvent::AddressReleased(address));
        }
        if let Some(s) = self.sessions.get_mut(&session)
            && s.transport.remote() == Some(address)
        {
            s.transport.clear_remote();
        }
    }

    /// Queues an RTCP BYE to every peer: the media plane is going away. Send the transmits
    /// before [`WorkerCore::close_all`], which drops the keys.
    pub fn goodbye(&mut self) {
        self.router.goodbye(&mut self.out);
    }

    /// Removes every session (the media plane shuts down).
    pub fn close_all(&mut self) {
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.remove_session(id, EndReason::Shutdown);
        }
    }

    pub(crate) fn push_event(&mut self, event: CoreEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn mint_session_id(&mut self) -> SessionId {
        let id = SessionId::new(self.config.ids, self.next_serial);
        self.next_serial += 1;
        id
    }
}

/// The ufrag of ours in a request's USERNAME ("<ours>:<theirs>").
pub fn local_ufrag<'a>(message: &StunMessage<'a>) -> Option<&'a str> {
    message
        .username()
        .and_then(|username| username.split_once(':'))
        .map(|(local, _)| local)
}
