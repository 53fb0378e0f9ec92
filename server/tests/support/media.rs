//! The known media of the interop tests: what the publisher sends (payloads made from a counter
//! and a deterministic pattern, paced in real time like a camera and a microphone) and the checks
//! a receiver makes on what arrived (every payload, byte-identical, with the sender's markers and
//! timestamp spacing, on one SSRC with sequence numbers that follow the counter).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use rtc::rtp;

use super::peer::SendTrack;

/// The two media kinds a publisher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Audio,
    Video,
}

/// 90 kHz video clock at 30 frames per second.
const VIDEO_TIMESTAMP_STEP: u32 = 3_000;
/// 48 kHz Opus clock, 20 ms packets.
const AUDIO_TIMESTAMP_STEP: u32 = 960;
const VIDEO_FRAME_INTERVAL: Duration = Duration::from_micros(33_333);
const AUDIO_PACKET_INTERVAL: Duration = Duration::from_millis(20);
const VIDEO_PAYLOAD_LEN: usize = 1_000;
const AUDIO_PAYLOAD_LEN: usize = 100;

/// The first sequence numbers and timestamps are close to the 16- and 32-bit wrap so that a
/// forwarder which mishandles rollover fails the checks.
const VIDEO_FIRST_SEQ: u16 = 65_400;
const AUDIO_FIRST_SEQ: u16 = 1_000;
const VIDEO_FIRST_TIMESTAMP: u32 = 0x1234_5678;
const AUDIO_FIRST_TIMESTAMP: u32 = 0xFFFF_8000;

/// VP8 payload descriptor (RFC 7741 §4.2): no extensions, S bit set on the first packet of a
/// frame, partition index 0.
const VP8_START_OF_FRAME: u8 = 0x10;
const VP8_CONTINUATION: u8 = 0x00;
/// A VP8 key frame header (RFC 6386 §9.1): frame tag (key frame, version 0, shown, first
/// partition of 100 bytes), start code, 640x480. Every frame is a key frame so that a forwarder
/// which waits for one before it forwards video to a new subscriber starts at the first frame.
const VP8_KEY_FRAME_HEADER: [u8; 10] = [0x90, 0x0C, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01];

/// How much media a publisher sends.
#[derive(Debug, Clone, Copy)]
pub struct MediaPlan {
    pub video_frames: u32,
    pub packets_per_frame: u32,
    pub audio_packets: u32,
}

/// One packet of the plan, in the publisher's numbering.
#[derive(Debug, Clone)]
pub struct PlannedPacket {
    pub kind: Kind,
    /// Position of the packet in its stream, counted from 0; also the payload's counter.
    pub index: u32,
    /// When it is due, from the start of sending.
    pub due: Duration,
    pub marker: bool,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub payload: Bytes,
}

impl MediaPlan {
    /// 100 video frames of 3 packets of 1000 bytes at 30 frames/s and 150 Opus-sized audio
    /// packets at 50/s: about 3.3 s of media.
    pub const STANDARD: MediaPlan = MediaPlan {
        video_frames: 100,
        packets_per_frame: 3,
        audio_packets: 150,
    };

    /// The same plan followed by `extra` more of media; packets do not depend on the length of
    /// their plan, so the longer one's first packets are the shorter one's.
    pub fn with_tail(&self, extra: Duration) -> MediaPlan {
        MediaPlan {
            video_frames: self.video_frames
                + (extra.as_micros() / VIDEO_FRAME_INTERVAL.as_micros()) as u32,
            packets_per_frame: self.packets_per_frame,
            audio_packets: self.audio_packets
                + (extra.as_micros() / AUDIO_PACKET_INTERVAL.as_micros()) as u32,
        }
    }

