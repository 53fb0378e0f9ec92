//! How good each participant's downlink is, from the media plane's allocation reports: a
//! level for the room's network indicator, changed only when two reports in a row agree,
//! so that one report at a switch does not flap it.

use crate::media::MediaEvent;

/// A downlink's quality as the room shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QualityLevel {
    /// The video it receives is at the best layers allowed, with little loss.
    Good,
    /// Some video is below the best layers allowed, or loss is noticeable.
    Fair,
    /// A track is paused, loss is high, or it gets less than half of what it wants.
    Poor,
}

impl QualityLevel {
    /// Every level, best first.
    pub const ALL: [Self; 3] = [Self::Good, Self::Fair, Self::Poor];

    pub fn wire(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Fair => "fair",
            Self::Poor => "poor",
        }
    }

    /// The level of one report: allocated against wanted bits per second, loss in per
    /// mille, tracks paused.
    pub fn of(allocated_bps: u64, wanted_bps: u64, loss_per_mille: u16, paused: u16) -> Self {
        if paused > 0 || loss_per_mille > 100 || allocated_bps.saturating_mul(2) < wanted_bps {
            Self::Poor
        } else if loss_per_mille < 20 && allocated_bps.saturating_mul(10) >= wanted_bps * 9 {
            Self::Good
        } else {
            Self::Fair
        }
    }
}

/// One allocation report of a downlink (a [`MediaEvent::DownlinkQuality`]), as the admin
/// API shows the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownlinkReport {
    /// The estimate of what reaches the participant, bits per second.
    pub estimate_bps: u64,
    /// What its video takes, and would take at the best layers allowed.
    pub allocated_bps: u64,
    pub wanted_bps: u64,
    /// Its transport-wide loss, per mille.
    pub loss_per_mille: u16,
    /// Its tracks paused (not even their lowest layer fits).
    pub paused: u16,
}

impl DownlinkReport {
    /// The report an event carries, if it is one.
    pub fn of_event(event: &MediaEvent) -> Option<Self> {
        match *event {
            MediaEvent::DownlinkQuality {
                estimate_bps,
                allocated_bps,
                wanted_bps,
                loss_per_mille,
                paused,
                ..
            } => Some(Self {
                estimate_bps,
                allocated_bps,
                wanted_bps,
                loss_per_mille,
                paused,
            }),
            _ => None,
        }
    }

    /// Its level.
    pub fn level(&self) -> QualityLevel {
        QualityLevel::of(
            self.allocated_bps,
            self.wanted_bps,
            self.loss_per_mille,
            self.paused,
        )
    }

    /// `{"estimateBps": 1200000, "allocatedBps": ..., "wantedBps": ..., "loss": 0.012,
    /// "pausedTracks": 0}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "estimateBps": self.estimate_bps,
            "allocatedBps": self.allocated_bps,
            "wantedBps": self.wanted_bps,
            "loss": f64::from(self.loss_per_mille) / 1000.0,
            "pausedTracks": self.paused,
        })
    }
}

/// One participant's level and the report that may change it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QualityTracker {
    level: Option<QualityLevel>,
    candidate: Option<QualityLevel>,
    /// The last report, whatever its level.
    pub last: Option<DownlinkReport>,
}

impl QualityTracker {
    /// The level shown, once there is one.
    pub fn level(&self) -> Option<QualityLevel> {
        self.level
    }

    /// Takes one report's level; returns the new level when it changed (the first report
    /// sets it at once, a change needs two reports in a row).
    pub fn report(&mut self, level: QualityLevel) -> Option<QualityLevel> {
        if self.level == Some(level) {
            self.candidate = None;
            return None;
        }
        if self.level.is_none() || self.candidate == Some(level) {
            self.level = Some(level);
            self.candidate = None;
            return Some(level);
        }
        self.candidate = Some(level);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_allocation_loss_and_pauses() {
        let cases = [
            // (allocated, wanted, loss per mille, paused) -> level
            ((1_000_000, 1_000_000, 0, 0), QualityLevel::Good),
            ((950_000, 1_000_000, 10, 0), QualityLevel::Good),
            ((0, 0, 0, 0), QualityLevel::Good),
            ((800_000, 1_000_000, 0, 0), QualityLevel::Fair),
            ((1_000_000, 1_000_000, 50, 0), QualityLevel::Fair),
            ((400_000, 1_000_000, 0, 0), QualityLevel::Poor),
            ((1_000_000, 1_000_000, 150, 0), QualityLevel::Poor),
            ((1_000_000, 1_000_000, 0, 1), QualityLevel::Poor),
        ];
        for ((allocated, wanted, loss, paused), level) in cases {
            assert_eq!(
                QualityLevel::of(allocated, wanted, loss, paused),
                level,
                "{allocated} of {wanted}, loss {loss}, paused {paused}"
            );
        }
    }

    #[test]
    fn a_change_needs_two_reports_in_a_row() {
        let mut tracker = QualityTracker::default();
        assert_eq!(tracker.report(QualityLevel::Good), Some(QualityLevel::Good));
        assert_eq!(tracker.report(QualityLevel::Poor), None);
        assert_eq!(tracker.report(QualityLevel::Good), None);
        assert_eq!(tracker.report(QualityLevel::Poor), None);
        assert_eq!(tracker.report(QualityLevel::Poor), Some(QualityLevel::Poor));
        assert_eq!(tracker.level(), Some(QualityLevel::Poor));
    }
}
