//! The timeline recorder: complete events for tasks, actor calls, actor creations and driver
//! `get`/`wait`, and flow events from a submission to its execution, kept in memory until the
//! facade writes them as a Chrome/Perfetto trace.
//!
//! Off by default. Every event site first does one relaxed load of the on switch and returns
//! when it is off, so a program that does not record pays that load and nothing else. When on,
//! an event costs one clock read and a push of 32 bytes into its thread's own buffer (the
//! private `buffers` module): no lock that another thread takes, and no allocation but one chunk
//! per 8192 events.
//!
//! Flows: the facade opens a [`submission`] around the backend call that submits work; it
//! starts a flow and sets this thread's *current flow*. A backend that runs the work elsewhere
//! keeps [`current_flow`] with it (the flow's start is recorded then, as the work leaves the
//! thread) and re-enters it with [`flow_scope`] on the executing thread; the core's execution
//! spans ([`Span::execution`]) end the flow where the work runs. A backend that runs work in the
//! submitting thread needs to do nothing: the flow starts and ends where its span starts.

mod buffers;

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use buffers::Entry;

static ON: AtomicBool = AtomicBool::new(false);
static NEXT_FLOW: AtomicU64 = AtomicU64::new(1);

thread_local! {
    // The flow that work started on this thread continues; 0 for none.
    static FLOW: Cell<u64> = const { Cell::new(0) };
    // The flow start of the submission in progress on this thread, not yet timed or recorded:
    // a backend that runs the work in the submitting thread records it with the work's span,
    // at the span's start and under one lock; otherwise it is timed and recorded when the flow
    // is handed on (the work leaves the thread) or the submission ends. One clock read a task
    // fewer than timing it at the start of the submission.
    static SUBMITTED: Cell<Option<Submitted>> = const { Cell::new(None) };
}

/// A flow start waiting in [`SUBMITTED`].
#[derive(Clone, Copy)]
struct Submitted {
    category: &'static str,
    name: &'static str,
    flow: u64,
}

impl Submitted {
    /// The flow start, at `ts_ns`.
    fn entry(self, ts_ns: u64) -> Entry {
        Entry {
            phase: Phase::FlowStart,
            category: self.category,
            name: self.name,
            ts_ns,
            flow: self.flow,
            started_here: false,
            detail: None,
        }
    }
}

/// Takes this thread's waiting flow start if it starts `flow` (any, for `None`).
fn take_submitted(flow: Option<u64>) -> Option<Submitted> {
    SUBMITTED.with(|s| match s.get() {
        Some(p) if flow.is_none_or(|f| f == p.flow) => s.take(),
        _ => None,
    })
}

/// Records this thread's waiting flow start, now, if it starts `flow` (any, for `None`).
fn record_submitted(flow: Option<u64>) {
    if let Some(p) = take_submitted(flow) {
        buffers::record([p.entry(now_ns())]);
    }
}

/// The process's clock and time origin: the clock's reading and the wall clock at that instant
/// (for aligning processes).
///
/// The clock reads the CPU's time stamp counter where it is invariant (about 11 ns here against
/// about 25 ns for `Instant::now`, and an event costs two reads), scaled by a calibration
/// against the system's monotonic clock made when the clock is first used (under a
/// millisecond); elsewhere it is the monotonic clock itself.
struct Epoch {
    clock: quanta::Clock,
    start: u64,
    wall_ns: u64,
}

fn epoch() -> &'static Epoch {
    static EPOCH: OnceLock<Epoch> = OnceLock::new();
    EPOCH.get_or_init(|| {
        let clock = quanta::Clock::new();
        let wall_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Epoch {
            start: clock.raw(),
            clock,
            wall_ns,
        }
    })
}

/// Nanoseconds since this process's time origin.
#[inline]
pub fn now_ns() -> u64 {
    let e = epoch();
    e.clock.delta_as_nanos(e.start, e.clock.raw())
}

/// The wall clock (nanoseconds since the Unix epoch) at this process's time origin.
pub fn origin_wall_ns() -> u64 {
    epoch().wall_ns
}

/// True while recording; one relaxed load.
#[inline]
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Forgets what was recorded and starts recording.
pub fn start() {
    let _ = epoch();
    buffers::clear();
    ON.store(true, Ordering::Relaxed);
}

/// Records again after [`stop`], keeping what was recorded (a benchmark that compares rounds
/// with and without recording in one process switches it so).
pub fn resume() {
    let _ = epoch();
    ON.store(true, Ordering::Relaxed);
}

