//! The router's RTCP input and keyframe requests: subscribers' NACKs answered from the
//! retransmission cache of the layer they receive, their PLI and FIR turned into throttled
//! keyframe requests to the publisher, and publishers' sender reports recorded on the layer
//! they describe.

use std::time::Instant;

use rtc_core::Ssrc;

use super::{Location, Router};
use crate::config::MediaKind;
use crate::event::RouterEvent;
use crate::layer::StreamRole;
use crate::transmit::{TransmitKind, TransmitQueue};
use crate::{SessionId, SubscriptionId, TrackId};

impl Router {
    /// Requests a keyframe of `track` from its publisher: a PLI for each of its layers,
    /// throttled per layer.
    pub fn request_keyframe(&mut self, now: Instant, track: TrackId, out: &mut TransmitQueue) {
        let Some(published) = self.tracks.get_mut(&track) else {
            return;
        };
        if published.stream.kind != MediaKind::Video {
            return;
        }
        for layer in &mut published.layers {
            if !layer.is_bound() || !layer.allow_keyframe_request(now) {
                continue;
            }
            queue_pli(
                out,
                published.publisher,
                self.config.feedback_ssrc,
                layer.ssrc(),
            );
            self.stats.keyframe_requests_sent += 1;
            self.events.push(RouterEvent::KeyframeRequested {
                track,
                ssrc: layer.ssrc(),
            });
        }
        self.count_dropped_events();
    }

    /// Handles a plaintext RTCP compound packet from `from`.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        from: SessionId,
        packet: &[u8],
        out: &mut TransmitQueue,
    ) {
        use rtc_core::rtcp::{RtcpPacket, iter_compound};
        for item in iter_compound(packet) {
            let Ok(item) = item else {
                self.stats.rtcp_malformed += 1;
                return;
            };
            match item {
                RtcpPacket::Nack(nack) => {
                    self.stats.nacks_received += 1;
                    self.nack_wire_scratch.clear();
                    self.nack_wire_scratch.extend(nack.lost());
                    let lost = std::mem::take(&mut self.nack_wire_scratch);
                    self.retransmit(now, from, nack.media_ssrc(), &lost, out);
                    self.nack_wire_scratch = lost;
                }
                RtcpPacket::Pli(pli) => {
                    self.stats.keyframe_requests_received += 1;
                    self.keyframe_request_from(now, from, pli.media_ssrc, out);
                }
                RtcpPacket::Fir(fir) => {
                    self.stats.keyframe_requests_received += 1;
                    for (ssrc, _) in fir.entries() {
                        self.keyframe_request_from(now, from, ssrc, out);
                    }
                }
                RtcpPacket::TransportCc(feedback) => {
                    self.handle_transport_feedback(now, from, &feedback);
                }
                RtcpPacket::ReceiverReport(report) => {
                    self.handle_report_blocks(now, from, report.report_blocks());
                }
                RtcpPacket::SenderReport(report) => {
                    self.handle_report_blocks(now, from, report.report_blocks());
                    let info = report.sender_info();
                    if let Some(track) = self.track_by_ssrc.get(&(from, info.ssrc))
                        && let Some(track) = self.tracks.get_mut(track)
                        && let Some((index, StreamRole::Media)) = track.layer_of(info.ssrc)
                        && let Some(layer) = track.layers.get_mut(index)
                    {
                        layer.handle_sender_report(now, info.ntp_time, info.rtp_time);
                    }
                }
                _ => {}
            }
        }
        self.count_dropped_events();
    }

    /// The subscription `subscriber` receives as `media_ssrc`, and the track it is attached
    /// to (none while detached).
    fn attached_subscription(
        &self,
        subscriber: SessionId,
        media_ssrc: Ssrc,
    ) -> Option<(SubscriptionId, TrackId)> {
        let id = *self.subscription_by_ssrc.get(&(subscriber, media_ssrc))?;
        match self.locations.get(&id) {
            Some(&Location::Attached(track)) => Some((id, track)),
            _ => None,
        }
    }

    /// A subscriber's keyframe request for the stream it receives as `media_ssrc`: a PLI to
    /// the publisher of the layer it receives (throttled).
    fn keyframe_request_from(
        &mut self,
        now: Instant,
        subscriber: SessionId,
        media_ssrc: Ssrc,
        out: &mut TransmitQueue,
    ) {
        let Some((id, track_id)) = self.attached_subscription(subscriber, media_ssrc) else {
            return;
        };
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        // A simulcast subscription that forwards nothing yet waits for its target's keyframe.
        let Some(index) = track.subscription_mut(id).and_then(|s| {
            if s.layer == crate::simulcast::NO_LAYER {
                s.choice.target
            } else {
                Some(s.layer)
            }
        }) else {
            return;
        };
        let publisher = track.publisher;
        if track.stream.kind != MediaKind::Video {
            return;
        }
        if let Some(layer) = track.layers.get_mut(index)
            && layer.allow_keyframe_request(now)
        {
            queue_pli(out, publisher, self.config.feedback_ssrc, layer.ssrc());
            self.stats.keyframe_requests_sent += 1;
            self.events.push(RouterEvent::KeyframeRequested {
                track: track_id,
                ssrc: layer.ssrc(),
            });
        }
    }

    /// Answers a subscriber's NACK for `lost` (its sequence numbers) from the retransmission
    /// cache, as far as the subscriber session's retransmission budget allows
    /// ([`crate::RouterConfig::retransmit_budget`]); the rest is counted in
    /// [`crate::RouterStats::retransmissions_over_budget`].
    pub fn retransmit(
        &mut self,
        now: Instant,
        subscriber: SessionId,
        media_ssrc: Ssrc,
        lost: &[u16],
        out: &mut TransmitQueue,
    ) {
        let Some((id, track_id)) = self.attached_subscription(subscriber, media_ssrc) else {
            return;
        };
        let send_time = self.send_time(now);
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let Some(subscription) = track.subscriptions.iter_mut().find(|s| s.id == id) else {
            return;
        };
        let layers = &track.layers;
        let transport_cc = self.transport_cc_counters.get_mut(subscription.counter);
        let budget = self.retransmit_budgets.get_mut(subscription.counter);
        subscription.retransmit(
            (now, send_time),
            layers,
            lost,
            transport_cc,
            budget,
            &self.config.retransmit_budget,
            &mut self.stats,
            out,
        );
    }
}

pub(super) fn queue_pli(out: &mut TransmitQueue, publisher: SessionId, sender: Ssrc, media: Ssrc) {
    out.push_with(publisher, TransmitKind::Rtcp, |buf| {
        rtc_core::rtcp::feedback::write_pli(buf, sender, media).ok()
    });
}
