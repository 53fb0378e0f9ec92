//! Counters of a worker's media plane: what was received, forwarded and dropped, and why.

use packet_router::RouterStats;
use rtc_core::srtp::SrtpError;

/// Why a datagram was dropped before reaching the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Not STUN, DTLS, RTP or RTCP by its first byte.
    UnknownProtocol,
    /// A STUN message that did not parse.
    MalformedStun,
    /// A STUN request whose username names no session.
    UnknownStunUsername,
    /// A STUN request for a session that its agent refused (wrong MESSAGE-INTEGRITY, ...).
    RejectedStun,
    /// DTLS, RTP or RTCP from an address that never passed an ICE check.
    UnvalidatedSource,
    /// Media before the session's DTLS handshake produced keys.
    NoKeysYet,
}

/// A worker's media counters (the server adds those of its TCP side).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Sessions open now.
    pub sessions: u64,
    /// Datagrams received on the media port.
    pub datagrams_received: u64,
    /// STUN responses sent.
    pub stun_responses_sent: u64,
    /// DTLS handshakes completed.
    pub dtls_connected: u64,
    /// DTLS peers refused because their certificate did not match the SDP fingerprint.
    pub dtls_fingerprint_mismatch: u64,
    /// DTLS handshakes that failed for another reason.
    pub dtls_failures: u64,
    /// Datagrams that were not STUN, DTLS, RTP or RTCP.
    pub dropped_unknown_protocol: u64,
    /// STUN messages that did not parse.
    pub dropped_malformed_stun: u64,
    /// STUN requests for no known session.
    pub dropped_unknown_stun_username: u64,
    /// STUN requests for a session that failed its checks (wrong MESSAGE-INTEGRITY, missing
    /// FINGERPRINT, ...): answered with at most a small error.
    pub dropped_rejected_stun: u64,
    /// DTLS, RTP and RTCP from addresses that never passed an ICE check.
    pub dropped_unvalidated_source: u64,
    /// Media before keys existed (on receive or on send).
    pub dropped_no_keys: u64,
    /// SRTP/SRTCP packets that failed authentication.
    pub srtp_auth_failures: u64,
    /// SRTP/SRTCP packets dropped as replays or too old for the replay window.
    pub srtp_replays: u64,
    /// Other SRTP/SRTCP errors (truncated, too many streams, ...).
    pub srtp_other_errors: u64,
    /// Socket receive errors (ICMP errors reported by the kernel).
    pub socket_errors: u64,
    /// Sends the kernel refused.
    pub send_errors: u64,
    /// Datagrams handed to the worker that owns their session.
    pub handed_over: u64,
    /// RTP packets accepted from publishers.
    pub rtp_received: u64,
    /// RTP copies forwarded to subscribers.
    pub forwarded_rtp: u64,
    /// RTP packets the router dropped (unknown SSRC or payload type, malformed).
    pub rtp_dropped: u64,
    /// NACK packets received from subscribers.
    pub nacks_received: u64,
    /// NACK packets sent to publishers.
    pub nacks_sent: u64,
    /// Retransmissions sent to subscribers.
    pub retransmissions_sent: u64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests_sent: u64,
    /// NACKed packets not resent because the subscriber's retransmission budget was spent.
    pub retransmissions_over_budget: u64,
    /// DTLS datagrams a handshake dropped: records no DTLS 1.2 handshake sends, or a full
    /// receive queue.
    pub dropped_dtls: u64,
    /// Transport-wide congestion-control feedback packets sent to publishers.
    pub transport_feedback_sent: u64,
    /// SSRCs bound to a simulcast layer from their first packet (mid and rid).
    pub simulcast_ssrcs_bound: u64,
    /// Packets of unknown SSRCs not looked up for a layer: their session spent its lookups.
    pub simulcast_bindings_refused: u64,
    /// REMB packets sent to publishers: their cap or Sluice's receive-side estimate.
    pub remb_sent: u64,
    /// Transport-wide feedback packets received from subscribers (their downlink estimate).
    pub transport_feedback_received: u64,
    /// Times the bandwidth allocator changed a subscription's simulcast layer cap.
    pub allocation_changes: u64,
    /// Probe clusters started towards subscribers, and their padding packets.
    pub probes_started: u64,
    pub probe_packets_sent: u64,
    /// Audio copies sent with redundancy (RED), and times a subscriber session's redundancy
    /// was turned on or off by its measured loss.
    pub red_packets_sent: u64,
    pub red_switches: u64,
}

