//! `cargo xtask bench --only scale`: the MPI backend with 2 to 32 ranks spread over 8 simulated
//! hosts (`cluster.rs`, 4 slots a host, ranks placed round robin by host, all oversubscribed on
//! this machine's cores): init time, task rate, rank 0's main-thread CPU time per task (the scheduling cost,
//! as a function of the number of workers) and every rank's resident memory, from
//! `unidist-bench scale` (`bench/src/scale.rs`). It writes `target/bench/scale.md` and
//! `scale.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::backend_table::{self, BackendEntry};
use crate::backends::Impl;
use crate::cluster::{self, Cluster};
use crate::util::{self, run_step};

/// Simulated hosts, and rank slots on each.
const HOSTS: u32 = 8;
const SLOTS: u32 = 4;
/// The worker counts measured: 1 to every slot but rank 0's.
const WORKERS: [u32; 5] = [1, 3, 7, 15, 31];
/// Empty tasks a round, and rounds a job.
const TASKS: u32 = 30_000;
const ROUNDS: u32 = 3;
/// `UNIDIST_MPI_HEARTBEAT` of the jobs, in seconds.
const HEARTBEAT: u32 = 120;
/// One job's time limit (32 ranks start slowly on two cores).
const JOB_LIMIT: Duration = Duration::from_secs(600);

/// One job's figures.
struct Figures {
    workers: u32,
    init_s: f64,
    tasks_per_s: f64,
    cpu_us_per_task: f64,
    rss_mib: Vec<f64>,
}

/// The MPI-launched backend of the table (the first, if ever there are several).
fn backend() -> Result<&'static BackendEntry, String> {
    backend_table::mpi_backends()
        .next()
        .ok_or_else(|| "the backend table has no MPI-launched backend".to_string())
}

fn build(backend: &BackendEntry) -> Result<PathBuf, String> {
    let imp = Impl::OpenMpi;
    if let Some(why) = imp.missing() {
        return Err(why);
    }
    let mut cmd = util::cargo();
    cmd.args(["build", "--release", "-p", "unidist-bench"]);
    for f in backend.features {
        cmd.args(["--features", f]);
    }
    cmd.env("MPICC", imp.mpicc())
        .env("CARGO_TARGET_DIR", imp.target_dir());
    println!("==> building: {}", util::describe(&cmd));
    run_step(&mut cmd)?;
    Ok(imp.target_dir().join("release").join("unidist-bench"))
}

/// Runs `unidist-bench scale` with `workers + 1` ranks; returns its report.
fn job(
    cluster: &Cluster,
    (backend, bin): (&str, &Path),
    workers: u32,
    out: &Path,
) -> Result<Figures, String> {
    let imp = Impl::OpenMpi;
    let slots: Vec<String> = cluster
        .hosts
        .iter()
        .map(|h| format!("{h}:{SLOTS}"))
        .collect();
    let file = out.join(format!("scale-{workers}.json"));
    let _ = std::fs::remove_file(&file);
    let mut cmd = Command::new(imp.mpiexec());
    cmd.args(["-n", &(workers + 1).to_string(), "--map-by", "node"])
        .args(["--host", &slots.join(",")])
        .arg(bin)
        .args(["scale", "--out"])
        .arg(&file)
        .args([
            "--tasks",
            &TASKS.to_string(),
            "--rounds",
            &ROUNDS.to_string(),
        ])
        .envs(imp.env().iter().copied())
        .envs(cluster.mpi_env())
        .env("UNIDIST_BACKEND", backend)
        .env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false")
        // 32 ranks on two cores starve communication threads for seconds: with the default
        // 10 s a worker once took rank 0 for lost in the middle of a round.
        .env("UNIDIST_MPI_HEARTBEAT", HEARTBEAT.to_string())
        .env_remove("UNIDIST_MPI_SPAWN")
        .current_dir(util::root());
    let mut inside = cluster.inside(&cluster.hosts[0], &cmd);
    println!("==> scale: {} workers", workers);
    let bounds = util::Bounds {
        limit: JOB_LIMIT,
        last_line: Some((
            |l: &str| l.starts_with("unidist-bench: done"),
            Duration::from_secs(20),
        )),
    };
    let finished = util::run_bounded(&mut inside, &bounds).map_err(|e| e.to_string())?;
    cluster.kill_processes();
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "no report from the {workers}-worker job ({}{}): {e}",
            if finished.timed_out {
                "timed out, "
            } else {
                ""
            },
            finished
                .status
                .map_or("killed".to_string(), |s| s.to_string())
        )
    })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let num = |k: &str| {
        v[k].as_f64()
            .ok_or(format!("{}: no number {k}", file.display()))
    };
    Ok(Figures {
        workers,
        init_s: num("init_s")?,
        tasks_per_s: num("tasks_per_s_median")?,
        cpu_us_per_task: num("rank0_cpu_us_per_task_median")?,
        rss_mib: v["rss_mib"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default(),
    })
}

