//! A virtual-time world for the media plane: one worker core and any number of client peers
//! (the media plane's own peer transport in the client role), connected by a seeded network
//! with delay, jitter, reordering, random loss and a rate limit per direction, and no
//! sockets. Time jumps to the next wakeup of anyone (quinn's `Pair::step` idea), so a
//! minute of calls runs in a fraction of a second and every run with one seed is the same.

#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_lite::{DatagramKind, IceCredentials, classify};
use media_plane::client_sdp::{self, Kind, LocalTransport, OfferedTrack};
use media_plane::{
    Command, CoreConfig, CoreEvent, DatagramOutcome, EndReason, IceClient, IceClientConfig, Output,
    PeerEvent, PeerTransport, Received, Reply, WorkerCore,
};
use packet_router::{RouterConfig, SessionId, TrackId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rtc_core::dtls::{DtlsCertificate, DtlsRole};
use rtc_core::sdp::Setup;
use rtc_core::{IdSpace, NodeId};

/// The server's address in the virtual network.
pub const SERVER: &str = "10.0.0.1:3478";

/// How the network treats every datagram.
#[derive(Debug, Clone, Copy)]
pub struct NetworkConditions {
    /// One-way delay.
    pub delay: Duration,
    /// Up to this much more, uniformly.
    pub jitter: Duration,
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is held back by `reorder_delay` more (and so overtaken).
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Bits per second of each direction of each client's link (`None`: unlimited); a
    /// datagram that would wait more than `queue_limit` behind the others is dropped.
    pub rate: Option<u64>,
    pub queue_limit: Duration,
}

impl NetworkConditions {
    /// A clean 10 ms link.
    pub fn clean() -> Self {
        NetworkConditions {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(15),
            rate: None,
            queue_limit: Duration::from_millis(200),
        }
    }

    /// `loss` random loss and as much reordering, 20-30 ms of delay.
    pub fn lossy(loss: f64) -> Self {
        NetworkConditions {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            loss,
            reorder: loss,
            ..Self::clean()
        }
    }
}

/// A datagram on its way.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    /// Keeps order among equal times and makes the heap deterministic.
    serial: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// The seeded network between the clients and the server.
#[derive(Debug)]
pub struct Network {
    pub conditions: NetworkConditions,
    rng: ChaCha8Rng,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    serial: u64,
    /// When each (from, to) direction is free again, for the rate limit.
    link_free_at: HashMap<(SocketAddr, SocketAddr), Instant>,
    /// Addresses whose datagrams (both ways) are dropped: a peer that went silent.
    pub cut: Vec<SocketAddr>,
    pub sent: u64,
    pub lost: u64,
}

impl Network {
    pub fn new(conditions: NetworkConditions, seed: u64) -> Self {
        Network {
            conditions,
            rng: ChaCha8Rng::seed_from_u64(seed),
            in_flight: BinaryHeap::new(),
            serial: 0,
            link_free_at: HashMap::new(),
            cut: Vec::new(),
            sent: 0,
            lost: 0,
        }
    }

    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        self.sent += 1;
        let c = self.conditions;
        if self.cut.contains(&from) || self.cut.contains(&to) || self.rng.random_bool(c.loss) {
            self.lost += 1;
            return;
        }
        let mut departs = now;
        if let Some(rate) = c.rate {
            let free = self.link_free_at.entry((from, to)).or_insert(now);
            let start = (*free).max(now);
            if start.duration_since(now) > c.queue_limit {
                self.lost += 1;
                return;
            }
            let serialization = Duration::from_nanos(bytes.len() as u64 * 8 * 1_000_000_000 / rate);
            *free = start + serialization;
            departs = *free;
        }
        let jitter = if c.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.rng.random_range(0..c.jitter.as_nanos() as u64))
        };
        let held = if self.rng.random_bool(c.reorder) {
            c.reorder_delay
        } else {
            Duration::ZERO
        };
        self.serial += 1;
        self.in_flight.push(Reverse(InFlight {
            at: departs + c.delay + jitter + held,
            serial: self.serial,
            from,
            to,
            bytes: bytes.to_vec(),
        }));
    }

    fn next_delivery(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse(d)| d.at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<InFlight> {
        if self.next_delivery()? <= now {
            self.in_flight.pop().map(|Reverse(d)| d)
        } else {
            None
        }
    }
}

