//! The ICE-lite agent of one session (RFC 8445 lite implementation, RFC 7675 consent): answers
//! connectivity checks, remembers which remote addresses passed them, follows nomination and
//! migration, and expires the session when checks stop. Always the controlled agent.
//!
//! Sans-IO: every input carries `now`, responses are written into the caller's buffer, and
//! events and the next deadline are polled.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ice_lite::{IceCredentials, IceEvent, IceLiteAgent, IceLiteConfig, StunMessage};
//!
//! let local = IceCredentials::new("srvr", "serverpasswordserverpw").unwrap();
//! let mut agent = IceLiteAgent::new(local, IceLiteConfig::default());
//! # let datagram: &[u8] = &[];
//! # let source = "192.0.2.1:5000".parse().unwrap();
//! let mut out = [0u8; 1500];
//! let now = Instant::now();
//! if let Ok(msg) = StunMessage::parse(datagram) {
//!     if let Ok(Some(len)) = agent.handle_binding_request(now, source, &msg, &mut out) {
//!         // send &out[..len] to `source`
//!     }
//! }
//! while let Some(event) = agent.poll_event() {
//!     // IceEvent::Nominated(addr): start DTLS towards addr, ...
//! }
//! if agent.poll_timeout().is_some_and(|t| t <= now) {
//!     agent.handle_timeout(now);
//! }
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::stun::{IntegrityKey, METHOD_BINDING, StunMessage};
use crate::stun_writer::{error_code, write_binding_error, write_binding_success};
use crate::{Class, Error, IceCredentials};

/// Tunables of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IceLiteConfig {
    /// RFC 7675: without a valid check on the selected address for this long, consent expires
    /// and the session ends. Default 30 s.
    pub consent_timeout: Duration,
    /// If the selected address has sent no valid check for this long, a valid check from
    /// another validated address moves the selection there even without USE-CANDIDATE (the
    /// peer's network changed and it kept checking on the new path). Default 12 s: two
    /// consent intervals of a browser (5 s +- 20 %) plus margin.
    pub silence_before_migration: Duration,
    /// How many remote addresses are remembered as validated at once. Default 4.
    pub max_validated_addresses: usize,
}

impl Default for IceLiteConfig {
    fn default() -> Self {
        Self {
            consent_timeout: Duration::from_secs(30),
            silence_before_migration: Duration::from_secs(12),
            max_validated_addresses: 4,
        }
    }
}

/// What happened, for the session's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceEvent {
    /// The peer nominated this address for the first time: media may flow to it.
    Nominated(SocketAddr),
    /// The selected address moved (renomination or migration after silence).
    SelectedAddressChanged {
        /// The previous selected address.
        from: SocketAddr,
        /// The new selected address.
        to: SocketAddr,
    },
    /// No valid check for `consent_timeout`: stop sending and tear the session down.
    ConsentExpired,
}

/// Counters of checks, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IceStats {
    /// Valid checks answered with a success response.
    pub successes: u64,
    /// Requests without USERNAME or MESSAGE-INTEGRITY (400).
    pub bad_requests: u64,
    /// Requests with a USERNAME that is not ours.
    pub unknown_usernames: u64,
    /// Requests whose MESSAGE-INTEGRITY failed with our password (401).
    pub integrity_failures: u64,
    /// Requests without FINGERPRINT or with a wrong one (dropped).
    pub fingerprint_failures: u64,
    /// Authenticated requests carrying ICE-CONTROLLED (487).
    pub role_conflicts: u64,
}

#[derive(Debug, Clone, Copy)]
struct ValidatedAddress {
    address: SocketAddr,
    last_check: Instant,
}

/// Events kept until polled; older ones are dropped beyond this so that state stays bounded
/// even if the owner never polls.
const MAX_PENDING_EVENTS: usize = 16;

/// An ICE-lite agent for one session.
#[derive(Debug)]
pub struct IceLiteAgent {
    local: IceCredentials,
    local_key: IntegrityKey,
    remote: Option<IceCredentials>,
    config: IceLiteConfig,
    validated: Vec<ValidatedAddress>,
    selected: Option<SocketAddr>,
    events: VecDeque<IceEvent>,
    expired: bool,
    stats: IceStats,
}

