//! The load generator: WebRTC client sessions built from Sluice's own sans-IO crates in client
//! roles (ICE checks, DTLS, SRTP), synthetic audio and video with a send timestamp in every
//! payload, the scenarios, and the report.

pub mod janus;
pub mod target;
