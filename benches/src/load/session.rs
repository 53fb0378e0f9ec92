//! One client peer connection of the load generator, built from Sluice's own crates in client
//! roles: a non-blocking UDP socket on loopback, ICE connectivity checks (ice-lite's STUN codec
//! and writer), a DTLS endpoint (rtc-core, client or server by the negotiated `a=setup`) and
//! the SRTP contexts it keys. A publisher sends synthetic media; a subscriber counts what
//! arrives from cleartext RTP headers and unprotects only a sample to read send times.
//!
//! [`PendingSession`] is the session during signaling (it plays [`SdpSide`]);
//! [`ClientSession`] is the same session once the engine thread owns it.

use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ice_lite::{
    BindingRequest, Class, IntegrityKey, PacketKind, StunMessage, TransactionId, classify,
    write_binding_success,
};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use rtc_core::dtls::{DTLS_MTU, DtlsCertificate, DtlsEndpoint, DtlsEvent, Fingerprint};
use rtc_core::rtcp::{RtcpPacket, iter_compound};
use rtc_core::sdp::Setup;
use rtc_core::srtp::SrtpSession;

use super::media::{AudioSource, KEYFRAME_PACKETS, StreamCounter, VideoSource, read_send_time};
use super::report::LatencyHistogram;
use super::sdp::{self, Kind, LocalTransport, OfferedTrack, RemoteTransport};
use super::target::SdpSide;

/// Time between connectivity checks until one succeeds.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Time between consent checks once connected (RFC 7675 suggests about 5 s; Sluice ends a
/// session after 30 s without one).
const CONSENT_INTERVAL: Duration = Duration::from_secs(4);
/// Bytes of a slot in the send buffer: a packet plus its SRTP tag.
pub const SLOT_LEN: usize = 1300;
/// How far a media source may fall behind its schedule before it skips ahead.
const MAX_MEDIA_LAG: Duration = Duration::from_millis(200);
/// Streams a subscribe session counts (one publisher's audio and video, with room to spare).
const MAX_STREAMS: usize = 4;

/// What a session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishes the given kinds, as publisher number `index` of the run.
    Publisher {
        /// The publisher's number in the run.
        index: usize,
        /// Sends Opus.
        audio: bool,
        /// Sends VP8.
        video: bool,
    },
    /// Receives what publisher number `publisher` sends.
    Subscriber {
        /// The publisher's number in the run.
        publisher: usize,
        /// Receives Opus.
        audio: bool,
        /// Receives VP8.
        video: bool,
    },
}

impl Role {
    fn tracks(self, ssrc_base: u32) -> Vec<OfferedTrack> {
        let (audio, video, sends) = match self {
            Role::Publisher { audio, video, .. } => (audio, video, true),
            Role::Subscriber { audio, video, .. } => (audio, video, false),
        };
        let mut tracks = Vec::with_capacity(2);
        if audio {
            tracks.push(OfferedTrack {
                kind: Kind::Audio,
                send_ssrc: sends.then_some(ssrc_base),
            });
        }
        if video {
            tracks.push(OfferedTrack {
                kind: Kind::Video,
                send_ssrc: sends.then_some(ssrc_base + 1),
            });
        }
        tracks
    }
}

/// A session during signaling: address chosen (its own socket, or an address on the engine's
/// shared socket), credentials chosen, waiting for the server's description.
#[derive(Debug)]
pub struct PendingSession {
    socket: SocketChoice,
    local: LocalTransport,
    cert: Arc<DtlsCertificate>,
    role: Role,
    ssrc_base: u32,
    /// We wrote the offer, so we are the controlling ICE agent.
    offered: bool,
    remote: Option<RemoteTransport>,
}

