//! The contract between signaling and the media plane: signaling decides who publishes and
//! who receives what; the media plane (the server crate's `Sfu`) owns the WebRTC sessions.

use std::fmt;
use std::future::Future;

pub use rtc_core::media_api::{
    LayerCap, LocalIceCredentials, Played, Published, PublishedTrack, SubscriberOffer,
    TrackPriority, TrackView,
};
use rtc_core::sdp::SdpError;
use rtc_core::{SessionId, TrackId};
use tokio::sync::mpsc::UnboundedReceiver;

/// What the media plane tells signaling on its own initiative.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// Consent expired, DTLS failed, or the session never connected.
    SessionEnded { session: SessionId },
    /// An audio track's last 100 ms: `voiced` of the `packets` its publisher session sent
    /// were louder than the voiced level (RFC 6464 audio level).
    AudioActivity {
        track: TrackId,
        publisher: SessionId,
        packets: u16,
        voiced: u16,
    },
    /// A receiving session's downlink after a run of its layer allocation: its estimate,
    /// what its video takes and would take at the best layers allowed (bits per second), its
    /// transport-wide loss (per mille) and how many of its tracks are paused.
    DownlinkQuality {
        session: SessionId,
        estimate_bps: u64,
        allocated_bps: u64,
        wanted_bps: u64,
        loss_per_mille: u16,
        paused: u16,
    },
}

/// Why the media plane refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaError {
    /// The SDP does not parse or breaks an offer/answer rule (rtc-core's error, typed until
    /// the HTTP or room-protocol answer formats it).
    Sdp(SdpError),
    /// The SDP cannot be served for another reason; the text says why.
    BadSdp(String),
    /// The session does not exist (any more).
    UnknownSession,
    /// The media plane is shutting down.
    Stopped,
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sdp(error) => write!(f, "bad SDP: the description cannot be served: {error}"),
            Self::BadSdp(why) => write!(f, "bad SDP: {why}"),
            Self::UnknownSession => f.write_str("unknown media session"),
            Self::Stopped => f.write_str("the media plane is stopped"),
        }
    }
}

impl std::error::Error for MediaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Sdp(error) => Some(error),
            _ => None,
        }
    }
}

/// The media plane as signaling drives it. The server crate implements it for its `Sfu`.
pub trait MediaPlane: Send + Sync + 'static {
    /// A publisher's offer (first or renegotiated: `session` None for a new one).
    fn publish(
        &self,
        room: &str,
        session: Option<SessionId>,
        offer: &str,
    ) -> impl Future<Output = Result<Published, MediaError>> + Send;

    /// WHEP: a player's recvonly offer for `publisher`'s audio and video.
    fn play(
        &self,
        room: &str,
        publisher: SessionId,
        offer: &str,
    ) -> impl Future<Output = Result<Played, MediaError>> + Send;

    /// Caps the simulcast layer `session` receives of `track` (0 the lowest resolution,
    /// `None` the highest, the default) and its temporal layer. A media plane without
    /// layers ignores it.
    fn set_layer_cap(
        &self,
        session: SessionId,
        track: TrackId,
        cap: LayerCap,
    ) -> impl Future<Output = Result<(), MediaError>> + Send {
        let _ = (session, track, cap);
        async { Ok(()) }
    }

    /// How receiving `session` shows `track` (adaptive stream: tile size, visibility, pin).
    /// A media plane without layers ignores it.
    fn set_track_view(
        &self,
        session: SessionId,
        track: TrackId,
        view: TrackView,
    ) -> impl Future<Output = Result<(), MediaError>> + Send {
        let _ = (session, track, view);
        async { Ok(()) }
    }

    /// `track`'s priority in every receiver's share of its bandwidth (screen share, dominant
    /// speaker). A media plane without bandwidth allocation ignores it.
    fn set_track_priority(
        &self,
        track: TrackId,
        priority: TrackPriority,
    ) -> impl Future<Output = Result<(), MediaError>> + Send {
        let _ = (track, priority);
        async { Ok(()) }
    }

    /// The most publisher `session` may send, in bits per second (`None`: no limit of its
    /// own; the server's own limit, if any, still applies). A media plane that cannot tell
    /// publishers ignores it.
    fn set_publisher_max_bitrate(
        &self,
        session: SessionId,
        max_bitrate: Option<u64>,
    ) -> impl Future<Output = Result<(), MediaError>> + Send {
        let _ = (session, max_bitrate);
        async { Ok(()) }
    }

    /// A subscriber connection whose tracks the server offers.
    fn create_subscriber(
        &self,
        room: &str,
    ) -> impl Future<Output = Result<SessionId, MediaError>> + Send;

    /// The server's (re)offer carrying exactly `tracks` (stable mids; removed ones inactive).
    fn offer_tracks(
        &self,
        subscriber: SessionId,
        tracks: &[TrackId],
    ) -> impl Future<Output = Result<SubscriberOffer, MediaError>> + Send;

    /// [`MediaPlane::offer_tracks`] with new ICE credentials of Sluice's: an ICE restart of a
    /// connection Sluice offers. The answer ([`MediaPlane::answer_subscriber`]) brings the
    /// peer's new credentials and completes it; until then the current ICE session carries
    /// on. DTLS and SRTP stay. `BadSdp` when there is no ICE session to restart yet or the
    /// media plane does not support restarts.
    fn offer_tracks_with_ice_restart(
        &self,
        subscriber: SessionId,
        tracks: &[TrackId],
    ) -> impl Future<Output = Result<SubscriberOffer, MediaError>> + Send;

    /// The subscriber's answer to the last offer.
    fn answer_subscriber(
        &self,
        subscriber: SessionId,
        answer: &str,
    ) -> impl Future<Output = Result<(), MediaError>> + Send;

    /// ICE restart of an established session (RFC 8445 9): the peer's new `a=ice-ufrag` and
    /// `a=ice-pwd` in, Sluice's new credentials and candidates out. The DTLS association and
    /// SRTP keys stay, and media keeps flowing to the selected address until the peer checks
    /// on the new credentials. `UnknownSession` when there is no such session; `BadSdp` when
    /// the credentials are not valid ICE credentials or the session cannot restart (it has no
    /// ICE session yet, or the media plane does not support restarts).
    fn restart_ice(
        &self,
        session: SessionId,
        remote_ufrag: &str,
        remote_pwd: &str,
    ) -> impl Future<Output = Result<LocalIceCredentials, MediaError>> + Send;

    /// Ends a session and frees what it held.
    fn close(&self, session: SessionId) -> impl Future<Output = ()> + Send;

    /// Events from the media plane; called once by `serve`.
    fn events(&self) -> Option<UnboundedReceiver<MediaEvent>>;

    /// The media plane's counters and gauges, served at `GET /metrics` (see
    /// [`crate::MediaMetric`]). It may block briefly (called on a blocking thread, not the
    /// runtime).
    fn metrics(&self) -> Vec<crate::MediaMetric>;
}
