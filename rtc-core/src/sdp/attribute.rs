//! Typed SDP attributes (`a=` lines): the ones offer/answer negotiation needs are parsed into
//! structs once, everything else is kept verbatim as [`Attribute::Other`] so that nothing is
//! lost and unknown attributes are ignored rather than rejected. `Display` writes each back in
//! its wire form (without the leading `a=`).

use std::fmt;

use crate::{Pt, Ssrc};

/// Media direction (RFC 8866 section 6.7), always from the point of view of the side that
/// wrote the description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Sends and receives.
    #[default]
    SendRecv,
    /// Only sends.
    SendOnly,
    /// Only receives.
    RecvOnly,
    /// Neither sends nor receives.
    Inactive,
}

impl Direction {
    /// The direction an answerer uses to mirror this one.
    pub const fn reverse(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Whether media flows from the writer of the description.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether media flows towards the writer of the description.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The attribute name (`sendrecv`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// The DTLS role attribute `a=setup` (RFC 4145, RFC 5763).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    /// Will initiate the DTLS handshake (client).
    Active,
    /// Will accept the DTLS handshake (server).
    Passive,
    /// Either role, the answerer decides.
    ActPass,
    /// No connection for now.
    HoldConn,
}

impl Setup {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "active" => Setup::Active,
            "passive" => Setup::Passive,
            "actpass" => Setup::ActPass,
            "holdconn" => Setup::HoldConn,
            _ => return None,
        })
    }

    /// The attribute value (`active`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }
}

/// `a=fingerprint:<hash> <hex:pairs>` (RFC 8122). The hash name is stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash function name, lowercase (`sha-256`).
    pub hash: String,
    /// Colon-separated hex bytes as written.
    pub value: String,
}

/// `a=rtpmap:<pt> <name>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtpmap {
    /// Payload type.
    pub pt: Pt,
    /// Encoding name as written (`opus`, `VP8`, `rtx`).
    pub name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters: the channel count for audio.
    pub channels: Option<u16>,
}

/// `a=fmtp:<pt> <parameters>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// Payload type.
    pub pt: Pt,
    /// Format parameters as written (`minptime=10;useinbandfec=1`).
    pub params: String,
}

impl Fmtp {
    /// The value of `key` in a `key=value;key=value` parameter list.
    pub fn param(&self, key: &str) -> Option<&str> {
        fmtp_param(&self.params, key)
    }
}

/// The value of `key` in a `key=value;key=value` fmtp parameter list.
pub fn fmtp_param<'a>(params: &'a str, key: &str) -> Option<&'a str> {
    params.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
    })
}

/// `a=rtcp-fb:<pt|*> <type> [<parameter>]` (RFC 4585).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpFb {
    /// The payload type it applies to, `None` for `*` (all).
    pub pt: Option<Pt>,
    /// Feedback type (`nack`, `ccm`, `transport-cc`).
    pub kind: String,
    /// Optional parameter (`pli`, `fir`).
    pub param: Option<String>,
}

/// `a=extmap:<id>[/<direction>] <uri> [<attributes>]` (RFC 8285).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extmap {
    /// Extension id, 1..=255 (1..=14 with one-byte headers).
    pub id: u8,
    /// Optional direction restriction.
    pub direction: Option<Direction>,
    /// Extension URI.
    pub uri: String,
    /// Extension attributes, if any.
    pub attributes: Option<String>,
}

/// `a=ssrc:<ssrc> <attribute>[:<value>]` (RFC 5576).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcAttribute {
    /// The source.
    pub ssrc: Ssrc,
    /// Source attribute name (`cname`, `msid`).
    pub name: String,
    /// Its value.
    pub value: Option<String>,
}

/// `a=ssrc-group:<semantics> <ssrc>...` (RFC 5576), e.g. `FID` (RTX pairing) or `SIM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcGroup {
    /// `FID`, `SIM`, `FEC-FR`...
    pub semantics: String,
    /// Sources in order.
    pub ssrcs: Vec<Ssrc>,
}

/// `a=msid:<stream id> [<track id>]` (RFC 8830).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msid {
    /// Media stream id (`-` for none).
    pub stream: String,
    /// Track id.
    pub track: Option<String>,
}

