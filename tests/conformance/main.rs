//! Conformance suite of unidist: every behaviour of the API and upstream unidist's test
//! scenarios, written once and run against each backend by its own harness.
//!
//! ```text
//! conformance [--backend NAME] [--filter SUBSTR[,SUBSTR..]] [--skip SUBSTR].. [--list] [--case-timeout SECS]
//! ```
//!
//! - `--filter` keeps the cases whose full name (`[mpi] task::chaining_value`) contains any of
//!   the comma-separated substrings; `--skip` (repeatable, as with libtest) leaves out those
//!   that contain its substring. `cargo xtask ci` skips each in-process backend (`--skip
//!   [NAME]`) in its `cargo test` step, since its test-backends step runs the suite on them.
//! - `--backend NAME` (or `UNIDIST_BACKEND`) runs the suite on that backend. Without either, it
//!   runs on every built-in backend that runs inside one process, one after another in this
//!   process, in `BackendName::ALL` order.
//! - Under MPI every rank runs this binary: `unidist::init()` is the first unidist call, rank 0
//!   returns from it and runs the cases, the other ranks serve inside it.
//! - One line per case (`ok`, `FAIL <why>`, `xfail <reason>`), then `N passed, M failed`; the
//!   exit code is non-zero on any failure. A case over its time limit ends the run as a failure.
//! - `--init-probe` and `--lazy-probe` are modes the configuration and lifecycle cases start this
//!   binary in.
#![forbid(unsafe_code)]

mod harness;

mod fixtures;
mod probe;

mod actor;
mod async_actor;
mod awaiting;
mod bad_input;
mod config;
mod fault_tolerance;
mod general;
mod object;
mod observe;
mod serde_attrs;
mod task;
mod wait;

use std::process::ExitCode;
use std::time::Duration;

use unidist::config::{Backend, BackendName};

use harness::Case;

/// The usage line; the backend names come from the one table of them.
fn usage() -> String {
    let names: Vec<&str> = BackendName::ALL.iter().map(|b| b.as_str()).collect();
    format!(
        "usage: conformance [--backend {}] [--filter SUBSTR[,SUBSTR..]] [--skip SUBSTR].. [--list] \
         [--case-timeout SECS]",
        names.join("|")
    )
}

/// Every case in run order; `general` comes last because it ends with `shutdown`.
fn all_cases() -> Vec<Case> {
    let mut all = Vec::new();
    all.extend(task::cases());
    all.extend(object::cases());
    all.extend(wait::cases());
    all.extend(actor::cases());
    all.extend(async_actor::cases());
    all.extend(awaiting::cases());
    all.extend(config::cases());
    all.extend(bad_input::cases());
    all.extend(fault_tolerance::cases());
    all.extend(serde_attrs::cases());
    all.extend(observe::cases());
    all.extend(general::cases());
    all
}

#[derive(Default)]
struct Args {
    backend: Option<String>,
    filter: Option<String>,
    /// `--skip SUBSTR` (repeatable, as with libtest): cases whose full name contains one are
    /// left out.
    skip: Vec<String>,
    list: bool,
    init_probe: bool,
    lazy_probe: bool,
    case_timeout: Option<Duration>,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut args = Args::default();
        while let Some(arg) = it.next() {
            let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
            match arg.as_str() {
                "--backend" => args.backend = Some(value("--backend")?),
                "--filter" => args.filter = Some(value("--filter")?),
                "--skip" => args.skip.push(value("--skip")?),
                "--case-timeout" => {
                    let raw = value("--case-timeout")?;
                    let secs: u64 = raw.parse().map_err(|_| {
                        format!("invalid --case-timeout {raw:?}: expected whole seconds")
                    })?;
                    args.case_timeout = Some(Duration::from_secs(secs));
                }
                "--list" => args.list = true,
                "--init-probe" => args.init_probe = true,
                "--lazy-probe" => args.lazy_probe = true,
                // Flags that `cargo test` users pass to libtest harnesses; meaningless here.
                "--nocapture" | "--quiet" | "-q" | "--show-output" | "--exact" => {}
                a if a.starts_with("--test-threads") || a.starts_with("--color") => {}
                a if a.starts_with('-') => return Err(format!("unknown option {a:?}")),
                // A bare word filters, as with libtest.
                _ => args.filter = Some(arg),
            }
        }
        Ok(args)
    }
}

