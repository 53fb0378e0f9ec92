//! webrtc-rs peers for the interop tests: the default codecs and interceptors (NACK, RTX,
//! receiver reports, as a real client has them), ICE restricted to UDP over IPv4 on 127.0.0.1
//! without mDNS so nothing leaves the machine, non-trickle offers, and a recording of every RTP
//! packet the peer receives, by media kind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use tokio::sync::watch;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceConnectionState, RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    Registry, SettingEngineBuilder, register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender};

use super::media::{Kind, Received};
use super::within;

/// ICE gathering on one loopback socket takes milliseconds; the margin is for a loaded machine.
const GATHERING_LIMIT: Duration = Duration::from_secs(10);

/// Everything a peer received, by kind, plus the SSRCs its remote declared for each track.
#[derive(Debug, Default)]
struct Recording {
    packets: HashMap<Kind, Vec<Received>>,
    declared_ssrcs: HashMap<Kind, Vec<u32>>,
}

/// The incoming tracks by kind, kept so that a test can send feedback about them.
type RemoteTracks = Arc<Mutex<HashMap<Kind, Arc<dyn TrackRemote>>>>;

/// The event handler: publishes state changes and records incoming tracks.
struct Events {
    name: String,
    state: watch::Sender<RTCPeerConnectionState>,
    gathering_complete: watch::Sender<bool>,
    recording: Arc<Mutex<Recording>>,
    remote_tracks: RemoteTracks,
    ice_states: Arc<Mutex<Vec<RTCIceConnectionState>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathering_complete.send_replace(true);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        eprintln!("[{}] ICE connection state: {state}", self.name);
        self.ice_states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        eprintln!("[{}] connection state: {state}", self.name);
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = match track.kind().await {
            RtpCodecKind::Audio => Kind::Audio,
            RtpCodecKind::Video => Kind::Video,
            other => {
                eprintln!("[{}] ignoring a track of kind {other}", self.name);
                return;
            }
        };
        let declared = track.ssrcs().await;
        eprintln!("[{}] {kind:?} track, SSRCs {declared:?}", self.name);
        lock(&self.recording).declared_ssrcs.insert(kind, declared);
        self.remote_tracks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(kind, Arc::clone(&track));
        let recording = Arc::clone(&self.recording);
        // Ends when the track ends, which closing the peer connection causes.
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    lock(&recording)
                        .packets
                        .entry(kind)
                        .or_default()
                        .push(Received::from_rtp(&packet));
                }
            }
        });
    }
}

fn lock(recording: &Mutex<Recording>) -> std::sync::MutexGuard<'_, Recording> {
    // A panicking recorder task has already failed the test; keep reading what it left.
    recording
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A webrtc-rs peer connection confined to loopback.
pub struct Peer {
    pub name: String,
    pub pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    gathering_complete: watch::Receiver<bool>,
    recording: Arc<Mutex<Recording>>,
    remote_tracks: RemoteTracks,
    ice_states: Arc<Mutex<Vec<RTCIceConnectionState>>>,
}

/// A track the peer sends, with what it needs to build valid RTP for it.
pub struct SendTrack {
    pub kind: Kind,
    pub ssrc: u32,
    pub track: Arc<TrackLocalStaticRTP>,
    pub sender: Arc<dyn RtpSender>,
    /// Known once negotiation is done: see [`SendTrack::resolve_payload_type`].
    pub payload_type: Option<u8>,
}

/// Opus and VP8 (with RTX), each with NACK: unlike webrtc-rs's defaults (and browsers), Opus
/// gets NACK too, so that the loss tests can require every audio payload to be repaired.
fn media_engine() -> anyhow::Result<MediaEngine> {
    use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters};
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    let codec = |mime: &str, clock_rate, channels, fmtp: &str, fb: Vec<RTCPFeedback>, pt| {
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate,
                channels,
                sdp_fmtp_line: fmtp.to_owned(),
                rtcp_feedback: fb,
            },
            payload_type: pt,
        }
    };
    let mut engine = MediaEngine::default();
    engine.register_codec(
        codec(
            MIME_TYPE_OPUS,
            48_000,
            2,
            "minptime=10;useinbandfec=1",
            vec![feedback("nack", "")],
            111,
        ),
        RtpCodecKind::Audio,
    )?;
    let video_feedback = vec![
        feedback("goog-remb", ""),
        feedback("ccm", "fir"),
        feedback("nack", ""),
        feedback("nack", "pli"),
    ];
    engine.register_codec(
        codec(MIME_TYPE_VP8, 90_000, 0, "", video_feedback, 96),
        RtpCodecKind::Video,
    )?;
    engine.register_codec(
        codec(MIME_TYPE_RTX, 90_000, 0, "apt=96", vec![], 97),
        RtpCodecKind::Video,
    )?;
    Ok(engine)
}