impl IceLiteAgent {
    /// An agent answering checks addressed to `local` (our ufrag and password).
    pub fn new(local: IceCredentials, config: IceLiteConfig) -> Self {
        let local_key = local.integrity_key();
        let max = config.max_validated_addresses.max(1);
        Self {
            local,
            local_key,
            remote: None,
            config: IceLiteConfig {
                max_validated_addresses: max,
                ..config
            },
            validated: Vec::with_capacity(max),
            selected: None,
            events: VecDeque::with_capacity(MAX_PENDING_EVENTS),
            expired: false,
            stats: IceStats::default(),
        }
    }

    /// The peer's credentials from its SDP. Once set, the USERNAME of a check must also name
    /// the peer's ufrag.
    pub fn set_remote_credentials(&mut self, remote: IceCredentials) {
        self.remote = Some(remote);
    }

    /// Our credentials.
    pub fn local_credentials(&self) -> &IceCredentials {
        &self.local
    }

    /// Handles a STUN message received from `source` (normally a Binding request), writing
    /// the response, if any, into `out`.
    ///
    /// - `Ok(Some(len))`: send `out[..len]` back to `source` (a success response, or a 400,
    ///   401 or 487 error response).
    /// - `Ok(None)`: nothing to answer (an indication, e.g. a keepalive, or a response).
    /// - `Err(e)`: the request is dropped silently; `e` says why.
    ///
    /// Checks are validated as RFC 8445 7.3 and RFC 8489 9.1.3 say: FINGERPRINT must be
    /// present and right (otherwise the datagram is not ICE: dropped), USERNAME and
    /// MESSAGE-INTEGRITY must be present (400), USERNAME must be "ourufrag:theirufrag" and
    /// MESSAGE-INTEGRITY must verify with our password (401). An error response to an
    /// unauthenticated request is only sent when it is not larger than the request, so the
    /// port cannot amplify spoofed traffic.
    pub fn handle_binding_request(
        &mut self,
        now: Instant,
        source: SocketAddr,
        msg: &StunMessage<'_>,
        out: &mut [u8],
    ) -> Result<Option<usize>, Error> {
        match msg.class() {
            Class::Request => {}
            // Keepalive indications and stray responses need no answer.
            Class::Indication | Class::SuccessResponse | Class::ErrorResponse => return Ok(None),
        }
        if msg.method() != METHOD_BINDING {
            return Err(Error::UnsupportedMethod);
        }
        if let Err(e) = msg.verify_fingerprint() {
            self.stats.fingerprint_failures += 1;
            return Err(e);
        }
        let transaction_id = msg.transaction_id();
        let request_len = msg.as_bytes().len();
        let unauthenticated_error = |code: u16, out: &mut [u8]| -> Result<Option<usize>, Error> {
            // Written first into the caller's buffer, then withheld if too large: the
            // response is at most a few dozen bytes, so this costs nothing measurable.
            let len = write_binding_error(out, &transaction_id, code, None)?;
            if len > request_len {
                return Err(Error::ResponseWithheld(code));
            }
            Ok(Some(len))
        };
        let Some(username) = msg.username().filter(|_| msg.has_integrity()) else {
            self.stats.bad_requests += 1;
            return unauthenticated_error(error_code::BAD_REQUEST, out);
        };
        if !self.username_matches(username) {
            self.stats.unknown_usernames += 1;
            return unauthenticated_error(error_code::UNAUTHORIZED, out);
        }
        if msg.verify_integrity(&self.local_key).is_err() {
            self.stats.integrity_failures += 1;
            return unauthenticated_error(error_code::UNAUTHORIZED, out);
        }
        if self.expired {
            return Err(Error::ConsentExpired);
        }
        if msg.ice_controlled().is_some() {
            // RFC 8445 7.3.1.1: the peer also claims the controlled role. A lite agent cannot
            // become controlling, so whatever the tie-breakers, the peer must switch.
            self.stats.role_conflicts += 1;
            let len =
                write_binding_error(out, &transaction_id, error_code::ROLE_CONFLICT, Some(&self.local_key))?;
            return Ok(Some(len));
        }
        let len = write_binding_success(out, &transaction_id, source, &self.local_key)?;
        self.stats.successes += 1;
        self.on_valid_check(now, source, msg.use_candidate());
        Ok(Some(len))
    }