impl fmt::Display for Msid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stream)?;
        if let Some(track) = &self.track {
            write!(f, " {track}")?;
        }
        Ok(())
    }
}

/// `a=rid:<id> send|recv [<restrictions>]` (RFC 8851).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rid {
    /// RTP stream id.
    pub id: String,
    /// `true` for `send`, `false` for `recv`.
    pub send: bool,
    /// Restrictions (`pt=..;max-width=..`) as written.
    pub restrictions: Option<String>,
}

/// One simulcast stream: its rid alternatives in preference order (RFC 8853).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulcastStream {
    /// Alternatives, usually one: `(rid, paused)`.
    pub alternatives: Vec<(String, bool)>,
}

/// `a=simulcast:[send <streams>] [recv <streams>]` (RFC 8853).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Simulcast {
    /// Streams the writer sends.
    pub send: Vec<SimulcastStream>,
    /// Streams the writer receives.
    pub recv: Vec<SimulcastStream>,
}

/// One `a=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// `a=group:<semantics> <mid>...` (RFC 5888, BUNDLE per RFC 9143).
    Group {
        /// `BUNDLE`, `LS`...
        semantics: String,
        /// Member mids.
        mids: Vec<String>,
    },
    /// `a=mid:<id>`.
    Mid(String),
    /// `a=sendrecv` / `sendonly` / `recvonly` / `inactive`.
    Direction(Direction),
    /// `a=rtcp-mux`.
    RtcpMux,
    /// `a=rtcp-rsize`.
    RtcpRsize,
    /// `a=ice-ufrag:<ufrag>`.
    IceUfrag(String),
    /// `a=ice-pwd:<pwd>`.
    IcePwd(String),
    /// `a=ice-lite`.
    IceLite,
    /// `a=ice-options:<option>...`.
    IceOptions(Vec<String>),
    /// `a=fingerprint`.
    Fingerprint(Fingerprint),
    /// `a=setup`.
    Setup(Setup),
    /// `a=rtpmap`.
    Rtpmap(Rtpmap),
    /// `a=fmtp`.
    Fmtp(Fmtp),
    /// `a=rtcp-fb`.
    RtcpFb(RtcpFb),
    /// `a=extmap`.
    Extmap(Extmap),
    /// `a=extmap-allow-mixed` (RFC 8285 section 6).
    ExtmapAllowMixed,
    /// `a=ssrc`.
    Ssrc(SsrcAttribute),
    /// `a=ssrc-group`.
    SsrcGroup(SsrcGroup),
    /// `a=msid`.
    Msid(Msid),
    /// `a=rid`.
    Rid(Rid),
    /// `a=simulcast`.
    Simulcast(Simulcast),
    /// `a=candidate:<value>`, kept as text (ICE parses it).
    Candidate(String),
    /// `a=end-of-candidates`.
    EndOfCandidates,
    /// Anything else, kept verbatim.
    Other {
        /// Attribute name.
        name: String,
        /// Value after the first `:`, if any.
        value: Option<String>,
    },
}

/// Why an attribute did not parse; the caller adds the line number.
pub(crate) type AttrError = &'static str;

