//! Percentiles, machine description and the Markdown table.

use std::time::Duration;

use crate::Sizes;

/// Percentiles of a sample, in milliseconds.
pub struct Stats {
    pub n: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    pub fn from_millis(mut samples: Vec<f64>) -> Stats {
        samples.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Stats {
            n: samples.len(),
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
            max: *samples.last().unwrap_or(&f64::NAN),
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} ms · p95 {:.1} ms · p99 {:.1} ms (max {:.1}, n = {})",
            self.p50,
            self.p95,
            self.p99,
            self.max,
            thousands(self.n as f64)
        )
    }
}

pub struct Row {
    pub backend: String,
    pub figure: String,
    pub result: String,
    pub target: String,
}

impl Row {
    pub fn new(backend: &str, figure: &str, result: String, target: &str) -> Row {
        Row {
            backend: backend.into(),
            figure: figure.into(),
            result,
            target: target.into(),
        }
    }
}

pub struct Report {
    pub rows: Vec<Row>,
    machine: String,
    sizes: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Report {
    pub fn new(sizes: &Sizes, quick: bool) -> Report {
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mem_gib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
        Report {
            rows: Vec::new(),
            machine: format!("{cores} cores ({cpu}), {mem_gib:.0} GiB, Linux {kernel}"),
            sizes: format!(
                "{} run: ingest {} records; retrieval table {} rows; live {} records at {}/s",
                if quick { "quick" } else { "full" },
                thousands(sizes.ingest as f64),
                thousands(sizes.table_rows as f64),
                thousands(sizes.live_records as f64),
                thousands(sizes.live_rate as f64)
            ),
        }
    }

    pub fn machine_line(&self) -> String {
        format!("machine: {}\n{}", self.machine, self.sizes)
    }

    pub fn render(&self, took: Duration) -> String {
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let mut out = format!(
            "Date: {date}  \nMachine: {}  \n{}; the benchmark took {:.1} min.\n\n| backend | figure | result | target |\n|---|---|---|---|\n",
            self.machine,
            self.sizes,
            took.as_secs_f64() / 60.0
        );
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                row.backend, row.figure, row.result, row.target
            ));
        }
        out
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
