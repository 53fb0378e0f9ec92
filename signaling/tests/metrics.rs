//! `GET /metrics` over real HTTP: the text parses as the Prometheus exposition format, the
//! per-room gauges follow joins and leaves, requests are counted by route and status, and the
//! metrics can be served on their own address.
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use signaling::SignalingConfig;
use support::{Client, http, offer, start};

/// A sample's name and its labels, sorted by name.
type Series = (String, Vec<(String, String)>);

/// Parses the Prometheus text exposition format (version 0.0.4) strictly enough to catch a
/// malformed line: every sample belongs to the family of the last `# TYPE`, label values are
/// quoted with escapes, values are numbers, and no series appears twice.
fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut samples = BTreeMap::new();
    let mut family: Option<(String, String)> = None;
    let mut types = std::collections::HashSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap(), parts.next().expect("a name"));
            assert!(valid_name(name), "bad metric name in {line:?}");
            match keyword {
                "HELP" => assert!(parts.next().is_some(), "no help text: {line:?}"),
                "TYPE" => {
                    let kind = parts.next().expect("a type").to_owned();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"]
                            .contains(&kind.as_str()),
                        "{line:?}"
                    );
                    assert!(types.insert(name.to_owned()), "{name} typed twice");
                    family = Some((name.to_owned(), kind));
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                (name.to_owned(), parse_labels(body, line))
            }
        };
        assert!(valid_name(&name), "bad sample name in {line:?}");
        let (family_name, kind) = family.as_ref().expect("a TYPE before the first sample");
        assert_eq!(&name, family_name, "sample outside its family: {line:?}");
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter without _total: {line:?}");
            assert!(value >= 0.0);
        }
        let mut labels = labels;
        labels.sort();
        assert!(
            samples.insert((name, labels), value).is_none(),
            "duplicate series {line:?}"
        );
    }
    samples
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(body: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line:?}"));
        assert!(valid_name(key), "bad label name in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        labels.push((key.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

async fn scrape(addr: SocketAddr) -> BTreeMap<Series, f64> {
    let response = http(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        response.header("content-type")
    );
    parse(std::str::from_utf8(&response.body).unwrap())
}

fn value(samples: &BTreeMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    samples.get(&(name.to_owned(), labels)).copied()
}

#[tokio::test]
async fn per_room_gauges_follow_joins_and_leaves() {
    // A dropped socket's participant leaves at once, without waiting for a resume.
    let server = start(SignalingConfig {
        resume_grace: Duration::ZERO,
        ..SignalingConfig::default()
    })
    .await;
    let room = "the \"blue\" room";
    let before = scrape(server.addr).await;
    assert_eq!(value(&before, "sluice_rooms", &[]), Some(0.0));
    assert_eq!(
        value(&before, "recording_media_calls", &[]),
        Some(1.0),
        "the media plane's metrics are served"
    );

    let (mut ada, _) = Client::join(server.addr, room, "Ada").await;
    let (mut bob, _) = Client::join(server.addr, room, "Bob").await;
    ada.expect("participant_joined").await;
    ada.send(json!({"type": "publish", "sdp": offer(&["audio", "video"])}))
        .await;
    ada.expect("published").await;
    // The tracks reach the room once the answer is out.
    bob.expect("tracks").await;

    let during = scrape(server.addr).await;
    let labels = [("room", room)];
    assert_eq!(value(&during, "sluice_rooms", &[]), Some(1.0));
    assert_eq!(value(&during, "sluice_participants", &[]), Some(2.0));
    assert_eq!(
        value(&during, "sluice_room_participants", &labels),
        Some(2.0)
    );
    assert_eq!(value(&during, "sluice_room_publishers", &labels), Some(1.0));
    assert_eq!(value(&during, "sluice_room_tracks", &labels), Some(2.0));

    bob.send(json!({"type": "leave"})).await;
    ada.expect("participant_left").await;
    let one_left = scrape(server.addr).await;
    assert_eq!(
        value(&one_left, "sluice_room_participants", &labels),
        Some(1.0)
    );

    drop(ada);
    let mut gone = scrape(server.addr).await;
    for _ in 0..100 {
        if value(&gone, "sluice_room_participants", &labels).is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        gone = scrape(server.addr).await;
    }
    assert_eq!(value(&gone, "sluice_room_participants", &labels), None);
    assert_eq!(value(&gone, "sluice_rooms", &[]), Some(0.0));
}

#[tokio::test]
async fn http_requests_are_counted_by_route_and_status() {
    let server = start(SignalingConfig::default()).await;
    let missing = http(server.addr, "GET", "/no/such/path?x=1", &[], b"").await;
    assert_eq!(missing.status, 404);
    let missing = http(server.addr, "GET", "/wp-login.php", &[], b"").await;
    assert_eq!(missing.status, 404);
    let health = http(server.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200);
    let refused = http(server.addr, "POST", "/whip/room", &[], b"not sdp").await;
    assert_eq!(refused.status, 415);

    let samples = scrape(server.addr).await;
    let requests = |route, status| {
        value(
            &samples,
            "sluice_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("other", "404"), Some(2.0));
    assert_eq!(requests("healthz", "200"), Some(1.0));
    assert_eq!(requests("whip", "415"), Some(1.0));
    // No series carries a raw path.
    assert!(samples.keys().all(|(_, labels)| {
        labels
            .iter()
            .all(|(_, v)| !v.contains('/') && !v.contains("wp-login"))
    }));
}

#[tokio::test]
async fn metrics_can_be_served_on_their_own_address() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics_addr = metrics_listener.local_addr().unwrap();
    let (media, _events) = support::RecordingMedia::new();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(signaling::serve_with_metrics(
        listener,
        Some(metrics_listener),
        media,
        SignalingConfig::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let main = http(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(
        main.status, 404,
        "the main address no longer serves metrics"
    );
    assert!(main.json()["error"].is_string());
    let (_ada, _) = Client::join(addr, "lobby", "Ada").await;

    let samples = scrape(metrics_addr).await;
    assert_eq!(
        value(&samples, "sluice_room_participants", &[("room", "lobby")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "sluice_http_requests_total",
            &[("route", "metrics"), ("status", "404")]
        ),
        Some(1.0),
        "the refused scrape on the main address is counted"
    );
    let other = http(metrics_addr, "GET", "/ws", &[], b"").await;
    assert_eq!(other.status, 404, "only metrics and health on that address");
    let health = http(metrics_addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200);
}

#[test]
fn the_parser_rejects_malformed_text() {
    for bad in [
        "sluice_x 1\n",                                       // no TYPE
        "# TYPE a counter\na 1\n",                            // counter without _total
        "# TYPE a gauge\na{room=\"x} 1\n",                    // unterminated label
        "# TYPE a gauge\nb 1\n",                              // outside its family
        "# TYPE a gauge\na one\n",                            // not a number
        "# TYPE a gauge\na{room=\"x\"} 1\na{room=\"x\"} 2\n", // duplicate
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
    let good = parse("# HELP a_total A.\n# TYPE a_total counter\na_total{r=\"q\\\"\"} 2\n");
    assert_eq!(good.len(), 1);
}