impl Attribute {
    /// Parses the text after `a=`. Unknown names become [`Attribute::Other`].
    pub(crate) fn parse(text: &str) -> Result<Self, AttrError> {
        let (name, value) = match text.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (text, None),
        };
        if let Some(direction) = Direction::from_name(name).filter(|_| value.is_none()) {
            return Ok(Attribute::Direction(direction));
        }
        let flag = |attr: Attribute| if value.is_none() { Some(attr) } else { None };
        let parsed = match (name, value) {
            ("rtcp-mux", _) => flag(Attribute::RtcpMux),
            ("rtcp-rsize", _) => flag(Attribute::RtcpRsize),
            ("ice-lite", _) => flag(Attribute::IceLite),
            ("extmap-allow-mixed", _) => flag(Attribute::ExtmapAllowMixed),
            ("end-of-candidates", _) => flag(Attribute::EndOfCandidates),
            (_, None) => None,
            ("group", Some(v)) => Some(parse_group(v)?),
            ("mid", Some(v)) => Some(Attribute::Mid(token(v, "a=mid needs an id")?)),
            ("ice-ufrag", Some(v)) => Some(Attribute::IceUfrag(token(v, "empty a=ice-ufrag")?)),
            ("ice-pwd", Some(v)) => Some(Attribute::IcePwd(token(v, "empty a=ice-pwd")?)),
            ("ice-options", Some(v)) => Some(Attribute::IceOptions(words(v))),
            ("fingerprint", Some(v)) => Some(Attribute::Fingerprint(parse_fingerprint(v)?)),
            ("setup", Some(v)) => Some(Attribute::Setup(
                Setup::from_name(v.trim())
                    .ok_or("a=setup is not active/passive/actpass/holdconn")?,
            )),
            ("rtpmap", Some(v)) => Some(Attribute::Rtpmap(parse_rtpmap(v)?)),
            ("fmtp", Some(v)) => Some(Attribute::Fmtp(parse_fmtp(v)?)),
            ("rtcp-fb", Some(v)) => Some(Attribute::RtcpFb(parse_rtcp_fb(v)?)),
            ("extmap", Some(v)) => Some(Attribute::Extmap(parse_extmap(v)?)),
            ("ssrc", Some(v)) => Some(Attribute::Ssrc(parse_ssrc(v)?)),
            ("ssrc-group", Some(v)) => Some(Attribute::SsrcGroup(parse_ssrc_group(v)?)),
            ("msid", Some(v)) => Some(Attribute::Msid(parse_msid(v).ok_or("empty a=msid")?)),
            ("rid", Some(v)) => Some(Attribute::Rid(parse_rid(v)?)),
            ("simulcast", Some(v)) => Some(Attribute::Simulcast(parse_simulcast(v)?)),
            ("candidate", Some(v)) => Some(Attribute::Candidate(v.to_owned())),
            _ => None,
        };
        Ok(parsed.unwrap_or_else(|| Attribute::Other {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        }))
    }
}

fn token(value: &str, error: AttrError) -> Result<String, AttrError> {
    let value = value.trim();
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(error);
    }
    Ok(value.to_owned())
}

fn words(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_owned).collect()
}

fn parse_pt(text: &str) -> Result<Pt, AttrError> {
    match text.parse::<u8>() {
        Ok(pt) if pt < 128 => Ok(Pt(pt)),
        _ => Err("payload type is not a number in 0..=127"),
    }
}

fn parse_ssrc_number(text: &str) -> Result<Ssrc, AttrError> {
    text.parse::<u32>()
        .map(Ssrc)
        .map_err(|_| "ssrc is not a 32-bit number")
}

fn parse_group(value: &str) -> Result<Attribute, AttrError> {
    let mut parts = value.split_whitespace();
    let semantics = parts.next().ok_or("a=group needs a semantics")?.to_owned();
    Ok(Attribute::Group {
        semantics,
        mids: parts.map(str::to_owned).collect(),
    })
}

fn parse_fingerprint(value: &str) -> Result<Fingerprint, AttrError> {
    let (hash, hex) = value
        .trim()
        .split_once(' ')
        .ok_or("a=fingerprint needs `<hash> <hex>`")?;
    let hex = hex.trim();
    let well_formed = !hex.is_empty()
        && hex
            .split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
    if !well_formed {
        return Err("a=fingerprint value is not colon-separated hex bytes");
    }
    Ok(Fingerprint {
        hash: hash.to_ascii_lowercase(),
        value: hex.to_owned(),
    })
}

fn parse_rtpmap(value: &str) -> Result<Rtpmap, AttrError> {
    let (pt, encoding) = value
        .split_once(' ')
        .ok_or("a=rtpmap needs `<pt> <encoding>`")?;
    let mut parts = encoding.trim().split('/');
    let name = parts
        .next()
        .filter(|n| !n.is_empty())
        .ok_or("a=rtpmap has no encoding name")?;
    let clock_rate = parts
        .next()
        .and_then(|c| c.parse::<u32>().ok())
        .ok_or("a=rtpmap clock rate is not a number")?;
    let channels = match parts.next() {
        Some(c) => Some(
            c.parse::<u16>()
                .map_err(|_| "a=rtpmap channel count is not a number")?,
        ),
        None => None,
    };
    if parts.next().is_some() {
        return Err("a=rtpmap has too many `/` fields");
    }
    Ok(Rtpmap {
        pt: parse_pt(pt)?,
        name: name.to_owned(),
        clock_rate,
        channels,
    })
}

