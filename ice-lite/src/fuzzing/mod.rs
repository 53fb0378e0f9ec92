//! Fuzz harnesses for the STUN codec and the demux; see `rtc_core::fuzzing` for the scheme.

/// Feeds arbitrary bytes through the STUN parser (placeholder).
pub fn stun(_data: &[u8]) {}

/// Feeds arbitrary bytes through the RFC 7983 demux (placeholder).
pub fn demux(_data: &[u8]) {}
