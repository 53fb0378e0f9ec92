//! `sluice token`: prints an access token for development, signed with the configured API
//! key and secret, in the same format LiveKit's tools make (so either can be used).

use std::time::Duration;

use clap::Parser;
use signaling::{AccessKeys, Claims, VideoGrant};

/// Prints an access token (JWT, HS256) for one room and identity.
#[derive(Debug, Clone, Parser)]
#[command(name = "sluice token", about)]
pub struct TokenArgs {
    /// The room the token is for.
    #[arg(long)]
    pub room: String,

    /// The participant's identity (`sub`).
    #[arg(long)]
    pub identity: String,

    /// The display name (`name`); the join's name is used when absent.
    #[arg(long)]
    pub name: Option<String>,

    /// Grant publishing. Without --publish or --subscribe both are granted; with either,
    /// only what is given.
    #[arg(long)]
    pub publish: bool,

    /// Grant subscribing (see --publish).
    #[arg(long)]
    pub subscribe: bool,

    /// Grant administering the room (admin API, /metrics).
    #[arg(long)]
    pub admin: bool,

    /// Grant listing every room (admin API, /metrics).
    #[arg(long)]
    pub list: bool,

    /// Hide the participant from the others.
    #[arg(long)]
    pub hidden: bool,

    /// The most the participant may publish, in bits per second (`maxPublishBitrate`).
    #[arg(
        long = "max-publish-bitrate",
        value_name = "BITS",
        value_parser = clap::value_parser!(u64).range(32_000..=100_000_000)
    )]
    pub max_publish_bitrate: Option<u64>,

    /// How long the token is valid: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,

    /// The API key that signs the token.
    #[arg(long = "api-key", env = "SLUICE_API_KEY")]
    pub api_key: String,

    /// The API key's secret.
    #[arg(long = "api-secret", env = "SLUICE_API_SECRET", hide_env_values = true)]
    pub api_secret: String,
}

/// `90`, `90s`, `15m`, `1h`, `7d`.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 1h or 7d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    match n.checked_mul(scale) {
        Some(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!("{text:?} is not a usable duration")),
    }
}

impl TokenArgs {
    /// The claims of the token, valid from `now` (seconds since the Unix epoch).
    pub fn claims(&self, now: u64) -> Claims {
        let only_given = self.publish || self.subscribe;
        Claims {
            iss: None,
            sub: Some(self.identity.clone()),
            name: self.name.clone(),
            exp: Some(now.saturating_add(self.ttl.as_secs())),
            nbf: Some(now),
            video: VideoGrant {
                room: Some(self.room.clone()),
                room_join: true,
                can_publish: only_given.then_some(self.publish),
                can_subscribe: only_given.then_some(self.subscribe),
                can_publish_data: None,
                room_admin: self.admin,
                room_list: self.list,
                hidden: self.hidden,
                max_publish_bitrate: self.max_publish_bitrate,
            },
        }
    }

    /// The signed token.
    pub fn token(&self, now: u64) -> anyhow::Result<String> {
        let keys = AccessKeys::single(&self.api_key, &self.api_secret)?;
        Ok(keys.sign(&self.api_key, &self.claims(now))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "1y", "0", "-1h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_token_verifies_with_the_same_key() {
        let args = TokenArgs::try_parse_from([
            "sluice token",
            "--room",
            "lobby",
            "--identity",
            "ada",
            "--subscribe",
            "--ttl",
            "10m",
            "--api-key",
            "dev",
            "--api-secret",
            "a development secret of 32 bytes!",
        ])
        .unwrap();
        let token = args.token(1_800_000_000).unwrap();
        let keys = AccessKeys::single("dev", "a development secret of 32 bytes!").unwrap();
        let claims = keys.verify(&token, 1_800_000_000).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("ada"));
        assert_eq!(claims.exp, Some(1_800_000_600));
        assert_eq!(claims.video.room.as_deref(), Some("lobby"));
        assert_eq!(claims.video.can_subscribe, Some(true));
        assert_eq!(claims.video.can_publish, Some(false));
        assert!(TokenArgs::try_parse_from(["sluice token", "--room", "r"]).is_err());
    }

    #[test]
    fn a_publish_limit_goes_into_the_grant_and_out_of_range_is_refused() {
        let parse = |bits: &str| {
            TokenArgs::try_parse_from([
                "sluice token",
                "--room",
                "lobby",
                "--identity",
                "cam",
                "--max-publish-bitrate",
                bits,
                "--api-key",
                "dev",
                "--api-secret",
                "a development secret of 32 bytes!",
            ])
        };
        let claims = parse("800000").unwrap().claims(1_800_000_000);
        assert_eq!(claims.video.max_publish_bitrate, Some(800_000));
        assert!(parse("1000").is_err());
        assert!(parse("fast").is_err());
    }
}
