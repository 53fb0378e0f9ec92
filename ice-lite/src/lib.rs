//! Sans-IO ICE-lite for Sluice: a zero-copy STUN codec ([`StunMessage`], [`StunWriter`]), the
//! RFC 7983 first-byte demux of the media port ([`Datagram`], [`classify`]) and the ICE-lite
//! agent of one session ([`IceLiteAgent`]) with credentials and host candidates.
//!
//! No IO, clock or randomness of its own: time comes in as `Instant`, randomness through an
//! injected `rand::RngCore`.
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

mod agent;
mod candidate;
mod credentials;
mod demux;
mod error;
pub mod framing;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod stun;
mod stun_writer;
#[cfg(test)]
mod test_time;

pub use agent::{BindingOutcome, IceEvent, IceLiteAgent, IceLiteConfig, IceStats};
pub use candidate::{Candidate, Transport, candidate_priority};
pub use credentials::{
    IceCredentials, MIN_PWD_LEN, MIN_UFRAG_LEN, is_ice_char, is_valid_pwd, is_valid_ufrag,
};
pub use demux::{Datagram, DatagramKind, classify};
pub use error::Error;
pub use stun::{
    Class, ErrorCode, HEADER_LEN, IntegrityKey, MAGIC_COOKIE, METHOD_BINDING, RawAttribute,
    StunMessage, TransactionId, attr,
};
pub use stun_writer::{
    BindingRequest, StunWriter, error_code, write_binding_error, write_binding_success,
};