fn parse_fmtp(value: &str) -> Result<Fmtp, AttrError> {
    let (pt, params) = value
        .split_once(' ')
        .ok_or("a=fmtp needs `<pt> <parameters>`")?;
    Ok(Fmtp {
        pt: parse_pt(pt)?,
        params: params.trim().to_owned(),
    })
}

fn parse_rtcp_fb(value: &str) -> Result<RtcpFb, AttrError> {
    let mut parts = value.split_whitespace();
    let pt = match parts.next().ok_or("empty a=rtcp-fb")? {
        "*" => None,
        pt => Some(parse_pt(pt)?),
    };
    let kind = parts
        .next()
        .ok_or("a=rtcp-fb needs a feedback type")?
        .to_owned();
    let rest: Vec<&str> = parts.collect();
    let param = (!rest.is_empty()).then(|| rest.join(" "));
    Ok(RtcpFb { pt, kind, param })
}

fn parse_extmap(value: &str) -> Result<Extmap, AttrError> {
    let mut parts = value.split_whitespace();
    let id_part = parts.next().ok_or("empty a=extmap")?;
    let (id, direction) = match id_part.split_once('/') {
        Some((id, dir)) => (
            id,
            Some(Direction::from_name(dir).ok_or("a=extmap direction is not valid")?),
        ),
        None => (id_part, None),
    };
    let id = match id.parse::<u8>() {
        Ok(id) if id != 0 => id,
        _ => return Err("a=extmap id is not a number in 1..=255"),
    };
    let uri = parts.next().ok_or("a=extmap needs a URI")?.to_owned();
    let rest: Vec<&str> = parts.collect();
    let attributes = (!rest.is_empty()).then(|| rest.join(" "));
    Ok(Extmap {
        id,
        direction,
        uri,
        attributes,
    })
}

fn parse_ssrc(value: &str) -> Result<SsrcAttribute, AttrError> {
    let (ssrc, attr) = value
        .split_once(' ')
        .ok_or("a=ssrc needs `<ssrc> <attribute>`")?;
    let (name, value) = match attr.trim().split_once(':') {
        Some((n, v)) => (n, Some(v.to_owned())),
        None => (attr.trim(), None),
    };
    Ok(SsrcAttribute {
        ssrc: parse_ssrc_number(ssrc)?,
        name: name.to_owned(),
        value,
    })
}

fn parse_ssrc_group(value: &str) -> Result<SsrcGroup, AttrError> {
    let mut parts = value.split_whitespace();
    let semantics = parts
        .next()
        .ok_or("a=ssrc-group needs a semantics")?
        .to_owned();
    let ssrcs = parts
        .map(parse_ssrc_number)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SsrcGroup { semantics, ssrcs })
}

/// Parses an msid value (`<stream> [<track>]`), as in `a=msid` and `a=ssrc:<n> msid:`.
pub(crate) fn parse_msid(value: &str) -> Option<Msid> {
    let mut parts = value.split_whitespace();
    let stream = parts.next()?.to_owned();
    Some(Msid {
        stream,
        track: parts.next().map(str::to_owned),
    })
}

/// RFC 8851 `rid-id = 1*(alpha-numeric / "-" / "_")`.
fn is_rid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn parse_rid(value: &str) -> Result<Rid, AttrError> {
    let mut parts = value.split_whitespace();
    let id = parts.next().ok_or("empty a=rid")?.to_owned();
    if !is_rid_id(&id) {
        return Err("a=rid id is not alphanumeric, `-`, `_`");
    }
    let send = match parts.next() {
        Some("send") => true,
        Some("recv") => false,
        _ => return Err("a=rid direction is not send or recv"),
    };
    let rest: Vec<&str> = parts.collect();
    let restrictions = (!rest.is_empty()).then(|| rest.join(" "));
    Ok(Rid {
        id,
        send,
        restrictions,
    })
}

