//! The `application/trickle-ice-sdpfrag` bodies of WHIP and WHEP `PATCH` requests (RFC 8840
//! fragments, as RFC 9725 4.3 uses them): trickled candidates, or new ICE credentials for an
//! ICE restart. Parsed once and checked against the RFC 8839 grammar, so that what reaches the
//! media plane is well-formed; anything else is refused with the line that is wrong.

use std::fmt;

use ice_lite::{is_ice_char, is_valid_pwd, is_valid_ufrag};

/// RFC 4566 token-char (what `a=mid` identification tags and candidate types are made of).
fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'{'
                        | b'|'
                        | b'}'
                        | b'~'
                )
        })
}

fn is_digits(value: &str, max_len: usize) -> bool {
    (1..=max_len).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
}

/// The most lines a fragment may have: a restart carries a few candidates per m-section.
pub const MAX_LINES: usize = 512;

/// What a fragment says, once it is known to be well-formed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceFragment {
    /// `a=ice-ufrag`, the same wherever it appears.
    pub ufrag: Option<String>,
    /// `a=ice-pwd`, the same wherever it appears.
    pub pwd: Option<String>,
    /// The `a=mid` of each m-section, in order.
    pub mids: Vec<String>,
    /// How many `a=candidate` lines it has.
    pub candidates: usize,
    /// Whether it has `a=end-of-candidates`.
    pub end_of_candidates: bool,
}

/// Why a fragment is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentError {
    /// The 1-based line, or 0 for the fragment as a whole.
    pub line: usize,
    pub reason: &'static str,
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "malformed SDP fragment: {}", self.reason)
        } else {
            write!(
                f,
                "malformed SDP fragment, line {}: {}",
                self.line, self.reason
            )
        }
    }
}

impl std::error::Error for FragmentError {}

/// Keeps the first value of an attribute and refuses a different one later.
fn agree(
    slot: &mut Option<String>,
    value: &str,
    line: usize,
    reason: &'static str,
) -> Result<(), FragmentError> {
    match slot {
        Some(existing) if existing != value => Err(FragmentError { line, reason }),
        Some(_) => Ok(()),
        None => {
            *slot = Some(value.to_owned());
            Ok(())
        }
    }
}

/// RFC 8839 5.1: candidate-attribute = foundation SP component-id SP transport SP priority SP
/// connection-address SP port SP "typ" SP cand-type [SP rel-addr] [SP rel-port]
/// *(SP extension-att-name SP extension-att-value).
fn is_candidate(value: &str) -> bool {
    let fields: Vec<&str> = value.split(' ').collect();
    let [
        foundation,
        component,
        transport,
        priority,
        address,
        port,
        typ,
        kind,
        rest @ ..,
    ] = fields.as_slice()
    else {
        return false;
    };
    (1..=32).contains(&foundation.len())
        && foundation.bytes().all(is_ice_char)
        && is_digits(component, 5)
        && is_token(transport)
        && is_digits(priority, 10)
        && !address.is_empty()
        && address.len() <= 255
        && address.bytes().all(|b| b.is_ascii_graphic())
        && port.parse::<u16>().is_ok()
        && *typ == "typ"
        && is_token(kind)
        && rest.len() % 2 == 0
        && rest
            .iter()
            .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_graphic()))
}

