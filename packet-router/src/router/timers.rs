//! The router's timers: when [`Router::handle_timeout`] next has work, and what it sends
//! then: transport-wide feedback and NACKs to publishers, and each report slot's receiver and
//! sender reports (with the check of the slot's layers for silence).

use std::time::{Duration, Instant};

use super::{REPORT_SLOTS, Router};
use crate::track::Track;
use crate::transmit::TransmitQueue;

impl Router {
    pub(super) fn schedule_reports(&mut self, now: Instant) {
        if self.next_report.is_none() {
            self.next_report = Some(now + self.report_slot_length());
        }
    }

    fn report_slot_length(&self) -> Duration {
        self.config.report_interval / u32::from(REPORT_SLOTS)
    }

    /// When [`Router::handle_timeout`] next has work.
    ///
    /// It costs no scan of the tracks: it may be early after a gap that reordering repaired,
    /// never late.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.nack_deadline,
            self.next_report,
            self.feedback_deadline,
            self.remb_deadline,
            self.probe_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The earliest NACK deadline of the tracks that send NACKs.
    fn earliest_nack_deadline(&self) -> Option<Instant> {
        self.tracks.values().filter_map(Track::nack_timeout).min()
    }

    /// Sends what is due: NACKs to publishers, and on the report interval sender reports to
    /// subscribers and receiver reports to publishers.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut TransmitQueue) {
        let feedback_ssrc = self.config.feedback_ssrc;
        if self.feedback_deadline.is_some_and(|at| at <= now) {
            let mut next = None;
            for (&publisher, feedback) in &mut self.transport_feedback {
                let sent = feedback.poll_feedback(now, publisher, feedback_ssrc, out);
                self.stats.transport_feedback_sent += sent as u64;
                next = [next, feedback.poll_timeout()].into_iter().flatten().min();
            }
            self.feedback_deadline = next;
        }
        if self.probe_deadline.is_some_and(|at| at <= now) {
            self.send_probes(now, out);
        }
        if self.remb_deadline.is_some_and(|at| at <= now) {
            self.remb_deadline = None;
            self.send_prompt_rembs(now, out);
        }
        if self.nack_deadline.is_some_and(|at| at <= now) {
            for track in self.tracks.values_mut() {
                self.stats.nacks_sent += track.send_nacks(
                    now,
                    feedback_ssrc,
                    &mut self.nack_scratch,
                    &mut self.nack_wire_scratch,
                    out,
                );
            }
            self.nack_deadline = self.earliest_nack_deadline();
        }
        if self.next_report.is_some_and(|at| at <= now) {
            let slot = self.report_slot;
            if slot == 0 {
                // Once a report interval: allocations that no feedback ran lately.
                self.reallocate_stale(now);
            }
            if slot.is_multiple_of(2) {
                self.report_audio_activity();
            }
            self.send_reports(now, slot, out);
            self.report_slot = (slot + 1) % REPORT_SLOTS;
            self.next_report = if self.tracks.is_empty() {
                None
            } else {
                Some(now + self.report_slot_length())
            };
        }
        self.count_dropped_events();
    }

    /// Reports of the tracks in report slot `slot`, and the check of their layers for
    /// silence.
    fn send_reports(&mut self, now: Instant, slot: u8, out: &mut TransmitQueue) {
        let feedback_ssrc = self.config.feedback_ssrc;
        let timeout = self.config.layer_timeout;
        for (&id, track) in self
            .tracks
            .iter_mut()
            .filter(|(_, t)| t.report_slot == slot)
        {
            self.stats.sender_reports_sent += track.send_reports(now, feedback_ssrc, out);
            if let Some(remb) = self.publisher_remb.get_mut(&track.publisher)
                && let Some(bitrate) = remb.bitrate()
                && track.stream.kind == crate::MediaKind::Video
                && track.send_remb(feedback_ssrc, bitrate, out)
            {
                remb.told(now, bitrate);
                self.stats.remb_sent += 1;
            }
            track.check_layers(now, timeout, id, &mut self.events);
        }
    }

    /// Every audio track's activity since the last report (every second report slot: 100 ms
    /// with the default interval), as events.
    fn report_audio_activity(&mut self) {
        for (&id, track) in &mut self.tracks {
            if track.audio_packets == 0 {
                continue;
            }
            self.events.push(crate::RouterEvent::AudioActivity {
                track: id,
                publisher: track.publisher,
                packets: std::mem::take(&mut track.audio_packets),
                voiced: std::mem::take(&mut track.audio_voiced),
            });
        }
    }

    /// REMBs of estimates that fell since they were last told, on one video track of each
    /// such publisher, before its next report.
    fn send_prompt_rembs(&mut self, now: Instant, out: &mut TransmitQueue) {
        let feedback_ssrc = self.config.feedback_ssrc;
        for (publisher, remb) in &mut self.publisher_remb {
            let Some(bitrate) = remb.bitrate().filter(|_| remb.decrease_due(now)) else {
                continue;
            };
            let video = self.sessions.get(publisher).and_then(|routes| {
                routes
                    .tracks
                    .iter()
                    .filter_map(|id| self.tracks.get(id))
                    .find(|t| t.stream.kind == crate::MediaKind::Video)
            });
            if let Some(track) = video
                && track.send_remb(feedback_ssrc, bitrate, out)
            {
                remb.told(now, bitrate);
                self.stats.remb_sent += 1;
            }
        }
    }
}
