//! Procedural macros of unidist: `#[remote]` for task functions and `#[actor]` for actor types.
//!
//! This is an internal crate of [unidist](https://docs.rs/unidist); depend on `unidist` and write
//! `#[unidist::remote]` and `#[unidist::actor]`, which re-export the macros here. The expansions
//! name only items under `::unidist::__private`, so this crate depends on no other unidist crate
//! and generated code works in any crate that depends on `unidist`.
//!
//! Both macros register what they generate (a function, an actor type and its methods) under a
//! stable name, `module::path::name`, in a link-time registry. Every process running the same
//! binary therefore finds the same code by name, which is how a task submitted in one process
//! runs in another.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod actor;
mod args;
mod remote;
mod sig;

/// Makes a free function runnable as a task.
///
/// ```ignore
/// #[unidist::remote]
/// fn square(x: i64) -> i64 {
///     x * x
/// }
///
/// let r: unidist::ObjectRef<i64> = square::remote(4);
/// assert_eq!(unidist::get(&r)?, 16);
/// assert_eq!(square(3), 9); // still an ordinary function
/// ```
///
/// The function stays as written. Next to it the macro adds a type of the same name (types and
/// functions live in different namespaces) with:
///
/// - `square::remote(args..)`: submits a call and returns an `ObjectRef` to its result. Each
///   parameter of type `T` (or `&T`) accepts a `T`, an `ObjectRef<T>` or a `&ObjectRef<T>`; refs
///   are resolved before the body runs, and a not yet finished one is fine.
/// - `square::options().num_cpus(n).remote(args..)`: the same call with per-call options.
///
/// # Several results, or none
///
/// `num_returns = N` splits a result into `N` objects; the return type must be a tuple of `N`
/// elements. `num_returns = 0` returns nothing to the caller (the function must return `()`):
///
/// ```ignore
/// #[unidist::remote(num_returns = 2)]
/// fn split(x: i64) -> (i64, String) {
///     (x / 2, format!("{x}"))
/// }
/// let (half, text): (ObjectRef<i64>, ObjectRef<String>) = split::remote(7);
///
/// #[unidist::remote(num_returns = 0)]
/// fn log_it(msg: String) {
///     eprintln!("{msg}");
/// }
/// log_it::remote("hello".to_string()); // returns ()
/// ```
///
/// # Parameters
///
/// Parameters are values (`unidist::Value`: `Serialize + DeserializeOwned + Clone + Send + Sync +
/// 'static`) taken by value or by shared reference. A `&T` parameter borrows the argument where
/// the backend holds it, without a copy; `&str` and `&[T]` are carried as `String` and `Vec<T>`,
/// so the caller passes a `String` or a `Vec<T>` (or a ref to one).
///
/// # Rejected, with a compile error
///
/// Generic parameters and lifetimes, `async fn`, `unsafe fn`, `self` receivers (use
/// [`macro@actor`]), `impl Trait` parameters or return types, `&mut T` parameters (the call works
/// on its own copy, so a change would be lost), named lifetimes on parameters, any argument other
/// than `num_returns = <integer literal>`, and a return type that does not match `num_returns`.
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    remote::expand(attr.into(), item.into()).into()
}

/// Makes a type an actor: a stateful worker whose methods run remotely, in call order.
///
/// Put it on the inherent `impl` block that holds the constructor and the methods:
///
/// ```ignore
/// pub struct Counter {
///     n: i64,
/// }
///
/// #[unidist::actor]
/// impl Counter {
///     pub fn new(start: i64) -> Self {
///         Counter { n: start }
///     }
///     pub fn add(&mut self, x: i64) -> i64 {
///         self.n += x;
///         self.n
///     }
///     pub fn get(&self) -> i64 {
///         self.n
///     }
///     #[remote(num_returns = 2)]
///     pub fn both(&self, x: i64) -> (i64, i64) {
///         (x, self.n)
///     }
///     pub async fn later(&self, ms: u64) -> i64 {
///         tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
///         self.n
///     }
/// }
///
/// let c: unidist::ActorHandle<Counter> = Counter::remote(0); // the arguments of `new`
/// let r: unidist::ObjectRef<i64> = c.add(5);
/// assert_eq!(unidist::get(&r)?, 5);
/// ```
///
/// The impl block stays as written (minus the `#[remote(..)]` method attributes), so the type
/// still works locally. The macro adds:
///
/// - `Counter::remote(args..)`, with the parameters and visibility of `new`: creates the actor
///   where the backend places it and returns an `ActorHandle<Counter>`.
/// - `CounterMethods`, which the handle dereferences to: one method per `&self` or `&mut self`
///   method (sync or `async`), taking the same argument forms as remote functions (a value, an
///   `ObjectRef` or a `&ObjectRef`) and returning refs. `#[remote(num_returns = N)]` on a method
///   works as on a function. Each generated method has the visibility of its method, and
///   `CounterMethods` the widest visibility among `new` and the methods, which must be at least
///   that of the type (the compiler says so otherwise).
///
/// Calls on one actor start in call order. `&mut self` methods have the actor alone; an
/// `async fn(&self)` keeps running while it awaits, and other calls proceed meanwhile. A handle
/// is `Clone + Serialize + Deserialize`, so tasks can receive and call it.
///
/// Associated functions without a receiver, other than `new`, stay local and are not remote.
/// `#[cfg(..)]` on a method or on the impl block applies to what is generated for it. Use one
/// `#[unidist::actor]` impl block per type.
///
/// # Rejected, with a compile error
///
/// A missing `fn new(..) -> Self`; generic impl blocks or types; trait impls; methods taking
/// `self` by value (or `Box<Self>`, ..); generic methods; a method named `kill`, `id`, `raw` or
/// `from_raw` (the handle's own methods would hide it) or an associated function named `remote`;
/// and every parameter or return type a remote function rejects.
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    actor::expand(attr.into(), item.into()).into()
}
