//! Retries and time limits of a task, written once: which failures are re-run, how a run that
//! took too long fails, and how the error after the last run says how many runs were made.
//!
//! A backend that runs a task to completion in one thread calls [`run_with_retries`]; one that
//! can also stop waiting for a run (pymp's timer, MPI's worker loss) applies [`may_retry`] and
//! [`last_error`] to the failures it sees itself.

use std::time::{Duration, Instant};

use crate::backend::TaskOptions;
use crate::error::{Error, TaskError, TaskFailure};
use crate::registry::RemoteFunction;
use crate::task::run_function;
use crate::value::{Outputs, Payload};

/// The error of a run of `name` that took longer than `limit`; `runs` is how many runs were
/// made in all, said only when the task could be retried.
pub fn timed_out(name: &str, limit: Duration, runs: u32, options: &TaskOptions) -> Error {
    Error::Timeout {
        what: format!(
            "task {name}, whose body ran longer than its timeout{},",
            runs_note(runs, options)
        ),
        after: limit,
    }
}

/// The error of `name` cancelled with `unidist::cancel`.
pub fn cancelled(name: &str) -> Error {
    Error::Cancelled {
        what: format!("task {name}"),
    }
}

/// True if a task with `options` whose run number `runs` (1 for the first) failed with
/// `error` runs again: a timeout or a lost worker while retries are left, and a panic too with
/// `retry_exceptions`.
pub fn may_retry(options: &TaskOptions, runs: u32, error: &Error) -> bool {
    if is_last_run(options, runs) {
        return false;
    }
    match error {
        Error::Timeout { .. } | Error::WorkerLost { .. } => true,
        Error::Task(t) => options.retry_exceptions && t.failure == TaskFailure::Panicked,
        _ => false,
    }
}

/// True if run number `runs` of a task with `options` is its last whatever its outcome: no
/// retries are left after it.
fn is_last_run(options: &TaskOptions, runs: u32) -> bool {
    runs > options.max_retries
}

/// The error to store after the last run: `error`, saying how many runs were made when the
/// task could be retried. A timeout error already says it ([`timed_out`]).
pub fn last_error(options: &TaskOptions, runs: u32, error: Error) -> Error {
    match error {
        Error::Task(t) if options.max_retries > 0 => {
            let mut t = TaskError::clone(&t);
            t.message = format!("{}{}", t.message, runs_note(runs, options));
            Error::from(t)
        }
        Error::WorkerLost { what, reason } if options.max_retries > 0 => Error::WorkerLost {
            what: format!("{what}{}", runs_note(runs, options)),
            reason,
        },
        other => other,
    }
}

fn runs_note(runs: u32, options: &TaskOptions) -> String {
    if options.max_retries == 0 {
        String::new()
    } else if runs == 1 {
        " (after 1 run)".to_string()
    } else {
        format!(" (after {runs} runs)")
    }
}

