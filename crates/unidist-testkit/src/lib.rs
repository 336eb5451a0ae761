//! Test support shared by the backend crates of unidist; unpublished, for their tests, examples
//! and benchmarks only.
//!
//! It drives a backend the way the facade does, through the `Backend` trait of `unidist-core`,
//! so that a backend crate can test itself without depending on the facade:
//! - [`runtime`]: taking turns at the process-wide runtime slot, installing a backend for a test,
//!   and bounding a test's time so that a hang fails it;
//! - [`api`]: `put`, `get`, `wait`, task submission, actor creation and calls on the installed
//!   backend, with typed refs;
//! - [`fakes`]: hand-written registrations (what `#[unidist::remote]` and `#[unidist::actor]`
//!   generate) of a few functions and actors, and [`fakes::Tracked`], a value that counts its
//!   drops;
//! - [`StoreOnly`]: a backend with an object store only, for tests above the backends.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod fakes;
pub mod runtime;
mod store_only;

pub use api::*;
pub use runtime::*;
pub use store_only::StoreOnly;
