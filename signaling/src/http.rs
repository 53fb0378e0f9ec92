//! The HTTP surface: health, metrics, the embedded web app, the WebSocket upgrade for the
//! room protocol, WHIP (RFC 9725) and WHEP, and the admin API (in `admin`). Every error is a
//! 4xx with `{"error": "..."}`. When API keys are configured, WHIP, WHEP, the admin API and
//! `/metrics` need an access token as `Authorization: Bearer` (the room protocol takes it as
//! `?access_token=` or in its `join`).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::admin;
use crate::assets;
use crate::auth::{self, Action, AuthError};
use crate::hub::{Hub, Resource};
use crate::media::{MediaError, MediaPlane};
use crate::metrics::Route;
use crate::room::{Participant, ParticipantId, room_tracks};
use crate::validate;
use crate::whip;
use crate::ws;

pub type Body = Full<Bytes>;

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Why a request was refused, kept with the response so that it is logged once, where the
/// request is counted.
#[derive(Debug, Clone)]
struct Refusal(String);

pub(crate) fn error(status: StatusCode, message: impl AsRef<str>) -> Response<Body> {
    let mut response = respond(
        status,
        "application/json",
        json!({"error": message.as_ref()}).to_string(),
    );
    response
        .extensions_mut()
        .insert(Refusal(message.as_ref().to_owned()));
    response
}

/// The answer to a refused token: 401 (with `WWW-Authenticate: Bearer`, RFC 6750) when it is
/// missing or invalid, 403 when it does not grant the request.
pub(crate) fn auth_error(refused: AuthError) -> Response<Body> {
    let status = if refused.is_forbidden() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNAUTHORIZED
    };
    let mut response = respond(
        status,
        "application/json",
        json!({"error": refused.message(), "code": refused.code()}).to_string(),
    );
    if !refused.is_forbidden() {
        let challenge = match refused {
            AuthError::Missing => "Bearer",
            _ => "Bearer error=\"invalid_token\"",
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

/// The bearer token of the request's `Authorization` header, if it has one.
pub(crate) fn bearer_token<B>(request: &Request<B>) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer)
}

fn media_error(error: &MediaError) -> Response<Body> {
    match error {
        MediaError::Sdp(_) | MediaError::BadSdp(_) => {
            self::error(StatusCode::BAD_REQUEST, error.to_string())
        }
        MediaError::UnknownSession => self::error(StatusCode::NOT_FOUND, error.to_string()),
        MediaError::Stopped => self::error(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
    }
}

/// Decodes one percent-encoded path segment; None if it is not valid UTF-8 or escapes.
pub(crate) fn percent_decode(segment: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(segment.len());
    let mut rest = segment.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let (hex, after) = tail.split_at_checked(2)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = after;
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// Encodes a room name as one path segment (everything but RFC 3986 unreserved characters).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of `key` in a query string, percent-decoded (`+` is a space).
fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(&v.replace('+', " ")))?
    })
}

/// Counts an answered request by route and status, and logs it when it was refused.
fn account<M: MediaPlane>(hub: &Hub<M>, route: Route, method: &Method, response: &Response<Body>) {
    let status = response.status();
    hub.metrics.count_request(route, status.as_u16());
    if status.is_client_error() || status.is_server_error() {
        let reason = response
            .extensions()
            .get::<Refusal>()
            .map_or("", |refusal| refusal.0.as_str());
        let (route, status) = (route.as_str(), status.as_u16());
        if response.status().is_server_error() {
            tracing::warn!(route, %method, status, reason, "request failed");
        } else {
            tracing::info!(route, %method, status, reason, "request refused");
        }
    }
}

/// `GET /metrics`: everything rendered in one place (crate::metrics).
async fn metrics<M: MediaPlane>(hub: Arc<Hub<M>>) -> Response<Body> {
    // The media plane may wait briefly for its workers' counters: off the runtime.
    let text = tokio::task::spawn_blocking(move || {
        let mut media = hub.media.metrics();
        media.extend(hub.connections.metrics());
        media.extend(hub.refused.metrics());
        media.extend(hub.closed.metrics());
        media.extend(hub.resumes.metrics());
        hub.metrics.render(media, hub.gauges())
    })
    .await
    .unwrap_or_default();
    respond(StatusCode::OK, crate::metrics::CONTENT_TYPE, text)
}

