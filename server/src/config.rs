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

    /// The most each publisher may send, in bits per second (e.g. 2500000), told to it with
    /// REMB so that its own estimator stays below it. Default: no cap.
    #[arg(
        long = "max-publish-bitrate",
        env = "SLUICE_MAX_PUBLISH_BITRATE",
        value_name = "BITS",
        value_parser = clap::value_parser!(u64).range(10_000..)
    )]
    pub max_publish_bitrate: Option<u64>,

    /// Redundant audio (RED, RFC 2198: each packet repeats the two before it) to subscribers
    /// that accept it: "auto" (to those whose link loses 3 % of packets or more, until it
    /// stays under 1 % for 10 s), "always" or "off".
    #[arg(
        long = "audio-red",
        env = "SLUICE_AUDIO_RED",
        default_value = "auto",
        value_parser = parse_audio_red
    )]
    pub audio_red: packet_router::AudioRedMode,

    /// PEM certificate chain (leaf first, as Let's Encrypt's fullchain.pem): the HTTP port
    /// then serves only HTTPS and WSS. Re-read on SIGHUP. Needs --tls-key.
    #[arg(
        long = "tls-cert",
        env = "SLUICE_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1). Re-read on SIGHUP.
    #[arg(long = "tls-key", env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a certificate generated at start for localhost and this machine's
    /// names and addresses. Browsers warn about it: for trials on a LAN only.
    #[arg(
        long = "tls-self-signed",
        env = "SLUICE_TLS_SELF_SIGNED",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub tls_self_signed: bool,

    /// HTTP connections (WebSockets included) open at once; more are answered 503.
    #[arg(
        long = "max-connections",
        env = "SLUICE_MAX_CONNECTIONS",
        default_value_t = 10_000,
        value_parser = parse_positive
    )]
    pub max_connections: usize,

    /// HTTP connections open at once from one client IP address; more are answered 503.
    #[arg(
        long = "max-connections-per-ip",
        env = "SLUICE_MAX_CONNECTIONS_PER_IP",
        default_value_t = 100,
        value_parser = parse_positive
    )]
    pub max_connections_per_ip: usize,
    /// API key whose access tokens (JWT, HS256, `iss` = this key) grant access. Without a
    /// key Sluice runs open: anyone who reaches the HTTP port may join, publish and play.
    #[arg(long = "api-key", env = "SLUICE_API_KEY", requires = "api_secret")]
    pub api_key: Option<String>,

    /// The secret of `--api-key` (at least 32 characters recommended).
    #[arg(
        long = "api-secret",
        env = "SLUICE_API_SECRET",
        requires = "api_key",
        hide_env_values = true
    )]
    pub api_secret: Option<String>,

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
    pub layers: Layers,

    /// ICE over TCP: also listen with TCP on the media port's address and number, and
    /// announce a passive TCP candidate per address, for peers whose networks block UDP
    /// ("on" or "off").
    #[arg(
        long = "ice-tcp",
        env = "SLUICE_ICE_TCP",
        default_value = "on",
        action = clap::ArgAction::Set,
        value_parser = parse_switch
    )]
    pub ice_tcp: bool,

    /// A STUN or TURN server WHIP and WHEP clients are told about in `Link` headers (RFC 9725
    /// 4.6): `URL` or `URL;username=NAME;credential=SECRET`, e.g. `stun:stun.example.org:3478`
    /// (repeat the flag for several). None by default.
    #[arg(long = "ice-server", env = "SLUICE_ICE_SERVER", value_name = "URL")]
    pub ice_server: Vec<signaling::IceServer>,
}

fn parse_switch(value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("{value:?} is neither on nor off")),
    }
}

fn parse_audio_red(value: &str) -> Result<packet_router::AudioRedMode, String> {
    use packet_router::AudioRedMode;
    match value {
        "auto" => Ok(AudioRedMode::OnLoss),
        "always" => Ok(AudioRedMode::Always),
        "off" => Ok(AudioRedMode::Off),
        _ => Err(format!("{value:?} is not auto, always or off")),
    }
}

fn parse_positive(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{value:?} is not a number: {e}")),
    }
}

