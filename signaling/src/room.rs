//! One room's state: its participants (with their tracks and mute state) and its recent chat.
//! A `Room` is plain data behind the hub's lock; it never awaits and never talks to the media
//! plane, so every rule here is a synchronous, testable step.

use std::collections::VecDeque;
use std::sync::Arc;

use rtc_core::media_api::TrackPriority;
use rtc_core::sdp::MediaKind;
use rtc_core::{SessionId, TrackId};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

/// How many chat messages a room keeps for late joiners.
pub const CHAT_HISTORY: usize = 100;

/// What a WebSocket connection's writer is asked to do.
#[derive(Debug)]
pub enum Outbound {
    /// Send one JSON text frame.
    Text(String),
    /// Send a close frame with this code and reason, then stop.
    Close(u16, &'static str),
    /// Send a WebSocket ping (the keepalive; see `ws::Keepalive`).
    Ping,
}

/// Messages a connection may have queued before it counts as too slow.
pub const OUTBOX_CAPACITY: usize = 1024;

/// The sending side of a connection's outgoing queue. The queue is bounded: a client that
/// stops reading is disconnected rather than growing the server's memory.
#[derive(Debug, Clone)]
pub struct Outbox {
    queue: mpsc::Sender<Outbound>,
    overflowed: Arc<Notify>,
}

impl Outbox {
    /// The outbox, its receiving end, and what is notified when the queue overflows.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Outbound>, Arc<Notify>) {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let overflowed = Arc::new(Notify::new());
        (
            Self {
                queue,
                overflowed: overflowed.clone(),
            },
            receiver,
            overflowed,
        )
    }

    /// Queues an item; false if the connection is gone or too far behind.
    pub fn send(&self, item: Outbound) -> bool {
        match self.queue.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether both are senders of the same connection's queue.
    pub fn same(&self, other: &Outbox) -> bool {
        self.queue.same_channel(&other.queue)
    }
}

/// A participant's id, `p<n>` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl ParticipantId {
    pub fn wire(self) -> String {
        format!("p{}", self.0)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let digits = text.strip_prefix('p')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(Self)
    }
}

pub fn track_wire(id: TrackId) -> String {
    format!("t{}", id.0)
}

/// A track id as [`track_wire`] writes it (`t` and digits).
pub fn parse_track_wire(text: &str) -> Option<TrackId> {
    let digits = text.strip_prefix('t')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(TrackId)
}

/// One published track as the room shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomTrack {
    pub id: TrackId,
    pub kind: MediaKind,
    /// `camera`, `microphone` or `screen`.
    pub source: String,
}

impl RoomTrack {
    fn to_json(&self) -> Value {
        let kind = match self.kind {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Application => "application",
            MediaKind::Other => "other",
        };
        json!({"id": track_wire(self.id), "kind": kind, "source": self.source})
    }
}

/// The media sessions and channels of one participant.
#[derive(Debug)]
pub struct Participant {
    pub id: ParticipantId,
    /// The identity (`sub`) of the participant's access token, when it had one.
    pub identity: Option<String>,
    /// Not shown to the others (a `hidden` grant): absent from their lists and events.
    pub hidden: bool,
    pub name: String,
    pub muted_audio: bool,
    pub muted_video: bool,
    pub tracks: Vec<RoomTrack>,
    pub publish: Option<SessionId>,
    pub subscribe: Option<SessionId>,
    /// The most this participant may publish, in bits per second: its token's
    /// `maxPublishBitrate`, or what the admin API set.
    pub max_publish_bitrate: Option<u64>,
    /// None for a WHIP publisher, which has no WebSocket.
    pub outbox: Option<Outbox>,
    /// Woken whenever the tracks this participant should receive change.
    pub renegotiate: Option<Arc<Notify>>,
    /// How good its downlink is (its subscribe connection's allocation reports).
    pub quality: crate::quality::QualityTracker,
}

impl Participant {
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "id": self.id.wire(),
            "name": self.name,
            "muted": {"audio": self.muted_audio, "video": self.muted_video},
            "tracks": self.tracks_json(),
        });
        if let (Some(identity), Value::Object(fields)) = (&self.identity, &mut value) {
            fields.insert("identity".into(), identity.as_str().into());
        }
        if let (Some(level), Value::Object(fields)) = (self.quality.level(), &mut value) {
            fields.insert("quality".into(), level.wire().into());
        }
        value
    }

    pub fn tracks_json(&self) -> Value {
        Value::Array(self.tracks.iter().map(RoomTrack::to_json).collect())
    }

    pub fn sessions(&self) -> impl Iterator<Item = SessionId> {
        self.publish.into_iter().chain(self.subscribe)
    }
}

