//! One WebSocket connection of the room protocol (docs/protocol.md): reads client messages,
//! applies them to the hub, and writes what the room sends. A second task per joined
//! participant drives the server-offered subscribe connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use packet_router::TrackId;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::auth::{Action, AuthError, Grant};
use crate::hub::{CLOSE_GOING_AWAY, Hub};
use crate::media::{MediaError, MediaPlane};
use crate::protocol::{self, ClientMessage, MessageLimits};
use crate::room::{OUTBOX_CAPACITY, Outbound, Outbox, ParticipantId, room_tracks, track_wire};
use crate::validate::{self, Invalid};

/// Close code for a message over the size limit (RFC 6455 "message too big").
const CLOSE_TOO_BIG: u16 = 1009;

/// Close code after a join refused for a missing or invalid access token.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;

/// Close code after a join refused because the token does not grant it.
pub const CLOSE_FORBIDDEN: u16 = 4403;

/// Close code for a connection that had no participant within the join timeout.
pub const CLOSE_JOIN_TIMEOUT: u16 = 4003;

/// Close code for a connection that sent nothing, not even a pong, within the pong timeout.
pub const CLOSE_KEEPALIVE_TIMEOUT: u16 = 4004;

/// The shortest ping interval honoured, so that a zero in the configuration cannot spin.
const MIN_PING_INTERVAL: Duration = Duration::from_millis(10);

pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A token bucket: `rate` messages per second, up to `burst` at once.
#[derive(Debug)]
struct RateLimit {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
    last_warning: Option<Instant>,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            tokens: burst,
            last: Instant::now(),
            rate: f64::from(rate),
            burst,
            last_warning: None,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether to tell the client it is being limited: at most once a second, so that a flood
    /// does not turn into a flood of errors.
    fn should_warn(&mut self, now: Instant) -> bool {
        let warn = self
            .last_warning
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if warn {
            self.last_warning = Some(now);
        }
        warn
    }
}

/// The participant a connection joined as.
#[derive(Debug)]
struct Joined {
    room: String,
    id: ParticipantId,
    /// Woken when this participant's outstanding subscribe offer was answered.
    answered: Arc<Notify>,
    /// Tells the renegotiation task to stop (it never stops in the middle of a media call,
    /// so a session being created is closed, not leaked).
    stop_renegotiating: Arc<Notify>,
    /// What the participant's access token allows.
    grant: Grant,
}

pub(crate) struct Connection<M> {
    hub: Arc<Hub<M>>,
    outbox: Outbox,
    joined: Option<Joined>,
    /// The access token that came with the upgrade (`?access_token=` or `Authorization`).
    token: Option<String>,
}

