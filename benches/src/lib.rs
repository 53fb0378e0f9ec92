//! Load tools for Sluice: the load generator (`sluice-load`), the bare forwarder that marks the
//! physical limit (`bare-forwarder`), and the signaling drivers that let one load generator
//! drive Sluice, the bare forwarder and Janus the same way. The criterion micro benches live in
//! `benches/`.

pub mod bare;
pub mod load;
