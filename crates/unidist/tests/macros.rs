//! Expansions of `#[unidist::remote]` and `#[unidist::actor]` in every supported shape, run on
//! the sequential backend unless `UNIDIST_BACKEND` names another. The crate denies missing docs
//! and unused code and forbids unsafe code, so generated items that lacked docs, warned or used
//! `unsafe` would fail to build here; so would items generated for code that `cfg` removed.
#![deny(missing_docs, unused, deprecated)]
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use unidist::{ActorHandle, ObjectRef, Value};

/// Every read waits at most this long, so a broken backend fails the test instead of hanging it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts the backend once: the one `UNIDIST_BACKEND` names, else the sequential one, which
/// makes every failure here deterministic.
fn setup() {
    static START: Once = Once::new();
    START.call_once(|| {
        if std::env::var_os("UNIDIST_BACKEND").is_none() {
            unidist::config::Backend::put(unidist::config::BackendName::Pyseq)
                .expect("choosing pyseq");
        }
        unidist::init().expect("init");
    });
}

fn get<T: Value>(r: &ObjectRef<T>) -> T {
    match unidist::get_timeout(r, TIMEOUT) {
        Ok(v) => v,
        Err(e) => panic!("get of {r:?} failed: {e}"),
    }
}

/// A value type defined by the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Horizontal.
    pub x: i64,
    /// Vertical.
    pub y: i64,
}

/// One result.
#[unidist::remote]
pub fn square(x: i64) -> i64 {
    x * x
}

/// No results: the call's effect is all there is.
#[unidist::remote(num_returns = 0)]
pub fn record(x: i64) {
    RECORDED.fetch_add(x, Ordering::SeqCst);
}

static RECORDED: AtomicI64 = AtomicI64::new(0);

/// Two results of different types.
#[unidist::remote(num_returns = 2)]
pub fn split(x: i64) -> (i64, String) {
    (x / 2, format!("{x}"))
}

/// Three results.
#[unidist::remote(num_returns = 3)]
pub fn three(x: u8) -> (u8, u16, u32) {
    (x, u16::from(x) * 2, u32::from(x) * 3)
}

/// One result that is a tuple, because `num_returns` defaults to 1.
#[unidist::remote]
pub fn pair(x: i64) -> (i64, i64) {
    (x, -x)
}

/// No return type with the default `num_returns`: one ref to `()`.
#[unidist::remote]
pub fn nothing(x: i64) {
    assert!(x >= 0, "negative input {x}");
}

/// Borrowed parameters: `&T`, `&str` (carried as `String`) and `&[T]` (carried as `Vec<T>`).
#[unidist::remote]
pub fn borrowed(p: &Point, s: &str, w: &[u32]) -> String {
    format!("{}:{s}:{}", p.x + p.y, w.iter().sum::<u32>())
}

/// Patterns instead of plain names, a `mut` binding, and a user type.
#[unidist::remote]
pub fn patterns((a, b): (i64, i64), _: u8, mut p: Point) -> i64 {
    p.x += a;
    p.y += b;
    p.x * 10 + p.y
}

/// No parameters.
#[unidist::remote]
pub fn constant() -> String {
    "k".to_string()
}

/// A raw identifier as the name.
#[unidist::remote]
pub fn r#match(x: i64) -> bool {
    x == 3
}

/// Calls another remote function from inside a task.
#[unidist::remote]
pub fn nested(x: i64) -> i64 {
    unidist::get(&square::remote(x)).expect("nested get") + 1
}

/// Takes an actor handle and calls it.
#[unidist::remote]
pub fn bump(c: ActorHandle<Counter>, x: i64) -> i64 {
    unidist::get(&c.add(x)).expect("actor call from a task")
}

/// Compiled out: nothing generated for it may remain.
#[unidist::remote]
#[cfg(any())]
pub fn compiled_out(x: i64) -> i64 {
    x
}

/// Deprecated: running it remotely is not a use of it.
#[unidist::remote]
#[deprecated = "use `square`"]
pub fn old_square(x: i64) -> i64 {
    x * x
}

