//! The Python peers: environments made by `bench/peers/setup.sh` under `target/bench-venvs`,
//! runs by `bench/peers/run.sh` into `target/bench/peers`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::systems::Run;
use super::{out_dir, Options};
use crate::util::{self, human, run_bounded, Bounds};

/// The peers and workloads of `--quick`: one system of each kind that starts fast, and the
/// workloads that take well under a second each (cpu_scaling and nested_fib cost seconds to
/// tens of seconds per peer, and nested_fib mostly measures how a peer fails; big_object is
/// full mode only everywhere).
const QUICK_SYSTEMS: &str =
    "unidist-pyseq,unidist-pymp,unidist-mpi-mpich-spmd,unidist-mpi-openmpi-spawn,ray-native,dask-native";
const QUICK_WORKLOADS: &str =
    "async_empty_tasks,sync_round_trip,put_get_small,put_get_large,task_sum_large,actor_async_calls,actor_sync_call,\
     vec_f64_by_ref,buffer_f64_by_ref,bytes_round_trip,string_round_trip";

/// Limit per peer run (run.sh applies it; it is also the basis of the outer bound). The full
/// run holds the 2.5 GiB big_object row, bounded at 240 s inside the run.
fn run_limit(quick: bool) -> u64 {
    if quick {
        90
    } else {
        600
    }
}

/// Creates the environments (a no-op when they exist) and runs every peer that installed.
pub(super) fn run(options: &Options, notes: &mut Vec<String>) -> Vec<Run> {
    let root = util::root();
    let env_root = root.join("target").join("bench-venvs");
    let peers_dir = out_dir().join("peers");
    let set = set_up(&env_root, "peers", notes);
    let mut names = set.names;
    if names.is_empty() {
        notes.push(format!(
            "no peer environment could be created (network: {}): the table holds this \
             project's rows only",
            set.network
        ));
        println!("==> peers: none available; this project's rows only");
        return Vec::new();
    }
    if options.quick {
        names.retain(|n| QUICK_SYSTEMS.split(',').any(|q| q == n));
        notes.push(format!(
            "--quick: peers limited to {QUICK_SYSTEMS} and workloads {QUICK_WORKLOADS}"
        ));
    }

    let mut cmd = Command::new("bash");
    cmd.arg(root.join("bench/peers/run.sh"))
        .arg(&env_root)
        .arg(&peers_dir)
        .current_dir(&root)
        .env("PEER_RUN_TIMEOUT", run_limit(options.quick).to_string());
    if options.quick {
        cmd.arg("--quick")
            .args(["--systems", &names.join(",")])
            .args(["--only", QUICK_WORKLOADS]);
    }
    println!("==> {}", util::describe(&cmd));
    let limit = Duration::from_secs(names.len() as u64 * (run_limit(options.quick) + 30) + 60);
    let bounds = Bounds {
        limit,
        last_line: None,
    };
    match run_bounded(&mut cmd, &bounds) {
        Ok(f) if f.timed_out => notes.push(format!(
            "peer runs killed after {} (time limit)",
            human(f.elapsed)
        )),
        Ok(_) => {}
        Err(e) => notes.push(format!("peer runs could not start: {e}")),
    }
    collect_runs(names, &peers_dir)
}

/// What `setup.sh` reported for one set of environments.
pub(crate) struct EnvSet {
    /// What each ready environment provides (peers: system-modes; MPI implementations: their
    /// names), in the script's order.
    pub names: Vec<String>,
    /// The script's network line: `yes`, `no`, or why it was not checked.
    pub network: String,
}

/// Runs `setup.sh` for the environment set `set` (`peers` or `mpi-impls`) under `env_root`
/// (environments made earlier are kept) and returns what is available; failures become `notes`.
pub(crate) fn set_up(env_root: &Path, set: &str, notes: &mut Vec<String>) -> EnvSet {
    let root = util::root();
    let mut setup = Command::new("bash");
    setup
        .arg(root.join("bench/peers/setup.sh"))
        .arg(env_root)
        .args(["--set", set])
        .current_dir(&root);
    println!("==> {}", util::describe(&setup));
    // setup.sh has its own budget (PEER_SETUP_BUDGET, 30 min) and per-step limits.
    let bounds = Bounds {
        limit: Duration::from_secs(40 * 60),
        last_line: None,
    };
    match run_bounded(&mut setup, &bounds) {
        Ok(f) if f.timed_out => notes.push(format!(
            "{set} setup killed after {} (time limit)",
            human(f.elapsed)
        )),
        Ok(_) => {}
        Err(e) => notes.push(format!("{set} setup could not start: {e}")),
    }
    let available = std::fs::read_to_string(env_root.join("available.txt")).unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    let mut network = String::new();
    for line in available.lines() {
        if let Some(rest) = line.strip_prefix("# network: ") {
            network = rest.to_string();
        } else if let Some(rest) = line.strip_prefix("# unavailable: ") {
            notes.push(format!("{set} environment unavailable: {rest}"));
        } else if !line.starts_with('#') {
            if let Some(name) = line.split_whitespace().next() {
                names.push(name.to_string());
            }
        }
    }
    if network.is_empty() {
        network = "unknown".into();
    }
    EnvSet { names, network }
}

/// The runs of `names` as the peer runner's summary describes them.
fn collect_runs(names: Vec<String>, peers_dir: &Path) -> Vec<Run> {
    // summary.txt: `<name>.json exit=<rc> seconds=<s>[ (<note>)]`, one line per finished run.
    let summary = std::fs::read_to_string(peers_dir.join("summary.txt")).unwrap_or_default();
    names
        .into_iter()
        .map(|name| {
            let line = summary
                .lines()
                .find(|l| l.starts_with(&format!("{name}.json ")));
            let field = |key: &str| {
                line.and_then(|l| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .and_then(|v| v.parse::<u64>().ok())
                })
            };
            let note = line
                .and_then(|l| l.split_once(" ("))
                .map(|(_, n)| n.trim_end_matches(')'));
            let ended = match (line, field("exit="), note) {
                (None, _, _) => Some("did not run (the peer runner stopped first)".to_string()),
                (_, _, Some(n)) => Some(n.to_string()),
                (_, Some(0), None) => None,
                (_, Some(124 | 137), None) => Some(format!(
                    "killed after {} s (time limit)",
                    field("seconds=").unwrap_or(0)
                )),
                (_, rc, None) => Some(format!(
                    "process ended with exit status {}",
                    rc.map_or("unknown".into(), |r| r.to_string())
                )),
            };
            Run {
                path: peers_dir.join(format!("{name}.json")),
                label: name,
                ours: false,
                mpi: false,
                ended,
                not_run: None,
                elapsed: field("seconds=").map(Duration::from_secs),
            }
        })
        .collect()
}
