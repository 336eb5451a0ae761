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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::fakes::{drops, Tracked};
    use super::*;
    use unidist_core::ErrorKind;

    #[test]
    fn helpers_drive_the_installed_backend() {
        let rt = install(StoreOnly::start);
        let r = put(Tracked(15));
        assert_eq!(get(&r).unwrap().0, 15);
        assert_eq!(get_all(std::slice::from_ref(&r)).unwrap().len(), 1);
        assert_eq!(wait(std::slice::from_ref(&r), 1, None).unwrap(), [true]);
        let before = drops(15);
        drop(r);
        assert!(
            drops(15) > before,
            "the object was not freed with its last ref"
        );
        let e = get(&remote::<i64>(&fakes::SQUARE, vec![val(2i64)])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(Arc::ptr_eq(&backend(), &rt.backend()));
        assert!(rss_bytes() > 0 || !cfg!(target_os = "linux"));
        drop(rt);
        assert!(unidist_core::runtime::current().is_none());
    }

    #[test]
    fn bounded_returns_the_result_and_passes_panics_on() {
        assert_eq!(bounded(Duration::from_secs(5), "a sum", || 2 + 2), 4);
        let caught = std::panic::catch_unwind(|| {
            bounded(Duration::from_secs(5), "a panic", || panic!("inner panic"))
        });
        assert!(caught.is_err());
        assert!(eventually(Duration::from_secs(1), || true));
    }
}
