//! `unidist-bench costs`: what fault tolerance and observability cost when nothing fails.
//!
//! ```text
//! unidist-bench costs --out FILE [--tasks N] [--rounds R] [--toggle-timeline]
//! ```
//!
//! One process submits `N` empty tasks and gets them all, `R` rounds, alternating within each
//! round a plain submission and one with `options().max_retries(3)`, so both see the same
//! machine state. The report holds both rates per round and whether the timeline was recording
//! (`UNIDIST_TIMELINE` set for this process). `cargo xtask bench` runs it with and without the
//! timeline, alternating processes, and sets the medians side by side: retries against none
//! (target within 1.1x), timeline on against off (target within 1.3x).
//!
//! `--toggle-timeline` (with `UNIDIST_TIMELINE` set): each round also makes a plain submission
//! with the recorder on, while the other two run with it off, so that on and off are compared
//! in the same processes, round by round. The backend switches the recorder of every process
//! (`Backend::set_recording`: on MPI rank 0 asks each worker and waits for its answer). The
//! recording grows over the rounds as it would in a program that records throughout, and the
//! trace written at `shutdown` holds every recorded round.
//!
//! Under MPI SPMD only rank 0 returns from `init` and measures; the other ranks serve.

use std::time::Instant;

use serde_json::json;
use unidist::ObjectRef;
use unidist_core::observe::timeline;

use crate::measure::{median_of, parse_out_tasks_rounds, parse_then_init, write_json};
use crate::suite::DONE;

pub(crate) const USAGE: &str =
    "unidist-bench costs --out FILE [--tasks N] [--rounds R] [--toggle-timeline]";

#[unidist::remote]
fn empty() {}

/// Submits `n` empty tasks (with `max_retries(3)` when `retries`), gets them all, and returns
/// the rate in tasks per second.
fn rate(n: usize, retries: bool) -> Result<f64, String> {
    let started = Instant::now();
    let refs: Vec<ObjectRef<()>> = (0..n)
        .map(|_| {
            if retries {
                empty::options().max_retries(3).remote()
            } else {
                empty::remote()
            }
        })
        .collect();
    let got = unidist::get_all(&refs).map_err(|e| e.to_string())?;
    if got.len() != n {
        return Err(format!("{} results for {n} tasks", got.len()));
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// What the command line asked for.
struct Args {
    out: String,
    tasks: usize,
    rounds: usize,
    toggle: bool,
}

/// The kinds of submission a round measures.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Retries,
    /// Plain, with the recorder on (only with `--toggle-timeline`).
    Recorded,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let toggle = args.iter().any(|a| a == "--toggle-timeline");
    let rest: Vec<String> = args
        .iter()
        .filter(|a| *a != "--toggle-timeline")
        .cloned()
        .collect();
    let (out, tasks, rounds) = parse_out_tasks_rounds(&rest, USAGE, (20_000, 5))?;
    Ok(Args {
        out,
        tasks,
        rounds,
        toggle,
    })
}

/// The rates of each kind, round by round.
#[derive(Default)]
struct Rates {
    plain: Vec<f64>,
    retries: Vec<f64>,
    recorded: Vec<f64>,
}

/// Pauses or resumes the recorder of every process of the job.
fn recording(on: bool) -> Result<(), String> {
    match unidist_core::runtime::current() {
        Some(b) => b
            .set_recording(on)
            .map_err(|e| format!("switching the recorder: {e}")),
        None => Err("no runtime".into()),
    }
}

/// Warms up, then measures `args.rounds` rounds, rotating which kind goes first so that none
/// always runs on a warmer machine.
fn measure(args: &Args) -> Result<Rates, String> {
    // Warm-up: pools started, workers connected, code paged in.
    rate(args.tasks.min(2_000), false)?;
    rate(args.tasks.min(2_000), true)?;
    let mut kinds = vec![Kind::Plain, Kind::Retries];
    if args.toggle {
        kinds.push(Kind::Recorded);
        recording(false)?;
    }
    let mut rates = Rates::default();
    for round in 0..args.rounds {
        for i in 0..kinds.len() {
            let kind = kinds[(round + i) % kinds.len()];
            if kind == Kind::Recorded {
                recording(true)?;
            }
            let r = rate(args.tasks, kind == Kind::Retries);
            if kind == Kind::Recorded {
                recording(false)?;
            }
            match kind {
                Kind::Plain => &mut rates.plain,
                Kind::Retries => &mut rates.retries,
                Kind::Recorded => &mut rates.recorded,
            }
            .push(r?);
        }
    }
    Ok(rates)
}

pub(crate) fn main(args: &[String]) -> i32 {
    let args = match parse_then_init("costs", parse(args)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let recording = timeline::is_on();
    let result = if args.toggle && !recording {
        Err("--toggle-timeline needs UNIDIST_TIMELINE set".to_string())
    } else {
        measure(&args)
    };
    let timeline = std::env::var_os("UNIDIST_TIMELINE").is_some_and(|v| !v.is_empty());
    let code = match result {
        Ok(rates) => {
            let doc = json!({
                "backend": unidist::config::Backend::get().map(|b| b.to_string()).unwrap_or_default(),
                "tasks": args.tasks,
                "timeline": timeline,
                "toggled": args.toggle,
                "plain_tasks_per_s": rates.plain,
                "retries3_tasks_per_s": rates.retries,
                "timeline_tasks_per_s": rates.recorded,
                "plain_median": median_of(&rates.plain),
                "retries3_median": median_of(&rates.retries),
                "timeline_median": (!rates.recorded.is_empty()).then(|| median_of(&rates.recorded)),
            });
            match write_json(&args.out, &doc) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("unidist-bench costs: {e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("unidist-bench costs: {e}");
            1
        }
    };
    if let Err(e) = unidist::shutdown() {
        eprintln!("unidist-bench costs: shutdown failed: {e}");
    }
    println!("{DONE}");
    code
}
