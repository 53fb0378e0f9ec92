//! Reception statistics of one incoming stream, for the receiver reports Sluice sends to
//! publishers (RFC 3550 section 6.4.1 and appendix A.3, A.8): loss, the extended highest
//! sequence number, interarrival jitter, and the timing of the last sender report.

use std::time::Instant;

use rtc_core::rtcp::ReportBlock;
use rtc_core::rtcp::ntp::{compact_ntp, duration_to_compact_ntp};
use rtc_core::{SeqNo, Ssrc};

/// Counters behind one report block.
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    clock_rate: u32,
    first_arrival: Option<Instant>,
    base_seq: Option<SeqNo>,
    highest_seq: Option<SeqNo>,
    received: u64,
    /// Expected and received at the previous report, for the fraction lost.
    expected_prior: u64,
    received_prior: u64,
    last_transit: Option<i64>,
    /// Jitter in timestamp units, scaled by 16 as in RFC 3550 appendix A.8.
    jitter_q4: u64,
    last_sender_report: Option<(u32, Instant)>,
}

impl ReceptionStats {
    /// Statistics for a stream with this RTP clock rate.
    pub fn new(clock_rate: u32) -> Self {
        ReceptionStats {
            clock_rate: clock_rate.max(1),
            first_arrival: None,
            base_seq: None,
            highest_seq: None,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            last_transit: None,
            jitter_q4: 0,
            last_sender_report: None,
        }
    }

    /// Records a received packet.
    pub fn handle_packet(&mut self, now: Instant, seq: SeqNo, timestamp: u32) {
        self.received += 1;
        let first = *self.first_arrival.get_or_insert(now);
        if self.base_seq.is_none_or(|base| seq < base) {
            self.base_seq = Some(seq);
        }
        if self.highest_seq.is_none_or(|highest| seq > highest) {
            self.highest_seq = Some(seq);
        }
        let arrival = now.saturating_duration_since(first).as_micros()
            * u128::from(self.clock_rate)
            / 1_000_000;
        // Arrival in clock units minus the timestamp, both modulo 2^32 as RFC 3550 computes it.
        let transit = i64::from((arrival as u32).wrapping_sub(timestamp) as i32);
        if let Some(last) = self.last_transit {
            let d = transit.wrapping_sub(last).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_q4 =
                self.jitter_q4 + d.min(u64::from(u32::MAX)) - (self.jitter_q4 + 8) / 16;
        }
        self.last_transit = Some(transit);
    }

    /// Records a sender report (its NTP time) from the stream's sender.
    pub fn handle_sender_report(&mut self, now: Instant, ntp_time: u64) {
        self.last_sender_report = Some((compact_ntp(ntp_time), now));
    }

    /// The report block for the stream `ssrc` as of now; starts a new reporting interval.
    pub fn report_block(&mut self, now: Instant, ssrc: Ssrc) -> ReportBlock {
        let (Some(base), Some(highest)) = (self.base_seq, self.highest_seq) else {
            return ReportBlock {
                ssrc,
                ..ReportBlock::default()
            };
        };
        let expected = highest.0 - base.0 + 1;
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |fraction| fraction.min(255) as u8);
        let cumulative_lost =
            i32::try_from(expected as i64 - self.received as i64).unwrap_or(i32::MAX);
        let (last_sr, delay_since_last_sr) = match self.last_sender_report {
            Some((middle, at)) => (
                middle,
                duration_to_compact_ntp(now.saturating_duration_since(at)),
            ),
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost,
            extended_highest_seq: highest.0 as u32,
            jitter: u32::try_from(self.jitter_q4 / 16).unwrap_or(u32::MAX),
            last_sr,
            delay_since_last_sr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loss_is_reported_per_interval_and_cumulatively() {
        let t0 = crate::test_time::origin();
        let mut stats = ReceptionStats::new(90_000);
        for seq in (65_530u64..65_550).filter(|s| s % 5 != 2) {
            stats.handle_packet(t0, SeqNo(seq), 0);
        }
        let block = stats.report_block(t0, Ssrc(7));
        // 65530..=65549 is 20 expected, 4 of them (65532, 65537, ...) lost.
        assert_eq!(block.cumulative_lost, 4);
        assert_eq!(block.fraction_lost, (4 * 256 / 20) as u8);
        assert_eq!(block.extended_highest_seq, 65_549);
        assert_eq!(block.ssrc, Ssrc(7));
        for seq in 65_550u64..65_560 {
            stats.handle_packet(t0, SeqNo(seq), 0);
        }
        let block = stats.report_block(t0, Ssrc(7));
        assert_eq!(block.fraction_lost, 0);
        assert_eq!(block.cumulative_lost, 4);
        assert_eq!(block.extended_highest_seq, 65_559);
    }

    #[test]
    fn jitter_grows_with_irregular_arrival_and_dlsr_counts_from_the_report() {
        let t0 = crate::test_time::origin();
        let mut steady = ReceptionStats::new(90_000);
        let mut irregular = ReceptionStats::new(90_000);
        for i in 0..50u64 {
            let ts = (i * 3000) as u32;
            steady.handle_packet(t0 + Duration::from_micros(i * 33_333), SeqNo(i), ts);
            let wobble = if i % 2 == 0 { 0 } else { 10_000 };
            irregular.handle_packet(
                t0 + Duration::from_micros(i * 33_333 + wobble),
                SeqNo(i),
                ts,
            );
        }
        let now = t0 + Duration::from_secs(2);
        assert!(steady.report_block(now, Ssrc(1)).jitter <= 1);
        assert!(irregular.report_block(now, Ssrc(1)).jitter > 500);

        steady.handle_sender_report(now, 0x1234_5678_9abc_def0);
        let block = steady.report_block(now + Duration::from_millis(500), Ssrc(1));
        assert_eq!(block.last_sr, 0x5678_9abc);
        assert_eq!(block.delay_since_last_sr, 32_768);
    }
}
