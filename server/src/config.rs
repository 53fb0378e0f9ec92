//! Command-line and environment configuration of the `sluice` binary. Every flag can also be
//! given as a `SLUICE_*` environment variable; the defaults run everything on one machine.

use std::net::{IpAddr, SocketAddr};

use clap::Parser;

/// Sluice: a WebRTC Selective Forwarding Unit.
#[derive(Debug, Clone, Parser)]
#[command(name = "sluice", version, about)]
pub struct Config {
    /// Address of the HTTP service (web app, signaling, WHIP/WHEP).
    #[arg(long = "http", env = "SLUICE_HTTP", default_value = "0.0.0.0:8080")]
    pub http: SocketAddr,

    /// Address of the one UDP media port (ICE, DTLS and SRTP for every session).
    #[arg(long = "udp", env = "SLUICE_UDP", default_value = "0.0.0.0:3478")]
    pub udp: SocketAddr,

    /// IP addresses announced in ICE candidates, for a server behind 1:1 NAT or with several
    /// public addresses (repeat the flag, or separate with commas). Defaults to the media
    /// port's address, or to every usable interface address (loopback last) when that
    /// address is unspecified.
    #[arg(long = "public-ip", env = "SLUICE_PUBLIC_IP", value_delimiter = ',')]
    pub public_ip: Vec<IpAddr>,

    /// Number of media worker threads (defaults to the number of cores).
    #[arg(long = "workers", env = "SLUICE_WORKERS")]
    pub workers: Option<std::num::NonZeroUsize>,

    /// Send runs of equal-sized packets to one peer as one UDP GSO send ("on" or "off";
    /// defaults to the media plane's default).
    #[arg(long = "gso", env = "SLUICE_GSO", value_parser = parse_switch)]
    pub gso: Option<bool>,
}

fn parse_switch(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("{value:?} is neither on nor off")),
    }
}

impl Config {
    /// Whether the media workers use UDP GSO.
    pub fn gso(&self) -> bool {
        self.gso.unwrap_or(crate::DEFAULT_GSO)
    }

    /// The number of media workers to start.
    pub fn worker_count(&self) -> usize {
        self.workers
            .map(std::num::NonZeroUsize::get)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_on_one_machine() {
        let config = Config::try_parse_from(["sluice"]).expect("defaults parse");
        assert_eq!(config.http.port(), 8080);
        assert!(config.public_ip.is_empty());
        assert!(config.worker_count() >= 1);
    }

    #[test]
    fn public_ip_overrides_the_candidate_address() {
        let config = Config::try_parse_from([
            "sluice",
            "--udp",
            "10.0.0.5:4000",
            "--public-ip",
            "203.0.113.7,2001:db8::7",
            "--public-ip",
            "198.51.100.1",
        ])
        .expect("flags parse");
        assert_eq!(
            config.public_ip,
            [
                IpAddr::from([203, 0, 113, 7]),
                "2001:db8::7".parse::<IpAddr>().unwrap(),
                IpAddr::from([198, 51, 100, 1])
            ]
        );
        assert_eq!(config.udp.port(), 4000);
    }

    #[test]
    fn bad_values_are_rejected_with_an_error() {
        assert!(Config::try_parse_from(["sluice", "--udp", "not-an-address"]).is_err());
        assert!(Config::try_parse_from(["sluice", "--workers", "0"]).is_err());
        assert!(Config::try_parse_from(["sluice", "--gso", "maybe"]).is_err());
    }
}
