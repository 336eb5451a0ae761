//! Remote functions and actors shared by several topics: the Rust forms of upstream's fixtures
//! (`task`, `task_return_none`, `task_multiple_returns_default`, `TestActor`) and a counter
//! actor that makes side effects visible across processes.

use std::time::Duration;

use unidist::{ActorHandle, ObjectRef};

/// How long a slow task takes: long enough to be observably pending, short enough that pyseq,
/// which runs such tasks one after another at submission, stays quick.
pub(crate) const SLOW_MS: u64 = 1500;

/// Upstream's `task`.
#[unidist::remote]
pub(crate) fn square(x: i64) -> i64 {
    x * x
}

/// Two parameters, for mixed argument forms.
#[unidist::remote]
pub(crate) fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Upstream's `task_multiple_returns_default`.
#[unidist::remote(num_returns = 2)]
pub(crate) fn with_square(x: i64) -> (i64, i64) {
    (x, x * x)
}

/// Upstream's `task_return_none`.
#[unidist::remote]
pub(crate) fn return_none() -> Option<i64> {
    None
}

/// Returns `value` after `ms` milliseconds.
#[unidist::remote]
pub(crate) fn slow(ms: u64, value: i64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    value
}

/// `a / b`, panicking with a message that names `a` when `b` is zero.
#[unidist::remote]
pub(crate) fn checked_ratio(a: i64, b: i64) -> i64 {
    if b == 0 {
        panic!("ratio of {a} to zero");
    }
    a / b
}

/// A ref whose task panicked with "ratio of 1 to zero".
pub(crate) fn failed_ref() -> ObjectRef<i64> {
    checked_ratio::remote(1, 0)
}

/// Counts calls; statics are per process under MPI, so effects are observed through it.
pub(crate) struct Counter {
    n: i64,
}

#[unidist::actor]
impl Counter {
    /// Starts at `start`.
    pub(crate) fn new(start: i64) -> Self {
        Counter { n: start }
    }

    /// Adds `x` and returns the new value.
    pub(crate) fn add(&mut self, x: i64) -> i64 {
        self.n += x;
        self.n
    }

    /// The current value.
    pub(crate) fn get(&self) -> i64 {
        self.n
    }
}

/// Adds one to `counter`, then returns `x`: a task whose running is visible.
#[unidist::remote]
pub(crate) fn count_then_echo(counter: ActorHandle<Counter>, x: i64) -> i64 {
    unidist::get(&counter.add(1)).expect("a counter call from a task failed");
    x
}

/// Upstream's `TestActor`.
pub(crate) struct TestActor {
    accumulator: i64,
}

impl TestActor {
    /// Upstream's `_internal`: a plain method the remote methods call.
    fn internal(&mut self) {
        self.accumulator += 1;
    }
}

#[unidist::actor]
impl TestActor {
    /// Starts the accumulator at `init`.
    pub(crate) fn new(init: i64) -> Self {
        TestActor { accumulator: init }
    }

    /// The accumulator.
    pub(crate) fn get_accumulator(&self) -> i64 {
        self.accumulator
    }

    /// Adds `x`, then one more through `internal`.
    pub(crate) fn task(&mut self, x: i64) -> i64 {
        self.accumulator += x;
        self.internal();
        self.accumulator
    }

    /// Returns nothing, as an object.
    pub(crate) fn task_return_none(&self) -> Option<i64> {
        None
    }

    /// `x` and the accumulator, as two objects.
    #[remote(num_returns = 2)]
    pub(crate) fn multiple_returns(&self, x: i64) -> (i64, i64) {
        (x, self.accumulator)
    }

    /// Adds `x` and returns no object.
    #[remote(num_returns = 0)]
    pub(crate) fn bump(&mut self, x: i64) {
        self.accumulator += x;
    }

    /// Panics with `message`.
    pub(crate) fn explode(&self, message: String) -> i64 {
        panic!("{message}")
    }
}

/// Reads a `TestActor`'s accumulator from inside a task.
#[unidist::remote]
pub(crate) fn read_accumulator(actor: ActorHandle<TestActor>) -> i64 {
    unidist::get(&actor.get_accumulator()).expect("an actor call from a task failed")
}
