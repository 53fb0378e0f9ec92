//! The signaling side of a load run: how the load generator asks a server under test to accept
//! a publisher and to forward that publisher to a subscriber. Every server is driven through
//! this one trait so that a scenario is the same for Sluice, the bare forwarder and Janus; only
//! the offer/answer exchange differs.
//!
//! The model is one publish session per publisher and one subscribe session per (subscriber,
//! publisher) pair, which is how WHIP/WHEP and Janus's videoroom plugin see the world.

/// One side of a subscription's offer/answer exchange, played by the load generator's client
/// session. A target calls either `offer` then `accept_answer` (WHEP: the client offers), or
/// `answer` (Janus: the server offers and the client answers).
pub trait SdpSide {
    /// A `recvonly` offer for the media this subscription should carry.
    fn offer(&mut self) -> anyhow::Result<String>;
    /// Takes the server's answer to the offer from [`SdpSide::offer`].
    fn accept_answer(&mut self, answer: &str) -> anyhow::Result<()>;
    /// Answers an offer made by the server (`recvonly` for every `sendonly` m-line).
    fn answer(&mut self, offer: &str) -> anyhow::Result<String>;
}

/// What the server handed back for a publisher.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The server's SDP answer to the publisher's offer.
    pub answer: String,
    /// The server's name for the publisher (a Sluice participant id, a Janus feed id), used to
    /// subscribe to it.
    pub publisher_id: String,
    /// What [`Target::hang_up`] needs to end the session.
    pub resource: Resource,
}

/// A server-side session that can be ended: a WHIP/WHEP resource URL, or a Janus
/// `session/handle` pair, as the target wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource(pub String);

/// A server under test, driven over its own signaling. Calls block; setup is not on the
/// measured path.
pub trait Target {
    /// A short label for reports: `sluice`, `bare`, `janus`, `janus-event-loops-1`.
    fn label(&self) -> &str;
    /// Prepares `room` for `publishers` publishers and `subscribers` subscribe sessions (Janus
    /// rooms are created with limits; WHIP servers create rooms on the first publish).
    fn prepare_room(
        &mut self,
        room: &str,
        publishers: usize,
        subscribers: usize,
    ) -> anyhow::Result<()>;
    /// Publishes a `sendonly` `offer` as `name` in `room`.
    fn publish(&mut self, room: &str, name: &str, offer: &str) -> anyhow::Result<Publication>;
    /// Subscribes a new session to `publication`, negotiating through `side` in whichever
    /// direction the target uses. Returns the resource to end it with.
    fn subscribe(
        &mut self,
        room: &str,
        publication: &Publication,
        side: &mut dyn SdpSide,
    ) -> anyhow::Result<Resource>;
    /// Ends a publication or a subscription (best effort; used between scenario steps).
    fn hang_up(&mut self, resource: &Resource) -> anyhow::Result<()>;
}
