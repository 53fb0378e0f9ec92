//! The SDP edits and reads the interop tests need: pointing a peer's candidates somewhere else
//! (at the impairment proxy), forging a DTLS fingerprint, and reading an answer's candidates.

use std::net::SocketAddr;

/// The `ip port` of every `a=candidate` line.
pub fn candidates(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line
                .strip_prefix("a=candidate:")?
                .split_whitespace()
                .collect();
            let ip = fields.get(4)?.parse().ok()?;
            let port = fields.get(5)?.parse().ok()?;
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}

/// Rewrites every candidate at `from` to `to`, and returns how many it rewrote.
pub fn redirect_candidates(sdp: &str, from: SocketAddr, to: SocketAddr) -> (String, usize) {
    let mut rewritten = 0;
    let lines = sdp.lines().map(|line| {
        let Some(rest) = line.strip_prefix("a=candidate:") else {
            return line.to_owned();
        };
        let mut fields: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
        let at_from = fields.get(4).and_then(|ip| ip.parse().ok()) == Some(from.ip())
            && fields.get(5).and_then(|port| port.parse().ok()) == Some(from.port());
        if !at_from {
            return line.to_owned();
        }
        rewritten += 1;
        fields[4] = to.ip().to_string();
        fields[5] = to.port().to_string();
        format!("a=candidate:{}", fields.join(" "))
    });
    let edited: String = lines.map(|line| line + "\r\n").collect();
    (edited, rewritten)
}

/// Replaces the hash of every `a=fingerprint` line with its bitwise complement: still a
/// well-formed fingerprint of the same algorithm, but of no certificate the peer holds.
pub fn forge_fingerprints(sdp: &str) -> (String, usize) {
    let mut forged = 0;
    let lines = sdp.lines().map(|line| {
        let Some((algorithm, hash)) = line
            .strip_prefix("a=fingerprint:")
            .and_then(|rest| rest.split_once(' '))
        else {
            return line.to_owned();
        };
        let complement: Option<Vec<String>> = hash
            .trim()
            .split(':')
            .map(|byte| {
                u8::from_str_radix(byte, 16)
                    .ok()
                    .map(|byte| format!("{:02X}", !byte))
            })
            .collect();
        match complement {
            Some(bytes) => {
                forged += 1;
                format!("a=fingerprint:{algorithm} {}", bytes.join(":"))
            }
            None => line.to_owned(),
        }
    });
    let edited: String = lines.map(|line| line + "\r\n").collect();
    (edited, forged)
}

/// Whether `sdp` has a session- or media-level attribute line exactly equal to `attribute`.
pub fn has_attribute(sdp: &str, attribute: &str) -> bool {
    sdp.lines().any(|line| line.trim_end() == attribute)
}

/// The `a=fingerprint` lines' values, e.g. `sha-256 AB:CD:..`.
pub fn fingerprints(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter_map(|line| line.strip_prefix("a=fingerprint:"))
        .map(str::trim)
        .collect()
}

/// The first `a=ice-ufrag` and `a=ice-pwd` values (bundled sessions share one pair).
pub fn ice_credentials(sdp: &str) -> Option<(&str, &str)> {
    let value = |prefix: &str| {
        sdp.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
    };
    Some((value("a=ice-ufrag:")?, value("a=ice-pwd:")?))
}
