//! A media worker: one thread that owns a UDP socket on the media port, its sessions and its
//! router, with no locks on the packet path.
//!
//! The loop waits for datagrams, commands or the next deadline; receives in batches;
//! demultiplexes each datagram by its first byte (RFC 7983); answers STUN through the
//! session's ICE-lite agent (found by the username fragment); drives DTLS and installs SRTP
//! keys; unprotects SRTP and SRTCP in place from validated addresses only; hands plaintext to
//! the router; then protects the router's output per subscriber and sends it in batches.
//!
//! What it costs per packet is kept flat: timers wake through a deadline queue (only due
//! sessions are touched), counters are published at a bounded rate, the id maps hash with a
//! multiply, datagrams for another worker's sessions go over in one batch per receive round,
//! and the shared owner table is read through a cache that one atomic load keeps fresh.
//!
//! With ICE-TCP the worker also accepts TCP connections on the media port (see [`crate::tcp`]):
//! their RFC 4571 frames take the same paths as datagrams, and output to a TCP peer is framed
//! on its connection. UDP sessions pay one emptiness check of the connection table per send.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use ice_lite::{PacketKind as DatagramKind, StunMessage, classify};
use mio::{Events, Interest, Poll, Token, Waker};
use packet_router::{IdHashMap, PacketKind, Router, RouterConfig, SessionId, TransmitQueue};
use rtc_core::dtls::DtlsEndpoint;

use crate::hand_over::{HandOverBatch, SPARE_BATCHES};
use crate::negotiation;
use crate::session::{EndReason, Session, SessionEvent};
use crate::stats::{DropReason, PublishedStats, SfuStats};
use crate::tcp::{self, CloseReason, Liveness, TcpConnections};
use crate::timers::DeadlineQueue;
use crate::udp::{BatchSocket, RecvBatch};
use crate::{Inbound, Shared};

/// How often a busy worker publishes its counters (readers of [`crate::Sfu::stats`] get a
/// fresh snapshot on request regardless).
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// The longest the worker sleeps without a deadline: a cap in case a wake-up is missed.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Entries of the cache of the shared owner table; it starts over when full.
const FOREIGN_CACHE_LIMIT: usize = 64 * 1024;

pub(crate) const SOCKET: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);

/// The parts of a worker that the command handlers use.
pub(crate) struct WorkerState {
    /// This worker's index: the low byte of its session ids and the first character of its
    /// ICE username fragments.
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) now: Instant,
    pub(crate) sessions: IdHashMap<SessionId, Session>,
    /// Keyed by peer-chosen strings, so hashed with SipHash; STUN is not the hot path.
    pub(crate) by_ufrag: HashMap<String, SessionId>,
    pub(crate) by_address: IdHashMap<SocketAddr, SessionId>,
    /// When each session next needs its timers run.
    pub(crate) timers: DeadlineQueue,
    pub(crate) router: Router,
    pub(crate) out: TransmitQueue,
    pub(crate) stats: SfuStats,
    pub(crate) context: Arc<negotiation::LocalContext>,
}

pub(crate) struct Worker {
    socket: BatchSocket,
    poll: Poll,
    inbound: mpsc::Receiver<Inbound>,
    published: Arc<PublishedStats>,
    state: WorkerState,
    scratch: Vec<u8>,
    events: Vec<SessionEvent>,
    /// Where each queued transmit goes (None: not sendable), reused every round.
    destinations: Vec<Option<SocketAddr>>,
    /// The order in which the queued transmits are sent, reused every round: with GSO, each
    /// session's packets together (in their own order) so runs can be segmented.
    send_order: Vec<usize>,
    /// Whether the socket sends runs to one destination with UDP GSO.
    gso: bool,
    /// Sessions whose timers are due, reused every round.
    due: Vec<SessionId>,
    /// The batch being filled for each other worker in this receive round.
    hand_overs: Vec<Option<HandOverBatch>>,
    /// Emptied batches that came back, for reuse.
    spare_batches: Vec<HandOverBatch>,
    /// What this worker has read of the shared owner table, and the table's generation then.
    foreign_owners: IdHashMap<SocketAddr, usize>,
    owners_generation: u64,
    /// Counters changed since they were last published, and when they may be published next.
    stats_dirty: bool,
    next_publish: Instant,
    /// The TCP listener and connections (ICE-TCP), and buffers reused for them.
    tcp: TcpConnections,
    tcp_frame: Vec<u8>,
    tcp_tokens: Vec<Token>,
    tcp_closing: Vec<(Token, CloseReason)>,
}

