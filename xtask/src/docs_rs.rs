//! The docs as docs.rs builds them: the facade with every backend documented and the MPI crate
//! without its bindings, checked to need no system MPI (no `mpi-sys` in the build graph) and to
//! build with `-D warnings`.

use crate::util::{self, run_step};

/// The facade's features docs.rs documents (its `package.metadata.docs.rs`).
const FACADE_FEATURES: &str = "unidist/pyseq,unidist/pymp,unidist/mpi-docs";

/// Fails when `mpi-sys` (the crate that needs a system MPI and libclang) is in the graph of the
/// docs.rs build.
fn check_no_mpi_sys() -> Result<(), String> {
    let out = util::cargo()
        .args([
            "tree",
            "-p",
            "unidist",
            "-p",
            "unidist-mpi",
            "--no-default-features",
        ])
        .args([
            "--features",
            FACADE_FEATURES,
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ])
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    match tree.lines().find(|l| l.starts_with("mpi-sys ")) {
        Some(line) => Err(format!(
            "the docs.rs build of unidist and unidist-mpi still needs a system MPI: `{line}` is in \
             its dependency graph"
        )),
        None => Ok(()),
    }
}

/// Builds the docs of the facade and the MPI crate the way docs.rs does, in the usual target
/// directory: the dependencies' checked metadata of `cargo doc` is reused (cargo keeps one
/// artifact per feature set, so the other builds keep theirs); the HTML of the two crates in
/// `target/doc` is then the docs.rs flavour.
pub(crate) fn docs_rs() -> Result<(), String> {
    check_no_mpi_sys()?;
    run_step(
        util::cargo()
            .args(["doc", "--no-deps", "-p", "unidist", "-p", "unidist-mpi"])
            .args(["--no-default-features", "--features", FACADE_FEATURES])
            .env("RUSTDOCFLAGS", "-D warnings --cfg docsrs"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_features_are_those_docs_rs_is_told() {
        let manifest =
            std::fs::read_to_string(crate::util::root().join("crates/unidist/Cargo.toml"))
                .expect("the facade's manifest is readable");
        let meta = manifest
            .split("[package.metadata.docs.rs]")
            .nth(1)
            .expect("the facade has docs.rs metadata");
        for feature in super::FACADE_FEATURES.split(',') {
            let name = feature.trim_start_matches("unidist/");
            assert!(
                meta.contains(&format!("\"{name}\"")),
                "docs.rs metadata does not list `{name}`"
            );
        }
    }
}
