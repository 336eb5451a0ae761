//! `cargo xtask soak [--short] [--suite S[,S..]] [--backend B[,B..]]`: the load and soak suites
//! of the `soak` program (package `unidist-tests`) on every backend, one bounded run per
//! suite × backend, as a table and a final `N passed, M failed` line; non-zero exit on any
//! failure.
//!
//! The rows are data ([`rows`], derived from the backend table in `backend_table.rs`): each
//! names its suite, backend, worker count and its full and `--short` sizes. `--short` divides every count by 10, except the init/shutdown cycles
//! (always 100) and the 256 MiB objects (one instead of four). The program is built in release
//! mode once for the in-process backends, and once against Open MPI (in its own target
//! directory) for each MPI-launched backend, which runs SPMD under `mpiexec.openmpi` with one
//! rank per worker plus rank 0. A missing MPI makes the MPI rows SKIPPED, which is a failure when `CI` is set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::backend_table::{self, BackendEntry, Launch};
use crate::backends::Impl;
use crate::util::{self, human, Bounds, Finished};

/// What `--short` does to the sizes, as the usage and the report say it.
const SHORT_RULE: &str =
    "counts / 10; init/shutdown cycles stay at 100; one 256 MiB object instead of four";

const USAGE: &str = "usage: cargo xtask soak [--short] [--suite tasks,actors,objects,cycles,trees] [--backend pyseq,pymp,mpi]

  full sizes: 1,000,000 tasks (pyseq, pymp, mpi); 10,000 actors (pymp) and 1,000 (mpi);
  10,000 objects of 8 B..64 MiB plus four of 256 MiB (pymp, mpi); 100 init/shutdown cycles
  (pyseq, pymp); trees of 10,000 nested tasks with 1 and 2 workers (every backend)
  --short: counts / 10; init/shutdown cycles stay at 100; one 256 MiB object instead of four";

const SUITES: [&str; 5] = ["tasks", "actors", "objects", "cycles", "trees"];

/// One run of the soak program.
#[derive(Debug, Clone, Copy)]
struct Row {
    suite: &'static str,
    backend: &'static BackendEntry,
    /// `UNIDIST_CPUS` (pyseq, pymp) or MPI worker ranks; `None`: the backend's default (the
    /// machine's cores; 2 MPI workers).
    cpus: Option<u32>,
    count: u64,
    short_count: u64,
    /// Objects of 256 MiB (objects suite).
    big: u64,
    short_big: u64,
}

impl Row {
    fn label(&self) -> String {
        match self.cpus {
            Some(c) => format!("{} (cpus={c})", self.suite),
            None => self.suite.to_string(),
        }
    }

    fn sizes(&self, short: bool) -> (u64, u64) {
        if short {
            (self.short_count, self.short_big)
        } else {
            (self.count, self.big)
        }
    }
}

/// Every row of the soak matrix, in backend table order within each suite.
fn rows() -> Vec<Row> {
    let row = |suite, backend, cpus, count: u64| Row {
        suite,
        backend,
        cpus,
        count,
        short_count: if suite == "cycles" { count } else { count / 10 },
        big: 0,
        short_big: 0,
    };
    let backends = &backend_table::BACKENDS;
    let mut rows = Vec::new();
    for b in backends {
        rows.push(row("tasks", b, None, 1_000_000));
    }
    for b in backends {
        if let Some(actors) = b.soak.actors {
            rows.push(row("actors", b, None, actors));
        }
    }
    for b in backends.iter().filter(|b| b.soak.objects) {
        rows.push(Row {
            big: 4,
            short_big: 1,
            ..row("objects", b, None, 10_000)
        });
    }
    for b in backends.iter().filter(|b| b.soak.cycles) {
        rows.push(row("cycles", b, None, 100));
    }
    for cpus in [1, 2] {
        for b in backends {
            rows.push(row("trees", b, Some(cpus), 10_000));
        }
    }
    rows
}

struct Options {
    short: bool,
    suites: Option<Vec<String>>,
    backends: Option<Vec<String>>,
}

