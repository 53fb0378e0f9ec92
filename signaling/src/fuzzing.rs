//! Fuzz harness of the room protocol: two WebSocket connections' text messages, driven through
//! the same connection handler and hub that serve real sockets, on a single-threaded runtime
//! with a media plane that answers at once and never fails on its own.
//!
//! The input is split into messages at newlines; the first byte of each message picks the
//! connection (bit 0), the rest is the text frame. The harness panics when an invariant
//! breaks: every message a client is sent is one JSON object with a string `type`; a room
//! keeps at most [`CHAT_HISTORY`] chat messages; stored names and chat texts are ones the
//! validators accept unchanged; a room holds at most the configured participants and tracks;
//! and once both connections left, no room remains.
//!
//! [`access_token`] fuzzes token verification and [`ice_fragment`] the trickle-ice-sdpfrag
//! parser of WHIP and WHEP `PATCH` (see their docs).

use std::future::{Future, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rtc_core::sdp::MediaKind;
use rtc_core::{SessionId, TrackId};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::SignalingConfig;
use crate::hub::Hub;
use crate::media::{
    LocalIceCredentials, MediaError, MediaEvent, MediaPlane, Played, Published, PublishedTrack,
    SubscriberOffer,
};
use crate::room::{CHAT_HISTORY, OUTBOX_CAPACITY, Outbound, Outbox};
use crate::validate;
use crate::ws::Connection;

/// A media plane that accepts every offer with one track per m-line, and every answer.
#[derive(Debug, Default)]
struct InstantMedia {
    next_id: AtomicU64,
}

impl InstantMedia {
    fn next(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

const ANSWER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

impl MediaPlane for InstantMedia {
    fn publish(
        &self,
        _room: &str,
        session: Option<SessionId>,
        offer: &str,
    ) -> impl Future<Output = Result<Published, MediaError>> + Send {
        let tracks: Vec<PublishedTrack> = offer
            .lines()
            .filter_map(|line| line.strip_prefix("m="))
            .enumerate()
            .map(|(index, media)| PublishedTrack {
                id: TrackId(self.next()),
                kind: match media.split(' ').next() {
                    Some("audio") => MediaKind::Audio,
                    Some("video") => MediaKind::Video,
                    _ => MediaKind::Other,
                },
                mid: index.to_string(),
            })
            .collect();
        let published = if tracks.is_empty() {
            Err(MediaError::BadSdp("no media section".to_owned()))
        } else {
            Ok(Published {
                session: session.unwrap_or(SessionId(self.next())),
                sdp: ANSWER.to_owned(),
                tracks,
            })
        };
        ready(published)
    }

    fn play(
        &self,
        _room: &str,
        _publisher: SessionId,
        _offer: &str,
    ) -> impl Future<Output = Result<Played, MediaError>> + Send {
        ready(Err(MediaError::Stopped))
    }

    fn create_subscriber(
        &self,
        _room: &str,
    ) -> impl Future<Output = Result<SessionId, MediaError>> + Send {
        ready(Ok(SessionId(self.next())))
    }

    fn offer_tracks(
        &self,
        _subscriber: SessionId,
        tracks: &[TrackId],
    ) -> impl Future<Output = Result<SubscriberOffer, MediaError>> + Send {
        let mids = tracks
            .iter()
            .enumerate()
            .map(|(index, track)| (index.to_string(), *track))
            .collect();
        ready(Ok(SubscriberOffer {
            sdp: ANSWER.to_owned(),
            mids,
        }))
    }

    fn offer_tracks_with_ice_restart(
        &self,
        subscriber: SessionId,
        tracks: &[TrackId],
    ) -> impl Future<Output = Result<SubscriberOffer, MediaError>> + Send {
        self.offer_tracks(subscriber, tracks)
    }

    fn answer_subscriber(
        &self,
        _subscriber: SessionId,
        _answer: &str,
    ) -> impl Future<Output = Result<(), MediaError>> + Send {
        ready(Ok(()))
    }

    fn restart_ice(
        &self,
        _session: SessionId,
        _remote_ufrag: &str,
        _remote_pwd: &str,
    ) -> impl Future<Output = Result<LocalIceCredentials, MediaError>> + Send {
        ready(Err(MediaError::UnknownSession))
    }

    fn close(&self, _session: SessionId) -> impl Future<Output = ()> + Send {
        ready(())
    }

    fn events(&self) -> Option<UnboundedReceiver<MediaEvent>> {
        None
    }

    fn metrics(&self) -> Vec<crate::MediaMetric> {
        Vec::new()
    }
}

/// One client: its connection handler and what the server queued for it.
struct Client {
    connection: Connection<InstantMedia>,
    received: mpsc::Receiver<Outbound>,
}

impl Client {
    fn new(hub: &Arc<Hub<InstantMedia>>) -> Self {
        let (outbox, received, _overflowed) = Outbox::new(OUTBOX_CAPACITY);
        Client {
            connection: Connection::new(hub.clone(), outbox),
            received,
        }
    }

    /// Reads everything queued for the client, as its socket writer would.
    fn drain(&mut self) {
        while let Ok(item) = self.received.try_recv() {
            let Outbound::Text(text) = item else {
                continue;
            };
            let message: Value = serde_json::from_str(&text).unwrap_or_default();
            assert!(
                message.get("type").and_then(Value::as_str).is_some(),
                "a message to the client is not a typed JSON object: {text}"
            );
        }
    }
}

/// Feeds newline-separated messages of two clients through the room protocol.
pub fn room_messages(data: &[u8]) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return;
    };
    runtime.block_on(run(data));
}

async fn run(data: &[u8]) {
    let config = SignalingConfig::default();
    let hub = Arc::new(Hub::new(Arc::new(InstantMedia::default()), config.clone()));
    let mut clients = [Client::new(&hub), Client::new(&hub)];
    for line in data.split(|b| *b == b'\n') {
        let [selector, text @ ..] = line else {
            continue;
        };
        let Some(client) = clients.get_mut(usize::from(selector & 1)) else {
            continue;
        };
        // The socket delivers only UTF-8 text frames within the size limit to the handler.
        let Ok(text) = std::str::from_utf8(text) else {
            continue;
        };
        if text.len() > config.max_message_bytes {
            continue;
        }
        client.connection.handle_text(text).await;
        // Let the renegotiation tasks offer the changed tracks.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        for client in &mut clients {
            client.drain();
        }
        check_rooms(&hub);
    }
    for client in &mut clients {
        client.connection.leave().await;
    }
    assert!(
        hub.state().rooms.is_empty(),
        "a room outlived its participants"
    );
}

