//! What a load run measures and how it is reported: the latency histogram (time inside the
//! server), CPU time of a process read from /proc, and one result per scenario step as a
//! table row and a JSON object.

use std::time::Duration;

/// Values below this many microseconds get a bucket each.
const LINEAR_US: u64 = 1024;
/// Sub-buckets per power of two above [`LINEAR_US`] (about 1.5% resolution).
const SUB_BUCKETS: u64 = 64;
/// Powers of two covered above [`LINEAR_US`]: up to about 70 minutes.
const OCTAVES: u64 = 22;

/// A log-linear histogram of latencies in microseconds: exact below 1 ms, within about 1.5%
/// above. Recording is a few arithmetic operations and no allocation.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
    count: u64,
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: vec![0; (LINEAR_US + OCTAVES * SUB_BUCKETS) as usize],
            count: 0,
            max_us: 0,
        }
    }
}

impl LatencyHistogram {
    fn index(us: u64) -> usize {
        if us < LINEAR_US {
            return us as usize;
        }
        let octave = u64::from(63 - us.leading_zeros()) - 10;
        let sub = (us >> (octave + 10 - 6)) & (SUB_BUCKETS - 1);
        (LINEAR_US + octave.min(OCTAVES - 1) * SUB_BUCKETS + sub) as usize
    }

    fn lower_bound(index: usize) -> u64 {
        let index = index as u64;
        if index < LINEAR_US {
            return index;
        }
        let octave = (index - LINEAR_US) / SUB_BUCKETS;
        let sub = (index - LINEAR_US) % SUB_BUCKETS;
        (1 << (octave + 10)) + (sub << (octave + 4))
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        if let Some(bucket) = self.buckets.get_mut(Self::index(us)) {
            *bucket += 1;
        }
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The latency below which a fraction `q` of the samples lie, in microseconds.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Self::lower_bound(index).min(self.max_us));
            }
        }
        Some(self.max_us)
    }

    /// The largest latency recorded, in microseconds.
    pub fn max_us(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max_us)
    }
}

/// CPU time (user + system, all threads) a process has used so far, from
/// `/proc/<pid>/task/*/schedstat` (nanoseconds), or `/proc/<pid>/stat` (clock ticks) where
/// schedstat is missing.
pub fn process_cpu_time(pid: u32) -> std::io::Result<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))?;
    let mut total_ns: u64 = 0;
    let mut found = false;
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            total_ns += ns;
            found = true;
        }
    }
    if found {
        return Ok(Duration::from_nanos(total_ns));
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; `after` starts at field 3.
    let total_ticks = ticks(11) + ticks(12);
    Ok(Duration::from_nanos(total_ticks * 10_000_000))
}

/// The result of one scenario step, measured over its window.
#[derive(Debug, Clone, Default)]
pub struct StepResult {
    /// The server's label (`sluice`, `bare`, `janus`...).
    pub target: String,
    /// `room`, `live` or `audio`.
    pub scenario: String,
    /// The step's size as text (`size=4`, `subscribers=20`, `speakers=10 listeners=300`).
    pub size: String,
    /// Publish sessions.
    pub publishers: usize,
    /// Subscribe sessions.
    pub subscriptions: usize,
    /// Sessions that completed ICE and DTLS before the window.
    pub connected: usize,
    /// The window's length.
    pub window: Duration,
    /// Packets the publishers sent in the window.
    pub sent: u64,
    /// Packets the sent ones should have become (each times its subscriptions).
    pub expected: u64,
    /// Packets received by subscribe sessions in the window.
    pub delivered: u64,
    /// Packets missing: the larger of (expected - delivered) and the sequence gaps.
    pub lost: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Subscribe sessions that had received nothing by the window's end.
    pub silent_subscriptions: usize,
    /// Subscribe sessions that had not received every kind they subscribed to.
    pub incomplete_subscriptions: usize,
    /// The server's CPU time in the window, when its pid is known.
    pub server_cpu: Option<Duration>,
    /// The load generator's own CPU time in the window.
    pub load_cpu: Duration,
    /// Sampled time inside the server.
    pub latency: LatencyHistogram,
}

impl StepResult {
    /// Lost packets as a fraction of expected ones.
    pub fn loss_ratio(&self) -> f64 {
        if self.expected == 0 {
            return if self.delivered == 0 { 1.0 } else { 0.0 };
        }
        self.lost as f64 / self.expected as f64
    }