fn list(flag: &str, raw: &str, allowed: &[&str]) -> Result<Vec<String>, String> {
    let names: Vec<String> = raw.split(',').map(|s| s.trim().to_string()).collect();
    match names.iter().find(|n| !allowed.contains(&n.as_str())) {
        Some(bad) => Err(format!(
            "invalid {flag} {bad:?}: expected {} (comma separated)",
            allowed.join(", ")
        )),
        None => Ok(names),
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        short: false,
        suites: None,
        backends: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--help" | "-h" => return Err(String::new()),
            "--short" => o.short = true,
            "--suite" | "--backend" => {
                let raw = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
                if arg == "--suite" {
                    o.suites = Some(list(arg, raw, &SUITES)?);
                } else {
                    o.backends = Some(backend_table::parse_list(arg, raw)?);
                }
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(o)
}

/// How one row ended.
enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

struct RowResult {
    row: Row,
    outcome: Outcome,
    elapsed: Duration,
    fields: BTreeMap<String, String>,
}

/// Runs the soak suites; returns the process exit code.
pub(crate) fn soak(args: &[String]) -> i32 {
    let options = match parse(args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("xtask soak: {e}\n{USAGE}");
            return 2;
        }
    };
    let selected: Vec<Row> = rows()
        .into_iter()
        .filter(|r| {
            options
                .suites
                .as_ref()
                .is_none_or(|s| s.iter().any(|n| n == r.suite))
                && options
                    .backends
                    .as_ref()
                    .is_none_or(|b| b.iter().any(|n| n == r.backend.name))
        })
        .collect();
    if selected.is_empty() {
        eprintln!("xtask soak: no row matches the selection");
        return 2;
    }
    let started = Instant::now();
    println!(
        "soak: {} sizes{}",
        if options.short { "short" } else { "full" },
        if options.short {
            format!(" ({SHORT_RULE})")
        } else {
            String::new()
        }
    );
    // One build for the in-process backends, one per MPI-launched backend.
    let mut builds: BTreeMap<&str, Result<PathBuf, BuildError>> = BTreeMap::new();
    let mut results = Vec::new();
    for row in selected {
        let key = match row.backend.launch {
            Launch::InProcess => "",
            Launch::Mpi => row.backend.name,
        };
        let bin = builds
            .entry(key)
            .or_insert_with(|| match row.backend.launch {
                Launch::InProcess => build_local(),
                Launch::Mpi => build_mpi(row.backend),
            })
            .clone();
        let result = match bin {
            Ok(path) => run_row(row, &path, options.short),
            Err(outcome) => RowResult {
                row,
                outcome: match outcome {
                    BuildError::Missing(m) => Outcome::Skipped(m),
                    BuildError::Failed(m) => Outcome::Failed(m),
                },
                elapsed: Duration::ZERO,
                fields: BTreeMap::new(),
            },
        };
        results.push(result);
    }
    print_table(&results, options.short);
    let passed = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Passed))
        .count();
    let skipped = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Skipped(_)))
        .count();
    let failed = results.len() - passed - skipped;
    let skipped_fail = if util::in_ci() { skipped } else { 0 };
    println!(
        "{passed} passed, {} failed{} (wall time {})",
        failed + skipped_fail,
        if skipped > 0 {
            format!(
                ", {skipped} skipped{}",
                if util::in_ci() {
                    " (a failure in CI)"
                } else {
                    ""
                }
            )
        } else {
            String::new()
        },
        human(started.elapsed())
    );
    i32::from(failed + skipped_fail > 0)
}

#[derive(Clone)]
enum BuildError {
    /// A prerequisite (MPI) is not installed.
    Missing(String),
    Failed(String),
}

/// `cargo build --release -p unidist-tests --bin soak`, with the given features; returns the
/// binary's path in `target_dir`.
fn build(mut cmd: Command, features: &[&str], target_dir: PathBuf) -> Result<PathBuf, BuildError> {
    cmd.args(["build", "--release", "-p", "unidist-tests", "--bin", "soak"]);
    for f in features {
        cmd.args(["--features", f]);
    }
    util::run_step_with_cause(&mut cmd).map_err(BuildError::Failed)?;
    Ok(target_dir.join("release").join("soak"))
}

