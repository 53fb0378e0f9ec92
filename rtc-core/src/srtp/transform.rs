//! The per-packet cryptographic transforms of the profiles, for one packet kind (RTP or RTCP):
//! AES-CM encryption with an HMAC-SHA1-80 tag (RFC 3711 sections 4.1.1, 4.2, 3.4) and
//! AEAD_AES_128_GCM / AEAD_AES_256_GCM (RFC 7714 sections 8 to 10), which differ only in the
//! AES key size. Session keys are derived and the aws-lc-rs key schedules built once here;
//! packets are then transformed in place with no allocation.
//!
//! Packet layouts on the wire:
//! - SRTP, both profiles: `header | encrypted payload | tag`.
//! - SRTCP, AES-CM: `header (8) | encrypted rest | E+index (4) | tag (10)`, the tag covering
//!   everything before it.
//! - SRTCP, GCM: `header (8) | encrypted rest | tag (16) | E+index (4)`, the E+index word being
//!   part of the associated data.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

use super::SrtpError;
use super::kdf::{KeyDerivation, Label};
use crate::keying::{SrtpMasterKey, SrtpProfile};

/// Length of the HMAC-SHA1-80 tag.
const HMAC_TAG_LEN: usize = 10;
/// Length of the GCM tag (RFC 7714 mandates the full 16 bytes).
const GCM_TAG_LEN: usize = 16;
/// Length of the SRTCP E-flag + index word.
pub(crate) const SRTCP_INDEX_LEN: usize = 4;
/// Length of the RTCP header part that stays in the clear (RFC 3711 section 3.4).
pub(crate) const RTCP_CLEAR_LEN: usize = 8;
/// The E flag in the SRTCP index word: the packet body is encrypted.
pub(crate) const SRTCP_E_FLAG: u32 = 0x8000_0000;

/// Whether a transform protects RTP or RTCP: each kind has its own session keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PacketKind {
    Rtp,
    Rtcp,
}

/// Session keys and cipher contexts for one packet kind of one direction.
// The HMAC context makes the AES-CM variant large; a transform is built once per session and
// never moved per packet, so keeping it inline saves a pointer chase on every packet.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Transform {
    AesCmHmacSha1 {
        cipher: EncryptingKey,
        auth: hmac::Key,
        salt: [u8; 14],
    },
    AesGcm {
        aead: LessSafeKey,
        salt: [u8; 12],
    },
}

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transform::AesCmHmacSha1 { .. } => f.write_str("Transform::AesCmHmacSha1(..)"),
            Transform::AesGcm { .. } => f.write_str("Transform::AesGcm(..)"),
        }
    }
}

impl Transform {
    /// Derives the session secrets of `kind` from `master` and builds the cipher contexts.
    pub(crate) fn new(
        profile: SrtpProfile,
        master: &SrtpMasterKey,
        kind: PacketKind,
    ) -> Result<Self, SrtpError> {
        let mut master_salt = [0u8; 14];
        let salt_len = profile.master_salt_len();
        // The contract leaves bytes past the profile's salt length unspecified: never let
        // them into the derivation.
        if let (Some(dst), Some(src)) =
            (master_salt.get_mut(..salt_len), master.salt.get(..salt_len))
        {
            dst.copy_from_slice(src);
        }
        let master_key = master
            .key
            .get(..profile.master_key_len())
            .ok_or(SrtpError::Crypto)?;
        let kdf = KeyDerivation::new(master_key, master_salt)?;
        let (key_label, auth_label, salt_label) = match kind {
            PacketKind::Rtp => (
                Label::RtpEncryption,
                Label::RtpAuthentication,
                Label::RtpSalt,
            ),
            PacketKind::Rtcp => (
                Label::RtcpEncryption,
                Label::RtcpAuthentication,
                Label::RtcpSalt,
            ),
        };
        // The session key is as long as the master key (RFC 7714 section 11).
        let mut session_key = [0u8; 32];
        let session_key = session_key
            .get_mut(..profile.master_key_len())
            .ok_or(SrtpError::Crypto)?;
        kdf.derive(key_label, session_key)?;
        // The session salt is as long as the master salt: 112 bits for AES-CM (RFC 3711),
        // 96 bits for GCM (RFC 7714).
        let mut salt = [0u8; 14];
        let salt = salt
            .get_mut(..profile.master_salt_len())
            .ok_or(SrtpError::Crypto)?;
        kdf.derive(salt_label, salt)?;
        let mut auth_key = [0u8; 20];
        if profile == SrtpProfile::AesCm128HmacSha1_80 {
            kdf.derive(auth_label, &mut auth_key)?;
        }
        Self::from_session_keys(profile, session_key, salt, &auth_key)
    }