#[derive(Debug, Clone)]
pub struct ChatEntry {
    pub from: ParticipantId,
    pub name: String,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}

impl ChatEntry {
    fn to_json(&self) -> Value {
        json!({"from": self.from.wire(), "name": self.name, "text": self.text, "at": self.at})
    }
}

/// A room: participants in the order they joined, and the last [`CHAT_HISTORY`] messages.
#[derive(Debug)]
pub struct Room {
    pub name: String,
    participants: Vec<Participant>,
    chat: VecDeque<ChatEntry>,
    /// The most each publisher of the room may send, in bits per second (admin API).
    pub max_publish_bitrate: Option<u64>,
    /// Who is speaking.
    pub speakers: crate::speaker::SpeakerDetector,
    /// The dominant speakers before the current one, the latest first (at most
    /// [`RECENT_SPEAKERS`]).
    recent_speakers: VecDeque<ParticipantId>,
    /// The priority the media plane was last given for each video track of the room.
    priorities: Vec<(TrackId, TrackPriority)>,
}

/// How many earlier dominant speakers keep a raised priority.
pub const RECENT_SPEAKERS: usize = 2;

impl Room {
    pub fn new(name: String) -> Self {
        Self {
            name,
            participants: Vec::new(),
            chat: VecDeque::new(),
            max_publish_bitrate: None,
            speakers: crate::speaker::SpeakerDetector::default(),
            recent_speakers: VecDeque::new(),
            priorities: Vec::new(),
        }
    }

    /// A participant's publish session and the lower of its own and the room's limit.
    pub fn publish_limit(&self, id: ParticipantId) -> Option<(SessionId, Option<u64>)> {
        let participant = self.get(id)?;
        let limit = [participant.max_publish_bitrate, self.max_publish_bitrate]
            .into_iter()
            .flatten()
            .min();
        Some((participant.publish?, limit))
    }