impl PendingSession {
    /// Binds a socket on `ip` and picks credentials for a session playing `role`.
    pub fn new(ip: IpAddr, cert: Arc<DtlsCertificate>, role: Role) -> anyhow::Result<Self> {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))
            .context("binding a session socket")?;
        socket.set_nonblocking(true)?;
        let address = socket.local_addr()?;
        Ok(Self::with_address(
            SocketChoice::Own(socket),
            address,
            cert,
            role,
        ))
    }

    /// A session at an address of its own on one of the engine's shared sockets.
    pub fn on_shared_socket(
        addresses: &mut SharedAddresses,
        cert: Arc<DtlsCertificate>,
        role: Role,
    ) -> anyhow::Result<Self> {
        let (address, socket) = addresses.next_address()?;
        Ok(Self::with_address(
            SocketChoice::Shared(socket),
            address,
            cert,
            role,
        ))
    }

    fn with_address(
        socket: SocketChoice,
        address: SocketAddr,
        cert: Arc<DtlsCertificate>,
        role: Role,
    ) -> Self {
        let credentials = ice_lite::IceCredentials::generate(&mut rand::rng());
        let local = LocalTransport {
            ufrag: credentials.ufrag().to_owned(),
            pwd: credentials.pwd().to_owned(),
            fingerprint: cert.fingerprint().to_string(),
            address,
            session_id: rand::random::<u32>().into(),
        };
        PendingSession {
            socket,
            local,
            cert,
            role,
            ssrc_base: rand::random::<u32>() & !1,
            offered: false,
            remote: None,
        }
    }

    /// A session on 127.0.0.1.
    pub fn loopback(cert: Arc<DtlsCertificate>, role: Role) -> anyhow::Result<Self> {
        Self::new(IpAddr::V4(Ipv4Addr::LOCALHOST), cert, role)
    }

    /// The publisher's `sendonly` offer.
    pub fn publish_offer(&mut self) -> String {
        self.offered = true;
        sdp::write_offer(&self.local, &self.role.tracks(self.ssrc_base))
    }

    /// The session, ready for the engine once the server's description is known.
    pub fn into_session(
        mut self,
        now: Instant,
        start_media_at: Instant,
    ) -> anyhow::Result<ClientSession> {
        let remote = self.remote.take().context("no server description yet")?;
        ClientSession::new(self, remote, now, start_media_at)
    }
}

impl SdpSide for PendingSession {
    fn offer(&mut self) -> anyhow::Result<String> {
        self.offered = true;
        Ok(sdp::write_offer(
            &self.local,
            &self.role.tracks(self.ssrc_base),
        ))
    }

    fn accept_answer(&mut self, answer: &str) -> anyhow::Result<()> {
        let (_, remote) = sdp::parse_remote(answer)?;
        if remote.setup == Setup::ActPass {
            bail!("the server answered a=setup:actpass");
        }
        self.remote = Some(remote);
        Ok(())
    }

    fn answer(&mut self, offer: &str) -> anyhow::Result<String> {
        let (description, remote) = sdp::parse_remote(offer)?;
        self.offered = false;
        let answer = sdp::write_answer(&self.local, &description)?;
        // We answer active: the server becomes the DTLS server whatever it offered.
        self.remote = Some(RemoteTransport {
            setup: Setup::Passive,
            ..remote
        });
        Ok(answer)
    }
}

/// Engine-wide counters and buffers a session updates as it handles datagrams.
#[derive(Debug)]
pub struct EngineContext {
    /// The run's epoch: send times are nanoseconds since it.
    pub epoch: Instant,
    /// Unprotect one received RTP packet in this many.
    pub latency_sample: u64,
    sample_tick: u64,
    /// Sampled time inside the server.
    pub latency: LatencyHistogram,
    /// RTP packets received by subscribe sessions (once; duplicates excluded).
    pub received: u64,
    /// RTP packets received again.
    pub duplicates: u64,
    /// Datagrams the kernel refused to take.
    pub send_errors: u64,
    /// Sampled packets that failed to unprotect.
    pub srtp_errors: u64,
    /// The send buffer for media bursts.
    send_buf: Vec<u8>,
    /// The sockets sessions without their own share.
    pub shared: Vec<SharedSocket>,
}

