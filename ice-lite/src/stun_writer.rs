//! Writes STUN messages into a caller's `&mut [u8]` without allocating: the generic
//! [`StunWriter`] plus the three messages ICE needs, a Binding success response, an error
//! response and a Binding request (the client side, for tests and the load generator).

use std::net::SocketAddr;

use aws_lc_rs::hmac;

use crate::Error;
use crate::stun::{
    Class, HEADER_LEN, INTEGRITY_LEN, IntegrityKey, MAGIC_COOKIE, MAX_REASON_LEN, METHOD_BINDING,
    TransactionId, attr, encode_xor_address, fingerprint, message_type,
};

/// ERROR-CODE values ICE uses, with the reason phrases RFC 8489 and RFC 8445 suggest.
pub mod error_code {
    /// 400: malformed request, e.g. no USERNAME or MESSAGE-INTEGRITY.
    pub const BAD_REQUEST: u16 = 400;
    /// 401: wrong USERNAME or MESSAGE-INTEGRITY.
    pub const UNAUTHORIZED: u16 = 401;
    /// 487: both agents claim the same role.
    pub const ROLE_CONFLICT: u16 = 487;

    /// The reason phrase for a code.
    pub fn reason(code: u16) -> &'static str {
        match code {
            BAD_REQUEST => "Bad Request",
            UNAUTHORIZED => "Unauthorized",
            ROLE_CONFLICT => "Role Conflict",
            _ => "",
        }
    }
}

/// Appends attributes to a STUN message being written into a borrowed buffer, keeping the
/// header's length field current. After [`StunWriter::add_message_integrity`] only
/// FINGERPRINT may follow.
#[derive(Debug)]
pub struct StunWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    padding: u8,
    sealed: bool,
    transaction_id: TransactionId,
}

