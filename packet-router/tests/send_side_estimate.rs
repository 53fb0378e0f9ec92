//! The send-side estimate of a subscriber's downlink on its own, in virtual time: a sender
//! that sends what the estimate allows (a paced encoder following its target, 1200-byte
//! packets), each recorded in the estimator's send history with its transport-wide number,
//! over a bottleneck link (drop-tail queue of 300 ms, 50 ms each way, as in RFC 8867) to a
//! receiver that sends transport-wide feedback every 50 ms (Sluice's own feedback generator
//! plays it). The cases are RFC 8867's: a start below the capacity, the capacity stepped
//! down and up (section 5.1), random loss, and feedback the network duplicated or reordered.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use packet_router::bandwidth::SendSideEstimator;
use packet_router::{SessionId, TransmitQueue, TransportFeedback};
use rtc_core::Ssrc;
use rtc_core::rtcp::{RtcpPacket, iter_compound};

#[expect(
    clippy::disallowed_methods,
    reason = "the one clock read of this test crate: std makes an Instant no other way"
)]
fn origin() -> Instant {
    Instant::now()
}

const ONE_WAY: Duration = Duration::from_millis(50);
const MAX_QUEUE: Duration = Duration::from_millis(300);
const PACKET: usize = 1200;
const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);

/// The link's seeded random loss (xorshift64: every run with one seed is the same).
struct Loss {
    state: u64,
    probability: f64,
}

impl Loss {
    fn lose(&mut self) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state >> 11) as f64 / (1u64 << 53) as f64 <= self.probability
            && self.probability > 0.0
    }
}

/// What the network does to the feedback on its way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FeedbackPath {
    Clean,
    /// Every feedback packet arrives twice.
    Duplicated,
    /// Every second feedback packet overtakes the one before it.
    Reordered,
}

struct Run {
    /// Every 100 ms: time, capacity, estimate.
    samples: Vec<(Duration, u64, u64)>,
    /// Queueing delay of every packet that got through the bottleneck.
    delays: Vec<Duration>,
}

impl Run {
    fn estimate_at(&self, at: Duration) -> u64 {
        self.samples
            .iter()
            .rev()
            .find(|(t, _, _)| *t <= at)
            .map_or(0, |s| s.2)
    }

    fn timeline(&self) -> String {
        self.samples
            .iter()
            .step_by(10)
            .map(|(t, c, e)| format!("{}s {}k/{}k", t.as_secs(), c / 1000, e / 1000))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn queue_delay_p95(&mut self) -> Duration {
        self.delays.sort();
        self.delays[((self.delays.len() - 1) as f64 * 0.95) as usize]
    }
}

/// Runs the sender from `start_bps` for `length` over a link of `capacity(t)` that loses
/// `loss` of the packets at random.
fn run(
    start_bps: u64,
    length: Duration,
    capacity: impl Fn(Duration) -> u64,
    loss: f64,
    path: FeedbackPath,
) -> Run {
    let start = origin();
    let mut loss = Loss {
        state: 8867,
        probability: loss,
    };
    let mut estimator = SendSideEstimator::new(start_bps);
    let mut receiver = TransportFeedback::new(3, Ssrc(0xA000));
    let mut feedback_out = TransmitQueue::with_capacity(8);
    // Packets in the bottleneck (arrival at the receiver, transport-wide number), feedback
    // on its way back (arrival at the sender, RTCP).
    let mut in_flight: VecDeque<(Instant, u16)> = VecDeque::new();
    let mut feedback: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut free_at = start;
    let (mut samples, mut delays) = (Vec::new(), Vec::new());
    let mut seq: u16 = 0;
    let mut next_send = start;
    let mut next_feedback = start;
    let mut feedback_packets: u64 = 0;
    let tick = Duration::from_millis(1);
    let mut elapsed = Duration::ZERO;
    while elapsed < length {
        let now = start + elapsed;
        let capacity_bps = capacity(elapsed);
        // The paced sender: one packet every PACKET bits / estimate.
        while next_send <= now {
            estimator.on_sent(now, seq, PACKET, None);
            let queue_start = free_at.max(now);
            let queued = queue_start - now;
            if queued <= MAX_QUEUE && !loss.lose() {
                free_at = queue_start
                    + Duration::from_secs_f64(PACKET as f64 * 8.0 / capacity_bps as f64);
                delays.push(queued);
                in_flight.push_back((free_at + ONE_WAY, seq));
            }
            seq = seq.wrapping_add(1);
            let gap = PACKET as f64 * 8.0 / estimator.estimate().max(1) as f64;
            next_send += Duration::from_secs_f64(gap);
        }
        while in_flight.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((at, number)) = in_flight.pop_front() {
                receiver.handle_packet(at, number);
            }
        }
        if now >= next_feedback {
            feedback_out.clear();
            receiver.poll_feedback(now, SessionId(1), Ssrc(0xB0B), &mut feedback_out);
            for transmit in feedback_out.as_slice() {
                feedback_packets += 1;
                let bytes = transmit.packet().to_vec();
                let back = now + ONE_WAY;
                match path {
                    FeedbackPath::Clean => feedback.push_back((back, bytes)),
                    FeedbackPath::Duplicated => {
                        feedback.push_back((back, bytes.clone()));
                        feedback.push_back((back, bytes));
                    }
                    FeedbackPath::Reordered => {
                        // Held for one interval, it arrives after the next one.
                        let held = feedback_packets.is_multiple_of(2);
                        let at = if held { back + FEEDBACK_INTERVAL } else { back };
                        let index = feedback.partition_point(|(t, _)| *t <= at);
                        feedback.insert(index, (at, bytes));
                    }
                }
            }
            next_feedback += FEEDBACK_INTERVAL;
        }
        while feedback.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((at, bytes)) = feedback.pop_front() {
                for item in iter_compound(&bytes).flatten() {
                    if let RtcpPacket::TransportCc(report) = item {
                        estimator.on_feedback(at, &report);
                    }
                }
            }
        }
        if elapsed.as_millis().is_multiple_of(100) {
            samples.push((elapsed, capacity_bps, estimator.estimate()));
        }
        elapsed += tick;
    }
    Run { samples, delays }
}

