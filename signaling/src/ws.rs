//! One WebSocket connection of the room protocol (docs/protocol.md): reads client messages,
//! applies them to the hub, and writes what the room sends. A second task per joined
//! participant drives the server-offered subscribe connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rtc_core::{SessionId, TrackId};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::auth::{Action, AuthError, Grant};
use crate::hub::{CLOSE_GOING_AWAY, Hub};
use crate::media::{LayerCap, MediaError, MediaPlane, TrackView};
use crate::protocol::{self, ClientMessage, MessageLimits};
use crate::resume::{self, Dropped, ParticipantSignals};
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
    /// What wakes the participant's subscribe task (it never stops in the middle of a media
    /// call, so a session being created is closed, not leaked).
    signals: Arc<ParticipantSignals>,
    /// What the participant's access token allows.
    grant: Grant,
    /// The token that resumes the participant after this connection drops.
    resume: Option<String>,
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
    // Why the connection ends, for the leave line, and whether its participant may be
    // resumed on another connection (not after leave, a refused message or a shutdown).
    let mut reason = "connection closed";
    let mut resumable = true;
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
                resumable = false;
                break;
            }
            () = async { let _ = shutting_down.wait_for(|&down| down).await; } => {
                connection
                    .outbox
                    .send(Outbound::Close(CLOSE_GOING_AWAY, "server shutting down"));
                reason = "server shutting down";
                resumable = false;
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
                    resumable = false;
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
                resumable = false;
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
    if resumable {
        connection.dropped(reason).await;
    } else {
        connection.leave_because(reason).await;
    }
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
            MediaError::Sdp(_) | MediaError::BadSdp(_) => "bad_sdp",
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
        if let Some(joined) = &self.joined {
            // The participant was resumed on another connection, which closes this one.
            if !self
                .hub
                .is_connection_of(&joined.room, joined.id, &self.outbox)
            {
                return Flow::Continue;
            }
        }
        let result = match protocol::client_message(&message, self.joined.is_some(), limits) {
            Ok(ClientMessage::Join {
                room,
                name,
                token,
                resume,
            }) => {
                let token = token.map(str::to_owned).or_else(|| self.token.clone());
                match self.hub.authorize(token.as_deref(), Action::Join(room)) {
                    Ok(grant) => match resume {
                        Some(resume) => self.resume(room, resume, grant),
                        None => self.join(room, name, grant),
                    },
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
            Ok(ClientMessage::Publish {
                offer,
                sources,
                new_session,
            }) => {
                if self.permitted(|r| Action::Publish(r)) {
                    self.publish(offer, sources, new_session).await;
                }
                Ok(())
            }
            Ok(ClientMessage::Resubscribe) => {
                if self.permitted(|r| Action::Subscribe(r))
                    && let Some(joined) = &self.joined
                {
                    joined.signals.resubscribe.notify_one();
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
            Ok(ClientMessage::SetLayer { track, cap }) => {
                if self.permitted(|r| Action::Subscribe(r)) {
                    self.set_layer(track, cap).await
                } else {
                    Ok(())
                }
            }
            Ok(ClientMessage::View { track, view }) => {
                if self.permitted(|r| Action::Subscribe(r)) {
                    self.set_view(track, view).await
                } else {
                    Ok(())
                }
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
        let signals = Arc::new(ParticipantSignals::default());
        let resume_token = (!self.hub.config.resume_grace.is_zero()).then(resume::new_token);
        let id = self
            .hub
            .admit_with(
                room,
                |id| {
                    let mut participant = protocol::participant(
                        id,
                        name,
                        Some(self.outbox.clone()),
                        Some(renegotiate.clone()),
                    );
                    participant.identity = grant.identity().map(str::to_owned);
                    participant.hidden = grant.hidden();
                    participant.max_publish_bitrate = grant.max_publish_bitrate();
                    participant
                },
                |state, id, joined| {
                    if let Some(token) = &resume_token {
                        resume::register(state, token, room, id, signals.clone());
                        resume::insert_field(joined, "resume", Value::String(token.clone()));
                    }
                },
            )
            .map_err(|e| Invalid::new(e.code(), e.message()))?;
        let span = tracing::Span::current();
        span.record("room", room);
        span.record("participant", id.wire());
        tracing::info!(room, participant = %id.wire(), name, "join");
        // Without the subscribe grant there is no subscribe connection at all.
        if subscribes {
            let renegotiate = renegotiate_loop(
                self.hub.clone(),
                room.to_owned(),
                id,
                renegotiate,
                signals.clone(),
            );
            tokio::spawn(tracing::Instrument::instrument(renegotiate, span));
        }
        self.joined = Some(Joined {
            room: room.to_owned(),
            id,
            signals,
            grant,
            resume: resume_token,
        });
        Ok(())
    }

    /// Takes over the participant of resume `token` (docs/protocol.md, "Reconnecting").
    fn resume(&mut self, room: &str, token: &str, grant: Grant) -> Result<(), Invalid> {
        let Some(resumed) = self.hub.resume(token, room, grant.identity(), &self.outbox) else {
            self.hub.resumes.failed.fetch_add(1, Ordering::Relaxed);
            return Err(Invalid::new(
                "resume_failed",
                "nobody to resume with this token (it left, its grace period ended, or the \
                 token was used); join afresh",
            ));
        };
        self.hub.resumes.resumed.fetch_add(1, Ordering::Relaxed);
        let span = tracing::Span::current();
        span.record("room", room);
        span.record("participant", resumed.id.wire());
        tracing::info!(room, participant = %resumed.id.wire(), "resume");
        self.joined = Some(Joined {
            room: room.to_owned(),
            id: resumed.id,
            signals: resumed.signals,
            grant,
            resume: Some(resumed.token),
        });
        Ok(())
    }

    /// Applies a publish offer: a renegotiation of the publish session, or its first offer, or
    /// (`new_session`) the first offer of a new peer connection that replaces the session.
    async fn publish(
        &mut self,
        offer: &str,
        sources: Option<&Map<String, Value>>,
        new_session: bool,
    ) {
        let Some(joined) = &self.joined else {
            return;
        };
        let (room, id) = (joined.room.clone(), joined.id);
        let existing = self
            .hub
            .with_room(&room, |r| r.get(id).and_then(|p| p.publish))
            .flatten();
        let renegotiated = existing.filter(|_| !new_session);
        let published = match self.hub.media.publish(&room, renegotiated, offer).await {
            Ok(published) => published,
            Err(error) => {
                self.media_error(&error);
                return;
            }
        };
        let replaced = existing.filter(|_| new_session);
        if let Some(old) = replaced {
            self.hub.unbind_session(&room, id, old, true);
        }
        if renegotiated.is_none() && !self.hub.bind_session(&room, id, published.session, true) {
            self.hub.media.close(published.session).await;
            return;
        }
        if let Some(old) = replaced {
            self.hub.media.close(old).await;
        }
        if renegotiated.is_none() {
            self.hub.apply_publish_limit(&room, id, false).await;
        }
        let tracks = room_tracks(&published.tracks, |mid| {
            protocol::declared_source(sources, mid)
        });
        tracing::info!(
            room,
            participant = %id.wire(),
            session = published.session.0,
            tracks = published.tracks.len(),
            renegotiated = renegotiated.is_some(),
            replaced = replaced.map(|s| s.0),
            "publish"
        );
        // The answer goes out before the others hear of the tracks.
        self.send(json!({"type": "published", "sdp": published.sdp}));
        self.hub.with_room(&room, |r| r.set_tracks(id, tracks));
        self.hub.apply_track_priorities(&room).await;
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
            Ok(()) => joined.signals.answered.notify_one(),
            Err(error) => self.media_error(&error),
        }
        Ok(())
    }

    /// Caps the layer of `track` on the participant's subscribe connection.
    async fn set_layer(&mut self, track: TrackId, cap: LayerCap) -> Result<(), Invalid> {
        let Some(subscriber) = self.subscriber_session()? else {
            return Ok(());
        };
        if let Err(error) = self.hub.media.set_layer_cap(subscriber, track, cap).await {
            self.media_error(&error);
        }
        Ok(())
    }

    /// The joined participant's subscribe connection (`None` before joining); an error when
    /// it has none yet.
    fn subscriber_session(&self) -> Result<Option<SessionId>, Invalid> {
        let Some(joined) = &self.joined else {
            return Ok(None);
        };
        self.hub
            .with_room(&joined.room, |r| r.get(joined.id).and_then(|p| p.subscribe))
            .flatten()
            .map(Some)
            .ok_or(Invalid::new(
                "no_subscription",
                "there is no subscribe connection yet",
            ))
    }

    async fn set_view(&mut self, track: TrackId, view: TrackView) -> Result<(), Invalid> {
        let Some(subscriber) = self.subscriber_session()? else {
            return Ok(());
        };
        if let Err(error) = self.hub.media.set_track_view(subscriber, track, view).await {
            self.media_error(&error);
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
            // Resumed on another connection, or removed already: not this one's to end.
            if !self
                .hub
                .is_connection_of(&joined.room, joined.id, &self.outbox)
            {
                return;
            }
            joined.signals.stop.notify_one();
            self.hub
                .remove_participant_because(&joined.room, joined.id, reason)
                .await;
        }
    }

    /// The connection dropped without `leave`: its participant is kept for a resume when the
    /// server allows resuming, else it leaves.
    async fn dropped(&mut self, reason: &'static str) {
        let Some(joined) = &self.joined else {
            return;
        };
        match self.hub.detach(
            &joined.room,
            joined.id,
            &self.outbox,
            joined.resume.as_deref(),
        ) {
            Dropped::Kept => {
                tracing::info!(
                    room = joined.room,
                    participant = %joined.id.wire(),
                    reason,
                    grace_s = self.hub.config.resume_grace.as_secs_f64(),
                    "connection dropped; kept for a resume"
                );
                self.joined = None;
            }
            Dropped::NotOurs => self.joined = None,
            Dropped::Leave => self.leave_because(reason).await,
        }
    }
}

/// Keeps one participant's subscribe connection carrying every other participant's tracks,
/// for as long as the participant is in its room (across the connections that resume it):
/// creates the subscriber session, then on each change offers the current set to the
/// participant's connection of the moment and waits for the answer (or a timeout) before
/// offering again, so offers never overtake answers. While the participant has no connection
/// nothing is offered; when one takes it over, the current set is offered again. On
/// `resubscribe` the session is replaced by a new one, whose first offer says
/// `"new_session": true`. It stops only between media calls, so a session it creates is either
/// bound to the participant (and closed when it leaves) or closed here.
async fn renegotiate_loop<M: MediaPlane>(
    hub: Arc<Hub<M>>,
    room: String,
    id: ParticipantId,
    changed: Arc<Notify>,
    signals: Arc<ParticipantSignals>,
) {
    // Sends to the participant's current connection; false if it has none.
    let send = |message: Value| {
        hub.with_room(&room, |r| r.get(id).and_then(|p| p.outbox.clone()))
            .flatten()
            .is_some_and(|outbox| outbox.send(Outbound::Text(message.to_string())))
    };
    let send_error = |message: String| {
        send(json!({"type": "error", "code": "media_error", "message": message}));
    };
    let mut subscriber: Option<SessionId> = None;
    // What the client was last offered; None when that is unknown (a connection took the
    // participant over), so that the current set is offered again even if unchanged.
    let mut offered: Option<Vec<(TrackId, ParticipantId)>> = Some(Vec::new());
    let mut new_session = false;
    loop {
        let session = match subscriber {
            Some(session) => session,
            None => match hub.media.create_subscriber(&room).await {
                Ok(session) => {
                    if !hub.bind_session(&room, id, session, false) {
                        hub.media.close(session).await;
                        return;
                    }
                    tracing::info!(
                        room,
                        participant = %id.wire(),
                        session = session.0,
                        via = "ws",
                        "subscribe"
                    );
                    subscriber = Some(session);
                    offered = Some(Vec::new());
                    new_session = true;
                    session
                }
                Err(error) => {
                    send_error(format!("no subscribe connection: {error}"));
                    // Until the client asks again.
                    tokio::select! {
                        () = signals.stop.notified() => return,
                        () = signals.resubscribe.notified() => continue,
                    }
                }
            },
        };
        let wanted = hub.with_room(&room, |r| {
            r.get(id).map(|p| (r.tracks_for(id), p.outbox.is_some()))
        });
        let Some(Some((wanted, connected))) = wanted else {
            return;
        };
        let mut awaiting_answer = false;
        if connected && offered.as_ref() != Some(&wanted) {
            let ids: Vec<TrackId> = wanted.iter().map(|(track, _)| *track).collect();
            match hub.media.offer_tracks(session, &ids).await {
                Ok(offer) => {
                    let mut mids = Map::new();
                    for (mid, track) in &offer.mids {
                        if let Some((_, owner)) = wanted.iter().find(|(t, _)| t == track) {
                            let entry =
                                json!({"participant": owner.wire(), "track": track_wire(*track)});
                            mids.insert(mid.clone(), entry);
                        }
                    }
                    let mut message =
                        json!({"type": "subscribe", "sdp": offer.sdp, "tracks": mids});
                    if new_session {
                        resume::insert_field(&mut message, "new_session", Value::Bool(true));
                    }
                    // Not sent: the connection is dropping; the next one is offered afresh.
                    if send(message) {
                        new_session = false;
                        awaiting_answer = true;
                    }
                    offered = Some(wanted);
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
                changed.notified().await;
            }
        };
        tokio::select! {
            () = signals.stop.notified() => return,
            () = signals.resubscribe.notified() => {
                if hub.unbind_session(&room, id, session, false) {
                    hub.media.close(session).await;
                }
                subscriber = None;
            }
            () = signals.attached.notified() => {
                // Offered again only if something was: the first offer waits for tracks.
                if offered.as_ref().is_some_and(|o| !o.is_empty()) || !new_session {
                    offered = None;
                }
            }
            () = next => {}
        }
    }
}
