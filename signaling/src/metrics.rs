//! What `GET /metrics` serves, rendered in one place with prometheus-client's registry and its
//! Prometheus text encoder (version 0.0.4): the media plane's counters ([`MediaMetric`]s,
//! read at each scrape), signaling's gauges (rooms, participants, open connections, and per
//! room: participants, publishers and tracks, label `room`, as many series as the room limit
//! allows), and HTTP requests counted by route and status code.
//!
//! Counters of signaling's own live in [`Metrics`]: add a field, register it in
//! [`Metrics::new`], and it is served.

use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Whether a [`MediaMetric`] only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Exported with the `_total` suffix, which the name leaves out.
    Counter,
    Gauge,
}

/// One value the media plane reports for `GET /metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMetric {
    /// The metric's name; for a counter without its `_total` suffix
    /// (`sluice_datagrams_received` is served as `sluice_datagrams_received_total`).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    /// One label (`reason="too_large"`); metrics of one name that differ in it are served as
    /// one family, so they must be next to each other.
    pub label: Option<(&'static str, &'static str)>,
    pub value: u64,
}

impl MediaMetric {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Counter,
            label: None,
            value,
        }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Gauge,
            label: None,
            value,
        }
    }
}

/// The fixed route label of an HTTP request: never the raw path, so that the number of
/// series stays bounded whatever clients ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    Ws,
    Whip,
    Whep,
    Api,
    App,
    Metrics,
    Healthz,
    Other,
}

impl Route {
    /// The route of a request path, by its first segment.
    pub fn of(path: &str) -> Self {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        match first {
            "ws" => Self::Ws,
            "whip" => Self::Whip,
            "whep" => Self::Whep,
            "api" => Self::Api,
            "" | "app" | "lib" => Self::App,
            "metrics" => Self::Metrics,
            "healthz" => Self::Healthz,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Whip => "whip",
            Self::Whep => "whep",
            Self::Api => "api",
            Self::App => "app",
            Self::Metrics => "metrics",
            Self::Healthz => "healthz",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

/// Signaling's counters, registered once; gauges are read from the hub at each scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "sluice_http_requests",
            "HTTP requests answered, by route and status code",
            http_requests.clone(),
        );
        Self {
            registry,
            http_requests,
        }
    }

    /// Counts one answered request.
    pub fn count_request(&self, route: Route, status: u16) {
        self.http_requests
            .get_or_create(&RequestLabels {
                route: route.as_str(),
                status,
            })
            .inc();
    }

    /// The whole `/metrics` text: the media plane's metrics, signaling's gauges from `hub`,
    /// and the registered counters.
    pub fn render(&self, media: Vec<MediaMetric>, hub: HubGauges) -> String {
        let mut scrape = Registry::default();
        scrape.register_collector(Box::new(MediaCollector(media)));
        scrape.register_collector(Box::new(hub));
        let mut text = String::new();
        let encoded = prometheus_client::encoding::prometheus_text::encode(&mut text, &scrape)
            .and_then(|()| {
                prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            });
        if encoded.is_err() {
            // Writing to a String does not fail; say so in the output rather than panic.
            let _ = writeln!(text, "# encoding the metrics failed");
        }
        text
    }
}

/// The media plane's metrics of one scrape.
#[derive(Debug)]
struct MediaCollector(Vec<MediaMetric>);

