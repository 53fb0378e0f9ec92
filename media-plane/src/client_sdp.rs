//! A client peer's session descriptions (the load generator's and the virtual-time tests'),
//! small and shaped like a browser's: one
//! BUNDLE transport with rtcp-mux, ICE credentials, a host candidate for the session's
//! socket, the DTLS fingerprint and role, Opus/48000/2 and VP8/90000 (nack, nack pli) with
//! `a=ssrc` on what it sends. The remote side is read with rtc-core's SDP parser.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use rtc_core::sdp::{Attribute, Direction, SessionDescription, Setup};

/// Why a description could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSdpError(pub String);

impl std::fmt::Display for ClientSdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClientSdpError {}

fn error(why: impl Into<String>) -> ClientSdpError {
    ClientSdpError(why.into())
}

/// Payload types the client offers.
pub const OPUS_PT: u8 = 111;
/// See [`OPUS_PT`].
pub const VP8_PT: u8 = 96;

/// A media kind the load generator sends or receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Opus audio.
    Audio,
    /// VP8 video.
    Video,
}

impl Kind {
    fn media(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        }
    }
}

/// Our transport parameters, written into every description.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    /// ICE username fragment.
    pub ufrag: String,
    /// ICE password.
    pub pwd: String,
    /// `sha-256 AB:CD:...`.
    pub fingerprint: String,
    /// The session's socket address (its one host candidate).
    pub address: SocketAddr,
    /// `o=` session id.
    pub session_id: u64,
}

/// One m-line of an offer: its kind and, when we send on it, our SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedTrack {
    /// Audio or video.
    pub kind: Kind,
    /// `Some` for a `sendonly` m-line (announced with `a=ssrc`), `None` for `recvonly`.
    pub send_ssrc: Option<u32>,
}

fn write_header(sdp: &mut String, local: &LocalTransport, mids: &[String]) {
    let family = ip_family(local.address.ip());
    let _ = write!(
        sdp,
        "v=0\r\no=- {} 2 IN {family} {}\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\na=msid-semantic: WMS\r\n",
        local.session_id,
        local.address.ip(),
        mids.join(" ")
    );
}

fn ip_family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

/// One m-line as we write it.
struct Section<'a> {
    mid: &'a str,
    kind: Kind,
    pt: u8,
    setup: Setup,
    direction: Direction,
    send_ssrc: Option<u32>,
}

/// Writes one m-line with our transport.
fn write_section(sdp: &mut String, local: &LocalTransport, section: &Section<'_>) {
    let Section {
        mid,
        kind,
        pt,
        setup,
        direction,
        send_ssrc,
    } = *section;
    let ip = local.address.ip();
    let port = local.address.port();
    let _ = write!(
        sdp,
        "m={} {port} UDP/TLS/RTP/SAVPF {pt}\r\nc=IN {} {ip}\r\n\
         a=candidate:1 1 udp 2130706431 {ip} {port} typ host\r\na=end-of-candidates\r\n\
         a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{}\r\na=setup:{}\r\na=mid:{mid}\r\n\
         a={}\r\na=rtcp-mux\r\n",
        kind.media(),
        ip_family(ip),
        local.ufrag,
        local.pwd,
        local.fingerprint,
        setup.as_str(),
        direction.as_str(),
    );
    match kind {
        Kind::Audio => {
            let _ = write!(
                sdp,
                "a=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} minptime=10;useinbandfec=1\r\n"
            );
        }
        Kind::Video => {
            let _ = write!(
                sdp,
                "a=rtcp-rsize\r\na=rtpmap:{pt} VP8/90000\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\n"
            );
        }
    }
    if let Some(ssrc) = send_ssrc {
        let _ = write!(
            sdp,
            "a=msid:load-{} {}-{ssrc}\r\na=ssrc:{ssrc} cname:load-{}\r\n",
            local.session_id,
            kind.media(),
            local.session_id
        );
    }
}

