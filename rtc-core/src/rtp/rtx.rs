//! RTP retransmission payloads (RFC 4588 section 4): an RTX packet carries the original
//! packet's sequence number (OSN) in the first two bytes of its payload, followed by the
//! original payload. [`RtpPacket::restore_from_rtx`] turns such a packet back into the
//! original in place, reusing the offsets the view validated instead of parsing again.

use super::RtpPacket;
use crate::{Pt, Ssrc};

/// Length of the original sequence number at the start of an RTX payload.
pub const OSN_LEN: usize = 2;

impl<T: AsRef<[u8]>> RtpPacket<T> {
    /// The original sequence number of an RTX packet: the first two payload bytes. `None`
    /// when the payload (without padding) is shorter, as in a padding-only probe.
    pub fn rtx_original_sequence_number(&self) -> Option<u16> {
        match self.payload() {
            [high, low, ..] => Some(u16::from_be_bytes([*high, *low])),
            _ => None,
        }
    }
}

impl<'a> RtpPacket<&'a mut [u8]> {
    /// Turns an RTX packet back into the packet it repairs, in place: the payload (and any
    /// padding) moves over the original sequence number, and the header gets that sequence
    /// number, the original stream's `ssrc` and its payload type `pt`. Returns the view of
    /// the restored packet, two bytes shorter, with the offsets of this one (the header does
    /// not move, so nothing is validated again). `None` when there is no original sequence
    /// number ([`RtpPacket::rtx_original_sequence_number`]).
    pub fn restore_from_rtx(self, ssrc: Ssrc, pt: Pt) -> Option<RtpPacket<&'a mut [u8]>> {
        let osn = self.rtx_original_sequence_number()?;
        let RtpPacket {
            buf,
            header_len,
            payload_end,
            ext_start,
            ext_end,
            ext_form,
        } = self;
        let len = buf.len();
        // `payload_end - header_len >= OSN_LEN` was just checked, so this cannot underflow.
        buf.copy_within(header_len + OSN_LEN..len, header_len);
        let buf = buf.get_mut(..len - OSN_LEN)?;
        let mut restored = RtpPacket {
            buf,
            header_len,
            payload_end: payload_end - OSN_LEN,
            ext_start,
            ext_end,
            ext_form,
        };
        restored.set_sequence_number(osn);
        restored.set_ssrc(ssrc);
        restored.set_payload_type(pt);
        Some(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTX packet (PT 97, SSRC 0x2222, seq 9) with a one-byte extension (id 1, "x"),
    /// repairing sequence number 0x0102 of a payload "media", with two bytes of padding.
    const RTX: [u8; 29] = [
        0xb0, 97, 0x00, 0x09, 0x00, 0x00, 0x0b, 0xb8, 0x00, 0x00, 0x22, 0x22, 0xbe, 0xde, 0x00,
        0x01, 0x10, b'x', 0x00, 0x00, 0x01, 0x02, b'm', b'e', b'd', b'i', b'a', 0x00, 0x02,
    ];

    #[test]
    fn restores_the_original_packet_in_place() {
        let mut bytes = RTX;
        let view = RtpPacket::parse(&mut bytes[..]).unwrap();
        assert_eq!(view.rtx_original_sequence_number(), Some(0x0102));
        let restored = view.restore_from_rtx(Ssrc(0x1111), Pt(96)).unwrap();
        assert_eq!(restored.sequence_number(), 0x0102);
        assert_eq!(restored.ssrc(), Ssrc(0x1111));
        assert_eq!(restored.payload_type(), Pt(96));
        assert_eq!(restored.timestamp(), 3000);
        assert!(!restored.marker());
        assert_eq!(restored.payload(), b"media");
        assert_eq!(restored.padding_len(), 2);
        assert_eq!(restored.extension(1), Some(&b"x"[..]));
        assert_eq!(restored.as_bytes().len(), RTX.len() - OSN_LEN);

        // The offsets it kept are the ones a fresh parse of the restored bytes finds.
        let len = restored.as_bytes().len();
        let reparsed = RtpPacket::parse(&bytes[..len]).unwrap();
        assert_eq!(reparsed.header_len(), 20);
        assert_eq!(reparsed.payload(), b"media");
        assert_eq!(reparsed.padding_len(), 2);
        assert_eq!(reparsed.sequence_number(), 0x0102);
    }

    #[test]
    fn a_padding_only_probe_has_no_original() {
        // Header, then only padding: P set, the last byte counts 4 bytes of padding.
        let mut probe = [
            0xa0, 97, 0, 1, 0, 0, 0, 0, 0, 0, 0x22, 0x22, 0x00, 0x00, 0x00, 0x04,
        ];
        let view = RtpPacket::parse(&mut probe[..]).unwrap();
        assert_eq!(view.rtx_original_sequence_number(), None);
        assert!(view.restore_from_rtx(Ssrc(1), Pt(96)).is_none());

        let mut one_byte = [0x80, 97, 0, 1, 0, 0, 0, 0, 0, 0, 0x22, 0x22, 0x07];
        let view = RtpPacket::parse(&mut one_byte[..]).unwrap();
        assert!(view.restore_from_rtx(Ssrc(1), Pt(96)).is_none());
    }

    #[test]
    fn an_osn_without_payload_restores_an_empty_packet() {
        let mut bytes = [0x80, 97, 0, 1, 0, 0, 0, 0, 0, 0, 0x22, 0x22, 0xff, 0xfe];
        let view = RtpPacket::parse(&mut bytes[..]).unwrap();
        let restored = view.restore_from_rtx(Ssrc(7), Pt(100)).unwrap();
        assert_eq!(restored.sequence_number(), 0xfffe);
        assert_eq!(restored.payload(), b"");
        assert_eq!(restored.as_bytes().len(), 12);
    }
}
