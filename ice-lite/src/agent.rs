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
//!     if let Some(len) = agent.handle_binding_request(now, source, &msg, &mut out).response_len() {
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
#[non_exhaustive]
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

/// What [`IceLiteAgent::handle_binding_request`] did with a STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindingOutcome {
    /// An authentic check: send `out[..len]` back to its source (a success response, or a
    /// 487 role conflict).
    Answered {
        /// Bytes of the response written into `out`.
        len: usize,
    },
    /// The request failed its checks (`error` says which). `response` is the length of a
    /// small error response (400 or 401) written into `out` to send back, when one is sent.
    Refused {
        /// Why it was refused.
        error: Error,
        /// Bytes of the error response in `out`, if one is to be sent.
        response: Option<usize>,
    },
    /// Nothing to do: an indication (a keepalive) or a stray response.
    Ignored,
}

impl BindingOutcome {
    /// The bytes to send back, if any: `out[..len]`.
    pub fn response_len(self) -> Option<usize> {
        match self {
            BindingOutcome::Answered { len } => Some(len),
            BindingOutcome::Refused { response, .. } => response,
            BindingOutcome::Ignored => None,
        }
    }

    /// Whether the request was refused (with or without a response).
    pub fn is_refused(self) -> bool {
        matches!(self, BindingOutcome::Refused { .. })
    }
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

    /// The peer's credentials, once known.
    pub fn remote_credentials(&self) -> Option<&IceCredentials> {
        self.remote.as_ref()
    }

    /// ICE restart (RFC 8445 9, RFC 8839 4.4.1.1.1): from now on checks must carry the new
    /// `local` and `remote` credentials, and ones with the old username are refused. What is
    /// above ICE (the DTLS association, the SRTP keys) is not the agent's and stays.
    ///
    /// The selected address stays selected, so media keeps flowing while the peer checks on
    /// the new credentials, and its consent runs for `consent_timeout` from `now`: the peer
    /// has that long to pass a check (authenticated media also counts, as before). Every other
    /// validated address is forgotten and must pass a check with the new credentials again.
    /// A check with USE-CANDIDATE from another address moves the selection there, as a
    /// renomination always does. An agent whose consent expired stays expired.
    pub fn restart(&mut self, now: Instant, local: IceCredentials, remote: IceCredentials) {
        self.local_key = local.integrity_key();
        self.local = local;
        self.remote = Some(remote);
        if self.expired {
            return;
        }
        let selected = self.selected;
        self.validated.retain(|v| Some(v.address) == selected);
        for v in &mut self.validated {
            v.last_check = v.last_check.max(now);
        }
    }

