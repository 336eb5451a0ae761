//! `unidist-bench costs`: what fault tolerance and observability cost when nothing fails.
//!
//! ```text
//! unidist-bench costs --out FILE [--tasks N] [--rounds R]
//! ```
//!
//! One process submits `N` empty tasks and gets them all, `R` rounds, alternating within each
//! round a plain submission and one with `options().max_retries(3)`, so both see the same
//! machine state. The report holds both rates per round and whether the timeline was recording
//! (`UNIDIST_TIMELINE` set for this process). `cargo xtask bench` runs it with and without the
//! timeline, alternating processes, and sets the medians side by side: retries against none
//! (target within 1.1x), timeline on against off (target within 1.3x).
//!
//! Under MPI SPMD only rank 0 returns from `init` and measures; the other ranks serve.

use std::time::Instant;

use serde_json::json;
use unidist::ObjectRef;

use crate::measure::{median_of, parse_out_tasks_rounds, write_json};
use crate::suite::DONE;

pub(crate) const USAGE: &str = "unidist-bench costs --out FILE [--tasks N] [--rounds R]";

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

fn parse(args: &[String]) -> Result<(String, usize, usize), String> {
    parse_out_tasks_rounds(args, USAGE, (20_000, 5))
}

pub(crate) fn main(args: &[String]) -> i32 {
    let (out, tasks, rounds) = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("unidist-bench costs: {e}");
            return 2;
        }
    };
    if let Err(e) = unidist::init() {
        eprintln!("unidist-bench costs: init failed: {e}");
        return 1;
    }
    let result = (|| {
        // Warm-up: pools started, workers connected, code paged in.
        rate(tasks.min(2_000), false)?;
        rate(tasks.min(2_000), true)?;
        let (mut plain, mut retries) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which goes first, so neither always runs on a warmer machine.
            let order = if round.is_multiple_of(2) {
                [false, true]
            } else {
                [true, false]
            };
            for with_retries in order {
                let r = rate(tasks, with_retries)?;
                if with_retries {
                    &mut retries
                } else {
                    &mut plain
                }
                .push(r);
            }
        }
        Ok::<_, String>((plain, retries))
    })();
    let timeline = std::env::var_os("UNIDIST_TIMELINE").is_some_and(|v| !v.is_empty());
    let code = match result {
        Ok((plain, retries)) => {
            let doc = json!({
                "backend": unidist::config::Backend::get().map(|b| b.to_string()).unwrap_or_default(),
                "tasks": tasks,
                "timeline": timeline,
                "plain_tasks_per_s": plain,
                "retries3_tasks_per_s": retries,
                "plain_median": median_of(&plain),
                "retries3_median": median_of(&retries),
            });
            match write_json(&out, &doc) {
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
