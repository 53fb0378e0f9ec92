//! A big-endian bit reader over a borrowed slice, shared by the parsers that read bit fields:
//! the H.264 SPS (Exp-Golomb codes, emulation prevention bytes skipped on the fly), the VP9
//! uncompressed header, the AV1 sequence header and the Dependency Descriptor. Every read is
//! checked, so a short buffer gives [`CodecError::Truncated`] with the caller's context.

use super::CodecError;

/// Reads bits most significant first.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Index of the next byte to load.
    next: usize,
    /// The byte being read and how many of its bits are left.
    current: u8,
    left: u8,
    /// Whether `00 00 03` sequences lose their `03` (H.264 NAL unit payloads).
    unescape: bool,
    /// Zero bytes loaded in a row, to spot an emulation prevention byte.
    zeros: u8,
    context: &'static str,
}

impl<'a> BitReader<'a> {
    /// A reader of plain bits; errors name `context`.
    pub(crate) fn new(data: &'a [u8], context: &'static str) -> Self {
        Self {
            data,
            next: 0,
            current: 0,
            left: 0,
            unescape: false,
            zeros: 0,
            context,
        }
    }

    /// A reader of an H.264 NAL unit payload that drops each emulation prevention byte
    /// (the `03` of `00 00 03`, H.264 section 7.4.1) as it goes, so the RBSP is read
    /// without first being copied out.
    pub(crate) fn new_unescaped(data: &'a [u8], context: &'static str) -> Self {
        Self {
            unescape: true,
            ..Self::new(data, context)
        }
    }

    fn truncated(&self) -> CodecError {
        CodecError::Truncated(self.context)
    }

    /// A malformed-field error naming this reader's context.
    pub(crate) fn malformed(&self) -> CodecError {
        CodecError::Malformed(self.context)
    }

    fn load(&mut self) -> Result<(), CodecError> {
        let mut byte = *self.data.get(self.next).ok_or(self.truncated())?;
        self.next += 1;
        if self.unescape && self.zeros >= 2 && byte == 0x03 {
            byte = *self.data.get(self.next).ok_or(self.truncated())?;
            self.next += 1;
            self.zeros = 0;
        }
        self.zeros = if byte == 0 {
            self.zeros.saturating_add(1)
        } else {
            0
        };
        self.current = byte;
        self.left = 8;
        Ok(())
    }

    /// One bit.
    pub(crate) fn bit(&mut self) -> Result<bool, CodecError> {
        if self.left == 0 {
            self.load()?;
        }
        self.left -= 1;
        Ok((self.current >> self.left) & 1 != 0)
    }

    /// `count` bits (at most 32) as an unsigned number.
    pub(crate) fn bits(&mut self, count: u32) -> Result<u32, CodecError> {
        debug_assert!(count <= 32);
        let mut value = 0u32;
        for _ in 0..count.min(32) {
            value = (value << 1) | u32::from(self.bit()?);
        }
        Ok(value)
    }

    /// `count` bits (at most 8) as a byte.
    pub(crate) fn bits_u8(&mut self, count: u32) -> Result<u8, CodecError> {
        Ok((self.bits(count.min(8))? & 0xff) as u8)
    }

    /// Skips `count` bits.
    pub(crate) fn skip(&mut self, count: u32) -> Result<(), CodecError> {
        for _ in 0..count {
            self.bit()?;
        }
        Ok(())
    }

    /// An unsigned Exp-Golomb code, ue(v) (H.264 section 9.1). More than 31 leading zeros
    /// cannot encode a 32-bit value and is malformed.
    pub(crate) fn ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(self.malformed());
            }
        }
        let suffix = u64::from(self.bits(zeros)?);
        // At most 2^31 - 1 + 2^31 - 1: always fits, the conversion only guards the arithmetic.
        u32::try_from((1u64 << zeros) - 1 + suffix).map_err(|_| self.malformed())
    }

    /// A signed Exp-Golomb code, se(v).
    pub(crate) fn se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(value).map_err(|_| self.malformed())
    }

    /// A non-symmetric unsigned number below `n`, ns(n) (AV1 section 4.10.7, used by the
    /// Dependency Descriptor). `n` must be at least 1.
    pub(crate) fn ns(&mut self, n: u32) -> Result<u32, CodecError> {
        if n <= 1 {
            return Ok(0);
        }
        let width = 32 - n.leading_zeros();
        let m = (1u32 << width) - n;
        let v = self.bits(width - 1)?;
        if v < m {
            return Ok(v);
        }
        let extra = u32::from(self.bit()?);
        Ok((v << 1) - m + extra)
    }
}