/// An offer (`a=setup:actpass`), one m-line per track, mids `0`, `1`, ...
pub fn write_offer(local: &LocalTransport, tracks: &[OfferedTrack]) -> String {
    let mids: Vec<String> = (0..tracks.len()).map(|i| i.to_string()).collect();
    let mut sdp = String::with_capacity(1024);
    write_header(&mut sdp, local, &mids);
    for (track, mid) in tracks.iter().zip(&mids) {
        let (pt, direction) = match (track.kind, track.send_ssrc) {
            (Kind::Audio, Some(_)) => (OPUS_PT, Direction::SendOnly),
            (Kind::Audio, None) => (OPUS_PT, Direction::RecvOnly),
            (Kind::Video, Some(_)) => (VP8_PT, Direction::SendOnly),
            (Kind::Video, None) => (VP8_PT, Direction::RecvOnly),
        };
        let section = Section {
            mid,
            kind: track.kind,
            pt,
            setup: Setup::ActPass,
            direction,
            send_ssrc: track.send_ssrc,
        };
        write_section(&mut sdp, local, &section);
    }
    sdp
}

/// Answers a server's offer (Janus offers what a subscriber receives): `recvonly` for every
/// m-line that sends Opus or VP8, `a=setup:active` (we are the DTLS client); anything else is
/// rejected with port 0.
pub fn write_answer(
    local: &LocalTransport,
    offer: &SessionDescription,
) -> Result<String, ClientSdpError> {
    let mut accepted = Vec::new();
    let mut body = String::with_capacity(1024);
    for (index, section) in offer.media.iter().enumerate() {
        let mid = section
            .mid()
            .map_or_else(|| index.to_string(), str::to_owned);
        let kind = match section.media.as_str() {
            "audio" => Some((Kind::Audio, "opus")),
            "video" => Some((Kind::Video, "vp8")),
            _ => None,
        };
        let pt = kind.and_then(|(_, codec)| {
            section.attributes.iter().find_map(|a| match a {
                Attribute::Rtpmap(map) if map.name.eq_ignore_ascii_case(codec) => Some(map.pt.0),
                _ => None,
            })
        });
        let sends = matches!(
            offer.direction(section),
            Direction::SendOnly | Direction::SendRecv
        );
        match (kind, pt) {
            (Some((kind, _)), Some(pt)) if sends && !section.is_rejected() => {
                let answered = Section {
                    mid: &mid,
                    kind,
                    pt,
                    setup: Setup::Active,
                    direction: Direction::RecvOnly,
                    send_ssrc: None,
                };
                write_section(&mut body, local, &answered);
                accepted.push(mid);
            }
            _ => {
                let _ = write!(
                    body,
                    "m={} 0 {} {}\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=inactive\r\n",
                    section.media,
                    section.protocol,
                    section.formats.join(" ")
                );
            }
        }
    }
    if accepted.is_empty() {
        return Err(error("the offer has no Opus or VP8 m-line that sends"));
    }
    let mut sdp = String::with_capacity(body.len() + 256);
    write_header(&mut sdp, local, &accepted);
    sdp.push_str(&body);
    Ok(sdp)
}

/// What the load generator needs from the server's description.
#[derive(Debug, Clone)]
pub struct RemoteTransport {
    /// The server's ICE username fragment.
    pub ufrag: String,
    /// The server's ICE password.
    pub pwd: String,
    /// The server's certificate fingerprint.
    pub fingerprint: rtc_core::dtls::Fingerprint,
    /// The server's `a=setup`.
    pub setup: Setup,
    /// UDP host candidates of component 1, highest priority first.
    pub candidates: Vec<SocketAddr>,
    /// Whether the server is ICE-lite (it only answers checks).
    pub ice_lite: bool,
}

