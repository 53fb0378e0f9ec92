//! A forwarding workload for measurements: one publisher's browser-like 1200-byte VP8 packets
//! (one-byte extensions: mid, abs-send-time, transport-cc) routed to N subscribers, with SRTP
//! (AEAD_AES_128_GCM) on both sides, as a media worker does between its socket calls.
//!
//! [`ForwardWorkload::simulcast`] is the same with a rid-simulcast publisher: three VP8 layers
//! with three temporal layers each, subscribers capped at each layer in turn and every
//! second one at temporal layer 1, so layer selection, picture renumbering and temporal
//! filtering are on the path.
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
    SubscribedStream, SubscriptionId, TransmitQueue,
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

/// The simulcast workload's rids, in a=simulcast order (lowest first).
const RIDS: [&str; 3] = ["q", "h", "f"];
/// Its layers' widths (the keyframes say them).
const WIDTHS: [u16; 3] = [320, 640, 1280];
/// A keyframe on each layer every this many of its packets (so every subscription starts
/// early and the layer order is learned).
const KEYFRAME_EVERY: u16 = 256;

/// A plaintext packet of simulcast layer `layer` with its own sequence number `seq`: mid "v"
/// and the layer's rid, abs-send-time and transport-cc extensions, a VP8 descriptor with
/// PictureID, TL0PICIDX and TID (pattern 0, 2, 1, 2 by picture), 1200 bytes in all.
pub fn simulcast_packet(layer: usize, seq: u16) -> Vec<u8> {
    let rid = RIDS.get(layer).copied().unwrap_or("q").as_bytes();
    let mut packet = vec![0x90, 96, 0, 0, 0, 0, 0, 0];
    packet[2..4].copy_from_slice(&seq.to_be_bytes());
    // Two packets a picture.
    let picture = seq / 2;
    packet[4..8].copy_from_slice(&(u32::from(picture) * 3000).to_be_bytes());
    packet.extend_from_slice(&(0x2000 + layer as u32).to_be_bytes());
    // mid (id 4), rid (id 10), abs-send-time (id 2), transport-cc (id 3): 15 bytes, padded.
    let mut block = vec![0x40, b'v', 0xA0 | (rid.len() as u8 - 1)];
    block.extend_from_slice(rid);
    block.extend_from_slice(&[0x22, 1, 2, 3, 0x31, (seq >> 8) as u8, seq as u8]);
    while block.len() % 4 != 0 {
        block.push(0);
    }
    packet.extend_from_slice(&[0xBE, 0xDE, 0, (block.len() / 4) as u8]);
    packet.extend_from_slice(&block);
    let temporal = [0u8, 2, 1, 2][usize::from(picture % 4)];
    let tl0 = (picture / 4) as u8;
    let [hi, lo] = (picture & 0x7fff).to_be_bytes();
    let start = if seq.is_multiple_of(2) { 0x10 } else { 0 };
    packet.extend_from_slice(&[0x80 | start, 0xE0, 0x80 | hi, lo, tl0, temporal << 6]);
    if seq.is_multiple_of(KEYFRAME_EVERY) {
        let width = WIDTHS.get(layer).copied().unwrap_or(320);
        packet.extend_from_slice(&[0x10, 0, 0, 0x9d, 0x01, 0x2a]);
        packet.extend_from_slice(&width.to_le_bytes());
        packet.extend_from_slice(&(width * 9 / 16).to_le_bytes());
    } else {
        packet.extend_from_slice(&[0x11, 0, 0]);
    }
    packet.resize(1200, 0x55);
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
    /// The simulcast workload: each layer's next sequence number, and the layer of the
    /// next packet.
    simulcast: Option<([u16; 3], usize)>,
}

