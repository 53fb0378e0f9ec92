//! Tests of the interop harness itself, without the SFU: two webrtc-rs peers connected to each
//! other directly and through the lossy proxy prove that the peer setup, the media plan, the
//! receiver checks and the proxy work, so that a failure of the SFU tests points at the SFU.

mod support;

use std::time::Duration;

use support::media::{Expectation, Kind, MediaPlan, counter_of, send_plan};
use support::peer::{Peer, SendTrack};
use support::proxy::{Impairment, LossyProxy};
use support::{sdp, wait_until, within};
use webrtc::peer_connection::RTCPeerConnectionState;

const CONNECT_LIMIT: Duration = Duration::from_secs(30);
const PUBLISHER_SSRCS: (u32, u32) = (0x1111_0000, 0x2222_0000);

/// A webrtc-rs publisher whose answer came from another webrtc-rs peer, optionally with the
/// answerer's candidate pointed at `via`. Returns the two peers and the negotiated tracks.
async fn connect_pair(
    via: Option<&LossyProxy>,
) -> anyhow::Result<(Peer, Peer, SendTrack, SendTrack)> {
    let publisher = Peer::new("publisher").await?;
    let mut audio = publisher
        .add_send_track(Kind::Audio, PUBLISHER_SSRCS.0)
        .await?;
    let mut video = publisher
        .add_send_track(Kind::Video, PUBLISHER_SSRCS.1)
        .await?;
    let offer = publisher.complete_offer().await?;
    assert!(
        sdp::has_attribute(&offer, "a=sendonly"),
        "a WHIP-style offer is send-only"
    );
    let receiver = Peer::new("receiver").await?;
    receiver.apply_offer(&offer).await?;
    let mut answer = receiver.complete_answer().await?;
    if let Some(proxy) = via {
        let answerer_addr = *sdp::candidates(&answer)
            .first()
            .expect("the answer has a candidate");
        let (edited, rewritten) = sdp::redirect_candidates(&answer, answerer_addr, proxy.addr);
        assert!(rewritten > 0);
        answer = edited;
    }
    publisher.accept_answer(&answer).await?;
    publisher.connected(CONNECT_LIMIT).await?;
    receiver.connected(CONNECT_LIMIT).await?;
    audio.resolve_payload_type().await?;
    video.resolve_payload_type().await?;
    Ok((publisher, receiver, audio, video))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_peer_to_peer_delivers_the_plan_exactly() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let plan = MediaPlan::STANDARD;
    let (publisher, receiver, audio, video) = connect_pair(None).await?;
    eprintln!("connected; sending {:?}", plan);
    within(
        plan.duration() + Duration::from_secs(10),
        "sending",
        send_plan(&plan, &audio, &video),
    )
    .await??;
    let complete = || {
        [Kind::Audio, Kind::Video]
            .iter()
            .all(|&kind| receiver.received_count(kind) >= plan.count(kind) as usize)
    };
    wait_until(
        Duration::from_secs(10),
        "every packet at the receiver",
        complete,
    )
    .await?;
    for kind in [Kind::Audio, Kind::Video] {
        let declared = receiver.declared_ssrcs(kind);
        let expectation = Expectation {
            plan: &plan,
            kind,
            foreign_ssrc: None,
            declared_ssrcs: &declared,
        };
        expectation.check_exact(&receiver.received(kind))?;
    }
    publisher.close().await;
    receiver.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_peer_to_peer_recovers_through_lossy_proxy() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let plan = MediaPlan::STANDARD;
    // The proxy must know the receiver's address before the receiver exists; a placeholder
    // peer cannot be avoided without trickle, so build the pair by hand here.
    let publisher = Peer::new("publisher").await?;
    let mut audio = publisher
        .add_send_track(Kind::Audio, PUBLISHER_SSRCS.0)
        .await?;
    let mut video = publisher
        .add_send_track(Kind::Video, PUBLISHER_SSRCS.1)
        .await?;
    let offer = publisher.complete_offer().await?;
    let receiver = Peer::new("receiver").await?;
    receiver.apply_offer(&offer).await?;
    let answer = receiver.complete_answer().await?;
    let receiver_addr = *sdp::candidates(&answer)
        .first()
        .expect("the answer has a candidate");
    let impairment = Impairment {
        loss: 0.05,
        seed: 7,
        lifetime: Duration::from_secs(60),
        max_datagrams: 100_000,
    };
    let proxy = LossyProxy::start(receiver_addr, impairment).await?;
    let (answer, rewritten) = sdp::redirect_candidates(&answer, receiver_addr, proxy.addr);
    assert!(rewritten > 0);
    publisher.accept_answer(&answer).await?;
    publisher.connected(CONNECT_LIMIT).await?;
    receiver.connected(CONNECT_LIMIT).await?;
    audio.resolve_payload_type().await?;
    video.resolve_payload_type().await?;

    let sent = plan.with_tail(Duration::from_secs(1));
    within(
        sent.duration() + Duration::from_secs(10),
        "sending",
        send_plan(&sent, &audio, &video),
    )
    .await??;
    // Only video is NACKed (webrtc-rs offers nack for video codecs only), so only video must
    // be complete; lost audio stays lost, as in a browser.
    let required = plan.count(Kind::Video);
    let video_expectation = Expectation {
        plan: &sent,
        kind: Kind::Video,
        foreign_ssrc: None,
        declared_ssrcs: &[],
    };
    let complete = || {
        video_expectation.distinct_below(&receiver.received(Kind::Video), required)
            == required as usize
    };
    let outcome = wait_until(
        Duration::from_secs(15),
        "every video payload after repair",
        complete,
    )
    .await;
    eprintln!(
        "proxy: {} datagrams from the publisher, {} dropped, {} from the receiver",
        proxy.client_datagrams(),
        proxy.dropped(),
        proxy.server_datagrams()
    );
    let video = receiver.received(Kind::Video);
    eprintln!(
        "receiver: {} video packets, {} distinct of {}",
        video.len(),
        video_expectation.distinct_below(&video, required),
        required
    );
    outcome?;
    assert!(
        proxy.dropped() > 0,
        "the proxy dropped nothing, so nothing was repaired"
    );
    video_expectation.check_complete_below(&receiver.received(Kind::Video), required)?;
    proxy.shutdown().await;
    publisher.close().await;
    receiver.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_receive_only_offerer_records_both_tracks() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    // The subscriber side of the SFU tests: a recvonly offer, answered here by a sending peer.
    let plan = MediaPlan {
        video_frames: 30,
        packets_per_frame: 3,
        audio_packets: 50,
    };
    let subscriber = Peer::new("subscriber").await?;
    subscriber.add_receive_only(Kind::Audio).await?;
    subscriber.add_receive_only(Kind::Video).await?;
    let offer = subscriber.complete_offer().await?;
    let sender = Peer::new("sender").await?;
    sender.apply_offer(&offer).await?;
    let mut audio = sender
        .add_send_track(Kind::Audio, PUBLISHER_SSRCS.0)
        .await?;
    let mut video = sender
        .add_send_track(Kind::Video, PUBLISHER_SSRCS.1)
        .await?;
    let answer = sender.complete_answer().await?;
    subscriber.accept_answer(&answer).await?;
    subscriber.connected(CONNECT_LIMIT).await?;
    sender.connected(CONNECT_LIMIT).await?;
    audio.resolve_payload_type().await?;
    video.resolve_payload_type().await?;
    within(
        plan.duration() + Duration::from_secs(10),
        "sending",
        send_plan(&plan, &audio, &video),
    )
    .await??;
    let complete = || {
        [Kind::Audio, Kind::Video]
            .iter()
            .all(|&kind| subscriber.received_count(kind) >= plan.count(kind) as usize)
    };
    wait_until(
        Duration::from_secs(10),
        "every packet at the subscriber",
        complete,
    )
    .await?;
    for kind in [Kind::Audio, Kind::Video] {
        let declared = subscriber.declared_ssrcs(kind);
        assert!(
            !declared.is_empty(),
            "{kind:?}: the answer declared no SSRC"
        );
        let expectation = Expectation {
            plan: &plan,
            kind,
            foreign_ssrc: None,
            declared_ssrcs: &declared,
        };
        expectation.check_exact(&subscriber.received(kind))?;
    }
    sender.close().await;
    subscriber.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_forged_fingerprint_is_refused_by_webrtc_rs() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    // The forgery of the wrong-certificate test must be one an independent implementation
    // refuses, or that test would prove nothing.
    let publisher = Peer::new("forger").await?;
    publisher
        .add_send_track(Kind::Audio, PUBLISHER_SSRCS.0)
        .await?;
    let offer = publisher.complete_offer().await?;
    let (forged, count) = sdp::forge_fingerprints(&offer);
    assert!(count > 0);
    let receiver = Peer::new("verifier").await?;
    receiver.apply_offer(&forged).await?;
    let answer = receiver.complete_answer().await?;
    publisher.accept_answer(&answer).await?;
    let settled = receiver.settled(CONNECT_LIMIT).await?;
    assert_ne!(
        settled,
        RTCPeerConnectionState::Connected,
        "the verifier connected to a peer whose certificate it was not told"
    );
    publisher.close().await;
    receiver.close().await;
    Ok(())
}

