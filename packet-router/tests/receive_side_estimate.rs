//! The receive-side estimate told with REMB to a publisher without transport-wide feedback,
//! through the router in virtual time: a sender that sends what the last REMB allows (as
//! aiortc and browsers do with goog-remb), over a bottleneck link with a drop-tail queue and
//! 25 ms each way, whose capacity steps as in RFC 8867 section 5.1.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use packet_router::{
    Codec, CodecParams, ExtensionIds, MediaKind, PublishedStream, Router, RouterConfig, SessionId,
    TransmitQueue,
};
use rtc_core::rtcp::{RtcpPacket, iter_compound};
use rtc_core::{Pt, Ssrc};

#[expect(
    clippy::disallowed_methods,
    reason = "the one clock read of this test crate: std makes an Instant no other way"
)]
fn origin() -> Instant {
    Instant::now()
}

const PUBLISHER: SessionId = SessionId(1);
const SSRC: Ssrc = Ssrc(0x5151);
const ONE_WAY: Duration = Duration::from_millis(25);
/// The bottleneck's queue holds at most this much delay; what would wait longer is dropped.
const MAX_QUEUE: Duration = Duration::from_millis(300);
const MTU_PAYLOAD: usize = 1150;

fn stream() -> PublishedStream {
    PublishedStream {
        kind: MediaKind::Video,
        ssrc: SSRC,
        rtx_ssrc: None,
        codecs: vec![CodecParams {
            codec: Codec::Vp8,
            pt: Pt(96),
            rtx_pt: None,
        }],
        // abs-send-time but no transport-wide sequence numbers.
        extensions: ExtensionIds {
            abs_send_time: Some(2),
            ..ExtensionIds::default()
        },
        nack: true,
        mid: None,
        rids: Vec::new(),
    }
}

/// A VP8 packet of `size` bytes with abs-send-time `sent` (seconds since the start).
fn packet(seq: u16, timestamp: u32, sent: Duration, size: usize) -> Vec<u8> {
    let units = ((sent.as_secs_f64() * f64::from(1u32 << 18)) as u32) & 0x00FF_FFFF;
    let [_, a, b, c] = units.to_be_bytes();
    let mut p = vec![0x90, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&timestamp.to_be_bytes());
    p[8..12].copy_from_slice(&SSRC.0.to_be_bytes());
    p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x22, a, b, c]);
    // A VP8 payload descriptor (start of partition) and filler.
    p.push(0x10);
    p.resize(size, 0x55);
    p
}

/// The link from the sender to the router: one FIFO queue drained at `capacity`.
struct Bottleneck {
    capacity_bps: u64,
    /// When the link finishes sending what is queued.
    free_at: Instant,
    /// Packets on their way: (arrival at the router, packet).
    in_flight: VecDeque<(Instant, Vec<u8>)>,
    /// (queuing delay) of every packet that got through.
    delays: Vec<Duration>,
    dropped: usize,
}

impl Bottleneck {
    fn send(&mut self, now: Instant, packet: Vec<u8>) {
        let start = self.free_at.max(now);
        if start - now > MAX_QUEUE {
            self.dropped += 1;
            return;
        }
        let serialization =
            Duration::from_secs_f64(packet.len() as f64 * 8.0 / self.capacity_bps as f64);
        self.free_at = start + serialization;
        self.delays.push(start - now);
        self.in_flight.push_back((self.free_at + ONE_WAY, packet));
    }
}

/// The run: per 100 ms, (capacity, what the sender sends at, the last REMB).
struct Run {
    samples: Vec<(Duration, u64, u64)>,
    delays: Vec<Duration>,
    dropped: usize,
}

