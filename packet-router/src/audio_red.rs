//! Redundant audio (RFC 2198) towards subscribers whose links lose packets: each audio track
//! keeps its last payloads and builds one RED payload per packet, shared by every
//! subscription that has redundancy on ([`RedEncoder`]); each subscriber session decides
//! from its measured loss whether it wants redundancy ([`AudioRedSwitch`]).
//!
//! A RED packet carries the current Opus payload and the previous [`RED_DISTANCE`] ones, so
//! a receiver recovers a lost packet from either of the next two; at 10 % random loss, what
//! it has to conceal falls from one packet in ten to about one in a thousand. It costs up to
//! three times the audio rate, which is why it is only sent where loss was measured.

use std::time::{Duration, Instant};

use rtc_core::rtp::red::{MAX_BLOCK_LEN, MAX_TIMESTAMP_OFFSET, write_red};
use rtc_core::{Pt, SeqNo};

use crate::transmit::MAX_PACKET;

/// How many earlier payloads a RED packet repeats.
pub const RED_DISTANCE: usize = 2;

/// When the router sends redundant audio to subscribers that negotiated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioRedMode {
    /// Never.
    Off,
    /// To a subscriber session whose measured loss stays at or above
    /// [`AudioRedSwitch::ON_LOSS`] for [`AudioRedSwitch::ON_AFTER`], until it stays below
    /// [`AudioRedSwitch::OFF_LOSS`] for [`AudioRedSwitch::OFF_AFTER`].
    #[default]
    OnLoss,
    /// Always.
    Always,
}

/// One earlier payload of the track.
#[derive(Debug, Clone)]
struct Remembered {
    seq: SeqNo,
    timestamp: u32,
    len: usize,
    data: [u8; MAX_BLOCK_LEN],
}

/// The RED payloads of one audio track: its last payloads, and the payload built for the
/// packet being forwarded.
#[derive(Debug, Clone)]
pub(crate) struct RedEncoder {
    /// The last payloads, oldest first; `None` where none is kept.
    history: [Option<Remembered>; RED_DISTANCE],
    built: [u8; MAX_PACKET],
    built_len: usize,
    built_blocks: usize,
}

/// A RED payload built for one packet: its bytes and how many redundant blocks lead it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuiltRed<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) redundant_blocks: usize,
}

impl RedEncoder {
    pub(crate) fn new() -> Box<Self> {
        Box::new(RedEncoder {
            history: [const { None }; RED_DISTANCE],
            built: [0; MAX_PACKET],
            built_len: 0,
            built_blocks: 0,
        })
    }

    /// Builds the RED payload of the packet `seq` (timestamp `timestamp`, payload type `pt`,
    /// `payload` without padding), read back with [`RedEncoder::built`]: the kept payloads
    /// of the packets just before it, oldest first, within a RED header's timestamp reach.
    /// False when it does not fit a packet of `header_room` more bytes.
    pub(crate) fn build(
        &mut self,
        (seq, timestamp, pt): (SeqNo, u32, Pt),
        payload: &[u8],
        header_room: usize,
    ) -> bool {
        self.built_len = 0;
        self.try_build((seq, timestamp, pt), payload, header_room)
            .is_some()
    }

    /// The payload [`RedEncoder::build`] last built.
    pub(crate) fn built(&self) -> Option<BuiltRed<'_>> {
        Some(BuiltRed {
            payload: self.built.get(..self.built_len).filter(|p| !p.is_empty())?,
            redundant_blocks: self.built_blocks,
        })
    }

    fn try_build(
        &mut self,
        (seq, timestamp, pt): (SeqNo, u32, Pt),
        payload: &[u8],
        header_room: usize,
    ) -> Option<()> {
        // A receiver numbers block k back as the packet k before: only an unbroken run of
        // the packets just before this one can be repeated.
        let mut first = RED_DISTANCE;
        for (back, slot) in self.history.iter().rev().enumerate() {
            let follows = slot.as_ref().is_some_and(|r| {
                r.seq.0.checked_add(back as u64 + 1) == Some(seq.0)
                    && timestamp.wrapping_sub(r.timestamp) <= MAX_TIMESTAMP_OFFSET
                    && timestamp != r.timestamp
            });
            if !follows {
                break;
            }
            first -= 1;
        }
        let redundant = self.history.get(first..).unwrap_or_default().iter();
        let blocks = redundant.flatten().map(|r| {
            let offset = timestamp.wrapping_sub(r.timestamp) as u16;
            (offset, r.data.get(..r.len).unwrap_or_default())
        });
        let room = MAX_PACKET.saturating_sub(header_room);
        let out = self.built.get_mut(..room)?;
        self.built_len = write_red(out, pt, blocks, payload)?;
        self.built_blocks = RED_DISTANCE - first;
        Some(())
    }

    /// Keeps the payload of packet `seq` for the RED packets that follow; a payload too long
    /// for a RED block (or a duplicate) is not kept, and breaks the run.
    pub(crate) fn remember(&mut self, seq: SeqNo, timestamp: u32, payload: &[u8]) {
        if self
            .history
            .last()
            .and_then(Option::as_ref)
            .is_some_and(|last| last.seq >= seq)
        {
            return;
        }
        self.history.rotate_left(1);
        let Some(slot) = self.history.last_mut() else {
            return;
        };
        if payload.len() > MAX_BLOCK_LEN {
            *slot = None;
            return;
        }
        let kept = slot.get_or_insert_with(|| Remembered {
            seq,
            timestamp,
            len: 0,
            data: [0; MAX_BLOCK_LEN],
        });
        kept.seq = seq;
        kept.timestamp = timestamp;
        kept.len = payload.len();
        if let Some(data) = kept.data.get_mut(..payload.len()) {
            data.copy_from_slice(payload);
        }
    }
}

