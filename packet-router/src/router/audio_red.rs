//! Which subscriptions get redundant audio (`crate::audio_red`): a session's measured loss
//! (transport-wide, from its feedback; else its receiver reports on the audio Sluice sends
//! it) drives its [`AudioRedSwitch`], and the switch turns the RED payload on or off for
//! every audio subscription of the session that negotiated it.

use std::time::Instant;

use rtc_core::Pt;
use rtc_core::rtcp::ReportBlocks;

use super::Router;
use crate::SessionId;
use crate::audio_red::AudioRedMode;

impl Router {
    /// The RED payload type a new subscription of `subscriber` starts with: its own when
    /// redundancy is always on or already on for the session.
    pub(super) fn initial_red(&self, subscriber: SessionId, red_pt: Option<Pt>) -> Option<Pt> {
        let on = match self.config.audio_red {
            AudioRedMode::Off => false,
            AudioRedMode::Always => true,
            AudioRedMode::OnLoss => self
                .sessions
                .get(&subscriber)
                .is_some_and(|routes| routes.audio_red.is_on()),
        };
        red_pt.filter(|_| on)
    }

    /// Receiver reports from `from`: the loss of the audio Sluice sends it, for a session
    /// without transport-wide feedback (whose estimator measures loss better: that loss
    /// excludes the publisher's own gaps).
    pub(super) fn handle_report_blocks(
        &mut self,
        now: Instant,
        from: SessionId,
        blocks: ReportBlocks<'_>,
    ) {
        if self.config.audio_red != AudioRedMode::OnLoss || self.estimator(from).is_some() {
            return;
        }
        for block in blocks {
            let Some(&id) = self.subscription_by_ssrc.get(&(from, block.ssrc)) else {
                continue;
            };
            if self
                .subscription(id)
                .is_some_and(|s| s.stream.red_pt.is_some())
            {
                self.update_audio_red(now, from, f64::from(block.fraction_lost) / 256.0);
            }
        }
    }

    /// The loss of `session` measured at `now` (0 to 1): redundancy on or off for its audio
    /// subscriptions when the switch says so.
    pub(super) fn update_audio_red(&mut self, now: Instant, session: SessionId, loss: f64) {
        if self.config.audio_red != AudioRedMode::OnLoss {
            return;
        }
        let Some(routes) = self.sessions.get_mut(&session) else {
            return;
        };
        let Some(on) = routes.audio_red.update(now, loss) else {
            return;
        };
        self.stats.red_switches += 1;
        let ids = std::mem::take(&mut routes.subscriptions);
        for &id in &ids {
            if let Some(subscription) = self.subscription_mut(id) {
                subscription.red = subscription.stream.red_pt.filter(|_| on);
            }
        }
        if let Some(routes) = self.sessions.get_mut(&session) {
            routes.subscriptions = ids;
        }
    }
}
