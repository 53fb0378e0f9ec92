//! WebSocket time limits over real TCP: the join timeout, the ping/pong keepalive, and a
//! well-behaved client that stays. Short configured timeouts keep the tests quick.
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use signaling::SignalingConfig;
use support::{Client, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A WebSocket client written against RFC 6455 by hand, because tungstenite answers pings by
/// itself: this one reads every frame and answers nothing, like a peer whose page froze.
struct SilentClient {
    tcp: TcpStream,
}

const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;

impl SilentClient {
    async fn connect(addr: SocketAddr) -> Self {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tcp.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { tcp }
    }

    /// Sends one masked text frame (clients must mask, RFC 6455 section 5.3).
    async fn send(&mut self, message: Value) {
        let payload = message.to_string().into_bytes();
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = vec![0x80 | OP_TEXT];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).await.unwrap();
    }

    /// The next frame's opcode and payload; None once the server closed the TCP connection.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.tcp.read_exact(&mut head).await.ok()?;
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut len = [0u8; 2];
                self.tcp.read_exact(&mut len).await.ok()?;
                u64::from(u16::from_be_bytes(len))
            }
            127 => {
                let mut len = [0u8; 8];
                self.tcp.read_exact(&mut len).await.ok()?;
                u64::from_be_bytes(len)
            }
            short => u64::from(short),
        };
        let mut payload = vec![0u8; usize::try_from(len).unwrap()];
        self.tcp.read_exact(&mut payload).await.ok()?;
        Some((head[0] & 0x0f, payload))
    }

    async fn text(&mut self) -> Value {
        loop {
            let (opcode, payload) = self.frame().await.expect("a frame");
            if opcode == OP_TEXT {
                return serde_json::from_slice(&payload).unwrap();
            }
        }
    }
}

/// How the server ended a silent client's connection.
#[derive(Debug, Default)]
struct Ending {
    pings: usize,
    close_code: Option<u16>,
    close_reason: String,
}

/// Reads frames until the server closes the TCP connection, counting pings.
async fn read_until_closed(mut client: SilentClient) -> Ending {
    let mut ending = Ending::default();
    while let Some((opcode, payload)) = client.frame().await {
        match opcode {
            OP_PING => ending.pings += 1,
            OP_CLOSE if payload.len() >= 2 => {
                ending.close_code = Some(u16::from_be_bytes([payload[0], payload[1]]));
                ending.close_reason = String::from_utf8_lossy(&payload[2..]).into_owned();
            }
            _ => {}
        }
    }
    ending
}

