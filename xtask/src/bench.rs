//! `cargo xtask bench [--quick] [--no-peers] [--only costs|scale|ray-names]`: this project's backends,
//! their floors and the peers (Python unidist, Ray, Dask, and Lamellar) on the same workloads,
//! in one run, as a markdown table, JSON and an SVG chart. `--only costs` runs the cost rows
//! alone (step 4).
//!
//! Steps, each bounded in time and each recorded in the output even when it fails:
//! 1. build the benchmark program `unidist-bench` (package in `bench/`; default features, and
//!    each MPI-launched backend's features once per MPI implementation);
//! 2. run `unidist-bench workloads` on every system of this project (`systems::ours`, derived
//!    from the backend table);
//! 3. run the floor benchmarks (`unidist-bench floors-local` for the bare rayon and actix
//!    floors; `floors-mpi` against raw MPI in full mode);
//! 4. the cost rows (`costs`): empty tasks with `max_retries(3)` and with the timeline
//!    recording, against without, on every system of this project;
//! 5. the group under Ray's microbenchmark names (`ray_names`): `unidist-bench ray-names` on
//!    every system of this project beside `ray microbenchmark` (not in `--quick`, where Ray's
//!    10 s sleep before each row would cost minutes);
//! 6. create the Python environments under `target/bench-venvs` (`bench/peers/setup.sh`) and run
//!    the peers (`bench/peers/run.sh`); without a network only this project's rows are shown;
//! 7. write `target/bench/bench.json` (everything), `bench.md` (the table, also printed) and
//!    `bench.svg` (the chart); every run's own report stays under `target/bench/runs` and
//!    `target/bench/peers`.
//!
//! `--only scale` runs the scale group alone (`scale`): one MPI job of 2 to 32 ranks across 8
//! simulated hosts (root and `ip netns` needed). It is not part of the full run, which stays on
//! one host. `--systems M1,M2` limits this project's systems to those modes (e.g. `pyseq`,
//! `mpi-openmpi-spmd`). `--only ray-names` runs the Ray-names group alone (with Ray, also in `--quick`),
//! into `target/bench/ray-names.md`, `.json` and `.svg`.

mod chart;
mod costs;
mod lamellar;
pub(crate) mod peers;
mod ray_names;
mod report;
mod rows;
mod scale;
mod systems;
mod targets;

use std::path::PathBuf;
use std::time::Instant;

use crate::util::{self, human};

/// What `bench` was asked to do.
pub(crate) struct Options {
    pub quick: bool,
    pub peers: bool,
    /// `--only GROUP`: run that group alone (`costs`, `scale` or `ray-names`), without the workloads,
    /// floors or peers.
    pub only: Option<Only>,
    /// `--systems M1,M2`: only these of this project's systems (modes such as `pymp` or
    /// `mpi-openmpi-spmd`); every one when absent.
    pub systems: Option<Vec<String>>,
}

const USAGE: &str =
    "usage: cargo xtask bench [--quick] [--no-peers] [--only costs|scale|ray-names] [--systems M1,M2]";

