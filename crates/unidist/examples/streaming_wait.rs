//! Processing results as they finish: tasks of different lengths are submitted at once, and
//! `wait(&pending, 1)` hands back whichever is ready first, so a slow task never holds up the
//! handling of the ones that finished before it. On the pool and MPI backends results come back
//! in the order they finish (with enough workers, the short tasks first); on `pyseq` every task
//! has finished at submission and they come back in input order.
//!
//! ```text
//! UNIDIST_BACKEND=pyseq cargo run -p unidist --example streaming_wait
//! UNIDIST_BACKEND=pymp  cargo run -p unidist --example streaming_wait
//! MPICC=mpicc.openmpi cargo build -p unidist --features mpi --example streaming_wait
//! UNIDIST_BACKEND=mpi UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n 3 target/debug/examples/streaming_wait
//! ```

use std::time::{Duration, Instant};

use unidist::ObjectRef;

/// Simulated work of `ms` milliseconds whose result is `id * id`.
#[unidist::remote]
fn job(id: u64, ms: u64) -> (u64, u64) {
    std::thread::sleep(Duration::from_millis(ms));
    (id, id * id)
}

fn main() -> unidist::Result<()> {
    unidist::init()?;
    let started = Instant::now();
    // Later jobs are shorter: in input order, the first result would come last.
    let mut pending: Vec<ObjectRef<(u64, u64)>> =
        (0..12).map(|id| job::remote(id, 10 * (12 - id))).collect();
    let mut order = Vec::new();
    let mut sum = 0;
    while !pending.is_empty() {
        let (ready, rest) = unidist::wait(&pending, 1)?;
        let (id, square) = unidist::get(&ready[0])?;
        println!(
            "  job {id:>2} done after {:>4} ms: {square}",
            started.elapsed().as_millis()
        );
        order.push(id);
        sum += square;
        pending = rest;
    }
    assert_eq!(sum, (0..12u64).map(|i| i * i).sum::<u64>());
    println!("streaming_wait: 12 results, sum of squares {sum}, finished in order {order:?}");
    unidist::shutdown()
}
