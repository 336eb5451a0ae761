//! Fresh memory for large decoded values: the vectors a decode copies a received or mapped
//! buffer into, and the zeroed buffers a backend receives into.
//!
//! Filling a fresh 64 MiB allocation costs more in page faults than in copying on a VM (about
//! 25 ms of faults for one 64 MiB vector on the development machine). Where the kernel offers
//! transparent huge pages on request (`/sys/kernel/mm/transparent_hugepage/enabled` set to
//! `madvise`, common on distributions), one fault then fills 2 MiB instead of 4 KiB. This crate
//! has no `unsafe` code, so the advice itself is a function a backend sets once
//! ([`set_fresh_memory_advice`]); without one, allocations are made as usual.

use std::sync::OnceLock;

use crate::buffer::Element;

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
pub(crate) fn copy_to_vec<T: Element>(bytes: &[u8]) -> Vec<T> {
    match bytemuck::try_cast_slice::<u8, T>(bytes) {
        Ok(src) if bytes.len() >= ADVISE_FROM && ADVICE.get().is_some() => {
            let mut v = Vec::with_capacity(src.len());
            advise(&mut v);
            v.extend_from_slice(src);
            v
        }
        _ => bytemuck::pod_collect_to_vec(bytes),
    }
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

    #[test]
    fn large_copies_are_advised_and_keep_their_contents() {
        set_fresh_memory_advice(record);
        let bytes: Vec<u8> = (0..ADVISE_FROM + 16).map(|i| (i % 253) as u8).collect();
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
}
