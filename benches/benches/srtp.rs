//! Criterion bench: srtp (placeholder).

fn main() {}
