//! Who is speaking: the dominant speaker of a room from the audio levels its publishers
//! send (RFC 6464 ssrc-audio-level), decided every 300 ms.
//!
//! The media plane reports, per audio track every 100 ms, how many of the packets it
//! received were voiced. Each speaker keeps those reports over three time scales (as the
//! dominant-speaker identification of Volfin and Cohen that Jitsi and mediasoup use): the
//! last 300 ms, the last 1.5 s and the last 4 s. A speaker becomes dominant when it speaks
//! on the medium scale (at least 40 % of the last 1.5 s) and a challenger replaces the
//! dominant one only when it is clearly more active now and over the medium scale; a short
//! burst (a cough, a 200 ms remark) never reaches the medium threshold.

use std::time::{Duration, Instant};

use crate::room::ParticipantId;

/// How often the dominant speaker is decided.
pub const DECISION_INTERVAL: Duration = Duration::from_millis(300);
/// Reports kept per speaker (100 ms each): the long time scale.
const SLOTS: usize = 40;
const IMMEDIATE_SLOTS: usize = 3;
const MEDIUM_SLOTS: usize = 15;
/// The least medium-scale activity of a dominant speaker.
const MEDIUM_THRESHOLD: f64 = 0.4;
/// A challenger must be this much more active than the dominant speaker on the medium scale
/// (times, plus), and ahead on the immediate one by this much.
const MEDIUM_RATIO: f64 = 1.5;
const MEDIUM_MARGIN: f64 = 0.05;
const IMMEDIATE_MARGIN: f64 = 0.3;
/// A speaker not heard from for this long (its track ended) is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(10);

/// One speaker's reports: the voiced share of each 100 ms, newest last.
#[derive(Debug, Clone)]
struct Speaker {
    id: ParticipantId,
    /// Voiced share (0 to 1) per report, a ring.
    slots: [f64; SLOTS],
    next: usize,
    last_report: Instant,
}

impl Speaker {
    /// The mean voiced share over the newest `count` reports (missing ones are silence).
    fn activity(&self, count: usize) -> f64 {
        let sum: f64 = (1..=count)
            .filter_map(|back| self.slots.get((self.next + SLOTS - back) % SLOTS))
            .sum();
        sum / count as f64
    }

    fn immediate(&self) -> f64 {
        self.activity(IMMEDIATE_SLOTS)
    }

    fn medium(&self) -> f64 {
        self.activity(MEDIUM_SLOTS)
    }
}

/// The dominant speaker of one room.
#[derive(Debug, Clone, Default)]
pub struct SpeakerDetector {
    speakers: Vec<Speaker>,
    dominant: Option<ParticipantId>,
    last_decision: Option<Instant>,
}

impl SpeakerDetector {
    /// The dominant speaker now.
    pub fn dominant(&self) -> Option<ParticipantId> {
        self.dominant
    }

    /// One 100 ms report of `speaker`'s audio: `voiced` of `packets` were voiced.
    pub fn report(&mut self, now: Instant, speaker: ParticipantId, packets: u32, voiced: u32) {
        let share = if packets == 0 {
            0.0
        } else {
            f64::from(voiced.min(packets)) / f64::from(packets)
        };
        let index = match self.speakers.iter().position(|s| s.id == speaker) {
            Some(index) => index,
            None => {
                self.speakers.push(Speaker {
                    id: speaker,
                    slots: [0.0; SLOTS],
                    next: 0,
                    last_report: now,
                });
                self.speakers.len() - 1
            }
        };
        if let Some(entry) = self.speakers.get_mut(index) {
            if let Some(slot) = entry.slots.get_mut(entry.next) {
                *slot = share;
            }
            entry.next = (entry.next + 1) % SLOTS;
            entry.last_report = now;
        }
    }

    /// Forgets a speaker (it left); when it was dominant, there is none until the next
    /// decision.
    pub fn remove(&mut self, speaker: ParticipantId) {
        self.speakers.retain(|s| s.id != speaker);
        if self.dominant == Some(speaker) {
            self.dominant = None;
        }
    }

