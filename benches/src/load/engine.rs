//! The engine thread: owns every client session of a run, waits on their sockets with one
//! epoll set (mio), sends each publisher's media when it is due, drives ICE and DTLS timers,
//! and answers snapshots of its counters. The signaling thread hands it sessions and asks for
//! snapshots over a channel, waking it through a `mio::Waker`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mio::{Events, Interest, Poll, Token, Waker};

use super::pending::ClientRole;
use super::report::LatencyHistogram;
use super::session::{ClientSession, EngineContext};
use super::socket::{RECV_BATCH, RecvBatch, SharedSocket};

/// The waker's token; sessions with their own socket use their index.
const WAKER: Token = Token(usize::MAX);
/// Shared socket `k` has token `SHARED_FIRST - k`.
const SHARED_FIRST: usize = usize::MAX - 1;
/// How often session timers (checks, consent, DTLS retransmissions) are looked at.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(20);
/// Pause after a wake-up that read datagrams: waking on every datagram costs the load
/// generator more than reading it (a context switch each), and the queues hold far more than
/// this much traffic.
const RECEIVE_COALESCE: Duration = Duration::from_micros(500);
/// Failure reasons a snapshot carries (the first ones are enough to say what went wrong).
const MAX_REPORTED_FAILURES: usize = 5;

enum Command {
    Add(Box<ClientSession>),
    Snapshot(Sender<Snapshot>),
    ResetLatency,
    Stop,
}

/// Cumulative counters of the engine at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// When it was taken.
    pub at: Option<Instant>,
    /// Sessions added.
    pub sessions: usize,
    /// Sessions with SRTP keys.
    pub connected: usize,
    /// Sessions that failed, and the first reasons.
    pub failed: usize,
    /// See `failed`.
    pub failures: Vec<String>,
    /// RTP packets sent by publishers.
    pub sent: u64,
    /// Sum over publishers of packets sent times subscribe sessions to that publisher.
    pub expected_by_senders: u64,
    /// Sum over received streams of the packets their sequence numbers span.
    pub expected_by_sequence: u64,
    /// RTP packets received once.
    pub received: u64,
    /// RTP packets received again.
    pub duplicates: u64,
    /// Subscribe sessions that have received nothing yet.
    pub silent_subscriptions: usize,
    /// Subscribe sessions that have not yet received every kind they subscribed to.
    pub incomplete_subscriptions: usize,
    /// Datagrams the kernel refused.
    pub send_errors: u64,
    /// Sampled packets that failed to unprotect.
    pub srtp_errors: u64,
    /// Latencies since the last reset.
    pub latency: LatencyHistogram,
}

/// A running engine thread.
#[derive(Debug)]
pub struct Engine {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the thread; one packet in `latency_sample` is unprotected for its send time.
    /// Sessions without a socket of their own use `shared`.
    pub fn start(latency_sample: u64, mut shared: Vec<SharedSocket>) -> anyhow::Result<Engine> {
        let poll = Poll::new().context("creating the engine's poll")?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        for (index, socket) in shared.iter_mut().enumerate() {
            poll.registry().register(
                socket.socket_mut(),
                Token(SHARED_FIRST - index),
                Interest::READABLE,
            )?;
        }
        let (commands, inbox) = mpsc::channel();
        let ctx = EngineContext::new(latency_sample, shared);
        let thread = std::thread::Builder::new()
            .name("sluice-load-engine".into())
            .spawn(move || run(poll, inbox, ctx))?;
        Ok(Engine {
            commands,
            waker,
            thread: Some(thread),
        })
    }

    fn send(&self, command: Command) -> anyhow::Result<()> {
        self.commands
            .send(command)
            .map_err(|_| anyhow::anyhow!("the engine thread has stopped"))?;
        self.waker.wake()?;
        Ok(())
    }

    /// Hands a session to the engine.
    pub fn add(&self, session: ClientSession) -> anyhow::Result<()> {
        self.send(Command::Add(Box::new(session)))
    }

