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

/// Which Sluice node minted an id: 0 on a single node; each node of a cluster has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub u16);

/// Where ids are minted: one media worker of one node. An id carries both, so that ids stay
/// unique when rooms span workers and nodes, and the owner of a session is read off its id.
///
/// Layout of the 64 bits: node (16) | serial (40) | worker (8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IdSpace {
    /// The node.
    pub node: NodeId,
    /// The media worker's index on that node.
    pub worker: u8,
}

/// Serials wrap after 2^40 ids of one kind on one worker: a trillion, never in practice.
const SERIAL_BITS: u32 = 40;
const SERIAL_MASK: u64 = (1 << SERIAL_BITS) - 1;

impl IdSpace {
    /// The id bits of the `serial`-th id minted here.
    pub const fn compose(self, serial: u64) -> u64 {
        ((self.node.0 as u64) << 48) | ((serial & SERIAL_MASK) << 8) | self.worker as u64
    }
}

macro_rules! minted_id {
    ($($(#[$doc:meta])* $ty:ident),*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $ty(pub u64);

        impl $ty {
            /// The `serial`-th id of this kind minted in `space`.
            pub const fn new(space: IdSpace, serial: u64) -> Self {
                Self(space.compose(serial))
            }

            /// The node that minted it.
            pub const fn node(self) -> NodeId {
                NodeId((self.0 >> 48) as u16)
            }

            /// The index of the media worker that minted it (and owns what it names).
            pub const fn worker(self) -> usize {
                (self.0 & 0xff) as usize
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}

minted_id!(
    /// One peer connection (a session) of the media plane.
    SessionId,
    /// A track published into a room: one m-line of a publisher, with its layers.
    TrackId,
    /// One subscriber's stream of one track.
    SubscriptionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_carry_their_node_and_worker() {
        let space = IdSpace {
            node: NodeId(0xbeef),
            worker: 7,
        };
        let a = SessionId::new(space, 1);
        let b = SessionId::new(space, 2);
        assert_ne!(a, b);
        assert_eq!(a.node(), NodeId(0xbeef));
        assert_eq!(a.worker(), 7);
        assert_eq!(TrackId::new(space, (1 << 40) + 5).worker(), 7);
        let other_worker = IdSpace { worker: 8, ..space };
        assert_ne!(SessionId::new(other_worker, 1), a);
        // A single node with one worker mints what earlier versions did: serial << 8.
        assert_eq!(SessionId::new(IdSpace::default(), 3), SessionId(3 << 8));
    }
}
