//! Programs of the cross-host rows of `cargo xtask test-backends` (`xtask/src/cluster_faults.rs`),
//! run across the simulated hosts with rank 0 alone on the first one, so that every task runs
//! on another host than rank 0.
//!
//! - `hold`: one ten-minute task per worker; rank 0 prints `ready <pid>` once they run, then
//!   waits for the first of them to end. The caller crashes or cuts off a host: rank 0 must get
//!   `WorkerLost` for the tasks that host held, naming the rank and host and saying how it was
//!   lost. It prints `hosts: lost after <s> s: <kind>: <error>` and exits with status 4 (3 if a
//!   task returned a value); the backend then ends the job with a non-zero status.
//! - `big`: a value over 2 GiB crosses hosts both ways, checked byte for byte: `put` on rank 0
//!   read by a task on another host, then a task's output of that size read by rank 0. It prints
//!   `hosts: big value ok` and exits 0, or says which side differed and exits 5.

use std::time::{Duration, Instant};

/// The bytes of the large value: over 2 GiB (past any 32-bit count) and not a multiple of 8.
const BIG: usize = (2 << 30) + (1 << 20) + 3;

fn main() -> unidist::Result<()> {
    unidist::init()?;
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "hold" => hold(),
        "big" => big(),
        other => {
            eprintln!("hosts: unknown mode {other:?} (accepted: hold, big)");
            std::process::exit(2);
        }
    }
}

fn hold() -> ! {
    let refs: Vec<_> = (0..unidist::num_cpus())
        .map(|_| sleep_ms::remote(600_000))
        .collect();
    // Every task reaches its worker before the caller makes a fault.
    let started = Instant::now();
    let _ = unidist::wait_timeout(&refs, refs.len(), Duration::from_millis(1500));
    println!("ready {}", std::process::id());
    let (ready, _) = match unidist::wait(&refs, 1) {
        Ok(split) => split,
        Err(e) => {
            eprintln!("hosts: wait failed: {e}");
            std::process::exit(3);
        }
    };
    let waited = started.elapsed().as_secs_f64() - 1.5;
    match unidist::get(&ready[0]) {
        Ok(()) => {
            eprintln!("hosts: a held task returned a value");
            std::process::exit(3);
        }
        Err(e) => {
            eprintln!("hosts: lost after {waited:.1} s: {:?}: {e}", e.kind());
            std::process::exit(4);
        }
    }
}

fn big() -> unidist::Result<()> {
    let hosts = unidist::cluster_resources()?;
    println!("hosts: workers on {:?}", hosts.keys().collect::<Vec<_>>());
    let started = Instant::now();
    let sent = unidist::put(pattern(BIG));
    let read = unidist::get(&matches_pattern::remote(&sent))?;
    drop(sent);
    let out = started.elapsed();
    let made = unidist::get(&make::remote(BIG as u64))?;
    let back = started.elapsed() - out;
    let got = (made.len(), made == pattern(BIG));
    drop(made);
    println!(
        "hosts: {BIG} bytes to a worker in {:.1} s, back in {:.1} s",
        out.as_secs_f64(),
        back.as_secs_f64()
    );
    let want = (BIG, true);
    if read != want || got != want {
        eprintln!(
            "hosts: big value changed: want (length, same bytes) {want:?}, read on the worker \
             {read:?}, read back {got:?}"
        );
        std::process::exit(5);
    }
    println!("hosts: big value ok");
    unidist::shutdown()
}

/// `n` bytes that differ with their position (`i % 251`). Built by doubling copies, so that it
/// is quick in a debug build too (the rows build this program unoptimized).
fn pattern(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    let period = 251.min(n);
    for (i, b) in v[..period].iter_mut().enumerate() {
        *b = i as u8;
    }
    // Every multiple of the period is a period, so copying the filled prefix forward keeps it.
    let mut filled = period;
    while filled < n {
        let take = (n - filled).min(filled - filled % 251);
        v.copy_within(..take, filled);
        filled += take;
    }
    v
}

/// The length of `data` and whether it holds exactly [`pattern`]'s bytes (compared with
/// `memcmp`, quick in a debug build too).
#[unidist::remote]
fn matches_pattern(data: Vec<u8>) -> (usize, bool) {
    (data.len(), data == pattern(data.len()))
}

#[unidist::remote]
fn make(n: u64) -> Vec<u8> {
    pattern(n as usize)
}

#[unidist::remote]
fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}
