//! Delay-based bandwidth estimation, sans-IO: packets grouped by send time
//! ([`InterArrival`]), the trend of their queuing delay and the overuse it signals
//! ([`Trendline`]), and AIMD control of the estimate ([`AimdRateControl`]) against the rate
//! measured arriving ([`IncomingRate`]). The structure is libwebrtc's GoogCC.
//!
//! [`ReceiveSideEstimator`] puts them together on the receiving end for a publisher that
//! negotiated REMB and abs-send-time but not transport-wide feedback: Sluice measures what
//! arrives and tells the publisher the estimate with REMB. [`SendSideEstimator`] puts them
//! together on the sending end, for each subscriber session that sends transport-wide
//! feedback: the estimate of its downlink, which chooses the layers it gets.

mod incoming_rate;
mod inter_arrival;
mod rate_control;
mod receive_side;
mod send_side;
mod trendline;

pub use incoming_rate::IncomingRate;
pub use inter_arrival::{GroupDelta, InterArrival};
pub use rate_control::AimdRateControl;
pub use receive_side::ReceiveSideEstimator;
pub use send_side::SendSideEstimator;
pub use trendline::{BandwidthUsage, Trendline};

/// Microseconds of `elapsed`, without the 128-bit division of `Duration::as_micros` (this
/// runs for every copy sent).
pub(crate) fn micros(elapsed: std::time::Duration) -> i64 {
    let seconds = i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX / 2_000_000);
    seconds * 1_000_000 + i64::from(elapsed.subsec_micros())
}
