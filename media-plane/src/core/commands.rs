//! The commands signaling sends a worker core, and what each one does to the sessions:
//! answering publishers' and players' offers, creating subscriber connections and offering
//! them tracks, applying their answers, ICE restarts and closing.

use std::time::Instant;

use ice_lite::{IceCredentials, IceLiteAgent, IceLiteConfig};
use packet_router::{MediaKind, PublishedStream, Router, SessionId, SubscriptionId, TrackId};
use rand::Rng;
use rtc_core::Ssrc;
use rtc_core::media_api::{
    LayerCap, LocalIceCredentials, Played, Published, PublishedTrack, SubscriberOffer,
    TrackPriority, TrackView,
};
use rtc_core::sdp::{
    Capabilities, NegotiatedMedia, NegotiatedSession, OutgoingTrack, RtcpFeedback, answer_offer,
    answer_offer_sending, apply_subscriber_answer, build_subscriber_offer,
};

use super::WorkerCore;
use crate::SfuError;
use crate::negotiation::{
    codec_params, credentials_for, dtls_role, extension_ids, local_params, receiving,
    remote_credentials, remote_fingerprint, sdp_session_id, sending, subscribed_stream,
    subscriber_offer_tracks,
};
use crate::peer::{EndReason, PeerTransport};
use crate::session::{
    LearnedLayer, PendingSubscription, Session, SessionRole, Slot, SubscriberState,
};

/// The most tracks one publisher may send.
pub const MAX_TRACKS_PER_PUBLISHER: usize = 8;

/// The most m-lines a subscriber connection accumulates (inactive ones included).
pub const MAX_SUBSCRIBER_SLOTS: usize = 256;

/// A request from signaling to a worker core.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Command {
    /// A publisher's offer: a new session (`session` None) or a renegotiation of one.
    Publish {
        room: String,
        session: Option<SessionId>,
        offer: String,
    },
    /// WHEP: a player's receive-only offer for `publisher`'s audio and video.
    Play {
        room: String,
        publisher: SessionId,
        offer: String,
    },
    /// A subscriber connection whose tracks Sluice offers.
    CreateSubscriber { room: String },
    /// Sluice's (re)offer to a subscriber carrying exactly `tracks`; with `restart_ice`, new
    /// ICE credentials of Sluice's that the answer completes.
    OfferTracks {
        session: SessionId,
        tracks: Vec<TrackId>,
        restart_ice: bool,
    },
    /// A subscriber's answer to Sluice's last offer.
    AnswerSubscriber { session: SessionId, answer: String },
    /// ICE restart of a session with the peer's new credentials.
    RestartIce {
        session: SessionId,
        remote_ufrag: String,
        remote_pwd: String,
    },
    /// Caps the simulcast layer (a rank in the track's layer order, 0 the lowest resolution)
    /// and the temporal layer a receiving session gets of `track`; the default cap lifts
    /// both. Applies now if the track is bound, else once it is.
    SetLayerCap {
        session: SessionId,
        track: TrackId,
        cap: LayerCap,
    },
    /// How a receiving session shows `track` (adaptive stream: tile size, visibility, pin).
    /// Applies now if the track is bound, else once it is.
    SetTrackView {
        session: SessionId,
        track: TrackId,
        view: TrackView,
    },
    /// A track's priority in every receiver's allocation (screen share, dominant speaker),
    /// sent to the worker of the track's publisher.
    SetTrackPriority {
        track: TrackId,
        priority: TrackPriority,
    },
    /// The most a publisher session may send, in bits per second (`None`: only the core's
    /// [`crate::CoreConfig::publisher_max_bitrate`]); the lower of the two is told to it with
    /// REMB once a second. For per-room and per-participant limits.
    SetPublisherMaxBitrate {
        session: SessionId,
        max_bitrate: Option<u64>,
    },
    /// Ends a session (signaling closed it).
    Close { session: SessionId },
}

/// What a command returns, one variant per command.
#[derive(Debug)]
#[non_exhaustive]
pub enum Reply {
    Published(Result<Published, SfuError>),
    Played(Result<Played, SfuError>),
    SubscriberCreated(Result<SessionId, SfuError>),
    Offer(Result<SubscriberOffer, SfuError>),
    Answered(Result<(), SfuError>),
    IceRestarted(Result<LocalIceCredentials, SfuError>),
    Closed,
}

