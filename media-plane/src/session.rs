//! One session of a worker: a peer connection (its [`PeerTransport`]) with what it is for in
//! the room, and the SDP state Sluice keeps for its renegotiations.

use packet_router::{MediaKind, SessionId, SubscribedStream, SubscriptionId, TrackId};
use rtc_core::Ssrc;
use rtc_core::media_api::{LayerCap, PublishedTrack, TrackView};

use crate::peer::PeerTransport;

/// What a session is for.
#[derive(Debug)]
pub(crate) enum SessionRole {
    /// It sends media into the room: the tracks it publishes.
    Publisher { tracks: Vec<PublishedTrack> },
    /// It plays one publisher's audio and video (WHEP: the player offered).
    Player { publisher: SessionId },
    /// It receives the tracks the room's signaling chooses (Sluice offers).
    Subscriber(SubscriberState),
}

impl SessionRole {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Self::Publisher { .. } => "publisher",
            Self::Player { .. } => "player",
            Self::Subscriber(_) => "subscriber",
        }
    }
}

/// A subscription waiting for its session's DTLS handshake, so that the first packet the
/// subscriber gets follows the keyframe requested when it attaches.
#[derive(Debug, Clone)]
pub(crate) struct PendingSubscription {
    pub(crate) track: TrackId,
    pub(crate) stream: SubscribedStream,
}

/// A subscriber connection's m-lines, in order. Mids never change and a slot is never
/// reused: a track that goes away leaves its m-line inactive.
#[derive(Debug, Default)]
pub(crate) struct SubscriberState {
    pub(crate) slots: Vec<Slot>,
    /// The last offer sent, which the answer is applied against.
    pub(crate) offer: Option<String>,
    /// `o=` session version of the next offer.
    pub(crate) version: u64,
    pub(crate) sdp_session_id: u64,
    pub(crate) cname: String,
    /// Sluice's new ICE credentials, offered for an ICE restart and taken up by the answer.
    pub(crate) pending_ice: Option<ice_lite::IceCredentials>,
}

/// One m-line of a subscriber connection.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) mid: String,
    pub(crate) kind: MediaKind,
    /// The track carried, or `None` once it is gone.
    pub(crate) track: Option<TrackId>,
    pub(crate) ssrc: Ssrc,
    pub(crate) rtx_ssrc: Ssrc,
    pub(crate) subscription: Option<SubscriptionId>,
}

/// A session of the worker core.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: SessionId,
    pub(crate) room: String,
    pub(crate) role: SessionRole,
    /// The ufrag the session is found by (it changes with an ICE restart).
    pub(crate) local_ufrag: String,
    pub(crate) transport: PeerTransport,
    /// `o=` session id and version of the descriptions Sluice writes for this session.
    pub(crate) sdp_session_id: u64,
    pub(crate) sdp_version: u64,
    /// Subscriptions to bind once DTLS completes.
    pub(crate) pending: Vec<PendingSubscription>,
    /// The tracks this session receives and their subscriptions, once bound.
    pub(crate) bound: Vec<(TrackId, SubscriptionId)>,
    /// The simulcast layer caps asked for, by track (applied when bound, and kept across
    /// renegotiations).
    pub(crate) layer_caps: Vec<(TrackId, LayerCap)>,
    /// How the receiver shows each track (tile size, visibility, pin), by track (applied
    /// when bound, and kept across renegotiations).
    pub(crate) track_views: Vec<(TrackId, TrackView)>,
    /// The SSRCs a publisher's rid layers were bound to, by (mid, rid), kept when their
    /// track goes (an m-line made inactive): a track re-created for the same m-line binds
    /// them again, since the browser no longer sends mid and rid on streams it saw
    /// acknowledged.
    pub(crate) learned_layers: Vec<LearnedLayer>,
}

/// A rid layer's SSRCs as the router learned them.
#[derive(Debug, Clone)]
pub(crate) struct LearnedLayer {
    pub(crate) mid: String,
    pub(crate) rid: String,
    pub(crate) ssrc: Ssrc,
    pub(crate) rtx_ssrc: Option<Ssrc>,
}
