//! The rate packets arrive at, over the last second, in fixed buckets (no allocation).

/// Buckets of the window.
const BUCKETS: usize = 20;
/// Each bucket's length; the window is `BUCKETS` of them.
const BUCKET_US: i64 = 50_000;
const WINDOW_US: i64 = BUCKET_US * BUCKETS as i64;

/// Bytes received per bucket over the last second.
#[derive(Debug, Clone)]
pub struct IncomingRate {
    /// Bytes in each bucket, by bucket number modulo `BUCKETS`.
    bytes: [u64; BUCKETS],
    /// The number (time / `BUCKET_US`) of the newest bucket written.
    newest: Option<i64>,
    first_us: Option<i64>,
}

impl Default for IncomingRate {
    fn default() -> Self {
        Self {
            bytes: [0; BUCKETS],
            newest: None,
            first_us: None,
        }
    }
}

impl IncomingRate {
    /// `bytes` arrived at `now_us`.
    pub fn add(&mut self, now_us: i64, bytes: usize) {
        self.first_us.get_or_insert(now_us);
        let bucket = self.advance(now_us);
        if let Some(slot) = self.bytes.get_mut(slot_of(bucket)) {
            *slot += bytes as u64;
        }
    }

    /// Bits per second over the last second; `None` before a second of packets was seen.
    pub fn bitrate(&mut self, now_us: i64) -> Option<u64> {
        let first = self.first_us?;
        if now_us - first < WINDOW_US {
            return None;
        }
        self.advance(now_us);
        let bytes: u64 = self.bytes.iter().sum();
        Some(bytes * 8 * 1_000_000 / WINDOW_US as u64)
    }

    /// Clears the buckets that fell out of the window by `now_us`; the current bucket.
    fn advance(&mut self, now_us: i64) -> i64 {
        let bucket = now_us.div_euclid(BUCKET_US);
        match self.newest {
            Some(newest) if bucket <= newest => return newest.max(bucket),
            Some(newest) => {
                let stale = (bucket - newest).min(BUCKETS as i64);
                for step in 1..=stale {
                    if let Some(slot) = self.bytes.get_mut(slot_of(newest + step)) {
                        *slot = 0;
                    }
                }
            }
            None => {}
        }
        self.newest = Some(bucket);
        bucket
    }
}

fn slot_of(bucket: i64) -> usize {
    bucket.rem_euclid(BUCKETS as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_megabit_reads_as_one_after_a_second_and_silence_empties_the_window() {
        let mut rate = IncomingRate::default();
        // 1200-byte packets every 9.6 ms: 1 Mbit/s.
        let mut now = 0;
        while now < 2_000_000 {
            rate.add(now, 1200);
            if now < 900_000 {
                assert_eq!(rate.bitrate(now), None);
            }
            now += 9_600;
        }
        let bitrate = rate.bitrate(now).unwrap();
        assert!((950_000..=1_050_000).contains(&bitrate), "{bitrate}");
        assert_eq!(rate.bitrate(now + 1_100_000), Some(0));
    }
}
