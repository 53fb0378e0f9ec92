//! A media worker's shell: one thread that owns a UDP socket on the media port (and, with
//! ICE-TCP, a TCP listener and its connections) and drives a [`WorkerCore`] with what they
//! receive and the time. Everything the worker decides — demultiplexing, ICE, DTLS, SRTP,
//! the sessions' lifecycle, the router — is the core's; this file only moves bytes, hands
//! datagrams over between workers and publishes the counters.
//!
//! The loop waits for datagrams, commands or the core's next deadline; receives in batches
//! and feeds each datagram to the core; hands datagrams for another worker's sessions over
//! in one batch per receive round; then sends what the core has (protected, grouped by
//! destination for GSO) with batched sends.
//!
//! What it costs per packet is kept flat: counters are published at a bounded rate, and the
//! shared owner table is read through a cache that one atomic load keeps fresh.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use ice_lite::{DatagramKind, StunMessage, classify};
use media_plane::{CoreConfig, CoreEvent, DatagramOutcome, DropReason, WorkerCore, local_ufrag};
use mio::{Events, Interest, Poll, Token, Waker};
use packet_router::IdHashMap;

use crate::channels::{Inbound, Shared};
use crate::hand_over::{HandOverBatch, SPARE_BATCHES};
use crate::stats::{PublishedStats, SfuStats};
use crate::tcp::{self, CloseReason, Liveness, TcpConnections};
use crate::udp::{BatchSocket, RecvBatch};

/// How often a busy worker publishes its counters (readers of [`crate::Sfu::stats`] get a
/// fresh snapshot on request regardless).
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// The longest the worker sleeps without a deadline: a cap in case a wake-up is missed.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Entries of the cache of the shared owner table; it starts over when full.
const FOREIGN_CACHE_LIMIT: usize = 64 * 1024;

pub(crate) const SOCKET: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);