fn markdown(rows: &[Figures]) -> String {
    let mut md = format!(
        "### Scale: one job across {HOSTS} simulated hosts (MPI SPMD, Open MPI, ranks round \
         robin over the hosts, all on this machine's cores)\n\n\
         | workers | ranks | init (s) | empty tasks/s ({TASKS} at once, median of {ROUNDS}) \
         | rank 0 main thread CPU per task (µs): submit and schedule | resident memory per rank (MiB, mean / max) | ranks seen |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in rows {
        let n = r.rss_mib.len().max(1) as f64;
        let mean = r.rss_mib.iter().sum::<f64>() / n;
        let max = r.rss_mib.iter().copied().fold(0.0, f64::max);
        md.push_str(&format!(
            "| {} | {} | {:.2} | {:.0} | {:.1} | {:.1} / {:.1} | {} |\n",
            r.workers,
            r.workers + 1,
            r.init_s,
            r.tasks_per_s,
            r.cpu_us_per_task,
            mean,
            max,
            r.rss_mib.len()
        ));
    }
    md
}

/// Runs the scale group; returns the exit code.
pub(crate) fn run(out: &Path) -> i32 {
    if let Some(why) = cluster::missing() {
        eprintln!("xtask bench --only scale: {why}");
        return 1;
    }
    let bin = match backend().and_then(|b| build(b).map(|bin| (b.name, bin))) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xtask bench --only scale: {e}");
            return 1;
        }
    };
    let cluster = match Cluster::up(HOSTS) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xtask bench --only scale: cannot bring the cluster up: {e}");
            return 1;
        }
    };
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for w in WORKERS {
        match job(&cluster, (bin.0, &bin.1), w, out) {
            Ok(f) => rows.push(f),
            Err(e) => failures.push(e),
        }
    }
    if let Err(e) = cluster::down() {
        failures.push(format!("taking the cluster down failed: {e}"));
    }
    let md = markdown(&rows);
    println!("\n{md}");
    for f in &failures {
        println!("scale: {f}");
    }
    let json: Vec<Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "workers": r.workers, "init_s": r.init_s, "tasks_per_s": r.tasks_per_s,
                "rank0_cpu_us_per_task": r.cpu_us_per_task, "rss_mib": r.rss_mib,
            })
        })
        .collect();
    let written = std::fs::write(out.join("scale.md"), &md)
        .and_then(|()| std::fs::write(out.join("scale.json"), Value::Array(json).to_string()));
    if let Err(e) = written {
        eprintln!("xtask bench --only scale: cannot write the report: {e}");
        return 1;
    }
    println!("wrote {0}/scale.md and {0}/scale.json", out.display());
    i32::from(!failures.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_job_with_mean_and_max_memory() {
        let rows = [Figures {
            workers: 3,
            init_s: 1.5,
            tasks_per_s: 12345.4,
            cpu_us_per_task: 20.04,
            rss_mib: vec![10.0, 20.0, 30.0, 40.0],
        }];
        let md = markdown(&rows);
        assert!(
            md.contains("| 3 | 4 | 1.50 | 12345 | 20.0 | 25.0 / 40.0 | 4 |"),
            "{md}"
        );
        assert_eq!(md.lines().filter(|l| l.starts_with("| 3 ")).count(), 1);
    }
}
