//! The per-host shared-memory object store: large encoded values written once into a POSIX
//! shared-memory segment, sent to ranks of the same host as a small descriptor, and mapped
//! there.
//!
//! A segment starts with a 64-byte header ([`SEG_HEADER`]) that every process mapping it shares,
//! then one object's encoding: its inline bytes, then each out-of-band buffer at the next
//! multiple of [`ALIGN`], written with one copy straight from the value's memory (a natural
//! value's or a `Buffer`'s own storage), and read in place by a `Buffer<T>` on the receiving
//! rank. A large value `put` on a rank that shares its host with another rank is written at the
//! `put` (as into Ray's store); any other object when it is first sent to a rank of its host.
//! Its name is `/unidist-<job>-<creator pid>-<owner>.<seq>`, where `<job>` is rank 0's process
//! id, so that every segment of a job shares one prefix.
//!
//! **Reuse.** Writing fresh shared memory costs a page allocation per 4 KiB, and mapping it a
//! page-table entry per page in every reader: for 64 MiB, about 20 ms and 5 ms on the
//! development VM. So a segment is not removed when its object is freed: its creator keeps up to
//! [`POOL_SEGMENTS`] freed segments and writes the next object of a similar size into one of
//! them, and each reader keeps up to [`CACHED_MAPPINGS`] mappings, so the next object read
//! there costs neither. The header makes this safe across processes: a reader registers itself
//! (`readers`) for as long as any value it decoded from the segment lives, and checks the use
//! it was sent (`gen`); the creator reuses a segment only after closing it with no reader
//! registered ([`CLOSED`]), and bumps `gen`, so a descriptor of an earlier use fails to open
//! instead of reading the new bytes. A creator that removes a segment marks it retired first,
//! and readers drop their mappings of retired segments.
//!
//! **Reading the holder's memory instead.** A value that is not in a segment yet, fetched by
//! rank 0 from a rank of its host (a task's result for a `get`), is not written into one: that
//! rank answers with where the value lies in its own memory, and rank 0 reads it from there
//! with one copy (`peer.rs`).
//!
//! The rank that creates a segment counts it, pooled or in use, against
//! `UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY` (per creating rank); pooled segments are removed
//! first when a new one would pass the limit. At shutdown the lowest rank of each host removes
//! whatever is left with the job's prefix (pooled segments, segments of a killed rank); at
//! start, each rank removes segments whose job process and creator process are both gone (a job
//! that crashed as a whole). Any failure to create a segment is logged and the object stays
//! private.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use unidist_core::{Error, ObjectId, Result};
use unidist_serialize::Encoded;

use crate::ffi;
pub(crate) use crate::wire::SegDesc;
use crate::wire::SEG_HEADER;

/// Every segment name of this project starts with this.
pub(crate) const PREFIX: &str = "/unidist-";
/// Buffers start at multiples of this many bytes inside a segment.
const ALIGN: usize = 64;
/// Where POSIX shared-memory objects are visible as files (Linux).
const SHM_DIR: &str = "/dev/shm";
/// Freed segments a creating rank keeps for reuse.
pub(crate) const POOL_SEGMENTS: usize = 4;
/// A put of at least this many bytes waits for a pooled segment of its size freed less than
/// [`SETTLE`] ago to lose its last reader, instead of writing a new segment at once.
#[cfg(not(test))]
const SETTLE_FROM: u64 = 1 << 30;
#[cfg(test)]
const SETTLE_FROM: u64 = 1 << 20;
/// How long after its free a pooled segment is waited for.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);
/// Mappings of other ranks' segments a process keeps after the values read from them are gone.
pub(crate) const CACHED_MAPPINGS: usize = 16;
/// The header's first word: the tag of this project's segments ("unidseg1").
const MAGIC: u64 = u64::from_le_bytes(*b"unidseg1");
/// The `readers` bit of a segment its creator is rewriting or has removed: no reader may
/// register.
pub(crate) const CLOSED: u64 = 1 << 63;

/// The header's words (each a `u64` at `8 * index`).
#[derive(Clone, Copy)]
enum Word {
    Magic = 0,
    Gen = 1,
    Readers = 2,
    Retired = 3,
}

/// A segment's header as one process maps it.
pub(crate) struct Header(ffi::ShmWords);

impl Header {
    fn map(name: &str) -> std::io::Result<Header> {
        ffi::shm_map_words(name).map(Header)
    }

    fn word(&self, w: Word) -> &AtomicU64 {
        self.0.word(w as usize)
    }

