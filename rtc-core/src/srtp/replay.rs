//! Per-SSRC stream state: the packet index estimate of RFC 3711 section 3.3.1 / Appendix A
//! (rollover counter from a 16-bit sequence number), the sliding replay window of section
//! 3.3.2, and a bounded table of streams keyed by SSRC.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::SrtpError;

/// Packets the replay window remembers behind the highest index seen.
pub const REPLAY_WINDOW: u64 = 128;

/// The largest SRTP packet index: 48 bits (32-bit ROC, 16-bit sequence number).
pub(crate) const MAX_SRTP_INDEX: u64 = (1 << 48) - 1;

/// Estimates the 48-bit index of a packet carrying `seq`, given the highest index seen so far
/// (RFC 3711 Appendix A): the candidate closest to `highest` among ROC-1, ROC and ROC+1.
/// A packet that would lie before index 0 is older than anything the stream can have sent.
pub(crate) fn estimate_index(highest: u64, seq: u16) -> Result<u64, SrtpError> {
    let roc = highest >> 16;
    let last_seq = highest as u16;
    let seq64 = u64::from(seq);
    let guessed_roc = if last_seq < 0x8000 {
        if seq > last_seq && seq - last_seq > 0x8000 {
            roc.checked_sub(1).ok_or(SrtpError::TooOld)?
        } else {
            roc
        }
    } else if last_seq - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    let index = (guessed_roc << 16) | seq64;
    if index > MAX_SRTP_INDEX {
        return Err(SrtpError::KeyExhausted);
    }
    Ok(index)
}

/// The highest index accepted on a stream and which of the [`REPLAY_WINDOW`] indices below it
/// were accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    highest: u64,
    /// Bit `n` set: index `highest - n` was accepted.
    seen: u128,
}

impl ReplayWindow {
    /// A window whose first accepted packet has `index`.
    pub(crate) fn new(index: u64) -> Self {
        Self {
            highest: index,
            seen: 1,
        }
    }

    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    /// Whether `index` may still be accepted, without changing anything.
    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        let Some(behind) = self.highest.checked_sub(index) else {
            return Ok(());
        };
        if behind >= REPLAY_WINDOW {
            return Err(SrtpError::TooOld);
        }
        if self.seen & (1u128 << behind) != 0 {
            return Err(SrtpError::Replayed);
        }
        Ok(())
    }

    /// Records `index` as accepted; call only after it passed [`Self::check`] and the packet
    /// authenticated.
    pub(crate) fn accept(&mut self, index: u64) {
        match self.highest.checked_sub(index) {
            Some(behind) => {
                if behind < REPLAY_WINDOW {
                    self.seen |= 1u128 << behind;
                }
            }
            None => {
                let ahead = index - self.highest;
                self.seen = if ahead >= REPLAY_WINDOW {
                    1
                } else {
                    (self.seen << ahead) | 1
                };
                self.highest = index;
            }
        }
    }
}

/// A bounded map from SSRC to per-stream state.
#[derive(Debug, Clone)]
pub(crate) struct StreamTable<S> {
    streams: HashMap<u32, S, BuildHasherDefault<SsrcHasher>>,
    max_streams: usize,
}

impl<S> StreamTable<S> {
    pub(crate) fn new(max_streams: usize) -> Self {
        Self {
            streams: HashMap::default(),
            max_streams,
        }
    }

    pub(crate) fn set_max_streams(&mut self, max_streams: usize) {
        self.max_streams = max_streams;
    }

    pub(crate) fn get(&self, ssrc: u32) -> Option<&S> {
        self.streams.get(&ssrc)
    }

    pub(crate) fn get_mut(&mut self, ssrc: u32) -> Option<&mut S> {
        self.streams.get_mut(&ssrc)
    }

    /// Fails with [`SrtpError::TooManyStreams`] if a new stream would exceed the bound.
    pub(crate) fn has_room(&self) -> Result<(), SrtpError> {
        if self.streams.len() < self.max_streams {
            Ok(())
        } else {
            Err(SrtpError::TooManyStreams)
        }
    }

    /// Inserts a new stream; the caller has checked [`Self::has_room`].
    pub(crate) fn insert(&mut self, ssrc: u32, state: S) -> Result<(), SrtpError> {
        self.has_room()?;
        self.streams.insert(ssrc, state);
        Ok(())
    }

    pub(crate) fn remove(&mut self, ssrc: u32) -> bool {
        self.streams.remove(&ssrc).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }
}

/// A multiplicative hash of the SSRC. SipHash's flooding resistance is not needed: only
/// authenticated packets insert entries and the table is bounded, so a hostile sender can at
/// worst slow down its own session.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SsrcHasher(u64);

impl Hasher for SsrcHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 =
                (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u32(&mut self, value: u32) {
        self.0 = (u64::from(value) ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_estimate_follows_the_sequence_wrap() {
        // Forward across the wrap: 65535 (ROC 0) then 0 belongs to ROC 1.
        assert_eq!(estimate_index(65535, 0), Ok(1 << 16));
        assert_eq!(estimate_index(65530, 5), Ok((1 << 16) | 5));
        // Late packet from before the wrap, seen after it: stays in ROC 0.
        assert_eq!(estimate_index((1 << 16) | 3, 65533), Ok(65533));
        // Ordinary progress and small reordering within one ROC.
        assert_eq!(estimate_index((7 << 16) | 1000, 1001), Ok((7 << 16) | 1001));
        assert_eq!(estimate_index((7 << 16) | 1000, 990), Ok((7 << 16) | 990));
        // Behind index 0: cannot exist.
        assert_eq!(estimate_index(10, 65000), Err(SrtpError::TooOld));
        // The 2^48 index space is exhausted.
        assert_eq!(
            estimate_index(MAX_SRTP_INDEX, 0),
            Err(SrtpError::KeyExhausted)
        );
    }

    #[test]
    fn replay_window_accepts_each_index_once() {
        let mut window = ReplayWindow::new(1000);
        assert_eq!(window.check(1000), Err(SrtpError::Replayed));
        assert_eq!(window.check(1001), Ok(()));
        window.accept(1005);
        // Skipped indices below the new highest are still acceptable, once.
        for index in [1001, 1002, 1003, 1004] {
            assert_eq!(window.check(index), Ok(()));
            window.accept(index);
            assert_eq!(window.check(index), Err(SrtpError::Replayed));
        }
        assert_eq!(window.check(1005), Err(SrtpError::Replayed));
        // The window edge: highest - 127 is remembered, highest - 128 is too old.
        assert_eq!(window.check(1005 - 127), Ok(()));
        assert_eq!(window.check(1005 - 128), Err(SrtpError::TooOld));
        // A jump past the whole window forgets everything before it.
        window.accept(1005 + 500);
        assert_eq!(window.highest(), 1505);
        assert_eq!(window.check(1504), Ok(()));
        assert_eq!(window.check(1505 - 128), Err(SrtpError::TooOld));
    }

    #[test]
    fn stream_table_is_bounded() {
        let mut table = StreamTable::new(2);
        table.insert(1, ()).unwrap();
        table.insert(2, ()).unwrap();
        assert_eq!(table.insert(3, ()), Err(SrtpError::TooManyStreams));
        assert!(table.get(3).is_none());
        assert!(table.remove(1));
        table.insert(3, ()).unwrap();
        assert_eq!(table.len(), 2);
    }
}
