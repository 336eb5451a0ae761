//! Replays the codec fuzz target's committed inputs (`fuzz/corpus/codec`, seeds, and
//! `fuzz/regressions/codec`, inputs that once crashed) as an ordinary test, so that every fixed
//! crash stays fixed without fuzz tooling. The target's body is compiled in from its source.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

// The fuzz crate exports this module's items, so they stay `pub` although nothing outside this
// test reaches them here.
#[allow(unreachable_pub)]
#[path = "../../../fuzz/src/codec.rs"]
mod codec;

/// The files of `fuzz/<kind>/codec`; none if the directory does not exist (git keeps no empty
/// directories, and there may be no regression yet).
fn inputs(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("codec");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs one input; the panic of a failing input is turned into its file name.
fn replay(path: &Path) -> bool {
    let data =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    catch_unwind(AssertUnwindSafe(|| codec::run(&data)))
        .unwrap_or_else(|_| panic!("fuzz input {} fails", path.display()))
}

#[test]
fn committed_seeds_decode() {
    let seeds = inputs("corpus");
    assert!(!seeds.is_empty(), "no committed seeds in fuzz/corpus/codec");
    for seed in &seeds {
        assert!(replay(seed), "seed {} does not decode", seed.display());
    }
}

#[test]
fn generated_seeds_decode() {
    // A seed that no longer decodes means the format or the input layout changed: regenerate
    // them (`cargo run --manifest-path fuzz/Cargo.toml --example seeds`).
    for (i, seed) in codec::seeds().iter().enumerate() {
        assert!(codec::run(seed), "generated seed {i} does not decode");
    }
}

#[test]
fn regressions_stay_fixed() {
    let regressions = inputs("regressions");
    for input in &regressions {
        replay(input);
    }
    // Not vacuous when empty: the seeds above went through the same replay.
    println!("{} regression inputs replayed", regressions.len());
}
