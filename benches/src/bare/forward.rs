//! The forwarding path, all of it: an SRTP packet from a publisher's validated address is
//! unprotected once in place, where it was received; after the receive batch, for each of that
//! publisher's subscribers it is copied into a preallocated send slot and protected with the
//! subscriber's outbound context; the slots go out with `sendmmsg` after each receive batch (or
//! as soon as the queue fills). Nothing is rewritten, no RTCP is handled, and nothing is
//! allocated, locked or hashed by string here.

use std::net::SocketAddr;

use rtc_core::srtp::SrtpContext;
use server::udp::{BatchSocket, RecvBatch};

use super::counters::{Counters, DropReason};
use super::session::SessionRole;
use super::table::SessionTable;

/// Bytes of one send slot: a 1200-byte video packet with its headers and the largest SRTP tag
/// fits, with room for packets up to a typical Ethernet MTU.
pub(crate) const SLOT_LEN: usize = 1536;

/// Protected copies queued before a `sendmmsg` round is forced (four calls of 64). A fan-out
/// larger than this goes out in several rounds; the queue stays small enough to stay in the
/// cache.
pub(crate) const QUEUE_SLOTS: usize = 256;

/// Send slots, and where the filled ones go.
pub(crate) struct SendQueue {
    slots: Box<[u8]>,
    /// Destination and protected length of each filled slot, in slot order.
    queued: Vec<(SocketAddr, usize)>,
}

impl std::fmt::Debug for SendQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendQueue")
            .field("queued", &self.queued.len())
            .finish_non_exhaustive()
    }
}

impl Default for SendQueue {
    fn default() -> Self {
        SendQueue {
            slots: vec![0; SLOT_LEN * QUEUE_SLOTS].into_boxed_slice(),
            queued: Vec::with_capacity(QUEUE_SLOTS),
        }
    }
}

impl SendQueue {
    fn is_full(&self) -> bool {
        self.queued.len() >= QUEUE_SLOTS
    }

    /// Copies `plain` into the next free slot, protects it there with `outbound` and queues
    /// it for `remote`. The caller flushes a full queue first.
    fn push_protected(
        &mut self,
        plain: &[u8],
        outbound: &mut SrtpContext,
        remote: SocketAddr,
    ) -> Result<(), DropReason> {
        let start = self.queued.len() * SLOT_LEN;
        let slot = self
            .slots
            .get_mut(start..start + SLOT_LEN)
            .ok_or(DropReason::Protect)?;
        slot.get_mut(..plain.len())
            .ok_or(DropReason::TooLarge)?
            .copy_from_slice(plain);
        let len = outbound
            .protect_rtp(slot, plain.len())
            .map_err(|error| match error {
                rtc_core::srtp::SrtpError::BufferTooSmall => DropReason::TooLarge,
                _ => DropReason::Protect,
            })?;
        self.queued.push((remote, len));
        Ok(())
    }

    /// Sends every queued slot with as few `sendmmsg` calls as the socket allows.
    pub(crate) fn flush(&mut self, socket: &mut BatchSocket, counters: &mut Counters) {
        if self.queued.is_empty() {
            return;
        }
        let datagrams = self
            .queued
            .iter()
            .zip(self.slots.chunks_exact(SLOT_LEN))
            .filter_map(|(&(remote, len), slot)| Some((remote, slot.get(..len)?)));
        socket.send_batch(datagrams);
        counters.send_batches += 1;
        self.queued.clear();
    }
}

/// A packet of the current receive batch, unprotected in place and waiting for its fan-out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unprotected {
    /// The publisher's slot in the session table.
    publisher: usize,
    /// Its index in the receive batch.
    datagram: usize,
    /// Length of the plain RTP packet at the start of the datagram.
    len: usize,
}

/// Packets of one receive batch (or part of one) waiting for their fan-out.
#[derive(Debug)]
pub(crate) struct PendingFanOut {
    packets: Vec<Unprotected>,
}

/// Packets held before a fan-out is forced; more than a receive batch of full-sized datagrams,
/// so that it is only reached when GRO packs many small datagrams into the batch.
const PENDING_CAPACITY: usize = 1024;

impl Default for PendingFanOut {
    fn default() -> Self {
        PendingFanOut {
            packets: Vec::with_capacity(PENDING_CAPACITY),
        }
    }
}

impl PendingFanOut {
    /// Whether the next packet must wait for a fan-out of those held (the list never grows).
    pub(crate) fn is_full(&self) -> bool {
        self.packets.len() >= self.packets.capacity()
    }
}

/// Unprotects the SRTP packet `datagram` (number `index` of the receive batch) from `source`
/// in place and holds it for [`fan_out`].
pub(crate) fn unprotect(
    table: &mut SessionTable,
    pending: &mut PendingFanOut,
    counters: &mut Counters,
    source: SocketAddr,
    index: usize,
    datagram: &mut [u8],
) {
    let Some(slot) = table.slot_by_address(source) else {
        counters.drop(DropReason::UnvalidatedSource);
        return;
    };
    let Some(session) = table.get_mut(slot) else {
        counters.drop(DropReason::UnvalidatedSource);
        return;
    };
    let SessionRole::Publisher(publisher) = &mut session.role else {
        counters.drop(DropReason::FromPlayer);
        return;
    };
    let Some(inbound) = publisher.inbound.as_mut() else {
        counters.drop(DropReason::NoKeysYet);
        return;
    };
    let Ok(len) = inbound.unprotect_rtp(datagram) else {
        counters.drop(DropReason::Unprotect);
        return;
    };
    counters.rtp_received += 1;
    if pending.is_full() {
        // The caller fans out before each packet that would not fit; never reached.
        counters.drop(DropReason::Protect);
        return;
    }
    pending.packets.push(Unprotected {
        publisher: slot,
        datagram: index,
        len,
    });
}

/// Copies every held packet to every subscriber of its publisher, protecting each copy with
/// the subscriber's context, and queues the copies subscriber by subscriber: the packets of
/// one publisher in a batch go to one subscriber back to back, in arrival order, so that a
/// socket that groups runs to one destination (UDP GSO) can send each run at once.
pub(crate) fn fan_out(
    table: &mut SessionTable,
    pending: &mut PendingFanOut,
    batch: &mut RecvBatch,
    queue: &mut SendQueue,
    socket: &mut BatchSocket,
    counters: &mut Counters,
) {
    // Unique keys, so the unstable sort (which does not allocate) keeps arrival order within
    // each publisher.
    pending
        .packets
        .sort_unstable_by_key(|packet| (packet.publisher, packet.datagram));
    for run in pending.packets.chunk_by(|a, b| a.publisher == b.publisher) {
        let Some(first) = run.first() else {
            continue;
        };
        let Some(SessionRole::Publisher(publisher)) =
            table.get_mut(first.publisher).map(|s| &mut s.role)
        else {
            // The publisher left during the batch.
            continue;
        };
        for subscriber in &mut publisher.subscribers {
            for packet in run {
                let Some(plain) = batch
                    .datagram_mut(packet.datagram)
                    .and_then(|(_, datagram)| datagram.get(..packet.len))
                else {
                    continue;
                };
                if queue.is_full() {
                    queue.flush(socket, counters);
                }
                match queue.push_protected(plain, &mut subscriber.outbound, subscriber.remote) {
                    Ok(()) => counters.forwarded += 1,
                    Err(reason) => counters.drop(reason),
                }
            }
        }
    }
    pending.packets.clear();
}