fn build_local() -> Result<PathBuf, BuildError> {
    // A relative `CARGO_TARGET_DIR` is relative to the workspace root, where cargo runs.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| util::root().join(d))
        .unwrap_or_else(|| util::root().join("target"));
    build(util::cargo(), &[], target)
}

/// The MPI build binds to the `mpicc` it finds, so it gets its own target directory.
fn build_mpi(backend: &BackendEntry) -> Result<PathBuf, BuildError> {
    let imp = Impl::OpenMpi;
    if let Some(m) = imp.missing() {
        return Err(BuildError::Missing(m));
    }
    let mut cmd = util::cargo();
    cmd.env("MPICC", imp.mpicc())
        .env("CARGO_TARGET_DIR", imp.target_dir());
    build(cmd, backend.features, imp.target_dir())
}

/// How long a row may take: the full objects suite moves about 150 GiB through checksums.
fn limit(row: &Row, short: bool) -> Duration {
    let secs = match (short, row.suite) {
        (true, _) => 150,
        (false, "objects") => 3600,
        (false, _) => 1200,
    };
    Duration::from_secs(secs)
}

fn is_result_line(line: &str) -> bool {
    line.starts_with("soak-result ")
}

fn run_row(row: Row, bin: &PathBuf, short: bool) -> RowResult {
    let (count, big) = row.sizes(short);
    let mut cmd = if row.backend.launch == Launch::Mpi {
        let imp = Impl::OpenMpi;
        let ranks = row.cpus.unwrap_or(2) + 1;
        let mut c = Command::new(imp.mpiexec());
        c.args(["-n", &ranks.to_string()])
            .arg(bin)
            .envs(imp.env().iter().copied())
            .env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false")
            .env_remove("UNIDIST_MPI_SPAWN");
        c
    } else {
        Command::new(bin)
    };
    cmd.current_dir(util::root())
        .env("UNIDIST_BACKEND", row.backend.name)
        .args(["--suite", row.suite, "--count", &count.to_string()]);
    if big > 0 {
        cmd.args(["--big", &big.to_string()]);
    }
    match row.cpus {
        Some(c) => cmd.env("UNIDIST_CPUS", c.to_string()),
        None => cmd.env_remove("UNIDIST_CPUS"),
    };
    println!(
        "\n== soak {} on {}: {}",
        row.label(),
        row.backend.name,
        util::describe(&cmd)
    );
    let bounds = Bounds {
        limit: limit(&row, short),
        last_line: Some((is_result_line, Duration::from_secs(30))),
    };
    let finished = match util::run_bounded(&mut cmd, &bounds) {
        Ok(f) => f,
        Err(e) => {
            return RowResult {
                row,
                outcome: Outcome::Failed(format!("cannot run {}: {e}", bin.display())),
                elapsed: Duration::ZERO,
                fields: BTreeMap::new(),
            }
        }
    };
    judge(row, &finished, bounds.limit)
}

/// Reads the `soak-result` line: `key=value` fields, the last one possibly `error="..."`.
fn parse_result(line: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let (head, error) = match line.find(" error=") {
        Some(at) => (&line[..at], Some(&line[at + " error=".len()..])),
        None => (line, None),
    };
    for token in head.split_whitespace().skip(1) {
        if let Some((k, v)) = token.split_once('=') {
            fields.insert(k.to_string(), v.to_string());
        }
    }
    if let Some(e) = error {
        fields.insert("error".into(), e.trim_matches('"').replace("\\\"", "\""));
    }
    fields
}

