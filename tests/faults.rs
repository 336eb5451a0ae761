//! Faults on the backends that run in one process: what the conformance suite does not already
//! cover about panics, huge values, stuck tasks, killed actors and use after shutdown.
//!
//! Every case runs on each built-in backend that runs in one process, one at a time (the
//! runtime is process-wide), each inside a watchdog so that a hang is a failure with a message.
//! A backend that cannot meet a case says so by its capabilities ([`not_applicable`], with the
//! reason); such a case is not run there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use unidist::config::{Backend, BackendName};
use unidist::{Capabilities, ErrorKind, ObjectRef};

/// How long one case may take before it counts as hung.
const CASE_LIMIT: Duration = Duration::from_secs(120);

/// How long `shutdown` may take, also with a task that never returns (the pool waits 10 s for
/// it).
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(30);

static TURN: Mutex<()> = Mutex::new(());

/// Cases a backend cannot run, by what it lacks, with the reason (data, not `#[ignore]`).
fn not_applicable(caps: &Capabilities, case: &str) -> Option<&'static str> {
    match case {
        "never_returning_task" if !caps.pending_objects => Some(
            "the backend runs a task at submission in the caller's thread (no pending objects), \
             so a task that never returns never gives the caller a ref to time out on",
        ),
        _ => None,
    }
}

/// Runs `case` on every built-in backend that runs in one process.
fn on_each(name: &str, case: fn() -> Result<(), String>) {
    let backends = unidist::in_process_backends();
    assert!(!backends.is_empty(), "no in-process backend is built in");
    for backend in backends {
        on(backend, name, case);
    }
}

/// Runs `case` on `backend` in a fresh runtime, bounded in time.
fn on(backend: BackendName, name: &str, case: fn() -> Result<(), String>) {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    Backend::put(backend).expect("select the backend");
    unidist::init().expect("init");
    let caps = unidist::capabilities().expect("the backend's capabilities");
    if let Some(reason) = not_applicable(&caps, name) {
        eprintln!("[{backend}] faults::{name}: not applicable: {reason}");
        unidist::shutdown().expect("shutdown");
        return;
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(case());
    });
    let outcome = rx.recv_timeout(CASE_LIMIT);
    let stopping = Instant::now();
    let shutdown = unidist::shutdown();
    let took = stopping.elapsed();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("[{backend}] faults::{name}: {e}"),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("[{backend}] faults::{name}: hung for {CASE_LIMIT:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("[{backend}] faults::{name}: the case panicked")
        }
    }
    shutdown.unwrap_or_else(|e| panic!("[{backend}] faults::{name}: shutdown failed: {e}"));
    assert!(
        took < SHUTDOWN_LIMIT,
        "[{backend}] faults::{name}: shutdown took {took:?}"
    );
}

/// One `#[test]` per case, which runs it on every in-process backend.
macro_rules! faults {
    ($($case:ident),* $(,)?) => {
        mod each_backend {
            $(#[test]
            fn $case() {
                super::on_each(stringify!($case), super::$case);
            })*
        }
    };
}

faults!(
    panic_with_any_payload,
    panic_in_nested_task,
    capacity_overflow_is_an_error,
    huge_value,
    mut_method_panic_keeps_partial_state,
    never_returning_task,
    kill_with_calls_queued,
    calls_after_shutdown,
);

fn expect_kind<T: std::fmt::Debug>(
    what: &str,
    r: unidist::Result<T>,
    kind: ErrorKind,
) -> Result<unidist::Error, String> {
    match r {
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => Err(format!(
            "{what}: expected {kind:?}, got {:?}: {e}",
            e.kind()
        )),
        Ok(v) => Err(format!("{what}: expected {kind:?}, got Ok({v:?})")),
    }
}

fn mentions(what: &str, text: &str, words: &[&str]) -> Result<(), String> {
    match words.iter().find(|w| !text.contains(*w)) {
        Some(w) => Err(format!("{what}: {text:?} does not mention {w:?}")),
        None => Ok(()),
    }
}

// ----- panics -------------------------------------------------------------------------------

