//! Session lifecycle and bad input through the server API, with real browser offers and a
//! real UDP socket: clear errors for offers that cannot be served, sessions that never connect
//! are dropped, and garbage on the media port is counted without disturbing anything.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use rtc_core::sdp::SdpError;
use server::{MediaConfig, SessionId, Sfu, SfuError};

const CHROMIUM_PUBLISH: &str = include_str!("../../rtc-core/src/sdp/fixtures/chromium-publish.sdp");
const CHROMIUM_SUBSCRIBE: &str =
    include_str!("../../rtc-core/src/sdp/fixtures/chromium-subscribe.sdp");

/// Polls `condition` every 20 ms for at most `limit`.
fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

#[test]
fn offers_that_cannot_be_served_get_clear_errors() {
    let sfu = Sfu::start(MediaConfig::loopback()).expect("started");
    let rt = runtime();
    let garbage = rt.block_on(sfu.publish("room", "this is not SDP"));
    // SDP errors arrive as rtc-core's typed error; the text is made only for the client.
    let Err(SfuError::Sdp(why)) = garbage else {
        panic!("expected an SDP error, got {garbage:?}");
    };
    assert_eq!(why, SdpError::MissingVersion);
    assert!(
        why.to_string().contains("v=0"),
        "the error says what is wrong: {why}"
    );

    let holdconn = CHROMIUM_PUBLISH.replace("a=setup:actpass", "a=setup:holdconn");
    let Err(SfuError::Sdp(why)) = rt.block_on(sfu.publish("room", &holdconn)) else {
        panic!("a holdconn offer must be refused");
    };
    assert!(matches!(why, SdpError::UnsupportedSetup { .. }), "{why:?}");
    assert!(why.to_string().contains("setup:holdconn"), "{why}");
    // An offer that wants to be the DTLS server is answered active (Sluice is the client).
    let passive = CHROMIUM_PUBLISH.replace("a=setup:actpass", "a=setup:passive");
    let answered = rt
        .block_on(sfu.publish("room", &passive))
        .expect("a passive offer is answered");
    assert!(answered.sdp.contains("a=setup:active"), "{}", answered.sdp);

    // A WHEP player's offer is not a publisher's.
    let Err(SfuError::BadOffer(why)) = rt.block_on(sfu.publish("room", CHROMIUM_SUBSCRIBE)) else {
        panic!("a receive-only offer publishes nothing");
    };
    assert!(why.contains("no audio or video"), "{why}");

    let publisher = rt
        .block_on(sfu.publish("room", CHROMIUM_PUBLISH))
        .expect("a real browser offer is answered");
    assert!(publisher.sdp.contains("a=ice-lite"));
    assert_eq!(
        rt.block_on(sfu.subscribe("other-room", publisher.session, CHROMIUM_SUBSCRIBE))
            .map(|a| a.session),
        Err(SfuError::UnknownPublisher),
        "a publisher of another room"
    );
    assert_eq!(
        rt.block_on(sfu.subscribe("room", SessionId(12_345 << 8), CHROMIUM_SUBSCRIBE))
            .map(|a| a.session),
        Err(SfuError::UnknownPublisher)
    );
    let viewer = rt
        .block_on(sfu.subscribe("room", publisher.session, CHROMIUM_SUBSCRIBE))
        .expect("a WHEP offer for a known publisher is answered");
    assert!(
        viewer.sdp.contains("a=ssrc:"),
        "the answer announces Sluice's SSRCs"
    );
}

#[test]
fn sessions_that_never_connect_are_dropped_after_the_setup_timeout() {
    let sfu = Sfu::start(MediaConfig {
        setup_timeout: Duration::from_millis(300),
        ..MediaConfig::loopback()
    })
    .expect("started");
    let rt = runtime();
    let publisher = rt
        .block_on(sfu.publish("room", CHROMIUM_PUBLISH))
        .expect("answered");
    rt.block_on(sfu.subscribe("room", publisher.session, CHROMIUM_SUBSCRIBE))
        .expect("answered");
    assert!(eventually(Duration::from_secs(2), || sfu.stats().sessions == 2));
    assert!(
        eventually(Duration::from_secs(10), || sfu.stats().sessions == 0),
        "sessions left: {}",
        sfu.stats().sessions
    );
    // Closing a session that is already gone is harmless.
    rt.block_on(sfu.close(publisher.session));
}

