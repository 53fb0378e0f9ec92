//! Sans-IO packet router: rooms, publishers, tracks and subscriptions, with per-subscriber
//! rewriting of SSRCs, sequence numbers and timestamps. It is built on the views in
//! `rtc-core`; the media plane wires it to sockets.
#![forbid(unsafe_code)]

pub mod rewrite;

pub use rewrite::{RewriteDrop, RewrittenPacket, SourcePacket, SubscriberRewriter};
pub mod keyframe_throttle;
pub mod loss_tracker;
pub mod retransmit_cache;

pub use keyframe_throttle::KeyframeRequestThrottle;
pub use loss_tracker::{LossTracker, LossTrackerConfig, PacketArrival};
pub use retransmit_cache::RetransmitCache;
