//! The load generator: WebRTC client sessions built from Sluice's own sans-IO crates in client
//! roles (ICE checks, DTLS, SRTP), synthetic audio and video with a send timestamp in every
//! payload, the scenarios, and the report.
//!
//! - [`target`]: the contract every server under test is driven through; [`whip`] implements
//!   it for Sluice and the bare forwarder, [`janus`] for Janus's videoroom.
//! - [`session`]: one client peer connection ([`pending`] while it is being signaled);
//!   [`sdp`] its descriptions; [`media`] what it sends and how receivers count; [`socket`]
//!   its socket (its own, or an address on a shared one) and the batched, timestamped
//!   receive.
//! - [`engine`]: the thread that owns the sessions and their sockets.
//! - [`scenario`]: rooms, live streams and audio rooms, measured over a window;
//!   [`report`]: the figures, as a table and as JSON.

pub mod engine;
pub mod http;
pub mod janus;
pub mod media;
pub mod pending;
pub mod report;
pub mod scenario;
pub use media_plane::client_sdp as sdp;
pub mod session;
pub mod socket;
pub mod sys;
pub mod target;
pub mod whip;