impl EngineContext {
    /// Counters at zero for a run starting at `epoch`.
    pub fn new(epoch: Instant, latency_sample: u64, shared: Vec<SharedSocket>) -> Self {
        EngineContext {
            epoch,
            latency_sample: latency_sample.max(1),
            sample_tick: 0,
            latency: LatencyHistogram::default(),
            received: 0,
            duplicates: 0,
            send_errors: 0,
            srtp_errors: 0,
            send_buf: vec![0; SLOT_LEN * KEYFRAME_PACKETS],
            shared,
        }
    }

    fn nanos_since_epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

/// The ICE side of a client session: checks out, answers to the server's checks in.
#[derive(Debug)]
struct IceClient {
    local_ufrag: String,
    local_key: IntegrityKey,
    remote_key: IntegrityKey,
    /// `remote:local`, the USERNAME of our checks.
    username: String,
    controlling: bool,
    tie_breaker: u64,
    candidates: Vec<SocketAddr>,
    selected: Option<SocketAddr>,
    next_check_at: Instant,
    transaction_prefix: [u8; 8],
    transaction_counter: u32,
}

impl IceClient {
    fn transaction_id(&mut self) -> TransactionId {
        self.transaction_counter = self.transaction_counter.wrapping_add(1);
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&self.transaction_prefix);
        id[8..].copy_from_slice(&self.transaction_counter.to_be_bytes());
        id
    }

    fn is_ours(&self, id: &TransactionId) -> bool {
        id[..8] == self.transaction_prefix
    }
}

/// The media a publish session sends.
#[derive(Debug)]
struct PublisherMedia {
    audio: Option<AudioSource>,
    video: Option<VideoSource>,
}

/// A connected (or connecting) client session, owned by the engine thread.
#[derive(Debug)]
pub struct ClientSession {
    io: SessionSocket,
    local: SocketAddr,
    /// What the session does.
    pub role: Role,
    ice: IceClient,
    cert: Arc<DtlsCertificate>,
    remote_fingerprint: Fingerprint,
    /// We run DTLS as the client.
    dtls_client: bool,
    dtls: Option<DtlsEndpoint>,
    srtp: Option<SrtpSession>,
    /// Why the session failed, if it did.
    pub failure: Option<String>,
    publisher: Option<PublisherMedia>,
    /// Streams received (subscribe sessions).
    pub streams: Vec<StreamCounter>,
    /// Packets received on SSRCs beyond [`MAX_STREAMS`].
    pub unknown_streams: u64,
    /// RTP packets this publish session sent.
    pub sent: u64,
}

impl ClientSession {
    fn new(
        pending: PendingSession,
        remote: RemoteTransport,
        now: Instant,
        start_media_at: Instant,
    ) -> anyhow::Result<Self> {
        let io = match pending.socket {
            SocketChoice::Own(socket) => {
                let socket = mio::net::UdpSocket::from_std(socket);
                let udp = UdpSocketState::new((&socket).into())?;
                SessionSocket::Own { socket, udp }
            }
            SocketChoice::Shared(index) => SessionSocket::Shared(index),
        };
        let local = pending.local.address;
        let ice = IceClient {
            local_key: IntegrityKey::new(pending.local.pwd.as_bytes()),
            remote_key: IntegrityKey::new(remote.pwd.as_bytes()),
            username: format!("{}:{}", remote.ufrag, pending.local.ufrag),
            local_ufrag: pending.local.ufrag,
            controlling: pending.offered,
            tie_breaker: rand::random(),
            candidates: remote.candidates,
            selected: None,
            next_check_at: now,
            transaction_prefix: rand::random(),
            transaction_counter: 0,
        };
        // The answerer picks the DTLS role: a passive server makes us the client.
        let dtls_client = remote.setup != Setup::Active;
        let publisher = match pending.role {
            Role::Publisher { audio, video, .. } => {
                // Stagger each publisher's bursts inside a frame interval.
                let offset = Duration::from_micros(u64::from(rand::random::<u16>()) % 33_000);
                let seed: u32 = rand::random();
                Some(PublisherMedia {
                    audio: audio.then(|| {
                        AudioSource::new(
                            pending.ssrc_base,
                            sdp::OPUS_PT,
                            start_media_at + offset,
                            seed,
                        )
                    }),
                    video: video.then(|| {
                        VideoSource::new(
                            pending.ssrc_base + 1,
                            sdp::VP8_PT,
                            start_media_at + offset,
                            seed,
                        )
                    }),
                })
            }
            Role::Subscriber { .. } => None,
        };
        Ok(ClientSession {
            io,
            local,
            role: pending.role,
            ice,
            cert: pending.cert,
            remote_fingerprint: remote.fingerprint,
            dtls_client,
            dtls: None,
            srtp: None,
            failure: None,
            publisher,
            streams: Vec::with_capacity(MAX_STREAMS),
            unknown_streams: 0,
            sent: 0,
        })
    }

