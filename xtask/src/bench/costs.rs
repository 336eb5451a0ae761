//! The cost rows: async empty tasks with `max_retries(3)` against without (target within 1.1x),
//! and with the timeline recording against without (target within 1.3x), on every system of
//! this project, when nothing fails.
//!
//! A backend that runs in one process switches the recorder on and off itself: each of its
//! `2 * PAIRS` processes runs `unidist-bench costs --toggle-timeline` with `UNIDIST_TIMELINE`
//! set, and every round measures plain, retried and recorded submissions of
//! [`LOCAL_TASKS`] tasks, in a rotating order. A backend launched through MPI cannot switch
//! its workers' recorders from rank 0: it runs in [`PAIRS`] pairs of processes, one with
//! `UNIDIST_TIMELINE` set and one without, alternating which goes first; inside each process
//! the plain and the retried submissions alternate. The retries ratio pools the rounds without
//! the timeline; the timeline ratio compares the plain rates with the recorder on and off. A
//! ratio is the median plain rate over the median rate with the feature, so 1.00 means free
//! and larger is slower.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::report::fmt_num;
use super::systems::{self, Builds};
use super::{out_dir, Options};
use crate::util::human;

/// Processes with and without the timeline, per system.
const PAIRS: usize = 3;
/// Tasks per submission on the in-process backends, which run a million or more a second: a
/// round of the default 20,000 would last about 10 ms, shorter than the machine's hiccups.
const LOCAL_TASKS: usize = 50_000;
/// Rounds per process on the in-process backends (the recording, and the trace written at
/// `shutdown`, hold the recorded rounds: about a million events).
const LOCAL_ROUNDS: usize = 7;
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

/// How one process of the cost rows runs.
#[derive(Clone, Copy, PartialEq)]
enum Recorder {
    Off,
    On,
    /// On and off between rounds, in the process itself (`--toggle-timeline`).
    Toggled,
}

/// Runs one process of `system` with the recorder as `recorder` says.
fn one_process(
    system: &systems::System,
    bin: &Path,
    recorder: Recorder,
    rates: &mut Rates,
    n: usize,
) {
    let dir = out_dir().join("costs");
    let timeline = recorder != Recorder::Off;
    let tag = match recorder {
        Recorder::Off => "plain",
        Recorder::On => "timeline",
        Recorder::Toggled => "toggled",
    };
    let report = dir.join(format!("{}-{tag}-{n}.json", system.mode));
    let trace = dir.join(format!("{}-{n}-trace.json", system.mode));
    let mut cmd = systems::command(system, bin);
    cmd.arg("costs").arg("--out").arg(&report);
    if recorder == Recorder::Toggled {
        cmd.arg("--toggle-timeline")
            .args(["--tasks", &LOCAL_TASKS.to_string()])
            .args(["--rounds", &LOCAL_ROUNDS.to_string()]);
    }
    if timeline {
        cmd.env("UNIDIST_TIMELINE", &trace);
    } else {
        cmd.env_remove("UNIDIST_TIMELINE");
    }
    let (ended, _) = systems::run_limited(&mut cmd, Duration::from_secs(300), true);
    if let Some(e) = ended {
        rates.problems.push(format!("{tag} process {n}: {e}"));
    }
    let doc: Option<Value> = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let Some(doc) = doc else {
        rates.problems.push(format!("{tag} process {n}: no report"));
        return;
    };
    if doc["timeline"].as_bool() != Some(timeline) {
        rates
            .problems
            .push(format!("{tag} process {n}: the timeline was not as asked"));
    }
    match recorder {
        Recorder::On => rates.plain_on.extend(floats(&doc, "plain_tasks_per_s")),
        Recorder::Off | Recorder::Toggled => {
            rates.plain_off.extend(floats(&doc, "plain_tasks_per_s"));
            rates
                .retries_off
                .extend(floats(&doc, "retries3_tasks_per_s"));
            rates.plain_on.extend(floats(&doc, "timeline_tasks_per_s"));
        }
    }
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
         `max_retries(3)` against none, in the same processes. Timeline: on the in-process \
         backends, rounds with the recorder on against rounds with it off in the same \
         processes; on MPI, processes with `UNIDIST_TIMELINE` set against processes without, \
         alternating.\n\n\
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
        for n in 0..PAIRS {
            let order = match (system.mpi, n.is_multiple_of(2)) {
                (None, _) => [Recorder::Toggled; 2],
                (Some(_), true) => [Recorder::Off, Recorder::On],
                (Some(_), false) => [Recorder::On, Recorder::Off],
            };
            for (i, recorder) in order.into_iter().enumerate() {
                one_process(&system, &bin, recorder, &mut rates, 2 * n + i);
            }
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
