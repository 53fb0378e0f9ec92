//! What WHIP (RFC 9725) and WHEP add to a plain offer/answer: the ICE session behind each
//! resource (its entity-tag, the peer's credentials, its mids), `PATCH` with trickled
//! candidates or an ICE restart, `If-Match`, `Link` headers for the configured ICE servers,
//! and the headers that tell a client which methods and bodies a URL takes.

use std::fmt;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use rtc_core::SessionId;

use crate::http::{Body, error, has_content_type, no_content, respond};
use crate::hub::Hub;
use crate::media::{LocalIceCredentials, MediaError, MediaPlane};
use crate::sdpfrag;

/// The media type of `PATCH` bodies and of the answer to an ICE restart.
pub const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// A STUN or TURN server that WHIP and WHEP clients are told about in `Link` headers
/// (RFC 9725 4.6), from `--ice-server`.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// A `stun:`, `stuns:`, `turn:` or `turns:` URI (RFC 7064, RFC 7065).
    pub url: String,
    pub username: Option<String>,
    pub credential: Option<String>,
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credential is a secret: logs get whether there is one.
        f.debug_struct("IceServer")
            .field("url", &self.url)
            .field("username", &self.username)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A value that can go inside a quoted-string of a `Link` parameter as it is.
fn is_quotable(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl IceServer {
    /// Parses `URL[;username=NAME;credential=SECRET]`, e.g. `stun:stun.example.org:3478` or
    /// `turn:turn.example.org:3478?transport=udp;username=sluice;credential=s3cret`.
    pub fn parse(text: &str) -> Result<IceServer, String> {
        let mut parts = text.split(';');
        let url = parts.next().unwrap_or_default().trim();
        let scheme_ok = ["stun:", "stuns:", "turn:", "turns:"].iter().any(|scheme| {
            url.get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        });
        let host = url.split_once(':').map_or("", |(_, rest)| rest);
        if !scheme_ok || host.is_empty() {
            return Err(format!(
                "{url:?} is not a stun:, stuns:, turn: or turns: URL with a host"
            ));
        }
        if !url
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>\"\\".contains(&b))
        {
            return Err(format!(
                "{url:?} has a character a Link header cannot carry"
            ));
        }
        let mut server = IceServer {
            url: url.to_owned(),
            username: None,
            credential: None,
        };
        for part in parts {
            let (key, value) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not username=... or credential=..."))?;
            if !is_quotable(value) {
                return Err(format!(
                    "the {key} of {url:?} must be printable ASCII without quotes or backslashes"
                ));
            }
            let slot = match key {
                "username" => &mut server.username,
                "credential" => &mut server.credential,
                _ => return Err(format!("unknown ICE server parameter {key:?}")),
            };
            *slot = Some(value.to_owned());
        }
        if server.username.is_some() != server.credential.is_some() {
            return Err(format!("{url:?}: username and credential go together"));
        }
        Ok(server)
    }

    /// The `Link` header value: `<URL>; rel="ice-server"` and, with credentials,
    /// `username`, `credential` and `credential-type="password"`.
    pub fn link(&self) -> String {
        let mut link = format!("<{}>; rel=\"ice-server\"", self.url);
        if let (Some(username), Some(credential)) = (&self.username, &self.credential) {
            link.push_str(&format!(
                "; username=\"{username}\"; credential=\"{credential}\"; credential-type=\"password\""
            ));
        }
        link
    }
}

impl std::str::FromStr for IceServer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        IceServer::parse(text)
    }
}

/// Adds a `Link` header for each configured ICE server.
pub(crate) fn add_links(headers: &mut HeaderMap, servers: &[IceServer]) {
    for server in servers {
        if let Ok(value) = HeaderValue::from_str(&server.link()) {
            headers.append(header::LINK, value);
        }
    }
}

/// The ICE session behind a WHIP or WHEP resource, as signaling knows it.
#[derive(Debug, Clone)]
pub(crate) struct IceSession {
    pub(crate) session: SessionId,
    /// The entity-tag of the current ICE session (without quotes); new with every restart.
    pub(crate) etag: String,
    /// The peer's current credentials, from its offer or its last restart.
    pub(crate) remote_ufrag: Option<String>,
    pub(crate) remote_pwd: Option<String>,
    /// The mids of the peer's offer, which its fragments may name.
    pub(crate) mids: Vec<String>,
    /// The first m-line of the offer (after `m=`): the bundle's transport, which the answer
    /// to a restart puts its candidates under.
    pub(crate) first_media: Option<String>,
}