    /// The session's own socket, for registering with the engine's poll (`None` on the
    /// shared socket).
    pub fn socket_mut(&mut self) -> Option<&mut mio::net::UdpSocket> {
        match &mut self.io {
            SessionSocket::Own { socket, .. } => Some(socket),
            SessionSocket::Shared(_) => None,
        }
    }

    /// The session's address (its host candidate).
    pub fn local_address(&self) -> SocketAddr {
        self.local
    }

    /// Whether SRTP keys are installed.
    pub fn is_connected(&self) -> bool {
        self.srtp.is_some()
    }

    fn send_datagram(&self, destination: SocketAddr, contents: &[u8], ctx: &mut EngineContext) {
        send_on(&self.io, self.local.ip(), ctx, destination, contents, None);
    }

    /// Reads what arrived on the session's own socket, with batched receives.
    pub fn drain_socket(&mut self, now: Instant, batch: &mut RecvBatch, ctx: &mut EngineContext) {
        loop {
            let SessionSocket::Own { socket, udp } = &self.io else {
                return;
            };
            let Some(count) = batch.receive(udp, socket) else {
                return;
            };
            for index in 0..count {
                batch.for_each_datagram(index, |source, _, datagram| {
                    self.handle_datagram(now, source, datagram, ctx);
                });
            }
            // A short batch emptied the queue: every datagram arriving later raises a new
            // edge-triggered event, so the would-block read that would end the loop is saved.
            if count < RECV_BATCH {
                return;
            }
        }
    }

