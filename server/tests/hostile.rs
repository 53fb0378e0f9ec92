//! Hostile traffic against a live room, over loopback: a webrtc-rs publisher forwards media
//! through `Sfu` to webrtc-rs subscribers while the media port is flooded with garbage,
//! mangled protocol messages, STUN with the wrong password and media from addresses that never
//! passed ICE; while an attacker on the publisher's path replays and forges its SRTP; and while
//! a stranger who knows a subscriber's ICE credentials checks from a new address; and while
//! one subscriber NACKs everything, all the time. The room must lose nothing, the drops must
//! be counted by reason, no reply may be larger than what caused it, memory must stay
//! bounded, media must go only to the address ICE nominated, and retransmissions only as far
//! as the subscriber's budget.
//!
//! Every loop is bounded in count and time; no timing is asserted.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use ice_lite::{BindingRequest, Class, DatagramKind, IntegrityKey, StunMessage, classify};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rtc_core::Ssrc;
use rtc_core::rtcp::{ReportBlock, write_pli, write_receiver_report};
use rtc_core::rtp::RtpPacket;
use server::{MediaConfig, Sfu, SfuStats};
use support::media::{Kind, MediaPlan, send_plan};
use support::proxy::{Impairment, LossyProxy, Tampering};
use support::room::{
    PUBLISHER_VIDEO_SSRC, Publisher, check_every_payload_exactly, close_room, connect_publisher,
    connect_subscribers,
};
use support::{sdp, within};
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Flood size and shape: 20,000 datagrams from four sockets in 100 rounds 30 ms apart.
const FLOOD_SOCKETS: usize = 4;
const FLOOD_ROUNDS: usize = 100;
const FLOOD_PER_ROUND: usize = 200;
const FLOOD_ROUND_INTERVAL: Duration = Duration::from_millis(30);
/// The router and SRTP state are bounded; this leaves room for allocator noise and the peers.
const RSS_GROWTH_LIMIT_KIB: u64 = 64 * 1024;
/// The ICE check priority a peer-reflexive candidate of a test socket would have.
const PRFLX_PRIORITY: u32 = 0x6E00_01FF;

/// Resident memory of this process (the SFU runs in it), from /proc/self/status.
fn resident_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

/// Where the SFU must count a flood datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Expected {
    UnknownProtocol,
    MalformedStun,
    UnknownStunUsername,
    RejectedStun,
    UnvalidatedSource,
}

impl Expected {
    const ALL: [Expected; 5] = [
        Expected::UnknownProtocol,
        Expected::MalformedStun,
        Expected::UnknownStunUsername,
        Expected::RejectedStun,
        Expected::UnvalidatedSource,
    ];

    /// Decided the way the worker decides, so that the test knows each datagram's counter.
    fn of(datagram: &[u8], live_ufrag: &str) -> Expected {
        match classify(datagram) {
            DatagramKind::Stun => match StunMessage::parse(datagram) {
                Err(_) => Expected::MalformedStun,
                Ok(message) => {
                    let local = message
                        .username()
                        .and_then(|username| username.split_once(':'))
                        .map(|(local, _)| local);
                    if local == Some(live_ufrag) {
                        Expected::RejectedStun
                    } else {
                        Expected::UnknownStunUsername
                    }
                }
            },
            DatagramKind::Dtls | DatagramKind::Rtp | DatagramKind::Rtcp => {
                Expected::UnvalidatedSource
            }
            _ => Expected::UnknownProtocol,
        }
    }

    fn counter(self, stats: &SfuStats) -> u64 {
        match self {
            Expected::UnknownProtocol => stats.dropped_unknown_protocol,
            Expected::MalformedStun => stats.dropped_malformed_stun,
            Expected::UnknownStunUsername => stats.dropped_unknown_stun_username,
            Expected::RejectedStun => stats.dropped_rejected_stun,
            Expected::UnvalidatedSource => stats.dropped_unvalidated_source,
        }
    }
}