fn check_rooms(hub: &Hub<InstantMedia>) {
    let state = hub.state();
    for room in state.rooms.values() {
        assert!(room.len() <= hub.config.max_participants);
        assert!(
            validate::room_name(&room.name).is_ok(),
            "unvalidated room name"
        );
        for participant in room.participants() {
            let name = participant.name.as_str();
            assert_eq!(validate::display_name(name), Ok(name), "unvalidated name");
            assert!(participant.tracks.len() <= hub.config.max_tracks);
        }
        let chat = room.chat_history();
        assert!(chat.len() <= CHAT_HISTORY, "chat history of {}", chat.len());
        for entry in chat {
            let text = entry.text.as_str();
            assert_eq!(validate::chat_text(text), Ok(text), "unvalidated chat text");
            let name = entry.name.as_str();
            assert_eq!(
                validate::display_name(name),
                Ok(name),
                "unvalidated chat name"
            );
        }
    }
}

/// The key and secret the token harness verifies with, and the time it verifies at.
const FUZZ_KEY: &str = "fuzz-key";
const FUZZ_SECRET: &str = "fuzz-secret-of-at-least-thirty-two-bytes";
const FUZZ_NOW: u64 = 1_800_000_000;

/// Fuzz harness of access-token verification. The first byte picks the mode: even, the rest
/// is a token (lossy UTF-8) to verify; odd, the rest is claims JSON that is signed with the
/// harness's key and then verified. It panics when verification accepts a token whose
/// header does not say HS256, when an accepted token's claims do not survive signing and
/// verifying again, when signed claims come back different, or when a grant check panics.
pub fn access_token(data: &[u8]) {
    use crate::auth::{AccessKeys, Action, AuthError, Claims, Grant};
    use base64::Engine as _;

    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(keys) = AccessKeys::single(FUZZ_KEY, FUZZ_SECRET) else {
        return;
    };
    let check_grant = |claims: &Claims| {
        let room = claims.video.room.clone().unwrap_or_default();
        let grant = Grant::from_claims(claims.clone());
        for action in [
            Action::Join(&room),
            Action::Publish(&room),
            Action::Subscribe(&room),
            Action::PublishData(&room),
            Action::Admin(&room),
            Action::Inspect(&room),
            Action::Join("another room"),
            Action::List,
            Action::Metrics,
        ] {
            let _ = grant.check(action);
        }
    };
    if mode & 1 == 0 {
        let token = String::from_utf8_lossy(rest);
        let Ok(claims) = keys.verify(&token, FUZZ_NOW) else {
            return;
        };
        let header = token.split('.').next().unwrap_or_default();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        assert_eq!(
            header
                .as_ref()
                .and_then(|h| h.get("alg"))
                .and_then(Value::as_str),
            Some("HS256"),
            "accepted a token not declared HS256"
        );
        let again = keys
            .sign(FUZZ_KEY, &claims)
            .map(|t| keys.verify(&t, FUZZ_NOW));
        assert_eq!(
            again,
            Ok(Ok(claims.clone())),
            "claims changed through a round trip"
        );
        check_grant(&claims);
    } else {
        let Ok(claims) = serde_json::from_slice::<Claims>(rest) else {
            return;
        };
        let Ok(token) = keys.sign(FUZZ_KEY, &claims) else {
            return;
        };
        let verified = keys.verify(&token, FUZZ_NOW);
        assert!(
            matches!(
                verified,
                Ok(_) | Err(AuthError::Expired | AuthError::NotYetValid | AuthError::Malformed)
            ),
            "a token signed with the right key was refused: {verified:?}"
        );
        if let Ok(verified) = verified {
            let expected = Claims {
                iss: Some(FUZZ_KEY.to_owned()),
                ..claims
            };
            assert_eq!(verified, expected, "signed claims came back different");
            check_grant(&verified);
        }
    }
}