/// A group that `--only` runs alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Only {
    Costs,
    Scale,
    RayNames,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            quick: false,
            peers: true,
            only: None,
            systems: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--no-peers" => o.peers = false,
                "--only" => match it.next().map(String::as_str) {
                    Some("costs") => o.only = Some(Only::Costs),
                    Some("scale") => o.only = Some(Only::Scale),
                    Some("ray-names") => o.only = Some(Only::RayNames),
                    other => {
                        return Err(format!(
                            "--only {other:?}: accepted are `--only costs` (the cost rows alone), \
                             `--only scale` (the scale group) and `--only ray-names` (Ray's \
                             microbenchmark names beside `ray microbenchmark`)"
                        ))
                    }
                },
                "--systems" => {
                    let modes: Vec<String> = systems::ours().into_iter().map(|s| s.mode).collect();
                    let list: Vec<String> = it
                        .next()
                        .map(|v| v.split(',').map(str::to_string).collect())
                        .unwrap_or_default();
                    if list.is_empty() || list.iter().any(|m| !modes.contains(m)) {
                        return Err(format!(
                            "--systems {list:?}: accepted are comma-separated modes of {}",
                            modes.join(",")
                        ));
                    }
                    o.systems = Some(list);
                }
                other => {
                    return Err(format!(
                        "unknown option {other:?}: accepted are --quick, --no-peers, \
                         --only costs|scale|ray-names and --systems M1,M2"
                    ))
                }
            }
        }
        Ok(o)
    }

    /// The command line that reproduces this run.
    pub(crate) fn command(&self) -> String {
        let mut c = "cargo xtask bench".to_string();
        if self.quick {
            c.push_str(" --quick");
        }
        if !self.peers {
            c.push_str(" --no-peers");
        }
        match self.only {
            Some(Only::Costs) => c.push_str(" --only costs"),
            Some(Only::Scale) => c.push_str(" --only scale"),
            Some(Only::RayNames) => c.push_str(" --only ray-names"),
            None => {}
        }
        if let Some(list) = &self.systems {
            c.push_str(&format!(" --systems {}", list.join(",")));
        }
        c
    }
}

/// Where everything goes: `target/bench`.
pub(crate) fn out_dir() -> PathBuf {
    util::root().join("target").join("bench")
}

pub(crate) fn bench(args: &[String]) -> i32 {
    let options = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xtask bench: {e}\n{USAGE}");
            return 2;
        }
    };
    match options.only {
        Some(Only::Costs) => return only_costs(&options),
        Some(Only::Scale) => {
            let out = out_dir();
            if let Err(e) = std::fs::create_dir_all(&out) {
                eprintln!("xtask bench: cannot create {}: {e}", out.display());
                return 1;
            }
            return scale::run(&out);
        }
        Some(Only::RayNames) => return only_ray_names(&options),
        None => {}
    }
    let started = Instant::now();
    let load_start = report::load_average();
    let out = out_dir();
    // Reports of an earlier run would be mistaken for this run's.
    for sub in ["runs", "floors", "peers", "costs", "ray-names"] {
        let _ = std::fs::remove_dir_all(out.join(sub));
    }
    for file in [
        "bench.json",
        "bench.md",
        "bench.svg",
        "costs.json",
        "ray-names.json",
        "ray-names.svg",
    ] {
        let _ = std::fs::remove_file(out.join(file));
    }
    for dir in [out.join("runs"), systems::floors_dir()] {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("xtask bench: cannot create {}: {e}", dir.display());
            return 1;
        }
    }

    let mut notes: Vec<String> = Vec::new();
    let mut builds = systems::Builds::new();
    let mut runs = systems::run_ours(&options, &mut builds, &mut notes);
    let floors = systems::run_floors(&options, &mut builds, &mut notes);
    let costs = costs::run(&options, &mut builds, &mut notes);
    let ray_names = ray_names::run(&options, &mut builds, false);
    if options.peers {
        runs.extend(peers::run(&options, &mut notes));
        runs.extend(lamellar::run(&options, &mut notes));
    } else {
        notes.push("peers not run (--no-peers): the table holds this project's rows only".into());
    }

    let wall = started.elapsed();
    let combined = report::Combined::new(&options, runs, floors, notes, wall, load_start);
    let table = combined.markdown() + &costs.markdown + &ray_names.markdown();
    println!();
    println!("{table}");
    let mut ok = true;
    let mut drawn = true;
    let mut write = |name: &str, text: String| {
        let path = out.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            println!("cannot write {}: {e}", path.display());
            ok = false;
        }
    };
    write("bench.md", table);
    write("bench.json", combined.json());
    write("costs.json", costs.json.to_string());
    write("ray-names.json", ray_names.json().to_string());
    for (name, svg) in [
        ("bench.svg", chart::svg(&combined)),
        ("ray-names.svg", chart::ray_names_svg(&ray_names)),
    ] {
        match svg {
            Ok(svg) => write(name, svg),
            Err(e) => {
                println!("cannot draw {name}: {e}");
                drawn = false;
            }
        }
    }
    println!(
        "wrote {0}/bench.md, {0}/bench.json, {0}/bench.svg, {0}/ray-names.svg (per-run reports in {0}/runs and {0}/peers)",
        out.display()
    );
    println!("`{}` took {}", options.command(), human(wall));
    i32::from(!ok || !drawn || !combined.all_ours_ok() || !ray_names.all_ours_ok())
}

