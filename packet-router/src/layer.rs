//! One layer of a published track: the RTP stream a publisher sends under one media SSRC
//! (and its RTX SSRC), with everything the router keeps per SSRC. Its sequence numbers
//! extended over rollovers, the loss record behind NACKs, the retransmission cache,
//! reception statistics for receiver reports, the publisher's last NTP <-> RTP mapping for
//! sender reports, the keyframe-request throttle, and whether packets are arriving at all.
//!
//! A track has one layer per simulcast encoding. A layer of a rid-simulcast track starts
//! unbound: its SSRCs are learned from the first packets that name its rid
//! ([`Layer::bind`]), once. Keyframes tell its resolution, by which the track orders its
//! layers.

use std::time::{Duration, Instant};

use rtc_core::codec::Resolution;
use rtc_core::rtcp::ReportBlock;
use rtc_core::rtcp::ntp::duration_to_ntp;
use rtc_core::rtp::SeqNoUnwrapper;
use rtc_core::{SeqNo, Ssrc};

use crate::bandwidth::IncomingRate;
use crate::config::MediaKind;
use crate::keyframe_throttle::KeyframeRequestThrottle;
use crate::loss_tracker::{LossTracker, PacketArrival};
use crate::reception::ReceptionStats;
use crate::retransmit_cache::RetransmitCache;
use crate::router::RouterConfig;

/// Which stream of a layer an SSRC names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamRole {
    Media,
    Rtx,
}

/// What [`Layer::handle_packet`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// The sequence number extended over rollovers.
    pub(crate) seq: SeqNo,
    /// How it relates to the packets before it.
    pub(crate) arrival: PacketArrival,
    /// It is the layer's first packet, or the first since the layer went inactive.
    pub(crate) activated: bool,
}

/// One per-SSRC stream of a published track.
#[derive(Debug)]
pub(crate) struct Layer {
    /// The media SSRC; `None` until a rid layer's first packet binds it.
    ssrc: Option<Ssrc>,
    rtx_ssrc: Option<Ssrc>,
    /// The picture size of the last keyframe that carried one.
    resolution: Option<Resolution>,
    unwrapper: SeqNoUnwrapper,
    cache: RetransmitCache,
    loss: LossTracker,
    keyframe: KeyframeRequestThrottle,
    reception: ReceptionStats,
    /// The publisher's last sender report: NTP time, RTP time and when it arrived.
    last_sender_report: Option<(u64, u32, Instant)>,
    /// When the last packet arrived; `None` before the first and after the layer went
    /// inactive.
    last_packet_at: Option<Instant>,
    /// When the layer last became active (its first packet, or the first after silence).
    active_since: Option<Instant>,
    /// The rate it arrives at, for the allocator.
    rate: IncomingRate,
}

impl Layer {
    /// A layer sent under `ssrc` (with RTX on `rtx_ssrc`), with the cache size of its kind.
    pub(crate) fn new(
        ssrc: Option<Ssrc>,
        rtx_ssrc: Option<Ssrc>,
        kind: MediaKind,
        clock_rate: u32,
        config: &RouterConfig,
    ) -> Self {
        let cache = if kind == MediaKind::Audio {
            RetransmitCache::for_audio()
        } else {
            RetransmitCache::for_video()
        };
        Layer {
            ssrc,
            rtx_ssrc,
            resolution: None,
            unwrapper: SeqNoUnwrapper::new(),
            cache,
            loss: LossTracker::new(config.loss),
            keyframe: KeyframeRequestThrottle::new(config.keyframe_request_interval),
            reception: ReceptionStats::new(clock_rate),
            last_sender_report: None,
            last_packet_at: None,
            active_since: None,
            rate: IncomingRate::default(),
        }
    }

    /// The publisher's media SSRC of this layer (0 while unbound: an unbound layer received
    /// nothing, so nothing is sent about it).
    pub(crate) fn ssrc(&self) -> Ssrc {
        self.ssrc.unwrap_or(Ssrc(0))
    }

    /// The SSRC of the layer's RTX stream, once known.
    pub(crate) fn rtx_ssrc(&self) -> Option<Ssrc> {
        self.rtx_ssrc
    }

    /// Whether the media SSRC is known.
    pub(crate) fn is_bound(&self) -> bool {
        self.ssrc.is_some()
    }

    /// Whether the RTX SSRC is known.
    pub(crate) fn is_rtx_bound(&self) -> bool {
        self.rtx_ssrc.is_some()
    }

