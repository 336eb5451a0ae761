//! Bad input at the API: arguments out of range, refs that outlived their runtime, killed
//! actors. Each gives a typed error that names what was wrong, within a bounded time.
//!
//! The configuration side (every variable with bad values) is in `config`; the wire and codec
//! side is fuzzed (`cargo xtask fuzz`).

use std::time::Duration;

use unidist::{ErrorKind, ObjectRef};

use crate::fixtures::{read_accumulator, square, TestActor};
use crate::harness::{
    cases, child_backend, ensure, ensure_eq, ensure_mentions, expect_err, fetch, Case, Fail,
    Outcome, READ_LIMIT,
};
use crate::probe;

pub(crate) fn cases() -> Vec<Case> {
    cases!("bad_input":
        wait_num_returns_out_of_range,
        killed_actor_everywhere,
        stale_refs_in_a_new_runtime,
    )
}

/// `num_returns` of 0 or above the list length is `InvalidArgument` naming the value, for
/// `wait` and `wait_timeout` alike, including the largest `usize`.
fn wait_num_returns_out_of_range() -> Outcome {
    let refs = vec![unidist::put(1i64), unidist::put(2i64)];
    let second = Duration::from_secs(1);
    let e = expect_err(
        unidist::wait_timeout(&refs, 0, second),
        ErrorKind::InvalidArgument,
    )?;
    ensure_mentions(&e.to_string(), &["num_returns", "0"])?;
    let huge = usize::MAX.to_string();
    let e = expect_err(unidist::wait(&refs, usize::MAX), ErrorKind::InvalidArgument)?;
    ensure_mentions(&e.to_string(), &["num_returns", &huge])?;
    let e = expect_err(
        unidist::wait_timeout(&refs, usize::MAX, second),
        ErrorKind::InvalidArgument,
    )?;
    ensure_mentions(&e.to_string(), &["num_returns", &huge])?;
    // A zero timeout is not bad input: it returns what is ready now.
    let (ready, rest) = unidist::wait_timeout(&refs, 2, Duration::ZERO)?;
    ensure!(ready.len() + rest.len() == 2, "wait_timeout lost refs");
    Ok(())
}

/// A killed actor: a second `kill` does not hang, calls give `ActorDead`, a task handed the
/// dead handle fails instead of hanging, and `wait` counts the failed call as ready.
fn killed_actor_everywhere() -> Outcome {
    let actor = TestActor::remote(3);
    ensure_eq!(fetch(&actor.get_accumulator())?, 3);
    let pending_before_kill = actor.task(1);
    actor.kill()?;
    // Killing again is harmless: either accepted or an error saying the actor is gone.
    if let Err(e) = actor.kill() {
        ensure_eq!(e.kind(), ErrorKind::ActorDead);
    }
    let call = actor.get_accumulator();
    let e = expect_err(
        unidist::get_timeout(&call, READ_LIMIT),
        ErrorKind::ActorDead,
    )?;
    // The message names the actor: its type and its id, on every backend.
    ensure_mentions(&e.to_string(), &["TestActor#", &actor.id()?.to_string()])?;
    let (ready, _) = unidist::wait_timeout(std::slice::from_ref(&call), 1, READ_LIMIT)?;
    ensure_eq!(ready.len(), 1);
    // The call made before the kill either ran or reports the kill; it never hangs.
    match unidist::get_timeout(&pending_before_kill, READ_LIMIT) {
        Ok(v) => ensure_eq!(v, 5),
        Err(e) => ensure_eq!(e.kind(), ErrorKind::ActorDead),
    }
    let through_task = read_accumulator::remote(actor.clone());
    match unidist::get_timeout(&through_task, READ_LIMIT) {
        Err(e) if matches!(e.kind(), ErrorKind::TaskFailed | ErrorKind::ActorDead) => Ok(()),
        other => Err(Fail(format!(
            "a task reading a killed actor gave {other:?}, expected an error"
        ))),
    }
}

/// Set in the child process that runs a case's body (see [`in_child`]).
const CHILD_VAR: &str = "CONFORMANCE_CHILD_CASE";

/// Runs `case` in a fresh process of this suite, on this backend (an in-process backend when
/// this one's workers are other processes, which a plain child cannot join), and checks that it
/// passed there.
fn in_child(case: &str) -> Outcome {
    let name = child_backend()?;
    // A bare argument is the suite's filter; the variable tells the child to run the body.
    let out = probe::run(
        case,
        &[("UNIDIST_BACKEND", name.as_str()), (CHILD_VAR, case)],
    )?;
    let passed = format!("[{name}] {case} ... ok");
    ensure!(
        out.code == Some(0) && out.stdout.lines().any(|l| l == passed),
        "the child running {case} on {name} failed: exit {:?}, stdout {:?}, stderr {:?}",
        out.code,
        out.stdout,
        out.stderr
    );
    Ok(())
}

fn is_child(case: &str) -> bool {
    std::env::var(CHILD_VAR).is_ok_and(|v| v == case)
}

/// Refs and actor handles of a runtime that was shut down, used after `init` started a new
/// one: reads give `StaleRef`, a task given such a ref fails with it, mixing old and new refs
/// is `StaleRef`, and `wait` treats stale refs as ready. Nothing hangs.
fn stale_refs_in_a_new_runtime() -> Outcome {
    const CASE: &str = "bad_input::stale_refs_in_a_new_runtime";
    if !is_child(CASE) {
        return in_child(CASE);
    }
    let old = unidist::put(6i64);
    let old_result = square::remote(&old);
    ensure_eq!(fetch(&old_result)?, 36);
    let old_actor = TestActor::remote(1);
    ensure_eq!(fetch(&old_actor.get_accumulator())?, 1);
    unidist::shutdown()?;
    unidist::init()?;

    let e = expect_err(unidist::get_timeout(&old, READ_LIMIT), ErrorKind::StaleRef)?;
    ensure_mentions(&e.to_string(), &[&old.id()?.to_string()])?;
    expect_err(
        unidist::get_timeout(&old_result, READ_LIMIT),
        ErrorKind::StaleRef,
    )?;
    let fresh = unidist::put(7i64);
    let mixed: Vec<ObjectRef<i64>> = vec![fresh.clone(), old.clone()];
    expect_err(unidist::get_all(&mixed), ErrorKind::StaleRef)?;
    ensure_eq!(fetch(&fresh)?, 7);
    let task_on_stale = square::remote(&old);
    match unidist::get_timeout(&task_on_stale, READ_LIMIT) {
        Err(e) if matches!(e.kind(), ErrorKind::StaleRef | ErrorKind::TaskFailed) => {}
        other => {
            return Err(Fail(format!(
                "a task given a stale ref gave {other:?}, expected StaleRef"
            )))
        }
    }
    let (ready, _) = unidist::wait_timeout(std::slice::from_ref(&old), 1, READ_LIMIT)?;
    ensure_eq!(ready.len(), 1);
    match unidist::get_timeout(&old_actor.get_accumulator(), READ_LIMIT) {
        Err(e) if matches!(e.kind(), ErrorKind::StaleRef | ErrorKind::ActorDead) => {}
        other => {
            return Err(Fail(format!(
                "a call on an actor of the old runtime gave {other:?}, expected StaleRef"
            )))
        }
    }
    // The new runtime is unaffected.
    ensure_eq!(fetch(&square::remote(&fresh))?, 49);
    Ok(())
}
