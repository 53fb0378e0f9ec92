//! Test support: a media plane that records the calls signaling makes and returns canned
//! SDP (it stands in for the media plane only, to test the room logic), a raw HTTP/1.1 client
//! and a WebSocket client over real TCP sockets.
#![allow(dead_code)]

pub mod tokens;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rtc_core::sdp::MediaKind;
use rtc_core::{SessionId, TrackId};
use serde_json::Value;
use signaling::{
    MediaError, MediaEvent, MediaPlane, Played, Published, PublishedTrack, SignalingConfig,
    SubscriberOffer, TrackPriority, TrackView,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Publish {
        room: String,
        session: SessionId,
        renegotiated: bool,
    },
    Play {
        room: String,
        publisher: SessionId,
        session: SessionId,
    },
    CreateSubscriber {
        room: String,
        session: SessionId,
    },
    OfferTracks {
        subscriber: SessionId,
        tracks: Vec<TrackId>,
    },
    Answer {
        subscriber: SessionId,
        sdp: String,
    },
    Close {
        session: SessionId,
    },
    RestartIce {
        session: SessionId,
        ufrag: String,
        pwd: String,
    },
    PublisherMaxBitrate {
        session: SessionId,
        max_bitrate: Option<u64>,
    },
    TrackView {
        session: SessionId,
        track: TrackId,
        view: TrackView,
    },
    TrackPriority {
        track: TrackId,
        priority: TrackPriority,
    },
}

/// Publishes one track per m-line (`m=audio` or else video, mids "0", "1", ...); an offer
/// containing `a=reject` is refused as bad SDP.
#[derive(Debug)]
pub struct RecordingMedia {
    next_session: AtomicU64,
    pub calls: Mutex<Vec<Call>>,
    publishers: Mutex<HashMap<SessionId, ()>>,
    events: Mutex<Option<mpsc::UnboundedReceiver<MediaEvent>>>,
}

impl RecordingMedia {
    pub fn new() -> (Arc<Self>, mpsc::UnboundedSender<MediaEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let media = Self {
            next_session: AtomicU64::new(1),
            calls: Mutex::new(Vec::new()),
            publishers: Mutex::new(HashMap::new()),
            events: Mutex::new(Some(rx)),
        };
        (Arc::new(media), tx)
    }

    fn session(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl MediaPlane for RecordingMedia {
    async fn publish(
        &self,
        room: &str,
        session: Option<SessionId>,
        offer: &str,
    ) -> Result<Published, MediaError> {
        if offer.contains("a=reject") {
            return Err(MediaError::BadSdp(
                "rejected by the test media plane".into(),
            ));
        }
        let id = session.unwrap_or_else(|| self.session());
        let tracks = offer
            .lines()
            .filter(|l| l.starts_with("m="))
            .enumerate()
            .map(|(i, line)| PublishedTrack {
                id: TrackId(id.0 * 100 + i as u64),
                kind: if line.starts_with("m=audio") {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                },
                mid: i.to_string(),
            })
            .collect();
        self.publishers.lock().unwrap().insert(id, ());
        self.record(Call::Publish {
            room: room.into(),
            session: id,
            renegotiated: session.is_some(),
        });
        Ok(Published {
            session: id,
            sdp: format!("v=0\r\ns=answer {}\r\n", id.0),
            tracks,
        })
    }

    async fn play(
        &self,
        room: &str,
        publisher: SessionId,
        _offer: &str,
    ) -> Result<Played, MediaError> {
        if !self.publishers.lock().unwrap().contains_key(&publisher) {
            return Err(MediaError::UnknownSession);
        }
        let session = self.session();
        self.record(Call::Play {
            room: room.into(),
            publisher,
            session,
        });
        Ok(Played {
            session,
            sdp: format!("v=0\r\ns=play {}\r\n", session.0),
        })
    }

    async fn set_publisher_max_bitrate(
        &self,
        session: SessionId,
        max_bitrate: Option<u64>,
    ) -> Result<(), MediaError> {
        self.record(Call::PublisherMaxBitrate {
            session,
            max_bitrate,
        });
        Ok(())
    }

    async fn set_track_view(
        &self,
        session: SessionId,
        track: TrackId,
        view: TrackView,
    ) -> Result<(), MediaError> {
        self.record(Call::TrackView {
            session,
            track,
            view,
        });
        Ok(())
    }

    async fn set_track_priority(
        &self,
        track: TrackId,
        priority: TrackPriority,
    ) -> Result<(), MediaError> {
        self.record(Call::TrackPriority { track, priority });
        Ok(())
    }

    async fn create_subscriber(&self, room: &str) -> Result<SessionId, MediaError> {
        let session = self.session();
        self.record(Call::CreateSubscriber {
            room: room.into(),
            session,
        });
        Ok(session)
    }

    async fn offer_tracks(
        &self,
        subscriber: SessionId,
        tracks: &[TrackId],
    ) -> Result<SubscriberOffer, MediaError> {
        self.record(Call::OfferTracks {
            subscriber,
            tracks: tracks.to_vec(),
        });
        let mids = tracks.iter().map(|t| (format!("m{}", t.0), *t)).collect();
        Ok(SubscriberOffer {
            sdp: format!("v=0\r\ns=offer {}\r\n", tracks.len()),
            mids,
        })
    }

    async fn offer_tracks_with_ice_restart(
        &self,
        subscriber: SessionId,
        tracks: &[TrackId],
    ) -> Result<SubscriberOffer, MediaError> {
        let mut offer = self.offer_tracks(subscriber, tracks).await?;
        offer.sdp.push_str("a=ice-restart\r\n");
        Ok(offer)
    }

    async fn answer_subscriber(
        &self,
        subscriber: SessionId,
        answer: &str,
    ) -> Result<(), MediaError> {
        self.record(Call::Answer {
            subscriber,
            sdp: answer.into(),
        });
        Ok(())
    }

    /// New credentials `S<n>` + padding, n counting restarts; a session that was closed (or
    /// never made) is unknown.
    async fn restart_ice(
        &self,
        session: SessionId,
        remote_ufrag: &str,
        remote_pwd: &str,
    ) -> Result<signaling::LocalIceCredentials, MediaError> {
        let known = self.calls().iter().any(|c| match c {
            Call::Publish { session: s, .. } | Call::Play { session: s, .. } => *s == session,
            _ => false,
        }) && !self.calls().contains(&Call::Close { session });
        if !known {
            return Err(MediaError::UnknownSession);
        }
        self.record(Call::RestartIce {
            session,
            ufrag: remote_ufrag.into(),
            pwd: remote_pwd.into(),
        });
        let restarts = self
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::RestartIce { .. }))
            .count();
        Ok(signaling::LocalIceCredentials {
            ufrag: format!("Srst{restarts}"),
            pwd: format!("{:0<24}", format!("restartpwd{restarts}")),
            candidates: vec!["1 1 udp 2130706431 127.0.0.1 3478 typ host".into()],
        })
    }