pub(crate) struct Worker {
    core: WorkerCore,
    index: usize,
    shared: Arc<Shared>,
    now: Instant,
    socket: BatchSocket,
    poll: Poll,
    inbound: mpsc::Receiver<Inbound>,
    published: Arc<PublishedStats>,
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
        core: CoreConfig,
        socket: mio::net::UdpSocket,
        poll: Poll,
        inbound: mpsc::Receiver<Inbound>,
        shared: Arc<Shared>,
        published: Arc<PublishedStats>,
        listener: Option<mio::net::TcpListener>,
        tcp_slots: Arc<tcp::TcpSlots>,
        gso: bool,
    ) -> io::Result<Self> {
        let mut socket = socket;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let mut socket = BatchSocket::new(socket)?;
        let gso = socket.set_gso(gso);
        let core = WorkerCore::new(CoreConfig {
            group_transmits: gso,
            ..core
        });
        let workers = shared.workers.len();
        let now = Instant::now();
        let tcp = TcpConnections::new(listener, tcp_slots, poll.registry(), now)?;
        Ok(Worker {
            index: core.worker(),
            core,
            shared,
            now,
            tcp,
            tcp_frame: vec![0; tcp::MAX_FRAME],
            tcp_tokens: Vec::new(),
            tcp_closing: Vec::new(),
            socket,
            poll,
            inbound,
            published,
            hand_overs: (0..workers).map(|_| None).collect(),
            spare_batches: Vec::new(),
            foreign_owners: IdHashMap::default(),
            owners_generation: u64::MAX,
            stats_dirty: true,
            next_publish: now,
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
            self.now = Instant::now();
            if !self.drain_inbound() {
                // Tell every peer this is the end (RTCP BYE) before the sessions go.
                self.core.goodbye();
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
                        self.core.stats_mut().datagrams_received += count as u64;
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
                        self.core.stats_mut().socket_errors += 1;
                        break;
                    }
                }
            }
            self.handle_timeouts();
            self.flush();
            self.maybe_publish_stats();
        }
    }

    /// When the loop must wake at the latest: the core's next deadline, the next
    /// publication of changed counters, the TCP side's, or the idle cap.
    fn next_deadline(&mut self) -> Instant {
        let mut next = self.now + IDLE_WAKE;
        let deadlines = [
            self.core.poll_timeout(),
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
        let alive = loop {
            match self.inbound.try_recv() {
                Ok(Inbound::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => break false,
                Ok(Inbound::Command { command, reply }) => {
                    let _ = reply.send(self.core.handle_command(self.now, command));
                    self.stats_dirty = true;
                    // The session count may have changed, which readers expect to see at once.
                    self.next_publish = self.now;
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
                    if let Some(sender) = self.shared.workers.get(batch.from) {
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
        let index = self.index;
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
            if let Some(worker) = self.shared.workers.get(owner)
                && worker.send(Inbound::Datagrams(batch)).is_ok()
            {
                self.core.stats_mut().handed_over += count;
            }
        }
    }

    /// Drops the cache of the shared owner table when the table has changed.
    fn refresh_foreign_owners(&mut self) {
        let generation = self.shared.owners_generation.load(Ordering::Acquire);
        if generation != self.owners_generation {
            self.foreign_owners.clear();
            self.owners_generation = generation;
        }
    }

    /// The worker owning `source` according to the shared table, when it is not this one.
    /// Only for datagrams of addresses this worker does not own; the table's lock is taken
    /// once per address and table generation, not per datagram.
    fn foreign_owner(&mut self, source: SocketAddr) -> Option<usize> {
        if self.shared.workers.len() < 2 {
            return None;
        }
        let owner = match self.foreign_owners.get(&source) {
            Some(&owner) => owner,
            None => {
                let owner = self.shared.owners.read().ok()?.get(&source).copied()?;
                if self.foreign_owners.len() >= FOREIGN_CACHE_LIMIT {
                    self.foreign_owners.clear();
                }
                self.foreign_owners.insert(source, owner);
                owner
            }
        };
        (owner != self.index).then_some(owner)
    }

    /// Feeds one datagram to the core; one it cannot place goes to the worker that owns it.
    fn handle_datagram(&mut self, source: SocketAddr, datagram: &mut [u8]) {
        match self.core.handle_datagram(self.now, source, datagram) {
            DatagramOutcome::Done | DatagramOutcome::Dropped => {}
            DatagramOutcome::HandOver(owner) => self.hand_over(owner, source, datagram),
            DatagramOutcome::UnknownSource => match self.foreign_owner(source) {
                Some(owner) => self.hand_over(owner, source, datagram),
                None => self.core.count_drop(DropReason::UnvalidatedSource),
            },
        }
    }

    /// Runs the core's timers that are due, and sweeps the TCP connections.
    fn handle_timeouts(&mut self) {
        if self.core.poll_timeout().is_some_and(|at| at <= self.now) {
            self.core.handle_timeout(self.now);
            self.stats_dirty = true;
        }
        self.sweep_tcp();
    }

    /// Sends what the core has: over UDP in batches, or framed on a peer's TCP connection;
    /// then acts on the core's events.
    fn flush(&mut self) {
        if self.core.has_transmits() {
            let transmits = self.core.poll_transmits();
            let tcp = &mut self.tcp;
            let datagrams = transmits.iter().filter(|&(destination, bytes)| {
                // Output for peers on a TCP connection is framed there instead.
                if !tcp.is_empty()
                    && let Some(token) = tcp.token_of(&destination)
                {
                    tcp.queue(token, bytes);
                    return false;
                }
                true
            });
            self.socket.send_batch(datagrams);
            self.core.clear_transmits();
        }
        self.write_tcp();
        self.handle_core_events();
    }

    /// Tells signaling about sessions that ended, and the other workers about addresses
    /// this one now owns or no longer does.
    fn handle_core_events(&mut self) {
        let several = self.shared.workers.len() > 1;
        while let Some(event) = self.core.poll_event() {
            if !matches!(
                event,
                CoreEvent::AudioActivity { .. } | CoreEvent::DownlinkQuality { .. }
            ) {
                self.stats_dirty = true;
            }
            match event {
                CoreEvent::SessionEnded { session, .. } => {
                    let _ = self
                        .shared
                        .events
                        .send(signaling::MediaEvent::SessionEnded { session });
                }
                CoreEvent::AudioActivity {
                    track,
                    publisher,
                    packets,
                    voiced,
                } => {
                    let _ = self
                        .shared
                        .events
                        .send(signaling::MediaEvent::AudioActivity {
                            track,
                            publisher,
                            packets,
                            voiced,
                        });
                }
                CoreEvent::DownlinkQuality {
                    session,
                    estimate_bps,
                    allocated_bps,
                    wanted_bps,
                    loss_per_mille,
                    paused,
                } => {
                    let _ = self
                        .shared
                        .events
                        .send(signaling::MediaEvent::DownlinkQuality {
                            session,
                            estimate_bps,
                            allocated_bps,
                            wanted_bps,
                            loss_per_mille,
                            paused,
                        });
                }
                CoreEvent::AddressClaimed(address) if several => {
                    self.shared.set_owner(address, self.index);
                }
                CoreEvent::AddressReleased(address) if several => {
                    self.shared.forget_owner(address, self.index);
                }
                _ => {}
            }
        }
    }

    /// Publishes the counters when they changed and the interval has passed, or at once when
    /// a reader asks.
    fn maybe_publish_stats(&mut self) {
        let wanted = self.published.wanted();
        if wanted || (self.stats_dirty && self.now >= self.next_publish) {
            self.publish_stats();
        }
    }

    fn publish_stats(&mut self) {
        let mut snapshot = SfuStats {
            media: self.core.stats(),
            tcp: self.tcp.snapshot(),
        };
        snapshot.send_errors = self.socket.send_errors();
        self.published.publish(snapshot);
        self.stats_dirty = false;
        self.next_publish = self.now + PUBLISH_INTERVAL;
    }

    fn close_all(&mut self) {
        self.core.close_all();
        self.handle_core_events();
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
                .accept(self.poll.registry(), self.now, &mut accepted);
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
                    .and_then(|local| self.core.session_of_ufrag(&local));
                if own == Some(session) {
                    self.handle_datagram(peer, datagram);
                } else {
                    self.tcp.stats.dropped_frames += 1;
                }
            }
            DatagramKind::Dtls | DatagramKind::Rtp | DatagramKind::Rtcp => {
                if self.core.session_of_address(&peer) == Some(session) {
                    self.handle_datagram(peer, datagram);
                } else {
                    self.tcp.stats.dropped_frames += 1;
                }
            }
            _ => self.core.count_drop(DropReason::UnknownProtocol),
        }
        self.tcp.get_mut(token).is_some()
    }

    fn handle_first_tcp_frame(
        &mut self,
        token: Token,
        peer: SocketAddr,
        datagram: &mut [u8],
    ) -> bool {
        let message = StunMessage::parse(datagram).ok().filter(|message| {
            message.method() == ice_lite::METHOD_BINDING
                && message.class() == ice_lite::Class::Request
        });
        let Some(local) = message.as_ref().and_then(local_ufrag) else {
            self.close_tcp(token, CloseReason::BadFirstFrame);
            return false;
        };
        if let Some(owner) = media_plane::ufrag_owner(local)
            && owner != self.index
            && owner < self.shared.workers.len()
        {
            if let Some(handed) = self.tcp.hand_over(self.poll.registry(), token, datagram)
                && let Some(worker) = self.shared.workers.get(owner)
            {
                let _ = worker.send(Inbound::TcpConnection(handed));
            }
            return false;
        }
        let Some(session) = self.core.session_of_ufrag(local) else {
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
        self.handle_datagram(peer, datagram);
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
        self.core.release_address(peer, session);
        self.handle_core_events();
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
        let core = &self.core;
        self.tcp.sweep(
            self.now,
            |connection| match connection.session {
                None => Liveness::Unchecked,
                Some(id) if !core.has_session(id) => Liveness::SessionGone,
                Some(id) if core.session_of_address(&connection.peer) == Some(id) => {
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

/// Creates the waker that lets commands interrupt the worker's poll.
pub(crate) fn waker(poll: &Poll) -> io::Result<Waker> {
    Waker::new(poll.registry(), WAKER)
}
