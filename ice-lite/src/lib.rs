//! Sans-IO ICE-lite for Sluice (placeholder: filled in by the ICE work).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod fuzzing;