/// Stops recording; what was recorded stays until the next [`start`].
pub fn stop() {
    ON.store(false, Ordering::Relaxed);
}

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// A span of `dur_ns` nanoseconds from `ts_ns`.
    Complete {
        /// Its length.
        dur_ns: u64,
    },
    /// Work was submitted: the start of the flow `flow`.
    FlowStart,
    /// The work of flow `flow` started running (inside the span that starts at `ts_ns`).
    FlowEnd,
    /// A moment: an object transfer or a lost peer (see [`Event::detail`]).
    Instant,
}

/// What an event carries beyond its name: who sent how many bytes to whom, or which peer was
/// lost and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Detail {
    /// An object's bytes went from rank `from` to rank `to`.
    Transfer {
        /// The encoded size of the object.
        bytes: u64,
        /// The sending rank.
        from: u32,
        /// The receiving rank.
        to: u32,
    },
    /// This process learned that rank `rank` is lost.
    PeerLost {
        /// The lost rank.
        rank: u32,
        /// Why it is taken for lost.
        why: String,
    },
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What kind of event.
    pub phase: Phase,
    /// `task`, `actor_call`, `actor_create`, `get`, `wait`, `transfer` or `peer_lost`.
    pub category: Cow<'static, str>,
    /// The function, method or actor type, or `get`/`wait`.
    pub name: Cow<'static, str>,
    /// When, in nanoseconds since the process's time origin.
    pub ts_ns: u64,
    /// The thread (see [`Recording::threads`]).
    pub thread: u32,
    /// The flow it starts or ends; 0 for none.
    pub flow: u64,
    /// What it carries beyond its name (transfers and lost peers); `None` for the others.
    #[serde(default)]
    pub detail: Option<Detail>,
}

/// Everything one process recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The events, in time order (those of one thread in the order they were recorded).
    pub events: Vec<Event>,
    /// The name of each thread id that appears in `events`.
    pub threads: Vec<(u32, String)>,
}

/// One process's recording with what places it in a job-wide trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTrace {
    /// The process id of the trace (the MPI rank; 0 on local backends).
    pub rank: u32,
    /// The host the process ran on.
    pub host: String,
    /// Added to this process's timestamps to express them on rank 0's clock.
    pub offset_ns: i64,
    /// The residual error of `offset_ns` (half the best ping-pong round trip; 0 locally).
    pub offset_error_ns: u64,
    /// The events.
    pub recording: Recording,
}

/// A copy of what this process has recorded so far, gathered from every thread's buffer.
pub fn snapshot() -> Recording {
    buffers::gather()
}

/// This process's recording as a [`ProcessTrace`] of rank 0 on this host.
pub fn local_trace() -> ProcessTrace {
    ProcessTrace {
        rank: 0,
        host: host_name(),
        offset_ns: 0,
        offset_error_ns: 0,
        recording: snapshot(),
    }
}

/// The host name, else the host's IP.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(crate::runtime::local_ip)
}

/// Names this thread in the trace (an actor's thread is named after its actor); no-op when off.
pub fn name_thread(name: impl FnOnce() -> String) {
    if is_on() {
        buffers::name_thread(name());
    }
}

/// Makes the flow ids of this process unique in a job of several processes: process `rank`
/// numbers its flows from `rank << 40` on (each process has room for 2^40 submissions).
pub fn set_flow_base(rank: u32) {
    let base = (u64::from(rank) << 40) + 1;
    NEXT_FLOW.fetch_max(base, Ordering::Relaxed);
}

/// Records that an object of `bytes` bytes went from rank `from` to rank `to` (`name` says
/// how: `push`, `data` or `shared`); no-op when off.
#[inline]
pub fn transfer(name: &'static str, bytes: u64, from: u32, to: u32) {
    if is_on() {
        instant("transfer", name, Detail::Transfer { bytes, from, to });
    }
}

/// Records that rank `rank` was lost (`why`); no-op when off.
pub fn peer_lost(rank: u32, why: &str) {
    if is_on() {
        let why = why.to_string();
        instant("peer_lost", "peer lost", Detail::PeerLost { rank, why });
    }
}

fn instant(category: &'static str, name: &'static str, detail: Detail) {
    buffers::record([Entry {
        phase: Phase::Instant,
        category,
        name,
        ts_ns: now_ns(),
        flow: 0,
        started_here: false,
        detail: Some(detail),
    }]);
}

