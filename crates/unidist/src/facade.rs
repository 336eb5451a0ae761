//! The user-facing calls: lifecycle, objects, `get`, `wait` and cluster queries.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use unidist_config as config;
use unidist_core::observe::timeline::Span;
use unidist_core::ready::{partition_for_wait, split_ready, validate_wait};
use unidist_core::{
    read_as, runtime, AnyRef, Arg, Backend, Error, GetFuture, ObjectId, ObjectRef, Result, Value,
    WaitFuture,
};

use crate::{backend, backends, ClusterResources, LIFECYCLE, SHUT_DOWN};

/// Starts the backend chosen by configuration (`UNIDIST_BACKEND`, else detected).
///
/// A second call is a no-op. Every other call starts the backend with defaults if `init` was not
/// called. A bad configuration value fails here with an error that names the variable, the value
/// and what is accepted. On MPI worker ranks this call does not return: they serve until rank 0
/// shuts down, then exit.
pub fn init() -> Result<()> {
    let _lifecycle = LIFECYCLE.lock().unwrap_or_else(|p| p.into_inner());
    if runtime::current().is_some() {
        return Ok(());
    }
    unidist_core::task::install_panic_hook();
    config::set_backend_detector(backends::detect);
    config::validate_all()?;
    let name = config::Backend::get()?;
    crate::observe::before_start()?;
    let backend = backends::start(name)?;
    runtime::install(backend)?;
    SHUT_DOWN.store(false, Ordering::Release);
    tracing::debug!(backend = %name, "unidist initialized");
    Ok(())
}

/// True while a backend runs.
pub fn is_initialized() -> bool {
    runtime::current().is_some()
}

/// Stops the workers and frees every object; idempotent.
///
/// After it, calls fail with [`Error::ShutDown`] until [`init`] is called again; refs from before
/// give [`Error::StaleRef`].
pub fn shutdown() -> Result<()> {
    let _lifecycle = LIFECYCLE.lock().unwrap_or_else(|p| p.into_inner());
    match runtime::take() {
        Some(b) => {
            SHUT_DOWN.store(true, Ordering::Release);
            // The runtime ends first, so that a trace that cannot be written does not keep it
            // alive; the backend keeps (or gathered) its recordings for `timeline` after it.
            let stopped = b.shutdown();
            let written = crate::observe::write_at_shutdown(&*b);
            stopped.and(written)
        }
        None => Ok(()),
    }
}

/// Stores a snapshot of `value` and returns a ref to it.
///
/// If the runtime cannot start, the returned ref holds the error and `get` returns it.
pub fn put<T: Value>(value: T) -> ObjectRef<T> {
    let value: Arc<dyn unidist_core::ErasedValue> = Arc::new(value);
    let bytes = value.byte_len();
    let result = backend().and_then(|b| b.put(value).map(|id| AnyRef::live(id, &b)));
    if result.is_ok() {
        unidist_core::observe::stats::object_stored(bytes);
    }
    match result {
        Ok(r) => ObjectRef::from_any(r),
        Err(e) => ObjectRef::failed(e),
    }
}

/// The arguments of a call to `backend` with every ref that does not belong to it (a ref kept
/// from a runtime that was shut down) replaced by a ref holding [`Error::StaleRef`].
///
/// This is the one place where refs are checked against the runtime: a backend looks up only
/// ids of its own, and a call given a stale ref fails without running, with that error, through
/// the failed-argument rule every backend applies.
pub(crate) fn own_args(args: Vec<Arg>, backend: &Arc<dyn Backend>) -> Vec<Arg> {
    args.into_iter()
        .map(|arg| match arg {
            Arg::Ref(r) if r.error().is_none() => match r.resolve() {
                Ok((_, owner)) if Arc::ptr_eq(&owner, backend) => Arg::Ref(r),
                Ok((id, _)) => Arg::Ref(AnyRef::failed(Error::StaleRef {
                    what: id.to_string(),
                })),
                Err(e) => Arg::Ref(AnyRef::failed(e)),
            },
            other => other,
        })
        .collect()
}

/// Ids of refs together with the backend that holds them.
type Resolved = (Vec<ObjectId>, Arc<dyn Backend>);

