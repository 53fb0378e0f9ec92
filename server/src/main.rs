//! The `sluice` binary: reads its configuration from flags and `SLUICE_*` variables and runs
//! the media plane on the configured UDP port.

use clap::Parser;
use server::config::Config;
use server::{MediaConfig, Sfu};

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let sfu = Sfu::start(MediaConfig {
        udp: config.udp,
        public_ip: config.public_ip,
        workers: config.worker_count(),
        setup_timeout: server::DEFAULT_SETUP_TIMEOUT,
    })?;
    println!(
        "sluice: media on udp {} (candidates announce {}), DTLS fingerprint {}",
        sfu.media_addr(),
        config.candidate_ip(),
        sfu.fingerprint()
    );
    println!(
        "sluice: signaling on http {} arrives with the signaling service; the media plane is running",
        config.http
    );
    loop {
        std::thread::park();
    }
}