    /// The engine's counters now.
    pub fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let (reply, answer) = mpsc::channel();
        self.send(Command::Snapshot(reply))?;
        answer
            .recv_timeout(Duration::from_secs(10))
            .context("the engine did not answer a snapshot")
    }

    /// Starts a new latency histogram (at the start of a measurement window).
    pub fn reset_latency(&self) -> anyhow::Result<()> {
        self.send(Command::ResetLatency)
    }

    /// Stops the thread and closes every session's socket.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let _ = self.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn run(mut poll: Poll, inbox: Receiver<Command>, mut ctx: EngineContext) {
    let mut sessions: Vec<ClientSession> = Vec::new();
    // Sessions on the shared socket, by their address.
    let mut by_ip: HashMap<IpAddr, usize> = HashMap::new();
    let mut publishers: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut batch = RecvBatch::default();
    let mut next_housekeeping = Instant::now();
    loop {
        let now = Instant::now();
        for &index in &publishers {
            if let Some(session) = sessions.get_mut(index)
                && session.next_media_at().is_some_and(|at| at <= now)
            {
                session.send_due_media(now, &mut ctx);
            }
        }
        if now >= next_housekeeping {
            for session in sessions.iter_mut() {
                if session.poll_timeout() <= now {
                    session.handle_timeout(now, &mut ctx);
                }
            }
            next_housekeeping = now + HOUSEKEEPING_INTERVAL;
        }
        let mut wake_at = next_housekeeping;
        for &index in &publishers {
            if let Some(at) = sessions.get(index).and_then(ClientSession::next_media_at) {
                wake_at = wake_at.min(at);
            }
        }
        let timeout = wake_at.saturating_duration_since(Instant::now());
        if poll.poll(&mut events, Some(timeout)).is_err() {
            // Interrupted: go round again.
            continue;
        }
        let now = Instant::now();
        let mut received = false;
        for event in events.iter() {
            if event.token() == WAKER {
                continue;
            }
            received = true;
            let shared = SHARED_FIRST.checked_sub(event.token().0);
            if let Some(shared) = shared.filter(|&k| k < ctx.shared.len()) {
                drain_shared(now, shared, &mut sessions, &by_ip, &mut batch, &mut ctx);
                continue;
            }
            if let Some(session) = sessions.get_mut(event.token().0) {
                session.drain_socket(now, &mut batch, &mut ctx);
            }
        }
        if received {
            // Let the next datagrams gather in the socket queues: one wake-up then reads many
            // of them. Receive times come from the kernel, so waiting adds nothing to the
            // measured time inside the server.
            std::thread::sleep(RECEIVE_COALESCE);
        }
        for command in inbox.try_iter() {
            match command {
                Command::Add(mut session) => {
                    let token = Token(sessions.len());
                    match session.socket_mut() {
                        Some(socket) => {
                            if poll
                                .registry()
                                .register(socket, token, Interest::READABLE)
                                .is_err()
                            {
                                session.failure = Some("could not register the socket".to_owned());
                            }
                        }
                        None => {
                            by_ip.insert(session.local_address().ip(), sessions.len());
                        }
                    }
                    if matches!(session.role, ClientRole::Publisher { .. }) {
                        publishers.push(sessions.len());
                    }
                    sessions.push(*session);
                    // Its first checks go out right away.
                    next_housekeeping = Instant::now();
                }
                Command::Snapshot(reply) => {
                    let _ = reply.send(snapshot(&sessions, &ctx));
                }
                Command::ResetLatency => ctx.latency = LatencyHistogram::default(),
                Command::Stop => return,
            }
        }
    }
}

/// Reads the shared socket until it is empty and hands each datagram to the session it was
/// addressed to.
fn drain_shared(
    now: Instant,
    shared: usize,
    sessions: &mut [ClientSession],
    by_ip: &HashMap<IpAddr, usize>,
    batch: &mut RecvBatch,
    ctx: &mut EngineContext,
) {
    loop {
        let Some(count) = ctx.shared.get(shared).and_then(|s| s.receive(batch)) else {
            return;
        };
        for index in 0..count {
            batch.for_each_datagram(index, |source, destination, received_ns, datagram| {
                // Only loopback peers reach the load generator's sessions.
                if !source.ip().is_loopback() {
                    return;
                }
                let session = destination
                    .and_then(|ip| by_ip.get(&ip))
                    .and_then(|&at| sessions.get_mut(at));
                if let Some(session) = session {
                    session.handle_datagram(now, source, received_ns, datagram, ctx);
                }
            });
        }
        // See ClientSession::drain_socket: a short batch emptied the queue.
        if count < RECV_BATCH {
            return;
        }
    }
}

fn snapshot(sessions: &[ClientSession], ctx: &EngineContext) -> Snapshot {
    let mut snap = Snapshot {
        at: Some(Instant::now()),
        sessions: sessions.len(),
        received: ctx.received,
        duplicates: ctx.duplicates,
        send_errors: ctx.send_errors,
        srtp_errors: ctx.srtp_errors,
        latency: ctx.latency.clone(),
        ..Snapshot::default()
    };
    let mut sent_by_publisher: Vec<u64> = Vec::new();
    for session in sessions {
        if session.is_connected() {
            snap.connected += 1;
        }
        if let Some(failure) = &session.failure {
            snap.failed += 1;
            if snap.failures.len() < MAX_REPORTED_FAILURES {
                snap.failures.push(failure.clone());
            }
        }
        if let ClientRole::Publisher { index, .. } = session.role {
            if sent_by_publisher.len() <= index {
                sent_by_publisher.resize(index + 1, 0);
            }
            sent_by_publisher[index] = session.sent;
            snap.sent += session.sent;
        }
    }
    for session in sessions {
        if let ClientRole::Subscriber {
            publisher,
            audio,
            video,
        } = session.role
        {
            snap.expected_by_senders += sent_by_publisher.get(publisher).copied().unwrap_or(0);
            if session.streams.is_empty() {
                snap.silent_subscriptions += 1;
            }
            if session.streams.len() < usize::from(audio) + usize::from(video) {
                snap.incomplete_subscriptions += 1;
            }
            snap.expected_by_sequence += session.streams.iter().map(|s| s.expected()).sum::<u64>();
        }
    }
    snap
}