impl<'b> StunWriter<'b> {
    /// Starts a message: writes the header with an empty body.
    pub fn new(
        buf: &'b mut [u8],
        method: u16,
        class: Class,
        transaction_id: &TransactionId,
    ) -> Result<Self, Error> {
        let header = buf.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall)?;
        let (ty, rest) = header.split_at_mut(2);
        ty.copy_from_slice(&message_type(method, class).to_be_bytes());
        let (len, rest) = rest.split_at_mut(2);
        len.copy_from_slice(&[0, 0]);
        let (cookie, id) = rest.split_at_mut(4);
        cookie.copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        id.copy_from_slice(transaction_id);
        Ok(Self {
            buf,
            len: HEADER_LEN,
            padding: 0,
            sealed: false,
            transaction_id: *transaction_id,
        })
    }

    /// Sets the byte used to pad attribute values to 4 bytes. RFC 8489 says zero (the
    /// default); RFC 5389 allowed any value, and the RFC 5769 samples pad with spaces.
    pub fn with_padding_byte(mut self, padding: u8) -> Self {
        self.padding = padding;
        self
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    fn set_length_field(&mut self, body_len: usize) -> Result<(), Error> {
        let body_len = u16::try_from(body_len).map_err(|_| Error::ValueTooLong)?;
        let field = self.buf.get_mut(2..4).ok_or(Error::BufferTooSmall)?;
        field.copy_from_slice(&body_len.to_be_bytes());
        Ok(())
    }

    /// Reserves an attribute of `value_len` bytes, writes its header and padding, updates the
    /// length field, and returns the value's slot.
    fn reserve(&mut self, kind: u16, value_len: usize) -> Result<&mut [u8], Error> {
        let wire_len = u16::try_from(value_len).map_err(|_| Error::ValueTooLong)?;
        let padded = value_len.next_multiple_of(4);
        let start = self.len;
        let end = start + 4 + padded;
        if end > self.buf.len() {
            return Err(Error::BufferTooSmall);
        }
        self.set_length_field(end - HEADER_LEN)?;
        let slot = self.buf.get_mut(start..end).ok_or(Error::BufferTooSmall)?;
        let (header, value) = slot.split_at_mut(4);
        header.copy_from_slice(&[
            (kind >> 8) as u8,
            kind as u8,
            (wire_len >> 8) as u8,
            wire_len as u8,
        ]);
        let (value, padding) = value.split_at_mut(value_len);
        padding.fill(self.padding);
        self.len = end;
        Ok(value)
    }

    /// Appends any attribute with the given value.
    pub fn add_attribute(&mut self, kind: u16, value: &[u8]) -> Result<(), Error> {
        if self.sealed && kind != attr::FINGERPRINT {
            return Err(Error::AttributeAfterIntegrity);
        }
        self.reserve(kind, value.len())?.copy_from_slice(value);
        Ok(())
    }

    /// USERNAME.
    pub fn add_username(&mut self, username: &str) -> Result<(), Error> {
        self.add_attribute(attr::USERNAME, username.as_bytes())
    }

    /// SOFTWARE.
    pub fn add_software(&mut self, software: &str) -> Result<(), Error> {
        self.add_attribute(attr::SOFTWARE, software.as_bytes())
    }

    /// PRIORITY.
    pub fn add_priority(&mut self, priority: u32) -> Result<(), Error> {
        self.add_attribute(attr::PRIORITY, &priority.to_be_bytes())
    }

    /// USE-CANDIDATE.
    pub fn add_use_candidate(&mut self) -> Result<(), Error> {
        self.add_attribute(attr::USE_CANDIDATE, &[])
    }

    /// ICE-CONTROLLING with the sender's tie-breaker.
    pub fn add_ice_controlling(&mut self, tie_breaker: u64) -> Result<(), Error> {
        self.add_attribute(attr::ICE_CONTROLLING, &tie_breaker.to_be_bytes())
    }

    /// ICE-CONTROLLED with the sender's tie-breaker.
    pub fn add_ice_controlled(&mut self, tie_breaker: u64) -> Result<(), Error> {
        self.add_attribute(attr::ICE_CONTROLLED, &tie_breaker.to_be_bytes())
    }

    /// XOR-MAPPED-ADDRESS for an IPv4 or IPv6 address.
    pub fn add_xor_mapped_address(&mut self, addr: SocketAddr) -> Result<(), Error> {
        let mut value = [0; 20];
        let len = encode_xor_address(addr, &self.transaction_id, &mut value);
        self.add_attribute(
            attr::XOR_MAPPED_ADDRESS,
            value.get(..len).ok_or(Error::ValueTooLong)?,
        )
    }

    /// ERROR-CODE with a 300..=699 code and its reason phrase.
    pub fn add_error_code(&mut self, code: u16, reason: &str) -> Result<(), Error> {
        if !(300..700).contains(&code) || reason.len() > MAX_REASON_LEN {
            return Err(Error::MalformedAttribute(attr::ERROR_CODE));
        }
        if self.sealed {
            return Err(Error::AttributeAfterIntegrity);
        }
        let value = self.reserve(attr::ERROR_CODE, 4 + reason.len())?;
        let (head, text) = value.split_at_mut(4);
        head.copy_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
        text.copy_from_slice(reason.as_bytes());
        Ok(())
    }

    /// MESSAGE-INTEGRITY: HMAC-SHA1 over the message so far, with the length field already
    /// counting this attribute (RFC 8489 14.5).
    pub fn add_message_integrity(&mut self, key: &IntegrityKey) -> Result<(), Error> {
        if self.sealed {
            return Err(Error::AttributeAfterIntegrity);
        }
        let covered_len = self.len;
        // Reserving first writes the adjusted length field the HMAC must cover.
        self.reserve(attr::MESSAGE_INTEGRITY, INTEGRITY_LEN)?;
        let covered = self.buf.get(..covered_len).ok_or(Error::BufferTooSmall)?;
        let tag = hmac::sign(key.hmac(), covered);
        let slot = self
            .buf
            .get_mut(covered_len + 4..covered_len + 4 + INTEGRITY_LEN)
            .ok_or(Error::BufferTooSmall)?;
        slot.copy_from_slice(tag.as_ref());
        self.sealed = true;
        Ok(())
    }

    /// Ends the message without FINGERPRINT; returns its length.
    pub fn finish(self) -> usize {
        self.len
    }

    /// Appends FINGERPRINT and ends the message; returns its length.
    pub fn finish_with_fingerprint(mut self) -> Result<usize, Error> {
        let covered_len = self.len;
        self.reserve(attr::FINGERPRINT, 4)?;
        let covered = self.buf.get(..covered_len).ok_or(Error::BufferTooSmall)?;
        let value = fingerprint(covered).to_be_bytes();
        let slot = self
            .buf
            .get_mut(covered_len + 4..covered_len + 8)
            .ok_or(Error::BufferTooSmall)?;
        slot.copy_from_slice(&value);
        Ok(self.len)
    }
}

