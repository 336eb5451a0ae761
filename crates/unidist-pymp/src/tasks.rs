//! Tasks: resolved inputs, dependency tracking, and running a task on the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use unidist_core::call::{ref_id, resolve_call_args, ArgState, Resolved};
use unidist_core::observe::{stats, timeline};
use unidist_core::task::run_function;
use unidist_core::{Arg, Error, ObjectId, Payload, RemoteFunction};

use crate::shared::{Completion, Shared};
use crate::store::{Lookup, Store, Waiter};

/// Reads every argument of the call `name`: values in place, objects from the store, by the
/// rule every backend applies ([`resolve_call_args`]). An id the store no longer holds belonged
/// to a runtime that was shut down.
pub(crate) fn resolve_now(store: &Store, name: &str, args: &[Arg]) -> Resolved {
    resolve_call_args(name, args, |id| match store.lookup(id) {
        Lookup::Ready(v) => ArgState::Ready(Payload::Local(v)),
        Lookup::Failed(e) => ArgState::Failed(e),
        Lookup::Pending(_) => ArgState::Pending(id),
        Lookup::Missing => ArgState::Failed(Error::StaleRef {
            what: id.to_string(),
        }),
    })
}

/// The ids of the arguments that are refs: what a call waits for before it runs.
pub(crate) fn object_args(args: &[Arg]) -> impl Iterator<Item = ObjectId> + '_ {
    args.iter().filter_map(ref_id)
}

/// A submitted task.
pub(crate) struct Task {
    pub(crate) function: &'static RemoteFunction,
    /// The arguments; their refs keep the objects alive until the task has read them.
    pub(crate) args: Vec<Arg>,
    pub(crate) done: Completion,
    /// The timeline flow of its submission (0 when not recording).
    pub(crate) flow: u64,
}

impl Task {
    /// Runs the task on the calling thread; every argument is settled.
    pub(crate) fn run(self, shared: &Arc<Shared>) {
        let Task {
            function,
            args,
            done,
            flow,
        } = self;
        if shared.is_closed() {
            stats::count(stats::Counter::TasksFailed);
            done.finish(shared, Err(Error::ShutDown));
            return;
        }
        let _flow = timeline::flow_scope(flow);
        let result = match resolve_now(&shared.store, function.name, &args) {
            Resolved::Ready(payloads) => run_function(function, &payloads).map_err(Error::from),
            Resolved::Failed(e) => Err(Error::from(e)),
            Resolved::Pending(_) => Err(Error::backend(
                "pymp",
                format!(
                    "task {} started before its arguments were ready",
                    function.name
                ),
            )),
        };
        stats::task_settled(&result);
        // The argument refs are released only after the outputs are settled, so that a
        // reader never sees an argument freed before the result that depends on it.
        done.finish(shared, result);
        drop(args);
    }

    /// Settles the outputs of a task that will not run.
    pub(crate) fn abandon(self, shared: &Arc<Shared>, error: Error) {
        stats::count(stats::Counter::TasksFailed);
        self.done.finish(shared, Err(error));
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
    pub(crate) fn new(task: Task, pending: usize) -> Self {
        TaskCell {
            remaining: AtomicUsize::new(pending),
            task: Mutex::new(Some(task)),
        }
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