impl Peer {
    pub async fn new(name: &str) -> anyhow::Result<Peer> {
        let mut media_engine = media_engine()?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let settings = SettingEngineBuilder::new()
            .with_network_types(vec![NetworkType::Udp4])
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .build();
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (gathering_tx, gathering_complete) = watch::channel(false);
        let recording = Arc::new(Mutex::new(Recording::default()));
        let remote_tracks = RemoteTracks::default();
        let ice_states = Arc::new(Mutex::new(Vec::new()));
        let events = Events {
            ice_states: Arc::clone(&ice_states),
            name: name.to_owned(),
            state: state_tx,
            gathering_complete: gathering_tx,
            recording: Arc::clone(&recording),
            remote_tracks: Arc::clone(&remote_tracks),
        };
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(Arc::new(events))
            // Binding to 127.0.0.1 is what keeps the ICE agent on loopback: it gathers host
            // candidates only from the sockets it is given.
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .with_context(|| format!("building peer {name}"))?;
        Ok(Peer {
            name: name.to_owned(),
            pc: Arc::new(pc),
            state,
            gathering_complete,
            recording,
            remote_tracks,
            ice_states,
        })
    }

    /// Adds a track to send (Opus for audio, VP8 with an RTX stream for video): send-only in an
    /// offer, or on the transceiver of a remote offer already applied.
    pub async fn add_send_track(&self, kind: Kind, ssrc: u32) -> anyhow::Result<SendTrack> {
        let (codec_kind, mime_type, clock_rate, channels, rtx) = match kind {
            Kind::Audio => (RtpCodecKind::Audio, MIME_TYPE_OPUS, 48_000, 2, None),
            Kind::Video => (
                RtpCodecKind::Video,
                MIME_TYPE_VP8,
                90_000,
                0,
                Some(RTCRtpRtxParameters {
                    ssrc: ssrc.wrapping_add(1),
                }),
            ),
        };
        let mut encoding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                rtx,
                ..Default::default()
            },
            ..Default::default()
        };
        encoding.codec.mime_type = mime_type.to_owned();
        encoding.codec.clock_rate = clock_rate;
        encoding.codec.channels = channels;
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("{}-stream", self.name),
            format!("{}-{kind:?}", self.name),
            format!("{} {kind:?}", self.name),
            codec_kind,
            vec![encoding],
        )));
        let local: Arc<dyn TrackLocal> = Arc::clone(&track) as Arc<dyn TrackLocal>;
        let sender = if self.pc.remote_description().await.is_some() {
            // Answering: the track takes the transceiver the offer made for its kind.
            self.pc.add_track(local).await
        } else {
            // Offering: send-only, as a WHIP client offers.
            let init = RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            };
            match self.pc.add_transceiver_from_track(local, Some(init)).await {
                Ok(transceiver) => transceiver.sender().await.and_then(|sender| {
                    sender.ok_or(webrtc::error::Error::Other(
                        "a send-only transceiver without a sender".to_owned(),
                    ))
                }),
                Err(error) => Err(error),
            }
        }
        .with_context(|| format!("{}: adding the {kind:?} track", self.name))?;
        Ok(SendTrack {
            kind,
            ssrc,
            track,
            sender,
            payload_type: None,
        })
    }

    /// Adds a receive-only transceiver, as a WHEP player does.
    pub async fn add_receive_only(&self, kind: Kind) -> anyhow::Result<()> {
        let codec_kind = match kind {
            Kind::Audio => RtpCodecKind::Audio,
            Kind::Video => RtpCodecKind::Video,
        };
        self.pc
            .add_transceiver_from_kind(
                codec_kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await
            .with_context(|| format!("{}: adding a recvonly {kind:?} transceiver", self.name))?;
        Ok(())
    }

    /// Creates an offer and returns it once ICE gathering is complete (no trickle).
    pub async fn complete_offer(&self) -> anyhow::Result<String> {
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        self.complete_local_description().await
    }

    /// Creates an offer that restarts ICE (new ufrag and password, candidates gathered
    /// again) and returns it once it carries new credentials and a candidate.
    pub async fn restart_offer(&self) -> anyhow::Result<String> {
        let before = self
            .pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default();
        let old = super::sdp::ice_credentials(&before).map(|(u, p)| (u.to_owned(), p.to_owned()));
        let options = rtc::peer_connection::configuration::RTCOfferOptions { ice_restart: true };
        let offer = self.pc.create_offer(Some(options)).await?;
        self.pc.set_local_description(offer).await?;
        within(GATHERING_LIMIT, "ICE gathering after a restart", async {
            loop {
                if let Some(description) = self.pc.local_description().await {
                    let new = super::sdp::ice_credentials(&description.sdp)
                        .map(|(u, p)| (u.to_owned(), p.to_owned()));
                    let gathered = !super::sdp::candidates(&description.sdp).is_empty();
                    if new.is_some() && new != old && gathered {
                        return description.sdp;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// The ICE connection states the peer went through, in order.
    pub fn ice_states(&self) -> Vec<RTCIceConnectionState> {
        self.ice_states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Applies a remote offer; tracks added after this answer its transceivers.
    pub async fn apply_offer(&self, offer: &str) -> anyhow::Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer.to_owned())?)
            .await
            .with_context(|| format!("{}: applying the offer", self.name))
    }

    /// Answers the applied offer and returns the answer once ICE gathering is complete.
    pub async fn complete_answer(&self) -> anyhow::Result<String> {
        let answer = self.pc.create_answer(None).await?;
        self.pc.set_local_description(answer).await?;
        self.complete_local_description().await
    }

    async fn complete_local_description(&self) -> anyhow::Result<String> {
        let mut gathered = self.gathering_complete.clone();
        within(
            GATHERING_LIMIT,
            "ICE gathering",
            gathered.wait_for(|complete| *complete),
        )
        .await??;
        let description = self
            .pc
            .local_description()
            .await
            .with_context(|| format!("{}: no local description after gathering", self.name))?;
        Ok(description.sdp)
    }

    pub async fn accept_answer(&self, answer: &str) -> anyhow::Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(answer.to_owned())?)
            .await
            .with_context(|| format!("{}: applying the answer", self.name))
    }

    pub fn state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// Waits for ICE and DTLS to complete; a failed or closed connection ends the wait at once.
    pub async fn connected(&self, limit: Duration) -> anyhow::Result<()> {
        let mut state = self.state.clone();
        let reached = within(
            limit,
            &format!("{} to connect", self.name),
            state.wait_for(|state| {
                matches!(
                    state,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            }),
        )
        .await??
        .to_owned();
        if reached != RTCPeerConnectionState::Connected {
            bail!("{}: connection {reached} instead of connected", self.name);
        }
        eprintln!("[{}] connected", self.name);
        Ok(())
    }

    /// Waits for the connection to leave `new` and `connecting`, and returns where it went.
    pub async fn settled(&self, limit: Duration) -> anyhow::Result<RTCPeerConnectionState> {
        let mut state = self.state.clone();
        let reached = within(
            limit,
            &format!("{} to settle", self.name),
            state.wait_for(|state| {
                !matches!(
                    state,
                    RTCPeerConnectionState::New | RTCPeerConnectionState::Connecting
                )
            }),
        )
        .await??
        .to_owned();
        Ok(reached)
    }

    /// A copy of the RTP packets received so far on the track of `kind`, in arrival order.
    pub fn received(&self, kind: Kind) -> Vec<Received> {
        lock(&self.recording)
            .packets
            .get(&kind)
            .cloned()
            .unwrap_or_default()
    }

    pub fn received_count(&self, kind: Kind) -> usize {
        lock(&self.recording).packets.get(&kind).map_or(0, Vec::len)
    }

    /// The SSRCs the remote declared for the incoming track of `kind`.
    pub fn declared_ssrcs(&self, kind: Kind) -> Vec<u32> {
        lock(&self.recording)
            .declared_ssrcs
            .get(&kind)
            .cloned()
            .unwrap_or_default()
    }

    /// Sends RTCP feedback (NACK, PLI, ...) about the incoming track of `kind`, as its
    /// receiver.
    pub async fn write_rtcp(
        &self,
        kind: Kind,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    ) -> anyhow::Result<()> {
        let track = self
            .remote_tracks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&kind)
            .cloned()
            .with_context(|| format!("[{}] no incoming {kind:?} track", self.name))?;
        track
            .write_rtcp(packets)
            .await
            .map_err(|error| anyhow::anyhow!("[{}] write_rtcp: {error}", self.name))
    }

    pub async fn close(&self) {
        if let Err(error) = self.pc.close().await {
            eprintln!("[{}] close: {error}", self.name);
        }
    }
}

impl SendTrack {
    /// Looks up the payload type negotiated for this track's codec; writing needs it.
    pub async fn resolve_payload_type(&mut self) -> anyhow::Result<u8> {
        let mime_type = match self.kind {
            Kind::Audio => MIME_TYPE_OPUS,
            Kind::Video => MIME_TYPE_VP8,
        };
        let parameters = self.sender.get_parameters().await?;
        let payload_type = parameters
            .rtp_parameters
            .codecs
            .iter()
            .find(|codec| codec.rtp_codec.mime_type.eq_ignore_ascii_case(mime_type))
            .map(|codec| codec.payload_type)
            .with_context(|| format!("{mime_type} was not negotiated"))?;
        self.payload_type = Some(payload_type);
        Ok(payload_type)
    }

    pub async fn write(
        &self,
        marker: bool,
        sequence_number: u16,
        timestamp: u32,
        payload: Bytes,
    ) -> anyhow::Result<()> {
        let payload_type = self
            .payload_type
            .context("the payload type is not resolved: negotiate first")?;
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker,
                payload_type,
                sequence_number,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload,
        };
        self.track.write_rtp(packet).await?;
        Ok(())
    }
}

/// A VP8 track the peer sends as rid simulcast: one m-line with one encoding per layer, each
/// on its own SSRC, every packet naming its m-line and layer in the mid and rid header
/// extensions (as browsers do before their SSRCs are acknowledged).
pub struct SimulcastTrack {
    /// (rid, SSRC) of each layer, in the order offered.
    pub layers: Vec<(String, u32)>,
    pub track: Arc<TrackLocalStaticRTP>,
    pub sender: Arc<dyn RtpSender>,
    /// Known once negotiation is done: see [`SimulcastTrack::resolve`].
    negotiated: Option<(u8, u8, u8, String)>,
}

impl Peer {
    /// Adds a send-only VP8 track with one simulcast encoding per `(rid, ssrc)` (no RTX).
    pub async fn add_simulcast_video(
        &self,
        layers: &[(&str, u32)],
    ) -> anyhow::Result<SimulcastTrack> {
        let encodings = layers
            .iter()
            .map(|&(rid, ssrc)| {
                let mut encoding = RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: rid.to_owned(),
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                encoding.codec.mime_type = MIME_TYPE_VP8.to_owned();
                encoding.codec.clock_rate = 90_000;
                encoding
            })
            .collect();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("{}-stream", self.name),
            format!("{}-simulcast", self.name),
            format!("{} simulcast", self.name),
            RtpCodecKind::Video,
            encodings,
        )));
        let local: Arc<dyn TrackLocal> = Arc::clone(&track) as Arc<dyn TrackLocal>;
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![],
            send_encodings: vec![],
        };
        let transceiver = self
            .pc
            .add_transceiver_from_track(local, Some(init))
            .await
            .with_context(|| format!("{}: adding the simulcast track", self.name))?;
        let sender = transceiver
            .sender()
            .await?
            .context("a send-only transceiver without a sender")?;
        Ok(SimulcastTrack {
            layers: layers
                .iter()
                .map(|&(rid, ssrc)| (rid.to_owned(), ssrc))
                .collect(),
            track,
            sender,
            negotiated: None,
        })
    }
}

