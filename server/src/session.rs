//! One peer connection as the media worker drives it: its ICE-lite agent, its DTLS-SRTP
//! endpoint, the SRTP contexts once keys are exported, and the address media goes to.

use std::net::SocketAddr;
use std::time::Instant;

use ice_lite::{IceLiteAgent, StunMessage};
use packet_router::SessionId;
use rtc_core::dtls::{DtlsEndpoint, DtlsEvent};
use rtc_core::srtp::SrtpSession;

/// What a session is for.
#[derive(Debug)]
pub(crate) enum Role {
    /// It sends media into the room: the tracks it publishes.
    Publisher { tracks: Vec<crate::PublishedTrack> },
    /// It plays one publisher's audio and video (WHEP: the player offered).
    Player { publisher: SessionId },
    /// It receives the tracks the room's signaling chooses (Sluice offers).
    Subscriber(crate::negotiation::SubscriberState),
}

impl Role {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Self::Publisher { .. } => "publisher",
            Self::Player { .. } => "player",
            Self::Subscriber(_) => "subscriber",
        }
    }
}

/// Something the worker must act on after feeding a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionEvent {
    /// An address passed an ICE check: route its datagrams to this session.
    AddressValidated(SocketAddr),
    /// DTLS completed and SRTP keys are installed.
    Connected,
    /// The peer's certificate did not match its fingerprint (or the handshake failed).
    DtlsFailed { fingerprint_mismatch: bool },
    /// Consent expired, DTLS closed or setup timed out: tear the session down.
    Ended(EndReason),
    /// The agent refused a STUN request (no or wrong MESSAGE-INTEGRITY or FINGERPRINT, a
    /// username that is not the session's); at most a small error response went back.
    StunRejected,
}

/// Why a session ended, as its log line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndReason {
    /// Signaling closed it (the participant left, a WHIP or WHEP resource was deleted).
    Closed,
    /// The peer closed DTLS (close_notify).
    PeerClosed,
    /// ICE consent freshness expired: the peer stopped answering (RFC 7675).
    ConsentExpired,
    /// The DTLS handshake failed or its keys could not be used.
    DtlsFailed,
    /// The peer's DTLS certificate did not match the fingerprint in its SDP.
    FingerprintMismatch,
    /// DTLS had not completed by the setup deadline.
    NeverConnected,
    /// The publisher a WHEP player played left.
    PublisherLeft,
    /// The media plane shut down.
    Shutdown,
    /// Its offer was refused after the session was set up for it.
    OfferRefused,
}

impl EndReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::PeerClosed => "peer closed",
            Self::ConsentExpired => "consent expired",
            Self::DtlsFailed => "dtls failure",
            Self::FingerprintMismatch => "dtls fingerprint mismatch",
            Self::NeverConnected => "never connected",
            Self::PublisherLeft => "publisher left",
            Self::Shutdown => "shutdown",
            Self::OfferRefused => "offer refused",
        }
    }
}

pub(crate) struct Session {
    pub(crate) id: SessionId,
    pub(crate) room: String,
    pub(crate) role: Role,
    pub(crate) local_ufrag: String,
    pub(crate) ice: IceLiteAgent,
    /// Created once the peer's fingerprint is known (with its offer, or with its answer to
    /// Sluice's offer).
    pub(crate) dtls: Option<DtlsEndpoint>,
    pub(crate) srtp: Option<SrtpSession>,
    /// Where media and DTLS go: the nominated address, or the last validated one before
    /// nomination.
    pub(crate) remote: Option<SocketAddr>,
    /// The session must have completed DTLS by then, so that an offer whose peer never
    /// connects does not hold state forever.
    pub(crate) setup_deadline: Instant,
    /// `o=` session id and version of the descriptions Sluice writes for this session.
    pub(crate) sdp_session_id: u64,
    pub(crate) sdp_version: u64,
    /// Subscriptions to bind once DTLS completes.
    pub(crate) pending: Vec<crate::negotiation::PendingSubscription>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("room", &self.room)
            .field("role", &self.role)
            .field("remote", &self.remote)
            .field("connected", &self.srtp.is_some())
            .finish_non_exhaustive()
    }
}