    /// Decides when the interval has passed; returns the new dominant speaker when it
    /// changed.
    pub fn decide(&mut self, now: Instant) -> Option<ParticipantId> {
        if self
            .last_decision
            .is_some_and(|at| now.saturating_duration_since(at) < DECISION_INTERVAL)
        {
            return None;
        }
        self.last_decision = Some(now);
        // A silent speaker gets zero reports; one whose reports stopped (gone) is forgotten.
        for speaker in &mut self.speakers {
            let missed = now
                .saturating_duration_since(speaker.last_report)
                .as_millis()
                / 100;
            for _ in 0..missed.min(SLOTS as u128) {
                if let Some(slot) = speaker.slots.get_mut(speaker.next) {
                    *slot = 0.0;
                }
                speaker.next = (speaker.next + 1) % SLOTS;
            }
            if missed > 0 {
                speaker.last_report = now;
            }
        }
        let gone: Vec<ParticipantId> = self
            .speakers
            .iter()
            .filter(|s| {
                s.activity(SLOTS) == 0.0
                    && now.saturating_duration_since(s.last_report) >= FORGET_AFTER
            })
            .map(|s| s.id)
            .collect();
        for id in gone {
            self.remove(id);
        }
        let current = self
            .dominant
            .and_then(|id| self.speakers.iter().find(|s| s.id == id));
        let challenger = self
            .speakers
            .iter()
            .filter(|s| Some(s.id) != self.dominant)
            .max_by(|a, b| a.medium().total_cmp(&b.medium()))?;
        if challenger.medium() < MEDIUM_THRESHOLD {
            return None;
        }
        let takes_over = match current {
            None => true,
            Some(dominant) => {
                challenger.medium() >= dominant.medium() * MEDIUM_RATIO + MEDIUM_MARGIN
                    && challenger.immediate() >= dominant.immediate() + IMMEDIATE_MARGIN
            }
        };
        if takes_over {
            self.dominant = Some(challenger.id);
            return self.dominant;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ParticipantId = ParticipantId(1);
    const B: ParticipantId = ParticipantId(2);
    const C: ParticipantId = ParticipantId(3);

    /// Runs `seconds` of reports every 100 ms: `voiced(t, speaker)` says whether the speaker
    /// is speaking at `t` seconds. Returns the changes as (seconds, speaker).
    fn script(
        seconds: f64,
        voiced: impl Fn(f64, ParticipantId) -> bool,
    ) -> Vec<(f64, ParticipantId)> {
        let start = Instant::now();
        let mut detector = SpeakerDetector::default();
        let mut changes = Vec::new();
        let steps = (seconds * 10.0) as u32;
        for step in 0..steps {
            let t = f64::from(step) / 10.0;
            let now = start + Duration::from_millis(u64::from(step) * 100);
            for speaker in [A, B, C] {
                let packets = 5;
                let voiced_packets = if voiced(t, speaker) { 5 } else { 0 };
                detector.report(now, speaker, packets, voiced_packets);
            }
            if let Some(new) = detector.decide(now) {
                changes.push((t, new));
            }
        }
        changes
    }

    #[test]
    fn a_change_of_speakers_is_decided_within_a_second_and_a_half() {
        // A speaks for 5 s, then B for 5 s.
        let changes = script(10.0, |t, s| (s == A && t < 5.0) || (s == B && t >= 5.0));
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].1, A);
        assert!(changes[0].0 <= 1.5, "{changes:?}");
        assert_eq!(changes[1].1, B);
        assert!(changes[1].0 > 5.0 && changes[1].0 <= 6.5, "{changes:?}");
    }

    #[test]
    fn a_200_ms_burst_never_takes_over() {
        // A speaks throughout; C says something for 200 ms at 3 s and at 6 s.
        let burst = |t: f64| (3.0..3.2).contains(&t) || (6.0..6.2).contains(&t);
        let changes = script(10.0, |t, s| s == A || (s == C && burst(t)));
        assert_eq!(
            changes.iter().map(|c| c.1).collect::<Vec<_>>(),
            [A],
            "{changes:?}"
        );
        // Nor when nobody else speaks.
        let changes = script(10.0, |t, s| s == C && burst(t));
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn overlapping_talk_does_not_flap() {
        // A and B both speak throughout, A with pauses: one decision, no back and forth.
        let changes = script(20.0, |t, s| {
            s == B || (s == A && !((t * 10.0) as u32).is_multiple_of(4))
        });
        assert!(changes.len() <= 1, "{changes:?}");
    }
}