    /// USERNAME of a check sent to us is "ourufrag:theirufrag".
    fn username_matches(&self, username: &str) -> bool {
        let Some((ours, theirs)) = username.split_once(':') else {
            return false;
        };
        ours == self.local.ufrag() && self.remote.as_ref().is_none_or(|r| r.ufrag() == theirs)
    }

    fn on_valid_check(&mut self, now: Instant, source: SocketAddr, use_candidate: bool) {
        let selected_silent_since = self.selected.and_then(|s| self.last_check(s));
        self.mark_validated(now, source);
        match self.selected {
            None if use_candidate => {
                self.selected = Some(source);
                self.push_event(IceEvent::Nominated(source));
            }
            Some(current) if current != source => {
                let silent = selected_silent_since.is_none_or(|last| {
                    now.saturating_duration_since(last) >= self.config.silence_before_migration
                });
                if use_candidate || silent {
                    self.selected = Some(source);
                    self.push_event(IceEvent::SelectedAddressChanged {
                        from: current,
                        to: source,
                    });
                }
            }
            _ => {}
        }
    }

    fn last_check(&self, address: SocketAddr) -> Option<Instant> {
        self.validated
            .iter()
            .find(|v| v.address == address)
            .map(|v| v.last_check)
    }

    fn mark_validated(&mut self, now: Instant, address: SocketAddr) {
        if let Some(v) = self.validated.iter_mut().find(|v| v.address == address) {
            v.last_check = now;
            return;
        }
        if self.validated.len() >= self.config.max_validated_addresses {
            // Forget the address checked longest ago, but never the selected one.
            let selected = self.selected;
            let oldest = self
                .validated
                .iter()
                .enumerate()
                .filter(|(_, v)| Some(v.address) != selected)
                .min_by_key(|(_, v)| v.last_check)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    self.validated.swap_remove(i);
                }
                None => return,
            }
        }
        self.validated.push(ValidatedAddress {
            address,
            last_check: now,
        });
    }

    fn push_event(&mut self, event: IceEvent) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<IceEvent> {
        self.events.pop_front()
    }

    /// When [`IceLiteAgent::handle_timeout`] should next be called: the earliest moment a
    /// validated address or the session's consent runs out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.expired {
            return None;
        }
        self.validated
            .iter()
            .map(|v| v.last_check + self.config.consent_timeout)
            .min()
    }

    /// Forgets addresses without a valid check for `consent_timeout` and, if the selected
    /// address is among them (or, before nomination, no address is left), expires consent
    /// (RFC 7675 5.1).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.expired {
            return;
        }
        let timeout = self.config.consent_timeout;
        let selected = self.selected;
        let mut selected_lost = false;
        let before = self.validated.len();
        self.validated.retain(|v| {
            let fresh = now.saturating_duration_since(v.last_check) < timeout;
            if !fresh && Some(v.address) == selected {
                selected_lost = true;
            }
            fresh
        });
        // Before nomination, the session lives as long as any address keeps checking.
        let unnominated_and_silent =
            selected.is_none() && self.validated.is_empty() && before > 0;
        if selected_lost || unnominated_and_silent {
            self.expired = true;
            self.selected = None;
            self.validated.clear();
            self.push_event(IceEvent::ConsentExpired);
        }
    }

    /// Whether media may flow to and from `address`: it passed a check and has not timed out.
    pub fn is_validated(&self, address: SocketAddr) -> bool {
        !self.expired && self.validated.iter().any(|v| v.address == address)
    }

    /// The nominated address media is sent to.
    pub fn selected_address(&self) -> Option<SocketAddr> {
        self.selected
    }

    /// Whether consent has expired and the session is over.
    pub fn is_expired(&self) -> bool {
        self.expired
    }

    /// Counters of handled checks.
    pub fn stats(&self) -> IceStats {
        self.stats
    }
}
