//! Hand-written registrations (what `#[unidist::remote]` and `#[unidist::actor]` generate), shared
//! by the examples of this crate.
#![allow(dead_code)]

use std::any::Any;
use std::time::Duration;

use unidist::__private::{
    inventory, output, submit, ActorClassEntry, ActorMethodEntry, ActorReadGuard, AnyRef, Arg,
    LocalBoxFuture, MethodKind, ObjectRef, Outputs, Payload, RawActorHandle, Registration,
    RemoteFunction, Result, TaskOptions,
};

/// Declares a remote function `$name` of one argument and one result, with a `remote` helper.
macro_rules! remote1 {
    ($stat:ident, $invoke:ident, $call:ident, $name:literal, $in:ty, $out:ty, |$x:ident| $body:expr) => {
        fn $invoke(args: &[Payload]) -> Result<Outputs> {
            let $x: $in = args[0].take::<$in>()?;
            let r: $out = $body;
            Ok(vec![output(r)])
        }
        pub static $stat: RemoteFunction = RemoteFunction {
            name: $name,
            num_returns: 1,
            invoke: $invoke,
        };
        inventory::submit! { Registration::Function(&$stat) }
        pub fn $call(a: impl unidist::IntoArg<$in>) -> ObjectRef<$out> {
            ObjectRef::from_any(
                submit(&$stat, vec![a.into_arg()], TaskOptions::default()).remove(0),
            )
        }
    };
}

pub fn val<T: unidist::Value>(v: T) -> Arg {
    unidist::IntoArg::<T>::into_arg(v)
}

pub fn rf<T: unidist::Value>(r: &ObjectRef<T>) -> Arg {
    unidist::IntoArg::<T>::into_arg(r)
}

remote1!(SQUARE, square_i, square, "common::square", i64, i64, |x| x
    * x);
remote1!(NOOP, noop_i, noop, "common::noop", u8, u8, |x| x);
remote1!(BOOM, boom_i, boom, "common::boom", i64, i64, |x| {
    if x >= 0 {
        panic!("boom {x}")
    }
    x
});
remote1!(
    SUM_VEC,
    sum_vec_i,
    sum_vec,
    "common::sum_vec",
    Vec<f64>,
    f64,
    |v| v.iter().sum()
);
remote1!(
    SUM_BUF,
    sum_buf_i,
    sum_buf,
    "common::sum_buf",
    unidist::Buffer<f64>,
    f64,
    |v| v.iter().sum()
);
remote1!(
    BUF_LEN,
    buf_len_i,
    buf_len,
    "common::buf_len",
    unidist::Buffer<f64>,
    u64,
    |v| v.len() as u64
);
remote1!(
    MAKE_BUF,
    make_buf_i,
    make_buf,
    "common::make_buf",
    u64,
    unidist::Buffer<f64>,
    |n| { (0..n).map(|i| i as f64).collect() }
);
remote1!(
    SLEEP_MS,
    sleep_ms_i,
    sleep_ms,
    "common::sleep_ms",
    u64,
    u64,
    |ms| {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }
);
// Nested: submits `square` for 0..n from inside a task and gets the sum.
remote1!(NESTED, nested_i, nested, "common::nested", i64, i64, |n| {
    let refs: Vec<ObjectRef<i64>> = (0..n).map(square).collect();
    unidist::get_all(&refs).expect("nested get").iter().sum()
});
// Nested deeper: each level submits the next and blocks in get (exercises pool growth).
remote1!(DEPTH, depth_i, depth, "common::depth", i64, i64, |d| {
    if d == 0 {
        0
    } else {
        unidist::get(&depth(d - 1)).expect("depth get") + 1
    }
});
// A ref inside a value: the task gets it.
remote1!(
    DEREF,
    deref_i,
    deref,
    "common::deref",
    Vec<ObjectRef<i64>>,
    i64,
    |v| { unidist::get_all(&v).expect("deref").iter().sum() }
);
// The resident memory of the worker that runs it.
remote1!(
    WORKER_RSS,
    worker_rss_i,
    worker_rss,
    "common::worker_rss",
    u8,
    (u32, u64),
    |_x| (std::process::id(), rss_bytes())
);
// Puts a value from inside a task and returns the ref.
remote1!(
    PUT_INSIDE,
    put_inside_i,
    put_inside,
    "common::put_inside",
    i64,
    ObjectRef<i64>,
    |x| unidist::put(x + 1)
);

