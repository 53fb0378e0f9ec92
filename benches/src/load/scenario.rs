//! The scenarios and how one step of a scenario is run and measured: publishers and their
//! subscribe sessions are set up through a [`Target`], connect, warm up (ICE, DTLS,
//! keyframes), and then the engine's counters and the CPU time of the server and of the load
//! generator are read at both ends of the measurement window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rtc_core::dtls::DtlsCertificate;

use super::engine::{Engine, Snapshot};
use super::pending::{ClientRole, PendingSession};
use super::report::{StepResult, process_cpu_time, udp_receive_buffer_errors};
use super::socket::SharedSocket;
use super::target::{Publication, Resource, SdpSide as _, Target};

/// How one step is measured.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The measurement window.
    pub window: Duration,
    /// Time between all sessions being connected and the window's start.
    pub warmup: Duration,
    /// Unprotect one received packet in this many to read its send time.
    pub latency_sample: u64,
    /// The server's process, whose CPU time is read from /proc.
    pub server_pid: Option<u32>,
    /// How long every session may take to connect.
    pub connect_timeout: Duration,
    /// Give every session a socket of its own instead of an address on one shared socket.
    pub socket_per_session: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            window: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            latency_sample: 8,
            server_pid: None,
            connect_timeout: Duration::from_secs(30),
            socket_per_session: false,
        }
    }
}

/// Who publishes what and how many subscribe sessions each publisher gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `room`, `live` or `audio`.
    pub scenario: &'static str,
    /// The size as reported (`size=4`).
    pub size: String,
    /// Publishers.
    pub publishers: usize,
    /// Publishers send video as well as audio.
    pub video: bool,
    /// Subscribe sessions per publisher.
    pub subscribers_per_publisher: usize,
    /// Copies of this shape running side by side, each in a room of its own (many meetings on
    /// one server); `publishers` and `subscribers_per_publisher` are per room.
    pub rooms: usize,
}

impl Layout {
    /// A meeting of `size`: everyone publishes audio and video and subscribes to everyone
    /// else (`size` publish and `size * (size - 1)` subscribe sessions).
    pub fn room(size: usize) -> Self {
        Layout {
            scenario: "room",
            size: format!("size={size}"),
            publishers: size,
            video: true,
            subscribers_per_publisher: size.saturating_sub(1),
            rooms: 1,
        }
    }

    /// `rooms` meetings of `size` side by side.
    pub fn rooms(size: usize, rooms: usize) -> Self {
        let rooms = rooms.max(1);
        let mut layout = Self::room(size);
        layout.rooms = rooms;
        if rooms > 1 {
            layout.size = format!("size={size} rooms={rooms}");
        }
        layout
    }

    /// A live stream: one audio and video publisher, `subscribers` viewers.
    pub fn live(subscribers: usize) -> Self {
        Layout {
            scenario: "live",
            size: format!("subscribers={subscribers}"),
            publishers: 1,
            video: true,
            subscribers_per_publisher: subscribers,
            rooms: 1,
        }
    }

    /// An audio room: `speakers` audio publishers, each heard by all `listeners`.
    pub fn audio(speakers: usize, listeners: usize) -> Self {
        Layout {
            scenario: "audio",
            size: format!("speakers={speakers} listeners={listeners}"),
            publishers: speakers,
            video: false,
            subscribers_per_publisher: listeners,
            rooms: 1,
        }
    }

    /// Publish sessions in all rooms.
    pub fn all_publishers(&self) -> usize {
        self.publishers * self.rooms
    }

    /// Subscribe sessions in all rooms.
    pub fn subscriptions(&self) -> usize {
        self.all_publishers() * self.subscribers_per_publisher
    }
}

/// A room name no earlier step used, so steps never see each other's leftovers.
fn fresh_room(layout: &Layout) -> String {
    static STEP: AtomicU64 = AtomicU64::new(0);
    format!(
        "load-{}-{}-{}",
        layout.scenario,
        std::process::id(),
        STEP.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sessions set up on the server, to hang up when the step ends.
struct Resources<'t> {
    target: &'t mut dyn Target,
    list: Vec<Resource>,
}

impl Drop for Resources<'_> {
    fn drop(&mut self) {
        // Subscriptions first (they were added last), then the publishers.
        while let Some(resource) = self.list.pop() {
            let _ = self.target.hang_up(&resource);
        }
    }
}

