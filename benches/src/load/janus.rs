//! Drives Janus's videoroom plugin over Janus's HTTP (REST) API, so the load generator runs the
//! same scenarios against Janus as against Sluice and the bare forwarder.
//!
//! One Janus session per target holds every handle: a control handle that creates rooms, one
//! handle per publisher (`joinandconfigure` with the client's offer, Janus answers) and one per
//! subscription (`join` as subscriber, Janus offers, the client answers, `start`). Janus replies
//! to plugin messages asynchronously on the session's long poll, so a background thread polls
//! `GET /janus/<session>` and hands each event to the request waiting for its transaction; the
//! same thread sends keep-alives. Every call blocks with a timeout and its error names the
//! request. Signaling is setup, never on the measured packet path.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use benches::load::janus::JanusTarget;
//! use benches::load::target::Target;
//! let mut janus = JanusTarget::connect("http://127.0.0.1:8088/janus", "janus")?;
//! janus.prepare_room("meeting", 4, 12)?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

use super::target::{Publication, Resource, SdpSide, Target};

const VIDEOROOM: &str = "janus.plugin.videoroom";
/// One HTTP request/response (Janus acknowledges plugin messages at once).
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The plugin's asynchronous reply to a message (ICE gathering and SDP work happen first).
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// Janus returns a long poll after 30 s without events; the client waits a little longer.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(40);
/// Well inside the `session_timeout` of benches/janus/janus.jcfg.in (600 s) and Janus's 60 s
/// default.
const KEEPALIVE_PERIOD: Duration = Duration::from_secs(25);
/// How long a subscription waits for its publisher's PeerConnection to come up: Janus answers
/// "No such feed" until the publisher's ICE and DTLS are done.
const FEED_WAIT: Duration = Duration::from_secs(10);
/// The long poller gives up on a Janus that stops answering after this many failures in a row
/// (0.2 s apart).
const POLL_FAILURES_MAX: u32 = 50;
/// Videoroom error: the feed does not exist or is not publishing yet.
const NO_SUCH_FEED: i64 = 428;
/// Rooms created implicitly by a publish without `prepare_room` accept this many publishers.
const IMPLICIT_ROOM_PUBLISHERS: usize = 64;
/// The videoroom sends REMB with this cap to publishers; well above the load's 1.5 Mbit/s so
/// that Janus never asks a publisher to slow down.
const ROOM_BITRATE: u64 = 8_000_000;

/// A [`Target`] that is a Janus server with its videoroom plugin.
#[derive(Debug)]
pub struct JanusTarget {
    label: String,
    session: Arc<JanusSession>,
    control_handle: u64,
    /// Scenario room names to Janus's numeric room ids (chosen by Janus at creation).
    rooms: HashMap<String, u64>,
}

impl JanusTarget {
    /// Creates a Janus session at `base_url` (the API root, `http://127.0.0.1:8088/janus`; a
    /// URL without a path gets Janus's default `/janus`) and starts its long poller.
    pub fn connect(base_url: &str, label: &str) -> anyhow::Result<Self> {
        let base_url = api_root(base_url);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(HTTP_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let created = post(
            &agent,
            &base_url,
            json!({"janus": "create"}),
            "create session",
        )?;
        let session_id = data_id(&created).context("Janus create session: no session id")?;
        let session = Arc::new(JanusSession {
            agent,
            id: session_id,
            url: format!("{base_url}/{session_id}"),
            root: base_url,
            waiters: Mutex::new(HashMap::new()),
            next_transaction: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
        });
        {
            // Not joined: it ends by itself once the session is destroyed (see Drop).
            let session = Arc::clone(&session);
            thread::Builder::new()
                .name(format!("janus-poll-{label}"))
                .spawn(move || session.poll_events())
                .context("spawning the Janus long poller")?;
        }
        let mut target = Self {
            label: label.to_owned(),
            session,
            control_handle: 0,
            rooms: HashMap::new(),
        };
        target.control_handle = target.session.attach()?;
        Ok(target)
    }

    /// Janus's numeric id of a room this target prepared.
    pub fn room_id(&self, room: &str) -> Option<u64> {
        self.rooms.get(room).copied()
    }

    /// The feed ids of the publishers Janus lists in `room` (its `listparticipants`).
    pub fn publisher_ids(&self, room: &str) -> anyhow::Result<Vec<u64>> {
        let room_id = self
            .room_id(room)
            .ok_or_else(|| anyhow!("room {room:?} was not prepared"))?;
        let reply = self.session.request(
            self.control_handle,
            json!({"request": "listparticipants", "room": room_id}),
            None,
            "videoroom listparticipants",
        )?;
        let participants = plugin_data(&reply)
            .and_then(|data| data.get("participants"))
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("Janus listparticipants: no participants in {reply}"))?;
        Ok(participants
            .iter()
            .filter(|p| p.get("publisher").and_then(Value::as_bool) == Some(true))
            .filter_map(|p| p.get("id").and_then(Value::as_u64))
            .collect())
    }

