//! The harness: cases as data, expected failures as data, the per-case watchdog, the report
//! lines, and the small assertion helpers the cases share.

use std::fmt::Debug;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use unidist::config::BackendName;
use unidist::{Capabilities, Error, ErrorKind, ObjectRef, Value};

/// One named check, run once per backend.
pub(crate) struct Case {
    /// `topic::name`, the topic being the module (`task`, `object`, `wait`, ...).
    pub name: &'static str,
    /// The check itself.
    pub run: fn() -> Outcome,
}

/// What a case returns: `Err` says what was wrong.
pub(crate) type Outcome = Result<(), Fail>;

/// Why a case failed.
#[derive(Debug)]
pub(crate) struct Fail(pub String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail(format!("unexpected error (kind {:?}): {e}", e.kind()))
    }
}

impl From<unidist::config::ConfigError> for Fail {
    fn from(e: unidist::config::ConfigError) -> Self {
        Fail(format!("unexpected configuration error: {e}"))
    }
}

/// Builds the case list of a topic module: `cases!("task": remote_get, chaining_value)`.
macro_rules! cases {
    ($topic:literal: $($f:ident),* $(,)?) => {
        vec![$($crate::harness::Case {
            name: concat!($topic, "::", stringify!($f)),
            run: $f,
        }),*]
    };
}
pub(crate) use cases;

/// Fails the case with a message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::harness::Fail(format!(
                "{} (at line {})", format!($($msg)+), line!()
            )));
        }
    };
}
pub(crate) use ensure;

/// Fails the case unless both values are equal, showing both.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err($crate::harness::Fail(format!(
                "`{}` is {:?}, expected {:?} (at line {})",
                stringify!($left),
                left,
                right,
                line!()
            )));
        }
    }};
}
pub(crate) use ensure_eq;

/// A behaviour a backend cannot support, declared by what the backend lacks (its
/// [`Capabilities`]), never by its name.
pub(crate) struct ExpectedFailure {
    /// The case, `topic::name`.
    pub case: &'static str,
    /// True for the backends that cannot pass it.
    pub when: fn(&Capabilities) -> bool,
    /// Why, in a sentence.
    pub reason: &'static str,
}

/// Cases that must fail on backends lacking a capability.
///
/// Those cases still run and must fail; one that passes is reported as a failure ("unexpectedly
/// passed"), so an entry cannot outlive the limitation it describes.
pub(crate) const EXPECTED_FAILURES: &[ExpectedFailure] = &[
    ExpectedFailure {
        case: "object::get_timeout_slow_task",
        when: nothing_pending,
        reason: NOTHING_PENDING,
    },
    ExpectedFailure {
        case: "wait::pending_not_ready",
        when: nothing_pending,
        reason: NOTHING_PENDING,
    },
    ExpectedFailure {
        case: "wait::failed_ref_ready_before_pending",
        when: nothing_pending,
        reason: NOTHING_PENDING,
    },
    ExpectedFailure {
        case: "wait::wait_timeout_partial",
        when: nothing_pending,
        reason: NOTHING_PENDING,
    },
    ExpectedFailure {
        case: "async_actor::concurrent_calls",
        when: nothing_pending,
        reason: NO_OVERTAKING,
    },
    ExpectedFailure {
        case: "fault_tolerance::retry_on_panic_succeeds_on_third_run",
        when: no_retries,
        reason: NOT_YET,
    },
    ExpectedFailure {
        case: "observe::stats_count_retries",
        when: no_retries,
        reason: NOT_YET,
    },
    ExpectedFailure {
        case: "observe::stats_count_cancels",
        when: no_cancel,
        reason: NOT_YET,
    },
    ExpectedFailure {
        case: "observe::stats_count_cancels",
        when: nothing_pending,
        reason: NOTHING_PENDING,
    },
    ExpectedFailure {
        case: "fault_tolerance::retries_run_out_and_say_how_many",
        when: no_retries,
        reason: NOT_YET,
    },
    ExpectedFailure {
        case: "fault_tolerance::timeout_fails_with_timeout_and_dependents_fail",
        when: no_timeouts,
        reason: NOT_YET,
    },
    ExpectedFailure {
        case: "fault_tolerance::timeout_frees_every_slot_at_once",
        when: no_timeouts,
        reason: NOT_YET,
    },
    ExpectedFailure {
        case: "fault_tolerance::timeout_frees_every_slot_at_once",
        when: nothing_pending,
        reason: RUNS_IN_CALLER,
    },
    ExpectedFailure {
        case: "fault_tolerance::timeout_is_retried_while_retries_are_left",
        when: no_timeouts,
        reason: NOT_YET,
    },
    ExpectedFailure {
        case: "fault_tolerance::cancel_pending",
        when: no_cancel,
        reason: NOT_YET,
    },
    ExpectedFailure {
        case: "fault_tolerance::cancel_pending",
        when: nothing_pending,
        reason: NOTHING_PENDING,
    },
    ExpectedFailure {
        case: "fault_tolerance::cancel_running",
        when: no_cancel,
        reason: NOT_YET,
    },
    ExpectedFailure {
        case: "fault_tolerance::cancel_running",
        when: nothing_pending,
        reason: NOTHING_PENDING,
    },
    ExpectedFailure {
        case: "fault_tolerance::get_all_returns_an_error_at_once",
        when: no_fail_fast,
        reason: NOT_YET,
    },
];

