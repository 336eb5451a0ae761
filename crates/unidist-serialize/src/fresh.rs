//! Fresh memory for large decoded values: the vectors a decode copies a received or mapped
//! buffer into, and the zeroed buffers a backend receives into.
//!
//! Filling a fresh 64 MiB allocation costs more in page faults than in copying on a VM (about
//! 25 ms of faults for one 64 MiB vector on the development machine). Where the kernel offers
//! transparent huge pages on request (`/sys/kernel/mm/transparent_hugepage/enabled` set to
//! `madvise`, common on distributions), one fault then fills 2 MiB instead of 4 KiB. This crate
//! has no `unsafe` code, so the advice itself is a function a backend sets once
//! ([`set_fresh_memory_advice`]); without one, allocations are made as usual.
//!
//! Two more things make a large decode cost one copy at memory speed rather than one copy plus
//! page faults:
//! - **Freed vectors are kept.** A backend hands the large natural values it drops (a decoded
//!   by-reference argument after the call, a freed object, a by-value argument once written
//!   into shared memory) to [`recycle`]; up to [`KEEP_MAX`] of them, [`KEEP_BYTES`] in all, are
//!   kept, and the next decode of a vector of about their size (at most twice as large, of the
//!   same element type) fills one of them: its pages are already mapped.
//! - **Large copies run on several threads** ([`copy_large`]): from 16 MiB on, one thread per
//!   8 MiB, at most four and at most the machine's cores. On the development VM a 64 MiB copy
//!   into mapped pages takes 9.4-10.5 ms on one thread and 5.5-5.8 ms on two.

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex, OnceLock};

use crate::buffer::{Buffer, Element};

/// Allocations of at least this many bytes get the advice.
pub(crate) const ADVISE_FROM: usize = 4 << 20;

static ADVICE: OnceLock<fn(usize, usize)> = OnceLock::new();

/// Sets the advice given about every fresh allocation of at least 4 MiB that a decode is about
/// to fill: called with the allocation's address and length in bytes, before any of it is
/// written. It must leave the memory's contents alone (the MPI backend asks for transparent
/// huge pages with `madvise`). The first call wins; later ones are ignored.
pub fn set_fresh_memory_advice(advice: fn(usize, usize)) {
    let _ = ADVICE.set(advice);
}

/// Gives the advice about `v`'s whole allocation when it is large enough.
fn advise<T>(v: &mut Vec<T>) {
    let bytes = v.capacity().saturating_mul(size_of::<T>());
    if bytes >= ADVISE_FROM {
        if let Some(advice) = ADVICE.get() {
            advice(v.as_mut_ptr() as usize, bytes);
        }
    }
}

/// A new vector holding the elements `bytes` encode (native byte order); a trailing partial
/// element is completed with zero bytes, as `bytemuck::pod_collect_to_vec` does.
///
/// From 4 MiB on, the vector is a kept one when one fits (see [`recycle`]), else a fresh zeroed
/// allocation (calloc: no memset) with the advice given, and the bytes are copied in with
/// [`copy_large`].
pub(crate) fn copy_to_vec<T: Element>(bytes: &[u8]) -> Vec<T> {
    match bytemuck::try_cast_slice::<u8, T>(bytes) {
        Ok(src) if bytes.len() >= ADVISE_FROM => {
            let Some(mut v) = take::<T>(src.len()).or_else(|| zeroed_vec::<T>(src.len())) else {
                // No memory for a zeroed vector: the plain path, which aborts like any
                // allocation of this size that fails.
                return src.to_vec();
            };
            copy_large(bytemuck::cast_slice_mut(&mut v), bytes);
            v
        }
        _ => bytemuck::pod_collect_to_vec(bytes),
    }
}

/// Copies from 16 MiB on are split between threads.
const PARALLEL_FROM: usize = 16 << 20;
/// Each thread copies at least this much.
const PER_THREAD: usize = 8 << 20;
/// At most this many threads copy.
const MAX_THREADS: usize = 4;

