//! Tests across codecs: [`PayloadDescriptor`] dispatch, and the helpers the codec tests
//! share (a bit writer for hand-written bitstreams, H.264 escaping, RTP payload slicing).

use super::*;
use crate::rtp::RtpPacket;

/// The payload of a captured RTP packet.
pub(crate) fn rtp_payload(rtp: &[u8]) -> &[u8] {
    let packet = RtpPacket::parse(rtp).unwrap();
    let start = packet.header_len();
    &rtp[start..start + packet.payload().len()]
}

/// Writes bit fields most significant first, for hand-written bitstreams.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    used: u8,
}

impl BitWriter {
    pub(crate) fn bit(&mut self, bit: bool) {
        if self.used == 0 {
            self.bytes.push(0);
        }
        if bit {
            *self.bytes.last_mut().unwrap() |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) % 8;
    }

    pub(crate) fn bits(&mut self, value: u64, count: u32) {
        for i in (0..count).rev() {
            self.bit(value >> i & 1 != 0);
        }
    }

    pub(crate) fn ue(&mut self, value: u32) {
        let coded = u64::from(value) + 1;
        let len = 64 - coded.leading_zeros();
        self.bits(0, len - 1);
        self.bits(coded, len);
    }

    pub(crate) fn se(&mut self, value: i32) {
        let k = if value > 0 { 2 * value - 1 } else { -2 * value };
        self.ue(k as u32);
    }

    /// ns(n) as the AV1 specification codes it.
    pub(crate) fn ns(&mut self, n: u32, value: u32) {
        let w = 32 - n.leading_zeros();
        let m = (1 << w) - n;
        if value < m {
            self.bits(u64::from(value), w - 1);
        } else {
            let v = value + m;
            self.bits(u64::from(v >> 1), w - 1);
            self.bit(v & 1 != 0);
        }
    }

    /// The bytes written, the last one zero-padded.
    pub(crate) fn bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The bytes with the RBSP stop bit (H.264 rbsp_trailing_bits).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.bit(true);
        self.bytes
    }
}

/// Inserts H.264 emulation prevention bytes: `00 00 0x` with x <= 3 becomes `00 00 03 0x`.
pub(crate) fn escape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

#[test]
fn picture_id_widths() {
    assert_eq!(read_picture_id(&[0x05]), Some((PictureId::Short(5), 1)));
    assert_eq!(
        read_picture_id(&[0x81, 0x02]),
        Some((PictureId::Long(0x102), 2))
    );
    assert_eq!(read_picture_id(&[0x81]), None);
    assert_eq!(read_picture_id(&[]), None);
    assert_eq!(PictureId::Short(5).max(), 0x7f);
    assert_eq!(PictureId::Long(5).max(), 0x7fff);
    let mut long = [0x81, 0x02];
    write_picture_id(&mut long, 0x8123);
    assert_eq!(long, [0x81, 0x23]);
    let mut short = [0x05];
    write_picture_id(&mut short, 0x0183);
    assert_eq!(short, [0x03]);
}

#[test]
fn payload_descriptor_dispatches_by_codec() {
    let vp8 = include_bytes!("../../tests/vectors/vp8/keyframe_first.rtp");
    let vp9 = include_bytes!("../../tests/vectors/vp9/keyframe_first.rtp");
    let h264 = include_bytes!("../../tests/vectors/h264/stap_a_sps_pps_sei.rtp");
    let av1 = include_bytes!("../../tests/vectors/av1/keyframe_first.rtp");
    let vga = Some(Resolution {
        width: 640,
        height: 360,
    });
    for (codec, rtp) in [
        (Codec::Vp8, &vp8[..]),
        (Codec::Vp9, &vp9[..]),
        (Codec::H264, &h264[..]),
        (Codec::Av1, &av1[..]),
    ] {
        let d = PayloadDescriptor::parse(codec, rtp_payload(rtp)).unwrap();
        assert!(d.is_keyframe() && d.is_start_of_frame());
        assert_eq!(d.resolution(), vga);
        assert_eq!((d.temporal_id(), d.spatial_id()), (None, None));
    }
    assert_eq!(
        PayloadDescriptor::parse(Codec::Opus, &[1, 2, 3]).unwrap_err(),
        CodecError::Unsupported("audio codec")
    );
}

#[test]
fn fuzz_harnesses_accept_every_vector() {
    use crate::fuzzing::codec;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    type Harness = fn(&[u8]);
    let harnesses: [(&str, Harness); 4] = [
        ("vp8", codec::vp8),
        ("vp9", codec::vp9),
        ("h264", codec::h264),
        ("av1", codec::av1),
    ];
    for (dir, harness) in harnesses {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let rtp = std::fs::read(entry.unwrap().path()).unwrap();
            let payload = rtp_payload(&rtp);
            for len in [payload.len(), payload.len() / 2, 40, 12, 3, 1, 0] {
                harness(&payload[..len.min(payload.len())]);
            }
            codec::dependency_descriptor(payload);
        }
    }
}
