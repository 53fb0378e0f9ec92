//! HTTPS and WSS over real TCP on loopback: a rustls client that trusts the test authority
//! gets /healthz and joins a room over WSS; one that does not, or plain HTTP, gets nothing;
//! a reload switches later connections to the new certificate and a bad file keeps the old;
//! a client that never finishes its handshake is closed; a client over a cap gets a 503.

mod net;
mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use net::{TestCa, await_metric, closes_within, get, peer_leaf, tls_connect, trusting};
use serde_json::json;
use signaling::{SignalingConfig, TlsAcceptorHandle};
use support::start;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn tls_config(handle: &TlsAcceptorHandle) -> SignalingConfig {
    SignalingConfig {
        tls: Some(handle.clone()),
        ..SignalingConfig::default()
    }
}

fn served(ca: &TestCa) -> (TlsAcceptorHandle, net::Leaf) {
    let leaf = ca.leaf();
    let handle =
        TlsAcceptorHandle::from_pem(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes()).unwrap();
    (handle, leaf)
}

/// A directory of its own for one test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn https_serves_healthz_to_a_client_that_trusts_the_certificate() {
    let ca = TestCa::new();
    let (handle, leaf) = served(&ca);
    let server = start(tls_config(&handle)).await;
    let mut stream = tls_connect(&ca.client(), server.addr).await.unwrap();
    assert_eq!(peer_leaf(&stream), leaf.cert_der);
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "HTTP/1.1 is negotiated"
    );
    let health = get(&mut stream, "/healthz").await.unwrap();
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));
    // The same connection goes on serving (keep-alive), the web app included.
    let app = get(&mut stream, "/").await.unwrap();
    assert_eq!(app.status, 200);
    assert!(app.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(handle.certificate_der(), leaf.cert_der);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_gets_nothing_and_is_counted() {
    let ca = TestCa::new();
    let (handle, _) = served(&ca);
    let server = start(tls_config(&handle)).await;
    let stranger = TestCa::new();
    let refused = tls_connect(&stranger.client(), server.addr).await;
    assert!(
        refused.is_err(),
        "the handshake fails for an untrusted certificate"
    );
    let mut stream = tls_connect(&ca.client(), server.addr).await.unwrap();
    await_metric(&mut stream, "sluice_tls_handshake_failures_total", 1).await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_http_response() {
    let ca = TestCa::new();
    let (handle, _) = served(&ca);
    let server = start(tls_config(&handle)).await;
    for request in [
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ] {
        let mut plain = TcpStream::connect(server.addr).await.unwrap();
        plain.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection")
            .ok();
        assert!(
            !answer.windows(5).any(|w| w == b"HTTP/"),
            "no HTTP response: {:?}",
            String::from_utf8_lossy(&answer)
        );
        // At most a TLS alert record (content type 21) says why.
        assert!(
            answer.is_empty() || answer[0] == 21,
            "only a TLS alert: {answer:?}"
        );
        assert!(answer.len() <= 16, "nothing but an alert: {answer:?}");
    }
    let mut stream = tls_connect(&ca.client(), server.addr).await.unwrap();
    await_metric(&mut stream, "sluice_tls_handshake_failures_total", 3).await;
}

#[tokio::test]
async fn a_websocket_over_tls_joins_a_room() {
    let ca = TestCa::new();
    let (handle, _) = served(&ca);
    let server = start(tls_config(&handle)).await;
    let connector = ca.client();
    let mut sockets = Vec::new();
    let mut ids = Vec::new();
    for name in ["Ada", "Grace"] {
        let stream = tls_connect(&connector, server.addr).await.unwrap();
        let (mut ws, response) = tokio_tungstenite::client_async("wss://localhost/ws", stream)
            .await
            .unwrap();
        assert_eq!(response.status(), 101);
        ws.send(Message::text(
            json!({"type": "join", "room": "tls", "name": name}).to_string(),
        ))
        .await
        .unwrap();
        let joined = next_json(&mut ws).await;
        assert_eq!(joined["type"], "joined", "{joined}");
        assert_eq!(joined["room"], "tls");
        ids.push(joined["id"].as_str().unwrap().to_owned());
        sockets.push(ws);
    }
    let arrival = next_json(&mut sockets[0]).await;
    assert_eq!(arrival["type"], "participant_joined", "{arrival}");
    assert_eq!(arrival["participant"]["id"], ids[1].as_str());
    sockets[1]
        .send(Message::text(
            json!({"type": "chat", "text": "over TLS"}).to_string(),
        ))
        .await
        .unwrap();
    for ws in &mut sockets {
        let chat = next_json(ws).await;
        assert_eq!(
            (chat["type"].as_str(), chat["text"].as_str()),
            (Some("chat"), Some("over TLS"))
        );
    }
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> serde_json::Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[tokio::test]
async fn reload_serves_a_new_certificate_and_a_bad_file_keeps_the_one_in_force() {
    let dir = scratch("reload");
    let (cert_path, key_path) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    let ca = TestCa::new();
    let first = ca.leaf();
    std::fs::write(&cert_path, &first.cert_pem).unwrap();
    std::fs::write(&key_path, &first.key_pem).unwrap();
    let handle = TlsAcceptorHandle::from_pem_files(&cert_path, &key_path).unwrap();
    assert_eq!(
        handle.files(),
        Some((cert_path.as_path(), key_path.as_path()))
    );
    let server = start(tls_config(&handle)).await;
    let connector = ca.client();
    let mut old = tls_connect(&connector, server.addr).await.unwrap();
    assert_eq!(peer_leaf(&old), first.cert_der);
    let before = handle.fingerprint();

    // Renewal: new files, then the reload SIGHUP triggers.
    let second = ca.leaf();
    std::fs::write(&cert_path, &second.cert_pem).unwrap();
    std::fs::write(&key_path, &second.key_pem).unwrap();
    assert!(handle.reload().unwrap(), "a new certificate is in force");
    assert_ne!(handle.fingerprint(), before);
    let mut renewed = tls_connect(&connector, server.addr).await.unwrap();
    assert_eq!(peer_leaf(&renewed), second.cert_der);
    assert_eq!(get(&mut renewed, "/healthz").await.unwrap().status, 200);
    // A connection made before the reload is undisturbed.
    assert_eq!(get(&mut old, "/healthz").await.unwrap().status, 200);

    // A half-written certificate, then a key that does not match: both refused, the second
    // certificate stays.
    std::fs::write(&cert_path, &second.cert_pem[..second.cert_pem.len() / 2]).unwrap();
    assert!(handle.reload().is_err());
    std::fs::write(&cert_path, &second.cert_pem).unwrap();
    std::fs::write(&key_path, &first.key_pem).unwrap();
    let mismatch = handle.reload().unwrap_err();
    assert!(mismatch.to_string().contains("refused"), "{mismatch}");
    std::fs::remove_file(&key_path).unwrap();
    let missing = handle.reload().unwrap_err();
    assert!(missing.to_string().contains("privkey.pem"), "{missing}");
    let mut after = tls_connect(&connector, server.addr).await.unwrap();
    assert_eq!(peer_leaf(&after), second.cert_der);
    assert_eq!(get(&mut after, "/healthz").await.unwrap().status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn loading_bad_files_is_a_clear_error() {
    let dir = scratch("bad");
    let ca = TestCa::new();
    let leaf = ca.leaf();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    let error = TlsAcceptorHandle::from_pem_files(&cert, &key).unwrap_err();
    assert!(error.to_string().contains("cert.pem"), "{error}");
    assert!(error.to_string().contains("certificate"), "{error}");
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.cert_pem).unwrap();
    let error = TlsAcceptorHandle::from_pem_files(&cert, &key).unwrap_err();
    assert!(error.to_string().contains("private key"), "{error}");
    let error = TlsAcceptorHandle::from_pem_files(dir.join("absent.pem"), &key).unwrap_err();
    assert!(error.to_string().contains("absent.pem"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_self_signed_certificate_serves_localhost_and_loopback() {
    let handle =
        TlsAcceptorHandle::self_signed(&["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    assert!(!handle.reload().unwrap(), "nothing to re-read");
    assert!(handle.fingerprint().starts_with("sha-256 "));
    let server = start(tls_config(&handle)).await;
    let connector = trusting(&[handle.certificate_der()]);
    let mut stream = tls_connect(&connector, server.addr).await.unwrap();
    assert_eq!(get(&mut stream, "/healthz").await.unwrap().status, 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_closed_and_frees_its_slot() {
    let ca = TestCa::new();
    let (handle, _) = served(&ca);
    let server = start(SignalingConfig {
        tls_handshake_timeout: Duration::from_millis(300),
        max_connections_per_ip: 1,
        ..tls_config(&handle)
    })
    .await;
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        closes_within(&mut silent, Duration::from_secs(3)).await,
        "a silent client is closed"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
    // Its slot is free again: the one connection this address may have is served.
    let mut stream = tls_connect(&ca.client(), server.addr).await.unwrap();
    await_metric(&mut stream, "sluice_tls_handshake_failures_total", 1).await;
    await_metric(
        &mut stream,
        "sluice_http_connections_refused_total{reason=\"address_full\"}",
        0,
    )
    .await;
}

#[tokio::test]
async fn over_the_cap_a_tls_client_gets_a_503_after_the_handshake() {
    let ca = TestCa::new();
    let (handle, _) = served(&ca);
    let server = start(SignalingConfig {
        max_connections: 1,
        ..tls_config(&handle)
    })
    .await;
    let connector = ca.client();
    let mut first = tls_connect(&connector, server.addr).await.unwrap();
    assert_eq!(get(&mut first, "/healthz").await.unwrap().status, 200);
    let mut over = tls_connect(&connector, server.addr).await.unwrap();
    let refused = get(&mut over, "/healthz").await.unwrap();
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("too many connections"),
        "{}",
        refused.text()
    );
    assert!(closes_within(&mut over, Duration::from_secs(2)).await);
    await_metric(
        &mut first,
        "sluice_http_connections_refused_total{reason=\"server_full\"}",
        1,
    )
    .await;
}