#[test]
fn garbage_on_the_media_port_is_counted_by_reason() {
    let sfu = Sfu::start(MediaConfig::loopback()).expect("started");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bound");
    let target = sfu.media_addr();
    let junk: [&[u8]; 6] = [
        &[0xFF, 1, 2, 3],                            // no known protocol
        &[0x00, 0x01, 0x00],                         // truncated STUN
        &[0x16, 0xFE, 0xFD, 0, 0],                   // DTLS from an unchecked address
        &[0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], // RTP from an unchecked address
        &[0x80, 0xC8, 0, 1, 0, 0, 0, 1],             // RTCP from an unchecked address
        &[],
    ];
    for datagram in junk {
        socket.send_to(datagram, target).expect("sent");
    }
    // A well-formed binding request for a session that does not exist.
    let mut request = [0u8; 128];
    let len = ice_lite::BindingRequest {
        username: "nobody:here",
        priority: 1,
        ice_controlling: Some(7),
        ice_controlled: None,
        use_candidate: true,
    }
    .write(
        &mut request,
        &[7; 12],
        &ice_lite::IntegrityKey::new(b"not a password at all"),
    )
    .expect("written");
    socket.send_to(&request[..len], target).expect("sent");
    let counted = eventually(Duration::from_secs(5), || {
        let stats = sfu.stats();
        stats.dropped_unknown_protocol >= 2
            && stats.dropped_malformed_stun == 1
            && stats.dropped_unvalidated_source == 3
            && stats.dropped_unknown_stun_username == 1
    });
    assert!(counted, "{:?}", sfu.stats());
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout set");
    let mut reply = [0u8; 64];
    assert!(
        socket.recv(&mut reply).is_err(),
        "nothing is answered to unauthenticated traffic"
    );
    // And the server still serves.
    runtime()
        .block_on(sfu.publish("room", CHROMIUM_PUBLISH))
        .expect("answered after the garbage");
}

/// Bound to an unspecified address, the answer carries a host candidate for every usable
/// interface address of the machine, loopback last, each with its own foundation; with
/// public addresses configured, exactly those.
#[test]
fn an_unspecified_bind_announces_every_interface_with_loopback_last() {
    let rt = runtime();
    let sfu = Sfu::start(MediaConfig {
        udp: "0.0.0.0:0".parse().unwrap(),
        ..MediaConfig::loopback()
    })
    .expect("started");
    let port = sfu.media_addr().port();
    let answer = rt
        .block_on(sfu.publish("room", CHROMIUM_PUBLISH))
        .expect("answered");
    let video = answer.sdp.split("m=video").nth(1).expect("a video section");
    let announced: Vec<(String, String)> = video
        .lines()
        .filter_map(|line| line.strip_prefix("a=candidate:"))
        .filter(|c| c.contains(" udp "))
        .map(|c| {
            let fields: Vec<&str> = c.split(' ').collect();
            assert_eq!(fields[5], port.to_string(), "{c}");
            (fields[0].to_owned(), fields[4].to_owned())
        })
        .collect();
    let expected: Vec<String> = server::candidates::interface_ips()
        .into_iter()
        .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
        .map(|ip| ip.to_string())
        .chain(["127.0.0.1".to_owned()])
        .collect();
    let addresses: Vec<&str> = announced.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(addresses, expected, "{}", answer.sdp);
    let mut foundations: Vec<&str> = announced.iter().map(|(f, _)| f.as_str()).collect();
    foundations.dedup();
    assert_eq!(foundations.len(), announced.len());
    // ICE-TCP (on by default): a passive TCP candidate per address, on the same port number.
    let tcp: Vec<&str> = video
        .lines()
        .filter(|line| line.ends_with(" typ host tcptype passive"))
        .filter_map(|line| line.split(' ').nth(4))
        .collect();
    assert_eq!(tcp, addresses, "{}", answer.sdp);
    sfu.shutdown();

    let sfu = Sfu::start(MediaConfig {
        udp: "0.0.0.0:0".parse().unwrap(),
        public_ips: vec![
            "203.0.113.7".parse().unwrap(),
            "2001:db8::7".parse().unwrap(),
        ],
        ..MediaConfig::loopback()
    })
    .expect("started");
    let answer = rt
        .block_on(sfu.publish("room", CHROMIUM_PUBLISH))
        .expect("answered");
    assert!(answer.sdp.contains(&format!(
        " 203.0.113.7 {} typ host",
        sfu.media_addr().port()
    )));
    assert!(answer.sdp.contains(&format!(
        " 2001:db8::7 {} typ host",
        sfu.media_addr().port()
    )));
    assert!(!answer.sdp.contains(" 127.0.0.1 "));
    sfu.shutdown();
}
