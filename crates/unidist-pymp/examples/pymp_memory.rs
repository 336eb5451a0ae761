//! Resident memory stays flat over a million tasks whose refs are dropped.
//!
//! Run with `cargo run --release -p unidist-pymp --example pymp_memory`. Submits 1,000,000
//! tasks (each returning a 64-byte value) and drops every ref at once, then does the same with
//! a `get` per task, and reports the resident set (from `/proc/self/statm`) against the level
//! after a warm-up. Exits with status 1 if it grew by 64 MiB or more, or if the run takes over
//! five minutes.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use unidist_core::value::output;
use unidist_core::{AnyRef, Backend, ObjectId, Outputs, Payload, RemoteFunction, Result, TaskSpec};

fn make_body(args: &[Payload]) -> Result<Outputs> {
    let i = args[0].take::<u64>()?;
    Ok(vec![output([i; 8])])
}
static MAKE: RemoteFunction = RemoteFunction {
    name: "memory::make",
    num_returns: 1,
    invoke: make_body,
};

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}

fn submit(b: &std::sync::Arc<dyn Backend>, i: u64) -> AnyRef {
    let ids = b
        .submit(TaskSpec {
            function: &MAKE,
            args: vec![unidist_core::IntoArg::<u64>::into_arg(i)],
            options: Default::default(),
        })
        .expect("submit");
    AnyRef::live(ids[0], b)
}

fn get(b: &std::sync::Arc<dyn Backend>, r: &AnyRef) -> [u64; 8] {
    let id: ObjectId = r.id().expect("live");
    b.get(&[id], None)
        .expect("get")
        .remove(0)
        .take()
        .expect("typed")
}

fn main() -> Result<()> {
    const N: u64 = 1_000_000;
    const LIMIT_MIB: f64 = 64.0;
    let deadline = Instant::now() + Duration::from_secs(300);
    let b = unidist_pymp::start_with(unidist_pymp::PoolOptions::from_config()?)?;

    // Warm up allocator arenas and the store before taking the baseline.
    for i in 0..20_000 {
        drop(submit(&b, i));
    }
    get(&b, &submit(&b, 0));
    std::thread::sleep(Duration::from_millis(200));
    let base = rss_mib();
    let mut peak = base;

    // Fire and forget: every ref dropped right after submission.
    for i in 0..N {
        drop(submit(&b, i));
        if i % 50_000 == 0 {
            peak = peak.max(rss_mib());
            if Instant::now() > deadline {
                eprintln!("pymp_memory: over the time limit");
                std::process::exit(1);
            }
        }
    }
    // A last task queued behind the others tells when the pool drained.
    get(&b, &submit(&b, 0));
    let after_async = rss_mib();
    peak = peak.max(after_async);

    // One at a time, with a `get` each.
    for i in 0..N {
        let r = submit(&b, i);
        assert_eq!(get(&b, &r)[0], i);
        if i % 50_000 == 0 {
            peak = peak.max(rss_mib());
            if Instant::now() > deadline {
                eprintln!("pymp_memory: over the time limit");
                std::process::exit(1);
            }
        }
    }
    let after_sync = rss_mib();
    peak = peak.max(after_sync);
    b.shutdown()?;

    let growth = peak - base;
    println!(
        "pymp_memory: baseline {base:.1} MiB, after 1M dropped tasks {after_async:.1} MiB, after 1M get \
         round trips {after_sync:.1} MiB, peak growth {growth:.1} MiB (limit {LIMIT_MIB} MiB)"
    );
    if growth >= LIMIT_MIB {
        eprintln!(
            "pymp_memory: resident memory grew by {growth:.1} MiB, expected under {LIMIT_MIB} MiB"
        );
        std::process::exit(1);
    }
    Ok(())
}
