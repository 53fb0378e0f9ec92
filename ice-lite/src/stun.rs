//! Zero-copy STUN message view (RFC 8489, compatible with RFC 5389): validates the header and
//! every attribute TLV once in [`StunMessage::parse`], then gives typed, panic-free access to
//! what ICE needs, and verifies MESSAGE-INTEGRITY (HMAC-SHA1) and FINGERPRINT (CRC-32)
//! without copying the message.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use aws_lc_rs::{constant_time, hmac};

use crate::Error;

/// The fixed value in bytes 4..8 of every RFC 5389/8489 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the STUN header: type, length, magic cookie, transaction id.
pub const HEADER_LEN: usize = 20;
/// The Binding method, the only one ICE uses.
pub const METHOD_BINDING: u16 = 0x001;
/// XOR-ed into the CRC-32 so that FINGERPRINT differs from other protocols' CRCs.
const FINGERPRINT_XOR: u32 = 0x5354_554e;
/// Value length of MESSAGE-INTEGRITY (an HMAC-SHA1 tag).
pub(crate) const INTEGRITY_LEN: usize = 20;
/// RFC 5389 allowed USERNAME values up to 513 bytes; accepting that keeps both RFCs' peers.
const MAX_USERNAME_LEN: usize = 513;
/// RFC 8489 14.8: the reason phrase is fewer than 128 characters (at most 763 bytes).
pub(crate) const MAX_REASON_LEN: usize = 763;

/// Attribute types this crate reads or writes (RFC 8489 18.3, RFC 8445 16.1).
pub mod attr {
    /// USERNAME: "their ufrag:our ufrag" as the sender writes it.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY: HMAC-SHA1 over the message up to this attribute.
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE: class, number and reason phrase.
    pub const ERROR_CODE: u16 = 0x0009;
    /// XOR-MAPPED-ADDRESS: the requester's address as seen by the responder.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY: the priority a peer-reflexive candidate would get.
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE: the controlling agent nominates this pair.
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE: free text naming the sender's implementation.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT: CRC-32 of the message XOR 0x5354554e.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED: the sender believes it is controlled; carries its tie-breaker.
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING: the sender believes it is controlling; carries its tie-breaker.
    pub const ICE_CONTROLLING: u16 = 0x802A;
}

/// The 96-bit transaction id.
pub type TransactionId = [u8; 12];

/// The class bits of the message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// 0b00
    Request,
    /// 0b01
    Indication,
    /// 0b10
    SuccessResponse,
    /// 0b11
    ErrorResponse,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::SuccessResponse => 0b10,
            Class::ErrorResponse => 0b11,
        }
    }
}

/// Interleaves a 12-bit method and the class into the 14-bit message type (RFC 8489 5).
pub(crate) fn message_type(method: u16, class: Class) -> u16 {
    let c = class.bits();
    (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((c & 0b01) << 4)
        | ((c & 0b10) << 7)
}

/// An HMAC-SHA1 key for short-term credentials: the ICE password's bytes. Built once per
/// session, not per packet.
#[derive(Clone)]
pub struct IntegrityKey(hmac::Key);

impl IntegrityKey {
    /// Keys HMAC-SHA1 with a short-term password (RFC 8489 9.1.1; ICE passwords are ASCII,
    /// so OpaqueString preparation leaves them unchanged).
    pub fn new(password: &[u8]) -> Self {
        Self(hmac::Key::new(
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            password,
        ))
    }

    pub(crate) fn hmac(&self) -> &hmac::Key {
        &self.0
    }
}

impl fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a secret: never print it.
        f.write_str("IntegrityKey(..)")
    }
}

/// A parsed ERROR-CODE attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode<'a> {
    /// 300..=699, e.g. 401 or 487.
    pub code: u16,
    /// The reason phrase.
    pub reason: &'a str,
}

/// One attribute TLV as it appears on the wire (value without padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttribute<'a> {
    /// The attribute type.
    pub kind: u16,
    /// The value, without padding.
    pub value: &'a [u8],
}

