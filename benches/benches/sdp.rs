//! Criterion bench: sdp (placeholder).

fn main() {}
