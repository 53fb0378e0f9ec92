//! Packets grouped by send time, and the deltas between consecutive groups: how much later a
//! group arrived than the one before, against how much later it was sent. A video frame's
//! packets leave together, so one group is about one frame.

/// A packet sent within this long of its group's first packet belongs to the group.
const GROUP_LENGTH_US: i64 = 5_000;
/// A packet that arrives within this long of its group's last one, and sooner than its send
/// time says it should, came in the same burst (a queue draining) and joins the group.
const BURST_DELTA_US: i64 = 5_000;
/// A burst is never longer than this.
const MAX_BURST_US: i64 = 100_000;
/// A group that arrives this much later than it was sent, relative to the one before, means
/// the clocks jumped (a publisher restarted): the grouping starts over.
const MAX_ARRIVAL_JUMP_US: i64 = 3_000_000;

/// The packets of one group: first and last send and arrival times, and their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Group {
    first_send_us: i64,
    last_send_us: i64,
    first_arrival_us: i64,
    last_arrival_us: i64,
    bytes: u64,
}

impl Group {
    fn new(send_us: i64, arrival_us: i64, bytes: usize) -> Self {
        Self {
            first_send_us: send_us,
            last_send_us: send_us,
            first_arrival_us: arrival_us,
            last_arrival_us: arrival_us,
            bytes: bytes as u64,
        }
    }

    fn takes(&self, send_us: i64, arrival_us: i64) -> bool {
        if send_us - self.first_send_us <= GROUP_LENGTH_US {
            return true;
        }
        let arrival_delta = arrival_us - self.last_arrival_us;
        let send_delta = send_us - self.last_send_us;
        arrival_delta - send_delta < 0
            && arrival_delta <= BURST_DELTA_US
            && arrival_us - self.first_arrival_us < MAX_BURST_US
    }
}

/// The change from one complete group to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupDelta {
    /// How much later the group's last packet was sent than the previous group's.
    pub send_delta_us: i64,
    /// How much later it arrived.
    pub arrival_delta_us: i64,
    /// When the group's last packet arrived.
    pub arrival_us: i64,
}

/// Groups packets and yields the delta of each group once the next one starts.
#[derive(Debug, Clone, Default)]
pub struct InterArrival {
    current: Option<Group>,
    previous: Option<Group>,
}

impl InterArrival {
    /// One packet's send and arrival time (microseconds on the sender's and the receiver's
    /// clock) and size; the delta between the last two complete groups when it starts a
    /// new group. A packet sent before the current group started (reordered) is ignored.
    pub fn packet(&mut self, send_us: i64, arrival_us: i64, bytes: usize) -> Option<GroupDelta> {
        let Some(current) = &mut self.current else {
            self.current = Some(Group::new(send_us, arrival_us, bytes));
            return None;
        };
        if send_us < current.first_send_us {
            return None;
        }
        if current.takes(send_us, arrival_us) {
            current.last_send_us = current.last_send_us.max(send_us);
            current.last_arrival_us = current.last_arrival_us.max(arrival_us);
            current.bytes += bytes as u64;
            return None;
        }
        let complete = *current;
        self.current = Some(Group::new(send_us, arrival_us, bytes));
        let previous = self.previous.replace(complete)?;
        let delta = GroupDelta {
            send_delta_us: complete.last_send_us - previous.last_send_us,
            arrival_delta_us: complete.last_arrival_us - previous.last_arrival_us,
            arrival_us: complete.last_arrival_us,
        };
        if delta.arrival_delta_us - delta.send_delta_us > MAX_ARRIVAL_JUMP_US
            || delta.arrival_delta_us < 0
        {
            // Clocks jumped or arrivals went backwards: start over from this group.
            self.previous = None;
            return None;
        }
        Some(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frames_packets_are_one_group_and_each_next_frame_yields_a_delta() {
        let mut groups = InterArrival::default();
        let mut deltas = Vec::new();
        // Frames every 33 ms of three packets 1 ms apart; each frame arrives 2 ms later
        // relative to its send time than the one before (a growing queue).
        for frame in 0..4i64 {
            for packet in 0..3i64 {
                let send = frame * 33_000 + packet * 1_000;
                let arrival = send + 20_000 + frame * 2_000;
                deltas.extend(groups.packet(send, arrival, 1200));
            }
        }
        // Four groups: the third and fourth starts complete the second and third.
        assert_eq!(
            deltas,
            [
                GroupDelta {
                    send_delta_us: 33_000,
                    arrival_delta_us: 35_000,
                    arrival_us: 33_000 + 2_000 + 20_000 + 2_000,
                },
                GroupDelta {
                    send_delta_us: 33_000,
                    arrival_delta_us: 35_000,
                    arrival_us: 66_000 + 2_000 + 20_000 + 4_000,
                },
            ]
        );
    }

    #[test]
    fn a_burst_from_a_draining_queue_joins_the_group_and_reordered_packets_are_ignored() {
        let mut groups = InterArrival::default();
        assert_eq!(groups.packet(0, 50_000, 100), None);
        // Sent 20 ms later but arrived 1 ms later: a queue let both out together.
        assert_eq!(groups.packet(20_000, 51_000, 100), None);
        assert_eq!(groups.current.map(|g| g.bytes), Some(200));
        // Sent before the group's first packet: ignored.
        assert_eq!(groups.packet(-1_000, 52_000, 100), None);
        assert_eq!(groups.current.map(|g| g.bytes), Some(200));
    }

    #[test]
    fn a_clock_jump_starts_the_grouping_over() {
        let mut groups = InterArrival::default();
        for frame in 0..3i64 {
            groups.packet(frame * 33_000, frame * 33_000, 1000);
        }
        // This frame arrives 10 s late relative to the others; its own start completes the
        // last normal group.
        assert!(groups.packet(99_000, 10_099_000, 1000).is_some());
        // The delta to the late group is no delta; the next group has nothing to compare
        // with; after it the deltas come again.
        assert_eq!(groups.packet(132_000, 10_132_000, 1000), None);
        assert_eq!(groups.packet(165_000, 10_165_000, 1000), None);
        assert_eq!(
            groups.packet(198_000, 10_198_000, 1000),
            Some(GroupDelta {
                send_delta_us: 33_000,
                arrival_delta_us: 33_000,
                arrival_us: 10_165_000,
            })
        );
    }
}