/// The server's count of WebSockets closed for `reason`, from `/metrics`.
async fn closed_count(addr: SocketAddr, reason: &str) -> u64 {
    let metrics = support::http(addr, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8(metrics.body).unwrap();
    let prefix = format!("sluice_ws_closed_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
        .parse()
        .unwrap()
}

/// The close frame that ends `client`'s connection, skipping anything before it.
async fn close_frame(client: &mut Client) -> (CloseCode, String) {
    loop {
        match client.next_within(Duration::from_secs(5)).await {
            Some(Message::Close(Some(frame))) => return (frame.code, frame.reason.to_string()),
            Some(Message::Text(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn socket_that_never_joins_is_closed_after_the_join_timeout() {
    let join_timeout = Duration::from_millis(300);
    let server = start(SignalingConfig {
        join_timeout,
        ..SignalingConfig::default()
    })
    .await;
    let opened = Instant::now();
    let mut idle = Client::connect(server.addr).await;
    idle.expect_error("join_timeout").await;
    assert!(opened.elapsed() >= join_timeout, "{:?}", opened.elapsed());
    let (code, reason) = close_frame(&mut idle).await;
    assert_eq!((u16::from(code), reason.as_str()), (4003, "join timeout"));
    assert!(idle.next_within(Duration::from_secs(2)).await.is_none());
    assert_eq!(closed_count(server.addr, "join_timeout").await, 1);

    // Anything short of a successful join does not count: a refused join is still idle.
    let mut refused = Client::connect(server.addr).await;
    refused
        .send(json!({"type": "join", "room": "", "name": "Ada"}))
        .await;
    refused.expect_error("bad_room").await;
    refused.expect_error("join_timeout").await;
    assert_eq!(u16::from(close_frame(&mut refused).await.0), 4003);
    assert_eq!(closed_count(server.addr, "join_timeout").await, 2);
}

#[tokio::test]
async fn joined_socket_outlives_the_join_timeout_until_it_leaves() {
    let join_timeout = Duration::from_millis(300);
    let server = start(SignalingConfig {
        join_timeout,
        ..SignalingConfig::default()
    })
    .await;
    let (mut ada, _) = Client::join(server.addr, "lobby", "Ada").await;
    // Three join timeouts in the room, and nothing arrives (no error, no close).
    if let Some(message) = ada.next_within(join_timeout * 3).await {
        panic!("a joined socket got {message:?}");
    }
    ada.send(json!({"type": "chat", "text": "still here"}))
        .await;
    assert_eq!(ada.expect("chat").await["text"], "still here");

    // Leaving re-arms the timeout: the connection may join again, but not idle forever.
    let left = Instant::now();
    ada.send(json!({"type": "leave"})).await;
    ada.expect_error("join_timeout").await;
    assert!(left.elapsed() >= join_timeout, "{:?}", left.elapsed());
    assert_eq!(u16::from(close_frame(&mut ada).await.0), 4003);
}

#[tokio::test]
async fn peer_that_stops_answering_pings_is_dropped_and_the_room_is_told() {
    // Generous next to the ping interval, so that Ada (who answers pings only while the test
    // reads her socket) is never late on a loaded machine.
    let pong_timeout = Duration::from_millis(1000);
    let server = start(SignalingConfig {
        ping_interval: Duration::from_millis(100),
        pong_timeout,
        // Leave at once rather than wait for a resume (tests/resume.rs covers that).
        resume_grace: Duration::ZERO,
        ..SignalingConfig::default()
    })
    .await;
    let (mut ada, _) = Client::join(server.addr, "lobby", "Ada").await;
    let mut frozen = SilentClient::connect(server.addr).await;
    frozen
        .send(json!({"type": "join", "room": "lobby", "name": "Frozen"}))
        .await;
    let joined = frozen.text().await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let frozen_id = joined["id"].as_str().unwrap().to_owned();
    let last_sent = Instant::now();
    let ending = tokio::spawn(read_until_closed(frozen));

    // Ada reads (so tungstenite answers her pings) and hears of the arrival, then the drop.
    let arrival = ada.expect("participant_joined").await;
    assert_eq!(arrival["participant"]["id"], frozen_id.as_str());
    let left = ada.expect("participant_left").await;
    assert_eq!(left["id"], frozen_id.as_str());
    assert!(
        last_sent.elapsed() >= pong_timeout,
        "{:?}",
        last_sent.elapsed()
    );

    let ending = tokio::time::timeout(Duration::from_secs(5), ending)
        .await
        .expect("the server closes the TCP connection")
        .unwrap();
    assert!(ending.pings >= 2, "pings went unanswered: {ending:?}");
    assert_eq!(ending.close_code, Some(4004), "{ending:?}");
    assert_eq!(ending.close_reason, "keepalive timeout");
    assert_eq!(closed_count(server.addr, "keepalive_timeout").await, 1);

    // Ada, who answered every ping, is still in the room.
    ada.send(json!({"type": "chat", "text": "alone"})).await;
    assert_eq!(ada.expect("chat").await["text"], "alone");
}

/// Reads `client` for `how_long`, counting the pings it saw (tungstenite answers each).
async fn read_pings(client: &mut Client, how_long: Duration) -> usize {
    let deadline = Instant::now() + how_long;
    let mut pings = 0;
    loop {
        match tokio::time::timeout_at(deadline, client.ws.next()).await {
            Err(_) => return pings,
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(other) => panic!("a well-behaved client got {other:?}"),
        }
    }
}

#[tokio::test]
async fn well_behaved_clients_stay_across_many_ping_intervals() {
    let ping_interval = Duration::from_millis(100);
    let server = start(SignalingConfig {
        ping_interval,
        pong_timeout: Duration::from_millis(600),
        ..SignalingConfig::default()
    })
    .await;
    let (mut ada, _) = Client::join(server.addr, "lobby", "Ada").await;
    let (mut grace, _) = Client::join(server.addr, "lobby", "Grace").await;
    ada.expect("participant_joined").await;
    // Both read at once for 20 ping intervals (more than three pong timeouts), answering
    // pings.
    let (ada_pings, grace_pings) = tokio::join!(
        read_pings(&mut ada, ping_interval * 20),
        read_pings(&mut grace, ping_interval * 20)
    );
    assert!(
        ada_pings >= 8 && grace_pings >= 8,
        "{ada_pings} {grace_pings}"
    );
    grace.send(json!({"type": "chat", "text": "hi"})).await;
    for client in [&mut ada, &mut grace] {
        assert_eq!(client.expect("chat").await["text"], "hi");
    }
    assert_eq!(closed_count(server.addr, "keepalive_timeout").await, 0);
}
