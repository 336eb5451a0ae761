//! The group under Ray's microbenchmark names: `unidist-bench ray-names` on every system of this
//! project beside `ray microbenchmark` from the Ray environment, as one table (rates in Ray's
//! units, with ours over Ray's), JSON and a chart.
//!
//! `ray microbenchmark` sleeps 10 s before each of its rows and has about thirty; its only
//! knobs are `TESTS_TO_RUN` and `TESTS_TO_SKIP`, one substring each. It is run once per
//! substring of [`RAY_RUNS`], and each run is stopped as soon as it has printed the last row
//! wanted from it (the rest of the program, placement groups and the client-mode benchmarks,
//! would cost minutes). Every run is bounded in time; what it printed before a timeout is kept.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::report::fmt_num;
use super::systems::{self, Builds};
use super::{out_dir, Options};
use crate::util::{self, human, run_bounded, Bounds};

/// Every row: this project's name (Ray's printed name with `_` for spaces and colons, without
/// `(Plasma Store)`), Ray's printed name, and the unit.
pub(super) const NAMES: [(&str, &str, &str); 11] = [
    (
        "single_client_tasks_sync",
        "single client tasks sync",
        "per second",
    ),
    (
        "single_client_tasks_async",
        "single client tasks async",
        "per second",
    ),
    ("1_1_actor_calls_sync", "1:1 actor calls sync", "per second"),
    (
        "1_1_actor_calls_async",
        "1:1 actor calls async",
        "per second",
    ),
    (
        "1_n_actor_calls_async",
        "1:n actor calls async",
        "per second",
    ),
    (
        "n_n_actor_calls_async",
        "n:n actor calls async",
        "per second",
    ),
    (
        "single_client_put_calls",
        "single client put calls (Plasma Store)",
        "per second",
    ),
    (
        "single_client_get_calls",
        "single client get calls (Plasma Store)",
        "per second",
    ),
    (
        "single_client_put_gigabytes",
        "single client put gigabytes",
        "GB/s",
    ),
    (
        "single_client_wait_1k_refs",
        "single client wait 1k refs",
        "per second",
    ),
    (
        "single_client_get_object_containing_10k_refs",
        "single client get object containing 10k refs",
        "per second",
    ),
];

/// The runs of `ray microbenchmark`: its `TESTS_TO_RUN` substring, the row after which the run
/// is stopped, and how many rows it times up to there (each about 20 s with Ray's sleep).
const RAY_RUNS: [(&str, &str, u64); 4] = [
    ("single client", "single_client_tasks_async", 8),
    ("1:1 actor calls", "1_1_actor_calls_async", 2),
    ("1:n actor calls async", "1_n_actor_calls_async", 1),
    ("n:n actor calls async", "n_n_actor_calls_async", 1),
];

/// A rate: mean and standard deviation of the runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Rate {
    pub mean: f64,
    pub sd: f64,
}

/// This project's name for a name `ray microbenchmark` prints: `1:1 actor calls sync` is
/// `1_1_actor_calls_sync`, `single client get calls (Plasma Store)` is `single_client_get_calls`.
fn our_name(printed: &str) -> String {
    let bare = printed.split(" (").next().unwrap_or(printed).trim();
    bare.replace([' ', ':'], "_")
}

/// One line of `ray microbenchmark`: `<name> per second <mean> +- <sd>`, as our name and rate.
fn parse_line(line: &str) -> Option<(String, Rate)> {
    let (name, numbers) = line.trim().split_once(" per second ")?;
    let (mean, sd) = numbers.split_once("+-")?;
    let rate = Rate {
        mean: mean.trim().parse().ok()?,
        sd: sd.trim().parse().ok()?,
    };
    Some((our_name(name), rate))
}

/// Every rate in the output of `ray microbenchmark`, by our name.
pub(super) fn parse_ray(text: &str) -> BTreeMap<String, Rate> {
    text.lines().filter_map(parse_line).collect()
}

/// The line after which a run of `ray microbenchmark` has given all that is wanted from it.
fn ends_a_ray_run(line: &str) -> bool {
    parse_line(line).is_some_and(|(name, _)| RAY_RUNS.iter().any(|(_, last, _)| *last == name))
}

/// One column of the table: a system and its rows (a rate, or why there is none).
pub(super) struct Column {
    pub label: String,
    pub ours: bool,
    pub rows: BTreeMap<String, Result<Rate, String>>,
}

/// The group's result.
pub(super) struct RayNames {
    pub command: String,
    pub columns: Vec<Column>,
    /// Ray's version, when Ray ran.
    pub ray_version: Option<String>,
    pub notes: Vec<String>,
}