/// Dispatches one request on the separate metrics address: `GET /metrics` and `/healthz`.
pub async fn handle_metrics_only<M: MediaPlane>(
    hub: Arc<Hub<M>>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let route = Route::of(request.uri().path());
    let method = request.method().clone();
    let response = match (&method, route) {
        (&Method::GET, Route::Metrics) if request.uri().path() == "/metrics" => {
            match hub.authorize(bearer_token(&request), Action::Metrics) {
                Err(refused) => auth_error(refused),
                Ok(_) => metrics(Arc::clone(&hub)).await,
            }
        }
        (&Method::GET | &Method::HEAD, Route::Healthz) if request.uri().path() == "/healthz" => {
            respond(StatusCode::OK, "text/plain", "ok")
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    };
    account(&hub, route, &method, &response);
    Ok(response)
}

/// Dispatches one request.
pub async fn handle<M: MediaPlane>(
    hub: Arc<Hub<M>>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let route = Route::of(&path);
    let method = request.method().clone();
    let response = route_request(Arc::clone(&hub), request, &path, &method).await;
    account(&hub, route, &method, &response);
    Ok(response)
}

async fn route_request<M: MediaPlane>(
    hub: Arc<Hub<M>>,
    request: Request<Incoming>,
    path: &str,
    method: &Method,
) -> Response<Body> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let metrics_here = !hub.metrics_elsewhere;
    match (method, segments.as_slice()) {
        (&Method::GET | &Method::HEAD, ["healthz"]) => respond(StatusCode::OK, "text/plain", "ok"),
        (&Method::GET, ["metrics"]) if metrics_here => {
            match hub.authorize(bearer_token(&request), Action::Metrics) {
                Err(refused) => auth_error(refused),
                Ok(_) => metrics(Arc::clone(&hub)).await,
            }
        }
        (&Method::GET, ["ws"]) => upgrade(hub, request),
        (&Method::GET | &Method::HEAD, ["" | "app" | "lib", ..]) => match assets::find(path) {
            Some((body, content_type)) => {
                let mut response = respond(StatusCode::OK, content_type, body);
                let headers = response.headers_mut();
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                headers.insert(
                    "x-content-type-options",
                    HeaderValue::from_static("nosniff"),
                );
                response
            }
            None => error(StatusCode::NOT_FOUND, "no such file"),
        },
        (_, ["api", rest @ ..]) => admin::handle(hub, request, rest).await,
        (_, ["whip" | "whep", ..]) => {
            let mut response = whip_whep(hub, request, method, &segments).await;
            add_cors(&mut response);
            response
        }
        (_, ["metrics"]) if !metrics_here => error(
            StatusCode::NOT_FOUND,
            "metrics are served on their own address",
        ),
        (_, ["healthz"]) => method_not_allowed("GET, HEAD"),
        (_, ["ws" | "metrics"]) => method_not_allowed("GET"),
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

fn add_cors(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link, Accept-Patch, X-Sluice-Participant"),
    );
}

async fn whip_whep<M: MediaPlane>(
    hub: Arc<Hub<M>>,
    request: Request<Incoming>,
    method: &Method,
    segments: &[&str],
) -> Response<Body> {
    let Some(room) = segments.get(1).and_then(|s| percent_decode(s)) else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let is_whip = segments.first() == Some(&"whip");
    // An endpoint (`/whip/{room}`, `/whep/{room}[/{id}]`) takes POST; a resource (its
    // Location) takes PATCH and DELETE.
    let endpoint = match (is_whip, segments.len()) {
        (true, 2) | (false, 2 | 3) => true,
        (true, 3) | (false, 4) => false,
        _ => return error(StatusCode::NOT_FOUND, "not found"),
    };
    let token = segments.last().copied().unwrap_or_default();
    match (method, endpoint) {
        (&Method::OPTIONS, true) => {
            let mut response = preflight();
            let headers = response.headers_mut();
            headers.insert("accept-post", HeaderValue::from_static("application/sdp"));
            whip::add_links(headers, &hub.config.ice_servers);
            response
        }
        (&Method::OPTIONS, false) => {
            let mut response = preflight();
            response
                .headers_mut()
                .insert("accept-patch", HeaderValue::from_static(whip::SDPFRAG));
            response
        }
        (&Method::POST, true) => {
            let mut response = if is_whip {
                whip_post(Arc::clone(&hub), request, room).await
            } else {
                whep_post(Arc::clone(&hub), request, room, segments.get(2).copied()).await
            };
            if response.status() == StatusCode::CREATED {
                let headers = response.headers_mut();
                headers.insert("accept-patch", HeaderValue::from_static(whip::SDPFRAG));
                whip::add_links(headers, &hub.config.ice_servers);
            }
            response
        }
        (&Method::DELETE, false) => match owned_resource(&hub, token, &room, is_whip) {
            true if hub.remove_resource(token).await => no_content(StatusCode::OK),
            _ => error(StatusCode::NOT_FOUND, "unknown resource"),
        },
        (&Method::PATCH, false) => {
            if !owned_resource(&hub, token, &room, is_whip) {
                return error(StatusCode::NOT_FOUND, "unknown resource");
            }
            whip::patch(&hub, request, token).await
        }
        (_, true) => method_not_allowed("POST, OPTIONS"),
        (_, false) => method_not_allowed("PATCH, DELETE, OPTIONS"),
    }
}

/// A response without a body (`Content-Length: 0`, which hyper leaves out of a 204 as RFC
/// 9110 8.6 says).
pub(crate) fn no_content(status: StatusCode) -> Response<Body> {
    let mut response = respond(status, "text/plain", Bytes::new());
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    if status != StatusCode::NO_CONTENT {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    response
}

/// `405` with the methods the URL takes (RFC 9110 15.5.6).
fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Whether `token` is a resource of this kind in this room.
fn owned_resource<M: MediaPlane>(hub: &Hub<M>, token: &str, room: &str, whip: bool) -> bool {
    match hub.resource(token) {
        Some(Resource::Whip { room: r, .. }) => whip && r == room,
        Some(Resource::Whep { room: r, .. }) => !whip && r == room,
        None => false,
    }
}

fn preflight() -> Response<Body> {
    let mut response = no_content(StatusCode::NO_CONTENT);
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, PATCH, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, If-Match, Authorization"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

pub(crate) fn has_content_type<B>(request: &Request<B>, expected: &str) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// The request's SDP body, checked for content type, size and shape.
async fn read_sdp<M: MediaPlane>(
    hub: &Hub<M>,
    request: Request<Incoming>,
) -> Result<String, Response<Body>> {
    if !has_content_type(&request, "application/sdp") {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/sdp",
        ));
    }
    let limit = hub.config.max_sdp_bytes;
    let body = Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                format!("SDP is larger than {limit} bytes or was cut off"),
            )
        })?
        .to_bytes();
    let sdp = String::from_utf8(body.to_vec())
        .map_err(|_| error(StatusCode::BAD_REQUEST, "SDP is not UTF-8"))?;
    validate::sdp(&sdp, limit, hub.config.max_tracks)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e.message))?;
    Ok(sdp)
}