    /// Every publish session of the room with its participant's limit (see
    /// [`Room::publish_limit`]).
    pub fn publish_limits(&self) -> Vec<(SessionId, Option<u64>)> {
        self.participants
            .iter()
            .filter_map(|p| self.publish_limit(p.id))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.participants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    pub fn get(&self, id: ParticipantId) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == id)
    }

    pub fn get_mut(&mut self, id: ParticipantId) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| p.id == id)
    }

    /// The participants in the order they joined.
    pub fn participants(&self) -> impl ExactSizeIterator<Item = &Participant> {
        self.participants.iter()
    }

    /// The kept chat messages, oldest first (the fuzz harness checks their bounds).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn chat_history(&self) -> impl ExactSizeIterator<Item = &ChatEntry> {
        self.chat.iter()
    }

    /// The earliest-joined participant that publishes at least one track.
    pub fn first_publisher(&self) -> Option<&Participant> {
        self.participants
            .iter()
            .find(|p| !p.hidden && p.publish.is_some() && !p.tracks.is_empty())
    }

    /// The `joined` message for a newcomer: everyone else, and the chat history.
    pub fn joined_message(&self, newcomer: ParticipantId) -> Value {
        let others: Vec<Value> = self
            .participants
            .iter()
            .filter(|p| p.id != newcomer && !p.hidden)
            .map(Participant::to_json)
            .collect();
        let chat: Vec<Value> = self.chat.iter().map(ChatEntry::to_json).collect();
        let speaker = self.visible_speaker().map(ParticipantId::wire);
        json!({"type": "joined", "id": newcomer.wire(), "room": self.name,
               "participants": others, "chat": chat, "speaker": speaker})
    }

    /// Adds a participant and tells the others.
    pub fn add(&mut self, participant: Participant) {
        let announcement =
            json!({"type": "participant_joined", "participant": participant.to_json()});
        let id = participant.id;
        let hidden = participant.hidden;
        self.participants.push(participant);
        if hidden {
            return;
        }
        self.broadcast(&announcement, Some(id));
        if self.get(id).is_some_and(|p| !p.tracks.is_empty()) {
            self.renegotiate_others(id);
        }
    }

    /// Removes a participant and tells the others; returns it so its sessions can be closed.
    pub fn remove(&mut self, id: ParticipantId) -> Option<Participant> {
        let index = self.participants.iter().position(|p| p.id == id)?;
        let gone = self.participants.remove(index);
        self.speakers.remove(id);
        self.recent_speakers.retain(|&p| p != id);
        if gone.hidden {
            return Some(gone);
        }
        self.broadcast(&json!({"type": "participant_left", "id": id.wire()}), None);
        if !gone.tracks.is_empty() {
            self.renegotiate_others(id);
        }
        Some(gone)
    }

    /// Replaces a participant's tracks and tells the others.
    pub fn set_tracks(&mut self, id: ParticipantId, tracks: Vec<RoomTrack>) {
        let Some(participant) = self.get_mut(id) else {
            return;
        };
        if participant.tracks == tracks {
            return;
        }
        participant.tracks = tracks;
        if participant.hidden {
            return;
        }
        let message = json!({"type": "tracks", "participant": id.wire(),
                             "tracks": participant.tracks_json()});
        self.broadcast(&message, Some(id));
        self.renegotiate_others(id);
    }

    pub fn set_muted(&mut self, id: ParticipantId, video: bool, muted: bool) {
        let Some(participant) = self.get_mut(id) else {
            return;
        };
        if video {
            participant.muted_video = muted;
        } else {
            participant.muted_audio = muted;
        }
        if participant.hidden {
            return;
        }
        let kind = if video { "video" } else { "audio" };
        let message =
            json!({"type": "mute", "participant": id.wire(), "kind": kind, "muted": muted});
        self.broadcast(&message, Some(id));
    }

    /// An administrator muted or unmuted one of `id`'s tracks: the room hears of it like a
    /// participant's own mute, and the participant itself is told too (`by: "admin"`), so
    /// that its client can mute locally. Returns the track's kind, or None if there is no
    /// such participant or track.
    pub fn admin_mute(
        &mut self,
        id: ParticipantId,
        track: TrackId,
        muted: bool,
    ) -> Option<MediaKind> {
        let participant = self.get_mut(id)?;
        let kind = participant.tracks.iter().find(|t| t.id == track)?.kind;
        let video = match kind {
            MediaKind::Audio => false,
            MediaKind::Video => true,
            MediaKind::Application | MediaKind::Other => return Some(kind),
        };
        if video {
            participant.muted_video = muted;
        } else {
            participant.muted_audio = muted;
        }
        let message = json!({"type": "mute", "participant": id.wire(),
                             "kind": if video { "video" } else { "audio" },
                             "track": track_wire(track), "muted": muted, "by": "admin"});
        if participant.hidden {
            if let Some(outbox) = &participant.outbox {
                outbox.send(Outbound::Text(message.to_string()));
            }
        } else {
            self.broadcast(&message, None);
        }
        Some(kind)
    }

    /// Keeps the message for late joiners and sends it to everyone, the sender included, so
    /// that every client shows the same text with the same timestamp.
    pub fn chat(&mut self, entry: ChatEntry) {
        let mut message = entry.to_json();
        if let Value::Object(fields) = &mut message {
            fields.insert("type".into(), "chat".into());
        }
        self.chat.push_back(entry);
        while self.chat.len() > CHAT_HISTORY {
            self.chat.pop_front();
        }
        self.broadcast(&message, None);
    }

    /// The tracks `id` should receive: every other participant's, in join order.
    pub fn tracks_for(&self, id: ParticipantId) -> Vec<(TrackId, ParticipantId)> {
        self.participants
            .iter()
            .filter(|p| p.id != id && !p.hidden)
            .flat_map(|p| p.tracks.iter().map(move |t| (t.id, p.id)))
            .collect()
    }

    /// The dominant speaker, unless hidden.
    pub fn visible_speaker(&self) -> Option<ParticipantId> {
        self.speakers
            .dominant()
            .filter(|id| self.get(*id).is_some_and(|p| !p.hidden))
    }

    /// One 100 ms report of `id`'s audio; tells everyone when the dominant speaker changed
    /// (`{"type": "speaker", "participant": "p3"}`), and returns whether it did. A hidden
    /// participant is never announced.
    pub fn audio_activity(
        &mut self,
        now: std::time::Instant,
        id: ParticipantId,
        packets: u16,
        voiced: u16,
    ) -> bool {
        if self.get(id).is_none() {
            return false;
        }
        let before = self.speakers.dominant();
        self.speakers
            .report(now, id, u32::from(packets), u32::from(voiced));
        let Some(speaker) = self.speakers.decide(now) else {
            return false;
        };
        if let Some(before) = before.filter(|&b| b != speaker) {
            self.recent_speakers
                .retain(|&p| p != before && p != speaker);
            self.recent_speakers.push_front(before);
            self.recent_speakers.truncate(RECENT_SPEAKERS);
        }
        if self.get(speaker).is_some_and(|p| !p.hidden) {
            self.broadcast(
                &json!({"type": "speaker", "participant": speaker.wire()}),
                None,
            );
        }
        true
    }

    /// The priority each video track of the room should have in its receivers' bandwidth:
    /// screen shares first, then the dominant speaker's camera, then the recent speakers'.
    /// Returns the tracks whose priority differs from what the media plane was last given
    /// (and takes the new ones as given).
    pub fn priority_changes(&mut self) -> Vec<(TrackId, TrackPriority)> {
        let speaker = self.visible_speaker();
        let wanted: Vec<(TrackId, TrackPriority)> = self
            .participants
            .iter()
            .flat_map(|p| {
                let recent = self.recent_speakers.contains(&p.id);
                p.tracks
                    .iter()
                    .filter(|t| t.kind == MediaKind::Video)
                    .map(move |t| {
                        let priority = if t.source == "screen" {
                            TrackPriority::SCREEN_SHARE
                        } else if Some(p.id) == speaker {
                            TrackPriority::DOMINANT_SPEAKER
                        } else if recent {
                            TrackPriority::RECENT_SPEAKER
                        } else {
                            TrackPriority::NORMAL
                        };
                        (t.id, priority)
                    })
            })
            .collect();
        let changes = wanted
            .iter()
            .filter(|(track, priority)| {
                let given = self
                    .priorities
                    .iter()
                    .find(|(t, _)| t == track)
                    .map_or(TrackPriority::NORMAL, |(_, p)| *p);
                given != *priority
            })
            .copied()
            .collect();
        self.priorities = wanted;
        changes
    }

    /// One allocation report of `id`'s downlink: when its level changes, everyone is told
    /// (`{"type": "quality", "participant": "p3", "quality": "poor"}`; a hidden participant
    /// only itself).
    pub fn downlink_quality(&mut self, id: ParticipantId, report: crate::quality::DownlinkReport) {
        let Some(participant) = self.get_mut(id) else {
            return;
        };
        participant.quality.last = Some(report);
        let Some(changed) = participant.quality.report(report.level()) else {
            return;
        };
        let message =
            json!({"type": "quality", "participant": id.wire(), "quality": changed.wire()});
        if participant.hidden {
            if let Some(outbox) = &participant.outbox {
                outbox.send(Outbound::Text(message.to_string()));
            }
            return;
        }
        self.broadcast(&message, None);
    }

    /// Sends `message` to every participant with a WebSocket except `except`.
    pub fn broadcast(&self, message: &Value, except: Option<ParticipantId>) {
        let text = message.to_string();
        for participant in self.participants.iter().filter(|p| Some(p.id) != except) {
            if let Some(outbox) = &participant.outbox {
                // A closed or overflowing outbox means that connection is leaving; it cleans
                // up after itself.
                outbox.send(Outbound::Text(text.clone()));
            }
        }
    }

    fn renegotiate_others(&self, changed: ParticipantId) {
        for participant in self.participants.iter().filter(|p| p.id != changed) {
            if let Some(notify) = &participant.renegotiate {
                notify.notify_one();
            }
        }
    }
}

