//! `cargo xtask ci`: exactly what CI runs, step by step, stopping at the first failure.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::backend_table;
use crate::backends::{self, Impl};
use crate::util::{self, human, run_step};

/// Makes sure a rustup component is there, adding it when rustup can.
fn ensure_component(probe: &str, component: &str) -> Result<(), String> {
    let works = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    if works(util::cargo().args([probe, "--version"])) {
        return Ok(());
    }
    if util::which("rustup").is_some() {
        println!("==> `cargo {probe}` is missing; adding the {component} component");
        run_step(Command::new("rustup").args(["component", "add", component]))?;
        if works(util::cargo().args([probe, "--version"])) {
            return Ok(());
        }
    }
    Err(format!(
        "`cargo {probe}` is not available: install the {component} component \
         (rustup component add {component})"
    ))
}

struct Step {
    name: &'static str,
    run: Box<dyn FnOnce() -> Result<(), String>>,
}

fn step(name: &'static str, run: impl FnOnce() -> Result<(), String> + 'static) -> Step {
    Step {
        name,
        run: Box::new(run),
    }
}

/// The lint steps: toolchain, fmt, tidy, clippy (and clippy with MPI when Open MPI is there).
fn lint_steps() -> Vec<Step> {
    let mut steps = vec![
        step("toolchain", || {
            ensure_component("fmt", "rustfmt")?;
            ensure_component("clippy", "clippy")
        }),
        step("fmt", || {
            run_step(util::cargo().args(["fmt", "--all", "--check"]))
        }),
        step("tidy", || match crate::tidy::tidy() {
            0 => Ok(()),
            code => Err(format!("cargo xtask tidy exited with {code}")),
        }),
        step("msrv", || match crate::package::msrv() {
            0 => Ok(()),
            code => Err(format!("cargo xtask msrv exited with {code}")),
        }),
        // Default members only: the MPI backend needs a system MPI to build.
        step("clippy", || {
            run_step(util::cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))
        }),
    ];
    if Impl::OpenMpi.missing().is_none() {
        steps.push(step("clippy (mpi)", || {
            // The crates that build an MPI-launched backend in, with its features (from the
            // backend table) on each of them.
            let crates = ["unidist", "unidist-tests", "unidist-bench"];
            let mut features = Vec::new();
            let mut cmd = util::cargo();
            cmd.arg("clippy");
            for c in crates {
                cmd.args(["-p", c]);
            }
            for b in backend_table::mpi_backends() {
                cmd.args(["-p", &format!("unidist-{}", b.name)]);
                for f in b.features {
                    features.extend(crates.iter().map(|c| format!("{c}/{f}")));
                }
            }
            cmd.args(["--features", &features.join(",")])
                .args(["--all-targets", "--", "-D", "warnings"])
                .env("MPICC", Impl::OpenMpi.mpicc())
                .env("CARGO_TARGET_DIR", Impl::OpenMpi.target_dir());
            run_step(&mut cmd)
        }));
    } else {
        println!(
            "==> Open MPI not found: the MPI crates are not linted (test-backends reports it)"
        );
    }
    steps
}

/// The steps after the lints: docs, tests, fuzzing, the backend matrix, examples, soak and
/// packaging. `summary` receives the matrix's `(passed, failed)`.
fn suite_steps(summary: std::rc::Rc<std::cell::Cell<Option<(usize, usize)>>>) -> Vec<Step> {
    let mut steps = Vec::new();
    // Early: a broken doc link fails in seconds, not after the suites.
    steps.push(step("doc", || {
        run_step(
            util::cargo()
                .args(["doc", "--no-deps"])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )?;
        crate::docs_rs::docs_rs()
    }));
    // The conformance suite's cases on the in-process backends are skipped here: they run
    // again as rows of test-backends.
    steps.push(step("test", || {
        let mut cmd = util::cargo();
        cmd.args(["test", "--"]);
        for b in &backend_table::BACKENDS {
            if b.launch == backend_table::Launch::InProcess {
                cmd.args(["--skip", &format!("[{}]", b.name)]);
            }
        }
        run_step(&mut cmd)
    }));
    // The MPI crate is no default member; its library table and the README table it makes
    // need no MPI, so its unit tests run without the bindings.
    steps.push(step("test (mpi table)", || {
        run_step(util::cargo().args([
            "test",
            "-p",
            "unidist-mpi",
            "--no-default-features",
            "--lib",
        ]))
    }));
    // With the bindings (Open MPI), the crate's own unit tests: the node, the actor and task
    // threads, the shared store, and the replay of the committed fuzz seeds through the
    // linked decoder.
    if Impl::OpenMpi.missing().is_none() {
        steps.push(step("test (mpi, linked)", || {
            run_step(
                util::cargo()
                    .args(["test", "-p", "unidist-mpi", "--lib"])
                    .env("MPICC", Impl::OpenMpi.mpicc())
                    .env("CARGO_TARGET_DIR", Impl::OpenMpi.target_dir()),
            )
        }));
    }
    // The fuzz targets for a bounded time; their committed corpus is replayed afterwards.
    steps.push(step("fuzz", || {
        let args = ["--seconds".to_string(), "20".to_string()];
        match crate::fuzz::fuzz(&args) {
            0 => Ok(()),
            code => Err(format!("cargo xtask fuzz --seconds 20 exited with {code}")),
        }
    }));
    let slot = summary;
    steps.push(step("test-backends", move || {
        let options = backends::Options::parse(&[])?;
        let (passed, failed) = backends::test_backends(&options);
        slot.set(Some((passed, failed)));
        if failed == 0 {
            Ok(())
        } else {
            Err(format!("{failed} failed"))
        }
    }));
    steps.push(step("examples", || crate::examples::run_examples(true)));
    steps.push(step("soak --short", || {
        match crate::soak::soak(&["--short".to_string()]) {
            0 => Ok(()),
            code => Err(format!("cargo xtask soak --short exited with {code}")),
        }
    }));

    // After the MPI builds: the verification builds reuse their dependencies.
    steps.push(step("package", || match crate::package::package(&[]) {
        0 => Ok(()),
        code => Err(format!("cargo xtask package exited with {code}")),
    }));
    steps
}

/// Runs every step; returns the process exit code.
pub(crate) fn ci() -> i32 {
    let summary_slot = std::rc::Rc::new(std::cell::Cell::new(None));
    let mut steps = lint_steps();
    steps.extend(suite_steps(summary_slot.clone()));

    let mut timings: Vec<(&'static str, Duration, bool)> = Vec::new();
    let mut failure = None;
    for s in steps {
        println!("==> step {}", s.name);
        let started = Instant::now();
        let result = (s.run)();
        let took = started.elapsed();
        timings.push((s.name, took, result.is_ok()));
        println!(
            "==> step {} {} in {}",
            s.name,
            if result.is_ok() { "passed" } else { "FAILED" },
            human(took)
        );
        if let Err(e) = result {
            failure = Some((s.name, e));
            break;
        }
    }
    println!();
    for (name, took, ok) in &timings {
        println!(
            "{:<16} {:<7} {:>8}",
            name,
            if *ok { "ok" } else { "FAILED" },
            human(*took)
        );
    }
    if let Some((name, why)) = &failure {
        println!("ci failed at step {name}: {why}");
        // A full disk fails builds with a cause printed far above; say how full it is here.
        if let Ok(out) = Command::new("df").args(["-h", "."]).output() {
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
    if let Some((passed, failed)) = summary_slot.get() {
        println!("{passed} passed, {failed} failed");
    }
    i32::from(failure.is_some())
}
