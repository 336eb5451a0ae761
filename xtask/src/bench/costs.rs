//! The cost rows: async empty tasks with `max_retries(3)` against without (target within 1.1x),
//! and with the timeline recording against without (target within 1.3x), on every system of
//! this project, when nothing fails.
//!
//! Every system switches the recorder on and off between rounds in the same processes: each of
//! its `2 * PAIRS` runs is `unidist-bench costs --toggle-timeline` with `UNIDIST_TIMELINE` set,
//! and every round measures plain, retried and recorded submissions of [`TASKS`] tasks, in a
//! rotating order. On MPI rank 0 switches every worker's recorder too, and waits for their
//! answers, before a round starts (`Backend::set_recording`); comparing separate processes
//! with and without the timeline, as this did before, measured the spread between processes
//! (their retries ratio, which has no work to do, moved as much). The retries ratio and the
//! timeline ratio are the median plain rate over the median rate with the feature, so 1.00
//! means free and larger is slower.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::report::fmt_num;
use super::systems::{self, Builds};
use super::{out_dir, Options};
use crate::util::human;

/// Half the processes per system.
const PAIRS: usize = 3;
/// Tasks per submission: the in-process backends run a million or more a second, and a round
/// of 20,000 would last about 10 ms, shorter than the machine's hiccups (on MPI a round of
/// 50,000 lasts about 0.2 s).
const TASKS: usize = 50_000;
/// Rounds per process (the recording, and the trace written at `shutdown`, hold the recorded
/// rounds: about a million events).
const ROUNDS: usize = 7;
/// Target: retries cost at most this factor in task throughput.
const RETRIES_TARGET: f64 = 1.1;
/// Target: recording the timeline costs at most this factor.
const TIMELINE_TARGET: f64 = 1.3;

/// The measured rates of one system.
#[derive(Default)]
struct Rates {
    plain_off: Vec<f64>,
    retries_off: Vec<f64>,
    plain_on: Vec<f64>,
    problems: Vec<String>,
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

fn floats(doc: &Value, key: &str) -> Vec<f64> {
    doc[key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// Runs one process of `system`: `unidist-bench costs --toggle-timeline` with
/// `UNIDIST_TIMELINE` set.
fn one_process(system: &systems::System, bin: &Path, rates: &mut Rates, n: usize) {
    let dir = out_dir().join("costs");
    let report = dir.join(format!("{}-toggled-{n}.json", system.mode));
    let trace = dir.join(format!("{}-{n}-trace.json", system.mode));
    let mut cmd = systems::command(system, bin);
    cmd.arg("costs")
        .arg("--out")
        .arg(&report)
        .arg("--toggle-timeline")
        .args(["--tasks", &TASKS.to_string()])
        .args(["--rounds", &ROUNDS.to_string()])
        .env("UNIDIST_TIMELINE", &trace);
    let (ended, _) = systems::run_limited(&mut cmd, Duration::from_secs(300), true);
    if let Some(e) = ended {
        rates.problems.push(format!("process {n}: {e}"));
    }
    let doc: Option<Value> = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(doc) = doc else {
        rates.problems.push(format!("process {n}: no report"));
        return;
    };
    if doc["timeline"].as_bool() != Some(true) {
        rates
            .problems
            .push(format!("process {n}: the timeline was not recording"));
    }
    rates.plain_off.extend(floats(&doc, "plain_tasks_per_s"));
    rates
        .retries_off
        .extend(floats(&doc, "retries3_tasks_per_s"));
    rates.plain_on.extend(floats(&doc, "timeline_tasks_per_s"));
    // The trace only proves the recording was on; it is not kept.
    let _ = std::fs::remove_file(&trace);
}

/// The cost rows as a markdown section and JSON.
pub(super) struct Costs {
    pub markdown: String,
    pub json: Value,
}

fn ratio_cell(ratio: Option<f64>, target: f64) -> String {
    match ratio {
        Some(r) if r <= target => format!("{r:.2}x ok"),
        Some(r) => format!("**{r:.2}x over {target}x**"),
        None => "-".into(),
    }
}

/// Runs the cost rows on every system of this project.
pub(super) fn run(options: &Options, builds: &mut Builds, notes: &mut Vec<String>) -> Costs {
    let _ = std::fs::create_dir_all(out_dir().join("costs"));
    let mut md = String::from(
        "\n## Costs when nothing fails (async empty tasks, `unidist-bench costs`)\n\n\
         Median tasks/s; ratio = plain / with the feature (1.00 = free). Retries: \
         `max_retries(3)` against none, in the same processes. Timeline: rounds with the \
         recorder on against rounds with it off in the same processes (on MPI, every rank's \
         recorder switched between rounds).\n\n\
         | system | plain | max_retries(3) | retries ratio (<= 1.1x) | timeline on | timeline ratio (<= 1.3x) |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut rows = Vec::new();
    for system in systems::chosen(options) {
        let label = format!("unidist-rs-{}", system.mode);
        let Some(bin) = systems::binary_for(&system, builds, (&label, "costs"), notes) else {
            continue;
        };
        let started = std::time::Instant::now();
        let mut rates = Rates::default();
        for n in 0..2 * PAIRS {
            one_process(&system, &bin, &mut rates, n);
        }
        let plain = median(&rates.plain_off);
        let retries = median(&rates.retries_off);
        let on = median(&rates.plain_on);
        let retries_ratio = plain.zip(retries).map(|(p, r)| p / r);
        let timeline_ratio = plain.zip(on).map(|(p, t)| p / t);
        let num = |v: Option<f64>| v.map_or("-".into(), fmt_num);
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} |",
            num(plain),
            num(retries),
            ratio_cell(retries_ratio, RETRIES_TARGET),
            num(on),
            ratio_cell(timeline_ratio, TIMELINE_TARGET),
        );
        for p in &rates.problems {
            notes.push(format!("{label} costs: {p}"));
        }
        println!("==> {label} costs took {}", human(started.elapsed()));
        rows.push(json!({
            "system": label,
            "plain_tasks_per_s": rates.plain_off,
            "retries3_tasks_per_s": rates.retries_off,
            "timeline_plain_tasks_per_s": rates.plain_on,
            "retries_ratio": retries_ratio,
            "timeline_ratio": timeline_ratio,
            "problems": rates.problems,
        }));
    }
    Costs {
        markdown: md,
        json: json!({
            "targets": {"retries": RETRIES_TARGET, "timeline": TIMELINE_TARGET},
            "rows": rows,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratio_cells() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
        assert_eq!(ratio_cell(Some(1.05), 1.1), "1.05x ok");
        assert!(ratio_cell(Some(1.5), 1.3).contains("over 1.3x"));
        assert_eq!(ratio_cell(None, 1.1), "-");
    }
}
