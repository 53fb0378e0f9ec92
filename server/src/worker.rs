//! A media worker: one thread that owns a UDP socket on the media port, its sessions and its
//! router, with no locks on the packet path.
//!
//! The loop waits for datagrams, commands or the next deadline; receives in batches;
//! demultiplexes each datagram by its first byte (RFC 7983); answers STUN through the
//! session's ICE-lite agent (found by the username fragment); drives DTLS and installs SRTP
//! keys; unprotects SRTP and SRTCP in place from validated addresses only; hands plaintext to
//! the router; then protects the router's output per subscriber and sends it in batches.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ice_lite::{PacketKind as DatagramKind, StunMessage, classify};
use mio::{Events, Interest, Poll, Token, Waker};
use packet_router::{PacketKind, Router, RouterConfig, SessionId, TransmitQueue};

use crate::negotiation;
use crate::session::{Session, SessionEvent};
use crate::stats::{DropReason, SfuStats};
use crate::udp::{BatchSocket, RecvBatch};
use crate::{Inbound, Shared};

pub(crate) const SOCKET: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);

/// The parts of a worker that the command handlers use.
pub(crate) struct WorkerState {
    /// This worker's index: the low byte of its session ids and the first character of its
    /// ICE username fragments.
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) now: Instant,
    pub(crate) sessions: HashMap<SessionId, Session>,
    pub(crate) by_ufrag: HashMap<String, SessionId>,
    pub(crate) by_address: HashMap<SocketAddr, SessionId>,
    pub(crate) router: Router,
    pub(crate) out: TransmitQueue,
    pub(crate) stats: SfuStats,
    pub(crate) context: Arc<negotiation::LocalContext>,
}

pub(crate) struct Worker {
    socket: BatchSocket,
    poll: Poll,
    inbound: mpsc::Receiver<Inbound>,
    shared_stats: Arc<Mutex<SfuStats>>,
    state: WorkerState,
    scratch: Vec<u8>,
    events: Vec<SessionEvent>,
    /// Where each queued transmit goes (None: not sendable), reused every round.
    destinations: Vec<Option<SocketAddr>>,
}

impl Worker {
    pub(crate) fn new(
        index: usize,
        socket: mio::net::UdpSocket,
        poll: Poll,
        inbound: mpsc::Receiver<Inbound>,
        shared: Arc<Shared>,
        shared_stats: Arc<Mutex<SfuStats>>,
        context: Arc<negotiation::LocalContext>,
    ) -> io::Result<Self> {
        let mut socket = socket;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        Ok(Worker {
            socket: BatchSocket::new(socket)?,
            poll,
            inbound,
            shared_stats,
            state: WorkerState {
                index,
                shared,
                now: Instant::now(),
                sessions: HashMap::new(),
                by_ufrag: HashMap::new(),
                by_address: HashMap::new(),
                router: Router::new(RouterConfig::default()),
                out: TransmitQueue::with_capacity(256),
                stats: SfuStats::default(),
                context,
            },
            scratch: vec![0; 2048],
            events: Vec::with_capacity(8),
            destinations: Vec::with_capacity(256),
        })
    }