impl Config {
    /// The API keys that grant access, or None to run open.
    /// The flag's key (`--api-key`/`--api-secret`) and the config file's `[keys]` table
    /// together; the flag wins over a file entry of the same key.
    pub fn access_keys(&self) -> Result<Option<signaling::AccessKeys>, signaling::auth::KeyError> {
        let from_file = self.api_keys_from_file();
        let flag = self.api_key.as_deref().zip(self.api_secret.as_deref());
        if flag.is_none() && from_file.is_empty() {
            return Ok(None);
        }
        let mut keys = signaling::AccessKeys::new();
        for (key, secret) in from_file {
            keys.insert(key, secret)?;
        }
        if let Some((key, secret)) = flag {
            keys.insert(key, secret)?;
        }
        Ok(Some(keys))
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
    fn an_api_key_needs_its_secret() {
        let open = Config::try_parse_from(["sluice"]).expect("defaults parse");
        assert_eq!(open.access_keys(), Ok(None));
        let keyed =
            Config::try_parse_from(["sluice", "--api-key", "k", "--api-secret", "s"]).unwrap();
        let keys = keyed.access_keys().unwrap().expect("a key");
        assert_eq!(keys.secret("k"), Some("s"));
        assert!(Config::try_parse_from(["sluice", "--api-key", "k"]).is_err());
        assert!(Config::try_parse_from(["sluice", "--api-secret", "s"]).is_err());
        let empty =
            Config::try_parse_from(["sluice", "--api-key", "", "--api-secret", "s"]).unwrap();
        assert!(empty.access_keys().is_err());
    }

    #[test]
    fn ice_servers_repeat_and_are_checked() {
        let none = Config::try_parse_from(["sluice"]).unwrap();
        assert!(none.ice_server.is_empty());
        let two = Config::try_parse_from([
            "sluice",
            "--ice-server",
            "stun:stun.example.org:3478",
            "--ice-server",
            "turn:turn.example.org:3478?transport=udp;username=u;credential=c",
        ])
        .unwrap();
        assert_eq!(two.ice_server.len(), 2);
        assert_eq!(two.ice_server[1].username.as_deref(), Some("u"));
        assert!(Config::try_parse_from(["sluice", "--ice-server", "http://x"]).is_err());
    }

    #[test]
    fn bad_values_are_rejected_with_an_error() {
        assert!(Config::try_parse_from(["sluice", "--udp", "not-an-address"]).is_err());
        assert!(Config::try_parse_from(["sluice", "--workers", "0"]).is_err());
        assert!(Config::try_parse_from(["sluice", "--gso", "maybe"]).is_err());
        assert!(Config::try_parse_from(["sluice", "--ice-tcp", "sometimes"]).is_err());
    }

    #[test]
    fn ice_tcp_is_on_unless_turned_off() {
        let config = Config::try_parse_from(["sluice"]).expect("defaults parse");
        assert!(config.ice_tcp);
        let off = Config::try_parse_from(["sluice", "--ice-tcp", "off"]).expect("off parses");
        assert!(!off.ice_tcp);
    }

    #[test]
    fn tls_needs_both_files_or_self_signed_alone() {
        let config = Config::try_parse_from(["sluice"]).expect("defaults parse");
        assert!(config.tls_cert.is_none() && !config.tls_self_signed);
        assert_eq!(config.max_connections, 10_000);
        assert_eq!(config.max_connections_per_ip, 100);
        let both = Config::try_parse_from(["sluice", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
            .expect("cert and key parse");
        assert_eq!(
            both.tls_cert.as_deref(),
            Some(std::path::Path::new("c.pem"))
        );
        assert!(Config::try_parse_from(["sluice", "--tls-cert", "c.pem"]).is_err());
        assert!(Config::try_parse_from(["sluice", "--tls-key", "k.pem"]).is_err());
        assert!(
            Config::try_parse_from([
                "sluice",
                "--tls-self-signed",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem"
            ])
            .is_err()
        );
        assert!(Config::try_parse_from(["sluice", "--max-connections", "many"]).is_err());
        assert!(Config::try_parse_from(["sluice", "--max-connections-per-ip", "0"]).is_err());
        let caps = Config::try_parse_from([
            "sluice",
            "--max-connections",
            "50",
            "--max-connections-per-ip",
            "5",
        ])
        .expect("caps parse");
        assert_eq!((caps.max_connections, caps.max_connections_per_ip), (50, 5));
    }
}

/// What the layers contributed beyond the parsed options.
#[derive(Clone, Default)]
pub struct Layers {
    /// API key and secret pairs of the file's `[keys]` table, in the file's order.
    pub api_keys: Vec<(String, String)>,
    /// The long names of the options whose value came from the file.
    pub from_file: Vec<String>,
    /// The final parse, for printing the configuration in force.
    pub(crate) matches: Option<clap::ArgMatches>,
}

/// Secrets stay out of `{:?}` of a [`Config`].
impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.api_keys.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("Layers")
            .field("api_keys", &keys)
            .field("from_file", &self.from_file)
            .finish_non_exhaustive()
    }
}
