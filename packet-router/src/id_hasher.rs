//! A fast hasher for the small fixed-size keys of the per-packet lookups (session ids, SSRCs,
//! track and subscription ids, socket addresses): a multiply per word and a folded 128-bit
//! multiply at the end, instead of SipHash's rounds.
//!
//! SipHash's flooding resistance is not needed for these tables: their entries are created
//! by signaling (tracks, subscriptions) or by an address passing an authenticated ICE check,
//! never by a bare datagram, and each peer holds a bounded number of them. A hostile sender
//! can only look keys up, which costs it one probe sequence like any other packet.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Odd constants with well-mixed bits (from the golden ratio and from PCG).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
const FOLD_MULTIPLIER: u64 = 0x5851_f42d_4c95_7f2d;

/// The hasher; see the module documentation for why it need not resist flooding.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The multiplies leave the low bits (which pick the bucket) depending on the low bits
        // of the key only; folding the 128-bit product mixes every bit into every bit. Keys
        // such as session ids, whose low byte is the same for one worker, need this.
        let product = u128::from(self.0) * u128::from(FOLD_MULTIPLIER);
        (product as u64) ^ ((product >> 64) as u64)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            if let Some(prefix) = word.get_mut(..chunk.len()) {
                prefix.copy_from_slice(chunk);
            }
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u16(&mut self, value: u16) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }
}

/// A `HashMap` keyed by ids, hashed with [`IdHasher`].
pub type IdHashMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn session_ids_of_one_worker_spread_over_buckets() {
        // Ids of one worker differ above the low byte; the low 7 bits of their hashes pick
        // among 128 buckets and should use most of them.
        let build = BuildHasherDefault::<IdHasher>::default();
        let mut used = [false; 128];
        for counter in 1..=128u64 {
            let hash = build.hash_one(counter << 8 | 3);
            used[(hash & 127) as usize] = true;
        }
        assert!(used.iter().filter(|&&u| u).count() > 64);
    }

    #[test]
    fn a_map_finds_what_it_holds() {
        let mut map: IdHashMap<(u64, u32), usize> = IdHashMap::default();
        for i in 0..1000u32 {
            map.insert((u64::from(i) << 8, i.wrapping_mul(7919)), i as usize);
        }
        for i in 0..1000u32 {
            assert_eq!(
                map.get(&(u64::from(i) << 8, i.wrapping_mul(7919))),
                Some(&(i as usize))
            );
        }
        assert_eq!(map.get(&(5, 5)), None);
    }
}