fn split_i(args: &[Payload]) -> Result<Outputs> {
    let x: i64 = args[0].take()?;
    Ok(vec![output(x / 2), output(x % 2)])
}
pub static SPLIT: RemoteFunction = RemoteFunction {
    name: "common::split",
    num_returns: 2,
    invoke: split_i,
};
inventory::submit! { Registration::Function(&SPLIT) }
pub fn split(a: impl unidist::IntoArg<i64>) -> (ObjectRef<i64>, ObjectRef<i64>) {
    let mut r = submit(&SPLIT, vec![a.into_arg()], TaskOptions::default()).into_iter();
    (
        ObjectRef::from_any(r.next().unwrap()),
        ObjectRef::from_any(r.next().unwrap()),
    )
}

fn add2_i(args: &[Payload]) -> Result<Outputs> {
    let a: i64 = args[0].take()?;
    let b: i64 = args[1].take()?;
    Ok(vec![output(a + b)])
}
pub static ADD2: RemoteFunction = RemoteFunction {
    name: "common::add2",
    num_returns: 1,
    invoke: add2_i,
};
inventory::submit! { Registration::Function(&ADD2) }
pub fn add2(a: impl unidist::IntoArg<i64>, b: impl unidist::IntoArg<i64>) -> ObjectRef<i64> {
    ObjectRef::from_any(
        submit(
            &ADD2,
            vec![a.into_arg(), b.into_arg()],
            TaskOptions::default(),
        )
        .remove(0),
    )
}

// ----- an actor: Counter { n } with add (mut), get (ref), later (async) ----------------------

pub struct Counter {
    n: std::sync::atomic::AtomicI64,
    notify: tokio::sync::Notify,
}

fn counter_new(args: &[Payload]) -> Result<Box<dyn Any + Send>> {
    let start: i64 = args[0].take()?;
    Ok(Box::new(Counter {
        n: start.into(),
        notify: tokio::sync::Notify::new(),
    }))
}
pub static COUNTER: ActorClassEntry = ActorClassEntry {
    name: "common::Counter",
    construct: counter_new,
};
inventory::submit! { Registration::Class(&COUNTER) }

fn counter_add(state: &mut dyn Any, args: &[Payload]) -> Result<Outputs> {
    let c = state.downcast_mut::<Counter>().expect("counter");
    let x: i64 = args[0].take()?;
    let v = c.n.fetch_add(x, std::sync::atomic::Ordering::SeqCst) + x;
    Ok(vec![output(v)])
}
pub static COUNTER_ADD: ActorMethodEntry = ActorMethodEntry {
    name: "common::Counter::add",
    class: "common::Counter",
    num_returns: 1,
    kind: MethodKind::Mut(counter_add),
};
inventory::submit! { Registration::Method(&COUNTER_ADD) }

fn counter_get(state: &dyn Any, _args: &[Payload]) -> Result<Outputs> {
    let c = state.downcast_ref::<Counter>().expect("counter");
    Ok(vec![output(c.n.load(std::sync::atomic::Ordering::SeqCst))])
}
pub static COUNTER_GET: ActorMethodEntry = ActorMethodEntry {
    name: "common::Counter::get",
    class: "common::Counter",
    num_returns: 1,
    kind: MethodKind::Ref(counter_get),
};
inventory::submit! { Registration::Method(&COUNTER_GET) }

