//! The `sluice` binary.

mod config;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let config = config::Config::parse();
    println!(
        "sluice: media port {} (candidates on {}), {} workers, http {}",
        config.udp,
        config.candidate_ip(),
        config.worker_count(),
        config.http
    );
    Ok(())
}
