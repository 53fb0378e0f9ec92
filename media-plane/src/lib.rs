//! The sans-IO media plane of Sluice: what a media worker decides, apart from its sockets.
//!
//! - [`peer`]: the transport of one peer connection ([`PeerTransport`]): ICE (the server's
//!   ICE-lite agent, or the checking client of [`ice_client`]), DTLS-SRTP and the SRTP
//!   contexts, with str0m's contract: `handle_datagram`, `handle_timeout`, then drain
//!   `poll_output` until it returns a timeout. The server, the bare forwarder and the load
//!   generator share it.
//! - [`WorkerCore`]: one worker's sessions, their indices, the router and every lifecycle
//!   step, fed with datagrams, commands and time, drained with `poll_transmits`,
//!   `poll_event` and `poll_timeout` (the role of quinn-proto's `Endpoint`).
//!
//! - [`client_sdp`]: the descriptions a client peer writes and reads, for the load generator
//!   and the virtual-time tests.
//!
//! No IO, clock, thread or ambient randomness: time is an argument and randomness comes
//! from a seed, so the whole media plane runs in virtual time in this crate's tests. The
//! crate's `clippy.toml` makes that rule a lint.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod client_sdp;
mod core;
mod error;
pub mod ice_client;
mod negotiation;
pub mod peer;

mod session;
mod stats;
#[cfg(test)]
mod test_time;
mod timers;

pub use crate::core::{
    Command, CoreConfig, CoreEvent, DatagramOutcome, MAX_SUBSCRIBER_SLOTS,
    MAX_TRACKS_PER_PUBLISHER, Reply, Transmits, WorkerCore, local_ufrag,
};

pub use error::SfuError;
pub use ice_client::{IceClient, IceClientConfig};
pub use negotiation::ufrag_owner;
pub use peer::{EndReason, Output, PeerDrop, PeerEvent, PeerTransport, Received};
pub use stats::{DropReason, MediaStats};
