//! The values the media plane hands to signaling for the offers, answers and ICE restarts it
//! serves: plain data (ids, SDP text, credentials), shared by the sans-IO media plane, the
//! server and the signaling service so that none of them depends on another for them.

use std::fmt;

use crate::ids::{SessionId, TrackId};
use crate::sdp::MediaKind;

/// One track accepted from a publisher's offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedTrack {
    pub id: TrackId,
    pub kind: MediaKind,
    /// The m-line's mid in the publisher's offer.
    pub mid: String,
}

/// The media plane's answer to a publisher's offer.
#[derive(Debug, Clone)]
pub struct Published {
    pub session: SessionId,
    pub sdp: String,
    /// Every track the publish session carries after this offer.
    pub tracks: Vec<PublishedTrack>,
}

/// The media plane's answer to a WHEP player's offer.
#[derive(Debug, Clone)]
pub struct Played {
    pub session: SessionId,
    pub sdp: String,
}

/// The server's offer for a subscriber connection.
#[derive(Debug, Clone)]
pub struct SubscriberOffer {
    pub sdp: String,
    /// mid -> track for each active m-line.
    pub mids: Vec<(String, TrackId)>,
}

/// The most of a track's video a receiver is sent: a simulcast layer (a rank in the track's
/// order by resolution, 0 the lowest; `None` the highest active) and a temporal layer (VP8
/// and VP9 TID, 0 the base frame rate; `None` all). The default caps nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerCap {
    pub spatial: Option<usize>,
    pub temporal: Option<u8>,
}

/// How a receiver shows one video track (adaptive stream): the size of its tile in device
/// pixels, whether it is visible at all, and whether the user pinned it. The layer sent is
/// never bigger than the smallest one that covers the tile; a hidden track gets nothing; a
/// pinned one goes before the dominant speaker when the bandwidth is shared out. The default
/// shows the track, any size, not pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackView {
    /// Width and height of the tile in device pixels (`None`: any size).
    pub size: Option<(u16, u16)>,
    pub visible: bool,
    pub pinned: bool,
}

impl Default for TrackView {
    fn default() -> Self {
        Self {
            size: None,
            visible: true,
            pinned: false,
        }
    }
}

/// A track's priority when a receiver's bandwidth is shared out among the video it gets:
/// higher goes first, every track getting its lowest layer before any gets more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TrackPriority(pub u8);

impl TrackPriority {
    /// Everyone else.
    pub const NORMAL: Self = Self(0);
    /// One of the last few dominant speakers.
    pub const RECENT_SPEAKER: Self = Self(1);
    /// The room's dominant speaker's camera.
    pub const DOMINANT_SPEAKER: Self = Self(2);
    /// Pinned by the receiver (per receiver: [`TrackView::pinned`]).
    pub const PINNED: Self = Self(3);
    /// A screen share.
    pub const SCREEN_SHARE: Self = Self(4);
}

/// Sluice's side of an ICE session after a restart: what the answer fragment of a WHIP or WHEP
/// `PATCH` (RFC 9725 4.4) carries.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalIceCredentials {
    /// The new `a=ice-ufrag`.
    pub ufrag: String,
    /// The new `a=ice-pwd`.
    pub pwd: String,
    /// The host candidates as `a=candidate:` values (without the `a=candidate:`), best first.
    pub candidates: Vec<String>,
}

impl fmt::Debug for LocalIceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password is a secret: logs get the ufrag only.
        f.debug_struct("LocalIceCredentials")
            .field("ufrag", &self.ufrag)
            .field("candidates", &self.candidates)
            .finish_non_exhaustive()
    }
}