/// What a client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
    /// Sends Opus and VP8 (as synthetic packets at 50 and 300 packets/s).
    Publisher,
    /// Receives.
    Receiver,
}

/// A client peer.
#[derive(Debug)]
pub struct Client {
    pub address: SocketAddr,
    pub role: ClientRole,
    pub session: Option<SessionId>,
    pub transport: Option<PeerTransport>,
    pub local: LocalTransport,
    pub credentials: IceCredentials,
    /// RTP packets sent and received (after SRTP), by SSRC for received.
    pub sent: u64,
    pub received: HashMap<u32, Vec<u16>>,
    pub events: Vec<PeerEvent>,
    /// Once true the client sends nothing more and ignores what comes (it went away).
    pub silent: bool,
    /// A rid-simulcast publisher: its video goes in [`SIMULCAST_RIDS`] layers (SSRCs
    /// `video_ssrc() + layer`) with the mid and rid header extensions, none announced.
    pub simulcast: bool,
    /// With `simulcast`: legacy simulcast, the layers' SSRCs announced in
    /// `a=ssrc-group:SIM` and no rid extensions.
    pub legacy_simulcast: bool,
    next_media_at: Option<Instant>,
    /// Next sequence number of audio, then of each video layer.
    seq: [u16; 4],
    media_tick: u64,
}

pub const AUDIO_SSRC_BASE: u32 = 0x1000_0000;
pub const VIDEO_SSRC_BASE: u32 = 0x2000_0000;

impl Client {
    pub fn audio_ssrc(&self) -> u32 {
        AUDIO_SSRC_BASE + u32::from(self.address.port())
    }

    pub fn video_ssrc(&self) -> u32 {
        VIDEO_SSRC_BASE + u32::from(self.address.port())
    }

    pub fn is_connected(&self) -> bool {
        self.transport
            .as_ref()
            .is_some_and(PeerTransport::is_connected)
    }

    pub fn received_total(&self) -> usize {
        self.received.values().map(Vec::len).sum()
    }

    pub fn ended(&self) -> bool {
        self.events.iter().any(|e| matches!(e, PeerEvent::Ended(_)))
    }
}

/// The core, its clients and the network, in virtual time.
#[derive(Debug)]
pub struct World {
    pub now: Instant,
    pub start: Instant,
    pub core: WorkerCore,
    pub server: SocketAddr,
    pub clients: Vec<Client>,
    pub net: Network,
    pub core_events: Vec<CoreEvent>,
    pub certificate: DtlsCertificate,
    /// Video packets each publisher sends per 20 ms frame (audio is one packet).
    pub video_packets_per_frame: usize,
    /// Called with `true` right before the core handles an RTP datagram or produces or clears
    /// its transmits, and with `false` right after: what a forwarded packet costs the core,
    /// without the world's own bookkeeping (an allocation counter uses it).
    pub media_scope: Option<fn(bool)>,
    rng: ChaCha8Rng,
}

/// How a simulcast publisher offers its layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simulcast {
    /// `a=rid` and `a=simulcast`, packets with the rid extension (Chromium, Firefox).
    Rid,
    /// `a=ssrc-group:SIM`.
    Legacy,
}

/// The origin of virtual time: any instant will do, and `std` makes one only by reading the
/// clock, once.
#[expect(
    clippy::disallowed_methods,
    reason = "the one clock read of the virtual-time world: std makes an Instant no other way"
)]
fn origin() -> Instant {
    Instant::now()
}

