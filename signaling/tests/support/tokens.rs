//! Access tokens for the tests: made with the crate's own signer, and made by hand (RFC 7515
//! compact JWS with RustCrypto's HMAC-SHA256 and a base64url written here), so that a token
//! from an implementation other than jsonwebtoken is checked too.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use signaling::{AccessKeys, Claims, SignalingConfig, VideoGrant};

pub const KEY: &str = "sluice-test-key";
pub const SECRET: &str = "a test secret that is long enough to be safe";

pub fn keys() -> AccessKeys {
    AccessKeys::single(KEY, SECRET).unwrap()
}

/// A configuration that requires tokens signed with [`KEY`].
pub fn config() -> SignalingConfig {
    SignalingConfig {
        access: Some(keys()),
        ..SignalingConfig::default()
    }
}

pub fn now() -> u64 {
    signaling::auth::unix_now()
}

/// A grant to join `room` (with LiveKit's defaults: publish, subscribe and data allowed).
pub fn join(room: &str) -> VideoGrant {
    VideoGrant {
        room: Some(room.to_owned()),
        room_join: true,
        ..VideoGrant::default()
    }
}

/// Claims for `identity` valid for ten minutes.
pub fn claims(identity: &str, video: VideoGrant) -> Claims {
    Claims {
        sub: Some(identity.to_owned()),
        exp: Some(now() + 600),
        video,
        ..Claims::default()
    }
}

/// `claims` signed with [`KEY`].
pub fn sign(claims: &Claims) -> String {
    keys().sign(KEY, claims).unwrap()
}

/// A token for `identity` with `video`.
pub fn token(identity: &str, video: VideoGrant) -> String {
    sign(&claims(identity, video))
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// RFC 4648 section 5 base64url without padding.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// A compact JWS (RFC 7515 section 7.1) of `header` and `payload` (JSON text), signed with
/// HMAC-SHA256 under `secret`.
pub fn hand_made(header: &str, payload: &str, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        base64url(header.as_bytes()),
        base64url(payload.as_bytes())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing_input.as_bytes());
    let signature = mac.finalize().into_bytes();
    format!("{signing_input}.{}", base64url(&signature))
}

#[test]
fn base64url_matches_rfc_4648_vectors() {
    for (input, expected) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64url(input.as_bytes()), expected);
    }
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}
