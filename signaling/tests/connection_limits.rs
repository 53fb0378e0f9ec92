//! The caps on open HTTP connections, over real TCP on loopback: a connection over the
//! overall cap or over its address's cap is answered 503 with a JSON error and
//! `Connection: close`, and counted, while the connections already open (HTTP keep-alive
//! and WebSocket alike) go on working; a WebSocket holds its slot until it closes.

mod net;
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use net::{await_metric, closes_within, connect_from, get};
use serde_json::json;
use signaling::SignalingConfig;
use support::{Client, start};
use tokio::net::TcpStream;

const SERVER_FULL: &str = "sluice_http_connections_refused_total{reason=\"server_full\"}";
const ADDRESS_FULL: &str = "sluice_http_connections_refused_total{reason=\"address_full\"}";

async fn assert_refused(addr: SocketAddr, from: IpAddr, message: &str) {
    let mut over = connect_from(from, addr).await;
    let refused = get(&mut over, "/healthz").await.unwrap();
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(refused.header("content-type"), Some("application/json"));
    let error = refused.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains(message), "{error}");
    assert!(
        closes_within(&mut over, Duration::from_secs(2)).await,
        "a refused connection is closed"
    );
}

#[tokio::test]
async fn over_the_overall_cap_a_connection_gets_503_and_open_ones_go_on() {
    let server = start(SignalingConfig {
        max_connections: 2,
        ..SignalingConfig::default()
    })
    .await;
    let (mut ada, _) = Client::join(server.addr, "capped", "Ada").await;
    let mut keep_alive = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(get(&mut keep_alive, "/healthz").await.unwrap().status, 200);

    for _ in 0..3 {
        assert_refused(
            server.addr,
            Ipv4Addr::LOCALHOST.into(),
            "too many connections",
        )
        .await;
    }
    // The open connections are undisturbed: the keep-alive connection reads the counter,
    // the WebSocket still chats.
    await_metric(&mut keep_alive, SERVER_FULL, 3).await;
    await_metric(&mut keep_alive, ADDRESS_FULL, 0).await;
    ada.send(json!({"type": "chat", "text": "still here"}))
        .await;
    assert_eq!(ada.expect("chat").await["text"], "still here");

    // The WebSocket holds its slot until it closes; then a new connection is served.
    drop(ada);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut next = TcpStream::connect(server.addr).await.unwrap();
        let status = get(&mut next, "/healthz").await.unwrap().status;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn over_the_cap_of_one_address_only_that_address_is_refused() {
    let server = start(SignalingConfig {
        max_connections_per_ip: 2,
        ..SignalingConfig::default()
    })
    .await;
    let first: IpAddr = Ipv4Addr::LOCALHOST.into();
    let second: IpAddr = Ipv4Addr::new(127, 0, 0, 2).into();
    let (mut ada, _) = Client::join(server.addr, "per-address", "Ada").await;
    let mut keep_alive = connect_from(first, server.addr).await;
    assert_eq!(get(&mut keep_alive, "/healthz").await.unwrap().status, 200);

    assert_refused(server.addr, first, "from your address").await;
    assert_refused(server.addr, first, "from your address").await;

    // Another address has its own allowance, and joins the same room.
    let mut other = connect_from(second, server.addr).await;
    assert_eq!(get(&mut other, "/healthz").await.unwrap().status, 200);
    let mut other_too = connect_from(second, server.addr).await;
    assert_eq!(get(&mut other_too, "/healthz").await.unwrap().status, 200);
    assert_refused(server.addr, second, "from your address").await;

    await_metric(&mut keep_alive, ADDRESS_FULL, 3).await;
    await_metric(&mut other, SERVER_FULL, 0).await;
    ada.send(json!({"type": "chat", "text": "undisturbed"}))
        .await;
    assert_eq!(ada.expect("chat").await["text"], "undisturbed");

    // Closing one connection gives its address a slot back.
    drop(keep_alive);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut next = connect_from(first, server.addr).await;
        if get(&mut next, "/healthz").await.unwrap().status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_default_caps_allow_many_connections() {
    let config = SignalingConfig::default();
    assert_eq!(
        (config.max_connections, config.max_connections_per_ip),
        (10_000, 100)
    );
    assert!(
        config.tls.is_none(),
        "plain HTTP unless a certificate is given"
    );
    let server = start(config).await;
    let mut open = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(get(&mut stream, "/healthz").await.unwrap().status, 200);
        open.push(stream);
    }
    await_metric(&mut open[0], ADDRESS_FULL, 0).await;
    await_metric(&mut open[0], "sluice_http_connections", 50).await;
}
