//! ICE over TCP on the media port's number, with real sockets on loopback: a client built
//! from Sluice's own pieces (ice-lite's STUN writer, rtc-core's DTLS endpoint in the client
//! role, as the load generator uses them) checks and completes DTLS over RFC 4571 frames on
//! a TCP connection to the answer's passive candidate; and bad input on the TCP side (an
//! oversized frame, a first frame that is no check for a known session, silence, one
//! connection too many) closes only that connection, is counted, and leaves a session that
//! is connected over TCP answering.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use ice_lite::{BindingRequest, Class, IntegrityKey, StunMessage};
use rtc_core::dtls::{DtlsCertificate, DtlsEndpoint, DtlsEvent, Fingerprint};
use server::{MediaConfig, Sfu, SfuStats};

const CHROMIUM_PUBLISH: &str = include_str!("../../rtc-core/src/sdp/fixtures/chromium-publish.sdp");
/// The offer's own ICE username fragment.
const OFFER_UFRAG: &str = "ip2D";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// The passive TCP candidate's address in an answer, checking it is on the media port.
fn tcp_candidate(answer: &str, media: SocketAddr) -> anyhow::Result<SocketAddr> {
    let line = answer
        .lines()
        .find(|line| line.starts_with("a=candidate:") && line.ends_with("typ host tcptype passive"))
        .context("the answer has no passive TCP candidate")?;
    let fields: Vec<&str> = line.split(' ').collect();
    ensure!(fields.get(2) == Some(&"tcp"), "{line}");
    let address = SocketAddr::new(
        fields.get(4).context("ip")?.parse()?,
        fields.get(5).context("port")?.parse()?,
    );
    ensure!(address == media, "{line} is not on the media port {media}");
    Ok(address)
}

fn ice_credentials(sdp: &str) -> anyhow::Result<(String, String)> {
    let value = |prefix: &str| {
        sdp.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("no {prefix} in the answer"))
    };
    Ok((value("a=ice-ufrag:")?, value("a=ice-pwd:")?))
}

/// One publisher session and the means to reach it: its ICE credentials, its DTLS
/// fingerprint, the certificate our offer announced.
struct Peer {
    username: String,
    password: String,
    server_fingerprint: Fingerprint,
    cert: DtlsCertificate,
}

fn publish(rt: &tokio::runtime::Runtime, sfu: &Sfu, room: &str) -> anyhow::Result<Peer> {
    let cert = DtlsCertificate::generate(&mut rand::rng())
        .map_err(|e| anyhow::anyhow!("certificate: {e}"))?;
    let offer: String = CHROMIUM_PUBLISH
        .lines()
        .map(|line| {
            if line.starts_with("a=fingerprint:") {
                format!("a=fingerprint:{}\r\n", cert.fingerprint())
            } else {
                format!("{line}\r\n")
            }
        })
        .collect();
    let answer = rt.block_on(sfu.publish(room, &offer))?;
    tcp_candidate(&answer.sdp, sfu.media_addr())?;
    let (ufrag, password) = ice_credentials(&answer.sdp)?;
    Ok(Peer {
        username: format!("{ufrag}:{OFFER_UFRAG}"),
        password,
        server_fingerprint: Fingerprint::parse(sfu.fingerprint())
            .map_err(|e| anyhow::anyhow!("fingerprint: {e}"))?,
        cert,
    })
}

fn framed(packet: &[u8]) -> Vec<u8> {
    let mut wire = (packet.len() as u16).to_be_bytes().to_vec();
    wire.extend_from_slice(packet);
    wire
}

fn binding_request(username: &str, password: &str, transaction: u8) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0; 256];
    let len = BindingRequest {
        username,
        priority: 0x6E00_01FF,
        ice_controlling: Some(0x1234_5678),
        ice_controlled: None,
        use_candidate: true,
    }
    .write(
        &mut buf,
        &[transaction; 12],
        &IntegrityKey::new(password.as_bytes()),
    )
    .map_err(|e| anyhow::anyhow!("writing a binding request: {e}"))?;
    buf.truncate(len);
    Ok(buf)
}

/// Reads one RFC 4571 frame; `Ok(None)` when the server closed the connection.
fn read_frame(stream: &mut TcpStream) -> anyhow::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 2];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e)
            if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    let mut body = vec![0; usize::from(u16::from_be_bytes(header))];
    stream.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Sends a check on the connection and returns the response (skipping DTLS that may come
/// first once the session is connected).
fn check(stream: &mut TcpStream, peer: &Peer, transaction: u8) -> anyhow::Result<SocketAddr> {
    stream.write_all(&framed(&binding_request(
        &peer.username,
        &peer.password,
        transaction,
    )?))?;
    // RTCP the session sends meanwhile (keyframe requests, reports) is skipped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let frame = read_frame(stream)?.context("the server closed the connection")?;
        let Ok(response) = StunMessage::parse(&frame) else {
            continue;
        };
        ensure!(
            response.transaction_id() == [transaction; 12],
            "a response to another request"
        );
        ensure!(
            response.class() == Class::SuccessResponse,
            "the check failed: {:?}",
            response.error_code()
        );
        return response
            .xor_mapped_address()
            .context("no XOR-MAPPED-ADDRESS in the response");
    }
    bail!("no STUN response among the frames")
}