/// The `ray` program of the Ray environment under `target/bench-venvs`, made by `setup.sh`
/// when missing (a no-op for the environments that exist).
fn ray_program(notes: &mut Vec<String>) -> Option<PathBuf> {
    let env_root = util::root().join("target").join("bench-venvs");
    let ray = env_root.join("ray").join("bin").join("ray");
    if !ray.exists() {
        super::peers::set_up(&env_root, "peers", notes);
    }
    ray.exists().then_some(ray)
}

fn ray_version(ray: &Path) -> Option<String> {
    let python = ray.with_file_name("python");
    let out = Command::new(python)
        .args(["-c", "import ray; print(ray.__version__)"])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!v.is_empty()).then_some(v)
}

/// Runs `ray microbenchmark` once per entry of [`RAY_RUNS`]; returns Ray's column.
fn run_ray(dir: &Path, notes: &mut Vec<String>) -> (Column, Option<String>) {
    let mut column = Column {
        label: "ray".into(),
        ours: false,
        rows: BTreeMap::new(),
    };
    let Some(ray) = ray_program(notes) else {
        notes
            .push("ray: no Ray environment (target/bench-venvs/ray); Ray's column is empty".into());
        return (column, None);
    };
    let version = ray_version(&ray);
    let mut output = String::new();
    for (filter, last, rows) in RAY_RUNS {
        let mut cmd = Command::new(&ray);
        cmd.arg("microbenchmark")
            .env("TESTS_TO_RUN", filter)
            .env("RAY_USAGE_STATS_ENABLED", "0")
            .current_dir(dir);
        println!("==> {}", util::describe(&cmd));
        let bounds = Bounds {
            limit: Duration::from_secs(60 + 40 * rows),
            last_line: Some((ends_a_ray_run as util::LineTest, Duration::from_secs(1))),
        };
        match run_bounded(&mut cmd, &bounds) {
            Ok(f) => {
                let text = f.lines.join("\n");
                let finished = parse_ray(&text).contains_key(last);
                if f.timed_out && !finished {
                    notes.push(format!(
                        "ray microbenchmark (TESTS_TO_RUN={filter:?}) killed after {} (time \
                         limit); the rows it printed are kept",
                        human(f.elapsed)
                    ));
                }
                output.push_str(&text);
                output.push('\n');
            }
            Err(e) => notes.push(format!("ray microbenchmark could not start: {e}")),
        }
    }
    let _ = std::fs::write(dir.join("ray.txt"), &output);
    let found = parse_ray(&output);
    for (name, _, _) in NAMES {
        let cell = found
            .get(name)
            .copied()
            .ok_or_else(|| "not printed".to_string());
        column.rows.insert(name.to_string(), cell);
    }
    (column, version)
}

