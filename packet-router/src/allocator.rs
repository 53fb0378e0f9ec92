//! The layer allocator of one subscriber session, a pure function: given the session's
//! bandwidth estimate and, for each video track it receives, the bitrate of each active
//! layer (lowest resolution first), the most the client allows and its priority, it chooses
//! a layer for each track or pauses it.
//!
//! What the session gets whatever the allocation (its audio, and video sent in one layer)
//! comes off the budget first (the caller's part). Every track gets its lowest layer before
//! any gets more, in priority order; a track whose lowest layer does not fit is paused. Then
//! the tracks go up one layer at a time, higher priorities first and round robin among
//! equals, while the step fits.

/// What one video track of the session offers and may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackDemand<'a> {
    /// Bits per second of each layer, lowest resolution first; `None` for a layer that is
    /// not active (or not active long enough to be chosen).
    pub layers: &'a [Option<u64>],
    /// The highest rank the client allows (`None`: any).
    pub max_rank: Option<usize>,
    /// Higher goes first (screen share above a pinned tile above the dominant speaker...).
    pub priority: u8,
}

/// The allocator's choice for one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Forward the layer of this rank.
    Layer(usize),
    /// Forward nothing: not even the lowest layer fits (or none is active).
    Paused,
}

/// Chooses a layer for each of `tracks` within `budget_bps` (the estimate less the audio),
/// into `out` (one per track, same order). Returns the bits per second allocated.
pub fn allocate(budget_bps: u64, tracks: &[TrackDemand<'_>], out: &mut [Allocation]) -> u64 {
    let mut used = 0u64;
    for slot in out.iter_mut() {
        *slot = Allocation::Paused;
    }
    // Priority order, stable for equal priorities (the order given).
    let order = priority_order(tracks);
    // Every track its lowest active layer first.
    for &index in order.iter().flatten() {
        let (Some(track), Some(slot)) = (tracks.get(index), out.get_mut(index)) else {
            continue;
        };
        let Some((rank, bitrate)) = next_layer(track, None) else {
            continue;
        };
        if used + bitrate <= budget_bps {
            used += bitrate;
            *slot = Allocation::Layer(rank);
        }
    }
    // Then one layer up at a time: higher priorities first, round robin among equals.
    let mut start = 0;
    while start < order.len() {
        let priority = order
            .get(start)
            .copied()
            .flatten()
            .and_then(|i| tracks.get(i))
            .map(|t| t.priority);
        let end = order
            .iter()
            .skip(start)
            .position(|i| i.and_then(|i| tracks.get(i)).map(|t| t.priority) != priority)
            .map_or(order.len(), |n| start + n);
        loop {
            let mut stepped = false;
            for &index in order.get(start..end).unwrap_or_default().iter().flatten() {
                let (Some(track), Some(slot)) = (tracks.get(index), out.get_mut(index)) else {
                    continue;
                };
                let Allocation::Layer(current) = *slot else {
                    continue;
                };
                let current_bitrate = track.layers.get(current).copied().flatten().unwrap_or(0);
                let Some((rank, bitrate)) = next_layer(track, Some(current)) else {
                    continue;
                };
                let step = bitrate.saturating_sub(current_bitrate);
                if used + step <= budget_bps {
                    used += step;
                    *slot = Allocation::Layer(rank);
                    stepped = true;
                }
            }
            if !stepped {
                break;
            }
        }
        start = end;
    }
    used
}

/// The next active layer above `current` (the lowest when `None`) within the client's cap.
fn next_layer(track: &TrackDemand<'_>, current: Option<usize>) -> Option<(usize, u64)> {
    let from = current.map_or(0, |c| c + 1);
    let top = track
        .max_rank
        .map_or(track.layers.len(), |cap| (cap + 1).min(track.layers.len()));
    (from..top).find_map(|rank| Some((rank, (*track.layers.get(rank)?)?)))
}

/// Track indices by descending priority, equal priorities in their given order; at most
/// [`MAX_TRACKS`] (the rest are not allocated and stay paused).
fn priority_order(tracks: &[TrackDemand<'_>]) -> [Option<usize>; MAX_TRACKS] {
    let mut order = [None; MAX_TRACKS];
    let mut count = 0;
    for priority in (0..=u8::MAX).rev() {
        for (index, track) in tracks.iter().enumerate() {
            if track.priority == priority
                && let Some(slot) = order.get_mut(count)
            {
                *slot = Some(index);
                count += 1;
            }
        }
        if count >= tracks.len().min(MAX_TRACKS) {
            break;
        }
    }
    order
}

/// The most video tracks one session's allocation considers.
pub const MAX_TRACKS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    const SIMULCAST: [Option<u64>; 3] = [Some(150_000), Some(500_000), Some(1_500_000)];

    fn run(budget: u64, tracks: &[TrackDemand<'_>]) -> (Vec<Allocation>, u64) {
        let mut out = vec![Allocation::Paused; tracks.len()];
        let used = allocate(budget, tracks, &mut out);
        (out, used)
    }

    fn track(layers: &[Option<u64>], priority: u8) -> TrackDemand<'_> {
        TrackDemand {
            layers,
            max_rank: None,
            priority,
        }
    }

    #[test]
    fn the_table() {
        use Allocation::{Layer, Paused};
        struct Case {
            budget: u64,
            priorities: &'static [u8],
            expected: &'static [Allocation],
        }
        let cases = [
            // One track: the highest layer that fits.
            Case {
                budget: 3_000_000,
                priorities: &[0],
                expected: &[Layer(2)],
            },
            Case {
                budget: 1_000_000,
                priorities: &[0],
                expected: &[Layer(1)],
            },
            Case {
                budget: 200_000,
                priorities: &[0],
                expected: &[Layer(0)],
            },
            Case {
                budget: 100_000,
                priorities: &[0],
                expected: &[Paused],
            },
            // Three equal tracks: all low before any high, then round robin.
            Case {
                budget: 450_000,
                priorities: &[0, 0, 0],
                expected: &[Layer(0), Layer(0), Layer(0)],
            },
            Case {
                budget: 1_200_000,
                priorities: &[0, 0, 0],
                expected: &[Layer(1), Layer(1), Layer(0)],
            },
            // The one with priority goes up first, as far as it fits.
            Case {
                budget: 1_800_000,
                priorities: &[0, 5, 0],
                expected: &[Layer(0), Layer(2), Layer(0)],
            },
            // Not enough for everyone's lowest: the top priority's only.
            Case {
                budget: 350_000,
                priorities: &[0, 5, 0],
                expected: &[Layer(0), Layer(0), Paused],
            },
            Case {
                budget: 160_000,
                priorities: &[0, 5, 0],
                expected: &[Paused, Layer(0), Paused],
            },
        ];
        for case in cases {
            let tracks: Vec<_> = case
                .priorities
                .iter()
                .map(|&p| track(&SIMULCAST, p))
                .collect();
            let (allocated, used) = run(case.budget, &tracks);
            assert_eq!(allocated, case.expected, "budget {}", case.budget);
            assert!(used <= case.budget);
        }
    }

    #[test]
    fn inactive_layers_are_skipped_and_the_clients_cap_holds() {
        let without_middle = [Some(150_000), None, Some(1_500_000)];
        assert_eq!(
            run(1_000_000, &[track(&without_middle, 0)]).0,
            [Allocation::Layer(0)]
        );
        assert_eq!(
            run(2_000_000, &[track(&without_middle, 0)]).0,
            [Allocation::Layer(2)]
        );
        let capped = TrackDemand {
            max_rank: Some(1),
            ..track(&SIMULCAST, 0)
        };
        assert_eq!(
            run(10_000_000, &[capped]),
            (vec![Allocation::Layer(1)], 500_000)
        );
        // Nothing active: paused.
        assert_eq!(
            run(10_000_000, &[track(&[None, None], 0)]).0,
            [Allocation::Paused]
        );
        // One layer (no simulcast): it or nothing.
        let single = [Some(800_000)];
        assert_eq!(
            run(1_000_000, &[track(&single, 0)]).0,
            [Allocation::Layer(0)]
        );
        assert_eq!(run(500_000, &[track(&single, 0)]).0, [Allocation::Paused]);
    }
}