fn judge(row: Row, f: &Finished, limit: Duration) -> RowResult {
    let fields = f
        .lines
        .iter()
        .rev()
        .find(|l| is_result_line(l))
        .map(|l| parse_result(l))
        .unwrap_or_default();
    let ok = fields.get("ok").is_some_and(|v| v == "true");
    let exit = f.status.map(|s| s.success());
    let outcome = match (ok, exit, f.timed_out) {
        (true, Some(true), _) => Outcome::Passed,
        // MPI ranks that hang after a passing result are cut short: still a failure, since
        // a job that does not end is not a pass.
        (true, _, true) => Outcome::Failed("passed, then did not exit within 30 s".into()),
        (true, _, false) => Outcome::Failed(format!(
            "passed, then exited with {}",
            f.status.map(|s| s.to_string()).unwrap_or_default()
        )),
        (false, _, _) if fields.contains_key("error") => Outcome::Failed(fields["error"].clone()),
        (false, _, true) => Outcome::Failed(format!("no result within {}", human(limit))),
        (false, _, false) => Outcome::Failed(format!(
            "no result line ({})",
            f.status.map(|s| s.to_string()).unwrap_or_default()
        )),
    };
    RowResult {
        row,
        outcome,
        elapsed: f.elapsed,
        fields,
    }
}

fn print_table(results: &[RowResult], short: bool) {
    println!(
        "\nsoak results ({} sizes{})",
        if short { "short" } else { "full" },
        if short {
            format!(": {SHORT_RULE}")
        } else {
            String::new()
        }
    );
    println!(
        "{:<16} {:<7} {:<8} {:>9} {:>8} {:>10} {:>12}  notes",
        "suite", "backend", "result", "count", "time", "peak RSS", "worker peak"
    );
    for r in results {
        let (result, reason) = match &r.outcome {
            Outcome::Passed => ("passed", None),
            Outcome::Failed(m) => ("FAILED", Some(m.as_str())),
            Outcome::Skipped(m) => ("SKIPPED", Some(m.as_str())),
        };
        let count = r.row.sizes(short).0;
        let mib = |k: &str| {
            r.fields
                .get(k)
                .map(|v| format!("{v} MiB"))
                .unwrap_or_else(|| "-".into())
        };
        let notes: Vec<String> = [
            "rss_growth_mib",
            "worker_rss_growth_mib",
            "moved_gib",
            "big",
            "create_secs",
            "threads_left",
            "slowest_cycle_ms",
        ]
        .iter()
        .filter_map(|k| r.fields.get(*k).map(|v| format!("{k}={v}")))
        .chain(reason.map(String::from))
        .collect();
        let line = format!(
            "{:<16} {:<7} {:<8} {:>9} {:>8} {:>10} {:>12}  {}",
            r.row.label(),
            r.row.backend.name,
            result,
            count,
            human(r.elapsed),
            mib("peak_rss_mib"),
            mib("worker_peak_rss_mib"),
            notes.join(" ")
        );
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_has_rows_and_short_sizes_are_smaller() {
        let rows = rows();
        for s in SUITES {
            assert!(rows.iter().any(|r| r.suite == s), "no row for {s}");
        }
        for r in &rows {
            assert!(r.short_count <= r.count && r.short_count > 0, "{r:?}");
            assert!(r.short_big <= r.big, "{r:?}");
        }
        assert_eq!(rows.iter().filter(|r| r.suite == "trees").count(), 6);
    }

    #[test]
    fn result_lines_are_parsed_with_their_error() {
        let f = parse_result(
            "soak-result suite=tasks backend=pymp ok=false count=10 secs=0.10 \
             peak_rss_mib=9.5 error=\"pair 3: got 1, expected 2\"",
        );
        assert_eq!(f["ok"], "false");
        assert_eq!(f["peak_rss_mib"], "9.5");
        assert_eq!(f["error"], "pair 3: got 1, expected 2");
    }

    #[test]
    fn usage_states_the_short_rule() {
        assert!(USAGE.contains(SHORT_RULE));
    }

    #[test]
    fn options_are_checked() {
        assert!(parse(&["--suite".into(), "nope".into()]).is_err());
        assert!(parse(&["--backend".into()]).is_err());
        let names = backend_table::names();
        let two = format!("{},{}", names[1], names[2]);
        let o = parse(&["--short".into(), "--backend".into(), two]).unwrap();
        assert!(o.short);
        assert_eq!(o.backends.unwrap(), [names[1], names[2]]);
    }
}