/// Writes a Binding success response: XOR-MAPPED-ADDRESS (the request's source),
/// MESSAGE-INTEGRITY with our password, FINGERPRINT. Returns the length written.
pub fn write_binding_success(
    out: &mut [u8],
    transaction_id: &TransactionId,
    mapped: SocketAddr,
    key: &IntegrityKey,
) -> Result<usize, Error> {
    let mut w = StunWriter::new(out, METHOD_BINDING, Class::SuccessResponse, transaction_id)?;
    w.add_xor_mapped_address(mapped)?;
    w.add_message_integrity(key)?;
    w.finish_with_fingerprint()
}

/// Writes a Binding error response: ERROR-CODE with the standard reason, MESSAGE-INTEGRITY
/// when the request was authenticated (`key`), FINGERPRINT. Returns the length written.
pub fn write_binding_error(
    out: &mut [u8],
    transaction_id: &TransactionId,
    code: u16,
    key: Option<&IntegrityKey>,
) -> Result<usize, Error> {
    let mut w = StunWriter::new(out, METHOD_BINDING, Class::ErrorResponse, transaction_id)?;
    w.add_error_code(code, error_code::reason(code))?;
    if let Some(key) = key {
        w.add_message_integrity(key)?;
    }
    w.finish_with_fingerprint()
}

/// An ICE connectivity check as a controlling client sends it (RFC 8445 7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingRequest<'s> {
    /// "theirufrag:ourufrag" from the sender's point of view.
    pub username: &'s str,
    /// The priority of the peer-reflexive candidate this check would create.
    pub priority: u32,
    /// ICE-CONTROLLING tie-breaker, when the sender is controlling.
    pub ice_controlling: Option<u64>,
    /// ICE-CONTROLLED tie-breaker, when the sender is controlled.
    pub ice_controlled: Option<u64>,
    /// Nominate the pair.
    pub use_candidate: bool,
}

