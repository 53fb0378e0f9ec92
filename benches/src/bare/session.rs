//! One peer connection of the bare forwarder: its transport (the media plane's
//! [`PeerTransport`], DTLS always the server: publishers and WHEP players both offer), and
//! what it is for. Once DTLS completes, a publisher keeps its inbound SRTP context and a
//! player's outbound context moves into its publisher's subscriber list, next to the address
//! it sends to, so that the forwarding loop walks one contiguous array per packet.

use std::net::SocketAddr;

use media_plane::PeerTransport;
use packet_router::SessionId;
use rtc_core::Pt;
use rtc_core::sdp::{Codec, MediaKind};
use rtc_core::srtp::SrtpContext;

/// A stream a publisher announced in its offer; a player's answer declares the same SSRCs,
/// since packets keep the publisher's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) kind: MediaKind,
    pub(crate) ssrc: rtc_core::Ssrc,
    pub(crate) rtx_ssrc: Option<rtc_core::Ssrc>,
    /// The codec and payload type the publisher sends; a player must use the same numbers
    /// because nothing is rewritten.
    pub(crate) codec: Option<(Codec, Pt)>,
}

/// Where one copy of each of a publisher's packets goes.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) player: SessionId,
    pub(crate) remote: SocketAddr,
    pub(crate) outbound: SrtpContext,
}

#[derive(Debug)]
pub(crate) struct Publisher {
    pub(crate) sources: Vec<Source>,
    /// Unprotects what the publisher sends; set when DTLS completes.
    pub(crate) inbound: Option<SrtpContext>,
    /// Connected players of this publisher, in the order they connected.
    pub(crate) subscribers: Vec<Subscriber>,
}

#[derive(Debug)]
pub(crate) enum SessionRole {
    /// Boxed: its SRTP context is kilobytes, and most sessions are players.
    Publisher(Box<Publisher>),
    /// A WHEP player of the publisher in that slot of the session table.
    Player { publisher: usize },
}

/// A session of the bare forwarder: a peer connection's transport (ICE-lite, DTLS, and the
/// SRTP contexts until they move to the forwarding tables) and what it is for.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: SessionId,
    pub(crate) room: String,
    pub(crate) role: SessionRole,
    pub(crate) local_ufrag: String,
    pub(crate) transport: PeerTransport,
}
