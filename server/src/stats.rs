//! Counters of the media plane: what was received, forwarded and dropped, and why.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use media_plane::MediaStats;

/// A worker's counters as it last published them, and whether a reader wants a fresh copy.
/// The worker publishes at a bounded rate (a clone and a lock per publication, not per loop
/// iteration) and at once when asked.
#[derive(Debug, Default)]
pub(crate) struct PublishedStats {
    snapshot: Mutex<SfuStats>,
    wanted: AtomicBool,
    /// The worker has exited and will not answer requests.
    stopped: AtomicBool,
}

impl PublishedStats {
    /// Asks for a fresh snapshot; false when the worker has stopped.
    pub(crate) fn request(&self) -> bool {
        if self.stopped.load(Ordering::Acquire) {
            return false;
        }
        self.wanted.store(true, Ordering::Release);
        true
    }

    /// A requested snapshot has not been published yet.
    pub(crate) fn pending(&self) -> bool {
        self.wanted.load(Ordering::Acquire) && !self.stopped.load(Ordering::Acquire)
    }

    /// Whether a reader waits for a snapshot (one atomic load: checked every loop iteration).
    pub(crate) fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    pub(crate) fn publish(&self, stats: SfuStats) {
        if let Ok(mut snapshot) = self.snapshot.lock() {
            *snapshot = stats;
        }
        // After the snapshot is in place, so a reader that sees the request answered reads it.
        self.wanted.store(false, Ordering::Release);
    }

    /// The worker is gone: readers stop waiting for it.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    pub(crate) fn snapshot(&self) -> SfuStats {
        self.snapshot
            .lock()
            .map(|snapshot| snapshot.clone())
            .unwrap_or_default()
    }
}

/// A snapshot of the media plane's counters: the workers' media counters and their TCP side.
/// Reads of a media counter go through to [`MediaStats`] (`stats.sessions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SfuStats {
    /// What the workers' media planes counted.
    pub media: MediaStats,
    /// The TCP side of the media port (ICE-TCP).
    pub tcp: crate::tcp::TcpStats,
}

impl std::ops::Deref for SfuStats {
    type Target = MediaStats;

    fn deref(&self) -> &MediaStats {
        &self.media
    }
}

impl std::ops::DerefMut for SfuStats {
    fn deref_mut(&mut self) -> &mut MediaStats {
        &mut self.media
    }
}

impl SfuStats {
    /// Adds another worker's counters to these.
    pub(crate) fn add(&mut self, other: &SfuStats) {
        self.media.add(&other.media);
        self.tcp.add(&other.tcp);
    }

