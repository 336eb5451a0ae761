//! The soak program: one load suite on the backend chosen by `UNIDIST_BACKEND`, every result
//! checked, ending with one `soak-result` line that `cargo xtask soak` reads.
//!
//! ```text
//! soak --suite tasks|actors|objects|cycles|trees --count N [--big N] [--fan N]
//! ```
//!
//! - `tasks`: `N` tasks in waves (pairs of a task and a dependent task whose first ref is
//!   dropped before it finishes); every value is checked and the resident memory of this process
//!   (and, on MPI, of every worker) must stay flat.
//! - `actors`: `N` actors alive at once, each called and checked, then half killed and half
//!   dropped; calls on killed actors must fail with `ActorDead`.
//! - `objects`: `N` objects of log-uniform sizes from 8 bytes to 64 MiB plus `--big` objects of
//!   256 MiB, each put, relayed through two tasks that verify and transform it, and read back;
//!   checksums are verified on every arrival.
//! - `cycles`: `N` init/shutdown cycles in this process, each running tasks and an actor.
//! - `trees`: one tree of nested tasks with `N` nodes in total (each node submits its children
//!   and blocks in `get` on them), `--fan` children per node.
//!
//! Under MPI every rank runs this program; rank 0 returns from `unidist::init()` and runs the
//! suite, the other ranks serve. The last line on stdout is
//! `soak-result suite=.. backend=.. ok=true|false count=.. secs=.. peak_rss_mib=.. ...`; the
//! exit code is 0 only when every check passed.
#![forbid(unsafe_code)]

mod suites;

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

/// What the program was asked to do.
pub struct Args {
    pub suite: String,
    pub count: u64,
    pub big: u64,
    pub fan: u64,
}

const USAGE: &str =
    "usage: soak --suite tasks|actors|objects|cycles|trees --count N [--big N] [--fan N]";

fn parse() -> Result<Args, String> {
    let mut args = Args {
        suite: String::new(),
        count: 0,
        big: 0,
        fan: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("invalid {flag} {value:?}: expected a whole number"))
        };
        match flag.as_str() {
            "--suite" => args.suite = value.clone(),
            "--count" => args.count = number()?,
            "--big" => args.big = number()?,
            "--fan" => {
                args.fan = number()?;
                if args.fan == 0 {
                    return Err("invalid --fan 0: expected at least 1".into());
                }
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if !["tasks", "actors", "objects", "cycles", "trees"].contains(&args.suite.as_str()) {
        return Err(format!(
            "invalid --suite {:?}: expected tasks, actors, objects, cycles or trees",
            args.suite
        ));
    }
    if args.count == 0 {
        return Err("--count must be given and at least 1".into());
    }
    Ok(args)
}

/// Figures a suite reports besides pass/fail, as `key=value` pairs in the result line.
#[derive(Default)]
pub struct Report {
    pub fields: Vec<(&'static str, String)>,
}

impl Report {
    pub fn add(&mut self, key: &'static str, value: impl std::fmt::Display) {
        self.fields.push((key, value.to_string()));
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Every suite but `cycles` runs on one runtime; MPI workers serve inside this call.
    if args.suite != "cycles" {
        if let Err(e) = unidist::init() {
            println!(
                "soak-result suite={} backend=? ok=false error={:?}",
                args.suite,
                format!("init failed: {e}")
            );
            return ExitCode::from(1);
        }
    }
    let backend = unidist::config::Backend::get()
        .map(|b| b.to_string())
        .unwrap_or_else(|_| "?".into());
    let started = Instant::now();
    let mut report = Report::default();
    let outcome = match args.suite.as_str() {
        "tasks" => suites::tasks(&args, &mut report),
        "actors" => suites::actors(&args, &mut report),
        "objects" => suites::objects(&args, &mut report),
        "cycles" => suites::cycles(&args, &mut report),
        _ => suites::trees(&args, &mut report),
    };
    let secs = started.elapsed().as_secs_f64();
    let shutdown = unidist::shutdown();
    let outcome = outcome.and_then(|()| shutdown.map_err(|e| format!("shutdown failed: {e}")));
    let mut line = format!(
        "soak-result suite={} backend={backend} ok={} count={} secs={secs:.2} peak_rss_mib={:.1}",
        args.suite,
        outcome.is_ok(),
        args.count,
        suites::mib(suites::status_kib("VmHWM")),
    );
    for (k, v) in &report.fields {
        let _ = write!(line, " {k}={v}");
    }
    if let Err(e) = &outcome {
        let _ = write!(line, " error={e:?}");
    }
    println!("{line}");
    if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