    /// Handles a STUN message received from `source` (normally a Binding request), writing
    /// the response, if any, into `out`, and says what it did (see [`BindingOutcome`]).
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
    ) -> BindingOutcome {
        match msg.class() {
            Class::Request => {}
            // Keepalive indications and stray responses need no answer.
            Class::Indication | Class::SuccessResponse | Class::ErrorResponse => {
                return BindingOutcome::Ignored;
            }
        }
        let refused = |error| BindingOutcome::Refused {
            error,
            response: None,
        };
        if msg.method() != METHOD_BINDING {
            return refused(Error::UnsupportedMethod);
        }
        if let Err(e) = msg.verify_fingerprint() {
            self.stats.fingerprint_failures += 1;
            return refused(e);
        }
        let transaction_id = msg.transaction_id();
        let request_len = msg.as_bytes().len();
        let unauthenticated_error = |error: Error, code: u16, out: &mut [u8]| {
            // Written first into the caller's buffer, then withheld if too large: the
            // response is at most a few dozen bytes, so this costs nothing measurable.
            match write_binding_error(out, &transaction_id, code, None) {
                Ok(len) if len <= request_len => BindingOutcome::Refused {
                    error,
                    response: Some(len),
                },
                Ok(_) => refused(Error::ResponseWithheld(code)),
                Err(e) => refused(e),
            }
        };
        let Some(username) = msg.username().filter(|_| msg.has_integrity()) else {
            self.stats.bad_requests += 1;
            return unauthenticated_error(Error::MissingUsername, error_code::BAD_REQUEST, out);
        };
        if !self.username_matches(username) {
            self.stats.unknown_usernames += 1;
            return unauthenticated_error(Error::UnknownUsername, error_code::UNAUTHORIZED, out);
        }
        if msg.verify_integrity(&self.local_key).is_err() {
            self.stats.integrity_failures += 1;
            return unauthenticated_error(Error::IntegrityMismatch, error_code::UNAUTHORIZED, out);
        }
        if self.expired {
            return refused(Error::ConsentExpired);
        }
        if msg.ice_controlled().is_some() {
            // RFC 8445 7.3.1.1: the peer also claims the controlled role. A lite agent cannot
            // become controlling, so whatever the tie-breakers, the peer must switch. The
            // check is authentic: it is answered (with 487), not refused.
            self.stats.role_conflicts += 1;
            return match write_binding_error(
                out,
                &transaction_id,
                error_code::ROLE_CONFLICT,
                Some(&self.local_key),
            ) {
                Ok(len) => BindingOutcome::Answered { len },
                Err(e) => refused(e),
            };
        }
        match write_binding_success(out, &transaction_id, source, &self.local_key) {
            Ok(len) => {
                self.stats.successes += 1;
                self.on_valid_check(now, source, msg.use_candidate());
                BindingOutcome::Answered { len }
            }
            Err(e) => refused(e),
        }
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
        let unnominated_and_silent = selected.is_none() && self.validated.is_empty() && before > 0;
        if selected_lost || unnominated_and_silent {
            self.expired = true;
            self.selected = None;
            self.validated.clear();
            self.push_event(IceEvent::ConsentExpired);
        }
    }

    /// Counts authenticated media (SRTP or SRTCP that passed its authentication tag) from
    /// `source` as proof that the peer still wants it, like a valid check: some peers (Pion,
    /// for one) send binding requests only while a path is otherwise idle. Only an address
    /// that already passed a check is refreshed; any other source changes nothing, so media
    /// can keep a session alive but never validate or select an address.
    pub fn handle_authenticated_media(&mut self, now: Instant, source: SocketAddr) {
        if self.expired {
            return;
        }
        if let Some(v) = self.validated.iter_mut().find(|v| v.address == source)
            && v.last_check < now
        {
            v.last_check = now;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun_writer::BindingRequest;
    use crate::{StunWriter, attr};

    const SERVER_UFRAG: &str = "srvr";
    const SERVER_PWD: &str = "serverpasswordserverpw";
    const CLIENT_UFRAG: &str = "clnt";
    const CLIENT_PWD: &str = "clientpasswordclientpw";

    fn agent() -> IceLiteAgent {
        let mut agent = IceLiteAgent::new(
            IceCredentials::new(SERVER_UFRAG, SERVER_PWD).unwrap(),
            IceLiteConfig::default(),
        );
        agent.set_remote_credentials(IceCredentials::new(CLIENT_UFRAG, CLIENT_PWD).unwrap());
        agent
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// A browser-like check: controlling, keyed with the server's password.
    fn check(use_candidate: bool) -> Vec<u8> {
        check_with("srvr:clnt", SERVER_PWD, use_candidate)
    }

    fn check_with(username: &str, pwd: &str, use_candidate: bool) -> Vec<u8> {
        let mut buf = [0u8; 200];
        let len = BindingRequest {
            username,
            priority: 1_853_824_767,
            ice_controlling: Some(0x1234_5678_9abc_def0),
            ice_controlled: None,
            use_candidate,
        }
        .write(&mut buf, &[7; 12], &IntegrityKey::new(pwd.as_bytes()))
        .unwrap();
        buf[..len].to_vec()
    }

    /// Feeds one datagram; returns the parsed response class and error code, if any.
    fn feed(
        agent: &mut IceLiteAgent,
        now: Instant,
        source: SocketAddr,
        bytes: &[u8],
    ) -> Result<Option<(Class, Option<u16>)>, Error> {
        let msg = StunMessage::parse(bytes).unwrap();
        let mut out = [0u8; 1500];
        let len = match agent.handle_binding_request(now, source, &msg, &mut out) {
            BindingOutcome::Ignored => return Ok(None),
            BindingOutcome::Refused {
                error,
                response: None,
            } => return Err(error),
            outcome => outcome.response_len().unwrap(),
        };
        let response = StunMessage::parse(&out[..len]).unwrap();
        assert_eq!(response.transaction_id(), msg.transaction_id());
        assert_eq!(response.verify_fingerprint(), Ok(()));
        if response.class() == Class::SuccessResponse {
            assert_eq!(response.xor_mapped_address(), Some(source));
            let key = IntegrityKey::new(SERVER_PWD.as_bytes());
            assert_eq!(response.verify_integrity(&key), Ok(()));
        }
        Ok(Some((
            response.class(),
            response.error_code().map(|e| e.code),
        )))
    }

    fn events(agent: &mut IceLiteAgent) -> Vec<IceEvent> {
        std::iter::from_fn(|| agent.poll_event()).collect()
    }

    const SUCCESS: Result<Option<(Class, Option<u16>)>, Error> =
        Ok(Some((Class::SuccessResponse, None)));

    #[test]
    fn check_validates_and_use_candidate_nominates() {
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        let a = addr("198.51.100.1:50000");
        assert_eq!(feed(&mut agent, t0, a, &check(false)), SUCCESS);
        assert!(agent.is_validated(a));
        assert!(!agent.is_validated(addr("198.51.100.1:50001")));
        assert_eq!(agent.selected_address(), None);
        assert_eq!(events(&mut agent), []);

        assert_eq!(feed(&mut agent, t0 + secs(0.1), a, &check(true)), SUCCESS);
        assert_eq!(agent.selected_address(), Some(a));
        assert_eq!(events(&mut agent), [IceEvent::Nominated(a)]);
        // Chrome keeps USE-CANDIDATE on every later check: no new event.
        assert_eq!(feed(&mut agent, t0 + secs(2.5), a, &check(true)), SUCCESS);
        assert_eq!(events(&mut agent), []);
        assert_eq!(agent.stats().successes, 3);
    }

    #[test]
    fn consent_expires_without_checks() {
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        let a = addr("198.51.100.1:50000");
        feed(&mut agent, t0, a, &check(true)).unwrap();
        events(&mut agent);
        assert_eq!(agent.poll_timeout(), Some(t0 + secs(30.0)));
        agent.handle_timeout(t0 + secs(29.9));
        assert!(!agent.is_expired());
        assert!(agent.is_validated(a));
        agent.handle_timeout(t0 + secs(30.0));
        assert!(agent.is_expired());
        assert_eq!(events(&mut agent), [IceEvent::ConsentExpired]);
        assert_eq!(agent.selected_address(), None);
        assert!(!agent.is_validated(a));
        assert_eq!(agent.poll_timeout(), None);
        // The session is over: later checks are dropped.
        assert_eq!(
            feed(&mut agent, t0 + secs(31.0), a, &check(true)),
            Err(Error::ConsentExpired)
        );
    }

    #[test]
    fn checks_every_few_seconds_keep_consent() {
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        let a = addr("198.51.100.1:50000");
        let mut now = t0;
        while now < t0 + secs(300.0) {
            assert_eq!(feed(&mut agent, now, a, &check(true)), SUCCESS);
            now += secs(4.7);
            if let Some(deadline) = agent.poll_timeout().filter(|d| *d <= now) {
                agent.handle_timeout(deadline);
            }
            agent.handle_timeout(now);
        }
        assert!(!agent.is_expired());
        assert_eq!(agent.selected_address(), Some(a));
        assert_eq!(events(&mut agent), [IceEvent::Nominated(a)]);
    }

    #[test]
    fn authenticated_media_keeps_consent_without_checks() {
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        let a = addr("198.51.100.1:50000");
        let stranger = addr("203.0.113.9:40000");
        feed(&mut agent, t0, a, &check(true)).unwrap();
        events(&mut agent);
        // Media every 20 ms for two minutes and no further check: consent holds.
        let mut now = t0;
        while now < t0 + secs(120.0) {
            now += Duration::from_millis(20);
            agent.handle_authenticated_media(now, a);
            // Media from an address that never passed a check neither validates it nor
            // selects it.
            agent.handle_authenticated_media(now, stranger);
            if agent.poll_timeout().is_some_and(|d| d <= now) {
                agent.handle_timeout(now);
            }
        }
        assert!(!agent.is_expired());
        assert_eq!(agent.selected_address(), Some(a));
        assert!(!agent.is_validated(stranger));
        assert_eq!(agent.poll_timeout(), Some(now + secs(30.0)));
        // When media stops too, consent runs out 30 s after the last packet.
        let last = now;
        agent.handle_timeout(last + secs(29.9));
        assert!(!agent.is_expired());
        agent.handle_timeout(last + secs(30.0));
        assert!(agent.is_expired());
        assert_eq!(events(&mut agent), [IceEvent::ConsentExpired]);
        // An expired session is not revived by media.
        agent.handle_authenticated_media(last + secs(31.0), a);
        assert!(!agent.is_validated(a));
    }

    #[test]
    fn unnominated_session_expires_when_checks_stop() {
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        feed(&mut agent, t0, addr("198.51.100.1:50000"), &check(false)).unwrap();
        agent.handle_timeout(agent.poll_timeout().unwrap());
        assert!(agent.is_expired());
        assert_eq!(events(&mut agent), [IceEvent::ConsentExpired]);
    }

    #[test]
    fn renomination_from_a_new_address_migrates() {
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        let wifi = addr("198.51.100.1:50000");
        let cellular = addr("[2001:db8::9]:40000");
        feed(&mut agent, t0, wifi, &check(true)).unwrap();
        feed(&mut agent, t0 + secs(1.0), cellular, &check(false)).unwrap();
        // A plain check from another address while the selected one is alive: no switch.
        assert_eq!(agent.selected_address(), Some(wifi));
        feed(&mut agent, t0 + secs(2.0), cellular, &check(true)).unwrap();
        assert_eq!(agent.selected_address(), Some(cellular));
        assert_eq!(
            events(&mut agent),
            [
                IceEvent::Nominated(wifi),
                IceEvent::SelectedAddressChanged {
                    from: wifi,
                    to: cellular
                }
            ]
        );
        assert!(agent.is_validated(wifi));
        // The old address keeps consent until it times out on its own.
        agent.handle_timeout(t0 + secs(30.0));
        assert!(!agent.is_validated(wifi));
        assert!(agent.is_validated(cellular));
        assert!(!agent.is_expired());
    }

    #[test]
    fn silent_selected_address_migrates_to_a_checking_one() {
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        let old = addr("198.51.100.1:50000");
        let new = addr("203.0.113.50:61000");
        feed(&mut agent, t0, old, &check(true)).unwrap();
        feed(&mut agent, t0 + secs(11.0), new, &check(false)).unwrap();
        assert_eq!(agent.selected_address(), Some(old));
        feed(&mut agent, t0 + secs(12.0), new, &check(false)).unwrap();
        assert_eq!(agent.selected_address(), Some(new));
        assert_eq!(
            events(&mut agent),
            [
                IceEvent::Nominated(old),
                IceEvent::SelectedAddressChanged { from: old, to: new }
            ]
        );
    }

    #[test]
    fn ice_controlled_peer_gets_role_conflict() {
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        let a = addr("198.51.100.1:50000");
        let mut buf = [0u8; 200];
        let len = BindingRequest {
            username: "srvr:clnt",
            priority: 1,
            ice_controlling: None,
            ice_controlled: Some(u64::MAX),
            use_candidate: false,
        }
        .write(
            &mut buf,
            &[1; 12],
            &IntegrityKey::new(SERVER_PWD.as_bytes()),
        )
        .unwrap();
        let msg = StunMessage::parse(&buf[..len]).unwrap();
        let mut out = [0u8; 200];
        let n = agent
            .handle_binding_request(t0, a, &msg, &mut out)
            .response_len()
            .unwrap();
        let response = StunMessage::parse(&out[..n]).unwrap();
        assert_eq!(response.class(), Class::ErrorResponse);
        assert_eq!(response.error_code().unwrap().code, 487);
        // Authenticated error: carries MESSAGE-INTEGRITY with our password.
        let key = IntegrityKey::new(SERVER_PWD.as_bytes());
        assert_eq!(response.verify_integrity(&key), Ok(()));
        assert!(!agent.is_validated(a));
        assert_eq!(agent.stats().role_conflicts, 1);
    }

    #[test]
    fn wrong_password_is_rejected_and_counted() {
        let mut agent = agent();
        let a = addr("198.51.100.1:50000");
        let request = check_with("srvr:clnt", CLIENT_PWD, true);
        let result = feed(&mut agent, crate::test_time::origin(), a, &request);
        assert_eq!(result, Ok(Some((Class::ErrorResponse, Some(401)))));
        assert_eq!(agent.stats().integrity_failures, 1);
        assert!(!agent.is_validated(a));
        assert_eq!(agent.selected_address(), None);
        assert_eq!(events(&mut agent), []);
    }

    #[test]
    fn unknown_ufrag_is_rejected_and_counted() {
        let mut agent = agent();
        let a = addr("198.51.100.1:50000");
        for username in ["othr:clnt", "srvr:othr", "srvr", "srvrclnt:", ":srvr"] {
            let result = feed(
                &mut agent,
                crate::test_time::origin(),
                a,
                &check_with(username, SERVER_PWD, true),
            );
            assert_eq!(
                result,
                Ok(Some((Class::ErrorResponse, Some(401)))),
                "{username}"
            );
        }
        assert_eq!(agent.stats().unknown_usernames, 5);
        assert!(!agent.is_validated(a));
    }

    #[test]
    fn bad_or_missing_fingerprint_is_dropped_silently() {
        let mut agent = agent();
        let a = addr("198.51.100.1:50000");
        let mut request = check(true);
        *request.last_mut().unwrap() ^= 0xff;
        assert_eq!(
            feed(&mut agent, crate::test_time::origin(), a, &request),
            Err(Error::FingerprintMismatch)
        );
        let mut buf = [0u8; 200];
        let mut w = StunWriter::new(&mut buf, METHOD_BINDING, Class::Request, &[2; 12]).unwrap();
        w.add_username("srvr:clnt").unwrap();
        w.add_message_integrity(&IntegrityKey::new(SERVER_PWD.as_bytes()))
            .unwrap();
        let len = w.finish();
        assert_eq!(
            feed(&mut agent, crate::test_time::origin(), a, &buf[..len]),
            Err(Error::MissingFingerprint)
        );
        assert_eq!(agent.stats().fingerprint_failures, 2);
        assert!(!agent.is_validated(a));
    }

    #[test]
    fn missing_credentials_get_400_only_without_amplification() {
        let mut agent = agent();
        let a = addr("198.51.100.1:50000");
        // No MESSAGE-INTEGRITY, but large enough that a 400 is not an amplification.
        let mut buf = [0u8; 200];
        let mut w = StunWriter::new(&mut buf, METHOD_BINDING, Class::Request, &[3; 12]).unwrap();
        w.add_username("srvr:clnt").unwrap();
        w.add_attribute(attr::SOFTWARE, &[b'x'; 40]).unwrap();
        let len = w.finish_with_fingerprint().unwrap();
        assert_eq!(
            feed(&mut agent, crate::test_time::origin(), a, &buf[..len]),
            Ok(Some((Class::ErrorResponse, Some(400))))
        );
        // A bare 28-byte request would get a 48-byte answer: withheld.
        let mut buf = [0u8; 200];
        let w = StunWriter::new(&mut buf, METHOD_BINDING, Class::Request, &[4; 12]).unwrap();
        let len = w.finish_with_fingerprint().unwrap();
        assert_eq!(
            feed(&mut agent, crate::test_time::origin(), a, &buf[..len]),
            Err(Error::ResponseWithheld(400))
        );
        assert_eq!(agent.stats().bad_requests, 2);
    }

    #[test]
    fn unauthorized_response_never_exceeds_the_request() {
        let mut agent = agent();
        let a = addr("198.51.100.1:50000");
        let request = check_with("srvr:clnt", CLIENT_PWD, false);
        let msg = StunMessage::parse(&request).unwrap();
        let mut out = [0u8; 1500];
        let len = agent
            .handle_binding_request(crate::test_time::origin(), a, &msg, &mut out)
            .response_len()
            .unwrap();
        assert!(len <= request.len());
    }

    #[test]
    fn indications_and_responses_need_no_answer() {
        let mut agent = agent();
        let mut buf = [0u8; 100];
        let w = StunWriter::new(&mut buf, METHOD_BINDING, Class::Indication, &[5; 12]).unwrap();
        let len = w.finish_with_fingerprint().unwrap();
        assert_eq!(
            feed(
                &mut agent,
                crate::test_time::origin(),
                addr("198.51.100.1:1"),
                &buf[..len]
            ),
            Ok(None)
        );
        let w = StunWriter::new(&mut buf, 0x003, Class::Request, &[5; 12]).unwrap();
        let len = w.finish_with_fingerprint().unwrap();
        assert_eq!(
            feed(
                &mut agent,
                crate::test_time::origin(),
                addr("198.51.100.1:1"),
                &buf[..len]
            ),
            Err(Error::UnsupportedMethod)
        );
    }

    #[test]
    fn validated_addresses_are_bounded_and_keep_the_selected_one() {
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        let selected = addr("198.51.100.1:50000");
        feed(&mut agent, t0, selected, &check(true)).unwrap();
        for port in 1..=20u16 {
            let source = SocketAddr::from(([203, 0, 113, 1], port));
            feed(
                &mut agent,
                t0 + secs(f64::from(port) * 0.1),
                source,
                &check(false),
            )
            .unwrap();
        }
        assert_eq!(agent.validated.len(), 4);
        assert!(agent.is_validated(selected));
        assert!(agent.is_validated(SocketAddr::from(([203, 0, 113, 1], 20))));
        assert!(!agent.is_validated(SocketAddr::from(([203, 0, 113, 1], 1))));
        assert_eq!(agent.selected_address(), Some(selected));
    }

    #[test]
    fn without_remote_credentials_any_peer_ufrag_is_accepted() {
        let mut agent = IceLiteAgent::new(
            IceCredentials::new(SERVER_UFRAG, SERVER_PWD).unwrap(),
            IceLiteConfig::default(),
        );
        let a = addr("198.51.100.1:50000");
        assert_eq!(
            feed(
                &mut agent,
                crate::test_time::origin(),
                a,
                &check_with("srvr:anyone", SERVER_PWD, true)
            ),
            SUCCESS
        );
        assert_eq!(agent.selected_address(), Some(a));
    }

    #[test]
    fn consent_timeout_is_configurable() {
        let mut agent = IceLiteAgent::new(
            IceCredentials::new(SERVER_UFRAG, SERVER_PWD).unwrap(),
            IceLiteConfig {
                consent_timeout: secs(5.0),
                ..IceLiteConfig::default()
            },
        );
        let t0 = crate::test_time::origin();
        feed(&mut agent, t0, addr("198.51.100.1:50000"), &check(true)).unwrap();
        assert_eq!(agent.poll_timeout(), Some(t0 + secs(5.0)));
        agent.handle_timeout(t0 + secs(5.0));
        assert!(agent.is_expired());
    }

    #[test]
    fn restart_takes_new_credentials_and_keeps_the_selected_address() {
        const NEW_UFRAG: &str = "Bnew";
        const NEW_PWD: &str = "newserverpasswordnewpw";
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        let a = addr("198.51.100.1:50000");
        let b = addr("198.51.100.2:50000");
        feed(&mut agent, t0, a, &check(true)).unwrap();
        feed(&mut agent, t0, b, &check(false)).unwrap();
        events(&mut agent);
        agent.restart(
            t0 + secs(10.0),
            IceCredentials::new(NEW_UFRAG, NEW_PWD).unwrap(),
            IceCredentials::new("cnew", "newclientpasswordnewcl").unwrap(),
        );
        assert_eq!(agent.local_credentials().ufrag(), NEW_UFRAG);
        assert_eq!(agent.remote_credentials().unwrap().ufrag(), "cnew");
        // Media keeps its address; the other validated one must check again.
        assert_eq!(agent.selected_address(), Some(a));
        assert!(agent.is_validated(a));
        assert!(!agent.is_validated(b));
        // The selected address's consent runs from the restart.
        assert_eq!(agent.poll_timeout(), Some(t0 + secs(40.0)));

        // Checks on the old credentials are refused, with either password.
        let mut out = [0u8; 1500];
        let t1 = t0 + secs(11.0);
        for (username, pwd) in [("srvr:clnt", SERVER_PWD), ("srvr:cnew", NEW_PWD)] {
            let old = check_with(username, pwd, true);
            let msg = StunMessage::parse(&old).unwrap();
            let len = agent
                .handle_binding_request(t1, b, &msg, &mut out)
                .response_len()
                .unwrap();
            let response = StunMessage::parse(&out[..len]).unwrap();
            assert_eq!(response.error_code().map(|e| e.code), Some(401));
        }
        // The new credentials' own peer ufrag is required too.
        let wrong_peer = check_with("Bnew:clnt", NEW_PWD, true);
        let msg = StunMessage::parse(&wrong_peer).unwrap();
        let len = agent
            .handle_binding_request(t1, b, &msg, &mut out)
            .response_len()
            .unwrap();
        let response = StunMessage::parse(&out[..len]).unwrap();
        assert_eq!(response.error_code().map(|e| e.code), Some(401));
        assert!(!agent.is_validated(b));

        // A nominating check on the new credentials from the new path moves media there.
        let new = check_with("Bnew:cnew", NEW_PWD, true);
        let msg = StunMessage::parse(&new).unwrap();
        let len = agent
            .handle_binding_request(t1, b, &msg, &mut out)
            .response_len()
            .unwrap();
        let response = StunMessage::parse(&out[..len]).unwrap();
        assert_eq!(response.class(), Class::SuccessResponse);
        let key = IntegrityKey::new(NEW_PWD.as_bytes());
        assert_eq!(response.verify_integrity(&key), Ok(()));
        assert_eq!(agent.selected_address(), Some(b));
        assert_eq!(
            events(&mut agent),
            [IceEvent::SelectedAddressChanged { from: a, to: b }]
        );
        // The old path, unchecked, times out; the session lives on the new one.
        agent.handle_timeout(t0 + secs(40.0));
        assert!(!agent.is_validated(a));
        assert!(!agent.is_expired());
        assert_eq!(agent.poll_timeout(), Some(t1 + secs(30.0)));
    }

    #[test]
    fn restart_without_new_checks_expires_at_the_consent_timeout() {
        let mut agent = agent();
        let t0 = crate::test_time::origin();
        let a = addr("198.51.100.1:50000");
        feed(&mut agent, t0, a, &check(true)).unwrap();
        agent.restart(
            t0 + secs(5.0),
            IceCredentials::new("Bnew", "newserverpasswordnewpw").unwrap(),
            IceCredentials::new("cnew", "newclientpasswordnewcl").unwrap(),
        );
        agent.handle_timeout(t0 + secs(34.9));
        assert!(!agent.is_expired());
        agent.handle_timeout(t0 + secs(35.0));
        assert!(agent.is_expired());
        // An expired agent is not revived by a restart.
        agent.restart(
            t0 + secs(36.0),
            IceCredentials::new("Cnew", "newserverpasswordnewpw").unwrap(),
            IceCredentials::new("dnew", "newclientpasswordnewcl").unwrap(),
        );
        assert!(agent.is_expired());
        assert_eq!(agent.poll_timeout(), None);
    }
}
