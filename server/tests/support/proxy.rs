//! A lossy UDP proxy on 127.0.0.1 that stands between one client and one server: it drops a
//! share of the client's RTP and RTCP (first byte 128..=191, RFC 7983) at random from a seeded
//! RNG and forwards everything else (STUN, DTLS) and everything from the server untouched, so
//! the handshakes complete and only media needs repair. Bounded in time and in datagrams; it
//! stops when told to, when dropped, or when either bound is reached.
//!
//! It can also tamper, as an attacker on the path would: send the server, from the proxy's
//! own (ICE-validated) address, extra copies of the client's SRTP and SRTCP packets (replays,
//! right after the original) and copies with one bit flipped after the RTP/RTCP header
//! (forgeries, right before the original, so that the forgery carries an index the receiver
//! has not seen yet and only its authentication can reject it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, Default)]
pub struct ProxyCounters {
    pub from_client: AtomicU64,
    pub dropped: AtomicU64,
    pub from_server: AtomicU64,
    pub replayed: AtomicU64,
    pub forged: AtomicU64,
    pub reordered: AtomicU64,
    /// Binding requests from the client dropped while STUN is blocked.
    pub stun_blocked: AtomicU64,
    /// While set, the client's STUN (first byte 0..=3) is dropped: a peer that sends binding
    /// requests only while its path is idle, as Pion does.
    pub block_client_stun: std::sync::atomic::AtomicBool,
}

pub struct LossyProxy {
    /// Where the client must send: the proxy's socket.
    pub addr: SocketAddr,
    pub counters: Arc<ProxyCounters>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// What the proxy does and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Probability of dropping one client RTP/RTCP datagram.
    pub loss: f64,
    pub seed: u64,
    pub lifetime: Duration,
    pub max_datagrams: u64,
}

/// Which share of the client's SRTP/SRTCP packets the proxy also replays or forges.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tampering {
    /// Probability of sending a packet a second time, right after it.
    pub replay: f64,
    /// Probability of sending a copy with one bit flipped, right before it.
    pub forge: f64,
    /// Probability of holding a packet back and sending it after the client's next media
    /// packet (reordering, as a path with several queues does).
    pub reorder: f64,
}

/// Where a forgery's flipped bit may go: past the fixed RTP header (12 bytes; the RTCP header
/// is 8), so the flip lands in an extension, the payload, the SRTCP index or the tag, all of
/// which the tag covers or is.
const FORGE_FROM: usize = 12;

impl LossyProxy {
    pub async fn start(server: SocketAddr, impairment: Impairment) -> anyhow::Result<LossyProxy> {
        Self::start_tampering(server, impairment, Tampering::default()).await
    }

    /// A proxy that also replays and forges the client's media, as `tampering` says.
    pub async fn start_tampering(
        server: SocketAddr,
        impairment: Impairment,
        tampering: Tampering,
    ) -> anyhow::Result<LossyProxy> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let counters = Arc::new(ProxyCounters::default());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(
            socket,
            server,
            impairment,
            tampering,
            Arc::clone(&counters),
            stopped,
        ));
        Ok(LossyProxy {
            addr,
            counters,
            stop: Some(stop),
            task,
        })
    }

    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    pub fn client_datagrams(&self) -> u64 {
        self.counters.from_client.load(Ordering::Relaxed)
    }

    pub fn server_datagrams(&self) -> u64 {
        self.counters.from_server.load(Ordering::Relaxed)
    }

    pub fn replayed(&self) -> u64 {
        self.counters.replayed.load(Ordering::Relaxed)
    }

    pub fn forged(&self) -> u64 {
        self.counters.forged.load(Ordering::Relaxed)
    }

    pub fn reordered(&self) -> u64 {
        self.counters.reordered.load(Ordering::Relaxed)
    }

    /// Drops (or stops dropping) the client's STUN from now on.
    pub fn block_client_stun(&self, block: bool) {
        self.counters
            .block_client_stun
            .store(block, Ordering::Relaxed);
    }

    pub fn stun_blocked(&self) -> u64 {
        self.counters.stun_blocked.load(Ordering::Relaxed)
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    socket: UdpSocket,
    server: SocketAddr,
    impairment: Impairment,
    tampering: Tampering,
    counters: Arc<ProxyCounters>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(impairment.seed);
    let deadline = tokio::time::sleep(impairment.lifetime);
    tokio::pin!(deadline);
    let mut client: Option<SocketAddr> = None;
    let mut buf = vec![0u8; 2048];
    let mut forged = Vec::with_capacity(2048);
    // A media packet held back to go out after the next one.
    let mut held: Option<Vec<u8>> = None;
    for _ in 0..impairment.max_datagrams {
        let (len, from) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(error) => {
                    // ICMP port unreachable from a peer that has gone shows up here; go on.
                    eprintln!("[proxy] receive: {error}");
                    continue;
                }
            },
            _ = &mut stopped => return,
            _ = &mut deadline => {
                eprintln!("[proxy] lifetime over");
                return;
            }
        };
        let datagram = &buf[..len];
        let to = if from == server {
            counters.from_server.fetch_add(1, Ordering::Relaxed);
            match client {
                Some(client) => client,
                None => continue,
            }
        } else {
            client = Some(from);
            counters.from_client.fetch_add(1, Ordering::Relaxed);
            if matches!(datagram.first(), Some(0..=3))
                && counters.block_client_stun.load(Ordering::Relaxed)
            {
                counters.stun_blocked.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let is_media = matches!(datagram.first(), Some(128..=191));
            if is_media && rng.random_bool(impairment.loss) {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            // Tampering draws from the RNG only when asked for, so a plain lossy run drops the
            // same packets as before tampering existed.
            if is_media
                && len > FORGE_FROM
                && tampering.forge > 0.0
                && rng.random_bool(tampering.forge)
            {
                forged.clear();
                forged.extend_from_slice(datagram);
                let bit = rng.random_range(FORGE_FROM * 8..len * 8);
                forged[bit / 8] ^= 1 << (bit % 8);
                send(&socket, &forged, server).await;
                counters.forged.fetch_add(1, Ordering::Relaxed);
            }
            server
        };
        let is_media = matches!(datagram.first(), Some(128..=191));
        if to == server && is_media && tampering.reorder > 0.0 {
            if let Some(earlier) = held.take() {
                send(&socket, datagram, to).await;
                send(&socket, &earlier, to).await;
                counters.reordered.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if rng.random_bool(tampering.reorder) {
                held = Some(datagram.to_vec());
                continue;
            }
        }
        send(&socket, datagram, to).await;
        if to == server && is_media && tampering.replay > 0.0 && rng.random_bool(tampering.replay) {
            send(&socket, datagram, server).await;
            counters.replayed.fetch_add(1, Ordering::Relaxed);
        }
    }
    eprintln!("[proxy] datagram budget spent");
}

async fn send(socket: &UdpSocket, datagram: &[u8], to: SocketAddr) {
    if let Err(error) = socket.send_to(datagram, to).await {
        eprintln!("[proxy] send to {to}: {error}");
    }
}
