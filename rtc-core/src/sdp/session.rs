//! The owned SDP model (RFC 8866) and its parser and writer. SDP is exchanged once per
//! negotiation, not per packet, so the model owns `String`s; the parser still bounds every
//! dimension (total size, line length, m-lines, attributes per section) before it allocates,
//! and accepts both CRLF and bare LF line ends.

use std::fmt;

use super::attribute::{Attribute, Direction, Fingerprint, Setup};
use super::{MAX_ATTRIBUTES, MAX_LINE_LEN, MAX_MEDIA_SECTIONS, MAX_SDP_LEN, SdpError};

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` when none).
    pub username: String,
    /// Session id, kept as text (browsers write up to 20 digits).
    pub session_id: String,
    /// Session version, incremented by the writer on every renegotiation.
    pub session_version: String,
    /// `IN IP4 127.0.0.1`: network type, address type and address.
    pub address: String,
}

/// One m-line and what follows it up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// Media type: `audio`, `video`, `application`...
    pub media: String,
    /// Port; 0 marks a rejected or removed section.
    pub port: u16,
    /// Transport protocol, e.g. `UDP/TLS/RTP/SAVPF`.
    pub protocol: String,
    /// Formats (payload types for RTP) in preference order.
    pub formats: Vec<String>,
    /// The section's `c=` value, if any.
    pub connection: Option<String>,
    /// The section's attributes in order.
    pub attributes: Vec<Attribute>,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` line.
    pub origin: Origin,
    /// The `s=` line (`-` for none).
    pub session_name: String,
    /// The session-level `c=` value, if any.
    pub connection: Option<String>,
    /// Session-level attributes in order.
    pub attributes: Vec<Attribute>,
    /// The media sections in order.
    pub media: Vec<MediaSection>,
}

/// Line types the parser knows (RFC 8866 section 5); others are errors, as the RFC asks.
const KNOWN_TYPES: &[u8] = b"vosiuepcbtrzkam";

impl SessionDescription {
    /// Parses raw bytes, which must be UTF-8.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, SdpError> {
        if bytes.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge { len: bytes.len() });
        }
        Self::parse(std::str::from_utf8(bytes).map_err(|_| SdpError::NotUtf8)?)
    }

    /// Parses a description. Lines may end in CRLF or LF; blank lines are skipped.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge { len: text.len() });
        }
        let mut origin = None;
        let mut session_name = String::from("-");
        let mut connection = None;
        let mut attributes = Vec::new();
        let mut media: Vec<MediaSection> = Vec::new();
        let mut seen_version = false;

        for (index, raw) in text.split('\n').enumerate() {
            let line_no = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.len() > MAX_LINE_LEN {
                return Err(SdpError::LineTooLong { line: line_no });
            }
            if line.trim().is_empty() {
                continue;
            }
            if !seen_version {
                if line.trim_end() != "v=0" {
                    return Err(SdpError::MissingVersion);
                }
                seen_version = true;
                continue;
            }
            let malformed = |reason| SdpError::MalformedLine {
                line: line_no,
                reason,
            };
            let (kind, value) = match line.as_bytes() {
                [kind, b'=', ..] if KNOWN_TYPES.contains(kind) => {
                    (*kind, line.get(2..).unwrap_or_default())
                }
                [kind, b'=', ..] if kind.is_ascii_lowercase() => {
                    return Err(malformed("unknown line type"));
                }
                _ => return Err(malformed("expected `<type>=<value>`")),
            };
            match kind {
                b'o' => origin = Some(parse_origin(value).ok_or(malformed("o= needs 6 fields"))?),
                b's' => session_name = value.to_owned(),
                b'm' => {
                    if media.len() >= MAX_MEDIA_SECTIONS {
                        return Err(SdpError::TooManyMediaSections);
                    }
                    media.push(parse_media_line(value).map_err(malformed)?);
                }
                b'c' => {
                    let target = match media.last_mut() {
                        Some(section) => &mut section.connection,
                        None => &mut connection,
                    };
                    *target = Some(value.to_owned());
                }
                b'a' => {
                    let target = match media.last_mut() {
                        Some(section) => &mut section.attributes,
                        None => &mut attributes,
                    };
                    if target.len() >= MAX_ATTRIBUTES {
                        return Err(SdpError::TooManyAttributes { line: line_no });
                    }
                    target.push(Attribute::parse(value).map_err(malformed)?);
                }
                b'v' => return Err(malformed("a second v= line")),
                // t=, b=, i=, u=, e=, p=, r=, z=, k= carry nothing negotiation needs.
                _ => {}
            }
        }
        if !seen_version {
            return Err(SdpError::MissingVersion);
        }
        Ok(SessionDescription {
            origin: origin.ok_or(SdpError::MissingOrigin)?,
            session_name,
            connection,
            attributes,
            media,
        })
    }

    /// The mids of the first `a=group:BUNDLE`, if there is one.
    pub fn bundle_group(&self) -> Option<&[String]> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Group { semantics, mids } if semantics.eq_ignore_ascii_case("BUNDLE") => {
                Some(mids.as_slice())
            }
            _ => None,
        })
    }

    /// Whether the session is `a=ice-lite`.
    pub fn ice_lite(&self) -> bool {
        self.attributes.contains(&Attribute::IceLite)
    }

    /// Whether `a=extmap-allow-mixed` appears at session level or in any section.
    pub fn extmap_allow_mixed(&self) -> bool {
        self.attributes.contains(&Attribute::ExtmapAllowMixed)
            || self
                .media
                .iter()
                .any(|m| m.attributes.contains(&Attribute::ExtmapAllowMixed))
    }

    /// The ICE credentials of a section, falling back to session level.
    pub fn ice_credentials<'a>(&'a self, section: &'a MediaSection) -> Option<(&'a str, &'a str)> {
        let ufrag = section
            .ice_ufrag()
            .or_else(|| find_ufrag(&self.attributes))?;
        let pwd = section.ice_pwd().or_else(|| find_pwd(&self.attributes))?;
        Some((ufrag, pwd))
    }

    /// The fingerprints of a section, or the session's when the section has none.
    pub fn fingerprints<'a>(&'a self, section: &'a MediaSection) -> Vec<&'a Fingerprint> {
        let own: Vec<_> = section
            .attributes
            .iter()
            .filter_map(as_fingerprint)
            .collect();
        if own.is_empty() {
            self.attributes.iter().filter_map(as_fingerprint).collect()
        } else {
            own
        }
    }

    /// The `a=setup` of a section, falling back to session level.
    pub fn setup(&self, section: &MediaSection) -> Option<Setup> {
        find_setup(&section.attributes).or_else(|| find_setup(&self.attributes))
    }

    /// The direction of a section, falling back to session level, then `sendrecv`.
    pub fn direction(&self, section: &MediaSection) -> Direction {
        find_direction(&section.attributes)
            .or_else(|| find_direction(&self.attributes))
            .unwrap_or_default()
    }
}

