//! Criterion bench: SRTP protect and unprotect of a 1200-byte RTP packet, per profile, next to
//! a bare aws-lc-rs AES-128-GCM seal of the same bytes (the header as associated data, the
//! payload sealed in place): the physical floor of the GCM profile.

use std::hint::black_box;

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rtc_core::keying::{SrtpMasterKey, SrtpProfile};
use rtc_core::srtp::SrtpContext;

const PACKET_LEN: usize = 1200;
const HEADER_LEN: usize = 12;

fn master() -> SrtpMasterKey {
    SrtpMasterKey {
        key: [0x2b; 32],
        salt: [0x5a; 14],
    }
}

/// A 1200-byte RTP packet (12-byte header, 1188-byte payload) in a buffer with room for the
/// largest tag.
fn packet_buffer() -> Vec<u8> {
    let mut buf = vec![0u8; PACKET_LEN + 16];
    buf[..HEADER_LEN].copy_from_slice(&[0x80, 96, 0, 0, 0, 0, 0x30, 0x39, 0x12, 0x34, 0x56, 0x78]);
    for (i, byte) in buf[HEADER_LEN..PACKET_LEN].iter_mut().enumerate() {
        *byte = i as u8;
    }
    buf
}

fn set_seq(buf: &mut [u8], seq: u16) {
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
}

fn srtp(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_1200");
    group.throughput(Throughput::Bytes(PACKET_LEN as u64));

    let aead = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[0x2b; 16]).unwrap());
    let mut buf = packet_buffer();
    let mut counter = 0u32;
    group.bench_function("aws_lc_rs_gcm_seal_in_place", |b| {
        b.iter(|| {
            counter = counter.wrapping_add(1);
            let mut nonce = [0x5a; 12];
            nonce[8..].copy_from_slice(&counter.to_be_bytes());
            let (header, payload) = buf[..PACKET_LEN].split_at_mut(HEADER_LEN);
            // Returned so that criterion keeps the tag computation alive.
            aead.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&*header),
                payload,
            )
            .unwrap()
        })
    });

    for (name, profile) in [
        ("gcm", SrtpProfile::AeadAes128Gcm),
        ("gcm256", SrtpProfile::AeadAes256Gcm),
        ("aes_cm_hmac_sha1_80", SrtpProfile::AesCm128HmacSha1_80),
    ] {
        let mut sender = SrtpContext::new(profile, &master()).unwrap();
        let mut buf = packet_buffer();
        let mut seq = 0u16;
        group.bench_function(format!("{name}_protect"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                set_seq(&mut buf, seq);
                black_box(sender.protect_rtp(&mut buf, PACKET_LEN).unwrap());
            })
        });

        // Each iteration gets a freshly protected packet with the next sequence number (made
        // outside the timed part), so the replay window accepts every one.
        let mut sender = SrtpContext::new(profile, &master()).unwrap();
        let mut receiver = SrtpContext::new(profile, &master()).unwrap();
        let mut seq = 0u16;
        group.bench_function(format!("{name}_unprotect"), |b| {
            b.iter_batched_ref(
                || {
                    seq = seq.wrapping_add(1);
                    let mut buf = packet_buffer();
                    set_seq(&mut buf, seq);
                    let len = sender.protect_rtp(&mut buf, PACKET_LEN).unwrap();
                    buf.truncate(len);
                    buf
                },
                |buf| black_box(receiver.unprotect_rtp(buf).unwrap()),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, srtp);
criterion_main!(benches);