fn new_etag() -> String {
    crate::random_hex::<8>()
}

impl IceSession {
    /// What the offer says about the ICE session; the first `a=ice-ufrag`/`a=ice-pwd` wins
    /// (Sluice bundles everything on one transport).
    pub(crate) fn from_offer(session: SessionId, offer: &str) -> Self {
        let mut ice = IceSession {
            session,
            etag: new_etag(),
            remote_ufrag: None,
            remote_pwd: None,
            mids: Vec::new(),
            first_media: None,
        };
        for line in offer.lines().map(str::trim_end) {
            if let Some(ufrag) = line.strip_prefix("a=ice-ufrag:") {
                ice.remote_ufrag.get_or_insert_with(|| ufrag.to_owned());
            } else if let Some(pwd) = line.strip_prefix("a=ice-pwd:") {
                ice.remote_pwd.get_or_insert_with(|| pwd.to_owned());
            } else if let Some(mid) = line.strip_prefix("a=mid:") {
                ice.mids.push(mid.to_owned());
            } else if let Some(media) = line.strip_prefix("m=") {
                ice.first_media.get_or_insert_with(|| media.to_owned());
            }
        }
        ice
    }

    /// The quoted `ETag` value.
    pub(crate) fn etag_header(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!("\"{}\"", self.etag)).ok()
    }
}

/// Whether an `If-Match` field value matches entity-tag `etag` (RFC 9110 13.1.1: `*`, or one
/// of a list of entity-tags by strong comparison, so a weak tag never matches).
fn if_match(value: &str, etag: &str) -> bool {
    value.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .is_some_and(|t| t == etag)
    })
}

/// The answer fragment to an ICE restart (RFC 9725 4.4): Sluice's new credentials, its
/// candidates in the bundle's m-section, and the end of them (it gathers nothing later).
fn restart_answer(ice: &IceSession, local: &LocalIceCredentials) -> String {
    let mut text = format!(
        "a=ice-lite\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\n",
        local.ufrag, local.pwd
    );
    if !ice.mids.is_empty() {
        text.push_str(&format!("a=group:BUNDLE {}\r\n", ice.mids.join(" ")));
    }
    if let (Some(media), Some(mid)) = (&ice.first_media, ice.mids.first()) {
        text.push_str(&format!("m={media}\r\na=mid:{mid}\r\n"));
    }
    for candidate in &local.candidates {
        text.push_str(&format!("a=candidate:{candidate}\r\n"));
    }
    text.push_str("a=end-of-candidates\r\n");
    text
}

