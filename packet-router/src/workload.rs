//! A forwarding workload for measurements: one publisher's browser-like 1200-byte VP8 packets
//! (one-byte extensions: mid, abs-send-time, transport-cc) routed to N subscribers, with SRTP
//! (AEAD_AES_128_GCM) on both sides, as a media worker does between its socket calls.
//!
//! The criterion `forward` bench times it and `benches/examples/forward_profile.rs` runs it under
//! callgrind, so both measure the same code path. Set-up failures panic: this is measurement
//! code fed with its own constants, never with peer input.

use std::time::{Duration, Instant};

use rtc_core::keying::{SrtpMasterKey, SrtpProfile};
use rtc_core::srtp::SrtpContext;
use rtc_core::{Pt, Ssrc};

use crate::{
    Codec, CodecParams, ExtensionIds, MediaKind, PublishedStream, Router, RouterConfig, SessionId,
    SubscribedStream, TransmitQueue,
};

/// Payload bytes of each packet: with the 12-byte header and 28 bytes of extensions, 1200.
const PAYLOAD_LEN: usize = 1160;

/// The publisher's session.
pub const PUBLISHER: SessionId = SessionId(1);

/// Virtual time between two packets (about what a 1.5 Mbit/s video stream and its fan-out
/// leave between packets of one track).
const PACKET_INTERVAL: Duration = Duration::from_micros(100);

/// An SRTP context whose keys are derived from `seed`.
pub fn srtp_context(seed: u8) -> SrtpContext {
    let master = SrtpMasterKey {
        key: [seed; 32],
        salt: [seed ^ 0x5a; 14],
    };
    SrtpContext::new(SrtpProfile::AeadAes128Gcm, &master).expect("a valid SRTP context")
}

/// A browser-like plaintext video packet with sequence number `seq`, 1200 bytes in all.
pub fn video_packet(seq: u16) -> Vec<u8> {
    let mut packet = vec![
        0x90, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x01, 0xBE, 0xDE, 0, 3,
    ];
    packet[2..4].copy_from_slice(&seq.to_be_bytes());
    packet[4..8].copy_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    packet.extend_from_slice(&[0x40, b'1', 0x22, 1, 2, 3, 0x31, 0, 0, 0, 0, 0]);
    packet.extend((0..PAYLOAD_LEN).map(|i| i as u8));
    packet
}

/// One publisher and `subscribers` subscribers of its video track, each with its own keys.
#[derive(Debug)]
pub struct ForwardWorkload {
    publisher_srtp: SrtpContext,
    publisher_seq: u16,
    inbound: SrtpContext,
    router: Router,
    outbound: Vec<SrtpContext>,
    out: TransmitQueue,
    now: Instant,
}

impl ForwardWorkload {
    /// Sets up the room at `start`; the workload then moves its own virtual time forward by
    /// a packet interval per forwarded packet (the crate reads no clock).
    pub fn new(subscribers: usize, start: Instant) -> Self {
        let now = start;
        let mut router = Router::new(RouterConfig::default());
        let mut out = TransmitQueue::with_capacity(subscribers + 4);
        let track = router
            .add_published_stream(
                now,
                PUBLISHER,
                PublishedStream {
                    kind: MediaKind::Video,
                    ssrc: Ssrc(0x1001),
                    rtx_ssrc: Some(Ssrc(0x1002)),
                    codecs: vec![CodecParams {
                        codec: Codec::Vp8,
                        pt: Pt(96),
                        rtx_pt: Some(Pt(97)),
                    }],
                    extensions: ExtensionIds {
                        mid: Some(4),
                        abs_send_time: Some(2),
                        transport_cc: Some(3),
                        ..ExtensionIds::default()
                    },
                    nack: true,
                    mid: None,
                    rids: Vec::new(),
                },
            )
            .expect("a published track");
        let mut outbound = Vec::with_capacity(subscribers);
        for i in 0..subscribers {
            router
                .subscribe(
                    now,
                    SessionId(100 + i as u64),
                    track,
                    SubscribedStream {
                        ssrc: Ssrc(0xA000 + i as u32),
                        rtx_ssrc: Some(Ssrc(0xB000 + i as u32)),
                        codecs: vec![CodecParams {
                            codec: Codec::Vp8,
                            pt: Pt(100),
                            rtx_pt: Some(Pt(101)),
                        }],
                        extensions: ExtensionIds {
                            mid: Some(1),
                            abs_send_time: Some(5),
                            transport_cc: Some(7),
                            ..ExtensionIds::default()
                        },
                        initial_seq: i as u16,
                        initial_timestamp: i as u32,
                    },
                    &mut out,
                )
                .expect("a subscription");
            outbound.push(srtp_context(0x40 + i as u8));
        }
        out.clear();
        ForwardWorkload {
            publisher_srtp: srtp_context(7),
            publisher_seq: 0,
            inbound: srtp_context(7),
            router,
            outbound,
            out,
            now,
        }
    }

    /// The publisher's next packet, protected, as it arrives from the network.
    pub fn next_datagram(&mut self) -> Vec<u8> {
        self.publisher_seq = self.publisher_seq.wrapping_add(1);
        let mut buf = video_packet(self.publisher_seq);
        let len = buf.len();
        buf.resize(len + 32, 0);
        let protected = self
            .publisher_srtp
            .protect_rtp(&mut buf, len)
            .expect("protect");
        buf.truncate(protected);
        buf
    }

    /// What a worker does with one received datagram: unprotect in place, route, and protect
    /// every copy with its subscriber's keys. Returns the protected bytes queued.
    pub fn forward(&mut self, datagram: &mut [u8]) -> usize {
        self.now += PACKET_INTERVAL;
        self.out.clear();
        let Ok(len) = self.inbound.unprotect_rtp(datagram) else {
            return 0;
        };
        let Some(plain) = datagram.get_mut(..len) else {
            return 0;
        };
        if self
            .router
            .handle_rtp(self.now, PUBLISHER, plain, &mut self.out)
            .is_err()
        {
            return 0;
        }
        let mut bytes = 0;
        for (transmit, srtp) in self.out.as_mut_slice().iter_mut().zip(&mut self.outbound) {
            let len = transmit.len;
            bytes += srtp.protect_rtp(&mut transmit.buf[..], len).unwrap_or(0);
        }
        bytes
    }

    /// The copies the last [`ForwardWorkload::forward`] queued.
    pub fn queued(&self) -> &TransmitQueue {
        &self.out
    }
}