impl SimulcastTrack {
    /// Looks up the negotiated VP8 payload type and mid and rid extension ids; `mid` is the
    /// m-line's, from the offer.
    pub async fn resolve(&mut self, mid: &str) -> anyhow::Result<()> {
        let parameters = self.sender.get_parameters().await?;
        let rtp = &parameters.rtp_parameters;
        let payload_type = rtp
            .codecs
            .iter()
            .find(|codec| {
                codec
                    .rtp_codec
                    .mime_type
                    .eq_ignore_ascii_case(MIME_TYPE_VP8)
            })
            .map(|codec| codec.payload_type)
            .context("VP8 was not negotiated")?;
        let id = |uri: &str| {
            rtp.header_extensions
                .iter()
                .find(|e| e.uri == uri)
                .map(|e| e.id as u8)
                .with_context(|| format!("{uri} was not negotiated"))
        };
        let mid_id = id("urn:ietf:params:rtp-hdrext:sdes:mid")?;
        let rid_id = id("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id")?;
        self.negotiated = Some((payload_type, mid_id, rid_id, mid.to_owned()));
        Ok(())
    }

    /// Writes one packet of layer `layer` (an index into `layers`).
    pub async fn write(
        &self,
        layer: usize,
        sequence_number: u16,
        timestamp: u32,
        payload: Bytes,
    ) -> anyhow::Result<()> {
        let (payload_type, mid_id, rid_id, mid) = self
            .negotiated
            .as_ref()
            .context("not resolved: negotiate first")?;
        let (rid, ssrc) = self.layers.get(layer).context("no such layer")?;
        let mut header = rtp::header::Header {
            version: 2,
            marker: true,
            payload_type: *payload_type,
            sequence_number,
            timestamp,
            ssrc: *ssrc,
            ..Default::default()
        };
        header.set_extension(*mid_id, Bytes::copy_from_slice(mid.as_bytes()))?;
        header.set_extension(*rid_id, Bytes::copy_from_slice(rid.as_bytes()))?;
        self.track
            .write_rtp(rtp::Packet { header, payload })
            .await?;
        Ok(())
    }
}
