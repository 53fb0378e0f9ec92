//! Log lines through `tracing`: the level filter comes from `SLUICE_LOG` (or `RUST_LOG`),
//! `info` by default; lines go to standard output as text or as one JSON object a line.
//!
//! What is logged at `info`, with its fields, is listed in docs/operations.md: one line per
//! join, leave, publish, subscribe, session end (with its reason) and refused request. Nothing
//! is logged per packet.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, the event's
    /// fields, `span` (the innermost span: `ws` with `room` and `participant`, or `http`
    /// with `client`) and `spans` (all of them, outermost first).
    Json,
}

/// The variable read before `RUST_LOG`.
pub const LOG_VARIABLE: &str = "SLUICE_LOG";

/// The level filter: `SLUICE_LOG`, else `RUST_LOG`, else `info`. A filter that does not parse
/// falls back to `info`, and the returned text says why so that it can be logged.
pub fn filter() -> (EnvFilter, Option<String>) {
    let text = std::env::var(LOG_VARIABLE)
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    match EnvFilter::try_new(&text) {
        Ok(filter) => (filter, None),
        Err(error) => (
            EnvFilter::new("info"),
            Some(format!("ignoring the log filter {text:?}: {error}")),
        ),
    }
}

/// Installs the global subscriber; once per process (a second call changes nothing).
pub fn init(format: LogFormat) {
    let (filter, problem) = filter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    if let (Ok(()), Some(problem)) = (installed, problem) {
        tracing::warn!("{problem}");
    }
}