impl WorkerCore {
    /// Executes a command from signaling. Only the sessions it touches are rescheduled.
    pub fn handle_command(&mut self, now: Instant, command: Command) -> Reply {
        match command {
            Command::Publish {
                room,
                session,
                offer,
            } => Reply::Published(match session {
                None => self.publish(now, room, &offer),
                Some(session) => self.republish(now, session, &offer),
            }),
            Command::Play {
                room,
                publisher,
                offer,
            } => Reply::Played(self.play(now, &room, publisher, &offer)),
            Command::CreateSubscriber { room } => {
                Reply::SubscriberCreated(self.create_subscriber(now, room))
            }
            Command::OfferTracks {
                session,
                tracks,
                restart_ice,
            } => Reply::Offer(self.offer_tracks(session, &tracks, restart_ice)),
            Command::AnswerSubscriber { session, answer } => {
                Reply::Answered(self.answer_subscriber(now, session, &answer))
            }
            Command::RestartIce {
                session,
                remote_ufrag,
                remote_pwd,
            } => Reply::IceRestarted(self.restart_ice(now, session, &remote_ufrag, &remote_pwd)),
            Command::SetLayerCap {
                session,
                track,
                cap,
            } => Reply::Answered(self.set_layer_cap(session, track, cap)),
            Command::SetTrackView {
                session,
                track,
                view,
            } => Reply::Answered(self.set_track_view(now, session, track, view)),
            Command::SetTrackPriority { track, priority } => Reply::Answered(
                self.router
                    .set_track_priority(now, track, priority)
                    .map_err(|_| SfuError::UnknownTrack),
            ),
            Command::SetPublisherMaxBitrate {
                session,
                max_bitrate,
            } => Reply::Answered(self.set_publisher_max_bitrate(session, max_bitrate)),
            Command::Close { session } => {
                self.remove_session(session, EndReason::Closed);
                Reply::Closed
            }
        }
    }

    fn set_layer_cap(
        &mut self,
        id: SessionId,
        track: TrackId,
        cap: LayerCap,
    ) -> Result<(), SfuError> {
        let subscription = self.keep_per_track(id, track, cap, |s| &mut s.layer_caps)?;
        if let Some(subscription) = subscription {
            apply_layer_cap(&mut self.router, subscription, cap);
        }
        Ok(())
    }

    fn set_track_view(
        &mut self,
        now: Instant,
        id: SessionId,
        track: TrackId,
        view: TrackView,
    ) -> Result<(), SfuError> {
        let subscription = self.keep_per_track(id, track, view, |s| &mut s.track_views)?;
        if let Some(subscription) = subscription {
            let _ = self.router.set_track_view(now, subscription, view);
        }
        Ok(())
    }

    /// Keeps `value` for `track` in the receiving session `id`'s list that `list` picks
    /// (applied when the track is bound, and kept across renegotiations); returns the
    /// subscription to apply it to now, when the track is bound.
    fn keep_per_track<V>(
        &mut self,
        id: SessionId,
        track: TrackId,
        value: V,
        list: impl FnOnce(&mut Session) -> &mut Vec<(TrackId, V)>,
    ) -> Result<Option<SubscriptionId>, SfuError> {
        let session = self.sessions.get_mut(&id).ok_or(SfuError::UnknownSession)?;
        if matches!(session.role, SessionRole::Publisher { .. }) {
            return Err(SfuError::UnknownSession);
        }
        if self.router.track_kind(track).is_none() {
            return Err(SfuError::UnknownTrack);
        }
        let bound = session
            .bound
            .iter()
            .find(|(t, _)| *t == track)
            .map(|&(_, subscription)| subscription);
        let kept = list(session);
        match kept.iter_mut().find(|(t, _)| *t == track) {
            Some(entry) => entry.1 = value,
            None => {
                // One entry per track; a session receives at most a few hundred.
                if kept.len() >= MAX_SUBSCRIBER_SLOTS {
                    return Err(SfuError::TooManyTracks);
                }
                kept.push((track, value));
            }
        }
        // The subscription exists (it was bound and not removed since).
        Ok(bound)
    }

