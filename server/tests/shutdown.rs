//! SIGTERM shuts `sluice` down gracefully: a joined WebSocket client is closed with code 1001
//! and a reason, and the process exits cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_websockets_with_a_reason_and_exits() -> anyhow::Result<()> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "--http",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
            "--workers",
            "1",
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().ok_or_else(|| anyhow::anyhow!("no output"))??;
    // "sluice: web app on http://127.0.0.1:PORT ; media on ..."
    let address = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("no address in {first:?}"))?
        .to_owned();

    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}/ws")).await?;
    socket
        .send(Message::text(
            r#"{"type":"join","room":"bye","name":"Ada"}"#,
        ))
        .await?;
    let joined = tokio::time::timeout(Duration::from_secs(10), socket.next()).await?;
    let Some(Ok(Message::Text(joined))) = joined else {
        anyhow::bail!("no joined message: {joined:?}");
    };
    anyhow::ensure!(joined.contains(r#""type":"joined""#), "{joined}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill failed");

    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = socket.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame;
            }
        }
        None
    })
    .await?;
    let frame =
        close.ok_or_else(|| anyhow::anyhow!("the WebSocket ended without a close frame"))?;
    anyhow::ensure!(frame.code == CloseCode::Away, "close code {:?}", frame.code);
    anyhow::ensure!(
        frame.reason == "server shutting down",
        "reason {:?}",
        frame.reason
    );

    let exited = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok::<_, std::io::Error>(Some(status));
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await??;
    let status = exited.ok_or_else(|| anyhow::anyhow!("sluice did not exit after SIGTERM"))?;
    anyhow::ensure!(status.success(), "sluice exited with {status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    anyhow::ensure!(
        // A log line: "<timestamp>  INFO sluice: stopped".
        rest.iter().any(|line| line.ends_with("sluice: stopped")),
        "output: {rest:?}"
    );
    Ok(())
}