    pub fn count(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Audio => self.audio_packets,
            Kind::Video => self.video_frames * self.packets_per_frame,
        }
    }

    /// How long sending the whole plan takes.
    pub fn duration(&self) -> Duration {
        (VIDEO_FRAME_INTERVAL * self.video_frames).max(AUDIO_PACKET_INTERVAL * self.audio_packets)
    }

    pub fn packet(&self, kind: Kind, index: u32) -> PlannedPacket {
        match kind {
            Kind::Video => {
                let frame = index / self.packets_per_frame;
                let position = index % self.packets_per_frame;
                let mut payload = BytesMut::with_capacity(VIDEO_PAYLOAD_LEN);
                if position == 0 {
                    payload.put_u8(VP8_START_OF_FRAME);
                    payload.put_slice(&VP8_KEY_FRAME_HEADER);
                } else {
                    payload.put_u8(VP8_CONTINUATION);
                }
                payload.put_u32(index);
                fill_pattern(&mut payload, kind, index, VIDEO_PAYLOAD_LEN);
                PlannedPacket {
                    kind,
                    index,
                    due: VIDEO_FRAME_INTERVAL * frame,
                    marker: position + 1 == self.packets_per_frame,
                    sequence_number: VIDEO_FIRST_SEQ.wrapping_add(index as u16),
                    timestamp: VIDEO_FIRST_TIMESTAMP.wrapping_add(frame * VIDEO_TIMESTAMP_STEP),
                    payload: payload.freeze(),
                }
            }
            Kind::Audio => {
                let mut payload = BytesMut::with_capacity(AUDIO_PAYLOAD_LEN);
                payload.put_u32(index);
                fill_pattern(&mut payload, kind, index, AUDIO_PAYLOAD_LEN);
                PlannedPacket {
                    kind,
                    index,
                    due: AUDIO_PACKET_INTERVAL * index,
                    // The start of a talk spurt.
                    marker: index == 0,
                    sequence_number: AUDIO_FIRST_SEQ.wrapping_add(index as u16),
                    timestamp: AUDIO_FIRST_TIMESTAMP.wrapping_add(index * AUDIO_TIMESTAMP_STEP),
                    payload: payload.freeze(),
                }
            }
        }
    }

    /// Every packet of both streams, in the order they are due.
    pub fn packets(&self) -> Vec<PlannedPacket> {
        let mut packets: Vec<PlannedPacket> = [Kind::Audio, Kind::Video]
            .into_iter()
            .flat_map(|kind| (0..self.count(kind)).map(move |index| self.packet(kind, index)))
            .collect();
        packets.sort_by_key(|packet| (packet.due, packet.kind, packet.index));
        packets
    }
}

fn fill_pattern(payload: &mut BytesMut, kind: Kind, index: u32, len: usize) {
    let salt: u32 = match kind {
        Kind::Audio => 0x5A,
        Kind::Video => 0xC3,
    };
    let mut position = payload.len() as u32;
    while payload.len() < len {
        payload
            .put_u8((index.wrapping_mul(131) ^ salt).wrapping_add(position.wrapping_mul(7)) as u8);
        position += 1;
    }
}

/// The counter a payload of the plan carries, if it looks like one.
pub fn counter_of(kind: Kind, payload: &[u8]) -> Option<u32> {
    let offset = match (kind, payload.first()) {
        (Kind::Audio, _) => 0,
        (Kind::Video, Some(&descriptor)) if descriptor & VP8_START_OF_FRAME != 0 => {
            1 + VP8_KEY_FRAME_HEADER.len()
        }
        (Kind::Video, Some(_)) => 1,
        (Kind::Video, None) => return None,
    };
    let bytes = payload.get(offset..offset + 4)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// Sends the plan on the publisher's two tracks, paced in real time from now.
pub async fn send_plan(
    plan: &MediaPlan,
    audio: &SendTrack,
    video: &SendTrack,
) -> anyhow::Result<()> {
    let start = tokio::time::Instant::now();
    for packet in plan.packets() {
        tokio::time::sleep_until(start + packet.due).await;
        let track = match packet.kind {
            Kind::Audio => audio,
            Kind::Video => video,
        };
        track
            .write(
                packet.marker,
                packet.sequence_number,
                packet.timestamp,
                packet.payload.clone(),
            )
            .await
            .with_context(|| format!("writing {:?} packet {}", packet.kind, packet.index))?;
    }
    Ok(())
}

/// One RTP packet as a receiving peer saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub ssrc: u32,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_type: u8,
    pub payload: Bytes,
}

impl Received {
    pub fn from_rtp(packet: &rtp::Packet) -> Self {
        Self {
            ssrc: packet.header.ssrc,
            sequence_number: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload_type: packet.header.payload_type,
            payload: packet.payload.clone(),
        }
    }
}

/// What a receiver must have seen of one stream, and from whom it must not have seen it.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    pub plan: &'a MediaPlan,
    pub kind: Kind,
    /// The publisher's SSRC, when the packets come through a forwarder that must use its own.
    pub foreign_ssrc: Option<u32>,
    /// The SSRCs the sender of these packets declared in its SDP (empty: none declared).
    pub declared_ssrcs: &'a [u32],
}

