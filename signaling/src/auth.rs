//! Access tokens compatible with LiveKit's: a JWT signed with HS256 whose `iss` is an API key,
//! `sub` the participant's identity, `name` its display name, and a `video` grant that says
//! what the bearer may do (join a room, publish, subscribe, send data, administer a room,
//! list rooms). Tools that make LiveKit tokens make tokens Sluice accepts.
//!
//! Verification is strict: only HS256 (an `alg: none` or any other algorithm is refused before
//! a key is even looked up), a known key, a valid signature, `exp` required and `nbf` honoured
//! with a small leeway for clock skew. Every refusal is an [`AuthError`], counted by reason
//! in [`RefusedTokens`], and answered 401 (the token is missing or not valid) or 403 (the
//! token is valid but does not grant the action); the room protocol uses the codes
//! `unauthorized` and `forbidden` for the same two cases.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Seconds by which `exp` and `nbf` may be off, for clocks that disagree a little.
pub const LEEWAY_SECS: u64 = 10;

/// The largest token accepted, in bytes: a real grant is a few hundred.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The API keys a server accepts, each with its secret. The secrets never appear in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccessKeys {
    secrets: BTreeMap<String, String>,
}

impl fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeys")
            .field("keys", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why a key could not be added to [`AccessKeys`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    EmptyKey,
    EmptySecret,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyKey => "an API key must not be empty",
            Self::EmptySecret => "an API secret must not be empty",
        })
    }
}

impl std::error::Error for KeyError {}

impl AccessKeys {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One key with its secret.
    pub fn single(key: &str, secret: &str) -> Result<Self, KeyError> {
        let mut keys = Self::new();
        keys.insert(key, secret)?;
        Ok(keys)
    }

    /// Adds (or replaces) a key.
    pub fn insert(&mut self, key: &str, secret: &str) -> Result<(), KeyError> {
        if key.is_empty() {
            return Err(KeyError::EmptyKey);
        }
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        self.secrets.insert(key.to_owned(), secret.to_owned());
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The key names (not their secrets).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.secrets.keys().map(String::as_str)
    }

    /// The secret of `key`, for signing tokens.
    pub fn secret(&self, key: &str) -> Option<&str> {
        self.secrets.get(key).map(String::as_str)
    }