/// A validated, borrowed view of one STUN message.
///
/// If [`StunMessage::parse`] returned `Ok`, every accessor is infallible. Only the first
/// occurrence of an attribute counts, and attributes after MESSAGE-INTEGRITY other than
/// FINGERPRINT are ignored (RFC 8489 14.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StunMessage<'a> {
    bytes: &'a [u8],
    message_type: u16,
    username: Option<&'a str>,
    priority: Option<u32>,
    use_candidate: bool,
    ice_controlling: Option<u64>,
    ice_controlled: Option<u64>,
    xor_mapped_address: Option<SocketAddr>,
    error_code: Option<ErrorCode<'a>>,
    software: Option<&'a str>,
    /// Offset of the MESSAGE-INTEGRITY attribute header.
    integrity_at: Option<usize>,
    /// Offset of the FINGERPRINT attribute header.
    fingerprint_at: Option<usize>,
}

fn be16(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(..2)?.try_into().ok()?))
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn fixed<const N: usize>(value: &[u8], kind: u16) -> Result<[u8; N], Error> {
    value
        .try_into()
        .map_err(|_| Error::MalformedAttribute(kind))
}

impl<'a> StunMessage<'a> {
    /// Validates a whole datagram as one STUN message: leading zero bits, magic cookie, a
    /// length that is a multiple of 4 and equals the bytes after the header, attribute TLVs
    /// within bounds and padded to 4 bytes, and well-formed values of the known attributes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let (header, body) = bytes.split_at_checked(HEADER_LEN).ok_or(Error::Truncated)?;
        let [t0, t1, l0, l1, c0, c1, c2, c3, ..] = *header else {
            return Err(Error::Truncated);
        };
        if t0 & 0xC0 != 0 {
            return Err(Error::NotStun);
        }
        if u32::from_be_bytes([c0, c1, c2, c3]) != MAGIC_COOKIE {
            return Err(Error::BadMagicCookie);
        }
        let length = usize::from(u16::from_be_bytes([l0, l1]));
        if length % 4 != 0 {
            return Err(Error::BadLength);
        }
        if length > body.len() {
            return Err(Error::Truncated);
        }
        if length != body.len() {
            return Err(Error::BadLength);
        }
        let mut msg = StunMessage {
            bytes,
            message_type: u16::from_be_bytes([t0, t1]),
            username: None,
            priority: None,
            use_candidate: false,
            ice_controlling: None,
            ice_controlled: None,
            xor_mapped_address: None,
            error_code: None,
            software: None,
            integrity_at: None,
            fingerprint_at: None,
        };
        let mut offset = HEADER_LEN;
        for item in AttributeWalk::new(body) {
            let (attribute, len) = item?;
            if msg.fingerprint_at.is_some() {
                return Err(Error::AttributeAfterFingerprint);
            }
            msg.absorb(attribute, offset)?;
            offset += len;
        }
        Ok(msg)
    }

    /// Records one attribute found at `offset` (its header) if it is known and counts.
    fn absorb(&mut self, a: RawAttribute<'a>, offset: usize) -> Result<(), Error> {
        let kind = a.kind;
        if kind == attr::FINGERPRINT {
            fixed::<4>(a.value, kind)?;
            self.fingerprint_at = Some(offset);
            return Ok(());
        }
        if self.integrity_at.is_some() {
            return Ok(());
        }
        match kind {
            attr::MESSAGE_INTEGRITY => {
                fixed::<INTEGRITY_LEN>(a.value, kind)?;
                self.integrity_at = Some(offset);
            }
            attr::USERNAME if self.username.is_none() => {
                if a.value.len() > MAX_USERNAME_LEN {
                    return Err(Error::MalformedAttribute(kind));
                }
                let s =
                    std::str::from_utf8(a.value).map_err(|_| Error::MalformedAttribute(kind))?;
                self.username = Some(s);
            }
            attr::SOFTWARE if self.software.is_none() => {
                let s =
                    std::str::from_utf8(a.value).map_err(|_| Error::MalformedAttribute(kind))?;
                self.software = Some(s);
            }
            attr::PRIORITY if self.priority.is_none() => {
                self.priority = Some(u32::from_be_bytes(fixed(a.value, kind)?));
            }
            attr::USE_CANDIDATE => {
                if !a.value.is_empty() {
                    return Err(Error::MalformedAttribute(kind));
                }
                self.use_candidate = true;
            }
            attr::ICE_CONTROLLING if self.ice_controlling.is_none() => {
                self.ice_controlling = Some(u64::from_be_bytes(fixed(a.value, kind)?));
            }
            attr::ICE_CONTROLLED if self.ice_controlled.is_none() => {
                self.ice_controlled = Some(u64::from_be_bytes(fixed(a.value, kind)?));
            }
            attr::XOR_MAPPED_ADDRESS if self.xor_mapped_address.is_none() => {
                let addr = decode_xor_address(a.value, &self.transaction_id())
                    .ok_or(Error::MalformedAttribute(kind))?;
                self.xor_mapped_address = Some(addr);
            }
            attr::ERROR_CODE if self.error_code.is_none() => {
                let [_, _, class, number, reason @ ..] = a.value else {
                    return Err(Error::MalformedAttribute(kind));
                };
                let class = class & 0x07;
                if !(3..=6).contains(&class) || *number > 99 || reason.len() > MAX_REASON_LEN {
                    return Err(Error::MalformedAttribute(kind));
                }
                let reason =
                    std::str::from_utf8(reason).map_err(|_| Error::MalformedAttribute(kind))?;
                self.error_code = Some(ErrorCode {
                    code: u16::from(class) * 100 + u16::from(*number),
                    reason,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The 12-bit method, e.g. [`METHOD_BINDING`].
    pub fn method(&self) -> u16 {
        let t = self.message_type;
        (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2)
    }

    /// The class.
    pub fn class(&self) -> Class {
        match ((self.message_type >> 7) & 0b10) | ((self.message_type >> 4) & 0b01) {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }

    /// Whether this is a Binding request.
    pub fn is_binding_request(&self) -> bool {
        self.method() == METHOD_BINDING && self.class() == Class::Request
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> TransactionId {
        let mut id = [0; 12];
        if let Some(src) = self.bytes.get(8..HEADER_LEN) {
            id.copy_from_slice(src);
        }
        id
    }

    /// USERNAME, e.g. "ourufrag:theirufrag" in a check sent to us.
    pub fn username(&self) -> Option<&'a str> {
        self.username
    }

    /// The ufrag a check is addressed to: USERNAME up to the first ':' (RFC 8445 7.2.2). The
    /// media port finds the session of a check by it.
    pub fn recipient_ufrag(&self) -> Option<&'a str> {
        self.username
            .and_then(|u| u.split_once(':'))
            .map(|(ours, _)| ours)
    }

    /// PRIORITY.
    pub fn priority(&self) -> Option<u32> {
        self.priority
    }

    /// Whether USE-CANDIDATE is present.
    pub fn use_candidate(&self) -> bool {
        self.use_candidate
    }

    /// The tie-breaker of ICE-CONTROLLING.
    pub fn ice_controlling(&self) -> Option<u64> {
        self.ice_controlling
    }

    /// The tie-breaker of ICE-CONTROLLED.
    pub fn ice_controlled(&self) -> Option<u64> {
        self.ice_controlled
    }

    /// XOR-MAPPED-ADDRESS, decoded.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        self.xor_mapped_address
    }

    /// ERROR-CODE.
    pub fn error_code(&self) -> Option<ErrorCode<'a>> {
        self.error_code
    }

    /// SOFTWARE.
    pub fn software(&self) -> Option<&'a str> {
        self.software
    }

    /// Whether MESSAGE-INTEGRITY is present (before any verification).
    pub fn has_integrity(&self) -> bool {
        self.integrity_at.is_some()
    }

    /// Whether FINGERPRINT is present.
    pub fn has_fingerprint(&self) -> bool {
        self.fingerprint_at.is_some()
    }

    /// Every attribute in wire order, including unknown ones and those after
    /// MESSAGE-INTEGRITY.
    pub fn attributes(&self) -> impl Iterator<Item = RawAttribute<'a>> + 'a {
        let body = self.bytes.get(HEADER_LEN..).unwrap_or_default();
        AttributeWalk::new(body).map_while(|item| item.ok().map(|(a, _)| a))
    }

    /// Verifies MESSAGE-INTEGRITY (RFC 8489 14.5): HMAC-SHA1 over the message up to the
    /// attribute, with the header's length field set as if the message ended right after it.
    /// The adjusted length is fed to the HMAC separately, so the message is not copied, and
    /// the tag is compared in constant time.
    pub fn verify_integrity(&self, key: &IntegrityKey) -> Result<(), Error> {
        let at = self.integrity_at.ok_or(Error::MissingIntegrity)?;
        let (covered, rest) = self
            .bytes
            .split_at_checked(at)
            .ok_or(Error::MissingIntegrity)?;
        let tag = rest
            .get(4..4 + INTEGRITY_LEN)
            .ok_or(Error::MissingIntegrity)?;
        let (message_type, after_length) = match (covered.get(..2), covered.get(4..)) {
            (Some(t), Some(a)) => (t, a),
            _ => return Err(Error::MissingIntegrity),
        };
        let adjusted_length = u16::try_from(at + 4 + INTEGRITY_LEN - HEADER_LEN)
            .map_err(|_| Error::MissingIntegrity)?;
        let mut ctx = hmac::Context::with_key(key.hmac());
        ctx.update(message_type);
        ctx.update(&adjusted_length.to_be_bytes());
        ctx.update(after_length);
        constant_time::verify_slices_are_equal(ctx.sign().as_ref(), tag)
            .map_err(|_| Error::IntegrityMismatch)
    }

    /// Verifies FINGERPRINT: CRC-32 of everything before it, XOR 0x5354554e. FINGERPRINT is
    /// the last attribute, so the length field already covers it.
    pub fn verify_fingerprint(&self) -> Result<(), Error> {
        let at = self.fingerprint_at.ok_or(Error::MissingFingerprint)?;
        let (covered, rest) = self
            .bytes
            .split_at_checked(at)
            .ok_or(Error::MissingFingerprint)?;
        let value = rest
            .get(4..)
            .and_then(be32)
            .ok_or(Error::MissingFingerprint)?;
        if fingerprint(covered) == value {
            Ok(())
        } else {
            Err(Error::FingerprintMismatch)
        }
    }
}

/// FINGERPRINT value of the bytes before the attribute.
pub(crate) fn fingerprint(covered: &[u8]) -> u32 {
    crc32fast::hash(covered) ^ FINGERPRINT_XOR
}

/// Walks attribute TLVs, yielding each attribute and its wire size (header + padded value).
struct AttributeWalk<'a> {
    rest: &'a [u8],
}

