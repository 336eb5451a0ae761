//! Reference counting check: submits many no-op tasks whose refs are dropped at once, and checks
//! that the resident memory of every worker stays flat (below 64 MiB above its start).
//! Run: `UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n 3 target/release/examples/mpi_rss [N]`
//! (N defaults to 1,000,000).

mod common;

use std::time::Instant;

use common::*;
use unidist::ObjectRef;

fn main() -> unidist::Result<()> {
    unidist::init()?;
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let workers = unidist::num_cpus();
    // Warm up, then take every worker's baseline.
    let _ = unidist::get_all(&(0..1000).map(|_| noop(0)).collect::<Vec<_>>())?;
    // Largest RSS seen per worker process.
    let rss_of_workers = || -> unidist::Result<Vec<u64>> {
        let refs: Vec<ObjectRef<(u32, u64)>> = (0..workers * 4).map(|_| worker_rss(0)).collect();
        let mut by_pid = std::collections::BTreeMap::new();
        for (pid, rss) in unidist::get_all(&refs)? {
            let e = by_pid.entry(pid).or_insert(0u64);
            *e = (*e).max(rss);
        }
        Ok(by_pid.into_values().collect())
    };
    let base = rss_of_workers()?;
    let t = Instant::now();
    for i in 0..n {
        drop(noop(0));
        if i % 200_000 == 0 && i > 0 {
            println!(
                "{i} tasks submitted, {:.0} tasks/s",
                i as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    // Drain: everything submitted before this barrier ran.
    unidist::get_all(&(0..workers * 8).map(|_| noop(0)).collect::<Vec<_>>())?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = rss_of_workers()?;
    let grow = |b: &[u64], a: &[u64]| {
        a.iter()
            .zip(b)
            .map(|(a, b)| a.saturating_sub(*b))
            .max()
            .unwrap_or(0)
    };
    let growth = grow(&base, &after);
    println!(
        "{n} tasks in {:.1} s; worker RSS before {:?} MiB, after {:?} MiB, max growth {:.1} MiB; rank 0 RSS {} MiB",
        t.elapsed().as_secs_f64(),
        base.iter().map(|b| b >> 20).collect::<Vec<_>>(),
        after.iter().map(|b| b >> 20).collect::<Vec<_>>(),
        growth as f64 / (1 << 20) as f64,
        rss_bytes() >> 20
    );
    assert!(
        growth < 64 << 20,
        "worker memory grew by {} MiB",
        growth >> 20
    );
    unidist::shutdown()?;
    println!("RSS OK");
    Ok(())
}
