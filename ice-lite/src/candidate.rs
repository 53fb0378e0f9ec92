//! Host candidates (RFC 8445 5.1.2) for the one media port and public IP, and their SDP
//! `candidate` attribute value (RFC 8839 5.1): UDP, and TCP passive (RFC 6544) on the same
//! port number for peers whose networks block UDP.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// RFC 8445 5.1.2.2: the recommended type preference of host candidates.
const HOST_TYPE_PREFERENCE: u32 = 126;
/// The only candidate per address family, so it gets the highest local preference.
const DEFAULT_LOCAL_PREFERENCE: u32 = 65535;
/// The type preference of TCP host candidates: below every UDP type that a peer can reach
/// directly (RFC 6544 4.2 leaves it to the implementation; libwebrtc uses 90 for host TCP,
/// between server-reflexive UDP at 100 and relays), so that TCP is chosen only when UDP
/// fails.
const HOST_TCP_TYPE_PREFERENCE: u32 = 90;
/// RFC 6544 4.2: the direction preference of passive host candidates (active 6, passive 4,
/// simultaneous-open 2), in the top three bits of the local preference.
const PASSIVE_DIRECTION_PREFERENCE: u32 = 4;
/// RFC 6544 4.2: the remaining 13 bits of a TCP candidate's local preference.
const MAX_OTHER_PREFERENCE: u16 = 0x1FFF;
/// RTP and RTCP share one component (rtcp-mux, BUNDLE).
const COMPONENT_RTP: u32 = 1;

/// The transport of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP, passive side (RFC 6544): the peer connects, frames are RFC 4571.
    TcpPassive,
}

/// A host candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    address: SocketAddr,
    foundation: u32,
    priority: u32,
    transport: Transport,
}

/// RFC 8445 5.1.2.1: (2^24) * type preference + (2^8) * local preference + (256 - component).
pub fn candidate_priority(type_preference: u32, local_preference: u32, component: u32) -> u32 {
    ((type_preference & 0x7F) << 24)
        | ((local_preference & 0xFFFF) << 8)
        | (256 - component.clamp(1, 256))
}

impl Candidate {
    /// The host candidate for `ip:port`, foundation 1, priority 2130706431.
    pub fn host(ip: IpAddr, port: u16) -> Self {
        Self {
            address: SocketAddr::new(ip, port),
            foundation: 1,
            priority: candidate_priority(
                HOST_TYPE_PREFERENCE,
                DEFAULT_LOCAL_PREFERENCE,
                COMPONENT_RTP,
            ),
            transport: Transport::Udp,
        }
    }

    /// The passive TCP host candidate for `ip:port` (RFC 6544), foundation 1, priority
    /// 1520435199: below every UDP host and server-reflexive candidate.
    pub fn tcp_passive_host(ip: IpAddr, port: u16) -> Self {
        Self {
            address: SocketAddr::new(ip, port),
            foundation: 1,
            priority: tcp_passive_priority(MAX_OTHER_PREFERENCE),
            transport: Transport::TcpPassive,
        }
    }

    /// Sets the foundation and local preference, for servers that advertise several host
    /// candidates: RFC 8445 5.1.1.3 wants a distinct foundation per base address, and
    /// distinct priorities keep the pairs ordered.
    pub fn with_foundation_and_preference(
        mut self,
        foundation: u32,
        local_preference: u16,
    ) -> Self {
        self.foundation = foundation;
        self.priority = match self.transport {
            Transport::Udp => candidate_priority(
                HOST_TYPE_PREFERENCE,
                u32::from(local_preference),
                COMPONENT_RTP,
            ),
            // The direction preference stays; the rest of the preference keeps its order.
            Transport::TcpPassive => {
                tcp_passive_priority(local_preference.min(MAX_OTHER_PREFERENCE))
            }
        };
        self
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The transport address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The foundation.
    pub fn foundation(&self) -> u32 {
        self.foundation
    }

    /// The priority.
    pub fn priority(&self) -> u32 {
        self.priority
    }
}

/// RFC 6544 4.2: local preference = 2^13 * direction preference + other preference.
fn tcp_passive_priority(other_preference: u16) -> u32 {
    candidate_priority(
        HOST_TCP_TYPE_PREFERENCE,
        (PASSIVE_DIRECTION_PREFERENCE << 13) | u32::from(other_preference & MAX_OTHER_PREFERENCE),
        COMPONENT_RTP,
    )
}

/// The SDP attribute value, e.g. `candidate:1 1 udp 2130706431 203.0.113.7 3478 typ host`
/// or `candidate:2 1 tcp 1520435199 203.0.113.7 3478 typ host tcptype passive`.
impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (protocol, tcptype) = match self.transport {
            Transport::Udp => ("udp", ""),
            Transport::TcpPassive => ("tcp", " tcptype passive"),
        };
        write!(
            f,
            "candidate:{} {} {} {} {} {} typ host{}",
            self.foundation,
            COMPONENT_RTP,
            protocol,
            self.priority,
            self.address.ip(),
            self.address.port(),
            tcptype
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_candidate_priority_and_sdp_value() {
        let c = Candidate::host("203.0.113.7".parse().unwrap(), 3478);
        assert_eq!(c.priority(), 2130706431);
        assert_eq!(
            c.to_string(),
            "candidate:1 1 udp 2130706431 203.0.113.7 3478 typ host"
        );
        let v6 = Candidate::host("2001:db8::7".parse().unwrap(), 3478)
            .with_foundation_and_preference(2, 65534);
        assert_eq!(v6.priority(), 2130706431 - 256);
        assert_eq!(
            v6.to_string(),
            "candidate:2 1 udp 2130706175 2001:db8::7 3478 typ host"
        );
    }

    #[test]
    fn tcp_passive_candidates_rank_below_udp() {
        let tcp = Candidate::tcp_passive_host("203.0.113.7".parse().unwrap(), 3478);
        assert_eq!(tcp.priority(), 1520435199);
        assert_eq!(
            tcp.to_string(),
            "candidate:1 1 tcp 1520435199 203.0.113.7 3478 typ host tcptype passive"
        );
        // Below server-reflexive UDP (type preference 100) at any local preference.
        assert!(tcp.priority() < candidate_priority(100, 0, 1));
        let second = tcp.with_foundation_and_preference(4, MAX_OTHER_PREFERENCE - 1);
        assert_eq!(second.priority(), 1520435199 - 256);
        assert_eq!(second.transport(), Transport::TcpPassive);
        // A preference above 13 bits cannot disturb the direction bits.
        let clamped = tcp.with_foundation_and_preference(5, u16::MAX);
        assert_eq!(clamped.priority(), tcp.priority());
    }

    #[test]
    fn priority_formula_matches_rfc_8445() {
        // Server-reflexive (100), local preference 65535, component 1.
        assert_eq!(candidate_priority(100, 65535, 1), 1694498815);
        // Relayed (0), component 2.
        assert_eq!(candidate_priority(0, 65535, 2), 16777214);
    }
}
