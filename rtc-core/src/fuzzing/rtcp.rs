//! Fuzz harness for the rtcp module (to be filled by the rtcp work).

/// Feeds arbitrary bytes through the rtcp parsers.
pub fn run(_data: &[u8]) {}
