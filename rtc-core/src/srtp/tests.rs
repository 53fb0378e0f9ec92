//! Packet-level tests of [`SrtpContext`]: RFC 7714 vectors, replay and forgery rejection,
//! rollover across the sequence wrap, stream bounds and buffer checks.

use super::test_util::hex;
use super::transform::Transform;
use super::*;
use crate::keying::{SrtpMasterKey, SrtpProfile};

pub(super) const PROFILES: [SrtpProfile; 3] = [
    SrtpProfile::AesCm128HmacSha1_80,
    SrtpProfile::AeadAes128Gcm,
    SrtpProfile::AeadAes256Gcm,
];

/// RFC 7714 section 16/17: the vectors are given with the session key and salt directly.
fn rfc7714_context(profile: SrtpProfile, session_key: &str) -> SrtpContext {
    let key = hex(session_key);
    let salt = hex("517569642070726f2071756f");
    let transform = || Transform::from_session_keys(profile, &key, &salt, &[0; 20]).unwrap();
    SrtpContext::from_transforms(profile, transform(), transform())
}

/// The AEAD_AES_128_GCM context of RFC 7714 sections 16.1 and 17.
fn rfc7714_aes_128_context() -> SrtpContext {
    rfc7714_context(
        SrtpProfile::AeadAes128Gcm,
        "000102030405060708090a0b0c0d0e0f",
    )
}

const RFC7714_RTP: &str = "8040f17b8041f8d35501a0b2
    47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
/// RFC 7714 section 16.1.1.
const RFC7714_SRTP: &str = "8040f17b8041f8d35501a0b2
    f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833
    899d7f27beb16a9152cf765ee4390cce";
/// The RTCP packet RFC 7714 sections 17.1 to 17.3 protect (SSRC "Mars", index 0x5d4).
const RFC7714_RTCP: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e930
    4c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
/// RFC 7714 section 17.1.
const RFC7714_SRTCP: &str = "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32d
    c676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4";
/// RFC 7714 section 17.3: authenticated only, E flag clear.
const RFC7714_SRTCP_TAG_ONLY: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e930
    4c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef841dd9683dd78ec92ae58790125f62b3000005d4";

/// RFC 7714 section 16.2.1: the same RTP packet under AEAD_AES_256_GCM with the 32-byte
/// session key 00..1f and the same salt.
#[test]
fn rfc7714_aes_256_srtp_protect_and_unprotect() {
    const RFC7714_SRTP_AES_256: &str = "8040f17b8041f8d35501a0b2
        32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b7aa3db36
        dfffd6b0f9bb7878d7a76c13";
    let context = || {
        rfc7714_context(
            SrtpProfile::AeadAes256Gcm,
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        )
    };
    let plain = hex(RFC7714_RTP);
    let expected = hex(RFC7714_SRTP_AES_256);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let len = context().protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(buf[..len], expected[..]);

    let mut buf = expected.clone();
    let len = context().unprotect_rtp(&mut buf).unwrap();
    assert_eq!(buf[..len], plain[..]);

    // The AES-128 vector's bytes do not open under the AES-256 key.
    let mut buf = hex(RFC7714_SRTP);
    assert_eq!(
        context().unprotect_rtp(&mut buf),
        Err(SrtpError::AuthenticationFailed)
    );
}

#[test]
fn rfc7714_srtp_protect_and_unprotect() {
    let plain = hex(RFC7714_RTP);
    let expected = hex(RFC7714_SRTP);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let len = rfc7714_aes_128_context()
        .protect_rtp(&mut buf, plain.len())
        .unwrap();
    assert_eq!(buf[..len], expected[..]);

    let mut buf = expected.clone();
    let len = rfc7714_aes_128_context().unprotect_rtp(&mut buf).unwrap();
    assert_eq!(buf[..len], plain[..]);
}

#[test]
fn rfc7714_srtcp_protect_and_unprotect() {
    let plain = hex(RFC7714_RTCP);
    let expected = hex(RFC7714_SRTCP);
    let mut sender = rfc7714_aes_128_context();
    sender.set_next_srtcp_index(0x5d4);
    let mut buf = [0u8; 128];
    buf[..plain.len()].copy_from_slice(&plain);
    let len = sender.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(buf[..len], expected[..]);

    let mut receiver = rfc7714_aes_128_context();
    let mut buf = expected.clone();
    let len = receiver.unprotect_rtcp(&mut buf).unwrap();
    assert_eq!(buf[..len], plain[..]);
    assert_eq!(receiver.srtcp_index(0x4d61_7273), Some(0x5d4));
}