/// Copies `src` into `dst` (the same length): on several threads when large (module docs). A
/// thread that cannot be started leaves its part to the calling thread.
///
/// # Panics
/// If the lengths differ, like `copy_from_slice`.
pub fn copy_large(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy_large: lengths differ");
    let Ok(()) = fill_large(dst, |at, part| {
        part.copy_from_slice(&src[at..at + part.len()]);
        Ok::<(), std::convert::Infallible>(())
    });
}

/// Fills `dst` by calling `fill(offset, part)` for parts of it that together cover it once:
/// on several threads when large, split as [`copy_large`] splits a copy (a backend reading
/// another process's memory uses it). Returns the first error a part gave; the other parts
/// still run.
///
/// # Errors
/// The first error `fill` returned.
pub fn fill_large<E: Send>(
    dst: &mut [u8],
    fill: impl Fn(usize, &mut [u8]) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let threads = copy_threads(dst.len());
    if threads <= 1 {
        return fill(0, dst);
    }
    let chunk = dst.len().div_ceil(threads);
    let parts: Vec<Part<'_>> = dst
        .chunks_mut(chunk)
        .enumerate()
        .map(|(i, p)| Mutex::new(Some((i * chunk, p))))
        .collect();
    let first_error: Mutex<Option<E>> = Mutex::new(None);
    let run = |part: &Part<'_>| {
        let taken = part
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((at, p)) = taken {
            if let Err(e) = fill(at, p) {
                first_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_or_insert(e);
            }
        }
    };
    let run = &run;
    std::thread::scope(|scope| {
        for part in &parts[1..] {
            let _ = std::thread::Builder::new()
                .name("unidist-copy".into())
                .spawn_scoped(scope, move || run(part));
        }
        parts.iter().for_each(run);
    });
    match first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A part of a split fill: its offset and bytes, taken by the thread that fills it.
type Part<'a> = Mutex<Option<(usize, &'a mut [u8])>>;

fn copy_threads(len: usize) -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    if len < PARALLEL_FROM {
        return 1;
    }
    let cores = *CORES.get_or_init(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    (len / PER_THREAD).min(cores).clamp(1, MAX_THREADS)
}

/// At most this many freed vectors are kept.
pub const KEEP_MAX: usize = 4;
/// At most this many bytes of freed vectors are kept, in all.
pub const KEEP_BYTES: usize = 256 << 20;

/// A kept vector: a `Vec<T>` of some element type, its allocation's size in bytes, and its
/// length in elements (its elements are initialized, so a decode can overwrite them in place).
struct Kept {
    elem: TypeId,
    bytes: usize,
    len: usize,
    capacity: usize,
    vec: Box<dyn Any + Send>,
}

static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());

fn kept() -> std::sync::MutexGuard<'static, Vec<Kept>> {
    // The list stays consistent whatever a panicking holder did (each change is one push or
    // remove), so a poisoned lock is taken over.
    KEPT.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keeps `v` for a later decode when it is large enough, dropping the oldest kept vectors
/// that no longer fit (outside the lock: unmapping 64 MiB takes time).
pub(crate) fn keep<T: Element>(v: Vec<T>) {
    let bytes = v.capacity().saturating_mul(size_of::<T>());
    if !(ADVISE_FROM..=KEEP_BYTES).contains(&bytes) {
        return;
    }
    let entry = Kept {
        elem: TypeId::of::<T>(),
        bytes,
        len: v.len(),
        capacity: v.capacity(),
        vec: Box::new(v),
    };
    let mut evicted = Vec::new();
    {
        let mut list = kept();
        while !list.is_empty()
            && (list.len() >= KEEP_MAX
                || list.iter().map(|k| k.bytes).sum::<usize>() + bytes > KEEP_BYTES)
        {
            evicted.push(list.remove(0));
        }
        list.push(entry);
    }
    drop(evicted);
}

