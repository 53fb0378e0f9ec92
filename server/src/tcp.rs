//! ICE over TCP on the media port's number (RFC 6544 passive host candidates, RFC 4571
//! framing), for peers whose networks block UDP.
//!
//! Every worker listens on the media port's address with TCP (SO_REUSEPORT, like its UDP
//! socket), so the kernel spreads accepted connections over the workers. A connection's
//! frames are datagrams from the connection's peer address: the worker feeds each to the same
//! STUN, DTLS and SRTP paths as a UDP datagram, and a session whose selected address is a TCP
//! peer gets its output framed on that connection instead of sent over UDP.
//!
//! The first frame must be a STUN binding request whose username names a session; its
//! ufrag's first character names the worker that owns it, which gets the whole connection
//! (socket, buffered bytes and slot) and registers it in its own poll. Until then, and until
//! the peer's address has passed an ICE check, a connection is on probation: silence, an
//! oversized frame, a first frame that is not such a request, or one connection too many
//! (overall or from one IP address) closes it and is counted, touching no other session.
//!
//! What it costs a UDP session: one emptiness check of this worker's connection table per
//! send path. Output to a TCP peer is copied into the connection's bounded buffer; when the
//! peer reads too slowly the buffer fills and further packets are dropped and counted rather
//! than blocking the worker (video then recovers through NACK and PLI, as over lossy UDP).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ice_lite::framing::{FrameDecoder, frame_header};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use packet_router::{IdHashMap, SessionId};

/// The token of a worker's TCP listener (the UDP socket and the waker have 0 and 1).
pub(crate) const LISTENER: Token = Token(2);
const FIRST_CONNECTION_TOKEN: usize = 3;

/// The longest frame accepted: well above the largest media or DTLS datagram a WebRTC peer
/// sends (they keep to a path MTU of about 1,500 bytes even over TCP).
pub const MAX_FRAME: usize = 4096;

/// Bytes queued per connection before packets are dropped: about 0.4 s of 2.5 Mbit/s
/// video, 128 MB across the overall cap of connections.
pub(crate) const SEND_BUFFER_LIMIT: usize = 128 * 1024;

/// How long a connection may take to pass its first ICE check, from its accept.
pub const FIRST_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP connections open at once on the media port, over all workers.
pub const MAX_CONNECTIONS: usize = 1000;

/// TCP connections open at once from one IP address: a browser opens one per passive
/// candidate and peer connection, so this leaves room for many tabs behind one NAT.
pub const MAX_CONNECTIONS_PER_IP: usize = 64;

/// TCP connections one session may hold: a browser opens one per pair of its active and
/// Sluice's passive candidates, a few; a peer that knows its own session's credentials
/// cannot hold more of the port's slots than this.
pub const MAX_CONNECTIONS_PER_SESSION: usize = 16;

/// How often connections are checked for their deadlines (the worker wakes at least this
/// often anyway).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Pending connections a worker reads per listener event; more wait for the next event.
const LISTEN_BACKLOG: i32 = 1024;

/// Binds the TCP listener of one worker on `address` (SO_REUSEPORT, non-blocking).
pub fn bind_reuse_port(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Counters of the TCP side of the media port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// TCP connections open now.
    pub connections: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Frames received (each handled as a datagram).
    pub frames_received: u64,
    /// Connections handed to the worker owning the session their first check named.
    pub handed_over: u64,
    /// Connections refused: the overall or per-address cap was reached at accept, or the
    /// session its first check named already holds as many as it may.
    pub refused_over_limit: u64,
    /// Connections closed because a frame announced more than the maximum length.
    pub closed_frame_too_long: u64,
    /// Connections closed because their first frame was not a STUN binding request for a
    /// known session.
    pub closed_bad_first_frame: u64,
    /// Connections closed because no ICE check passed within the first-check timeout.
    pub closed_silent: u64,
    /// Packets dropped because a connection's send buffer was full.
    pub dropped_send_buffer_full: u64,
    /// Frames on a connection for another session than its own, or media before its address
    /// passed a check.
    pub dropped_frames: u64,
}