fn as_fingerprint(a: &Attribute) -> Option<&Fingerprint> {
    match a {
        Attribute::Fingerprint(fp) => Some(fp),
        _ => None,
    }
}

fn find_ufrag(attrs: &[Attribute]) -> Option<&str> {
    attrs.iter().find_map(|a| match a {
        Attribute::IceUfrag(u) => Some(u.as_str()),
        _ => None,
    })
}

fn find_pwd(attrs: &[Attribute]) -> Option<&str> {
    attrs.iter().find_map(|a| match a {
        Attribute::IcePwd(p) => Some(p.as_str()),
        _ => None,
    })
}

fn find_setup(attrs: &[Attribute]) -> Option<Setup> {
    attrs.iter().find_map(|a| match a {
        Attribute::Setup(s) => Some(*s),
        _ => None,
    })
}

fn find_direction(attrs: &[Attribute]) -> Option<Direction> {
    attrs.iter().find_map(|a| match a {
        Attribute::Direction(d) => Some(*d),
        _ => None,
    })
}

impl MediaSection {
    /// The section's `a=mid`.
    pub fn mid(&self) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Mid(m) => Some(m.as_str()),
            _ => None,
        })
    }

    /// The section's own `a=ice-ufrag`.
    pub fn ice_ufrag(&self) -> Option<&str> {
        find_ufrag(&self.attributes)
    }

    /// The section's own `a=ice-pwd`.
    pub fn ice_pwd(&self) -> Option<&str> {
        find_pwd(&self.attributes)
    }

    /// Whether the section has the flag attribute `attr` (e.g. [`Attribute::RtcpMux`]).
    pub fn has(&self, attr: &Attribute) -> bool {
        self.attributes.contains(attr)
    }

    /// Whether the port is 0 (rejected by the offerer or removed), unless the section is
    /// `a=bundle-only` (JSEP: port 0 there means "only usable inside the bundle").
    pub fn is_rejected(&self) -> bool {
        self.port == 0
            && !self.attributes.iter().any(
                |a| matches!(a, Attribute::Other { name, value: None } if name == "bundle-only"),
            )
    }
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut parts = value.split_whitespace();
    let username = parts.next()?.to_owned();
    let session_id = parts.next()?.to_owned();
    let session_version = parts.next()?.to_owned();
    let rest: Vec<&str> = parts.collect();
    if rest.len() != 3 {
        return None;
    }
    Some(Origin {
        username,
        session_id,
        session_version,
        address: rest.join(" "),
    })
}

fn parse_media_line(value: &str) -> Result<MediaSection, &'static str> {
    let mut parts = value.split_whitespace();
    let media = parts.next().ok_or("m= has no media type")?.to_owned();
    let port_part = parts.next().ok_or("m= has no port")?;
    // RFC 8866 allows `<port>/<number of ports>`; only the first port matters to us.
    let port_text = port_part.split_once('/').map_or(port_part, |(p, _)| p);
    let port = port_text
        .parse::<u16>()
        .map_err(|_| "m= port is not a number in 0..=65535")?;
    let protocol = parts.next().ok_or("m= has no protocol")?.to_owned();
    let formats: Vec<String> = parts.map(str::to_owned).collect();
    if formats.is_empty() {
        return Err("m= has no formats");
    }
    Ok(MediaSection {
        media,
        port,
        protocol,
        formats,
        connection: None,
        attributes: Vec::new(),
    })
}