    /// Handles one datagram addressed to this session.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &mut [u8],
        ctx: &mut EngineContext,
    ) {
        match classify(datagram) {
            PacketKind::Rtp => self.handle_rtp(now, datagram, ctx),
            PacketKind::Rtcp => self.handle_rtcp(now, datagram),
            PacketKind::Stun => self.handle_stun(now, source, datagram, ctx),
            PacketKind::Dtls => {
                if let Some(dtls) = self.dtls.as_mut() {
                    let _ = dtls.handle_datagram(now, datagram);
                }
                self.pump_dtls(ctx);
            }
            _ => {}
        }
    }

    /// Counts an RTP packet from its cleartext header; unprotects one in `latency_sample` to
    /// read its send time.
    fn handle_rtp(&mut self, now: Instant, datagram: &mut [u8], ctx: &mut EngineContext) {
        if self.publisher.is_some() || datagram.len() < 12 {
            return;
        }
        let seq = u16::from_be_bytes([datagram[2], datagram[3]]);
        let ssrc = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
        let known = self.streams.iter().position(|s| s.ssrc() == ssrc);
        let streams = self.streams.len();
        let duplicate = match known.and_then(|at| self.streams.get_mut(at)) {
            Some(stream) => {
                let before = stream.duplicates;
                stream.record(seq);
                before != stream.duplicates
            }
            None if streams < MAX_STREAMS => {
                self.streams.push(StreamCounter::new(ssrc, seq));
                false
            }
            None => {
                self.unknown_streams += 1;
                false
            }
        };
        if duplicate {
            ctx.duplicates += 1;
            return;
        }
        ctx.received += 1;
        ctx.sample_tick += 1;
        if ctx.sample_tick % ctx.latency_sample != 0 {
            return;
        }
        let Some(srtp) = self.srtp.as_mut() else {
            return;
        };
        match srtp.inbound.unprotect_rtp(datagram) {
            Ok(len) => {
                if let Some(sent) = datagram.get(..len).and_then(read_send_time) {
                    let received = ctx.nanos_since_epoch(now);
                    ctx.latency
                        .record(Duration::from_nanos(received.saturating_sub(sent)));
                }
            }
            Err(_) => ctx.srtp_errors += 1,
        }
    }

    /// A publisher answers keyframe requests; everything else from the server is ignored.
    fn handle_rtcp(&mut self, now: Instant, datagram: &mut [u8]) {
        let (Some(publisher), Some(srtp)) = (self.publisher.as_mut(), self.srtp.as_mut()) else {
            return;
        };
        let Some(video) = publisher.video.as_mut() else {
            return;
        };
        let Ok(len) = srtp.inbound.unprotect_rtcp(datagram) else {
            return;
        };
        let ssrc = video.ssrc();
        let wanted = iter_compound(datagram.get(..len).unwrap_or_default())
            .flatten()
            .any(|packet| match packet {
                RtcpPacket::Pli(pli) => pli.media_ssrc.0 == ssrc,
                RtcpPacket::Fir(fir) => fir.entries().any(|(s, _)| s.0 == ssrc),
                _ => false,
            });
        if wanted {
            video.request_keyframe(now);
        }
    }

    fn handle_stun(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
        ctx: &mut EngineContext,
    ) {
        let Ok(message) = StunMessage::parse(datagram) else {
            return;
        };
        if message.is_binding_request() {
            let ours = message
                .username()
                .and_then(|u| u.split_once(':'))
                .is_some_and(|(to, _)| to == self.ice.local_ufrag);
            if !ours || message.verify_integrity(&self.ice.local_key).is_err() {
                return;
            }
            let mut out = [0u8; 256];
            if let Ok(len) = write_binding_success(
                &mut out,
                &message.transaction_id(),
                source,
                &self.ice.local_key,
            ) {
                self.send_datagram(source, &out[..len], ctx);
            }
            // A controlling full-ICE server nominates with USE-CANDIDATE.
            if !self.ice.controlling && message.use_candidate() {
                self.select(now, source, ctx);
            }
            return;
        }
        if message.class() == Class::SuccessResponse
            && self.ice.is_ours(&message.transaction_id())
            && message.verify_integrity(&self.ice.remote_key).is_ok()
        {
            self.select(now, source, ctx);
        }
    }

    /// The pair with `remote` works: DTLS starts on it.
    fn select(&mut self, now: Instant, remote: SocketAddr, ctx: &mut EngineContext) {
        if self.ice.selected.is_none() {
            self.ice.selected = Some(remote);
            self.ice.next_check_at = now + CONSENT_INTERVAL;
        }
        if self.dtls.is_none() {
            self.dtls = Some(if self.dtls_client {
                DtlsEndpoint::new_client(&self.cert, self.remote_fingerprint, now)
            } else {
                DtlsEndpoint::new_server(&self.cert, self.remote_fingerprint, now)
            });
            self.pump_dtls(ctx);
        }
    }

    fn pump_dtls(&mut self, ctx: &mut EngineContext) {
        let Some(destination) = self.ice.selected else {
            return;
        };
        let mut out = [0u8; DTLS_MTU];
        while let Some(len) = self.dtls.as_mut().and_then(|d| d.poll_transmit(&mut out)) {
            self.send_datagram(destination, &out[..len], ctx);
        }
        while let Some(event) = self.dtls.as_mut().and_then(DtlsEndpoint::poll_event) {
            match event {
                DtlsEvent::Connected(keys) => match SrtpSession::new(&keys) {
                    Ok(srtp) => self.srtp = Some(srtp),
                    Err(e) => self.failure = Some(format!("SRTP keys: {e}")),
                },
                DtlsEvent::Failed(e) => self.failure = Some(format!("DTLS: {e}")),
                DtlsEvent::Closed => self.failure = Some("DTLS closed by the server".to_owned()),
            }
        }
    }

    /// The earliest time the session needs [`ClientSession::handle_timeout`].
    pub fn poll_timeout(&self) -> Instant {
        let mut at = self.ice.next_check_at;
        if let Some(dtls_at) = self.dtls.as_ref().and_then(DtlsEndpoint::poll_timeout) {
            at = at.min(dtls_at);
        }
        at
    }

    /// Sends due connectivity or consent checks and advances DTLS.
    pub fn handle_timeout(&mut self, now: Instant, ctx: &mut EngineContext) {
        if now >= self.ice.next_check_at {
            self.send_checks(ctx);
            self.ice.next_check_at = now
                + if self.ice.selected.is_some() {
                    CONSENT_INTERVAL
                        + Duration::from_millis(u64::from(rand::random::<u16>() % 1000))
                } else {
                    CHECK_INTERVAL
                };
        }
        if let Some(dtls) = self.dtls.as_mut()
            && dtls.poll_timeout().is_some_and(|at| at <= now)
        {
            dtls.handle_timeout(now);
            self.pump_dtls(ctx);
        }
    }

    fn send_checks(&mut self, ctx: &mut EngineContext) {
        let id = self.ice.transaction_id();
        let request = BindingRequest {
            username: &self.ice.username,
            priority: ice_lite::candidate_priority(110, 65535, 1),
            ice_controlling: self.ice.controlling.then_some(self.ice.tie_breaker),
            ice_controlled: (!self.ice.controlling).then_some(self.ice.tie_breaker),
            use_candidate: self.ice.controlling,
        };
        let mut out = [0u8; 256];
        let Ok(len) = request.write(&mut out, &id, &self.ice.remote_key) else {
            return;
        };
        match self.ice.selected {
            Some(selected) => self.send_datagram(selected, &out[..len], ctx),
            None => {
                for index in 0..self.ice.candidates.len() {
                    let candidate = self.ice.candidates[index];
                    self.send_datagram(candidate, &out[..len], ctx);
                }
            }
        }
    }

    /// When the publisher's next packet or frame is due (`None` for subscribe sessions and
    /// before keys are installed).
    pub fn next_media_at(&self) -> Option<Instant> {
        let publisher = self.publisher.as_ref().filter(|_| self.srtp.is_some())?;
        let audio = publisher.audio.as_ref().map(|a| a.next_at);
        let video = publisher.video.as_ref().map(|v| v.next_at);
        audio.into_iter().chain(video).min()
    }

    /// Sends every packet and frame due by `now`; a video frame leaves as one GSO send.
    pub fn send_due_media(&mut self, now: Instant, ctx: &mut EngineContext) {
        let ClientSession {
            io,
            local,
            ice,
            srtp: Some(srtp),
            publisher: Some(publisher),
            sent,
            ..
        } = self
        else {
            return;
        };
        let Some(destination) = ice.selected else {
            return;
        };
        let sent_ns = ctx.nanos_since_epoch(now);
        // A source that fell far behind (the session connected late, or the thread was
        // descheduled) restarts from now instead of sending the backlog in one burst.
        if let Some(floor) = now.checked_sub(MAX_MEDIA_LAG) {
            if let Some(audio) = publisher.audio.as_mut() {
                audio.next_at = audio.next_at.max(floor);
            }
            if let Some(video) = publisher.video.as_mut() {
                video.next_at = video.next_at.max(floor);
            }
        }
        let mut buf = std::mem::take(&mut ctx.send_buf);
        loop {
            if let Some(audio) = publisher.audio.as_mut().filter(|a| a.next_at <= now) {
                let len = audio.write_next(&mut buf, sent_ns);
                if let Some(Ok(protected)) = buf
                    .get_mut(..SLOT_LEN)
                    .map(|slot| srtp.outbound.protect_rtp(slot, len))
                {
                    send_on(io, local.ip(), ctx, destination, &buf[..protected], None);
                    *sent += 1;
                }
                continue;
            }
            let Some(video) = publisher.video.as_mut().filter(|v| v.next_at <= now) else {
                break;
            };
            let (packets, len) = video.write_frame(now, &mut buf, SLOT_LEN, sent_ns);
            // Every packet of a frame has the same size, so once protected in its slot the
            // frame is packed into one run of equal segments for a single GSO send.
            let mut protected_len = 0;
            for index in 0..packets {
                let slot = &mut buf[index * SLOT_LEN..(index + 1) * SLOT_LEN];
                match srtp.outbound.protect_rtp(slot, len) {
                    Ok(plen) => protected_len = plen,
                    Err(_) => {
                        ctx.srtp_errors += 1;
                        protected_len = 0;
                        break;
                    }
                }
                if index > 0 {
                    buf.copy_within(
                        index * SLOT_LEN..index * SLOT_LEN + protected_len,
                        index * protected_len,
                    );
                }
            }
            if protected_len == 0 {
                continue;
            }
            if packets > 1 && max_gso_segments(io, ctx) >= packets {
                let frame = &buf[..packets * protected_len];
                send_on(io, local.ip(), ctx, destination, frame, Some(protected_len));
            } else {
                for index in 0..packets {
                    let range = index * protected_len..(index + 1) * protected_len;
                    send_on(io, local.ip(), ctx, destination, &buf[range], None);
                }
            }
            *sent += packets as u64;
        }
        ctx.send_buf = buf;
    }
}

