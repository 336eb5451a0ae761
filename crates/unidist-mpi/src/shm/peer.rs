//! Reading a value from the memory of the process that holds it (`process_vm_readv`): the
//! answer a rank gives to rank 0's fetch of a large value when rank 0 shares its host.
//!
//! A segment costs two copies for a value that is not in shared memory yet, such as a task's
//! result: the holder's copy into the segment, and rank 0's copy out of it into the value `get`
//! returns. Reading the holder's memory directly costs one, and no `/dev/shm` space. It also
//! reads at the speed of the holder's pages: a vector the runtime decoded into (huge pages, see
//! `unidist_serialize::set_fresh_memory_advice`) is read about twice as fast as 4 KiB pages,
//! where segments are 4 KiB pages on kernels that do not back shared memory with huge pages.
//!
//! **Safety of the bytes.** The holder keeps the value in its object table, unchanged, until
//! rank 0 (the owner of what it fetches) frees the object, which it does only after every `get`
//! of it returned: a read never sees memory that was freed or reused. The descriptor names the
//! holder's process id, checked against the one this rank knows for the sender; after the
//! bytes, the reader reads the holder's token (a random word at a fixed address) back, so a
//! holder that ended while it read, or another process given the same id, is an error rather
//! than wrong bytes. The bytes are then decoded like any received ones.
//!
//! **Falling back.** Any failure (the kernel's permission, a process that ended, a descriptor
//! that does not check) is logged once; rank 0 tells that rank to stop offering reads
//! (`PeerReadOff`) and fetches again, and the value then comes as a segment or as bytes.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use unidist_core::{Error, Result};
use unidist_serialize::{Encoded, OobBuffer};

use super::Store;
use crate::ffi;
use crate::wire::{PeerDesc, INLINE_MAX, PEER_BUFFERS_MAX};

/// The token of this process, at a fixed address: zero until the first offer sets it.
static TOKEN: AtomicU64 = AtomicU64::new(0);

/// This process's token, made on first use: a random non-zero word.
fn token() -> u64 {
    let now = TOKEN.load(Ordering::Acquire);
    if now != 0 {
        return now;
    }
    let made = RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now())) | 1;
    match TOKEN.compare_exchange(0, made, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => made,
        Err(set) => set,
    }
}

impl Store {
    /// The descriptor that lets rank `dest` read `e` from this process's memory, when it may:
    /// `dest` is rank 0 on this host, the store is on and the value large enough to go through
    /// it, reads are not turned off, and every buffer of `e` is this process's own memory (a
    /// value already in a segment goes as that segment).
    pub(crate) fn offer_peer_read(&self, dest: u32, e: &Encoded) -> Option<PeerDesc> {
        if dest != 0
            || self.rank == 0
            || !self.peer_reads.load(Ordering::Acquire)
            || !self.wants(dest, e.total_len())
            || e.inline.len() > INLINE_MAX
            || e.buffers.is_empty()
            || e.buffers.len() > PEER_BUFFERS_MAX
            || !e.buffers.iter().all(OobBuffer::in_process)
        {
            return None;
        }
        let token = token();
        Some(PeerDesc {
            pid: self.pid,
            token_at: std::ptr::from_ref(&TOKEN) as u64,
            token,
            inline: e.inline.clone(),
            buffers: e
                .buffers
                .iter()
                .map(|b| (b.elem(), b.as_bytes().as_ptr() as u64, b.len() as u64))
                .collect(),
        })
    }

    /// Rank 0 could not read this process's memory: answer its fetches with the value from
    /// now on.
    pub(crate) fn peer_reads_off(&self) {
        if self.peer_reads.swap(false, Ordering::AcqRel) {
            tracing::info!("rank 0 cannot read this process's memory: values go to it as segments");
        }
    }

