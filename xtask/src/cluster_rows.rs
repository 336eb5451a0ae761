//! The cluster rows of `cargo xtask test-backends`: the conformance suite across three simulated
//! hosts (`cluster.rs`), with rank 0 on the first host and TCP between hosts: SPMD on Open MPI
//! (`--host h1:1,h2:1,h3:1`), spawn on Open MPI (`UNIDIST_MPI_HOSTS` naming the other two
//! hosts) and SPMD on MPICH (`-launcher rsh -launcher-exec AGENT -hosts h1,h2,h3`). They reuse
//! the conformance binary each implementation's rows built, bring the cluster up once and take
//! it down after the last of them. Without root or `ip netns` they are skipped with the reason,
//! which is not a failure, in CI either.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::backend_table;
use crate::backends::{self, Flavour, Impl, Launch, Options, Report, Row, Verdict};
use crate::cluster::{self, Cluster};
use crate::cluster_faults;
use crate::mpi_impls::Family;

/// Hosts of the cluster rows.
const HOSTS: u32 = 3;
/// Workers of the spawn row: more than the two other hosts, so that both get some.
const SPAWN_WORKERS: u32 = 3;

/// The cluster rows of every MPI-launched backend, as the rows whose launch they run.
fn rows() -> Vec<Row> {
    let launches = [
        (Impl::OpenMpi, Launch::Spmd { np: HOSTS }),
        (
            Impl::OpenMpi,
            Launch::Spawn {
                cpus: SPAWN_WORKERS,
            },
        ),
        (Impl::Mpich, Launch::Spmd { np: HOSTS }),
    ];
    let mut rows = Vec::new();
    for b in backend_table::mpi_backends() {
        for (imp, launch) in launches {
            rows.push(Row {
                backend: b.name,
                features: b.features,
                mpi: Some(imp),
                launch,
                shared_store: true,
            });
        }
    }
    rows
}

/// Whether `options` select any cluster row.
pub(crate) fn selects_any(options: &Options) -> bool {
    rows().iter().any(|r| options.selects_cluster(r))
}

/// `mpi spmd openmpi cluster 3 hosts`.
fn label(row: &Row) -> String {
    let mode = match row.launch {
        Launch::Spawn { .. } => "spawn",
        _ => "spmd",
    };
    let imp = row.mpi.map_or("", Impl::name);
    format!("{} {mode} {imp} cluster {HOSTS} hosts", row.backend)
}

/// What `mpiexec` needs, before the binary, to place one rank on each host.
fn launcher_args(imp: Impl, hosts: &[String]) -> Vec<String> {
    match imp.family() {
        Family::OpenMpi => {
            let slots: Vec<String> = hosts.iter().map(|h| format!("{h}:1")).collect();
            vec!["--host".into(), slots.join(",")]
        }
        Family::Mpich => vec![
            "-launcher".into(),
            "rsh".into(),
            "-launcher-exec".into(),
            cluster::agent_path().display().to_string(),
            "-hosts".into(),
            hosts.join(","),
        ],
    }
}

fn skipped(label: String, why: String) -> Report {
    Report {
        label,
        verdict: Verdict::Skipped(why),
        passed: 0,
        failed: 0,
        elapsed: None,
    }
}

pub(crate) fn failed(label: String, why: String) -> Report {
    Report {
        label,
        verdict: Verdict::Failed(why),
        passed: 0,
        failed: 1,
        elapsed: None,
    }
}

/// Runs the selected cluster rows, building (or reusing from `builds`) each implementation's
/// conformance binary; appends one report per row.
pub(crate) fn run(
    options: &Options,
    builds: &mut BTreeMap<Flavour, Result<PathBuf, String>>,
    reports: &mut Vec<Report>,
) {
    let selected: Vec<Row> = rows()
        .into_iter()
        .filter(|r| options.selects_cluster(r))
        .collect();
    if selected.is_empty() {
        return;
    }
    if let Some(why) = cluster::missing() {
        // Not a failure in CI either: a runner without root cannot make namespaces.
        reports.extend(selected.iter().map(|r| Report {
            verdict: Verdict::NotHere(why.clone()),
            ..skipped(label(r), String::new())
        }));
        return;
    }
    let cluster = match Cluster::up(HOSTS) {
        Ok(c) => c,
        Err(e) => {
            let why = format!("cannot bring the cluster up: {e}");
            reports.extend(selected.iter().map(|r| failed(label(r), why.clone())));
            return;
        }
    };
    for row in &selected {
        let Some(imp) = row.mpi else { continue };
        if let Some(why) = imp.missing() {
            reports.push(skipped(label(row), why));
            continue;
        }
        let flavour = (row.features, row.mpi);
        let bin = builds
            .entry(flavour)
            .or_insert_with(|| backends::build(flavour));
        let report = match bin {
            Ok(bin) => {
                let launcher = match row.launch {
                    Launch::Spmd { .. } => launcher_args(imp, &cluster.hosts),
                    _ => Vec::new(),
                };
                let mut cmd = backends::command(row, bin, &launcher);
                cmd.envs(cluster.mpi_env());
                if let Launch::Spawn { .. } = row.launch {
                    cmd.env("UNIDIST_MPI_HOSTS", cluster.hosts[1..].join(","));
                }
                let mut inside = cluster.inside(&cluster.hosts[0], &cmd);
                backends::run_labelled(label(row), &mut inside, options.timeout)
            }
            Err(e) => failed(label(row), e.clone()),
        };
        reports.push(report);
        // Whatever a row left running on a host must not meet the next row.
        cluster.kill_processes();
    }
    if options.faults {
        cross_host_rows(options, &cluster, builds, reports);
    }
    if let Err(e) = cluster::down() {
        reports.push(failed(
            format!("cluster {HOSTS} hosts down"),
            format!("taking the cluster down failed: {e}"),
        ));
    }
}

