//! The life of sessions in the worker core, in virtual time: connecting, consent expiry, a
//! DTLS peer with the wrong certificate, a peer that never connects, a publisher whose end
//! takes its players with it, renegotiation of a subscriber connection, and fifty sessions
//! over a lossy network.

mod support;

use std::time::{Duration, Instant};

use media_plane::{EndReason, PeerEvent};
use packet_router::TrackId;
use rtc_core::dtls::DtlsCertificate;
use support::{NetworkConditions, World};

const ROOM: &str = "room";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_publisher_and_its_player_connect_and_media_flows() {
    let mut world = World::new(1, NetworkConditions::clean());
    let publisher = world.add_publisher(ROOM);
    let player = world.add_player(ROOM, publisher);
    let deadline = world.now + secs(5);
    let connected = world.run_until(deadline, |w| {
        w.clients[publisher].is_connected() && w.clients[player].is_connected()
    });
    assert!(connected, "both connect within 5 s of virtual time");
    // A clean 10 ms path: ICE, then a DTLS handshake of two round trips.
    assert!(
        world.elapsed() < Duration::from_millis(500),
        "{:?}",
        world.elapsed()
    );
    world.run_for(secs(2));
    let stats = world.core.stats();
    assert_eq!(stats.dtls_connected, 2);
    assert_eq!(stats.sessions, 2);
    // Audio and video both arrive, under the player's own SSRCs (two streams).
    let received = &world.clients[player].received;
    assert_eq!(received.len(), 2, "{:?}", received.keys());
    let sent = world.clients[publisher].sent as usize;
    let got = world.clients[player].received_total();
    // What was in flight when the run stopped may be missing; nothing else.
    assert!(
        got + 20 >= sent && got <= sent,
        "sent {sent}, received {got}"
    );
    for seqs in received.values() {
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    }
    assert!(world.ended().is_empty());
}

#[test]
fn a_silent_peer_loses_consent_and_its_session_ends() {
    let mut world = World::new(2, NetworkConditions::clean());
    let publisher = world.add_publisher(ROOM);
    let player = world.add_player(ROOM, publisher);
    let deadline = world.now + secs(5);
    assert!(world.run_until(deadline, |w| w.clients[player].is_connected()));
    let silent_at = world.now;
    world.silence(player);
    let deadline = world.now + secs(40);
    let ended = world.run_until(deadline, |w| w.end_reason(player).is_some());
    assert!(ended, "the player's session ends");
    assert_eq!(world.end_reason(player), Some(EndReason::ConsentExpired));
    // 30 s of consent, counted from the last check (at most a consent interval before).
    let after = world.now.duration_since(silent_at);
    assert!(after > secs(24) && after <= secs(31), "{after:?}");
    // The publisher keeps sending media, and so keeps its consent.
    assert_eq!(world.end_reason(publisher), None);
    assert_eq!(world.core.stats().sessions, 1);
}

#[test]
fn a_peer_whose_certificate_does_not_match_its_fingerprint_is_refused() {
    let mut world = World::new(3, NetworkConditions::clean());
    let publisher = world.add_publisher(ROOM);
    // The client announces another certificate's fingerprint than the one it handshakes with.
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(99);
    let other = DtlsCertificate::generate(&mut rng).expect("certificate");
    let liar = world.add_publisher_announcing(ROOM, Some(&other.fingerprint().to_string()));
    let deadline = world.now + secs(10);
    let ended = world.run_until(deadline, |w| w.end_reason(liar).is_some());
    assert!(ended);
    assert_eq!(world.end_reason(liar), Some(EndReason::FingerprintMismatch));
    assert_eq!(world.core.stats().dtls_fingerprint_mismatch, 1);
    assert!(!world.clients[liar].is_connected());
    // The honest publisher is not disturbed.
    world.run_for(secs(1));
    assert!(world.clients[publisher].is_connected());
    assert_eq!(world.end_reason(publisher), None);
}

#[test]
fn a_peer_that_never_connects_ends_at_the_setup_deadline() {
    let mut world = World::with_config(4, NetworkConditions::clean(), |config| {
        config.setup_timeout = secs(10);
    });
    let publisher = world.add_publisher(ROOM);
    world.silence(publisher);
    let created = world.now;
    let deadline = world.now + secs(20);
    assert!(world.run_until(deadline, |w| w.end_reason(publisher).is_some()));
    assert_eq!(world.end_reason(publisher), Some(EndReason::NeverConnected));
    assert_eq!(world.now.duration_since(created), secs(10));
    assert_eq!(world.core.stats().sessions, 0);
}

