//! Resident memory stays flat over many tasks whose refs are dropped (its own test binary, so
//! no other test allocates meanwhile).

mod common;

use std::time::Duration;

use common::*;
use unidist_core::value::output;
use unidist_core::{ObjectRef, Outputs, Payload, RemoteFunction, Result};

fn make_body(args: Vec<Payload>) -> Result<Outputs> {
    let i = args[0].take::<u64>()?;
    Ok(vec![output([i; 8])])
}
static MAKE: RemoteFunction = RemoteFunction {
    name: "tests::make",
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

#[test]
fn dropped_refs_keep_memory_flat() {
    let _rt = runtime(2);
    let (base, peak) = bounded(Duration::from_secs(240), "300k tasks", || {
        for i in 0..20_000u64 {
            drop(remote::<[u64; 8]>(&MAKE, vec![val(i)]));
        }
        get(&remote::<[u64; 8]>(&MAKE, vec![val(0u64)])).unwrap();
        let base = rss_mib();
        let mut peak = base;
        for i in 0..300_000u64 {
            drop(remote::<[u64; 8]>(&MAKE, vec![val(i)]));
            if i % 25_000 == 0 {
                peak = peak.max(rss_mib());
            }
        }
        let last: ObjectRef<[u64; 8]> = remote(&MAKE, vec![val(7u64)]);
        assert_eq!(get(&last).unwrap()[0], 7);
        (base, peak.max(rss_mib()))
    });
    assert!(
        peak - base < 64.0,
        "resident memory grew from {base:.1} MiB to {peak:.1} MiB"
    );
}