/// The socket a pending session will use.
#[derive(Debug)]
enum SocketChoice {
    Own(std::net::UdpSocket),
    /// The index of one of the engine's shared sockets.
    Shared(usize),
}

/// Where a session's datagrams come and go: its own socket, or one of the engine's shared
/// ones.
#[derive(Debug)]
enum SessionSocket {
    Own {
        socket: mio::net::UdpSocket,
        udp: UdpSocketState,
    },
    Shared(usize),
}

/// Sessions per shared socket: few enough that a keyframe burst to all of them fits in the
/// socket's receive buffer (15 packets x 64 sessions x ~2.3 KiB of kernel memory each).
const SESSIONS_PER_SHARED_SOCKET: u32 = 64;

/// One socket for many sessions: bound to the wildcard address on one port, it receives what
/// the server sends to any 127.x.y.z on that port (IP_PKTINFO says which), and sends from
/// the session's address. One batched receive then serves many sessions.
#[derive(Debug)]
pub struct SharedSocket {
    socket: mio::net::UdpSocket,
    udp: UdpSocketState,
}

impl SharedSocket {
    /// Binds enough sockets for `sessions` sessions; returns them and the addresses to hand
    /// out.
    pub fn bind_for(sessions: usize) -> anyhow::Result<(Vec<SharedSocket>, SharedAddresses)> {
        let count = (sessions as u32)
            .div_ceil(SESSIONS_PER_SHARED_SOCKET)
            .max(1);
        let mut sockets = Vec::with_capacity(count as usize);
        let mut ports = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                .context("binding a shared socket")?;
            socket.set_nonblocking(true)?;
            ports.push(socket.local_addr()?.port());
            let socket = mio::net::UdpSocket::from_std(socket);
            let udp = UdpSocketState::new((&socket).into())?;
            // Bursts of video to many sessions need room in the kernel's queue.
            let _ = udp.set_recv_buffer_size((&socket).into(), 8 * 1024 * 1024);
            let _ = udp.set_send_buffer_size((&socket).into(), 4 * 1024 * 1024);
            sockets.push(SharedSocket { socket, udp });
        }
        Ok((sockets, SharedAddresses { ports, next: 0 }))
    }

    /// The socket, for registering with the engine's poll.
    pub fn socket_mut(&mut self) -> &mut mio::net::UdpSocket {
        &mut self.socket
    }

    /// Reads one batch; `None` once the queue is empty.
    pub fn receive(&self, batch: &mut RecvBatch) -> Option<usize> {
        batch.receive(&self.udp, &self.socket)
    }
}

