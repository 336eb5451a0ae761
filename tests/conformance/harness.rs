//! The harness: cases as data, expected failures as data, the per-case watchdog, the report
//! lines, and the small assertion helpers the cases share.

use std::fmt::Debug;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use unidist::{Error, ErrorKind, ObjectRef, Value};

/// One named check, run once per backend.
pub struct Case {
    /// `topic::name`, the topic being the module (`task`, `object`, `wait`, ...).
    pub name: &'static str,
    /// The check itself.
    pub run: fn() -> Outcome,
}

/// What a case returns: `Err` says what was wrong.
pub type Outcome = Result<(), Fail>;

/// Why a case failed.
#[derive(Debug)]
pub struct Fail(pub String);

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

/// Backends that cannot support a behaviour declare it here: `(backend, case, reason)`.
///
/// Those cases still run and must fail; one that passes is reported as a failure ("unexpectedly
/// passed"), so an entry cannot outlive the limitation it describes.
pub const EXPECTED_FAILURES: &[(&str, &str, &str)] = &[
    (
        "pyseq",
        "object::get_timeout_slow_task",
        PYSEQ_NOTHING_PENDING,
    ),
    ("pyseq", "wait::pending_not_ready", PYSEQ_NOTHING_PENDING),
    (
        "pyseq",
        "wait::failed_ref_ready_before_pending",
        PYSEQ_NOTHING_PENDING,
    ),
    ("pyseq", "wait::wait_timeout_partial", PYSEQ_NOTHING_PENDING),
    (
        "pyseq",
        "async_actor::concurrent_calls",
        PYSEQ_NO_OVERTAKING,
    ),
];

const PYSEQ_NOTHING_PENDING: &str =
    "pyseq runs every call to completion when it is submitted, so no object is ever pending";
const PYSEQ_NO_OVERTAKING: &str = "pyseq runs every actor call to completion when it is \
     submitted, so a later call cannot run while an earlier async call awaits";

fn expected_failure(backend: &str, case: &str) -> Option<&'static str> {
    EXPECTED_FAILURES
        .iter()
        .find(|(b, c, _)| *b == backend && *c == case)
        .map(|(_, _, reason)| *reason)
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
pub fn start_watchdog() {
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
pub fn watched<T>(label: &str, limit: Duration, f: impl FnOnce() -> T) -> T {
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
pub fn report_failure(label: &str, message: &str) {
    FAILED.fetch_add(1, Ordering::SeqCst);
    println!("{label} ... FAIL {message}");
}

/// Runs one case on `backend`, prints its line and counts it.
pub fn run_case(backend: &str, case: &Case, limit: Duration) {
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
    let (passed, verdict) = match (outcome, expected_failure(backend, case.name)) {
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
pub fn totals() -> (usize, usize) {
    (PASSED.load(Ordering::SeqCst), FAILED.load(Ordering::SeqCst))
}

/// The longest any single read in a case may block: reads use it so that a lost object fails
/// the case with a message well before the watchdog ends the run.
pub const READ_LIMIT: Duration = Duration::from_secs(30);

/// `get` bounded by [`READ_LIMIT`].
pub fn fetch<T: Value>(r: &ObjectRef<T>) -> Result<T, Fail> {
    unidist::get_timeout(r, READ_LIMIT)
        .map_err(|e| Fail(format!("reading {r:?} failed (kind {:?}): {e}", e.kind())))
}

/// The error of `result`, which must be an `Err` of `kind`.
pub fn expect_err<T: Debug>(result: unidist::Result<T>, kind: ErrorKind) -> Result<Error, Fail> {
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
pub fn ensure_mentions(message: &str, parts: &[&str]) -> Outcome {
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
pub fn eventually(limit: Duration, mut probe: impl FnMut() -> Result<bool, Fail>) -> Outcome {
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
pub fn backend() -> Result<unidist::config::BackendName, Fail> {
    Ok(unidist::config::Backend::get()?)
}