/// Runs the DTLS client over the connection until it connects.
fn dtls_over_tcp(stream: &mut TcpStream, peer: &Peer) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut dtls = DtlsEndpoint::new_client(&peer.cert, peer.server_fingerprint, Instant::now());
    let mut out = vec![0; 2048];
    let mut pending: Vec<u8> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        while let Some(len) = dtls.poll_transmit(&mut out) {
            stream.write_all(&framed(&out[..len]))?;
        }
        match dtls.poll_event() {
            Some(DtlsEvent::Connected(_)) => {
                stream.set_read_timeout(None)?;
                return Ok(());
            }
            Some(other) => bail!("DTLS over TCP ended: {other:?}"),
            None => {}
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => bail!("the server closed the connection during DTLS"),
            Ok(len) => pending.extend_from_slice(&buf[..len]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.into()),
        }
        while pending.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([pending[0], pending[1]]));
            if pending.len() < 2 + len {
                break;
            }
            let frame: Vec<u8> = pending.drain(..2 + len).skip(2).collect();
            if frame.first().is_some_and(|&b| (20..=63).contains(&b)) {
                let _ = dtls.handle_datagram(Instant::now(), &frame);
            }
        }
        if dtls.poll_timeout().is_some_and(|at| at <= Instant::now()) {
            dtls.handle_timeout(Instant::now());
        }
    }
    bail!("DTLS over TCP did not complete within 10 s")
}

/// Whether an SRTCP frame (RFC 7983: first byte 128..=191, packet type 192..=223) arrives
/// on the connection within 5 s.
fn srtcp_arrives(stream: &mut TcpStream) -> anyhow::Result<bool> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let Some(frame) = read_frame(stream)? else {
            return Ok(false);
        };
        if let [first, packet_type, ..] = frame[..]
            && (128..=191).contains(&first)
            && (192..=223).contains(&packet_type)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Waits until the counters satisfy `condition`.
