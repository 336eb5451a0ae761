//! Where the timeline's events are kept: one buffer per recording thread, so that recording an
//! event takes no lock another thread also takes, and gathered into one [`Recording`] only
//! when somebody reads the timeline (`timeline()`, `shutdown`, an MPI gather).
//!
//! A thread registers its buffer once, at its first event; the registry keeps it after the
//! thread ends, so that nothing a finished thread recorded is lost. Each buffer sits behind its
//! own mutex, which only its thread locks while recording: uncontended, and a gather merely
//! waits for the event being written.
//!
//! Memory is the main cost of a recording: on the virtual machines measured, touching a fresh
//! page costs microseconds, more than the rest of an event. So an event is kept in 32 bytes
//! ([`Raw`]): its names as indices into the thread's table of the static strings it has used,
//! its kind folded into the duration, a task's flow end folded into its span, and the rare
//! detail of an instant in a side table. Events go into fixed-size chunks allocated ahead, so
//! that a long recording never copies what it holds to grow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Detail, Event, Phase, Recording};
use std::borrow::Cow;

/// Events a chunk holds (32 bytes each: a chunk is 256 KiB).
const CHUNK: usize = 8192;
/// `Raw::dur_ns` of a flow start.
const FLOW_START: u64 = 0;
/// `Raw::dur_ns` of an instant (whose `flow` is then the index of its detail).
const INSTANT: u64 = u64::MAX;
/// The bit of a span's `Raw::flow` that says its flow started where the span starts (flow ids
/// stay below 2^63: a rank's flows start at `rank << 40`).
const STARTED_HERE: u64 = 1 << 63;

static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);
/// Every thread's buffer since the process started (or since the last [`clear`] dropped the
/// buffers of threads that had ended).
static REGISTRY: Mutex<Vec<Arc<ThreadBuffer>>> = Mutex::new(Vec::new());

thread_local! {
    // This thread's buffer, registered at its first event.
    static MINE: Arc<ThreadBuffer> = register();
}

/// One event as a thread records it: what [`record`] takes.
pub(super) struct Entry {
    pub(super) phase: Phase,
    pub(super) category: &'static str,
    pub(super) name: &'static str,
    pub(super) ts_ns: u64,
    /// The flow a flow start starts, or the flow a span's start ends (0 for none).
    pub(super) flow: u64,
    /// For a span that ends a flow: the flow also started here, at the span's start and under
    /// the span's names (kept as [`STARTED_HERE`] in `Raw::flow`).
    pub(super) started_here: bool,
    pub(super) detail: Option<Detail>,
}

/// One event as a thread keeps it.
struct Raw {
    category: u32,
    name: u32,
    ts_ns: u64,
    /// The span's length (at least 1), [`FLOW_START`] or [`INSTANT`].
    dur_ns: u64,
    flow: u64,
}

struct ThreadBuffer {
    id: u32,
    inner: Mutex<Inner>,
}

struct Inner {
    name: String,
    chunks: Vec<Vec<Raw>>,
    strings: Strings,
    details: Vec<Detail>,
}

/// The static strings a thread has recorded, by index; the last two looked up are tried first
/// (most events of a run repeat the previous event's category and name).
#[derive(Default)]
struct Strings {
    list: Vec<&'static str>,
    index: HashMap<(usize, usize), u32>,
    recent: [(usize, usize, u32); 2],
}

impl Strings {
    fn id(&mut self, s: &'static str) -> u32 {
        let key = (s.as_ptr() as usize, s.len());
        for (p, l, id) in self.recent {
            if (p, l) == key {
                return id;
            }
        }
        let id = match self.index.get(&key) {
            Some(id) => *id,
            None => {
                let id = self.list.len() as u32;
                self.list.push(s);
                self.index.insert(key, id);
                id
            }
        };
        self.recent = [self.recent[1], (key.0, key.1, id)];
        id
    }
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
            strings: Strings::default(),
            details: Vec::new(),
        }),
    });
    lock(&REGISTRY).push(buffer.clone());
    buffer
}