    /// Registers a reader of use `gen`; false (and nothing registered) when the segment is
    /// closed or holds another use.
    fn enter(&self, gen: u64) -> bool {
        let before = self.word(Word::Readers).fetch_add(1, Ordering::AcqRel);
        if before & CLOSED == 0 && self.word(Word::Gen).load(Ordering::Acquire) == gen {
            return true;
        }
        self.leave();
        false
    }

    fn leave(&self) {
        self.word(Word::Readers).fetch_sub(1, Ordering::AcqRel);
    }

    /// Closes the segment if no reader is registered: the creator may then rewrite it.
    fn close_if_unread(&self) -> bool {
        self.word(Word::Readers)
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Opens the closed segment again for readers of its next use; returns that use.
    fn reopen(&self) -> u64 {
        let gen = self.word(Word::Gen).load(Ordering::Acquire) + 1;
        self.word(Word::Gen).store(gen, Ordering::Release);
        self.word(Word::Readers)
            .fetch_and(!CLOSED, Ordering::AcqRel);
        gen
    }

    /// Marks the segment removed: closed for good, and readers drop their mappings of it.
    fn retire(&self) {
        self.word(Word::Readers).fetch_or(CLOSED, Ordering::AcqRel);
        self.word(Word::Retired).store(1, Ordering::Release);
    }

    fn retired(&self) -> bool {
        self.word(Word::Retired).load(Ordering::Acquire) != 0
    }
}

/// Takes the oldest pooled segment that no process reads out of `pool`, closed (a reader that
/// has yet to open a handed-over argument counts as reading it).
fn take_oldest_unread(pool: &mut VecDeque<Pooled>) -> Option<Pooled> {
    let at = pool.iter().position(|p| p.header.close_if_unread())?;
    pool.remove(at)
}

/// The header a new segment starts with (use 1, no reader).
fn fresh_header() -> [u8; SEG_HEADER as usize] {
    let mut h = [0u8; SEG_HEADER as usize];
    h[..8].copy_from_slice(&MAGIC.to_le_bytes());
    h[8..16].copy_from_slice(&1u64.to_le_bytes());
    h
}

/// A segment as one rank holds it: its descriptor and, on the rank that created it, the
/// duty to give it back to the pool (or remove it) when dropped.
pub(crate) struct Segment {
    pub desc: SegDesc,
    creator: Option<Created>,
}

/// What the creating rank keeps of a segment in use.
struct Created {
    store: Arc<Store>,
    header: Header,
    /// Its writable mapping, once it has been reused.
    writer: Option<ffi::ShmWriter>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        if let Some(c) = self.creator.take() {
            let pooled = Pooled {
                name: std::mem::take(&mut self.desc.name),
                len: self.desc.len,
                header: c.header,
                writer: c.writer,
                freed_at: std::time::Instant::now(),
            };
            c.store.freed(pooled);
        }
    }
}

/// A freed segment its creator keeps for the next object of a similar size.
struct Pooled {
    name: String,
    len: u64,
    header: Header,
    writer: Option<ffi::ShmWriter>,
    /// When its object was freed.
    freed_at: std::time::Instant,
}

impl Pooled {
    /// Removes the segment for good and gives its bytes back to the limit of `used`.
    fn remove(self, used: &AtomicU64) {
        self.header.retire();
        if let Err(e) = ffi::shm_unlink(&self.name) {
            tracing::debug!(name = %self.name, error = %e, "cannot unlink a segment");
        }
        used.fetch_sub(self.len, Ordering::AcqRel);
    }
}

/// A mapping of another rank's segment: its bytes (read-only) and its header.
struct Mapped {
    name: String,
    data: ffi::ShmMapping,
    header: Header,
}

/// A registered reader of one use of a segment: what the buffers decoded from it keep alive.
struct Reading(Arc<Mapped>);

impl AsRef<[u8]> for Reading {
    fn as_ref(&self) -> &[u8] {
        self.0.data.bytes()
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.header.leave();
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
    /// Per rank: its process id (0 where unknown), as rank 0 checks a read's descriptor.
    pids: Vec<u32>,
    /// A worker: whether it offers rank 0 to read values from its memory (see `peer.rs`).
    peer_reads: AtomicBool,
    warned_peer: AtomicBool,
    /// Freed segments this rank created, oldest first.
    pool: Mutex<VecDeque<Pooled>>,
    /// Mappings of other ranks' segments, least recently used first.
    mappings: Mutex<VecDeque<Arc<Mapped>>>,
}

/// Numbers the segments of call arguments (which have no object id), for every store of the
/// process: their names stay unique however many stores a process makes (tests make several).
static NEXT_ARG: AtomicU64 = AtomicU64::new(0);

/// The store's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub enabled: bool,
    pub limit: u64,
    pub threshold: usize,
}