/// Reads the transport of the first accepted m-line of `text` (everything is bundled).
pub fn parse_remote(text: &str) -> Result<(SessionDescription, RemoteTransport), ClientSdpError> {
    let description = SessionDescription::parse(text)
        .map_err(|e| error(format!("parsing the server's SDP: {e}")))?;
    let section = description
        .media
        .iter()
        .find(|m| !m.is_rejected())
        .ok_or_else(|| error("the server's SDP accepts no m-line"))?;
    let (ufrag, pwd) = description
        .ice_credentials(section)
        .ok_or_else(|| error("the server's SDP has no ICE credentials"))?;
    let fingerprint = description
        .fingerprints(section)
        .into_iter()
        .find(|f| f.hash == "sha-256")
        .ok_or_else(|| error("the server's SDP has no sha-256 fingerprint"))?;
    let fingerprint =
        rtc_core::dtls::Fingerprint::parse(&format!("{} {}", fingerprint.hash, fingerprint.value))
            .map_err(|e| error(format!("server fingerprint: {e}")))?;
    let setup = description.setup(section).unwrap_or(Setup::ActPass);
    let mut candidates: Vec<(u32, SocketAddr)> = description
        .media
        .iter()
        .flat_map(|m| m.attributes.iter())
        .chain(description.attributes.iter())
        .filter_map(|a| match a {
            Attribute::Candidate(value) => parse_candidate(value),
            _ => None,
        })
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    candidates.dedup_by_key(|c| c.1);
    let transport = RemoteTransport {
        ufrag: ufrag.to_owned(),
        pwd: pwd.to_owned(),
        fingerprint,
        setup,
        candidates: candidates.into_iter().map(|(_, a)| a).collect(),
        ice_lite: description.ice_lite(),
    };
    if transport.candidates.is_empty() {
        return Err(error("the server's SDP has no UDP candidate"));
    }
    Ok((description, transport))
}

/// `foundation component transport priority address port typ type ...` of a component-1 UDP
/// candidate, as (priority, address).
fn parse_candidate(value: &str) -> Option<(u32, SocketAddr)> {
    let value = value.strip_prefix("candidate:").unwrap_or(value);
    let fields: Vec<&str> = value.split_whitespace().collect();
    let (component, transport, priority, ip, port) = (
        fields.get(1)?,
        fields.get(2)?,
        fields.get(3)?,
        fields.get(4)?,
        fields.get(5)?,
    );
    if *component != "1" || !transport.eq_ignore_ascii_case("udp") {
        return None;
    }
    let address = SocketAddr::new(ip.parse().ok()?, port.parse().ok()?);
    Some((priority.parse().ok()?, address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalTransport {
        LocalTransport {
            ufrag: "abcd".into(),
            pwd: "0123456789abcdefghijklmn".into(),
            fingerprint: format!("sha-256 {}", ["AB"; 32].join(":")),
            address: "127.0.0.1:40000".parse().unwrap(),
            session_id: 7,
        }
    }

    #[test]
    fn offers_parse_back_and_answers_mirror_a_server_offer() {
        let offer = write_offer(
            &local(),
            &[
                OfferedTrack {
                    kind: Kind::Audio,
                    send_ssrc: Some(1),
                },
                OfferedTrack {
                    kind: Kind::Video,
                    send_ssrc: Some(2),
                },
            ],
        );
        let (description, remote) = parse_remote(&offer).unwrap();
        assert_eq!(remote.candidates, vec!["127.0.0.1:40000".parse().unwrap()]);
        assert_eq!(remote.setup, Setup::ActPass);
        assert_eq!(description.media.len(), 2);
        let answer = write_answer(&local(), &description).unwrap();
        assert!(answer.contains("a=setup:active"));
        assert!(answer.contains("a=recvonly"));
        assert!(answer.contains("a=group:BUNDLE 0 1"));
        let (_, back) = parse_remote(&answer).unwrap();
        assert_eq!(back.setup, Setup::Active);
    }

    #[test]
    fn server_answers_from_sluice_are_accepted() {
        let offer = write_offer(
            &local(),
            &[OfferedTrack {
                kind: Kind::Audio,
                send_ssrc: Some(5),
            }],
        );
        let params = rtc_core::sdp::LocalParams {
            ice_ufrag: "sluice".into(),
            ice_pwd: "0123456789abcdefghijkl".into(),
            fingerprint: format!("sha-256 {}", ["CD"; 32].join(":")),
            candidates: vec!["1 1 udp 2130706431 127.0.0.1 3478 typ host".into()],
            session_id: 1,
            session_version: 1,
        };
        let (answer, _) =
            rtc_core::sdp::answer_offer(&offer, &params, &rtc_core::sdp::Capabilities::default())
                .unwrap();
        let (_, remote) = parse_remote(&answer).unwrap();
        assert_eq!(remote.candidates, vec!["127.0.0.1:3478".parse().unwrap()]);
        assert_eq!(remote.setup, Setup::Passive);
        assert!(remote.ice_lite);
    }
}
