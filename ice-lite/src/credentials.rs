//! ICE credentials (RFC 8445 5.3, RFC 8839 5.4): the ufrag and password exchanged in SDP, drawn
//! from an injected RNG so that tests are deterministic.

use rand::RngCore;

use crate::Error;
use crate::stun::IntegrityKey;

/// RFC 8839: ice-char = ALPHA / DIGIT / "+" / "/".
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// RFC 8839: ice-ufrag is at least 4 characters.
pub const MIN_UFRAG_LEN: usize = 4;
/// RFC 8839: ice-pwd is at least 22 characters (128 bits).
pub const MIN_PWD_LEN: usize = 22;
/// RFC 8839: both are at most 256 characters.
const MAX_LEN: usize = 256;
/// Generated ufrags: 8 characters, 48 bits, enough to route by ufrag without collisions.
const GENERATED_UFRAG_LEN: usize = 8;
/// Generated passwords: 24 characters, 144 bits.
const GENERATED_PWD_LEN: usize = 24;

/// A username fragment and password (`a=ice-ufrag`, `a=ice-pwd`).
#[derive(Clone, PartialEq, Eq)]
pub struct IceCredentials {
    ufrag: String,
    pwd: String,
}

impl std::fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is a secret: logs get the ufrag only.
        f.debug_struct("IceCredentials")
            .field("ufrag", &self.ufrag)
            .finish_non_exhaustive()
    }
}

/// RFC 8839 ice-char: ALPHA / DIGIT / "+" / "/".
pub fn is_ice_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn is_ice_chars(s: &str, min: usize) -> bool {
    (min..=MAX_LEN).contains(&s.len()) && s.bytes().all(is_ice_char)
}

/// Whether `ufrag` is an RFC 8839 ice-ufrag: 4 to 256 ice-chars.
pub fn is_valid_ufrag(ufrag: &str) -> bool {
    is_ice_chars(ufrag, MIN_UFRAG_LEN)
}

/// Whether `pwd` is an RFC 8839 ice-pwd: 22 to 256 ice-chars.
pub fn is_valid_pwd(pwd: &str) -> bool {
    is_ice_chars(pwd, MIN_PWD_LEN)
}

fn random_ice_string(rng: &mut impl RngCore, len: usize) -> String {
    // 64 symbols: the low six bits of each random byte pick one with no bias.
    let mut bytes = [0u8; GENERATED_PWD_LEN];
    rng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .take(len)
        .map(|b| {
            char::from(
                ICE_CHARS
                    .get(usize::from(b & 0x3F))
                    .copied()
                    .unwrap_or(b'A'),
            )
        })
        .collect()
}

impl IceCredentials {
    /// Fresh random credentials: an 8-character ufrag and a 24-character password.
    pub fn generate(rng: &mut impl RngCore) -> Self {
        Self {
            ufrag: random_ice_string(rng, GENERATED_UFRAG_LEN),
            pwd: random_ice_string(rng, GENERATED_PWD_LEN),
        }
    }

    /// Credentials given by a peer (from its SDP), validated: ufrag >= 4 and pwd >= 22
    /// ice-chars, at most 256 each.
    pub fn new(ufrag: &str, pwd: &str) -> Result<Self, Error> {
        if !is_valid_ufrag(ufrag) || !is_valid_pwd(pwd) {
            return Err(Error::InvalidCredentials);
        }
        Ok(Self {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
        })
    }

    /// The username fragment.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// The password.
    pub fn pwd(&self) -> &str {
        &self.pwd
    }

    /// The MESSAGE-INTEGRITY key of checks sent to the owner of these credentials.
    pub fn integrity_key(&self) -> IntegrityKey {
        IntegrityKey::new(self.pwd.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn generated_credentials_are_valid_and_seed_dependent() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let a = IceCredentials::generate(&mut rng);
        let b = IceCredentials::generate(&mut rng);
        assert_eq!(a.ufrag().len(), 8);
        assert_eq!(a.pwd().len(), 24);
        assert_eq!(IceCredentials::new(a.ufrag(), a.pwd()), Ok(a.clone()));
        assert_ne!(a, b);
        let again = IceCredentials::generate(&mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(a, again);
    }

    #[test]
    fn peer_credentials_are_validated() {
        let pwd = "asd88fgpdd777uzjYhagZg";
        assert!(IceCredentials::new("abcd", pwd).is_ok());
        assert_eq!(
            IceCredentials::new("abc", pwd),
            Err(Error::InvalidCredentials)
        );
        assert_eq!(
            IceCredentials::new("abcd", &pwd[1..]),
            Err(Error::InvalidCredentials)
        );
        assert_eq!(
            IceCredentials::new("ab:d", pwd),
            Err(Error::InvalidCredentials)
        );
        assert_eq!(
            IceCredentials::new(&"a".repeat(257), pwd),
            Err(Error::InvalidCredentials)
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let c = IceCredentials::new("abcd", "asd88fgpdd777uzjYhagZg").unwrap();
        assert!(!format!("{c:?}").contains("asd88"));
    }
}
