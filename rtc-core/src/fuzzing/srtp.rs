//! Fuzz harnesses for SRTP and SRTCP. The first input byte picks the profile (bits 0-1:
//! `x0` AES-CM, `01` AES-128-GCM, `11` AES-256-GCM) and a bit to flip later; the rest is the
//! packet. Each input:
//! 1. is unprotected as-is by a fresh inbound context (must fail cleanly, never panic);
//! 2. if it parses as a plaintext packet, is protected and unprotected again, which must give
//!    back the same bytes; the same protected packet is then a replay, and a copy with one
//!    flipped bit must be rejected without moving the receiver's state.
//!
//! Contexts are built fresh per input (key derivation costs a few microseconds), so no state
//! leaks from one input to the next.

use crate::keying::{SrtpMasterKey, SrtpProfile};
use crate::srtp::{SrtpContext, SrtpError};

/// Feeds arbitrary bytes through SRTP unprotect and the protect/unprotect round trip.
pub fn run_srtp(data: &[u8]) {
    run(data, Kind::Rtp);
}

/// Feeds arbitrary bytes through SRTCP unprotect and the protect/unprotect round trip.
pub fn run_srtcp(data: &[u8]) {
    run(data, Kind::Rtcp);
}

#[derive(Clone, Copy)]
enum Kind {
    Rtp,
    Rtcp,
}

fn context(profile: SrtpProfile) -> Option<SrtpContext> {
    let master = SrtpMasterKey {
        key: *b"sluice fuzz key, 32 bytes long..",
        salt: *b"fuzzing salt..",
    };
    SrtpContext::new(profile, &master).ok()
}

fn unprotect(ctx: &mut SrtpContext, buf: &mut [u8], kind: Kind) -> Result<usize, SrtpError> {
    match kind {
        Kind::Rtp => ctx.unprotect_rtp(buf),
        Kind::Rtcp => ctx.unprotect_rtcp(buf),
    }
}

/// What a receiver knows about the packet's stream: its highest indices and stream count.
fn receiver_state(ctx: &SrtpContext, packet: &[u8]) -> (Option<u64>, Option<u32>, (usize, usize)) {
    let ssrc_at = |at: usize| {
        packet
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .unwrap_or_default()
    };
    (
        ctx.rtp_index(ssrc_at(8)),
        ctx.srtcp_index(ssrc_at(4)),
        ctx.stream_count(),
    )
}

fn run(data: &[u8], kind: Kind) {
    let [flags, packet @ ..] = data else {
        return;
    };
    let profile = match flags & 0b11 {
        0b01 => SrtpProfile::AeadAes128Gcm,
        0b11 => SrtpProfile::AeadAes256Gcm,
        _ => SrtpProfile::AesCm128HmacSha1_80,
    };
    let (Some(mut sender), Some(mut receiver)) = (context(profile), context(profile)) else {
        return;
    };

    // 1. Hostile input straight into unprotect: fail cleanly and create no state.
    let mut hostile = packet.to_vec();
    if unprotect(&mut receiver, &mut hostile, kind).is_err() {
        assert_eq!(
            receiver.stream_count(),
            (0, 0),
            "a rejected packet created state"
        );
    }
    let Some(mut receiver) = context(profile) else {
        return;
    };

    // 2. Round trip of the input taken as a plaintext packet.
    let overhead = match kind {
        Kind::Rtp => sender.rtp_overhead(),
        Kind::Rtcp => sender.rtcp_overhead(),
    };
    let mut buf = packet.to_vec();
    buf.resize(packet.len() + overhead, 0);
    let protected = match kind {
        Kind::Rtp => sender.protect_rtp(&mut buf, packet.len()),
        Kind::Rtcp => sender.protect_rtcp(&mut buf, packet.len()),
    };
    let Ok(protected_len) = protected else {
        return;
    };
    assert_eq!(
        protected_len,
        buf.len(),
        "protect appends exactly the overhead"
    );
    let protected = buf.clone();

    let plain_len = unprotect(&mut receiver, &mut buf, kind);
    assert_eq!(plain_len, Ok(packet.len()), "round trip changed the length");
    assert_eq!(
        buf.get(..packet.len()),
        Some(packet),
        "round trip changed the bytes"
    );

    let mut replay = protected.clone();
    assert_eq!(
        unprotect(&mut receiver, &mut replay, kind),
        Err(SrtpError::Replayed),
        "a replay was accepted"
    );

    // The header is sent in the clear, so the plaintext names the same stream.
    let before = receiver_state(&receiver, packet);
    let mut forged = protected;
    let bit = (usize::from(*flags >> 1) * 131 + packet.len()) % (forged.len() * 8);
    if let Some(byte) = forged.get_mut(bit / 8) {
        *byte ^= 1 << (bit % 8);
    }
    assert!(
        unprotect(&mut receiver, &mut forged, kind).is_err(),
        "a packet with a flipped bit was accepted"
    );
    assert_eq!(
        receiver_state(&receiver, packet),
        before,
        "a rejected packet moved state"
    );
}