fn stats_until(sfu: &Sfu, limit: Duration, condition: impl Fn(&SfuStats) -> bool) -> SfuStats {
    let deadline = Instant::now() + limit;
    loop {
        let stats = sfu.stats();
        if condition(&stats) || Instant::now() >= deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the server has closed `stream` (EOF or reset) within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(limit));
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Sessions on several workers, each checked and connected over its own TCP connection: the
/// worker that accepts a connection hands it to the one whose ufrag the first check names.
#[test]
fn checks_and_dtls_complete_over_tcp_on_the_media_port() -> anyhow::Result<()> {
    let rt = runtime();
    let sfu = Sfu::start(MediaConfig {
        workers: 2,
        ..MediaConfig::loopback()
    })?;
    let rooms = ["alpha", "beta", "gamma", "delta"];
    let mut connections = Vec::new();
    for (index, room) in rooms.iter().enumerate() {
        let peer = publish(&rt, &sfu, room)?;
        let mut stream = TcpStream::connect(sfu.media_addr())?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mapped = check(&mut stream, &peer, index as u8 + 1)?;
        ensure!(
            mapped == stream.local_addr()?,
            "XOR-MAPPED-ADDRESS {mapped} is not the connection's own address"
        );
        dtls_over_tcp(&mut stream, &peer)?;
        // The router's output (the keyframe request a new publisher gets, SRTCP) comes
        // framed on the connection, not over UDP.
        ensure!(
            srtcp_arrives(&mut stream)?,
            "no SRTCP frame on the connection"
        );
        // Still answering on the same connection after DTLS.
        check(&mut stream, &peer, index as u8 + 101)?;
        connections.push(stream);
    }
    let stats = stats_until(&sfu, Duration::from_secs(2), |s| {
        s.dtls_connected >= rooms.len() as u64
    });
    ensure!(stats.dtls_connected == rooms.len() as u64, "{stats:?}");
    ensure!(stats.tcp.accepted == rooms.len() as u64, "{stats:?}");
    ensure!(stats.tcp.connections == rooms.len() as u64, "{stats:?}");
    ensure!(stats.tcp.closed_bad_first_frame == 0, "{stats:?}");
    // Which worker accepts a connection is the kernel's choice; say how many moved.
    eprintln!(
        "{} of {} connections were handed to their session's worker",
        stats.tcp.handed_over,
        rooms.len()
    );
    let metrics = stats.metrics();
    ensure!(
        metrics
            .iter()
            .any(|m| m.name == "sluice_tcp_connections" && m.value == rooms.len() as u64),
        "{metrics:?}"
    );
    Ok(())
}

/// Bad input on the TCP side closes that connection only, and is counted.
#[test]
fn bad_tcp_input_closes_only_that_connection_and_is_counted() -> anyhow::Result<()> {
    let rt = runtime();
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let media = sfu.media_addr();
    let peer = publish(&rt, &sfu, "room")?;
    let mut good = TcpStream::connect(media)?;
    good.set_read_timeout(Some(Duration::from_secs(5)))?;
    check(&mut good, &peer, 1)?;
    dtls_over_tcp(&mut good, &peer)?;

    // A frame longer than the maximum.
    let mut oversized = TcpStream::connect(media)?;
    oversized.write_all(&[0xFF, 0xFF, 0, 1])?;
    ensure!(
        closed_within(&mut oversized, Duration::from_secs(3)),
        "oversized frame"
    );
    // A first frame that is not STUN.
    let mut garbage = TcpStream::connect(media)?;
    garbage.write_all(&framed(b"GET / HTTP/1.1\r\n\r\n"))?;
    ensure!(
        closed_within(&mut garbage, Duration::from_secs(3)),
        "garbage first frame"
    );
    // A well-formed check for no known session.
    let mut stranger = TcpStream::connect(media)?;
    stranger.write_all(&framed(&binding_request(
        "Anobody:peer",
        &peer.password,
        9,
    )?))?;
    ensure!(
        closed_within(&mut stranger, Duration::from_secs(3)),
        "unknown session"
    );
    // A check for a real session that arrives after media, on a connection whose first frame
    // was DTLS: not a check, so closed.
    let mut dtls_first = TcpStream::connect(media)?;
    dtls_first.write_all(&framed(&[22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))?;
    ensure!(
        closed_within(&mut dtls_first, Duration::from_secs(3)),
        "DTLS first"
    );

    // One session holds a bounded number of connections, however valid its checks.
    let mut per_session = Vec::new();
    for transaction in 0..server::tcp::MAX_CONNECTIONS_PER_SESSION as u8 - 1 {
        let mut stream = TcpStream::connect(media)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        check(&mut stream, &peer, 10 + transaction)?;
        per_session.push(stream);
    }
    let mut over_session_cap = TcpStream::connect(media)?;
    over_session_cap.write_all(&framed(&binding_request(
        &peer.username,
        &peer.password,
        99,
    )?))?;
    ensure!(
        closed_within(&mut over_session_cap, Duration::from_secs(3)),
        "a connection over the per-session cap"
    );
    drop(per_session);
    let stats = stats_until(&sfu, Duration::from_secs(3), |s| s.tcp.connections == 1);
    ensure!(stats.tcp.connections == 1, "{stats:?}");

    // Connections up to the per-address cap are held while silent; one more is refused.
    let mut silent: Vec<TcpStream> = Vec::new();
    for _ in 1..server::tcp::MAX_CONNECTIONS_PER_IP {
        silent.push(TcpStream::connect(media)?);
    }
    let stats = stats_until(&sfu, Duration::from_secs(3), |s| {
        s.tcp.connections == server::tcp::MAX_CONNECTIONS_PER_IP as u64
    });
    ensure!(
        stats.tcp.connections == server::tcp::MAX_CONNECTIONS_PER_IP as u64,
        "{stats:?}"
    );
    let mut one_too_many = TcpStream::connect(media)?;
    ensure!(
        closed_within(&mut one_too_many, Duration::from_secs(3)),
        "a connection over the per-address cap"
    );
    // The connected session still answers over its connection.
    check(&mut good, &peer, 2)?;

    // The silent ones are closed after the first-check timeout; the good one stays.
    let started = Instant::now();
    for stream in &mut silent {
        let left = (server::tcp::FIRST_CHECK_TIMEOUT + Duration::from_secs(5))
            .saturating_sub(started.elapsed());
        ensure!(
            closed_within(stream, left),
            "a silent connection stayed open"
        );
    }
    check(&mut good, &peer, 3)?;
    let stats = stats_until(&sfu, Duration::from_secs(2), |s| s.tcp.connections == 1);
    ensure!(stats.tcp.connections == 1, "{stats:?}");
    ensure!(stats.tcp.closed_frame_too_long == 1, "{stats:?}");
    ensure!(stats.tcp.closed_bad_first_frame == 3, "{stats:?}");
    ensure!(
        stats.tcp.closed_silent == server::tcp::MAX_CONNECTIONS_PER_IP as u64 - 1,
        "{stats:?}"
    );
    // One over the session's cap, one over the address's.
    ensure!(stats.tcp.refused_over_limit == 2, "{stats:?}");
    ensure!(
        stats.dtls_connected == 1 && stats.sessions == 1,
        "{stats:?}"
    );
    // Slots came back: a new connection is accepted again.
    let mut again = TcpStream::connect(media)?;
    ensure!(
        !closed_within(&mut again, Duration::from_millis(500)),
        "a connection after the silent ones closed was refused"
    );
    Ok(())
}
