//! Fuzz harness for the rtcp module: iterates a compound datagram and walks every view's
//! contents (report blocks, SDES items, NACK lists, transport-cc statuses...), then checks
//! that the writers' output for what was read parses back.

use crate::rtcp::feedback::{write_nack, write_pli};
use crate::rtcp::twcc::write_transport_cc;
use crate::rtcp::{RtcpPacket, iter_compound};
use crate::{SeqNo, Ssrc};

/// Feeds arbitrary bytes through the rtcp parsers.
pub fn run(data: &[u8]) {
    let mut out = [0u8; 1500];
    for item in iter_compound(data) {
        let Ok(packet) = item else {
            break;
        };
        match packet {
            RtcpPacket::SenderReport(sr) => {
                let _ = sr.sender_info();
                let _ = sr.report_blocks().count();
            }
            RtcpPacket::ReceiverReport(rr) => {
                let _ = (rr.ssrc(), rr.report_blocks().count());
            }
            RtcpPacket::Sdes(sdes) => {
                for chunk in sdes.chunks() {
                    let _ = (chunk.cname(), chunk.items().count());
                }
            }
            RtcpPacket::Bye(bye) => {
                let _ = (bye.ssrcs().count(), bye.reason());
            }
            RtcpPacket::App(app) => {
                let _ = (app.subtype(), app.ssrc(), app.name(), app.data());
            }
            RtcpPacket::Nack(nack) => {
                let mut lost = [0u16; 64];
                let mut n = 0;
                for (slot, seq) in lost.iter_mut().zip(nack.lost()) {
                    *slot = seq;
                    n += 1;
                }
                let _ = nack.pairs().count();
                if let Some(lost) = lost.get(..n)
                    && !lost.is_empty()
                    && lost.windows(2).all(|w| matches!(w, [a, b] if a < b))
                {
                    let len = write_nack(&mut out, nack.sender_ssrc(), nack.media_ssrc(), lost)
                        .unwrap_or_else(|_| unreachable!());
                    let written = out.get(..len).unwrap_or_default();
                    let Some(Ok(RtcpPacket::Nack(again))) = iter_compound(written).next() else {
                        unreachable!()
                    };
                    assert!(again.lost().eq(lost.iter().copied()));
                }
            }
            RtcpPacket::TransportCc(cc) => {
                let _ = (cc.base_seq(), cc.reference_time(), cc.fb_count());
                let mut records = [(SeqNo(0), 0u64); 64];
                let mut n = 0;
                let mut arrival = u64::from(cc.reference_time()) * 64_000;
                for (i, (_, delta)) in cc.statuses().enumerate() {
                    if let (Some(delta), Some(slot)) = (delta, records.get_mut(n)) {
                        arrival = arrival.saturating_add_signed(i64::from(delta) * 250);
                        *slot = (SeqNo(i as u64), arrival);
                        n += 1;
                    }
                }
                assert_eq!(cc.statuses().count(), usize::from(cc.status_count()));
                if let Some(records) = records.get(..n)
                    && !records.is_empty()
                    && let Ok(written) = write_transport_cc(&mut out, Ssrc(1), Ssrc(2), 0, records)
                {
                    let bytes = out.get(..written.len).unwrap_or_default();
                    let Some(Ok(RtcpPacket::TransportCc(again))) = iter_compound(bytes).next()
                    else {
                        unreachable!()
                    };
                    let received = again.statuses().filter(|(_, d)| d.is_some()).count();
                    assert_eq!(received, written.records);
                }
            }
            RtcpPacket::Pli(pli) => {
                let _ = write_pli(&mut out, pli.sender_ssrc, pli.media_ssrc);
            }
            RtcpPacket::Fir(fir) => {
                let _ = (fir.sender_ssrc(), fir.entries().count());
            }
            RtcpPacket::Remb(remb) => {
                let _ = (remb.sender_ssrc(), remb.bitrate(), remb.ssrcs().count());
            }
            RtcpPacket::Unknown(unknown) => {
                let _ = unknown.body.len();
            }
        }
    }
}
