//! The timeline on the in-process backends: the trace written at `shutdown` parses as trace
//! event JSON with every task once and a positive duration, actor calls named by their method,
//! flow events in pairs; a trace that cannot be written is an error from `shutdown`, which
//! still ends the runtime.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::Value as Json;
use unidist::config::Timeline;

/// Tests take turns at the runtime and its configuration, which are process-wide.
static TURN: Mutex<()> = Mutex::new(());

/// Tasks of the traced workload.
const TASKS: i64 = 12;

/// A task with a name no other code here records.
#[unidist::remote]
fn traced_square(x: i64) -> i64 {
    std::thread::sleep(std::time::Duration::from_millis(2));
    x * x
}

/// An actor whose method shows up by name.
pub struct Tally {
    n: i64,
}

#[unidist::actor]
impl Tally {
    /// Starts at `n`.
    pub fn new(n: i64) -> Self {
        Tally { n }
    }

    /// Adds `x` and returns the sum so far.
    pub fn bump(&mut self, x: i64) -> i64 {
        self.n += x;
        self.n
    }
}

/// A fresh directory under the target's temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("unidist-timeline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The events of phase `ph`.
fn phase<'a>(events: &'a [Json], ph: &str) -> Vec<&'a Json> {
    events.iter().filter(|e| e["ph"] == ph).collect()
}

/// Runs the workload on `backend` with the timeline on and returns the parsed trace.
fn traced_run(backend: unidist::config::BackendName, path: &std::path::Path) -> Vec<Json> {
    unidist::config::Backend::put(backend).expect("choosing the backend");
    Timeline::put(Some(path.display().to_string())).expect("timeline path");
    unidist::init().expect("init");
    let refs: Vec<_> = (0..TASKS).map(traced_square::remote).collect();
    let squares = unidist::get_all(&refs).expect("get_all");
    assert_eq!(squares.len(), TASKS as usize);
    let tally = Tally::remote(0);
    let sums = [tally.bump(1), tally.bump(2)];
    assert_eq!(unidist::get_all(&sums).expect("get_all"), vec![1, 3]);
    unidist::shutdown().expect("shutdown writes the trace");
    Timeline::put(None).expect("timeline off");
    let text = std::fs::read_to_string(path).expect("the trace file");
    let trace: Json = serde_json::from_str(&text).expect("the trace is JSON");
    trace["traceEvents"]
        .as_array()
        .expect("traceEvents is an array")
        .clone()
}

#[test]
fn the_trace_has_every_task_once_and_flows_in_pairs() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("pairs");
    for backend in unidist::in_process_backends() {
        let path = dir.join(format!("{backend}.json"));
        let events = traced_run(backend, &path);
        let complete = phase(&events, "X");
        let tasks: Vec<_> = complete
            .iter()
            .filter(|e| e["cat"] == "task")
            .filter(|e| {
                e["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("traced_square"))
            })
            .collect();
        assert_eq!(
            tasks.len(),
            TASKS as usize,
            "[{backend}] tasks in {events:?}"
        );
        for t in &tasks {
            let dur = t["dur"].as_f64().expect("dur is a number");
            assert!(dur > 0.0, "[{backend}] a task of no duration: {t}");
            assert_eq!(t["pid"], 0, "[{backend}] {t}");
        }
        let bumps = complete
            .iter()
            .filter(|e| {
                e["cat"] == "actor_call" && e["name"].as_str().is_some_and(|n| n.ends_with("bump"))
            })
            .count();
        assert_eq!(bumps, 2, "[{backend}] actor calls");
        assert_eq!(
            complete
                .iter()
                .filter(|e| e["cat"] == "actor_create")
                .count(),
            1,
            "[{backend}] actor creations"
        );
        assert!(
            complete.iter().any(|e| e["cat"] == "get"),
            "[{backend}] the driver's get_all is not in the trace"
        );
        // Every submission's flow ends exactly once where the work ran.
        let mut flows: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
        for e in phase(&events, "s") {
            flows
                .entry(e["id"].as_u64().expect("flow id"))
                .or_default()
                .0 += 1;
        }
        for e in phase(&events, "f") {
            flows
                .entry(e["id"].as_u64().expect("flow id"))
                .or_default()
                .1 += 1;
        }
        assert_eq!(
            flows.len(),
            TASKS as usize + 3,
            "[{backend}] flows {flows:?}"
        );
        assert!(
            flows.values().all(|c| *c == (1, 1)),
            "[{backend}] unpaired flows {flows:?}"
        );
        // One process, named after its rank and host; every thread used is named.
        let meta = phase(&events, "M");
        assert!(meta.iter().any(|m| m["name"] == "process_name"
            && m["args"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("rank 0 ("))));
        for t in &tasks {
            assert!(
                meta.iter()
                    .any(|m| m["name"] == "thread_name" && m["tid"] == t["tid"]),
                "[{backend}] thread {} has no name",
                t["tid"]
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_trace_that_cannot_be_written_fails_shutdown_which_still_ends() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let dir = scratch("unwritable");
    let path = dir.join("trace.json");
    let backend = unidist::in_process_backends()[0];
    unidist::config::Backend::put(backend).expect("choosing the backend");
    Timeline::put(Some(path.display().to_string())).expect("timeline path");
    unidist::init().expect("init");
    assert_eq!(unidist::get(&traced_square::remote(3)).expect("get"), 9);
    // The directory disappears while the program runs.
    std::fs::remove_dir_all(&dir).expect("removing the directory");
    let err = unidist::shutdown().expect_err("the trace cannot be written");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "the error does not name the path: {err}"
    );
    assert!(!unidist::is_initialized(), "the runtime still runs");
    Timeline::put(None).expect("timeline off");
}

#[test]
fn init_fails_naming_the_variable_and_a_missing_directory() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let path = scratch("missing").join("no-such-dir").join("trace.json");
    unidist::config::Backend::put(unidist::in_process_backends()[0]).expect("backend");
    Timeline::put(Some(path.display().to_string())).expect("timeline path");
    let err = unidist::init().expect_err("the directory does not exist");
    Timeline::put(None).expect("timeline off");
    assert_eq!(err.kind(), unidist::ErrorKind::Config);
    let message = err.to_string();
    assert!(
        message.contains("UNIDIST_TIMELINE") && message.contains(&path.display().to_string()),
        "{message}"
    );
    assert!(!unidist::is_initialized());
}