/// Resolves refs to ids on one backend; a ref that holds an error gives that error.
fn resolve_all<T>(refs: &[ObjectRef<T>]) -> Result<Option<Resolved>> {
    let mut ids = Vec::with_capacity(refs.len());
    let mut backend: Option<Arc<dyn Backend>> = None;
    for r in refs {
        let (id, b) = r.as_any().resolve()?;
        if let Some(first) = &backend {
            if !Arc::ptr_eq(first, &b) {
                return Err(Error::StaleRef {
                    what: id.to_string(),
                });
            }
        } else {
            backend = Some(b);
        }
        ids.push(id);
    }
    Ok(backend.map(|b| (ids, b)))
}

fn get_many<T: Value>(refs: &[ObjectRef<T>], timeout: Option<Duration>) -> Result<Vec<T>> {
    let Some((ids, b)) = resolve_all(refs)? else {
        return Ok(Vec::new());
    };
    let _span = Span::plain("get", "get");
    let payloads = crate::observe::with_progress(&ids, &b, ids.len(), || b.get(&ids, timeout))?;
    ids.iter()
        .zip(payloads)
        .map(|(id, p)| read_as::<T>(*id, p))
        .collect()
}

/// Blocks until the object is ready and returns a copy of it.
///
/// A failed task gives `Err` on every call, naming the function and the panic message.
pub fn get<T: Value>(r: &ObjectRef<T>) -> Result<T> {
    get_many(std::slice::from_ref(r), None).map(|mut v| v.remove(0))
}

/// Like [`get`] for many refs; values come in input order. The first failed object's error is
/// returned.
pub fn get_all<T: Value>(refs: &[ObjectRef<T>]) -> Result<Vec<T>> {
    get_many(refs, None)
}

/// Like [`get`], but gives [`Error::Timeout`] when the object is not ready within `timeout`.
pub fn get_timeout<T: Value>(r: &ObjectRef<T>, timeout: Duration) -> Result<T> {
    get_many(std::slice::from_ref(r), Some(timeout)).map(|mut v| v.remove(0))
}

type Split<T> = (Vec<ObjectRef<T>>, Vec<ObjectRef<T>>);

/// Waits until `num_returns` of `refs` are ready and returns `(ready, not_ready)`, each in input
/// order, with exactly `num_returns` refs in `ready`. Failed refs count as ready.
///
/// `num_returns` must be between 1 and `refs.len()`; anything else is an error, not a hang.
pub fn wait<T>(refs: &[ObjectRef<T>], num_returns: usize) -> Result<Split<T>> {
    wait_impl(refs, num_returns, None)
}

/// Like [`wait`], but returns what is ready when `timeout` runs out (possibly fewer than
/// `num_returns`).
pub fn wait_timeout<T>(
    refs: &[ObjectRef<T>],
    num_returns: usize,
    timeout: Duration,
) -> Result<Split<T>> {
    wait_impl(refs, num_returns, Some(timeout))
}

fn wait_impl<T>(
    refs: &[ObjectRef<T>],
    num_returns: usize,
    timeout: Option<Duration>,
) -> Result<Split<T>> {
    validate_wait(refs.len(), num_returns)?;
    let mut parts = partition_for_wait(refs.iter().map(ObjectRef::as_any));
    if let Some(b) = parts.backend.clone() {
        let need = num_returns.saturating_sub(parts.already_ready());
        let _span = Span::plain("wait", "wait");
        let flags = crate::observe::with_progress(&parts.ids, &b, need, || {
            b.wait(&parts.ids, need, timeout)
        })?;
        parts.record(&flags);
    }
    Ok(split_ready(refs, &parts.ready, num_returns))
}

