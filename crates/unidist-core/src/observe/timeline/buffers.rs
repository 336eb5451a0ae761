//! Where the timeline's events are kept: one buffer per recording thread, so that recording an
//! event takes no lock another thread also takes, and gathered into one [`Recording`] only
//! when somebody reads the timeline (`timeline()`, `shutdown`, an MPI gather).
//!
//! A thread registers its buffer once, at its first event; the registry keeps it after the
//! thread ends, so that nothing a finished thread recorded is lost. Each buffer sits behind its
//! own mutex, which only its thread locks while recording: uncontended, that is one atomic
//! exchange to lock and one to unlock, and a gather merely waits for the event being written.
//! Events are kept in fixed-size chunks allocated ahead, so that a long recording never copies
//! what it holds to grow.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Detail, Event, Phase, Recording};

/// Events a chunk holds (80 bytes each: a chunk is 320 KiB).
const CHUNK: usize = 4096;

static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);
/// Every thread's buffer since the process started (or since the last [`clear`] dropped the
/// buffers of threads that had ended).
static REGISTRY: Mutex<Vec<Arc<ThreadBuffer>>> = Mutex::new(Vec::new());

thread_local! {
    // This thread's buffer, registered at its first event.
    static MINE: Arc<ThreadBuffer> = register();
}

/// One event as a thread keeps it: the thread is its buffer's, the names are static, and the
/// rare detail is boxed, so that the common event is small and allocates nothing.
pub(super) struct Raw {
    pub(super) phase: Phase,
    pub(super) category: &'static str,
    pub(super) name: &'static str,
    pub(super) ts_ns: u64,
    pub(super) flow: u64,
    pub(super) detail: Option<Box<Detail>>,
}

struct ThreadBuffer {
    id: u32,
    inner: Mutex<Inner>,
}

struct Inner {
    name: String,
    chunks: Vec<Vec<Raw>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a buffer leaves whole events behind: what is there stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn register() -> Arc<ThreadBuffer> {
    let id = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    let name = std::thread::current()
        .name()
        .map_or_else(|| format!("thread {id}"), str::to_string);
    let buffer = Arc::new(ThreadBuffer {
        id,
        inner: Mutex::new(Inner {
            name,
            chunks: Vec::new(),
        }),
    });
    lock(&REGISTRY).push(buffer.clone());
    buffer
}

impl Inner {
    fn push(&mut self, raw: Raw) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(raw),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(raw);
                self.chunks.push(c);
            }
        }
    }
}

/// Records `events` on this thread, in order, under one lock. A thread that is ending (its
/// buffer's slot already destroyed) records nothing.
pub(super) fn record<const N: usize>(events: [Raw; N]) {
    let _ = MINE.try_with(|b| {
        let mut inner = lock(&b.inner);
        for e in events {
            inner.push(e);
        }
    });
}

/// Names this thread in the trace.
pub(super) fn name_thread(name: String) {
    let _ = MINE.try_with(|b| lock(&b.inner).name = name);
}

/// Forgets every event recorded, and the buffers of threads that have ended.
pub(super) fn clear() {
    let mut registry = lock(&REGISTRY);
    // The registry's reference is the last one once its thread has ended.
    registry.retain(|b| Arc::strong_count(b) > 1);
    for b in registry.iter() {
        lock(&b.inner).chunks.clear();
    }
}

/// Every thread's events so far, merged in time order (a thread's own events keep their order),
/// with the name of every thread.
pub(super) fn gather() -> Recording {
    let buffers: Vec<Arc<ThreadBuffer>> = lock(&REGISTRY).clone();
    let mut recording = Recording::default();
    for b in &buffers {
        let inner = lock(&b.inner);
        recording.threads.push((b.id, inner.name.clone()));
        let raws = inner.chunks.iter().flatten();
        recording.events.extend(raws.map(|r| event(b.id, r)));
    }
    // Stable: events of one thread at the same instant (a flow's end and its span) stay in the
    // order they were recorded.
    recording.events.sort_by_key(|e| e.ts_ns);
    recording
}

fn event(thread: u32, r: &Raw) -> Event {
    Event {
        phase: r.phase,
        category: Cow::Borrowed(r.category),
        name: Cow::Borrowed(r.name),
        ts_ns: r.ts_ns,
        thread,
        flow: r.flow,
        detail: r.detail.as_deref().cloned(),
    }
}
