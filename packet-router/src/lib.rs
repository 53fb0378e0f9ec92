//! Sans-IO packet router: published tracks, subscriptions, and per-subscriber rewriting of
//! SSRCs, sequence numbers, timestamps, payload types and header extensions; the
//! retransmission cache, loss detection and NACKs, keyframe-request throttling, and the RTCP
//! reports that keep each subscriber's audio and video in sync.
//!
//! It is built on the wire views of `rtc-core` and does no IO: the media plane feeds it
//! plaintext packets with the time, sends what it leaves in a [`TransmitQueue`], and drains
//! what it tells through [`Router::poll_event`].
//!
//! [`Router`] (`router.rs`) is the facade and dispatch; a published track (`track.rs`) holds
//! its per-SSRC layers (`layer.rs`) and its subscriptions (`subscription.rs`), and the copy
//! writers (`copy_writer.rs`) write each subscriber's rewritten copy into the queue.
#![forbid(unsafe_code)]

pub mod allocator;
pub mod audio_red;
pub mod bandwidth;
pub mod config;
mod copy_writer;
pub mod event;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod id_hasher;
pub mod keyframe_throttle;
mod layer;
pub mod loss_tracker;
mod publisher_remb;
pub mod reception;
pub mod retransmit_budget;
pub mod retransmit_cache;
pub mod rewrite;
pub mod router;
pub mod simulcast;
mod subscription;
#[cfg(test)]
mod test_time;
mod track;
pub mod transmit;
pub mod transport_feedback;
mod transport_sequence;
#[cfg(feature = "workload")]
pub mod workload;

pub use audio_red::AudioRedMode;
pub use config::{Codec, CodecParams, ExtensionIds, MediaKind, PublishedStream, SubscribedStream};
pub use event::RouterEvent;
pub use id_hasher::{IdHashMap, IdHasher};
pub use keyframe_throttle::KeyframeRequestThrottle;
pub use loss_tracker::{LossTracker, LossTrackerConfig, PacketArrival};
pub use retransmit_budget::{RetransmitBudget, RetransmitBudgetConfig};
pub use retransmit_cache::RetransmitCache;
pub use rewrite::{RewriteDrop, RewrittenPacket, SourcePacket, SubscriberRewriter};
pub use router::{RouteDrop, Router, RouterConfig};
pub use simulcast::LayerSelection;
pub use transmit::{Transmit, TransmitKind, TransmitQueue};
pub use transport_feedback::TransportFeedback;

pub use rtc_core::{SessionId, SubscriptionId, TrackId};

/// Errors of the router's configuration calls (packets are never errors, only drops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouterError {
    /// A published stream was given no codec.
    NoCodec,
    /// The stream's kind does not match its codecs.
    KindMismatch,
    /// The session already uses this SSRC for another stream.
    SsrcInUse,
    /// No such track.
    UnknownTrack,
    /// No such subscription.
    UnknownSubscription,
    /// The subscriber accepts none of the track's codecs.
    NoCommonCodec,
}

impl std::fmt::Display for RouterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RouterError::NoCodec => "a published stream needs at least one codec",
            RouterError::KindMismatch => "the stream's kind does not match its codec",
            RouterError::SsrcInUse => "the SSRC is already used by another stream of the session",
            RouterError::UnknownTrack => "no such track",
            RouterError::UnknownSubscription => "no such subscription",
            RouterError::NoCommonCodec => "the subscriber accepts none of the track's codecs",
        })
    }
}

impl std::error::Error for RouterError {}

/// What the router did, as counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// RTP packets accepted from publishers.
    pub rtp_received: u64,
    /// Copies queued to subscribers.
    pub rtp_forwarded: u64,
    /// RTP packets dropped (malformed, unknown SSRC or payload type, ...).
    pub rtp_dropped: u64,
    /// RTX packets received from publishers.
    pub rtx_received: u64,
    /// RTCP compound packets that did not parse.
    pub rtcp_malformed: u64,
    /// NACK packets received from subscribers.
    pub nacks_received: u64,
    /// NACK packets sent to publishers.
    pub nacks_sent: u64,
    /// Retransmissions sent to subscribers.
    pub retransmissions_sent: u64,
    /// NACKed packets no longer in the cache.
    pub retransmissions_missed: u64,
    /// PLI and FIR received from subscribers.
    pub keyframe_requests_received: u64,
    /// PLIs sent to publishers.
    pub keyframe_requests_sent: u64,
    /// Sender reports sent to subscribers.
    pub sender_reports_sent: u64,
    /// NACKed packets not resent because the subscriber's retransmission budget was spent.
    pub retransmissions_over_budget: u64,
    /// Transport-wide congestion-control feedback packets sent to publishers.
    pub transport_feedback_sent: u64,
    /// Events dropped because [`Router::poll_event`] was not called often enough.
    pub events_dropped: u64,
    /// SSRCs bound to a rid layer from their first packet.
    pub ssrcs_bound: u64,
    /// Packets of an unknown SSRC not looked up for a rid layer, because their session
    /// spent its lookups ([`crate::router::MAX_FAILED_BINDINGS`]).
    pub bindings_refused: u64,
    /// REMB packets sent to publishers with a bitrate cap.
    pub remb_sent: u64,
    /// Transport-wide feedback packets received from subscribers.
    pub transport_feedback_received: u64,
    /// Times the bandwidth allocator changed a subscription's layer cap.
    pub allocation_changes: u64,
    /// Times the allocator paused a simulcast subscription (not even its lowest layer fit).
    pub subscriptions_paused: u64,
    /// Probe clusters started, and the padding packets they sent.
    pub probes_started: u64,
    pub probe_packets_sent: u64,
    /// Audio copies sent with redundancy (RED, RFC 2198), and times a subscriber session's
    /// redundancy was turned on or off by its measured loss.
    pub red_packets_sent: u64,
    pub red_switches: u64,
}