/// Parses a trickle-ice-sdpfrag body: `a=` and `m=` lines (and other `x=` lines, which are
/// ignored), separated by CRLF or LF.
pub fn parse(text: &str) -> Result<IceFragment, FragmentError> {
    let mut fragment = IceFragment::default();
    let mut in_media = false;
    let mut media_has_mid = true;
    let mut lines = 0usize;
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        lines += 1;
        if lines > MAX_LINES {
            return Err(FragmentError {
                line,
                reason: "too many lines",
            });
        }
        let bad = |reason| FragmentError { line, reason };
        let mut kind_and_value = raw.splitn(2, '=');
        let kind = kind_and_value.next().unwrap_or_default();
        let Some(value) = kind_and_value.next() else {
            return Err(bad("not a <type>=<value> line"));
        };
        if kind.len() != 1 || !kind.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(bad("not a <type>=<value> line"));
        }
        if value.bytes().any(|b| b.is_ascii_control()) {
            return Err(bad("control character"));
        }
        match kind {
            "m" => {
                let fields: Vec<&str> = value.split(' ').collect();
                if fields.len() < 3 || fields.iter().any(|f| f.is_empty()) {
                    return Err(bad("m= needs <media> <port> <proto> <fmt>"));
                }
                if !media_has_mid {
                    return Err(FragmentError {
                        line: line.saturating_sub(1),
                        reason: "an m-section without a=mid",
                    });
                }
                in_media = true;
                media_has_mid = false;
            }
            "a" => {
                let (name, attribute) = match value.split_once(':') {
                    Some((name, attribute)) => (name, Some(attribute)),
                    None => (value, None),
                };
                match (name, attribute) {
                    ("ice-ufrag", Some(ufrag)) => {
                        if !is_valid_ufrag(ufrag) {
                            return Err(bad("a=ice-ufrag must be 4 to 256 ice-chars"));
                        }
                        agree(
                            &mut fragment.ufrag,
                            ufrag,
                            line,
                            "a second, different a=ice-ufrag",
                        )?;
                    }
                    ("ice-pwd", Some(pwd)) => {
                        if !is_valid_pwd(pwd) {
                            return Err(bad("a=ice-pwd must be 22 to 256 ice-chars"));
                        }
                        agree(
                            &mut fragment.pwd,
                            pwd,
                            line,
                            "a second, different a=ice-pwd",
                        )?;
                    }
                    ("mid", Some(mid)) => {
                        if !in_media {
                            return Err(bad("a=mid outside an m-section"));
                        }
                        if media_has_mid {
                            return Err(bad("a second a=mid in one m-section"));
                        }
                        if !is_token(mid) {
                            return Err(bad("a=mid is not a token"));
                        }
                        media_has_mid = true;
                        fragment.mids.push(mid.to_owned());
                    }
                    ("candidate", Some(candidate)) => {
                        if !is_candidate(candidate) {
                            return Err(bad("a=candidate does not follow RFC 8839"));
                        }
                        fragment.candidates += 1;
                    }
                    ("end-of-candidates", None) => fragment.end_of_candidates = true,
                    ("ice-ufrag" | "ice-pwd" | "mid" | "candidate", None) => {
                        return Err(bad("the attribute needs a value"));
                    }
                    ("end-of-candidates", Some(_)) => {
                        return Err(bad("a=end-of-candidates takes no value"));
                    }
                    // ice-options, ice-lite, group and the like: nothing to act on.
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if !media_has_mid {
        return Err(FragmentError {
            line: 0,
            reason: "an m-section without a=mid",
        });
    }
    if fragment.pwd.is_some() && fragment.ufrag.is_none() {
        return Err(FragmentError {
            line: 0,
            reason: "a=ice-pwd without a=ice-ufrag",
        });
    }
    Ok(fragment)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESTART: &str = "a=ice-options:trickle ice2\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=mid:0\r\n\
        a=ice-ufrag:ZXV4\r\n\
        a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
        a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n\
        a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r\n\
        a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1\r\n\
        a=end-of-candidates\r\n";

    #[test]
    fn the_rfc_9725_restart_example_parses() {
        let fragment = parse(RESTART).unwrap();
        assert_eq!(fragment.ufrag.as_deref(), Some("ZXV4"));
        assert_eq!(fragment.pwd.as_deref(), Some("bP+XJMM09aR8AiX1jdukzR6Y"));
        assert_eq!(fragment.mids, ["0"]);
        assert_eq!(fragment.candidates, 3);
        assert!(fragment.end_of_candidates);
        // LF alone works as well, and an empty fragment is a (useless) valid one.
        assert_eq!(parse(&RESTART.replace("\r\n", "\n")).unwrap(), fragment);
        assert_eq!(parse("").unwrap(), IceFragment::default());
    }

    #[test]
    fn candidates_with_related_addresses_parse() {
        let text = "m=video 9 UDP/TLS/RTP/SAVPF 96\na=mid:v\n\
            a=candidate:842163049 1 udp 1677729535 203.0.113.9 53995 typ srflx raddr 0.0.0.0 rport 0 generation 0\n\
            a=candidate:1 1 UDP 2130706431 2001:db8::1 5000 typ host\n";
        assert_eq!(parse(text).unwrap().candidates, 2);
    }

    #[test]
    fn malformed_fragments_name_the_line() {
        let cases = [
            (
                "a=ice-ufrag:abc\r\n",
                1,
                "a=ice-ufrag must be 4 to 256 ice-chars",
            ),
            (
                "a=ice-ufrag:ab:d\r\n",
                1,
                "a=ice-ufrag must be 4 to 256 ice-chars",
            ),
            (
                "a=ice-ufrag:abcd\r\na=ice-pwd:short\r\n",
                2,
                "a=ice-pwd must be 22 to 256 ice-chars",
            ),
            (
                "a=ice-ufrag:abcd\r\na=ice-ufrag:abce\r\n",
                2,
                "a second, different a=ice-ufrag",
            ),
            ("hello\r\n", 1, "not a <type>=<value> line"),
            ("A=x\r\n", 1, "not a <type>=<value> line"),
            ("a=mid:0\r\n", 1, "a=mid outside an m-section"),
            ("m=audio 9\r\n", 1, "m= needs <media> <port> <proto> <fmt>"),
            (
                "m=audio 9 UDP 0\r\na=mid:0\r\na=mid:1\r\n",
                3,
                "a second a=mid in one m-section",
            ),
            (
                "m=audio 9 UDP 0\r\na=mid:a b\r\n",
                2,
                "a=mid is not a token",
            ),
            (
                "m=audio 9 UDP 0\r\na=mid:0\r\na=candidate:1 1 udp 1 10.0.0.1 port typ host\r\n",
                3,
                "a=candidate does not follow RFC 8839",
            ),
            (
                "a=candidate:1 1 udp 1 10.0.0.1 5000 host\r\n",
                1,
                "a=candidate does not follow RFC 8839",
            ),
            (
                "a=candidate:1 1 udp 1 10.0.0.1 5000 typ host raddr\r\n",
                1,
                "a=candidate does not follow RFC 8839",
            ),
            (
                "a=end-of-candidates:now\r\n",
                1,
                "a=end-of-candidates takes no value",
            ),
            ("a=ice-ufrag\r\n", 1, "the attribute needs a value"),
            ("a=x\u{1}y\r\n", 1, "control character"),
            (
                "m=audio 9 UDP 0\r\nm=video 9 UDP 0\r\na=mid:1\r\n",
                1,
                "an m-section without a=mid",
            ),
        ];
        for (text, line, reason) in cases {
            assert_eq!(parse(text), Err(FragmentError { line, reason }), "{text:?}");
        }
        assert_eq!(
            parse("m=audio 9 UDP 0\r\n").unwrap_err().reason,
            "an m-section without a=mid"
        );
        assert_eq!(
            parse("a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n")
                .unwrap_err()
                .reason,
            "a=ice-pwd without a=ice-ufrag"
        );
        let long = "a=x\r\n".repeat(MAX_LINES + 1);
        assert_eq!(parse(&long).unwrap_err().reason, "too many lines");
        let message = parse("hello").unwrap_err().to_string();
        assert_eq!(
            message,
            "malformed SDP fragment, line 1: not a <type>=<value> line"
        );
    }
}
