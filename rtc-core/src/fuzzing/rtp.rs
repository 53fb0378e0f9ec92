//! Fuzz harness for the rtp module (to be filled by the rtp work).

/// Feeds arbitrary bytes through the rtp parsers.
pub fn run(_data: &[u8]) {}