impl MediaStats {
    pub fn dropped(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::UnknownProtocol => &mut self.dropped_unknown_protocol,
            DropReason::MalformedStun => &mut self.dropped_malformed_stun,
            DropReason::UnknownStunUsername => &mut self.dropped_unknown_stun_username,
            DropReason::RejectedStun => &mut self.dropped_rejected_stun,
            DropReason::UnvalidatedSource => &mut self.dropped_unvalidated_source,
            DropReason::NoKeysYet => &mut self.dropped_no_keys,
        };
        *counter += 1;
    }

    pub fn srtp_error(&mut self, error: SrtpError) {
        match error {
            SrtpError::AuthenticationFailed => self.srtp_auth_failures += 1,
            SrtpError::Replayed | SrtpError::TooOld => self.srtp_replays += 1,
            _ => self.srtp_other_errors += 1,
        }
    }

    /// Adds another worker's counters to these.
    pub fn add(&mut self, other: &MediaStats) {
        let MediaStats {
            sessions,
            datagrams_received,
            stun_responses_sent,
            dtls_connected,
            dtls_fingerprint_mismatch,
            dtls_failures,
            dropped_unknown_protocol,
            dropped_malformed_stun,
            dropped_unknown_stun_username,
            dropped_rejected_stun,
            dropped_unvalidated_source,
            dropped_no_keys,
            srtp_auth_failures,
            srtp_replays,
            srtp_other_errors,
            socket_errors,
            send_errors,
            handed_over,
            rtp_received,
            forwarded_rtp,
            rtp_dropped,
            nacks_received,
            nacks_sent,
            retransmissions_sent,
            keyframe_requests_sent,
            retransmissions_over_budget,
            dropped_dtls,
            transport_feedback_sent,
            simulcast_ssrcs_bound,
            simulcast_bindings_refused,
            remb_sent,
            transport_feedback_received,
            allocation_changes,
            probes_started,
            probe_packets_sent,
            red_packets_sent,
            red_switches,
        } = other;
        // Destructuring above makes a new counter a compile error until it is summed here.
        for (total, value) in [
            (&mut self.sessions, sessions),
            (&mut self.datagrams_received, datagrams_received),
            (&mut self.stun_responses_sent, stun_responses_sent),
            (&mut self.dtls_connected, dtls_connected),
            (
                &mut self.dtls_fingerprint_mismatch,
                dtls_fingerprint_mismatch,
            ),
            (&mut self.dtls_failures, dtls_failures),
            (&mut self.dropped_unknown_protocol, dropped_unknown_protocol),
            (&mut self.dropped_malformed_stun, dropped_malformed_stun),
            (
                &mut self.dropped_unknown_stun_username,
                dropped_unknown_stun_username,
            ),
            (&mut self.dropped_rejected_stun, dropped_rejected_stun),
            (
                &mut self.dropped_unvalidated_source,
                dropped_unvalidated_source,
            ),
            (&mut self.dropped_no_keys, dropped_no_keys),
            (&mut self.srtp_auth_failures, srtp_auth_failures),
            (&mut self.srtp_replays, srtp_replays),
            (&mut self.srtp_other_errors, srtp_other_errors),
            (&mut self.socket_errors, socket_errors),
            (&mut self.send_errors, send_errors),
            (&mut self.handed_over, handed_over),
            (&mut self.rtp_received, rtp_received),
            (&mut self.forwarded_rtp, forwarded_rtp),
            (&mut self.rtp_dropped, rtp_dropped),
            (&mut self.nacks_received, nacks_received),
            (&mut self.nacks_sent, nacks_sent),
            (&mut self.retransmissions_sent, retransmissions_sent),
            (&mut self.keyframe_requests_sent, keyframe_requests_sent),
            (
                &mut self.retransmissions_over_budget,
                retransmissions_over_budget,
            ),
            (&mut self.dropped_dtls, dropped_dtls),
            (&mut self.transport_feedback_sent, transport_feedback_sent),
            (&mut self.simulcast_ssrcs_bound, simulcast_ssrcs_bound),
            (
                &mut self.simulcast_bindings_refused,
                simulcast_bindings_refused,
            ),
            (&mut self.remb_sent, remb_sent),
            (
                &mut self.transport_feedback_received,
                transport_feedback_received,
            ),
            (&mut self.allocation_changes, allocation_changes),
            (&mut self.probes_started, probes_started),
            (&mut self.probe_packets_sent, probe_packets_sent),
            (&mut self.red_packets_sent, red_packets_sent),
            (&mut self.red_switches, red_switches),
        ] {
            *total += *value;
        }
    }

    /// Takes the router's counters (which it keeps itself) into these.
    pub fn absorb_router(&mut self, router: &RouterStats) {
        self.rtp_received = router.rtp_received;
        self.forwarded_rtp = router.rtp_forwarded;
        self.rtp_dropped = router.rtp_dropped;
        self.nacks_received = router.nacks_received;
        self.nacks_sent = router.nacks_sent;
        self.retransmissions_sent = router.retransmissions_sent;
        self.keyframe_requests_sent = router.keyframe_requests_sent;
        self.retransmissions_over_budget = router.retransmissions_over_budget;
        self.transport_feedback_sent = router.transport_feedback_sent;
        self.simulcast_ssrcs_bound = router.ssrcs_bound;
        self.simulcast_bindings_refused = router.bindings_refused;
        self.remb_sent = router.remb_sent;
        self.transport_feedback_received = router.transport_feedback_received;
        self.allocation_changes = router.allocation_changes;
        self.probes_started = router.probes_started;
        self.probe_packets_sent = router.probe_packets_sent;
        self.red_packets_sent = router.red_packets_sent;
        self.red_switches = router.red_switches;
    }
}
