//! Refs passed inside argument values are freed once nothing holds them: rank 0 puts a 1 MiB
//! object, passes its ref to a task inside a `Vec`, gets the task's answer and drops the ref,
//! `N` times (default 2,000, that is 2 GiB if nothing were freed). Rank 0's and every worker's
//! resident memory must stay within 64 MiB of where it started.
//! Run by the fault rows of `cargo xtask test-backends` ("nested refs freed"); by hand:
//! `UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n 3 target/mpi-openmpi/release/mpi_nested_refs`.

use unidist::ObjectRef;

#[unidist::remote]
fn total_len(refs: Vec<ObjectRef<Vec<u8>>>) -> usize {
    let values = unidist::get_all(&refs).expect("a nested ref could not be read");
    values.iter().map(Vec::len).sum()
}

#[unidist::remote]
fn worker_rss(_x: u32) -> (u32, u64) {
    (std::process::id(), rss_bytes())
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The largest resident size seen per worker process.
fn workers_rss() -> unidist::Result<Vec<u64>> {
    let refs: Vec<_> = (0..unidist::num_cpus() as u32 * 4)
        .map(worker_rss::remote)
        .collect();
    let mut by_pid = std::collections::BTreeMap::new();
    for (pid, rss) in unidist::get_all(&refs)? {
        let e = by_pid.entry(pid).or_insert(0u64);
        *e = (*e).max(rss);
    }
    Ok(by_pid.into_values().collect())
}

fn main() -> unidist::Result<()> {
    unidist::init()?;
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let round = |i: usize| -> unidist::Result<()> {
        let data = unidist::put(vec![(i % 251) as u8; 1 << 20]);
        let got = unidist::get(&total_len::remote(vec![data]))?;
        assert_eq!(got, 1 << 20, "round {i}: wrong length");
        Ok(())
    };
    for i in 0..50 {
        round(i)?;
    }
    let (root_before, workers_before) = (rss_bytes(), workers_rss()?);
    for i in 0..n {
        round(i)?;
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (root_after, workers_after) = (rss_bytes(), workers_rss()?);
    let mib = |b: u64| b >> 20;
    let worker_growth = workers_after
        .iter()
        .zip(&workers_before)
        .map(|(a, b)| a.saturating_sub(*b))
        .max()
        .unwrap_or(0);
    let root_growth = root_after.saturating_sub(root_before);
    println!(
        "{n} rounds of 1 MiB: rank 0 RSS {} -> {} MiB, workers {:?} -> {:?} MiB",
        mib(root_before),
        mib(root_after),
        workers_before.iter().map(|b| mib(*b)).collect::<Vec<_>>(),
        workers_after.iter().map(|b| mib(*b)).collect::<Vec<_>>(),
    );
    unidist::shutdown()?;
    if root_growth >= 64 << 20 || worker_growth >= 64 << 20 {
        eprintln!(
            "nested refs leaked: rank 0 grew {} MiB, a worker grew {} MiB",
            mib(root_growth),
            mib(worker_growth)
        );
        std::process::exit(1);
    }
    println!("nested refs freed");
    Ok(())
}