    /// Creates a videoroom for `publishers` publishers with extra `create` parameters (Janus's
    /// names, such as `{"dummy_publisher": true}`) and remembers it as `room`.
    pub fn prepare_room_with(
        &mut self,
        room: &str,
        publishers: usize,
        extra: &Value,
    ) -> anyhow::Result<u64> {
        let mut create = json!({
            "request": "create",
            "description": room,
            "is_private": true,
            "publishers": publishers.max(1),
            "bitrate": ROOM_BITRATE,
            "audiocodec": "opus",
            "videocodec": "vp8",
        });
        if let (Some(create), Some(extra)) = (create.as_object_mut(), extra.as_object()) {
            create.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let reply = self
            .session
            .request(self.control_handle, create, None, "videoroom create")?;
        let room_id = plugin_data(&reply)
            .and_then(|data| data.get("room"))
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("Janus videoroom create: no room id in {reply}"))?;
        self.rooms.insert(room.to_owned(), room_id);
        Ok(room_id)
    }

    fn room_or_create(&mut self, room: &str) -> anyhow::Result<u64> {
        match self.room_id(room) {
            Some(id) => Ok(id),
            None => self.prepare_room_with(room, IMPLICIT_ROOM_PUBLISHERS, &Value::Null),
        }
    }

    fn resource(&self, handle: u64) -> Resource {
        Resource(format!("{}/{handle}", self.session.id))
    }

    /// Joins `handle` to the room as a publisher with `offer` and returns Janus's answer.
    fn publish_on(
        &self,
        handle: u64,
        room_id: u64,
        name: &str,
        offer: &str,
    ) -> anyhow::Result<Publication> {
        let join = json!({
            "request": "joinandconfigure",
            "ptype": "publisher",
            "room": room_id,
            "display": name,
        });
        let jsep = json!({"type": "offer", "sdp": offer, "trickle": false});
        let event = match self
            .session
            .message(handle, join, Some(jsep), "videoroom publish")?
        {
            MessageReply::Event(event) => event,
            MessageReply::PluginError { code, reason } => {
                bail!("Janus publish of {name:?} in room {room_id}: error {code}: {reason}")
            }
        };
        let answer = jsep_sdp(&event, "answer")
            .with_context(|| format!("Janus publish of {name:?}: no answer in {event}"))?;
        let feed = plugin_data(&event)
            .and_then(|data| data.get("id"))
            .and_then(Value::as_u64)
            .ok_or_else(|| anyhow!("Janus publish of {name:?}: no publisher id in {event}"))?;
        Ok(Publication {
            answer,
            publisher_id: feed.to_string(),
            resource: self.resource(handle),
        })
    }

    /// Subscribes `handle` to `feed`: Janus offers, `side` answers, `start` completes it.
    fn subscribe_on(
        &self,
        handle: u64,
        room_id: u64,
        feed: u64,
        side: &mut dyn SdpSide,
    ) -> anyhow::Result<Resource> {
        let offer = self.join_subscriber(handle, room_id, feed)?;
        let answer = side
            .answer(&offer)
            .context("answering Janus's subscriber offer")?;
        let jsep = json!({"type": "answer", "sdp": answer, "trickle": false});
        match self.session.message(
            handle,
            json!({"request": "start"}),
            Some(jsep),
            "videoroom start",
        )? {
            MessageReply::Event(_) => Ok(self.resource(handle)),
            MessageReply::PluginError { code, reason } => {
                bail!("Janus start of the subscription to feed {feed}: error {code}: {reason}")
            }
        }
    }

