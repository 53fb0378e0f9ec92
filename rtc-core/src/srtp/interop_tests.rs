//! Agreement with an independent implementation (`rtc-srtp`) on random packets: ours protect
//! and theirs unprotect, theirs protect and ours unprotect, for all three profiles, RTP and RTCP,
//! random sizes, CSRC lists and header extensions, across a sequence-number wrap.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rtc_srtp::context::Context;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;

use super::*;
use crate::keying::{SrtpMasterKey, SrtpProfile};

fn their_context(profile: SrtpProfile, master: &SrtpMasterKey) -> Context {
    let provider = rtc_srtp::crypto::default_provider().unwrap();
    let their_profile = match profile {
        SrtpProfile::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpProfile::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
    };
    Context::new(
        &master.key[..profile.master_key_len()],
        &master.salt[..profile.master_salt_len()],
        their_profile,
        Some(srtp_replay_protection(128)),
        Some(srtcp_replay_protection(128)),
        provider.crypto(),
    )
    .unwrap()
}

fn random_master(rng: &mut ChaCha8Rng) -> SrtpMasterKey {
    SrtpMasterKey {
        key: rng.random(),
        salt: rng.random(),
    }
}

/// A random RTP packet: random CSRC count, no extension, a one-byte (RFC 8285) extension
/// block or an opaque one, and a random payload of up to 1200 bytes.
fn random_rtp(rng: &mut ChaCha8Rng, seq: u16, ssrc: u32) -> Vec<u8> {
    let csrc_count = rng.random_range(0..=15u8);
    let extension = rng.random_range(0..3);
    let mut packet = vec![0x80 | csrc_count | if extension > 0 { 0x10 } else { 0 }];
    packet.push(rng.random::<u8>());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&rng.random::<u32>().to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    for _ in 0..csrc_count {
        packet.extend_from_slice(&rng.random::<u32>().to_be_bytes());
    }
    let mut block = Vec::new();
    let profile: u16 = match extension {
        1 => {
            for _ in 0..rng.random_range(1..5) {
                let len = rng.random_range(1..=16u8);
                block.push((rng.random_range(1..=14u8) << 4) | (len - 1));
                block.extend((0..len).map(|_| rng.random::<u8>()));
            }
            0xbede
        }
        _ => {
            block.extend((0..4 * rng.random_range(0..4)).map(|_| rng.random::<u8>()));
            0xabac
        }
    };
    if extension > 0 {
        while block.len() % 4 != 0 {
            block.push(0);
        }
        packet.extend_from_slice(&profile.to_be_bytes());
        packet.extend_from_slice(&((block.len() / 4) as u16).to_be_bytes());
        packet.extend_from_slice(&block);
    }
    let payload_len = rng.random_range(0..=1200);
    packet.extend((0..payload_len).map(|_| rng.random::<u8>()));
    packet
}

/// A random compound RTCP packet: a sender report with random report blocks, sometimes
/// followed by an APP packet with a random body.
fn random_rtcp(rng: &mut ChaCha8Rng, ssrc: u32) -> Vec<u8> {
    let report_count = rng.random_range(0..4u8);
    let words = 6 + 6 * u16::from(report_count);
    let mut packet = vec![0x80 | report_count, 200];
    packet.extend_from_slice(&words.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend((0..4 * words as usize - 4).map(|_| rng.random::<u8>()));
    if rng.random() {
        let body_words = rng.random_range(0..50u16);
        packet.extend_from_slice(&[0x80, 204]);
        packet.extend_from_slice(&(body_words + 2).to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        packet.extend_from_slice(b"TEST");
        packet.extend((0..4 * body_words as usize).map(|_| rng.random::<u8>()));
    }
    packet
}

fn ours_protect(ctx: &mut SrtpContext, plain: &[u8], rtp: bool) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + ctx.rtcp_overhead(), 0);
    let len = if rtp {
        ctx.protect_rtp(&mut buf, plain.len())
    } else {
        ctx.protect_rtcp(&mut buf, plain.len())
    }
    .unwrap();
    buf.truncate(len);
    buf
}

fn ours_unprotect(ctx: &mut SrtpContext, protected: &[u8], rtp: bool) -> Vec<u8> {
    let mut buf = protected.to_vec();
    let len = if rtp {
        ctx.unprotect_rtp(&mut buf)
    } else {
        ctx.unprotect_rtcp(&mut buf)
    }
    .unwrap();
    buf.truncate(len);
    buf
}

#[test]
fn agrees_with_rtc_srtp_in_both_directions() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_5a17);
    for profile in tests::PROFILES {
        for _round in 0..3 {
            let master = random_master(&mut rng);
            let mut our_sender = SrtpContext::new(profile, &master).unwrap();
            let mut our_receiver = SrtpContext::new(profile, &master).unwrap();
            let mut their_sender = their_context(profile, &master);
            let mut their_receiver = their_context(profile, &master);

            // A few streams, each starting shortly before the sequence wrap.
            let mut streams: Vec<(u32, u16)> = (0..3)
                .map(|_| (rng.random(), rng.random_range(65_500..=65_535)))
                .collect();
            for _ in 0..600 {
                let stream = rng.random_range(0..streams.len());
                let (ssrc, seq) = streams[stream];
                streams[stream].1 = seq.wrapping_add(1);

                let plain = random_rtp(&mut rng, seq, ssrc);
                let ours = ours_protect(&mut our_sender, &plain, true);
                let decrypted = their_receiver.decrypt_rtp(&ours).unwrap();
                assert_eq!(
                    decrypted[..],
                    plain[..],
                    "{profile:?} ours -> theirs, seq {seq}"
                );
                let theirs = their_sender.encrypt_rtp(&plain).unwrap();
                assert_eq!(
                    theirs[..],
                    ours[..],
                    "{profile:?} same keys, same SRTP bytes"
                );
                assert_eq!(ours_unprotect(&mut our_receiver, &theirs, true), plain);

                if rng.random_range(0..4) == 0 {
                    let plain = random_rtcp(&mut rng, ssrc);
                    let ours = ours_protect(&mut our_sender, &plain, false);
                    let decrypted = their_receiver.decrypt_rtcp(&ours).unwrap();
                    assert_eq!(decrypted[..], plain[..], "{profile:?} SRTCP ours -> theirs");
                    let theirs = their_sender.encrypt_rtcp(&plain).unwrap();
                    assert_eq!(ours_unprotect(&mut our_receiver, &theirs, false), plain);
                }
            }
            for (ssrc, seq) in streams {
                // Every stream crossed the wrap, so its ROC is 1 on both of our sides.
                assert_eq!(our_sender.rtp_index(ssrc).map(|i| i >> 16), Some(1));
                assert_eq!(our_receiver.rtp_index(ssrc), our_sender.rtp_index(ssrc));
                assert_eq!(
                    our_receiver.rtp_index(ssrc).map(|i| i as u16),
                    Some(seq - 1)
                );
            }
        }
    }
}