    /// Builds the cipher contexts from already derived session secrets (`auth_key` is
    /// ignored by GCM). `session_key` must be `profile.master_key_len()` bytes long.
    pub(crate) fn from_session_keys(
        profile: SrtpProfile,
        session_key: &[u8],
        session_salt: &[u8],
        auth_key: &[u8; 20],
    ) -> Result<Self, SrtpError> {
        match profile {
            SrtpProfile::AesCm128HmacSha1_80 => {
                let key =
                    UnboundCipherKey::new(&AES_128, session_key).map_err(|_| SrtpError::Crypto)?;
                Ok(Transform::AesCmHmacSha1 {
                    cipher: EncryptingKey::ctr(key).map_err(|_| SrtpError::Crypto)?,
                    auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_key),
                    salt: session_salt.try_into().map_err(|_| SrtpError::Crypto)?,
                })
            }
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => {
                let algorithm = if profile == SrtpProfile::AeadAes256Gcm {
                    &AES_256_GCM
                } else {
                    &AES_128_GCM
                };
                // aws-lc-rs rejects a key whose length does not match the algorithm.
                let key = UnboundKey::new(algorithm, session_key).map_err(|_| SrtpError::Crypto)?;
                Ok(Transform::AesGcm {
                    aead: LessSafeKey::new(key),
                    salt: session_salt.try_into().map_err(|_| SrtpError::Crypto)?,
                })
            }
        }
    }

    /// Bytes the SRTP transform appends to an RTP packet.
    pub(crate) fn rtp_overhead(&self) -> usize {
        match self {
            Transform::AesCmHmacSha1 { .. } => HMAC_TAG_LEN,
            Transform::AesGcm { .. } => GCM_TAG_LEN,
        }
    }

    /// Bytes the SRTCP transform appends to an RTCP packet (tag and index word).
    pub(crate) fn rtcp_overhead(&self) -> usize {
        self.rtp_overhead() + SRTCP_INDEX_LEN
    }

    /// Where the SRTCP E+index word sits in a protected packet of `len` bytes.
    pub(crate) fn srtcp_index_offset(&self, len: usize) -> Option<usize> {
        match self {
            Transform::AesCmHmacSha1 { .. } => len.checked_sub(HMAC_TAG_LEN + SRTCP_INDEX_LEN),
            Transform::AesGcm { .. } => len.checked_sub(SRTCP_INDEX_LEN),
        }
    }

    /// Encrypts `buf[header_len..len]` and appends the tag; returns the protected length.
    /// The caller has checked that `header_len <= len` and `len + rtp_overhead() <= buf.len()`.
    pub(crate) fn protect_rtp(
        &self,
        buf: &mut [u8],
        header_len: usize,
        len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, SrtpError> {
        let (packet, spare) = buf
            .split_at_mut_checked(len)
            .ok_or(SrtpError::BufferTooSmall)?;
        let (header, payload) = packet
            .split_at_mut_checked(header_len)
            .ok_or(SrtpError::Truncated)?;
        match self {
            Transform::AesCmHmacSha1 { cipher, auth, salt } => {
                ctr_xor(cipher, cm_iv(salt, ssrc, index), payload)?;
                let tag_out = spare
                    .get_mut(..HMAC_TAG_LEN)
                    .ok_or(SrtpError::BufferTooSmall)?;
                // The ROC is the upper 32 bits of the 48-bit index.
                let roc = ((index >> 16) as u32).to_be_bytes();
                hmac_tag(auth, &[header, payload, &roc], tag_out);
                Ok(len + HMAC_TAG_LEN)
            }
            Transform::AesGcm { aead, salt } => {
                let nonce = gcm_nonce(salt, ssrc, index);
                let tag = aead
                    .seal_in_place_separate_tag(nonce, Aad::from(&*header), payload)
                    .map_err(|_| SrtpError::Crypto)?;
                spare
                    .get_mut(..GCM_TAG_LEN)
                    .ok_or(SrtpError::BufferTooSmall)?
                    .copy_from_slice(tag.as_ref());
                Ok(len + GCM_TAG_LEN)
            }
        }
    }

    /// Authenticates and decrypts the SRTP packet `buf` in place; returns the plaintext
    /// length. `buf` is left unspecified if authentication fails.
    pub(crate) fn unprotect_rtp(
        &self,
        buf: &mut [u8],
        header_len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, SrtpError> {
        let plain_len = buf
            .len()
            .checked_sub(self.rtp_overhead())
            .filter(|&n| n >= header_len)
            .ok_or(SrtpError::Truncated)?;
        let (header, rest) = buf
            .split_at_mut_checked(header_len)
            .ok_or(SrtpError::Truncated)?;
        match self {
            Transform::AesCmHmacSha1 { cipher, auth, salt } => {
                let (payload, tag) = rest
                    .split_at_mut_checked(plain_len - header_len)
                    .ok_or(SrtpError::Truncated)?;
                let roc = ((index >> 16) as u32).to_be_bytes();
                let mut expected = [0u8; HMAC_TAG_LEN];
                hmac_tag(auth, &[header, payload, &roc], &mut expected);
                verify_slices_are_equal(&expected, tag)
                    .map_err(|_| SrtpError::AuthenticationFailed)?;
                ctr_xor(cipher, cm_iv(salt, ssrc, index), payload)?;
            }
            Transform::AesGcm { aead, salt } => {
                let nonce = gcm_nonce(salt, ssrc, index);
                aead.open_in_place(nonce, Aad::from(&*header), rest)
                    .map_err(|_| SrtpError::AuthenticationFailed)?;
            }
        }
        Ok(plain_len)
    }

    /// Encrypts `buf[8..len]`, appends the E+index word and the tag; returns the protected
    /// length. The caller has checked that `8 <= len` and `len + rtcp_overhead() <= buf.len()`.
    pub(crate) fn protect_rtcp(
        &self,
        buf: &mut [u8],
        len: usize,
        ssrc: u32,
        srtcp_index: u32,
    ) -> Result<usize, SrtpError> {
        let word = (SRTCP_E_FLAG | srtcp_index).to_be_bytes();
        let (packet, spare) = buf
            .split_at_mut_checked(len)
            .ok_or(SrtpError::BufferTooSmall)?;
        let (header, body) = packet
            .split_at_mut_checked(RTCP_CLEAR_LEN)
            .ok_or(SrtpError::Truncated)?;
        match self {
            Transform::AesCmHmacSha1 { cipher, auth, salt } => {
                ctr_xor(cipher, cm_iv(salt, ssrc, u64::from(srtcp_index)), body)?;
                let trailer = spare
                    .get_mut(..SRTCP_INDEX_LEN + HMAC_TAG_LEN)
                    .ok_or(SrtpError::BufferTooSmall)?;
                let (word_out, tag_out) = trailer.split_at_mut(SRTCP_INDEX_LEN);
                word_out.copy_from_slice(&word);
                hmac_tag(auth, &[header, body, &word], tag_out);
                Ok(len + SRTCP_INDEX_LEN + HMAC_TAG_LEN)
            }
            Transform::AesGcm { aead, salt } => {
                let nonce = gcm_rtcp_nonce(salt, ssrc, srtcp_index);
                let aad = rtcp_aad(header, word)?;
                let tag = aead
                    .seal_in_place_separate_tag(nonce, Aad::from(&aad), body)
                    .map_err(|_| SrtpError::Crypto)?;
                let trailer = spare
                    .get_mut(..GCM_TAG_LEN + SRTCP_INDEX_LEN)
                    .ok_or(SrtpError::BufferTooSmall)?;
                let (tag_out, word_out) = trailer.split_at_mut(GCM_TAG_LEN);
                tag_out.copy_from_slice(tag.as_ref());
                word_out.copy_from_slice(&word);
                Ok(len + GCM_TAG_LEN + SRTCP_INDEX_LEN)
            }
        }
    }

    /// Authenticates and, if the E flag of `word` is set, decrypts the SRTCP packet `buf` in
    /// place; returns the plaintext RTCP length.
    pub(crate) fn unprotect_rtcp(
        &self,
        buf: &mut [u8],
        ssrc: u32,
        word: u32,
    ) -> Result<usize, SrtpError> {
        let plain_len = buf
            .len()
            .checked_sub(self.rtcp_overhead())
            .filter(|&n| n >= RTCP_CLEAR_LEN)
            .ok_or(SrtpError::Truncated)?;
        let encrypted = word & SRTCP_E_FLAG != 0;
        let srtcp_index = word & !SRTCP_E_FLAG;
        let word_bytes = word.to_be_bytes();
        match self {
            Transform::AesCmHmacSha1 { cipher, auth, salt } => {
                let (authenticated, tag) = buf
                    .split_at_mut_checked(plain_len + SRTCP_INDEX_LEN)
                    .ok_or(SrtpError::Truncated)?;
                let mut expected = [0u8; HMAC_TAG_LEN];
                hmac_tag(auth, &[authenticated], &mut expected);
                verify_slices_are_equal(&expected, tag)
                    .map_err(|_| SrtpError::AuthenticationFailed)?;
                if encrypted {
                    let body = authenticated
                        .get_mut(RTCP_CLEAR_LEN..plain_len)
                        .ok_or(SrtpError::Truncated)?;
                    ctr_xor(cipher, cm_iv(salt, ssrc, u64::from(srtcp_index)), body)?;
                }
            }
            Transform::AesGcm { aead, salt } => {
                let nonce = gcm_rtcp_nonce(salt, ssrc, srtcp_index);
                let sealed = buf
                    .get_mut(..plain_len + GCM_TAG_LEN)
                    .ok_or(SrtpError::Truncated)?;
                if encrypted {
                    let (header, body_and_tag) = sealed.split_at_mut(RTCP_CLEAR_LEN);
                    let aad = rtcp_aad(header, word_bytes)?;
                    aead.open_in_place(nonce, Aad::from(&aad), body_and_tag)
                        .map_err(|_| SrtpError::AuthenticationFailed)?;
                } else {
                    // RFC 7714 section 9.2: without encryption the whole packet and the
                    // index word are associated data and only the tag is "ciphertext".
                    let mut tag = [0u8; GCM_TAG_LEN];
                    tag.copy_from_slice(sealed.get(plain_len..).ok_or(SrtpError::Truncated)?);
                    // Move the word next to the clear packet so the associated data is one
                    // contiguous slice; the tag was saved above.
                    let aad = buf
                        .get_mut(..plain_len + SRTCP_INDEX_LEN)
                        .ok_or(SrtpError::Truncated)?;
                    if let Some(word_out) = aad.get_mut(plain_len..) {
                        word_out.copy_from_slice(&word_bytes);
                    }
                    aead.open_in_place_separate_tag(nonce, Aad::from(&*aad), &tag, &mut [])
                        .map_err(|_| SrtpError::AuthenticationFailed)?;
                }
            }
        }
        Ok(plain_len)
    }
}

/// The AES-CM counter block of RFC 3711 section 4.1.1:
/// `(salt * 2^16) XOR (ssrc * 2^64) XOR (index * 2^16)`.
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[4..8].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..14].copy_from_slice(&index.to_be_bytes()[2..]);
    for (byte, salt) in iv.iter_mut().zip(salt) {
        *byte ^= salt;
    }
    iv
}