/// Whether one subscriber session gets redundant audio, from its measured loss.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AudioRedSwitch {
    on: bool,
    /// Since when the loss has been high (while off) or low (while on).
    since: Option<Instant>,
}

impl AudioRedSwitch {
    /// Loss at or above this, for this long, turns redundancy on...
    pub const ON_LOSS: f64 = 0.03;
    pub const ON_AFTER: Duration = Duration::from_secs(1);
    /// ...and loss below this, for this long, off again.
    pub const OFF_LOSS: f64 = 0.01;
    pub const OFF_AFTER: Duration = Duration::from_secs(10);

    /// Whether redundancy is on.
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    /// Takes the session's loss measured at `now` (0 to 1); returns the new state when it
    /// changes.
    pub(crate) fn update(&mut self, now: Instant, loss: f64) -> Option<bool> {
        let (towards, wait) = if self.on {
            (loss < Self::OFF_LOSS, Self::OFF_AFTER)
        } else {
            (loss >= Self::ON_LOSS, Self::ON_AFTER)
        };
        if !towards {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) < wait {
            return None;
        }
        self.on = !self.on;
        self.since = None;
        Some(self.on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_core::rtp::red::RedPayload;

    fn at_ms(ms: u64) -> Instant {
        crate::test_time::origin() + Duration::from_millis(ms)
    }

    const OPUS: Pt = Pt(111);

    fn blocks(built: &BuiltRed<'_>) -> Vec<(u16, Vec<u8>)> {
        let red = RedPayload::parse(built.payload).expect("valid RED");
        assert_eq!(red.redundant_blocks(), built.redundant_blocks);
        red.blocks()
            .map(|b| {
                assert_eq!(b.pt, OPUS);
                (b.timestamp_offset, b.data.to_vec())
            })
            .collect()
    }

    fn send(
        encoder: &mut RedEncoder,
        seq: u64,
        timestamp: u32,
        payload: &[u8],
    ) -> Vec<(u16, Vec<u8>)> {
        assert!(encoder.build((SeqNo(seq), timestamp, OPUS), payload, 12));
        let built = blocks(&encoder.built().expect("built"));
        encoder.remember(SeqNo(seq), timestamp, payload);
        built
    }

    #[test]
    fn each_packet_repeats_the_two_before_it() {
        let mut encoder = RedEncoder::new();
        assert_eq!(send(&mut encoder, 10, 0, &[1]), [(0, vec![1])]);
        assert_eq!(
            send(&mut encoder, 11, 960, &[2]),
            [(960, vec![1]), (0, vec![2])]
        );
        assert_eq!(
            send(&mut encoder, 12, 1920, &[3]),
            [(1920, vec![1]), (960, vec![2]), (0, vec![3])]
        );
        assert_eq!(
            send(&mut encoder, 13, 2880, &[4, 4]),
            [(1920, vec![2]), (960, vec![3]), (0, vec![4, 4])]
        );
    }

    #[test]
    fn a_gap_in_the_publishers_numbers_is_not_bridged() {
        let mut encoder = RedEncoder::new();
        send(&mut encoder, 10, 0, &[1]);
        send(&mut encoder, 11, 960, &[2]);
        // 12 never came: 13 repeats nothing (a receiver would take 11 for 12).
        assert_eq!(send(&mut encoder, 13, 2880, &[4]), [(0, vec![4])]);
        assert_eq!(
            send(&mut encoder, 14, 3840, &[5]),
            [(960, vec![4]), (0, vec![5])]
        );
    }

    #[test]
    fn what_a_header_cannot_describe_is_left_out() {
        let mut encoder = RedEncoder::new();
        send(&mut encoder, 10, 0, &[1]);
        // After 20 000 samples of silence (DTX): beyond the 14-bit offset.
        assert_eq!(send(&mut encoder, 11, 20_000, &[2]), [(0, vec![2])]);
        // A payload longer than a RED block holds is not kept.
        send(&mut encoder, 12, 20_960, &[7; MAX_BLOCK_LEN + 1]);
        assert_eq!(send(&mut encoder, 13, 21_920, &[3]), [(0, vec![3])]);
        // Nothing fits behind a header that takes the whole packet.
        assert!(!encoder.build((SeqNo(14), 22_880, OPUS), &[1; 100], MAX_PACKET - 50));
        assert!(
            encoder.built().is_none(),
            "nothing left of the last packet's"
        );
    }

    #[test]
    fn the_switch_needs_loss_that_lasts_and_quiet_that_lasts() {
        let mut switch = AudioRedSwitch::default();
        assert_eq!(switch.update(at_ms(0), 0.10), None);
        // A single lossy moment does not turn it on.
        assert_eq!(switch.update(at_ms(500), 0.0), None);
        assert_eq!(switch.update(at_ms(600), 0.05), None);
        assert_eq!(switch.update(at_ms(1_500), 0.04), None);
        assert_eq!(switch.update(at_ms(1_600), 0.04), Some(true));
        assert!(switch.is_on());
        // Moderate loss keeps it on; ten quiet seconds turn it off.
        assert_eq!(switch.update(at_ms(2_000), 0.0), None);
        assert_eq!(switch.update(at_ms(9_000), 0.02), None);
        assert_eq!(switch.update(at_ms(10_000), 0.0), None);
        assert_eq!(switch.update(at_ms(19_999), 0.005), None);
        assert_eq!(switch.update(at_ms(20_000), 0.0), Some(false));
        assert!(!switch.is_on());
    }
}
