//! The retransmission cache of one published stream: the last second or so of packets, kept
//! so that a subscriber's NACK can be answered without asking the publisher.
//!
//! All memory is allocated when the stream is created: a ring of fixed-size slots indexed by
//! sequence number modulo the capacity, so storing and looking up a packet never allocates
//! and a hostile stream cannot grow it. A slot is valid only for the exact extended sequence
//! number it holds and only while it is younger than the maximum age.

use std::time::{Duration, Instant};

use rtc_core::SeqNo;

/// The largest packet the cache stores; anything larger than a UDP payload on a 1500-byte MTU
/// link cannot have come from a browser and is not cached.
pub const MAX_CACHED_PACKET: usize = 1500;

#[derive(Debug, Clone, Copy)]
struct SlotMeta {
    seq: SeqNo,
    stored_at: Instant,
    len: u16,
}

/// Recently forwarded packets of one stream, by extended sequence number.
#[derive(Debug)]
pub struct RetransmitCache {
    meta: Box<[Option<SlotMeta>]>,
    data: Box<[u8]>,
    max_age: Duration,
}

impl RetransmitCache {
    /// A cache with room for `capacity` packets (rounded up to a power of two) kept for at
    /// most `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        let capacity = capacity.clamp(1, 1 << 15).next_power_of_two();
        RetransmitCache {
            meta: vec![None; capacity].into_boxed_slice(),
            data: vec![0; capacity * MAX_CACHED_PACKET].into_boxed_slice(),
            max_age,
        }
    }

    /// A cache sized for about one second of video at a few megabits per second.
    pub fn for_video() -> Self {
        Self::new(512, Duration::from_secs(1))
    }

    /// A cache sized for about one second of audio (50 packets per second).
    pub fn for_audio() -> Self {
        Self::new(64, Duration::from_secs(1))
    }

    /// How many packets fit.
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    fn index(&self, seq: SeqNo) -> usize {
        // Capacity is a power of two, so the mask keeps the index in range.
        (seq.0 as usize) & (self.meta.len() - 1)
    }

    /// Stores a copy of `packet` under `seq`, replacing whatever was in its slot. Returns
    /// false (and stores nothing) when the packet is larger than [`MAX_CACHED_PACKET`].
    pub fn store(&mut self, now: Instant, seq: SeqNo, packet: &[u8]) -> bool {
        let Ok(len) = u16::try_from(packet.len()) else {
            return false;
        };
        if packet.len() > MAX_CACHED_PACKET {
            return false;
        }
        let index = self.index(seq);
        let start = index * MAX_CACHED_PACKET;
        let (Some(slot), Some(bytes)) = (
            self.meta.get_mut(index),
            self.data.get_mut(start..start + packet.len()),
        ) else {
            return false;
        };
        bytes.copy_from_slice(packet);
        *slot = Some(SlotMeta {
            seq,
            stored_at: now,
            len,
        });
        true
    }

    /// The packet stored under `seq`, if it is still there and not older than the maximum
    /// age.
    pub fn get(&self, now: Instant, seq: SeqNo) -> Option<&[u8]> {
        let index = self.index(seq);
        let meta = (*self.meta.get(index)?)?;
        if meta.seq != seq || now.saturating_duration_since(meta.stored_at) > self.max_age {
            return None;
        }
        let start = index * MAX_CACHED_PACKET;
        self.data.get(start..start + usize::from(meta.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_packets_come_back_byte_identical() {
        let t0 = crate::test_time::origin();
        let mut cache = RetransmitCache::new(8, Duration::from_secs(1));
        for seq in 100..108u64 {
            let packet = vec![seq as u8; 100 + seq as usize];
            assert!(cache.store(t0, SeqNo(seq), &packet));
        }
        for seq in 100..108u64 {
            let got = cache.get(t0, SeqNo(seq)).expect("cached");
            assert_eq!(got, vec![seq as u8; 100 + seq as usize].as_slice());
        }
    }

    #[test]
    fn overwritten_and_unknown_numbers_miss() {
        let t0 = crate::test_time::origin();
        let mut cache = RetransmitCache::new(4, Duration::from_secs(1));
        for seq in 0..6u64 {
            cache.store(t0, SeqNo(seq), &[seq as u8]);
        }
        // 0 and 1 were overwritten by 4 and 5 (same slots); 6 was never stored.
        assert_eq!(cache.get(t0, SeqNo(0)), None);
        assert_eq!(cache.get(t0, SeqNo(1)), None);
        assert_eq!(cache.get(t0, SeqNo(5)), Some(&[5u8][..]));
        assert_eq!(cache.get(t0, SeqNo(6)), None);
        // The same 16-bit number one rollover later is a different packet.
        assert_eq!(cache.get(t0, SeqNo(5 + 65_536)), None);
    }

    #[test]
    fn packets_expire_after_the_maximum_age() {
        let t0 = crate::test_time::origin();
        let mut cache = RetransmitCache::new(16, Duration::from_millis(1000));
        cache.store(t0, SeqNo(1), b"old");
        assert!(
            cache
                .get(t0 + Duration::from_millis(1000), SeqNo(1))
                .is_some()
        );
        assert!(
            cache
                .get(t0 + Duration::from_millis(1001), SeqNo(1))
                .is_none()
        );
    }

    #[test]
    fn oversized_packets_are_refused() {
        let mut cache = RetransmitCache::new(2, Duration::from_secs(1));
        let now = crate::test_time::origin();
        assert!(!cache.store(now, SeqNo(1), &[0; MAX_CACHED_PACKET + 1]));
        assert!(cache.store(now, SeqNo(1), &[7; MAX_CACHED_PACKET]));
        assert_eq!(
            cache.get(now, SeqNo(1)).map(<[u8]>::len),
            Some(MAX_CACHED_PACKET)
        );
        assert_eq!(RetransmitCache::for_video().capacity(), 512);
    }
}
