//! The contract between DTLS-SRTP and SRTP: which protection profile was negotiated and the
//! master keys and salts exported for each direction (RFC 5764 section 4.2).

/// SRTP protection profiles Sluice negotiates (RFC 5764, RFC 7714).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpProfile {
    /// SRTP_AES128_CM_HMAC_SHA1_80 (0x0001): 16-byte key, 14-byte salt, 10-byte tag.
    AesCm128HmacSha1_80,
    /// SRTP_AEAD_AES_128_GCM (0x0007): 16-byte key, 12-byte salt, 16-byte tag.
    AeadAes128Gcm,
    /// SRTP_AEAD_AES_256_GCM (0x0008): 32-byte key, 12-byte salt, 16-byte tag.
    AeadAes256Gcm,
}

impl SrtpProfile {
    /// Length of the master key in bytes.
    pub const fn master_key_len(self) -> usize {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 | SrtpProfile::AeadAes128Gcm => 16,
            SrtpProfile::AeadAes256Gcm => 32,
        }
    }

    /// Length of the master salt in bytes.
    pub const fn master_salt_len(self) -> usize {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => 14,
            SrtpProfile::AeadAes128Gcm | SrtpProfile::AeadAes256Gcm => 12,
        }
    }

    /// The profile's identifier in the DTLS use_srtp extension.
    pub const fn id(self) -> u16 {
        match self {
            SrtpProfile::AesCm128HmacSha1_80 => 0x0001,
            SrtpProfile::AeadAes128Gcm => 0x0007,
            SrtpProfile::AeadAes256Gcm => 0x0008,
        }
    }
}

/// Master key and salt of one direction.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpMasterKey {
    /// Master key; only the first `profile.master_key_len()` bytes are meaningful (16 for the
    /// AES-128 profiles, all 32 for AEAD_AES_256_GCM).
    pub key: [u8; 32],
    /// Master salt; only the first `profile.master_salt_len()` bytes are meaningful.
    pub salt: [u8; 14],
}

impl std::fmt::Debug for SrtpMasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SrtpMasterKey(..)")
    }
}

/// Keying material exported by a completed DTLS-SRTP handshake, already split into what this
/// endpoint uses to protect what it sends (`local`) and to unprotect what it receives
/// (`remote`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeyingMaterial {
    /// The negotiated protection profile.
    pub profile: SrtpProfile,
    /// Keys for packets this endpoint sends.
    pub local: SrtpMasterKey,
    /// Keys for packets this endpoint receives.
    pub remote: SrtpMasterKey,
}