fn parse_simulcast(value: &str) -> Result<Simulcast, AttrError> {
    let mut simulcast = Simulcast::default();
    let mut parts = value.split_whitespace();
    while let Some(direction) = parts.next() {
        let list = parts
            .next()
            .ok_or("a=simulcast direction without a stream list")?;
        let streams = list
            .split(';')
            .map(|stream| {
                let alternatives = stream
                    .split(',')
                    .map(|rid| match rid.strip_prefix('~') {
                        Some(rid) => (rid.to_owned(), true),
                        None => (rid.to_owned(), false),
                    })
                    .collect::<Vec<_>>();
                if !alternatives.iter().all(|(rid, _)| is_rid_id(rid)) {
                    return Err("a=simulcast rid is empty or not alphanumeric, `-`, `_`");
                }
                Ok(SimulcastStream { alternatives })
            })
            .collect::<Result<Vec<_>, _>>()?;
        match direction {
            "send" => simulcast.send = streams,
            "recv" => simulcast.recv = streams,
            _ => return Err("a=simulcast direction is not send or recv"),
        }
    }
    Ok(simulcast)
}

fn write_streams(f: &mut fmt::Formatter<'_>, streams: &[SimulcastStream]) -> fmt::Result {
    for (i, stream) in streams.iter().enumerate() {
        if i > 0 {
            f.write_str(";")?;
        }
        for (j, (rid, paused)) in stream.alternatives.iter().enumerate() {
            let sep = if j > 0 { "," } else { "" };
            let pause = if *paused { "~" } else { "" };
            write!(f, "{sep}{pause}{rid}")?;
        }
    }
    Ok(())
}

