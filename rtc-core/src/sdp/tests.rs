//! Negotiation tests on the real browser offers in `fixtures/`: what the answers contain, that
//! each answer parses back into what the `NegotiatedSession` says, the error cases, and a
//! subscriber offer/answer exchange.

use super::fixtures::{self, ALL};
use super::negotiated::{select_codecs, select_extensions};
use super::*;
use crate::{Pt, Ssrc};

fn local() -> LocalParams {
    LocalParams {
        ice_ufrag: "slu1".into(),
        ice_pwd: "sluicepasswordsluicepwd".into(),
        fingerprint: "sha-256 0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9".into(),
        candidates: vec![
            "1 1 udp 2130706431 203.0.113.7 3478 typ host".into(),
            "2 1 udp 2130706175 2001:db8::7 3478 typ host".into(),
        ],
        session_id: 4_242_424_242,
        session_version: 2,
    }
}

fn answer(name: &str) -> (String, NegotiatedSession) {
    answer_offer(fixtures::get(name), &local(), &Capabilities::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn pts(media: &NegotiatedMedia) -> Vec<(u8, Option<u8>)> {
    media
        .codecs
        .iter()
        .map(|c| (c.pt.0, c.rtx_pt.map(|p| p.0)))
        .collect()
}

#[test]
fn chromium_publish_answer() {
    let (text, session) = answer("chromium-publish");
    let [audio, video] = session.media.as_slice() else {
        panic!("two m-lines")
    };
    assert_eq!((audio.mid.as_str(), audio.kind), ("0", MediaKind::Audio));
    assert_eq!(audio.direction, Direction::RecvOnly);
    assert_eq!(pts(audio), [(111, None)]);
    assert_eq!(
        audio.codecs[0].fmtp.as_deref(),
        Some("minptime=10;useinbandfec=1")
    );
    assert_eq!(audio.codecs[0].rtcp_fb, [RtcpFeedback::TransportCc]);
    assert_eq!(
        audio.codecs[0].red_pt, None,
        "a publisher is not offered RED"
    );
    // VP8, the two baseline H264 with packetization-mode 1, VP9 profile 0, AV1; each with
    // its RTX. H264 pm=0, main profile, VP9 profile 2, red, ulpfec are dropped.
    assert_eq!(
        pts(video),
        [
            (96, Some(97)),
            (102, Some(103)),
            (108, Some(109)),
            (98, Some(99)),
            (45, Some(46))
        ]
    );
    assert_eq!(
        video.codecs[0].rtcp_fb,
        [
            RtcpFeedback::GoogRemb,
            RtcpFeedback::TransportCc,
            RtcpFeedback::CcmFir,
            RtcpFeedback::Nack,
            RtcpFeedback::NackPli
        ]
    );
    assert_eq!(video.extensions.id(HeaderExtension::Mid), Some(4));
    assert_eq!(
        video.extensions.id(HeaderExtension::TransportWideCc),
        Some(3)
    );
    assert_eq!(audio.extensions.id(HeaderExtension::AudioLevel), Some(1));
    assert!(video.rtcp_rsize && session.extmap_allow_mixed);
    assert_eq!(session.remote_setup, Setup::ActPass);
    assert_eq!(session.remote_fingerprint.hash, "sha-256");
    assert_eq!(session.bundle, ["0", "1"]);
    assert_eq!(video.remote_streams.len(), 1);
    let stream = &video.remote_streams[0];
    assert!(stream.rtx_ssrc.is_some() && stream.cname.is_some());
    assert_eq!(stream.msid.as_ref().unwrap().stream, "-");

    for line in [
        "a=group:BUNDLE 0 1",
        "a=ice-lite",
        "a=setup:passive",
        "a=ice-ufrag:slu1",
        "a=fingerprint:sha-256 0A:1B",
        "m=audio 3478 UDP/TLS/RTP/SAVPF 111\r\n",
        "m=video 3478 UDP/TLS/RTP/SAVPF 96 97 102 103 108 109 98 99 45 46\r\n",
        "c=IN IP4 203.0.113.7",
        "a=recvonly",
        "a=rtcp-mux",
        "a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96",
        "a=candidate:1 1 udp 2130706431 203.0.113.7 3478 typ host",
        "a=candidate:2 1 udp 2130706175 2001:db8::7 3478 typ host",
        "a=end-of-candidates",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=rtcp-fb:96 nack pli",
    ] {
        assert!(text.contains(line), "answer lacks {line:?}:\n{text}");
    }
    for absent in [
        "red/",
        "G722",
        "PCMU",
        "ulpfec",
        "toffset",
        "a=rtpmap:104",
        "4d001f",
        "a=sendrecv",
    ] {
        assert!(!text.contains(absent), "answer has {absent:?}");
    }
}

#[test]
fn firefox_publish_answer() {
    let (text, session) = answer("firefox-publish");
    let [audio, video] = session.media.as_slice() else {
        panic!("two m-lines")
    };
    assert_eq!(pts(audio), [(109, None)]);
    assert_eq!(audio.codecs[0].channels, Some(2));
    assert_eq!(audio.direction, Direction::RecvOnly);
    // VP8 120/124, VP9 121/125, AV1 99/100 (Firefox offers H264 only in some builds).
    let video_pts = pts(video);
    assert_eq!(video_pts[0], (120, Some(124)));
    assert!(video_pts.contains(&(121, Some(125))) && video_pts.contains(&(99, Some(100))));
    assert!(!video_pts.iter().any(|(pt, _)| [122, 123, 119].contains(pt)));
    // Session-level fingerprint and per-media ICE credentials.
    assert_eq!(session.remote_ice.ufrag.len(), 8);
    assert!(text.contains("a=setup:passive"));
    // csrc-audio-level is not something Sluice forwards.
    assert!(!text.contains("csrc-audio-level"));
    assert_eq!(audio.extensions.id(HeaderExtension::Mid), Some(3));
}

#[test]
fn sendrecv_offers_get_sendrecv_answers_with_rtx_pairing() {
    for name in ["chromium-sendrecv", "firefox-sendrecv"] {
        let (text, session) = answer(name);
        assert!(
            session
                .media
                .iter()
                .all(|m| m.direction == Direction::SendRecv),
            "{name}"
        );
        assert!(
            !text.contains("a=recvonly") && !text.contains("a=sendonly"),
            "{name}"
        );
        let video = &session.media[1];
        let stream = &video.remote_streams[0];
        assert!(stream.rtx_ssrc.is_some(), "{name}: FID pairing");
        assert_eq!(
            video.remote_streams.len(),
            1,
            "{name}: RTX folded into its media SSRC"
        );
    }
}

#[test]
fn simulcast_offers_get_recv_rids() {
    for name in ["chromium-simulcast", "firefox-simulcast"] {
        let (text, session) = answer(name);
        let video = &session.media[1];
        assert_eq!(video.rids, ["q", "h", "f"], "{name}");
        assert!(video.extensions.id(HeaderExtension::RtpStreamId).is_some());
        for line in [
            "a=rid:q recv",
            "a=rid:h recv",
            "a=rid:f recv",
            "a=simulcast:recv q;h;f",
        ] {
            assert!(text.contains(line), "{name}: answer lacks {line}");
        }
        assert!(!text.contains("a=rid:q send"));
    }
    let (text, session) = answer("chromium-simulcast");
    assert!(text.contains("a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"));
    assert!(text.contains("a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"));
    assert!(
        !text.contains("dependency-descriptor"),
        "so that Chromium's VP8 descriptors carry PictureID and TID"
    );
    assert_eq!(
        session.media[1]
            .extensions
            .id(HeaderExtension::DependencyDescriptor),
        None
    );
    // Firefox restricts the rid extensions to its sending direction: the answer mirrors it.
    let (text, session) = answer("firefox-simulcast");
    assert!(text.contains("a=extmap:9/recvonly urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"));
    assert!(!text.contains("playout-delay"));
    let video = &session.media[1];
    assert_eq!(video.remote_streams.len(), 3);
    assert!(video.remote_streams.iter().all(|s| s.rtx_ssrc.is_some()));
    assert_eq!(video.remote_streams[0].ssrc, Ssrc(1_004_242_821));
    assert_eq!(video.remote_streams[0].rtx_ssrc, Some(Ssrc(390_516_011)));
}

#[test]
fn whep_recvonly_offers_get_sendonly_answers() {
    for name in ["chromium-subscribe", "firefox-subscribe"] {
        let (text, session) = answer(name);
        assert!(
            session
                .media
                .iter()
                .all(|m| m.accepted && m.direction == Direction::SendOnly)
        );
        assert!(
            session.media.iter().all(|m| m.rids.is_empty()),
            "{name}: no simulcast towards Sluice"
        );
        assert_eq!(text.matches("a=sendonly").count(), 2, "{name}");
        assert!(!text.contains("a=ssrc"), "{name}: tracks are bound later");
        let video = &session.media[1];
        assert_eq!(video.codecs[0].codec, Codec::Vp8, "{name}");
    }
    // Chromium's recvonly offer also lists redundant Opus: Sluice accepts it (it sends RED
    // to a receiver whose link loses packets); Firefox's offers none.
    let (text, session) = answer("chromium-subscribe");
    assert_eq!(session.media[0].codecs[0].red_pt, Some(Pt(63)));
    assert!(
        text.contains("m=audio 3478 UDP/TLS/RTP/SAVPF 111 63\r\n"),
        "{text}"
    );
    assert!(
        text.contains("a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111"),
        "{text}"
    );
    let (_, firefox) = answer("firefox-subscribe");
    assert_eq!(firefox.media[0].codecs[0].red_pt, None);
    // Chromium's recvonly offer also lists VP9 profiles 1/3, H264 high and AV1 profile 1.
    let offered = pts(&session.media[1]);
    assert!(
        !offered
            .iter()
            .any(|(pt, _)| [35, 37, 41, 43, 47, 49].contains(pt))
    );
}

#[test]
fn whep_answers_announce_the_sources_sluice_sends() {
    // Video listed first: each m-line takes the first unused source of its own kind.
    let sources = [
        track("v", MediaKind::Video, 2_000, Some(2_001)),
        track("a", MediaKind::Audio, 1_000, None),
    ];
    for name in ["chromium-subscribe", "firefox-subscribe"] {
        let (text, session) = answer_offer_sending(
            fixtures::get(name),
            &local(),
            &Capabilities::default(),
            &sources,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let parsed = SessionDescription::parse(&text).expect("answer parses");
        let ssrcs = |index: usize| -> Vec<(u32, String)> {
            parsed.media[index]
                .attributes
                .iter()
                .filter_map(|a| match a {
                    Attribute::Ssrc(s) => Some((s.ssrc.0, s.name.clone())),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(session.media[0].kind, MediaKind::Audio, "{name}");
        assert_eq!(
            ssrcs(0),
            vec![(1_000, "cname".into()), (1_000, "msid".into())],
            "{name}"
        );
        let video = ssrcs(1);
        assert!(video.contains(&(2_000, "cname".into())), "{name}");
        assert!(video.contains(&(2_001, "msid".into())), "{name}");
        assert!(
            parsed.media[1].attributes.iter().any(|a| matches!(
                a,
                Attribute::SsrcGroup(g) if g.semantics == "FID" && g.ssrcs == [Ssrc(2_000), Ssrc(2_001)]
            )),
            "{name}: RTX is paired"
        );
        // Sources do not change what was negotiated.
        assert_eq!(session, answer(name).1, "{name}");
    }
    // A publisher's offer (Sluice receives only) announces nothing.
    let (text, _) = answer_offer_sending(
        fixtures::get("chromium-publish"),
        &local(),
        &Capabilities::default(),
        &sources,
    )
    .expect("answered");
    assert!(!text.contains("a=ssrc:"));
}

/// Parsing each answer back and running the same selection over it yields exactly what the
/// NegotiatedSession says: nothing was lost or invented when writing it.
#[test]
fn answers_parse_back_into_the_negotiated_session() {
    for (name, offer) in ALL {
        let (text, session) = answer_offer(offer, &local(), &Capabilities::default()).unwrap();
        let parsed = SessionDescription::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(parsed.ice_lite());
        assert_eq!(
            parsed.bundle_group().unwrap(),
            session.bundle.as_slice(),
            "{name}"
        );
        assert_eq!(parsed.media.len(), session.media.len());
        for (section, media) in parsed.media.iter().zip(&session.media) {
            assert_eq!(section.mid(), Some(media.mid.as_str()), "{name}");
            assert_eq!(parsed.direction(section), media.direction, "{name}");
            assert_eq!(parsed.setup(section), Some(Setup::Passive), "{name}");
            assert_eq!(select_codecs(section, &Codec::ALL), media.codecs, "{name}");
            assert_eq!(select_extensions(section), media.extensions, "{name}");
            assert_eq!(section.has(&Attribute::RtcpRsize), media.rtcp_rsize);
            let rids: Vec<&str> = section
                .attributes
                .iter()
                .filter_map(|a| match a {
                    Attribute::Rid(r) if !r.send => Some(r.id.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(rids, media.rids, "{name}");
        }
    }
}

#[test]
fn capabilities_restrict_and_order_codecs() {
    let caps = Capabilities {
        codecs: vec![Codec::Opus, Codec::H264, Codec::Vp8],
    };
    let (text, session) = answer_offer(fixtures::get("chromium-publish"), &local(), &caps).unwrap();
    assert_eq!(
        pts(&session.media[1]),
        [(102, Some(103)), (108, Some(109)), (96, Some(97))]
    );
    assert!(text.contains("m=video 3478 UDP/TLS/RTP/SAVPF 102 103 108 109 96 97\r\n"));

    // Video without a common codec is rejected with port 0 and left out of the bundle.
    let caps = Capabilities {
        codecs: vec![Codec::Opus],
    };
    let (text, session) = answer_offer(fixtures::get("firefox-publish"), &local(), &caps).unwrap();
    assert!(!session.media[1].accepted);
    assert_eq!(session.bundle, ["0"]);
    assert!(text.contains("a=group:BUNDLE 0\r\n"));
    let parsed = SessionDescription::parse(&text).unwrap();
    assert_eq!(
        (parsed.media[1].port, parsed.media[1].mid()),
        (0, Some("1"))
    );
}

#[test]
fn data_channel_m_line_is_rejected() {
    let offer = fixtures::get("chromium-publish")
        .replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 2")
        + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sctp-port:5000\r\n";
    let (text, session) = answer_offer(&offer, &local(), &Capabilities::default()).unwrap();
    assert_eq!(session.media[2].kind, MediaKind::Application);
    assert!(!session.media[2].accepted);
    assert!(text.contains("m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n"));
    assert_eq!(session.bundle, ["0", "1"]);
}

#[test]
fn bundle_only_m_line_with_port_zero_is_accepted() {
    let offer = fixtures::get("chromium-publish").replacen("m=video 50624", "m=video 0", 1);
    let offer = offer.replace("a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n");
    let (_, session) = answer_offer(&offer, &local(), &Capabilities::default()).unwrap();
    assert!(session.media[1].accepted);
    let rejected = fixtures::get("chromium-publish").replacen("m=video 50624", "m=video 0", 1);
    let (_, session) = answer_offer(&rejected, &local(), &Capabilities::default()).unwrap();
    assert!(!session.media[1].accepted);
}

fn error_of(offer: &str) -> String {
    answer_offer(offer, &local(), &Capabilities::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn rule_violations_are_clear_errors() {
    let chromium = fixtures::get("chromium-publish");
    let firefox = fixtures::get("firefox-publish");
    assert_eq!(
        error_of(&chromium.replace("a=group:BUNDLE 0 1\r\n", "")),
        "no a=group:BUNDLE: all media must be bundled"
    );
    assert_eq!(
        error_of(&chromium.replace("a=rtcp-mux\r\n", "")),
        "m-line 0 (mid 0): no a=rtcp-mux (required)"
    );
    let no_fingerprint: String = firefox
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("a=fingerprint"))
        .collect();
    assert_eq!(
        error_of(&no_fingerprint),
        "m-line 0 (mid 0): no a=fingerprint"
    );
    assert_eq!(
        error_of(&chromium.replace("a=fingerprint:sha-256", "a=fingerprint:sha-1")),
        "m-line 0 (mid 0): no sha-256 a=fingerprint"
    );
    // An offerer that wants to be the DTLS server (FFmpeg's WHIP muxer) gets an active
    // answer on every m-line, and the negotiated session says so.
    let (passive_answer, passive) = answer_offer(
        &chromium.replace("a=setup:actpass", "a=setup:passive"),
        &local(),
        &Capabilities::default(),
    )
    .expect("a passive offer makes Sluice the DTLS client");
    assert_eq!(passive.remote_setup, Setup::Passive);
    assert_eq!(passive_answer.matches("a=setup:active").count(), 2);
    assert!(!passive_answer.contains("a=setup:passive"));
    assert_eq!(
        error_of(&chromium.replace("a=setup:actpass", "a=setup:holdconn")),
        "m-line 0 (mid 0): a=setup:holdconn is not supported here (an offer to Sluice must be \
         actpass, active or passive; an answer to Sluice's offer must be active or passive)"
    );
    assert!(
        answer_offer(
            &chromium.replace("a=setup:actpass", "a=setup:active"),
            &local(),
            &Capabilities::default()
        )
        .is_ok()
    );
    let no_ice: String = chromium
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("a=ice-pwd"))
        .collect();
    assert_eq!(
        error_of(&no_ice),
        "m-line 0 (mid 0): no a=ice-ufrag and a=ice-pwd"
    );
    assert_eq!(
        error_of(&chromium.replace("a=mid:1\r\n", "a=mid:0\r\n")),
        "m-line 1 (mid 0): mid used by an earlier m-line"
    );
    assert_eq!(
        error_of(&chromium.replace("a=mid:1\r\n", "")),
        "m-line 1 (no mid): no a=mid"
    );
}

#[test]
fn no_common_codec_anywhere_is_an_error_naming_the_offer() {
    let caps = Capabilities { codecs: vec![] };
    let err = answer_offer(fixtures::get("firefox-publish"), &local(), &caps).unwrap_err();
    assert_eq!(
        err.to_string(),
        "m-line 0 (mid 0): no codec in common (offered: opus, G722, PCMU, PCMA, telephone-event)"
    );
    let only_data = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
                     m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n";
    assert_eq!(error_of(only_data), SdpError::NothingToServe.to_string());
}

#[test]
fn oversize_and_garbage_offers_are_refused() {
    let huge = fixtures::get("chromium-publish").repeat(12);
    assert!(error_of(&huge).starts_with("description is"));
    assert_eq!(
        error_of(&fixtures::get("chromium-publish").replace("s=-\r\n", "s=-\r\n<html>\r\n")),
        "line 4: expected `<type>=<value>`"
    );
    assert_eq!(error_of("hello"), "description does not start with v=0");
}

fn track(mid: &str, kind: MediaKind, ssrc: u32, rtx: Option<u32>) -> OutgoingTrack {
    OutgoingTrack {
        mid: mid.into(),
        kind,
        ssrc: Ssrc(ssrc),
        rtx_ssrc: rtx.map(Ssrc),
        cname: "alice".into(),
        stream_id: "alice-stream".into(),
        track_id: format!("alice-{mid}"),
        codecs: Vec::new(),
        active: true,
    }
}

/// A browser's answer to `offer`: recvonly, its own credentials, setup active, every
/// offered codec and extension accepted as offered.
fn browser_answer(offer: &str, setup: &str) -> String {
    let parsed = SessionDescription::parse(offer).unwrap();
    let mut out = String::from(
        "v=0\r\no=- 99 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=extmap-allow-mixed\r\n",
    );
    let bundle = parsed.bundle_group().unwrap().join(" ");
    out += &format!("a=group:BUNDLE {bundle}\r\n");
    for section in &parsed.media {
        let formats = section.formats.join(" ");
        out += &format!(
            "m={} {} {} {formats}\r\n",
            section.media,
            if section.port == 0 { 0 } else { 9 },
            section.protocol
        );
        out += "c=IN IP4 0.0.0.0\r\n";
        out += &format!("a=mid:{}\r\n", section.mid().unwrap());
        if section.port == 0 {
            out += "a=inactive\r\n";
            continue;
        }
        out += "a=ice-ufrag:brws\r\na=ice-pwd:browserpasswordbrowser1\r\n";
        out += "a=fingerprint:sha-256 AA:BB:CC:DD\r\n";
        out += &format!("a=setup:{setup}\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n");
        for attr in &section.attributes {
            if matches!(
                attr,
                Attribute::Rtpmap(_)
                    | Attribute::Fmtp(_)
                    | Attribute::RtcpFb(_)
                    | Attribute::Extmap(_)
            ) {
                out += &format!("a={attr}\r\n");
            }
        }
        out += "a=ssrc:777 cname:browser\r\n";
    }
    out
}

#[test]
fn subscriber_offer_and_answer() {
    let mut video = track("1", MediaKind::Video, 2000, Some(2001));
    video.codecs = vec![Codec::H264, Codec::Vp8];
    let tracks = [track("0", MediaKind::Audio, 1000, None), video];
    let offer = build_subscriber_offer(&local(), &tracks);
    let parsed = SessionDescription::parse(&offer).unwrap();
    assert_eq!(parsed.bundle_group().unwrap(), ["0", "1"]);
    assert!(parsed.ice_lite());
    for line in [
        "m=audio 3478 UDP/TLS/RTP/SAVPF 111 63\r\n",
        "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111",
        "m=video 3478 UDP/TLS/RTP/SAVPF 102 103 96 97\r\n",
        "a=setup:actpass",
        "a=sendonly",
        "a=ssrc-group:FID 2000 2001",
        "a=ssrc:2001 cname:alice",
        "a=ssrc:2000 msid:alice-stream alice-1",
        "a=msid:alice-stream alice-1",
        "a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=end-of-candidates",
    ] {
        assert!(offer.contains(line), "offer lacks {line:?}:\n{offer}");
    }

    let session = apply_subscriber_answer(&offer, &browser_answer(&offer, "active")).unwrap();
    assert_eq!(session.remote_ice.ufrag, "brws");
    assert_eq!(session.remote_setup, Setup::Active);
    let [audio, video] = session.media.as_slice() else {
        panic!()
    };
    assert_eq!(audio.direction, Direction::SendOnly);
    assert_eq!(pts(audio), [(111, None)]);
    assert_eq!(audio.codecs[0].red_pt, Some(Pt(63)));
    assert!(video.codecs.iter().all(|c| c.red_pt.is_none()));
    assert_eq!(pts(video), [(102, Some(103)), (96, Some(97))]);
    assert_eq!(
        video.extensions.id(HeaderExtension::DependencyDescriptor),
        None,
        "not offered to subscribers: it is not rewritten across layer switches"
    );
    assert_eq!(audio.extensions.id(HeaderExtension::AudioLevel), Some(1));
    assert_eq!(video.remote_streams[0].ssrc, Ssrc(777));
    assert_eq!(video.codec_by_pt(Pt(102)).unwrap().codec, Codec::H264);

    let passive = apply_subscriber_answer(&offer, &browser_answer(&offer, "passive"))
        .expect("a passive answer makes Sluice the DTLS client");
    assert_eq!(passive.remote_setup, Setup::Passive);
    let actpass = apply_subscriber_answer(&offer, &browser_answer(&offer, "actpass"));
    assert_eq!(
        actpass.unwrap_err().to_string(),
        "m-line 0 (mid 0): a=setup:actpass is not supported here (an offer to Sluice must be \
         actpass, active or passive; an answer to Sluice's offer must be active or passive)"
    );
    let truncated = apply_subscriber_answer(
        &offer,
        &browser_answer(&build_subscriber_offer(&local(), &tracks[..1]), "active"),
    );
    assert!(matches!(truncated, Err(SdpError::AnswerMismatch { .. })));
    let unbundled =
        browser_answer(&offer, "active").replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0");
    assert_eq!(
        apply_subscriber_answer(&offer, &unbundled)
            .unwrap_err()
            .to_string(),
        "m-line 1 (mid 1): the answer leaves this m-line out of its BUNDLE group"
    );
}

#[test]
fn removed_subscriber_track_keeps_its_slot() {
    let mut tracks = vec![
        track("0", MediaKind::Audio, 1000, None),
        track("1", MediaKind::Video, 2000, Some(2001)),
        track("2", MediaKind::Video, 3000, Some(3001)),
    ];
    tracks[1].active = false;
    let offer = build_subscriber_offer(&local(), &tracks);
    let parsed = SessionDescription::parse(&offer).unwrap();
    assert_eq!(parsed.bundle_group().unwrap(), ["0", "1", "2"]);
    assert_eq!(parsed.media.len(), 3);
    assert_eq!(
        (parsed.media[1].port, parsed.media[1].mid()),
        (3478, Some("1"))
    );
    assert_eq!(parsed.direction(&parsed.media[1]), Direction::Inactive);
    assert!(!offer.contains("a=ssrc:2000"));
    assert!(offer.contains("a=ssrc:3000"));

    let session = apply_subscriber_answer(&offer, &browser_answer(&offer, "active")).unwrap();
    let mids: Vec<(&str, bool)> = session
        .media
        .iter()
        .map(|m| (m.mid.as_str(), m.accepted))
        .collect();
    assert_eq!(mids, [("0", true), ("1", true), ("2", true)]);
}

#[test]
fn answer_with_a_different_mid_is_refused() {
    let tracks = [track("a", MediaKind::Audio, 1, None)];
    let offer = build_subscriber_offer(&local(), &tracks);
    let answer = browser_answer(&offer, "active").replace("a=mid:a", "a=mid:b");
    let err = apply_subscriber_answer(&offer, &answer).unwrap_err();
    assert_eq!(
        err.to_string(),
        "m-line 0 (mid b): the answer's mid differs from the offer's"
    );
}

#[test]
fn a_player_is_never_sent_the_dependency_descriptor() {
    // A WHEP player that offers the extension (Chromium does with AV1 enabled).
    let offer = fixtures::get("chromium-subscribe").replace(
        "a=extmap:13 urn:3gpp:video-orientation",
        "a=extmap:13 urn:3gpp:video-orientation\r\na=extmap:12 https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension",
    );
    assert!(offer.contains("dependency-descriptor"));
    let (text, session) = answer_offer(&offer, &local(), &Capabilities::default()).unwrap();
    assert!(!text.contains("dependency-descriptor"), "{text}");
    assert!(session.media.iter().all(|m| {
        m.extensions
            .id(HeaderExtension::DependencyDescriptor)
            .is_none()
    }));
}
