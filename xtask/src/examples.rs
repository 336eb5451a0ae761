//! `cargo xtask examples [--mpi]`: builds every example of the facade's gallery, runs each on
//! the in-process backends (and, with `--mpi`, under `mpiexec.openmpi -n 3` SPMD) and checks
//! the lines it prints against what the example is known to produce.
//!
//! The expected lines are data ([`EXAMPLES`]): each example computes something whose result is
//! fixed (deterministic seeds, generated inputs, a known optimum), prints it on one line, and
//! asserts it itself as well, so a wrong result fails twice over, by exit status and by output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::backend_table::{self, Launch, BACKENDS};
use crate::backends::Impl;
use crate::util::{self, human, run_bounded, Bounds};

/// One example and the lines that prove it computed the right thing.
struct Example {
    name: &'static str,
    /// Substrings that must each appear in some line of its output; the last one is on its
    /// final line.
    expect: &'static [&'static str],
}

/// Every example of `crates/unidist/examples` except the benchmark driver, in the order they
/// run.
const EXAMPLES: &[Example] = &[
    Example {
        name: "quickstart",
        expect: &["[0, 1, 4, 9, 16]"],
    },
    Example {
        name: "actors",
        expect: &[
            "after add(5): 5",
            "bump x3 from a task: 8",
            "get: 8",
            "after kill:",
        ],
    },
    Example {
        name: "pi_monte_carlo",
        expect: &["pi_monte_carlo: estimate 3.141591 from 3200000 samples in 64 tasks"],
    },
    Example {
        name: "word_count",
        expect: &["word_count: 16 files, 15 merges: apple=61 banana=64 cherry=67 date=63"],
    },
    Example {
        name: "mandelbrot",
        expect: &["mandelbrot: 600x400, 400 row tasks, checksum f79fc7957ee280b8"],
    },
    Example {
        name: "parameter_server",
        expect: &["parameter_server: 4 workers, 240 updates, weights [1.000, -2.000, 0.500]"],
    },
    Example {
        name: "pipeline_async",
        expect: &["pipeline_async: 400 lines in 16 batches, total 80200, 16 output lines"],
    },
    Example {
        name: "streaming_wait",
        expect: &["streaming_wait: 12 results, sum of squares 506"],
    },
];

/// A run that takes longer than this has hung.
const LIMIT: Duration = Duration::from_secs(120);

/// How long MPI ranks may take to exit after rank 0 printed the final line.
const EXIT_GRACE: Duration = Duration::from_secs(20);

/// True for a line that ends an example's run (its last expected substring).
fn is_final_line(line: &str) -> bool {
    EXAMPLES
        .iter()
        .any(|e| e.expect.last().is_some_and(|last| line.contains(last)))
}

/// Where the Mandelbrot example writes its picture during the check.
fn picture(target: &Path) -> PathBuf {
    target.join("examples-out").join("mandelbrot.png")
}

/// Builds and runs every example and checks its output; with `mpi`, also under Open MPI SPMD
/// on 3 ranks. Err names every failed run.
pub(crate) fn run_examples(mpi: bool) -> Result<(), String> {
    let mut failures = Vec::new();
    let mut passed = 0;
    let target = util::root().join("target");
    util::run_step(util::cargo().args(["build", "-p", "unidist", "--examples"]))?;
    let local = BACKENDS.iter().filter(|b| b.launch == Launch::InProcess);
    for backend in local.map(|b| b.name) {
        for e in EXAMPLES {
            let mut cmd = Command::new(target.join("debug/examples").join(e.name));
            cmd.current_dir(util::root())
                .env("UNIDIST_BACKEND", backend)
                .env("UNIDIST_CPUS", "2");
            check(e, backend, &mut cmd, &target, &mut passed, &mut failures);
        }
    }
    if let Some(entry) = backend_table::mpi_backends().next().filter(|_| mpi) {
        let openmpi = Impl::OpenMpi;
        let features = entry.features.join(",");
        match openmpi.missing() {
            Some(why) if util::in_ci() => failures.push(format!("mpi: {why}")),
            Some(why) => println!("examples on mpi: SKIPPED ({why})"),
            None => {
                let dir = openmpi.target_dir();
                util::run_step(
                    util::cargo()
                        .args([
                            "build",
                            "-p",
                            "unidist",
                            "--features",
                            &features,
                            "--examples",
                        ])
                        .env("MPICC", openmpi.mpicc())
                        .env("CARGO_TARGET_DIR", &dir),
                )?;
                for e in EXAMPLES {
                    let mut cmd = Command::new(openmpi.mpiexec());
                    cmd.current_dir(util::root())
                        .args(["-n", "3"])
                        .arg(dir.join("debug/examples").join(e.name))
                        .env("UNIDIST_BACKEND", entry.name)
                        .env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false")
                        .envs(openmpi.env().iter().copied());
                    check(
                        e,
                        "mpi spmd np=3",
                        &mut cmd,
                        &dir,
                        &mut passed,
                        &mut failures,
                    );
                }
            }
        }
    }
    println!("examples: {passed} passed, {} failed", failures.len());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("examples failed:\n  {}", failures.join("\n  ")))
    }
}

/// Runs one example bounded in time and records whether its output holds every expected line.
fn check(
    e: &Example,
    label: &str,
    cmd: &mut Command,
    target: &Path,
    passed: &mut usize,
    failures: &mut Vec<String>,
) {
    let png = picture(target);
    if e.name == "mandelbrot" {
        let _ = std::fs::remove_file(&png);
        cmd.arg(&png);
    }
    println!("== {} on {label}: {}", e.name, util::describe(cmd));
    let bounds = Bounds {
        limit: LIMIT,
        last_line: Some((is_final_line, EXIT_GRACE)),
    };
    let verdict = match run_bounded(cmd, &bounds) {
        Err(err) => Err(format!("cannot start: {err}")),
        Ok(run) => {
            let missing: Vec<&str> = e
                .expect
                .iter()
                .copied()
                .filter(|want| !run.lines.iter().any(|l| l.contains(want)))
                .collect();
            let reported = missing.is_empty();
            let exited_ok = run.status.is_some_and(|s| s.success());
            if !missing.is_empty() {
                Err(format!("output lacks {missing:?}"))
            } else if !(exited_ok || run.timed_out && reported) {
                Err(format!("exit status {:?}", run.status))
            } else if e.name == "mandelbrot" && !is_png(&png) {
                Err(format!("{} is not a PNG file", png.display()))
            } else {
                Ok(run.elapsed)
            }
        }
    };
    match verdict {
        Ok(elapsed) => {
            println!("   ok in {}", human(elapsed));
            *passed += 1;
        }
        Err(why) => {
            println!("   FAILED: {why}");
            failures.push(format!("{} on {label}: {why}", e.name));
        }
    }
}

/// True if the file starts with the PNG signature.
fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gallery_example_is_listed() {
        let dir = util::root().join("crates/unidist/examples");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("the examples directory")
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".rs").map(str::to_string))
            .filter(|n| n != "bench_workloads")
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = EXAMPLES.iter().map(|e| e.name.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn final_lines_are_recognised() {
        assert!(is_final_line(
            "streaming_wait: 12 results, sum of squares 506, finished in order []"
        ));
        assert!(!is_final_line("  job 3 done after 40 ms: 9"));
    }
}