/// Real messages of each protocol, for the flood to truncate and mutate.
struct Templates {
    /// A binding request for a session that does not exist.
    stun_unknown: Vec<u8>,
    dtls: Vec<u8>,
    rtp: Vec<u8>,
    rtcp_pli: Vec<u8>,
    rtcp_rr: Vec<u8>,
}

fn binding_request(
    rng: &mut impl RngCore,
    username: &str,
    password: &[u8],
    use_candidate: bool,
) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0; 256];
    let mut transaction_id = [0; 12];
    rng.fill_bytes(&mut transaction_id);
    let len = BindingRequest {
        username,
        priority: PRFLX_PRIORITY,
        ice_controlling: Some(rng.next_u64()),
        ice_controlled: None,
        use_candidate,
    }
    .write(&mut buf, &transaction_id, &IntegrityKey::new(password))
    .map_err(|error| anyhow::anyhow!("writing a binding request: {error}"))?;
    buf.truncate(len);
    Ok(buf)
}

impl Templates {
    fn new(rng: &mut impl RngCore, video_payload_type: u8) -> anyhow::Result<Templates> {
        let stun_unknown = binding_request(rng, "nobody:flood", b"a password nobody has", true)?;
        // A DTLS 1.2 handshake record (ClientHello, epoch 0) with a random body.
        let mut dtls = vec![22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 1, 0, 100];
        dtls.extend((0..100).map(|_| rng.next_u32() as u8));
        let mut rtp = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        rtp.extend((0..200).map(|_| rng.next_u32() as u8));
        {
            let mut packet =
                RtpPacket::parse(&mut rtp[..]).map_err(|e| anyhow::anyhow!("rtp: {e}"))?;
            packet.set_payload_type(rtc_core::Pt(video_payload_type));
            packet.set_sequence_number(7);
            packet.set_timestamp(0x0102_0304);
            packet.set_ssrc(Ssrc(PUBLISHER_VIDEO_SSRC));
        }
        let mut rtcp_pli = vec![0; 12];
        let len = write_pli(&mut rtcp_pli, Ssrc(1), Ssrc(PUBLISHER_VIDEO_SSRC))
            .map_err(|e| anyhow::anyhow!("pli: {e}"))?;
        rtcp_pli.truncate(len);
        let mut rtcp_rr = vec![0; 64];
        let len = write_receiver_report(
            &mut rtcp_rr,
            Ssrc(1),
            &[ReportBlock {
                ssrc: Ssrc(PUBLISHER_VIDEO_SSRC),
                ..Default::default()
            }],
        )
        .map_err(|e| anyhow::anyhow!("rr: {e}"))?;
        rtcp_rr.truncate(len);
        Ok(Templates {
            stun_unknown,
            dtls,
            rtp,
            rtcp_pli,
            rtcp_rr,
        })
    }
}

/// Truncates `template` (keeping its first byte) or flips a few of its bits after the first
/// byte, so the datagram keeps its protocol by RFC 7983 but is damaged somewhere.
fn mangle(rng: &mut impl Rng, template: &[u8]) -> Vec<u8> {
    let mut datagram = template.to_vec();
    if rng.random_bool(0.5) {
        datagram.truncate(rng.random_range(2..template.len()));
    } else {
        for _ in 0..rng.random_range(1..=3) {
            let bit = rng.random_range(8..datagram.len() * 8);
            datagram[bit / 8] ^= 1 << (bit % 8);
        }
    }
    datagram
}

/// One flood datagram: random bytes, mangled STUN/DTLS/RTP/RTCP, a binding request for the
/// live session with the wrong password, or intact RTP/RTCP from a stranger.
fn flood_datagram(
    rng: &mut ChaCha8Rng,
    templates: &Templates,
    live_username: &str,
) -> anyhow::Result<Vec<u8>> {
    Ok(match rng.random_range(0..10) {
        0 | 1 => {
            let mut datagram = vec![0; rng.random_range(0..1200)];
            rng.fill_bytes(&mut datagram);
            datagram
        }
        2 => mangle(rng, &templates.stun_unknown),
        3 => binding_request(rng, "nobody:flood", b"a password nobody has", false)?,
        4 => {
            let use_candidate = rng.random_bool(0.5);
            binding_request(
                rng,
                live_username,
                b"not the session's password",
                use_candidate,
            )?
        }
        5 => mangle(rng, &templates.dtls),
        6 => mangle(rng, &templates.rtp),
        7 => {
            let template = if rng.random_bool(0.5) {
                &templates.rtcp_pli
            } else {
                &templates.rtcp_rr
            };
            mangle(rng, template)
        }
        8 => templates.rtp.clone(),
        _ => templates.rtcp_rr.clone(),
    })
}

