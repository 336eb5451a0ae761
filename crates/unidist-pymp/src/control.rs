//! Who settles a task's outputs when it can be retried, timed out or cancelled: the run that
//! finishes, the timer that sees a run take too long, or `cancel`, whichever comes first.
//!
//! A run that loses (timed out or cancelled while its body still runs) cannot be interrupted:
//! its thread lends its pool slot, exactly like a worker blocked in `get`, so a compensation
//! thread keeps the pool at full strength, and the body's result is dropped when it returns.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use unidist_core::{retry, Outputs, Result, TaskOptions};

use crate::shared::{Completion, Shared};
use crate::tasks::{Task, TaskCell};

/// The settle-once state of one task's outputs.
pub(crate) struct Control {
    state: Mutex<State>,
}

struct State {
    /// The outputs; taken by whoever settles them.
    done: Option<Completion>,
    /// Runs started so far.
    runs: u32,
    /// A run is in progress (started and not finished or abandoned).
    running: bool,
    /// Runs up to this number were abandoned: their results are dropped and their threads
    /// lent their slots.
    abandoned: u32,
}

/// What [`Control::cancel`] found.
pub(crate) enum Cancelled {
    /// The outputs were settled with `Cancelled` now.
    Now,
    /// They were settled before.
    AlreadyDone,
}

impl Control {
    pub(crate) fn new(done: Completion) -> Self {
        Control {
            state: Mutex::new(State {
                done: Some(done),
                runs: 0,
                running: false,
                abandoned: 0,
            }),
        }
    }

    /// Settles the outputs now, unless they were settled already; for a task that does not
    /// run (a failed argument, shutdown, cancelled while pending).
    pub(crate) fn settle(&self, shared: &Arc<Shared>, result: Result<Outputs>) {
        let done = self.state.lock().done.take();
        if let Some(done) = done {
            finish_task(done, shared, result);
        }
    }

    /// A run is about to start on this thread, whose previous run of the task (if any) was
    /// `mine`: its number, or `None` if the task must not run again (it was settled, or this
    /// thread's run was abandoned and the task runs elsewhere now).
    pub(crate) fn begin_run(&self, mine: &mut Option<u32>) -> Option<u32> {
        let mut s = self.state.lock();
        if s.done.is_none() || mine.is_some_and(|r| r <= s.abandoned) {
            return None;
        }
        s.runs += 1;
        s.running = true;
        *mine = Some(s.runs);
        Some(s.runs)
    }

    /// The runs of this thread ended with `result` (its last run being `mine`): settles the
    /// outputs if that run still owns them, else drops the result and takes back the slot the
    /// abandoned run lent.
    pub(crate) fn finish_run(
        &self,
        shared: &Arc<Shared>,
        mine: Option<u32>,
        result: Option<Result<Outputs>>,
    ) {
        let Some(run) = mine else { return };
        let mut s = self.state.lock();
        if run <= s.abandoned {
            drop(s);
            if let Some(Ok(outputs)) = &result {
                unidist_core::observe::stats::outputs_dropped(outputs);
            }
            drop(result);
            shared.return_slot();
            return;
        }
        s.running = false;
        let done = s.done.take();
        drop(s);
        if let (Some(done), Some(result)) = (done, result) {
            finish_task(done, shared, result);
        }
    }

    /// Abandons the run in progress, if any, so its thread lends its slot; the caller holds
    /// the state.
    fn abandon_running(s: &mut State, shared: &Arc<Shared>) {
        if s.running {
            s.running = false;
            s.abandoned = s.runs;
            shared.abandon_slot();
        }
    }

    /// `unidist::cancel` of a task that was taken to run (or ran): a running body is abandoned
    /// and its outputs fail with `Cancelled`.
    pub(crate) fn cancel(&self, shared: &Arc<Shared>) -> Cancelled {
        let mut s = self.state.lock();
        let Some(done) = s.done.take() else {
            return Cancelled::AlreadyDone;
        };
        Self::abandon_running(&mut s, shared);
        drop(s);
        let error = retry::cancelled(done.name());
        finish_task(done, shared, Err(error));
        unidist_core::observe::stats::count(unidist_core::observe::stats::Counter::TasksCancelled);
        Cancelled::Now
    }

    /// The timer fired for run `run` of the task in `cell`: if that run is still in progress,
    /// it is abandoned, and the task is queued again while retries are left, else its outputs
    /// fail with `Timeout`.
    fn expire(&self, shared: &Arc<Shared>, cell: &Arc<TaskCell>, expiry: &Expiry) {
        let mut s = self.state.lock();
        if !s.running || s.runs != expiry.run || s.done.is_none() {
            return;
        }
        Self::abandon_running(&mut s, shared);
        let error = retry::timed_out(expiry.name, expiry.limit, expiry.run, &expiry.retry.options);
        if retry::may_retry(&expiry.retry.options, expiry.run, &error) && !shared.is_closed() {
            drop(s);
            tracing::debug!(
                task = expiry.name,
                run = expiry.run,
                "retrying a timed-out task"
            );
            if cell.requeue(expiry.retry.clone()) {
                unidist_core::observe::stats::count(
                    unidist_core::observe::stats::Counter::TasksRetried,
                );
                shared.enqueue(cell.clone());
            }
            return;
        }
        let done = s.done.take();
        drop(s);
        if let Some(done) = done {
            finish_task(done, shared, Err(error));
        }
    }
}

