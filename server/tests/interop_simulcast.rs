//! Rid simulcast from an independent implementation: a webrtc-rs publisher offers one VP8
//! m-line with three encodings (rids q, h and f, `a=simulcast:send`) and sends each on its
//! own SSRC with the mid and rid header extensions, keyframes of 320, 640 and 1280 px wide.
//! Sluice must make it one video track with three layers (not three tracks), bind the
//! three SSRCs from the extensions, and give each player one layer under one SSRC: the
//! highest by default, the lowest for a player capped at layer 0.
//!
//! No timing is asserted: every wait is bounded and generous.

mod support;

use std::time::Duration;

use anyhow::{Context, anyhow, ensure};
use bytes::Bytes;
use server::{LayerCap, MediaConfig, MediaKind, Sfu};
use support::media::{Kind, Received};
use support::peer::{Peer, SimulcastTrack};
use support::room::{CONNECT_LIMIT, connect_subscribers};
use support::wait_until;

const LAYERS: [(&str, u32); 3] = [("q", 0x5101), ("h", 0x5102), ("f", 0x5103)];
const WIDTHS: [u16; 3] = [320, 640, 1280];
/// A keyframe on every layer this often (in frames, at 30 frames/s): what answers the
/// server's keyframe requests without reading them.
const KEYFRAME_EVERY: u32 = 10;

/// One VP8 packet of `layer` for frame `frame`: a 15-bit PictureID, a keyframe header with
/// the layer's size every [`KEYFRAME_EVERY`] frames, and the layer's index and the frame
/// number at the end (what the test reads back).
fn vp8_packet(layer: usize, frame: u32) -> Bytes {
    let picture_id = (frame & 0x7fff) as u16;
    let [hi, lo] = picture_id.to_be_bytes();
    let mut payload = vec![0x90, 0x80, 0x80 | hi, lo];
    if frame.is_multiple_of(KEYFRAME_EVERY) {
        payload.extend_from_slice(&[0x10, 0, 0, 0x9d, 0x01, 0x2a]);
        payload.extend_from_slice(&WIDTHS[layer].to_le_bytes());
        payload.extend_from_slice(&(WIDTHS[layer] * 9 / 16).to_le_bytes());
    } else {
        payload.extend_from_slice(&[0x11, 0, 0]);
    }
    payload.extend_from_slice(&[0x55; 200]);
    payload.push(layer as u8);
    payload.extend_from_slice(&frame.to_be_bytes());
    Bytes::from(payload)
}

/// The layer a received packet was sent on.
fn layer_of(packet: &Received) -> u8 {
    packet.payload[packet.payload.len() - 5]
}