/// The STUN transaction ids a flood socket sent, with the shortest request under each.
type SentRequests = Arc<Mutex<HashMap<[u8; 12], usize>>>;

fn transaction_id(datagram: &[u8]) -> Option<[u8; 12]> {
    datagram.get(8..20)?.try_into().ok()
}

/// Reads every reply on a flood socket until told to stop, and returns the complaints: a
/// reply that is not a STUN response to a request of ours, or one larger than its request.
async fn watch_replies(
    socket: Arc<UdpSocket>,
    sent: SentRequests,
    mut stop: watch::Receiver<bool>,
) -> (u64, Vec<String>) {
    let mut buf = vec![0; 2048];
    let mut replies = 0;
    let mut complaints = Vec::new();
    loop {
        let (len, _) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(_) => continue,
            },
            _ = stop.wait_for(|stop| *stop) => return (replies, complaints),
        };
        replies += 1;
        let reply = &buf[..len];
        let request_len = transaction_id(reply)
            .filter(|_| classify(reply) == DatagramKind::Stun)
            .and_then(|id| sent.lock().ok()?.get(&id).copied());
        match request_len {
            None => complaints.push(format!(
                "a {len}-byte reply (first byte {:?}) to no STUN request of ours",
                reply.first()
            )),
            Some(request_len) if len > request_len => complaints.push(format!(
                "a {len}-byte reply to a {request_len}-byte request"
            )),
            Some(_) => {
                if let Ok(message) = StunMessage::parse(reply)
                    && message.class() == Class::SuccessResponse
                {
                    complaints.push("a success response to an unauthenticated request".into());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_keeps_flowing_through_a_flood() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let media_addr = sfu.media_addr();
    let room = "flooded";
    let publisher = connect_publisher(&sfu, room, None).await?;
    let subscribers = connect_subscribers(&sfu, room, publisher.session, 2).await?;
    let (server_ufrag, _) =
        sdp::ice_credentials(&publisher.answer).context("the answer's ICE credentials")?;
    let live_username = format!("{server_ufrag}:flood");
    let video_payload_type = publisher.video.payload_type.context("video payload type")?;

    let mut rng = ChaCha8Rng::seed_from_u64(0xF100_D5EE);
    let templates = Templates::new(&mut rng, video_payload_type)?;
    let mut sockets = Vec::with_capacity(FLOOD_SOCKETS);
    let mut sent_requests = Vec::with_capacity(FLOOD_SOCKETS);
    let (stop, stopped) = watch::channel(false);
    let mut watchers = Vec::with_capacity(FLOOD_SOCKETS);
    for _ in 0..FLOOD_SOCKETS {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let sent = SentRequests::default();
        watchers.push(tokio::spawn(watch_replies(
            Arc::clone(&socket),
            Arc::clone(&sent),
            stopped.clone(),
        )));
        sockets.push(socket);
        sent_requests.push(sent);
    }

    let before = sfu.stats();
    let rss_before = resident_kib()?;
    let plan = MediaPlan::STANDARD;
    let mut expected: HashMap<Expected, u64> = HashMap::new();
    let flood = async {
        for round in 0..FLOOD_ROUNDS {
            for number in 0..FLOOD_PER_ROUND {
                let datagram = flood_datagram(&mut rng, &templates, &live_username)?;
                let which = (round * FLOOD_PER_ROUND + number) % FLOOD_SOCKETS;
                if classify(&datagram) == DatagramKind::Stun
                    && let Some(id) = transaction_id(&datagram)
                    && let Ok(mut sent) = sent_requests[which].lock()
                {
                    let shortest = sent.entry(id).or_insert(datagram.len());
                    *shortest = (*shortest).min(datagram.len());
                }
                *expected
                    .entry(Expected::of(&datagram, server_ufrag))
                    .or_default() += 1;
                sockets[which].send_to(&datagram, media_addr).await?;
            }
            tokio::time::sleep(FLOOD_ROUND_INTERVAL).await;
        }
        anyhow::Ok(())
    };
    eprintln!(
        "sending {plan:?} through a flood of {} datagrams",
        FLOOD_ROUNDS * FLOOD_PER_ROUND
    );
    let (sent, flooded) = within(
        plan.duration() + Duration::from_secs(15),
        "sending and flooding",
        async { tokio::join!(send_plan(&plan, &publisher.audio, &publisher.video), flood) },
    )
    .await?;
    sent?;
    flooded?;

    check_every_payload_exactly(&plan, &subscribers).await?;
    // Replies still in flight arrive within the half second the check waited.
    stop.send_replace(true);
    let mut complaints = Vec::new();
    let mut replies = 0;
    for watcher in watchers {
        let (count, found) = watcher.await?;
        replies += count;
        complaints.extend(found);
    }
    let after = sfu.stats();
    let rss_after = resident_kib()?;
    eprintln!("flood by expected counter: {expected:?}");
    eprintln!("stats before: {before:?}\nstats after: {after:?}");
    eprintln!(
        "{replies} replies on the flood sockets; VmRSS {rss_before} KiB before, {rss_after} KiB \
         after"
    );
    ensure!(
        complaints.is_empty(),
        "{} bad replies, e.g. {:?}",
        complaints.len(),
        complaints.first()
    );
    for counter in Expected::ALL {
        let sent = expected.get(&counter).copied().unwrap_or(0);
        let counted = counter.counter(&after) - counter.counter(&before);
        ensure!(sent > 0, "the flood sent nothing for {counter:?}");
        // Loopback may drop a datagram when a socket buffer is full, but not most of them.
        ensure!(
            counted >= sent / 2,
            "{counter:?}: {counted} counted, {sent} sent"
        );
    }
    ensure!(
        rss_after <= rss_before + RSS_GROWTH_LIMIT_KIB,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );

    close_room(&sfu, (&publisher.peer, publisher.session), subscribers).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_and_forged_srtp_from_a_validated_address_is_dropped() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let impairment = Impairment {
        loss: 0.0,
        seed: 0x7A3F_E125,
        lifetime: Duration::from_secs(90),
        max_datagrams: 200_000,
    };
    let tampering = Tampering {
        replay: 0.1,
        forge: 0.1,
        ..Tampering::default()
    };
    let proxy = LossyProxy::start_tampering(sfu.media_addr(), impairment, tampering).await?;
    let room = "tampered";
    let publisher = connect_publisher(&sfu, room, Some(&proxy)).await?;
    let subscribers = connect_subscribers(&sfu, room, publisher.session, 2).await?;
    let before = sfu.stats();

    let plan = MediaPlan::STANDARD;
    within(
        plan.duration() + Duration::from_secs(10),
        "the publisher to send the plan",
        send_plan(&plan, &publisher.audio, &publisher.video),
    )
    .await??;
    check_every_payload_exactly(&plan, &subscribers).await?;
    let after = sfu.stats();
    eprintln!(
        "proxy: {} datagrams from the publisher, {} replayed, {} forged",
        proxy.client_datagrams(),
        proxy.replayed(),
        proxy.forged()
    );
    eprintln!("stats: {after:?}");
    ensure!(
        proxy.replayed() > 0 && proxy.forged() > 0,
        "the proxy did not tamper"
    );
    let replays = after.srtp_replays - before.srtp_replays;
    let forgeries = after.srtp_auth_failures - before.srtp_auth_failures;
    ensure!(replays > 0, "no replay was counted");
    ensure!(forgeries > 0, "no forgery was counted");
    // Every tampered copy is refused and counted, as a replay or as a forgery (a forged SRTCP
    // index can make a forgery look old); none reaches the router.
    ensure!(
        replays + forgeries >= proxy.replayed() + proxy.forged(),
        "{replays} replays and {forgeries} forgeries counted, the proxy sent {} and {}",
        proxy.replayed(),
        proxy.forged()
    );

    close_room(&sfu, (&publisher.peer, publisher.session), subscribers).await;
    proxy.shutdown().await;
    Ok(())
}

/// Counts the RTP and RTCP datagrams (first byte 128..=191) a socket receives within `window`.
async fn media_arriving(socket: &UdpSocket, window: Duration) -> u64 {
    let mut buf = vec![0; 2048];
    let mut media = 0;
    let _ = tokio::time::timeout(window, async {
        loop {
            if let Ok((len, _)) = socket.recv_from(&mut buf).await
                && matches!(buf[..len].first(), Some(128..=191))
            {
                media += 1;
            }
        }
    })
    .await;
    media
}

/// Sends an authenticated binding request from `socket` and returns the response's class.
async fn check_from(
    socket: &UdpSocket,
    to: SocketAddr,
    username: &str,
    password: &str,
    use_candidate: bool,
) -> anyhow::Result<Class> {
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(use_candidate));
    let request = binding_request(&mut rng, username, password.as_bytes(), use_candidate)?;
    let mut buf = vec![0; 2048];
    for _ in 0..10 {
        socket.send_to(&request, to).await?;
        let Ok(received) =
            tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf)).await
        else {
            continue;
        };
        let (len, _) = received?;
        if let Ok(response) = StunMessage::parse(&buf[..len])
            && response.transaction_id() == transaction_id(&request).unwrap_or_default()
        {
            return Ok(response.class());
        }
    }
    bail!("no response to the binding request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_goes_only_to_checked_addresses() -> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let room = "checked";
    let Publisher {
        peer: publisher_peer,
        session: publisher_session,
        audio,
        video,
        ..
    } = connect_publisher(&sfu, room, None).await?;
    let subscribers = connect_subscribers(&sfu, room, publisher_session, 1).await?;
    let subscriber = subscribers.first().context("one subscriber")?;
    let (server_ufrag, server_pwd) =
        sdp::ice_credentials(&subscriber.answer).context("the answer's ICE credentials")?;
    let (peer_ufrag, _) =
        sdp::ice_credentials(&subscriber.offer).context("the offer's ICE credentials")?;
    let username = format!("{server_ufrag}:{peer_ufrag}");

    // Long enough to cover both watches below.
    let plan = MediaPlan {
        video_frames: 450,
        packets_per_frame: 2,
        audio_packets: 750,
    };
    let sending = tokio::spawn(async move { send_plan(&plan, &audio, &video).await });

    let newcomer = UdpSocket::bind("127.0.0.1:0").await?;
    let class = check_from(&newcomer, sfu.media_addr(), &username, server_pwd, false).await?;
    ensure!(
        class == Class::SuccessResponse,
        "a correct check got {class:?}"
    );
    let received_before = subscriber.peer.received_count(Kind::Video);
    let leaked = media_arriving(&newcomer, Duration::from_secs(2)).await;
    let received_meanwhile = subscriber.peer.received_count(Kind::Video) - received_before;
    eprintln!(
        "checked without nomination: {leaked} media datagrams at the new address, {received_meanwhile} \
         video packets at the nominated one"
    );
    ensure!(
        leaked == 0,
        "{leaked} media datagrams went to an address that was checked but not nominated"
    );
    ensure!(
        received_meanwhile > 0,
        "media stopped at the nominated address"
    );

    let class = check_from(&newcomer, sfu.media_addr(), &username, server_pwd, true).await?;
    ensure!(
        class == Class::SuccessResponse,
        "a nominating check got {class:?}"
    );
    let moved = media_arriving(&newcomer, Duration::from_secs(2)).await;
    eprintln!("nominated: {moved} media datagrams at the new address");
    ensure!(moved > 0, "media did not move to the nominated address");

    sending.abort();
    close_room(&sfu, (&publisher_peer, publisher_session), subscribers).await;
    Ok(())
}