/// The SRTP GCM nonce of RFC 7714 section 8.1: `(0 (2) | ssrc (4) | roc (4) | seq (2)) XOR salt`.
fn gcm_nonce(salt: &[u8; 12], ssrc: u32, index: u64) -> Nonce {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
    xor_salt(iv, salt)
}

/// The SRTCP GCM nonce of RFC 7714 section 9.1:
/// `(0 (2) | ssrc (4) | 0 (2) | index (4)) XOR salt`.
fn gcm_rtcp_nonce(salt: &[u8; 12], ssrc: u32, srtcp_index: u32) -> Nonce {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&srtcp_index.to_be_bytes());
    xor_salt(iv, salt)
}

fn xor_salt(mut iv: [u8; 12], salt: &[u8; 12]) -> Nonce {
    for (byte, salt) in iv.iter_mut().zip(salt) {
        *byte ^= salt;
    }
    Nonce::assume_unique_for_key(iv)
}

/// The SRTCP GCM associated data: the clear 8-byte header and the E+index word.
fn rtcp_aad(header: &[u8], word: [u8; 4]) -> Result<[u8; 12], SrtpError> {
    let mut aad = [0u8; 12];
    let (head, tail) = aad.split_at_mut(RTCP_CLEAR_LEN);
    head.copy_from_slice(header.get(..RTCP_CLEAR_LEN).ok_or(SrtpError::Truncated)?);
    tail.copy_from_slice(&word);
    Ok(aad)
}

