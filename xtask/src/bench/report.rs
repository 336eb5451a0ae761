//! The combined result: every run's rows set beside their floors and the best peer, as a
//! markdown table and one JSON document.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::rows::{floor_of, higher_is_better, is_skipped, Floor, WORKLOADS};
use super::systems::{repeats, Floors, Run};
use super::targets::{self, TargetCheck};
use super::Options;
use crate::util::human;

/// How much slower `value` is than `reference` (time-like: below 1 is better).
pub(super) fn slowdown(unit: &str, value: f64, reference: f64) -> f64 {
    if higher_is_better(unit) {
        reference / value
    } else {
        value / reference
    }
}

/// One workload of one system.
#[derive(Clone)]
pub(super) struct Cell {
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub runs: Vec<f64>,
    pub status: String,
    pub extra: Value,
    pub params: Value,
}

/// One system's runs of the workloads.
pub(super) struct System {
    /// The file name stem, e.g. `unidist-rs-pymp`, `unidist-pymp` (Python), `ray-native`.
    pub label: String,
    /// How the table names it, e.g. `rs pymp`, `py-unidist pymp`, `ray`.
    pub display: String,
    pub ours: bool,
    /// A backend launched through MPI (this project's rows only).
    pub mpi: bool,
    pub mode: String,
    pub status: String,
    pub floors: BTreeMap<String, f64>,
    pub versions: Value,
    pub cells: BTreeMap<String, Cell>,
    pub elapsed: Option<Duration>,
}

fn display_name(label: &str, ours: bool) -> String {
    if ours {
        return format!("rs {}", label.trim_start_matches("unidist-rs-"));
    }
    match label {
        "ray-native" => "ray".into(),
        "dask-native" => "dask".into(),
        other => match other.strip_prefix("unidist-") {
            Some(mode) => format!("py-unidist {mode}"),
            None => other.into(),
        },
    }
}