/// Runs `function` on `args` in this thread, again while [`may_retry`] allows: a panic with
/// `retry_exceptions`, and a run that took longer than `options.timeout` (which fails with
/// [`timed_out`] when it returns, as no other thread watches it here).
///
/// `before_run` is asked before every run and gives the number of that run for the task (1
/// for the first; a backend that also re-runs a task elsewhere counts those runs too), or
/// `None` when the task must not run again (it was cancelled or timed out meanwhile): the
/// result is then `None` and nobody reads it.
///
/// A run that may be followed by another gets a clone of `args` (so a by-value parameter is
/// copied and the next run still has its value); the last possible run gets `args` itself, so
/// a task without retries moves its values into the body ([`run_function`]).
pub fn run_with_retries(
    function: &RemoteFunction,
    mut args: Vec<Payload>,
    options: &TaskOptions,
    mut before_run: impl FnMut() -> Option<u32>,
) -> Option<Result<Outputs, Error>> {
    let mut again = false;
    loop {
        let runs = before_run()?;
        // After the last possible run `may_retry` ends the loop, so nothing reads `args` again.
        let run_args = if is_last_run(options, runs) {
            std::mem::take(&mut args)
        } else {
            args.clone()
        };
        // Counted once the run begins: a body abandoned by a timer that re-queued the task
        // (counting that retry itself) ends here and must not count another.
        if again {
            crate::observe::stats::count(crate::observe::stats::Counter::TasksRetried);
        }
        let started = Instant::now();
        let result = run_function(function, run_args).map_err(Error::from);
        let error = match (result, options.timeout) {
            (result, Some(limit)) if started.elapsed() > limit => {
                if let Ok(outputs) = &result {
                    crate::observe::stats::outputs_dropped(outputs);
                }
                timed_out(function.name, limit, runs, options)
            }
            (Ok(outputs), _) => return Some(Ok(outputs)),
            (Err(e), _) => e,
        };
        if !may_retry(options, runs, &error) {
            return Some(Err(last_error(options, runs, error)));
        }
        again = true;
        tracing::debug!(function = function.name, runs, error = %error, "retrying a task");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::task::install_panic_hook;
    use crate::value::output;
    use std::sync::atomic::{AtomicU32, Ordering};

    static CALLS: AtomicU32 = AtomicU32::new(0);

    /// Panics on its first two runs.
    fn flaky(_: Vec<Payload>) -> crate::Result<Outputs> {
        let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(n >= 3, "run {n} fails");
        Ok(vec![output(n)])
    }

    static FLAKY: RemoteFunction = RemoteFunction {
        name: "tests::flaky",
        num_returns: 1,
        invoke: flaky,
    };

    fn counter() -> impl FnMut() -> Option<u32> {
        let mut runs = 0;
        move || {
            runs += 1;
            Some(runs)
        }
    }

    #[test]
    fn panics_are_retried_only_with_retry_exceptions_and_runs_are_counted() {
        install_panic_hook();
        CALLS.store(0, Ordering::SeqCst);
        let options = TaskOptions::default().max_retries(2);
        let e = run_with_retries(&FLAKY, vec![], &options, counter())
            .unwrap()
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::TaskFailed);
        assert!(e.to_string().contains("(after 1 run)"), "{e}");

        CALLS.store(0, Ordering::SeqCst);
        let options = options.retry_exceptions(true);
        let out = run_with_retries(&FLAKY, vec![], &options, counter())
            .unwrap()
            .unwrap();
        assert_eq!(out[0].as_any().downcast_ref::<u32>(), Some(&3));

        CALLS.store(0, Ordering::SeqCst);
        let options = TaskOptions::default().max_retries(1).retry_exceptions(true);
        let e = run_with_retries(&FLAKY, vec![], &options, counter())
            .unwrap()
            .err()
            .unwrap();
        assert!(e.to_string().contains("(after 2 runs)"), "{e}");
    }

    #[test]
    fn a_stop_before_a_run_gives_nothing() {
        let options = TaskOptions::default();
        assert!(run_with_retries(&FLAKY, vec![], &options, || None).is_none());
    }

    fn slow(_: Vec<Payload>) -> crate::Result<Outputs> {
        std::thread::sleep(Duration::from_millis(20));
        Ok(vec![output(1u8)])
    }

    static SLOW: RemoteFunction = RemoteFunction {
        name: "tests::slow",
        num_returns: 1,
        invoke: slow,
    };

    #[test]
    fn a_run_longer_than_its_timeout_fails_and_is_retried() {
        let options = TaskOptions::default()
            .timeout(Duration::from_millis(1))
            .max_retries(1);
        let mut runs = 0;
        let e = run_with_retries(&SLOW, vec![], &options, || {
            runs += 1;
            Some(runs)
        })
        .unwrap()
        .err()
        .unwrap();
        assert_eq!(runs, 2);
        assert_eq!(e.kind(), ErrorKind::Timeout);
        let text = e.to_string();
        assert!(
            text.contains("tests::slow") && text.contains("1ms"),
            "{text}"
        );
        assert!(text.contains("(after 2 runs)"), "{text}");
        assert!(!may_retry(&options, 1, &cancelled("f")));
    }

    /// Where the data of the `Vec<u8>` argument of each run of [`FIRST_RUN_PANICS`] was.
    static SEEN: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

    /// Takes a `Vec<u8>` by value, records where its data is, and panics on its first run.
    fn first_run_panics(args: Vec<Payload>) -> crate::Result<Outputs> {
        let mut args = args.into_iter();
        let v = args.next().unwrap().into_owned::<Vec<u8>>()?;
        let runs = {
            let mut seen = SEEN.lock().unwrap();
            seen.push(v.as_ptr() as usize);
            seen.len()
        };
        assert!(runs > 1, "the first run fails");
        Ok(vec![output(v.len())])
    }

    static FIRST_RUN_PANICS: RemoteFunction = RemoteFunction {
        name: "tests::first_run_panics",
        num_returns: 1,
        invoke: first_run_panics,
    };

    #[test]
    fn a_run_that_may_be_retried_copies_its_arguments_and_the_last_one_moves_them() {
        install_panic_hook();
        let v = vec![3u8; 4096];
        let data = v.as_ptr() as usize;
        let options = TaskOptions::default().max_retries(1).retry_exceptions(true);
        let out = run_with_retries(
            &FIRST_RUN_PANICS,
            vec![Payload::local(v)],
            &options,
            counter(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(out[0].as_any().downcast_ref::<usize>(), Some(&4096));
        let seen = SEEN.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_ne!(seen[0], data, "the first run took the value a retry needs");
        assert_eq!(seen[1], data, "the last run got a copy");
    }
}