    /// Binds a stream of an unbound layer to `ssrc`, once: false when that stream is
    /// already bound (to any SSRC).
    pub(crate) fn bind(&mut self, role: StreamRole, ssrc: Ssrc) -> bool {
        let slot = match role {
            StreamRole::Media => &mut self.ssrc,
            StreamRole::Rtx => &mut self.rtx_ssrc,
        };
        if slot.is_some() {
            return false;
        }
        *slot = Some(ssrc);
        true
    }

    /// The SSRCs the publisher sends this layer with: media, then RTX (those bound).
    pub(crate) fn ssrcs(&self) -> impl Iterator<Item = Ssrc> + use<> {
        self.ssrc.into_iter().chain(self.rtx_ssrc)
    }

    /// The picture size of its last keyframe that carried one.
    pub(crate) fn resolution(&self) -> Option<Resolution> {
        self.resolution
    }

    /// Records a keyframe's picture size; true when it changed.
    pub(crate) fn set_resolution(&mut self, resolution: Resolution) -> bool {
        let changed = self.resolution != Some(resolution);
        self.resolution = Some(resolution);
        changed
    }

    /// Whether a packet arrived within `window` before `now`.
    pub(crate) fn is_active_within(&self, now: Instant, window: Duration) -> bool {
        self.last_packet_at
            .is_some_and(|at| now.saturating_duration_since(at) < window)
    }

    /// Which of this layer's streams `ssrc` names, if any.
    pub(crate) fn role_of(&self, ssrc: Ssrc) -> Option<StreamRole> {
        if Some(ssrc) == self.ssrc {
            Some(StreamRole::Media)
        } else if Some(ssrc) == self.rtx_ssrc {
            Some(StreamRole::Rtx)
        } else {
            None
        }
    }

    /// Records a media packet (an RTX packet after its restore) for reception statistics and
    /// loss detection.
    pub(crate) fn handle_packet(&mut self, now: Instant, seq: u16, timestamp: u32) -> Received {
        let seq = self.unwrapper.unwrap(seq);
        self.reception.handle_packet(now, seq, timestamp);
        let arrival = self.loss.handle_packet(now, seq);
        let activated = self.last_packet_at.is_none();
        if activated {
            self.active_since = Some(now);
        }
        self.last_packet_at = Some(now);
        Received {
            seq,
            arrival,
            activated,
        }
    }

    /// Counts `bytes` arriving at `now_us` (microseconds on the router's clock).
    pub(crate) fn count_bytes(&mut self, now_us: i64, bytes: usize) {
        self.rate.add(now_us, bytes);
    }

    /// The layer's bitrate over the last second, when it has been active for at least
    /// `settled` (a layer that just started is not chosen yet) and is active now.
    /// Whether the layer has been active for at least `settled`.
    pub(crate) fn is_settled(&self, now: Instant, settled: Duration) -> bool {
        self.active_since
            .is_some_and(|since| now.saturating_duration_since(since) >= settled)
            && self.is_active_within(now, crate::simulcast::LAYER_FALLBACK)
    }

    pub(crate) fn settled_bitrate(
        &mut self,
        now: Instant,
        now_us: i64,
        settled: Duration,
    ) -> Option<u64> {
        let since = self.active_since?;
        if now.saturating_duration_since(since) < settled
            || !self.is_active_within(now, crate::simulcast::LAYER_FALLBACK)
        {
            return None;
        }
        self.rate.bitrate(now_us)
    }

    /// Keeps a forwarded packet for retransmissions.
    pub(crate) fn store(&mut self, now: Instant, seq: SeqNo, packet: &[u8]) {
        self.cache.store(now, seq, packet);
    }

    /// The cached packet with this extended sequence number, if still there.
    pub(crate) fn cached(&self, now: Instant, seq: SeqNo) -> Option<&[u8]> {
        self.cache.get(now, seq)
    }

    /// How many packets the retransmission cache holds.
    pub(crate) fn cache_capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// Whether a keyframe request may go to the publisher now (at most one per throttle
    /// interval).
    pub(crate) fn allow_keyframe_request(&mut self, now: Instant) -> bool {
        self.keyframe.handle_request(now)
    }

    /// When the earliest missing packet is due for a NACK.
    pub(crate) fn nack_timeout(&self) -> Option<Instant> {
        self.loss.poll_timeout()
    }