/// Whether the read loop goes on after a message.
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Serves one upgraded WebSocket until it closes, then makes its participant leave. `token`
/// is the access token that came with the upgrade request, if any.
pub async fn run<M: MediaPlane>(hub: Arc<Hub<M>>, socket: Socket, token: Option<String>) {
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut outgoing, overflowed) = Outbox::new(OUTBOX_CAPACITY);
    let mut writer = tokio::spawn(async move {
        while let Some(item) = outgoing.recv().await {
            let result = match item {
                Outbound::Text(text) => sink.send(Message::text(text)).await,
                Outbound::Ping => sink.send(Message::Ping(bytes::Bytes::new())).await,
                Outbound::Close(code, reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            };
            if result.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut rate = RateLimit::new(hub.config.messages_per_second, hub.config.message_burst);
    let (ping_interval, pong_timeout, join_timeout) = (
        hub.config.ping_interval.max(MIN_PING_INTERVAL),
        hub.config.pong_timeout,
        hub.config.join_timeout,
    );
    let mut connection = Connection::new(hub, outbox);
    connection.token = token;
    let mut writer_done = false;
    let mut shutting_down = connection.hub.shutting_down.subscribe();
    // Why the connection ends, for the leave line.
    let mut reason = "connection closed";
    let opened = Instant::now();
    let mut pings = tokio::time::interval_at(opened + ping_interval, ping_interval);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Any frame from the client proves it alive (browsers answer pings on their own; a busy
    // client's messages count as much as its pongs). Reset on every frame.
    let silence = tokio::time::sleep_until(opened + pong_timeout);
    let mut silence = std::pin::pin!(silence);
    // Armed while the connection has no participant: from the start and after each leave.
    let join_deadline = tokio::time::sleep_until(opened + join_timeout);
    let mut join_deadline = std::pin::pin!(join_deadline);
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            _ = pings.tick() => {
                connection.outbox.send(Outbound::Ping);
                continue;
            }
            () = &mut silence => {
                connection.keepalive_timeout();
                reason = "keepalive timeout";
                break;
            }
            () = &mut join_deadline, if connection.joined.is_none() => {
                connection.join_timeout(join_timeout);
                reason = "join timeout";
                break;
            }
            () = async { let _ = shutting_down.wait_for(|&down| down).await; } => {
                connection
                    .outbox
                    .send(Outbound::Close(CLOSE_GOING_AWAY, "server shutting down"));
                reason = "server shutting down";
                break;
            }
            _ = &mut writer => {
                writer_done = true;
                reason = "connection lost";
                break;
            }
            // The client reads too slowly to keep up with its room.
            () = overflowed.notified() => {
                reason = "client too slow";
                break;
            }
        };
        let now = Instant::now();
        if matches!(message, Some(Ok(_))) {
            silence.as_mut().reset(now + pong_timeout);
        }
        let was_joined = connection.joined.is_some();
        let flow = match message {
            Some(Ok(Message::Text(text))) => {
                if text.len() > connection.hub.config.max_message_bytes {
                    connection.too_big();
                    reason = "message too large";
                    Flow::Stop
                } else if !rate.take(now) {
                    if rate.should_warn(now) {
                        connection
                            .error(Invalid::new("rate_limited", "too many messages; slow down"));
                    }
                    Flow::Continue
                } else {
                    connection.handle_text(&text).await
                }
            }
            Some(Ok(Message::Binary(_))) => {
                connection.error(Invalid::new(
                    "bad_json",
                    "messages must be JSON text frames",
                ));
                Flow::Continue
            }
            Some(Ok(Message::Close(_))) | None => Flow::Stop,
            Some(Ok(_)) => Flow::Continue,
            Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                connection.too_big();
                reason = "message too large";
                Flow::Stop
            }
            Some(Err(_)) => Flow::Stop,
        };
        if matches!(flow, Flow::Stop) {
            break;
        }
        if was_joined && connection.joined.is_none() {
            join_deadline.as_mut().reset(Instant::now() + join_timeout);
        }
    }
    connection.leave_because(reason).await;
    drop(connection);
    // The writer ends once every sender of the outbox (the room's copy went with the leave)
    // is gone; give it a moment to flush a final error and close frame, but not forever to a
    // client that stopped reading.
    if !writer_done
        && tokio::time::timeout(Duration::from_secs(2), &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
}

impl<M: MediaPlane> Connection<M> {
    /// A connection that has not joined a room yet; what it sends goes to `outbox`.
    pub(crate) fn new(hub: Arc<Hub<M>>, outbox: Outbox) -> Self {
        Self {
            hub,
            outbox,
            joined: None,
            token: None,
        }
    }

    fn send(&self, message: Value) {
        self.outbox.send(Outbound::Text(message.to_string()));
    }

    fn error(&self, invalid: Invalid) {
        tracing::info!(
            code = invalid.code,
            reason = invalid.message,
            "request refused"
        );
        self.send(json!({"type": "error", "code": invalid.code, "message": invalid.message}));
    }

    fn media_error(&self, error: &MediaError) {
        let code = match error {
            MediaError::BadSdp(_) => "bad_sdp",
            MediaError::UnknownSession | MediaError::Stopped => "media_error",
        };
        tracing::info!(code, reason = %error, "request refused");
        self.send(json!({"type": "error", "code": code, "message": error.to_string()}));
    }

    fn too_big(&self) {
        self.error(Invalid::new(
            "message_too_large",
            "messages are limited to 64 KiB",
        ));
        self.outbox
            .send(Outbound::Close(CLOSE_TOO_BIG, "message too large"));
    }

    /// Closes a connection that had no participant for `after`: an error saying so, then
    /// close code 4003.
    fn join_timeout(&self, after: Duration) {
        self.hub.closed.join_timeout.fetch_add(1, Ordering::Relaxed);
        let message = format!(
            "no join within {} s of connecting or leaving; closing",
            after.as_secs_f64()
        );
        self.send(json!({"type": "error", "code": "join_timeout", "message": message}));
        self.outbox
            .send(Outbound::Close(CLOSE_JOIN_TIMEOUT, "join timeout"));
    }

    /// Gives up on a connection that sent nothing for the pong timeout. The close frame is sent for
    /// the record; a dead peer will not read it.
    fn keepalive_timeout(&self) {
        self.hub
            .closed
            .keepalive_timeout
            .fetch_add(1, Ordering::Relaxed);
        self.outbox.send(Outbound::Close(
            CLOSE_KEEPALIVE_TIMEOUT,
            "keepalive timeout",
        ));
    }

    /// Handles one text frame that passed the size and rate limits.
    pub(crate) async fn handle_text(&mut self, text: &str) -> Flow {
        let message = match protocol::parse_object(text) {
            Ok(message) => message,
            Err(invalid) => {
                self.error(invalid);
                return Flow::Continue;
            }
        };
        let limits = MessageLimits {
            max_sdp_bytes: self.hub.config.max_sdp_bytes,
            max_tracks: self.hub.config.max_tracks,
        };
        let result = match protocol::client_message(&message, self.joined.is_some(), limits) {
            Ok(ClientMessage::Join { room, name, token }) => {
                let token = token.map(str::to_owned).or_else(|| self.token.clone());
                match self.hub.authorize(token.as_deref(), Action::Join(room)) {
                    Ok(grant) => self.join(room, name, grant),
                    Err(refused) => {
                        self.refuse(refused);
                        let close = if refused.is_forbidden() {
                            CLOSE_FORBIDDEN
                        } else {
                            CLOSE_UNAUTHORIZED
                        };
                        self.outbox.send(Outbound::Close(close, refused.code()));
                        return Flow::Continue;
                    }
                }
            }
            Ok(ClientMessage::Publish { offer, sources }) => {
                if self.permitted(|r| Action::Publish(r)) {
                    self.publish(offer, sources).await;
                }
                Ok(())
            }
            Ok(ClientMessage::Answer { answer }) => {
                if self.permitted(|r| Action::Subscribe(r)) {
                    self.answer(answer).await
                } else {
                    Ok(())
                }
            }
            Ok(ClientMessage::Mute { video, muted }) => {
                self.mute(video, muted);
                Ok(())
            }
            Ok(ClientMessage::Chat { text }) => {
                if self.permitted(|r| Action::PublishData(r)) {
                    self.chat(text);
                }
                Ok(())
            }
            Ok(ClientMessage::Leave) => {
                self.leave().await;
                Ok(())
            }
            Err(invalid) => Err(invalid),
        };
        if let Err(invalid) = result {
            self.error(invalid);
        }
        Flow::Continue
    }

    /// Sends the room-protocol error for a refused token.
    fn refuse(&self, refused: AuthError) {
        self.send(json!({"type": "error", "code": refused.code(), "message": refused.message()}));
    }

    /// Whether the joined participant's grant allows `action` in its room; if not, the client
    /// gets a `forbidden` error and the refusal is counted.
    fn permitted(&self, action: fn(&str) -> Action<'_>) -> bool {
        let Some(joined) = &self.joined else {
            return false;
        };
        match self.hub.permit(&joined.grant, action(&joined.room)) {
            Ok(()) => true,
            Err(refused) => {
                self.refuse(refused);
                false
            }
        }
    }

    fn join(&mut self, room: &str, name: &str, grant: Grant) -> Result<(), Invalid> {
        // The token's name wins over the one typed into the join, when it is a valid one.
        let name = grant
            .name()
            .and_then(|n| validate::display_name(n).ok())
            .unwrap_or(name);
        let subscribes = grant.check(Action::Subscribe(room)).is_ok();
        let renegotiate = Arc::new(Notify::new());
        let id = self
            .hub
            .admit(room, |id| {
                let mut participant = protocol::participant(
                    id,
                    name,
                    Some(self.outbox.clone()),
                    Some(renegotiate.clone()),
                );
                participant.identity = grant.identity().map(str::to_owned);
                participant.hidden = grant.hidden();
                participant
            })
            .map_err(|e| Invalid::new(e.code(), e.message()))?;
        let span = tracing::Span::current();
        span.record("room", room);
        span.record("participant", id.wire());
        tracing::info!(room, participant = %id.wire(), name, "join");
        let answered = Arc::new(Notify::new());
        let stop_renegotiating = Arc::new(Notify::new());
        // Without the subscribe grant there is no subscribe connection at all.
        if subscribes {
            let renegotiate = renegotiate_loop(
                self.hub.clone(),
                room.to_owned(),
                id,
                self.outbox.clone(),
                Signals {
                    changed: renegotiate,
                    answered: answered.clone(),
                    stop: stop_renegotiating.clone(),
                },
            );
            tokio::spawn(tracing::Instrument::instrument(renegotiate, span));
        }
        self.joined = Some(Joined {
            room: room.to_owned(),
            id,
            answered,
            stop_renegotiating,
            grant,
        });
        Ok(())
    }

    async fn publish(&mut self, offer: &str, sources: Option<&Map<String, Value>>) {
        let Some(joined) = &self.joined else {
            return;
        };
        let (room, id) = (joined.room.clone(), joined.id);
        let existing = self
            .hub
            .with_room(&room, |r| r.get(id).and_then(|p| p.publish))
            .flatten();
        let published = match self.hub.media.publish(&room, existing, offer).await {
            Ok(published) => published,
            Err(error) => {
                self.media_error(&error);
                return;
            }
        };
        if existing.is_none() && !self.hub.bind_session(&room, id, published.session, true) {
            self.hub.media.close(published.session).await;
            return;
        }
        let tracks = room_tracks(&published.tracks, |mid| {
            protocol::declared_source(sources, mid)
        });
        tracing::info!(
            room,
            participant = %id.wire(),
            session = published.session.0,
            tracks = published.tracks.len(),
            renegotiated = existing.is_some(),
            "publish"
        );
        // The answer goes out before the others hear of the tracks.
        self.send(json!({"type": "published", "sdp": published.sdp}));
        self.hub.with_room(&room, |r| r.set_tracks(id, tracks));
    }

    async fn answer(&mut self, answer: &str) -> Result<(), Invalid> {
        let Some(joined) = &self.joined else {
            return Ok(());
        };
        let subscriber = self
            .hub
            .with_room(&joined.room, |r| r.get(joined.id).and_then(|p| p.subscribe))
            .flatten();
        let Some(subscriber) = subscriber else {
            return Err(Invalid::new(
                "no_offer",
                "there is no subscribe offer to answer",
            ));
        };
        match self.hub.media.answer_subscriber(subscriber, answer).await {
            Ok(()) => joined.answered.notify_one(),
            Err(error) => self.media_error(&error),
        }
        Ok(())
    }

    fn mute(&self, video: bool, muted: bool) {
        if let Some(joined) = &self.joined {
            self.hub
                .with_room(&joined.room, |r| r.set_muted(joined.id, video, muted));
        }
    }

    fn chat(&self, text: &str) {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        if let Some(joined) = &self.joined {
            self.hub.with_room(&joined.room, |r| {
                protocol::apply_chat(r, joined.id, text, at);
            });
        }
    }

    pub(crate) async fn leave(&mut self) {
        self.leave_because("left").await;
    }

    async fn leave_because(&mut self, reason: &'static str) {
        if let Some(joined) = self.joined.take() {
            joined.stop_renegotiating.notify_one();
            self.hub
                .remove_participant_because(&joined.room, joined.id, reason)
                .await;
        }
    }
}

/// What wakes a participant's renegotiation task.
struct Signals {
    /// The tracks the participant should receive changed.
    changed: Arc<Notify>,
    /// The participant answered the last offer.
    answered: Arc<Notify>,
    /// The participant left.
    stop: Arc<Notify>,
}

/// Keeps one participant's subscribe connection carrying every other participant's tracks:
/// creates the subscriber session, then on each change offers the current set and waits for
/// the answer (or a timeout) before offering again, so offers never overtake answers. It
/// stops only between media calls, so a session it creates is either bound to the
/// participant (and closed when it leaves) or closed here.
async fn renegotiate_loop<M: MediaPlane>(
    hub: Arc<Hub<M>>,
    room: String,
    id: ParticipantId,
    outbox: Outbox,
    signals: Signals,
) {
    let send_error = |message: String| {
        let text = json!({"type": "error", "code": "media_error", "message": message}).to_string();
        outbox.send(Outbound::Text(text));
    };
    let subscriber = match hub.media.create_subscriber(&room).await {
        Ok(session) => session,
        Err(error) => {
            send_error(format!("no subscribe connection: {error}"));
            return;
        }
    };
    if !hub.bind_session(&room, id, subscriber, false) {
        hub.media.close(subscriber).await;
        return;
    }
    tracing::info!(
        room,
        participant = %id.wire(),
        session = subscriber.0,
        via = "ws",
        "subscribe"
    );
    let mut offered: Vec<(TrackId, ParticipantId)> = Vec::new();
    loop {
        let wanted = hub.with_room(&room, |r| r.get(id).is_some().then(|| r.tracks_for(id)));
        let Some(Some(wanted)) = wanted else { return };
        let mut awaiting_answer = false;
        if wanted != offered {
            let ids: Vec<TrackId> = wanted.iter().map(|(track, _)| *track).collect();
            match hub.media.offer_tracks(subscriber, &ids).await {
                Ok(offer) => {
                    let mut mids = Map::new();
                    for (mid, track) in &offer.mids {
                        if let Some((_, owner)) = wanted.iter().find(|(t, _)| t == track) {
                            let entry =
                                json!({"participant": owner.wire(), "track": track_wire(*track)});
                            mids.insert(mid.clone(), entry);
                        }
                    }
                    let message = json!({"type": "subscribe", "sdp": offer.sdp, "tracks": mids});
                    if !outbox.send(Outbound::Text(message.to_string())) {
                        return;
                    }
                    offered = wanted;
                    awaiting_answer = true;
                }
                Err(error) => send_error(format!("renegotiation failed: {error}")),
            }
        }
        let next = async {
            if awaiting_answer {
                let _ =
                    tokio::time::timeout(hub.config.answer_timeout, signals.answered.notified())
                        .await;
            } else {
                signals.changed.notified().await;
            }
        };
        tokio::select! {
            () = signals.stop.notified() => return,
            () = next => {}
        }
    }
}
