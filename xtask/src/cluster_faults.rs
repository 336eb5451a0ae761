//! The cross-host rows of `cargo xtask test-backends`, run on the simulated cluster after the
//! conformance rows (`cluster_rows.rs`), on Open MPI: a host crash (every process of one host's
//! namespace killed) and a silent partition (its link set down), each in SPMD and spawn mode,
//! and a value over 2 GiB crossing hosts. A fault row checks the job's exit status and message,
//! that it ends within [`BOUND`] of the fault, and that no process is left on the hosts that can
//! still be reached (a cut-off host keeps what it ran; the row kills that afterwards). The
//! program is `mpi_hosts` (`tests/mpi/hosts.rs`), built beside the fault programs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::backends::{Impl, Launch};
use crate::cluster::{self, Cluster};
use crate::faults::{self, Lines};
use crate::util;

/// `UNIDIST_MPI_HEARTBEAT` in the fault rows, in seconds.
const HEARTBEAT: u64 = 3;
/// From the fault to the end of every process on the reachable hosts: the heartbeat and 10 s.
const BOUND: Duration = Duration::from_secs(HEARTBEAT + 10);
/// From the fault to the end of the launcher (`mpirun`): it waits for its daemon on a cut-off
/// host until its own keepalive gives up on it.
const LAUNCHER_LIMIT: Duration = Duration::from_secs(60);
/// How long a job gets to start and report `ready`.
const READY_LIMIT: Duration = Duration::from_secs(90);
/// `UNIDIST_MPI_HEARTBEAT` in the row of the large value, in seconds.
const BIG_HEARTBEAT: u64 = 60;
/// How long the job of the large value gets (about 4.3 GiB cross the simulated network).
const BIG_LIMIT: Duration = Duration::from_secs(300);
/// Workers of the spawn rows: more than the two other hosts, so that both get some.
const SPAWN_WORKERS: u32 = 3;

/// What happens to the last host once the job is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Every process of the host is killed.
    Crash,
    /// The host's link is set down; its processes live on, cut off.
    Partition,
}

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::Crash => "host crash",
            Fault::Partition => "partition",
        }
    }
}

/// The fault rows: each fault in SPMD (one rank a host) and spawn mode.
pub(crate) fn cases(hosts: u32) -> Vec<(Fault, Launch)> {
    let mut cases = Vec::new();
    for fault in [Fault::Crash, Fault::Partition] {
        cases.push((fault, Launch::Spmd { np: hosts }));
        cases.push((
            fault,
            Launch::Spawn {
                cpus: SPAWN_WORKERS,
            },
        ));
    }
    cases
}

/// `mpi spmd openmpi cluster partition`.
pub(crate) fn label(backend: &str, fault: Fault, launch: Launch) -> String {
    let mode = match launch {
        Launch::Spawn { .. } => "spawn",
        _ => "spmd",
    };
    format!("{backend} {mode} openmpi cluster {}", fault.label())
}