/// The cross-host rows of every MPI-launched backend on Open MPI (`cluster_faults.rs`): each
/// fault in each mode, the conformance suite under latency and loss, and a value over 2 GiB.
fn cross_host_rows(
    options: &Options,
    cluster: &Cluster,
    builds: &mut BTreeMap<Flavour, Result<PathBuf, String>>,
    reports: &mut Vec<Report>,
) {
    let imp = Impl::OpenMpi;
    for b in backend_table::mpi_backends() {
        let row = |launch| Row {
            backend: b.name,
            features: b.features,
            mpi: Some(imp),
            launch,
            shared_store: true,
        };
        let spmd = row(Launch::Spmd { np: HOSTS });
        if let Some(why) = imp.missing() {
            reports.push(skipped(format!("{} faults", label(&spmd)), why));
            continue;
        }
        if options.selects_cluster(&spmd) {
            netem_row(options, cluster, &spmd, builds, reports);
        }
        let hosts_bin = crate::faults::build(b, imp).map(|p| p.with_file_name("mpi_hosts"));
        let timed = |label: String, r: Result<std::time::Duration, String>| match r {
            Ok(took) => Report {
                label,
                verdict: Verdict::Passed,
                passed: 1,
                failed: 0,
                elapsed: Some(took),
            },
            Err(e) => failed(label, e),
        };
        for (fault, launch) in cluster_faults::cases(HOSTS) {
            if !options.selects_cluster(&row(launch)) {
                continue;
            }
            let label = cluster_faults::label(b.name, fault, launch);
            println!("==> {label}");
            let r = hosts_bin
                .clone()
                .and_then(|bin| cluster_faults::run_fault(cluster, b.name, &bin, fault, launch));
            reports.push(timed(label, r));
        }
        if options.selects_cluster(&spmd) {
            let label = format!("{} spmd openmpi cluster value over 2 GiB", b.name);
            println!("==> {label}");
            let r = hosts_bin
                .clone()
                .and_then(|bin| cluster_faults::run_big(cluster, b.name, &bin));
            reports.push(timed(label, r));
        }
    }
}