/// Hands out 127.1.0.1, 127.1.0.2, ..., each on the port of the shared socket it belongs to.
#[derive(Debug)]
pub struct SharedAddresses {
    ports: Vec<u16>,
    next: u32,
}

impl SharedAddresses {
    /// The next session's address and the index of its shared socket.
    pub fn next_address(&mut self) -> anyhow::Result<(SocketAddr, usize)> {
        let socket = (self.next / SESSIONS_PER_SHARED_SOCKET) as usize;
        let port = *self
            .ports
            .get(socket)
            .context("more sessions than the shared sockets were bound for")?;
        self.next += 1;
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + self.next);
        Ok((SocketAddr::new(IpAddr::V4(ip), port), socket))
    }
}

fn max_gso_segments(io: &SessionSocket, ctx: &EngineContext) -> usize {
    match io {
        SessionSocket::Own { udp, .. } => udp.max_gso_segments(),
        SessionSocket::Shared(index) => ctx
            .shared
            .get(*index)
            .map_or(1, |s| s.udp.max_gso_segments()),
    }
}

/// Sends one datagram, or one GSO run of `segment_size` segments, from `local_ip` when on the
/// shared socket. Send errors concern one session and are counted, not returned.
fn send_on(
    io: &SessionSocket,
    local_ip: IpAddr,
    ctx: &mut EngineContext,
    destination: SocketAddr,
    contents: &[u8],
    segment_size: Option<usize>,
) {
    let (udp, socket, src_ip) = match io {
        SessionSocket::Own { socket, udp } => (udp, socket, None),
        SessionSocket::Shared(index) => match ctx.shared.get(*index) {
            Some(shared) => (&shared.udp, &shared.socket, Some(local_ip)),
            None => {
                ctx.send_errors += 1;
                return;
            }
        },
    };
    let transmit = Transmit {
        destination,
        ecn: None,
        contents,
        segment_size,
        src_ip,
    };
    if udp.try_send(socket.into(), &transmit).is_err() {
        ctx.send_errors += 1;
    }
}