#[test]
fn rfc7714_srtcp_tag_only() {
    let plain = hex(RFC7714_RTCP);
    let mut buf = hex(RFC7714_SRTCP_TAG_ONLY);
    let len = rfc7714_aes_128_context().unprotect_rtcp(&mut buf).unwrap();
    assert_eq!(buf[..len], plain[..]);
}

fn master(seed: u8) -> SrtpMasterKey {
    SrtpMasterKey {
        key: [seed; 32],
        salt: [seed.wrapping_add(1); 14],
    }
}

fn pair(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    (
        SrtpContext::new(profile, &master(3)).unwrap(),
        SrtpContext::new(profile, &master(3)).unwrap(),
    )
}

/// An RTP packet with one CSRC and a one-word header extension, so that the header length
/// matters.
fn rtp_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0x91, 0x60];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&1234u32.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(&0xc5c5_c5c5u32.to_be_bytes());
    packet.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
    packet.extend((0..40u8).map(|i| i ^ seq as u8));
    packet
}

fn rtcp_packet(ssrc: u32) -> Vec<u8> {
    let mut packet = vec![0x80, 200, 0, 6];
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend((0..20u8).collect::<Vec<_>>());
    packet
}

fn protect_rtp(sender: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + sender.rtp_overhead(), 0);
    let len = sender.protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(len, buf.len());
    buf
}

fn protect_rtcp(sender: &mut SrtpContext, plain: &[u8]) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + sender.rtcp_overhead(), 0);
    let len = sender.protect_rtcp(&mut buf, plain.len()).unwrap();
    assert_eq!(len, buf.len());
    buf
}

