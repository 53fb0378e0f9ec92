//! Extension of the 16-bit RTP sequence number and the 32-bit RTP timestamp to 64 bits,
//! across wrap-around and reordering: a value is placed at the 64-bit position nearest to
//! the highest one seen so far, so a packet slightly older than the newest (even across a
//! wrap) maps to the right 64-bit value.

use crate::SeqNo;

/// Places `value` (the low `bits` bits of a counter) nearest to `highest`.
fn extend(highest: u64, value: u64, bits: u32) -> u64 {
    let modulus = 1u64 << bits;
    let mask = modulus - 1;
    let diff = value.wrapping_sub(highest) & mask;
    if diff < modulus / 2 {
        highest + diff
    } else {
        // Older than the highest; if that would fall before zero, it must be newer instead.
        let back = modulus - diff;
        highest.checked_sub(back).unwrap_or(highest + diff)
    }
}

/// Extends 16-bit RTP sequence numbers to [`SeqNo`].
#[derive(Debug, Clone, Default)]
pub struct SeqNoUnwrapper {
    highest: Option<u64>,
}

impl SeqNoUnwrapper {
    /// An unwrapper that has seen nothing; the first number starts rollover 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The 64-bit value of `seq`, remembering it if it is the newest so far.
    pub fn unwrap(&mut self, seq: u16) -> SeqNo {
        let value = match self.highest {
            None => u64::from(seq),
            Some(highest) => extend(highest, u64::from(seq), 16),
        };
        self.highest = Some(self.highest.map_or(value, |h| h.max(value)));
        SeqNo(value)
    }

    /// The newest sequence number seen so far.
    pub fn highest(&self) -> Option<SeqNo> {
        self.highest.map(SeqNo)
    }
}

/// Extends 32-bit RTP timestamps to 64 bits.
#[derive(Debug, Clone, Default)]
pub struct TimestampUnwrapper {
    highest: Option<u64>,
}

impl TimestampUnwrapper {
    /// An unwrapper that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The 64-bit value of `ts`, remembering it if it is the newest so far.
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        let value = match self.highest {
            None => u64::from(ts),
            Some(highest) => extend(highest, u64::from(ts), 32),
        };
        self.highest = Some(self.highest.map_or(value, |h| h.max(value)));
        value
    }
}