/// A panic payload that is neither `&str` nor `String`.
#[derive(Debug)]
struct Oddity(#[allow(dead_code)] u32);

#[unidist::remote]
fn panic_any_payload(x: u32) -> u32 {
    std::panic::panic_any(Oddity(x))
}

/// A panic with a non-text payload is still an error naming the function, not a crash.
fn panic_with_any_payload() -> Result<(), String> {
    let r = panic_any_payload::remote(3);
    let e = expect_kind("get", unidist::get(&r), ErrorKind::TaskFailed)?;
    mentions("error", &e.to_string(), &["panic_any_payload"])?;
    // The pool keeps working.
    let ok = unidist::get(&leaf::remote(5, false)).map_err(|e| e.to_string())?;
    (ok == 5).then_some(()).ok_or(format!("leaf gave {ok}"))
}

#[unidist::remote]
fn leaf(x: u64, fail: bool) -> u64 {
    assert!(!fail, "leaf {x} refused");
    x
}

#[unidist::remote]
fn parent(fail_at: u64) -> u64 {
    let children: Vec<ObjectRef<u64>> = (0..4).map(|i| leaf::remote(i, i == fail_at)).collect();
    match unidist::get_all(&children) {
        Ok(v) => v.iter().sum(),
        Err(e) => panic!("a child failed: {e}"),
    }
}

/// A panic two levels down reaches the caller through the parent, with both messages.
fn panic_in_nested_task() -> Result<(), String> {
    let e = expect_kind(
        "get",
        unidist::get(&parent::remote(2)),
        ErrorKind::TaskFailed,
    )?;
    mentions("error", &e.to_string(), &["parent", "leaf 2 refused"])?;
    let ok = unidist::get(&parent::remote(99)).map_err(|e| e.to_string())?;
    (ok == 6).then_some(()).ok_or(format!("parent gave {ok}"))
}

#[unidist::remote]
fn absurd_allocation(words: u64) -> Vec<u64> {
    // `usize::MAX` words overflow the capacity computation: Rust panics before allocating.
    Vec::with_capacity(usize::try_from(words).unwrap_or(usize::MAX))
}

/// A task whose allocation size overflows fails with an error; the runtime is unaffected.
/// (An allocation the system refuses aborts the process, as everywhere in Rust.)
fn capacity_overflow_is_an_error() -> Result<(), String> {
    let e = expect_kind(
        "get",
        unidist::get(&absurd_allocation::remote(u64::MAX)),
        ErrorKind::TaskFailed,
    )?;
    mentions("error", &e.to_string(), &["absurd_allocation", "capacity"])?;
    Ok(())
}

// ----- huge values --------------------------------------------------------------------------

const HUGE: usize = 512 << 20;

#[unidist::remote]
fn make_huge(fill: u8) -> Vec<u8> {
    let mut v = vec![fill; HUGE];
    v[HUGE - 1] = fill.wrapping_add(1);
    v
}

#[unidist::remote]
fn inspect(v: &[u8]) -> (usize, u8, u8) {
    (v.len(), v[0], v[v.len() - 1])
}

/// A task returning a 512 MiB `Vec<u8>` works: another task reads it in place and `get`
/// returns it whole.
fn huge_value() -> Result<(), String> {
    let r = make_huge::remote(7);
    let seen = unidist::get(&inspect::remote(&r)).map_err(|e| e.to_string())?;
    if seen != (HUGE, 7, 8) {
        return Err(format!("a task saw {seen:?}, expected {:?}", (HUGE, 7, 8)));
    }
    let v = unidist::get(&r).map_err(|e| e.to_string())?;
    if v.len() != HUGE || v[0] != 7 || v[HUGE - 1] != 8 || v[HUGE / 2] != 7 {
        return Err(format!("get returned {} bytes with wrong content", v.len()));
    }
    Ok(())
}

// ----- actors -------------------------------------------------------------------------------

/// An actor whose mutating method can panic halfway.
#[derive(Default)]
pub struct Ledger {
    entries: Vec<u64>,
}

#[unidist::actor]
impl Ledger {
    /// Empty.
    pub fn new() -> Self {
        Ledger {
            entries: Vec::new(),
        }
    }

    /// Appends `x`, then panics when `x` is odd: the append is not undone.
    pub fn record(&mut self, x: u64) -> usize {
        self.entries.push(x);
        assert!(x.is_multiple_of(2), "odd entry {x}");
        self.entries.len()
    }

    /// Every entry.
    pub fn entries(&self) -> Vec<u64> {
        self.entries.clone()
    }

    /// Sleeps, then returns the number of entries.
    pub fn slow_len(&self, ms: u64) -> usize {
        std::thread::sleep(Duration::from_millis(ms));
        self.entries.len()
    }
}

/// The documented semantics: a panicking `&mut self` method leaves the state as it was when
/// the panic happened (no rollback, no poisoning); that call is an error, later calls run.
fn mut_method_panic_keeps_partial_state() -> Result<(), String> {
    let ledger = Ledger::remote();
    let first = ledger.record(2);
    let failed = ledger.record(3);
    let after = ledger.record(4);
    let e = expect_kind(
        "the panicking call",
        unidist::get(&failed),
        ErrorKind::TaskFailed,
    )?;
    mentions("error", &e.to_string(), &["record", "odd entry 3"])?;
    let got = (
        unidist::get(&first).map_err(|e| e.to_string())?,
        unidist::get(&after).map_err(|e| e.to_string())?,
        unidist::get(&ledger.entries()).map_err(|e| e.to_string())?,
    );
    if got != (1, 3, vec![2, 3, 4]) {
        return Err(format!("got {got:?}, expected (1, 3, [2, 3, 4])"));
    }
    Ok(())
}

/// Killing an actor with a call running and calls queued settles every call, with its value
/// or with `ActorDead`, never a hang; killing again and calls from tasks are errors too.
fn kill_with_calls_queued() -> Result<(), String> {
    let ledger = Ledger::remote();
    let running = ledger.slow_len(300);
    let queued: Vec<ObjectRef<usize>> = (0..10).map(|i| ledger.record(2 * i)).collect();
    ledger.kill().map_err(|e| format!("kill: {e}"))?;
    for r in std::iter::once(&running).chain(&queued) {
        match unidist::get_timeout(r, Duration::from_secs(30)) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ActorDead => {}
            Err(e) => return Err(format!("a call on a killed actor gave {:?}: {e}", e.kind())),
        }
    }
    if let Err(e) = ledger.kill() {
        if e.kind() != ErrorKind::ActorDead {
            return Err(format!("a second kill gave {:?}: {e}", e.kind()));
        }
    }
    expect_kind(
        "a call from a task",
        unidist::get_timeout(&call_ledger::remote(ledger), Duration::from_secs(30)),
        ErrorKind::TaskFailed,
    )?;
    Ok(())
}

