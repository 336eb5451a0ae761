//! Writes the seed corpus: `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.
//!
//! Seeds are valid inputs of each target (see `unidist_fuzz::codec::seeds` and
//! `unidist_fuzz::wire::seeds`), so the fuzzer starts from every type and message kind instead
//! of having to discover the header and the type fingerprints. Rerun it when the wire format or
//! the targets' input layout changes, and commit the result.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets: [(&str, Vec<Vec<u8>>, fn(&[u8]) -> bool); 2] = [
        ("codec", unidist_fuzz::codec::seeds(), unidist_fuzz::codec::run),
        ("wire", unidist_fuzz::wire::seeds(), unidist_fuzz::wire::run),
    ];
    for (target, seeds, run) in targets {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in seeds.iter().enumerate() {
            // A seed the target rejects would start the fuzzer from nothing.
            assert!(run(seed), "{target} seed {i} is not a valid input");
            std::fs::write(dir.join(format!("seed-{i:03}")), seed)?;
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
    Ok(())
}
