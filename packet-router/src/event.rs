//! What the router tells its owner, through [`crate::Router::poll_event`]: keyframe requests
//! it sent to publishers, layers that started or stopped receiving packets, subscriptions
//! that got their first packet, and SSRCs it could not route.
//!
//! Events wait in a ring of fixed capacity allocated with the router, so producing one on the
//! packet path allocates nothing. When the owner does not drain it, new events are dropped
//! and counted ([`crate::RouterStats::events_dropped`]) rather than growing the ring: losing
//! a notice must never cost a packet.

use std::collections::VecDeque;

use rtc_core::Ssrc;

use crate::SessionId;
use crate::{SubscriptionId, TrackId};

/// How many events wait at most.
pub const EVENT_CAPACITY: usize = 1024;

/// How many distinct unknown (session, SSRC) pairs are remembered, so that a stream the
/// router cannot route is reported once, not once per packet.
const UNKNOWN_SSRC_MEMORY: usize = 8;

/// Something the router did or saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouterEvent {
    /// The first packet of a layer of `track` arrived (its publisher's SSRC `ssrc`), or the
    /// first after it went inactive.
    LayerActive {
        /// The track.
        track: TrackId,
        /// The publisher's media SSRC of the layer.
        ssrc: Ssrc,
    },
    /// No packet of the layer arrived for [`crate::RouterConfig::layer_timeout`] (noticed
    /// within one report interval after that).
    LayerInactive {
        /// The track.
        track: TrackId,
        /// The publisher's media SSRC of the layer.
        ssrc: Ssrc,
    },
    /// A keyframe request (PLI) went to the publisher of this layer.
    KeyframeRequested {
        /// The track.
        track: TrackId,
        /// The publisher's media SSRC the request names.
        ssrc: Ssrc,
    },
    /// The first copy since the subscription was attached to `track` was queued.
    SubscriptionStarted {
        /// The subscription.
        subscription: SubscriptionId,
        /// Its subscriber.
        subscriber: SessionId,
        /// The track it receives.
        track: TrackId,
    },
    /// An audio track's activity over the last 100 ms, from the RFC 6464 audio level its
    /// packets carry (reported for tracks that received packets).
    AudioActivity {
        /// The track.
        track: TrackId,
        /// Its publisher.
        publisher: SessionId,
        /// Packets received.
        packets: u16,
        /// Of those, the voiced ones: level above [`crate::router::VOICED_LEVEL`].
        voiced: u16,
    },
    /// A subscriber session's layer allocation ran: its estimate, what the allocation gave
    /// its video and what its tracks would take (bits per second), the transport-wide loss
    /// last measured (per mille) and how many of its simulcast tracks are paused.
    Allocated {
        /// The subscriber session.
        subscriber: SessionId,
        /// Its downlink estimate.
        estimate: u64,
        /// What it acknowledged receiving over the last second.
        acknowledged: u64,
        /// Allocated to its video.
        allocated: u64,
        /// What its video would take at the highest layers it may have.
        wanted: u64,
        /// Transport-wide loss, per mille.
        loss_per_mille: u16,
        /// Simulcast subscriptions paused.
        paused: u16,
    },
    /// RTP arrived from `session` with an SSRC that none of its tracks has (reported once
    /// while it keeps arriving, and again after the session's tracks change).
    UnknownSsrc {
        /// The sending session.
        session: SessionId,
        /// The SSRC.
        ssrc: Ssrc,
    },
}

/// The bounded queue of events, and the memory that keeps unknown SSRCs from flooding it.
#[derive(Debug)]
pub(crate) struct EventQueue {
    events: VecDeque<RouterEvent>,
    dropped: u64,
    unknown: [Option<(SessionId, Ssrc)>; UNKNOWN_SSRC_MEMORY],
    /// The slot of `unknown` the next new pair overwrites.
    next_unknown: usize,
}

