//! Fuzz harness for the rtp module: parses with and without padding validation, reads every
//! accessor, walks the extensions, rewrites a copy in place (setters, extension ids, an
//! element's data) and checks the copy still parses to the same layout, adds an extension
//! element to a copy of the header and checks every element is still read, and feeds
//! sequence numbers and timestamps to the unwrappers. The payload is also read as a RED
//! payload (RFC 2198), and a valid one is written again and must read back the same.

use crate::rtp::red::{RedPayload, set_block_payload_types, write_red};
use crate::rtp::{RtpPacket, SeqNoUnwrapper, TimestampUnwrapper, add_extension, header_len};
use crate::{Pt, Ssrc};

/// Largest input rewritten in the stack copy.
const COPY_LEN: usize = 1500;

/// Feeds arbitrary bytes through the rtp parsers.
pub fn run(data: &[u8]) {
    let header = header_len(data);
    if let Ok(packet) = RtpPacket::parse_header_only(data) {
        assert_eq!(header, Ok(packet.header_len()));
        read_all(&packet);
    }
    let Ok(packet) = RtpPacket::parse(data) else {
        return;
    };
    read_all(&packet);
    assert_eq!(
        packet.header_len() + packet.payload().len() + packet.padding_len(),
        data.len()
    );

    let mut copy = [0u8; COPY_LEN];
    if let Some(dst) = copy.get_mut(..data.len()) {
        dst.copy_from_slice(data);
        let mut rewritten = RtpPacket::parse(dst).unwrap_or_else(|_| unreachable!());
        rewritten.set_ssrc(Ssrc(0x1234_5678));
        rewritten.set_sequence_number(rewritten.sequence_number().wrapping_add(1));
        rewritten.set_timestamp(rewritten.timestamp().wrapping_add(3000));
        rewritten.set_payload_type(Pt(96));
        rewritten.set_marker(!packet.marker());
        if let Some((id, _)) = packet.extensions().next()
            && let Some(value) = rewritten.extension_mut(id)
        {
            value.fill(0xab);
        }
        rewritten.remap_extension_ids(|id| (id % 3 != 0).then_some(id.wrapping_add(1)));
        let reparsed = RtpPacket::parse(rewritten.as_bytes()).unwrap_or_else(|_| unreachable!());
        assert_eq!(reparsed.header_len(), packet.header_len());
        assert_eq!(reparsed.payload(), packet.payload());
        assert_eq!(reparsed.ssrc(), Ssrc(0x1234_5678));
        assert!(reparsed.extensions().count() <= packet.extensions().count());
    }

    // An element added to the header (a transport-wide number, as the router adds one):
    // the header still parses, the new element reads back, the old ones are unchanged.
    let id = data.last().map_or(1, |b| b % 16);
    let mut grown = [0u8; COPY_LEN];
    let header_len = packet.header_len();
    if let (Some(dst), Some(src)) = (grown.get_mut(..header_len), data.get(..header_len)) {
        dst.copy_from_slice(src);
        if let Some((len, at)) = add_extension(&mut grown, header_len, id, 2) {
            assert!(len >= header_len && len <= header_len + 8);
            if let Some(value) = grown.get_mut(at..at + 2) {
                value.copy_from_slice(&[0xca, 0xfe]);
            }
            let reparsed = RtpPacket::parse_header_only(grown.get(..len).unwrap_or_default())
                .unwrap_or_else(|_| unreachable!());
            assert_eq!(reparsed.header_len(), len);
            if packet.extension(id).is_none() {
                assert_eq!(reparsed.extension(id), Some(&[0xca, 0xfe][..]));
            }
            // What a lookup of each old id finds (the first element of that id: a packet
            // may repeat one) is unchanged.
            for (old, _) in packet.extensions().filter(|(old, _)| *old != id) {
                assert_eq!(reparsed.extension(old), packet.extension(old));
            }
        }
    }

    red(packet.payload());

    let mut seqs = SeqNoUnwrapper::new();
    let mut timestamps = TimestampUnwrapper::new();
    for pair in packet.payload().chunks_exact(4) {
        if let &[a, b, c, d] = pair {
            seqs.unwrap(u16::from_be_bytes([a, b]));
            timestamps.unwrap(u32::from_be_bytes([a, b, c, d]));
        }
    }
}

/// Reads `payload` as RED; a valid one, written again from its blocks, reads back the same.
fn red(payload: &[u8]) {
    let Ok(parsed) = RedPayload::parse(payload) else {
        return;
    };
    let blocks: Vec<_> = parsed.blocks().collect();
    assert_eq!(blocks.len(), parsed.redundant_blocks() + 1);
    let Some((primary, redundant)) = blocks.split_last() else {
        unreachable!("a RED payload has a primary block");
    };
    let pt = primary.pt;
    let mut copy = [0u8; COPY_LEN];
    let pairs = redundant.iter().map(|b| (b.timestamp_offset, b.data));
    if let Some(len) = write_red(&mut copy, pt, pairs, primary.data) {
        let written = copy.get_mut(..len).unwrap_or_default();
        set_block_payload_types(written, redundant.len(), pt);
        let reread = RedPayload::parse(&*written).unwrap_or_else(|_| unreachable!());
        for (again, block) in reread.blocks().zip(&blocks) {
            assert_eq!(
                (again.timestamp_offset, again.data),
                (block.timestamp_offset, block.data)
            );
            assert_eq!(again.pt, pt);
        }
    }
}

fn read_all(packet: &RtpPacket<&[u8]>) {
    let _ = (
        packet.marker(),
        packet.payload_type(),
        packet.sequence_number(),
        packet.timestamp(),
        packet.ssrc(),
        packet.has_extension(),
        packet.extension_form(),
    );
    let _ = packet.csrcs().count();
    for (id, _) in packet.extensions() {
        assert!(packet.extension(id).is_some());
    }
}