/// A run to check when its time is up.
struct Expiry {
    deadline: Instant,
    run: u32,
    limit: Duration,
    name: &'static str,
    cell: Arc<TaskCell>,
    /// The task as submitted, to run again.
    retry: Task,
}

impl PartialEq for Expiry {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}
impl Eq for Expiry {}
impl PartialOrd for Expiry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Expiry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.deadline.cmp(&other.deadline)
    }
}

/// One thread per backend, started with the first timed task, that checks runs when their
/// time is up; it ends when the backend is dropped.
#[derive(Default)]
pub(crate) struct Timer {
    tx: Mutex<Option<Sender<Expiry>>>,
}

impl Timer {
    /// Watches run `run` of the task in `cell`, which started now and may take `limit`.
    pub(crate) fn arm(
        &self,
        shared: &Arc<Shared>,
        cell: &Arc<TaskCell>,
        run: u32,
        limit: Duration,
        retry: Task,
    ) {
        let expiry = Expiry {
            deadline: Instant::now() + limit,
            run,
            limit,
            name: retry.function.name,
            cell: cell.clone(),
            retry,
        };
        let mut tx = self.tx.lock();
        let sender = tx.get_or_insert_with(|| {
            let (tx, rx) = crossbeam_channel::unbounded();
            let weak = Arc::downgrade(shared);
            let started = std::thread::Builder::new()
                .name("unidist-pymp-timer".into())
                .spawn(move || watch(rx, weak));
            if let Err(e) = started {
                tracing::error!(error = %e, "cannot start the task timer; timeouts apply when runs return");
            }
            tx
        });
        // A timer that could not start is reported above; the run then settles normally.
        let _ = sender.send(expiry);
    }
}

fn watch(rx: Receiver<Expiry>, shared: Weak<Shared>) {
    let mut heap: BinaryHeap<Reverse<Expiry>> = BinaryHeap::new();
    loop {
        let next = match heap.peek() {
            Some(Reverse(e)) => {
                rx.recv_timeout(e.deadline.saturating_duration_since(Instant::now()))
            }
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(e) => heap.push(Reverse(e)),
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(e)| e.deadline <= now) {
            let Some(Reverse(e)) = heap.pop() else { break };
            let Some(shared) = shared.upgrade() else {
                return;
            };
            e.cell.control.expire(&shared, &e.cell, &e);
        }
    }
}

/// True if the options need a [`Control`]-aware run (retries or a time limit).
/// Settles a task's outputs: every task passes here exactly once, whether it ran, failed to
/// run, timed out or was cancelled, so this is where it is counted.
fn finish_task(done: Completion, shared: &Arc<Shared>, result: Result<Outputs>) {
    let succeeded = result.is_ok();
    done.finish(shared, result);
    unidist_core::observe::stats::task_settled(succeeded);
}

pub(crate) fn needs_control(options: &TaskOptions) -> bool {
    options.max_retries > 0 || options.timeout.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{start_with, PoolOptions};
    use unidist_core::value::output;
    use unidist_core::{Arg, Backend, ErrorKind, Payload, RemoteFunction, TaskSpec};

    fn sleep_ms(args: Vec<Payload>) -> Result<Outputs> {
        let ms = args[0].take::<u64>()?;
        std::thread::sleep(Duration::from_millis(ms));
        Ok(vec![output(ms)])
    }

    static SLEEP: RemoteFunction = RemoteFunction {
        name: "tests::sleep_ms",
        num_returns: 1,
        invoke: sleep_ms,
    };

    fn submit(b: &Arc<dyn Backend>, ms: u64, options: TaskOptions) -> unidist_core::ObjectId {
        let spec = TaskSpec {
            function: &SLEEP,
            args: vec![Arg::Value(Arc::new(ms))],
            options,
        };
        b.submit(spec).unwrap()[0]
    }

    #[test]
    fn a_timed_out_run_gives_the_only_slot_back() {
        let b = start_with(PoolOptions::new(1)).unwrap();
        let started = Instant::now();
        let stuck = submit(
            &b,
            2000,
            TaskOptions::default().timeout(Duration::from_millis(100)),
        );
        let e = b.get(&[stuck], None).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(
            started.elapsed() < Duration::from_millis(1100),
            "{:?}",
            started.elapsed()
        );
        // The one pool thread still sleeps in the stray body; a compensation thread runs this.
        let later = submit(&b, 1, TaskOptions::default());
        let v = b.get(&[later], Some(Duration::from_millis(1000))).unwrap();
        assert_eq!(v[0].take::<u64>().unwrap(), 1);
        // Shutdown does not wait for the stray body.
        let before = Instant::now();
        b.shutdown().unwrap();
        assert!(
            before.elapsed() < Duration::from_millis(1000),
            "{:?}",
            before.elapsed()
        );
    }

    #[test]
    fn cancel_settles_a_running_task_once() {
        let b = start_with(PoolOptions::new(1)).unwrap();
        let running = submit(&b, 300, TaskOptions::default());
        let queued = submit(&b, 1, TaskOptions::default());
        std::thread::sleep(Duration::from_millis(50));
        b.cancel(running).unwrap();
        b.cancel(queued).unwrap();
        for id in [running, queued] {
            let e = b.get(&[id], None).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
        }
        // Cancelling again, or after the body returned, changes nothing.
        std::thread::sleep(Duration::from_millis(400));
        b.cancel(running).unwrap();
        assert_eq!(
            b.get(&[running], None).err().unwrap().kind(),
            ErrorKind::Cancelled
        );
        b.shutdown().unwrap();
    }
}
