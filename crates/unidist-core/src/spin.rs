//! Short waits kept awake: a thread that expects an answer within microseconds polls for it
//! (yielding the CPU between polls) instead of sleeping at once, but only while the machine has
//! a core to spare.
//!
//! Waking a sleeping thread costs tens of microseconds on a virtual machine whose other cores
//! are idle (the core itself sleeps), several times a whole actor call on `pyseq`. On a busy
//! machine it is the other way round: a thread that yields hands its core to another process
//! for a whole time slice, while a sleeper is woken promptly. So [`spin_for`] only polls when
//! fewer threads are runnable than there are cores (`/proc/loadavg`, read at most every 50 ms);
//! elsewhere (no `/proc`) it polls.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a thread polls for an answer it expects soon.
pub const WINDOW: Duration = Duration::from_micros(50);

/// How often the machine's load is read again.
const RECHECK: Duration = Duration::from_millis(50);

/// Polls `poll` until it gives a value or `window` has passed (`None` then, also at once when
/// the machine has no core to spare): the caller then sleeps in its blocking wait.
pub fn spin_for<T>(window: Duration, poll: impl FnMut() -> Option<T>) -> Option<T> {
    if !spare_core() {
        return None;
    }
    poll_for(window, poll)
}

/// Polls `poll` (yielding the CPU between polls) until it gives a value or `window` has passed,
/// whatever the machine's load.
pub fn poll_for<T>(window: Duration, mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = poll() {
            return Some(v);
        }
        if start.elapsed() >= window {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Whether fewer threads are runnable than this machine has cores, as last read.
fn spare_core() -> bool {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    static CHECKED_MS: AtomicU64 = AtomicU64::new(u64::MAX);
    static SPARE: AtomicBool = AtomicBool::new(true);
    let epoch = *EPOCH.get_or_init(Instant::now);
    let now_ms = epoch.elapsed().as_millis() as u64;
    let last = CHECKED_MS.load(Ordering::Relaxed);
    if last == u64::MAX || now_ms.saturating_sub(last) >= RECHECK.as_millis() as u64 {
        CHECKED_MS.store(now_ms, Ordering::Relaxed);
        SPARE.store(read_spare_core().unwrap_or(true), Ordering::Relaxed);
    }
    SPARE.load(Ordering::Relaxed)
}

/// From `/proc/loadavg`'s fourth field, `runnable/total`: the runnable count includes the
/// reading thread itself.
fn read_spare_core() -> Option<bool> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let runnable: usize = text
        .split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some(runnable <= cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_is_there_is_returned_and_a_missing_one_ends_the_wait() {
        let mut polls = 0;
        // Whether it polls depends on the machine's load; when it does, it returns the value.
        let got = spin_for(WINDOW, || {
            polls += 1;
            Some(7)
        });
        assert!(got == Some(7) || (got.is_none() && polls == 0));
        let started = Instant::now();
        assert_eq!(spin_for(Duration::from_millis(2), || None::<u8>), None);
        assert!(started.elapsed() < Duration::from_secs(5), "the wait ended");
    }

    #[test]
    fn poll_for_polls_whatever_the_load_until_the_value_comes_or_the_window_ends() {
        let mut polls = 0;
        let got = poll_for(WINDOW, || {
            polls += 1;
            (polls == 3).then_some(polls)
        });
        assert_eq!(got, Some(3), "polled until the third poll gave a value");
        let mut polls = 0;
        let started = Instant::now();
        assert_eq!(
            poll_for(Duration::from_millis(2), || {
                polls += 1;
                None::<u8>
            }),
            None
        );
        assert!(polls >= 1 && started.elapsed() >= Duration::from_millis(2));
    }
}
