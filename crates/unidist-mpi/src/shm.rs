//! The per-host shared-memory object store: large encoded values written once into a POSIX
//! shared-memory segment, sent to ranks of the same host as a small descriptor, and mapped
//! read-only there.
//!
//! A segment holds one object's encoding: its inline bytes at offset 0, then each
//! out-of-band buffer at the next multiple of [`ALIGN`], written with one copy straight from
//! the value's memory (a natural value's or a `Buffer`'s own storage), and read in place by a
//! `Buffer<T>` on the receiving rank. A large value `put` on a rank that shares its host with
//! another rank is written at the `put` (as into Ray's store); any other object when it is first
//! sent to a rank of its host. Its name is
//! `/unidist-<job>-<creator pid>-<owner>.<seq>`, where `<job>` is rank 0's process id, so that
//! every segment of a job shares one prefix. The rank that creates a segment counts it against
//! `UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY` (per creating rank) and unlinks it when the object
//! is freed there ([`Segment`]'s drop); a receiver's mapping is unmapped when the last value
//! decoded from it (or its cached encoding) is dropped. At shutdown the lowest rank of each host
//! removes whatever is left with the job's prefix (segments of a killed rank); at start, each
//! rank removes segments whose job process and creator process are both gone (a job that
//! crashed as a whole). Any failure to create a segment is logged and the object stays private.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use unidist_core::{Error, ObjectId, Result};
use unidist_serialize::Encoded;

use crate::ffi;
pub(crate) use crate::wire::SegDesc;

/// Every segment name of this project starts with this.
pub(crate) const PREFIX: &str = "/unidist-";
/// Buffers start at multiples of this many bytes inside a segment.
const ALIGN: usize = 64;
/// Where POSIX shared-memory objects are visible as files (Linux).
const SHM_DIR: &str = "/dev/shm";

/// A segment as one rank holds it: its descriptor and, on the rank that created it, the
/// duty to unlink it and give its bytes back to the memory limit when dropped.
pub(crate) struct Segment {
    pub desc: SegDesc,
    creator: Option<Arc<Store>>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(store) = &self.creator {
            if let Err(e) = ffi::shm_unlink(&self.desc.name) {
                tracing::debug!(name = %self.desc.name, error = %e, "cannot unlink a segment");
            }
            store.used.fetch_sub(self.desc.len, Ordering::AcqRel);
        }
    }
}

impl AsRef<[u8]> for ffi::ShmMapping {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

/// The store's settings and accounting in one process.
pub(crate) struct Store {
    enabled: bool,
    threshold: usize,
    limit: u64,
    used: AtomicU64,
    /// Rank 0's process id: the job's part of every segment name.
    job: u32,
    pid: u32,
    rank: u32,
    /// Per rank: whether it shares this process's host (kernel and pid namespace).
    same_host: Vec<bool>,
    warned_limit: AtomicBool,
    warned_failure: AtomicBool,
}

/// The store's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub enabled: bool,
    pub limit: u64,
    pub threshold: usize,
}

impl Store {
    /// The store of rank `rank`, given every rank's (pid, same host as this process).
    pub(crate) fn new(cfg: Config, rank: u32, pids: &[(u32, bool)]) -> Arc<Store> {
        let mut same_host: Vec<bool> = pids.iter().map(|(_, same)| *same).collect();
        if let Some(me) = same_host.get_mut(rank as usize) {
            *me = true;
        }
        Arc::new(Store {
            enabled: cfg.enabled && std::path::Path::new(SHM_DIR).is_dir(),
            threshold: cfg.threshold,
            limit: cfg.limit,
            used: AtomicU64::new(0),
            job: pids.first().map_or(std::process::id(), |p| p.0),
            pid: std::process::id(),
            rank,
            same_host,
            warned_limit: AtomicBool::new(false),
            warned_failure: AtomicBool::new(false),
        })
    }

    /// A store that is off, for tests of the node.
    #[cfg(test)]
    pub(crate) fn disabled() -> Arc<Store> {
        let cfg = Config {
            enabled: false,
            limit: 0,
            threshold: usize::MAX,
        };
        Store::new(cfg, 0, &[])
    }

    /// Whether a value of `len` encoded bytes goes to `dest` through shared memory.
    pub(crate) fn wants(&self, dest: u32, len: usize) -> bool {
        self.enabled
            && dest != self.rank
            && len > 0
            && len >= self.threshold
            && self.same_host.get(dest as usize).copied().unwrap_or(false)
    }

    /// Whether an object of `len` encoded bytes is kept in shared memory for same-host ranks.
    pub(crate) fn holds(&self, len: u64) -> bool {
        self.enabled && len > 0 && len >= self.threshold as u64
    }

    /// Whether a value of `len` encoded bytes put here goes into shared memory at once: it is
    /// large enough and another rank shares this host, so a task there reads it without this
    /// rank writing it then (what `put` into Ray's store does).
    pub(crate) fn at_put(&self, len: usize) -> bool {
        self.holds(len as u64)
            && self
                .same_host
                .iter()
                .enumerate()
                .any(|(r, same)| *same && r != self.rank as usize)
    }

    /// Whether ranks `a` and `b` are both on this process's host.
    pub(crate) fn both_here(&self, a: u32, b: u32) -> bool {
        let here = |r: u32| self.same_host.get(r as usize).copied().unwrap_or(false);
        here(a) && here(b)
    }

    /// Writes `e` into a new segment for object `id`; `None` (logged) when it cannot: the
    /// memory limit is reached or the system refuses.
    pub(crate) fn create(self: &Arc<Self>, id: ObjectId, e: &Encoded) -> Option<Arc<Segment>> {
        let name = format!("{PREFIX}{}-{}-{}.{}", self.job, self.pid, id.owner, id.seq);
        self.create_named(name, e)
    }

