//! Newtypes for the identifiers that flow through the media path, so that mixing up an SSRC,
//! a payload type and a sequence number is a compile error.

use std::fmt;

/// A synchronization source identifier (RFC 3550).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ssrc(pub u32);

/// An RTP payload type (7 bits on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pt(pub u8);

/// An RTP sequence number extended over rollovers to 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SeqNo(pub u64);

impl SeqNo {
    /// The 16-bit number carried on the wire.
    pub const fn wire(self) -> u16 {
        self.0 as u16
    }

    /// The rollover counter: how many times the 16-bit number has wrapped.
    pub const fn rollover_count(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

macro_rules! display_inner {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl From<$ty> for u64 {
            fn from(v: $ty) -> u64 {
                v.0.into()
            }
        }
    )*};
}

display_inner!(Ssrc, Pt, SeqNo);