pub fn core_config(seed: u64, certificate: DtlsCertificate) -> CoreConfig {
    let server: SocketAddr = SERVER.parse().expect("address");
    CoreConfig {
        ids: IdSpace {
            node: NodeId(1),
            worker: 0,
        },
        workers: 1,
        fingerprint: certificate.fingerprint().to_string(),
        certificate,
        candidates: vec![format!(
            "1 1 udp 2130706431 {} {} typ host",
            server.ip(),
            server.port()
        )],
        setup_timeout: Duration::from_secs(30),
        consent_timeout: Duration::from_secs(30),
        group_transmits: true,
        publisher_max_bitrate: None,
        router: RouterConfig::default(),
        seed,
    }
}

impl World {
    pub fn new(seed: u64, conditions: NetworkConditions) -> Self {
        Self::with_config(seed, conditions, |_| {})
    }

    pub fn with_config(
        seed: u64,
        conditions: NetworkConditions,
        adjust: impl FnOnce(&mut CoreConfig),
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let server_cert = DtlsCertificate::generate(&mut rng).expect("server certificate");
        let certificate = DtlsCertificate::generate(&mut rng).expect("client certificate");
        let mut config = core_config(seed, server_cert);
        adjust(&mut config);
        let start = origin();
        World {
            now: start,
            start,
            core: WorkerCore::new(config),
            server: SERVER.parse().expect("address"),
            clients: Vec::new(),
            net: Network::new(conditions, seed ^ 0x5eed),
            core_events: Vec::new(),
            certificate,
            video_packets_per_frame: 6,
            media_scope: None,
            rng,
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now.duration_since(self.start)
    }

    fn new_client(&mut self, role: ClientRole) -> usize {
        let index = self.clients.len();
        let address: SocketAddr =
            format!("10.1.{}.{}:{}", index / 200, index % 200 + 1, 40000 + index)
                .parse()
                .expect("address");
        let credentials = IceCredentials::generate(&mut self.rng);
        let local = LocalTransport {
            ufrag: credentials.ufrag().to_owned(),
            pwd: credentials.pwd().to_owned(),
            fingerprint: self.certificate.fingerprint().to_string(),
            address,
            session_id: u64::from(self.rng.random::<u32>()),
        };
        self.clients.push(Client {
            address,
            role,
            session: None,
            transport: None,
            local,
            credentials,
            sent: 0,
            received: HashMap::new(),
            events: Vec::new(),
            silent: false,
            simulcast: false,
            legacy_simulcast: false,
            next_media_at: None,
            seq: [0; 4],
            media_tick: 0,
        });
        index
    }

    /// Starts the client's transport from the server's description of itself.
    fn connect_client(&mut self, index: usize, server_sdp: &str, offered: bool) {
        let (_, remote) = client_sdp::parse_remote(server_sdp).expect("the server's SDP");
        let seed = self.rng.random();
        let now = self.now;
        let certificate = self.certificate.clone();
        let client = &mut self.clients[index];
        let mut transport = PeerTransport::new_client(IceClient::new(
            now,
            IceClientConfig {
                local: client.credentials.clone(),
                remote: IceCredentials::new(&remote.ufrag, &remote.pwd).expect("credentials"),
                candidates: remote.candidates,
                controlling: true,
                seed,
            },
        ));
        // The answerer chose: a passive (or actpass) server makes the client the DTLS client.
        let role = match (offered, remote.setup) {
            (_, Setup::Active) => DtlsRole::Server,
            _ => DtlsRole::Client,
        };
        transport.start_dtls(now, &certificate, remote.fingerprint, role);
        client.transport = Some(transport);
    }

    /// A publisher that offers Opus and VP8 to the room (WHIP style).
    pub fn add_publisher(&mut self, room: &str) -> usize {
        self.add_publisher_announcing(room, None)
    }

    /// A publisher whose offer announces `fingerprint` (when given) instead of its own
    /// certificate's.
    pub fn add_publisher_announcing(&mut self, room: &str, fingerprint: Option<&str>) -> usize {
        self.add_publisher_with(room, fingerprint, None)
    }

    /// A publisher whose video m-line offers rid simulcast ([`SIMULCAST_RIDS`], with the mid
    /// and rid header extensions) instead of announcing an SSRC, as Chromium does.
    pub fn add_simulcast_publisher(&mut self, room: &str) -> usize {
        self.add_publisher_with(room, None, Some(Simulcast::Rid))
    }

    /// A publisher whose video is legacy simulcast: three SSRCs in `a=ssrc-group:SIM`
    /// (lowest first), packets without rids.
    pub fn add_legacy_simulcast_publisher(&mut self, room: &str) -> usize {
        self.add_publisher_with(room, None, Some(Simulcast::Legacy))
    }

    fn add_publisher_with(
        &mut self,
        room: &str,
        fingerprint: Option<&str>,
        simulcast: Option<Simulcast>,
    ) -> usize {
        let index = self.new_client(ClientRole::Publisher);
        if let Some(fingerprint) = fingerprint {
            self.clients[index].local.fingerprint = fingerprint.to_owned();
        }
        self.clients[index].simulcast = simulcast.is_some();
        self.clients[index].legacy_simulcast = simulcast == Some(Simulcast::Legacy);
        let client = &self.clients[index];
        let offer = client_sdp::write_offer(
            &client.local,
            &[
                OfferedTrack {
                    kind: Kind::Audio,
                    send_ssrc: Some(client.audio_ssrc()),
                },
                OfferedTrack {
                    kind: Kind::Video,
                    send_ssrc: Some(client.video_ssrc()),
                },
            ],
        );
        let video_ssrc = self.clients[index].video_ssrc();
        let offer = match simulcast {
            Some(Simulcast::Rid) => simulcast_offer(&offer),
            Some(Simulcast::Legacy) => legacy_simulcast_offer(&offer, video_ssrc),
            None => offer,
        };
        let reply = self.core.handle_command(
            self.now,
            Command::Publish {
                room: room.to_owned(),
                session: None,
                offer,
            },
        );
        let Reply::Published(Ok(published)) = reply else {
            panic!("publish refused: {reply:?}");
        };
        self.clients[index].session = Some(published.session);
        self.connect_client(index, &published.sdp, true);
        index
    }

    /// A WHEP player of the publisher `publisher` (a client index).
    pub fn add_player(&mut self, room: &str, publisher: usize) -> usize {
        let index = self.new_client(ClientRole::Receiver);
        let offer = client_sdp::write_offer(
            &self.clients[index].local,
            &[
                OfferedTrack {
                    kind: Kind::Audio,
                    send_ssrc: None,
                },
                OfferedTrack {
                    kind: Kind::Video,
                    send_ssrc: None,
                },
            ],
        );
        let publisher = self.clients[publisher].session.expect("publisher session");
        let reply = self.core.handle_command(
            self.now,
            Command::Play {
                room: room.to_owned(),
                publisher,
                offer,
            },
        );
        let Reply::Played(Ok(played)) = reply else {
            panic!("play refused: {reply:?}");
        };
        self.clients[index].session = Some(played.session);
        self.connect_client(index, &played.sdp, true);
        index
    }

    /// A subscriber connection to which Sluice offers `tracks`; the client answers.
    pub fn add_subscriber(&mut self, room: &str, tracks: &[TrackId]) -> usize {
        let index = self.new_client(ClientRole::Receiver);
        let reply = self.core.handle_command(
            self.now,
            Command::CreateSubscriber {
                room: room.to_owned(),
            },
        );
        let Reply::SubscriberCreated(Ok(session)) = reply else {
            panic!("subscriber refused: {reply:?}");
        };
        self.clients[index].session = Some(session);
        let offer = self.offer_tracks(index, tracks);
        self.connect_client(index, &offer, false);
        index
    }

    /// Sluice offers `tracks` to subscriber `index` again; the client answers.
    pub fn offer_tracks(&mut self, index: usize, tracks: &[TrackId]) -> String {
        let session = self.clients[index].session.expect("session");
        let reply = self.core.handle_command(
            self.now,
            Command::OfferTracks {
                session,
                tracks: tracks.to_vec(),
                restart_ice: false,
            },
        );
        let Reply::Offer(Ok(offer)) = reply else {
            panic!("offer refused: {reply:?}");
        };
        let (description, _) = client_sdp::parse_remote(&offer.sdp).expect("offer");
        let answer =
            client_sdp::write_answer(&self.clients[index].local, &description).expect("answer");
        let reply = self
            .core
            .handle_command(self.now, Command::AnswerSubscriber { session, answer });
        assert!(matches!(reply, Reply::Answered(Ok(()))), "{reply:?}");
        offer.sdp
    }

    /// Closes the client's session from signaling's side.
    pub fn close(&mut self, index: usize) {
        let session = self.clients[index].session.expect("session");
        let reply = self
            .core
            .handle_command(self.now, Command::Close { session });
        assert!(matches!(reply, Reply::Closed));
    }

    /// The client stops sending and answering: its network path is cut.
    pub fn silence(&mut self, index: usize) {
        self.clients[index].silent = true;
        let address = self.clients[index].address;
        self.net.cut.push(address);
    }

    /// Sessions the core reported ended, with why.
    pub fn ended(&self) -> Vec<(SessionId, EndReason)> {
        self.core_events
            .iter()
            .filter_map(|e| match e {
                CoreEvent::SessionEnded { session, reason } => Some((*session, *reason)),
                _ => None,
            })
            .collect()
    }

    pub fn end_reason(&self, index: usize) -> Option<EndReason> {
        let session = self.clients[index].session?;
        self.ended()
            .into_iter()
            .find(|(s, _)| *s == session)
            .map(|(_, reason)| reason)
    }

    /// Runs until `until` (virtual time), jumping from one wakeup to the next.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.run_until(until, |_| false);
    }