/// Restores this thread's previous current flow when dropped.
#[must_use = "the flow is current only while the guard lives"]
pub struct FlowScope {
    previous: Option<u64>,
    /// The flow this scope's submission started (0 for a scope that only carries a flow).
    submitted: u64,
}

impl Drop for FlowScope {
    fn drop(&mut self) {
        if self.submitted != 0 {
            // Nothing on this thread ran the work: its submission ends here.
            record_submitted(Some(self.submitted));
        }
        if let Some(p) = self.previous {
            FLOW.with(|f| f.set(p));
        }
    }
}

/// Records that work `name` of `category` is being submitted from this thread and makes its
/// flow current until the guard drops; what the facade wraps a backend's `submit`,
/// `create_actor` and `call_actor` in.
pub fn submission(category: &'static str, name: &'static str) -> FlowScope {
    if !is_on() {
        return FlowScope {
            previous: None,
            submitted: 0,
        };
    }
    // An enclosing submission's start, still waiting, goes first.
    record_submitted(None);
    let flow = NEXT_FLOW.fetch_add(1, Ordering::Relaxed);
    SUBMITTED.with(|s| {
        s.set(Some(Submitted {
            category,
            name,
            flow,
        }))
    });
    FlowScope {
        previous: Some(FLOW.with(|f| f.replace(flow))),
        submitted: flow,
    }
}

/// The flow of the work being submitted on this thread (0 when none or when off): what a
/// backend keeps with work that runs on another thread.
#[inline]
pub fn current_flow() -> u64 {
    if !is_on() {
        return 0;
    }
    let flow = FLOW.with(Cell::get);
    if flow != 0 {
        // The work leaves this thread: its flow start is recorded now.
        record_submitted(Some(flow));
    }
    flow
}

/// Makes `flow` current on this thread until the guard drops: the next execution span here
/// ends it.
pub fn flow_scope(flow: u64) -> FlowScope {
    if flow == 0 && !is_on() {
        return FlowScope {
            previous: None,
            submitted: 0,
        };
    }
    FlowScope {
        previous: Some(FLOW.with(|f| f.replace(flow))),
        submitted: 0,
    }
}

/// A span being recorded; recorded as a complete event when dropped.
#[must_use = "the span ends when the guard drops"]
pub struct Span {
    open: Option<OpenSpan>,
}

struct OpenSpan {
    category: &'static str,
    name: &'static str,
    start: u64,
    flow: u64,
    /// The flow start of `flow`, when it was submitted on this thread and is still waiting.
    submitted: Option<Submitted>,
}

impl Span {
    /// A span of work running here (a task, actor call or actor creation); it ends this
    /// thread's current flow.
    pub fn execution(category: &'static str, name: &'static str) -> Span {
        Self::open(category, name, true)
    }

    /// A span that ends no flow (a driver `get` or `wait`).
    pub fn plain(category: &'static str, name: &'static str) -> Span {
        Self::open(category, name, false)
    }

