//! The router's output: plaintext RTP and RTCP packets, each addressed to a session, in
//! preallocated buffers that the media worker protects with the session's SRTP context in
//! place and hands to a batched send.
//!
//! The queue keeps its buffers between rounds, so once it has grown to the largest fan-out it
//! has seen, routing a packet allocates nothing.

use crate::SessionId;

/// The largest plaintext packet the router emits.
pub const MAX_PACKET: usize = 1500;

/// Room after the packet for what SRTP or SRTCP appends (a 16-byte tag, a 4-byte index).
pub const PROTECTION_HEADROOM: usize = 32;

/// What a transmit carries, which decides the SRTP transform applied to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmitKind {
    /// An RTP packet (SRTP).
    Rtp,
    /// An RTCP compound packet (SRTCP).
    Rtcp,
}

/// One packet to send.
#[derive(Debug)]
pub struct Transmit {
    /// The session it goes to.
    pub session: SessionId,
    /// RTP or RTCP.
    pub kind: TransmitKind,
    /// Length of the packet at the start of `buf`.
    pub len: usize,
    /// The packet, with [`PROTECTION_HEADROOM`] bytes to spare for the SRTP transform.
    pub buf: Box<[u8; MAX_PACKET + PROTECTION_HEADROOM]>,
}

impl Transmit {
    /// The packet bytes.
    pub fn packet(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// A reusable queue of transmits.
#[derive(Debug, Default)]
pub struct TransmitQueue {
    slots: Vec<Transmit>,
    len: usize,
}

impl TransmitQueue {
    /// An empty queue with buffers for `capacity` transmits allocated up front.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut queue = TransmitQueue::default();
        queue.reserve(capacity);
        queue
    }

    /// Makes sure `additional` more transmits fit without allocating.
    pub fn reserve(&mut self, additional: usize) {
        while self.slots.len() < self.len + additional {
            self.slots.push(Transmit {
                session: SessionId(0),
                kind: TransmitKind::Rtp,
                len: 0,
                buf: Box::new([0; MAX_PACKET + PROTECTION_HEADROOM]),
            });
        }
    }

    /// Number of queued transmits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a packet written by `write`, which gets the buffer and returns the packet
    /// length, or `None` to cancel the transmit.
    pub fn push_with(
        &mut self,
        session: SessionId,
        kind: TransmitKind,
        write: impl FnOnce(&mut [u8; MAX_PACKET + PROTECTION_HEADROOM]) -> Option<usize>,
    ) -> bool {
        self.reserve(1);
        let Some(slot) = self.slots.get_mut(self.len) else {
            return false;
        };
        match write(&mut slot.buf) {
            Some(len) if len <= MAX_PACKET => {
                slot.session = session;
                slot.kind = kind;
                slot.len = len;
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    /// The queued transmits, mutable so the caller can protect them in place.
    pub fn as_mut_slice(&mut self) -> &mut [Transmit] {
        self.slots.get_mut(..self.len).unwrap_or_default()
    }

    /// The queued transmits.
    pub fn as_slice(&self) -> &[Transmit] {
        self.slots.get(..self.len).unwrap_or_default()
    }

    /// Forgets the queued transmits, keeping their buffers.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}