impl TcpStats {
    pub(crate) fn add(&mut self, other: &TcpStats) {
        let TcpStats {
            connections,
            accepted,
            frames_received,
            handed_over,
            refused_over_limit,
            closed_frame_too_long,
            closed_bad_first_frame,
            closed_silent,
            dropped_send_buffer_full,
            dropped_frames,
        } = other;
        for (total, value) in [
            (&mut self.connections, connections),
            (&mut self.accepted, accepted),
            (&mut self.frames_received, frames_received),
            (&mut self.handed_over, handed_over),
            (&mut self.refused_over_limit, refused_over_limit),
            (&mut self.closed_frame_too_long, closed_frame_too_long),
            (&mut self.closed_bad_first_frame, closed_bad_first_frame),
            (&mut self.closed_silent, closed_silent),
            (&mut self.dropped_send_buffer_full, dropped_send_buffer_full),
            (&mut self.dropped_frames, dropped_frames),
        ] {
            *total += *value;
        }
    }

    /// The counters in the Prometheus text exposition format.
    /// The counters as served at `GET /metrics` (counters without their `_total`).
    pub(crate) fn metrics(&self) -> Vec<signaling::MediaMetric> {
        let metrics: [(&str, &str, &str, u64); 10] = [
            (
                "sluice_tcp_connections",
                "gauge",
                "ICE-TCP connections open now.",
                self.connections,
            ),
            (
                "sluice_tcp_accepted",
                "counter",
                "ICE-TCP connections accepted.",
                self.accepted,
            ),
            (
                "sluice_tcp_frames_received",
                "counter",
                "RFC 4571 frames received on ICE-TCP connections.",
                self.frames_received,
            ),
            (
                "sluice_tcp_handed_over",
                "counter",
                "ICE-TCP connections handed to the worker owning their session.",
                self.handed_over,
            ),
            (
                "sluice_tcp_refused_over_limit",
                "counter",
                "ICE-TCP connections refused at the overall, per-address or per-session cap.",
                self.refused_over_limit,
            ),
            (
                "sluice_tcp_closed_frame_too_long",
                "counter",
                "ICE-TCP connections closed for a frame above the maximum length.",
                self.closed_frame_too_long,
            ),
            (
                "sluice_tcp_closed_bad_first_frame",
                "counter",
                "ICE-TCP connections closed for a first frame that is no check for a known session.",
                self.closed_bad_first_frame,
            ),
            (
                "sluice_tcp_closed_silent",
                "counter",
                "ICE-TCP connections closed for passing no ICE check in time.",
                self.closed_silent,
            ),
            (
                "sluice_tcp_dropped_send_buffer_full",
                "counter",
                "Packets dropped because an ICE-TCP connection's send buffer was full.",
                self.dropped_send_buffer_full,
            ),
            (
                "sluice_tcp_dropped_frames",
                "counter",
                "ICE-TCP frames for another session, or media from an unchecked connection.",
                self.dropped_frames,
            ),
        ];
        metrics
            .into_iter()
            .map(|(name, kind, help, value)| {
                if kind == "gauge" {
                    signaling::MediaMetric::gauge(name, help, value)
                } else {
                    signaling::MediaMetric::counter(name, help, value)
                }
            })
            .collect()
    }
}

/// The connection slots of the media port, shared by the workers: taken at accept, given
/// back when the connection closes on whichever worker then owns it.
#[derive(Debug)]
pub(crate) struct TcpSlots {
    counts: Mutex<SlotCounts>,
    max_total: usize,
    max_per_ip: usize,
}

#[derive(Debug, Default)]
struct SlotCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One connection's slot; dropping it gives the slot back.
#[derive(Debug)]
pub(crate) struct TcpSlot {
    slots: Arc<TcpSlots>,
    ip: IpAddr,
}

impl TcpSlots {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(TcpSlots {
            counts: Mutex::default(),
            max_total,
            max_per_ip,
        })
    }

    /// A slot for a connection from `ip`, or `None` at either cap.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<TcpSlot> {
        let ip = canonical(ip);
        let mut counts = self.counts.lock().ok()?;
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if counts.total >= self.max_total || from_ip >= self.max_per_ip {
            return None;
        }
        counts.total += 1;
        counts.per_ip.insert(ip, from_ip + 1);
        Some(TcpSlot {
            slots: Arc::clone(self),
            ip,
        })
    }

    /// Connections holding a slot now.
    pub(crate) fn open(&self) -> usize {
        self.counts.lock().map(|counts| counts.total).unwrap_or(0)
    }
}