#[test]
fn payload_counters_round_trip_and_video_packets_start_with_a_vp8_descriptor() {
    let plan = MediaPlan::STANDARD;
    for kind in [Kind::Audio, Kind::Video] {
        for index in 0..plan.count(kind) {
            let packet = plan.packet(kind, index);
            assert_eq!(counter_of(kind, &packet.payload), Some(index));
        }
    }
    let first = plan.packet(Kind::Video, 0).payload;
    assert_eq!(first[0], 0x10, "S bit on the first packet of a frame");
    assert_eq!(first[1] & 0x01, 0, "key frame");
    assert_eq!(&first[4..7], &[0x9D, 0x01, 0x2A], "VP8 start code");
    assert_eq!(plan.packet(Kind::Video, 1).payload[0], 0x00);
    assert!(plan.packet(Kind::Video, 2).marker && !plan.packet(Kind::Video, 1).marker);
    // Different counters give different payloads, so a swapped packet cannot pass the check.
    assert_ne!(
        plan.packet(Kind::Video, 1).payload,
        plan.packet(Kind::Video, 4).payload
    );
}

#[test]
fn exact_check_rejects_a_gap_a_changed_byte_and_the_publishers_ssrc() {
    use support::media::Received;
    let plan = MediaPlan {
        video_frames: 2,
        packets_per_frame: 2,
        audio_packets: 0,
    };
    let sent: Vec<Received> = (0..4)
        .map(|index| {
            let packet = plan.packet(Kind::Video, index);
            Received {
                ssrc: 9,
                sequence_number: packet.sequence_number.wrapping_add(100),
                timestamp: packet.timestamp.wrapping_add(5),
                marker: packet.marker,
                payload_type: 96,
                payload: packet.payload,
            }
        })
        .collect();
    let expectation = Expectation {
        plan: &plan,
        kind: Kind::Video,
        foreign_ssrc: Some(1),
        declared_ssrcs: &[9],
    };
    expectation
        .check_exact(&sent)
        .expect("the packets as sent pass");

    let mut gap = sent.clone();
    gap.remove(2);
    assert!(expectation.check_exact(&gap).is_err());
    assert!(expectation.check_complete(&gap).is_err());

    let mut changed = sent.clone();
    let mut payload = changed[3].payload.to_vec();
    *payload.last_mut().unwrap() ^= 1;
    changed[3].payload = payload.into();
    assert!(expectation.check_complete(&changed).is_err());

    let mut duplicated = sent.clone();
    duplicated.push(sent[1].clone());
    assert!(expectation.check_exact(&duplicated).is_err());
    expectation
        .check_complete(&duplicated)
        .expect("a repair may arrive twice");

    let publishers = Expectation {
        foreign_ssrc: Some(9),
        ..expectation
    };
    assert!(publishers.check_exact(&sent).is_err());
}

#[test]
fn sdp_edits_touch_only_what_they_name() {
    let sdp = "v=0\r\na=fingerprint:sha-256 00:FF:10\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=candidate:2 1 udp 2130706431 127.0.0.1 6000 typ host\r\n";
    let (forged, count) = sdp::forge_fingerprints(sdp);
    assert_eq!(count, 1);
    assert_eq!(sdp::fingerprints(&forged), ["sha-256 FF:00:EF"]);
    let from = "127.0.0.1:5000".parse().unwrap();
    let to = "127.0.0.1:7000".parse().unwrap();
    let (redirected, count) = sdp::redirect_candidates(sdp, from, to);
    assert_eq!(count, 1);
    assert_eq!(
        sdp::candidates(&redirected),
        [to, "127.0.0.1:6000".parse().unwrap()]
    );
}
