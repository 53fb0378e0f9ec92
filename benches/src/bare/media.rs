//! The bare forwarder's one media thread: it waits on its socket, its command waker and the
//! earliest session deadline; receives in batches (recvmmsg through Sluice's own socket code);
//! demultiplexes by first byte; answers STUN and drives DTLS (the control plane, off the
//! measured path); unprotects SRTP in place; fans the batch's packets out to their
//! subscribers and flushes the send queue after each receive batch. Timers are event-driven: the earliest deadline is kept up to date as
//! sessions change, and sessions are only scanned when it passes.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ice_lite::{DatagramKind, StunMessage, classify};
use mio::{Events, Poll, Token};
use server::udp::{BatchSocket, RecvBatch};
use signaling::{MediaError, MediaEvent, Played, Published};
use tokio::sync::oneshot;

use super::counters::{Counters, DropReason};
use super::forward::{self, PendingFanOut, SendQueue};
use super::negotiation::{self, LocalContext};
use super::session::{SessionRole, Subscriber};
use super::table::SessionTable;
use media_plane::{EndReason, Output, PeerEvent, Received};
use packet_router::SessionId;

pub(crate) const SOCKET: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);

/// Receive batches handled per wake-up before commands and timers get their turn; the socket
/// is then polled again without waiting.
const BATCHES_PER_WAKEUP: usize = 64;

/// How often the counters are copied out for `GET /metrics`.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

/// A request from the signaling side.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        room: String,
        offer: String,
        reply: oneshot::Sender<Result<Published, MediaError>>,
    },
    Play {
        room: String,
        publisher: SessionId,
        offer: String,
        reply: oneshot::Sender<Result<Played, MediaError>>,
    },
    Close {
        session: SessionId,
        reply: oneshot::Sender<()>,
    },
    Shutdown,
}

pub(crate) struct MediaThread {
    pub(crate) socket: BatchSocket,
    pub(crate) poll: Poll,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    pub(crate) context: Arc<LocalContext>,
    pub(crate) shared_counters: Arc<Mutex<Counters>>,
    pub(crate) table: SessionTable,
    pub(crate) pending: PendingFanOut,
    pub(crate) queue: SendQueue,
    pub(crate) counters: Counters,
    pub(crate) now: Instant,
    /// The earliest deadline of any session (it may be early, never late).
    pub(crate) next_timeout: Option<Instant>,
    pub(crate) next_snapshot: Instant,
    /// STUN responses and DTLS datagrams are written here.
    pub(crate) scratch: Vec<u8>,
    /// Slots to visit in a timer scan, reused.
    pub(crate) due: Vec<usize>,
}

