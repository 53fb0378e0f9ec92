//! Synthetic media and its accounting. A publisher sends Opus-sized audio (50 packets/s) and
//! VP8-shaped video (30 frames/s, each frame a burst of equal 1200-byte packets, about
//! 1.5 Mbit/s, a keyframe at the start, on request and every few seconds). Every payload ends
//! with the send time (nanoseconds since the run's epoch), so a receiver that unprotects a
//! packet learns how long it spent inside the server. Receivers count packets per SSRC from
//! the cleartext RTP header: delivered, lost (sequence gaps) and duplicates.

use std::time::{Duration, Instant};

use rtc_core::rtp::SeqNoUnwrapper;

/// Time between audio packets (Opus 20 ms frames: 50 packets/s).
pub const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// Bytes of an audio payload (Opus at about 32 kbit/s).
pub const AUDIO_PAYLOAD_LEN: usize = 100;
/// Time between video frames (30 frames/s).
pub const VIDEO_FRAME_INTERVAL: Duration = Duration::from_nanos(1_000_000_000 / 30);
/// Bytes of a video payload: every packet of a frame has this size, so a frame's packets can
/// leave in one GSO send.
pub const VIDEO_PAYLOAD_LEN: usize = 1200;
/// Packets of a delta frame: 5 x 1200 bytes x 30 frames/s = 1.44 Mbit/s.
pub const DELTA_FRAME_PACKETS: usize = 5;
/// Packets of a keyframe (three times a delta frame).
pub const KEYFRAME_PACKETS: usize = 15;
/// Time between periodic keyframes.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(3);
/// Shortest time between keyframes sent on request (PLI/FIR), like an encoder's throttle.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(300);
/// Bytes of the send time at the end of every payload.
pub const SEND_TIME_LEN: usize = 8;
/// Bytes of an RTP header without CSRCs or extensions.
pub const RTP_HEADER_LEN: usize = 12;

