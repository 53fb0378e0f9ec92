//! Fuzz harness for the sdp module (to be filled by the sdp work).

/// Feeds arbitrary bytes through the sdp parsers.
pub fn run(_data: &[u8]) {}