/// The backends to run, and whether the name must be `put` before `init`.
struct Plan {
    backends: Vec<BackendName>,
    put_name: bool,
}

fn plan(args: &Args) -> Result<Plan, String> {
    if let Some(name) = &args.backend {
        let name = name.parse::<BackendName>().map_err(|e| e.to_string())?;
        return Ok(Plan {
            backends: vec![name],
            put_name: true,
        });
    }
    if std::env::var_os("UNIDIST_BACKEND").is_some() {
        let name = Backend::get().map_err(|e| e.to_string())?;
        return Ok(Plan {
            backends: vec![name],
            put_name: false,
        });
    }
    Ok(Plan {
        backends: unidist::in_process_backends(),
        put_name: true,
    })
}

fn selected<'a>(cases: &'a [Case], backend: BackendName, args: &Args) -> Vec<&'a Case> {
    cases
        .iter()
        .filter(|c| {
            let name = format!("[{backend}] {}", c.name);
            let kept = args
                .filter
                .as_deref()
                .is_none_or(|f| f.split(',').any(|part| name.contains(part)));
            kept && !args.skip.iter().any(|s| name.contains(s.as_str()))
        })
        .collect()
}

fn run_backend(name: BackendName, put_name: bool, cases: &[&Case], limit: Duration) {
    let label = format!("[{name}]");
    if put_name {
        if let Err(e) = Backend::put(name) {
            harness::report_failure(&format!("{label} config"), &e.to_string());
            return;
        }
    }
    let init_label = format!("{label} init");
    if let Err(e) = harness::watched(&init_label, limit, unidist::init) {
        harness::report_failure(&init_label, &format!("{e} (kind {:?})", e.kind()));
        return;
    }
    let caps = match unidist::capabilities() {
        Ok(caps) => caps,
        Err(e) => {
            harness::report_failure(&format!("{label} capabilities"), &e.to_string());
            return;
        }
    };
    // The facade's registration and the backend must agree on whether it runs in one process:
    // the suite picks the backend of its child processes by it.
    let in_process = unidist::in_process_backends().contains(&name);
    if caps.separate_processes == in_process {
        harness::report_failure(
            &format!("{label} capabilities"),
            &format!(
                "separate_processes is {} but the facade registers the backend as {}",
                caps.separate_processes,
                if in_process {
                    "in-process"
                } else {
                    "multi-process"
                }
            ),
        );
    }
    for case in cases {
        harness::run_case(name.as_str(), &caps, case, limit);
    }
    let shutdown_label = format!("{label} shutdown");
    if let Err(e) = harness::watched(&shutdown_label, limit, unidist::shutdown) {
        harness::report_failure(&shutdown_label, &format!("{e} (kind {:?})", e.kind()));
    }
}

fn main() -> ExitCode {
    // Several cases panic on purpose inside tasks; one line per panic keeps the log readable
    // even with RUST_BACKTRACE set. Installed before `init`, so that a backend that installs its
    // own hook (MPI aborts the job on a panic outside a task) still chains to this one.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        eprintln!("thread {:?} {info}", thread.name().unwrap_or("unnamed"));
    }));
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("conformance: {message}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    if args.init_probe {
        return probe::init_probe();
    }
    if args.lazy_probe {
        return probe::lazy_probe();
    }
    let cases = all_cases();
    let plan = match plan(&args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("conformance: {message}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    if args.list {
        for &backend in &plan.backends {
            for case in selected(&cases, backend, &args) {
                println!("[{backend}] {}", case.name);
            }
        }
        return ExitCode::SUCCESS;
    }
    let limit = args.case_timeout.unwrap_or(Duration::from_secs(60));
    harness::start_watchdog();
    for &backend in &plan.backends {
        let chosen = selected(&cases, backend, &args);
        // A backend whose every case is skipped is not started either.
        if !chosen.is_empty() {
            run_backend(backend, plan.put_name, &chosen, limit);
        }
    }
    let (passed, failed) = harness::totals();
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