    /// Runs until a shutdown command arrives or the command channel closes.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        let mut batch = RecvBatch::new();
        loop {
            let timeout = self
                .next_deadline()
                .map(|at| at.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.state.now = Instant::now();
            if !self.drain_inbound() {
                // Tell every peer this is the end (RTCP BYE) before the sessions go.
                self.state.router.goodbye(&mut self.state.out);
                self.flush();
                self.close_all();
                return Ok(());
            }
            loop {
                match self.socket.recv(&mut batch) {
                    Ok(0) => break,
                    Ok(count) => {
                        self.state.stats.datagrams_received += count as u64;
                        for index in 0..batch.len() {
                            if let Some((source, datagram)) = batch.datagram_mut(index) {
                                self.handle_datagram(source, datagram);
                            }
                        }
                        self.flush();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        // ICMP errors surface here on Linux (ECONNREFUSED from a peer that
                        // went away); they concern one peer, not the socket.
                        self.state.stats.socket_errors += 1;
                        break;
                    }
                }
            }
            self.handle_timeouts();
            self.flush();
            self.publish_stats();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .state
            .sessions
            .values()
            .filter_map(Session::poll_timeout)
            .min();
        match (sessions, self.state.router.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        // Commands wake the poll through the waker; no periodic tick is needed, but a cap
        // keeps a missed wake-up from stalling forever.
        .or(Some(Instant::now() + Duration::from_secs(1)))
    }

    /// Handles queued commands and handed-over datagrams; false when the worker should stop.
    fn drain_inbound(&mut self) -> bool {
        loop {
            match self.inbound.try_recv() {
                Ok(Inbound::Command(crate::Command::Shutdown))
                | Err(mpsc::TryRecvError::Disconnected) => return false,
                Ok(Inbound::Command(command)) => {
                    negotiation::handle_command(&mut self.state, command);
                }
                Ok(Inbound::Datagram(source, mut datagram)) => {
                    self.handle_datagram(source, &mut datagram);
                }
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    /// Hands a datagram to the worker that owns its session (it landed on this worker's
    /// socket because the kernel spreads flows over the port's sockets by address).
    fn hand_over(&mut self, owner: usize, source: SocketAddr, datagram: &[u8]) {
        let delivered = self.state.shared.workers.get(owner).is_some_and(|worker| {
            worker
                .send(Inbound::Datagram(source, datagram.to_vec()))
                .is_ok()
        });
        if delivered {
            self.state.stats.handed_over += 1;
        }
    }

    /// The worker owning `source` according to the shared table, when it is not this one.
    fn foreign_owner(&self, source: SocketAddr) -> Option<usize> {
        let owners = self.state.shared.owners.read().ok()?;
        owners
            .get(&source)
            .copied()
            .filter(|&owner| owner != self.state.index)
    }

    fn handle_datagram(&mut self, source: SocketAddr, datagram: &mut [u8]) {
        match classify(datagram) {
            DatagramKind::Stun => self.handle_stun(source, datagram),
            DatagramKind::Dtls => self.handle_dtls(source, datagram),
            DatagramKind::Rtp => self.handle_srtp(source, datagram, false),
            DatagramKind::Rtcp => self.handle_srtp(source, datagram, true),
            _ => self.state.stats.dropped(DropReason::UnknownProtocol),
        }
    }

    fn handle_stun(&mut self, source: SocketAddr, datagram: &[u8]) {
        let Ok(message) = StunMessage::parse(datagram) else {
            self.state.stats.dropped(DropReason::MalformedStun);
            return;
        };
        // USERNAME is "<our ufrag>:<their ufrag>"; our ufrag names the session, and its first
        // character the worker that owns it.
        let local_ufrag = message
            .username()
            .and_then(|username| username.split_once(':'))
            .map(|(local, _)| local);
        if let Some(owner) = local_ufrag.and_then(negotiation::ufrag_owner)
            && owner != self.state.index
            && owner < self.state.shared.workers.len()
        {
            self.hand_over(owner, source, datagram);
            return;
        }
        let session_id = local_ufrag
            .and_then(|local| self.state.by_ufrag.get(local))
            .copied();
        let Some(session) = session_id.and_then(|id| self.state.sessions.get_mut(&id)) else {
            self.state.stats.dropped(DropReason::UnknownStunUsername);
            return;
        };
        self.events.clear();
        let response = session.handle_stun(
            self.state.now,
            source,
            &message,
            &mut self.scratch,
            &mut self.events,
        );
        let id = session.id;
        if let Some(len) = response
            && let Some(bytes) = self.scratch.get(..len)
        {
            self.socket.send(source, bytes);
            self.state.stats.stun_responses_sent += 1;
        }
        self.handle_session_events(id);
        // As the DTLS client, the first flight waits for an address to send it to.
        self.send_dtls(id);
    }

    /// The session of a validated source address, or `None` after handing the datagram to
    /// its owner or counting it as unvalidated.
    fn session_of(&mut self, source: SocketAddr, datagram: &[u8]) -> Option<SessionId> {
        if let Some(&id) = self.state.by_address.get(&source) {
            return Some(id);
        }
        match self.foreign_owner(source) {
            Some(owner) => self.hand_over(owner, source, datagram),
            None => self.state.stats.dropped(DropReason::UnvalidatedSource),
        }
        None
    }

    fn handle_dtls(&mut self, source: SocketAddr, datagram: &[u8]) {
        let Some(id) = self.session_of(source, datagram) else {
            return;
        };
        let Some(session) = self.state.sessions.get_mut(&id) else {
            return;
        };
        self.events.clear();
        session.handle_dtls(self.state.now, datagram, &mut self.events);
        self.send_dtls(id);
        self.handle_session_events(id);
    }

    fn send_dtls(&mut self, id: SessionId) {
        let Some(session) = self.state.sessions.get_mut(&id) else {
            return;
        };
        let Some(remote) = session.remote else {
            return;
        };
        let Some(dtls) = session.dtls.as_mut() else {
            return;
        };
        while let Some(len) = dtls.poll_transmit(&mut self.scratch) {
            if let Some(bytes) = self.scratch.get(..len) {
                self.socket.send(remote, bytes);
            }
        }
    }

    fn handle_srtp(&mut self, source: SocketAddr, datagram: &mut [u8], rtcp: bool) {
        let Some(id) = self.session_of(source, datagram) else {
            return;
        };
        let WorkerState {
            now,
            sessions,
            router,
            out,
            stats,
            ..
        } = &mut self.state;
        let Some(srtp) = sessions
            .get_mut(&id)
            .and_then(|session| session.srtp.as_mut())
        else {
            stats.dropped(DropReason::NoKeysYet);
            return;
        };
        if rtcp {
            match srtp.inbound.unprotect_rtcp(datagram) {
                Ok(len) => {
                    if let Some(plain) = datagram.get(..len) {
                        router.handle_rtcp(*now, id, plain, out);
                    }
                }
                Err(e) => stats.srtp_error(e),
            }
        } else {
            match srtp.inbound.unprotect_rtp(datagram) {
                Ok(len) => {
                    if let Some(plain) = datagram.get_mut(..len) {
                        // Drops are counted by the router.
                        let _ = router.handle_rtp(*now, id, plain, out);
                    }
                }
                Err(e) => stats.srtp_error(e),
            }
        }
    }

    fn handle_session_events(&mut self, id: SessionId) {
        let events = std::mem::take(&mut self.events);
        for event in &events {
            match *event {
                SessionEvent::AddressValidated(address) => {
                    if self.state.by_address.insert(address, id).is_none()
                        && self.state.shared.workers.len() > 1
                        && let Ok(mut owners) = self.state.shared.owners.write()
                    {
                        owners.insert(address, self.state.index);
                    }
                }
                SessionEvent::Connected => {
                    self.state.stats.dtls_connected += 1;
                    negotiation::session_connected(&mut self.state, id);
                }
                SessionEvent::DtlsFailed {
                    fingerprint_mismatch,
                } => {
                    if fingerprint_mismatch {
                        self.state.stats.dtls_fingerprint_mismatch += 1;
                    } else {
                        self.state.stats.dtls_failures += 1;
                    }
                    negotiation::end_session(&mut self.state, id);
                }
                SessionEvent::Ended => negotiation::end_session(&mut self.state, id),
                SessionEvent::StunRejected => self.state.stats.dropped(DropReason::RejectedStun),
            }
        }
        self.events = events;
    }

    fn handle_timeouts(&mut self) {
        let now = self.state.now;
        let due: Vec<SessionId> = self
            .state
            .sessions
            .values()
            .filter(|s| s.poll_timeout().is_some_and(|at| at <= now))
            .map(|s| s.id)
            .collect();
        for id in due {
            let Some(session) = self.state.sessions.get_mut(&id) else {
                continue;
            };
            self.events.clear();
            session.handle_timeout(now, &mut self.events);
            self.send_dtls(id);
            self.handle_session_events(id);
        }
        if self.state.router.poll_timeout().is_some_and(|at| at <= now) {
            self.state.router.handle_timeout(now, &mut self.state.out);
        }
    }

    /// Protects every queued transmit with its session's keys and sends the batch.
    fn flush(&mut self) {
        let state = &mut self.state;
        self.destinations.clear();
        for transmit in state.out.as_mut_slice() {
            let destination = state
                .sessions
                .get_mut(&transmit.session)
                .and_then(|session| Some((session.srtp.as_mut()?, session.remote?)));
            let Some((srtp, remote)) = destination else {
                state.stats.dropped(DropReason::NoKeysYet);
                self.destinations.push(None);
                continue;
            };
            let protected = match transmit.kind {
                PacketKind::Rtp => srtp
                    .outbound
                    .protect_rtp(&mut transmit.buf[..], transmit.len),
                PacketKind::Rtcp => srtp
                    .outbound
                    .protect_rtcp(&mut transmit.buf[..], transmit.len),
            };
            match protected {
                Ok(len) => {
                    transmit.len = len;
                    self.destinations.push(Some(remote));
                }
                Err(e) => {
                    state.stats.srtp_error(e);
                    self.destinations.push(None);
                }
            }
        }
        let datagrams = state
            .out
            .as_slice()
            .iter()
            .zip(&self.destinations)
            .filter_map(|(transmit, destination)| Some(((*destination)?, transmit.packet())));
        self.socket.send_batch(datagrams);
        state.out.clear();
    }

    fn publish_stats(&mut self) {
        let mut snapshot = self.state.stats.clone();
        snapshot.absorb_router(self.state.router.stats());
        snapshot.sessions = self.state.sessions.len() as u64;
        snapshot.send_errors = self.socket.send_errors();
        if let Ok(mut shared) = self.shared_stats.lock() {
            *shared = snapshot;
        }
    }

    fn close_all(&mut self) {
        let ids: Vec<SessionId> = self.state.sessions.keys().copied().collect();
        for id in ids {
            negotiation::remove_session(&mut self.state, id);
        }
        self.publish_stats();
    }
}

/// Creates the waker that lets commands interrupt the worker's poll.
pub(crate) fn waker(poll: &Poll) -> io::Result<Waker> {
    Waker::new(poll.registry(), WAKER)
}