/// Runs a sender that follows REMB (starting at 300 kbit/s) over a link whose capacity is
/// `capacity(t)`, for `length`.
fn run(length: Duration, capacity: impl Fn(Duration) -> u64) -> Run {
    let start = origin();
    let mut router = Router::new(RouterConfig::default());
    let mut out = TransmitQueue::with_capacity(64);
    router
        .add_published_stream(start, PUBLISHER, stream())
        .expect("track added");
    let mut link = Bottleneck {
        capacity_bps: capacity(Duration::ZERO),
        free_at: start,
        in_flight: VecDeque::new(),
        delays: Vec::new(),
        dropped: 0,
    };
    let mut sender_rate: u64 = 300_000;
    let mut last_remb = 0;
    // REMBs on their way back: (arrival at the sender, bitrate).
    let mut feedback: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut samples = Vec::new();
    let (mut seq, mut frame) = (0u16, 0u32);
    let tick = Duration::from_millis(1);
    let frame_interval = Duration::from_micros(33_333);
    let mut next_frame = start;
    let mut elapsed = Duration::ZERO;
    while elapsed < length {
        let now = start + elapsed;
        link.capacity_bps = capacity(elapsed);
        while feedback.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, bitrate)) = feedback.pop_front() {
                sender_rate = bitrate.clamp(50_000, 5_000_000);
                last_remb = bitrate;
            }
        }
        if now >= next_frame {
            // One frame of what the sender may send now, in packets sent back to back.
            let mut left = (sender_rate / 30 / 8) as usize;
            while left > 0 {
                let payload = left.min(MTU_PAYLOAD);
                left -= payload;
                link.send(now, packet(seq, frame * 3000, elapsed, payload + 20));
                seq = seq.wrapping_add(1);
            }
            frame += 1;
            next_frame += frame_interval;
        }
        while link.in_flight.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((at, mut p)) = link.in_flight.pop_front() {
                out.clear();
                router
                    .handle_rtp(at, PUBLISHER, &mut p, &mut out)
                    .expect("routed");
            }
        }
        if router.poll_timeout().is_some_and(|at| at <= now) {
            out.clear();
            router.handle_timeout(now, &mut out);
            for transmit in out.as_slice() {
                for item in iter_compound(transmit.packet()) {
                    if let Ok(RtcpPacket::Remb(remb)) = item {
                        assert_eq!(remb.ssrcs().collect::<Vec<_>>(), [SSRC]);
                        feedback.push_back((now + ONE_WAY, remb.bitrate()));
                    }
                }
            }
        }
        if elapsed.as_millis().is_multiple_of(100) {
            samples.push((elapsed, link.capacity_bps, last_remb));
        }
        elapsed += tick;
    }
    Run {
        samples,
        delays: link.delays,
        dropped: link.dropped,
    }
}

fn percentile(delays: &mut [Duration], p: f64) -> Duration {
    delays.sort();
    delays[((delays.len() - 1) as f64 * p) as usize]
}

fn remb_at(run: &Run, at: Duration) -> u64 {
    run.samples
        .iter()
        .rev()
        .find(|(t, _, _)| *t <= at)
        .map_or(0, |s| s.2)
}

fn timeline(run: &Run) -> String {
    run.samples
        .iter()
        .step_by(10)
        .map(|(t, c, r)| format!("{}s {}k/{}k", t.as_secs(), c / 1000, r / 1000))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn from_300_kbits_on_a_1_mbit_link_the_estimate_settles_near_the_capacity() {
    let mut run = run(Duration::from_secs(40), |_| 1_000_000);
    let line = timeline(&run);
    // Growing 8 % a second from 300 kbit/s takes about 16 s to reach 1 Mbit/s; from 25 s
    // the estimate stays within 0.75 to 1.1 Mbit/s.
    for second in 25..40 {
        let remb = remb_at(&run, Duration::from_secs(second));
        assert!(
            (750_000..=1_100_000).contains(&remb),
            "{second} s: {remb}; {line}"
        );
    }
    let p95 = percentile(&mut run.delays, 0.95);
    assert!(
        p95 < Duration::from_millis(150),
        "queue delay p95 {p95:?}; {line}"
    );
}

#[test]
fn on_rfc_8867_steps_the_estimate_follows_the_capacity_down_and_up() {
    // 1 Mbit/s, then 2.5 from 40 s, 0.6 from 60 s, 1 from 80 s.
    let capacity = |t: Duration| match t.as_secs() {
        0..40 => 1_000_000,
        40..60 => 2_500_000,
        60..80 => 600_000,
        _ => 1_000_000,
    };
    let mut run = run(Duration::from_secs(110), capacity);
    let line = timeline(&run);
    // Down: at or below 0.7 Mbit/s within 2 s of the drop to 0.6, and it stays so.
    for tenth in 20..200 {
        let at = Duration::from_millis(60_000 + tenth * 100);
        let remb = remb_at(&run, at);
        assert!(remb <= 700_000, "{at:?}: {remb}; {line}");
    }
    // Up: more than on the 0.6 Mbit/s link within 20 s of the rise to 1 (8 % a second
    // from 0.5), and at least 0.8 Mbit/s by its end.
    let risen = remb_at(&run, Duration::from_secs(100));
    assert!(risen >= 700_000, "{risen}; {line}");
    let end = remb_at(&run, Duration::from_secs(109));
    assert!(end >= 800_000, "{end}; {line}");
    // On the 2.5 Mbit/s link it grows beyond 1 Mbit/s.
    let high = remb_at(&run, Duration::from_secs(59));
    assert!(high >= 1_500_000, "{high}; {line}");
    let p95 = percentile(&mut run.delays, 0.95);
    assert!(
        p95 < Duration::from_millis(150),
        "queue delay p95 {p95:?}; {line}"
    );
    println!("{line}; dropped {}", run.dropped);
}