    #[inline]
    fn open(category: &'static str, name: &'static str, takes_flow: bool) -> Span {
        if !is_on() {
            return Span { open: None };
        }
        let flow = if takes_flow {
            FLOW.with(|f| f.replace(0))
        } else {
            0
        };
        let submitted = (flow != 0).then(|| take_submitted(Some(flow))).flatten();
        Span {
            open: Some(OpenSpan {
                category,
                name,
                start: now_ns(),
                flow,
                submitted,
            }),
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        let Some(s) = self.open.take() else { return };
        // At least 1 ns, so that every span has a positive length even on a coarse clock.
        let dur_ns = now_ns().saturating_sub(s.start).max(1);
        // One entry: the flow it ends (if any) is kept with it, and ends where the span starts.
        let complete = Entry {
            phase: Phase::Complete { dur_ns },
            category: s.category,
            name: s.name,
            ts_ns: s.start,
            flow: s.flow,
            started_here: false,
            detail: None,
        };
        match s.submitted {
            // Submitted and started here at once, under the span's own names (a task run where
            // it was submitted; the same static strings): the span says so, one event for the
            // three.
            Some(p) if std::ptr::eq(p.category, s.category) && std::ptr::eq(p.name, s.name) => {
                buffers::record([Entry {
                    started_here: true,
                    ..complete
                }])
            }
            // Submitted and started here at once: both at the span's start.
            Some(p) => buffers::record([p.entry(s.start), complete]),
            None => buffers::record([complete]),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    // The recorder is process-wide: one test at a time starts it.
    static TURN: Mutex<()> = Mutex::new(());

    #[test]
    fn flows_of_a_rank_start_at_its_base_and_transfers_carry_their_detail() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        start();
        set_flow_base(3);
        let flow = {
            let _scope = submission("task", "m::f");
            current_flow()
        };
        assert!(flow > (3 << 40), "flow {flow} is below rank 3's base");
        transfer("push", 1024, 0, 3);
        peer_lost(2, "its process 9 ended");
        let events = snapshot().events;
        let transfer = events
            .iter()
            .find(|e| e.category == "transfer" && e.phase == Phase::Instant)
            .expect("the transfer was recorded");
        assert_eq!(
            transfer.detail,
            Some(Detail::Transfer {
                bytes: 1024,
                from: 0,
                to: 3
            })
        );
        assert!(events.iter().any(|e| matches!(
            &e.detail,
            Some(Detail::PeerLost { rank: 2, why }) if why.contains("ended")
        )));
    }

    #[test]
    fn events_of_every_thread_are_gathered_in_time_order_also_after_it_ended() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        start();
        let flow = std::thread::scope(|scope| {
            let submitter = scope.spawn(|| {
                let _scope = submission("task", "m::sent");
                current_flow()
            });
            submitter.join().expect("the submitting thread")
        });
        let runner = std::thread::Builder::new()
            .name("runner".into())
            .spawn(move || {
                let _flow = flow_scope(flow);
                let _span = Span::execution("task", "m::sent");
                // Past the chunk size, so that the thread's events fill more than one chunk.
                for i in 0..5000 {
                    transfer("push", i, 0, 1);
                }
            })
            .expect("a thread starts");
        runner.join().expect("the running thread");
        let recording = snapshot();
        stop();
        let ours: Vec<&Event> = recording
            .events
            .iter()
            .filter(|e| e.name == "m::sent" || e.category == "transfer")
            .collect();
        let kinds: Vec<Phase> = ours
            .iter()
            .filter(|e| e.category == "task")
            .map(|e| e.phase)
            .collect();
        assert!(
            matches!(kinds[..], [Phase::FlowStart, Phase::FlowEnd, Phase::Complete { dur_ns }] if dur_ns > 0),
            "{kinds:?}"
        );
        assert_eq!(ours.len(), 5003, "every event once, after the thread ended");
        assert!(recording
            .events
            .windows(2)
            .all(|w| w[0].ts_ns <= w[1].ts_ns));
        let runner = ours[1].thread;
        assert_ne!(ours[0].thread, runner, "one trace thread per OS thread");
        assert!(recording.threads.contains(&(runner, "runner".to_string())));
        start();
        let cleared = snapshot();
        stop();
        assert!(
            cleared.events.iter().all(|e| e.name != "m::sent"),
            "start forgets what was recorded"
        );
        assert!(
            cleared.threads.iter().all(|t| t.0 != runner),
            "the buffer of an ended thread goes at the next start"
        );
    }

    #[test]
    fn a_flow_start_is_recorded_once_whether_the_work_runs_here_elsewhere_or_not_at_all() {
        let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        start();
        // Run here, as pyseq does: the start waits and is recorded with the span.
        let here = {
            let _scope = submission("task", "m::here");
            let flow = FLOW.with(Cell::get);
            let _span = Span::execution("task", "m::here");
            flow
        };
        // Handed on, as pymp does: recorded when the backend takes the flow.
        let handed = {
            let _scope = submission("task", "m::handed");
            current_flow()
        };
        // Submitted inside another submission that is never run here.
        let (outer, inner) = {
            let _outer = submission("actor_create", "m::outer");
            let outer = FLOW.with(Cell::get);
            let _inner = submission("task", "m::inner");
            (outer, FLOW.with(Cell::get))
        };
        let events = snapshot().events;
        stop();
        for flow in [here, handed, outer, inner] {
            let starts: Vec<&Event> = events
                .iter()
                .filter(|e| e.phase == Phase::FlowStart && e.flow == flow)
                .collect();
            assert_eq!(starts.len(), 1, "flow {flow}: {events:?}");
        }
        let end = events
            .iter()
            .find(|e| e.phase == Phase::FlowEnd && e.flow == here)
            .expect("the work run here ends its flow");
        let start = events
            .iter()
            .find(|e| e.phase == Phase::FlowStart && e.flow == here);
        assert!(start.is_some_and(|s| s.ts_ns <= end.ts_ns && s.thread == end.thread));
        assert!(
            SUBMITTED.with(Cell::get).is_none(),
            "nothing waits after the submissions end"
        );
    }
}