impl ForwardWorkload {
    /// The rid-simulcast workload: subscriber `i` capped at layer `i % 3` (by rank), every
    /// odd one also at temporal layer 1. Every packet is one of the three layers in turn.
    pub fn simulcast(subscribers: usize, start: Instant) -> Self {
        let stream = PublishedStream {
            ssrc: Ssrc(0),
            rtx_ssrc: None,
            extensions: ExtensionIds {
                rid: Some(10),
                ..published_stream().extensions
            },
            mid: Some("v".to_owned()),
            rids: RIDS.iter().map(|r| (*r).to_owned()).collect(),
            ..published_stream()
        };
        let mut workload =
            Self::with_track(subscribers, start, stream, |router, i, subscription| {
                router
                    .set_max_layer(subscription, Some(i % 3))
                    .expect("a subscription");
                if i % 2 == 1 {
                    router
                        .set_max_temporal_layer(subscription, Some(1))
                        .expect("a subscription");
                }
            });
        workload.simulcast = Some(([0; 3], 0));
        workload
    }

    /// Sets up the room at `start`; the workload then moves its own virtual time forward by
    /// a packet interval per forwarded packet (the crate reads no clock).
    pub fn new(subscribers: usize, start: Instant) -> Self {
        Self::with_track(subscribers, start, published_stream(), |_, _, _| {})
    }

    /// The publisher's `stream` and `subscribers` subscriptions of it, each set up further by
    /// `configure` (with its index).
    fn with_track(
        subscribers: usize,
        now: Instant,
        stream: PublishedStream,
        configure: impl Fn(&mut Router, usize, SubscriptionId),
    ) -> Self {
        let mut router = Router::new(RouterConfig::default());
        let mut out = TransmitQueue::with_capacity(subscribers + 4);
        let track = router
            .add_published_stream(now, PUBLISHER, stream)
            .expect("a published track");
        let mut outbound = Vec::with_capacity(subscribers);
        for i in 0..subscribers {
            let subscription = router
                .subscribe(
                    now,
                    SessionId(100 + i as u64),
                    track,
                    subscriber_stream(i),
                    &mut out,
                )
                .expect("a subscription");
            configure(&mut router, i, subscription);
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
            simulcast: None,
        }
    }

    /// The publisher's next packet, protected, as it arrives from the network.
    pub fn next_datagram(&mut self) -> Vec<u8> {
        self.publisher_seq = self.publisher_seq.wrapping_add(1);
        let mut buf = match &mut self.simulcast {
            None => video_packet(self.publisher_seq),
            Some((seqs, next)) => {
                let layer = *next;
                *next = (layer + 1) % seqs.len();
                let seq = seqs.get_mut(layer).map_or(0, |seq| {
                    let this = *seq;
                    *seq = this.wrapping_add(1);
                    this
                });
                simulcast_packet(layer, seq)
            }
        };
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

/// The publisher's VP8 track on one SSRC (with RTX): mid, abs-send-time and transport-cc.
fn published_stream() -> PublishedStream {
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
    }
}

/// Subscriber `i`'s stream: its own SSRCs and bases, mid, abs-send-time and transport-cc.
fn subscriber_stream(i: usize) -> SubscribedStream {
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
        red_pt: None,
        initial_seq: i as u16,
        initial_timestamp: i as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulcast_workload_forwards_one_layer_per_subscriber_and_filters_temporal_layers() {
        let mut workload = ForwardWorkload::simulcast(6, crate::test_time::origin());
        let mut copies = [0usize; 6];
        for _ in 0..3_000 {
            let mut datagram = workload.next_datagram();
            workload.forward(&mut datagram);
            for transmit in workload.queued().as_slice() {
                if let Some(n) = transmit.session.0.checked_sub(100) {
                    copies[n as usize] += 1;
                }
            }
        }
        // Every subscriber gets about a third of the packets (its layer's), the odd ones
        // half of that (temporal layer 2 is every second picture), from a keyframe of its
        // layer on: the first, or the second (256 packets later) when the layer order
        // learned from the first keyframes moved its layer.
        for (i, &n) in copies.iter().enumerate() {
            let expected = if i % 2 == 1 { 500 } else { 1_000 };
            assert!(
                n >= (expected - expected * 256 / 1_000) && n <= expected + 10,
                "subscriber {i}: {n} copies, about {expected} expected"
            );
        }
    }
}