/// Reads the object without blocking the thread: the future of [`get`].
///
/// Same as `r.clone().await` ([`ObjectRef`] implements [`IntoFuture`](std::future::IntoFuture)).
/// It works under any executor (Tokio, smol, `futures::executor::block_on`) and inside
/// `async fn` actor methods: polling only samples readiness, and the backend wakes the task
/// when the object is ready. A failed task gives its error.
///
/// ```
/// #[unidist::remote]
/// fn square(x: i64) -> i64 {
///     x * x
/// }
///
/// # fn main() -> unidist::Result<()> {
/// # unidist::config::Backend::put(unidist::config::BackendName::Pyseq).unwrap();
/// let r = square::remote(4);
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// rt.block_on(async {
///     assert_eq!(unidist::get_async(&r).await?, 16);
///     assert_eq!(square::remote(5).await?, 25); // `.await` on the ref itself
///     Ok(())
/// })
/// # }
/// ```
pub fn get_async<T: Value>(r: &ObjectRef<T>) -> GetFuture<T> {
    GetFuture::new(r.clone())
}

/// Waits without blocking the thread: the future of [`wait`], with the same rules (failed refs
/// count as ready; `num_returns` outside `1..=refs.len()` is an error when awaited).
///
/// ```
/// #[unidist::remote]
/// fn square(x: i64) -> i64 {
///     x * x
/// }
///
/// # fn main() -> unidist::Result<()> {
/// # unidist::config::Backend::put(unidist::config::BackendName::Pyseq).unwrap();
/// let mut pending: Vec<_> = (1..=3).map(square::remote).collect();
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let mut sum = 0;
/// rt.block_on(async {
///     while !pending.is_empty() {
///         // Whichever finishes first.
///         let (ready, rest) = unidist::wait_async(&pending, 1).await?;
///         sum += ready[0].clone().await?;
///         pending = rest;
///     }
///     Ok::<_, unidist::Error>(())
/// })?;
/// assert_eq!(sum, 14);
/// # Ok(())
/// # }
/// ```
pub fn wait_async<T>(refs: &[ObjectRef<T>], num_returns: usize) -> WaitFuture<T> {
    WaitFuture::new(refs.to_vec(), num_returns)
}

/// Workers available for tasks (1 on `pyseq`).
pub fn num_cpus() -> usize {
    match backend() {
        Ok(b) => b.num_cpus(),
        Err(_) => config::CpuCount::get().unwrap_or(1),
    }
}

/// `{host_ip: {"CPU": n}}` for every host of the cluster.
pub fn cluster_resources() -> Result<ClusterResources> {
    backend()?.cluster_resources()
}

/// The IP address of this host.
pub fn get_ip() -> String {
    match runtime::current() {
        Some(b) => b.get_ip(),
        None => runtime::local_ip(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unidist_core::ErrorKind;
    use unidist_testkit::StoreOnly;

    #[test]
    fn refs_of_another_runtime_become_stale_arguments() {
        let current = StoreOnly::start();
        let other = StoreOnly::start();
        let own = AnyRef::live(current.put(Arc::new(1i64)).unwrap(), &current);
        let foreign = AnyRef::live(other.put(Arc::new(2i64)).unwrap(), &other);
        let foreign_id = foreign.id().unwrap();
        let failed = AnyRef::failed(Error::ShutDown);
        let args = vec![
            Arg::Value(Arc::new(3i64)),
            Arg::Ref(own.clone()),
            Arg::Ref(foreign),
            Arg::Ref(failed),
        ];
        let checked = own_args(args, &current);
        assert!(matches!(&checked[0], Arg::Value(_)));
        assert!(matches!(&checked[1], Arg::Ref(r) if r.ptr_eq(&own)));
        let Arg::Ref(stale) = &checked[2] else {
            panic!("a ref stays a ref")
        };
        let e = stale.id().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StaleRef);
        assert!(e.to_string().contains(&foreign_id.to_string()), "{e}");
        let Arg::Ref(kept) = &checked[3] else {
            panic!("a ref stays a ref")
        };
        assert_eq!(kept.id().unwrap_err().kind(), ErrorKind::ShutDown);
        // A ref whose runtime is gone altogether is stale too.
        let gone = AnyRef::live(other.put(Arc::new(4i64)).unwrap(), &other);
        other.shutdown().unwrap();
        drop(other);
        let checked = own_args(vec![Arg::Ref(gone)], &current);
        let Arg::Ref(r) = &checked[0] else {
            panic!("a ref stays a ref")
        };
        assert_eq!(r.id().unwrap_err().kind(), ErrorKind::StaleRef);
        current.shutdown().unwrap();
    }
}
