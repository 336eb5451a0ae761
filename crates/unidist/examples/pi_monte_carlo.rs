//! Embarrassingly parallel work with a reduce at the end: estimating π by throwing random
//! points at the unit square, 64 tasks with one deterministic seed each, whose hit counts are
//! summed by a tree of `add` tasks that take the previous level's refs.
//!
//! The seeds fix every random number, so every backend prints the same estimate:
//!
//! ```text
//! UNIDIST_BACKEND=pyseq cargo run -p unidist --example pi_monte_carlo
//! UNIDIST_BACKEND=pymp  cargo run -p unidist --example pi_monte_carlo
//! MPICC=mpicc.openmpi cargo build -p unidist --features mpi --example pi_monte_carlo
//! UNIDIST_BACKEND=mpi UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n 3 target/debug/examples/pi_monte_carlo
//! ```

use unidist::ObjectRef;

const TASKS: u64 = 64;
const SAMPLES_PER_TASK: u64 = 50_000;

/// SplitMix64: a small, good generator, so the example needs no random-number crate.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // The top 53 bits as a fraction in [0, 1).
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How many of `samples` random points of the unit square fall inside the quarter circle.
#[unidist::remote]
fn hits(seed: u64, samples: u64) -> u64 {
    let mut rng = SplitMix(seed);
    (0..samples)
        .filter(|_| {
            let (x, y) = (rng.next_f64(), rng.next_f64());
            x * x + y * y <= 1.0
        })
        .count() as u64
}

#[unidist::remote]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Sums refs pairwise, level by level, without reading any value here.
fn tree_sum(mut level: Vec<ObjectRef<u64>>) -> ObjectRef<u64> {
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => add::remote(a, b),
                [a] => a.clone(),
                _ => unreachable!("chunks of two"),
            })
            .collect();
    }
    level.remove(0)
}

fn main() -> unidist::Result<()> {
    unidist::init()?;
    let counts: Vec<ObjectRef<u64>> = (0..TASKS)
        .map(|seed| hits::remote(seed, SAMPLES_PER_TASK))
        .collect();
    let inside = unidist::get(&tree_sum(counts))?;
    let samples = TASKS * SAMPLES_PER_TASK;
    let pi = 4.0 * inside as f64 / samples as f64;
    let error = (pi - std::f64::consts::PI).abs();
    assert!(error < 0.01, "the estimate {pi} is off by {error}");
    println!("pi_monte_carlo: estimate {pi:.6} from {samples} samples in {TASKS} tasks");
    unidist::shutdown()
}