    /// The counters as served at `GET /metrics` (counter names without their `_total`,
    /// which the encoder adds: `sluice_datagrams_received_total`).
    pub fn metrics(&self) -> Vec<signaling::MediaMetric> {
        let counters: [(&str, &str, u64); 36] = [
            (
                "sluice_datagrams_received",
                "Datagrams received on the media port.",
                self.datagrams_received,
            ),
            (
                "sluice_stun_responses_sent",
                "STUN responses sent.",
                self.stun_responses_sent,
            ),
            (
                "sluice_dtls_connected",
                "DTLS handshakes completed.",
                self.dtls_connected,
            ),
            (
                "sluice_dtls_fingerprint_mismatch",
                "DTLS peers refused for a certificate that does not match the SDP fingerprint.",
                self.dtls_fingerprint_mismatch,
            ),
            (
                "sluice_dtls_failures",
                "DTLS handshakes failed for another reason.",
                self.dtls_failures,
            ),
            (
                "sluice_dropped_unknown_protocol",
                "Datagrams of no known protocol.",
                self.dropped_unknown_protocol,
            ),
            (
                "sluice_dropped_malformed_stun",
                "STUN messages that did not parse.",
                self.dropped_malformed_stun,
            ),
            (
                "sluice_dropped_rejected_stun",
                "STUN requests a session's ICE agent refused (integrity, username, fingerprint).",
                self.dropped_rejected_stun,
            ),
            (
                "sluice_dropped_unknown_stun_username",
                "STUN requests for no known session.",
                self.dropped_unknown_stun_username,
            ),
            (
                "sluice_dropped_unvalidated_source",
                "DTLS, RTP and RTCP from addresses that never passed an ICE check.",
                self.dropped_unvalidated_source,
            ),
            (
                "sluice_dropped_no_keys",
                "Media before keys existed.",
                self.dropped_no_keys,
            ),
            (
                "sluice_srtp_auth_failures",
                "SRTP and SRTCP packets that failed authentication.",
                self.srtp_auth_failures,
            ),
            (
                "sluice_srtp_replays",
                "SRTP and SRTCP replays and packets too old for the window.",
                self.srtp_replays,
            ),
            (
                "sluice_srtp_other_errors",
                "Other SRTP and SRTCP errors.",
                self.srtp_other_errors,
            ),
            (
                "sluice_socket_errors",
                "Socket receive errors.",
                self.socket_errors,
            ),
            (
                "sluice_send_errors",
                "Sends the kernel refused.",
                self.send_errors,
            ),
            (
                "sluice_handed_over",
                "Datagrams handed to the worker owning their session.",
                self.handed_over,
            ),
            (
                "sluice_rtp_received",
                "RTP packets accepted from publishers.",
                self.rtp_received,
            ),
            (
                "sluice_rtp_forwarded",
                "RTP packets forwarded to subscribers.",
                self.forwarded_rtp,
            ),
            (
                "sluice_rtp_dropped",
                "RTP packets the router dropped.",
                self.rtp_dropped,
            ),
            (
                "sluice_nacks_received",
                "NACK packets received from subscribers.",
                self.nacks_received,
            ),
            (
                "sluice_nacks_sent",
                "NACK packets sent to publishers.",
                self.nacks_sent,
            ),
            (
                "sluice_retransmissions_sent",
                "Retransmissions sent to subscribers.",
                self.retransmissions_sent,
            ),
            (
                "sluice_keyframe_requests_sent",
                "Keyframe requests sent to publishers.",
                self.keyframe_requests_sent,
            ),
            (
                "sluice_retransmissions_over_budget",
                "NACKed packets not resent: the subscriber's retransmission budget was spent.",
                self.retransmissions_over_budget,
            ),
            (
                "sluice_dropped_dtls",
                "DTLS datagrams dropped: records no handshake sends, or a full handshake queue.",
                self.dropped_dtls,
            ),
            (
                "sluice_transport_feedback_sent",
                "Transport-wide congestion-control feedback packets sent to publishers.",
                self.transport_feedback_sent,
            ),
            (
                "sluice_simulcast_ssrcs_bound",
                "SSRCs bound to a simulcast layer from their first packet.",
                self.simulcast_ssrcs_bound,
            ),
            (
                "sluice_simulcast_bindings_refused",
                "Packets of unknown SSRCs not looked up for a simulcast layer (lookups spent).",
                self.simulcast_bindings_refused,
            ),
            (
                "sluice_remb_sent",
                "REMB packets sent to publishers: their cap or Sluice's receive-side estimate.",
                self.remb_sent,
            ),
            (
                "sluice_transport_feedback_received",
                "Transport-wide feedback packets received from subscribers.",
                self.transport_feedback_received,
            ),
            (
                "sluice_layer_allocation_changes",
                "Times the bandwidth allocator changed a subscription's simulcast layer cap.",
                self.allocation_changes,
            ),
            (
                "sluice_probes_started",
                "Probe clusters (RTX padding) started towards subscribers.",
                self.probes_started,
            ),
            (
                "sluice_probe_packets_sent",
                "Padding packets of probe clusters sent to subscribers.",
                self.probe_packets_sent,
            ),
            (
                "sluice_red_packets_sent",
                "Audio packets sent to subscribers with redundancy (RED, RFC 2198).",
                self.red_packets_sent,
            ),
            (
                "sluice_red_switches",
                "Times a subscriber's redundant audio was turned on or off by its measured loss.",
                self.red_switches,
            ),
        ];
        let mut metrics = Vec::with_capacity(counters.len() + 1);
        metrics.push(signaling::MediaMetric::gauge(
            "sluice_sessions",
            "Media sessions open now.",
            self.sessions,
        ));
        metrics.extend(
            counters
                .into_iter()
                .map(|(name, help, value)| signaling::MediaMetric::counter(name, help, value)),
        );
        metrics.extend(self.tcp.metrics());
        metrics
    }
}