impl System {
    /// Reads a run's report; a missing report or rows it never finished say how the run ended.
    fn load(run: &Run) -> System {
        let doc: Value = std::fs::read_to_string(&run.path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let how = run
            .not_run
            .clone()
            .or_else(|| run.ended.clone())
            .unwrap_or_else(|| "no report was written".into());
        let mut cells = BTreeMap::new();
        for row in doc["rows"].as_array().into_iter().flatten() {
            let Some(w) = row["workload"].as_str() else {
                continue;
            };
            let mut status = row["status"].as_str().unwrap_or("unknown").to_string();
            if status == "pending" {
                status = format!("not run: {how}");
            } else if status == "running" {
                status = if how.contains("time limit") {
                    "timeout".into()
                } else {
                    format!("failed: {how}")
                };
            }
            if let Some(stuck) = row["stuck_in"].as_str() {
                status = format!("{status} in {stuck}");
            }
            let runs: Vec<f64> = row["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect();
            cells.insert(
                w.to_string(),
                Cell {
                    median: row["median"].as_f64(),
                    min: row["min"].as_f64(),
                    max: row["max"].as_f64(),
                    runs,
                    status,
                    extra: row["extra"].clone(),
                    params: row["params"].clone(),
                },
            );
        }
        // Workloads the report does not list at all (a peer run given --only, or no report).
        if doc.is_null() {
            for (w, _) in WORKLOADS {
                cells.insert(
                    w.to_string(),
                    Cell {
                        median: None,
                        min: None,
                        max: None,
                        runs: vec![],
                        status: format!("not run: {how}"),
                        extra: Value::Null,
                        params: Value::Null,
                    },
                );
            }
        }
        let mut status = doc["status"].as_str().unwrap_or("no report").to_string();
        if let Some(e) = &run.ended {
            status = format!("{status}; {e}");
        }
        if let Some(e) = &run.not_run {
            status = format!("not run: {e}");
        }
        let floors = doc["floors"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default();
        System {
            display: display_name(&run.label, run.ours),
            label: run.label.clone(),
            ours: run.ours,
            mpi: run.mpi,
            mode: doc["mode"].as_str().unwrap_or_default().to_string(),
            status,
            floors,
            versions: doc["versions"].clone(),
            cells,
            elapsed: run.elapsed,
        }
    }
}

/// One line of the table.
pub(super) struct Line {
    pub workload: &'static str,
    pub unit: &'static str,
    pub system: usize,
    pub cell: Cell,
    pub floor: Option<Floor>,
    pub vs_floor: Option<f64>,
    /// The best peer on this workload: its display name and median.
    pub best_peer: Option<(String, f64)>,
    pub vs_peer: Option<f64>,
    /// Python unidist on the same backend (MPI: the same implementation and launch when it ran,
    /// else another MPI mode): its display name and median, and our slowdown against it.
    pub same_peer: Option<(String, f64)>,
    pub vs_same: Option<f64>,
}

pub(super) struct Combined {
    pub command: String,
    pub quick: bool,
    pub systems: Vec<System>,
    pub lines: Vec<Line>,
    pub floors: Floors,
    /// The data-plane targets of this project's lines.
    pub targets: Vec<TargetCheck>,
    pub notes: Vec<String>,
    pub wall: Duration,
    pub machine: Value,
}

/// Python unidist on the backend `ours` runs: the same label without `-rs`, else (MPI) the first
/// Python unidist MPI mode that finished the workload.
fn same_mode_peer(systems: &[System], ours: &System, workload: &str) -> Option<(String, f64)> {
    let exact = ours.label.replacen("unidist-rs-", "unidist-", 1);
    let value = |s: &System| Some((s.display.clone(), ok_median(s.cells.get(workload)?)?));
    systems
        .iter()
        .filter(|s| !s.ours && s.label == exact)
        .find_map(value)
        .or_else(|| {
            if !ours.mpi {
                return None;
            }
            systems
                .iter()
                .filter(|s| !s.ours && s.label.starts_with("unidist-mpi-"))
                .find_map(value)
        })
}

fn ok_median(cell: &Cell) -> Option<f64> {
    if cell.status == "ok" {
        cell.median.filter(|m| m.is_finite() && *m > 0.0)
    } else {
        None
    }
}

impl Combined {
    pub(super) fn new(
        options: &Options,
        runs: Vec<Run>,
        floors: Floors,
        notes: Vec<String>,
        wall: Duration,
        load_start: String,
    ) -> Combined {
        let systems: Vec<System> = runs.iter().map(System::load).collect();
        let mut lines = Vec::new();
        for (workload, unit) in WORKLOADS {
            let best_peer = systems
                .iter()
                .filter(|s| !s.ours)
                .filter_map(|s| Some((s.display.clone(), ok_median(s.cells.get(workload)?)?)))
                .reduce(|a, b| {
                    let better = if higher_is_better(unit) {
                        b.1 > a.1
                    } else {
                        b.1 < a.1
                    };
                    if better {
                        b
                    } else {
                        a
                    }
                });
            for (i, s) in systems.iter().enumerate() {
                let Some(cell) = s.cells.get(workload) else {
                    continue;
                };
                let (floor, vs_floor, vs_peer, same_peer, vs_same) = if s.ours {
                    let floor = floor_of(s, workload, cell, &floors);
                    let m = ok_median(cell);
                    let vs_floor = m
                        .zip(floor.as_ref())
                        .map(|(m, f)| slowdown(unit, m, f.value));
                    let vs_peer = m
                        .zip(best_peer.as_ref())
                        .map(|(m, p)| slowdown(unit, m, p.1));
                    let same_peer = same_mode_peer(&systems, s, workload);
                    let vs_same = m
                        .zip(same_peer.as_ref())
                        .map(|(m, p)| slowdown(unit, m, p.1));
                    (floor, vs_floor, vs_peer, same_peer, vs_same)
                } else {
                    (None, None, None, None, None)
                };
                lines.push(Line {
                    workload,
                    unit,
                    system: i,
                    cell: cell.clone(),
                    floor,
                    vs_floor,
                    best_peer: if s.ours { best_peer.clone() } else { None },
                    vs_peer,
                    same_peer,
                    vs_same,
                });
            }
        }
        let targets = targets::check(&systems, &lines);
        Combined {
            command: options.command(),
            quick: options.quick,
            systems,
            lines,
            floors,
            targets,
            notes,
            wall,
            machine: machine(load_start),
        }
    }

    /// True when every run of this project finished every workload it was given (a row
    /// skipped by design, such as `big_object` in quick mode, counts as finished).
    pub(super) fn all_ours_ok(&self) -> bool {
        self.lines
            .iter()
            .filter(|l| self.systems[l.system].ours)
            .all(|l| l.cell.status == "ok" || is_skipped(&l.cell.status))
    }

    /// More than 3x from the floor, for a row whose floor has no target of its own.
    fn over_floor(line: &Line) -> bool {
        !targets::has_floor_target(line.workload) && line.vs_floor.is_some_and(|r| r > 3.0)
    }

    /// The reasons a missed data-plane target gives for `line`.
    fn missed_targets(&self, line: &Line) -> Vec<String> {
        self.targets
            .iter()
            .filter(|t| t.workload == line.workload && t.system == line.system)
            .filter_map(|t| t.why_missed())
            .collect()
    }

    /// Rows of this project slower than the best peer, more than 3x from their floor, or short
    /// of a data-plane target.
    pub(super) fn flagged(&self) -> Vec<&Line> {
        self.lines
            .iter()
            .filter(|l| {
                l.vs_peer.is_some_and(|r| r > 1.0)
                    || Self::over_floor(l)
                    || !self.missed_targets(l).is_empty()
            })
            .collect()
    }

    pub(super) fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "## Benchmark results (`{}`)\n\nMachine: {}. Load average at the start: {}, at the end: {}.\n\
             Every value is the median of {} runs (Rust) or 3 runs (peers) after one warm-up, \
             the 64 MiB and 16 MiB rows (`put_get_large`, `task_sum_large` and the four data \
             rows) of at least 9 runs on every system; the spread is min–max. \
             Ratios are time-like: `x floor` is how many times slower than the floor, `x peer` \
             how many times slower than the best peer on the same row (below 1 is faster).\n\n",
            self.command,
            self.machine["summary"].as_str().unwrap_or("unknown"),
            self.machine["load_start"].as_str().unwrap_or("?"),
            load_average(),
            repeats(self.quick),
        ));
        out.push_str("| workload | system | median | min–max | status | floor | x floor | best peer | x peer | Python unidist, same backend | x same |\n");
        out.push_str("|---|---|---:|---:|---|---|---:|---|---:|---|---:|\n");
        let mut last = "";
        for l in &self.lines {
            let s = &self.systems[l.system];
            let workload = if l.workload == last {
                String::new()
            } else {
                let better = if l.unit == "ratio" || !higher_is_better(l.unit) {
                    "lower is better"
                } else {
                    "higher is better"
                };
                format!("**{}** ({}, {better})", l.workload, unit_text(l.unit))
            };
            last = l.workload;
            let c = &l.cell;
            let median = c
                .median
                .filter(|_| c.status == "ok")
                .map_or("—".into(), fmt_num);
            let spread = match (c.min, c.max, c.status.as_str()) {
                (Some(a), Some(b), "ok") => format!("{}–{}", fmt_num(a), fmt_num(b)),
                _ => String::new(),
            };
            let status = if c.status == "ok" {
                "ok".to_string()
            } else {
                let partial = if c.runs.is_empty() {
                    String::new()
                } else {
                    format!(" ({} runs done)", c.runs.len())
                };
                format!("{}{partial}", shorten(&c.status, 70))
            };
            let name = if s.ours {
                format!("**{}**", s.display)
            } else {
                s.display.clone()
            };
            let floor = l.floor.as_ref().map_or(String::new(), |f| {
                format!("{} ({})", fmt_num(f.value), f.name)
            });
            let ratio = |r: Option<f64>| r.map_or(String::new(), |r| format!("{}x", fmt_num(r)));
            let peer = l
                .best_peer
                .as_ref()
                .map_or(String::new(), |(n, v)| format!("{} ({n})", fmt_num(*v)));
            let same = l
                .same_peer
                .as_ref()
                .map_or(String::new(), |(n, v)| format!("{} ({n})", fmt_num(*v)));
            out.push_str(&format!(
                "| {workload} | {name} | {median} | {spread} | {status} | {floor} | {} | {peer} | {} | {same} | {} |\n",
                ratio(l.vs_floor),
                ratio(l.vs_peer),
                ratio(l.vs_same),
            ));
        }
        targets::markdown(&self.targets, &self.systems, &mut out);
        self.flagged_section(&mut out);
        self.reports_section(&mut out);
        self.systems_section(&mut out);
        if !self.notes.is_empty() {
            out.push_str("\n### Notes\n\n");
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out.push_str(&format!(
            "\nWall time of the whole run: {}.\n",
            human(self.wall)
        ));
        out
    }

    /// Rows slower than a peer or far from their floor, with why.
    fn flagged_section(&self, out: &mut String) {
        let flagged = self.flagged();
        out.push_str(
            "\n### Rows of this project slower than a peer, more than 3x from the floor or short of a target\n\n",
        );
        if flagged.is_empty() {
            out.push_str("None.\n");
        }
        for l in flagged {
            let s = &self.systems[l.system];
            let mut why = Vec::new();
            if let (Some(r), Some((p, _))) = (l.vs_peer, &l.best_peer) {
                if r > 1.0 {
                    why.push(format!("{}x the best peer ({p})", fmt_num(r)));
                }
            }
            if let (Some(r), Some((p, _))) = (l.vs_same, &l.same_peer) {
                if r > 1.0 {
                    why.push(format!(
                        "{}x Python unidist on the same backend ({p})",
                        fmt_num(r)
                    ));
                }
            }
            if let (Some(r), Some(f)) = (l.vs_floor, &l.floor) {
                if Self::over_floor(l) {
                    why.push(format!("{}x its floor ({})", fmt_num(r), f.name));
                }
            }
            for t in self.missed_targets(l) {
                why.push(format!("missed its target: {t}"));
            }
            out.push_str(&format!(
                "- {} on {}: {}\n",
                l.workload,
                s.display,
                why.join("; ")
            ));
        }
    }

    /// The floor benchmarks' own rows.
    fn reports_section(&self, out: &mut String) {
        if !self.floors.reports.is_empty() {
            out.push_str("\n### Backend benchmarks against their own floors (same run)\n\n");
            out.push_str("| benchmark | row | value | floor | ratio | target | ok |\n|---|---|---:|---:|---:|---|---|\n");
            for (name, doc) in &self.floors.reports {
                for row in doc["rows"].as_array().into_iter().flatten() {
                    let value = row["ours"].as_f64().or(row["value"].as_f64());
                    let unit = row["unit"].as_str().unwrap_or("");
                    let ok = row["pass"].as_bool().or(row["ok"].as_bool());
                    out.push_str(&format!(
                        "| {name} | {} | {} {unit} | {} | {} | {} | {} |\n",
                        row["name"].as_str().unwrap_or(""),
                        value.map_or("—".into(), fmt_num),
                        row["floor"]
                            .as_f64()
                            .map_or(String::new(), |f| format!("{} {unit}", fmt_num(f))),
                        row["ratio"].as_f64().map_or(String::new(), fmt_num),
                        row["target"].as_str().unwrap_or(""),
                        match ok {
                            Some(true) => "yes",
                            Some(false) => "NO",
                            None => "",
                        }
                    ));
                }
            }
        }
    }

    /// Every system with its report, status, time and versions.
    fn systems_section(&self, out: &mut String) {
        out.push_str("\n### Systems\n\n| system | report | status | time | versions |\n|---|---|---|---:|---|\n");
        for s in &self.systems {
            let versions = s
                .versions
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "mpi_world_size"))
                        .map(|(k, v)| {
                            format!("{k} {}", v.as_str().map_or(v.to_string(), str::to_string))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "| {} | {}.json | {} | {} | {} |\n",
                s.display,
                s.label,
                shorten(&s.status, 80),
                s.elapsed.map_or(String::new(), human),
                versions
            ));
        }
    }

    pub(super) fn json(&self) -> String {
        let systems: Vec<Value> = self
            .systems
            .iter()
            .map(|s| {
                json!({
                    "label": s.label,
                    "display": s.display,
                    "ours": s.ours,
                    "mode": s.mode,
                    "status": s.status,
                    "floors": s.floors,
                    "versions": s.versions,
                    "elapsed_s": s.elapsed.map(|d| d.as_secs_f64()),
                })
            })
            .collect();
        let rows: Vec<Value> = self
            .lines
            .iter()
            .map(|l| {
                let s = &self.systems[l.system];
                json!({
                    "workload": l.workload,
                    "unit": l.unit,
                    "system": s.label,
                    "display": s.display,
                    "ours": s.ours,
                    "median": l.cell.median,
                    "min": l.cell.min,
                    "max": l.cell.max,
                    "runs": l.cell.runs,
                    "status": l.cell.status,
                    "params": l.cell.params,
                    "extra": l.cell.extra,
                    "floor": l.floor.as_ref().map(|f| json!({"value": f.value, "name": f.name})),
                    "vs_floor": l.vs_floor,
                    "best_peer": l.best_peer.as_ref().map(|(n, v)| json!({"system": n, "median": v})),
                    "vs_best_peer": l.vs_peer,
                    "same_backend_peer": l.same_peer.as_ref().map(|(n, v)| json!({"system": n, "median": v})),
                    "vs_same_backend_peer": l.vs_same,
                })
            })
            .collect();
        let reports: Vec<Value> = self
            .floors
            .reports
            .iter()
            .map(|(n, d)| json!({"benchmark": n, "report": d}))
            .collect();
        let doc = json!({
            "command": self.command,
            "quick": self.quick,
            "wall_s": self.wall.as_secs_f64(),
            "machine": self.machine,
            "load_end": load_average(),
            "floors": self.floors.values,
            "systems": systems,
            "rows": rows,
            "backend_benchmarks": reports,
            "targets": self.targets.iter().map(|t| t.json(&self.systems)).collect::<Vec<_>>(),
            "notes": self.notes,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    }
}

fn unit_text(unit: &str) -> &str {
    match unit {
        "us" => "µs",
        other => other,
    }
}

fn shorten(s: &str, n: usize) -> String {
    let s = s.replace('|', "/");
    if s.chars().count() <= n {
        s
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Three significant digits, with k/M/G above ten thousand.
pub(super) fn fmt_num(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e10 {
        (v / 1e9, "G")
    } else if a >= 1e7 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let ax = x.abs();
    let text = if ax >= 100.0 {
        format!("{x:.0}")
    } else if ax >= 10.0 {
        format!("{x:.1}")
    } else if ax >= 1.0 {
        format!("{x:.2}")
    } else if ax == 0.0 {
        "0".into()
    } else {
        let digits = (2 - ax.log10().floor() as i32).clamp(0, 9) as usize;
        format!("{x:.digits$}")
    };
    format!("{text}{suffix}")
}

/// `/proc/loadavg`'s three averages.
pub(super) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// What the machine is: cores, memory, OS, toolchains, and the load when the run started.
fn machine(load_start: String) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown cpu".to_string(), |(_, m)| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown OS".into());
    let rustc = first_line("rustc", &["--version"]).unwrap_or_default();
    let openmpi = first_line("mpiexec.openmpi", &["--version"]).unwrap_or_default();
    let mpich = Command::new("mpiexec.mpich")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.trim_start().starts_with("Version:"))
                .map(|l| format!("MPICH {}", l.split(':').nth(1).unwrap_or("").trim()))
        })
        .unwrap_or_default();
    let python = first_line("python3", &["--version"]).unwrap_or_default();
    let summary = format!(
        "{cores} cores ({model}), {mem_gib:.0} GiB, {os}, {rustc}, {openmpi}, {mpich}, {python}"
    );
    json!({
        "summary": summary,
        "cpu_model": model,
        "cores": cores,
        "memory_gib": mem_gib,
        "os": os,
        "rustc": rustc,
        "openmpi": openmpi,
        "mpich": mpich,
        "python": python,
        "load_start": load_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_three_digits() {
        assert_eq!(fmt_num(1234567.0), "1235k");
        assert_eq!(fmt_num(12345678.0), "12.3M");
        assert_eq!(fmt_num(42.123), "42.1");
        assert_eq!(fmt_num(0.012345), "0.0123");
        assert_eq!(fmt_num(3.0), "3.00");
    }

    #[test]
    fn slowdown_is_time_like() {
        assert_eq!(slowdown("tasks/s", 50.0, 100.0), 2.0);
        assert_eq!(slowdown("us", 50.0, 100.0), 0.5);
        assert!(higher_is_better("GB/s"));
        assert!(!higher_is_better("ratio"));
    }

    #[test]
    fn names_tell_ours_from_peers() {
        assert_eq!(display_name("unidist-rs-pymp", true), "rs pymp");
        assert_eq!(
            display_name("unidist-mpi-mpich-spmd", false),
            "py-unidist mpi-mpich-spmd"
        );
        assert_eq!(display_name("ray-native", false), "ray");
    }
}