    /// Appends the sequence numbers due for a NACK now to `out`.
    pub(crate) fn poll_nacks(&mut self, now: Instant, out: &mut Vec<SeqNo>) {
        self.loss.poll_nacks(now, out);
    }

    /// Records a sender report of this layer from the publisher.
    pub(crate) fn handle_sender_report(&mut self, now: Instant, ntp_time: u64, rtp_time: u32) {
        self.last_sender_report = Some((ntp_time, rtp_time, now));
        self.reception.handle_sender_report(now, ntp_time);
    }

    /// This layer's RTP time minus `other`'s at the same instant, by their last sender
    /// reports (both in `clock_rate`): what aligns their timestamps at a simulcast switch.
    /// `None` until both have reported.
    pub(crate) fn clock_shift_from(&self, other: &Layer, clock_rate: u32) -> Option<u32> {
        let (ntp, rtp, _) = self.last_sender_report?;
        let (other_ntp, other_rtp, _) = other.last_sender_report?;
        // This layer's RTP time at the other's report: its report moved by the NTP
        // difference (signed, 32.32 fixed point) in clock ticks.
        let ntp_delta = i128::from(other_ntp.wrapping_sub(ntp) as i64);
        // Rounded to the nearest tick.
        let ticks = (ntp_delta * i128::from(clock_rate) + (1 << 31)) >> 32;
        Some(rtp.wrapping_add(ticks as u32).wrapping_sub(other_rtp))
    }

    /// The report block about this layer for a receiver report; starts a new interval.
    pub(crate) fn report_block(&mut self, now: Instant) -> ReportBlock {
        self.reception.report_block(now, self.ssrc())
    }

    /// The publisher's NTP <-> RTP mapping carried forward to `now` (NTP time, RTP time at
    /// `clock_rate`), so each subscriber's sender report pairs the same wall-clock time with
    /// its rewritten timestamp. `None` before the first sender report.
    pub(crate) fn sender_clock_at(&self, now: Instant, clock_rate: u32) -> Option<(u64, u32)> {
        let (ntp, rtp, received_at) = self.last_sender_report?;
        let elapsed = now.saturating_duration_since(received_at);
        let ntp_now = ntp.wrapping_add(duration_to_ntp(elapsed));
        let rtp_now = rtp.wrapping_add(
            u32::try_from(elapsed.as_micros() * u128::from(clock_rate) / 1_000_000)
                .unwrap_or(u32::MAX),
        );
        Some((ntp_now, rtp_now))
    }