#[test]
fn a_publisher_that_leaves_takes_its_players_with_it() {
    let mut world = World::new(5, NetworkConditions::clean());
    let publisher = world.add_publisher(ROOM);
    let players: Vec<usize> = (0..3).map(|_| world.add_player(ROOM, publisher)).collect();
    let other = world.add_publisher(ROOM);
    let other_player = world.add_player(ROOM, other);
    let deadline = world.now + secs(5);
    assert!(world.run_until(deadline, |w| w.clients.iter().all(|c| c.is_connected())));
    world.close(publisher);
    world.run_for(Duration::from_millis(100));
    // Signaling closed the publisher: it is not reported back; its players are.
    assert_eq!(world.end_reason(publisher), None);
    for &player in &players {
        assert_eq!(world.end_reason(player), Some(EndReason::PublisherLeft));
    }
    assert_eq!(world.end_reason(other_player), None);
    assert_eq!(world.core.stats().sessions, 2);
    // The other call goes on.
    let before = world.clients[other_player].received_total();
    world.run_for(secs(1));
    assert!(world.clients[other_player].received_total() > before + 300);
}

#[test]
fn a_subscriber_connection_is_renegotiated_as_tracks_come_and_go() {
    let mut world = World::new(6, NetworkConditions::clean());
    let first = world.add_publisher(ROOM);
    let second = world.add_publisher(ROOM);
    let tracks_of = |world: &World, index: usize| -> Vec<TrackId> {
        let session = world.clients[index].session.expect("session");
        world
            .core
            .router()
            .tracks_of(session)
            .map(|(t, _)| t)
            .collect()
    };
    let first_tracks = tracks_of(&world, first);
    let second_tracks = tracks_of(&world, second);
    assert_eq!(first_tracks.len(), 2);
    let subscriber = world.add_subscriber(ROOM, &first_tracks);
    let deadline = world.now + secs(5);
    assert!(world.run_until(deadline, |w| w.clients.iter().all(|c| c.is_connected())));
    world.run_for(secs(1));
    assert_eq!(world.clients[subscriber].received.len(), 2);
    // Both publishers' tracks: two more m-lines, the first two stay.
    let both: Vec<TrackId> = first_tracks.iter().chain(&second_tracks).copied().collect();
    let offer = world.offer_tracks(subscriber, &both);
    assert_eq!(offer.matches("m=").count(), 4);
    world.run_for(secs(1));
    assert_eq!(world.clients[subscriber].received.len(), 4);
    // The first publisher's tracks go: their m-lines become inactive, nothing more arrives.
    let offer = world.offer_tracks(subscriber, &second_tracks);
    assert_eq!(offer.matches("a=inactive").count(), 2, "{offer}");
    world.run_for(Duration::from_millis(200));
    let counts = |w: &World| -> std::collections::BTreeMap<u32, usize> {
        w.clients[subscriber]
            .received
            .iter()
            .map(|(ssrc, seqs)| (*ssrc, seqs.len()))
            .collect()
    };
    let before = counts(&world);
    world.run_for(secs(1));
    let after = counts(&world);
    let grew = after
        .iter()
        .filter(|(ssrc, count)| before.get(ssrc).is_some_and(|b| *count > b))
        .count();
    assert_eq!(grew, 2, "only the second publisher's streams still grow");
    assert!(world.ended().is_empty());
}

#[test]
#[expect(
    clippy::disallowed_methods,
    reason = "the wall time of the run is what the test compares with the simulated time"
)]
fn fifty_sessions_over_a_lossy_network_run_faster_than_real_time() {
    let wall = Instant::now();
    let mut world = World::new(7, NetworkConditions::lossy(0.05));
    // Two packets per 20 ms per publisher: 500 forwarded packets per second of virtual time
    // per ten sessions, which an unoptimized build still runs faster than real time.
    world.video_packets_per_frame = 1;
    let publishers: Vec<usize> = (0..10).map(|_| world.add_publisher(ROOM)).collect();
    for &publisher in &publishers {
        for _ in 0..4 {
            world.add_player(ROOM, publisher);
        }
    }
    assert_eq!(world.clients.len(), 50);
    let deadline = world.now + secs(15);
    let connected = world.run_until(deadline, |w| w.clients.iter().all(|c| c.is_connected()));
    assert!(
        connected,
        "all 50 connect despite 5% loss (ICE and DTLS retransmit)"
    );
    world.run_for(secs(20));
    let simulated = world.elapsed();
    let wall = wall.elapsed();
    eprintln!(
        "50 sessions, 5% loss and reordering: {simulated:?} simulated in {wall:?} of wall time, {} datagrams, {} lost",
        world.net.sent, world.net.lost
    );
    assert!(
        wall < simulated,
        "{wall:?} of wall time for {simulated:?} simulated"
    );
    assert!(world.ended().is_empty(), "{:?}", world.ended());
    // Every player gets its publisher's media, less what the network lost (the players do
    // not NACK): well over 85 % of it.
    for client in world
        .clients
        .iter()
        .filter(|c| c.role == support::ClientRole::Receiver)
    {
        let got = client.received_total() as f64;
        // Two packets per 20 ms for 20 s, less 5 % on each of the two hops.
        assert!(got > 0.85 * 2.0 * 50.0 * 20.0, "{got}");
        assert!(client.events.contains(&PeerEvent::Connected));
    }
}