/// Locks `m`, whose contents stay consistent even if a holder panicked (plain collections).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    /// The store of rank `rank`, given every rank's (pid, same host as this process).
    pub(crate) fn new(cfg: Config, rank: u32, pids: &[(u32, bool)]) -> Arc<Store> {
        let mut same_host: Vec<bool> = pids.iter().map(|(_, same)| *same).collect();
        if let Some(me) = same_host.get_mut(rank as usize) {
            *me = true;
        }
        let enabled = cfg.enabled && std::path::Path::new(SHM_DIR).is_dir();
        if enabled && rank != 0 && same_host.first() == Some(&true) {
            if let Some((pid0, _)) = pids.first() {
                ffi::allow_reads_by(*pid0);
            }
        }
        Arc::new(Store {
            enabled,
            threshold: cfg.threshold,
            limit: cfg.limit,
            used: AtomicU64::new(0),
            job: pids.first().map_or(std::process::id(), |p| p.0),
            pid: std::process::id(),
            rank,
            same_host,
            warned_limit: AtomicBool::new(false),
            warned_failure: AtomicBool::new(false),
            pids: pids.iter().map(|(pid, _)| *pid).collect(),
            peer_reads: AtomicBool::new(true),
            warned_peer: AtomicBool::new(false),
            pool: Mutex::new(VecDeque::new()),
            mappings: Mutex::new(VecDeque::new()),
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

    /// Writes `e` into a segment for object `id`: a freed one of a similar size if one is
    /// unread, else a new one. `None` (logged) when it cannot: the memory limit is reached or
    /// the system refuses.
    pub(crate) fn create(self: &Arc<Self>, id: ObjectId, e: &Encoded) -> Option<Arc<Segment>> {
        let name = format!("{PREFIX}{}-{}-{}.{}", self.job, self.pid, id.owner, id.seq);
        self.create_named(name, e)
    }

    fn create_named(self: &Arc<Self>, name: String, e: &Encoded) -> Option<Arc<Segment>> {
        let (mut desc, ranges) = layout(name, e);
        let mut parts = Vec::with_capacity(1 + e.buffers.len());
        parts.push((SEG_HEADER as usize, &e.inline[..]));
        parts.extend(
            e.buffers
                .iter()
                .zip(&ranges)
                .map(|(b, r)| (r.start, b.as_bytes())),
        );
        if let Some(mut p) = self.reusable(desc.len) {
            match rewrite_segment(&p.name, &mut p.writer, &parts) {
                Ok(()) => {
                    desc.gen = p.header.reopen();
                    tracing::debug!(name = %p.name, gen = desc.gen, bytes = desc.len, "segment reused");
                    desc.name = p.name;
                    desc.len = p.len;
                    return Some(Arc::new(Segment {
                        desc,
                        creator: Some(Created {
                            store: self.clone(),
                            header: p.header,
                            writer: p.writer,
                        }),
                    }));
                }
                Err(err) => {
                    self.warn_failure(&p.name, &err);
                    p.remove(&self.used);
                    return None;
                }
            }
        }
        let len = desc.len;
        if !self.reserve(len) {
            if !self.warned_limit.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    limit = self.limit,
                    "the shared object store is full (UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY): \
                     larger objects stay private to their process"
                );
            }
            return None;
        }
        let head = fresh_header();
        parts.insert(0, (0, &head[..]));
        let made = write_segment(&desc.name, len, &parts).and_then(|()| {
            Header::map(&desc.name).inspect_err(|_| {
                let _ = ffi::shm_unlink(&desc.name);
            })
        });
        match made {
            Ok(header) => {
                desc.gen = 1;
                Some(Arc::new(Segment {
                    desc,
                    creator: Some(Created {
                        store: self.clone(),
                        header,
                        writer: None,
                    }),
                }))
            }
            Err(err) => {
                self.used.fetch_sub(len, Ordering::AcqRel);
                self.warn_failure(&desc.name, &err);
                None
            }
        }
    }

    /// Writes `e`, a large value given directly to a call, into a segment for a receiver on
    /// this host, and registers that receiver as its reader before anyone sees the descriptor:
    /// the segment then cannot be reused until the receiver, which opens it with
    /// [`open_handed`](Self::open_handed), has dropped every value it read from it. The
    /// segment itself goes back to the pool at once. `None` (logged) as for [`create`](Self::create).
    pub(crate) fn hand_over(self: &Arc<Self>, e: &Encoded) -> Option<SegDesc> {
        let n = NEXT_ARG.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{}-a.{n}", self.job, self.pid);
        let seg = self.create_named(name, e)?;
        let header = &seg.creator.as_ref()?.header;
        if !header.enter(seg.desc.gen) {
            return None;
        }
        Some(seg.desc.clone())
    }

    fn warn_failure(&self, name: &str, err: &std::io::Error) {
        if !self.warned_failure.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                name = %name, error = %err,
                "cannot create a shared-memory segment: objects stay private"
            );
        }
    }

    /// A pooled segment of `need` to `2 * need` bytes that no process reads, closed for
    /// rewriting and taken out of the pool.
    fn reusable(&self, need: u64) -> Option<Pooled> {
        let fits = |p: &Pooled| p.len >= need && p.len <= need.saturating_mul(2);
        let started = std::time::Instant::now();
        loop {
            let mut pool = lock(&self.pool);
            if let Some(at) = pool
                .iter()
                .position(|p| fits(p) && p.header.close_if_unread())
            {
                if need >= SETTLE_FROM {
                    let waited_us = started.elapsed().as_micros() as u64;
                    tracing::debug!(need, waited_us, "pooled segment unread");
                }
                return pool.remove(at);
            }
            // A huge segment freed a moment ago is usually still read only because its readers
            // have yet to receive the free: wait for them rather than write a new one, which
            // costs seconds at this size (fresh shared pages).
            let settling = pool
                .iter()
                .filter(|p| fits(p) && p.len >= SETTLE_FROM)
                .map(|p| p.freed_at + SETTLE)
                .max();
            if settling.is_none_or(|until| std::time::Instant::now() >= until) {
                if !pool.is_empty() {
                    tracing::debug!(
                        need,
                        pooled = ?pool
                            .iter()
                            .map(|p| (p.len, p.header.word(Word::Readers).load(Ordering::Acquire)))
                            .collect::<Vec<_>>(),
                        "no pooled segment fits or is unread"
                    );
                }
                return None;
            }
            drop(pool);
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// Counts `len` more bytes against the limit, removing pooled segments (oldest first) to
    /// make room; false when even an empty pool leaves too little.
    fn reserve(&self, len: u64) -> bool {
        loop {
            let before = self.used.fetch_add(len, Ordering::AcqRel);
            if before.saturating_add(len) <= self.limit {
                return true;
            }
            self.used.fetch_sub(len, Ordering::AcqRel);
            let oldest = take_oldest_unread(&mut lock(&self.pool));
            match oldest {
                Some(p) => p.remove(&self.used),
                None => return false,
            }
        }
    }

    /// A segment this rank created was freed: pooled for reuse, the oldest unread pooled ones
    /// removed while more than [`POOL_SEGMENTS`] are pooled. A pooled segment that a process
    /// still reads (a value decoded from it, or an argument handed over and not yet opened) is
    /// never removed here: it waits in the pool until its readers are done.
    fn freed(&self, p: Pooled) {
        let mut evicted = Vec::new();
        {
            let mut pool = lock(&self.pool);
            pool.push_back(p);
            while pool.len() > POOL_SEGMENTS {
                match take_oldest_unread(&mut pool) {
                    Some(old) => evicted.push(old),
                    None => break,
                }
            }
        }
        for old in evicted {
            old.remove(&self.used);
        }
    }

    /// Bytes counted against the limit: segments in use and pooled.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Segments in the pool.
    #[cfg(test)]
    pub(crate) fn pooled(&self) -> usize {
        lock(&self.pool).len()
    }

    /// Mappings kept by this process.
    #[cfg(test)]
    pub(crate) fn cached_mappings(&self) -> usize {
        lock(&self.mappings).len()
    }

    /// Maps the segment `desc` names (or finds it mapped) and rebuilds the encoding it holds:
    /// the inline bytes copied out (they are small), the buffers reading the mapping in place.
    /// A `Buffer<T>` decoded from them keeps reading the mapping (no copy: buffers start at
    /// multiples of [`ALIGN`] in a page-aligned mapping, so they are aligned for every element
    /// type), a `Vec`, `Box<[T]>` or `String` copies out once. Every length in `desc` is
    /// untrusted and checked against the mapped size; a descriptor of a use that is over (the
    /// object was freed and its segment removed or reused) is an error.
    pub(crate) fn open(&self, desc: SegDesc) -> Result<(Encoded, Arc<Segment>)> {
        desc.check_name()?;
        let mapped = self.mapping(&desc)?;
        if !mapped.header.enter(desc.gen) {
            return Err(Error::backend(
                "mpi",
                format!(
                    "shared-memory segment {:?} no longer holds the object sent (use {}): it was \
                     freed before this rank read it",
                    desc.name, desc.gen
                ),
            ));
        }
        let e = desc.encoding(Arc::new(Reading(mapped)))?;
        let seg = Arc::new(Segment {
            desc,
            creator: None,
        });
        Ok((e, seg))
    }

    /// As [`open`](Self::open), for a segment handed over by [`hand_over`](Self::hand_over):
    /// the reader registration the sender made for this process becomes the encoding's (it
    /// ends when the last value read from it is dropped, or at once on an error here).
    pub(crate) fn open_handed(&self, desc: SegDesc) -> Result<Encoded> {
        desc.check_name()?;
        let mapped = self.mapping(&desc)?;
        if mapped.header.word(Word::Gen).load(Ordering::Acquire) != desc.gen {
            return Err(Error::backend(
                "mpi",
                format!(
                    "shared-memory segment {:?} does not hold the argument sent (use {})",
                    desc.name, desc.gen
                ),
            ));
        }
        desc.encoding(Arc::new(Reading(mapped)))
    }

    /// The mapping of the segment `desc` names: kept from an earlier object, or made now (and
    /// kept, dropping retired and least recently used ones past [`CACHED_MAPPINGS`]).
    fn mapping(&self, desc: &SegDesc) -> Result<Arc<Mapped>> {
        let mut maps = lock(&self.mappings);
        maps.retain(|m| !m.header.retired());
        if let Some(m) = maps
            .iter()
            .position(|m| m.name == desc.name)
            .and_then(|at| maps.remove(at))
        {
            maps.push_back(m.clone());
            return Ok(m);
        }
        drop(maps);
        let cannot = |e: std::io::Error| {
            Error::backend(
                "mpi",
                format!("cannot map shared-memory segment {:?}: {e}", desc.name),
            )
        };
        let data = ffi::shm_map(&desc.name).map_err(cannot)?;
        let header = Header::map(&desc.name).map_err(cannot)?;
        if header.word(Word::Magic).load(Ordering::Acquire) != MAGIC {
            return Err(desc.corrupt("the segment has no header of this project"));
        }
        let m = Arc::new(Mapped {
            name: desc.name.clone(),
            data,
            header,
        });
        let mut maps = lock(&self.mappings);
        maps.push_back(m.clone());
        while maps.len() > CACHED_MAPPINGS {
            maps.pop_front();
        }
        Ok(m)
    }

    /// Removes the pooled segments and drops the kept mappings (at shutdown).
    pub(crate) fn clear(&self) {
        let pooled: Vec<Pooled> = lock(&self.pool).drain(..).collect();
        for p in pooled {
            p.remove(&self.used);
        }
        lock(&self.mappings).clear();
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

/// Writes each `(offset, bytes)` of `parts` into the existing segment `name` (closed by its
/// creator, who alone writes it), through the creator's writable mapping of it, made at the
/// first reuse and kept in `writer` (its page table then stays filled: a reuse copies at memory
/// speed, where `pwrite` into the same pages takes about twice as long).
fn rewrite_segment(
    name: &str,
    writer: &mut Option<ffi::ShmWriter>,
    parts: &[(usize, &[u8])],
) -> std::io::Result<()> {
    let w = match writer {
        Some(w) => w,
        None => writer.insert(ffi::shm_map_writer(name)?),
    };
    for (at, bytes) in parts {
        w.write_at(*at, bytes)?;
    }
    Ok(())
}

/// The file under `/dev/shm` of segment `name`.
fn segment_path(name: &str) -> std::io::Result<std::path::PathBuf> {
    let file_name = name
        .strip_prefix('/')
        .filter(|n| !n.is_empty() && !n.contains('/'));
    let file_name =
        file_name.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    Ok(std::path::Path::new(SHM_DIR).join(file_name))
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
    let path = segment_path(name)?;
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
    let mut at = SEG_HEADER as usize + e.inline.len();
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
        gen: 0,
        len: at as u64,
        inline: e.inline.len() as u64,
        buffers,
    };
    (desc, ranges)
}

mod peer;

#[cfg(test)]
mod tests;