/// A kept `Vec<T>` of exactly `n` initialized elements whose allocation is at most twice the
/// need, the smallest such; `None` when none fits.
pub(crate) fn take<T: Element>(n: usize) -> Option<Vec<T>> {
    let mut list = kept();
    let at = list
        .iter()
        .enumerate()
        .filter(|(_, k)| {
            k.elem == TypeId::of::<T>() && k.len >= n && k.capacity <= n.saturating_mul(2)
        })
        .min_by_key(|(_, k)| k.capacity)
        .map(|(i, _)| i)?;
    let entry = list.remove(at);
    drop(list);
    let mut v = *entry.vec.downcast::<Vec<T>>().ok()?;
    v.truncate(n);
    Some(v)
}

/// How many vectors are kept now, and their bytes (for tests and diagnostics).
pub fn kept_vectors() -> (usize, usize) {
    let list = kept();
    (list.len(), list.iter().map(|k| k.bytes).sum())
}

/// Drops `value`, keeping its allocation for a later decode when it is a large natural vector
/// (`Vec<T>` or `Box<[T]>` of a primitive number, or `String`, of at least 4 MiB); any other
/// value is simply dropped. For backends: call it where a value that a decode made, or that
/// was written out, is no longer needed.
pub fn recycle<T: Send + Sync + 'static>(value: T) {
    // Other types are dropped here, without the shared path's downcasts.
    if crate::natural::is_natural::<T>() {
        recycle_shared(Arc::new(value));
    }
}

/// As [`recycle`], for a shared value: kept only if this was its last handle. A `Buffer`'s
/// storage is recycled the same way when this was the last handle to it.
pub fn recycle_shared(value: Arc<dyn Any + Send + Sync>) {
    let mut value = match value.downcast::<String>() {
        Ok(text) => {
            if let Ok(t) = Arc::try_unwrap(text) {
                keep(t.into_bytes());
            }
            return;
        }
        Err(other) => other,
    };
    macro_rules! check {
        ($e:ty, $n:ident) => {
            value = match value.downcast::<Vec<$e>>() {
                Ok(v) => {
                    if let Ok(v) = Arc::try_unwrap(v) {
                        keep(v);
                    }
                    return;
                }
                Err(other) => other,
            };
            value = match value.downcast::<Box<[$e]>>() {
                Ok(v) => {
                    if let Ok(v) = Arc::try_unwrap(v) {
                        keep(v.into_vec());
                    }
                    return;
                }
                Err(other) => other,
            };
            value = match value.downcast::<Buffer<$e>>() {
                Ok(b) => {
                    if let Ok(b) = Arc::try_unwrap(b) {
                        b.recycle();
                    }
                    return;
                }
                Err(other) => other,
            };
        };
    }
    for_each_elem!(check);
    drop(value);
}