impl Collector for MediaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut rest = self.0.as_slice();
        while let Some(first) = rest.first() {
            let same = rest
                .iter()
                .take_while(|m| m.name == first.name && m.kind == first.kind)
                .count();
            let (family, after) = rest.split_at(same);
            rest = after;
            let metric_type = match first.kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Gauge => MetricType::Gauge,
            };
            let mut metric =
                encoder.encode_descriptor(first.name, first.help, None, metric_type)?;
            for sample in family {
                let labels: Vec<(&str, &str)> = sample.label.into_iter().collect();
                let labelled = metric.encode_family(&labels)?;
                match sample.kind {
                    MetricKind::Counter => ConstCounter::new(sample.value).encode(labelled)?,
                    MetricKind::Gauge => {
                        ConstGauge::new(i64::try_from(sample.value).unwrap_or(i64::MAX))
                            .encode(labelled)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One room's gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomGauges {
    pub room: String,
    pub participants: u64,
    /// Participants with a publish connection (WebSocket publishers and WHIP alike).
    pub publishers: u64,
    /// Tracks published into the room.
    pub tracks: u64,
}

/// Signaling's gauges, read from the hub at a scrape.
#[derive(Debug, Clone, Default)]
pub struct HubGauges {
    pub rooms: u64,
    pub participants: u64,
    pub connections: u64,
    pub per_room: Vec<RoomGauges>,
    /// Participants whose downlink is good, fair and poor now
    /// ([`crate::quality::QualityLevel::ALL`] order).
    pub downlink_quality: [u64; 3],
}

fn gauge(value: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

impl Collector for HubGauges {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            ("sluice_rooms", "Rooms open now.", self.rooms),
            (
                "sluice_participants",
                "Participants in all rooms now.",
                self.participants,
            ),
            (
                "sluice_http_connections",
                "HTTP and WebSocket connections open now.",
                self.connections,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            gauge(value).encode(metric)?;
        }
        let mut metric = encoder.encode_descriptor(
            "sluice_participants_downlink_quality",
            "Participants whose downlink is good, fair or poor now (the video allocated within \
             their bandwidth estimate against what they would take, loss, paused tracks).",
            None,
            MetricType::Gauge,
        )?;
        for (level, count) in crate::quality::QualityLevel::ALL
            .iter()
            .zip(self.downlink_quality)
        {
            let labels = [("quality", level.wire())];
            gauge(count).encode(metric.encode_family(&labels)?)?;
        }
        type Field = fn(&RoomGauges) -> u64;
        let per_room: [(&str, &str, Field); 3] = [
            (
                "sluice_room_participants",
                "Participants in the room now.",
                |r| r.participants,
            ),
            (
                "sluice_room_publishers",
                "Participants publishing into the room now.",
                |r| r.publishers,
            ),
            (
                "sluice_room_tracks",
                "Tracks published into the room now.",
                |r| r.tracks,
            ),
        ];
        for (name, help, field) in per_room {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for room in &self.per_room {
                let labels = [("room", room.room.as_str())];
                gauge(field(room)).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_a_fixed_set() {
        assert_eq!(Route::of("/ws"), Route::Ws);
        assert_eq!(Route::of("/whip/lobby/abc"), Route::Whip);
        assert_eq!(Route::of("/whep/x"), Route::Whep);
        assert_eq!(Route::of("/api/rooms"), Route::Api);
        assert_eq!(Route::of("/"), Route::App);
        assert_eq!(Route::of("/app/room.js"), Route::App);
        assert_eq!(Route::of("/metrics"), Route::Metrics);
        assert_eq!(Route::of("/healthz"), Route::Healthz);
        assert_eq!(Route::of("/wp-admin/login.php"), Route::Other);
    }

    #[test]
    fn media_metrics_keep_their_names_and_families() {
        let metrics = Metrics::new();
        metrics.count_request(Route::Other, 404);
        metrics.count_request(Route::Other, 404);
        let dropped = |reason, value| MediaMetric {
            name: "bare_dropped",
            help: "Drops by reason.",
            kind: MetricKind::Counter,
            label: Some(("reason", reason)),
            value,
        };
        let text = metrics.render(
            vec![
                MediaMetric::gauge("sluice_sessions", "Media sessions open now.", 3),
                MediaMetric::counter("sluice_rtp_received", "RTP packets.", 7),
                dropped("rtcp", 1),
                dropped("too_large", 2),
            ],
            HubGauges {
                rooms: 1,
                participants: 2,
                connections: 4,
                per_room: vec![RoomGauges {
                    room: "a \"quoted\" room".to_owned(),
                    participants: 2,
                    publishers: 1,
                    tracks: 2,
                }],
                downlink_quality: [1, 0, 1],
            },
        );
        for line in [
            "# TYPE sluice_sessions gauge\nsluice_sessions 3\n",
            "# HELP sluice_rtp_received_total RTP packets.\n# TYPE sluice_rtp_received_total counter\nsluice_rtp_received_total 7\n",
            "bare_dropped_total{reason=\"rtcp\"} 1\nbare_dropped_total{reason=\"too_large\"} 2\n",
            "\nsluice_rooms 1\n",
            "\nsluice_http_connections 4\n",
            "sluice_participants_downlink_quality{quality=\"good\"} 1\n",
            "sluice_participants_downlink_quality{quality=\"poor\"} 1\n",
            "sluice_room_participants{room=\"a \\\"quoted\\\" room\"} 2\n",
            "sluice_room_publishers{room=\"a \\\"quoted\\\" room\"} 1\n",
            "sluice_http_requests_total{route=\"other\",status=\"404\"} 2\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert_eq!(text.matches("# TYPE bare_dropped_total").count(), 1);
    }
}