    /// Runs until `done` holds or `until` passes; whether `done` held.
    pub fn run_until(&mut self, until: Instant, mut done: impl FnMut(&World) -> bool) -> bool {
        loop {
            self.flush();
            if done(self) {
                return true;
            }
            let next = self.next_wakeup().min(until);
            if next >= until && self.now >= until {
                return done(self);
            }
            self.now = next.max(self.now);
            self.step();
            if self.now >= until {
                self.flush();
                return done(self);
            }
        }
    }

    fn next_wakeup(&mut self) -> Instant {
        let mut next = self.now + Duration::from_secs(3600);
        let candidates = [self.net.next_delivery(), self.core.poll_timeout()];
        for at in candidates.into_iter().flatten() {
            next = next.min(at);
        }
        for client in &self.clients {
            if client.silent {
                continue;
            }
            if let Some(at) = client
                .transport
                .as_ref()
                .and_then(PeerTransport::poll_timeout)
            {
                next = next.min(at);
            }
            if let Some(at) = client.next_media_at {
                next = next.min(at);
            }
        }
        next.max(self.now)
    }

    /// Everything due now: deliveries, timers, media.
    fn step(&mut self) {
        let now = self.now;
        while let Some(datagram) = self.net.pop_due(now) {
            let mut bytes = datagram.bytes;
            if datagram.to == self.server {
                let media = classify(&bytes) == DatagramKind::Rtp;
                let scope = self.media_scope.filter(|_| media);
                scope.inspect(|enter| enter(true));
                let outcome = self.core.handle_datagram(now, datagram.from, &mut bytes);
                scope.inspect(|enter| enter(false));
                match outcome {
                    DatagramOutcome::Done | DatagramOutcome::Dropped => {}
                    DatagramOutcome::HandOver(_) | DatagramOutcome::UnknownSource => {}
                }
            } else if let Some(client) = self.clients.iter_mut().find(|c| c.address == datagram.to)
            {
                deliver_to_client(client, now, datagram.from, &mut bytes);
            }
        }
        if self.core.poll_timeout().is_some_and(|at| at <= now) {
            self.core.handle_timeout(now);
        }
        for client in &mut self.clients {
            if client.silent {
                continue;
            }
            if let Some(transport) = client.transport.as_mut()
                && transport.poll_timeout().is_some_and(|at| at <= now)
            {
                transport.handle_timeout(now);
            }
        }
        self.send_media();
    }

