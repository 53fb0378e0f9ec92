//! The bare forwarder's counters: plain integers owned by the media thread, incremented on the
//! packet path without atomics or locks, and copied out for `GET /metrics` once a second and
//! at exit.

use std::fmt;

/// Why a datagram was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// SRTCP from any peer: the bare forwarder does no RTCP at all.
    Rtcp,
    /// Neither STUN, DTLS nor RTP/RTCP by its first byte (RFC 7983).
    UnknownProtocol,
    /// STUN that does not parse.
    MalformedStun,
    /// STUN whose username names no session.
    UnknownStunUsername,
    /// DTLS or SRTP from an address that passed no ICE check.
    UnvalidatedSource,
    /// SRTP from a session whose DTLS handshake has not completed.
    NoKeysYet,
    /// SRTP from a player: players receive, they do not publish.
    FromPlayer,
    /// The packet does not authenticate (or is a replay, or is malformed).
    Unprotect,
    /// Protecting a copy for one subscriber failed.
    Protect,
    /// The packet and its SRTP tag do not fit a send slot.
    TooLarge,
}

impl DropReason {
    const ALL: [DropReason; 10] = [
        DropReason::Rtcp,
        DropReason::UnknownProtocol,
        DropReason::MalformedStun,
        DropReason::UnknownStunUsername,
        DropReason::UnvalidatedSource,
        DropReason::NoKeysYet,
        DropReason::FromPlayer,
        DropReason::Unprotect,
        DropReason::Protect,
        DropReason::TooLarge,
    ];

    /// The label in reports and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Rtcp => "rtcp",
            DropReason::UnknownProtocol => "unknown_protocol",
            DropReason::MalformedStun => "malformed_stun",
            DropReason::UnknownStunUsername => "unknown_stun_username",
            DropReason::UnvalidatedSource => "unvalidated_source",
            DropReason::NoKeysYet => "no_keys_yet",
            DropReason::FromPlayer => "from_player",
            DropReason::Unprotect => "unprotect",
            DropReason::Protect => "protect",
            DropReason::TooLarge => "too_large",
        }
    }
}

/// What the media thread has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams read from the socket.
    pub datagrams_received: u64,
    /// SRTP packets from publishers that authenticated (each unprotected once).
    pub rtp_received: u64,
    /// Protected copies handed to the batched send (one per subscriber per packet).
    pub forwarded: u64,
    /// `sendmmsg` rounds: one after each receive batch, and one whenever the send queue fills.
    pub send_batches: u64,
    /// Datagrams the kernel refused to send.
    pub send_errors: u64,
    /// Receive calls that failed for another reason than an empty socket.
    pub socket_errors: u64,
    /// STUN binding responses sent.
    pub stun_responses: u64,
    /// DTLS handshakes completed.
    pub dtls_connected: u64,
    /// DTLS handshakes that failed (including a certificate that does not match its
    /// fingerprint).
    pub dtls_failed: u64,
    /// Sessions open now.
    pub sessions: u64,
    /// Scans of the session table for due timers (only when the earliest deadline passed).
    pub timer_scans: u64,
    dropped: [u64; DropReason::ALL.len()],
}

impl Counters {
    /// Counts one datagram dropped for `reason`.
    pub fn drop(&mut self, reason: DropReason) {
        if let Some(count) = self.dropped.get_mut(reason as usize) {
            *count += 1;
        }
    }

