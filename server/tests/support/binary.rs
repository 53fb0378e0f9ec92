//! The real `sluice` binary on ephemeral loopback ports, for the tests of what a user runs:
//! it is started with a test's flags and environment, its HTTP address is read from the
//! startup line (its first line on stdout), and its later lines are collected on a thread so
//! that a test can wait for one, or have all of them once the process stopped. Stopped with
//! SIGTERM by `stop`, killed if dropped.

// Each test binary that includes this file uses a different part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Sluice {
    pub child: Child,
    /// `host:port` of the HTTP (or HTTPS) service.
    pub address: String,
    /// The startup line.
    pub first_line: String,
    lines: mpsc::Receiver<String>,
}

impl Sluice {
    /// Starts `sluice --http 127.0.0.1:0 --udp 127.0.0.1:0 --workers 1 ARGS` with `env` added
    /// (and no `SLUICE_*` variable of the caller's) and waits for its startup line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Sluice> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SLUICE_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args([
                "--http",
                "127.0.0.1:0",
                "--udp",
                "127.0.0.1:0",
                "--workers",
                "1",
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let first_line = lines
            .recv_timeout(Duration::from_secs(30))
            .context("no startup line within 30 s")?;
        // "... web app on http://127.0.0.1:PORT ; media on ..." (or https://)
        let address = first_line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .with_context(|| format!("no address in {first_line:?}"))?
            .to_owned();
        Ok(Sluice {
            child,
            address,
            first_line,
            lines,
        })
    }

    /// The next line it prints, waiting up to `limit`.
    pub fn next_line(&self, limit: Duration) -> anyhow::Result<String> {
        self.lines
            .recv_timeout(limit)
            .with_context(|| format!("no further line within {limit:?}"))
    }

    /// Sends `signal` (a name as `kill` takes it: `TERM`, `HUP`).
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} failed");
        Ok(())
    }

    /// Stops it with SIGTERM and returns what it printed after the startup line (lines a
    /// test already took with `next_line` are not repeated).
    pub fn stop(mut self) -> anyhow::Result<(std::process::ExitStatus, Vec<String>)> {
        if self.child.try_wait()?.is_none() {
            self.signal("TERM")?;
        }
        self.wait_for_exit()
    }

    /// Waits (up to 10 s) for it to exit, after a signal a test sent; returns its status and
    /// what it printed after the startup line and was not taken yet.
    pub fn wait_for_exit(mut self) -> anyhow::Result<(std::process::ExitStatus, Vec<String>)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("sluice did not exit within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends with the process's stdout.
        let rest = std::iter::from_fn(|| self.lines.recv_timeout(Duration::from_secs(2)).ok());
        Ok((status, rest.collect()))
    }

    /// Every line printed so far and not yet taken.
    pub fn take_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