    /// Reads the value `desc` describes from the memory of rank `src`: each buffer straight
    /// into a buffer the decode then moves into the value, on several threads when large.
    pub(crate) fn read_peer(&self, src: u32, desc: &PeerDesc) -> Result<Encoded> {
        let known = self.pids.get(src as usize).copied().unwrap_or(0);
        desc.check(known)?;
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            Error::backend(
                "mpi",
                format!(
                    "reading {what} from rank {src}'s memory (process {}) failed: {e}",
                    desc.pid
                ),
            )
        };
        let mut buffers = Vec::with_capacity(desc.buffers.len());
        for &(elem, at, len) in &desc.buffers {
            let len = usize::try_from(len).map_err(|e| failed("a buffer", &e))?;
            let mut b = OobBuffer::for_overwrite(elem, len).map_err(|e| failed("a buffer", &e))?;
            let Some(dst) = b.as_bytes_mut() else {
                return Err(failed("a buffer", &"its memory is shared"));
            };
            unidist_serialize::fill_large(dst, |off, part| {
                ffi::read_process(desc.pid, at.saturating_add(off as u64), part)
            })
            .map_err(|e| failed(&format!("{len} bytes"), &e))?;
            buffers.push(b);
        }
        let mut word = [0u8; 8];
        ffi::read_process(desc.pid, desc.token_at, &mut word)
            .map_err(|e| failed("the process's token", &e))?;
        if u64::from_ne_bytes(word) != desc.token {
            return Err(failed(
                "the value",
                &"the process's token changed while it was read (the process ended)",
            ));
        }
        Ok(Encoded {
            inline: desc.inline.clone(),
            buffers,
        })
    }

    /// Logs, once per process, that a read of another rank's memory failed and why.
    pub(crate) fn warn_peer_read(&self, err: &Error) {
        if !self.warned_peer.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                error = %err,
                "cannot read a value from another process's memory: it is fetched as a segment \
                 instead (logged once)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::Config;
    use unidist_core::ErrorKind;
    use unidist_serialize::{encode_shared, ElemType};

    fn store_of(rank: u32) -> std::sync::Arc<Store> {
        let cfg = Config {
            enabled: true,
            limit: 1 << 30,
            threshold: 1024,
        };
        let me = std::process::id();
        Store::new(cfg, rank, &[(me, true), (me, true)])
    }

    fn value() -> Vec<f64> {
        (0..300_000).map(|i| f64::from(i) * 0.5).collect()
    }

    #[test]
    fn rank_0_reads_a_value_from_the_holders_memory_and_decodes_it() {
        let holder = store_of(1);
        let v = std::sync::Arc::new(value());
        let e = encode_shared(&v, 1024).unwrap();
        let desc = holder
            .offer_peer_read(0, &e)
            .expect("a large value for rank 0 is offered");
        assert_eq!(desc.buffers.len(), 1);
        assert_eq!(desc.buffers[0].0, ElemType::F64);
        // Rank 0 (here the same process) reads it: other memory, the same value.
        let reader = store_of(0);
        let read = reader.read_peer(1, &desc).unwrap();
        assert_ne!(
            read.buffers[0].as_bytes().as_ptr(),
            e.buffers[0].as_bytes().as_ptr()
        );
        let back: Vec<f64> =
            unidist_serialize::decode_with_oob(&read.inline, read.buffers).unwrap();
        assert_eq!(back, *v);
    }

    #[test]
    fn only_large_values_of_the_holders_own_memory_are_offered_to_rank_0() {
        let holder = store_of(1);
        let big = encode_shared(&std::sync::Arc::new(value()), 1024).unwrap();
        assert!(holder.offer_peer_read(1, &big).is_none(), "not to itself");
        assert!(
            store_of(0).offer_peer_read(0, &big).is_none(),
            "rank 0 offers nothing"
        );
        let small = encode_shared(&std::sync::Arc::new(vec![1.0f64; 8]), 1024).unwrap();
        assert!(
            holder.offer_peer_read(0, &small).is_none(),
            "below the threshold"
        );
        // Bytes of a mapping (another owner's memory) go as their segment.
        let owner: std::sync::Arc<dyn AsRef<[u8]> + Send + Sync> =
            std::sync::Arc::new(vec![0u8; 1 << 20]);
        let mapped = Encoded {
            inline: big.inline.clone(),
            buffers: vec![OobBuffer::from_owner(ElemType::U8, owner).unwrap()],
        };
        assert!(holder.offer_peer_read(0, &mapped).is_none());
        // Turned off by rank 0: nothing more is offered.
        holder.peer_reads_off();
        assert!(holder.offer_peer_read(0, &big).is_none());
    }

    #[test]
    fn a_bad_descriptor_or_a_changed_token_is_an_error_not_wrong_bytes() {
        let holder = store_of(1);
        let e = encode_shared(&std::sync::Arc::new(value()), 1024).unwrap();
        let desc = holder.offer_peer_read(0, &e).unwrap();
        let reader = store_of(0);
        let expect_err = |d: &PeerDesc, needle: &str| {
            let err = reader.read_peer(1, d).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
            assert!(err.to_string().contains(needle), "{needle:?} not in: {err}");
        };
        let mut other = desc.clone();
        other.pid = desc.pid.wrapping_add(1);
        expect_err(&other, "process id");
        let mut token = desc.clone();
        token.token ^= 0xff;
        expect_err(&token, "token changed");
        let mut unmapped = desc.clone();
        unmapped.buffers[0].1 = 8;
        expect_err(&unmapped, "failed");
        let mut torn = desc.clone();
        torn.buffers[0].2 = 12;
        expect_err(&torn, "whole number");
        let mut wraps = desc.clone();
        wraps.buffers[0] = (ElemType::U8, u64::MAX - 4, 16);
        expect_err(&wraps, "wraps");
        let mut long = desc;
        long.inline = vec![0; INLINE_MAX + 1];
        expect_err(&long, "inline bytes");
    }
}