/// The agent's count of requests it refused to authenticate.
fn rejections(stats: &ice_lite::IceStats) -> u64 {
    stats.bad_requests
        + stats.unknown_usernames
        + stats.integrity_failures
        + stats.fingerprint_failures
}

impl Session {
    /// Answers a STUN binding request from `source`; the response, if any, is written to
    /// `out` and its length returned.
    pub(crate) fn handle_stun(
        &mut self,
        now: Instant,
        source: SocketAddr,
        message: &StunMessage<'_>,
        out: &mut [u8],
        events: &mut Vec<SessionEvent>,
    ) -> Option<usize> {
        let rejections_before = rejections(&self.ice.stats());
        let response = self
            .ice
            .handle_binding_request(now, source, message, out)
            .ok()
            .flatten();
        // A refused request may still get a small error response, so the agent's own counts
        // tell a refusal apart from an answer.
        if rejections(&self.ice.stats()) != rejections_before {
            events.push(SessionEvent::StunRejected);
        }
        if self.ice.is_validated(source) {
            events.push(SessionEvent::AddressValidated(source));
            if self.remote.is_none() {
                self.remote = Some(source);
            }
        }
        self.drain_ice_events(events);
        response
    }

    fn drain_ice_events(&mut self, events: &mut Vec<SessionEvent>) {
        while let Some(event) = self.ice.poll_event() {
            match event {
                ice_lite::IceEvent::Nominated(address) => self.remote = Some(address),
                ice_lite::IceEvent::SelectedAddressChanged { to, .. } => self.remote = Some(to),
                ice_lite::IceEvent::ConsentExpired => {
                    events.push(SessionEvent::Ended(EndReason::ConsentExpired));
                }
                other => tracing::debug!(event = ?other, "ICE event not handled by the session"),
            }
        }
    }

    /// Feeds a DTLS datagram.
    pub(crate) fn handle_dtls(
        &mut self,
        now: Instant,
        datagram: &[u8],
        events: &mut Vec<SessionEvent>,
    ) {
        let Some(dtls) = self.dtls.as_mut() else {
            return;
        };
        // Errors surface as a Failed event below; the datagram itself needs no answer.
        let _ = dtls.handle_datagram(now, datagram);
        self.drain_dtls_events(events);
    }

    fn drain_dtls_events(&mut self, events: &mut Vec<SessionEvent>) {
        while let Some(event) = self.dtls.as_mut().and_then(DtlsEndpoint::poll_event) {
            match event {
                DtlsEvent::Connected(keys) => match SrtpSession::new(&keys) {
                    Ok(srtp) => {
                        self.srtp = Some(srtp);
                        events.push(SessionEvent::Connected);
                    }
                    Err(_) => events.push(SessionEvent::DtlsFailed {
                        fingerprint_mismatch: false,
                    }),
                },
                DtlsEvent::Failed(error) => events.push(SessionEvent::DtlsFailed {
                    fingerprint_mismatch: matches!(
                        error,
                        rtc_core::dtls::DtlsError::FingerprintMismatch
                    ),
                }),
                DtlsEvent::Closed => events.push(SessionEvent::Ended(EndReason::PeerClosed)),
                // Not printed: a future event may carry key material.
                _ => tracing::debug!("DTLS event not handled by the session"),
            }
        }
    }

    /// The deadline by which the session must have connected, while it has not.
    fn setup_deadline(&self) -> Option<Instant> {
        self.srtp.is_none().then_some(self.setup_deadline)
    }

    /// The earliest deadline of the session's agents.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.ice.poll_timeout(),
            self.dtls.as_ref().and_then(DtlsEndpoint::poll_timeout),
            self.setup_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advances the session's timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant, events: &mut Vec<SessionEvent>) {
        if self.setup_deadline().is_some_and(|at| at <= now) {
            events.push(SessionEvent::Ended(EndReason::NeverConnected));
            return;
        }
        if self.ice.poll_timeout().is_some_and(|at| at <= now) {
            self.ice.handle_timeout(now);
            self.drain_ice_events(events);
        }
        if let Some(dtls) = self.dtls.as_mut()
            && dtls.poll_timeout().is_some_and(|at| at <= now)
        {
            dtls.handle_timeout(now);
            self.drain_dtls_events(events);
        }
    }
}