    fn set_publisher_max_bitrate(
        &mut self,
        id: SessionId,
        max_bitrate: Option<u64>,
    ) -> Result<(), SfuError> {
        let session = self.sessions.get(&id).ok_or(SfuError::UnknownSession)?;
        if !matches!(session.role, SessionRole::Publisher { .. }) {
            return Err(SfuError::UnknownSession);
        }
        let cap = [max_bitrate, self.config.publisher_max_bitrate]
            .into_iter()
            .flatten()
            .min();
        self.router.set_publisher_max_bitrate(id, cap);
        Ok(())
    }

    fn fresh_credentials(&mut self) -> IceCredentials {
        let worker = self.worker();
        credentials_for(worker, &mut self.rng)
    }

    /// Fresh credentials of this worker whose ufrag no session of it has.
    fn unused_credentials(&mut self) -> IceCredentials {
        let mut local = self.fresh_credentials();
        // 48 random bits make a collision unlikely; a new ufrag must not take another's
        // session.
        while self.by_ufrag.contains_key(local.ufrag()) {
            local = self.fresh_credentials();
        }
        local
    }

    /// Creates a session; `remote` is the peer's negotiated description when it is known
    /// (it offered), and `None` when Sluice offers first.
    fn new_session(
        &mut self,
        now: Instant,
        room: String,
        role: SessionRole,
        credentials: IceCredentials,
        remote: Option<&NegotiatedSession>,
    ) -> Result<SessionId, SfuError> {
        let ice_config = IceLiteConfig {
            consent_timeout: self.config.consent_timeout,
            ..IceLiteConfig::default()
        };
        let mut agent = IceLiteAgent::new(credentials, ice_config);
        let dtls = match remote {
            Some(negotiated) => {
                agent.set_remote_credentials(remote_credentials(negotiated)?);
                Some((remote_fingerprint(negotiated)?, dtls_role(negotiated)))
            }
            None => None,
        };
        let local_ufrag = agent.local_credentials().ufrag().to_owned();
        let mut transport = PeerTransport::new_lite(agent, now + self.config.setup_timeout);
        if let Some((fingerprint, role)) = dtls {
            transport.start_dtls(now, &self.config.certificate, fingerprint, role);
        }
        let id = self.mint_session_id();
        let session = Session {
            id,
            room,
            role,
            local_ufrag: local_ufrag.clone(),
            transport,
            sdp_session_id: sdp_session_id(&mut self.rng),
            sdp_version: 1,
            pending: Vec::new(),
            bound: Vec::new(),
            layer_caps: Vec::new(),
            track_views: Vec::new(),
            learned_layers: Vec::new(),
        };
        self.by_ufrag.insert(local_ufrag, id);
        self.sessions.insert(id, session);
        self.drive(now, id);
        Ok(id)
    }

    fn publish(&mut self, now: Instant, room: String, offer: &str) -> Result<Published, SfuError> {
        let credentials = self.fresh_credentials();
        let session_id = sdp_session_id(&mut self.rng);
        let local = local_params(
            &self.config.fingerprint,
            &self.config.candidates,
            &credentials,
            session_id,
            1,
        );
        let (answer, negotiated) =
            answer_offer(offer, &local, &Capabilities::default()).map_err(SfuError::Sdp)?;
        if receiving(&negotiated).next().is_none() {
            return Err(SfuError::BadOffer(
                "the offer sends no audio or video to publish".to_owned(),
            ));
        }
        let role = SessionRole::Publisher { tracks: Vec::new() };
        let id = self.new_session(now, room, role, credentials, Some(&negotiated))?;
        if let Some(session) = self.sessions.get_mut(&id) {
            session.sdp_session_id = local.session_id;
        }
        self.router
            .set_publisher_max_bitrate(id, self.config.publisher_max_bitrate);
        match self.update_published_tracks(now, id, &negotiated) {
            Ok(tracks) => Ok(Published {
                session: id,
                sdp: answer,
                tracks,
            }),
            Err(e) => {
                self.remove_session(id, EndReason::OfferRefused);
                Err(e)
            }
        }
    }

