//! RFC 4571 framing of the media port's TCP connections (ICE-TCP, RFC 6544): each STUN,
//! DTLS, RTP or RTCP packet is preceded by its length as a 16-bit big-endian number.
//!
//! [`FrameDecoder`] reassembles frames from whatever pieces the socket's reads return, in one
//! fixed buffer per connection: the caller reads into [`FrameDecoder::spare`], reports how
//! much arrived with [`FrameDecoder::filled`], then takes complete frames with
//! [`FrameDecoder::next_frame`] until it returns `Ok(None)`. A length above the decoder's
//! maximum is an error (the stream cannot be resynchronised, so the connection should close).
//!
//! ```
//! use ice_lite::framing::{FrameDecoder, frame_header};
//!
//! let mut decoder = FrameDecoder::new(1500);
//! let mut wire = frame_header(3).unwrap().to_vec();
//! wire.extend_from_slice(b"abc");
//! let spare = decoder.spare();
//! spare[..wire.len()].copy_from_slice(&wire);
//! decoder.filled(wire.len());
//! let frame = decoder.next_frame().unwrap().map(|frame| frame.to_vec());
//! assert_eq!(frame.as_deref(), Some(&b"abc"[..]));
//! assert!(decoder.next_frame().unwrap().is_none());
//! ```

use std::fmt;

/// Bytes of the length field before each frame.
pub const HEADER_LEN: usize = 2;

/// The largest frame RFC 4571 can express.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

/// Why a stream of frames cannot be read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// A frame announced more bytes than the decoder accepts.
    TooLong {
        /// The announced length.
        len: usize,
        /// The decoder's maximum.
        max: usize,
    },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::TooLong { len, max } => {
                write!(
                    f,
                    "a frame of {len} bytes is longer than the {max} accepted"
                )
            }
        }
    }
}

impl std::error::Error for FramingError {}

/// The length field for a packet of `len` bytes, or `None` when it does not fit one frame.
pub fn frame_header(len: usize) -> Option<[u8; HEADER_LEN]> {
    u16::try_from(len).ok().map(u16::to_be_bytes)
}

/// Reassembles RFC 4571 frames from a byte stream, in a buffer of fixed size: a frame's
/// header and body always fit, so a reader is never asked to grow it.
#[derive(Clone)]
pub struct FrameDecoder {
    buf: Box<[u8]>,
    /// Bytes before `start` have been handed out; `start..end` wait to be decoded.
    start: usize,
    end: usize,
    max_frame: usize,
}

impl fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("buffered", &self.buffered())
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

impl FrameDecoder {
    /// A decoder that accepts frames of up to `max_frame` bytes (at most [`MAX_FRAME_LEN`]).
    pub fn new(max_frame: usize) -> Self {
        let max_frame = max_frame.min(MAX_FRAME_LEN);
        FrameDecoder {
            buf: vec![0; HEADER_LEN + max_frame].into_boxed_slice(),
            start: 0,
            end: 0,
            max_frame,
        }
    }