fn no_retries(c: &Capabilities) -> bool {
    !c.retries
}

fn no_timeouts(c: &Capabilities) -> bool {
    !c.timeouts
}

fn no_cancel(c: &Capabilities) -> bool {
    !c.cancel
}

fn no_fail_fast(c: &Capabilities) -> bool {
    !c.fail_fast
}

const NOT_YET: &str = "not implemented on this backend yet";
const RUNS_IN_CALLER: &str = "the backend runs every call to completion in the caller's thread \
     (no pending objects), so a timed-out body holds the caller until it returns";

fn nothing_pending(c: &Capabilities) -> bool {
    !c.pending_objects
}

const NOTHING_PENDING: &str = "the backend runs every call to completion when it is submitted \
     (no pending objects), so no object is ever pending";
const NO_OVERTAKING: &str = "the backend runs every actor call to completion when it is \
     submitted (no pending objects), so a later call cannot run while an earlier async call awaits";

fn expected_failure(caps: &Capabilities, case: &str) -> Option<&'static str> {
    EXPECTED_FAILURES
        .iter()
        .find(|f| f.case == case && (f.when)(caps))
        .map(|f| f.reason)
}

static PASSED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// What the watchdog watches: the step that runs now, since when, and its limit.
struct Running {
    label: String,
    started: Instant,
    limit: Duration,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// Starts the thread that ends the run when a step exceeds its limit: a hang is a failure with
/// a message and a summary line, never a stuck run.
pub(crate) fn start_watchdog() {
    static START: Once = Once::new();
    START.call_once(|| {
        std::thread::Builder::new()
            .name("conformance-watchdog".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_millis(50));
                let running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(r) = &*running {
                    if r.started.elapsed() > r.limit {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(
                            out,
                            "{} ... FAIL timed out after {} s",
                            r.label,
                            r.limit.as_secs()
                        );
                        let _ = writeln!(
                            out,
                            "{} passed, {} failed",
                            PASSED.load(Ordering::SeqCst),
                            FAILED.load(Ordering::SeqCst) + 1
                        );
                        let _ = out.flush();
                        std::process::exit(1);
                    }
                }
            })
            .expect("the watchdog thread must start");
    });
}

/// Runs `f` under the watchdog, labelled for the timeout message.
pub(crate) fn watched<T>(label: &str, limit: Duration, f: impl FnOnce() -> T) -> T {
    *RUNNING.lock().unwrap_or_else(PoisonError::into_inner) = Some(Running {
        label: label.to_string(),
        started: Instant::now(),
        limit,
    });
    let out = f();
    *RUNNING.lock().unwrap_or_else(PoisonError::into_inner) = None;
    out
}

