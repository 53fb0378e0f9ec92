//! Host candidates (RFC 8445 5.1.2) for the one media port and public IP, and their SDP
//! `candidate` attribute value (RFC 8839 5.1).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// RFC 8445 5.1.2.2: the recommended type preference of host candidates.
const HOST_TYPE_PREFERENCE: u32 = 126;
/// The only candidate per address family, so it gets the highest local preference.
const DEFAULT_LOCAL_PREFERENCE: u32 = 65535;
/// RTP and RTCP share one component (rtcp-mux, BUNDLE).
const COMPONENT_RTP: u32 = 1;

/// A UDP host candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    address: SocketAddr,
    foundation: u32,
    priority: u32,
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
        self.priority = candidate_priority(
            HOST_TYPE_PREFERENCE,
            u32::from(local_preference),
            COMPONENT_RTP,
        );
        self
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

/// The SDP attribute value, e.g. `candidate:1 1 udp 2130706431 203.0.113.7 3478 typ host`.
impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "candidate:{} {} udp {} {} {} typ host",
            self.foundation,
            COMPONENT_RTP,
            self.priority,
            self.address.ip(),
            self.address.port()
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
    fn priority_formula_matches_rfc_8445() {
        // Server-reflexive (100), local preference 65535, component 1.
        assert_eq!(candidate_priority(100, 65535, 1), 1694498815);
        // Relayed (0), component 2.
        assert_eq!(candidate_priority(0, 65535, 2), 16777214);
    }
}
