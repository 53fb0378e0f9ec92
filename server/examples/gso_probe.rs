//! Measures what UDP GSO saves on the send path of the media workers: the sending thread's
//! CPU time (which on loopback includes the kernel's delivery to the receiving sockets) per
//! datagram for bursts of video to N subscribers, each subscriber's packets together, sent
//! through `server::udp::BatchSocket` with GSO off and on. The figure is in
//! docs/profiling.md; the worker's default follows it.
//!
//! Usage: `gso_probe [ROUNDS] [SUBSCRIBERS] [PACKETS_PER_BURST]` (defaults 2000, 25, 5).
//! Loopback only; a few seconds.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use server::udp::BatchSocket;

fn thread_cpu() -> Duration {
    #[allow(unsafe_code)]
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    let now = unsafe {
        let mut time = std::mem::zeroed::<libc::timespec>();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time);
        time
    };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

struct Figures {
    gso: bool,
    sent: u64,
    received: u64,
    send_cpu: Duration,
    wall: Duration,
}

fn run(gso: bool, rounds: usize, subscribers: usize, burst: usize) -> anyhow::Result<Figures> {
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    sender.set_nonblocking(true)?;
    let mut socket = BatchSocket::new(mio::net::UdpSocket::from_std(sender))?;
    let gso = socket.set_gso(gso);
    let receivers: Vec<UdpSocket> = (0..subscribers)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    for receiver in &receivers {
        receiver.set_nonblocking(true)?;
    }
    let destinations: Vec<SocketAddr> = receivers
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    // A frame's packets are equal in size but the last.
    let packets: Vec<Vec<u8>> = (0..burst)
        .map(|i| vec![i as u8; if i + 1 == burst { 700 } else { 1200 }])
        .collect();
    let mut buf = [0u8; 2048];
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut send_cpu = Duration::ZERO;
    let started = Instant::now();
    for _ in 0..rounds {
        let datagrams = destinations
            .iter()
            .flat_map(|&to| packets.iter().map(move |p| (to, &p[..])));
        let before = thread_cpu();
        socket.send_batch(datagrams);
        send_cpu += thread_cpu() - before;
        sent += (subscribers * burst) as u64;
        for receiver in &receivers {
            while receiver.recv(&mut buf).is_ok() {
                received += 1;
            }
        }
    }
    Ok(Figures {
        gso,
        sent,
        received,
        send_cpu,
        wall: started.elapsed(),
    })
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let subscribers = args.next().and_then(|a| a.parse().ok()).unwrap_or(25);
    let burst = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    println!("{rounds} rounds of {burst}-packet bursts to {subscribers} subscribers");
    for gso in [false, true, false, true] {
        let figures = run(gso, rounds, subscribers, burst)?;
        println!(
            "gso {:<5} sent {} received {} send CPU {:.0} ns/datagram, wall {:.2} s",
            figures.gso,
            figures.sent,
            figures.received,
            figures.send_cpu.as_nanos() as f64 / figures.sent as f64,
            figures.wall.as_secs_f64()
        );
    }
    Ok(())
}
