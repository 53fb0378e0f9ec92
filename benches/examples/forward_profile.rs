//! A fixed forwarding workload to run under callgrind (`scripts/profile.sh`): one publisher's
//! 1200-byte video packets routed to N subscribers with SRTP on both sides, the code path of
//! the criterion `forward` bench, for a fixed number of packets so that instruction counts
//! divide into a figure per forwarded packet.
//!
//! Usage: `forward_profile [PACKETS] [SUBSCRIBERS]` (defaults 2000 and 25).

use packet_router::workload::ForwardWorkload;

fn main() {
    let mut args = std::env::args().skip(1);
    let packets: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let subscribers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(25);
    let mut workload = ForwardWorkload::new(subscribers, std::time::Instant::now());
    // Protect every datagram before the measured loop, so the publisher's side stays out of
    // the profile's `forward` totals.
    let mut datagrams: Vec<Vec<u8>> = (0..packets).map(|_| workload.next_datagram()).collect();
    let mut bytes = 0;
    for datagram in &mut datagrams {
        bytes += workload.forward(datagram);
    }
    println!(
        "forwarded {} copies of {packets} packets to {subscribers} subscribers ({bytes} bytes)",
        packets * subscribers
    );
}