/// Reads an unsigned LEB128 number (AV1 section 4.10.5) at the start of `bytes`: its value
/// and length. At most 8 bytes are read and the value must fit in 32 bits, as the AV1
/// specification requires.
pub(crate) fn leb128(bytes: &[u8]) -> Result<(u32, usize), CodecError> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let value = u32::try_from(value).map_err(|_| CodecError::Malformed("LEB128 length"))?;
            return Ok((value, i + 1));
        }
    }
    if bytes.len() >= 8 {
        Err(CodecError::Malformed("LEB128 length"))
    } else {
        Err(CodecError::Truncated("LEB128 length"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_codes() {
        // 1 | 010 | 011 | 00100 | 00101 | 0001000 -> ue 0, 1, 2, 3, 4, 7
        let data = [0b1010_0110, 0b0100_0010, 0b1000_1000];
        let mut r = BitReader::new(&data, "test");
        let values: Vec<u32> = (0..6).map(|_| r.ue().unwrap()).collect();
        assert_eq!(values, [0, 1, 2, 3, 4, 7]);
        // se: 1 -> 0, 010 -> 1, 011 -> -1, 00100 -> 2, 00101 -> -2
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, "test");
        let values: Vec<i32> = (0..5).map(|_| r.se().unwrap()).collect();
        assert_eq!(values, [0, 1, -1, 2, -2]);
    }

    #[test]
    fn exp_golomb_limits() {
        // 31 zeros, a one, 31 ones: 2^32 - 2, the largest ue a u32 holds.
        let data = [0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe];
        assert_eq!(BitReader::new(&data, "t").ue(), Ok(u32::MAX - 1));
        // 32 zeros: malformed; all zeros then the end: truncated.
        assert_eq!(
            BitReader::new(&[0, 0, 0, 0, 0x80], "t").ue(),
            Err(CodecError::Malformed("t"))
        );
        assert_eq!(
            BitReader::new(&[0, 0], "t").ue(),
            Err(CodecError::Truncated("t"))
        );
    }

    #[test]
    fn emulation_prevention_bytes_are_dropped() {
        // 00 00 03 01 reads as 00 00 01; 00 00 03 03 as 00 00 03; the second 03 is data.
        let data = [0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x03, 0x03, 0xaa];
        let mut r = BitReader::new_unescaped(&data, "t");
        let bytes: Vec<u32> = (0..7).map(|_| r.bits(8).unwrap()).collect();
        assert_eq!(bytes, [0, 0, 1, 0, 0, 3, 0xaa]);
        assert_eq!(r.bits(1), Err(CodecError::Truncated("t")));
        // Without unescaping every byte is data.
        let mut r = BitReader::new(&data, "t");
        assert_eq!(r.bits(32).unwrap(), 0x0000_0301);
        // A 03 after only one zero is data.
        let mut r = BitReader::new_unescaped(&[0x00, 0x03, 0x00], "t");
        assert_eq!(r.bits(24).unwrap(), 0x00_03_00);
    }

    #[test]
    fn non_symmetric_numbers() {
        // ns(5): w = 3, m = 3; values 0..3 take 2 bits, 3 and 4 take 3 bits.
        for (bits, len, want) in [(0b00u32, 2, 0), (0b10, 2, 2), (0b110, 3, 3), (0b111, 3, 4)] {
            let byte = (bits << (8 - len)) as u8;
            assert_eq!(BitReader::new(&[byte], "t").ns(5), Ok(want));
        }
        assert_eq!(BitReader::new(&[], "t").ns(1), Ok(0));
    }

    #[test]
    fn leb128_values() {
        assert_eq!(leb128(&[0x00]), Ok((0, 1)));
        assert_eq!(leb128(&[0x7f, 0xff]), Ok((127, 1)));
        assert_eq!(leb128(&[0x80, 0x01]), Ok((128, 2)));
        assert_eq!(leb128(&[0xe5, 0x8e, 0x26]), Ok((624_485, 3)));
        assert_eq!(leb128(&[0x80]), Err(CodecError::Truncated("LEB128 length")));
        assert_eq!(leb128(&[]), Err(CodecError::Truncated("LEB128 length")));
        assert_eq!(
            leb128(&[0x80, 0x80, 0x80, 0x80, 0x10]),
            Err(CodecError::Malformed("LEB128 length"))
        );
        assert_eq!(
            leb128(&[0x80; 9]),
            Err(CodecError::Malformed("LEB128 length"))
        );
    }
}