    /// Joins `handle` to `feed` as a subscriber and returns Janus's offer, retrying while the
    /// publisher is not yet up.
    fn join_subscriber(&self, handle: u64, room_id: u64, feed: u64) -> anyhow::Result<String> {
        let deadline = Instant::now() + FEED_WAIT;
        loop {
            let join = json!({
                "request": "join",
                "ptype": "subscriber",
                "room": room_id,
                "streams": [{"feed": feed}],
            });
            match self
                .session
                .message(handle, join, None, "videoroom join as subscriber")?
            {
                MessageReply::Event(event) => {
                    return jsep_sdp(&event, "offer").with_context(|| {
                        format!("Janus subscriber join to feed {feed}: no offer in {event}")
                    });
                }
                MessageReply::PluginError { code, .. }
                    if code == NO_SUCH_FEED && Instant::now() < deadline =>
                {
                    thread::sleep(Duration::from_millis(100));
                }
                MessageReply::PluginError { code, reason } => bail!(
                    "Janus subscriber join to feed {feed} in room {room_id}: error {code}: {reason}"
                ),
            }
        }
    }
}

impl Target for JanusTarget {
    fn label(&self) -> &str {
        &self.label
    }

    /// Janus has no subscriber limit per room; `subscribers` needs no setting.
    fn prepare_room(
        &mut self,
        room: &str,
        publishers: usize,
        _subscribers: usize,
    ) -> anyhow::Result<()> {
        self.prepare_room_with(room, publishers, &Value::Null)
            .map(|_| ())
    }

    fn publish(&mut self, room: &str, name: &str, offer: &str) -> anyhow::Result<Publication> {
        let room_id = self.room_or_create(room)?;
        let handle = self.session.attach()?;
        let publication = self.publish_on(handle, room_id, name, offer);
        self.session.detach_on_error(handle, publication)
    }

    fn subscribe(
        &mut self,
        room: &str,
        publication: &Publication,
        side: &mut dyn SdpSide,
    ) -> anyhow::Result<Resource> {
        let room_id = self
            .room_id(room)
            .ok_or_else(|| anyhow!("Janus subscribe: room {room:?} was not prepared here"))?;
        let feed: u64 = publication.publisher_id.parse().with_context(|| {
            format!(
                "Janus subscribe: publisher id {:?} is not a feed",
                publication.publisher_id
            )
        })?;
        let handle = self.session.attach()?;
        let subscription = self.subscribe_on(handle, room_id, feed, side);
        self.session.detach_on_error(handle, subscription)
    }

    /// Detaching a handle also hangs up its PeerConnection and leaves the room.
    fn hang_up(&mut self, resource: &Resource) -> anyhow::Result<()> {
        let (session, handle) = resource
            .0
            .split_once('/')
            .ok_or_else(|| anyhow!("{:?} is not a Janus session/handle", resource.0))?;
        post(
            &self.session.agent,
            &format!("{}/{session}/{handle}", self.session.root),
            json!({"janus": "detach"}),
            "detach",
        )
        .map(|_| ())
    }
}

impl Drop for JanusTarget {
    /// Destroys the Janus session (and with it every handle). The long poller sees `stopping`
    /// when its poll returns and ends on its own, so a drop never waits out a long poll.
    fn drop(&mut self) {
        self.session.stopping.store(true, Ordering::Relaxed);
        // Best effort: Janus also times the session out.
        let _ = post(
            &self.session.agent,
            &self.session.url,
            json!({"janus": "destroy"}),
            "destroy",
        );
    }
}

/// A Janus session shared by the target and its long poller.
#[derive(Debug)]
struct JanusSession {
    agent: ureq::Agent,
    /// Janus's session id.
    id: u64,
    /// `<api root>/<session id>`.
    url: String,
    /// The API root, `http://127.0.0.1:8088/janus`.
    root: String,
    /// Transactions awaiting their asynchronous event from the long poll.
    waiters: Mutex<HashMap<String, Sender<Value>>>,
    next_transaction: AtomicU64,
    stopping: AtomicBool,
}

/// A plugin message's outcome: the event carrying the reply, or the plugin's error.
enum MessageReply {
    Event(Value),
    PluginError { code: i64, reason: String },
}

impl JanusSession {
    fn attach(&self) -> anyhow::Result<u64> {
        let reply = post(
            &self.agent,
            &self.url,
            json!({"janus": "attach", "plugin": VIDEOROOM}),
            "attach videoroom",
        )?;
        data_id(&reply).ok_or_else(|| anyhow!("Janus attach: no handle id in {reply}"))
    }