/// The job of `mpi_hosts MODE` on `cluster`, rank 0 on the first host, with the environment
/// that makes a lost host show within the bound: the heartbeat, and Open MPI's own daemon
/// links probed after 2 s of silence (its default waits 300 s, then 9 probes 20 s apart).
fn job(cluster: &Cluster, backend: &str, bin: &Path, launch: Launch, mode: &str) -> Command {
    // The large value runs with a long bound: on this two-core machine, loaded by the other
    // ranks, 2 GiB take about a minute to cross, and a rank was seen silent for over 10 s while
    // they did (not yet understood; see docs/cluster.md).
    let heartbeat = if mode == "hold" {
        HEARTBEAT
    } else {
        BIG_HEARTBEAT
    };
    let imp = Impl::OpenMpi;
    let mut cmd = match launch {
        Launch::Spmd { np } => {
            let slots: Vec<String> = cluster.hosts.iter().map(|h| format!("{h}:1")).collect();
            let mut c = Command::new(imp.mpiexec());
            c.args(["-n", &np.to_string(), "--host", &slots.join(",")]);
            c.arg(bin).env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false");
            c
        }
        _ => {
            let mut c = Command::new(bin);
            c.env("UNIDIST_IS_MPI_SPAWN_WORKERS", "true")
                .env("UNIDIST_CPUS", SPAWN_WORKERS.to_string())
                .env("UNIDIST_MPI_HOSTS", cluster.hosts[1..].join(","));
            c
        }
    };
    cmd.arg(mode)
        .envs(imp.env().iter().copied())
        .envs(cluster.mpi_env())
        .env("UNIDIST_BACKEND", backend)
        .env("OMPI_MCA_oob_tcp_keepalive_time", "2")
        .env("OMPI_MCA_oob_tcp_keepalive_intvl", "1")
        .env("OMPI_MCA_oob_tcp_keepalive_probes", "3")
        .env_remove("UNIDIST_MPI_SPAWN")
        .current_dir(util::root());
    cmd.env("UNIDIST_MPI_HEARTBEAT", heartbeat.to_string());
    let mut inside = cluster.inside(&cluster.hosts[0], &cmd);
    inside
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    use std::os::unix::process::CommandExt;
    inside.process_group(0);
    inside
}

/// Runs one fault row; returns how long the job took from the fault to its end.
pub(crate) fn run_fault(
    cluster: &Cluster,
    backend: &str,
    bin: &Path,
    fault: Fault,
    launch: Launch,
) -> Result<Duration, String> {
    let victim = cluster
        .hosts
        .last()
        .cloned()
        .ok_or("the cluster has no host")?;
    let (mut child, lines, root) = start_ready(cluster, backend, bin, launch)?;
    let pgid = child.id();
    let outcome = fault_and_watch(cluster, &mut child, &root, &victim, fault, launch);
    util::kill_group(pgid);
    let _ = child.kill();
    let _ = child.wait();
    // The cut-off host kept what it ran: it is cleaned up here, and the link set up again.
    cluster.kill_processes();
    if fault == Fault::Partition {
        let _ = cluster::ip(&["-n", &victim, "link", "set", "eth0", "up"]);
        // The next row must not start on a link still coming up, or with neighbour entries
        // that failed during the cut (once, in a spawn row right after this one, a worker on
        // the healed host never joined; the cause was not found, so both are ruled out here).
        cluster::wait_link_up(&victim);
        for h in &cluster.hosts {
            let _ = cluster::ip(&["-n", h, "neigh", "flush", "all"]);
        }
    }
    let (status, took) = outcome?;
    let output = lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    check(fault, status, &output)?;
    Ok(took)
}

/// Starts the job of a fault row and waits for rank 0's `ready`; returns the launcher, the
/// job's output and rank 0's pid. A job that does not get ready is launched once more, the
/// first failure printed with the processes each host ran then: no fault was made yet, so the
/// row's subject is not reached. In about one run of three of the cluster rows, the spawn row
/// of a partition (right after the SPMD one) had a worker that never joined within rank 0's
/// 30 s; the cause is not found, and the processes printed here are the evidence for it.
fn start_ready(
    cluster: &Cluster,
    backend: &str,
    bin: &Path,
    launch: Launch,
) -> Result<(Child, Lines, String), String> {
    let mut first: Option<String> = None;
    loop {
        let mut child = job(cluster, backend, bin, launch, "hold")
            .spawn()
            .map_err(|e| format!("cannot start the job: {e}"))?;
        let (lines, rx) = faults::read_lines(&mut child);
        let why = match wait_ready(&mut child, &rx) {
            Ok(root) => return Ok((child, lines, root)),
            Err(why) => why,
        };
        let seen: Vec<String> = cluster
            .hosts
            .iter()
            .flat_map(|h| described_pids(h))
            .collect();
        util::kill_group(child.id());
        let _ = child.kill();
        let _ = child.wait();
        cluster.kill_processes();
        let output = joined(&lines);
        let tail: Vec<&str> = output.lines().rev().take(2).collect();
        let failure = format!(
            "{why} (processes on the hosts then: {}; last output: {})",
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            },
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
        if let Some(first) = first {
            return Err(format!("{first}; launched again: {failure}"));
        }
        println!("==> the job did not get ready, so no fault was made: {failure}; launching it once more");
        first = Some(failure);
    }
}

