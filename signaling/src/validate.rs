//! Checks on what clients send: room and display names, chat text and SDP. Each failure has
//! the protocol's error code and a message that says what was wrong.

/// A rejected input: the room protocol's error `code` and a human-readable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: &'static str,
}

impl Invalid {
    pub const fn new(code: &'static str, message: &'static str) -> Self {
        Self { code, message }
    }
}

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_CHAT_CHARS: usize = 1000;

/// A room name: 1..=64 characters, no control characters. Returned unchanged.
pub fn room_name(room: &str) -> Result<&str, Invalid> {
    const BAD: Invalid = Invalid::new(
        "bad_room",
        "room name must be 1 to 64 characters without control characters",
    );
    let count = room.chars().count();
    if count == 0 || count > MAX_NAME_CHARS || room.chars().any(char::is_control) {
        return Err(BAD);
    }
    Ok(room)
}

/// A display name: 1..=64 characters after trimming, no control characters. Returned trimmed.
pub fn display_name(name: &str) -> Result<&str, Invalid> {
    const BAD: Invalid = Invalid::new(
        "bad_name",
        "display name must be 1 to 64 characters without control characters",
    );
    let trimmed = name.trim();
    let count = trimmed.chars().count();
    if count == 0 || count > MAX_NAME_CHARS || trimmed.chars().any(char::is_control) {
        return Err(BAD);
    }
    Ok(trimmed)
}

/// The lowest and highest publish limit, in bits per second (a REMB below 32 kbit/s leaves
/// a browser sending nothing but audio; above 100 Mbit/s is no limit).
pub const PUBLISH_BITRATE_RANGE: std::ops::RangeInclusive<u64> = 32_000..=100_000_000;

/// A publish limit in bits per second, within [`PUBLISH_BITRATE_RANGE`].
pub fn publish_bitrate(bits_per_second: u64) -> Result<u64, Invalid> {
    const BAD: Invalid = Invalid::new(
        "bad_bitrate",
        "maxPublishBitrate must be bits per second from 32000 to 100000000, or null",
    );
    if PUBLISH_BITRATE_RANGE.contains(&bits_per_second) {
        Ok(bits_per_second)
    } else {
        Err(BAD)
    }
}

/// Chat text: 1..=1000 characters, and not only whitespace.
pub fn chat_text(text: &str) -> Result<&str, Invalid> {
    const BAD: Invalid = Invalid::new("bad_chat", "chat text must be 1 to 1000 characters");
    let count = text.chars().count();
    if text.trim().is_empty() || count > MAX_CHAT_CHARS {
        return Err(BAD);
    }
    Ok(text)
}

/// A complete SDP offer or answer of at most `max_bytes`, with at most `max_media` m-lines.
/// The media plane does the real parsing; this keeps oversized or obviously foreign input
/// away from it.
pub fn sdp(sdp: &str, max_bytes: usize, max_media: usize) -> Result<&str, Invalid> {
    if sdp.len() > max_bytes {
        return Err(Invalid::new("bad_sdp", "SDP is too large"));
    }
    if !sdp.starts_with("v=0") {
        return Err(Invalid::new("bad_sdp", "SDP must start with v=0"));
    }
    if sdp.contains('\0') {
        return Err(Invalid::new("bad_sdp", "SDP contains a NUL character"));
    }
    let media = sdp.lines().filter(|line| line.starts_with("m=")).count();
    if media > max_media {
        return Err(Invalid::new(
            "too_many_tracks",
            "the SDP has too many media sections",
        ));
    }
    Ok(sdp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(display_name("  Ada  "), Ok("Ada"));
        assert_eq!(display_name(&"é".repeat(64)).map(str::len), Ok(128));
        for bad in ["", "   ", "a\u{0}b", "line\nbreak", &"x".repeat(65)] {
            assert_eq!(
                display_name(bad).map_err(|e| e.code),
                Err("bad_name"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn room_names_are_bounded_and_free_of_control_characters() {
        assert_eq!(room_name("lobby 1"), Ok("lobby 1"));
        for bad in ["", "a\tb", "\u{7f}", &"r".repeat(65)] {
            assert_eq!(
                room_name(bad).map_err(|e| e.code),
                Err("bad_room"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn chat_text_is_bounded() {
        assert!(chat_text("hi").is_ok());
        assert!(chat_text(&"x".repeat(1000)).is_ok());
        assert!(chat_text(&"x".repeat(1001)).is_err());
        assert!(chat_text(" \n ").is_err());
    }

    #[test]
    fn sdp_size_shape_and_media_count() {
        let offer =
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
        assert!(sdp(offer, 1000, 8).is_ok());
        assert_eq!(
            sdp(offer, 10, 8).map_err(|e| e.message),
            Err("SDP is too large")
        );
        assert_eq!(
            sdp(offer, 1000, 0).map_err(|e| e.code),
            Err("too_many_tracks")
        );
        assert_eq!(sdp("hello", 1000, 8).map_err(|e| e.code), Err("bad_sdp"));
        assert_eq!(sdp("v=0\0", 1000, 8).map_err(|e| e.code), Err("bad_sdp"));
    }
}