/// `PATCH` on a WHIP or WHEP resource whose token is `token`: candidates only are `204` (Sluice
/// is ICE-lite and learns the peer's addresses from its checks); new credentials restart
/// ICE and are answered `200` with Sluice's new ones and a new `ETag`.
pub(crate) async fn patch<M: MediaPlane>(
    hub: &Hub<M>,
    request: Request<Incoming>,
    token: &str,
) -> Response<Body> {
    let Some(ice) = hub.ice_session(token) else {
        return error(StatusCode::NOT_FOUND, "unknown resource");
    };
    if !has_content_type(&request, SDPFRAG) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected {SDPFRAG}"),
        );
    }
    // Preconditions come before the body is looked at (RFC 9110 13.2.2).
    if let Some(value) = request.headers().get(header::IF_MATCH) {
        let matches = value.to_str().is_ok_and(|v| if_match(v, &ice.etag));
        if !matches {
            return error(
                StatusCode::PRECONDITION_FAILED,
                "If-Match does not match the current ICE session's ETag",
            );
        }
    }
    let limit = hub.config.max_sdp_bytes;
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the fragment is larger than {limit} bytes or was cut off"),
            );
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "the fragment is not UTF-8");
    };
    let fragment = match sdpfrag::parse(text) {
        Ok(fragment) => fragment,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Some(mid) = fragment.mids.iter().find(|mid| !ice.mids.contains(mid)) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("a=mid:{mid} is not a media section of this session"),
        );
    }
    let restart = match (&fragment.ufrag, &ice.remote_ufrag) {
        (Some(new), Some(current)) => new != current,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !restart {
        if fragment.pwd.is_some() && fragment.pwd != ice.remote_pwd {
            return error(
                StatusCode::BAD_REQUEST,
                "a=ice-pwd differs from the ICE session's but a=ice-ufrag does not",
            );
        }
        return no_content(StatusCode::NO_CONTENT);
    }
    let (Some(ufrag), Some(pwd)) = (&fragment.ufrag, &fragment.pwd) else {
        return error(
            StatusCode::BAD_REQUEST,
            "an ICE restart needs both a=ice-ufrag and a=ice-pwd",
        );
    };
    if ice.remote_pwd.as_ref() == Some(pwd) {
        return error(
            StatusCode::BAD_REQUEST,
            "an ICE restart needs a new a=ice-pwd as well as a new a=ice-ufrag",
        );
    }
    let local = match hub.media.restart_ice(ice.session, ufrag, pwd).await {
        Ok(local) => local,
        Err(MediaError::UnknownSession) => {
            return error(StatusCode::NOT_FOUND, "unknown resource");
        }
        Err(MediaError::Stopped) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                MediaError::Stopped.to_string(),
            );
        }
        // The session keeps its current ICE session (RFC 9725 4.4.1).
        Err(e @ (MediaError::Sdp(_) | MediaError::BadSdp(_))) => {
            return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
        }
    };
    let restarted = IceSession {
        etag: new_etag(),
        remote_ufrag: Some(ufrag.clone()),
        remote_pwd: Some(pwd.clone()),
        ..ice
    };
    let body = restart_answer(&restarted, &local);
    let etag = restarted.etag_header();
    if !hub.replace_ice_session(token, restarted) {
        // Deleted while the media plane restarted it.
        return error(StatusCode::NOT_FOUND, "unknown resource");
    }
    tracing::info!(session = ice.session.0, "ice restart");
    let mut response = respond(StatusCode::OK, SDPFRAG, body);
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_parse_and_become_link_headers() {
        let stun = IceServer::parse("stun:stun.example.org:3478").unwrap();
        assert_eq!(
            stun.link(),
            "<stun:stun.example.org:3478>; rel=\"ice-server\""
        );
        let turn = IceServer::parse(
            "turn:turn.example.org:3478?transport=udp;username=sluice;credential=s3cret",
        )
        .unwrap();
        assert_eq!(
            turn.link(),
            "<turn:turn.example.org:3478?transport=udp>; rel=\"ice-server\"; \
             username=\"sluice\"; credential=\"s3cret\"; credential-type=\"password\""
        );
        assert!(!format!("{turn:?}").contains("s3cret"));
        for bad in [
            "http://example.org",
            "stun:",
            "stun:host>",
            "turn:host;username=u",
            "turn:host;username=u;credential=a\"b",
            "turn:host;password=x",
            "turn:host;username",
        ] {
            assert!(IceServer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn if_match_compares_strongly() {
        assert!(if_match("*", "abc"));
        assert!(if_match("\"abc\"", "abc"));
        assert!(if_match("\"x\", \"abc\"", "abc"));
        assert!(!if_match("\"abd\"", "abc"));
        assert!(!if_match("W/\"abc\"", "abc"));
        assert!(!if_match("abc", "abc"));
    }

    #[test]
    fn the_offer_names_the_ice_session() {
        let offer = "v=0\r\na=ice-ufrag:peer\r\na=ice-pwd:peerpasswordpeerpasswd\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
            a=mid:1\r\na=ice-ufrag:other\r\n";
        let ice = IceSession::from_offer(SessionId(7), offer);
        assert_eq!(ice.remote_ufrag.as_deref(), Some("peer"));
        assert_eq!(ice.mids, ["0", "1"]);
        assert_eq!(ice.etag.len(), 16);
        let answer = restart_answer(
            &ice,
            &LocalIceCredentials {
                ufrag: "Anewufrg".into(),
                pwd: "p".repeat(24),
                candidates: vec!["1 1 udp 2130706431 192.0.2.1 3478 typ host".into()],
            },
        );
        let parsed = sdpfrag::parse(&answer).unwrap();
        assert_eq!(parsed.ufrag.as_deref(), Some("Anewufrg"));
        assert_eq!(parsed.mids, ["0"]);
        assert_eq!(parsed.candidates, 1);
        assert!(parsed.end_of_candidates);
        assert!(answer.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"));
    }
}
