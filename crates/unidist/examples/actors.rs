//! Actors: a counter whose calls run in order, an async method, two returns, and a handle
//! passed to a task that calls the actor from there.
//!
//! `cargo run -p unidist --example actors`

use std::time::Duration;

use unidist::{ActorHandle, ObjectRef};

/// A counter living in one place; every call sees the state the previous call left.
pub struct Counter {
    n: i64,
}

#[unidist::actor]
impl Counter {
    /// Starts at `start`.
    pub fn new(start: i64) -> Self {
        Counter { n: start }
    }

    /// Adds `x` and returns the new value.
    pub fn add(&mut self, x: i64) -> i64 {
        self.n += x;
        self.n
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.n
    }

    /// `x` and the current value, as two objects.
    #[remote(num_returns = 2)]
    pub fn both(&self, x: i64) -> (i64, i64) {
        (x, self.n)
    }

    /// The current value after sleeping `ms` milliseconds without blocking the actor.
    pub async fn later(&self, ms: u64) -> i64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.n
    }
}

/// Adds `times` ones through the handle, from inside a task.
#[unidist::remote]
fn bump(counter: ActorHandle<Counter>, times: i64) -> i64 {
    let mut last = 0;
    for _ in 0..times {
        last = unidist::get(&counter.add(1)).expect("counter call failed");
    }
    last
}

fn main() -> unidist::Result<()> {
    unidist::init()?;
    let c: ActorHandle<Counter> = Counter::remote(0);
    let r: ObjectRef<i64> = c.add(5);
    println!("after add(5): {}", unidist::get(&r)?);
    let (x, n) = c.both(7);
    println!("both(7): ({}, {})", unidist::get(&x)?, unidist::get(&n)?);
    println!("later(10): {}", unidist::get(&c.later(10))?);
    println!(
        "bump x3 from a task: {}",
        unidist::get(&bump::remote(c.clone(), 3))?
    );
    println!("get: {}", unidist::get(&c.get())?);
    c.kill()?;
    println!("after kill: {}", unidist::get(&c.get()).unwrap_err());
    unidist::shutdown()
}
