//! The worker core forwards without allocating: once a publisher and its players are
//! connected and warmed up, handling their RTP datagrams and producing and clearing the
//! protected copies leaves the allocation counter of this test binary unchanged, for
//! publishers on announced SSRCs and a rid-simulcast one alike.
#![allow(unsafe_code)] // A counting global allocator needs `unsafe impl GlobalAlloc`.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::{NetworkConditions, World};

struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a side
// effect that does not touch the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn count(enter: bool) {
    COUNTING.store(enter, Ordering::Relaxed);
}

#[test]
fn forwarding_through_the_core_allocates_nothing() {
    let mut world = World::new(11, NetworkConditions::clean());
    let mut publishers: Vec<usize> = (0..2).map(|_| world.add_publisher("room")).collect();
    // And one whose video is three rid layers, one of which each of its players receives.
    publishers.push(world.add_simulcast_publisher("room"));
    let mut players = Vec::new();
    for &publisher in &publishers {
        for _ in 0..4 {
            players.push(world.add_player("room", publisher));
        }
    }
    let deadline = world.now + Duration::from_secs(5);
    assert!(world.run_until(deadline, |w| w.clients.iter().all(|c| c.is_connected())));
    // Warm-up: every buffer, queue and table reaches its working size.
    world.run_for(Duration::from_secs(3));
    let received_before: usize = players
        .iter()
        .map(|&p| world.clients[p].received_total())
        .sum();
    world.media_scope = Some(count);
    ALLOCATIONS.store(0, Ordering::Relaxed);
    world.run_for(Duration::from_secs(10));
    world.media_scope = None;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let forwarded: usize = players
        .iter()
        .map(|&p| world.clients[p].received_total())
        .sum::<usize>()
        - received_before;
    // 3 publishers x 7 packets per 20 ms (of one layer), each to 4 players, for 10 s:
    // 42,000.
    assert!(forwarded > 40_500, "{forwarded} copies forwarded");
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for {forwarded} copies"
    );
}
