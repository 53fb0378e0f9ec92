//! Fuzz harnesses, one per parser. The cargo-fuzz targets in `fuzz/` are one-line calls into
//! these functions, and a stable-toolchain test replays the seed corpus through them, so CI
//! guards every parser without nightly. Each harness must never panic on any input.

pub mod codec;
pub mod dtls;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod srtp;
