//! The harness shared by the interop tests: webrtc-rs peers confined to loopback, the known
//! media a publisher sends and the checks a receiver makes on it, a lossy UDP proxy, and the SDP
//! edits the tests need. Nothing here knows the SFU, so the harness can be tested on its own by
//! connecting two webrtc-rs peers to each other.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

// `binary.rs` beside these (the real `sluice` binary) is included by the tests that start it
// with `#[path]`: it needs `CARGO_BIN_EXE_sluice`, which examples that use this module lack.
pub mod media;
pub mod peer;
pub mod proxy;
pub mod room;
pub mod sdp;

use std::future::Future;
use std::time::Duration;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held for the whole of a test that runs peers in real time, so that the tests of a binary
/// take turns instead of sharing a loaded machine's cores with each other (no test asserts
/// timings, but paced media and retransmission timers behave more like a real network this
/// way). A failed test releases it too: the lock does not poison.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// Awaits `future` for at most `limit`, naming `what` in the error so that a stuck run says
/// where it stopped instead of hanging.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {limit:?} waiting for {what}"))
}

/// Polls `condition` every 50 ms until it holds or `limit` passes.
pub async fn wait_until(
    limit: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    within(limit, what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}