// async fn wait_signal(&self) -> i64: waits until `signal` is called.
fn counter_wait(guard: ActorReadGuard, _args: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move {
        let c = guard.downcast_ref::<Counter>().expect("counter");
        c.notify.notified().await;
        Ok(vec![output(c.n.load(std::sync::atomic::Ordering::SeqCst))])
    })
}
pub static COUNTER_WAIT: ActorMethodEntry = ActorMethodEntry {
    name: "common::Counter::wait_signal",
    class: "common::Counter",
    num_returns: 1,
    kind: MethodKind::Async(counter_wait),
};
inventory::submit! { Registration::Method(&COUNTER_WAIT) }

fn counter_signal(state: &dyn Any, _args: &[Payload]) -> Result<Outputs> {
    let c = state.downcast_ref::<Counter>().expect("counter");
    c.notify.notify_waiters();
    Ok(vec![output(true)])
}
pub static COUNTER_SIGNAL: ActorMethodEntry = ActorMethodEntry {
    name: "common::Counter::signal",
    class: "common::Counter",
    num_returns: 1,
    kind: MethodKind::Ref(counter_signal),
};
inventory::submit! { Registration::Method(&COUNTER_SIGNAL) }

fn counter_noop(_guard: ActorReadGuard, _args: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move { Ok(vec![output(0u8)]) })
}
pub static COUNTER_NOOP: ActorMethodEntry = ActorMethodEntry {
    name: "common::Counter::noop",
    class: "common::Counter",
    num_returns: 1,
    kind: MethodKind::Async(counter_noop),
};
inventory::submit! { Registration::Method(&COUNTER_NOOP) }

/// A typed-enough handle for the examples.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct CounterHandle(pub RawActorHandle);

impl CounterHandle {
    pub fn new(start: i64) -> CounterHandle {
        let raw = match unidist_core_create(start) {
            Ok(r) => r,
            Err(e) => RawActorHandle::failed(e),
        };
        CounterHandle(raw)
    }
    fn call<T>(&self, m: &'static ActorMethodEntry, args: Vec<Arg>) -> ObjectRef<T> {
        ObjectRef::from_any(unidist::__private::call_actor(&self.0, m, args).remove(0))
    }
    pub fn add(&self, x: impl unidist::IntoArg<i64>) -> ObjectRef<i64> {
        self.call(&COUNTER_ADD, vec![x.into_arg()])
    }
    pub fn get(&self) -> ObjectRef<i64> {
        self.call(&COUNTER_GET, vec![])
    }
    pub fn wait_signal(&self) -> ObjectRef<i64> {
        self.call(&COUNTER_WAIT, vec![])
    }
    pub fn signal(&self) -> ObjectRef<bool> {
        self.call(&COUNTER_SIGNAL, vec![])
    }
    pub fn noop(&self) -> ObjectRef<u8> {
        self.call(&COUNTER_NOOP, vec![])
    }
    pub fn kill(&self) -> Result<()> {
        self.0.kill()
    }
}

fn unidist_core_create(start: i64) -> Result<RawActorHandle> {
    // `create_actor` needs an `ActorClass` type; go through the backend directly instead.
    let b = unidist_backend()?;
    let id = b.create_actor(unidist_core::ActorSpec {
        class: &COUNTER,
        args: vec![val(start)],
        options: Default::default(),
    })?;
    Ok(RawActorHandle::live(id, &COUNTER, &b))
}

pub fn unidist_backend() -> Result<std::sync::Arc<dyn unidist_core::Backend>> {
    unidist::init()?;
    unidist_core::runtime::current().ok_or(unidist::Error::ShutDown)
}

// A counter handle passed into a task, which calls it.
remote1!(
    CALL_COUNTER,
    call_counter_i,
    call_counter,
    "common::call_counter",
    CounterHandle,
    i64,
    |h| { unidist::get(&h.add(100)).expect("actor call from a task") }
);

pub fn any_of<T>(r: &ObjectRef<T>) -> AnyRef {
    r.as_any().clone()
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}
