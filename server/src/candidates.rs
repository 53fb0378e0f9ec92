//! Which addresses Sluice announces as ICE host candidates for its one media port.
//!
//! Bound to an unspecified address (the default `0.0.0.0:3478`), the port receives on every
//! interface, so every usable interface address is announced: a browser on the same machine
//! that gathers no loopback candidates (Firefox) and a second machine on the LAN both find a
//! path without flags. Loopback comes last, so that a peer with a routable address prefers
//! that. `--public-ip` replaces the list for a server behind 1:1 NAT (or with several public
//! addresses); a specific bound address is announced alone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ice_lite::Candidate;

/// Host candidates are few: each costs the peer a check, and an SDP line per m-line.
pub const MAX_CANDIDATES: usize = 8;

/// The addresses to announce for a media port bound to `bound`, given the configured public
/// addresses and the machine's interface addresses, best first.
pub fn candidate_ips(bound: IpAddr, public: &[IpAddr], interfaces: &[IpAddr]) -> Vec<IpAddr> {
    let mut chosen: Vec<IpAddr> = Vec::new();
    let push = |ip: IpAddr, chosen: &mut Vec<IpAddr>| {
        if chosen.len() < MAX_CANDIDATES && !chosen.contains(&ip) {
            chosen.push(ip);
        }
    };
    if !public.is_empty() {
        for &ip in public {
            push(ip, &mut chosen);
        }
        return chosen;
    }
    if !bound.is_unspecified() {
        return vec![bound];
    }
    // An IPv4 socket reaches only IPv4 peers; an IPv6 one bound to `::` is dual-stack.
    let reachable = |ip: &IpAddr| match (bound, ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), _) => usable(ip),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    };
    let usable_ips: Vec<IpAddr> = interfaces.iter().copied().filter(reachable).collect();
    // Routable IPv4, routable IPv6, then loopback (keeping one loopback even when the list is
    // long, so that a browser on the same machine always has its path).
    let rank = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) if !v4.is_loopback() => 0,
        IpAddr::V6(v6) if !v6.is_loopback() => 1,
        IpAddr::V4(_) => 2,
        IpAddr::V6(_) => 3,
    };
    let mut ordered = usable_ips;
    ordered.sort_by_key(rank);
    let loopback = ordered.iter().copied().find(IpAddr::is_loopback);
    for ip in ordered.iter().copied().filter(|ip| !ip.is_loopback()) {
        if chosen.len() + usize::from(loopback.is_some()) >= MAX_CANDIDATES {
            break;
        }
        push(ip, &mut chosen);
    }
    for ip in ordered.iter().copied().filter(IpAddr::is_loopback) {
        push(ip, &mut chosen);
    }
    if chosen.is_empty() {
        chosen.push(match bound {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    chosen
}

/// Whether a peer could send to `ip`: not unspecified, not multicast, and not an IPv6
/// link-local address (it needs a scope that an SDP candidate cannot carry).
fn usable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_multicast() && !v4.is_broadcast(),
        IpAddr::V6(v6) => !v6.is_unspecified() && !v6.is_multicast() && !v6.is_unicast_link_local(),
    }
}

/// The machine's interface addresses (empty if they cannot be read).
pub fn interface_ips() -> Vec<IpAddr> {
    if_addrs::get_if_addrs()
        .map(|interfaces| interfaces.iter().map(if_addrs::Interface::ip).collect())
        .unwrap_or_default()
}

/// The `a=candidate:` values (without the `candidate:` prefix) for `ips` on `port`: one
/// foundation per address (RFC 8445 5.1.1.3) and falling priorities in list order.
pub fn host_candidates(ips: &[IpAddr], port: u16) -> Vec<String> {
    candidate_lines(ips, port, Candidate::host, 0, u16::MAX)
}