#[test]
fn from_300_kbits_on_a_1_mbit_link_the_estimate_settles_near_the_capacity() {
    let mut run = run(
        300_000,
        Duration::from_secs(40),
        |_| 1_000_000,
        0.0,
        FeedbackPath::Clean,
    );
    let line = run.timeline();
    // Without a probe the estimate grows 8 % a second far from a known capacity: from
    // 300 kbit/s it takes about 15 s to reach 0.8 Mbit/s (the router's probes, which the
    // allocator starts when it wants more, get there sooner), and from then on it stays
    // within 0.8 to 1.1 Mbit/s.
    let reached = run
        .samples
        .iter()
        .find(|s| s.2 >= 800_000)
        .map(|s| s.0)
        .expect(&line);
    assert!(
        reached <= Duration::from_secs(16),
        "0.8 Mbit/s at {reached:?}; {line}"
    );
    for sample in run.samples.iter().filter(|s| s.0 >= reached) {
        assert!(
            (800_000..=1_100_000).contains(&sample.2),
            "{:?}: {}; {line}",
            sample.0,
            sample.2
        );
    }
    let p95 = run.queue_delay_p95();
    assert!(
        p95 < Duration::from_millis(150),
        "queue delay p95 {p95:?}; {line}"
    );
}

#[test]
fn on_rfc_8867_steps_the_estimate_follows_the_capacity_down_and_up() {
    // 1 Mbit/s, then 2.5 from 40 s, 0.6 from 60 s, 1 from 80 s (RFC 8867 section 5.1).
    let capacity = |t: Duration| match t.as_secs() {
        0..40 => 1_000_000,
        40..60 => 2_500_000,
        60..80 => 600_000,
        _ => 1_000_000,
    };
    let mut run = run(
        300_000,
        Duration::from_secs(100),
        capacity,
        0.0,
        FeedbackPath::Clean,
    );
    let line = run.timeline();
    // Down: at or below 0.7 Mbit/s within 2 s of the drop to 0.6, and it stays so.
    for tenth in 20..200 {
        let at = Duration::from_millis(60_000 + tenth * 100);
        let estimate = run.estimate_at(at);
        assert!(estimate <= 700_000, "{at:?}: {estimate}; {line}");
    }
    // Up: at or above 0.8 Mbit/s within 10 s of the rise to 1, and it stays so.
    for tenth in 100..200 {
        let at = Duration::from_millis(80_000 + tenth * 100);
        let estimate = run.estimate_at(at);
        assert!(estimate >= 800_000, "{at:?}: {estimate}; {line}");
    }
    let p95 = run.queue_delay_p95();
    assert!(
        p95 < Duration::from_millis(150),
        "queue delay p95 {p95:?}; {line}"
    );
    println!("{line}; queue delay p95 {p95:?}");
}

#[test]
fn five_percent_random_loss_at_2_mbits_keeps_the_estimate_above_1_4() {
    let run = run(
        1_000_000,
        Duration::from_secs(60),
        |_| 2_000_000,
        0.05,
        FeedbackPath::Clean,
    );
    let line = run.timeline();
    for tenth in 200..600 {
        let at = Duration::from_millis(tenth * 100);
        let estimate = run.estimate_at(at);
        assert!(estimate >= 1_400_000, "{at:?}: {estimate}; {line}");
    }
    println!("{line}");
}

#[test]
fn duplicated_or_reordered_feedback_changes_nothing() {
    let capacity = |t: Duration| {
        if t < Duration::from_secs(20) {
            1_000_000
        } else {
            600_000
        }
    };
    let clean = run(
        300_000,
        Duration::from_secs(30),
        capacity,
        0.02,
        FeedbackPath::Clean,
    );
    let duplicated = run(
        300_000,
        Duration::from_secs(30),
        capacity,
        0.02,
        FeedbackPath::Duplicated,
    );
    assert_eq!(
        clean.samples, duplicated.samples,
        "every packet counts once however many feedbacks report it"
    );
    let reordered = run(
        300_000,
        Duration::from_secs(30),
        capacity,
        0.02,
        FeedbackPath::Reordered,
    );
    // Reordered feedback tells the same later: the estimate's course is the same, its
    // sawtooth a little shifted (each 5 s average within 5 %).
    let average = |run: &Run, from: u64| {
        let window = run
            .samples
            .iter()
            .filter(|s| s.0 >= Duration::from_secs(from) && s.0 < Duration::from_secs(from + 5));
        let (sum, count) = window.fold((0u64, 0u64), |(sum, n), s| (sum + s.2, n + 1));
        sum as f64 / count as f64
    };
    for from in (0..30).step_by(5) {
        let (clean_bps, reordered_bps) = (average(&clean, from), average(&reordered, from));
        assert!(
            (reordered_bps - clean_bps).abs() <= 0.05 * clean_bps,
            "{from}-{} s: {reordered_bps} reordered against {clean_bps}; {} / {}",
            from + 5,
            clean.timeline(),
            reordered.timeline()
        );
    }
}