/// A NACK covering the 204 sequence numbers from `first` (12 entries of 17).
fn nack_storm_packet(media_ssrc: u32, first: u16) -> Box<dyn rtc::rtcp::Packet> {
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    Box::new(TransportLayerNack {
        sender_ssrc: 0x5707_0001,
        media_ssrc,
        nacks: (0..12u16)
            .map(|i| NackPair {
                packet_id: first.wrapping_add(17 * i),
                lost_packets: 0xFFFF,
            })
            .collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_storm_is_held_to_the_subscribers_budget_and_a_bystander_is_undisturbed()
-> anyhow::Result<()> {
    let _turn = support::one_at_a_time().await;
    let sfu = Sfu::start(MediaConfig::loopback())?;
    let room = "nack-storm";
    let publisher = connect_publisher(&sfu, room, None).await?;
    let mut subscribers = connect_subscribers(&sfu, room, publisher.session, 2).await?;
    let attacker = subscribers.remove(0);
    let plan = MediaPlan::STANDARD;
    let before = sfu.stats();
    let started = tokio::time::Instant::now();
    let (stop, stopped) = watch::channel(false);
    // Every 20 ms (the shortest interval at which the router resends one packet to one
    // subscriber at all), the attacker asks for the last 204 video packets it could have had.
    let storm = async {
        let mut nacks = 0u64;
        while !*stopped.borrow() {
            let newest = attacker
                .peer
                .received(Kind::Video)
                .last()
                .map(|p| (p.ssrc, p.sequence_number));
            if let Some((ssrc, newest)) = newest {
                attacker
                    .peer
                    .write_rtcp(
                        Kind::Video,
                        vec![nack_storm_packet(ssrc, newest.wrapping_sub(203))],
                    )
                    .await?;
                nacks += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok(nacks)
    };
    let send = async {
        let sent = send_plan(&plan, &publisher.audio, &publisher.video).await;
        // Let the last NACKs be answered, then stop the storm.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.send_replace(true);
        sent
    };
    let (sent, nacks) = within(
        plan.duration() + Duration::from_secs(15),
        "sending through a NACK storm",
        async { tokio::join!(send, storm) },
    )
    .await?;
    sent?;
    let nacks = nacks?;
    let elapsed = started.elapsed();

    // The bystander got every payload exactly once, in order, byte-identical.
    check_every_payload_exactly(&plan, &subscribers).await?;
    let after = sfu.stats();
    let resent = after.retransmissions_sent - before.retransmissions_sent;
    let refused = after.retransmissions_over_budget - before.retransmissions_over_budget;
    eprintln!(
        "{nacks} NACKs of 204 packets over {elapsed:?}: {resent} retransmissions sent, \
         {refused} refused by the budget"
    );
    ensure!(nacks >= 50, "the storm ran: {nacks} NACKs");
    // The budget: a burst, a share of what the attacker was forwarded (at most the plan's
    // payloads plus headers) and a fixed rate for the time the storm lasted. Each video
    // retransmission is a 1000-byte payload with its headers, so at least 1000 bytes.
    let budget = packet_router::RetransmitBudgetConfig::default();
    let forwarded_bytes = u64::from(plan.count(Kind::Video)) * 1100 + 150 * 200;
    let bound_bytes = budget.burst_bytes
        + forwarded_bytes * u64::from(budget.share_percent) / 100
        + budget.floor_bytes_per_second * (elapsed.as_secs() + 2);
    ensure!(
        resent * 1000 <= bound_bytes,
        "{resent} retransmissions exceed a budget of {bound_bytes} bytes"
    );
    ensure!(
        refused > 10 * resent,
        "the storm went over budget: {refused} refused, {resent} sent"
    );

    subscribers.push(attacker);
    close_room(&sfu, (&publisher.peer, publisher.session), subscribers).await;
    Ok(())
}
