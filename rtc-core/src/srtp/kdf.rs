//! SRTP key derivation (RFC 3711 section 4.3 with a key derivation rate of zero, as DTLS-SRTP
//! mandates; RFC 7714 section 11 reuses it for the AEAD profiles with a 12-byte salt).
//!
//! The pseudo-random function is AES in counter mode keyed with the master key, starting at
//! `(master_salt XOR label << 48) * 2^16`, which is the same AES-CM keystream the
//! AES_CM_128_HMAC_SHA1_80 profile encrypts with. A 32-byte master key (AEAD_AES_256_GCM)
//! keys AES-256 instead, the AES_256_CM_PRF of RFC 6188 section 7.

use aws_lc_rs::cipher::{AES_128, AES_256, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;

use super::SrtpError;

/// Which session secret to derive (RFC 3711 section 4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Label {
    RtpEncryption = 0x00,
    RtpAuthentication = 0x01,
    RtpSalt = 0x02,
    RtcpEncryption = 0x03,
    RtcpAuthentication = 0x04,
    RtcpSalt = 0x05,
}

/// The AES-CM pseudo-random function of one master key, set up once for all six labels.
pub(crate) struct KeyDerivation {
    prf: EncryptingKey,
    /// The master salt right-padded with zeros to 14 bytes (a 12-byte GCM salt fills the
    /// first 12).
    master_salt: [u8; 14],
}

impl KeyDerivation {
    /// `master_key` is 16 bytes (AES-128 PRF) or 32 bytes (AES-256 PRF); any other length is
    /// rejected.
    pub(crate) fn new(master_key: &[u8], master_salt: [u8; 14]) -> Result<Self, SrtpError> {
        let algorithm = match master_key.len() {
            16 => &AES_128,
            32 => &AES_256,
            _ => return Err(SrtpError::Crypto),
        };
        let key = UnboundCipherKey::new(algorithm, master_key).map_err(|_| SrtpError::Crypto)?;
        let prf = EncryptingKey::ctr(key).map_err(|_| SrtpError::Crypto)?;
        Ok(Self { prf, master_salt })
    }

    /// Fills `out` with the session secret of `label` (key, salt or authentication key).
    pub(crate) fn derive(&self, label: Label, out: &mut [u8]) -> Result<(), SrtpError> {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.master_salt);
        // key_id = label || (index DIV kdr) is 56 bits aligned to the right of the 112-bit
        // salt; with kdr = 0 the index part is zero, so only the label byte changes.
        iv[7] ^= label as u8;
        out.fill(0);
        self.prf
            .less_safe_encrypt(out, EncryptionContext::Iv128(FixedLength::from(&iv)))
            .map_err(|_| SrtpError::Crypto)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::test_util::hex;

    /// RFC 3711 Appendix B.3: key derivation test vectors.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let key: [u8; 16] = hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap();
        let salt: [u8; 14] = hex("0EC675AD498AFEEBB6960B3AABE6").try_into().unwrap();
        let kdf = KeyDerivation::new(&key, salt).unwrap();

        let mut cipher_key = [0u8; 16];
        kdf.derive(Label::RtpEncryption, &mut cipher_key).unwrap();
        assert_eq!(cipher_key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));

        let mut cipher_salt = [0u8; 14];
        kdf.derive(Label::RtpSalt, &mut cipher_salt).unwrap();
        assert_eq!(cipher_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));

        let mut auth_key = [0u8; 94];
        kdf.derive(Label::RtpAuthentication, &mut auth_key).unwrap();
        assert_eq!(
            auth_key.to_vec(),
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );
    }

    /// RFC 6188 section 7.2: AES_256_CM_PRF key derivation test vectors.
    #[test]
    fn rfc6188_aes_256_key_derivation() {
        let key = hex("f0f04914b513f2763a1b1fa130f10e29 98f6f6e43e4309d1e622a0e332b9f1b6");
        let salt: [u8; 14] = hex("3b04803de51ee7c96423ab5b78d2").try_into().unwrap();
        let kdf = KeyDerivation::new(&key, salt).unwrap();

        let mut cipher_key = [0u8; 32];
        kdf.derive(Label::RtpEncryption, &mut cipher_key).unwrap();
        assert_eq!(
            cipher_key.to_vec(),
            hex("5ba1064e30ec51613cad926c5a28ef73 1ec7fb397f70a960653caf06554cd8c4")
        );

        let mut cipher_salt = [0u8; 14];
        kdf.derive(Label::RtpSalt, &mut cipher_salt).unwrap();
        assert_eq!(cipher_salt.to_vec(), hex("fa31791685ca444a9e07c6c64e93"));

        let mut auth_key = [0u8; 20];
        kdf.derive(Label::RtpAuthentication, &mut auth_key).unwrap();
        assert_eq!(
            auth_key.to_vec(),
            hex("fd9c32d39ed5fbb5a9dc96b30818454d1313dc05")
        );
    }

    #[test]
    fn master_keys_other_than_16_or_32_bytes_are_rejected() {
        for len in [0, 15, 24, 33] {
            assert!(KeyDerivation::new(&vec![0; len], [0; 14]).is_err());
        }
    }
}