/// Reads one of this project's reports into a column; rows without a rate say why.
fn our_column(label: String, report: &Path, ended: Option<String>) -> Column {
    let doc: Value = std::fs::read_to_string(report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let how = ended.unwrap_or_else(|| "no report".into());
    let mut rows = BTreeMap::new();
    for (name, _, _) in NAMES {
        let row = doc["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == name);
        let cell = match row {
            None => Err(format!("not run: {how}")),
            Some(r) => match (r["status"].as_str(), r["mean"].as_f64(), r["sd"].as_f64()) {
                (Some("ok"), Some(mean), Some(sd)) => Ok(Rate { mean, sd }),
                (Some("pending"), _, _) => Err(format!("not run: {how}")),
                (Some("running"), _, _) => Err(how.clone()),
                (status, _, _) => Err(status.unwrap_or("no status").to_string()),
            },
        };
        rows.insert(name.to_string(), cell);
    }
    Column {
        label,
        ours: true,
        rows,
    }
}

/// Runs the group: `unidist-bench ray-names` on every system of this project, then (with peers,
/// and not in `--quick` unless the group runs alone) `ray microbenchmark`.
pub(super) fn run(options: &Options, builds: &mut Builds, alone: bool) -> RayNames {
    let dir = out_dir().join("ray-names");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    let mut notes = Vec::new();
    let mut columns = Vec::new();
    for system in systems::chosen(options) {
        let label = format!("unidist-rs-{}", system.mode);
        let Some(bin) = systems::binary_for(&system, builds, (&label, "ray-names"), &mut notes)
        else {
            continue;
        };
        let report = dir.join(format!("{label}.json"));
        let mut cmd = systems::command(&system, &bin);
        cmd.arg("ray-names").arg("--out").arg(&report);
        // Inside the full bench, this project's rows take the short timing (4 runs of 0.5 s
        // after 0.2 s of warm-up, about 25 s a system instead of 100 s on ten systems); run
        // alone, the group takes Ray's own timing unless `--quick`.
        let short = options.quick || !alone;
        if short {
            cmd.arg("--quick");
        }
        let limit = Duration::from_secs(if short { 240 } else { 600 });
        let (ended, _) = systems::run_limited(&mut cmd, limit, true);
        if let Some(e) = &ended {
            notes.push(format!("{label} ray-names: {e}"));
        }
        columns.push(our_column(format!("rs {}", system.mode), &report, ended));
    }
    if !alone || options.quick {
        notes.push(
            "this project's rows: 4 runs of 0.5 s after 0.2 s of warm-up (Ray's: 4 runs of 2 s \
             after 1 s); `cargo xtask bench --only ray-names` runs them with Ray's timing"
                .into(),
        );
    }
    let mut ray_version = None;
    if !options.peers {
        notes.push("ray microbenchmark not run (--no-peers)".into());
    } else if options.quick && !alone {
        notes.push(
            "ray microbenchmark not run (--quick: it sleeps 10 s before each row, about 5 \
             minutes for these; `cargo xtask bench --only ray-names` runs it)"
                .into(),
        );
    } else {
        let (column, version) = run_ray(&dir, &mut notes);
        ray_version = version;
        columns.insert(0, column);
    }
    RayNames {
        command: options.command(),
        columns,
        ray_version,
        notes,
    }
}

/// A rate with its spread, three significant digits each.
fn rate_text(r: &Rate) -> String {
    format!("{} ± {}", fmt_num(r.mean), fmt_num(r.sd))
}

impl RayNames {
    /// Ray's rate of row `name`, when Ray ran it.
    fn ray_rate(&self, name: &str) -> Option<f64> {
        self.columns
            .iter()
            .find(|c| !c.ours)
            .and_then(|c| c.rows.get(name)?.as_ref().ok())
            .map(|r| r.mean)
            .filter(|m| *m > 0.0)
    }

    /// `rate` of row `name` over Ray's rate of that row, when Ray has one.
    pub(super) fn ratio(&self, name: &str, rate: &Rate) -> Option<f64> {
        self.ray_rate(name).map(|ray| rate.mean / ray)
    }

    /// True when every row of every system of this project that ran has a rate.
    pub(super) fn all_ours_ok(&self) -> bool {
        self.columns
            .iter()
            .filter(|c| c.ours)
            .all(|c| c.rows.values().all(Result::is_ok))
    }

    pub(super) fn markdown(&self) -> String {
        let mut md = format!(
            "\n## Ray's microbenchmark names (`{}`)\n\n\
             Each cell is a rate in the unit `ray microbenchmark` prints, the mean ± standard \
             deviation of four runs timed as Ray's `timeit` times them; in this project's cells \
             the figure in parentheses is its rate over Ray's (above 1: faster than Ray). \
             Ray {}, run as `ray microbenchmark` with `TESTS_TO_RUN` set (see BENCHMARKS.md, \
             \"Ray's microbenchmark names\", for what each row does here).\n\n",
            self.command,
            self.ray_version.as_deref().unwrap_or("(not run)"),
        );
        md.push_str("| row | unit |");
        for c in &self.columns {
            let _ = write!(md, " {} |", c.label);
        }
        md.push_str("\n|---|---|");
        md.push_str(&"---:|".repeat(self.columns.len()));
        md.push('\n');
        for (name, _, unit) in NAMES {
            let _ = write!(md, "| `{name}` | {unit} |");
            for c in &self.columns {
                let cell = match c.rows.get(name) {
                    Some(Ok(r)) => match self.ratio(name, r).filter(|_| c.ours) {
                        Some(x) => format!("{} ({}x)", rate_text(r), fmt_num(x)),
                        None => rate_text(r),
                    },
                    Some(Err(why)) => short(why),
                    None => "—".into(),
                };
                let _ = write!(md, " {cell} |");
            }
            md.push('\n');
        }
        if !self.notes.is_empty() {
            md.push('\n');
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }

    pub(super) fn json(&self) -> Value {
        let columns: Vec<Value> = self
            .columns
            .iter()
            .map(|c| {
                let rows: serde_json::Map<String, Value> = c
                    .rows
                    .iter()
                    .map(|(name, cell)| {
                        let v = match cell {
                            Ok(r) => json!({"mean": r.mean, "sd": r.sd,
                                            "over_ray": self.ratio(name, r).filter(|_| c.ours)}),
                            Err(why) => json!({"status": why}),
                        };
                        (name.clone(), v)
                    })
                    .collect();
                json!({"system": c.label, "ours": c.ours, "rows": rows})
            })
            .collect();
        json!({
            "command": self.command,
            "ray_version": self.ray_version,
            "names": NAMES.map(|(n, printed, unit)| json!({"row": n, "ray_prints": printed, "unit": unit})),
            "columns": columns,
            "notes": self.notes,
        })
    }
}

fn short(s: &str) -> String {
    let s = s.replace('|', "/");
    if s.chars().count() <= 40 {
        s
    } else {
        format!("{}…", s.chars().take(40).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output of `ray microbenchmark` (Ray 2.55.1 on the 2-core bench machine, captured by
    /// this group with `TESTS_TO_RUN="single client"` and `"1:1 actor calls"`), with Ray's
    /// other lines between.
    const SAMPLE: &str = "\
Tip: set TESTS_TO_RUN='pattern' to run a subset of benchmarks
2026-12-05 08:52:40,335\tINFO worker.py:2003 -- Started a local Ray instance.
  warnings.warn(
single client get calls (Plasma Store) per second 2499.78 +- 193.06
single client put calls (Plasma Store) per second 1088.28 +- 116.73
single client put gigabytes per second 5.97 +- 2.66
single client tasks and get batch per second 1.31 +- 0.08
single client get object containing 10k refs per second 10.32 +- 0.25
single client wait 1k refs per second 1.01 +- 0.03
single client tasks sync per second 372.35 +- 23.33
single client tasks async per second 921.85 +- 78.09
1:1 actor calls sync per second 930.12 +- 32.62
1:1 actor calls async per second 2954.33 +- 106.47
";

    #[test]
    fn ray_output_is_parsed_by_our_names() {
        let got = parse_ray(SAMPLE);
        assert_eq!(got.len(), 10, "{got:?}");
        assert_eq!(
            got["single_client_get_calls"],
            Rate {
                mean: 2499.78,
                sd: 193.06
            }
        );
        assert_eq!(got["1_1_actor_calls_sync"].mean, 930.12);
        assert_eq!(got["single_client_put_gigabytes"].sd, 2.66);
        // A row of Ray's that is not one of ours is parsed and left aside.
        assert_eq!(got["single_client_tasks_and_get_batch"].mean, 1.31);
        let ours = NAMES
            .iter()
            .filter(|(n, _, _)| got.contains_key(*n))
            .count();
        assert_eq!(ours, 9);
        assert!(ends_a_ray_run(
            "n:n actor calls async per second 1.0 +- 0.1"
        ));
        assert!(!ends_a_ray_run(
            "1:1 actor calls sync per second 1.0 +- 0.1"
        ));
        assert!(parse_line("single client put calls per second many").is_none());
    }

    #[test]
    fn every_name_is_ray_s_printed_name() {
        for (ours, printed, _) in NAMES {
            assert_eq!(our_name(printed), ours);
        }
        for (_, last, _) in RAY_RUNS {
            assert!(NAMES.iter().any(|(n, _, _)| *n == last), "{last}");
        }
    }

    #[test]
    fn the_table_sets_ours_beside_ray_with_the_ratio() {
        let rate = |mean| Ok(Rate { mean, sd: 1.0 });
        let ray = Column {
            label: "ray".into(),
            ours: false,
            rows: [("single_client_tasks_sync".to_string(), rate(500.0))].into(),
        };
        let ours = Column {
            label: "rs pymp".into(),
            ours: true,
            rows: [
                ("single_client_tasks_sync".to_string(), rate(2000.0)),
                (
                    "1_1_actor_calls_sync".to_string(),
                    Err("failed: boom".to_string()),
                ),
            ]
            .into(),
        };
        let group = RayNames {
            command: "cargo xtask bench --only ray-names".into(),
            columns: vec![ray, ours],
            ray_version: Some("2.9.0".into()),
            notes: vec!["a note".into()],
        };
        let md = group.markdown();
        assert!(md.contains("| row | unit | ray | rs pymp |"), "{md}");
        assert!(
            md.contains(
                "| `single_client_tasks_sync` | per second | 500 ± 1.00 | 2000 ± 1.00 (4.00x) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| `1_1_actor_calls_sync` | per second | — | failed: boom |"),
            "{md}"
        );
        assert!(md.contains("Ray 2.9.0") && md.contains("- a note"), "{md}");
        let doc = group.json();
        assert_eq!(
            doc["columns"][1]["rows"]["single_client_tasks_sync"]["over_ray"],
            4.0
        );
    }
}