    /// Verifies `token` at `now` (seconds since the Unix epoch) and returns its claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        // The algorithm is checked before anything else is trusted: `none` and every
        // algorithm but HS256 are refused whatever the rest says.
        let header: RawHeader = decode_segment(header)?;
        if header.alg != "HS256" {
            return Err(AuthError::Algorithm);
        }
        let unverified: RawIssuer = decode_segment(payload)?;
        let secret = unverified
            .iss
            .as_deref()
            .and_then(|key| self.secrets.get(key))
            .ok_or(AuthError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        // Time is checked below against the caller's `now`, with our leeway and our errors.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let decoded = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => AuthError::Algorithm,
            _ => AuthError::Malformed,
        })?;
        let claims = decoded.claims;
        let exp = claims.exp.ok_or(AuthError::Malformed)?;
        // RFC 7519 section 4.1.4: not accepted on or after `exp`.
        if now >= exp.saturating_add(LEEWAY_SECS) {
            return Err(AuthError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(LEEWAY_SECS) < nbf)
        {
            return Err(AuthError::NotYetValid);
        }
        if let Some(bitrate) = claims.video.max_publish_bitrate
            && crate::validate::publish_bitrate(bitrate).is_err()
        {
            return Err(AuthError::Malformed);
        }
        Ok(claims)
    }

    /// Signs `claims` with `key`'s secret (HS256, `iss` set to `key`).
    pub fn sign(&self, key: &str, claims: &Claims) -> Result<String, AuthError> {
        let secret = self.secrets.get(key).ok_or(AuthError::UnknownKey)?;
        let claims = Claims {
            iss: Some(key.to_owned()),
            ..claims.clone()
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .map_err(|_| AuthError::Malformed)
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
}

#[derive(Deserialize)]
struct RawIssuer {
    iss: Option<String>,
}

fn decode_segment<T: for<'de> Deserialize<'de>>(segment: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Seconds since the Unix epoch now (0 for a clock before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The claims of a token, as LiveKit names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key that signed the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The participant's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The participant's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry, seconds since the Unix epoch (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default)]
    pub video: VideoGrant,
}

/// The `video` grant. As in LiveKit, `canPublish`, `canSubscribe` and `canPublishData` that
/// are absent are granted along with `roomJoin`; set to false they are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    /// The room the grant is for (join and admin are limited to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_join: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_admin: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_list: bool,
    /// The participant is not shown to the others.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// The most the participant may publish, in bits per second (Sluice's own claim; a
    /// token without it has no limit of its own). Out of range, the token is malformed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_publish_bitrate: Option<u64>,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// What a request wants to do, checked against a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Join the room as a participant (room protocol).
    Join(&'a str),
    /// Publish media into the room (room protocol `publish`, WHIP).
    Publish(&'a str),
    /// Receive the room's media (room protocol subscribe connection, WHEP).
    Subscribe(&'a str),
    /// Send data to the room (chat).
    PublishData(&'a str),
    /// Administer the room (admin API: remove, mute, close).
    Admin(&'a str),
    /// Look at the room (admin API): `roomAdmin` for it, or `roomList`.
    Inspect(&'a str),
    /// List every room (admin API).
    List,
    /// Read `/metrics`: `roomAdmin` or `roomList`.
    Metrics,
}

/// Why a token was refused. The first group answers 401 / `unauthorized`, the second 403 /
/// `forbidden`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthError {
    /// No token came with the request.
    Missing,
    /// Not a JWT, or its claims are not of the expected types.
    Malformed,
    /// An algorithm other than HS256 (`none` included).
    Algorithm,
    /// The `iss` is not a configured API key.
    UnknownKey,
    /// The signature does not match the key's secret.
    BadSignature,
    Expired,
    NotYetValid,
    /// Valid, but for another room.
    WrongRoom,
    /// Valid, but the grant does not include the action.
    NotGranted,
}

impl AuthError {
    pub const ALL: [Self; 9] = [
        Self::Missing,
        Self::Malformed,
        Self::Algorithm,
        Self::UnknownKey,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::WrongRoom,
        Self::NotGranted,
    ];

    /// Whether the token is valid but does not allow the action (403), rather than missing or
    /// invalid (401).
    pub fn is_forbidden(self) -> bool {
        matches!(self, Self::WrongRoom | Self::NotGranted)
    }

    /// The HTTP status: 401 or 403.
    pub fn status(self) -> u16 {
        if self.is_forbidden() { 403 } else { 401 }
    }

    /// The room-protocol error code: `unauthorized` or `forbidden`.
    pub fn code(self) -> &'static str {
        if self.is_forbidden() {
            "forbidden"
        } else {
            "unauthorized"
        }
    }

    /// The label of the refusal counter.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongRoom => "wrong_room",
            Self::NotGranted => "not_granted",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "an access token is required",
            Self::Malformed => "the access token is not a valid JWT",
            Self::Algorithm => "the access token must be signed with HS256",
            Self::UnknownKey => "the access token's API key (iss) is unknown",
            Self::BadSignature => "the access token's signature is not valid",
            Self::Expired => "the access token has expired",
            Self::NotYetValid => "the access token is not valid yet",
            Self::WrongRoom => "the access token is for another room",
            Self::NotGranted => "the access token does not grant this action",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Missing => 0,
            Self::Malformed => 1,
            Self::Algorithm => 2,
            Self::UnknownKey => 3,
            Self::BadSignature => 4,
            Self::Expired => 5,
            Self::NotYetValid => 6,
            Self::WrongRoom => 7,
            Self::NotGranted => 8,
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for AuthError {}

/// What a request may do: everything when the server runs open, else what its verified
/// token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    open: bool,
    claims: Claims,
}

impl Grant {
    /// The grant of every request when no key is configured.
    pub fn open() -> Self {
        Self {
            open: true,
            claims: Claims::default(),
        }
    }

    /// The grant of a verified token.
    pub fn from_claims(claims: Claims) -> Self {
        Self {
            open: false,
            claims,
        }
    }

    /// The identity (`sub`), if the token named one.
    pub fn identity(&self) -> Option<&str> {
        self.claims.sub.as_deref().filter(|s| !s.is_empty())
    }

    /// The display name (`name`), if the token named one.
    pub fn name(&self) -> Option<&str> {
        self.claims.name.as_deref()
    }

    pub fn hidden(&self) -> bool {
        self.claims.video.hidden
    }

    /// The most the participant may publish (`maxPublishBitrate`), in bits per second.
    pub fn max_publish_bitrate(&self) -> Option<u64> {
        self.claims.video.max_publish_bitrate
    }

    /// Whether the grant allows `action`, and if not, why.
    pub fn check(&self, action: Action<'_>) -> Result<(), AuthError> {
        if self.open {
            return Ok(());
        }
        let video = &self.claims.video;
        let joined = video.room_join;
        let allowed = match action {
            Action::Join(room) => self.in_room(room, joined)?,
            Action::Publish(room) => {
                self.in_room(room, joined)? && video.can_publish.unwrap_or(joined)
            }
            Action::Subscribe(room) => {
                let can = video.can_subscribe.unwrap_or(joined);
                self.in_room(room, can)? && can
            }
            Action::PublishData(room) => {
                self.in_room(room, joined)? && video.can_publish_data.unwrap_or(joined)
            }
            Action::Admin(room) => self.in_room(room, video.room_admin)?,
            Action::Inspect(room) => video.room_list || self.in_room(room, video.room_admin)?,
            Action::List => video.room_list,
            Action::Metrics => video.room_admin || video.room_list,
        };
        if allowed {
            Ok(())
        } else {
            Err(AuthError::NotGranted)
        }
    }

    /// `relevant` when the grant is for `room`; a grant that would allow the action but for
    /// another room is `WrongRoom`.
    fn in_room(&self, room: &str, relevant: bool) -> Result<bool, AuthError> {
        if !relevant {
            return Ok(false);
        }
        if self.claims.video.room.as_deref() == Some(room) {
            Ok(true)
        } else {
            Err(AuthError::WrongRoom)
        }
    }
}

/// Refused tokens by reason, for `/metrics`.
#[derive(Debug, Default)]
pub struct RefusedTokens {
    counts: [AtomicU64; AuthError::ALL.len()],
}

impl RefusedTokens {
    pub fn count(&self, error: AuthError) {
        if let Some(counter) = self.counts.get(error.index()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, error: AuthError) -> u64 {
        self.counts
            .get(error.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The counters, one per reason, for `GET /metrics`.
    pub fn metrics(&self) -> impl Iterator<Item = crate::MediaMetric> + '_ {
        AuthError::ALL.into_iter().map(|error| crate::MediaMetric {
            label: Some(("reason", error.reason())),
            ..crate::MediaMetric::counter(
                "sluice_auth_refused",
                "Requests refused for their access token, by reason.",
                self.get(error),
            )
        })
    }
}

/// The bearer token of an `Authorization` header value (`Bearer <token>`, RFC 6750).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn keys() -> AccessKeys {
        AccessKeys::single("key", "a secret of at least thirty-two bytes").unwrap()
    }

    fn claims(video: VideoGrant) -> Claims {
        Claims {
            sub: Some("ada".into()),
            name: Some("Ada".into()),
            exp: Some(NOW + 600),
            video,
            ..Claims::default()
        }
    }

    fn join(room: &str) -> VideoGrant {
        VideoGrant {
            room: Some(room.into()),
            room_join: true,
            ..VideoGrant::default()
        }
    }

    #[test]
    fn a_signed_token_round_trips() {
        let keys = keys();
        let token = keys.sign("key", &claims(join("r"))).unwrap();
        let verified = keys.verify(&token, NOW).unwrap();
        assert_eq!(verified.iss.as_deref(), Some("key"));
        assert_eq!(verified.sub.as_deref(), Some("ada"));
        assert_eq!(verified.video, join("r"));
    }

    #[test]
    fn time_is_checked_with_a_small_leeway() {
        let keys = keys();
        let mut c = claims(join("r"));
        c.nbf = Some(NOW);
        let token = keys.sign("key", &c).unwrap();
        assert!(keys.verify(&token, NOW + 599 + LEEWAY_SECS).is_ok());
        assert_eq!(
            keys.verify(&token, NOW + 600 + LEEWAY_SECS),
            Err(AuthError::Expired)
        );
        assert!(keys.verify(&token, NOW - LEEWAY_SECS).is_ok());
        assert_eq!(
            keys.verify(&token, NOW - LEEWAY_SECS - 1),
            Err(AuthError::NotYetValid)
        );
        c.exp = None;
        let token = keys.sign("key", &c).unwrap();
        assert_eq!(keys.verify(&token, NOW), Err(AuthError::Malformed));
    }

    #[test]
    fn wrong_keys_algorithms_and_junk_are_refused() {
        let keys = keys();
        let other = AccessKeys::single("key", "another secret").unwrap();
        let forged = other.sign("key", &claims(join("r"))).unwrap();
        assert_eq!(keys.verify(&forged, NOW), Err(AuthError::BadSignature));
        let unknown = AccessKeys::single("nokey", "x").unwrap();
        let token = unknown.sign("nokey", &claims(join("r"))).unwrap();
        assert_eq!(keys.verify(&token, NOW), Err(AuthError::UnknownKey));
        let payload = URL_SAFE_NO_PAD.encode(r#"{"iss":"key","exp":1900000000}"#);
        let none = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert_eq!(keys.verify(&none, NOW), Err(AuthError::Algorithm));
        let hs512 = format!(
            "{}.{payload}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512"}"#)
        );
        assert_eq!(keys.verify(&hs512, NOW), Err(AuthError::Algorithm));
        for junk in ["a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
            assert!(
                matches!(
                    keys.verify(junk, NOW),
                    Err(AuthError::Malformed | AuthError::Algorithm)
                ),
                "{junk}"
            );
        }
        assert_eq!(keys.verify("", NOW), Err(AuthError::Missing));
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(keys.verify(&huge, NOW), Err(AuthError::Malformed));
    }

    #[test]
    fn claims_of_the_wrong_type_are_malformed() {
        let keys = keys();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD
            .encode(r#"{"iss":"key","exp":1900000000,"video":{"canPublish":"yes"}}"#);
        let token = format!("{header}.{payload}.AAAA");
        // The signature is checked first; either way the token is refused as invalid.
        assert!(matches!(
            keys.verify(&token, NOW),
            Err(AuthError::Malformed | AuthError::BadSignature)
        ));
    }

    #[test]
    fn grants_follow_livekit_defaults() {
        let g = Grant::from_claims(claims(join("r")));
        for action in [
            Action::Join("r"),
            Action::Publish("r"),
            Action::Subscribe("r"),
            Action::PublishData("r"),
        ] {
            assert_eq!(g.check(action), Ok(()), "{action:?}");
        }
        assert_eq!(g.check(Action::Join("s")), Err(AuthError::WrongRoom));
        assert_eq!(g.check(Action::Admin("r")), Err(AuthError::NotGranted));
        assert_eq!(g.check(Action::List), Err(AuthError::NotGranted));
        assert_eq!(g.check(Action::Metrics), Err(AuthError::NotGranted));

        let viewer = Grant::from_claims(claims(VideoGrant {
            can_publish: Some(false),
            can_publish_data: Some(false),
            ..join("r")
        }));
        assert_eq!(
            viewer.check(Action::Publish("r")),
            Err(AuthError::NotGranted)
        );
        assert_eq!(
            viewer.check(Action::PublishData("r")),
            Err(AuthError::NotGranted)
        );
        assert_eq!(viewer.check(Action::Subscribe("r")), Ok(()));

        let nothing = Grant::from_claims(claims(VideoGrant {
            room: Some("r".into()),
            ..VideoGrant::default()
        }));
        assert_eq!(nothing.check(Action::Join("r")), Err(AuthError::NotGranted));
        assert_eq!(
            nothing.check(Action::Subscribe("r")),
            Err(AuthError::NotGranted)
        );

        let admin = Grant::from_claims(claims(VideoGrant {
            room: Some("r".into()),
            room_admin: true,
            ..VideoGrant::default()
        }));
        assert_eq!(admin.check(Action::Admin("r")), Ok(()));
        assert_eq!(admin.check(Action::Inspect("r")), Ok(()));
        assert_eq!(admin.check(Action::Admin("s")), Err(AuthError::WrongRoom));
        assert_eq!(admin.check(Action::Metrics), Ok(()));
        assert_eq!(admin.check(Action::List), Err(AuthError::NotGranted));

        let lister = Grant::from_claims(claims(VideoGrant {
            room_list: true,
            ..VideoGrant::default()
        }));
        assert_eq!(lister.check(Action::List), Ok(()));
        assert_eq!(lister.check(Action::Inspect("any")), Ok(()));
        assert_eq!(
            lister.check(Action::Admin("any")),
            Err(AuthError::NotGranted)
        );

        assert_eq!(Grant::open().check(Action::Admin("x")), Ok(()));
    }

    #[test]
    fn errors_map_to_401_or_403() {
        for error in AuthError::ALL {
            let forbidden = matches!(error, AuthError::WrongRoom | AuthError::NotGranted);
            assert_eq!(error.status(), if forbidden { 403 } else { 401 });
            assert_eq!(
                error.code(),
                if forbidden {
                    "forbidden"
                } else {
                    "unauthorized"
                }
            );
        }
        let refused = RefusedTokens::default();
        refused.count(AuthError::Expired);
        refused.count(AuthError::Expired);
        let expired = refused
            .metrics()
            .find(|m| m.label == Some(("reason", "expired")))
            .unwrap();
        assert_eq!((expired.name, expired.value), ("sluice_auth_refused", 2));
    }

    #[test]
    fn bearer_headers_are_parsed() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let text = format!("{:?}", keys());
        assert!(
            text.contains("key") && !text.contains("thirty-two"),
            "{text}"
        );
    }
}
