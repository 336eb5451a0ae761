//! What the floor benchmarks (`floors-local`, `floors-mpi`) share: their rows with a target,
//! their options, the printed table and the end of a run.

use serde_json::{json, Value};

use crate::measure::write_json;

/// What a row must reach against its floor.
#[derive(Clone, Copy)]
pub(crate) enum Goal {
    /// floor time / our time must be at least this.
    ThroughputAtLeast(f64),
    /// our time / floor time must be at most this.
    TimeAtMost(f64),
    /// Checked by the benchmark itself: the target as text and whether it was met.
    Checked(&'static str, bool),
    /// Informational: no target.
    Info,
}

/// One row of a floor benchmark.
pub(crate) struct Row {
    pub name: &'static str,
    pub unit: &'static str,
    pub ours: f64,
    /// The floor in the row's unit, where the row has one.
    pub floor: Option<f64>,
    pub floor_name: &'static str,
    /// The ratio a benchmark computes itself (rows without a floor in their unit).
    ratio: Option<f64>,
    /// How the ratio reads, e.g. `20.9x raw RTT`; empty: the number alone.
    ratio_text: String,
    goal: Goal,
}

impl Row {
    /// An informational row; [`floor`](Row::floor) and [`goal`](Row::goal) make it a checked one.
    /// Informational rows have the floor 1 (so the ratio is the value) and no target.
    pub(crate) fn new(name: &'static str, unit: &'static str, ours: f64) -> Row {
        Row {
            name,
            unit,
            ours,
            floor: Some(1.0),
            floor_name: "-",
            ratio: None,
            ratio_text: String::new(),
            goal: Goal::Info,
        }
    }

    /// Sets the floor, in the row's unit, and what it is.
    pub(crate) fn floor(mut self, value: f64, name: &'static str) -> Row {
        self.floor = Some(value);
        self.floor_name = name;
        self
    }

    /// Removes the floor: the row is a floor itself, or is compared by its own ratio.
    pub(crate) fn no_floor(mut self) -> Row {
        self.floor = None;
        self
    }

    /// Sets a ratio computed by the benchmark, with how it reads.
    pub(crate) fn ratio(mut self, ratio: f64, text: String) -> Row {
        self.ratio = Some(ratio);
        self.ratio_text = text;
        self
    }

    pub(crate) fn goal(mut self, goal: Goal) -> Row {
        self.goal = goal;
        self
    }

    fn ratio_value(&self) -> f64 {
        if let Some(r) = self.ratio {
            return r;
        }
        let floor = self.floor.unwrap_or(f64::NAN);
        match self.goal {
            Goal::ThroughputAtLeast(_) => floor / self.ours,
            _ => self.ours / floor,
        }
    }

    fn target(&self) -> String {
        match self.goal {
            Goal::ThroughputAtLeast(t) => format!(">= {t}x"),
            Goal::TimeAtMost(t) => format!("<= {t}x"),
            Goal::Checked(text, _) => text.into(),
            Goal::Info => "-".into(),
        }
    }

    fn pass(&self) -> Option<bool> {
        match self.goal {
            Goal::ThroughputAtLeast(t) => Some(self.ratio_value() >= t),
            Goal::TimeAtMost(t) => Some(self.ratio_value() <= t),
            Goal::Checked(_, ok) => Some(ok),
            Goal::Info => None,
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "name": self.name,
            "unit": self.unit,
            "ours": self.ours,
            "floor": self.floor,
            "floor_name": self.floor_name,
            "ratio": self.ratio_value(),
            "target": self.target(),
            "pass": self.pass(),
        })
    }
}

/// Prints the rows as a table.
pub(crate) fn print_table(rows: &[Row]) {
    println!(
        "{:<50} {:>14} {:>14} {:<28} {:<30} {:>8} {:>5}",
        "row", "ours", "floor", "floor is", "ratio", "target", "ok"
    );
    for r in rows {
        let ok = match r.pass() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        let floor = r
            .floor
            .map_or(String::new(), |f| format!("{f:.3} {}", r.unit));
        let ratio = if r.ratio_text.is_empty() {
            format!("{:.3}", r.ratio_value())
        } else {
            r.ratio_text.clone()
        };
        println!(
            "{:<50} {:>14} {:>14} {:<28} {:<30} {:>8} {:>5}",
            r.name,
            format!("{:.3} {}", r.ours, r.unit),
            floor,
            r.floor_name,
            ratio,
            r.target(),
            ok
        );
    }
    println!("(throughput rows: ratio = floor time / our time; time rows: ratio = our time / floor time)");
}

/// Parses `--out FILE [--rows A,B]` against the row names of a benchmark.
pub(crate) fn parse(
    args: &[String],
    rows: &[&str],
) -> Result<(String, Option<Vec<String>>), String> {
    let (mut out, mut only) = (None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--out" => out = Some(value("--out")?),
            "--rows" if !rows.is_empty() => {
                let raw = value("--rows")?;
                let names: Vec<String> = raw.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = names.iter().find(|n| !rows.contains(&n.as_str())) {
                    return Err(format!(
                        "invalid --rows {bad:?}: expected some of {}",
                        rows.join(", ")
                    ));
                }
                only = Some(names);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((out.ok_or("--out FILE is required")?, only))
}

/// The running backend's name, for the report.
pub(crate) fn backend_name() -> String {
    unidist::config::Backend::get().map_or_else(|_| "unknown".into(), |b| b.to_string())
}

/// Resident set size of this process in bytes (Linux).
pub(crate) fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Writes the report, shuts the runtime down; returns the exit code.
pub(crate) fn finish(out: &str, doc: &Value) -> i32 {
    let mut code = 0;
    match write_json(out, doc) {
        Ok(()) => println!("wrote {out}"),
        Err(e) => {
            eprintln!("unidist-bench: {e}");
            code = 1;
        }
    }
    if let Err(e) = unidist::shutdown() {
        eprintln!("unidist-bench: shutdown failed: {e}");
        code = 1;
    }
    code
}