#[unidist::remote]
fn call_ledger(ledger: unidist::ActorHandle<Ledger>) -> Vec<u64> {
    unidist::get(&ledger.entries()).expect("the actor is gone")
}

// ----- stuck tasks --------------------------------------------------------------------------

static RELEASE: AtomicBool = AtomicBool::new(false);

/// Spins until released (at most 60 s): a task that, as far as the runtime knows, never returns.
#[unidist::remote]
fn stuck() -> u64 {
    let end = Instant::now() + Duration::from_secs(60);
    while !RELEASE.load(Ordering::SeqCst) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    1
}

/// `get_timeout` and `wait_timeout` return on time with a task that never returns and other
/// work still runs; the `shutdown` that ends the case must then finish within
/// [`SHUTDOWN_LIMIT`] (what it says is checked by `shutdown_says_what_it_abandoned`).
fn never_returning_task() -> Result<(), String> {
    RELEASE.store(false, Ordering::SeqCst);
    let r = stuck::remote();
    let started = Instant::now();
    expect_kind(
        "get_timeout",
        unidist::get_timeout(&r, Duration::from_millis(200)),
        ErrorKind::Timeout,
    )?;
    let (ready, pending) =
        unidist::wait_timeout(std::slice::from_ref(&r), 1, Duration::from_millis(200))
            .map_err(|e| format!("wait_timeout: {e}"))?;
    if !ready.is_empty() || pending.len() != 1 {
        return Err(format!(
            "wait_timeout gave {} ready and {} pending",
            ready.len(),
            pending.len()
        ));
    }
    if started.elapsed() > Duration::from_secs(5) {
        return Err(format!("two 200 ms timeouts took {:?}", started.elapsed()));
    }
    let other = unidist::get(&leaf::remote(9, false)).map_err(|e| e.to_string())?;
    if other != 9 {
        return Err(format!("another task gave {other}"));
    }
    drop(r);
    Ok(())
}