/// A private function in a nested module.
mod inner {
    /// Twice the input.
    #[unidist::remote]
    pub(crate) fn double(x: i64) -> i64 {
        2 * x
    }
}

/// A stateful actor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counter {
    n: i64,
    notes: Vec<String>,
}

#[unidist::actor]
impl Counter {
    /// Starts at `start`.
    pub fn new(start: i64) -> Self {
        Counter {
            n: start,
            notes: Vec::new(),
        }
    }

    /// Adds and returns the new value.
    pub fn add(&mut self, x: i64) -> i64 {
        self.n += x;
        self.n
    }

    /// The value.
    pub fn get(&self) -> i64 {
        self.n
    }

    /// An argument and the value, as two objects.
    #[remote(num_returns = 2)]
    pub fn both(&self, x: i64) -> (i64, i64) {
        (x, self.n)
    }

    /// Keeps a note; returns nothing.
    #[unidist::remote(num_returns = 0)]
    pub fn note(&mut self, s: &str) {
        self.notes.push(s.to_string());
    }

    /// The notes so far.
    pub fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    /// The value after a sleep.
    pub async fn later(&self, ms: u64) -> i64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.n
    }

    /// Adds after a sleep.
    pub async fn add_later(&mut self, x: i64) -> i64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.n += x;
        self.n
    }

    /// Takes another counter's value: `Self` in a parameter type.
    pub fn merge(&mut self, other: Self, extra: Option<Box<Self>>) -> i64 {
        self.n += other.n + extra.map_or(0, |e| e.n);
        self.n
    }

    /// A copy of the state: `Self` in the return type, and the explicit receiver form.
    #[allow(clippy::needless_arbitrary_self_type)]
    pub fn snapshot(self: &Self) -> Self {
        self.clone()
    }

    /// Compiled out: nothing generated for it may remain.
    #[cfg(any())]
    pub fn compiled_out(&self) -> i64 {
        self.n
    }

    /// An associated function without a receiver stays local.
    pub fn local_helper() -> i64 {
        7
    }

    /// Associated constants stay as they are.
    pub const STEP: i64 = 1;
}

/// A public actor with a private constructor without arguments: the methods type takes the
/// widest visibility of the constructor and methods, which must reach that of the type.
pub struct Quiet {
    v: u8,
}

#[unidist::actor]
impl Quiet {
    fn new() -> Self {
        Quiet { v: 9 }
    }

    /// The value.
    pub fn v(&self) -> u8 {
        self.v
    }

    fn private_v(&self) -> u8 {
        self.v + 1
    }
}