    /// Forwarded packets per server CPU-second.
    pub fn packets_per_cpu_second(&self) -> Option<f64> {
        let cpu = self.server_cpu?.as_secs_f64();
        (cpu > 0.0).then(|| self.delivered as f64 / cpu)
    }

    /// Server CPU per forwarded packet, in microseconds.
    pub fn server_us_per_packet(&self) -> Option<f64> {
        let cpu = self.server_cpu?.as_secs_f64();
        (self.delivered > 0).then(|| cpu * 1e6 / self.delivered as f64)
    }

    /// The server's CPU use as a fraction of one core over the window.
    pub fn server_core_share(&self) -> Option<f64> {
        Some(self.server_cpu?.as_secs_f64() / self.window.as_secs_f64().max(1e-9))
    }

    /// The load generator's CPU per packet it handled (sent or received), in microseconds.
    pub fn load_us_per_packet(&self) -> f64 {
        let packets = (self.sent + self.delivered).max(1);
        self.load_cpu.as_secs_f64() * 1e6 / packets as f64
    }

    /// The table's header line.
    pub fn table_header() -> String {
        format!(
            "{:<8} {:<6} {:<24} {:>6} {:>10} {:>10} {:>7} {:>6} {:>12} {:>9} {:>7} {:>7} {:>8} {:>8}",
            "target",
            "scen",
            "size",
            "sess",
            "pkts/s",
            "delivered",
            "lost%",
            "dups",
            "pkts/cpu-s",
            "us/pkt",
            "core%",
            "p50us",
            "p99us",
            "gen-us/p"
        )
    }

    /// One table line.
    pub fn table_row(&self) -> String {
        let opt =
            |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
        let quantile = |q| {
            self.latency
                .quantile_us(q)
                .map_or("-".to_owned(), |v| v.to_string())
        };
        format!(
            "{:<8} {:<6} {:<24} {:>6} {:>10.0} {:>10} {:>7.3} {:>6} {:>12} {:>9} {:>7} {:>7} {:>8} {:>8.2}",
            self.target,
            self.scenario,
            self.size,
            self.publishers + self.subscriptions,
            self.delivered as f64 / self.window.as_secs_f64().max(1e-9),
            self.delivered,
            self.loss_ratio() * 100.0,
            self.duplicates,
            opt(self.packets_per_cpu_second(), 0),
            opt(self.server_us_per_packet(), 2),
            opt(self.server_core_share().map(|s| s * 100.0), 1),
            quantile(0.5),
            quantile(0.99),
            self.load_us_per_packet(),
        )
    }

    /// The result as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "target": self.target,
            "scenario": self.scenario,
            "size": self.size,
            "publishers": self.publishers,
            "subscriptions": self.subscriptions,
            "connected": self.connected,
            "window_s": self.window.as_secs_f64(),
            "sent": self.sent,
            "expected": self.expected,
            "delivered": self.delivered,
            "delivered_per_s": self.delivered as f64 / self.window.as_secs_f64().max(1e-9),
            "lost": self.lost,
            "loss_ratio": self.loss_ratio(),
            "duplicates": self.duplicates,
            "silent_subscriptions": self.silent_subscriptions,
            "incomplete_subscriptions": self.incomplete_subscriptions,
            "server_cpu_s": self.server_cpu.map(|c| c.as_secs_f64()),
            "server_core_share": self.server_core_share(),
            "server_us_per_packet": self.server_us_per_packet(),
            "packets_per_cpu_second": self.packets_per_cpu_second(),
            "latency_samples": self.latency.count(),
            "latency_p50_us": self.latency.quantile_us(0.5),
            "latency_p99_us": self.latency.quantile_us(0.99),
            "latency_max_us": self.latency.max_us(),
            "load_cpu_s": self.load_cpu.as_secs_f64(),
            "load_us_per_packet": self.load_us_per_packet(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_exact_below_a_millisecond_and_close_above() {
        let mut h = LatencyHistogram::default();
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.quantile_us(0.5), Some(50));
        assert_eq!(h.quantile_us(0.99), Some(99));
        h.record(Duration::from_micros(123_456));
        let top = h.quantile_us(1.0).unwrap();
        assert!((121_000..=123_456).contains(&top), "{top}");
        assert_eq!(h.max_us(), Some(123_456));
    }

    #[test]
    fn reads_its_own_cpu_time() {
        assert!(process_cpu_time(std::process::id()).is_ok());
    }
}