impl Expectation<'_> {
    /// Number of distinct counters below `required` among `received`.
    pub fn distinct_below(&self, received: &[Received], required: u32) -> usize {
        received
            .iter()
            .filter_map(|packet| counter_of(self.kind, &packet.payload))
            .filter(|&counter| counter < required)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Every payload exactly once, in order, byte-identical, with continuous sequence numbers.
    pub fn check_exact(&self, received: &[Received]) -> anyhow::Result<()> {
        let count = self.plan.count(self.kind);
        self.check_each(received)?;
        let counters: Vec<u32> = received
            .iter()
            .filter_map(|packet| counter_of(self.kind, &packet.payload))
            .collect();
        if counters.iter().copied().ne(0..count) {
            let first_wrong = counters
                .iter()
                .enumerate()
                .find(|&(position, &counter)| counter != position as u32);
            bail!(
                "{:?}: received {} packets, want counters 0..{count} once each in order; first \
                 mismatch (position, counter): {first_wrong:?}",
                self.kind,
                counters.len()
            );
        }
        for pair in received.windows(2) {
            let [earlier, later] = pair else { continue };
            ensure!(
                later.sequence_number == earlier.sequence_number.wrapping_add(1),
                "{:?}: sequence number {} follows {}",
                self.kind,
                later.sequence_number,
                earlier.sequence_number
            );
        }
        Ok(())
    }

    /// Every payload at least once (repairs may arrive late and twice), each copy byte-identical.
    pub fn check_complete(&self, received: &[Received]) -> anyhow::Result<()> {
        self.check_complete_below(received, self.plan.count(self.kind))
    }

    /// Every payload with a counter below `required` at least once, each copy of every payload
    /// byte-identical. A lossy run sends a tail beyond what it requires, because a loss at the
    /// very end is never noticed by a receiver and so never repaired.
    pub fn check_complete_below(&self, received: &[Received], required: u32) -> anyhow::Result<()> {
        self.check_each(received)?;
        let seen: BTreeSet<u32> = received
            .iter()
            .filter_map(|packet| counter_of(self.kind, &packet.payload))
            .collect();
        let missing: Vec<u32> = (0..required)
            .filter(|counter| !seen.contains(counter))
            .collect();
        ensure!(
            missing.is_empty(),
            "{:?}: {} of {required} payloads never arrived, first ones: {:?}",
            self.kind,
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        Ok(())
    }

    /// The checks every received packet must pass on its own: a payload of the plan,
    /// byte-identical, its marker bit, one SSRC (the receiver's, not the publisher's), the
    /// publisher's timestamp spacing, and a sequence number in step with its counter.
    fn check_each(&self, received: &[Received]) -> anyhow::Result<()> {
        let Some(first) = received.first() else {
            bail!("{:?}: no packet arrived", self.kind);
        };
        let first_counter = counter_of(self.kind, &first.payload)
            .with_context(|| format!("{:?}: the first payload carries no counter", self.kind))?;
        let first_planned = self.plan.packet(self.kind, first_counter);
        for packet in received {
            let counter = counter_of(self.kind, &packet.payload).with_context(|| {
                format!(
                    "{:?}: a payload of {} bytes carries no counter",
                    self.kind,
                    packet.payload.len()
                )
            })?;
            ensure!(
                counter < self.plan.count(self.kind),
                "{:?}: counter {counter} was never sent",
                self.kind
            );
            let planned = self.plan.packet(self.kind, counter);
            ensure!(
                packet.payload == planned.payload,
                "{:?} {counter}: payload differs from the one sent ({} bytes received, {} sent)",
                self.kind,
                packet.payload.len(),
                planned.payload.len()
            );
            ensure!(
                packet.marker == planned.marker,
                "{:?} {counter}: marker bit {} where {} was sent",
                self.kind,
                packet.marker,
                planned.marker
            );
            ensure!(
                packet.ssrc == first.ssrc,
                "{:?} {counter}: SSRC {} changed from {}",
                self.kind,
                packet.ssrc,
                first.ssrc
            );
            if let Some(foreign) = self.foreign_ssrc {
                ensure!(
                    packet.ssrc != foreign,
                    "{:?}: the forwarder kept the publisher's SSRC {foreign}",
                    self.kind
                );
            }
            ensure!(
                self.declared_ssrcs.is_empty() || self.declared_ssrcs.contains(&packet.ssrc),
                "{:?}: SSRC {} is not one of the declared {:?}",
                self.kind,
                packet.ssrc,
                self.declared_ssrcs
            );
            ensure!(
                packet.timestamp.wrapping_sub(first.timestamp)
                    == planned.timestamp.wrapping_sub(first_planned.timestamp),
                "{:?} {counter}: timestamp {} is not {} clock ticks after {}",
                self.kind,
                packet.timestamp,
                planned.timestamp.wrapping_sub(first_planned.timestamp),
                first.timestamp
            );
            ensure!(
                packet.sequence_number.wrapping_sub(first.sequence_number)
                    == (counter.wrapping_sub(first_counter)) as u16,
                "{:?} {counter}: sequence number {} is out of step with the counter (first {} at {})",
                self.kind,
                packet.sequence_number,
                first_counter,
                first.sequence_number
            );
        }
        Ok(())
    }
}