impl MediaThread {
    /// Runs until a shutdown command arrives or the command channel closes; returns the final
    /// counters.
    pub(crate) fn run(mut self) -> Counters {
        let mut readiness = Events::with_capacity(16);
        let mut batch = RecvBatch::new();
        let mut socket_pending = false;
        loop {
            let deadline = self.next_deadline();
            let timeout = if socket_pending {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            match self.poll.poll(&mut readiness, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
            self.now = Instant::now();
            if !self.drain_commands() {
                break;
            }
            socket_pending = self.receive(&mut batch);
            if self.now >= deadline {
                self.handle_timeouts();
            }
        }
        self.close_all();
        self.take_snapshot();
        self.counters
    }

    fn next_deadline(&self) -> Instant {
        match self.next_timeout {
            Some(at) => at.min(self.next_snapshot),
            None => self.next_snapshot,
        }
    }

    /// Reads and handles receive batches until the socket is empty; true when it stopped
    /// early with datagrams possibly left (the poll is edge-triggered).
    fn receive(&mut self, batch: &mut RecvBatch) -> bool {
        for _ in 0..BATCHES_PER_WAKEUP {
            match self.socket.recv(batch) {
                Ok(0) => return false,
                Ok(count) => {
                    self.counters.datagrams_received += count as u64;
                    for index in 0..batch.len() {
                        if self.pending.is_full() {
                            self.fan_out(batch);
                        }
                        if let Some((source, datagram)) = batch.datagram_mut(index) {
                            self.handle_datagram(source, index, datagram);
                        }
                    }
                    self.fan_out(batch);
                    self.queue.flush(&mut self.socket, &mut self.counters);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors surface here on Linux (a peer that went away); they concern one
                // peer, not the socket, and the next read goes on.
                Err(_) => self.counters.socket_errors += 1,
            }
        }
        self.now = Instant::now();
        true
    }

    fn fan_out(&mut self, batch: &mut RecvBatch) {
        forward::fan_out(
            &mut self.table,
            &mut self.pending,
            batch,
            &mut self.queue,
            &mut self.socket,
            &mut self.counters,
        );
    }

    /// Handles datagram number `index` of the receive batch.
    fn handle_datagram(&mut self, source: SocketAddr, index: usize, datagram: &mut [u8]) {
        match classify(datagram) {
            DatagramKind::Rtp => forward::unprotect(
                &mut self.table,
                &mut self.pending,
                &mut self.counters,
                source,
                index,
                datagram,
            ),
            DatagramKind::Rtcp => self.counters.drop(DropReason::Rtcp),
            DatagramKind::Stun => self.handle_stun(source, datagram),
            DatagramKind::Dtls => self.handle_dtls(source, datagram),
            _ => self.counters.drop(DropReason::UnknownProtocol),
        }
    }

    fn handle_stun(&mut self, source: SocketAddr, datagram: &[u8]) {
        let Ok(message) = StunMessage::parse(datagram) else {
            self.counters.drop(DropReason::MalformedStun);
            return;
        };
        // USERNAME is "<our ufrag>:<their ufrag>"; our ufrag names the session.
        let slot = message
            .username()
            .and_then(|username| username.split_once(':'))
            .and_then(|(local, _)| self.table.slot_by_ufrag(local));
        let Some(session) = slot.and_then(|slot| self.table.get_mut(slot)) else {
            self.counters.drop(DropReason::UnknownStunUsername);
            return;
        };
        let outcome = session.transport.handle_stun(self.now, source, &message);
        if outcome.response_len().is_some() {
            self.counters.stun_responses += 1;
        }
        if let Some(slot) = slot {
            self.after_session_input(slot);
        }
    }

    fn handle_dtls(&mut self, source: SocketAddr, datagram: &[u8]) {
        let Some(slot) = self.table.slot_by_address(source) else {
            self.counters.drop(DropReason::UnvalidatedSource);
            return;
        };
        let Some(session) = self.table.get_mut(slot) else {
            return;
        };
        if let Received::Dropped(_) = session.transport.handle_dtls(self.now, source, datagram) {
            self.counters.drop(DropReason::UnvalidatedSource);
        }
        self.after_session_input(slot);
    }

    /// Sends what the session's transport wrote, acts on its events, and notes its next
    /// deadline.
    fn after_session_input(&mut self, slot: usize) {
        loop {
            let Some(session) = self.table.get_mut(slot) else {
                return;
            };
            match session.transport.poll_output(&mut self.scratch) {
                Output::Transmit { destination, len } => {
                    if let Some(bytes) = self.scratch.get(..len) {
                        self.socket.send(destination, bytes);
                    }
                }
                Output::Event(PeerEvent::AddressValidated(address)) => {
                    self.table.validate_address(address, slot);
                }
                Output::Event(PeerEvent::RemoteChanged(address)) => {
                    self.player_moved(slot, address)
                }
                Output::Event(PeerEvent::Connected) => {
                    self.counters.dtls_connected += 1;
                    if let Some(srtp) = session.transport.take_srtp() {
                        self.connected(slot, Box::new(srtp));
                    }
                }
                Output::Event(PeerEvent::Ended(reason)) => {
                    if matches!(
                        reason,
                        EndReason::DtlsFailed | EndReason::FingerprintMismatch
                    ) {
                        self.counters.dtls_failed += 1;
                    }
                    self.end_session(slot);
                    return;
                }
                Output::Event(_) => {}
                Output::Timeout(at) => {
                    if let Some(at) = at {
                        self.next_timeout = Some(self.next_timeout.map_or(at, |next| next.min(at)));
                    }
                    return;
                }
            }
        }
    }

    /// DTLS completed: a publisher can now be unprotected; a player joins its publisher's
    /// subscribers with its outbound context.
    fn connected(&mut self, slot: usize, srtp: Box<rtc_core::srtp::SrtpSession>) {
        let Some(session) = self.table.get_mut(slot) else {
            return;
        };
        let (id, remote) = (session.id, session.transport.remote());
        match &mut session.role {
            SessionRole::Publisher(publisher) => publisher.inbound = Some(srtp.inbound),
            SessionRole::Player { publisher } => {
                let publisher = *publisher;
                if let (Some(remote), Some(SessionRole::Publisher(p))) =
                    (remote, self.table.get_mut(publisher).map(|s| &mut s.role))
                {
                    p.subscribers.push(Subscriber {
                        player: id,
                        remote,
                        outbound: srtp.outbound,
                    });
                }
            }
        }
    }

    /// A connected player's selected address moved: its copies follow.
    fn player_moved(&mut self, slot: usize, address: SocketAddr) {
        let Some(session) = self.table.get(slot) else {
            return;
        };
        let (id, SessionRole::Player { publisher }) = (session.id, &session.role) else {
            return;
        };
        if let Some(SessionRole::Publisher(p)) = self.table.get_mut(*publisher).map(|s| &mut s.role)
            && let Some(subscriber) = p.subscribers.iter_mut().find(|s| s.player == id)
        {
            subscriber.remote = address;
        }
    }

    fn note_deadline(&mut self, slot: usize) {
        if let Some(at) = self
            .table
            .get(slot)
            .and_then(|s| s.transport.poll_timeout())
        {
            self.next_timeout = Some(self.next_timeout.map_or(at, |next| next.min(at)));
        }
    }

    /// Ends a session on its own (consent, DTLS, setup timeout) and tells signaling.
    fn end_session(&mut self, slot: usize) {
        if let Some(id) = self.remove_session(slot) {
            let _ = self.events.send(MediaEvent::SessionEnded { session: id });
        }
    }

    /// Removes a session; a publisher's players end with it.
    fn remove_session(&mut self, slot: usize) -> Option<SessionId> {
        let session = self.table.get(slot)?;
        let id = session.id;
        match session.role {
            SessionRole::Publisher(_) => {
                let players: Vec<usize> = self
                    .table
                    .slots()
                    .filter(|&other| {
                        self.table.get(other).is_some_and(
                            |s| matches!(s.role, SessionRole::Player { publisher } if publisher == slot),
                        )
                    })
                    .collect();
                for player in players {
                    self.end_session(player);
                }
            }
            SessionRole::Player { publisher } => {
                if let Some(SessionRole::Publisher(p)) =
                    self.table.get_mut(publisher).map(|s| &mut s.role)
                {
                    p.subscribers.retain(|s| s.player != id);
                }
            }
        }
        self.table.remove(slot);
        Some(id)
    }

    /// Runs the timers of every session whose deadline has passed and recomputes the
    /// earliest deadline; copies the counters out when their interval has passed.
    fn handle_timeouts(&mut self) {
        let now = self.now;
        if self.next_timeout.is_some_and(|at| at <= now) {
            self.next_timeout = None;
            self.counters.timer_scans += 1;
            let mut due = std::mem::take(&mut self.due);
            due.clear();
            due.extend(self.table.slots());
            for &slot in &due {
                let Some(session) = self.table.get_mut(slot) else {
                    continue;
                };
                if session.transport.poll_timeout().is_some_and(|at| at <= now) {
                    session.transport.handle_timeout(now);
                    self.after_session_input(slot);
                } else {
                    self.note_deadline(slot);
                }
            }
            self.due = due;
            self.queue.flush(&mut self.socket, &mut self.counters);
        }
        if self.next_snapshot <= now {
            self.take_snapshot();
            self.next_snapshot = now + SNAPSHOT_INTERVAL;
        }
    }

    fn take_snapshot(&mut self) {
        self.counters.sessions = self.table.len() as u64;
        self.counters.send_errors = self.socket.send_errors();
        if let Ok(mut shared) = self.shared_counters.lock() {
            *shared = self.counters;
        }
    }

    /// Handles queued commands; false when the thread should stop.
    fn drain_commands(&mut self) -> bool {
        loop {
            let command = match self.commands.try_recv() {
                Ok(Command::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
                Ok(command) => command,
            };
            match command {
                Command::Publish { room, offer, reply } => {
                    let result = negotiation::publish(
                        &self.context,
                        &mut self.table,
                        self.now,
                        &room,
                        &offer,
                    );
                    if let Ok(published) = &result {
                        self.note_session(published.session);
                    }
                    let _ = reply.send(result);
                }
                Command::Play {
                    room,
                    publisher,
                    offer,
                    reply,
                } => {
                    let result = negotiation::play(
                        &self.context,
                        &mut self.table,
                        self.now,
                        &room,
                        publisher,
                        &offer,
                    );
                    if let Ok(played) = &result {
                        self.note_session(played.session);
                    }
                    let _ = reply.send(result);
                }
                Command::Close { session, reply } => {
                    if let Some(slot) = self.table.slot_of(session) {
                        self.remove_session(slot);
                    }
                    let _ = reply.send(());
                }
                Command::Shutdown => return false,
            }
        }
    }

    fn note_session(&mut self, id: SessionId) {
        if let Some(slot) = self.table.slot_of(id) {
            self.note_deadline(slot);
        }
    }

    fn close_all(&mut self) {
        let slots: Vec<usize> = self.table.slots().collect();
        for slot in slots {
            self.table.remove(slot);
        }
    }
}