/// Runs one step of a scenario against `target` and measures it.
pub fn run_step(
    target: &mut dyn Target,
    layout: &Layout,
    options: &RunOptions,
) -> anyhow::Result<StepResult> {
    let label = target.label().to_owned();
    let cert = Arc::new(
        DtlsCertificate::generate(&mut rand::rng())
            .map_err(|e| anyhow::anyhow!("generating a certificate: {e}"))?,
    );
    let rooms: Vec<String> = (0..layout.rooms).map(|_| fresh_room(layout)).collect();
    for room in &rooms {
        target.prepare_room(
            room,
            layout.publishers,
            layout.publishers * layout.subscribers_per_publisher,
        )?;
    }
    let (shared, mut addresses) = if options.socket_per_session {
        (Vec::new(), None)
    } else {
        let total = layout.all_publishers() + layout.subscriptions();
        let (sockets, addresses) = SharedSocket::bind_for(total)?;
        (sockets, Some(addresses))
    };
    let mut new_session = |role| match addresses.as_mut() {
        Some(addresses) => PendingSession::on_shared_socket(addresses, Arc::clone(&cert), role),
        None => PendingSession::loopback(Arc::clone(&cert), role),
    };
    let engine = Engine::start(options.latency_sample, shared)?;
    let mut resources = Resources {
        target,
        list: Vec::new(),
    };

    // Publishers are numbered across rooms; each room's come as one run of that numbering.
    let mut publications: Vec<(&str, Publication)> = Vec::with_capacity(layout.all_publishers());
    for (room_index, room) in rooms.iter().enumerate() {
        for in_room in 0..layout.publishers {
            let index = room_index * layout.publishers + in_room;
            let role = ClientRole::Publisher {
                index,
                audio: true,
                video: layout.video,
            };
            let mut pending = new_session(role)?;
            let offer = pending.publish_offer();
            let publication = resources
                .target
                .publish(room, &format!("load {index}"), &offer)
                .with_context(|| format!("publishing publisher {index} in {room}"))?;
            resources.list.push(publication.resource.clone());
            pending.accept_answer(&publication.answer)?;
            let now = Instant::now();
            engine.add(pending.into_session(now, now)?)?;
            publications.push((room.as_str(), publication));
        }
    }
    for round in 0..layout.subscribers_per_publisher {
        for (index, (room, publication)) in publications.iter().enumerate() {
            let role = ClientRole::Subscriber {
                publisher: index,
                audio: true,
                video: layout.video,
            };
            let mut pending = new_session(role)?;
            let resource = resources
                .target
                .subscribe(room, publication, &mut pending)
                .with_context(|| format!("subscription {round} to publisher {index}"))?;
            resources.list.push(resource);
            let now = Instant::now();
            engine.add(pending.into_session(now, now)?)?;
        }
    }

    let total = layout.all_publishers() + layout.subscriptions();
    let deadline = Instant::now() + options.connect_timeout;
    loop {
        let snap = engine.snapshot()?;
        if snap.failed > 0 {
            bail!(
                "{} of {total} sessions failed: {:?}",
                snap.failed,
                snap.failures
            );
        }
        if snap.connected == total {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "only {} of {total} sessions connected in {:?}",
                snap.connected,
                options.connect_timeout
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(options.warmup);

    let load_pid = std::process::id();
    engine.reset_latency()?;
    let start = engine.snapshot()?;
    let server_start = options.server_pid.map(process_cpu_time).transpose()?;
    let load_start = process_cpu_time(load_pid)?;
    let drops_start = udp_receive_buffer_errors();
    std::thread::sleep(options.window);
    let end = engine.snapshot()?;
    let server_end = options.server_pid.map(process_cpu_time).transpose()?;
    let load_end = process_cpu_time(load_pid)?;
    let drops_end = udp_receive_buffer_errors();
    drop(resources);
    engine.stop();

    Ok(result(
        label,
        layout,
        &start,
        &end,
        server_start
            .zip(server_end)
            .map(|(a, b)| b.saturating_sub(a)),
        load_end.saturating_sub(load_start),
        drops_start.zip(drops_end).map(|(a, b)| b.saturating_sub(a)),
    ))
}

fn result(
    target: String,
    layout: &Layout,
    start: &Snapshot,
    end: &Snapshot,
    server_cpu: Option<Duration>,
    load_cpu: Duration,
    kernel_drops: Option<u64>,
) -> StepResult {
    let window = match (start.at, end.at) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    let delivered = end.received - start.received;
    let expected = end.expected_by_senders - start.expected_by_senders;
    let lost = (end.expected_by_sequence - start.expected_by_sequence).saturating_sub(delivered);
    StepResult {
        target,
        scenario: layout.scenario.to_owned(),
        size: layout.size.clone(),
        publishers: layout.all_publishers(),
        subscriptions: layout.subscriptions(),
        connected: end.connected,
        window,
        sent: end.sent - start.sent,
        expected,
        delivered,
        lost,
        shortfall: expected.saturating_sub(delivered),
        kernel_drops,
        duplicates: end.duplicates - start.duplicates,
        silent_subscriptions: end.silent_subscriptions,
        incomplete_subscriptions: end.incomplete_subscriptions,
        server_cpu,
        load_cpu,
        latency: end.latency.clone(),
    }
}