#[test]
fn remote_with_one_result() {
    setup();
    let refs: Vec<ObjectRef<i64>> = (0..5).map(square::remote).collect();
    assert_eq!(
        unidist::get_all(&refs).expect("get_all"),
        vec![0, 1, 4, 9, 16]
    );
    let r: ObjectRef<(i64, i64)> = pair::remote(4);
    assert_eq!(get(&r), (4, -4));
    let unit: ObjectRef<()> = nothing::remote(1);
    get(&unit);
    assert_eq!(get(&constant::remote()), "k");
    assert!(get(&r#match::remote(3)));
    assert_eq!(get(&inner::double::remote(21)), 42);
    assert_eq!(get(&old_square::remote(6)), 36);
}

#[test]
fn remote_with_zero_results() {
    setup();
    let before = RECORDED.load(Ordering::SeqCst);
    let () = record::remote(5);
    record::options().num_cpus(1).remote(put_ref(6));
    // No ref says when the calls ran, so poll the effect, bounded.
    let deadline = Instant::now() + TIMEOUT;
    while RECORDED.load(Ordering::SeqCst) - before < 11 {
        assert!(
            Instant::now() < deadline,
            "record calls did not run in {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn put_ref(x: i64) -> ObjectRef<i64> {
    unidist::put(x)
}

#[test]
fn remote_with_several_results() {
    setup();
    let (half, text): (ObjectRef<i64>, ObjectRef<String>) = split::remote(7);
    assert_eq!((get(&half), get(&text)), (3, "7".to_string()));
    let (a, b, c) = three::remote(4);
    assert_eq!((get(&a), get(&b), get(&c)), (4, 8, 12));
    let (a, b, c) = three::options().num_cpus(1).remote(unidist::put(5u8));
    assert_eq!((get(&a), get(&b), get(&c)), (5, 10, 15));
}

#[test]
fn argument_forms() {
    setup();
    // A value, an `ObjectRef` (moved) and a `&ObjectRef`, including a not yet finished task's.
    let x = unidist::put(3i64);
    assert_eq!(get(&square::remote(&x)), 9);
    assert_eq!(get(&square::remote(x)), 9);
    let chained = square::remote(square::remote(2));
    assert_eq!(get(&chained), 16);
    let p = unidist::put(Point { x: 1, y: 5 });
    let out = borrowed::remote(&p, "s".to_string(), vec![4u32, 5]);
    assert_eq!(get(&out), "6:s:9");
    let q = Point { x: 1, y: 2 };
    assert_eq!(get(&patterns::remote((1, 1), 0u8, unidist::put(q))), 23);
    assert_eq!(get(&square::options().num_cpus(1).remote(5)), 25);
}

#[test]
fn functions_stay_local() {
    assert_eq!(square(3), 9);
    assert_eq!(split(5), (2, "5".to_string()));
    assert_eq!(borrowed(&Point { x: 1, y: 0 }, "a", &[2]), "1:a:2");
    assert_eq!(inner::double(4), 8);
    assert!(!r#match(2));
    assert_eq!(Counter::new(2).get(), 2);
    assert_eq!(Counter::local_helper() + Counter::STEP, 8);
}

#[test]
fn registered_names_follow_the_module_path() {
    assert_eq!(
        square::__UNIDIST_FN.name,
        concat!(module_path!(), "::square")
    );
    assert_eq!(three::__UNIDIST_FN.num_returns, 3);
    assert_eq!(record::__UNIDIST_FN.num_returns, 0);
    assert_eq!(
        r#match::__UNIDIST_FN.name,
        concat!(module_path!(), "::match")
    );
    assert_eq!(
        Counter::__UNIDIST_CLASS.name,
        concat!(module_path!(), "::Counter")
    );
    assert_eq!(Counter::__UNIDIST_M_both.num_returns, 2);
    assert_eq!(
        Counter::__UNIDIST_M_add.class,
        Counter::__UNIDIST_CLASS.name
    );
    assert!(Counter::__UNIDIST_M_later.kind.is_async());
}

#[test]
fn nested_remote_call() {
    setup();
    assert_eq!(get(&nested::remote(3)), 10);
}

#[test]
fn actor_methods() {
    setup();
    let c: ActorHandle<Counter> = Counter::remote(10);
    let first: ObjectRef<i64> = c.add(5);
    assert_eq!(get(&first), 15);
    assert_eq!(get(&c.get()), 15);
    let (x, n) = c.both(unidist::put(7i64));
    assert_eq!((get(&x), get(&n)), (7, 15));
    let () = c.note("a".to_string());
    c.note(unidist::put("b".to_string()));
    assert_eq!(get(&c.notes()), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(
        get(&c.merge(Counter::new(1), Some(Box::new(Counter::new(2))))),
        18
    );
    let snap: ObjectRef<Counter> = c.snapshot();
    assert_eq!(get(&snap).get(), 18);
    // A ref from another call as an argument.
    assert_eq!(get(&c.add(&first)), 33);
}

#[test]
fn async_actor_methods() {
    setup();
    let c = Counter::remote(1);
    let slow = c.later(20);
    let added = c.add_later(2);
    assert_eq!(get(&slow), 1);
    assert_eq!(get(&added), 3);
    assert_eq!(get(&c.later(0)), 3);
}

#[test]
fn actor_handle_in_a_task() {
    setup();
    let c = Counter::remote(0);
    let r = bump::remote(c.clone(), 4);
    assert_eq!(get(&r), 4);
    assert_eq!(get(&c.get()), 4);
}

#[test]
fn actor_with_private_constructor_without_arguments() {
    setup();
    let q = Quiet::remote();
    assert_eq!(get(&q.v()), 9);
    assert_eq!(get(&q.private_v()), 10);
}