/// Writes a 12-byte RTP header.
fn write_rtp_header(buf: &mut [u8], pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32) {
    let Some(header) = buf.get_mut(..RTP_HEADER_LEN) else {
        return;
    };
    header[0] = 0x80;
    header[1] = pt | if marker { 0x80 } else { 0 };
    header[2..4].copy_from_slice(&seq.to_be_bytes());
    header[4..8].copy_from_slice(&ts.to_be_bytes());
    header[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Stores the send time in the last [`SEND_TIME_LEN`] bytes of `packet`.
fn stamp(packet: &mut [u8], sent_ns: u64) {
    let len = packet.len();
    if let Some(tail) = packet.get_mut(len.saturating_sub(SEND_TIME_LEN)..) {
        tail.copy_from_slice(&sent_ns.to_be_bytes());
    }
}

/// The send time at the end of a plain RTP packet, if it is long enough to carry one.
pub fn read_send_time(plain_packet: &[u8]) -> Option<u64> {
    let len = plain_packet.len();
    if len < RTP_HEADER_LEN + SEND_TIME_LEN {
        return None;
    }
    let tail: [u8; SEND_TIME_LEN] = plain_packet.get(len - SEND_TIME_LEN..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// One publisher's Opus stream.
#[derive(Debug)]
pub struct AudioSource {
    ssrc: u32,
    pt: u8,
    seq: u16,
    timestamp: u32,
    /// When the next packet is due.
    pub next_at: Instant,
}

impl AudioSource {
    /// A stream whose first packet is due at `start`.
    pub fn new(ssrc: u32, pt: u8, start: Instant, seed: u32) -> Self {
        AudioSource {
            ssrc,
            pt,
            seq: seed as u16,
            timestamp: seed.rotate_left(7),
            next_at: start,
        }
    }

    /// Writes the next plain packet into `buf` and returns its length; schedules the next.
    pub fn write_next(&mut self, buf: &mut [u8], sent_ns: u64) -> usize {
        let len = RTP_HEADER_LEN + AUDIO_PAYLOAD_LEN;
        let Some(packet) = buf.get_mut(..len) else {
            return 0;
        };
        write_rtp_header(packet, self.pt, false, self.seq, self.timestamp, self.ssrc);
        // A TOC byte of a 20 ms CELT frame, then filler: the server never looks inside.
        packet[RTP_HEADER_LEN] = 0xfc;
        stamp(packet, sent_ns);
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(960);
        self.next_at += AUDIO_INTERVAL;
        len
    }
}

/// One publisher's VP8 stream.
#[derive(Debug)]
pub struct VideoSource {
    ssrc: u32,
    pt: u8,
    seq: u16,
    timestamp: u32,
    /// When the next frame is due.
    pub next_at: Instant,
    next_keyframe_at: Instant,
    last_keyframe_at: Option<Instant>,
    keyframe_requested: bool,
}

impl VideoSource {
    /// A stream whose first frame (a keyframe) is due at `start`.
    pub fn new(ssrc: u32, pt: u8, start: Instant, seed: u32) -> Self {
        VideoSource {
            ssrc,
            pt,
            seq: seed as u16,
            timestamp: seed.rotate_left(13),
            next_at: start,
            next_keyframe_at: start,
            last_keyframe_at: None,
            keyframe_requested: false,
        }
    }

    /// The SSRC of the stream.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// A receiver asked for a keyframe (PLI or FIR): the next frame is one, unless one went
    /// out moments ago.
    pub fn request_keyframe(&mut self, now: Instant) {
        if self
            .last_keyframe_at
            .is_none_or(|at| now.duration_since(at) >= KEYFRAME_REQUEST_GAP)
        {
            self.keyframe_requested = true;
        }
    }

    /// Writes the next frame's plain packets into `buf`, each in a slot of `stride` bytes
    /// (room for the SRTP tag after each), and returns (packets, plain length of each).
    pub fn write_frame(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        stride: usize,
        sent_ns: u64,
    ) -> (usize, usize) {
        let keyframe = self.keyframe_requested || now >= self.next_keyframe_at;
        if keyframe {
            self.keyframe_requested = false;
            self.last_keyframe_at = Some(now);
            self.next_keyframe_at = now + KEYFRAME_INTERVAL;
        }
        let packets = if keyframe {
            KEYFRAME_PACKETS
        } else {
            DELTA_FRAME_PACKETS
        };
        let len = RTP_HEADER_LEN + VIDEO_PAYLOAD_LEN;
        let mut written = 0;
        for index in 0..packets {
            let Some(packet) = buf.get_mut(index * stride..index * stride + len) else {
                break;
            };
            let last = index + 1 == packets;
            write_rtp_header(packet, self.pt, last, self.seq, self.timestamp, self.ssrc);
            let payload = &mut packet[RTP_HEADER_LEN..];
            // VP8 payload descriptor: S (start of partition) on the frame's first packet.
            payload[0] = if index == 0 { 0x10 } else { 0x00 };
            if index == 0 {
                // VP8 frame tag: bit 0 clear marks a keyframe, then the keyframe start code
                // and a 640x360 size, so keyframe detectors see a real one.
                let tag: [u8; 10] = [
                    if keyframe { 0x50 } else { 0x51 },
                    0x42,
                    0x00,
                    0x9d,
                    0x01,
                    0x2a,
                    0x80,
                    0x02,
                    0x68,
                    0x01,
                ];
                payload[1..11].copy_from_slice(&tag);
            }
            stamp(packet, sent_ns);
            self.seq = self.seq.wrapping_add(1);
            written += 1;
        }
        self.timestamp = self.timestamp.wrapping_add(3000);
        self.next_at += VIDEO_FRAME_INTERVAL;
        (written, len)
    }
}

/// Packets of one received stream, counted from cleartext RTP headers.
#[derive(Debug)]
pub struct StreamCounter {
    ssrc: u32,
    unwrapper: SeqNoUnwrapper,
    first: u64,
    highest: u64,
    /// Bit `i` set: `highest - i` was received (for duplicate detection).
    recent: u128,
    /// Packets received once.
    pub received: u64,
    /// Packets received again.
    pub duplicates: u64,
}

impl StreamCounter {
    /// A counter for `ssrc` whose first packet has sequence number `seq`.
    pub fn new(ssrc: u32, seq: u16) -> Self {
        let mut unwrapper = SeqNoUnwrapper::new();
        let first = unwrapper.unwrap(seq).0;
        StreamCounter {
            ssrc,
            unwrapper,
            first,
            highest: first,
            recent: 1,
            received: 1,
            duplicates: 0,
        }
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Counts a packet with sequence number `seq`.
    pub fn record(&mut self, seq: u16) {
        let value = self.unwrapper.unwrap(seq).0;
        if value > self.highest {
            let shift = value - self.highest;
            self.recent = if shift >= 128 {
                0
            } else {
                self.recent << shift
            };
            self.recent |= 1;
            self.highest = value;
            self.received += 1;
            return;
        }
        let behind = self.highest - value;
        if behind < 128 {
            let bit = 1u128 << behind;
            if self.recent & bit != 0 {
                self.duplicates += 1;
                return;
            }
            self.recent |= bit;
        }
        self.first = self.first.min(value);
        self.received += 1;
    }

    /// Packets the sequence numbers say were sent from the first to the newest received.
    pub fn expected(&self) -> u64 {
        self.highest - self.first + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gaps_duplicates_reordering_and_wraps() {
        let mut counter = StreamCounter::new(1, 65534);
        for seq in [65535u16, 1, 0, 1, 4] {
            counter.record(seq);
        }
        assert_eq!(counter.received, 5);
        assert_eq!(counter.duplicates, 1);
        assert_eq!(counter.expected(), 7);
    }

    #[test]
    fn frames_are_equal_sized_bursts_with_the_send_time_at_the_end() {
        let start = Instant::now();
        let mut video = VideoSource::new(9, 96, start, 0);
        let stride = 1300;
        let mut buf = vec![0u8; stride * KEYFRAME_PACKETS];
        let (packets, len) = video.write_frame(start, &mut buf, stride, 42);
        assert_eq!((packets, len), (KEYFRAME_PACKETS, 1212));
        assert_eq!(read_send_time(&buf[..len]), Some(42));
        assert_eq!(buf[RTP_HEADER_LEN], 0x10);
        let last = &buf[(packets - 1) * stride..];
        assert_eq!(last[1] & 0x80, 0x80, "marker on the last packet");
        let (packets, _) = video.write_frame(start + VIDEO_FRAME_INTERVAL, &mut buf, stride, 43);
        assert_eq!(packets, DELTA_FRAME_PACKETS);
    }
}
