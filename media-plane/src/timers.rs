//! The worker's deadline queue: when each session next needs its timers run, kept in a
//! binary heap so that finding the next wake-up and the sessions due costs O(log n) per
//! change instead of a scan of every session per loop iteration.
//!
//! A session is rescheduled whenever it may have changed (after its input or its timeout was
//! handled). Entries are invalidated lazily: the heap may hold older deadlines of a session;
//! only the one equal to its current deadline counts, and the others are skipped when they
//! come to the top. The heap is rebuilt when stale entries outnumber live ones, so sessions
//! whose deadline moves on every consent check do not make it grow without bound.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use packet_router::{IdHashMap, SessionId};

/// Sessions by their next deadline.
#[derive(Debug, Default)]
pub(crate) struct DeadlineQueue {
    heap: BinaryHeap<Reverse<(Instant, SessionId)>>,
    /// The current deadline of each scheduled session.
    current: IdHashMap<SessionId, Instant>,
}

impl DeadlineQueue {
    /// Sets `session`'s deadline (`None`: it has none).
    pub(crate) fn schedule(&mut self, session: SessionId, deadline: Option<Instant>) {
        let Some(at) = deadline else {
            self.current.remove(&session);
            return;
        };
        if self.current.insert(session, at) == Some(at) {
            return;
        }
        self.heap.push(Reverse((at, session)));
        if self.heap.len() > 2 * self.current.len() + 64 {
            self.rebuild();
        }
    }

    /// Forgets `session` (it was removed).
    pub(crate) fn remove(&mut self, session: SessionId) {
        self.current.remove(&session);
    }

    /// The earliest deadline of any session.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, session))) = self.heap.peek() {
            if self.current.get(&session) == Some(&at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// A session whose deadline is at or before `now`, taken off the queue (the caller runs
    /// its timers and reschedules it).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<SessionId> {
        let at = self.next_deadline()?;
        if at > now {
            return None;
        }
        let Reverse((_, session)) = self.heap.pop()?;
        self.current.remove(&session);
        Some(session)
    }

    /// Number of scheduled sessions.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len()
    }

    fn rebuild(&mut self) {
        self.heap = self
            .current
            .iter()
            .map(|(&session, &at)| Reverse((at, session)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn due(queue: &mut DeadlineQueue, now: Instant) -> Vec<SessionId> {
        std::iter::from_fn(|| queue.pop_due(now)).collect()
    }

    #[test]
    fn a_session_fires_at_its_deadline_and_not_before() {
        let t0 = crate::test_time::origin();
        let mut queue = DeadlineQueue::default();
        queue.schedule(SessionId(1), Some(t0 + Duration::from_millis(20)));
        queue.schedule(SessionId(2), Some(t0 + Duration::from_millis(10)));
        assert_eq!(queue.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert!(due(&mut queue, t0 + Duration::from_millis(9)).is_empty());
        assert_eq!(
            due(&mut queue, t0 + Duration::from_millis(10)),
            vec![SessionId(2)]
        );
        assert_eq!(
            due(&mut queue, t0 + Duration::from_millis(30)),
            vec![SessionId(1)]
        );
        assert_eq!(queue.next_deadline(), None);
    }

    #[test]
    fn a_rescheduled_session_fires_only_at_its_new_deadline() {
        let t0 = crate::test_time::origin();
        let mut queue = DeadlineQueue::default();
        queue.schedule(SessionId(1), Some(t0 + Duration::from_millis(10)));
        queue.schedule(SessionId(1), Some(t0 + Duration::from_millis(50)));
        assert_eq!(queue.next_deadline(), Some(t0 + Duration::from_millis(50)));
        assert!(due(&mut queue, t0 + Duration::from_millis(20)).is_empty());
        // Moved earlier again: once, at the earlier time.
        queue.schedule(SessionId(1), Some(t0 + Duration::from_millis(30)));
        assert_eq!(
            due(&mut queue, t0 + Duration::from_millis(60)),
            vec![SessionId(1)]
        );
        assert!(due(&mut queue, t0 + Duration::from_millis(60)).is_empty());
    }

    #[test]
    fn a_removed_or_unscheduled_session_does_not_fire() {
        let t0 = crate::test_time::origin();
        let mut queue = DeadlineQueue::default();
        queue.schedule(SessionId(1), Some(t0));
        queue.schedule(SessionId(2), Some(t0));
        queue.remove(SessionId(1));
        queue.schedule(SessionId(2), None);
        assert!(due(&mut queue, t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(queue.next_deadline(), None);
    }

    #[test]
    fn stale_entries_do_not_accumulate() {
        let t0 = crate::test_time::origin();
        let mut queue = DeadlineQueue::default();
        for step in 0..10_000u64 {
            queue.schedule(SessionId(step % 3), Some(t0 + Duration::from_millis(step)));
        }
        assert_eq!(queue.len(), 3);
        assert!(queue.heap.len() <= 2 * 3 + 64 + 1);
        let fired = due(&mut queue, t0 + Duration::from_secs(100));
        assert_eq!(fired.len(), 3);
    }
}