/// XORs the AES-CM keystream starting at counter block `iv` into `data`.
fn ctr_xor(cipher: &EncryptingKey, iv: [u8; 16], data: &mut [u8]) -> Result<(), SrtpError> {
    cipher
        .less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(&iv)))
        .map(|_| ())
        .map_err(|_| SrtpError::Crypto)
}

/// Writes the HMAC-SHA1 of the concatenated `parts`, truncated to `out.len()`, into `out`.
fn hmac_tag(key: &hmac::Key, parts: &[&[u8]], out: &mut [u8]) {
    let mut ctx = hmac::Context::with_key(key);
    for part in parts {
        ctx.update(part);
    }
    let tag = ctx.sign();
    for (dst, src) in out.iter_mut().zip(tag.as_ref()) {
        *dst = *src;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::test_util::hex;

    /// RFC 3711 Appendix B.2: the AES-CM keystream for a given session key and counter block.
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let key = hex("2B7E151628AED2A6ABF7158809CF4F3C");
        let salt: [u8; 14] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
        let cipher = EncryptingKey::ctr(UnboundCipherKey::new(&AES_128, &key).unwrap()).unwrap();
        // SSRC and index zero: the counter block is the salt shifted by 16 bits.
        let iv = cm_iv(&salt, 0, 0);
        assert_eq!(iv.to_vec(), hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"));
        // The vector's segment is 0xFF02 blocks long; it lists the first and last three.
        let mut keystream = vec![0u8; 0xFF02 * 16];
        ctr_xor(&cipher, iv, &mut keystream).unwrap();
        assert_eq!(
            keystream[..16].to_vec(),
            hex("E03EAD0935C95E80E166B16DD92B4EB4")
        );
        assert_eq!(
            keystream[16..32].to_vec(),
            hex("D23513162B02D0F72A43A2FE4A5F97AB")
        );
        assert_eq!(
            keystream[32..48].to_vec(),
            hex("41E95B3BB0A2E8DD477901E4FCA894C0")
        );
        let last = keystream.len() - 48;
        assert_eq!(
            keystream[last..].to_vec(),
            hex(
                "EC8CDF7398607CB0F2D21675EA9EA1E4 362B7C3C6773516318A077D7FC5073AE
                 6A2CC3787889374FBEB4C81B17BA6C44"
            )
        );
    }
}