fn created(location: String, ice: &whip::IceSession, sdp: String) -> Response<Body> {
    let mut response = respond(StatusCode::CREATED, "application/sdp", sdp);
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    if let Some(etag) = ice.etag_header() {
        headers.insert(header::ETAG, etag);
    }
    response
}

async fn whip_post<M: MediaPlane>(
    hub: Arc<Hub<M>>,
    request: Request<Incoming>,
    room: String,
) -> Response<Body> {
    if let Err(e) = validate::room_name(&room) {
        return error(StatusCode::BAD_REQUEST, e.message);
    }
    // Publishing includes joining: the grant needs roomJoin and canPublish for this room.
    let grant = match hub.authorize(bearer_token(&request), Action::Publish(&room)) {
        Ok(grant) => grant,
        Err(refused) => return auth_error(refused),
    };
    let from_token = grant
        .name()
        .and_then(|n| validate::display_name(n).ok())
        .map(str::to_owned);
    let name = match (from_token, query_param(request.uri().query(), "name")) {
        (Some(name), _) => name,
        (None, Some(name)) => match validate::display_name(&name) {
            Ok(name) => name.to_owned(),
            Err(e) => return error(StatusCode::BAD_REQUEST, e.message),
        },
        (None, None) => "WHIP".to_owned(),
    };
    let offer = match read_sdp(&hub, request).await {
        Ok(offer) => offer,
        Err(response) => return response,
    };
    // Refuse before the media plane does any work for a publisher that could not join.
    if let Err(e) = hub.check_admit(&hub.state(), &room) {
        return error(StatusCode::CONFLICT, e.message());
    }
    let published = match hub.media.publish(&room, None, &offer).await {
        Ok(published) => published,
        Err(e) => return media_error(&e),
    };
    let tracks = room_tracks(&published.tracks, |_| None);
    let display_name = name.clone();
    let admitted = hub.admit(&room, |id| Participant {
        id,
        identity: grant.identity().map(str::to_owned),
        hidden: grant.hidden(),
        name,
        muted_audio: false,
        muted_video: false,
        tracks,
        publish: Some(published.session),
        subscribe: None,
        max_publish_bitrate: grant.max_publish_bitrate(),
        outbox: None,
        renegotiate: None,
        quality: Default::default(),
    });
    let participant = match admitted {
        Ok(id) => id,
        Err(e) => {
            hub.media.close(published.session).await;
            return error(StatusCode::CONFLICT, e.message());
        }
    };
    hub.apply_publish_limit(&room, participant, false).await;
    tracing::info!(room, participant = %participant.wire(), name = %display_name, "join");
    tracing::info!(
        room,
        participant = %participant.wire(),
        session = published.session.0,
        tracks = published.tracks.len(),
        via = "whip",
        "publish"
    );
    let token = hub.add_resource(Resource::Whip {
        room: room.clone(),
        participant,
    });
    let ice = whip::IceSession::from_offer(published.session, &offer);
    hub.set_ice_session(&token, ice.clone());
    let location = format!("/whip/{}/{token}", percent_encode(&room));
    let mut response = created(location, &ice, published.sdp);
    if let Ok(id) = HeaderValue::from_str(&participant.wire()) {
        response.headers_mut().insert("x-sluice-participant", id);
    }
    response
}