/// Makes the fault on `victim` once the job is ready (rank 0's pid `root`), then waits until
/// rank 0 has ended and no process of the job (ranks, Open MPI daemons) is left on the
/// reachable hosts, within [`BOUND`] of the fault; then for the launcher (`mpirun` in SPMD
/// mode; rank 0 itself in spawn mode) within [`LAUNCHER_LIMIT`]. Returns the launcher's status
/// and the time to the first point.
fn fault_and_watch(
    cluster: &Cluster,
    child: &mut Child,
    root: &str,
    victim: &str,
    fault: Fault,
    launch: Launch,
) -> Result<(std::process::ExitStatus, Duration), String> {
    if !host_runs(victim, "mpi_hosts") {
        return Err(format!(
            "no worker of the job runs on {victim} ({launch:?})"
        ));
    }
    let at = Instant::now();
    match fault {
        Fault::Crash => cluster::kill_in(victim),
        Fault::Partition => cluster::ip(&["-n", victim, "link", "set", "eth0", "down"])?,
    }
    let launcher = child.id().to_string();
    let reachable: Vec<&String> = cluster.hosts.iter().filter(|h| *h != victim).collect();
    let job_left = || -> Vec<String> {
        let mut left: Vec<String> = reachable
            .iter()
            .flat_map(|h| described_pids(h))
            .filter(|p| !p.starts_with(&format!("{launcher} ")) && !p.contains("(mpiexec"))
            .collect();
        if Path::new(&format!("/proc/{root}")).exists() && !is_zombie(root) {
            left.push(format!("rank 0 ({root})"));
        }
        left
    };
    loop {
        let left = job_left();
        if left.is_empty() {
            break;
        }
        if at.elapsed() > BOUND {
            return Err(format!(
                "processes of the job left on reachable hosts {} after the {} (heartbeat \
                 {HEARTBEAT} s + 10 s): {}",
                util::human(BOUND),
                fault.label(),
                left.join(", ")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone = at.elapsed();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if at.elapsed() > LAUNCHER_LIMIT {
            return Err(format!(
                "the job's processes ended {} after the {}, but the launcher did not end \
                 within {}",
                util::human(gone),
                fault.label(),
                util::human(LAUNCHER_LIMIT)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "==> {}: rank 0 and every process of the job on the reachable hosts ended {} after the \
         fault, the launcher after {}",
        fault.label(),
        util::human(gone),
        util::human(at.elapsed())
    );
    Ok((status, gone))
}

/// Whether process `pid` has ended but is not yet reaped.
fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Waits for rank 0's `ready <pid>` line; returns the pid.
fn wait_ready(child: &mut Child, rx: &mpsc::Receiver<String>) -> Result<String, String> {
    let started = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(pid) = line.strip_prefix("ready ") {
                    return Ok(pid.trim().to_string());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the job closed its output before rank 0 was ready".into())
            }
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("the job ended before rank 0 was ready ({st})"));
        }
        if started.elapsed() > READY_LIMIT {
            return Err(format!(
                "rank 0 was not ready within {}",
                util::human(READY_LIMIT)
            ));
        }
    }
}

/// `pid (name)` of every process in `host`'s namespace.
fn described_pids(host: &str) -> Vec<String> {
    cluster::pids_in(host)
        .into_iter()
        .map(|pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("{pid} ({}) on {host}", name.trim())
        })
        .collect()
}

fn host_runs(host: &str, program: &str) -> bool {
    described_pids(host)
        .iter()
        .any(|p| p.contains(&format!("({program})")))
}

/// The expected outcome: a non-zero status, and rank 0's `WorkerLost` naming the rank and the
/// host, saying for a partition that the peer stopped answering. After a crash Open MPI's
/// runtime may end the job first (it lost a daemon, in SPMD and in spawn mode); its own message
/// is then the report.
fn check(fault: Fault, status: std::process::ExitStatus, output: &str) -> Result<(), String> {
    if status.success() {
        return Err(format!("the job exited 0 after the {}", fault.label()));
    }
    let reported = output.lines().find(|l| l.starts_with("hosts: lost after"));
    let named = reported.is_some_and(|l| {
        l.contains("WorkerLost") && l.contains(" was lost (") && l.contains("on host 10.77.0.")
    });
    match fault {
        Fault::Partition => {
            let Some(line) = reported.filter(|_| named) else {
                return Err("rank 0 did not report WorkerLost naming the rank and host".into());
            };
            if !line.contains("stopped answering") || line.contains("process") {
                return Err(format!("the partition was reported as {line:?}"));
            }
        }
        Fault::Crash => {
            let launcher = output.contains("lost communication with a remote daemon")
                || output.contains("ORTE has lost communication");
            if !(named || launcher) {
                return Err(
                    "neither rank 0 (WorkerLost naming the rank and host) nor the launcher \
                     reported the crashed host"
                        .into(),
                );
            }
        }
    }
    Ok(())
}

/// The large value: `mpi_hosts big` in SPMD mode, one rank a host.
pub(crate) fn run_big(cluster: &Cluster, backend: &str, bin: &Path) -> Result<Duration, String> {
    let np = u32::try_from(cluster.hosts.len()).unwrap_or(3);
    let started = Instant::now();
    let mut child = job(cluster, backend, bin, Launch::Spmd { np }, "big")
        .spawn()
        .map_err(|e| format!("cannot start the job: {e}"))?;
    let pgid = child.id();
    let (lines, _rx) = faults::read_lines(&mut child);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Ok(st),
            Ok(None) if started.elapsed() > BIG_LIMIT => {
                break Err(format!(
                    "the job did not end within {}",
                    util::human(BIG_LIMIT)
                ))
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => break Err(e.to_string()),
        }
    };
    util::kill_group(pgid);
    let _ = child.kill();
    let _ = child.wait();
    cluster.kill_processes();
    let status = status?;
    let output = joined(&lines);
    if status.success() && output.contains("hosts: big value ok") {
        Ok(started.elapsed())
    } else {
        Err(format!(
            "the value over 2 GiB did not cross hosts unchanged ({status})"
        ))
    }
}

fn joined(lines: &Lines) -> String {
    lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_runs_in_both_modes() {
        let labels: Vec<String> = cases(3)
            .into_iter()
            .map(|(f, l)| label("b", f, l))
            .collect();
        assert_eq!(
            labels,
            [
                "b spmd openmpi cluster host crash",
                "b spawn openmpi cluster host crash",
                "b spmd openmpi cluster partition",
                "b spawn openmpi cluster partition",
            ]
        );
    }

    #[cfg(unix)]
    fn status(code: i32) -> std::process::ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        std::process::ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn a_partition_must_be_reported_as_silence() {
        let silent = "hosts: lost after 3.1 s: WorkerLost: a call or object was lost with its \
                      worker: rank 2 was lost (it stopped answering: no message from it for 3 s), \
                      on host 10.77.0.3";
        assert!(check(Fault::Partition, status(1), silent).is_ok());
        let ended = silent.replace("it stopped answering", "its process 9 ended");
        assert!(check(Fault::Partition, status(1), &ended).is_err());
        assert!(check(Fault::Partition, status(0), silent).is_err());
        assert!(check(Fault::Partition, status(1), "nothing").is_err());
    }

    #[test]
    fn a_crash_may_be_reported_by_the_launcher() {
        let launcher = "ORTE has lost communication with a remote daemon.";
        assert!(check(Fault::Crash, status(1), launcher).is_ok());
        assert!(check(Fault::Crash, status(1), "nothing said").is_err());
    }
}
