//! Unit tests of the library table: detection from real version strings, the entry each gets,
//! the environment and errors that follow, and the README table made from it.

use super::*;

const OPEN_MPI_4: &str =
    "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022\0";
const OPEN_MPI_5: &str = "Open MPI v5.0.11, package: Open MPI user@localhost Distribution, \
                          ident: 5.0.11, repo rev: v5.0.11rc1, Sep 16, 2026";
const MPICH_4: &str = "MPICH Version:\t4.0.2\nMPICH Release date:\tThu Apr  7 2022\n\
                       MPICH Device:\tch4:ucx\n";
const MPICH_5: &str = "MPICH Version:      5.0.2\nMPICH Device:       ch4:ucx ofi\n";
const INTEL: &str = "Intel(R) MPI Library 2021.19.0 for Linux* OS\n";

fn unset(_: &str) -> Option<String> {
    None
}

#[test]
fn real_version_strings_are_detected() {
    let cases = [
        (
            OPEN_MPI_4,
            Implementation::OpenMpi,
            "4.1.4",
            "Open MPI 4.1.4",
        ),
        (
            OPEN_MPI_5,
            Implementation::OpenMpi,
            "5.0.11",
            "Open MPI 5.0.11",
        ),
        (MPICH_4, Implementation::Mpich, "4.0.2", "MPICH 4.0.2"),
        (MPICH_5, Implementation::Mpich, "5.0.2", "MPICH 5.0.2"),
        (
            INTEL,
            Implementation::IntelMpi,
            "2021.19.0",
            "Intel MPI 2021.19.0",
        ),
    ];
    for (text, implementation, version, shown) in cases {
        let lib = Library::detect(text);
        assert_eq!(lib.implementation, implementation, "{text}");
        assert_eq!(
            lib.version.as_ref().map(|v| v.to_string()).as_deref(),
            Some(version)
        );
        assert_eq!(lib.to_string(), shown);
    }
    let other = Library::detect("Some MPI 9.9");
    assert_eq!(other.implementation, Implementation::Other);
    assert_eq!(other.to_string(), "the MPI library \"Some MPI 9.9\"");
    assert_eq!(other.entry().tested, FALLBACK.tested);
}

#[test]
fn each_library_gets_its_own_entry() {
    let e = |text| Library::detect(text).entry();
    assert_eq!(
        (e(OPEN_MPI_4).env_key, e(OPEN_MPI_4).hosts_key),
        (Some("env"), "add-host")
    );
    assert_eq!(
        (e(OPEN_MPI_5).env_key, e(OPEN_MPI_5).hosts_key),
        (Some("PMIX_ENVAR"), "PMIX_ADD_HOST")
    );
    assert!(matches!(e(MPICH_4).spawn, Spawn::No(_)));
    assert_eq!(e(MPICH_5).spawn, Spawn::Yes);
    assert_eq!(e(MPICH_5).singleton, Singleton::NeedsMpiexecInPath);
    assert_eq!(e(INTEL).spawn, Spawn::WithEnv("I_MPI_SPAWN", "on"));
    // A pre-release of Open MPI 5 is Open MPI 5's entry only once released; rc1 of 5.0.0
    // sorts before 5.0.0 and so falls back.
    assert_eq!(e("Open MPI v5.0.0rc1").tested, FALLBACK.tested);
    for entry in &TABLE {
        assert!(
            semver::VersionReq::parse(entry.versions).is_ok(),
            "{}: {:?} is not a version requirement",
            entry.implementation.name(),
            entry.versions
        );
    }
}

#[test]
fn intel_mpi_gets_its_spawn_variable_unless_the_user_set_one() {
    let intel = Library::detect(INTEL);
    let both = vec![("I_MPI_SPAWN", "on"), ("I_MPI_FABRICS", "ofi")];
    assert_eq!(intel.spawn_env(unset), both);
    assert!(intel.spawn_env(|_| Some("off".into())).is_empty());
    // The user's fabric wins; the spawn variable is still set.
    let fabric = |k: &str| (k == "I_MPI_FABRICS").then(|| "shm:ofi".to_string());
    assert_eq!(intel.spawn_env(fabric), vec![("I_MPI_SPAWN", "on")]);
    let spmd = |k: &str| (k == "PMI_SIZE").then(|| "3".to_string());
    assert!(intel.spawn_env(spmd).is_empty());
    let singleton = |k: &str| (k == "PMI_SIZE").then(|| "1".to_string());
    assert_eq!(intel.spawn_env(singleton), both);
    assert!(Library::detect(OPEN_MPI_5).spawn_env(unset).is_empty());
}

#[test]
fn errors_name_the_library_and_the_fix() {
    let spmd = "UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n 3 app";
    let refused = Library::detect(MPICH_4).cannot_spawn(spmd).unwrap();
    assert!(
        refused.contains("MPICH 4.0.2") && refused.contains(spmd),
        "{refused}"
    );
    assert_eq!(Library::detect(MPICH_5).cannot_spawn(spmd), None);
    let intel = Library::detect(INTEL).spawn_failed(2, "error 17", spmd, |_| Some("0".into()));
    assert!(
        intel.contains("Intel MPI 2021.19.0") && intel.contains("I_MPI_SPAWN=on"),
        "{intel}"
    );
    assert!(!intel.contains("Debian"), "{intel}");
    let mpich = Library::detect(MPICH_5).spawn_failed(2, "error 17", spmd, unset);
    assert!(
        mpich.contains("MPICH 5.0.2") && mpich.contains("first in PATH"),
        "{mpich}"
    );
    let ompi = Library::detect(OPEN_MPI_5).spawn_failed(2, "error 17", spmd, unset);
    assert!(
        ompi.contains("OPAL_PREFIX") && ompi.contains(spmd),
        "{ompi}"
    );
}

#[test]
fn versions_are_read_leniently() {
    let v = |s: &str| lenient_version(s).map(|v| v.to_string());
    assert_eq!(
        v(" v4.1.4, package: Debian OpenMPI").as_deref(),
        Some("4.1.4")
    );
    assert_eq!(v(" Version:\t4.0").as_deref(), Some("4.0.0"));
    assert_eq!(v("5.0.0rc12").as_deref(), Some("5.0.0-rc12"));
    assert_eq!(v("4").as_deref(), Some("4.0.0"));
    assert_eq!(v("no digits"), None);
}

/// The README's implementations table is this table: the test prints the table to paste
/// when they differ.
#[test]
fn the_readme_table_is_the_library_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md at the workspace root");
    let (start, end) = (
        "<!-- mpi-library-table:start -->\n",
        "<!-- mpi-library-table:end -->",
    );
    let from = readme.find(start).map(|i| i + start.len());
    let to = readme.find(end);
    let (Some(from), Some(to)) = (from, to) else {
        panic!("README.md has no {start:?} ... {end:?} section");
    };
    let expected = readme_table();
    assert!(
        readme[from..to] == expected,
        "README.md's MPI implementation table differs from crates/unidist-mpi/src/library.rs; \
         put this between the markers:\n{expected}"
    );
}