async fn whep_post<M: MediaPlane>(
    hub: Arc<Hub<M>>,
    request: Request<Incoming>,
    room: String,
    participant: Option<&str>,
) -> Response<Body> {
    if let Err(refused) = hub.authorize(bearer_token(&request), Action::Subscribe(&room)) {
        return auth_error(refused);
    }
    // `?layer=N` caps the simulcast layer of every video track played (0: the lowest),
    // `?temporal=N` its temporal layer (0: the base frame rate).
    let temporal = match query_param(request.uri().query(), "temporal") {
        None => None,
        Some(text) => match text.parse::<u8>() {
            Ok(temporal) if temporal <= crate::protocol::MAX_TEMPORAL_LAYER => Some(temporal),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "temporal must be a whole number from 0 (the base frame rate) to 7",
                );
            }
        },
    };
    let layer = match query_param(request.uri().query(), "layer") {
        None => None,
        Some(text) => match text.parse::<usize>() {
            Ok(layer) if layer <= crate::protocol::MAX_LAYER => Some(layer),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "layer must be a whole number from 0 (the lowest simulcast layer)",
                );
            }
        },
    };
    let offer = match read_sdp(&hub, request).await {
        Ok(offer) => offer,
        Err(response) => return response,
    };
    let wanted = match participant.map(ParticipantId::parse) {
        Some(None) => return error(StatusCode::NOT_FOUND, "unknown participant"),
        Some(Some(id)) => Some(id),
        None => None,
    };
    let publisher = hub.with_room(&room, |r| {
        let found = match wanted {
            Some(id) => r.get(id),
            None => r.first_publisher(),
        };
        found.map(|p| (p.id, p.publish))
    });
    let (publisher_id, session) = match publisher {
        None => return error(StatusCode::NOT_FOUND, "unknown room"),
        Some(None) if wanted.is_some() => {
            return error(StatusCode::NOT_FOUND, "unknown participant");
        }
        Some(None) => return error(StatusCode::NOT_FOUND, "the room has no publisher"),
        Some(Some((_, None))) => {
            return error(StatusCode::NOT_FOUND, "the participant publishes nothing");
        }
        Some(Some((id, Some(session)))) => (id, session),
    };
    let played = match hub.media.play(&room, session, &offer).await {
        Ok(played) => played,
        Err(e) => return media_error(&e),
    };
    let cap = crate::media::LayerCap {
        spatial: layer,
        temporal,
    };
    if cap != crate::media::LayerCap::default() {
        let video: Vec<rtc_core::TrackId> = hub
            .with_room(&room, |r| {
                r.get(publisher_id).map(|p| {
                    p.tracks
                        .iter()
                        .filter(|t| t.kind == rtc_core::sdp::MediaKind::Video)
                        .map(|t| t.id)
                        .collect()
                })
            })
            .flatten()
            .unwrap_or_default();
        for track in video {
            // Kept for the session until its subscriptions are bound; a track that went
            // meanwhile has nothing to cap.
            let _ = hub.media.set_layer_cap(played.session, track, cap).await;
        }
    }
    tracing::info!(
        room,
        publisher = %publisher_id.wire(),
        session = played.session.0,
        via = "whep",
        "subscribe"
    );
    let token = hub.add_resource(Resource::Whep {
        room: room.clone(),
        session: played.session,
    });
    let location = format!(
        "/whep/{}/{}/{token}",
        percent_encode(&room),
        publisher_id.wire()
    );
    let ice = whip::IceSession::from_offer(played.session, &offer);
    hub.set_ice_session(&token, ice.clone());
    created(location, &ice, played.sdp)
}

