//! RFC 7983 section 7 demultiplexing of the one media port: the first byte tells STUN, ZRTP,
//! DTLS, TURN channel data and RTP/RTCP apart, and RFC 5761 section 4 tells RTCP from RTP by
//! the second byte.

use crate::Error;
use crate::stun::StunMessage;

/// What a datagram is, judged by its first two bytes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatagramKind {
    /// 0..=3
    Stun,
    /// 16..=19
    Zrtp,
    /// 20..=63
    Dtls,
    /// 64..=79
    TurnChannel,
    /// 128..=191 with a second byte outside 192..=223
    Rtp,
    /// 128..=191 with a second byte (the RTCP packet type) in 192..=223
    Rtcp,
    /// Anything else, including an empty datagram.
    Unknown,
}

/// Classifies a datagram by its first byte (and, for RTP/RTCP, its second), without parsing.
pub fn classify(datagram: &[u8]) -> DatagramKind {
    match datagram {
        [0..=3, ..] => DatagramKind::Stun,
        [16..=19, ..] => DatagramKind::Zrtp,
        [20..=63, ..] => DatagramKind::Dtls,
        [64..=79, ..] => DatagramKind::TurnChannel,
        // RTCP packet types 192..=223 would be RTP payload types 64..=95 with the marker bit
        // set, which RFC 5761 forbids for multiplexed RTP.
        [128..=191, 192..=223, ..] => DatagramKind::Rtcp,
        [128..=191, _, ..] => DatagramKind::Rtp,
        _ => DatagramKind::Unknown,
    }
}

/// A datagram of the media port, borrowed and classified; STUN is parsed (it is answered
/// here), everything else is handed on as bytes to its own parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A validated STUN message.
    Stun(StunMessage<'a>),
    /// ZRTP (not used by WebRTC; reported so it can be counted and dropped).
    Zrtp(&'a [u8]),
    /// A DTLS record (or several).
    Dtls(&'a [u8]),
    /// TURN ChannelData.
    TurnChannel(&'a [u8]),
    /// An (S)RTP packet.
    Rtp(&'a [u8]),
    /// An (S)RTCP compound packet.
    Rtcp(&'a [u8]),
    /// Nothing RFC 7983 knows.
    Unknown(&'a [u8]),
}

impl<'a> Datagram<'a> {
    /// Classifies the datagram and parses it if it is STUN.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, Error> {
        Ok(match classify(datagram) {
            DatagramKind::Stun => Datagram::Stun(StunMessage::parse(datagram)?),
            DatagramKind::Zrtp => Datagram::Zrtp(datagram),
            DatagramKind::Dtls => Datagram::Dtls(datagram),
            DatagramKind::TurnChannel => Datagram::TurnChannel(datagram),
            DatagramKind::Rtp => Datagram::Rtp(datagram),
            DatagramKind::Rtcp => Datagram::Rtcp(datagram),
            DatagramKind::Unknown => Datagram::Unknown(datagram),
        })
    }

    /// The kind of this datagram.
    pub fn kind(&self) -> DatagramKind {
        match self {
            Datagram::Stun(_) => DatagramKind::Stun,
            Datagram::Zrtp(_) => DatagramKind::Zrtp,
            Datagram::Dtls(_) => DatagramKind::Dtls,
            Datagram::TurnChannel(_) => DatagramKind::TurnChannel,
            Datagram::Rtp(_) => DatagramKind::Rtp,
            Datagram::Rtcp(_) => DatagramKind::Rtcp,
            Datagram::Unknown(_) => DatagramKind::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_byte_ranges_follow_rfc_7983() {
        for b in 0u8..=255 {
            let expected = match b {
                0..=3 => DatagramKind::Stun,
                16..=19 => DatagramKind::Zrtp,
                20..=63 => DatagramKind::Dtls,
                64..=79 => DatagramKind::TurnChannel,
                128..=191 => DatagramKind::Rtp,
                _ => DatagramKind::Unknown,
            };
            assert_eq!(classify(&[b, 96, 0, 0]), expected, "first byte {b}");
        }
    }

    #[test]
    fn rtcp_is_told_from_rtp_by_the_packet_type() {
        // Receiver report (201) and PLI (206) are RTCP.
        assert_eq!(classify(&[0x81, 201, 0, 7]), DatagramKind::Rtcp);
        assert_eq!(classify(&[0x81, 206, 0, 2]), DatagramKind::Rtcp);
        assert_eq!(classify(&[0x80, 192]), DatagramKind::Rtcp);
        assert_eq!(classify(&[0x80, 223]), DatagramKind::Rtcp);
        // VP8 with and without marker bit, and the edges of the RTCP range, are RTP.
        assert_eq!(classify(&[0x80, 96]), DatagramKind::Rtp);
        assert_eq!(classify(&[0x80, 0x80 | 96]), DatagramKind::Rtp);
        assert_eq!(classify(&[0x80, 191]), DatagramKind::Rtp);
        assert_eq!(classify(&[0x80, 224]), DatagramKind::Rtp);
    }

    #[test]
    fn short_and_empty_datagrams_are_unknown_or_rejected() {
        assert_eq!(classify(&[]), DatagramKind::Unknown);
        // One byte cannot tell RTP from RTCP.
        assert_eq!(classify(&[0x80]), DatagramKind::Unknown);
        assert_eq!(Datagram::parse(&[]), Ok(Datagram::Unknown(&[])));
        assert_eq!(Datagram::parse(&[0x00, 0x01, 0x00]), Err(Error::Truncated));
    }

    #[test]
    fn parse_borrows_the_input() {
        let dtls = [22u8, 0xfe, 0xfd, 0, 0];
        assert_eq!(Datagram::parse(&dtls), Ok(Datagram::Dtls(&dtls)));
        let rtp = [0x80u8, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        let parsed = Datagram::parse(&rtp).unwrap();
        assert_eq!(parsed, Datagram::Rtp(&rtp));
        assert_eq!(parsed.kind(), DatagramKind::Rtp);
        let stun = [
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        let Datagram::Stun(msg) = Datagram::parse(&stun).unwrap() else {
            panic!("not classified as STUN");
        };
        assert!(msg.is_binding_request());
    }
}