fn write_optional(f: &mut fmt::Formatter<'_>, value: Option<&String>) -> fmt::Result {
    match value {
        Some(v) => write!(f, " {v}"),
        None => Ok(()),
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Group { semantics, mids } => {
                write!(f, "group:{semantics}")?;
                mids.iter().try_for_each(|mid| write!(f, " {mid}"))
            }
            Attribute::Mid(mid) => write!(f, "mid:{mid}"),
            Attribute::Direction(d) => f.write_str(d.as_str()),
            Attribute::RtcpMux => f.write_str("rtcp-mux"),
            Attribute::RtcpRsize => f.write_str("rtcp-rsize"),
            Attribute::IceUfrag(u) => write!(f, "ice-ufrag:{u}"),
            Attribute::IcePwd(p) => write!(f, "ice-pwd:{p}"),
            Attribute::IceLite => f.write_str("ice-lite"),
            Attribute::IceOptions(o) => write!(f, "ice-options:{}", o.join(" ")),
            Attribute::Fingerprint(fp) => write!(f, "fingerprint:{} {}", fp.hash, fp.value),
            Attribute::Setup(s) => write!(f, "setup:{}", s.as_str()),
            Attribute::Rtpmap(r) => {
                write!(f, "rtpmap:{} {}/{}", r.pt, r.name, r.clock_rate)?;
                match r.channels {
                    Some(c) => write!(f, "/{c}"),
                    None => Ok(()),
                }
            }
            Attribute::Fmtp(p) => write!(f, "fmtp:{} {}", p.pt, p.params),
            Attribute::RtcpFb(fb) => {
                match fb.pt {
                    Some(pt) => write!(f, "rtcp-fb:{pt} {}", fb.kind)?,
                    None => write!(f, "rtcp-fb:* {}", fb.kind)?,
                }
                write_optional(f, fb.param.as_ref())
            }
            Attribute::Extmap(e) => {
                write!(f, "extmap:{}", e.id)?;
                if let Some(d) = e.direction {
                    write!(f, "/{}", d.as_str())?;
                }
                write!(f, " {}", e.uri)?;
                write_optional(f, e.attributes.as_ref())
            }
            Attribute::ExtmapAllowMixed => f.write_str("extmap-allow-mixed"),
            Attribute::Ssrc(s) => {
                write!(f, "ssrc:{} {}", s.ssrc, s.name)?;
                match &s.value {
                    Some(v) => write!(f, ":{v}"),
                    None => Ok(()),
                }
            }
            Attribute::SsrcGroup(g) => {
                write!(f, "ssrc-group:{}", g.semantics)?;
                g.ssrcs.iter().try_for_each(|s| write!(f, " {s}"))
            }
            Attribute::Msid(m) => write!(f, "msid:{m}"),
            Attribute::Rid(r) => {
                write!(f, "rid:{} {}", r.id, if r.send { "send" } else { "recv" })?;
                write_optional(f, r.restrictions.as_ref())
            }
            Attribute::Simulcast(s) => {
                f.write_str("simulcast:")?;
                if !s.send.is_empty() {
                    f.write_str("send ")?;
                    write_streams(f, &s.send)?;
                    if !s.recv.is_empty() {
                        f.write_str(" ")?;
                    }
                }
                if !s.recv.is_empty() {
                    f.write_str("recv ")?;
                    write_streams(f, &s.recv)?;
                }
                Ok(())
            }
            Attribute::Candidate(c) => write!(f, "candidate:{c}"),
            Attribute::EndOfCandidates => f.write_str("end-of-candidates"),
            Attribute::Other {
                name,
                value: Some(v),
            } => write!(f, "{name}:{v}"),
            Attribute::Other { name, value: None } => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> Attribute {
        let attr = Attribute::parse(text).unwrap();
        assert_eq!(attr.to_string(), text);
        attr
    }

    #[test]
    fn typed_attributes_round_trip() {
        assert_eq!(
            round_trip("rtpmap:111 opus/48000/2"),
            Attribute::Rtpmap(Rtpmap {
                pt: Pt(111),
                name: "opus".into(),
                clock_rate: 48000,
                channels: Some(2)
            })
        );
        let Attribute::Extmap(e) =
            round_trip("extmap:9/sendonly urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id")
        else {
            panic!()
        };
        assert_eq!((e.id, e.direction), (9, Some(Direction::SendOnly)));
        let Attribute::Simulcast(s) = round_trip("simulcast:send q;h,~f recv x") else {
            panic!()
        };
        assert_eq!(s.send.len(), 2);
        assert_eq!(
            s.send[1].alternatives,
            vec![("h".into(), false), ("f".into(), true)]
        );
        assert_eq!(s.recv[0].alternatives, vec![("x".into(), false)]);
        round_trip("rtcp-fb:96 nack pli");
        round_trip("rtcp-fb:* transport-cc");
        round_trip("ssrc:1471417989 msid:- cf77ffc3");
        round_trip("ssrc-group:FID 1 2");
        round_trip("rid:q send pt=96;max-width=320");
        round_trip("group:BUNDLE 0 1");
        round_trip("fmtp:97 apt=96");
        round_trip("setup:actpass");
        round_trip("x-unknown:whatever value");
        round_trip("sendonly");
    }

    #[test]
    fn fingerprint_hash_is_lowercased() {
        let Attribute::Fingerprint(fp) = Attribute::parse("fingerprint:SHA-256 AB:cd").unwrap()
        else {
            panic!()
        };
        assert_eq!(fp.hash, "sha-256");
    }

    #[test]
    fn malformed_known_attributes_are_errors() {
        for bad in [
            "rtpmap:200 opus/48000",
            "rtpmap:111 opus",
            "rtpmap:111 opus/x",
            "fmtp:abc x",
            "extmap:0 urn:x",
            "extmap:1/sideways urn:x",
            "extmap:1",
            "ssrc:-1 cname:x",
            "ssrc-group:FID 1 x",
            "rid:q both",
            "simulcast:send",
            "simulcast:up q",
            "simulcast:send q;;h",
            "simulcast:send ~~q",
            "rid:~q send",
            "setup:maybe",
            "fingerprint:sha-256 XYZ",
            "fingerprint:sha-256",
            "mid:",
        ] {
            assert!(Attribute::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn fmtp_param_lookup() {
        let f = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
        assert_eq!(fmtp_param(f, "profile-level-id"), Some("42e01f"));
        assert_eq!(fmtp_param(f, "PACKETIZATION-MODE"), Some("1"));
        assert_eq!(fmtp_param("0-15", "apt"), None);
    }
}