    /// A publisher's new offer on its existing connection (a track added or removed): same
    /// DTLS association, tracks updated by SSRC, the same ICE credentials unless the offer
    /// restarts ICE (new credentials of its own), which restarts Sluice's side too.
    fn republish(
        &mut self,
        now: Instant,
        id: SessionId,
        offer: &str,
    ) -> Result<Published, SfuError> {
        let (sdp_session_id, version, credentials, current_remote) = {
            let session = self.sessions.get_mut(&id).ok_or(SfuError::UnknownSession)?;
            if !matches!(session.role, SessionRole::Publisher { .. }) {
                return Err(SfuError::UnknownSession);
            }
            session.sdp_version += 1;
            let agent = session
                .transport
                .lite_agent()
                .ok_or(SfuError::UnknownSession)?;
            (
                session.sdp_session_id,
                session.sdp_version,
                agent.local_credentials().clone(),
                agent.remote_credentials().cloned(),
            )
        };
        let mut local = local_params(
            &self.config.fingerprint,
            &self.config.candidates,
            &credentials,
            sdp_session_id,
            version,
        );
        let (mut answer, mut negotiated) =
            answer_offer(offer, &local, &Capabilities::default()).map_err(SfuError::Sdp)?;
        // New ICE credentials in the offer are an ICE restart (RFC 8839 4.4.1.1.1): Sluice
        // answers with new ones of its own.
        let restarted = current_remote.is_some_and(|r| {
            r.ufrag() != negotiated.remote_ice.ufrag || r.pwd() != negotiated.remote_ice.pwd
        });
        if restarted {
            let (ufrag, pwd) = (&negotiated.remote_ice.ufrag, &negotiated.remote_ice.pwd);
            let fresh = self.restart_ice(now, id, ufrag, pwd)?;
            local.ice_ufrag = fresh.ufrag;
            local.ice_pwd = fresh.pwd;
            (answer, negotiated) =
                answer_offer(offer, &local, &Capabilities::default()).map_err(SfuError::Sdp)?;
        }
        let tracks = self.update_published_tracks(now, id, &negotiated)?;
        Ok(Published {
            session: id,
            sdp: answer,
            tracks,
        })
    }

    /// ICE restart: the peer's new credentials, new local ones for Sluice (their ufrag's
    /// first character still names this worker), the session found by its new ufrag. The
    /// agent keeps the selected address until a check on the new credentials arrives; DTLS
    /// and SRTP stay.
    fn restart_ice(
        &mut self,
        now: Instant,
        id: SessionId,
        remote_ufrag: &str,
        remote_pwd: &str,
    ) -> Result<LocalIceCredentials, SfuError> {
        let remote = IceCredentials::new(remote_ufrag, remote_pwd)
            .map_err(|e| SfuError::BadOffer(format!("ICE credentials: {e}")))?;
        let has_remote = self
            .sessions
            .get(&id)
            .ok_or(SfuError::UnknownSession)?
            .transport
            .lite_agent()
            .is_some_and(|agent| agent.remote_credentials().is_some());
        if !has_remote {
            return Err(SfuError::BadOffer(
                "the session has no ICE session to restart yet".to_owned(),
            ));
        }
        let local = self.unused_credentials();
        self.apply_ice_restart(now, id, local.clone(), remote);
        Ok(LocalIceCredentials {
            ufrag: local.ufrag().to_owned(),
            pwd: local.pwd().to_owned(),
            candidates: self.config.candidates.clone(),
        })
    }

