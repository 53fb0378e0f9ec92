//! Command-line and environment configuration of the `sluice` binary. Every flag can also be
//! given as a `SLUICE_*` environment variable or as a key of the `--config` file (see
//! [`crate::config_file`]); the defaults run everything on one machine.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

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

    /// IP address announced in ICE candidates, for a server behind 1:1 NAT. Defaults to the
    /// media port's address, or to loopback when that address is unspecified.
    #[arg(long = "public-ip", env = "SLUICE_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,

    /// Number of media worker threads (defaults to the number of cores).
    #[arg(long = "workers", env = "SLUICE_WORKERS")]
    pub workers: Option<std::num::NonZeroUsize>,

    /// Send runs of equal-sized packets to one peer as one UDP GSO send ("on" or "off";
    /// defaults to the media plane's default).
    #[arg(long = "gso", env = "SLUICE_GSO", value_parser = parse_switch)]
    pub gso: Option<bool>,

    /// A TOML file with any of these options (keys are the long flag names, e.g.
    /// `udp = "0.0.0.0:3478"`) and a `[keys]` table of API keys; flags and environment
    /// variables override it.
    #[arg(long = "config", env = "SLUICE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print the configuration in force (flags, environment, file and defaults) as TOML,
    /// secrets redacted, and exit.
    #[arg(long = "print-config")]
    pub print_config: bool,

    /// How log lines are written to standard output: `text` or `json` (one object a line).
    /// Levels come from `SLUICE_LOG` (or `RUST_LOG`), e.g. `info` or `signaling=debug`.
    #[arg(
        long = "log-format",
        env = "SLUICE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: crate::logging::LogFormat,

    /// Serve `GET /metrics` on this address instead of on the HTTP address.
    #[arg(
        long = "metrics-http",
        env = "SLUICE_METRICS_HTTP",
        value_name = "ADDR"
    )]
    pub metrics_http: Option<SocketAddr>,

    /// What the configuration file added (API keys) and how each option got its value.
    #[arg(skip)]
    pub layers: crate::config_file::Layers,
}

fn parse_switch(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("{value:?} is neither on nor off")),
    }
}

impl Config {
    /// The address put into host candidates.
    pub fn candidate_ip(&self) -> IpAddr {
        match self.public_ip {
            Some(ip) => ip,
            None if self.udp.ip().is_unspecified() => match self.udp {
                SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            },
            None => self.udp.ip(),
        }
    }

    /// Whether the media workers use UDP GSO.
    pub fn gso(&self) -> bool {
        self.gso.unwrap_or(crate::DEFAULT_GSO)
    }

    /// The API keys and their secrets from the configuration file's `[keys]` table, in the
    /// file's order (empty without a file or table).
    pub fn api_keys_from_file(&self) -> &[(String, String)] {
        &self.layers.api_keys
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
        assert_eq!(config.candidate_ip(), IpAddr::from([127, 0, 0, 1]));
        assert!(config.worker_count() >= 1);
    }

    #[test]
    fn public_ip_overrides_the_candidate_address() {
        let config = Config::try_parse_from([
            "sluice",
            "--udp",
            "10.0.0.5:4000",
            "--public-ip",
            "203.0.113.7",
        ])
        .expect("flags parse");
        assert_eq!(config.candidate_ip(), IpAddr::from([203, 0, 113, 7]));
        assert_eq!(config.udp.port(), 4000);
    }

    #[test]
    fn bad_values_are_rejected_with_an_error() {
        assert!(Config::try_parse_from(["sluice", "--udp", "not-an-address"]).is_err());
        assert!(Config::try_parse_from(["sluice", "--workers", "0"]).is_err());
        assert!(Config::try_parse_from(["sluice", "--gso", "maybe"]).is_err());
    }
}