/// Datagrams per receive call.
pub const RECV_BATCH: usize = 32;
/// Bytes per receive buffer: with GRO one buffer holds several datagrams of one sender.
const RECV_BUFFER_LEN: usize = 64 * 1024;

/// Receive buffers shared by every session of an engine thread.
#[derive(Debug)]
pub struct RecvBatch {
    buffers: [Box<[u8]>; RECV_BATCH],
    meta: [RecvMeta; RECV_BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            buffers: std::array::from_fn(|_| vec![0u8; RECV_BUFFER_LEN].into_boxed_slice()),
            meta: [RecvMeta::default(); RECV_BATCH],
        }
    }
}

impl RecvBatch {
    /// Reads up to a batch of messages; `None` when none is waiting (or the socket failed).
    fn receive(&mut self, udp: &UdpSocketState, socket: &mio::net::UdpSocket) -> Option<usize> {
        loop {
            let mut slices = self.buffers.each_mut().map(|b| IoSliceMut::new(&mut b[..]));
            match udp.recv(socket.into(), &mut slices, &mut self.meta) {
                Ok(count) => return Some(count),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// Calls `f(source, destination ip, datagram)` for each datagram of message `index` (a
    /// GRO message holds several of one sender).
    pub fn for_each_datagram(
        &mut self,
        index: usize,
        mut f: impl FnMut(SocketAddr, Option<IpAddr>, &mut [u8]),
    ) {
        let (Some(meta), Some(buffer)) = (self.meta.get(index), self.buffers.get_mut(index)) else {
            return;
        };
        let stride = meta.stride.max(1);
        let mut offset = 0;
        while offset < meta.len {
            let len = stride.min(meta.len - offset);
            let Some(datagram) = buffer.get_mut(offset..offset + len) else {
                break;
            };
            f(meta.addr, meta.dst_ip, datagram);
            offset += len;
        }
    }
}