/// Answers a WebSocket upgrade and hands the connection to the room protocol.
fn upgrade<M: MediaPlane>(hub: Arc<Hub<M>>, mut request: Request<Incoming>) -> Response<Body> {
    let headers = request.headers();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| is_upgrade && version_ok)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade (version 13)",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    // Browsers cannot set headers on a WebSocket, so the token may come in the URL; it is
    // checked when the client joins, where the refusal can be told in the room protocol.
    let token = query_param(request.uri().query(), "access_token")
        .filter(|t| !t.is_empty())
        .or_else(|| bearer_token(&request).map(str::to_owned));
    let on_upgrade = hyper::upgrade::on(&mut request);
    // Tungstenite's own limit is a backstop well above the protocol's, so that a message
    // just over the limit still gets a `message_too_large` error before the close.
    let config = WebSocketConfig::default()
        .max_message_size(Some(hub.config.max_message_bytes.saturating_mul(4)))
        .max_frame_size(Some(hub.config.max_message_bytes.saturating_mul(4)));
    let live = crate::hub::LiveConnection::new(&hub.live);
    // The room and participant are recorded on the span when the connection joins.
    let span = tracing::info_span!(
        "ws",
        room = tracing::field::Empty,
        participant = tracing::field::Empty
    );
    let connection = async move {
        let _live = live;
        if let Ok(upgraded) = on_upgrade.await {
            let socket = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            ws::run(hub, socket, token).await;
        }
    };
    tokio::spawn(tracing::Instrument::instrument(connection, span));
    let mut response = respond(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_coding_round_trips_room_names() {
        for room in ["lobby", "a b/c?d%", "café ☕"] {
            assert_eq!(percent_decode(&percent_encode(room)).as_deref(), Some(room));
        }
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_param(Some("a=1&name=Ada+L%C3%A9"), "name").as_deref(),
            Some("Ada Lé")
        );
        assert_eq!(query_param(Some("name"), "name").as_deref(), Some(""));
        assert_eq!(query_param(None, "name"), None);
    }

    /// A typed SDP error is a 400 whose body is the error's text, like any bad SDP.
    #[test]
    fn sdp_errors_are_bad_requests_with_their_text() {
        let error = MediaError::Sdp(rtc_core::sdp::SdpError::MissingVersion);
        let response = media_error(&error);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.extensions().get::<Refusal>().map(|r| r.0.as_str()),
            Some("bad SDP: the description cannot be served: description does not start with v=0")
        );
    }
}