    /// The largest frame this decoder accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes received but not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Where the next read goes. Empty only while a complete frame waits in the buffer: take
    /// the frames with [`FrameDecoder::next_frame`] first.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            // Move the unfinished frame to the front so that it can complete in place.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// Records that `len` bytes were read into [`FrameDecoder::spare`].
    pub fn filled(&mut self, len: usize) {
        self.end = (self.end + len).min(self.buf.len());
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed, or an error when the
    /// next frame is longer than the maximum (the stream is then unusable). A zero-length
    /// frame comes out as an empty slice.
    pub fn next_frame(&mut self) -> Result<Option<&mut [u8]>, FramingError> {
        let Some(&[high, low]) = self.buf.get(self.start..self.start + HEADER_LEN) else {
            return Ok(None);
        };
        if self.buffered() < HEADER_LEN {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([high, low]));
        if len > self.max_frame {
            return Err(FramingError::TooLong {
                len,
                max: self.max_frame,
            });
        }
        let body = self.start + HEADER_LEN;
        if self.end < body + len {
            return Ok(None);
        }
        self.start = body + len;
        if self.start == self.end {
            // Everything consumed: the next read starts at the front without a copy.
            let (start, end) = (body, body + len);
            self.start = 0;
            self.end = 0;
            return Ok(self.buf.get_mut(start..end));
        }
        Ok(self.buf.get_mut(body..body + len))
    }

    /// Takes the buffered bytes out of another decoder (a connection that moves on keeps
    /// what it had received); false if they do not fit.
    pub fn take_buffered_from(&mut self, other: &FrameDecoder) -> bool {
        let pending = other.buf.get(other.start..other.end).unwrap_or_default();
        let spare = self.spare();
        let Some(target) = spare.get_mut(..pending.len()) else {
            return false;
        };
        target.copy_from_slice(pending);
        self.filled(pending.len());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut wire = frame_header(body.len()).unwrap().to_vec();
        wire.extend_from_slice(body);
        wire
    }

    fn feed(decoder: &mut FrameDecoder, bytes: &[u8]) {
        let spare = decoder.spare();
        spare[..bytes.len()].copy_from_slice(bytes);
        decoder.filled(bytes.len());
    }

    fn drain(decoder: &mut FrameDecoder) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push(frame.to_vec());
        }
        frames
    }

    #[test]
    fn a_frame_split_over_many_reads_comes_out_once_complete() {
        let wire = frame(b"binding request");
        let mut decoder = FrameDecoder::new(100);
        for (i, byte) in wire.iter().enumerate() {
            assert_eq!(decoder.next_frame(), Ok(None), "early at byte {i}");
            feed(&mut decoder, &[*byte]);
        }
        assert_eq!(drain(&mut decoder), vec![b"binding request".to_vec()]);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn several_frames_in_one_read_and_a_partial_tail() {
        let mut wire = frame(b"one");
        wire.extend(frame(b"two!"));
        wire.extend(frame(&[7; 50]));
        let tail = frame(b"tail");
        wire.extend_from_slice(&tail[..3]);
        let mut decoder = FrameDecoder::new(64);
        feed(&mut decoder, &wire);
        assert_eq!(
            drain(&mut decoder),
            vec![b"one".to_vec(), b"two!".to_vec(), vec![7; 50]]
        );
        assert_eq!(decoder.buffered(), 3);
        feed(&mut decoder, &tail[3..]);
        assert_eq!(drain(&mut decoder), vec![b"tail".to_vec()]);
    }

    #[test]
    fn a_frame_of_the_maximum_fits_after_a_partial_one_is_moved_forward() {
        let mut decoder = FrameDecoder::new(10);
        let mut wire = frame(&[1; 4]);
        wire.extend(frame(&[2; 10]));
        // The first frame and part of the second; the rest arrives later.
        feed(&mut decoder, &wire[..9]);
        assert_eq!(drain(&mut decoder), vec![vec![1; 4]]);
        assert!(decoder.spare().len() >= wire.len() - 9);
        feed(&mut decoder, &wire[9..]);
        assert_eq!(drain(&mut decoder), vec![vec![2; 10]]);
    }

    #[test]
    fn an_oversized_frame_is_an_error_before_its_body_arrives() {
        let mut decoder = FrameDecoder::new(1500);
        feed(&mut decoder, &1501u16.to_be_bytes());
        assert_eq!(
            decoder.next_frame(),
            Err(FramingError::TooLong {
                len: 1501,
                max: 1500
            })
        );
        assert_eq!(FrameDecoder::new(100_000).max_frame(), MAX_FRAME_LEN);
        assert_eq!(frame_header(65_536), None);
    }

    #[test]
    fn zero_length_frames_come_out_empty() {
        let mut decoder = FrameDecoder::new(8);
        let mut wire = frame(b"");
        wire.extend(frame(b"x"));
        wire.extend(frame(b""));
        feed(&mut decoder, &wire);
        assert_eq!(drain(&mut decoder), vec![vec![], b"x".to_vec(), vec![]]);
    }

    #[test]
    fn buffered_bytes_move_to_another_decoder() {
        let mut first = FrameDecoder::new(16);
        let mut wire = frame(b"first");
        wire.extend(frame(b"second"));
        feed(&mut first, &wire[..10]);
        assert_eq!(drain(&mut first), vec![b"first".to_vec()]);
        let mut second = FrameDecoder::new(16);
        assert!(second.take_buffered_from(&first));
        feed(&mut second, &wire[10..]);
        assert_eq!(drain(&mut second), vec![b"second".to_vec()]);
    }
}
