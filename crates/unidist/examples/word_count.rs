//! Map-reduce over files: the example writes 16 text files into a temporary directory, one
//! task counts the words of each file, and a tree of `merge` tasks combines the counts through
//! refs (each merge takes the refs of two earlier results, so no count passes through `main`
//! until the end). The generator fixes how often each word occurs, and the example checks the
//! totals against it.
//!
//! ```text
//! UNIDIST_BACKEND=pyseq cargo run -p unidist --example word_count
//! UNIDIST_BACKEND=pymp  cargo run -p unidist --example word_count
//! MPICC=mpicc.openmpi cargo build -p unidist --features mpi --example word_count
//! UNIDIST_BACKEND=mpi UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n 3 target/debug/examples/word_count
//! ```
//! (On MPI every rank must see the directory: one host, or a shared `TMPDIR`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use unidist::ObjectRef;

type Counts = BTreeMap<String, u64>;

const FILES: u64 = 16;
const WORDS: [&str; 4] = ["apple", "banana", "cherry", "date"];

/// How often file `file` contains word number `word`: known in advance, so the totals are too.
fn occurrences(file: u64, word: usize) -> u64 {
    (file + 1) * (word as u64 + 1) % 7 + 1
}

/// Writes the input files, the words of each in a scrambled order over several lines.
fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    (0..FILES)
        .map(|f| {
            let mut words: Vec<&str> = Vec::new();
            for (w, word) in WORDS.iter().enumerate() {
                words.extend(std::iter::repeat_n(*word, occurrences(f, w) as usize));
            }
            let shift = f as usize % words.len();
            words.rotate_left(shift);
            let text: Vec<String> = words.chunks(5).map(|line| line.join(" ")).collect();
            let path = dir.join(format!("part-{f:02}.txt"));
            std::fs::write(&path, text.join("\n"))?;
            Ok(path)
        })
        .collect()
}

/// Map: the words of one file.
#[unidist::remote]
fn count_file(path: String) -> Counts {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read input file {path}: {e}"));
    let mut counts = Counts::new();
    for word in text.split_whitespace() {
        *counts.entry(word.to_string()).or_default() += 1;
    }
    counts
}

/// Reduce: two partial counts into one.
#[unidist::remote]
fn merge(mut a: Counts, b: Counts) -> Counts {
    for (word, n) in b {
        *a.entry(word).or_default() += n;
    }
    a
}

fn main() -> unidist::Result<()> {
    unidist::init()?;
    let dir = std::env::temp_dir().join(format!("unidist-word-count-{}", std::process::id()));
    let files = generate(&dir).expect("writing the input files");
    let mut level: Vec<ObjectRef<Counts>> = files
        .iter()
        .map(|p| count_file::remote(p.display().to_string()))
        .collect();
    let mut merges = 0;
    while level.len() > 1 {
        let mut next = Vec::new();
        for pair in level.chunks(2) {
            next.push(match pair {
                [a, b] => {
                    merges += 1;
                    merge::remote(a, b)
                }
                [a] => a.clone(),
                _ => unreachable!("chunks of two"),
            });
        }
        level = next;
    }
    let totals = unidist::get(&level[0])?;
    let _ = std::fs::remove_dir_all(&dir);
    for (w, word) in WORDS.iter().enumerate() {
        let expected: u64 = (0..FILES).map(|f| occurrences(f, w)).sum();
        assert_eq!(totals.get(*word), Some(&expected), "count of {word}");
    }
    assert_eq!(totals.len(), WORDS.len());
    let line: Vec<String> = totals.iter().map(|(w, n)| format!("{w}={n}")).collect();
    println!(
        "word_count: {FILES} files, {merges} merges: {}",
        line.join(" ")
    );
    unidist::shutdown()
}
