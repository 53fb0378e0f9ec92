//! Datagrams that landed on one worker's socket but belong to another worker's sessions
//! (SO_REUSEPORT spreads flows over the port's sockets by address, while a room lives on one
//! worker), carried over in batches: one channel message and one wake-up per receive round
//! and owner instead of per datagram, in buffers that go back to the sender for reuse, so a
//! hand-over allocates nothing once the buffers have grown.

use std::net::SocketAddr;

/// Batches a worker keeps for reuse; more are freed when they come back.
pub(crate) const SPARE_BATCHES: usize = 8;

/// Bytes a kept batch may hold on to: a round of GRO-coalesced datagrams can be megabytes,
/// which a spare batch need not keep.
const RETAINED_BYTES: usize = 256 * 1024;

/// Datagrams for one worker, back to back in one buffer.
#[derive(Debug)]
pub(crate) struct HandOverBatch {
    /// The worker that filled it, which gets it back for reuse.
    pub(crate) from: usize,
    bytes: Vec<u8>,
    /// (source, start in `bytes`, length) of each datagram.
    datagrams: Vec<(SocketAddr, usize, usize)>,
}

impl HandOverBatch {
    pub(crate) fn new(from: usize) -> Self {
        HandOverBatch {
            from,
            bytes: Vec::with_capacity(16 * 1024),
            datagrams: Vec::with_capacity(32),
        }
    }

    pub(crate) fn push(&mut self, source: SocketAddr, datagram: &[u8]) {
        self.datagrams
            .push((source, self.bytes.len(), datagram.len()));
        self.bytes.extend_from_slice(datagram);
    }

    pub(crate) fn len(&self) -> usize {
        self.datagrams.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// The `index`th datagram, mutable so it can be unprotected in place.
    pub(crate) fn datagram_mut(&mut self, index: usize) -> Option<(SocketAddr, &mut [u8])> {
        let &(source, start, len) = self.datagrams.get(index)?;
        Some((source, self.bytes.get_mut(start..start + len)?))
    }

    /// Empties the batch, keeping its buffers up to a bound.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.datagrams.clear();
        if self.bytes.capacity() > RETAINED_BYTES {
            self.bytes.shrink_to(RETAINED_BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_come_out_as_they_went_in() {
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("address");
        let b: SocketAddr = "127.0.0.1:2000".parse().expect("address");
        let mut batch = HandOverBatch::new(3);
        batch.push(a, &[1, 2, 3]);
        batch.push(b, &[]);
        batch.push(b, &[9; 1200]);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.datagram_mut(0), Some((a, &mut [1u8, 2, 3][..])));
        assert_eq!(
            batch.datagram_mut(1).map(|(s, d)| (s, d.len())),
            Some((b, 0))
        );
        assert_eq!(
            batch.datagram_mut(2).map(|(s, d)| (s, d.len())),
            Some((b, 1200))
        );
        assert!(batch.datagram_mut(3).is_none());
        batch.clear();
        assert!(batch.is_empty());
    }
}