impl Drop for TcpSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.slots.counts.lock() {
            counts.total = counts.total.saturating_sub(1);
            if let Some(count) = counts.per_ip.get_mut(&self.ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.per_ip.remove(&self.ip);
                }
            }
        }
    }
}

/// An IPv4 peer on a dual-stack socket counts as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One accepted connection.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    /// The peer's address: the source of its frames and the destination of its output.
    pub(crate) peer: SocketAddr,
    decoder: FrameDecoder,
    /// Framed output not yet written; bytes before `out_start` are written.
    out: Vec<u8>,
    out_start: usize,
    opened: Instant,
    /// The session its first check named.
    pub(crate) session: Option<SessionId>,
    _slot: TcpSlot,
}

/// A connection on its way to the worker that owns its session, with the first frame that
/// named it (not yet handled) and whatever followed it.
#[derive(Debug)]
pub(crate) struct HandedConnection {
    connection: Connection,
    pub(crate) first_frame: Vec<u8>,
}

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The peer closed it, or it failed (reset, write error).
    Ended,
    /// A frame longer than [`MAX_FRAME`].
    FrameTooLong,
    /// The first frame was no binding request naming a known session.
    BadFirstFrame,
    /// No check passed within [`FIRST_CHECK_TIMEOUT`].
    Silent,
    /// Its session is gone.
    SessionEnded,
    /// Its session holds [`MAX_CONNECTIONS_PER_SESSION`] already.
    OverLimit,
}

/// What became of a frame queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    Yes,
    /// No room in the send buffer: dropped.
    Full,
}

/// A worker's TCP listener and connections.
#[derive(Debug)]
pub(crate) struct TcpConnections {
    listener: Option<TcpListener>,
    slots: Arc<TcpSlots>,
    connections: HashMap<Token, Connection>,
    by_peer: IdHashMap<SocketAddr, Token>,
    next_token: usize,
    next_sweep: Instant,
    /// Connections with output waiting to be written in this round.
    unwritten: Vec<Token>,
    pub(crate) stats: TcpStats,
}

impl TcpConnections {
    pub(crate) fn new(
        listener: Option<TcpListener>,
        slots: Arc<TcpSlots>,
        registry: &Registry,
        now: Instant,
    ) -> io::Result<Self> {
        let mut listener = listener;
        if let Some(listener) = listener.as_mut() {
            registry.register(listener, LISTENER, Interest::READABLE)?;
        }
        Ok(TcpConnections {
            listener,
            slots,
            connections: HashMap::new(),
            by_peer: IdHashMap::default(),
            next_token: FIRST_CONNECTION_TOKEN,
            next_sweep: now + SWEEP_INTERVAL,
            unwritten: Vec::new(),
            stats: TcpStats::default(),
        })
    }

    /// Whether this worker has no TCP connection (the check UDP sends pay).
    pub(crate) fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// How many connections are bound to `session` (a scan: only when a connection's first
    /// check names its session, not per packet).
    pub(crate) fn connections_of(&self, session: SessionId) -> usize {
        self.connections
            .values()
            .filter(|connection| connection.session == Some(session))
            .count()
    }

    /// The connection whose peer is `address`.
    pub(crate) fn token_of(&self, address: &SocketAddr) -> Option<Token> {
        self.by_peer.get(address).copied()
    }

    pub(crate) fn get_mut(&mut self, token: Token) -> Option<&mut Connection> {
        self.connections.get_mut(&token)
    }

