//! NTP time as RTCP carries it (RFC 3550 section 4): the 64-bit timestamp of sender reports
//! (seconds in the high 32 bits, the fraction in the low 32), and the compact 32-bit form of
//! the report blocks' LSR and DLSR fields (16.16: the middle 32 bits of the timestamp, and
//! delays in units of 1/65536 s).

use std::time::Duration;

/// A duration in 64-bit NTP units (32.32 fixed-point seconds), to advance an NTP timestamp.
/// Durations beyond 2^32 s wrap, as NTP time itself does.
pub fn duration_to_ntp(duration: Duration) -> u64 {
    (duration.as_secs() << 32) + ((u64::from(duration.subsec_nanos()) << 32) / 1_000_000_000)
}

/// The middle 32 bits of an NTP timestamp: the LSR field of a report block (RFC 3550
/// section 6.4.1), which names the sender report it answers.
pub fn compact_ntp(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in compact NTP units (1/65536 s), as the DLSR field of a report block carries
/// the delay since the last sender report; saturates at `u32::MAX` (about 18 hours).
pub fn duration_to_compact_ntp(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros() * 65_536 / 1_000_000).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_ntp_units() {
        assert_eq!(duration_to_ntp(Duration::ZERO), 0);
        assert_eq!(duration_to_ntp(Duration::from_secs(3)), 3 << 32);
        assert_eq!(duration_to_ntp(Duration::from_millis(500)), 1 << 31);
        assert_eq!(
            duration_to_ntp(Duration::from_millis(1_250)),
            (1 << 32) + (1 << 30)
        );
        // One nanosecond is about 4.3 units; the fraction rounds down.
        assert_eq!(duration_to_ntp(Duration::from_nanos(1)), 4);
    }

    #[test]
    fn the_compact_form_is_the_middle_of_the_timestamp() {
        assert_eq!(compact_ntp(0xda8b_d1fc_dddd_a05a), 0xd1fc_dddd);
        assert_eq!(
            compact_ntp(duration_to_ntp(Duration::from_millis(1_500))),
            0x0001_8000
        );
    }

    #[test]
    fn delays_in_compact_units() {
        assert_eq!(duration_to_compact_ntp(Duration::ZERO), 0);
        assert_eq!(duration_to_compact_ntp(Duration::from_secs(1)), 65_536);
        assert_eq!(duration_to_compact_ntp(Duration::from_millis(250)), 16_384);
        assert_eq!(
            duration_to_compact_ntp(Duration::from_secs(100_000)),
            u32::MAX,
            "saturates"
        );
    }
}