impl BindingRequest<'_> {
    /// Writes the request with MESSAGE-INTEGRITY keyed by the receiver's password and
    /// FINGERPRINT. Returns the length written.
    pub fn write(
        &self,
        out: &mut [u8],
        transaction_id: &TransactionId,
        key: &IntegrityKey,
    ) -> Result<usize, Error> {
        let mut w = StunWriter::new(out, METHOD_BINDING, Class::Request, transaction_id)?;
        w.add_username(self.username)?;
        w.add_priority(self.priority)?;
        if let Some(t) = self.ice_controlling {
            w.add_ice_controlling(t)?;
        }
        if let Some(t) = self.ice_controlled {
            w.add_ice_controlled(t)?;
        }
        if self.use_candidate {
            w.add_use_candidate()?;
        }
        w.add_message_integrity(key)?;
        w.finish_with_fingerprint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StunMessage;
    use crate::stun::tests::{
        RFC5769_PASSWORD, RFC5769_REQUEST, RFC5769_RESPONSE_V4, RFC5769_RESPONSE_V6,
        RFC5769_TRANSACTION_ID,
    };

    fn key() -> IntegrityKey {
        IntegrityKey::new(RFC5769_PASSWORD)
    }

    #[test]
    fn reproduces_rfc5769_sample_request() {
        let mut buf = [0u8; 200];
        let mut w = StunWriter::new(
            &mut buf,
            METHOD_BINDING,
            Class::Request,
            &RFC5769_TRANSACTION_ID,
        )
        .unwrap()
        .with_padding_byte(b' ');
        w.add_software("STUN test client").unwrap();
        w.add_priority(0x6e00_01ff).unwrap();
        w.add_ice_controlled(0x932f_f9b1_5126_3b36).unwrap();
        w.add_username("evtj:h6vY").unwrap();
        w.add_message_integrity(&key()).unwrap();
        let len = w.finish_with_fingerprint().unwrap();
        assert_eq!(&buf[..len], &RFC5769_REQUEST[..]);
    }

    #[test]
    fn reproduces_rfc5769_sample_responses() {
        for (vector, mapped) in [
            (&RFC5769_RESPONSE_V4[..], "192.0.2.1:32853"),
            (
                &RFC5769_RESPONSE_V6[..],
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
            ),
        ] {
            let mut buf = [0u8; 200];
            let mut w = StunWriter::new(
                &mut buf,
                METHOD_BINDING,
                Class::SuccessResponse,
                &RFC5769_TRANSACTION_ID,
            )
            .unwrap()
            .with_padding_byte(b' ');
            w.add_software("test vector").unwrap();
            w.add_xor_mapped_address(mapped.parse().unwrap()).unwrap();
            w.add_message_integrity(&key()).unwrap();
            let len = w.finish_with_fingerprint().unwrap();
            assert_eq!(&buf[..len], vector, "response for {mapped}");
        }
    }

    #[test]
    fn success_response_round_trips() {
        let mut buf = [0u8; 100];
        let mapped: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let len = write_binding_success(&mut buf, &RFC5769_TRANSACTION_ID, mapped, &key()).unwrap();
        // Header, XOR-MAPPED-ADDRESS (24), MESSAGE-INTEGRITY (24), FINGERPRINT (8).
        assert_eq!(len, 20 + 24 + 24 + 8);
        let msg = StunMessage::parse(&buf[..len]).unwrap();
        assert_eq!(msg.class(), Class::SuccessResponse);
        assert_eq!(msg.transaction_id(), RFC5769_TRANSACTION_ID);
        assert_eq!(msg.xor_mapped_address(), Some(mapped));
        assert_eq!(msg.verify_integrity(&key()), Ok(()));
        assert_eq!(msg.verify_fingerprint(), Ok(()));
    }

    #[test]
    fn error_responses_round_trip() {
        for (code, reason, authenticated) in [
            (error_code::BAD_REQUEST, "Bad Request", false),
            (error_code::UNAUTHORIZED, "Unauthorized", false),
            (error_code::ROLE_CONFLICT, "Role Conflict", true),
        ] {
            let mut buf = [0u8; 100];
            let k = key();
            let len = write_binding_error(
                &mut buf,
                &RFC5769_TRANSACTION_ID,
                code,
                authenticated.then_some(&k),
            )
            .unwrap();
            let msg = StunMessage::parse(&buf[..len]).unwrap();
            assert_eq!(msg.class(), Class::ErrorResponse);
            assert_eq!(
                msg.error_code().map(|e| (e.code, e.reason)),
                Some((code, reason))
            );
            assert_eq!(msg.verify_integrity(&k).is_ok(), authenticated);
            assert_eq!(msg.verify_fingerprint(), Ok(()));
        }
    }

    #[test]
    fn binding_request_round_trips() {
        let request = BindingRequest {
            username: "srvr:clnt",
            priority: 1_845_501_695,
            ice_controlling: Some(0x0102_0304_0506_0708),
            ice_controlled: None,
            use_candidate: true,
        };
        let mut buf = [0u8; 200];
        let len = request
            .write(&mut buf, &RFC5769_TRANSACTION_ID, &key())
            .unwrap();
        let msg = StunMessage::parse(&buf[..len]).unwrap();
        assert!(msg.is_binding_request());
        assert_eq!(msg.username(), Some("srvr:clnt"));
        assert_eq!(msg.priority(), Some(1_845_501_695));
        assert_eq!(msg.ice_controlling(), Some(0x0102_0304_0506_0708));
        assert_eq!(msg.ice_controlled(), None);
        assert!(msg.use_candidate());
        assert_eq!(msg.verify_integrity(&key()), Ok(()));
        assert_eq!(msg.verify_fingerprint(), Ok(()));
    }

    #[test]
    fn small_buffers_and_misuse_are_errors() {
        let mapped: SocketAddr = "192.0.2.1:1".parse().unwrap();
        for size in 0..56 {
            let mut buf = vec![0u8; size];
            assert_eq!(
                write_binding_success(&mut buf, &RFC5769_TRANSACTION_ID, mapped, &key()),
                Err(Error::BufferTooSmall),
                "buffer of {size}"
            );
        }
        let mut buf = [0u8; 100];
        let mut w = StunWriter::new(
            &mut buf,
            METHOD_BINDING,
            Class::Request,
            &RFC5769_TRANSACTION_ID,
        )
        .unwrap();
        assert!(w.is_empty());
        w.add_message_integrity(&key()).unwrap();
        assert_eq!(w.add_use_candidate(), Err(Error::AttributeAfterIntegrity));
        assert_eq!(
            w.add_error_code(400, "x"),
            Err(Error::AttributeAfterIntegrity)
        );
        assert_eq!(
            w.add_message_integrity(&key()),
            Err(Error::AttributeAfterIntegrity)
        );
        assert_eq!(w.len(), 44);
        assert_eq!(w.finish(), 44);
        let mut w = StunWriter::new(
            &mut buf,
            METHOD_BINDING,
            Class::Request,
            &RFC5769_TRANSACTION_ID,
        )
        .unwrap();
        assert_eq!(
            w.add_error_code(700, ""),
            Err(Error::MalformedAttribute(attr::ERROR_CODE))
        );
        assert_eq!(
            w.add_attribute(attr::SOFTWARE, &[0; 70_000]),
            Err(Error::ValueTooLong)
        );
    }
}
