//! Smoke test of the load generator: Sluice runs in this process (media plane and signaling
//! on loopback), and a room of three goes through the real engine for about two seconds:
//! every subscribe session must receive audio and video from its publisher, and sampled
//! latencies must have been measured. No timing is asserted.

use std::sync::Arc;
use std::time::Duration;

use benches::load::scenario::{Layout, RunOptions, run_step};
use benches::load::whip::WhipTarget;
use server::{MediaConfig, Sfu};

/// Starts Sluice on ephemeral loopback ports; returns its HTTP URL and a handle that stops
/// it when dropped.
fn start_sluice() -> anyhow::Result<(
    String,
    tokio::runtime::Runtime,
    tokio::sync::oneshot::Sender<()>,
)> {
    let sfu = Arc::new(Sfu::start(MediaConfig::loopback())?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        let _ = signaling::serve(
            listener,
            sfu,
            signaling::SignalingConfig::default(),
            shutdown,
        )
        .await;
    });
    Ok((url, runtime, stop))
}

#[test]
fn a_room_of_three_delivers_every_publisher_to_every_subscriber() -> anyhow::Result<()> {
    let (url, runtime, stop) = start_sluice()?;
    let mut target = WhipTarget::connect(&url, "sluice")?;
    let options = RunOptions {
        window: Duration::from_secs(2),
        warmup: Duration::from_millis(500),
        latency_sample: 4,
        ..RunOptions::default()
    };
    let result = run_step(&mut target, &Layout::room(3), &options)?;
    println!(
        "{}\n{}",
        benches::load::report::StepResult::table_header(),
        result.table_row()
    );

    assert_eq!(result.connected, 3 + 3 * 2, "every session connected");
    assert_eq!(
        result.silent_subscriptions, 0,
        "every subscription received media"
    );
    assert_eq!(
        result.incomplete_subscriptions, 0,
        "every subscription received its publisher's audio and video"
    );
    assert!(result.sent > 0 && result.delivered > 0);
    assert!(
        result.latency.count() > 0,
        "sampled latencies were measured"
    );
    assert!(result.latency.quantile_us(0.99).is_some());

    let _ = stop.send(());
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}