/// Fuzz harness of the `application/trickle-ice-sdpfrag` parser (WHIP and WHEP `PATCH`): the
/// input (lossy UTF-8) is parsed; it panics when an accepted fragment carries credentials,
/// mids or candidates that the grammar refuses, or when writing the accepted parts back out
/// does not parse to the same ones.
pub fn ice_fragment(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(fragment) = crate::sdpfrag::parse(&text) else {
        return;
    };
    let ice_ok = |value: &str, min: usize| {
        (min..=256).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    if let Some(ufrag) = &fragment.ufrag {
        assert!(ice_ok(ufrag, 4), "accepted a=ice-ufrag {ufrag:?}");
    }
    if let Some(pwd) = &fragment.pwd {
        assert!(ice_ok(pwd, 22), "accepted a=ice-pwd {pwd:?}");
        assert!(fragment.ufrag.is_some(), "accepted a=ice-pwd alone");
    }
    for mid in &fragment.mids {
        assert!(
            !mid.is_empty() && !mid.contains(|c: char| c.is_whitespace() || c.is_control()),
            "accepted a=mid {mid:?}"
        );
    }
    assert!(fragment.candidates <= crate::sdpfrag::MAX_LINES);
    // The accepted parts, written back out, are a fragment that says the same.
    let mut again = String::new();
    if let Some(ufrag) = &fragment.ufrag {
        again.push_str(&format!("a=ice-ufrag:{ufrag}\r\n"));
    }
    if let Some(pwd) = &fragment.pwd {
        again.push_str(&format!("a=ice-pwd:{pwd}\r\n"));
    }
    for mid in &fragment.mids {
        again.push_str(&format!("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:{mid}\r\n"));
    }
    for _ in 0..fragment.candidates {
        again.push_str("a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\n");
    }
    if fragment.end_of_candidates {
        again.push_str("a=end-of-candidates\r\n");
    }
    assert_eq!(
        crate::sdpfrag::parse(&again).as_ref(),
        Ok(&fragment),
        "the accepted parts do not parse back the same"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragment_seeds_parse() {
        for seed in [
            &include_bytes!("../../fuzz/corpus/ice_fragment/restart")[..],
            &include_bytes!("../../fuzz/corpus/ice_fragment/trickle")[..],
        ] {
            let text = std::str::from_utf8(seed).unwrap();
            assert!(crate::sdpfrag::parse(text).is_ok(), "{text}");
            ice_fragment(seed);
        }
    }

    #[test]
    fn the_token_seeds_reach_the_accepting_path() {
        let keys = crate::auth::AccessKeys::single(FUZZ_KEY, FUZZ_SECRET).unwrap();
        for seed in [
            &include_bytes!("../../fuzz/corpus/access_token/valid_join")[..],
            &include_bytes!("../../fuzz/corpus/access_token/valid_admin")[..],
        ] {
            let token = std::str::from_utf8(&seed[1..]).unwrap();
            assert!(keys.verify(token, FUZZ_NOW).is_ok(), "{token}");
            access_token(seed);
        }
    }
}
