//! One client peer connection of the load generator, built from Sluice's own crates in client
//! roles: a non-blocking UDP socket on loopback, ICE connectivity checks (ice-lite's STUN codec
//! and writer), a DTLS endpoint (rtc-core, client or server by the negotiated `a=setup`) and
//! the SRTP contexts it keys. A publisher sends synthetic media; a subscriber counts what
//! arrives from cleartext RTP headers and unprotects only a sample to read send times.
//!
//! A [`PendingSession`] becomes a [`ClientSession`] once signaling is done; the engine thread
//! owns it from then on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ice_lite::{
    BindingRequest, Class, IntegrityKey, PacketKind, StunMessage, TransactionId, classify,
    write_binding_success,
};
use quinn_udp::UdpSocketState;
use rtc_core::dtls::{DTLS_MTU, DtlsCertificate, DtlsEndpoint, DtlsEvent, Fingerprint};
use rtc_core::rtcp::{RtcpPacket, iter_compound};
use rtc_core::sdp::Setup;
use rtc_core::srtp::SrtpSession;

use super::media::{
    AudioSource, KEYFRAME_PACKETS, StreamCounter, VideoSource, read_send_time, realtime_ns,
};
use super::pending::{PendingSession, Role};
use super::report::LatencyHistogram;
use super::sdp::{self, RemoteTransport};
use super::socket::{
    RECV_BATCH, RecvBatch, SessionSocket, SharedSocket, SocketChoice, enable_receive_timestamps,
    max_gso_segments, send_on,
};

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

/// Engine-wide counters and buffers a session updates as it handles datagrams.
#[derive(Debug)]
pub struct EngineContext {
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
    /// Counters at zero; sessions without a socket of their own use `shared`.
    pub fn new(latency_sample: u64, shared: Vec<SharedSocket>) -> Self {
        EngineContext {
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
    pub(super) fn new(
        pending: PendingSession,
        remote: RemoteTransport,
        now: Instant,
        start_media_at: Instant,
    ) -> anyhow::Result<Self> {
        let io = match pending.socket {
            SocketChoice::Own(socket) => {
                let socket = mio::net::UdpSocket::from_std(socket);
                let udp = UdpSocketState::new((&socket).into())?;
                enable_receive_timestamps(&socket)?;
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
            let SessionSocket::Own { socket, .. } = &self.io else {
                return;
            };
            let Some(count) = batch.receive(socket) else {
                return;
            };
            for index in 0..count {
                batch.for_each_datagram(index, |source, _, received_ns, datagram| {
                    self.handle_datagram(now, source, received_ns, datagram, ctx);
                });
            }
            // A short batch emptied the queue: every datagram arriving later raises a new
            // edge-triggered event, so the would-block read that would end the loop is saved.
            if count < RECV_BATCH {
                return;
            }
        }
    }

    /// Handles one datagram addressed to this session, which the kernel received at
    /// `received_ns` (CLOCK_REALTIME nanoseconds) when it says so.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        received_ns: Option<u64>,
        datagram: &mut [u8],
        ctx: &mut EngineContext,
    ) {
        match classify(datagram) {
            PacketKind::Rtp => self.handle_rtp(received_ns, datagram, ctx),
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
    fn handle_rtp(
        &mut self,
        received_ns: Option<u64>,
        datagram: &mut [u8],
        ctx: &mut EngineContext,
    ) {
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
        if !ctx.sample_tick.is_multiple_of(ctx.latency_sample) {
            return;
        }
        let Some(srtp) = self.srtp.as_mut() else {
            return;
        };
        match srtp.inbound.unprotect_rtp(datagram) {
            Ok(len) => {
                if let Some(sent) = datagram.get(..len).and_then(read_send_time) {
                    let received = received_ns.unwrap_or_else(realtime_ns);
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
                // Newer events (the enum is non-exhaustive) neither connect nor fail the peer.
                _ => {}
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
        let sent_ns = realtime_ns();
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
