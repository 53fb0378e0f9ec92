//! The origin of virtual time for the crate's unit tests, and the one clock read they make.
//!
//! `std` can make an `Instant` only by reading the clock, so the tests take one, once per
//! process, and from there only add durations: every test runs in virtual time.

use std::sync::OnceLock;
use std::time::Instant;

/// The same instant for every caller in the process.
#[expect(
    clippy::disallowed_methods,
    reason = "the one clock read of the unit tests: std makes an Instant no other way"
)]
pub(crate) fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}