/// A vector of `n` zeroed elements, or `None` if the memory cannot be allocated.
///
/// The allocation asks the allocator for zeroed memory (calloc: fresh pages come already zero,
/// no memset, which matters for receive buffers of hundreds of MiB) and reports failure instead
/// of aborting, so a corrupted length becomes an error. Trying the size with a separate
/// allocation first is not enough: with overcommit the probe can succeed while the zeroed
/// allocation that follows fails and aborts.
pub(crate) fn zeroed_vec<T: Element>(n: usize) -> Option<Vec<T>> {
    let mut v = bytemuck::allocation::try_zeroed_vec(n).ok()?;
    advise(&mut v);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static ADVISED: AtomicUsize = AtomicUsize::new(0);

    fn record(_addr: usize, len: usize) {
        ADVISED.fetch_add(len, Ordering::SeqCst);
    }

    /// The tests that use the kept vectors run one at a time, each from an empty list.
    fn kept_alone() -> std::sync::MutexGuard<'static, ()> {
        static ALONE: Mutex<()> = Mutex::new(());
        let guard = ALONE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept().clear();
        guard
    }

    /// `n` bytes of a pattern with period 251 (a prime: chunk edges do not line up with it).
    fn pattern(n: usize, salt: u8) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ salt).collect()
    }

    #[test]
    fn large_copies_are_advised_and_keep_their_contents() {
        let _alone = kept_alone();
        set_fresh_memory_advice(record);
        let bytes = pattern(ADVISE_FROM + 16, 0);
        let before = ADVISED.load(Ordering::SeqCst);
        let v: Vec<u32> = copy_to_vec(&bytes);
        assert!(ADVISED.load(Ordering::SeqCst) - before >= ADVISE_FROM);
        assert_eq!(bytemuck::cast_slice::<u32, u8>(&v), &bytes[..]);
        // Small copies, and bytes that are not whole elements, take the plain path.
        let small: Vec<u16> = copy_to_vec(&bytes[..64]);
        assert_eq!(bytemuck::cast_slice::<u16, u8>(&small), &bytes[..64]);
        let odd: Vec<u32> = copy_to_vec(&bytes[..7]);
        assert_eq!(&bytemuck::cast_slice::<u32, u8>(&odd)[..7], &bytes[..7]);
        let zeroed: Vec<u64> = zeroed_vec(ADVISE_FROM / 8).expect("4 MiB");
        assert!(zeroed.iter().all(|x| *x == 0));
    }

    #[test]
    fn parallel_copies_match_a_plain_copy() {
        // Lengths around the thread split: uneven parts, and a last part shorter than the rest.
        for len in [
            PARALLEL_FROM - 1,
            PARALLEL_FROM,
            PARALLEL_FROM + 4093,
            5 * PER_THREAD + 7,
        ] {
            let src = pattern(len, 0x5a);
            let mut dst = vec![0u8; len];
            copy_large(&mut dst, &src);
            assert!(dst == src, "copy of {len} bytes differs");
        }
        assert_eq!(copy_threads(PARALLEL_FROM - 1), 1);
        assert!(copy_threads(64 << 20) <= MAX_THREADS);
    }

    #[test]
    fn a_split_fill_covers_every_byte_once_and_reports_a_failed_part() {
        let len = 5 * PER_THREAD + 7;
        let src = pattern(len, 0x33);
        let mut dst = vec![0u8; len];
        let calls = AtomicUsize::new(0);
        let filled = fill_large(&mut dst, |at, part| {
            calls.fetch_add(1, Ordering::SeqCst);
            part.copy_from_slice(&src[at..at + part.len()]);
            Ok::<(), String>(())
        });
        assert_eq!(filled, Ok(()));
        assert!(dst == src, "the parts do not add up to the source");
        assert_eq!(calls.load(Ordering::SeqCst), copy_threads(len));
        // A part that fails: its error comes back, and the other parts still ran.
        let mut dst = vec![0u8; len];
        let failed = fill_large(&mut dst, |at, part| {
            if at == 0 {
                return Err(format!("part at {at} failed"));
            }
            part.fill(1);
            Ok(())
        });
        assert_eq!(failed, Err("part at 0 failed".to_string()));
        if copy_threads(len) > 1 {
            assert_eq!(dst.last(), Some(&1));
        }
        // A small fill is one call on the calling thread.
        let mut small = vec![0u8; 100];
        let mut offsets = Vec::new();
        let seen = Mutex::new(&mut offsets);
        fill_large(&mut small, |at, part| {
            seen.lock().unwrap().push((at, part.len()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(offsets, vec![(0, 100)]);
    }

    #[test]
    fn a_recycled_vector_serves_the_next_decode_of_its_size() {
        let _alone = kept_alone();
        let first = pattern(ADVISE_FROM * 2, 1);
        let v: Vec<f64> = copy_to_vec(&first);
        let at = v.as_ptr();
        recycle(v);
        assert_eq!(kept_vectors(), (1, ADVISE_FROM * 2));
        // Another element type, or a size it is more than twice as large as: not taken.
        let other: Vec<u64> = copy_to_vec(&pattern(ADVISE_FROM * 2, 2));
        assert_ne!(other.as_ptr() as usize, at as usize);
        let smaller: Vec<f64> = copy_to_vec(&pattern(ADVISE_FROM - 8, 3));
        assert_ne!(smaller.as_ptr(), at);
        assert_eq!(kept_vectors().0, 1);
        // The same element type, a little smaller: the kept vector, rewritten whole.
        let second = pattern(ADVISE_FROM * 2 - 64, 4);
        let again: Vec<f64> = copy_to_vec(&second);
        assert_eq!(again.as_ptr(), at, "the kept vector was not reused");
        assert_eq!(bytemuck::cast_slice::<f64, u8>(&again), &second[..]);
        assert_eq!(kept_vectors().0, 0);
        // Longer than the kept vector's elements: not taken.
        recycle(again);
        let longer: Vec<f64> = copy_to_vec(&pattern(ADVISE_FROM * 2, 5));
        assert_ne!(longer.as_ptr(), at);
    }

    #[test]
    fn a_buffer_to_overwrite_takes_a_kept_vector_and_moves_into_the_value() {
        let _alone = kept_alone();
        let kept: Vec<u8> = copy_to_vec(&pattern(ADVISE_FROM * 2, 6));
        let at = kept.as_ptr();
        recycle(kept);
        let mut b = crate::OobBuffer::for_overwrite(crate::ElemType::U8, ADVISE_FROM * 2).unwrap();
        assert!(b.in_process());
        let bytes = b.as_bytes_mut().expect("held alone, so writable");
        assert_eq!(bytes.as_ptr(), at, "the kept vector was not taken");
        bytes.fill(9);
        let v: Vec<u8> = b.into_vec();
        assert_eq!(v.as_ptr(), at, "the buffer was copied instead of moved");
        assert!(v.iter().all(|b| *b == 9));
        // Nothing kept: a zeroed one; a length that is not whole elements: an error.
        let fresh = crate::OobBuffer::for_overwrite(crate::ElemType::F64, 64).unwrap();
        assert_eq!(fresh.as_bytes(), &[0u8; 64][..]);
        assert!(crate::OobBuffer::for_overwrite(crate::ElemType::F64, 63).is_err());
        // Bytes another owner keeps alive are not this process's own.
        let owner: Arc<dyn AsRef<[u8]> + Send + Sync> = Arc::new(vec![1u8; 8]);
        let external = crate::OobBuffer::from_owner(crate::ElemType::U8, owner).unwrap();
        assert!(!external.in_process());
    }

    #[test]
    fn only_large_natural_values_held_alone_are_kept() {
        let _alone = kept_alone();
        recycle(vec![0u8; ADVISE_FROM - 1]);
        recycle(vec![(1u32, 2u32); ADVISE_FROM]);
        assert_eq!(
            kept_vectors().0,
            0,
            "a small vector or a vector of tuples was kept"
        );
        let text = "x".repeat(ADVISE_FROM);
        recycle(text);
        recycle(vec![0i16; ADVISE_FROM].into_boxed_slice());
        assert_eq!(kept_vectors(), (2, ADVISE_FROM * 3));
        let shared: Arc<Vec<f32>> = Arc::new(vec![0.5; ADVISE_FROM]);
        let other = Arc::clone(&shared);
        recycle_shared(shared);
        assert_eq!(
            kept_vectors().0,
            2,
            "a vector still held elsewhere was kept"
        );
        recycle_shared(other);
        assert_eq!(kept_vectors().0, 3);
        let buffer: Arc<Buffer<u8>> = Arc::new(Buffer::new(vec![7u8; ADVISE_FROM]));
        recycle_shared(buffer);
        assert_eq!(kept_vectors().0, 4);
    }

    #[test]
    fn the_kept_vectors_stay_within_their_bounds() {
        let _alone = kept_alone();
        for _ in 0..KEEP_MAX + 2 {
            recycle(vec![0u64; ADVISE_FROM / 8]);
        }
        assert_eq!(kept_vectors(), (KEEP_MAX, KEEP_MAX * ADVISE_FROM));
        // One large vector pushes the oldest out until the bytes fit.
        recycle(vec![0u8; KEEP_BYTES - ADVISE_FROM]);
        assert_eq!(kept_vectors(), (2, KEEP_BYTES));
        // Larger than the whole budget: never kept.
        recycle(vec![0u8; KEEP_BYTES + 1]);
        assert_eq!(kept_vectors(), (2, KEEP_BYTES));
    }
}