/// The source of each published track: what the client said, else the first audio track is
/// the microphone, the first video track the camera, and further video tracks screens.
pub fn track_sources<'a>(
    tracks: impl Iterator<Item = (&'a str, MediaKind)>,
    declared: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut seen_video = false;
    tracks
        .map(|(mid, kind)| {
            if let Some(source) = declared(mid) {
                return source;
            }
            match kind {
                MediaKind::Audio => "microphone".to_owned(),
                MediaKind::Video if !seen_video => {
                    seen_video = true;
                    "camera".to_owned()
                }
                _ => "screen".to_owned(),
            }
        })
        .collect()
}

/// The room's view of a publisher's tracks, with their sources (see [`track_sources`]).
pub fn room_tracks(
    published: &[crate::PublishedTrack],
    declared: impl Fn(&str) -> Option<String>,
) -> Vec<RoomTrack> {
    let sources = track_sources(published.iter().map(|t| (t.mid.as_str(), t.kind)), declared);
    published
        .iter()
        .zip(sources)
        .map(|(t, source)| RoomTrack {
            id: t.id,
            kind: t.kind,
            source,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(id: u64, outbox: Option<Outbox>) -> Participant {
        crate::protocol::participant(
            ParticipantId(id),
            &format!("n{id}"),
            outbox,
            Some(Arc::new(Notify::new())),
        )
    }

    fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(Outbound::Text(text)) = rx.try_recv() {
            out.push(serde_json::from_str(&text).unwrap());
        }
        out
    }

    #[test]
    fn participant_ids_round_trip_and_reject_junk() {
        assert_eq!(ParticipantId::parse("p17"), Some(ParticipantId(17)));
        assert_eq!(ParticipantId(17).wire(), "p17");
        for junk in [
            "",
            "p",
            "17",
            "p-1",
            "p1x",
            "P1",
            "p99999999999999999999999",
        ] {
            assert_eq!(ParticipantId::parse(junk), None, "{junk}");
        }
    }

    #[test]
    fn a_full_outbox_reports_overflow() {
        let (outbox, mut rx, overflowed) = Outbox::new(2);
        assert!(outbox.send(Outbound::Text("1".into())));
        assert!(outbox.send(Outbound::Text("2".into())));
        assert!(!outbox.send(Outbound::Text("3".into())));
        let notified = overflowed.notified();
        futures_util::pin_mut!(notified);
        assert!(
            futures_util::FutureExt::now_or_never(notified).is_some(),
            "the permit was stored"
        );
        assert!(matches!(rx.try_recv(), Ok(Outbound::Text(t)) if t == "1"));
        drop(rx);
        assert!(!outbox.send(Outbound::Text("4".into())));
    }

    #[test]
    fn chat_keeps_the_last_hundred_oldest_first() {
        let mut room = Room::new("r".into());
        for i in 0..(CHAT_HISTORY + 5) {
            room.chat(ChatEntry {
                from: ParticipantId(1),
                name: "a".into(),
                text: i.to_string(),
                at: 0,
            });
        }
        let joined = room.joined_message(ParticipantId(2));
        let chat = joined["chat"].as_array().unwrap();
        assert_eq!(chat.len(), CHAT_HISTORY);
        assert_eq!(chat[0]["text"], "5");
        assert_eq!(
            chat[CHAT_HISTORY - 1]["text"],
            (CHAT_HISTORY + 4).to_string()
        );
    }

    #[test]
    fn tracks_go_to_others_and_are_never_offered_back() {
        let (tx1, mut rx1, _) = Outbox::new(16);
        let (tx2, mut rx2, _) = Outbox::new(16);
        let mut room = Room::new("r".into());
        room.add(participant(1, Some(tx1)));
        room.add(participant(2, Some(tx2)));
        assert_eq!(drain(&mut rx1)[0]["type"], "participant_joined");
        let track = RoomTrack {
            id: TrackId(5),
            kind: MediaKind::Video,
            source: "camera".into(),
        };
        room.set_tracks(ParticipantId(1), vec![track.clone()]);
        assert!(
            drain(&mut rx1).is_empty(),
            "the publisher is not told its own tracks"
        );
        let to_two = drain(&mut rx2);
        assert_eq!(to_two[0]["type"], "tracks");
        assert_eq!(to_two[0]["tracks"][0]["id"], "t5");
        assert_eq!(
            room.tracks_for(ParticipantId(2)),
            vec![(TrackId(5), ParticipantId(1))]
        );
        assert!(room.tracks_for(ParticipantId(1)).is_empty());
        // An unchanged track list is not announced again.
        room.set_tracks(ParticipantId(1), vec![track]);
        assert!(drain(&mut rx2).is_empty());
        room.remove(ParticipantId(1));
        assert_eq!(drain(&mut rx2)[0]["type"], "participant_left");
        assert!(room.tracks_for(ParticipantId(2)).is_empty());
    }

    #[test]
    fn sources_follow_declarations_then_kind_order() {
        let tracks = [
            ("0", MediaKind::Audio),
            ("1", MediaKind::Video),
            ("2", MediaKind::Video),
        ];
        let plain = track_sources(tracks.iter().map(|(m, k)| (*m, *k)), |_| None);
        assert_eq!(plain, ["microphone", "camera", "screen"]);
        let declared = track_sources(tracks.iter().map(|(m, k)| (*m, *k)), |mid| {
            (mid == "1").then(|| "screen".to_owned())
        });
        assert_eq!(declared, ["microphone", "screen", "camera"]);
    }
}