    fn create_named(self: &Arc<Self>, name: String, e: &Encoded) -> Option<Arc<Segment>> {
        let (desc, ranges) = layout(name, e);
        let len = desc.len;
        let before = self.used.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) > self.limit {
            self.used.fetch_sub(len, Ordering::AcqRel);
            if !self.warned_limit.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    limit = self.limit,
                    "the shared object store is full (UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY): \
                     larger objects stay private to their process"
                );
            }
            return None;
        }
        let mut parts = Vec::with_capacity(1 + e.buffers.len());
        parts.push((0, &e.inline[..]));
        parts.extend(
            e.buffers
                .iter()
                .zip(&ranges)
                .map(|(b, r)| (r.start, b.as_bytes())),
        );
        let written = write_segment(&desc.name, len, &parts);
        match written {
            Ok(()) => Some(Arc::new(Segment {
                desc,
                creator: Some(self.clone()),
            })),
            Err(err) => {
                self.used.fetch_sub(len, Ordering::AcqRel);
                if !self.warned_failure.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        name = %desc.name, error = %err,
                        "cannot create a shared-memory segment: objects stay private"
                    );
                }
                None
            }
        }
    }

    /// Removes every segment of this job left on this host, if this rank is the host's lowest.
    pub(crate) fn sweep_job(&self) {
        let lowest = self.same_host.iter().position(|s| *s) == Some(self.rank as usize);
        if !lowest {
            return;
        }
        let job = self.job.to_string();
        remove_where(|j, _| j == job);
    }

    /// Removes segments of jobs whose rank 0 and creator processes are both gone.
    pub(crate) fn sweep_stale(&self) {
        if !self.enabled {
            return;
        }
        remove_where(|job, creator| {
            let dead = |p: &str| p.parse::<u32>().is_ok_and(|p| !ffi::process_alive(p));
            dead(job) && dead(creator)
        });
    }
}

/// Unlinks every `unidist-<job>-<creator>-...` object in `/dev/shm` for which `doomed` holds.
fn remove_where(doomed: impl Fn(&str, &str) -> bool) {
    let Ok(dir) = std::fs::read_dir(SHM_DIR) else {
        return;
    };
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(name) = file.to_str() else { continue };
        let Some(rest) = name.strip_prefix(&PREFIX[1..]) else {
            continue;
        };
        let mut parts = rest.splitn(3, '-');
        let (Some(job), Some(creator)) = (parts.next(), parts.next()) else {
            continue;
        };
        if doomed(job, creator) {
            let _ = ffi::shm_unlink(&format!("/{name}"));
        }
    }
}

/// Creates segment `name` (it must not exist) of `len` bytes holding each `(offset, bytes)` of
/// `parts`, written straight from the value's memory: one copy. On any failure the segment is
/// removed again.
///
/// The bytes are written with `pwrite` on the segment's file under `/dev/shm` (what
/// `shm_open` opens on Linux) rather than through a mapping: the kernel copies into the
/// segment's pages as it allocates them, without a page fault per 4 KiB page, which made
/// writing 64 MiB take 36 ms through a mapping and 22 ms this way on the development VM (a
/// fresh 64 MiB memcpy took 26 ms there). A full `/dev/shm` is an error of the write here,
/// where through a mapping it would be `SIGBUS`.
fn write_segment(name: &str, len: u64, parts: &[(usize, &[u8])]) -> std::io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let invalid = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let file_name = name
        .strip_prefix('/')
        .filter(|n| !n.is_empty() && !n.contains('/'));
    let path = std::path::Path::new(SHM_DIR).join(file_name.ok_or_else(invalid)?);
    if len == 0 {
        return Err(invalid());
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let result = (|| {
        file.set_len(len)?;
        for (at, bytes) in parts {
            let end = (*at as u64).checked_add(bytes.len() as u64);
            if end.is_none_or(|end| end > len) {
                return Err(invalid());
            }
            file.write_all_at(bytes, *at as u64)?;
        }
        Ok(())
    })();
    drop(file);
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    result
}

/// The descriptor of `e` in a segment named `name`, and each buffer's byte range.
fn layout(name: String, e: &Encoded) -> (SegDesc, Vec<std::ops::Range<usize>>) {
    let mut at = e.inline.len();
    let mut ranges = Vec::with_capacity(e.buffers.len());
    let mut buffers = Vec::with_capacity(e.buffers.len());
    for b in &e.buffers {
        at = at.next_multiple_of(ALIGN);
        ranges.push(at..at + b.len());
        buffers.push((b.elem(), at as u64, b.len() as u64));
        at += b.len();
    }
    let desc = SegDesc {
        name,
        len: at as u64,
        inline: e.inline.len() as u64,
        buffers,
    };
    (desc, ranges)
}

/// Maps the segment `desc` names and rebuilds the encoding it holds: the inline bytes copied
/// out (they are small), the buffers reading the mapping in place. A `Buffer<T>` decoded from
/// them keeps reading the mapping (no copy: buffers start at multiples of [`ALIGN`] in a
/// page-aligned mapping, so they are aligned for every element type), a `Vec`, `Box<[T]>` or
/// `String` copies out once. Every length in `desc` is untrusted and checked against the
/// mapped size.
pub(crate) fn open(desc: SegDesc) -> Result<(Encoded, Arc<Segment>)> {
    desc.check_name()?;
    let map = ffi::shm_map(&desc.name).map_err(|e| {
        Error::backend(
            "mpi",
            format!("cannot map shared-memory segment {:?}: {e}", desc.name),
        )
    })?;
    let e = desc.encoding(Arc::new(map))?;
    let seg = Arc::new(Segment {
        desc,
        creator: None,
    });
    Ok((e, seg))
}

#[cfg(test)]
mod tests;
