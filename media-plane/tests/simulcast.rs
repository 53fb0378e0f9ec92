//! Simulcast through the whole worker core, in virtual time: a publisher whose video m-line
//! offers three rids (and announces no SSRC, as Chromium does) sends three layers with the
//! mid and rid header extensions, or announces them in `a=ssrc-group:SIM` (legacy); either
//! way a player receives one video stream of one layer, gap-free, under its own SSRC.

mod support;

use std::time::Duration;

use support::{NetworkConditions, SIMULCAST_RIDS, World};

#[test]
fn a_rid_simulcast_publishers_layers_reach_a_player_as_one_stream() {
    let mut world = World::new(7, NetworkConditions::clean());
    let publisher = world.add_simulcast_publisher("room");
    one_stream_reaches_a_player(&mut world, publisher);
    // The layers' SSRCs were learned from their first packets.
    assert_eq!(world.core.router().stats().ssrcs_bound, 3);
}

#[test]
fn a_legacy_simulcast_publishers_layers_reach_a_player_as_one_stream() {
    let mut world = World::new(8, NetworkConditions::clean());
    let publisher = world.add_legacy_simulcast_publisher("room");
    one_stream_reaches_a_player(&mut world, publisher);
    // Bound from signaling, not from packets.
    assert_eq!(world.core.router().stats().ssrcs_bound, 0);
}

fn one_stream_reaches_a_player(world: &mut World, publisher: usize) {
    world.video_packets_per_frame = 2;
    let player = world.add_player("room", publisher);
    let deadline = world.now + Duration::from_secs(5);
    assert!(world.run_until(deadline, |w| {
        w.clients[publisher].is_connected() && w.clients[player].is_connected()
    }));
    world.run_for(Duration::from_secs(3));
    let sent = world.clients[publisher].sent as usize;
    // Audio and one video stream: the three layers are one stream to the player.
    let received = &world.clients[player].received;
    assert_eq!(received.len(), 2, "{:?}", received.keys());
    let mut lengths: Vec<usize> = received.values().map(Vec::len).collect();
    lengths.sort_unstable();
    let (audio, video) = (lengths[0], lengths[1]);
    for seqs in received.values() {
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "gap-free"
        );
    }
    // Each 20 ms tick: one audio packet and two per layer. The player gets one layer
    // from its first keyframe (the first tick) on, and the audio.
    let ticks = sent / (1 + 2 * SIMULCAST_RIDS.len());
    assert!(audio + 5 >= ticks, "audio {audio} of {ticks}");
    assert!(
        video <= 2 * ticks + 2,
        "one layer: {video} of {ticks} ticks"
    );
    assert!(video + 20 >= 2 * ticks, "video {video} of {ticks} ticks");
}