    /// Passes `result` through; on an error, first detaches the handle it was made on (best
    /// effort) so that a failed publish or subscribe leaves nothing behind in Janus.
    fn detach_on_error<T>(&self, handle: u64, result: anyhow::Result<T>) -> anyhow::Result<T> {
        if result.is_err() {
            let url = format!("{}/{handle}", self.url);
            let _ = post(&self.agent, &url, json!({"janus": "detach"}), "detach");
        }
        result
    }

    /// A synchronous plugin request (Janus replies in the HTTP response).
    fn request(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
        what: &str,
    ) -> anyhow::Result<Value> {
        match self.message(handle, body, jsep, what)? {
            MessageReply::Event(reply) => Ok(reply),
            MessageReply::PluginError { code, reason } => {
                bail!("Janus {what}: error {code}: {reason}")
            }
        }
    }

    /// Sends a plugin message and returns its reply, from the HTTP response for synchronous
    /// requests or from the long poll when Janus acknowledges first.
    fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
        what: &str,
    ) -> anyhow::Result<MessageReply> {
        let transaction = format!("t{}", self.next_transaction.fetch_add(1, Ordering::Relaxed));
        let events = self.expect(&transaction);
        let mut message = json!({"janus": "message", "transaction": transaction, "body": body});
        if let (Some(message), Some(jsep)) = (message.as_object_mut(), jsep) {
            message.insert("jsep".to_owned(), jsep);
        }
        let reply = post(
            &self.agent,
            &format!("{}/{handle}", self.url),
            message,
            what,
        );
        let reply = match reply {
            Ok(reply) if reply.get("janus").and_then(Value::as_str) == Some("ack") => {
                self.wait(&transaction, &events, what)
            }
            other => other,
        };
        self.forget(&transaction);
        let reply = reply?;
        match plugin_data(&reply)
            .and_then(|data| data.get("error_code"))
            .and_then(Value::as_i64)
        {
            Some(code) => {
                let reason = plugin_data(&reply)
                    .and_then(|data| data.get("error"))
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                Ok(MessageReply::PluginError {
                    code,
                    reason: reason.to_owned(),
                })
            }
            None => Ok(MessageReply::Event(reply)),
        }
    }

    fn expect(&self, transaction: &str) -> Receiver<Value> {
        let (sender, receiver) = mpsc::channel();
        self.waiters_map().insert(transaction.to_owned(), sender);
        receiver
    }

    fn forget(&self, transaction: &str) {
        self.waiters_map().remove(transaction);
    }

    fn wait(
        &self,
        transaction: &str,
        events: &Receiver<Value>,
        what: &str,
    ) -> anyhow::Result<Value> {
        match events.recv_timeout(EVENT_TIMEOUT) {
            Ok(event) => Ok(event),
            Err(RecvTimeoutError::Timeout) => Err(anyhow!(
                "Janus {what}: no event for transaction {transaction} within {EVENT_TIMEOUT:?}"
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(anyhow!("Janus {what}: the session's long poll ended"))
            }
        }
    }

    fn waiters_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sender<Value>>> {
        // A waiter map left by a panicking thread is still consistent (single inserts/removes).
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The long poller: hands events to their waiters, reports PeerConnections that failed,
    /// keeps the session alive. Ends when the target is dropped or Janus stops answering.
    fn poll_events(&self) {
        let poll_url = format!("{}?maxev=100", self.url);
        let mut last_keepalive = Instant::now();
        let mut failures = 0;
        while !self.stopping.load(Ordering::Relaxed) {
            let events = self
                .agent
                .get(&poll_url)
                .config()
                .timeout_global(Some(LONG_POLL_TIMEOUT))
                .build()
                .call()
                .map_err(anyhow::Error::from)
                .and_then(|mut response| Ok(response.body_mut().read_to_string()?))
                .and_then(|text| Ok(serde_json::from_str::<Value>(&text)?));
            match events {
                Ok(Value::Array(events)) => events.into_iter().for_each(|e| self.dispatch(e)),
                Ok(event) => self.dispatch(event),
                Err(error) => {
                    failures += 1;
                    if failures >= POLL_FAILURES_MAX || self.stopping.load(Ordering::Relaxed) {
                        if !self.stopping.load(Ordering::Relaxed) {
                            eprintln!("janus: long poll of {} abandoned: {error:#}", self.url);
                        }
                        break;
                    }
                    thread::sleep(Duration::from_millis(200));
                    continue;
                }
            }
            failures = 0;
            if last_keepalive.elapsed() >= KEEPALIVE_PERIOD {
                last_keepalive = Instant::now();
                if let Err(error) = post(
                    &self.agent,
                    &self.url,
                    json!({"janus": "keepalive"}),
                    "keepalive",
                ) {
                    eprintln!("janus: {error:#}");
                }
            }
        }
        // Waiters see their channel closed rather than waiting out their timeout.
        self.waiters_map().clear();
    }

    fn dispatch(&self, event: Value) {
        if let Some(transaction) = event.get("transaction").and_then(Value::as_str)
            && let Some(waiter) = self.waiters_map().get(transaction)
        {
            // The waiter may have timed out meanwhile; its event is then dropped.
            let _ = waiter.send(event);
            return;
        }
        // Our own detach ends PeerConnections with "Close PC" or "Detach"; anything else is a
        // failure the operator should see (ICE failed, DTLS alert).
        if event.get("janus").and_then(Value::as_str) == Some("hangup") {
            let reason = event.get("reason").and_then(Value::as_str).unwrap_or("");
            if reason != "Close PC" && reason != "Detach" {
                let handle = event.get("sender").and_then(Value::as_u64).unwrap_or(0);
                eprintln!("janus: handle {handle} hung up: {reason}");
            }
        }
    }
}

/// POSTs a Janus API request and returns its JSON reply; a Janus-level error becomes an error
/// naming `what`.
fn post(agent: &ureq::Agent, url: &str, mut body: Value, what: &str) -> anyhow::Result<Value> {
    if let Some(body) = body.as_object_mut() {
        body.entry("transaction").or_insert_with(|| json!("sync"));
    }
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .with_context(|| format!("Janus {what}: POST {url}"))?;
    let status = response.status();
    let text = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("Janus {what}: reading the reply"))?;
    let reply: Value = serde_json::from_str(&text)
        .with_context(|| format!("Janus {what}: HTTP {status}, not JSON: {text:.200}"))?;
    if reply.get("janus").and_then(Value::as_str) == Some("error") {
        let code = reply
            .pointer("/error/code")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let reason = reply
            .pointer("/error/reason")
            .and_then(Value::as_str)
            .unwrap_or("");
        bail!("Janus {what}: error {code}: {reason}");
    }
    Ok(reply)
}