/// The conformance suite across the hosts in SPMD mode with every host's link delayed by
/// 20 ms and losing 2% of its packets (`tc netem`), which TCP must absorb. On a kernel without
/// netem, the loss alone: 2% of the packets arriving at each host dropped by nftables
/// ([`Cluster::lossy`]); no delay.
fn netem_row(
    options: &Options,
    cluster: &Cluster,
    row: &Row,
    builds: &mut BTreeMap<Flavour, Result<PathBuf, String>>,
    reports: &mut Vec<Report>,
) {
    let Some(imp) = row.mpi else { return };
    let flavour = (row.features, row.mpi);
    let bin = match builds
        .entry(flavour)
        .or_insert_with(|| backends::build(flavour))
    {
        Ok(bin) => bin.clone(),
        Err(e) => {
            let name = format!("{} netem 20ms 2% loss", label(row));
            return reports.push(failed(name, e.clone()));
        }
    };
    // The row's name, and whether nftables (not netem) loses the packets.
    let (name, by_nftables) = match cluster.netem(Some(NETEM)) {
        Ok(()) => (format!("{} netem 20ms 2% loss", label(row)), false),
        Err(e) if e.contains("qdisc kind is unknown") => {
            let _ = cluster.netem(None);
            // A kernel without the netem scheduler (no sch_netem module) cannot delay
            // packets; nftables can still lose them.
            let name = format!("{} 2% loss (nftables; no netem here, no delay)", label(row));
            if let Err(e) = cluster.lossy(Some(LOSS_PERCENT)) {
                let _ = cluster.lossy(None);
                return reports.push(Report {
                    verdict: Verdict::NotHere(format!(
                        "this kernel has no netem qdisc (sch_netem), and nftables cannot drop \
                             packets here either: {e}"
                    )),
                    ..skipped(name, String::new())
                });
            }
            (name, true)
        }
        Err(e) => {
            let _ = cluster.netem(None);
            let name = format!("{} netem 20ms 2% loss", label(row));
            return reports.push(failed(name, e));
        }
    };
    let mut cmd = backends::command(row, &bin, &launcher_args(imp, &cluster.hosts));
    cmd.envs(cluster.mpi_env());
    // Every case but the 10,000-deep chain of nested `get`: its 10,000 hops between hosts
    // each wait out the link's delay and retransmissions (minutes); the plain cluster rows
    // run it.
    cmd.args(["--skip", "task::deep_nested_chain"]);
    let mut inside = cluster.inside(&cluster.hosts[0], &cmd);
    let report = backends::run_labelled(name, &mut inside, options.timeout);
    cluster.kill_processes();
    if by_nftables {
        // Evidence that the link lost packets while the suite ran.
        match cluster.lost_packets() {
            Ok(n) => println!("==> loss row: nftables dropped {n} packets on the hosts' links"),
            Err(e) => println!("==> loss row: cannot read the drop counters: {e}"),
        }
    }
    reports.push(report);
    let undone = if by_nftables {
        cluster.lossy(None)
    } else {
        cluster.netem(None)
    };
    if let Err(e) = undone {
        reports.push(failed("cluster link settings removed".into(), e));
    }
}

/// The packets lost in the loss row, in percent.
const LOSS_PERCENT: u32 = 2;

/// The `tc netem` settings of the latency and loss row.
const NETEM: &[&str] = &["delay", "20ms", "loss", "2%"];

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn selected(a: &[&str]) -> Vec<String> {
        let o = Options::parse(&args(a)).unwrap();
        rows()
            .iter()
            .filter(|r| o.selects_cluster(r))
            .map(label)
            .collect()
    }

    #[test]
    fn there_is_one_cluster_row_per_mode_and_implementation() {
        let mpi = backend_table::mpi_backends().next().unwrap().name;
        assert_eq!(
            selected(&[]),
            [
                format!("{mpi} spmd openmpi cluster 3 hosts"),
                format!("{mpi} spawn openmpi cluster 3 hosts"),
                format!("{mpi} spmd mpich cluster 3 hosts"),
            ]
        );
    }

    #[test]
    fn the_filters_select_cluster_rows() {
        let mpi = backend_table::mpi_backends().next().unwrap().name;
        assert_eq!(selected(&["--no-cluster"]).len(), 0);
        assert_eq!(selected(&["--impl", "mpich"]).len(), 1);
        assert_eq!(selected(&["--mode", "spawn"]).len(), 1);
        // The SPMD rows have one rank a host; another rank count leaves only spawn.
        assert_eq!(
            selected(&["--np", "2"]),
            [format!("{mpi} spawn openmpi cluster 3 hosts")]
        );
        assert_eq!(selected(&["--np", "3", "--cluster-only"]).len(), 3);
        let local = backend_table::BACKENDS
            .iter()
            .find(|b| b.launch == backend_table::Launch::InProcess)
            .unwrap()
            .name;
        assert_eq!(selected(&["--backend", local]).len(), 0);
    }

    #[test]
    fn cluster_only_leaves_every_other_row_out() {
        let o = Options::parse(&args(&["--cluster-only"])).unwrap();
        assert_eq!(backends::rows().iter().filter(|r| o.selects(r)).count(), 0);
        let o = Options::parse(&args(&["--no-cluster"])).unwrap();
        assert_eq!(
            backends::rows().iter().filter(|r| o.selects(r)).count(),
            backends::rows().len()
        );
        assert!(Options::parse(&args(&["--no-cluster", "--cluster-only"])).is_err());
    }

    #[test]
    fn each_implementation_places_one_rank_a_host() {
        let hosts = vec![cluster::host(1), cluster::host(2)];
        assert_eq!(
            launcher_args(Impl::OpenMpi, &hosts),
            ["--host", "unidist-h1:1,unidist-h2:1"]
        );
        let mpich = launcher_args(Impl::Mpich, &hosts);
        assert_eq!(&mpich[..2], ["-launcher", "rsh"]);
        assert!(mpich[3].ends_with("target/cluster/agent"));
        assert_eq!(&mpich[4..], ["-hosts", "unidist-h1,unidist-h2"]);
    }
}