    /// Accepts what the listener has, within the caps; returns the new connections' tokens.
    pub(crate) fn accept(&mut self, registry: &Registry, now: Instant, accepted: &mut Vec<Token>) {
        // Out of its slot while connections are inserted, and back at the end.
        let Some(listener) = self.listener.take() else {
            return;
        };
        loop {
            let (stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Nothing more (WouldBlock), or out of descriptors, or a connection reset
                // before it was taken: the listener stays; the next event tries again.
                Err(_) => break,
            };
            let Some(slot) = self.slots.acquire(peer.ip()) else {
                self.stats.refused_over_limit += 1;
                drop(stream);
                continue;
            };
            // Packets are latency-sensitive and already sized: no Nagle delay.
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                stream,
                peer,
                decoder: FrameDecoder::new(MAX_FRAME),
                out: Vec::new(),
                out_start: 0,
                opened: now,
                session: None,
                _slot: slot,
            };
            if let Some(token) = self.insert(registry, connection) {
                self.stats.accepted += 1;
                accepted.push(token);
            }
        }
        self.listener = Some(listener);
    }

    /// Registers a connection in this worker's poll.
    fn insert(&mut self, registry: &Registry, mut connection: Connection) -> Option<Token> {
        let token = Token(self.next_token);
        self.next_token = self.next_token.wrapping_add(1).max(FIRST_CONNECTION_TOKEN);
        registry
            .register(
                &mut connection.stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )
            .ok()?;
        // A peer address seen twice (a reconnect while the old one lingers) goes to the new.
        if let Some(old) = self.by_peer.insert(connection.peer, token)
            && let Some(mut stale) = self.connections.remove(&old)
        {
            let _ = registry.deregister(&mut stale.stream);
        }
        self.connections.insert(token, connection);
        Some(token)
    }

    /// Takes a connection out of this worker's poll to hand it to `first_frame`'s owner.
    pub(crate) fn hand_over(
        &mut self,
        registry: &Registry,
        token: Token,
        first_frame: &[u8],
    ) -> Option<HandedConnection> {
        let mut connection = self.remove(token)?;
        registry.deregister(&mut connection.stream).ok()?;
        self.stats.handed_over += 1;
        Some(HandedConnection {
            connection,
            first_frame: first_frame.to_vec(),
        })
    }

    /// Registers a connection another worker accepted for this one's session.
    pub(crate) fn adopt(
        &mut self,
        registry: &Registry,
        handed: HandedConnection,
    ) -> Option<(Token, Vec<u8>)> {
        let token = self.insert(registry, handed.connection)?;
        Some((token, handed.first_frame))
    }

    fn remove(&mut self, token: Token) -> Option<Connection> {
        let connection = self.connections.remove(&token)?;
        if self.by_peer.get(&connection.peer) == Some(&token) {
            self.by_peer.remove(&connection.peer);
        }
        Some(connection)
    }

    /// Closes a connection (its slot goes back); returns its peer and session.
    pub(crate) fn close(
        &mut self,
        registry: &Registry,
        token: Token,
        reason: CloseReason,
    ) -> Option<(SocketAddr, Option<SessionId>)> {
        let mut connection = self.remove(token)?;
        let _ = registry.deregister(&mut connection.stream);
        match reason {
            CloseReason::FrameTooLong => self.stats.closed_frame_too_long += 1,
            CloseReason::BadFirstFrame => self.stats.closed_bad_first_frame += 1,
            CloseReason::Silent => self.stats.closed_silent += 1,
            CloseReason::OverLimit => self.stats.refused_over_limit += 1,
            CloseReason::Ended | CloseReason::SessionEnded => {}
        }
        Some((connection.peer, connection.session))
    }

    /// Reads what the connection has into its decoder. `Ok(true)`: bytes arrived (take the
    /// frames, then read again); `Ok(false)`: nothing more for now; `Err`: it is over.
    pub(crate) fn read(&mut self, token: Token) -> Result<bool, CloseReason> {
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(false);
        };
        loop {
            let spare = connection.decoder.spare();
            if spare.is_empty() {
                // A complete frame waits (the caller takes frames before reading again).
                return Ok(true);
            }
            return match connection.stream.read(spare) {
                Ok(0) => Err(CloseReason::Ended),
                Ok(len) => {
                    connection.decoder.filled(len);
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => Err(CloseReason::Ended),
            };
        }
    }

    /// Copies the connection's next complete frame into `out`; its length, `Ok(None)` when
    /// none is complete, or an error for an oversized one.
    pub(crate) fn next_frame(
        &mut self,
        token: Token,
        out: &mut [u8],
    ) -> Result<Option<usize>, CloseReason> {
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(None);
        };
        match connection.decoder.next_frame() {
            Ok(Some(frame)) => {
                let len = frame.len();
                let target = out.get_mut(..len).ok_or(CloseReason::FrameTooLong)?;
                target.copy_from_slice(frame);
                self.stats.frames_received += 1;
                Ok(Some(len))
            }
            Ok(None) => Ok(None),
            Err(_) => Err(CloseReason::FrameTooLong),
        }
    }

    /// Frames `packet` into the connection's send buffer (written by
    /// [`TcpConnections::write_pending`]), or drops it when the buffer is full.
    pub(crate) fn queue(&mut self, token: Token, packet: &[u8]) -> Queued {
        let Some(connection) = self.connections.get_mut(&token) else {
            return Queued::Full;
        };
        let Some(header) = frame_header(packet.len()) else {
            return Queued::Full;
        };
        let queued = connection.out.len() - connection.out_start;
        if queued + header.len() + packet.len() > SEND_BUFFER_LIMIT {
            self.stats.dropped_send_buffer_full += 1;
            return Queued::Full;
        }
        if queued == 0 {
            self.unwritten.push(token);
        }
        connection.out.extend_from_slice(&header);
        connection.out.extend_from_slice(packet);
        Queued::Yes
    }

    /// Writes the output queued this round; returns connections that failed, to be closed.
    pub(crate) fn write_pending(&mut self, failed: &mut Vec<Token>) {
        let mut unwritten = std::mem::take(&mut self.unwritten);
        for token in unwritten.drain(..) {
            if self.write(token).is_err() {
                failed.push(token);
            }
        }
        self.unwritten = unwritten;
    }

    /// Writes as much of the connection's output as the socket takes (again on a writable
    /// event when it took less).
    pub(crate) fn write(&mut self, token: Token) -> io::Result<()> {
        let Some(connection) = self.connections.get_mut(&token) else {
            return Ok(());
        };
        while connection.out_start < connection.out.len() {
            let pending = connection
                .out
                .get(connection.out_start..)
                .unwrap_or_default();
            match connection.stream.write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(len) => connection.out_start += len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if connection.out_start == connection.out.len() {
            connection.out.clear();
            connection.out_start = 0;
            if connection.out.capacity() > SEND_BUFFER_LIMIT {
                connection.out.shrink_to(SEND_BUFFER_LIMIT);
            }
        } else if connection.out_start > SEND_BUFFER_LIMIT / 2 {
            connection.out.drain(..connection.out_start);
            connection.out_start = 0;
        }
        Ok(())
    }

    /// When the connections next need a look (only while there are some).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        (!self.connections.is_empty()).then_some(self.next_sweep)
    }

    /// At most once per [`SWEEP_INTERVAL`]: the connections whose deadline passed (no check
    /// passed in time) or whose session is gone, as `is_live` judges them.
    pub(crate) fn sweep(
        &mut self,
        now: Instant,
        mut is_live: impl FnMut(&Connection) -> Liveness,
        expired: &mut Vec<(Token, CloseReason)>,
    ) {
        if self.connections.is_empty() || now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        for (&token, connection) in &self.connections {
            match is_live(connection) {
                Liveness::Checked => {}
                Liveness::SessionGone => expired.push((token, CloseReason::SessionEnded)),
                Liveness::Unchecked => {
                    if now >= connection.opened + FIRST_CHECK_TIMEOUT {
                        expired.push((token, CloseReason::Silent));
                    }
                }
            }
        }
    }

    /// The counters, with the number of connections this worker holds.
    pub(crate) fn snapshot(&self) -> TcpStats {
        TcpStats {
            connections: self.connections.len() as u64,
            ..self.stats.clone()
        }
    }

    /// Slots taken over all workers (for tests and logs).
    #[allow(dead_code)]
    pub(crate) fn open_overall(&self) -> usize {
        self.slots.open()
    }
}