impl Default for EventQueue {
    fn default() -> Self {
        EventQueue {
            events: VecDeque::with_capacity(EVENT_CAPACITY),
            dropped: 0,
            unknown: [None; UNKNOWN_SSRC_MEMORY],
            next_unknown: 0,
        }
    }
}

impl EventQueue {
    /// Queues an event, or counts it as dropped when the queue is full.
    pub(crate) fn push(&mut self, event: RouterEvent) {
        if self.events.len() < EVENT_CAPACITY {
            self.events.push_back(event);
        } else {
            self.dropped += 1;
        }
    }

    /// The oldest event.
    pub(crate) fn pop(&mut self) -> Option<RouterEvent> {
        self.events.pop_front()
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Reports an unknown SSRC of `session`, unless it was reported recently.
    pub(crate) fn unknown_ssrc(&mut self, session: SessionId, ssrc: Ssrc) {
        let pair = Some((session, ssrc));
        if self.unknown.contains(&pair) {
            return;
        }
        if let Some(slot) = self.unknown.get_mut(self.next_unknown) {
            *slot = pair;
        }
        self.next_unknown = (self.next_unknown + 1) % UNKNOWN_SSRC_MEMORY;
        self.push(RouterEvent::UnknownSsrc { session, ssrc });
    }

    /// Forgets the unknown SSRCs reported for `session` (its tracks changed: what was
    /// unknown may be known now, and what was known may become unknown).
    pub(crate) fn forget_unknown(&mut self, session: SessionId) {
        for slot in &mut self.unknown {
            if slot.is_some_and(|(s, _)| s == session) {
                *slot = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_in_order_and_overflow_is_counted() {
        let mut queue = EventQueue::default();
        for i in 0..EVENT_CAPACITY as u64 + 3 {
            queue.push(RouterEvent::LayerActive {
                track: TrackId(i),
                ssrc: Ssrc(1),
            });
        }
        assert_eq!(queue.dropped(), 3);
        assert_eq!(
            queue.pop(),
            Some(RouterEvent::LayerActive {
                track: TrackId(0),
                ssrc: Ssrc(1)
            })
        );
        // A drained slot takes a new event.
        queue.push(RouterEvent::LayerInactive {
            track: TrackId(7),
            ssrc: Ssrc(1),
        });
        assert_eq!(queue.dropped(), 3);
        let rest: Vec<_> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(rest.len(), EVENT_CAPACITY);
        assert!(matches!(
            rest.last(),
            Some(RouterEvent::LayerInactive {
                track: TrackId(7),
                ..
            })
        ));
    }

    #[test]
    fn the_ring_never_grows() {
        let mut queue = EventQueue::default();
        let capacity = queue.events.capacity();
        for _ in 0..EVENT_CAPACITY * 4 {
            queue.push(RouterEvent::UnknownSsrc {
                session: SessionId(1),
                ssrc: Ssrc(2),
            });
        }
        assert_eq!(queue.events.capacity(), capacity);
    }

    #[test]
    fn an_unknown_ssrc_is_reported_once_until_forgotten() {
        let mut queue = EventQueue::default();
        for _ in 0..100 {
            queue.unknown_ssrc(SessionId(1), Ssrc(5));
            queue.unknown_ssrc(SessionId(2), Ssrc(5));
        }
        assert_eq!(queue.events.len(), 2);
        queue.forget_unknown(SessionId(1));
        queue.unknown_ssrc(SessionId(1), Ssrc(5));
        queue.unknown_ssrc(SessionId(2), Ssrc(5));
        assert_eq!(queue.events.len(), 3);
        // As many other streams as it remembers: the earlier ones are reported again.
        for ssrc in 10..10 + UNKNOWN_SSRC_MEMORY as u32 {
            queue.unknown_ssrc(SessionId(3), Ssrc(ssrc));
        }
        queue.unknown_ssrc(SessionId(2), Ssrc(5));
        assert_eq!(queue.events.len(), 3 + UNKNOWN_SSRC_MEMORY + 1);
    }
}
