//! SIGTERM shuts `sluice` down gracefully: a joined WebSocket client is closed with code 1001
//! and a reason, and the process exits cleanly.

#[path = "support/binary.rs"]
mod binary;

use std::time::Duration;

use binary::Sluice;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_websockets_with_a_reason_and_exits() -> anyhow::Result<()> {
    let sluice = Sluice::start(&[], &[])?;
    let address = sluice.address.clone();

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

    sluice.signal("TERM")?;

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

    let (status, rest) = tokio::task::spawn_blocking(move || sluice.wait_for_exit()).await??;
    anyhow::ensure!(status.success(), "sluice exited with {status}");
    anyhow::ensure!(
        // A log line: "<timestamp>  INFO sluice: stopped".
        rest.iter().any(|line| line.ends_with("sluice: stopped")),
        "output: {rest:?}"
    );
    Ok(())
}
