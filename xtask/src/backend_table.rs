//! The one backend table of xtask: every backend, how its programs are built and started, and
//! what `soak` and `bench` run on it. `test-backends`, `soak` and `bench` derive their rows from
//! it; no other file of xtask names a backend (the tidy check enforces this).

/// How the programs of a backend are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Launch {
    /// The program alone, with `UNIDIST_BACKEND` set: everything runs in its process.
    InProcess,
    /// Built against each MPI implementation, started under `mpiexec` (SPMD) or alone with
    /// rank 0 spawning its workers.
    Mpi,
}

/// Which floor benchmark of the benchmark program runs on a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloorSuite {
    /// Bare rayon and actix floors beside the backend's own rows (`unidist-bench floors-local`).
    Local,
    /// Raw MPI floors beside the backend's own rows (`unidist-bench floors-mpi`); full mode only.
    Mpi,
}

/// What the soak suites run on a backend besides `tasks` and `trees`, which run everywhere.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Soak {
    /// Actors alive at once in the `actors` suite; `None`: the suite does not run.
    pub actors: Option<u64>,
    /// Whether the `objects` suite (objects up to 64 MiB plus 256 MiB ones) runs.
    pub objects: bool,
    /// Whether the `cycles` suite (`init`/`shutdown` 100 times in one process) runs: only on
    /// backends that can start again after `shutdown`.
    pub cycles: bool,
}

/// One backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BackendEntry {
    /// The name, as in `UNIDIST_BACKEND`.
    pub name: &'static str,
    /// Cargo features of `unidist-tests` and `unidist-bench` that build the backend in, beyond
    /// their defaults.
    pub features: &'static [&'static str],
    pub launch: Launch,
    pub soak: Soak,
    pub floors: Option<FloorSuite>,
}

/// Every backend, in the order of tables and reports.
pub(crate) const BACKENDS: [BackendEntry; 3] = [
    BackendEntry {
        name: "pyseq",
        features: &[],
        launch: Launch::InProcess,
        soak: Soak {
            actors: None,
            objects: false,
            cycles: true,
        },
        floors: None,
    },
    BackendEntry {
        name: "pymp",
        features: &[],
        launch: Launch::InProcess,
        soak: Soak {
            actors: Some(10_000),
            objects: true,
            cycles: true,
        },
        floors: Some(FloorSuite::Local),
    },
    BackendEntry {
        name: "mpi",
        features: &["mpi"],
        launch: Launch::Mpi,
        soak: Soak {
            actors: Some(1_000),
            objects: true,
            cycles: false,
        },
        floors: Some(FloorSuite::Mpi),
    },
];

/// The entry of `name`.
pub(crate) fn entry(name: &str) -> Option<&'static BackendEntry> {
    BACKENDS.iter().find(|b| b.name == name)
}

/// The names of every backend, in table order.
pub(crate) fn names() -> Vec<&'static str> {
    BACKENDS.iter().map(|b| b.name).collect()
}

/// The backends launched through MPI.
pub(crate) fn mpi_backends() -> impl Iterator<Item = &'static BackendEntry> {
    BACKENDS.iter().filter(|b| b.launch == Launch::Mpi)
}

/// Parses a comma-separated `--backend` list against the table.
pub(crate) fn parse_list(flag: &str, raw: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = raw.split(',').map(|s| s.trim().to_string()).collect();
    match names.iter().find(|n| entry(n).is_none()) {
        Some(bad) => Err(format!(
            "invalid {flag} {bad:?}: expected {} (comma separated)",
            self::names().join(", ")
        )),
        None => Ok(names),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lists_parse() {
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BACKENDS.len());
        assert_eq!(
            parse_list("--backend", " pymp,mpi").unwrap(),
            ["pymp", "mpi"]
        );
        let err = parse_list("--backend", "ray").unwrap_err();
        assert!(
            err.contains("\"ray\"") && err.contains("pyseq, pymp, mpi"),
            "{err}"
        );
    }

    #[test]
    fn mpi_launched_backends_build_with_a_feature() {
        assert!(mpi_backends().count() > 0);
        assert!(mpi_backends().all(|b| !b.features.is_empty()));
    }
}