impl Worker {
    // What a worker owns, handed over once at start.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: usize,
        socket: mio::net::UdpSocket,
        poll: Poll,
        inbound: mpsc::Receiver<Inbound>,
        shared: Arc<Shared>,
        published: Arc<PublishedStats>,
        context: Arc<negotiation::LocalContext>,
        listener: Option<mio::net::TcpListener>,
        tcp_slots: Arc<tcp::TcpSlots>,
    ) -> io::Result<Self> {
        let mut socket = socket;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let mut socket = BatchSocket::new(socket)?;
        let gso = socket.set_gso(context.gso);
        let workers = shared.workers.len();
        let now = Instant::now();
        let tcp = TcpConnections::new(listener, tcp_slots, poll.registry(), now)?;
        Ok(Worker {
            tcp,
            tcp_frame: vec![0; tcp::MAX_FRAME],
            tcp_tokens: Vec::new(),
            tcp_closing: Vec::new(),
            socket,
            poll,
            inbound,
            published,
            destinations: Vec::with_capacity(256),
            send_order: Vec::with_capacity(256),
            gso,
            due: Vec::new(),
            hand_overs: (0..workers).map(|_| None).collect(),
            spare_batches: Vec::new(),
            foreign_owners: IdHashMap::default(),
            owners_generation: u64::MAX,
            stats_dirty: true,
            next_publish: now,
            state: WorkerState {
                index,
                shared,
                now,
                sessions: IdHashMap::default(),
                by_ufrag: HashMap::new(),
                by_address: IdHashMap::default(),
                timers: DeadlineQueue::default(),
                router: Router::new(RouterConfig::default()),
                out: TransmitQueue::with_capacity(256),
                stats: SfuStats::default(),
                context,
            },
            scratch: vec![0; 2048],
            events: Vec::with_capacity(8),
        })
    }

    /// Runs until a shutdown command arrives or the command channel closes.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let result = self.run_loop();
        // Readers of the counters stop waiting for this worker.
        self.published.stop();
        result
    }

    fn run_loop(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        let mut batch = RecvBatch::new();
        loop {
            let timeout = self
                .next_deadline()
                .saturating_duration_since(Instant::now());
            match self.poll.poll(&mut events, Some(timeout)) {
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
            self.refresh_foreign_owners();
            for event in events.iter() {
                let token = event.token();
                if token != SOCKET && token != WAKER {
                    let readable =
                        event.is_readable() || event.is_read_closed() || event.is_error();
                    self.handle_tcp_event(token, readable, event.is_writable());
                }
            }
            loop {
                match self.socket.recv(&mut batch) {
                    Ok(0) => break,
                    Ok(count) => {
                        self.stats_dirty = true;
                        self.state.stats.datagrams_received += count as u64;
                        for index in 0..batch.len() {
                            if let Some((source, datagram)) = batch.datagram_mut(index) {
                                self.handle_datagram(source, datagram);
                            }
                        }
                        self.send_hand_overs();
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
            self.maybe_publish_stats();
        }
    }

    /// When the loop must wake at the latest: the earliest session or router deadline, the
    /// next publication of changed counters, or the idle cap. No session is scanned.
    fn next_deadline(&mut self) -> Instant {
        let mut next = self.state.now + IDLE_WAKE;
        let deadlines = [
            self.state.timers.next_deadline(),
            self.state.router.poll_timeout(),
            self.stats_dirty.then_some(self.next_publish),
            self.tcp.poll_timeout(),
        ];
        for deadline in deadlines.into_iter().flatten() {
            next = next.min(deadline);
        }
        next
    }

    /// Handles queued commands and handed-over datagrams; false when the worker should stop.
    fn drain_inbound(&mut self) -> bool {
        let mut commands = false;
        let alive = loop {
            match self.inbound.try_recv() {
                Ok(Inbound::Command(crate::Command::Shutdown))
                | Err(mpsc::TryRecvError::Disconnected) => break false,
                Ok(Inbound::Command(command)) => {
                    negotiation::handle_command(&mut self.state, command);
                    commands = true;
                }
                Ok(Inbound::Datagrams(mut batch)) => {
                    for index in 0..batch.len() {
                        if let Some((source, datagram)) = batch.datagram_mut(index) {
                            self.handle_datagram(source, datagram);
                        }
                    }
                    batch.clear();
                    self.stats_dirty = true;
                    // Back to the worker that filled it; it will find it when it next wakes.
                    if let Some(sender) = self.state.shared.workers.get(batch.from) {
                        let _ = sender.send_quietly(Inbound::Recycle(batch));
                    }
                }
                Ok(Inbound::Recycle(batch)) => {
                    if self.spare_batches.len() < SPARE_BATCHES {
                        self.spare_batches.push(batch);
                    }
                }
                Ok(Inbound::TcpConnection(handed)) => {
                    self.stats_dirty = true;
                    if let Some((token, mut first_frame)) =
                        self.tcp.adopt(self.poll.registry(), handed)
                        && self.handle_tcp_frame(token, &mut first_frame)
                    {
                        self.read_tcp(token);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break true,
            }
        };
        if commands {
            // A command may create, change or end any session: reschedule them all (commands
            // come from signaling, far rarer than packets).
            let WorkerState {
                sessions, timers, ..
            } = &mut self.state;
            for (&id, session) in sessions.iter() {
                timers.schedule(id, session.poll_timeout());
            }
            self.stats_dirty = true;
            // The session count changed, which readers expect to see at once.
            self.next_publish = self.state.now;
        }
        self.send_hand_overs();
        alive
    }

    /// Queues a datagram for the worker that owns its session (it landed on this worker's
    /// socket because the kernel spreads flows over the port's sockets by address); the
    /// batch goes at the end of the receive round.
    fn hand_over(&mut self, owner: usize, source: SocketAddr, datagram: &[u8]) {
        let Some(slot) = self.hand_overs.get_mut(owner) else {
            return;
        };
        let index = self.state.index;
        let spare = &mut self.spare_batches;
        slot.get_or_insert_with(|| spare.pop().unwrap_or_else(|| HandOverBatch::new(index)))
            .push(source, datagram);
    }

    /// Sends this round's hand-over batches, one message and one wake-up per owner.
    fn send_hand_overs(&mut self) {
        for (owner, slot) in self.hand_overs.iter_mut().enumerate() {
            let Some(batch) = slot.take() else {
                continue;
            };
            if batch.is_empty() {
                self.spare_batches.push(batch);
                continue;
            }
            let count = batch.len() as u64;
            if let Some(worker) = self.state.shared.workers.get(owner)
                && worker.send(Inbound::Datagrams(batch)).is_ok()
            {
                self.state.stats.handed_over += count;
            }
        }
    }

    /// Drops the cache of the shared owner table when the table has changed.
    fn refresh_foreign_owners(&mut self) {
        let generation = self.state.shared.owners_generation.load(Ordering::Acquire);
        if generation != self.owners_generation {
            self.foreign_owners.clear();
            self.owners_generation = generation;
        }
    }

    /// The worker owning `source` according to the shared table, when it is not this one.
    /// Only for datagrams of addresses this worker does not own; the table's lock is taken
    /// once per address and table generation, not per datagram.
    fn foreign_owner(&mut self, source: SocketAddr) -> Option<usize> {
        if self.state.shared.workers.len() < 2 {
            return None;
        }
        let owner = match self.foreign_owners.get(&source) {
            Some(&owner) => owner,
            None => {
                let owner = self
                    .state
                    .shared
                    .owners
                    .read()
                    .ok()?
                    .get(&source)
                    .copied()?;
                if self.foreign_owners.len() >= FOREIGN_CACHE_LIMIT {
                    self.foreign_owners.clear();
                }
                self.foreign_owners.insert(source, owner);
                owner
            }
        };
        (owner != self.state.index).then_some(owner)
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
            send_datagram(&mut self.socket, &mut self.tcp, source, bytes);
            self.state.stats.stun_responses_sent += 1;
        }
        self.handle_session_events(id);
        // As the DTLS client, the first flight waits for an address to send it to.
        self.send_dtls(id);
        self.reschedule(id);
    }

    /// Puts `id`'s next deadline into the queue after its state may have changed.
    fn reschedule(&mut self, id: SessionId) {
        let deadline = self.state.sessions.get(&id).and_then(Session::poll_timeout);
        self.state.timers.schedule(id, deadline);
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
        let dropped = |session: &Session| {
            session
                .dtls
                .as_ref()
                .map_or(0, DtlsEndpoint::dropped_datagrams)
        };
        let dropped_before = dropped(session);
        session.handle_dtls(self.state.now, datagram, &mut self.events);
        let dropped_now = dropped(session).saturating_sub(dropped_before);
        self.state.stats.dropped_dtls += dropped_now;
        self.send_dtls(id);
        self.handle_session_events(id);
        self.reschedule(id);
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
                send_datagram(&mut self.socket, &mut self.tcp, remote, bytes);
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
        let Some(session) = sessions.get_mut(&id) else {
            stats.dropped(DropReason::NoKeysYet);
            return;
        };
        let Some(srtp) = session.srtp.as_mut() else {
            stats.dropped(DropReason::NoKeysYet);
            return;
        };
        let unprotected = if rtcp {
            srtp.inbound.unprotect_rtcp(datagram)
        } else {
            srtp.inbound.unprotect_rtp(datagram)
        };
        let len = match unprotected {
            Ok(len) => len,
            Err(e) => {
                stats.srtp_error(e);
                return;
            }
        };
        // Media that authenticated (and is no replay) keeps the session alive like a consent
        // check: peers that check only while a path is idle are not cut off.
        session.ice.handle_authenticated_media(*now, source);
        let Some(plain) = datagram.get_mut(..len) else {
            return;
        };
        if rtcp {
            router.handle_rtcp(*now, id, plain, out);
        } else {
            // Drops are counted by the router.
            let _ = router.handle_rtp(*now, id, plain, out);
        }
    }

    fn handle_session_events(&mut self, id: SessionId) {
        let events = std::mem::take(&mut self.events);
        for event in &events {
            match *event {
                SessionEvent::AddressValidated(address) => {
                    if self.state.by_address.insert(address, id).is_none()
                        && self.state.shared.workers.len() > 1
                    {
                        self.state.shared.set_owner(address, self.state.index);
                    }
                }
                SessionEvent::Connected => {
                    self.state.stats.dtls_connected += 1;
                    if let Some(session) = self.state.sessions.get(&id) {
                        let remote = session.remote.map(|a| a.to_string()).unwrap_or_default();
                        tracing::info!(
                            session = id.0,
                            room = %session.room,
                            role = session.role.as_str(),
                            remote,
                            "session connected"
                        );
                    }
                    negotiation::session_connected(&mut self.state, id);
                }
                SessionEvent::DtlsFailed {
                    fingerprint_mismatch,
                } => {
                    let reason = if fingerprint_mismatch {
                        self.state.stats.dtls_fingerprint_mismatch += 1;
                        EndReason::FingerprintMismatch
                    } else {
                        self.state.stats.dtls_failures += 1;
                        EndReason::DtlsFailed
                    };
                    negotiation::end_session(&mut self.state, id, reason);
                }
                SessionEvent::Ended(reason) => {
                    negotiation::end_session(&mut self.state, id, reason);
                }
                SessionEvent::StunRejected => self.state.stats.dropped(DropReason::RejectedStun),
            }
        }
        self.events = events;
    }

    /// Runs the timers of the sessions that are due (each at most once per round, so one
    /// whose deadline does not move cannot hold the loop) and the router's.
    fn handle_timeouts(&mut self) {
        let now = self.state.now;
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        due.extend(std::iter::from_fn(|| self.state.timers.pop_due(now)));
        for &id in &due {
            let Some(session) = self.state.sessions.get_mut(&id) else {
                continue;
            };
            self.events.clear();
            session.handle_timeout(now, &mut self.events);
            self.send_dtls(id);
            self.handle_session_events(id);
            self.reschedule(id);
        }
        if !due.is_empty() {
            self.stats_dirty = true;
        }
        self.due = due;
        if self.state.router.poll_timeout().is_some_and(|at| at <= now) {
            self.state.router.handle_timeout(now, &mut self.state.out);
            self.stats_dirty = true;
        }
        self.sweep_tcp();
    }

    /// Protects every queued transmit with its session's keys and sends the batch.
    fn flush(&mut self) {
        // What the router did or saw while the batch was routed; nothing acts on it yet, so
        // it is logged, and the router's ring stays free for what comes next.
        while let Some(event) = self.state.router.poll_event() {
            tracing::debug!(?event, "router event");
        }
        let state = &mut self.state;
        if state.out.is_empty() {
            self.write_tcp();
            return;
        }
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
        if !self.tcp.is_empty() {
            // Output for peers on a TCP connection is framed there instead.
            for (transmit, destination) in state.out.as_slice().iter().zip(&mut self.destinations) {
                if let Some(token) = destination.and_then(|address| self.tcp.token_of(&address)) {
                    self.tcp.queue(token, transmit.packet());
                    *destination = None;
                }
            }
        }
        let transmits = state.out.as_slice();
        if !self.gso {
            // Without GSO the router's order is as good as any.
            let datagrams = transmits
                .iter()
                .zip(&self.destinations)
                .filter_map(|(transmit, destination)| Some(((*destination)?, transmit.packet())));
            self.socket.send_batch(datagrams);
        } else {
            group_by_session(transmits, &mut self.send_order);
            let destinations = &self.destinations;
            let datagrams = self.send_order.iter().filter_map(|&index| {
                let destination = (*destinations.get(index)?)?;
                Some((destination, transmits.get(index)?.packet()))
            });
            self.socket.send_batch(datagrams);
        }
        state.out.clear();
        self.write_tcp();
    }

    /// Publishes the counters when they changed and the interval has passed, or at once when
    /// a reader asks.
    fn maybe_publish_stats(&mut self) {
        let wanted = self.published.wanted();
        if wanted || (self.stats_dirty && self.state.now >= self.next_publish) {
            self.publish_stats();
        }
    }

    fn publish_stats(&mut self) {
        let mut snapshot = self.state.stats.clone();
        snapshot.absorb_router(self.state.router.stats());
        snapshot.sessions = self.state.sessions.len() as u64;
        snapshot.send_errors = self.socket.send_errors();
        snapshot.tcp = self.tcp.snapshot();
        self.published.publish(snapshot);
        self.stats_dirty = false;
        self.next_publish = self.state.now + PUBLISH_INTERVAL;
    }

    fn close_all(&mut self) {
        let ids: Vec<SessionId> = self.state.sessions.keys().copied().collect();
        for id in ids {
            negotiation::remove_session(&mut self.state, id, EndReason::Shutdown);
        }
        self.publish_stats();
    }
}

impl Worker {
    /// A readiness event of the TCP listener or of one connection.
    fn handle_tcp_event(&mut self, token: Token, readable: bool, writable: bool) {
        self.stats_dirty = true;
        if token == tcp::LISTENER {
            let mut accepted = std::mem::take(&mut self.tcp_tokens);
            accepted.clear();
            self.tcp
                .accept(self.poll.registry(), self.state.now, &mut accepted);
            self.tcp_tokens = accepted;
            return;
        }
        if writable && self.tcp.write(token).is_err() {
            self.close_tcp(token, CloseReason::Ended);
            return;
        }
        if readable {
            self.read_tcp(token);
        }
    }

    /// Reads a connection until the socket has no more, handling each complete frame.
    fn read_tcp(&mut self, token: Token) {
        loop {
            if !self.drain_tcp_frames(token) {
                return;
            }
            match self.tcp.read(token) {
                Ok(true) => {}
                Ok(false) => return,
                Err(reason) => {
                    self.close_tcp(token, reason);
                    return;
                }
            }
        }
    }

    /// Handles the complete frames buffered on a connection; false once it is closed or has
    /// moved to another worker.
    fn drain_tcp_frames(&mut self, token: Token) -> bool {
        loop {
            let mut frame = std::mem::take(&mut self.tcp_frame);
            let next = self.tcp.next_frame(token, &mut frame);
            let open = match next {
                Ok(Some(len)) => match frame.get_mut(..len) {
                    Some(datagram) => self.handle_tcp_frame(token, datagram),
                    None => true,
                },
                Ok(None) => {
                    self.tcp_frame = frame;
                    return self.tcp.get_mut(token).is_some();
                }
                Err(reason) => {
                    self.close_tcp(token, reason);
                    false
                }
            };
            self.tcp_frame = frame;
            if !open {
                return false;
            }
        }
    }

    /// One frame of a connection, handled as a datagram from its peer address. The first must
    /// be a binding request naming a session: of another worker, the connection goes there;
    /// of none, it closes. Later ones must belong to that session. False once the connection
    /// is closed or has moved.
    fn handle_tcp_frame(&mut self, token: Token, datagram: &mut [u8]) -> bool {
        let Some(connection) = self.tcp.get_mut(token) else {
            return false;
        };
        let peer = connection.peer;
        let Some(session) = connection.session else {
            return self.handle_first_tcp_frame(token, peer, datagram);
        };
        match classify(datagram) {
            DatagramKind::Stun => {
                let own = StunMessage::parse(datagram)
                    .ok()
                    .and_then(|message| local_ufrag(&message).map(str::to_owned))
                    .and_then(|local| self.state.by_ufrag.get(&local).copied());
                if own == Some(session) {
                    self.handle_stun(peer, datagram);
                } else {
                    self.tcp.stats.dropped_frames += 1;
                }
            }
            DatagramKind::Dtls | DatagramKind::Rtp | DatagramKind::Rtcp => {
                if self.state.by_address.get(&peer) == Some(&session) {
                    self.handle_datagram(peer, datagram);
                } else {
                    self.tcp.stats.dropped_frames += 1;
                }
            }
            _ => self.state.stats.dropped(DropReason::UnknownProtocol),
        }
        self.tcp.get_mut(token).is_some()
    }

    fn handle_first_tcp_frame(&mut self, token: Token, peer: SocketAddr, datagram: &[u8]) -> bool {
        let message = StunMessage::parse(datagram).ok().filter(|message| {
            message.method() == ice_lite::METHOD_BINDING
                && message.class() == ice_lite::Class::Request
        });
        let Some(local) = message.as_ref().and_then(local_ufrag) else {
            self.close_tcp(token, CloseReason::BadFirstFrame);
            return false;
        };
        if let Some(owner) = negotiation::ufrag_owner(local)
            && owner != self.state.index
            && owner < self.state.shared.workers.len()
        {
            if let Some(handed) = self.tcp.hand_over(self.poll.registry(), token, datagram)
                && let Some(worker) = self.state.shared.workers.get(owner)
            {
                let _ = worker.send(Inbound::TcpConnection(handed));
            }
            return false;
        }
        let Some(&session) = self.state.by_ufrag.get(local) else {
            self.close_tcp(token, CloseReason::BadFirstFrame);
            return false;
        };
        if self.tcp.connections_of(session) >= tcp::MAX_CONNECTIONS_PER_SESSION {
            self.close_tcp(token, CloseReason::OverLimit);
            return false;
        }
        if let Some(connection) = self.tcp.get_mut(token) {
            connection.session = Some(session);
        }
        self.handle_stun(peer, datagram);
        self.tcp.get_mut(token).is_some()
    }

    /// Closes a connection; its address no longer reaches its session, and nothing goes to
    /// it over UDP instead.
    fn close_tcp(&mut self, token: Token, reason: CloseReason) {
        self.stats_dirty = true;
        let Some((peer, Some(session))) = self.tcp.close(self.poll.registry(), token, reason)
        else {
            return;
        };
        if self.state.by_address.get(&peer) == Some(&session) {
            self.state.by_address.remove(&peer);
            if self.state.shared.workers.len() > 1 {
                self.state.shared.forget_owner(peer, self.state.index);
            }
        }
        if let Some(session) = self.state.sessions.get_mut(&session)
            && session.remote == Some(peer)
        {
            session.remote = None;
        }
    }

    /// Writes what was queued for connections; those that fail close.
    fn write_tcp(&mut self) {
        if self.tcp.is_empty() {
            return;
        }
        let mut failed = std::mem::take(&mut self.tcp_tokens);
        failed.clear();
        self.tcp.write_pending(&mut failed);
        for &token in &failed {
            self.close_tcp(token, CloseReason::Ended);
        }
        self.tcp_tokens = failed;
    }

    /// Closes connections that passed no check in time or whose session ended.
    fn sweep_tcp(&mut self) {
        let mut closing = std::mem::take(&mut self.tcp_closing);
        closing.clear();
        let state = &self.state;
        self.tcp.sweep(
            state.now,
            |connection| match connection.session {
                None => Liveness::Unchecked,
                Some(id) if !state.sessions.contains_key(&id) => Liveness::SessionGone,
                Some(id) if state.by_address.get(&connection.peer) == Some(&id) => {
                    Liveness::Checked
                }
                Some(_) => Liveness::Unchecked,
            },
            &mut closing,
        );
        for &(token, reason) in &closing {
            self.close_tcp(token, reason);
        }
        self.tcp_closing = closing;
    }
}

/// The ufrag of ours in a request's USERNAME ("<ours>:<theirs>").
fn local_ufrag<'a>(message: &StunMessage<'a>) -> Option<&'a str> {
    message
        .username()
        .and_then(|username| username.split_once(':'))
        .map(|(local, _)| local)
}

/// Sends one datagram: framed on the peer's TCP connection if it has one (looked up only
/// while the worker has connections), else over UDP.
fn send_datagram(
    socket: &mut BatchSocket,
    tcp: &mut TcpConnections,
    destination: SocketAddr,
    bytes: &[u8],
) {
    if !tcp.is_empty()
        && let Some(token) = tcp.token_of(&destination)
    {
        tcp.queue(token, bytes);
        return;
    }
    socket.send(destination, bytes);
}

/// Fills `order` with the indices of `transmits` so that each session's transmits come
/// together, in the order the router queued them (so runs to one subscriber can go out as
/// one GSO send). Sorting indices by (session, index) keeps each session's order without the
/// allocation of a stable sort.
pub(crate) fn group_by_session(transmits: &[packet_router::Transmit], order: &mut Vec<usize>) {
    order.clear();
    order.extend(0..transmits.len());
    order.sort_unstable_by_key(|&index| {
        let session = transmits.get(index).map_or(SessionId(0), |t| t.session);
        (session, index)
    });
}

/// Creates the waker that lets commands interrupt the worker's poll.
pub(crate) fn waker(poll: &Poll) -> io::Result<Waker> {
    Waker::new(poll.registry(), WAKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmits_are_grouped_by_session_in_their_own_order() {
        let mut queue = TransmitQueue::with_capacity(8);
        for (session, marker) in [(3, 0u8), (1, 1), (3, 2), (2, 3), (1, 4), (3, 5)] {
            queue.push_with(SessionId(session), PacketKind::Rtp, |buf| {
                buf[0] = marker;
                Some(1)
            });
        }
        let mut order = Vec::new();
        group_by_session(queue.as_slice(), &mut order);
        let markers: Vec<u8> = order
            .iter()
            .map(|&i| queue.as_slice()[i].packet()[0])
            .collect();
        assert_eq!(markers, vec![1, 4, 3, 0, 2, 5]);
    }
}