/// Writes each `(name, text)` of a group run alone under `out` and says what was written and
/// how long the run took; false (with a message) when a file cannot be written.
fn write_files(options: &Options, started: Instant, files: Vec<(&str, String)>) -> bool {
    let out = out_dir();
    let mut ok = true;
    let mut names = Vec::new();
    for (name, text) in files {
        let path = out.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            println!("cannot write {}: {e}", path.display());
            ok = false;
        }
        names.push(name);
    }
    println!(
        "wrote {} in {}; `{}` took {}",
        names.join(", "),
        out.display(),
        options.command(),
        human(started.elapsed())
    );
    ok
}

/// `--only costs`: the cost rows alone, written to `target/bench/costs.md` and `costs.json`;
/// the other reports of an earlier run stay.
fn only_costs(options: &Options) -> i32 {
    let started = Instant::now();
    let out = out_dir();
    let _ = std::fs::remove_dir_all(out.join("costs"));
    let _ = std::fs::remove_file(out.join("costs.json"));
    let mut notes: Vec<String> = Vec::new();
    let costs = costs::run(options, &mut systems::Builds::new(), &mut notes);
    let mut md = costs.markdown;
    for n in &notes {
        md.push_str(&format!("\n- {n}"));
    }
    println!("{md}");
    let ok = write_files(
        options,
        started,
        vec![("costs.md", md), ("costs.json", costs.json.to_string())],
    );
    i32::from(!ok || !notes.is_empty())
}

/// `--only ray-names`: the Ray-names group alone, written to `target/bench/ray-names.md`,
/// `ray-names.json` and `ray-names.svg`; the other reports of an earlier run stay.
fn only_ray_names(options: &Options) -> i32 {
    let started = Instant::now();
    let group = ray_names::run(options, &mut systems::Builds::new(), true);
    let md = group.markdown();
    println!("{md}");
    let mut files = vec![
        ("ray-names.md", md),
        ("ray-names.json", group.json().to_string()),
    ];
    let drawn = match chart::ray_names_svg(&group) {
        Ok(svg) => {
            files.push(("ray-names.svg", svg));
            true
        }
        Err(e) => {
            println!("cannot draw the chart: {e}");
            false
        }
    };
    let ok = write_files(options, started, files) && drawn;
    i32::from(!ok || !group.all_ours_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_costs_is_parsed_and_reproduced_in_the_command() {
        let o = Options::parse(&args(&["--only", "costs"])).expect("accepted");
        assert!(o.only == Some(Only::Costs) && o.peers && !o.quick);
        assert_eq!(o.command(), "cargo xtask bench --only costs");
        let e = Options::parse(&args(&["--only", "peers"]))
            .err()
            .expect("refused");
        assert!(e.contains("--only costs"), "{e}");
        assert!(Options::parse(&args(&["--only"])).is_err());
        let o = Options::parse(&args(&["--quick", "--only", "ray-names"])).expect("accepted");
        assert!(o.only == Some(Only::RayNames));
        assert_eq!(o.command(), "cargo xtask bench --quick --only ray-names");
        let o = Options::parse(&args(&["--only", "ray-names", "--systems", "pyseq,pymp"]))
            .expect("accepted");
        assert_eq!(
            o.command(),
            "cargo xtask bench --only ray-names --systems pyseq,pymp"
        );
        assert!(Options::parse(&args(&["--systems", "ray"])).is_err());
    }
}