    /// Moves what everyone produced into the network.
    fn flush(&mut self) {
        let now = self.now;
        let server = self.server;
        let mut outgoing: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let scope = self.media_scope;
        scope.inspect(|enter| enter(true));
        let transmits = self.core.poll_transmits();
        scope.inspect(|enter| enter(false));
        for (destination, bytes) in transmits.iter() {
            outgoing.push((destination, bytes.to_vec()));
        }
        scope.inspect(|enter| enter(true));
        self.core.clear_transmits();
        scope.inspect(|enter| enter(false));
        for (destination, bytes) in outgoing {
            self.net.send(now, server, destination, &bytes);
        }
        while let Some(event) = self.core.poll_event() {
            self.core_events.push(event);
        }
        let mut buf = vec![0u8; 2048];
        for client in &mut self.clients {
            let Some(transport) = client.transport.as_mut() else {
                continue;
            };
            loop {
                match transport.poll_output(&mut buf) {
                    Output::Transmit { destination, len } => {
                        if !client.silent {
                            self.net.send(now, client.address, destination, &buf[..len]);
                        }
                    }
                    Output::Event(event) => {
                        if event == PeerEvent::Connected && client.role == ClientRole::Publisher {
                            client.next_media_at = Some(now);
                        }
                        client.events.push(event);
                    }
                    Output::Timeout(_) => break,
                }
            }
        }
    }