impl fmt::Display for SessionDescription {
    /// Writes the description with CRLF line ends, as RFC 8866 requires.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o.address
        )?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        f.write_str("t=0 0\r\n")?;
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(
                f,
                "m={} {} {} {}\r\n",
                m.media,
                m.port,
                m.protocol,
                m.formats.join(" ")
            )?;
            if let Some(c) = &m.connection {
                write!(f, "c={c}\r\n")?;
            }
            for a in &m.attributes {
                write!(f, "a={a}\r\n")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::ALL;
    use super::*;

    #[test]
    fn every_fixture_parses_and_round_trips() {
        for (name, text) in ALL {
            let sdp = SessionDescription::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(sdp.media.len(), 2, "{name}");
            assert_eq!(sdp.bundle_group().unwrap(), ["0", "1"], "{name}");
            assert!(
                sdp.attributes
                    .iter()
                    .all(|a| !matches!(a, Attribute::Other { name, .. } if name == "group"))
            );
            let written = sdp.to_string();
            assert_eq!(SessionDescription::parse(&written).unwrap(), sdp, "{name}");
            // The browsers' lines come back byte for byte, apart from dropped lines like t=.
            for line in written.lines() {
                assert!(
                    text.contains(line),
                    "{name}: {line} was not in the original"
                );
            }
        }
    }

    #[test]
    fn lf_line_ends_parse_like_crlf() {
        let (_, text) = ALL[0];
        let lf = text.replace("\r\n", "\n");
        assert_eq!(
            SessionDescription::parse(&lf).unwrap(),
            SessionDescription::parse(text).unwrap()
        );
    }

    #[test]
    fn session_level_fallbacks() {
        let (_, text) = ALL.iter().find(|(n, _)| *n == "firefox-publish").unwrap();
        let sdp = SessionDescription::parse(text).unwrap();
        let video = &sdp.media[1];
        assert_eq!(sdp.fingerprints(video)[0].hash, "sha-256");
        // Session says sendrecv, the section says sendonly: the section wins.
        assert_eq!(sdp.direction(video), Direction::SendOnly);
        assert!(sdp.ice_credentials(video).is_some());
    }

    #[test]
    fn limits_and_garbage_are_clear_errors() {
        let big = format!(
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n{}",
            "a=x\r\n".repeat(MAX_SDP_LEN / 5)
        );
        assert!(matches!(
            SessionDescription::parse(&big),
            Err(SdpError::TooLarge { .. })
        ));
        let long = format!(
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na={}\r\n",
            "x".repeat(MAX_LINE_LEN)
        );
        assert_eq!(
            SessionDescription::parse(&long),
            Err(SdpError::LineTooLong { line: 3 })
        );
        let many = format!(
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n{}",
            "m=audio 9 RTP/AVP 0\r\n".repeat(MAX_MEDIA_SECTIONS + 1)
        );
        assert_eq!(
            SessionDescription::parse(&many),
            Err(SdpError::TooManyMediaSections)
        );
        let attrs = format!(
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n{}",
            "a=x\r\n".repeat(MAX_ATTRIBUTES + 1)
        );
        assert!(matches!(
            SessionDescription::parse(&attrs),
            Err(SdpError::TooManyAttributes { line }) if line == 3 + MAX_ATTRIBUTES as u32
        ));
        let garbage = SessionDescription::parse("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nhello world\r\n");
        assert_eq!(
            garbage.unwrap_err().to_string(),
            "line 3: expected `<type>=<value>`"
        );
        let bad_rtpmap = SessionDescription::parse(
            "v=0\no=- 1 1 IN IP4 0.0.0.0\nm=audio 9 RTP/AVP 0\na=rtpmap:0 x\n",
        );
        assert_eq!(
            bad_rtpmap.unwrap_err().to_string(),
            "line 4: a=rtpmap clock rate is not a number"
        );
        assert_eq!(
            SessionDescription::parse("o=- 1 1 IN IP4 0.0.0.0\r\n"),
            Err(SdpError::MissingVersion)
        );
        assert_eq!(SessionDescription::parse(""), Err(SdpError::MissingVersion));
        assert_eq!(
            SessionDescription::parse("v=0\r\ns=-\r\n"),
            Err(SdpError::MissingOrigin)
        );
        assert_eq!(
            SessionDescription::parse_bytes(b"v=0\r\n\xff"),
            Err(SdpError::NotUtf8)
        );
        assert!(matches!(
            SessionDescription::parse("v=0\no=- 1 1 IN IP4 x\nm=audio 99999 RTP/AVP 0\n"),
            Err(SdpError::MalformedLine { line: 3, .. })
        ));
    }
}
