//! Tasks: resolved inputs, dependency tracking, and running a task on the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use unidist_core::call::{ref_id, resolve_call_args, resolve_owned_call_args, ArgState, Resolved};
use unidist_core::observe::timeline;
use unidist_core::task::run_function;
use unidist_core::{retry, AnyRef, Arg, Error, ObjectId, Payload, RemoteFunction, TaskOptions};

use crate::control::{needs_control, Cancelled, Control};
use crate::shared::{Completion, Shared};
use crate::store::{Lookup, Store, Waiter};

/// Reads every argument of the call `name`: values in place, objects from the store, by the
/// rule every backend applies ([`resolve_call_args`]). An id the store no longer holds belonged
/// to a runtime that was shut down.
pub(crate) fn resolve_now(store: &Store, name: &str, args: &[Arg]) -> Resolved {
    resolve_call_args(name, args, |id| lookup(store, id))
}

/// As [`resolve_now`], consuming `args` for a call that runs once from them: values move into
/// their payloads, so a by-value parameter takes its value without a copy when nothing else
/// holds it ([`resolve_owned_call_args`]). The refs come back, to be dropped once the call's
/// outputs are settled.
pub(crate) fn resolve_owned(store: &Store, name: &str, args: Vec<Arg>) -> (Resolved, Vec<AnyRef>) {
    resolve_owned_call_args(name, args, |id| lookup(store, id))
}

/// What the store knows about the argument object `id`.
fn lookup(store: &Store, id: ObjectId) -> ArgState {
    match store.lookup(id) {
        Lookup::Ready(v) => ArgState::Ready(Payload::Local(v)),
        Lookup::Failed(e) => ArgState::Failed(e),
        Lookup::Pending(_) => ArgState::Pending(id),
        Lookup::Missing => ArgState::Failed(Error::StaleRef {
            what: id.to_string(),
        }),
    }
}

/// The ids of the arguments that are refs: what a call waits for before it runs.
pub(crate) fn object_args(args: &[Arg]) -> impl Iterator<Item = ObjectId> + '_ {
    args.iter().filter_map(ref_id)
}

/// A submitted task.
#[derive(Clone)]
pub(crate) struct Task {
    pub(crate) function: &'static RemoteFunction,
    /// The arguments; their refs keep the objects alive until the task has read them.
    pub(crate) args: Vec<Arg>,
    /// Validated options: retries and the time limit of a run.
    pub(crate) options: TaskOptions,
    /// The timeline flow of its submission (0 when not recording).
    pub(crate) flow: u64,
}

impl Task {
    /// Runs the task on the calling thread; every argument is settled. Its outputs are
    /// settled through `cell`'s control, so a run that lost them (cancelled, timed out) only
    /// drops its result.
    pub(crate) fn run(self, shared: &Arc<Shared>, cell: &Arc<TaskCell>) {
        let control = &cell.control;
        if shared.is_closed() {
            control.settle(shared, Err(Error::ShutDown));
            return;
        }
        let function = self.function;
        let _flow = timeline::flow_scope(self.flow);
        let mut mine = None;
        // A task with a timer keeps a copy of itself to queue again after a timed-out run; that
        // copy shares the argument values, so its runs copy a by-value argument and the next run
        // still has it. Otherwise the last run that can happen here moves the values into the
        // body (`run_with_retries` gives any run before it a copy).
        let template = if needs_control(&self.options) {
            self.options.timeout.map(|limit| (limit, self.clone()))
        } else {
            None
        };
        let Task { args, options, .. } = self;
        let (resolved, refs) = resolve_owned(&shared.store, function.name, args);
        let result = match resolved {
            Resolved::Ready(payloads) if needs_control(&options) => {
                retry::run_with_retries(function, payloads, &options, || {
                    let run = control.begin_run(&mut mine)?;
                    if let Some((limit, task)) = &template {
                        shared.timer.arm(shared, cell, run, *limit, task.clone());
                    }
                    Some(run)
                })
            }
            Resolved::Ready(payloads) => control
                .begin_run(&mut mine)
                .map(|_| run_function(function, payloads).map_err(Error::from)),
            Resolved::Failed(e) => {
                control.settle(shared, Err(Error::from(e)));
                return;
            }
            Resolved::Pending(_) => {
                let e = Error::backend(
                    "pymp",
                    format!(
                        "task {} started before its arguments were ready",
                        function.name
                    ),
                );
                control.settle(shared, Err(e));
                return;
            }
        };
        // The argument refs are released only after the outputs are settled, so that a
        // reader never sees an argument freed before the result that depends on it.
        control.finish_run(shared, mine, result);
        drop(template);
        drop(refs);
    }
}

/// A submitted task and the count of its arguments still pending.
///
/// The outputs of the task point to it (as their producer), every pending argument holds it in
/// its waiter list, and once it is runnable the run queue holds it. Whoever takes the task out
/// first runs it: a pool thread, a compensation thread, or a worker blocked on one of its
/// outputs. Shutdown settles every cell still waiting or queued, so none is dropped with its
/// task inside.
pub(crate) struct TaskCell {
    remaining: AtomicUsize,
    task: Mutex<Option<Task>>,
    /// Who settles the outputs: the run, the timer or `cancel`.
    pub(crate) control: Control,
}

impl Drop for TaskCell {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().take() {
            tracing::error!(
                task = task.function.name,
                "a task was dropped without running or settling"
            );
        }
    }
}

impl TaskCell {
    /// A cell holding `task`, which waits for `pending` arguments still to be registered (0:
    /// runnable now).
    pub(crate) fn new(task: Task, pending: usize, done: Completion) -> Self {
        TaskCell {
            remaining: AtomicUsize::new(pending),
            task: Mutex::new(Some(task)),
            control: Control::new(done),
        }
    }

    /// Settles the outputs of the task, which will not run, with `error`.
    pub(crate) fn abandon(&self, shared: &Arc<Shared>, task: Task, error: Error) {
        self.control.settle(shared, Err(error));
        drop(task);
    }

    /// `unidist::cancel`: a task not started never runs; a running one's outputs fail with
    /// `Cancelled` and its result is dropped. True if this settled the outputs.
    pub(crate) fn cancel(&self, shared: &Arc<Shared>) -> bool {
        let pending = self.task.lock().take();
        let now = matches!(self.control.cancel(shared), Cancelled::Now);
        drop(pending);
        now
    }

    /// Puts `task` back to run again (a timed-out run with retries left); true unless the
    /// cell holds a task already.
    pub(crate) fn requeue(&self, task: Task) -> bool {
        let mut slot = self.task.lock();
        if slot.is_some() {
            return false;
        }
        *slot = Some(task);
        true
    }

    /// Registers the cell on each of its task's pending object arguments; the cell was created
    /// counting all of them. An argument that settled meanwhile is uncounted here, and whoever
    /// brings the count to zero (here or a settling thread) queues the task: true if it is this
    /// call.
    pub(crate) fn register_arguments(self: &Arc<Self>, store: &Store, ids: &[ObjectId]) -> bool {
        let mut runnable = false;
        for &id in ids {
            if !store.register(id, Waiter::Task(self.clone())) && self.argument_settled() {
                runnable = true;
            }
        }
        runnable
    }

    /// One awaited argument settled; true when it was the last.
    pub(crate) fn argument_settled(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// The task, if it is runnable and nobody took it yet.
    pub(crate) fn take_runnable(&self) -> Option<Task> {
        if self.remaining.load(Ordering::Acquire) == 0 {
            self.task.lock().take()
        } else {
            None
        }
    }
}
