//! One peer connection of the bare forwarder: its ICE-lite agent, its DTLS endpoint (always
//! the server: publishers and WHEP players both offer), and what it is for. Once DTLS
//! completes, a publisher keeps its inbound SRTP context and a player's outbound context moves
//! into its publisher's subscriber list, next to the address it sends to, so that the
//! forwarding loop walks one contiguous array per packet.

use std::net::SocketAddr;
use std::time::Instant;

use ice_lite::{IceEvent, IceLiteAgent, StunMessage};
use packet_router::SessionId;
use rtc_core::Pt;
use rtc_core::dtls::{DtlsEndpoint, DtlsEvent};
use rtc_core::sdp::{Codec, MediaKind};
use rtc_core::srtp::{SrtpContext, SrtpSession};

/// A stream a publisher announced in its offer; a player's answer declares the same SSRCs,
/// since packets keep the publisher's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) kind: MediaKind,
    pub(crate) ssrc: rtc_core::Ssrc,
    pub(crate) rtx_ssrc: Option<rtc_core::Ssrc>,
    /// The codec and payload type the publisher sends; a player must use the same numbers
    /// because nothing is rewritten.
    pub(crate) codec: Option<(Codec, Pt)>,
}

/// Where one copy of each of a publisher's packets goes.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) player: SessionId,
    pub(crate) remote: SocketAddr,
    pub(crate) outbound: SrtpContext,
}

#[derive(Debug)]
pub(crate) struct Publisher {
    pub(crate) sources: Vec<Source>,
    /// Unprotects what the publisher sends; set when DTLS completes.
    pub(crate) inbound: Option<SrtpContext>,
    /// Connected players of this publisher, in the order they connected.
    pub(crate) subscribers: Vec<Subscriber>,
}

#[derive(Debug)]
pub(crate) enum Role {
    /// Boxed: its SRTP context is kilobytes, and most sessions are players.
    Publisher(Box<Publisher>),
    /// A WHEP player of the publisher in that slot of the session table.
    Player { publisher: usize },
}

/// Something the media thread must act on after feeding a session.
#[derive(Debug)]
pub(crate) enum SessionEvent {
    /// An address passed an ICE check: its datagrams belong to this session.
    AddressValidated(SocketAddr),
    /// Media now goes to this address (nomination, or migration).
    RemoteChanged(SocketAddr),
    /// DTLS completed with these keys (boxed: kilobytes of cipher state).
    Connected(Box<SrtpSession>),
    /// The handshake failed, consent expired, the peer closed, or setup took too long.
    Ended { dtls_failed: bool },
}

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: SessionId,
    pub(crate) room: String,
    pub(crate) role: Role,
    pub(crate) local_ufrag: String,
    pub(crate) ice: IceLiteAgent,
    pub(crate) dtls: DtlsEndpoint,
    /// Where DTLS (and, for a player, media) goes: the nominated address, or the first
    /// validated one before nomination.
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) connected: bool,
    /// A session that has not connected by then ends, so an abandoned offer frees its state.
    pub(crate) setup_deadline: Instant,
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
        let response = self
            .ice
            .handle_binding_request(now, source, message, out)
            .ok()
            .flatten();
        if self.ice.is_validated(source) {
            events.push(SessionEvent::AddressValidated(source));
            if self.remote.is_none() {
                self.set_remote(source, events);
            }
        }
        while let Some(event) = self.ice.poll_event() {
            match event {
                IceEvent::Nominated(address) => self.set_remote(address, events),
                IceEvent::SelectedAddressChanged { to, .. } => self.set_remote(to, events),
                IceEvent::ConsentExpired => events.push(SessionEvent::Ended { dtls_failed: false }),
                // Newer events (the enum is non-exhaustive) change nothing the bare forwarder
                // needs: it forwards to the nominated address and ends on consent loss.
                _ => {}
            }
        }
        response
    }

    fn set_remote(&mut self, address: SocketAddr, events: &mut Vec<SessionEvent>) {
        if self.remote != Some(address) {
            self.remote = Some(address);
            events.push(SessionEvent::RemoteChanged(address));
        }
    }

    /// Feeds a DTLS datagram from the session's validated address.
    pub(crate) fn handle_dtls(
        &mut self,
        now: Instant,
        datagram: &[u8],
        events: &mut Vec<SessionEvent>,
    ) {
        // A failure is reported as an event below; the datagram itself needs no answer.
        let _ = self.dtls.handle_datagram(now, datagram);
        self.drain_dtls_events(events);
    }

    fn drain_dtls_events(&mut self, events: &mut Vec<SessionEvent>) {
        while let Some(event) = self.dtls.poll_event() {
            events.push(match event {
                DtlsEvent::Connected(keys) => match SrtpSession::new(&keys) {
                    Ok(srtp) => {
                        self.connected = true;
                        SessionEvent::Connected(Box::new(srtp))
                    }
                    Err(_) => SessionEvent::Ended { dtls_failed: true },
                },
                DtlsEvent::Failed(_) => SessionEvent::Ended { dtls_failed: true },
                DtlsEvent::Closed => SessionEvent::Ended { dtls_failed: false },
                // Newer events (the enum is non-exhaustive) neither connect nor end a session.
                _ => continue,
            });
        }
    }

    /// When [`Session::handle_timeout`] must next run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let setup = (!self.connected).then_some(self.setup_deadline);
        [self.ice.poll_timeout(), self.dtls.poll_timeout(), setup]
            .into_iter()
            .flatten()
            .min()
    }

    /// Advances the session's timers: consent, DTLS retransmission, the setup deadline.
    pub(crate) fn handle_timeout(&mut self, now: Instant, events: &mut Vec<SessionEvent>) {
        if !self.connected && self.setup_deadline <= now {
            events.push(SessionEvent::Ended { dtls_failed: false });
            return;
        }
        if self.ice.poll_timeout().is_some_and(|at| at <= now) {
            self.ice.handle_timeout(now);
            while let Some(event) = self.ice.poll_event() {
                if event == IceEvent::ConsentExpired {
                    events.push(SessionEvent::Ended { dtls_failed: false });
                }
            }
        }
        if self.dtls.poll_timeout().is_some_and(|at| at <= now) {
            self.dtls.handle_timeout(now);
            self.drain_dtls_events(events);
        }
    }
}