impl Inner {
    fn push(&mut self, e: Entry) {
        let (dur_ns, flow) = match (e.phase, e.detail) {
            (Phase::Complete { dur_ns }, _) if e.started_here && e.flow != 0 => {
                (dur_ns.max(1), e.flow | STARTED_HERE)
            }
            (Phase::Complete { dur_ns }, _) => (dur_ns.max(1), e.flow),
            (Phase::Instant, Some(detail)) => {
                self.details.push(detail);
                (INSTANT, self.details.len() as u64 - 1)
            }
            // No detail: an index that finds none.
            (Phase::Instant, None) => (INSTANT, u64::MAX),
            // A flow's end is recorded with the span it starts (its `flow`).
            (Phase::FlowStart | Phase::FlowEnd, _) => (FLOW_START, e.flow),
        };
        let raw = Raw {
            category: self.strings.id(e.category),
            name: self.strings.id(e.name),
            ts_ns: e.ts_ns,
            dur_ns,
            flow,
        };
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(raw),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(raw);
                self.chunks.push(c);
            }
        }
    }

    /// Appends this buffer's events to `out`, a span that ends a flow as the flow's end and
    /// the span.
    fn events(&self, thread: u32, out: &mut Vec<Event>) {
        let s = |i: u32| Cow::Borrowed(self.strings.list[i as usize]);
        for r in self.chunks.iter().flatten() {
            let event = |phase, flow, detail| Event {
                phase,
                category: s(r.category),
                name: s(r.name),
                ts_ns: r.ts_ns,
                thread,
                flow,
                detail,
            };
            match r.dur_ns {
                FLOW_START => out.push(event(Phase::FlowStart, r.flow, None)),
                INSTANT => {
                    let detail = self.details.get(r.flow as usize).cloned();
                    out.push(event(Phase::Instant, 0, detail));
                }
                dur_ns => {
                    let flow = r.flow & !STARTED_HERE;
                    if r.flow & STARTED_HERE != 0 {
                        out.push(event(Phase::FlowStart, flow, None));
                    }
                    if flow != 0 {
                        out.push(event(Phase::FlowEnd, flow, None));
                    }
                    out.push(event(Phase::Complete { dur_ns }, 0, None));
                }
            }
        }
    }
}

/// Records `entries` on this thread, in order, under one lock. A thread that is ending (its
/// buffer's slot already destroyed) records nothing.
pub(super) fn record<const N: usize>(entries: [Entry; N]) {
    let _ = MINE.try_with(|b| {
        let mut inner = lock(&b.inner);
        for e in entries {
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
        let mut inner = lock(&b.inner);
        inner.chunks.clear();
        inner.details.clear();
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
        inner.events(b.id, &mut recording.events);
    }
    // Stable: events of one thread at the same instant (a flow's end and its span) stay in the
    // order they were recorded.
    recording.events.sort_by_key(|e| e.ts_ns);
    recording
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_event_is_32_bytes_and_strings_are_kept_once() {
        assert_eq!(std::mem::size_of::<Raw>(), 32);
        let mut s = Strings::default();
        let (a, b, c) = (s.id("task"), s.id("m::f"), s.id("m::g"));
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!((s.id("m::f"), s.id("task"), s.id("m::g")), (1, 0, 2));
        assert_eq!(s.list, ["task", "m::f", "m::g"]);
    }

    #[test]
    fn a_span_started_where_it_was_submitted_is_kept_once_and_read_as_three_events() {
        let mut inner = Inner {
            name: "t".into(),
            chunks: Vec::new(),
            strings: Strings::default(),
            details: Vec::new(),
        };
        inner.push(Entry {
            phase: Phase::Complete { dur_ns: 40 },
            category: "task",
            name: "m::f",
            ts_ns: 100,
            flow: 7,
            started_here: true,
            detail: None,
        });
        assert_eq!(inner.chunks.iter().map(Vec::len).sum::<usize>(), 1);
        let mut out = Vec::new();
        inner.events(3, &mut out);
        let kinds: Vec<(Phase, u64, u64)> =
            out.iter().map(|e| (e.phase, e.flow, e.ts_ns)).collect();
        assert_eq!(
            kinds,
            [
                (Phase::FlowStart, 7, 100),
                (Phase::FlowEnd, 7, 100),
                (Phase::Complete { dur_ns: 40 }, 0, 100)
            ]
        );
        assert!(out.iter().all(|e| e.name == "m::f" && e.thread == 3));
    }
}