    async fn close(&self, session: SessionId) {
        self.publishers.lock().unwrap().remove(&session);
        self.record(Call::Close { session });
    }

    fn events(&self) -> Option<mpsc::UnboundedReceiver<MediaEvent>> {
        self.events.lock().unwrap().take()
    }

    fn metrics(&self) -> Vec<signaling::MediaMetric> {
        vec![signaling::MediaMetric::gauge(
            "recording_media_calls",
            "A value from the media plane.",
            1,
        )]
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub media: Arc<RecordingMedia>,
    pub events: mpsc::UnboundedSender<MediaEvent>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn start(config: SignalingConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (media, events) = RecordingMedia::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(signaling::serve(listener, media.clone(), config, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        media,
        events,
        _stop: stop,
    }
}

pub struct HttpResponse {
    pub status: u16,
    /// The last value of each header, by lower-case name.
    pub headers: HashMap<String, String>,
    /// Every header line in order, names in lower case.
    pub header_lines: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Every value of a header that may repeat (such as `Link`).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.header_lines
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer before reading an oversized body; that is fine.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header end");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let header_lines: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let headers = header_lines.iter().cloned().collect();
    HttpResponse {
        status,
        headers,
        header_lines,
        body: raw[split + 4..].to_vec(),
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .unwrap();
        Self { ws }
    }

    /// Connects to `path` (with its query) on the server, sending `headers` with the upgrade.
    pub async fn connect_to(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap(),
                value.parse().unwrap(),
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Self { ws }
    }

    /// Reads until the server's close frame, which must carry `code`; text messages before it
    /// are returned.
    pub async fn expect_close(&mut self, code: u16) -> Vec<Value> {
        let mut before = Vec::new();
        loop {
            match self.next_within(Duration::from_secs(5)).await {
                Some(Message::Text(text)) => before.push(serde_json::from_str(&text).unwrap()),
                Some(Message::Close(Some(frame))) => {
                    assert_eq!(
                        u16::from(frame.code),
                        code,
                        "close {frame:?} after {before:?}"
                    );
                    return before;
                }
                Some(Message::Close(None)) => panic!("a close without a code after {before:?}"),
                Some(_) => {}
                None => panic!("no close frame; got {before:?}"),
            }
        }
    }

    pub async fn join(addr: SocketAddr, room: &str, name: &str) -> (Self, Value) {
        let mut client = Self::connect(addr).await;
        client
            .send(serde_json::json!({"type": "join", "room": room, "name": name}))
            .await;
        let joined = client.expect("joined").await;
        (client, joined)
    }

    pub async fn send(&mut self, message: Value) {
        self.send_text(message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next message other than a keepalive ping or pong (tungstenite answers pings while
    /// it reads), or None if nothing came within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(message))) => return Some(message),
                Ok(_) | Err(_) => return None,
            }
        }
    }

    /// The next JSON message; fails the test if none comes within 5 s.
    pub async fn recv(&mut self) -> Value {
        match self.next_within(Duration::from_secs(5)).await {
            Some(Message::Text(text)) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// The next message, which must be of type `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let message = self.recv().await;
        assert_eq!(message["type"], kind, "unexpected message {message}");
        message
    }

    /// The next message, which must be an error with `code`.
    pub async fn expect_error(&mut self, code: &str) {
        let message = self.expect("error").await;
        assert_eq!(message["code"], code, "{message}");
        assert!(message["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    /// Fails the test if a message arrives within a short while.
    pub async fn expect_silence(&mut self) {
        if let Some(message) = self.next_within(Duration::from_millis(200)).await {
            panic!("expected no message, got {message:?}");
        }
    }
}

/// The ICE credentials every [`offer`] carries.
pub const OFFER_UFRAG: &str = "peer";
pub const OFFER_PWD: &str = "peerpasswordpeerpasswd";

/// An offer with one m-line per kind (mids "0", "1", ...) and [`OFFER_UFRAG`]/[`OFFER_PWD`].
pub fn offer(kinds: &[&str]) -> String {
    let mut sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:{OFFER_UFRAG}\r\na=ice-pwd:{OFFER_PWD}\r\n"
    );
    for (mid, kind) in kinds.iter().enumerate() {
        sdp.push_str(&format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:{mid}\r\n"
        ));
    }
    sdp
}
