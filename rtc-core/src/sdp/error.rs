//! [`SdpError`]: why a description was refused, small and `Copy` so that rejecting a hostile
//! offer does not allocate, yet specific enough (line number, m-line index and mid, the
//! offered codecs) for a signaling layer to show it to a user as is.

use std::fmt;

use super::attribute::Setup;

/// A short piece of text copied inline (truncated on a char boundary), so that an error can
/// name a mid or a codec list while staying `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Snippet {
    bytes: [u8; Snippet::CAPACITY],
    len: u8,
    truncated: bool,
}

impl Snippet {
    const CAPACITY: usize = 48;

    /// Copies up to 48 bytes of `text`.
    pub fn new(text: &str) -> Self {
        let mut end = text.len().min(Self::CAPACITY);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0; Self::CAPACITY];
        let kept = text.as_bytes().get(..end).unwrap_or_default();
        if let Some(dst) = bytes.get_mut(..end) {
            dst.copy_from_slice(kept);
        }
        // `end` is at most CAPACITY (48), so it fits a u8.
        Snippet {
            bytes,
            len: end as u8,
            truncated: end < text.len(),
        }
    }

    /// The copied text.
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// Which m-line an error is about: its 0-based index and its mid (empty if it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlineRef {
    /// 0-based position among the m-lines.
    pub index: u16,
    /// Its `a=mid`, empty when absent.
    pub mid: Snippet,
}

impl MlineRef {
    pub(crate) fn new(index: usize, mid: Option<&str>) -> Self {
        MlineRef {
            index: u16::try_from(index).unwrap_or(u16::MAX),
            mid: Snippet::new(mid.unwrap_or_default()),
        }
    }
}

impl fmt::Display for MlineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mid.as_str().is_empty() {
            write!(f, "m-line {} (no mid)", self.index)
        } else {
            write!(f, "m-line {} (mid {})", self.index, self.mid)
        }
    }
}

/// Errors of the sdp module: parsing limits and syntax, and offer/answer rule violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdpError {
    /// The description is larger than [`super::MAX_SDP_LEN`].
    TooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// A line is longer than [`super::MAX_LINE_LEN`].
    LineTooLong {
        /// 1-based line number.
        line: u32,
    },
    /// More m-lines than [`super::MAX_MEDIA_SECTIONS`].
    TooManyMediaSections,
    /// More attributes in one section than [`super::MAX_ATTRIBUTES`].
    TooManyAttributes {
        /// 1-based line number of the first one too many.
        line: u32,
    },
    /// The bytes are not UTF-8.
    NotUtf8,
    /// A line is not `<letter>=<value>` or its value is malformed.
    MalformedLine {
        /// 1-based line number.
        line: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The description does not start with `v=0`.
    MissingVersion,
    /// There is no `o=` line.
    MissingOrigin,
    /// No `a=group:BUNDLE` (Sluice runs all media over one transport).
    NoBundle,
    /// An m-line that could be accepted has no `a=mid`.
    MissingMid(MlineRef),
    /// Two m-lines share a mid.
    DuplicateMid(MlineRef),
    /// An m-line lacks `a=rtcp-mux` (RTP and RTCP share the one port).
    NoRtcpMux(MlineRef),
    /// No `a=ice-ufrag`/`a=ice-pwd` at media or session level.
    MissingIceCredentials(MlineRef),
    /// No `a=fingerprint` at media or session level.
    MissingFingerprint(MlineRef),
    /// Fingerprints are given, but none with sha-256.
    NoSha256Fingerprint(MlineRef),
    /// The offer's `a=setup` is `holdconn` (no DTLS role at all), or an answer to our offer
    /// is neither `setup:active` nor `setup:passive`.
    UnsupportedSetup {
        /// Where.
        mline: MlineRef,
        /// What the peer asked for.
        setup: Setup,
    },
    /// No offered codec is one Sluice (and the caller's capabilities) can forward.
    NoCommonCodec {
        /// Where.
        mline: MlineRef,
        /// The offered encodings, for the message.
        offered: Snippet,
    },
    /// Every m-line had to be rejected.
    NothingToServe,
    /// An answer does not match the offer it answers.
    AnswerMismatch {
        /// Where.
        mline: MlineRef,
        /// How.
        reason: &'static str,
    },
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdpError::TooLarge { len } => {
                write!(
                    f,
                    "description is {len} bytes, more than the {} allowed",
                    super::MAX_SDP_LEN
                )
            }
            SdpError::LineTooLong { line } => {
                write!(
                    f,
                    "line {line} is longer than {} bytes",
                    super::MAX_LINE_LEN
                )
            }
            SdpError::TooManyMediaSections => {
                write!(f, "more than {} m-lines", super::MAX_MEDIA_SECTIONS)
            }
            SdpError::TooManyAttributes { line } => write!(
                f,
                "line {line}: more than {} attributes in one section",
                super::MAX_ATTRIBUTES
            ),
            SdpError::NotUtf8 => f.write_str("description is not valid UTF-8"),
            SdpError::MalformedLine { line, reason } => write!(f, "line {line}: {reason}"),
            SdpError::MissingVersion => f.write_str("description does not start with v=0"),
            SdpError::MissingOrigin => f.write_str("description has no o= line"),
            SdpError::NoBundle => f.write_str("no a=group:BUNDLE: all media must be bundled"),
            SdpError::MissingMid(m) => write!(f, "{m}: no a=mid"),
            SdpError::DuplicateMid(m) => write!(f, "{m}: mid used by an earlier m-line"),
            SdpError::NoRtcpMux(m) => write!(f, "{m}: no a=rtcp-mux (required)"),
            SdpError::MissingIceCredentials(m) => write!(f, "{m}: no a=ice-ufrag and a=ice-pwd"),
            SdpError::MissingFingerprint(m) => write!(f, "{m}: no a=fingerprint"),
            SdpError::NoSha256Fingerprint(m) => write!(f, "{m}: no sha-256 a=fingerprint"),
            SdpError::UnsupportedSetup { mline, setup } => write!(
                f,
                "{mline}: a=setup:{} is not supported here (an offer to Sluice must be actpass, \
                 active or passive; an answer to Sluice's offer must be active or passive)",
                setup.as_str()
            ),
            SdpError::NoCommonCodec { mline, offered } => {
                write!(f, "{mline}: no codec in common (offered: {offered})")
            }
            SdpError::NothingToServe => {
                f.write_str("no m-line can be served (no audio or video with a common codec)")
            }
            SdpError::AnswerMismatch { mline, reason } => write!(f, "{mline}: {reason}"),
        }
    }
}

impl std::error::Error for SdpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_truncates_on_char_boundary() {
        let long = "é".repeat(40);
        let s = Snippet::new(&long);
        assert_eq!(s.as_str().len(), 48);
        assert!(s.to_string().ends_with("..."));
        assert_eq!(Snippet::new("opus").to_string(), "opus");
        let m = MlineRef::new(1, Some("1"));
        assert_eq!(m.to_string(), "m-line 1 (mid 1)");
    }
}
