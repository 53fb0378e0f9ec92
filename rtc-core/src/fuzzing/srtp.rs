//! Fuzz harness for SRTP and SRTCP unprotect (placeholder).

/// Feeds arbitrary bytes through SRTP unprotect.
pub fn run_srtp(_data: &[u8]) {}

/// Feeds arbitrary bytes through SRTCP unprotect.
pub fn run_srtcp(_data: &[u8]) {}
