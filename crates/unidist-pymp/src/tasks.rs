//! Tasks: resolved inputs, dependency tracking, and running a task on the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use unidist_core::task::{argument_failed, run_function};
use unidist_core::{AnyRef, Error, ObjectId, Payload, RemoteFunction};

use crate::shared::{Completion, Shared};
use crate::store::{Lookup, Store, Value, Waiter};

/// One argument of a call, checked against this backend at submission.
pub(crate) enum Input {
    /// Given by value; passed in place.
    Value(Value),
    /// A ref to an object of this backend. The ref is held so the object lives until the call
    /// has read it.
    Object(ObjectId, #[allow(dead_code)] AnyRef),
    /// A ref that cannot be read here (it holds an error, or belongs to a runtime that was shut
    /// down); the call fails without running.
    Bad(Error),
}

impl Input {
    pub(crate) fn object_id(&self) -> Option<ObjectId> {
        match self {
            Input::Object(id, _) => Some(*id),
            _ => None,
        }
    }
}

/// The arguments read from the store, or why the call cannot run.
pub(crate) enum Resolved {
    Ready(Vec<Payload>),
    Failed(Error),
    Pending,
}

/// Reads every input of a call named `name`: values in place, objects from the store.
pub(crate) fn resolve_now(store: &Store, name: &str, inputs: &[Input]) -> Resolved {
    let mut payloads = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        match input {
            Input::Value(v) => payloads.push(Payload::Local(v.clone())),
            Input::Object(id, _) => match store.lookup(*id) {
                Lookup::Ready(v) => payloads.push(Payload::Local(v)),
                Lookup::Failed(e) => return Resolved::Failed(argument_failed(name, i, &e).into()),
                Lookup::Pending => return Resolved::Pending,
                Lookup::Missing => {
                    let e = Error::StaleRef { what: id.to_string() };
                    return Resolved::Failed(argument_failed(name, i, &e).into());
                }
            },
            Input::Bad(e) => return Resolved::Failed(argument_failed(name, i, e).into()),
        }
    }
    Resolved::Ready(payloads)
}

/// A submitted task.
pub(crate) struct Task {
    pub(crate) function: &'static RemoteFunction,
    pub(crate) inputs: Vec<Input>,
    pub(crate) done: Completion,
}

impl Task {
    /// Runs on a pool thread once every argument is settled.
    pub(crate) fn run(self, shared: &Arc<Shared>) {
        let Task { function, inputs, done } = self;
        if shared.is_closed() {
            done.finish(Err(Error::ShutDown));
            return;
        }
        let result = match resolve_now(&shared.store, function.name, &inputs) {
            Resolved::Ready(payloads) => run_function(function, &payloads).map_err(Error::from),
            Resolved::Failed(e) => Err(e),
            Resolved::Pending => Err(Error::backend(
                "pymp",
                format!("task {} started before its arguments were ready", function.name),
            )),
        };
        // The argument refs are released only after the outputs are settled, so that a
        // reader never sees an argument freed before the result that depends on it.
        done.finish(result);
        drop(inputs);
    }

    /// Schedules the task: on the pool now if every argument is settled, otherwise when the
    /// last pending one settles.
    pub(crate) fn schedule(self, shared: &Arc<Shared>) {
        let mut pending: Option<Arc<PendingTask>> = None;
        for id in self.inputs.iter().filter_map(Input::object_id) {
            let p = pending.get_or_insert_with(|| Arc::new(PendingTask::new()));
            // Count the registration before it exists, so that a concurrent settlement can
            // never bring the count to zero early.
            p.remaining.fetch_add(1, Ordering::AcqRel);
            if !shared.store.register(id, Waiter::Task(p.clone())) {
                p.remaining.fetch_sub(1, Ordering::AcqRel);
            }
        }
        match pending {
            None => shared.spawn(self),
            Some(p) => {
                *p.task.lock() = Some(self);
                // Drop the guard count taken at creation; whoever reaches zero launches it.
                if p.argument_settled() {
                    shared.launch(p);
                }
            }
        }
    }
}

/// A task waiting for arguments; every pending argument holds one clone in its waiter list.
pub(crate) struct PendingTask {
    remaining: AtomicUsize,
    task: Mutex<Option<Task>>,
}

impl PendingTask {
    fn new() -> Self {
        // One count guards the registration phase.
        PendingTask {
            remaining: AtomicUsize::new(1),
            task: Mutex::new(None),
        }
    }

    /// One awaited argument settled; true when it was the last.
    pub(crate) fn argument_settled(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// The task, once; `None` if it was taken already.
    pub(crate) fn take(&self) -> Option<Task> {
        self.task.lock().take()
    }
}