/// The passive TCP host candidates (RFC 6544) for `ips` on the same `port` number, for peers
/// whose networks block UDP: foundations after the UDP ones (a foundation differs per
/// transport), priorities below every UDP candidate, falling in list order.
pub fn tcp_host_candidates(ips: &[IpAddr], port: u16) -> Vec<String> {
    // RFC 6544 4.2 leaves 13 bits of the local preference for the ordering of addresses.
    candidate_lines(ips, port, Candidate::tcp_passive_host, ips.len(), 0x1FFF)
}

fn candidate_lines(
    ips: &[IpAddr],
    port: u16,
    candidate: fn(IpAddr, u16) -> Candidate,
    first_foundation: usize,
    top_preference: u16,
) -> Vec<String> {
    ips.iter()
        .enumerate()
        .map(|(index, &ip)| {
            let rank = u16::try_from(index).unwrap_or(u16::MAX);
            let foundation = u32::try_from(first_foundation + index + 1).unwrap_or(u32::MAX);
            let line = candidate(ip, port)
                .with_foundation_and_preference(foundation, top_preference.saturating_sub(rank))
                .to_string();
            line.strip_prefix("candidate:").unwrap_or(&line).to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    const MACHINE: &[&str] = &[
        "127.0.0.1",
        "10.0.0.5",
        "::1",
        "fe80::1",
        "2001:db8::5",
        "192.168.1.20",
    ];

    #[test]
    fn unspecified_ipv4_announces_every_ipv4_interface_with_loopback_last() {
        let chosen = candidate_ips("0.0.0.0".parse().unwrap(), &[], &ips(MACHINE));
        assert_eq!(chosen, ips(&["10.0.0.5", "192.168.1.20", "127.0.0.1"]));
    }

    #[test]
    fn unspecified_ipv6_is_dual_stack_without_link_local() {
        let chosen = candidate_ips("::".parse().unwrap(), &[], &ips(MACHINE));
        assert_eq!(
            chosen,
            ips(&[
                "10.0.0.5",
                "192.168.1.20",
                "2001:db8::5",
                "127.0.0.1",
                "::1"
            ])
        );
    }

    #[test]
    fn public_addresses_replace_the_interfaces_and_a_bound_address_stands_alone() {
        let public = ips(&["203.0.113.7", "2001:db8::7", "203.0.113.7"]);
        assert_eq!(
            candidate_ips("0.0.0.0".parse().unwrap(), &public, &ips(MACHINE)),
            ips(&["203.0.113.7", "2001:db8::7"])
        );
        assert_eq!(
            candidate_ips("10.0.0.5".parse().unwrap(), &[], &ips(MACHINE)),
            ips(&["10.0.0.5"])
        );
    }

    #[test]
    fn no_usable_interface_falls_back_to_loopback_and_long_lists_keep_it() {
        assert_eq!(
            candidate_ips("0.0.0.0".parse().unwrap(), &[], &[]),
            ips(&["127.0.0.1"])
        );
        let many: Vec<IpAddr> = (1..=20)
            .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
            .chain([IpAddr::V4(Ipv4Addr::LOCALHOST)])
            .collect();
        let chosen = candidate_ips("0.0.0.0".parse().unwrap(), &[], &many);
        assert_eq!(chosen.len(), MAX_CANDIDATES);
        assert_eq!(chosen.last(), Some(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn candidates_have_distinct_foundations_and_falling_priorities() {
        let lines = host_candidates(&ips(&["10.0.0.5", "127.0.0.1"]), 3478);
        assert_eq!(
            lines,
            [
                "1 1 udp 2130706431 10.0.0.5 3478 typ host",
                "2 1 udp 2130706175 127.0.0.1 3478 typ host"
            ]
        );
    }

    #[test]
    fn tcp_candidates_follow_on_the_same_port_below_udp() {
        let lines = tcp_host_candidates(&ips(&["10.0.0.5", "127.0.0.1"]), 3478);
        assert_eq!(
            lines,
            [
                "3 1 tcp 1520435199 10.0.0.5 3478 typ host tcptype passive",
                "4 1 tcp 1520434943 127.0.0.1 3478 typ host tcptype passive"
            ]
        );
    }
}