impl<'a> AttributeWalk<'a> {
    fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }
}

impl<'a> Iterator for AttributeWalk<'a> {
    type Item = Result<(RawAttribute<'a>, usize), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = (|| {
            let (header, after) = self
                .rest
                .split_at_checked(4)
                .ok_or(Error::AttributeTruncated)?;
            let kind = be16(header).ok_or(Error::AttributeTruncated)?;
            let len = usize::from(
                header
                    .get(2..)
                    .and_then(be16)
                    .ok_or(Error::AttributeTruncated)?,
            );
            let padded = len.next_multiple_of(4);
            let (padded_value, next) = after
                .split_at_checked(padded)
                .ok_or(Error::AttributeTruncated)?;
            let value = padded_value.get(..len).ok_or(Error::AttributeTruncated)?;
            self.rest = next;
            Ok((RawAttribute { kind, value }, 4 + padded))
        })();
        if item.is_err() {
            // Stop after the first malformed TLV: nothing after it can be located.
            self.rest = &[];
        }
        Some(item)
    }
}

/// Decodes an XOR-MAPPED-ADDRESS value (RFC 8489 14.2).
fn decode_xor_address(value: &[u8], transaction_id: &TransactionId) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let (head, xaddr) = value.split_at_checked(4)?;
    let [_, family, p0, p1] = *head else {
        return None;
    };
    let port = u16::from_be_bytes([p0, p1]) ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match family {
        0x01 => {
            let x: [u8; 4] = xaddr.try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(u32::from_be_bytes(x) ^ MAGIC_COOKIE))
        }
        0x02 => {
            let mut x: [u8; 16] = xaddr.try_into().ok()?;
            for (b, k) in x.iter_mut().zip(cookie.iter().chain(transaction_id.iter())) {
                *b ^= k;
            }
            IpAddr::V6(Ipv6Addr::from(x))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Encodes an XOR-MAPPED-ADDRESS value into `out`, returning its length (8 or 20).
pub(crate) fn encode_xor_address(
    addr: SocketAddr,
    transaction_id: &TransactionId,
    out: &mut [u8; 20],
) -> usize {
    let port = (addr.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes();
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let (family, ip_len) = match addr.ip() {
        IpAddr::V4(ip) => {
            let x = (u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes();
            for (o, b) in out.iter_mut().skip(4).zip(x) {
                *o = b;
            }
            (0x01, 4)
        }
        IpAddr::V6(ip) => {
            let pad = cookie.iter().chain(transaction_id.iter());
            for ((o, b), k) in out.iter_mut().skip(4).zip(ip.octets()).zip(pad) {
                *o = b ^ k;
            }
            (0x02, 16)
        }
    };
    for (o, b) in out.iter_mut().zip([0, family, port[0], port[1]]) {
        *o = b;
    }
    4 + ip_len
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// RFC 5769 2.1: sample request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
    /// MESSAGE-INTEGRITY, FINGERPRINT; padding with spaces).
    pub(crate) const RFC5769_REQUEST: [u8; 108] = [
        0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
        0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
        0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
        0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
        0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
        0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
        0x7a, 0x3b, 0xcf,
    ];

    /// RFC 5769 2.2: sample IPv4 response.
    pub(crate) const RFC5769_RESPONSE_V4: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];

    /// RFC 5769 2.3: sample IPv6 response.
    pub(crate) const RFC5769_RESPONSE_V6: [u8; 92] = [
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
        0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
        0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
        0x0b, 0x4c,
    ];

    pub(crate) const RFC5769_PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";
    pub(crate) const RFC5769_TRANSACTION_ID: TransactionId = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    fn key() -> IntegrityKey {
        IntegrityKey::new(RFC5769_PASSWORD)
    }

    #[test]
    fn rfc5769_sample_request() {
        let msg = StunMessage::parse(&RFC5769_REQUEST).unwrap();
        assert!(msg.is_binding_request());
        assert_eq!(msg.transaction_id(), RFC5769_TRANSACTION_ID);
        assert_eq!(msg.software(), Some("STUN test client"));
        assert_eq!(msg.username(), Some("evtj:h6vY"));
        assert_eq!(msg.recipient_ufrag(), Some("evtj"));
        assert_eq!(msg.priority(), Some(0x6e00_01ff));
        assert_eq!(msg.ice_controlled(), Some(0x932f_f9b1_5126_3b36));
        assert_eq!(msg.ice_controlling(), None);
        assert!(!msg.use_candidate());
        assert_eq!(msg.verify_integrity(&key()), Ok(()));
        assert_eq!(msg.verify_fingerprint(), Ok(()));
        assert_eq!(
            msg.verify_integrity(&IntegrityKey::new(b"VOkJxbRl1RmTxUk/WvJxBu")),
            Err(Error::IntegrityMismatch)
        );
        let kinds: Vec<u16> = msg.attributes().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                attr::SOFTWARE,
                attr::PRIORITY,
                attr::ICE_CONTROLLED,
                attr::USERNAME,
                attr::MESSAGE_INTEGRITY,
                attr::FINGERPRINT
            ]
        );
    }

    #[test]
    fn rfc5769_sample_responses() {
        for (bytes, expected) in [
            (&RFC5769_RESPONSE_V4[..], "192.0.2.1:32853"),
            (
                &RFC5769_RESPONSE_V6[..],
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            ),
        ] {
            let msg = StunMessage::parse(bytes).unwrap();
            assert_eq!(msg.method(), METHOD_BINDING);
            assert_eq!(msg.class(), Class::SuccessResponse);
            assert_eq!(msg.software(), Some("test vector"));
            assert_eq!(msg.xor_mapped_address(), Some(expected.parse().unwrap()));
            assert_eq!(msg.verify_integrity(&key()), Ok(()));
            assert_eq!(msg.verify_fingerprint(), Ok(()));
        }
    }

    #[test]
    fn any_flipped_bit_breaks_integrity_or_fingerprint() {
        // Every byte is covered by FINGERPRINT; all before MESSAGE-INTEGRITY also by the HMAC.
        for i in 0..RFC5769_REQUEST.len() {
            let mut bytes = RFC5769_REQUEST;
            bytes[i] ^= 0x01;
            let Ok(msg) = StunMessage::parse(&bytes) else {
                continue;
            };
            let integrity = msg.verify_integrity(&key()).is_ok();
            let fingerprint = msg.verify_fingerprint().is_ok();
            assert!(
                !(integrity && fingerprint),
                "flip at byte {i} went unnoticed"
            );
            if i < 80 {
                assert!(!integrity, "flip at byte {i} not covered by the HMAC");
            }
        }
    }

    #[test]
    fn header_is_validated() {
        assert_eq!(
            StunMessage::parse(&RFC5769_REQUEST[..19]),
            Err(Error::Truncated)
        );
        let mut b = RFC5769_REQUEST;
        b[0] |= 0x40;
        assert_eq!(StunMessage::parse(&b), Err(Error::NotStun));
        let mut b = RFC5769_REQUEST;
        b[4] = 0;
        assert_eq!(StunMessage::parse(&b), Err(Error::BadMagicCookie));
        let mut b = RFC5769_REQUEST;
        b[3] = 0x57;
        assert_eq!(StunMessage::parse(&b), Err(Error::BadLength));
        // A datagram with trailing bytes beyond the length field.
        let mut long = RFC5769_REQUEST.to_vec();
        long.extend_from_slice(&[0; 4]);
        assert_eq!(StunMessage::parse(&long), Err(Error::BadLength));
        // A length field promising more than the datagram holds.
        assert_eq!(
            StunMessage::parse(&RFC5769_REQUEST[..104]),
            Err(Error::Truncated)
        );
    }

    fn message(attributes: &[u8]) -> Vec<u8> {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&RFC5769_TRANSACTION_ID);
        m.extend_from_slice(attributes);
        m
    }

    #[test]
    fn attributes_are_validated() {
        // Attribute header cut short.
        assert_eq!(
            StunMessage::parse(&message(&[0x00, 0x06, 0x00, 0x09])),
            Err(Error::AttributeTruncated)
        );
        // Value runs past the message (padding missing).
        assert_eq!(
            StunMessage::parse(&message(&[0x00, 0x06, 0x00, 0x05, b'a', b'b', b'c', b'd'])),
            Err(Error::AttributeTruncated)
        );
        // PRIORITY with a 2-byte value.
        assert_eq!(
            StunMessage::parse(&message(&[0x00, 0x24, 0x00, 0x02, 1, 2, 0, 0])),
            Err(Error::MalformedAttribute(attr::PRIORITY))
        );
        // USE-CANDIDATE with a value.
        assert_eq!(
            StunMessage::parse(&message(&[0x00, 0x25, 0x00, 0x01, 1, 0, 0, 0])),
            Err(Error::MalformedAttribute(attr::USE_CANDIDATE))
        );
        // USERNAME not UTF-8.
        assert_eq!(
            StunMessage::parse(&message(&[0x00, 0x06, 0x00, 0x02, 0xff, 0xfe, 0, 0])),
            Err(Error::MalformedAttribute(attr::USERNAME))
        );
        // XOR-MAPPED-ADDRESS with family 3.
        assert_eq!(
            StunMessage::parse(&message(&[0x00, 0x20, 0x00, 0x08, 0, 3, 0, 0, 0, 0, 0, 0])),
            Err(Error::MalformedAttribute(attr::XOR_MAPPED_ADDRESS))
        );
        // IPv6 family with an IPv4-sized address.
        assert_eq!(
            StunMessage::parse(&message(&[0x00, 0x20, 0x00, 0x08, 0, 2, 0, 0, 0, 0, 0, 0])),
            Err(Error::MalformedAttribute(attr::XOR_MAPPED_ADDRESS))
        );
        // ERROR-CODE class 7.
        assert_eq!(
            StunMessage::parse(&message(&[0x00, 0x09, 0x00, 0x04, 0, 0, 7, 0])),
            Err(Error::MalformedAttribute(attr::ERROR_CODE))
        );
        // Anything after FINGERPRINT.
        assert_eq!(
            StunMessage::parse(&message(&[
                0x80, 0x28, 0x00, 0x04, 0, 0, 0, 0, 0x00, 0x25, 0x00, 0x00
            ])),
            Err(Error::AttributeAfterFingerprint)
        );
        // Unknown attributes, including comprehension-required ones, are skipped.
        let bytes = message(&[0x7f, 0xff, 0x00, 0x01, 9, 0, 0, 0, 0x00, 0x25, 0x00, 0x00]);
        let ok = StunMessage::parse(&bytes).unwrap();
        assert!(ok.use_candidate());
        assert_eq!(ok.attributes().count(), 2);
        assert_eq!(ok.attributes().next().unwrap().value, &[9]);
    }

    #[test]
    fn first_occurrence_counts_and_attributes_after_integrity_are_ignored() {
        let mut attributes = vec![0x00, 0x24, 0x00, 0x04, 0, 0, 0, 1];
        attributes.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 0, 0, 0, 2]);
        attributes.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
        attributes.extend_from_slice(&[0; 20]);
        attributes.extend_from_slice(&[0x00, 0x25, 0x00, 0x00]);
        attributes.extend_from_slice(&[0x00, 0x06, 0x00, 0x04, b'a', b':', b'b', b'c']);
        let bytes = message(&attributes);
        let msg = StunMessage::parse(&bytes).unwrap();
        assert_eq!(msg.priority(), Some(1));
        assert!(!msg.use_candidate());
        assert_eq!(msg.username(), None);
        assert!(msg.has_integrity());
        assert_eq!(msg.verify_integrity(&key()), Err(Error::IntegrityMismatch));
        assert_eq!(msg.verify_fingerprint(), Err(Error::MissingFingerprint));
    }

    #[test]
    fn error_code_is_decoded() {
        let bytes = message(&[
            0x00, 0x09, 0x00, 0x11, 0, 0, 4, 87, b'R', b'o', b'l', b'e', b' ', b'C', b'o', b'n',
            b'f', b'l', b'i', b'c', b't', 0, 0, 0,
        ]);
        let msg = StunMessage::parse(&bytes).unwrap();
        assert_eq!(
            msg.error_code(),
            Some(ErrorCode {
                code: 487,
                reason: "Role Conflict"
            })
        );
        assert_eq!(msg.verify_integrity(&key()), Err(Error::MissingIntegrity));
    }

    #[test]
    fn method_and_class_bits_interleave() {
        // Allocate (0x003) error response is 0x0113; Binding indication is 0x0011.
        assert_eq!(message_type(0x003, Class::ErrorResponse), 0x0113);
        assert_eq!(message_type(METHOD_BINDING, Class::Indication), 0x0011);
        assert_eq!(message_type(METHOD_BINDING, Class::SuccessResponse), 0x0101);
        for method in [0x001u16, 0x0ab, 0xfff] {
            for class in [
                Class::Request,
                Class::Indication,
                Class::SuccessResponse,
                Class::ErrorResponse,
            ] {
                let mut bytes = message(&[]);
                bytes[..2].copy_from_slice(&message_type(method, class).to_be_bytes());
                let msg = StunMessage::parse(&bytes).unwrap();
                assert_eq!((msg.method(), msg.class()), (method, class));
            }
        }
    }
}