    /// Marks the layer inactive when no packet arrived for `timeout`; true when it just
    /// went inactive.
    pub(crate) fn check_inactive(&mut self, now: Instant, timeout: Duration) -> bool {
        match self.last_packet_at {
            Some(at) if now.saturating_duration_since(at) >= timeout => {
                self.last_packet_at = None;
                self.active_since = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(kind: MediaKind) -> Layer {
        Layer::new(
            Some(Ssrc(10)),
            Some(Ssrc(11)),
            kind,
            90_000,
            &RouterConfig::default(),
        )
    }

    #[test]
    fn names_its_media_and_rtx_streams() {
        let layer = layer(MediaKind::Video);
        assert_eq!(layer.role_of(Ssrc(10)), Some(StreamRole::Media));
        assert_eq!(layer.role_of(Ssrc(11)), Some(StreamRole::Rtx));
        assert_eq!(layer.role_of(Ssrc(12)), None);
        assert_eq!(layer.ssrcs().collect::<Vec<_>>(), [Ssrc(10), Ssrc(11)]);
        let no_rtx = Layer::new(
            Some(Ssrc(5)),
            None,
            MediaKind::Audio,
            48_000,
            &Default::default(),
        );
        assert_eq!(no_rtx.ssrcs().collect::<Vec<_>>(), [Ssrc(5)]);
    }

    #[test]
    fn an_unbound_layer_is_bound_once_per_stream() {
        let mut layer = Layer::new(None, None, MediaKind::Video, 90_000, &Default::default());
        assert!(!layer.is_bound());
        assert_eq!(layer.ssrcs().count(), 0);
        assert!(layer.bind(StreamRole::Media, Ssrc(7)));
        assert!(!layer.bind(StreamRole::Media, Ssrc(8)), "never rebound");
        assert!(layer.bind(StreamRole::Rtx, Ssrc(9)));
        assert_eq!(layer.role_of(Ssrc(9)), Some(StreamRole::Rtx));
        assert_eq!(layer.ssrcs().collect::<Vec<_>>(), [Ssrc(7), Ssrc(9)]);
    }

    #[test]
    fn extends_sequence_numbers_and_reports_gaps_and_duplicates() {
        let now = crate::test_time::origin();
        let mut layer = layer(MediaKind::Video);
        let first = layer.handle_packet(now, 0xfffe, 0);
        assert_eq!(first.arrival, PacketArrival::InOrder);
        assert!(first.activated);
        let next = layer.handle_packet(now, 0xffff, 0);
        assert!(!next.activated);
        let wrapped = layer.handle_packet(now, 1, 0);
        assert_eq!(wrapped.seq, SeqNo(0x1_0001));
        assert!(matches!(wrapped.arrival, PacketArrival::Gap(_)));
        assert_eq!(layer.handle_packet(now, 1, 0).arrival, PacketArrival::Old);
    }

    #[test]
    fn caches_what_it_stores_by_extended_number() {
        let now = crate::test_time::origin();
        let mut layer = layer(MediaKind::Audio);
        let received = layer.handle_packet(now, 7, 0);
        layer.store(now, received.seq, &[1, 2, 3]);
        assert_eq!(layer.cached(now, SeqNo(7)), Some(&[1u8, 2, 3][..]));
        assert_eq!(layer.cached(now, SeqNo(8)), None);
        assert!(layer.cache_capacity() > 0);
    }

    #[test]
    fn keyframe_requests_are_throttled_per_layer() {
        let now = crate::test_time::origin();
        let mut layer = layer(MediaKind::Video);
        assert!(layer.allow_keyframe_request(now));
        assert!(!layer.allow_keyframe_request(now + Duration::from_millis(100)));
        assert!(layer.allow_keyframe_request(now + Duration::from_millis(600)));
    }

    #[test]
    fn the_sender_clock_is_carried_forward_from_the_last_report() {
        let now = crate::test_time::origin();
        let mut layer = layer(MediaKind::Video);
        assert_eq!(layer.sender_clock_at(now, 90_000), None);
        layer.handle_packet(now, 1, 0);
        layer.handle_sender_report(now, 5 << 32, 1_000);
        let (ntp, rtp) = layer
            .sender_clock_at(now + Duration::from_millis(500), 90_000)
            .unwrap();
        assert_eq!(ntp, (5 << 32) + (1 << 31));
        assert_eq!(rtp, 1_000 + 45_000);
        // The report block answers that report.
        let block = layer.report_block(now + Duration::from_secs(1));
        assert_eq!(block.ssrc, Ssrc(10));
        assert_eq!(block.last_sr, 5 << 16);
        assert_eq!(block.delay_since_last_sr, 65_536);
    }

    #[test]
    fn two_layers_clocks_are_aligned_by_their_sender_reports() {
        let now = crate::test_time::origin();
        let mut layer = layer(MediaKind::Video);
        layer.handle_sender_report(now, 5 << 32, 1_000);
        // Another layer that reported 250 ms later with its own timestamp base: at the same
        // instant its clock reads 90,000 ahead of this one (22,500 ticks for the 250 ms).
        let mut other = Layer::new(
            Some(Ssrc(2)),
            None,
            MediaKind::Video,
            90_000,
            &RouterConfig::default(),
        );
        assert_eq!(
            other.clock_shift_from(&layer, 90_000),
            None,
            "not reported yet"
        );
        let quarter = (5 << 32) + (1 << 30);
        other.handle_sender_report(now, quarter, 1_000 + 90_000 + 22_500);
        assert_eq!(other.clock_shift_from(&layer, 90_000), Some(90_000));
        assert_eq!(
            layer.clock_shift_from(&other, 90_000),
            Some(90_000u32.wrapping_neg())
        );
    }

    #[test]
    fn goes_inactive_after_the_timeout_and_active_again_on_a_packet() {
        let now = crate::test_time::origin();
        let timeout = Duration::from_secs(2);
        let mut layer = layer(MediaKind::Video);
        assert!(!layer.check_inactive(now, timeout), "never active");
        layer.handle_packet(now, 1, 0);
        assert!(!layer.check_inactive(now + Duration::from_secs(1), timeout));
        assert!(layer.check_inactive(now + timeout, timeout));
        assert!(!layer.check_inactive(now + timeout * 2, timeout), "once");
        assert!(layer.handle_packet(now + timeout * 2, 2, 0).activated);
    }
}