    /// Restarts the session's ICE agent with both sides' new credentials and finds the
    /// session by its new ufrag from now on.
    fn apply_ice_restart(
        &mut self,
        now: Instant,
        id: SessionId,
        local: IceCredentials,
        remote: IceCredentials,
    ) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(agent) = session.transport.lite_agent_mut() else {
            return;
        };
        agent.restart(now, local, remote);
        let ufrag = agent.local_credentials().ufrag().to_owned();
        self.by_ufrag.remove(&session.local_ufrag);
        session.local_ufrag.clone_from(&ufrag);
        self.by_ufrag.insert(ufrag, id);
        tracing::info!(
            session = id.0,
            room = %session.room,
            role = session.role.as_str(),
            ufrag = %session.local_ufrag,
            "ice restart"
        );
        self.drive(now, id);
    }

    /// Makes the router's tracks of publisher `id` match what it now sends: new SSRCs become
    /// tracks, SSRCs no longer offered are removed (their subscriptions detach).
    fn update_published_tracks(
        &mut self,
        now: Instant,
        id: SessionId,
        negotiated: &NegotiatedSession,
    ) -> Result<Vec<PublishedTrack>, SfuError> {
        let current = match self.sessions.get_mut(&id).map(|s| &mut s.role) {
            Some(SessionRole::Publisher { tracks }) => std::mem::take(tracks),
            _ => return Err(SfuError::UnknownSession),
        };
        let mut updated = Vec::new();
        let mut failure = None;
        for media in receiving(negotiated) {
            // Legacy simulcast: the SSRCs of a=ssrc-group:SIM, lowest layer first.
            let sim = match media.remote_simulcast_ssrcs.as_slice() {
                sim if media.rids.is_empty() && sim.len() > 1 => sim,
                _ => &[],
            };
            if !media.rids.is_empty() || !sim.is_empty() {
                // Simulcast: one track for the m-line, one layer per rid, whose SSRCs the
                // router learns from the first packets (a=ssrc lines, when a browser sends
                // them with rids, name the same streams and are not needed); or one layer
                // per SIM SSRC, named by its position and bound from the start.
                if updated.len() >= MAX_TRACKS_PER_PUBLISHER {
                    failure = Some(SfuError::BadOffer(format!(
                        "more than {MAX_TRACKS_PER_PUBLISHER} tracks"
                    )));
                    break;
                }
                let existing = current.iter().find(|t| {
                    t.mid == media.mid
                        && if sim.is_empty() {
                            self.router.track_rids(t.id) == Some(&media.rids[..])
                        } else {
                            self.router
                                .layer_ssrcs(t.id)
                                .eq(sim.iter().map(|&ssrc| Some(ssrc)))
                        }
                });
                if let Some(track) = existing {
                    updated.push(track.clone());
                } else {
                    match self.add_simulcast_track(now, id, media, sim) {
                        Ok(track) => updated.push(track),
                        Err(e) => failure = Some(e),
                    }
                }
                if sim.is_empty() {
                    continue;
                }
            }
            for stream in &media.remote_streams {
                if sim.contains(&stream.ssrc) {
                    continue;
                }
                if updated.len() >= MAX_TRACKS_PER_PUBLISHER {
                    failure = Some(SfuError::BadOffer(format!(
                        "more than {MAX_TRACKS_PER_PUBLISHER} tracks"
                    )));
                    break;
                }
                let existing = current.iter().find(|t| {
                    self.router.track_ssrc(t.id) == Some(stream.ssrc) && t.mid == media.mid
                });
                if let Some(track) = existing {
                    updated.push(track.clone());
                    continue;
                }
                let published = PublishedStream {
                    ssrc: stream.ssrc,
                    rtx_ssrc: stream.rtx_ssrc,
                    ..published_stream(media)
                };
                match self.router.add_published_stream(now, id, published) {
                    Ok(track) => updated.push(PublishedTrack {
                        id: track,
                        kind: media.kind,
                        mid: media.mid.clone(),
                    }),
                    Err(e) => {
                        failure = Some(SfuError::BadOffer(format!("mid {}: {e}", media.mid)));
                    }
                }
            }
        }
        for gone in current
            .iter()
            .filter(|t| !updated.iter().any(|u| u.id == t.id))
        {
            self.remember_layers(id, gone);
            self.router.remove_published_stream(gone.id);
        }
        if let Some(SessionRole::Publisher { tracks }) =
            self.sessions.get_mut(&id).map(|s| &mut s.role)
        {
            tracks.clone_from(&updated);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(updated),
        }
    }

    /// The track of a simulcast m-line: one layer per rid, or per SSRC of `sim` (legacy
    /// simulcast, bound now).
    /// Keeps what the router learned of a going rid track's layers, for
    /// [`WorkerCore::add_simulcast_track`] to bind again.
    fn remember_layers(&mut self, id: SessionId, gone: &PublishedTrack) {
        let Some(rids) = self.router.track_rids(gone.id).map(<[String]>::to_vec) else {
            return;
        };
        let learned: Vec<LearnedLayer> = rids
            .into_iter()
            .zip(self.router.layer_streams(gone.id))
            .filter_map(|(rid, (ssrc, rtx_ssrc))| {
                Some(LearnedLayer {
                    mid: gone.mid.clone(),
                    rid,
                    ssrc: ssrc?,
                    rtx_ssrc,
                })
            })
            .collect();
        if let Some(session) = self.sessions.get_mut(&id) {
            session.learned_layers.retain(|l| l.mid != gone.mid);
            // Bounded like the tracks: a publisher has at most a few m-lines of a few layers.
            if session.learned_layers.len() + learned.len() <= 4 * MAX_TRACKS_PER_PUBLISHER {
                session.learned_layers.extend(learned);
            }
        }
    }

    fn add_simulcast_track(
        &mut self,
        now: Instant,
        id: SessionId,
        media: &NegotiatedMedia,
        sim: &[Ssrc],
    ) -> Result<PublishedTrack, SfuError> {
        let rids = if sim.is_empty() {
            media.rids.clone()
        } else {
            (0..sim.len()).map(|i| i.to_string()).collect()
        };
        let published = PublishedStream {
            rids,
            ..published_stream(media)
        };
        let bad =
            |e: packet_router::RouterError| SfuError::BadOffer(format!("mid {}: {e}", media.mid));
        let track = self
            .router
            .add_published_stream(now, id, published)
            .map_err(bad)?;
        if sim.is_empty() {
            let learned: Vec<LearnedLayer> = self
                .sessions
                .get(&id)
                .map(|s| {
                    s.learned_layers
                        .iter()
                        .filter(|l| l.mid == media.mid)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for known in learned {
                if let Some(layer) = media.rids.iter().position(|rid| *rid == known.rid) {
                    // A stream already bound elsewhere keeps that binding.
                    let _ = self
                        .router
                        .bind_layer(track, layer, known.ssrc, known.rtx_ssrc);
                }
            }
        }
        for (layer, &ssrc) in sim.iter().enumerate() {
            let rtx = media
                .remote_streams
                .iter()
                .find(|s| s.ssrc == ssrc)
                .and_then(|s| s.rtx_ssrc);
            if let Err(e) = self.router.bind_layer(track, layer, ssrc, rtx) {
                self.router.remove_published_stream(track);
                return Err(bad(e));
            }
        }
        Ok(PublishedTrack {
            id: track,
            kind: media.kind,
            mid: media.mid.clone(),
        })
    }

    /// WHEP: a player's receive-only offer for `publisher`'s audio and video.
    fn play(
        &mut self,
        now: Instant,
        room: &str,
        publisher: SessionId,
        offer: &str,
    ) -> Result<Played, SfuError> {
        match self.sessions.get(&publisher) {
            Some(session)
                if session.room == room
                    && matches!(session.role, SessionRole::Publisher { .. }) => {}
            _ => return Err(SfuError::UnknownPublisher),
        }
        let tracks: Vec<(TrackId, MediaKind)> = self.router.tracks_of(publisher).collect();
        // One outgoing source per track the publisher has, with our own SSRCs.
        let cname = format!("sluice-{}", publisher.0);
        let rng = &mut self.rng;
        let sources: Vec<OutgoingTrack> = tracks
            .iter()
            .map(|(track, kind)| OutgoingTrack {
                kind: *kind,
                ssrc: Ssrc(rng.random()),
                // Browsers refuse an RTX group on an audio m-line.
                rtx_ssrc: (*kind == MediaKind::Video).then(|| Ssrc(rng.random())),
                cname: cname.clone(),
                stream_id: cname.clone(),
                track_id: format!("track-{}", track.0),
                mid: String::new(),
                codecs: Vec::new(),
                active: true,
            })
            .collect();
        let credentials = self.fresh_credentials();
        let local = local_params(
            &self.config.fingerprint,
            &self.config.candidates,
            &credentials,
            sdp_session_id(&mut self.rng),
            1,
        );
        let (answer, negotiated) =
            answer_offer_sending(offer, &local, &Capabilities::default(), &sources)
                .map_err(SfuError::Sdp)?;
        let mut pending = Vec::new();
        let mut used = vec![false; sources.len()];
        for media in sending(&negotiated) {
            // The same pairing answer_offer_sending made: the first unused source of the kind.
            let Some(index) = (0..sources.len()).find(|&i| {
                !used.get(i).copied().unwrap_or(true)
                    && sources.get(i).is_some_and(|s| s.kind == media.kind)
            }) else {
                continue;
            };
            if let Some(flag) = used.get_mut(index) {
                *flag = true;
            }
            let (Some((track, _)), Some(source)) = (tracks.get(index), sources.get(index)) else {
                continue;
            };
            pending.push(PendingSubscription {
                track: *track,
                stream: subscribed_stream(media, source.ssrc, source.rtx_ssrc, &mut self.rng),
            });
        }
        if pending.is_empty() {
            return Err(SfuError::BadOffer(
                "the offer receives none of the publisher's tracks".to_owned(),
            ));
        }
        let id = self.new_session(
            now,
            room.to_owned(),
            SessionRole::Player { publisher },
            credentials,
            Some(&negotiated),
        )?;
        if let Some(session) = self.sessions.get_mut(&id) {
            session.pending = pending;
        }
        Ok(Played {
            session: id,
            sdp: answer,
        })
    }

    /// A subscriber connection for the room's signaling: Sluice offers its tracks.
    fn create_subscriber(&mut self, now: Instant, room: String) -> Result<SessionId, SfuError> {
        let credentials = self.fresh_credentials();
        let subscriber = SubscriberState {
            version: 1,
            sdp_session_id: sdp_session_id(&mut self.rng),
            cname: format!("sluice-{}", self.rng.random::<u32>()),
            ..SubscriberState::default()
        };
        self.new_session(
            now,
            room,
            SessionRole::Subscriber(subscriber),
            credentials,
            None,
        )
    }

    /// Sluice's (re)offer to a subscriber carrying exactly `tracks`; with `restart_ice`, and
    /// new ICE credentials of its own that the answer completes.
    fn offer_tracks(
        &mut self,
        id: SessionId,
        tracks: &[TrackId],
        restart_ice: bool,
    ) -> Result<SubscriberOffer, SfuError> {
        let fresh = restart_ice.then(|| self.unused_credentials());
        let WorkerCore {
            sessions,
            router,
            rng,
            config,
            ..
        } = self;
        let session = sessions.get_mut(&id).ok_or(SfuError::UnknownSession)?;
        let Some(agent) = session.transport.lite_agent() else {
            return Err(SfuError::UnknownSession);
        };
        let has_remote = agent.remote_credentials().is_some();
        let current_ice = agent.local_credentials().clone();
        let SessionRole::Subscriber(subscriber) = &mut session.role else {
            return Err(SfuError::UnknownSession);
        };
        if let Some(fresh) = fresh {
            if !has_remote {
                return Err(SfuError::BadOffer(
                    "the connection has no ICE session to restart yet".to_owned(),
                ));
            }
            subscriber.pending_ice.get_or_insert(fresh);
        }
        let kinds: Vec<(TrackId, MediaKind)> = tracks
            .iter()
            .filter_map(|track| Some((*track, router.track_kind(*track)?)))
            .collect();
        if kinds.len() != tracks.len() {
            return Err(SfuError::UnknownTrack);
        }
        // Tracks no longer wanted: their m-lines go inactive and their subscriptions end.
        for slot in &mut subscriber.slots {
            if slot.track.is_some_and(|t| !tracks.contains(&t)) {
                slot.track = None;
                if let Some(subscription) = slot.subscription.take() {
                    router.unsubscribe(id, subscription);
                    session.bound.retain(|(_, s)| *s != subscription);
                }
            }
        }
        for (track, kind) in kinds {
            if subscriber.slots.iter().any(|s| s.track == Some(track)) {
                continue;
            }
            if subscriber.slots.len() >= MAX_SUBSCRIBER_SLOTS {
                return Err(SfuError::TooManyTracks);
            }
            subscriber.slots.push(Slot {
                mid: subscriber.slots.len().to_string(),
                kind,
                track: Some(track),
                ssrc: Ssrc(rng.random()),
                rtx_ssrc: Ssrc(rng.random()),
                subscription: None,
            });
        }
        let outgoing = subscriber_offer_tracks(subscriber);
        subscriber.version += 1;
        let ice = subscriber.pending_ice.as_ref().unwrap_or(&current_ice);
        let local = local_params(
            &config.fingerprint,
            &config.candidates,
            ice,
            subscriber.sdp_session_id,
            subscriber.version,
        );
        let sdp = build_subscriber_offer(&local, &outgoing);
        subscriber.offer = Some(sdp.clone());
        let mids = subscriber
            .slots
            .iter()
            .filter_map(|slot| Some((slot.mid.clone(), slot.track?)))
            .collect();
        Ok(SubscriberOffer { sdp, mids })
    }

    /// Applies a subscriber's answer to Sluice's last offer: the first answer brings its ICE
    /// credentials and fingerprint; every answer binds the tracks it accepted.
    fn answer_subscriber(
        &mut self,
        now: Instant,
        id: SessionId,
        answer: &str,
    ) -> Result<(), SfuError> {
        let WorkerCore {
            sessions,
            rng,
            config,
            ..
        } = self;
        let session = sessions.get_mut(&id).ok_or(SfuError::UnknownSession)?;
        let SessionRole::Subscriber(subscriber) = &mut session.role else {
            return Err(SfuError::UnknownSession);
        };
        let offer = subscriber
            .offer
            .as_deref()
            .ok_or(SfuError::NoOfferPending)?;
        let negotiated = apply_subscriber_answer(offer, answer).map_err(SfuError::Sdp)?;
        let first_answer = !session.transport.has_dtls();
        if first_answer {
            let credentials = remote_credentials(&negotiated)?;
            let fingerprint = remote_fingerprint(&negotiated)?;
            if let Some(agent) = session.transport.lite_agent_mut() {
                agent.set_remote_credentials(credentials);
            }
            session.transport.start_dtls(
                now,
                &config.certificate,
                fingerprint,
                dtls_role(&negotiated),
            );
        }
        // The answer to an ICE-restarting offer: both sides' new credentials apply (below,
        // once the slots are read).
        let restart = if first_answer {
            None
        } else {
            subscriber.pending_ice.take()
        };
        let mut pending = Vec::new();
        for slot in &mut subscriber.slots {
            let (Some(track), None) = (slot.track, slot.subscription) else {
                continue;
            };
            let Some(media) = negotiated.media_by_mid(&slot.mid).filter(|m| m.accepted) else {
                continue;
            };
            let rtx = (slot.kind == MediaKind::Video).then_some(slot.rtx_ssrc);
            pending.push(PendingSubscription {
                track,
                stream: subscribed_stream(media, slot.ssrc, rtx, rng),
            });
        }
        let connected = session.transport.is_connected();
        if !connected {
            session.pending.extend(pending);
            pending = Vec::new();
        }
        if let Some(local) = restart {
            let remote = remote_credentials(&negotiated)?;
            self.apply_ice_restart(now, id, local, remote);
        }
        for subscription in pending {
            self.bind(now, id, subscription);
        }
        self.drive(now, id);
        Ok(())
    }

    /// DTLS completed: bind the session's pending subscriptions.
    pub(super) fn bind_pending(&mut self, now: Instant, id: SessionId) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let pending = std::mem::take(&mut session.pending);
        for subscription in pending {
            self.bind(now, id, subscription);
        }
    }

    /// Subscribes `id` to a pending track, recording the subscription in the slot that
    /// carries it (subscriber connections).
    fn bind(&mut self, now: Instant, id: SessionId, pending: PendingSubscription) {
        let track = pending.track;
        let Ok(subscription) = self
            .router
            .subscribe(now, id, track, pending.stream, &mut self.out)
        else {
            // The track vanished meanwhile (its publisher left).
            return;
        };
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        session.bound.retain(|(t, _)| *t != track);
        session.bound.push((track, subscription));
        if let Some(&(_, cap)) = session.layer_caps.iter().find(|(t, _)| *t == track) {
            apply_layer_cap(&mut self.router, subscription, cap);
        }
        if let Some(&(_, view)) = session.track_views.iter().find(|(t, _)| *t == track) {
            let _ = self.router.set_track_view(now, subscription, view);
        }
        if let SessionRole::Subscriber(subscriber) = &mut session.role
            && let Some(slot) = subscriber
                .slots
                .iter_mut()
                .find(|s| s.track == Some(track) && s.subscription.is_none())
        {
            slot.subscription = Some(subscription);
        }
    }
}

/// What the router needs of a publisher's m-line, before its SSRCs or rids.
fn published_stream(media: &NegotiatedMedia) -> PublishedStream {
    PublishedStream {
        kind: media.kind,
        ssrc: Ssrc(0),
        rtx_ssrc: None,
        codecs: codec_params(media),
        extensions: extension_ids(media),
        nack: media
            .codecs
            .iter()
            .any(|c| c.rtcp_fb.contains(&RtcpFeedback::Nack)),
        mid: Some(media.mid.clone()),
        rids: Vec::new(),
    }
}

/// Sets both parts of `cap` on a bound subscription (it exists: bound and not removed).
fn apply_layer_cap(router: &mut Router, subscription: SubscriptionId, cap: LayerCap) {
    let _ = router.set_max_layer(subscription, cap.spatial);
    let _ = router.set_max_temporal_layer(subscription, cap.temporal);
}
