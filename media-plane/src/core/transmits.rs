//! What the core sends: control datagrams (STUN responses, DTLS flights) ready as they are,
//! and the router's media and RTCP, protected with each session's SRTP keys when polled.

use std::net::SocketAddr;

use packet_router::{RouterEvent, SessionId, Transmit, TransmitKind};

use super::{CoreEvent, WorkerCore};
use crate::stats::DropReason;

/// Control datagrams kept for reuse of their buffers.
const SPARE_CONTROL: usize = 64;

/// STUN and DTLS datagrams waiting for the next poll, in their own reused buffers.
#[derive(Debug, Default)]
pub(crate) struct ControlQueue {
    queued: Vec<(SocketAddr, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
}

impl ControlQueue {
    pub(crate) fn push(&mut self, destination: SocketAddr, bytes: &[u8]) {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        self.queued.push((destination, buf));
    }

    fn clear(&mut self) {
        for (_, buf) in self.queued.drain(..) {
            if self.spare.len() < SPARE_CONTROL {
                self.spare.push(buf);
            }
        }
    }
}

/// Everything the core has to send, borrowed until [`WorkerCore::clear_transmits`]: control
/// datagrams first, then media, each session's together when the core groups transmits (so
/// that runs of equal-sized datagrams to one destination can leave as one GSO send).
#[derive(Debug)]
pub struct Transmits<'a> {
    control: &'a [(SocketAddr, Vec<u8>)],
    media: &'a [Transmit],
    destinations: &'a [Option<SocketAddr>],
    order: &'a [usize],
}

impl<'a> Transmits<'a> {
    /// The datagrams, as (destination, protected bytes).
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &'a [u8])> + 'a {
        let control = self
            .control
            .iter()
            .map(|(destination, bytes)| (*destination, bytes.as_slice()));
        let (media, destinations) = (self.media, self.destinations);
        let at = move |index: usize| -> Option<(SocketAddr, &'a [u8])> {
            let destination = (*destinations.get(index)?)?;
            Some((destination, media.get(index)?.packet()))
        };
        control.chain(self.order.iter().copied().filter_map(at))
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.destinations.iter().all(Option::is_none)
    }
}

impl WorkerCore {
    /// Protects every queued router transmit with its session's keys and returns all that is
    /// to be sent. Transmits for sessions without keys or an address are dropped and
    /// counted. Call [`WorkerCore::clear_transmits`] once they are sent.
    pub fn poll_transmits(&mut self) -> Transmits<'_> {
        // What the router did or saw while the batch was routed: audio activity (who is
        // speaking) and each allocation's outcome (how good a downlink is) go on to
        // signaling, the rest is logged, and the router's ring stays free for what comes
        // next.
        while let Some(event) = self.router.poll_event() {
            match event {
                RouterEvent::AudioActivity {
                    track,
                    publisher,
                    packets,
                    voiced,
                } => self.push_event(CoreEvent::AudioActivity {
                    track,
                    publisher,
                    packets,
                    voiced,
                }),
                RouterEvent::Allocated {
                    subscriber,
                    estimate,
                    allocated,
                    wanted,
                    loss_per_mille,
                    paused,
                    ..
                } => {
                    tracing::debug!(event = ?event, "router event");
                    self.push_event(CoreEvent::DownlinkQuality {
                        session: subscriber,
                        estimate_bps: estimate,
                        allocated_bps: allocated,
                        wanted_bps: wanted,
                        loss_per_mille,
                        paused,
                    });
                }
                other => tracing::debug!(event = ?other, "router event"),
            }
        }
        self.destinations.clear();
        for transmit in self.out.as_mut_slice() {
            let destination = self
                .sessions
                .get_mut(&transmit.session)
                .and_then(|session| {
                    let remote = session.transport.remote()?;
                    Some((session.transport.srtp_mut()?, remote))
                });
            let Some((srtp, remote)) = destination else {
                self.stats.dropped(DropReason::NoKeysYet);
                self.destinations.push(None);
                continue;
            };
            let protected = match transmit.kind {
                TransmitKind::Rtp => srtp
                    .outbound
                    .protect_rtp(&mut transmit.buf[..], transmit.len),
                TransmitKind::Rtcp => srtp
                    .outbound
                    .protect_rtcp(&mut transmit.buf[..], transmit.len),
            };
            match protected {
                Ok(len) => {
                    transmit.len = len;
                    self.destinations.push(Some(remote));
                }
                Err(e) => {
                    self.stats.srtp_error(e);
                    self.destinations.push(None);
                }
            }
        }
        if self.config.group_transmits {
            group_by_session(self.out.as_slice(), &mut self.send_order);
        } else {
            // Without grouping the router's order is as good as any.
            self.send_order.clear();
            self.send_order.extend(0..self.out.len());
        }
        Transmits {
            control: &self.control.queued,
            media: self.out.as_slice(),
            destinations: &self.destinations,
            order: &self.send_order,
        }
    }

    /// Forgets what [`WorkerCore::poll_transmits`] returned (it was sent).
    pub fn clear_transmits(&mut self) {
        self.control.clear();
        self.out.clear();
        self.destinations.clear();
    }

    /// Whether anything waits to be sent.
    pub fn has_transmits(&self) -> bool {
        !self.out.is_empty() || !self.control.queued.is_empty()
    }
}

/// Fills `order` with the indices of `transmits` so that each session's transmits come
/// together, in the order the router queued them (so runs to one subscriber can go out as
/// one GSO send). Sorting indices by (session, index) keeps each session's order without the
/// allocation of a stable sort.
pub(crate) fn group_by_session(transmits: &[Transmit], order: &mut Vec<usize>) {
    order.clear();
    order.extend(0..transmits.len());
    order.sort_unstable_by_key(|&index| {
        let session = transmits.get(index).map_or(SessionId(0), |t| t.session);
        (session, index)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use packet_router::TransmitQueue;

    #[test]
    fn transmits_are_grouped_by_session_in_their_own_order() {
        let mut queue = TransmitQueue::with_capacity(8);
        for (session, marker) in [(3, 0u8), (1, 1), (3, 2), (2, 3), (1, 4), (3, 5)] {
            queue.push_with(SessionId(session), TransmitKind::Rtp, |buf| {
                buf[0] = marker;
                Some(1)
            });
        }
        let mut order = Vec::new();
        group_by_session(queue.as_slice(), &mut order);
        let markers: Vec<u8> = order
            .iter()
            .map(|&i| queue.as_slice()[i].packet()[0])
            .collect();
        assert_eq!(markers, vec![1, 4, 3, 0, 2, 5]);
    }
}
