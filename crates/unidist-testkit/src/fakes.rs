//! Hand-written registrations, as `#[unidist::remote]` and `#[unidist::actor]` would generate
//! them, of the functions and actors that backend tests share, and [`Tracked`].
//!
//! Every entry is also registered, so that a binary using them has them in its registry (the
//! MPI backend looks entries up there on every rank).

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use unidist_core::actor::{ActorReadGuard, ActorState, LocalBoxFuture};
use unidist_core::inventory;
use unidist_core::registry::{
    ActorClassEntry, ActorMethodEntry, MethodKind, Registration, RemoteFunction,
};
use unidist_core::value::output;
use unidist_core::{Outputs, Payload, Result};

macro_rules! function {
    ($(#[$doc:meta])* $stat:ident = $name:literal, $returns:literal, $body:ident) => {
        $(#[$doc])*
        pub static $stat: RemoteFunction = RemoteFunction {
            name: $name,
            num_returns: $returns,
            invoke: $body,
        };
        inventory::submit! { Registration::Function(&$stat) }
    };
}

macro_rules! method {
    ($(#[$doc:meta])* $stat:ident = $name:literal of $class:ident, $kind:expr) => {
        $(#[$doc])*
        pub static $stat: ActorMethodEntry = ActorMethodEntry {
            name: $name,
            class: $class.name,
            num_returns: 1,
            kind: $kind,
        };
        inventory::submit! { Registration::Method(&$stat) }
    };
}

// ---- functions ------------------------------------------------------------------------------

fn square(args: Vec<Payload>) -> Result<Outputs> {
    let x = args[0].take::<i64>()?;
    Ok(vec![output(x * x)])
}
function!(
    /// `fn square(x: i64) -> i64`.
    SQUARE = "testkit::square", 1, square
);

fn split(args: Vec<Payload>) -> Result<Outputs> {
    let x = args[0].take::<i64>()?;
    Ok(vec![output(x / 2), output(x % 2)])
}
function!(
    /// `fn split(x: i64) -> (i64, i64)`: `(x / 2, x % 2)`, two outputs.
    SPLIT = "testkit::split", 2, split
);

fn divide(args: Vec<Payload>) -> Result<Outputs> {
    let x = args[0].take::<i64>()?;
    let zero = std::hint::black_box(0);
    Ok(vec![output(x / zero)])
}
function!(
    /// `fn divide(x: i64) -> i64`: divides by zero, so it always panics.
    DIVIDE = "testkit::divide", 1, divide
);

fn noop(_: Vec<Payload>) -> Result<Outputs> {
    Ok(vec![output(())])
}
function!(
    /// `fn noop() -> ()`.
    NOOP = "testkit::noop", 1, noop
);

fn sleep_ms(args: Vec<Payload>) -> Result<Outputs> {
    let ms = args[0].take::<u64>()?;
    std::thread::sleep(Duration::from_millis(ms));
    Ok(vec![output(ms)])
}
function!(
    /// `fn sleep_ms(ms: u64) -> u64`: blocks its thread for `ms`, then returns it.
    SLEEP_MS = "testkit::sleep_ms", 1, sleep_ms
);

// ---- Counter --------------------------------------------------------------------------------

static COUNTER_DROPS: AtomicUsize = AtomicUsize::new(0);

/// The state of the [`COUNTER`] actor.
pub struct Counter {
    n: i64,
}

impl Counter {
    /// The count.
    pub fn n(&self) -> i64 {
        self.n
    }

    /// The counter in an actor state.
    pub fn of(state: &dyn Any) -> &Counter {
        match state.downcast_ref::<Counter>() {
            Some(c) => c,
            None => panic!("the actor state is not a testkit Counter"),
        }
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        COUNTER_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// How many [`Counter`] states were dropped in this process so far.
pub fn counter_drops() -> usize {
    COUNTER_DROPS.load(Ordering::SeqCst)
}

fn counter_new(args: Vec<Payload>) -> Result<ActorState> {
    let n = args[0].take::<i64>()?;
    assert!(n >= 0, "a counter starts at 0 or more, not {n}");
    Ok(Box::new(Counter { n }))
}

/// `Counter::new(start: i64)`; panics when `start` is negative.
pub static COUNTER: ActorClassEntry = ActorClassEntry {
    name: "testkit::Counter",
    construct: counter_new,
};
inventory::submit! { Registration::Class(&COUNTER) }

fn counter_add(state: &mut dyn Any, args: Vec<Payload>) -> Result<Outputs> {
    let Some(c) = state.downcast_mut::<Counter>() else {
        panic!("the actor state is not a testkit Counter");
    };
    c.n += args[0].take::<i64>()?;
    Ok(vec![output(c.n)])
}
method!(
    /// `fn add(&mut self, x: i64) -> i64`: the count after adding `x`.
    ADD = "testkit::Counter::add" of COUNTER, MethodKind::Mut(counter_add)
);

fn counter_get(state: &dyn Any, _: Vec<Payload>) -> Result<Outputs> {
    Ok(vec![output(Counter::of(state).n)])
}
method!(
    /// `fn get(&self) -> i64`.
    GET = "testkit::Counter::get" of COUNTER, MethodKind::Ref(counter_get)
);

fn counter_slow(state: &dyn Any, args: Vec<Payload>) -> Result<Outputs> {
    std::thread::sleep(Duration::from_millis(args[0].take::<u64>()?));
    Ok(vec![output(Counter::of(state).n)])
}
method!(
    /// `fn slow(&self, ms: u64) -> i64`: blocks the actor's thread for `ms`, then returns the
    /// count.
    SLOW = "testkit::Counter::slow" of COUNTER, MethodKind::Ref(counter_slow)
);

fn counter_later(state: ActorReadGuard, args: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move {
        let ms = args[0].take::<u64>()?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(vec![output(Counter::of(&**state).n)])
    })
}
method!(
    /// `async fn later(&self, ms: u64) -> i64`: sleeps on Tokio, then returns the count.
    LATER = "testkit::Counter::later" of COUNTER, MethodKind::Async(counter_later)
);

fn counter_boom(_: &dyn Any, _: Vec<Payload>) -> Result<Outputs> {
    panic!("method boom")
}
method!(
    /// `fn boom(&self) -> i64`: panics with `method boom`.
    BOOM = "testkit::Counter::boom" of COUNTER, MethodKind::Ref(counter_boom)
);

// ---- Signal ---------------------------------------------------------------------------------

/// The state of the [`SIGNAL`] actor: upstream unidist's SignalActor.
pub struct Signal {
    event: tokio::sync::Notify,
}

fn signal_of(state: &dyn Any) -> &Signal {
    match state.downcast_ref::<Signal>() {
        Some(s) => s,
        None => panic!("the actor state is not a testkit Signal"),
    }
}

fn signal_new(_: Vec<Payload>) -> Result<ActorState> {
    Ok(Box::new(Signal {
        event: tokio::sync::Notify::new(),
    }))
}

/// `Signal::new()`: an event that `send` sets and `async wait` awaits.
pub static SIGNAL: ActorClassEntry = ActorClassEntry {
    name: "testkit::Signal",
    construct: signal_new,
};
inventory::submit! { Registration::Class(&SIGNAL) }

fn signal_send(state: &dyn Any, _: Vec<Payload>) -> Result<Outputs> {
    // One stored permit: a `send` before the `wait` is not lost.
    signal_of(state).event.notify_one();
    Ok(vec![output(())])
}
method!(
    /// `fn send(&self)`: sets the event.
    SEND = "testkit::Signal::send" of SIGNAL, MethodKind::Ref(signal_send)
);

fn signal_wait(state: ActorReadGuard, _: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move {
        signal_of(&**state).event.notified().await;
        Ok(vec![output(7i64)])
    })
}
method!(
    /// `async fn wait(&self) -> i64`: waits for the event, then returns 7.
    WAIT = "testkit::Signal::wait" of SIGNAL, MethodKind::Async(signal_wait)
);

// ---- Tracked --------------------------------------------------------------------------------

/// The number of [`Tracked`] tags.
pub const TRACKED_TAGS: usize = 16;

static DROPS: [AtomicUsize; TRACKED_TAGS] = [const { AtomicUsize::new(0) }; TRACKED_TAGS];

/// A value that counts its drops per tag (below [`TRACKED_TAGS`]), to see when a backend frees
/// it. Tests of one binary that run in parallel use different tags.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tracked(pub usize);

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPS[self.0 % TRACKED_TAGS].fetch_add(1, Ordering::SeqCst);
    }
}

/// How many [`Tracked`] values with `tag` were dropped in this process so far.
pub fn drops(tag: usize) -> usize {
    DROPS[tag % TRACKED_TAGS].load(Ordering::SeqCst)
}
