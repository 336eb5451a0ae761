//! The soak suites, their remote functions and actors, and the memory probes they share.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use unidist::{ActorHandle, Buffer, ErrorKind, ObjectRef};

use crate::{Args, Report};

/// How much resident memory may grow after warm-up before a suite counts it as a leak.
const FLAT_LIMIT_MIB: f64 = 64.0;

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`), or the thread count for `Threads`;
/// 0 where it cannot be read.
pub(crate) fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// KiB as MiB.
pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// What the running backend supports; a backend that cannot say supports nothing special.
fn capabilities() -> unidist::Capabilities {
    unidist::capabilities().unwrap_or_default()
}

/// A 64-bit mixing function (splitmix64's finalizer): the values the tasks compute.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

// ----- memory of every process ------------------------------------------------------------

/// The process id, resident set and peak resident set (KiB) of the process that runs it,
/// after `ms` milliseconds (so that probes submitted together spread over the workers).
#[unidist::remote]
fn probe_memory(ms: u64) -> (u32, u64, u64) {
    std::thread::sleep(Duration::from_millis(ms));
    (std::process::id(), status_kib("VmRSS"), status_kib("VmHWM"))
}

/// Resident set and peak (KiB) of every worker process other than this one, by pid. Only
/// backends whose workers are separate processes have such processes.
fn worker_memory() -> Result<WorkerMemory, String> {
    let mut seen = BTreeMap::new();
    if !capabilities().separate_processes {
        return Ok(seen);
    }
    let probes: Vec<_> = (0..4 * unidist::num_cpus().max(1))
        .map(|_| probe_memory::remote(30))
        .collect();
    let results = unidist::get_all(&probes).map_err(|e| format!("memory probe failed: {e}"))?;
    for (pid, rss, hwm) in results {
        if pid != std::process::id() {
            seen.insert(pid, (rss, hwm));
        }
    }
    Ok(seen)
}

/// Resident set and peak resident set (KiB) of each worker process, by pid.
type WorkerMemory = BTreeMap<u32, (u64, u64)>;

/// Tracks resident memory of this process and the workers from a baseline taken after warm-up.
#[derive(Default)]
struct MemoryWatch {
    base: Option<(u64, WorkerMemory)>,
    growth_kib: u64,
    worker_growth_kib: u64,
    worker_peak_kib: u64,
}

impl MemoryWatch {
    fn sample(&mut self, workers_too: bool) -> Result<(), String> {
        let rss = status_kib("VmRSS");
        let workers = if workers_too {
            worker_memory()?
        } else {
            BTreeMap::new()
        };
        for (_, hwm) in workers.values() {
            self.worker_peak_kib = self.worker_peak_kib.max(*hwm);
        }
        match &self.base {
            None => self.base = Some((rss, workers)),
            Some((base_rss, base_workers)) => {
                self.growth_kib = self.growth_kib.max(rss.saturating_sub(*base_rss));
                for (pid, (w_rss, _)) in &workers {
                    if let Some((b, _)) = base_workers.get(pid) {
                        self.worker_growth_kib =
                            self.worker_growth_kib.max(w_rss.saturating_sub(*b));
                    }
                }
            }
        }
        Ok(())
    }

    fn finish(&self, report: &mut Report) -> Result<(), String> {
        report.add("rss_growth_mib", format!("{:.1}", mib(self.growth_kib)));
        if self.worker_peak_kib > 0 {
            report.add(
                "worker_rss_growth_mib",
                format!("{:.1}", mib(self.worker_growth_kib)),
            );
            report.add(
                "worker_peak_rss_mib",
                format!("{:.1}", mib(self.worker_peak_kib)),
            );
        }
        for (who, grew) in [
            ("this process", self.growth_kib),
            ("a worker", self.worker_growth_kib),
        ] {
            if mib(grew) > FLAT_LIMIT_MIB {
                return Err(format!(
                    "resident memory of {who} grew by {:.1} MiB after warm-up (limit {FLAT_LIMIT_MIB} MiB)",
                    mib(grew)
                ));
            }
        }
        Ok(())
    }
}

// ----- tasks ---------------------------------------------------------------------------

#[unidist::remote]
fn seed(i: u64) -> u64 {
    mix(i)
}

#[unidist::remote]
fn step(x: u64, i: u64) -> u64 {
    mix(x ^ i)
}

/// `count` tasks as `count / 2` pairs `seed(i)` -> `step(seed(i), i)`, in waves of 10,000
/// tasks. The ref of each `seed` is dropped right after its dependent is submitted, usually
/// before it ran; every `step` result is read and checked, then dropped.
pub(crate) fn tasks(args: &Args, report: &mut Report) -> Result<(), String> {
    const PAIRS_PER_WAVE: u64 = 5_000;
    let pairs = args.count / 2;
    let waves = pairs.div_ceil(PAIRS_PER_WAVE);
    // Worker memory is sampled every few waves: a probe costs a few tasks and 30 ms.
    let probe_every = (waves / 10).max(1);
    let warm_up = (waves / 10).clamp(1, 10);
    let mut watch = MemoryWatch::default();
    let mut checked = 0u64;
    for wave in 0..waves {
        let first = wave * PAIRS_PER_WAVE;
        let last = (first + PAIRS_PER_WAVE).min(pairs);
        let refs: Vec<ObjectRef<u64>> = (first..last)
            .map(|i| {
                let s = seed::remote(i);
                step::remote(&s, i)
            })
            .collect();
        let values =
            unidist::get_all(&refs).map_err(|e| format!("wave {wave}: get_all failed: {e}"))?;
        for (i, v) in (first..last).zip(values) {
            if v != mix(mix(i) ^ i) {
                return Err(format!("pair {i}: got {v}, expected {}", mix(mix(i) ^ i)));
            }
            checked += 2;
        }
        drop(refs);
        if wave + 1 >= warm_up && ((wave + 1) % probe_every == 0 || wave + 1 == waves) {
            watch.sample(true)?;
        } else if wave + 1 >= warm_up {
            watch.sample(false)?;
        }
    }
    report.add("checked", checked);
    watch.finish(report)
}

// ----- actors -----------------------------------------------------------------------------

/// A small stateful actor.
pub(crate) struct Tally {
    base: u64,
    acc: u64,
}

#[unidist::actor]
impl Tally {
    /// Starts at `base`.
    pub(crate) fn new(base: u64) -> Self {
        Tally { base, acc: base }
    }

    /// Adds `x` mixed with the base; returns the new total.
    pub(crate) fn add(&mut self, x: u64) -> u64 {
        self.acc = self.acc.wrapping_add(mix(x ^ self.base));
        self.acc
    }

    /// The base and the total.
    pub(crate) fn state(&self) -> (u64, u64) {
        (self.base, self.acc)
    }
}

fn tally_expected(i: u64) -> (u64, u64, u64) {
    // `add(i)` mixes `i ^ base`, which is 0 since the base is `i`.
    let a = i.wrapping_add(mix(0));
    let b = a.wrapping_add(mix(i.wrapping_mul(3) ^ i));
    (a, b, b)
}

/// `count` actors alive at once; each gets two `add` calls and a `state` call, all checked;
/// then even ones are killed and odd ones dropped, and calls on killed ones must fail.
pub(crate) fn actors(args: &Args, report: &mut Report) -> Result<(), String> {
    let threads_before = status_kib("Threads");
    let started = Instant::now();
    let handles: Vec<ActorHandle<Tally>> = (0..args.count).map(Tally::remote).collect();
    report.add(
        "create_secs",
        format!("{:.2}", started.elapsed().as_secs_f64()),
    );
    type Calls = (ObjectRef<u64>, ObjectRef<u64>, ObjectRef<(u64, u64)>);
    let calls: Vec<Calls> = handles
        .iter()
        .zip(0u64..)
        .map(|(h, i)| (h.add(i), h.add(i.wrapping_mul(3)), h.state()))
        .collect();
    let mut checked = 0u64;
    for (i, (a, b, s)) in (0u64..).zip(&calls) {
        let got = (
            unidist::get(a).map_err(|e| format!("actor {i}: add failed: {e}"))?,
            unidist::get(b).map_err(|e| format!("actor {i}: add failed: {e}"))?,
            unidist::get(s).map_err(|e| format!("actor {i}: state failed: {e}"))?,
        );
        let (ea, eb, ec) = tally_expected(i);
        if got != (ea, eb, (i, ec)) {
            return Err(format!(
                "actor {i}: got {got:?}, expected {:?}",
                (ea, eb, (i, ec))
            ));
        }
        checked += 1;
    }
    drop(calls);
    let mut killed = Vec::new();
    for (i, h) in (0u64..).zip(handles) {
        if i % 2 == 0 {
            h.kill()
                .map_err(|e| format!("actor {i}: kill failed: {e}"))?;
            killed.push(h);
        }
    }
    // A sample of killed actors: a call is an `ActorDead` error, not a hang.
    let step = (killed.len() / 50).max(1);
    for h in killed.iter().step_by(step) {
        match unidist::get_timeout(&h.state(), Duration::from_secs(30)) {
            Err(e) if e.kind() == ErrorKind::ActorDead => {}
            other => return Err(format!("a call on a killed actor gave {other:?}")),
        }
    }
    drop(killed);
    report.add("checked", checked);
    // Where every actor is a thread of this process, they must all end once killed or dropped.
    if capabilities().thread_per_actor {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut left = status_kib("Threads");
        while left > threads_before + 64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left = status_kib("Threads");
        }
        report.add("threads_left", left.saturating_sub(threads_before));
        if left > threads_before + 64 {
            return Err(format!(
                "{} threads remain 60 s after every actor was killed or dropped",
                left - threads_before
            ));
        }
    }
    Ok(())
}

// ----- objects ------------------------------------------------------------------------------

/// Word `i` of the object generated from `seed`.
fn word(seed: u64, i: u64) -> u64 {
    mix(seed.wrapping_mul(0x1000_0000_01b3) ^ i)
}

/// An order-sensitive checksum of words.
fn checksum(words: impl Iterator<Item = u64>) -> u64 {
    words.fold(0xcbf2_9ce4_8422_2325, |h, w| {
        (h.rotate_left(7) ^ w).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn expected_sum(seed: u64, words: u64, key: u64) -> u64 {
    checksum((0..words).map(|i| word(seed, i) ^ key))
}

/// Verifies the object that arrived (its length and checksum) and returns a new object: each
/// word XORed with `key`. A corrupted object makes the task fail, which fails the soak.
#[unidist::remote]
fn relay(data: &Buffer<u64>, words: u64, sum: u64, key: u64) -> Buffer<u64> {
    assert_eq!(
        data.len() as u64,
        words,
        "object arrived with the wrong length"
    );
    let got = checksum(data.iter().copied());
    assert_eq!(got, sum, "object of {words} words arrived corrupted");
    Buffer::new(data.iter().map(|w| w ^ key).collect())
}

/// Sizes in 8-byte words: `count` log-uniform from 1 word (8 B) to 8 Mi words (64 MiB), then
/// `big` of 32 Mi words (256 MiB).
fn object_sizes(count: u64, big: u64) -> Vec<u64> {
    let max = (64u64 << 20) / 8;
    let span = (max as f64).ln();
    let mut sizes: Vec<u64> = (0..count)
        .map(|i| {
            // A uniform fraction in [0, 1] from the index, then exp of it over the span.
            let u = (mix(i ^ 0x5eed) >> 11) as f64 / (1u64 << 53) as f64;
            ((u * span).exp().round() as u64).clamp(1, max)
        })
        .collect();
    sizes.extend(std::iter::repeat_n((256u64 << 20) / 8, big as usize));
    sizes
}

struct InFlight {
    index: u64,
    seed: u64,
    words: u64,
    key: u64,
    result: ObjectRef<Buffer<u64>>,
}

/// Every object is put, verified and transformed by one task, verified and transformed again
/// by a second task (which may run on another worker), and read back and verified here. At
/// most 512 MiB of objects (and at most one 256 MiB object) are in flight at once.
pub(crate) fn objects(args: &Args, report: &mut Report) -> Result<(), String> {
    const IN_FLIGHT_BYTES: u64 = 512 << 20;
    let sizes = object_sizes(args.count, args.big);
    let mut watch = MemoryWatch::default();
    let mut queue: VecDeque<InFlight> = VecDeque::new();
    let mut queued_bytes = 0u64;
    let mut moved = 0u64;
    let mut checked = 0u64;
    let mut finish = |f: InFlight, queued_bytes: &mut u64| -> Result<(), String> {
        let data = unidist::get(&f.result)
            .map_err(|e| format!("object {} ({} B): {e}", f.index, f.words * 8))?;
        if data.len() as u64 != f.words {
            return Err(format!(
                "object {}: {} words came back, expected {}",
                f.index,
                data.len(),
                f.words
            ));
        }
        if checksum(data.iter().copied()) != expected_sum(f.seed, f.words, f.key) {
            return Err(format!(
                "object {} ({} B) came back corrupted",
                f.index,
                f.words * 8
            ));
        }
        *queued_bytes -= f.words * 8;
        checked += 1;
        Ok(())
    };
    for (index, &words) in (0u64..).zip(&sizes) {
        let bytes = words * 8;
        while !queue.is_empty() && queued_bytes + bytes > IN_FLIGHT_BYTES {
            let f = queue.pop_front().expect("queue is not empty");
            finish(f, &mut queued_bytes)?;
        }
        let seed = mix(index);
        let (k1, k2) = (mix(seed ^ 1), mix(seed ^ 2));
        let data: Vec<u64> = (0..words).map(|i| word(seed, i)).collect();
        let sum0 = checksum(data.iter().copied());
        let put = unidist::put(Buffer::new(data));
        let first = relay::remote(&put, words, sum0, k1);
        drop(put);
        let second = relay::remote(&first, words, expected_sum(seed, words, k1), k2);
        drop(first);
        queue.push_back(InFlight {
            index,
            seed,
            words,
            key: k1 ^ k2,
            result: second,
        });
        queued_bytes += bytes;
        // Put, two task hops and the read back: four moves of the object.
        moved += 4 * bytes;
        if index == 0 || index + 1 == args.count {
            watch.sample(false)?;
        }
    }
    while let Some(f) = queue.pop_front() {
        finish(f, &mut queued_bytes)?;
    }
    watch.sample(true)?;
    report.add("checked", checked);
    report.add(
        "moved_gib",
        format!("{:.1}", moved as f64 / (1u64 << 30) as f64),
    );
    report.add("big", args.big);
    // Objects are freed as they are read: what this process holds at the end must be small.
    report.add("rss_end_mib", format!("{:.1}", mib(status_kib("VmRSS"))));
    if watch.worker_peak_kib > 0 {
        report.add(
            "worker_peak_rss_mib",
            format!("{:.1}", mib(watch.worker_peak_kib)),
        );
    }
    Ok(())
}

// ----- init/shutdown cycles -----------------------------------------------------------------

#[unidist::remote]
fn square(x: i64) -> i64 {
    x * x
}

/// `count` cycles of init, work (tasks, an actor, put/get), shutdown; refs kept across a
/// shutdown must be stale and calls after it must fail. Memory and threads must not grow.
pub(crate) fn cycles(args: &Args, report: &mut Report) -> Result<(), String> {
    let mut watch = MemoryWatch::default();
    let threads_before = status_kib("Threads");
    let mut slowest = Duration::ZERO;
    for cycle in 0..args.count {
        let started = Instant::now();
        unidist::init().map_err(|e| format!("cycle {cycle}: init failed: {e}"))?;
        let refs: Vec<ObjectRef<i64>> = (0..50).map(square::remote).collect();
        let got = unidist::get_all(&refs).map_err(|e| format!("cycle {cycle}: {e}"))?;
        if got.iter().zip(0i64..).any(|(v, x)| *v != x * x) {
            return Err(format!("cycle {cycle}: wrong squares {got:?}"));
        }
        let t = Tally::remote(cycle);
        let total = unidist::get(&t.add(1)).map_err(|e| format!("cycle {cycle}: {e}"))?;
        if total != cycle.wrapping_add(mix(1 ^ cycle)) {
            return Err(format!("cycle {cycle}: actor gave {total}"));
        }
        let kept = unidist::put(cycle);
        unidist::shutdown().map_err(|e| format!("cycle {cycle}: shutdown failed: {e}"))?;
        match unidist::get(&kept) {
            Err(e) if e.kind() == ErrorKind::StaleRef => {}
            other => {
                return Err(format!(
                    "cycle {cycle}: a ref kept across shutdown gave {other:?}"
                ))
            }
        }
        match unidist::get(&unidist::put(1u8)) {
            Err(e) if e.kind() == ErrorKind::ShutDown => {}
            other => return Err(format!("cycle {cycle}: put after shutdown gave {other:?}")),
        }
        drop((refs, t, kept));
        slowest = slowest.max(started.elapsed());
        // Warm-up: the allocator's first cycles settle its arenas.
        if cycle + 1 >= (args.count / 10).clamp(1, 10) {
            watch.sample(false)?;
        }
    }
    // Threads of finished runtimes end (idle pool helpers may take a while).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut left = status_kib("Threads");
    while left > threads_before + 8 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = status_kib("Threads");
    }
    report.add("slowest_cycle_ms", slowest.as_millis());
    report.add("threads_left", left.saturating_sub(threads_before));
    if left > threads_before + 8 {
        return Err(format!(
            "{} threads remain 30 s after the last shutdown",
            left - threads_before
        ));
    }
    watch.finish(report)
}

// ----- nested task trees --------------------------------------------------------------------

/// A tree of `n` nodes: this node submits `fan` subtrees sharing the other `n - 1` nodes,
/// blocks in `get` on them, and returns the number of nodes that ran.
#[unidist::remote]
fn tree(n: u64, fan: u64) -> u64 {
    if n <= 1 {
        return n;
    }
    let rest = n - 1;
    let k = fan.min(rest);
    let children: Vec<ObjectRef<u64>> = (0..k)
        .map(|j| tree::remote(rest / k + u64::from(j < rest % k), fan))
        .collect();
    1 + unidist::get_all(&children)
        .expect("a subtree failed")
        .iter()
        .sum::<u64>()
}

/// One tree of `count` nested tasks; the count of nodes that ran must be exact.
pub(crate) fn trees(args: &Args, report: &mut Report) -> Result<(), String> {
    let got = unidist::get(&tree::remote(args.count, args.fan))
        .map_err(|e| format!("the tree failed: {e}"))?;
    report.add("cpus", unidist::num_cpus());
    report.add("fan", args.fan);
    if got != args.count {
        return Err(format!("{got} of {} nodes ran", args.count));
    }
    report.add("checked", got);
    Ok(())
}