/// `data.id` of a create or attach reply.
fn data_id(reply: &Value) -> Option<u64> {
    reply.pointer("/data/id").and_then(Value::as_u64)
}

/// The videoroom plugin's part of a reply or event.
fn plugin_data(reply: &Value) -> Option<&Value> {
    reply.pointer("/plugindata/data")
}

/// The SDP of the event's JSEP if it is of `kind` (`offer` or `answer`).
fn jsep_sdp(event: &Value, kind: &str) -> Option<String> {
    let jsep = event.get("jsep")?;
    (jsep.get("type").and_then(Value::as_str) == Some(kind))
        .then(|| jsep.get("sdp").and_then(Value::as_str).map(str::to_owned))
        .flatten()
}

/// The API root: `base_url` without a trailing slash, with Janus's default `/janus` path when
/// it has none.
fn api_root(base_url: &str) -> String {
    let trimmed = base_url.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/janus")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_root_adds_the_default_path_only_when_missing() {
        assert_eq!(
            api_root("http://127.0.0.1:8088"),
            "http://127.0.0.1:8088/janus"
        );
        assert_eq!(
            api_root("http://127.0.0.1:8088/"),
            "http://127.0.0.1:8088/janus"
        );
        assert_eq!(
            api_root("http://127.0.0.1:8088/janus/"),
            "http://127.0.0.1:8088/janus"
        );
        assert_eq!(api_root("http://h:1/custom"), "http://h:1/custom");
    }

    #[test]
    fn jsep_sdp_takes_only_the_expected_kind() {
        let event = json!({"jsep": {"type": "offer", "sdp": "v=0"}});
        assert_eq!(jsep_sdp(&event, "offer").as_deref(), Some("v=0"));
        assert_eq!(jsep_sdp(&event, "answer"), None);
        assert_eq!(jsep_sdp(&json!({}), "offer"), None);
    }
}