/// Records a failure of something that is not a case (starting or stopping a backend).
pub(crate) fn report_failure(label: &str, message: &str) {
    FAILED.fetch_add(1, Ordering::SeqCst);
    println!("{label} ... FAIL {message}");
}

/// Runs one case on `backend`, whose capabilities are `caps`, prints its line and counts it.
pub(crate) fn run_case(backend: &str, caps: &Capabilities, case: &Case, limit: Duration) {
    let label = format!("[{backend}] {}", case.name);
    let outcome = watched(&label, limit, || {
        catch_unwind(AssertUnwindSafe(case.run)).unwrap_or_else(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".to_string());
            Err(Fail(format!("the case panicked: {message}")))
        })
    });
    let (passed, verdict) = match (outcome, expected_failure(caps, case.name)) {
        (Ok(()), None) => (true, "ok".to_string()),
        (Err(Fail(m)), None) => (false, format!("FAIL {m}")),
        (Err(Fail(m)), Some(reason)) => (true, format!("xfail {reason} (failed with: {m})")),
        (Ok(()), Some(reason)) => (
            false,
            format!("FAIL unexpectedly passed (declared expected failure: {reason})"),
        ),
    };
    if passed {
        PASSED.fetch_add(1, Ordering::SeqCst);
    } else {
        FAILED.fetch_add(1, Ordering::SeqCst);
    }
    println!("{label} ... {verdict}");
}

/// `(passed, failed)` so far.
pub(crate) fn totals() -> (usize, usize) {
    (PASSED.load(Ordering::SeqCst), FAILED.load(Ordering::SeqCst))
}

/// The longest any single read in a case may block: reads use it so that a lost object fails
/// the case with a message well before the watchdog ends the run.
pub(crate) const READ_LIMIT: Duration = Duration::from_secs(30);

/// `get` bounded by [`READ_LIMIT`].
pub(crate) fn fetch<T: Value>(r: &ObjectRef<T>) -> Result<T, Fail> {
    unidist::get_timeout(r, READ_LIMIT)
        .map_err(|e| Fail(format!("reading {r:?} failed (kind {:?}): {e}", e.kind())))
}

/// The error of `result`, which must be an `Err` of `kind`.
pub(crate) fn expect_err<T: Debug>(
    result: unidist::Result<T>,
    kind: ErrorKind,
) -> Result<Error, Fail> {
    match result {
        Ok(v) => Err(Fail(format!(
            "expected an error of kind {kind:?}, got Ok({v:?})"
        ))),
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => Err(Fail(format!(
            "expected an error of kind {kind:?}, got kind {:?}: {e}",
            e.kind()
        ))),
    }
}

/// Checks that a message names each of `parts` (function names, panic messages, variables,
/// values): the places where the API requires the text to say something specific.
pub(crate) fn ensure_mentions(message: &str, parts: &[&str]) -> Outcome {
    for part in parts {
        if !message.contains(part) {
            return Err(Fail(format!(
                "the message does not name {part:?}: {message}"
            )));
        }
    }
    Ok(())
}

/// Polls `probe` until it returns true or `limit` runs out.
pub(crate) fn eventually(
    limit: Duration,
    mut probe: impl FnMut() -> Result<bool, Fail>,
) -> Outcome {
    let deadline = Instant::now() + limit;
    loop {
        if probe()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Fail(format!("the condition did not hold within {limit:?}")));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The backend this run uses.
pub(crate) fn backend() -> Result<BackendName, Fail> {
    Ok(unidist::config::Backend::get()?)
}

/// What the running backend supports.
pub(crate) fn capabilities() -> Result<Capabilities, Fail> {
    Ok(unidist::capabilities()?)
}

/// The backend a child process of a case uses: this run's backend when it runs inside one
/// process, else the first built-in backend that does (a plain child process cannot join a job
/// whose workers are other processes).
pub(crate) fn child_backend() -> Result<BackendName, Fail> {
    let current = backend()?;
    if !capabilities()?.separate_processes {
        return Ok(current);
    }
    unidist::in_process_backends()
        .first()
        .copied()
        .ok_or_else(|| Fail("no backend that runs in one process is built in".into()))
}
