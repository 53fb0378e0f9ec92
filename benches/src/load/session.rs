//! One client peer connection of the load generator, built from Sluice's own crates in client
//! roles: a non-blocking UDP socket on loopback, ICE connectivity checks (ice-lite's STUN codec
//! and writer), a DTLS endpoint (rtc-core, client or server by the negotiated `a=setup`) and
//! the SRTP contexts it keys. A publisher sends synthetic media; a subscriber counts what
//! arrives from cleartext RTP headers and unprotects only a sample to read send times.
//!
//! A [`PendingSession`] becomes a [`ClientSession`] once signaling is done; the engine thread
//! owns it from then on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_lite::{DatagramKind, IceCredentials, classify};
use media_plane::{IceClient, IceClientConfig, Output, PeerEvent, PeerTransport, Received};
use quinn_udp::UdpSocketState;
use rtc_core::dtls::{DTLS_MTU, DtlsRole};
use rtc_core::rtcp::{RtcpPacket, iter_compound};
use rtc_core::sdp::Setup;

use super::media::{
    AudioSource, KEYFRAME_PACKETS, StreamCounter, VideoSource, read_send_time, realtime_ns,
};
use super::pending::{ClientRole, PendingSession};
use super::report::LatencyHistogram;
use super::sdp::{self, RemoteTransport};
use super::socket::{
    RECV_BATCH, RecvBatch, SessionSocket, SharedSocket, SocketChoice, enable_receive_timestamps,
    max_gso_segments, send_on,
};

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
    pub role: ClientRole,
    /// ICE (the checking client), DTLS and SRTP: the media plane's peer transport.
    transport: PeerTransport,
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
        let (local_ice, remote_ice) = (
            IceCredentials::new(&pending.local.ufrag, &pending.local.pwd)?,
            IceCredentials::new(&remote.ufrag, &remote.pwd)?,
        );
        let mut transport = PeerTransport::new_client(IceClient::new(
            now,
            IceClientConfig {
                local: local_ice,
                remote: remote_ice,
                candidates: remote.candidates,
                controlling: pending.offered,
                seed: rand::random(),
            },
        ));
        // The answerer picks the DTLS role: a passive server makes us the client.
        let dtls_role = if remote.setup == Setup::Active {
            DtlsRole::Server
        } else {
            DtlsRole::Client
        };
        transport.start_dtls(now, &pending.cert, remote.fingerprint, dtls_role);
        let publisher = match pending.role {
            ClientRole::Publisher { audio, video, .. } => {
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
            ClientRole::Subscriber { .. } => None,
        };
        Ok(ClientSession {
            io,
            local,
            role: pending.role,
            transport,
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
        self.transport.is_connected()
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
            DatagramKind::Rtp => self.handle_rtp(received_ns, datagram, ctx),
            DatagramKind::Rtcp => self.handle_rtcp(now, source, datagram),
            DatagramKind::Stun | DatagramKind::Dtls => {
                self.transport.handle_datagram(now, source, datagram);
                self.drive(ctx);
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
        let Some(srtp) = self.transport.srtp_mut() else {
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
    fn handle_rtcp(&mut self, now: Instant, source: SocketAddr, datagram: &mut [u8]) {
        let Some(video) = self.publisher.as_mut().and_then(|p| p.video.as_mut()) else {
            return;
        };
        let Received::Rtcp(len) = self.transport.handle_srtp(now, source, datagram, true) else {
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

    /// Sends what the transport has (checks, responses, DTLS) and notes how it ended, if
    /// it did.
    fn drive(&mut self, ctx: &mut EngineContext) {
        let mut out = [0u8; DTLS_MTU];
        loop {
            match self.transport.poll_output(&mut out) {
                Output::Transmit { destination, len } => {
                    send_on(
                        &self.io,
                        self.local.ip(),
                        ctx,
                        destination,
                        &out[..len],
                        None,
                    );
                }
                Output::Event(PeerEvent::Ended(reason)) => {
                    self.failure = Some(format!("the connection ended: {}", reason.as_str()));
                }
                Output::Event(_) => {}
                Output::Timeout(_) => return,
            }
        }
    }

    /// The earliest time the session needs [`ClientSession::handle_timeout`].
    pub fn poll_timeout(&self) -> Instant {
        // A client always has its next check scheduled.
        self.transport
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
    }

    /// Sends due connectivity or consent checks and advances DTLS.
    pub fn handle_timeout(&mut self, now: Instant, ctx: &mut EngineContext) {
        self.transport.handle_timeout(now);
        self.drive(ctx);
    }

    /// When the publisher's next packet or frame is due (`None` for subscribe sessions and
    /// before keys are installed).
    pub fn next_media_at(&self) -> Option<Instant> {
        let publisher = self
            .publisher
            .as_ref()
            .filter(|_| self.transport.is_connected())?;
        let audio = publisher.audio.as_ref().map(|a| a.next_at);
        let video = publisher.video.as_ref().map(|v| v.next_at);
        audio.into_iter().chain(video).min()
    }

    /// Sends every packet and frame due by `now`; a video frame leaves as one GSO send.
    pub fn send_due_media(&mut self, now: Instant, ctx: &mut EngineContext) {
        let ClientSession {
            io,
            local,
            transport,
            publisher: Some(publisher),
            sent,
            ..
        } = self
        else {
            return;
        };
        let Some(destination) = transport.remote() else {
            return;
        };
        let Some(srtp) = transport.srtp_mut() else {
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
