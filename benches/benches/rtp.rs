//! Criterion bench: rtp (placeholder).

fn main() {}