/// What a sweep finds of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Its peer address passed a check of its session.
    Checked,
    /// Not (yet) checked: closed once its first-check deadline passes.
    Unchecked,
    /// Its session has ended.
    SessionGone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_overall_and_per_address_and_given_back() {
        let slots = TcpSlots::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let first = slots.acquire(a).expect("first from a");
        let second = slots.acquire(mapped).expect("second from a (mapped)");
        assert!(slots.acquire(a).is_none(), "a third from a is over its cap");
        let third = slots.acquire(b).expect("first from b");
        assert!(slots.acquire(b).is_none(), "over the overall cap");
        assert_eq!(slots.open(), 3);
        drop(first);
        assert!(slots.acquire(a).is_some(), "a slot came back");
        drop((second, third));
        assert_eq!(slots.open(), 0);
        assert!(slots.counts.lock().unwrap().per_ip.is_empty());
    }

    /// A peer that does not read: the send buffer fills, whole packets are dropped and
    /// counted, and what does go out is a clean stream of complete frames in order.
    #[test]
    fn a_slow_reader_costs_whole_dropped_packets_not_a_blocked_worker() {
        let listener = bind_reuse_port("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let poll = mio::Poll::new().unwrap();
        let now = Instant::now();
        let mut tcp = TcpConnections::new(
            Some(TcpListener::from_std(listener)),
            TcpSlots::new(4, 4),
            poll.registry(),
            now,
        )
        .unwrap();
        let mut client = std::net::TcpStream::connect(address).unwrap();
        let mut accepted = Vec::new();
        for _ in 0..200 {
            tcp.accept(poll.registry(), now, &mut accepted);
            if !accepted.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let token = *accepted.first().expect("accepted");
        assert_eq!(tcp.token_of(&client.local_addr().unwrap()), Some(token));

        const PACKETS: u32 = 20_000;
        let mut dropped = 0u32;
        let mut packet = [0u8; 1200];
        let mut failed = Vec::new();
        for sequence in 0..PACKETS {
            packet[..4].copy_from_slice(&sequence.to_be_bytes());
            if tcp.queue(token, &packet) == Queued::Full {
                dropped += 1;
            }
            tcp.write_pending(&mut failed);
        }
        assert!(failed.is_empty());
        assert!(
            dropped > 0,
            "24 MB to a peer that does not read must overflow"
        );
        assert_eq!(tcp.stats.dropped_send_buffer_full, u64::from(dropped));

        let reader = std::thread::spawn(move || {
            let mut received = Vec::new();
            let mut header = [0u8; 2];
            while client.read_exact(&mut header).is_ok() {
                let mut body = vec![0; usize::from(u16::from_be_bytes(header))];
                client.read_exact(&mut body).expect("a whole frame");
                assert_eq!(body.len(), 1200, "frames stay whole");
                received.push(u32::from_be_bytes(body[..4].try_into().unwrap()));
            }
            received
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while tcp
            .get_mut(token)
            .is_some_and(|c| c.out_start < c.out.len())
        {
            tcp.write(token).unwrap();
            assert!(Instant::now() < deadline, "the buffer never drained");
            std::thread::sleep(Duration::from_millis(1));
        }
        tcp.close(poll.registry(), token, CloseReason::Ended);
        let received = reader.join().unwrap();
        eprintln!(
            "{} of {PACKETS} packets of 1,200 bytes delivered to a peer that read only at the end, {dropped} dropped",
            received.len()
        );
        assert_eq!(received.len() as u32 + dropped, PACKETS);
        assert!(received.windows(2).all(|w| w[0] < w[1]), "in order");
        assert_eq!(received.first(), Some(&0));
        assert_eq!(tcp.slots.open(), 0, "the slot came back");
    }

    #[test]
    fn tcp_stats_add_up_and_are_served() {
        let mut total = TcpStats::default();
        let one = TcpStats {
            connections: 2,
            closed_silent: 1,
            ..TcpStats::default()
        };
        total.add(&one);
        total.add(&one);
        assert_eq!((total.connections, total.closed_silent), (4, 2));
        let metrics = total.metrics();
        let value = |name: &str| metrics.iter().find(|m| m.name == name).map(|m| m.value);
        assert_eq!(value("sluice_tcp_connections"), Some(4));
        assert_eq!(value("sluice_tcp_closed_silent"), Some(2));
    }
}