fn unprotect_rtp(receiver: &mut SrtpContext, protected: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = protected.to_vec();
    let len = receiver.unprotect_rtp(&mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

fn unprotect_rtcp(receiver: &mut SrtpContext, protected: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = protected.to_vec();
    let len = receiver.unprotect_rtcp(&mut buf)?;
    buf.truncate(len);
    Ok(buf)
}

#[test]
fn replayed_packets_are_rejected() {
    for profile in PROFILES {
        let (mut sender, mut receiver) = pair(profile);
        let protected = protect_rtp(&mut sender, &rtp_packet(100, 7));
        assert_eq!(
            unprotect_rtp(&mut receiver, &protected).unwrap(),
            rtp_packet(100, 7)
        );
        assert_eq!(
            unprotect_rtp(&mut receiver, &protected),
            Err(SrtpError::Replayed)
        );

        let protected = protect_rtcp(&mut sender, &rtcp_packet(7));
        assert_eq!(
            unprotect_rtcp(&mut receiver, &protected).unwrap(),
            rtcp_packet(7)
        );
        assert_eq!(
            unprotect_rtcp(&mut receiver, &protected),
            Err(SrtpError::Replayed)
        );
    }
}

#[test]
fn packets_behind_the_window_are_too_old() {
    for profile in PROFILES {
        let (mut sender, mut receiver) = pair(profile);
        let old = protect_rtp(&mut sender, &rtp_packet(1000, 7));
        let edge = protect_rtp(&mut sender, &rtp_packet(1001, 7));
        let newest = protect_rtp(&mut sender, &rtp_packet(1001 + 127, 7));
        unprotect_rtp(&mut receiver, &newest).unwrap();
        assert_eq!(unprotect_rtp(&mut receiver, &old), Err(SrtpError::TooOld));
        unprotect_rtp(&mut receiver, &edge).unwrap();
    }
}

/// One flipped bit anywhere in a protected packet must fail (authentication, or a header
/// check for bits that break the header) and leave the receiver's state exactly as it was.
#[test]
fn any_flipped_bit_is_rejected_without_state_change() {
    for profile in PROFILES {
        let (mut sender, mut receiver) = pair(profile);
        // Establish a stream so that index state exists and could be moved.
        let first = protect_rtp(&mut sender, &rtp_packet(500, 9));
        unprotect_rtp(&mut receiver, &first).unwrap();
        let first = protect_rtcp(&mut sender, &rtcp_packet(9));
        unprotect_rtcp(&mut receiver, &first).unwrap();
        let before = (
            receiver.rtp_index(9),
            receiver.srtcp_index(9),
            receiver.stream_count(),
        );

        let rtp = protect_rtp(&mut sender, &rtp_packet(501, 9));
        let rtcp = protect_rtcp(&mut sender, &rtcp_packet(9));
        for (protected, is_rtp) in [(&rtp, true), (&rtcp, false)] {
            for bit in 0..protected.len() * 8 {
                let mut forged = protected.clone();
                forged[bit / 8] ^= 1 << (bit % 8);
                let result = if is_rtp {
                    unprotect_rtp(&mut receiver, &forged)
                } else {
                    unprotect_rtcp(&mut receiver, &forged)
                };
                assert!(
                    result.is_err(),
                    "{profile:?} rtp={is_rtp} bit {bit} accepted"
                );
                let after = (
                    receiver.rtp_index(9),
                    receiver.srtcp_index(9),
                    receiver.stream_count(),
                );
                assert_eq!(
                    before, after,
                    "{profile:?} rtp={is_rtp} bit {bit} moved state"
                );
            }
        }
        // The genuine packets still go through afterwards.
        unprotect_rtp(&mut receiver, &rtp).unwrap();
        unprotect_rtcp(&mut receiver, &rtcp).unwrap();
    }
}

#[test]
fn forged_packet_of_a_new_ssrc_creates_no_stream() {
    for profile in PROFILES {
        let (mut sender, mut receiver) = pair(profile);
        let mut forged = protect_rtp(&mut sender, &rtp_packet(1, 77));
        let last = forged.len() - 1;
        forged[last] ^= 0x80;
        assert_eq!(
            unprotect_rtp(&mut receiver, &forged),
            Err(SrtpError::AuthenticationFailed)
        );
        assert_eq!(receiver.stream_count(), (0, 0));
        assert_eq!(receiver.rtp_index(77), None);
    }
}

#[test]
fn rollover_counter_follows_the_sequence_wrap_with_reordering() {
    for profile in PROFILES {
        let (mut sender, mut receiver) = pair(profile);
        let seqs: Vec<u16> = (65530..=65535).chain(0..6).collect();
        let protected: Vec<Vec<u8>> = seqs
            .iter()
            .map(|&seq| protect_rtp(&mut sender, &rtp_packet(seq, 5)))
            .collect();
        assert_eq!(sender.rtp_index(5), Some((1 << 16) | 5));
        // Deliver across the wrap out of order: post-wrap packets before pre-wrap ones.
        for i in [0, 1, 7, 6, 2, 8, 3, 5, 4, 11, 9, 10] {
            let plain = unprotect_rtp(&mut receiver, &protected[i])
                .unwrap_or_else(|e| panic!("{profile:?} packet {i}: {e}"));
            assert_eq!(plain, rtp_packet(seqs[i], 5));
        }
        assert_eq!(receiver.rtp_index(5), Some((1 << 16) | 5));
        // Every one of them is now a replay.
        for packet in &protected {
            assert_eq!(
                unprotect_rtp(&mut receiver, packet),
                Err(SrtpError::Replayed)
            );
        }
    }
}

#[test]
fn stream_bound_rejects_new_ssrcs_and_keeps_known_ones() {
    for profile in PROFILES {
        let (mut sender, receiver) = pair(profile);
        let mut receiver = receiver.with_max_streams(2);
        for ssrc in [1, 2] {
            unprotect_rtp(
                &mut receiver,
                &protect_rtp(&mut sender, &rtp_packet(10, ssrc)),
            )
            .unwrap();
        }
        let third = protect_rtp(&mut sender, &rtp_packet(10, 3));
        assert_eq!(
            unprotect_rtp(&mut receiver, &third),
            Err(SrtpError::TooManyStreams)
        );
        unprotect_rtp(&mut receiver, &protect_rtp(&mut sender, &rtp_packet(11, 1))).unwrap();
        assert!(receiver.remove_stream(2));
        unprotect_rtp(&mut receiver, &third).unwrap();
    }
}

#[test]
fn buffer_and_length_checks() {
    for profile in PROFILES {
        let (mut sender, mut receiver) = pair(profile);
        let plain = rtp_packet(1, 1);
        let mut exact = plain.clone();
        assert_eq!(
            sender.protect_rtp(&mut exact, plain.len()),
            Err(SrtpError::BufferTooSmall)
        );
        assert_eq!(
            sender.protect_rtp(&mut exact, plain.len() + 1),
            Err(SrtpError::LengthOutOfBounds)
        );
        let mut rtcp = rtcp_packet(1);
        let len = rtcp.len();
        assert_eq!(
            sender.protect_rtcp(&mut rtcp, len),
            Err(SrtpError::BufferTooSmall)
        );
        // Only a header and part of a tag.
        let mut short = plain[..16 + 8 + 4].to_vec();
        assert_eq!(
            receiver.unprotect_rtp(&mut short),
            Err(SrtpError::Truncated)
        );
        assert_eq!(
            receiver.unprotect_rtcp(&mut [0x80; 12]),
            Err(SrtpError::Truncated)
        );
        assert_eq!(
            receiver.unprotect_rtp(&mut [0x40; 40]),
            Err(SrtpError::MalformedHeader)
        );
        assert_eq!(
            receiver.unprotect_rtp(&mut []),
            Err(SrtpError::MalformedHeader)
        );
    }
}

#[test]
fn session_directions_use_their_own_keys() {
    let keying = SrtpKeyingMaterial {
        profile: SrtpProfile::AesCm128HmacSha1_80,
        local: master(1),
        remote: master(2),
    };
    let mirrored = SrtpKeyingMaterial {
        profile: keying.profile,
        local: keying.remote.clone(),
        remote: keying.local.clone(),
    };
    let mut ours = SrtpSession::new(&keying).unwrap();
    let mut theirs = SrtpSession::new(&mirrored).unwrap();
    let protected = protect_rtp(&mut ours.outbound, &rtp_packet(9, 9));
    assert_eq!(
        unprotect_rtp(&mut ours.inbound, &protected),
        Err(SrtpError::AuthenticationFailed)
    );
    assert_eq!(
        unprotect_rtp(&mut theirs.inbound, &protected).unwrap(),
        rtp_packet(9, 9)
    );
}

#[test]
fn srtcp_index_space_ends_at_2_pow_31() {
    for profile in PROFILES {
        let (mut sender, mut receiver) = pair(profile);
        sender.set_next_srtcp_index(0x7fff_ffff);
        let last = protect_rtcp(&mut sender, &rtcp_packet(4));
        assert_eq!(
            unprotect_rtcp(&mut receiver, &last).unwrap(),
            rtcp_packet(4)
        );
        assert_eq!(receiver.srtcp_index(4), Some(0x7fff_ffff));
        let mut buf = rtcp_packet(4);
        let len = buf.len();
        buf.resize(len + sender.rtcp_overhead(), 0);
        assert_eq!(
            sender.protect_rtcp(&mut buf, len),
            Err(SrtpError::KeyExhausted)
        );
    }
}

#[test]
fn srtcp_behind_the_window_is_too_old() {
    for profile in PROFILES {
        let (mut sender, mut receiver) = pair(profile);
        let old = protect_rtcp(&mut sender, &rtcp_packet(4));
        sender.set_next_srtcp_index(128);
        let newest = protect_rtcp(&mut sender, &rtcp_packet(4));
        unprotect_rtcp(&mut receiver, &newest).unwrap();
        assert_eq!(unprotect_rtcp(&mut receiver, &old), Err(SrtpError::TooOld));
    }
}

/// The contract's key field is 32 bytes for every profile; the AES-128 profiles must read only
/// the first 16, like the salt beyond the profile's length.
#[test]
fn key_bytes_past_the_profile_length_are_ignored() {
    for profile in PROFILES {
        let mut padded = master(5);
        padded.key[profile.master_key_len()..].fill(0xee);
        padded.salt[profile.master_salt_len()..].fill(0xee);
        let mut sender = SrtpContext::new(profile, &padded).unwrap();
        let mut receiver = SrtpContext::new(profile, &master(5)).unwrap();
        let plain = rtp_packet(1, 7);
        let protected = protect_rtp(&mut sender, &plain);
        assert_eq!(unprotect_rtp(&mut receiver, &protected).unwrap(), plain);
    }
}
