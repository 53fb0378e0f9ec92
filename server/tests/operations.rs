//! The `sluice` binary as an operator runs it: JSON log lines for a WHIP publisher that
//! connects and is deleted, `/metrics` on its own address, and the configuration layers
//! (flag over environment over file over default) as `--print-config` shows them.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use binary::Sluice;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use support::media::Kind;
use support::peer::Peer;
use tokio_tungstenite::tungstenite::Message;

/// A running `sluice` (with `SLUICE_LOG=info`) and every line it printed so far.
struct Server {
    sluice: Sluice,
    /// The startup line, until it is read like the others.
    first: Option<String>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Server {
    fn start(args: &[&str]) -> anyhow::Result<Server> {
        let sluice = Sluice::start(args, &[("SLUICE_LOG", "info")])?;
        Ok(Server {
            first: Some(sluice.first_line.clone()),
            sluice,
            seen: Vec::new(),
        })
    }

    /// The next line it prints, the startup line first.
    fn next_line(&mut self, wait: Duration) -> anyhow::Result<String> {
        match self.first.take() {
            Some(first) => Ok(first),
            None => self.sluice.next_line(wait),
        }
    }

    /// The next JSON log line whose message is `message` and whose fields match `fields`
    /// (each a field name and its expected JSON value), waiting up to `limit`.
    fn expect_line(
        &mut self,
        message: &str,
        fields: &[(&str, Value)],
        limit: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = match self.next_line(wait) {
                Ok(line) => line,
                Err(_) => bail!(
                    "no {message:?} line with {fields:?} within {limit:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            };
            self.seen.push(line.clone());
            let event: Value = serde_json::from_str(&line)
                .with_context(|| format!("a log line that is not JSON: {line}"))?;
            ensure!(
                event["timestamp"].is_string() && event["level"].is_string(),
                "{line}"
            );
            if event["message"] == message
                && fields.iter().all(|(name, value)| &event[*name] == value)
            {
                return Ok(event);
            }
        }
    }
}

/// Response headers, names in lower case.
type Headers = Vec<(String, String)>;

/// One HTTP/1.1 request on a fresh connection: status, headers (lower-case names), body.
fn http(
    server: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, Headers, String)> {
    let mut stream = TcpStream::connect(server)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no head end")?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|status| status.parse().ok())
        .context("no status")?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers, body.to_owned()))
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn address(event: &Value, field: &str) -> anyhow::Result<SocketAddr> {
    let text = event[field]
        .as_str()
        .with_context(|| format!("no {field} in {event}"))?;
    let text = text.strip_prefix("http://").unwrap_or(text);
    let text = text.strip_suffix("/metrics").unwrap_or(text);
    Ok(text.parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_follow_a_whip_publisher_and_metrics_have_their_own_address() -> anyhow::Result<()>
{
    let _turn = support::one_at_a_time().await;
    let mut server = Server::start(&["--log-format", "json", "--metrics-http", "127.0.0.1:0"])?;
    let started = server.expect_line_containing("web app on http://")?;
    let http_addr = address(&started, "http")?;
    let metrics_addr = address(&started, "metrics")?;
    ensure!(http_addr != metrics_addr, "{started}");

    // A refused request: logged with its route, status and reason, never the raw path.
    let (status, _, _) = http(http_addr, "GET", "/no-such-page", "")?;
    ensure!(status == 404);
    let refused = server.expect_line(
        "request refused",
        &[("route", "other".into()), ("status", 404.into())],
        Duration::from_secs(10),
    )?;
    ensure!(refused["reason"] == "not found", "{refused}");

    // A WHIP publisher that connects, then DELETE.
    let publisher = Peer::new("publisher").await?;
    let _audio = publisher.add_send_track(Kind::Audio, 0x0405_0001).await?;
    let _video = publisher.add_send_track(Kind::Video, 0x0405_0002).await?;
    let offer = publisher.complete_offer().await?;
    let (status, headers, answer) = http(http_addr, "POST", "/whip/log%20room?name=Cam", &offer)?;
    ensure!(status == 201, "WHIP answered {status}: {answer}");
    let location = header(&headers, "location")
        .context("no Location")?
        .to_owned();
    let participant = header(&headers, "x-sluice-participant")
        .context("no participant id")?
        .to_owned();
    publisher.accept_answer(&answer).await?;
    publisher.connected(Duration::from_secs(30)).await?;

    let room: Value = "log room".into();
    let join = server.expect_line(
        "join",
        &[
            ("room", room.clone()),
            ("participant", participant.clone().into()),
        ],
        Duration::from_secs(10),
    )?;
    ensure!(join["name"] == "Cam", "{join}");
    let publish = server.expect_line(
        "publish",
        &[("room", room.clone()), ("via", "whip".into())],
        Duration::from_secs(10),
    )?;
    ensure!(publish["participant"] == participant.as_str(), "{publish}");
    ensure!(publish["tracks"] == 2, "{publish}");
    let session = publish["session"].clone();
    ensure!(session.is_u64(), "{publish}");
    let connected = server.expect_line(
        "session connected",
        &[("session", session.clone()), ("room", room.clone())],
        Duration::from_secs(10),
    )?;
    ensure!(connected["role"] == "publisher", "{connected}");

    // Metrics: on their own address, with the media plane's counters under their names.
    let (status, _, _) = http(http_addr, "GET", "/metrics", "")?;
    ensure!(status == 404, "the main address does not serve /metrics");
    let (status, headers, text) = http(metrics_addr, "GET", "/metrics", "")?;
    ensure!(status == 200, "{status}");
    ensure!(
        header(&headers, "content-type").is_some_and(|t| t.starts_with("text/plain")),
        "{headers:?}"
    );
    for expected in [
        "# TYPE sluice_datagrams_received_total counter\n",
        "# TYPE sluice_sessions gauge\n",
        "\nsluice_dtls_connected_total 1\n",
        "sluice_room_publishers{room=\"log room\"} 1\n",
        "sluice_room_tracks{room=\"log room\"} 2\n",
        "sluice_http_requests_total{route=\"whip\",status=\"201\"} 1\n",
        "sluice_http_requests_total{route=\"other\",status=\"404\"} 1\n",
        "sluice_http_requests_total{route=\"metrics\",status=\"404\"} 1\n",
    ] {
        ensure!(text.contains(expected), "{expected:?} missing from\n{text}");
    }

    let (status, _, _) = http(http_addr, "DELETE", &location, "")?;
    ensure!(status == 200, "DELETE answered {status}");
    let leave = server.expect_line(
        "leave",
        &[("room", room.clone()), ("participant", participant.into())],
        Duration::from_secs(10),
    )?;
    ensure!(leave["reason"] == "whip resource deleted", "{leave}");
    let ended = server.expect_line(
        "session end",
        &[("session", session), ("room", room)],
        Duration::from_secs(10),
    )?;
    ensure!(ended["reason"] == "closed", "{ended}");
    ensure!(ended["role"] == "publisher", "{ended}");
    ensure!(ended["connected"] == true, "{ended}");
    ensure!(ended["level"] == "INFO", "{ended}");
    publisher.close().await;

    // A room-protocol participant: its lines carry the room and participant in the `ws`
    // span, inside the `http` span of its connection.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{http_addr}/ws")).await?;
    socket
        .send(Message::text(
            r#"{"type":"join","room":"ws room","name":"Ada"}"#,
        ))
        .await?;
    let joined = socket.next().await.context("no joined message")??;
    ensure!(joined.to_text()?.contains(r#""type":"joined""#), "{joined}");
    socket.send(Message::text(r#"{"type":"mute"}"#)).await?;
    let join = server.expect_line(
        "join",
        &[("room", "ws room".into()), ("name", "Ada".into())],
        Duration::from_secs(10),
    )?;
    ensure!(join["span"]["name"] == "ws", "{join}");
    ensure!(join["span"]["room"] == "ws room", "{join}");
    ensure!(join["span"]["participant"] == join["participant"], "{join}");
    ensure!(join["spans"][0]["name"] == "http", "{join}");
    ensure!(join["spans"][0]["client"].is_string(), "{join}");
    let refused = server.expect_line("request refused", &[], Duration::from_secs(10))?;
    ensure!(refused["code"] == "bad_mute", "{refused}");
    ensure!(refused["reason"].is_string(), "{refused}");
    ensure!(refused["span"]["room"] == "ws room", "{refused}");
    // Closed without `leave`: the participant is kept for a resume, and that is logged.
    socket.close(None).await?;
    let kept = server.expect_line(
        "connection dropped; kept for a resume",
        &[("room", "ws room".into())],
        Duration::from_secs(10),
    )?;
    ensure!(kept["reason"] == "connection closed", "{kept}");
    ensure!(kept["grace_s"] == 20.0, "{kept}");
    Ok(())
}

impl Server {
    /// The next JSON line whose message contains `text`.
    fn expect_line_containing(&mut self, text: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = self
                .next_line(wait)
                .with_context(|| format!("no line containing {text:?}: {:?}", self.seen))?;
            self.seen.push(line.clone());
            let event: Value = serde_json::from_str(&line)
                .with_context(|| format!("a log line that is not JSON: {line}"))?;
            if event["message"].as_str().is_some_and(|m| m.contains(text)) {
                return Ok(event);
            }
        }
    }
}

/// `sluice --print-config` with the given flags, environment and file text.
fn print_config(args: &[&str], env: &[(&str, &str)], file: Option<&str>) -> anyhow::Result<String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SLUICE_") {
            command.env_remove(name);
        }
    }
    let dir = std::env::temp_dir().join(format!("sluice-operations-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    if let Some(text) = file {
        let path = dir.join(format!("{}.toml", args.len() + env.len()));
        std::fs::write(&path, text)?;
        command.arg("--config").arg(&path);
    }
    let output = command
        .args(args)
        .arg("--print-config")
        .envs(env.iter().copied())
        .output()?;
    ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[test]
fn each_layer_overrides_the_one_below() -> anyhow::Result<()> {
    let file = "workers = 2\nudp = \"127.0.0.1:4001\"\npublic_ip = \"203.0.113.7\"\n\
                log-format = \"json\"\n[keys]\nAPIops = \"do-not-print\"\n";
    let env = [("SLUICE_WORKERS", "3"), ("SLUICE_UDP", "127.0.0.1:4002")];
    let printed = print_config(&["--workers", "4"], &env, Some(file))?;
    for expected in [
        "workers = 4 # flag",                     // flag over environment and file
        "udp = \"127.0.0.1:4002\" # environment", // environment over file
        "public-ip = [\"203.0.113.7\"] # file",   // file over default
        "log-format = \"json\" # file",
        "http = \"0.0.0.0:8080\" # default",
        "\"APIops\" = \"<redacted>\"",
    ] {
        ensure!(
            printed.contains(expected),
            "{expected:?} missing from\n{printed}"
        );
    }
    ensure!(!printed.contains("do-not-print"), "{printed}");

    // The printed configuration is itself a config file that gives the same values.
    let again = print_config(&[], &[], Some(&printed))?;
    for expected in [
        "workers = 4 # file",
        "udp = \"127.0.0.1:4002\" # file",
        "public-ip = [\"203.0.113.7\"] # file",
    ] {
        ensure!(
            again.contains(expected),
            "{expected:?} missing from\n{again}"
        );
    }

    // Without a file, the environment over the default.
    let printed = print_config(&[], &[("SLUICE_WORKERS", "5")], None)?;
    ensure!(printed.contains("workers = 5 # environment"), "{printed}");
    ensure!(printed.contains("# public-ip is not set"), "{printed}");
    Ok(())
}

#[test]
fn a_bad_config_file_stops_the_binary_with_the_key_and_the_file() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("sluice-operations-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("sluice.toml");
    for (text, expected) in [
        ("wrokers = 2\n", "unknown key `wrokers`"),
        ("udp = \"nowhere\"\n", "key `udp`"),
    ] {
        std::fs::write(&path, text)?;
        let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .env("SLUICE_CONFIG", &path)
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.code() == Some(2),
            "{:?} {stderr}",
            output.status
        );
        ensure!(stderr.contains(expected), "{stderr}");
        ensure!(stderr.contains("sluice.toml"), "{stderr}");
    }
    Ok(())
}