    /// Publishers send their due packets: audio every 20 ms, a video frame every 20 ms.
    fn send_media(&mut self) {
        let now = self.now;
        let video_packets = self.video_packets_per_frame;
        for client in &mut self.clients {
            let Some(at) = client.next_media_at else {
                continue;
            };
            if at > now || client.silent {
                continue;
            }
            client.next_media_at = Some(at + Duration::from_millis(20));
            client.media_tick += 1;
            let (audio, video) = (client.audio_ssrc(), client.video_ssrc());
            let tick = client.media_tick;
            let mut packets = vec![(audio, 111u8, 0usize, true, None)];
            let rids: &[&str] = if client.simulcast {
                &SIMULCAST_RIDS
            } else {
                &[""]
            };
            for (layer, rid) in rids.iter().enumerate() {
                let rid = (client.simulcast && !client.legacy_simulcast).then_some(*rid);
                for i in 0..video_packets {
                    let marker = i + 1 == video_packets;
                    packets.push((video + layer as u32, 96u8, 1 + layer, marker, rid));
                }
            }
            for (ssrc, pt, stream, marker, rid) in packets {
                let seq = client.seq[stream];
                client.seq[stream] = seq.wrapping_add(1);
                let ts = (tick as u32).wrapping_mul(if stream == 0 { 960 } else { 1800 });
                let mut packet = rtp_packet(pt, seq, ts, ssrc, marker, tick);
                if let Some(rid) = rid {
                    packet = with_mid_and_rid(&packet, rid);
                }
                let len = packet.len();
                packet.resize(len + 32, 0);
                let Some(transport) = client.transport.as_mut() else {
                    continue;
                };
                let Some(remote) = transport.remote() else {
                    continue;
                };
                let Some(srtp) = transport.srtp_mut() else {
                    continue;
                };
                let Ok(protected) = srtp.outbound.protect_rtp(&mut packet, len) else {
                    continue;
                };
                client.sent += 1;
                self.net
                    .send(now, client.address, remote, &packet[..protected]);
            }
        }
    }
}

fn deliver_to_client(client: &mut Client, now: Instant, from: SocketAddr, bytes: &mut [u8]) {
    if client.silent {
        return;
    }
    let Some(transport) = client.transport.as_mut() else {
        return;
    };
    let is_rtp = classify(bytes) == DatagramKind::Rtp;
    if let Received::Rtp(len) = transport.handle_datagram(now, from, bytes)
        && is_rtp
        && len >= 12
    {
        let seq = u16::from_be_bytes([bytes[2], bytes[3]]);
        let ssrc = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        client.received.entry(ssrc).or_default().push(seq);
    }
}

