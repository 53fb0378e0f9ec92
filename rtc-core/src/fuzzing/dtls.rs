//! Fuzz harness for the dtls module (to be filled by the dtls work).

/// Feeds arbitrary bytes through the dtls parsers.
pub fn run(_data: &[u8]) {}