/// Sends `frames` frames of every layer, 33 ms apart.
async fn send_layers(track: &SimulcastTrack, frames: u32) -> anyhow::Result<()> {
    for frame in 0..frames {
        for layer in 0..LAYERS.len() {
            let seq = (frame as u16).wrapping_add(1_000 * layer as u16);
            let timestamp = frame
                .wrapping_mul(3_000)
                .wrapping_add(7_000_000 * layer as u32);
            track
                .write(layer, seq, timestamp, vp8_packet(layer, frame))
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_rs_rid_simulcast_publisher_is_one_track_with_three_layers() -> anyhow::Result<()>
{
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let room = "webrtc-rs-simulcast";
    let publisher = Peer::new("simulcast-publisher").await?;
    let mut track = publisher.add_simulcast_video(&LAYERS).await?;
    let offer = publisher.complete_offer().await?;
    eprintln!("[publisher] offer:\n{offer}");
    ensure!(
        offer.contains("a=simulcast:send"),
        "webrtc-rs offers no simulcast:\n{offer}"
    );
    ensure!(
        LAYERS
            .iter()
            .all(|(rid, _)| offer.contains(&format!("a=rid:{rid} send"))),
        "webrtc-rs offers not every rid:\n{offer}"
    );
    let published = sfu
        .publish(room, &offer)
        .await
        .map_err(|error| anyhow!("publish: {error}"))?;
    let video: Vec<_> = published
        .tracks
        .iter()
        .filter(|t| t.kind == MediaKind::Video)
        .collect();
    ensure!(
        video.len() == 1,
        "one video track, not {}: {:?}",
        video.len(),
        published.tracks
    );
    let video_track = video[0].id;
    let mid = video[0].mid.clone();
    publisher.accept_answer(&published.sdp).await?;
    publisher.connected(CONNECT_LIMIT).await?;
    track.resolve(&mid).await?;

    let mut players = connect_subscribers(&sfu, room, published.session, 2).await?;
    let lowest = players.pop().context("two players")?;
    let lowest_session = lowest.session;
    let lowest = lowest.peer;
    let highest = players.pop().context("two players")?.peer;
    sfu.set_layer_cap(
        lowest_session,
        video_track,
        LayerCap {
            spatial: Some(0),
            temporal: None,
        },
    )
    .await
    .map_err(|error| anyhow!("set_layer_cap: {error}"))?;

    // Seven seconds of media at 30 frames/s, then the players' streams are read: a player
    // with a bandwidth estimate starts a new track's lowest layer, and its allocation
    // raises it once the layers have been active for 2 s.
    send_layers(&track, 210).await?;
    wait_until(
        Duration::from_secs(10),
        "both players received video",
        || highest.received_count(Kind::Video) >= 30 && lowest.received_count(Kind::Video) >= 30,
    )
    .await?;

    let bound = sfu.stats().media.simulcast_ssrcs_bound;
    ensure!(
        bound == 3,
        "the three layers' SSRCs bound from mid and rid, not {bound}"
    );
    for (player, name, wanted) in [(&highest, "highest", 2u8), (&lowest, "lowest", 0u8)] {
        let received = player.received(Kind::Video);
        let ssrcs: std::collections::BTreeSet<u32> = received.iter().map(|p| p.ssrc).collect();
        ensure!(ssrcs.len() == 1, "{name}: one stream, not SSRCs {ssrcs:x?}");
        ensure!(
            !ssrcs.iter().any(|s| LAYERS.iter().any(|(_, l)| l == s)),
            "{name}: the publisher's SSRCs are rewritten"
        );
        // Before its first keyframe a player gets nothing. While the layers start, the
        // highest active one may be a lower one for a frame or two: a player may go up to
        // its layer, at keyframes only, and then stays on it.
        let layers: Vec<u8> = received.iter().map(layer_of).collect();
        eprintln!(
            "[{name}] {} packets, layers in order {:?}",
            received.len(),
            {
                let mut runs = layers.clone();
                runs.dedup();
                runs
            }
        );
        let tail = &layers[layers.len().saturating_sub(60)..];
        ensure!(
            tail.len() == 60 && tail.iter().all(|&l| l == wanted),
            "{name}: the last 60 packets of layer {wanted} ({} px), not {tail:?}",
            WIDTHS[usize::from(wanted)]
        );
        for (at, pair) in received.windows(2).enumerate() {
            if layer_of(&pair[0]) != layer_of(&pair[1]) || at == 0 {
                let packet = if at == 0 { &pair[0] } else { &pair[1] };
                let frame =
                    u32::from_be_bytes(packet.payload[packet.payload.len() - 4..].try_into()?);
                ensure!(
                    frame.is_multiple_of(KEYFRAME_EVERY),
                    "{name}: a layer starts at a keyframe, not at frame {frame}"
                );
            }
        }
        let gaps = received
            .windows(2)
            .filter(|w| w[1].sequence_number != w[0].sequence_number.wrapping_add(1))
            .count();
        ensure!(gaps == 0, "{name}: {gaps} sequence gaps");
    }
    publisher.close().await;
    highest.close().await;
    lowest.close().await;
    Ok(())
}