/// A plain RTP packet: 12-byte header, a VP8-looking payload of 200 bytes.
pub fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, tick: u64) -> Vec<u8> {
    let mut packet = Vec::with_capacity(256);
    packet.push(0x80);
    packet.push(pt | if marker { 0x80 } else { 0 });
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&ts.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    // VP8 payload descriptor (S=1, PID=0) and a payload header whose P bit marks a keyframe
    // every 50 frames.
    packet.push(0x10);
    packet.push(if tick % 50 == 1 { 0x00 } else { 0x01 });
    packet.resize(12 + 200, (tick % 251) as u8);
    packet
}

/// The rids of [`World::add_simulcast_publisher`]'s video, lowest first.
pub const SIMULCAST_RIDS: [&str; 3] = ["q", "h", "f"];
/// The header-extension ids its offer gives mid and rid.
const MID_EXTENSION_ID: u8 = 1;
const RID_EXTENSION_ID: u8 = 2;

/// `offer` with its video m-line sending rid simulcast: the SSRC lines replaced by the mid
/// and rid extensions, `a=rid` and `a=simulcast`.
fn simulcast_offer(offer: &str) -> String {
    let mut out = String::with_capacity(offer.len() + 256);
    let mut in_video = false;
    for line in offer.split_inclusive("\r\n") {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video");
        }
        if in_video && (line.starts_with("a=ssrc:") || line.starts_with("a=msid:")) {
            continue;
        }
        out.push_str(line);
        if in_video && line.starts_with("a=rtcp-mux") {
            out.push_str(&format!(
                "a=extmap:{MID_EXTENSION_ID} urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
                 a=extmap:{RID_EXTENSION_ID} urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n"
            ));
            for rid in SIMULCAST_RIDS {
                out.push_str(&format!("a=rid:{rid} send\r\n"));
            }
            out.push_str(&format!(
                "a=simulcast:send {}\r\n",
                SIMULCAST_RIDS.join(";")
            ));
        }
    }
    out
}

/// `offer` with its video m-line sending legacy simulcast: SSRCs `video_ssrc + layer` in
/// `a=ssrc-group:SIM`, lowest first, instead of the one SSRC.
fn legacy_simulcast_offer(offer: &str, video_ssrc: u32) -> String {
    let mut out = String::with_capacity(offer.len() + 256);
    let mut in_video = false;
    for line in offer.split_inclusive("\r\n") {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video");
        }
        if in_video && line.starts_with("a=ssrc:") {
            continue;
        }
        out.push_str(line);
        if in_video && line.starts_with("a=rtcp-mux") {
            let ssrcs: Vec<u32> = (0..SIMULCAST_RIDS.len() as u32)
                .map(|layer| video_ssrc + layer)
                .collect();
            let group: Vec<String> = ssrcs.iter().map(u32::to_string).collect();
            out.push_str(&format!("a=ssrc-group:SIM {}\r\n", group.join(" ")));
            for ssrc in ssrcs {
                out.push_str(&format!("a=ssrc:{ssrc} cname:legacy\r\n"));
            }
        }
    }
    out
}

/// `packet` (a 12-byte header, no extensions) with the video mid ("1") and `rid` in a
/// one-byte header-extension block.
fn with_mid_and_rid(packet: &[u8], rid: &str) -> Vec<u8> {
    let mut block = vec![
        MID_EXTENSION_ID << 4,
        b'1',
        RID_EXTENSION_ID << 4 | (rid.len() as u8 - 1),
    ];
    block.extend_from_slice(rid.as_bytes());
    while block.len() % 4 != 0 {
        block.push(0);
    }
    let mut out = Vec::with_capacity(packet.len() + 4 + block.len());
    out.push(packet[0] | 0x10);
    out.extend_from_slice(&packet[1..12]);
    out.extend_from_slice(&[0xBE, 0xDE]);
    out.extend_from_slice(&((block.len() / 4) as u16).to_be_bytes());
    out.extend_from_slice(&block);
    out.extend_from_slice(&packet[12..]);
    out
}
