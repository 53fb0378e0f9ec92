//! A client session during signaling: its address (a socket of its own, or an address on
//! one of the engine's shared sockets), ICE credentials and SSRCs are chosen, and it plays
//! the client side of the offer/answer exchange ([`SdpSide`]) until the server's description
//! is known. Then [`PendingSession::into_session`] turns it into the engine's
//! [`ClientSession`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use rtc_core::dtls::DtlsCertificate;
use rtc_core::sdp::Setup;

use super::sdp::{self, Kind, LocalTransport, OfferedTrack, RemoteTransport};
use super::session::ClientSession;
use super::socket::{SharedAddresses, SocketChoice};
use super::target::SdpSide;

/// What a session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientRole {
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

impl ClientRole {
    fn tracks(self, ssrc_base: u32) -> Vec<OfferedTrack> {
        let (audio, video, sends) = match self {
            ClientRole::Publisher { audio, video, .. } => (audio, video, true),
            ClientRole::Subscriber { audio, video, .. } => (audio, video, false),
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
    pub(super) socket: SocketChoice,
    pub(super) local: LocalTransport,
    pub(super) cert: Arc<DtlsCertificate>,
    pub(super) role: ClientRole,
    pub(super) ssrc_base: u32,
    /// We wrote the offer, so we are the controlling ICE agent.
    pub(super) offered: bool,
    remote: Option<RemoteTransport>,
}

impl PendingSession {
    /// Binds a socket on `ip` and picks credentials for a session playing `role`.
    pub fn new(ip: IpAddr, cert: Arc<DtlsCertificate>, role: ClientRole) -> anyhow::Result<Self> {
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
        role: ClientRole,
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
        role: ClientRole,
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
    pub fn loopback(cert: Arc<DtlsCertificate>, role: ClientRole) -> anyhow::Result<Self> {
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