/// Runs `shutdown` with a stuck task in a child process (the default grace period is 10 s) and
/// checks that it returns in bounded time and says on stderr what it abandoned; on every
/// in-process backend that can have a task running while the caller goes on.
#[test]
fn shutdown_says_what_it_abandoned() {
    if let Some(name) = std::env::var_os("FAULTS_CHILD") {
        abandon_in_child(&name.to_string_lossy());
        return;
    }
    for backend in unidist::in_process_backends() {
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = std::process::Command::new(exe)
            .args(["shutdown_says_what_it_abandoned", "--exact", "--nocapture"])
            .env("FAULTS_CHILD", backend.as_str())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the child");
        let started = Instant::now();
        while child.try_wait().expect("poll the child").is_none() {
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                panic!("[{backend}] shutdown with a stuck task did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("the child's output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "[{backend}] child failed: {stderr}");
        if stdout.contains("not applicable") {
            continue;
        }
        assert!(
            stderr.contains("shutdown abandoned 1 running task"),
            "[{backend}] shutdown did not say what it abandoned; stderr: {stderr}"
        );
    }
}

/// The child of [`shutdown_says_what_it_abandoned`]: a stuck task, a blocked reader, shutdown.
fn abandon_in_child(name: &str) {
    let backend: BackendName = name.parse().expect("a backend name from the parent");
    Backend::put(backend).expect("select the backend");
    unidist::init().expect("init");
    if !unidist::capabilities()
        .expect("capabilities")
        .pending_objects
    {
        // A stuck task would block its caller at submission: nothing to abandon.
        println!("not applicable: no pending objects on {backend}");
        unidist::shutdown().expect("shutdown");
        return;
    }
    let r = stuck::remote();
    assert!(unidist::get_timeout(&r, Duration::from_millis(100)).is_err());
    // A reader blocked without a timeout is woken by shutdown.
    let reader = {
        let r = r.clone();
        std::thread::spawn(move || unidist::get(&r).map_err(|e| e.kind()))
    };
    let started = Instant::now();
    unidist::shutdown().expect("shutdown");
    println!("child shutdown took {:?}", started.elapsed());
    let woken = reader.join().expect("the reader");
    assert!(
        matches!(woken, Err(ErrorKind::ShutDown | ErrorKind::StaleRef)),
        "{woken:?}"
    );
    assert_eq!(
        unidist::get(&r).map_err(|e| e.kind()),
        Err(ErrorKind::StaleRef)
    );
    RELEASE.store(true, Ordering::SeqCst);
}

// ----- after shutdown -----------------------------------------------------------------------

/// Every call with refs or handles of a runtime that was shut down is an error, never a hang
/// or a panic; calls that start work initialize again only through `init`.
fn calls_after_shutdown() -> Result<(), String> {
    let kept = unidist::put(5u64);
    let pending = leaf::remote(1, false);
    let ledger = Ledger::remote();
    unidist::get(&ledger.record(2)).map_err(|e| e.to_string())?;
    unidist::shutdown().map_err(|e| format!("shutdown: {e}"))?;
    expect_kind("get", unidist::get(&kept), ErrorKind::StaleRef)?;
    expect_kind(
        "get_timeout",
        unidist::get_timeout(&pending, Duration::from_secs(1)),
        ErrorKind::StaleRef,
    )?;
    expect_kind(
        "get_all",
        unidist::get_all(&[kept.clone(), pending.clone()]),
        ErrorKind::StaleRef,
    )?;
    // Stale refs are ready (their error is known), so wait returns at once.
    let (ready, _) = unidist::wait(&[kept.clone(), pending.clone()], 2)
        .map_err(|e| format!("wait on stale refs: {e}"))?;
    if ready.len() != 2 {
        return Err(format!("wait on stale refs gave {} ready", ready.len()));
    }
    expect_kind("put", unidist::get(&unidist::put(1u8)), ErrorKind::ShutDown)?;
    expect_kind(
        "remote",
        unidist::get(&leaf::remote(2, false)),
        ErrorKind::ShutDown,
    )?;
    expect_kind(
        "a task on a stale ref",
        unidist::get(&leaf::remote(&pending, false)),
        ErrorKind::ShutDown,
    )?;
    match unidist::get(&ledger.entries()) {
        Err(e) if matches!(e.kind(), ErrorKind::StaleRef | ErrorKind::ShutDown) => {}
        other => return Err(format!("a call on an old actor gave {other:?}")),
    }
    if ledger.kill().is_ok() {
        return Err("kill of an actor of a shut-down runtime succeeded".into());
    }
    expect_kind(
        "a new actor",
        unidist::get(&Ledger::remote().entries()),
        ErrorKind::ShutDown,
    )?;
    expect_kind(
        "cluster_resources",
        unidist::cluster_resources(),
        ErrorKind::ShutDown,
    )?;
    if unidist::is_initialized() {
        return Err("is_initialized() is true after shutdown".into());
    }
    // `init` starts a fresh runtime; old refs stay stale in it.
    unidist::init().map_err(|e| format!("init again: {e}"))?;
    expect_kind("get after init", unidist::get(&kept), ErrorKind::StaleRef)?;
    let fresh = unidist::get(&leaf::remote(3, false)).map_err(|e| e.to_string())?;
    (fresh == 3)
        .then_some(())
        .ok_or(format!("a task after init gave {fresh}"))
}
