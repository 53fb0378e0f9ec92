//! The checking side of ICE, for a peer that connects to a server: it sends connectivity
//! checks to the server's candidates until one succeeds, then consent checks on the selected
//! pair (RFC 7675), and answers the checks a full-ICE server sends. What the load generator
//! and the virtual-time tests use as the client's transport; the server itself is ICE-lite.
//!
//! Sans-IO: time is an argument, checks are handed to a callback as bytes, and the
//! transaction ids, tie-breaker and consent jitter come from the seed it is given.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ice_lite::{
    BindingOutcome, BindingRequest, Class, Error, IceCredentials, IntegrityKey, StunMessage,
    TransactionId, write_binding_success,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Time between connectivity checks until one succeeds.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Time between consent checks once connected (RFC 7675 suggests about 5 s; Sluice ends a
/// session after 30 s without one), plus up to a second of jitter.
pub const CONSENT_INTERVAL: Duration = Duration::from_secs(4);

/// What a client needs to check a server.
#[derive(Debug, Clone)]
pub struct IceClientConfig {
    /// The client's own credentials (what the server's checks, if any, must carry).
    pub local: IceCredentials,
    /// The server's credentials, from its description.
    pub remote: IceCredentials,
    /// The server's candidates, checked in this order.
    pub candidates: Vec<SocketAddr>,
    /// Whether the client is the controlling agent (it offered, or the server is lite): it
    /// then nominates with USE-CANDIDATE.
    pub controlling: bool,
    /// Seeds the transaction ids, the tie-breaker and the consent jitter.
    pub seed: u64,
}

/// The checking client of one peer connection.
#[derive(Debug)]
pub struct IceClient {
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
    rng: ChaCha8Rng,
}

impl IceClient {
    /// A client that sends its first checks at `now`.
    pub fn new(now: Instant, config: IceClientConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        IceClient {
            local_key: config.local.integrity_key(),
            remote_key: config.remote.integrity_key(),
            username: format!("{}:{}", config.remote.ufrag(), config.local.ufrag()),
            local_ufrag: config.local.ufrag().to_owned(),
            controlling: config.controlling,
            tie_breaker: rng.random(),
            candidates: config.candidates,
            selected: None,
            next_check_at: now,
            transaction_prefix: rng.random(),
            transaction_counter: 0,
            rng,
        }
    }

    /// The candidate whose check succeeded (or that a controlling server nominated).
    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected
    }

    /// When the next checks are due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_check_at
    }

    /// Sends the due checks through `send`: to every candidate until one succeeded, then a
    /// consent check to the selected one.
    pub fn handle_timeout(&mut self, now: Instant, mut send: impl FnMut(SocketAddr, &[u8])) {
        if now < self.next_check_at {
            return;
        }
        self.next_check_at = now
            + match self.selected {
                Some(_) => CONSENT_INTERVAL + Duration::from_millis(self.rng.random_range(0..1000)),
                None => CHECK_INTERVAL,
            };
        let id = self.transaction_id();
        let request = BindingRequest {
            username: &self.username,
            priority: ice_lite::candidate_priority(110, 65535, 1),
            ice_controlling: self.controlling.then_some(self.tie_breaker),
            ice_controlled: (!self.controlling).then_some(self.tie_breaker),
            use_candidate: self.controlling,
        };
        let mut out = [0u8; 1024];
        let Ok(len) = request.write(&mut out, &id, &self.remote_key) else {
            return;
        };
        let Some(bytes) = out.get(..len) else {
            return;
        };
        match self.selected {
            Some(selected) => send(selected, bytes),
            None => {
                for &candidate in &self.candidates {
                    send(candidate, bytes);
                }
            }
        }
    }

    /// Handles a STUN message: a success response to one of our checks selects its source;
    /// a check from a full-ICE server is answered into `out` (and, with USE-CANDIDATE while
    /// we are controlled, selects). Returns what was done and the address selected, if one
    /// was just selected.
    pub fn handle_stun(
        &mut self,
        now: Instant,
        source: SocketAddr,
        message: &StunMessage<'_>,
        out: &mut [u8],
    ) -> (BindingOutcome, Option<SocketAddr>) {
        let refused = |error| BindingOutcome::Refused {
            error,
            response: None,
        };
        if message.is_binding_request() {
            let ours = message
                .username()
                .and_then(|u| u.split_once(':'))
                .is_some_and(|(to, _)| to == self.local_ufrag);
            if !ours {
                return (refused(Error::UnknownUsername), None);
            }
            if message.verify_integrity(&self.local_key).is_err() {
                return (refused(Error::IntegrityMismatch), None);
            }
            let outcome = match write_binding_success(
                out,
                &message.transaction_id(),
                source,
                &self.local_key,
            ) {
                Ok(len) => BindingOutcome::Answered { len },
                Err(e) => refused(e),
            };
            // A controlling full-ICE server nominates with USE-CANDIDATE.
            let selected = (!self.controlling && message.use_candidate())
                .then(|| self.select(now, source))
                .flatten();
            return (outcome, selected);
        }
        if message.class() == Class::SuccessResponse
            && self.is_ours(&message.transaction_id())
            && message.verify_integrity(&self.remote_key).is_ok()
        {
            return (BindingOutcome::Ignored, self.select(now, source));
        }
        (BindingOutcome::Ignored, None)
    }

    /// Selects `remote` if nothing is selected yet; returns it when it was just selected.
    fn select(&mut self, now: Instant, remote: SocketAddr) -> Option<SocketAddr> {
        if self.selected.is_some() {
            return None;
        }
        self.selected = Some(remote);
        self.next_check_at = now + CONSENT_INTERVAL;
        Some(remote)
    }

    fn transaction_id(&mut self) -> TransactionId {
        self.transaction_counter = self.transaction_counter.wrapping_add(1);
        let mut id = [0u8; 12];
        let (prefix, counter) = id.split_at_mut(8);
        prefix.copy_from_slice(&self.transaction_prefix);
        counter.copy_from_slice(&self.transaction_counter.to_be_bytes());
        id
    }

    fn is_ours(&self, id: &TransactionId) -> bool {
        id.get(..8) == Some(&self.transaction_prefix[..])
    }
}
