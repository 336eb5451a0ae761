//! Lamellar, the Rust HPC runtime of active messages, as a peer of `cargo xtask bench`: the
//! program `bench/lamellar` (a workspace of its own, so that Lamellar's large dependency tree
//! can never break this project's build) built into `target/lamellar`, and run as
//! `lamellar-shmem` (3 processes on its shared-memory lamellae: PE 0 drives, PEs 1 and 2 run
//! the messages, like rank 0 and two workers of MPI SPMD) and `lamellar-local` (one process).
//! A failed build or run is a note under the table, never a failed benchmark.

use std::process::Command;
use std::time::Duration;

use super::systems::Run;
use super::{out_dir, Options};
use crate::util::{self, human, run_bounded, Bounds};

/// The build may take long: Lamellar is a large crate.
const BUILD_LIMIT: Duration = Duration::from_secs(40 * 60);
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Builds the program and runs both Lamellar systems; one run each (or a note on failure).
pub(super) fn run(options: &Options, notes: &mut Vec<String>) -> Vec<Run> {
    let root = util::root();
    let target = root.join("target").join("lamellar");
    let mut build = util::cargo();
    build
        .args(["build", "--release", "--manifest-path"])
        .arg(root.join("bench/lamellar/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target);
    println!("==> {}", util::describe(&build));
    let built = run_bounded(
        &mut build,
        &Bounds {
            limit: BUILD_LIMIT,
            last_line: None,
        },
    );
    let failed = match built {
        Ok(f) if f.status.is_some_and(|s| s.success()) => None,
        Ok(f) if f.timed_out => Some(format!("killed after {}", human(f.elapsed))),
        Ok(f) => Some(format!("{:?}", f.status)),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failed {
        notes.push(format!(
            "lamellar: the build failed ({why}); no Lamellar rows"
        ));
        return Vec::new();
    }
    let bin = target.join("release").join("unidist-bench-lamellar");
    let dir = out_dir().join("peers");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        notes.push(format!("lamellar: cannot create {}: {e}", dir.display()));
        return Vec::new();
    }
    [("lamellar-shmem", 3), ("lamellar-local", 1)]
        .into_iter()
        .map(|(label, pes)| {
            let path = dir.join(format!("{label}.json"));
            // PE 0 drives and writes the report; when it ends (its nested fib watchdog may end
            // it early) the other PEs get 10 s to leave the final barrier, then are stopped.
            let mut script = String::from("rm -f /dev/shm/lamellar_* 2>/dev/null; pids=; ");
            for pe in 0..pes {
                script.push_str(&format!(
                    "LAMELLAR_PE_ID={pe} \"$0\" --out \"$1\" --repeats {} {} & pids=\"$pids $!\"; ",
                    super::systems::repeats(options.quick),
                    if options.quick { "--quick" } else { "" }
                ));
            }
            script.push_str(
                "set -- $pids; first=$1; shift; wait $first; s=$?; \
                 for _ in $(seq 100); do a=; for p; do kill -0 $p 2>/dev/null && a=1; done; \
                 [ -z \"$a\" ] && break; sleep 0.1; done; \
                 kill \"$@\" 2>/dev/null; wait; rm -f /dev/shm/lamellar_* 2>/dev/null; exit $s",
            );
            let mut cmd = Command::new("bash");
            cmd.args(["-c", &script])
                .arg(&bin)
                .arg(&path)
                .env("LAMELLAR_BACKEND", if pes > 1 { "shmem" } else { "local" })
                .env("LAMELLAR_NUM_PES", pes.to_string())
                .env("LAMELLAR_JOB_ID", std::process::id().to_string())
                .env("LAMELLAR_THREADS", "2")
                .env("LAMELLAR_MEM_SIZE", (256u64 << 20).to_string());
            println!("==> {label}: {} PEs", pes);
            let finished = run_bounded(
                &mut cmd,
                &Bounds {
                    limit: RUN_LIMIT,
                    last_line: None,
                },
            );
            let (ended, elapsed) = match finished {
                Ok(f) if f.timed_out => (
                    Some(format!("killed after {} (time limit)", human(f.elapsed))),
                    Some(f.elapsed),
                ),
                Ok(f) if f.status.is_some_and(|s| s.success()) => (None, Some(f.elapsed)),
                Ok(f) => (
                    Some(format!("process ended with {:?}", f.status)),
                    Some(f.elapsed),
                ),
                Err(e) => (Some(format!("could not start: {e}")), None),
            };
            Run {
                label: label.to_string(),
                ours: false,
                mpi: false,
                path,
                ended,
                not_run: None,
                elapsed,
            }
        })
        .collect()
}
