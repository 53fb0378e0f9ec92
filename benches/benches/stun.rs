//! Criterion bench: stun (placeholder).

fn main() {}