    /// Datagrams dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason as usize).copied().unwrap_or(0)
    }

    /// Datagrams dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    fn values(&self) -> [(&'static str, u64); 11] {
        [
            ("datagrams_received", self.datagrams_received),
            ("rtp_received", self.rtp_received),
            ("forwarded", self.forwarded),
            ("send_batches", self.send_batches),
            ("send_errors", self.send_errors),
            ("socket_errors", self.socket_errors),
            ("stun_responses", self.stun_responses),
            ("dtls_connected", self.dtls_connected),
            ("dtls_failed", self.dtls_failed),
            ("sessions", self.sessions),
            ("timer_scans", self.timer_scans),
        ]
    }

    /// The counters as `GET /metrics` serves them (`bare_forwarder_*`, drops by reason).
    pub fn metrics(&self) -> Vec<signaling::MediaMetric> {
        use signaling::{MediaMetric, MetricKind};
        let [
            datagrams_received,
            rtp_received,
            forwarded,
            send_batches,
            send_errors,
            socket_errors,
            stun_responses,
            dtls_connected,
            dtls_failed,
            sessions,
            timer_scans,
        ] = self.values().map(|(_, value)| value);
        let mut metrics = vec![MediaMetric::gauge(
            "bare_forwarder_sessions",
            "Sessions open now.",
            sessions,
        )];
        for (name, help, value) in [
            (
                "bare_forwarder_datagrams_received",
                "Datagrams received.",
                datagrams_received,
            ),
            (
                "bare_forwarder_rtp_received",
                "RTP packets received.",
                rtp_received,
            ),
            (
                "bare_forwarder_forwarded",
                "RTP copies forwarded.",
                forwarded,
            ),
            (
                "bare_forwarder_send_batches",
                "Batched sends.",
                send_batches,
            ),
            (
                "bare_forwarder_send_errors",
                "Sends the kernel refused.",
                send_errors,
            ),
            (
                "bare_forwarder_socket_errors",
                "Socket receive errors.",
                socket_errors,
            ),
            (
                "bare_forwarder_stun_responses",
                "STUN responses sent.",
                stun_responses,
            ),
            (
                "bare_forwarder_dtls_connected",
                "DTLS handshakes completed.",
                dtls_connected,
            ),
            (
                "bare_forwarder_dtls_failed",
                "DTLS handshakes failed.",
                dtls_failed,
            ),
            ("bare_forwarder_timer_scans", "Timer scans.", timer_scans),
        ] {
            metrics.push(MediaMetric::counter(name, help, value));
        }
        for reason in DropReason::ALL {
            metrics.push(MediaMetric {
                name: "bare_forwarder_dropped",
                help: "Datagrams not forwarded, by reason.",
                kind: MetricKind::Counter,
                label: Some(("reason", reason.as_str())),
                value: self.dropped(reason),
            });
        }
        metrics
    }

    /// The counters in the Prometheus text exposition format.
    pub fn to_prometheus(&self) -> String {
        let mut text = String::new();
        for (name, value) in self.values() {
            text.push_str(&format!("bare_forwarder_{name} {value}\n"));
        }
        for reason in DropReason::ALL {
            text.push_str(&format!(
                "bare_forwarder_dropped{{reason=\"{}\"}} {}\n",
                reason.as_str(),
                self.dropped(reason)
            ));
        }
        text
    }
}

/// One `name value` per line, drops by reason last (only those that happened).
impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in self.values() {
            writeln!(f, "{name} {value}")?;
        }
        writeln!(f, "dropped {}", self.dropped_total())?;
        for reason in DropReason::ALL {
            let count = self.dropped(reason);
            if count > 0 {
                writeln!(f, "dropped.{} {count}", reason.as_str())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_by_reason() {
        let mut counters = Counters::default();
        counters.drop(DropReason::Rtcp);
        counters.drop(DropReason::Rtcp);
        counters.drop(DropReason::TooLarge);
        assert_eq!(counters.dropped(DropReason::Rtcp), 2);
        assert_eq!(counters.dropped(DropReason::TooLarge), 1);
        assert_eq!(counters.dropped_total(), 3);
        let report = counters.to_string();
        assert!(report.contains("dropped.rtcp 2\n"), "{report}");
        assert!(!report.contains("dropped.protect"), "{report}");
        assert!(
            counters
                .to_prometheus()
                .contains("bare_forwarder_dropped{reason=\"too_large\"} 1\n")
        );
        let metrics = counters.metrics();
        assert!(metrics.iter().any(|m| m.name == "bare_forwarder_dropped"
            && m.label == Some(("reason", "rtcp"))
            && m.value == 2));
        assert_eq!(metrics[0].name, "bare_forwarder_sessions");
    }

    #[test]
    fn every_reason_has_its_own_slot() {
        for (index, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index);
        }
    }
}
