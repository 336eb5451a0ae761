//! Observing the work on MPI: every rank's counters and timeline gathered to rank 0, the clock
//! alignment of the ranks at init, timeline flows from a submission to the rank that runs it,
//! and the bytes and events of object transfers.
//!
//! Every rank records with the core's recorder and counts with the core's counters; rank 0 asks
//! the live workers for them with a request/reply pair of node messages and waits a bounded
//! time, so that a lost or silent rank is skipped rather than waited for. While the timeline is
//! off nothing here sends a message: the hooks on the send and receive paths look at a
//! message's kind and at one relaxed flag.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use unidist_core::observe::stats::{self, Counter};
use unidist_core::observe::timeline::{self, FlowScope, ProcessTrace};
use unidist_core::observe::{Stats, WorkerStats};
use unidist_serialize::Encoded;

use super::{Node, Reply};
use crate::comm::Out;
use crate::wire::{ArgWire, NodeMsg, Slot};

/// Ping-pong rounds per worker when the clocks are aligned; the one with the shortest round
/// trip gives the offset.
const CLOCK_ROUNDS: usize = 8;
/// How long one ping waits for its pong.
const PING_WAIT: Duration = Duration::from_secs(2);
/// How long `stats()` waits for the workers' counters.
const STATS_WAIT: Duration = Duration::from_secs(5);
/// How long a timeline gather waits for the workers' recordings (long ones are megabytes).
const TRACE_WAIT: Duration = Duration::from_secs(20);
/// How often a waiting gather looks at the lost-peer registry again.
const LOST_CHECK: Duration = Duration::from_millis(100);

/// What a worker answered to one of rank 0's requests.
enum Answer {
    /// Its clock when the ping arrived, and rank 0's clock when the pong arrived.
    Pong {
        at_ns: u64,
        back_ns: u64,
    },
    Stats(WorkerStats),
    Trace(Box<ProcessTrace>),
    /// Its recorder is paused or resumed as asked.
    Switched,
}

/// Answers received for the requests still waited for.
#[derive(Default)]
struct Inbox {
    open: HashSet<u64>,
    answers: HashMap<(u64, u32), Answer>,
}

/// The node's observing state: requests in flight, clock offsets, flows of received calls and
/// the recordings gathered at shutdown.
#[derive(Default)]
pub(crate) struct Observer {
    next_ask: AtomicU64,
    inbox: Mutex<Inbox>,
    arrived: Condvar,
    /// Rank 0: per rank, the offset added to its timestamps and its residual error.
    clocks: Mutex<Vec<(i64, u64)>>,
    /// Flows of calls received here, by (sender, sequence number), until they run.
    flows: Mutex<HashMap<(u32, u64), u64>>,
    /// Rank 0: every rank's recording, gathered at shutdown for `timeline` after it.
    gathered: Mutex<Option<Vec<ProcessTrace>>>,
}

fn switch_on(ask: u64) -> NodeMsg {
    NodeMsg::RecordSwitch { ask, on: true }
}

fn switch_off(ask: u64) -> NodeMsg {
    NodeMsg::RecordSwitch { ask, on: false }
}

/// Bytes of the values a message carries between processes.
fn value_bytes(msg: &NodeMsg) -> u64 {
    let slot = |s: &Slot| s.ready().map_or(0, |e| e.total_len() as u64);
    let args = |a: &[ArgWire]| {
        a.iter()
            .map(|a| match a {
                ArgWire::Value(s) => slot(s),
                ArgWire::Shared(seg) => seg.len,
                ArgWire::Ref { .. } | ArgWire::Failed(_) => 0,
            })
            .sum()
    };
    match msg {
        NodeMsg::Task { args: a, .. }
        | NodeMsg::ActorCall { args: a, .. }
        | NodeMsg::ActorCreate { args: a, .. } => args(a),
        NodeMsg::Push { value, .. } | NodeMsg::Data { value, .. } => slot(value),
        NodeMsg::Shared { seg, .. } => seg.len,
        NodeMsg::PeerRead { desc, .. } => desc.total_len(),
        _ => 0,
    }
}

/// The transfer name of a message that moves an object, if it is one.
fn transfer_name(msg: &NodeMsg) -> Option<&'static str> {
    match msg {
        NodeMsg::Push { .. } => Some("push"),
        NodeMsg::Data { .. } => Some("data"),
        NodeMsg::Shared { .. } => Some("shared"),
        NodeMsg::PeerRead { .. } => Some("peer read"),
        _ => None,
    }
}

/// The flow a task received here continues, made current on this thread for its run: the
/// core's execution span there ends it. A no-op guard while the timeline is off.
pub(crate) fn call_flow(node: &Node, reply: &Reply) -> FlowScope {
    if !timeline::is_on() {
        return timeline::flow_scope(0);
    }
    let flow = node.observer.flows.lock().remove(&(reply.to, reply.seq));
    timeline::flow_scope(flow.unwrap_or(0))
}

/// As [`call_flow`], for an actor call (or creation) whose hooks hold the node weakly; the
/// first poll takes the flow, later polls of an async call continue none.
pub(crate) fn actor_call_flow(node: &Weak<Node>, reply: Option<&Reply>) -> FlowScope {
    match (timeline::is_on(), reply) {
        (true, Some(r)) => match node.upgrade() {
            Some(n) => call_flow(&n, r),
            None => timeline::flow_scope(0),
        },
        _ => timeline::flow_scope(0),
    }
}

impl Node {
    /// Counts and records a message about to be sent: the bytes of the values it carries, an
    /// object transfer, and the flow of a call (sent just before it, on the same ordered
    /// stream, while the timeline records).
    pub(super) fn observe_send(&self, dest: u32, msg: &NodeMsg) {
        if dest == self.rank {
            return;
        }
        let bytes = value_bytes(msg);
        if bytes > 0 {
            stats::add(Counter::BytesMoved, bytes);
        }
        if !timeline::is_on() {
            return;
        }
        if let Some(name) = transfer_name(msg) {
            timeline::transfer(name, bytes, self.rank, dest);
        }
        if let NodeMsg::Task { seq, .. }
        | NodeMsg::TaskWith { seq, .. }
        | NodeMsg::ActorCall { seq, .. }
        | NodeMsg::ActorCreate { seq, .. } = msg
        {
            let flow = timeline::current_flow();
            if flow != 0 {
                self.to_comm(Out::Msg(dest, NodeMsg::Flow { seq: *seq, flow }));
            }
        }
    }

    /// Records an object transfer that arrived from `src` (while the timeline records).
    pub(super) fn observe_receive(&self, src: u32, msg: &NodeMsg) {
        if !timeline::is_on() || src == self.rank {
            return;
        }
        if let Some(name) = transfer_name(msg) {
            timeline::transfer(name, value_bytes(msg), src, self.rank);
        }
    }

    /// Handles the observing messages (on the communication thread): requests on a worker,
    /// answers on rank 0.
    pub(super) fn observe_message(&self, src: u32, msg: NodeMsg) {
        match msg {
            NodeMsg::Flow { seq, flow } => {
                if timeline::is_on() {
                    self.observer.flows.lock().insert((src, seq), flow);
                }
            }
            NodeMsg::ClockPing { ask } => {
                let at_ns = timeline::now_ns();
                // Rank 0 records: so does every rank, with flow ids of its own.
                if !timeline::is_on() {
                    timeline::start();
                }
                timeline::set_flow_base(self.rank);
                self.send(src, NodeMsg::ClockPong { ask, at_ns });
            }
            NodeMsg::ClockPong { ask, at_ns } => {
                let back_ns = timeline::now_ns();
                self.answered(ask, src, Answer::Pong { at_ns, back_ns });
            }
            NodeMsg::StatsAsk { ask } => {
                let stats = WorkerStats::local(format!("rank {}", self.rank));
                self.send(src, NodeMsg::StatsReply { ask, stats });
            }
            NodeMsg::StatsReply { ask, stats } => self.answered(ask, src, Answer::Stats(stats)),
            NodeMsg::TraceAsk { ask } => {
                let trace = self.own_trace();
                let inline = unidist_serialize::encode(&trace).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "the timeline recording could not be encoded");
                    unidist_serialize::encode(&ProcessTrace::default()).unwrap_or_default()
                });
                let value = Encoded {
                    inline,
                    buffers: Vec::new(),
                };
                let trace = Slot::Ready(Arc::new(value));
                self.send(src, NodeMsg::TraceReply { ask, trace });
            }
            NodeMsg::TraceReply { ask, trace } => {
                let decoded = trace
                    .ready()
                    .map(|e| unidist_serialize::decode::<ProcessTrace>(&e.inline));
                match decoded {
                    Some(Ok(t)) => self.answered(ask, src, Answer::Trace(Box::new(t))),
                    Some(Err(e)) => {
                        tracing::error!(src, error = %e, "a timeline recording does not decode");
                    }
                    None => tracing::error!(src, "a timeline recording arrived incomplete"),
                }
            }
            NodeMsg::RecordSwitch { ask, on } => {
                // Only a recording that `init` started (UNIDIST_TIMELINE) is resumed.
                if on {
                    timeline::resume();
                } else {
                    timeline::stop();
                }
                self.send(src, NodeMsg::RecordSwitched { ask });
            }
            NodeMsg::RecordSwitched { ask } => self.answered(ask, src, Answer::Switched),
            other => tracing::error!(?other, "not an observing message"),
        }
    }

    fn answered(&self, ask: u64, src: u32, answer: Answer) {
        let mut inbox = self.observer.inbox.lock();
        if inbox.open.contains(&ask) {
            inbox.answers.insert((ask, src), answer);
            self.observer.arrived.notify_all();
        }
    }

    fn new_ask(&self) -> u64 {
        let ask = self.observer.next_ask.fetch_add(1, Ordering::Relaxed);
        self.observer.inbox.lock().open.insert(ask);
        ask
    }

    /// Sends request `ask` to every live worker and collects their answers.
    fn ask_workers(&self, request: fn(u64) -> NodeMsg, within: Duration) -> Vec<(u32, Answer)> {
        let ask = self.new_ask();
        let ranks: Vec<u32> = (1..self.size).filter(|r| !self.lost.contains(*r)).collect();
        for &r in &ranks {
            self.send(r, request(ask));
        }
        self.collect(ask, &ranks, within)
    }

    /// Waits until every rank of `ranks` answered request `ask`, was lost, or `within` passed;
    /// returns the answers that arrived.
    fn collect(&self, ask: u64, ranks: &[u32], within: Duration) -> Vec<(u32, Answer)> {
        let deadline = Instant::now() + within;
        let mut inbox = self.observer.inbox.lock();
        loop {
            let missing: Vec<u32> = ranks
                .iter()
                .copied()
                .filter(|r| !inbox.answers.contains_key(&(ask, *r)) && !self.lost.contains(*r))
                .collect();
            if missing.is_empty() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(
                    ?missing,
                    "workers did not answer within {within:?}; skipped"
                );
                break;
            }
            let wait = (deadline - now).min(LOST_CHECK);
            self.observer.arrived.wait_for(&mut inbox, wait);
        }
        inbox.open.remove(&ask);
        let out = ranks
            .iter()
            .filter_map(|r| inbox.answers.remove(&(ask, *r)).map(|a| (*r, a)))
            .collect();
        inbox.answers.retain(|(a, _), _| *a != ask);
        out
    }

    /// Rank 0, at init while the timeline records: measures each worker's clock offset with
    /// an NTP-style ping-pong (the round with the shortest round trip wins; its half round trip
    /// is the residual error). Every worker starts recording when pinged.
    pub(crate) fn sync_clocks(&self) {
        if self.rank != 0 || !timeline::is_on() {
            return;
        }
        let mut clocks = vec![(0i64, 0u64); self.size as usize];
        for r in 1..self.size {
            // (round trip, offset) of the best round so far.
            let mut best: Option<(u64, i64)> = None;
            for _ in 0..CLOCK_ROUNDS {
                if self.lost.contains(r) {
                    break;
                }
                let ask = self.new_ask();
                let sent_ns = timeline::now_ns();
                self.send(r, NodeMsg::ClockPing { ask });
                let Some((_, Answer::Pong { at_ns, back_ns })) =
                    self.collect(ask, &[r], PING_WAIT).pop()
                else {
                    break;
                };
                let rtt = back_ns.saturating_sub(sent_ns);
                // The worker read its clock halfway through the round trip, as best known.
                let midpoint = sent_ns + rtt / 2;
                let offset = midpoint as i64 - at_ns as i64;
                if best.is_none_or(|(b, _)| rtt < b) {
                    best = Some((rtt, offset));
                }
            }
            match best {
                Some((rtt, offset)) => clocks[r as usize] = (offset, rtt / 2),
                None => tracing::warn!(rank = r, "no clock ping answered: offset left at 0"),
            }
        }
        tracing::debug!(?clocks, "timeline clocks aligned");
        *self.observer.clocks.lock() = clocks;
    }

    /// This process's recording, as rank `self.rank` of the job.
    fn own_trace(&self) -> ProcessTrace {
        let mut t = timeline::local_trace();
        t.rank = self.rank;
        t
    }

    /// Every rank's counters: rank 0 adds up the live workers' (a rank that does not answer in
    /// time is skipped); a worker has its own only.
    pub(super) fn gathered_stats(&self) -> Stats {
        let mut workers = vec![WorkerStats::local(format!("rank {}", self.rank))];
        if self.rank == 0 {
            for (_, a) in self.ask_workers(|ask| NodeMsg::StatsAsk { ask }, STATS_WAIT) {
                if let Answer::Stats(s) = a {
                    workers.push(s);
                }
            }
        }
        Stats::from_workers(workers)
    }

    /// Pauses or resumes the timeline recorder here and, on rank 0, on every live worker,
    /// returning once they answered (a lost or silent worker is skipped after
    /// [`STATS_WAIT`]).
    pub(super) fn switch_recording(&self, on: bool) {
        if on {
            timeline::resume();
        } else {
            timeline::stop();
        }
        if self.rank == 0 {
            let request = if on { switch_on } else { switch_off };
            self.ask_workers(request, STATS_WAIT);
        }
    }

    /// Every rank's recording with its clock offset (rank 0, while the timeline records), or
    /// what was gathered at shutdown; a worker has its own only.
    pub(super) fn gathered_timeline(&self) -> Vec<ProcessTrace> {
        if let Some(t) = self.observer.gathered.lock().clone() {
            return t;
        }
        self.gather_traces()
    }

    fn gather_traces(&self) -> Vec<ProcessTrace> {
        let mut traces = vec![self.own_trace()];
        if self.rank != 0 || !timeline::is_on() {
            return traces;
        }
        let clocks = self.observer.clocks.lock().clone();
        for (r, a) in self.ask_workers(|ask| NodeMsg::TraceAsk { ask }, TRACE_WAIT) {
            if let Answer::Trace(t) = a {
                let mut t = *t;
                t.rank = r;
                if let Some(&(offset, error)) = clocks.get(r as usize) {
                    t.offset_ns = offset;
                    t.offset_error_ns = error;
                }
                traces.push(t);
            }
        }
        traces.sort_by_key(|t| t.rank);
        traces
    }

    /// Rank 0, before the job shuts down: gathers every rank's recording while the workers
    /// still answer, for the `UNIDIST_TIMELINE` file written after shutdown.
    pub(super) fn gather_before_shutdown(&self) {
        if self.rank == 0 && timeline::is_on() {
            let traces = self.gather_traces();
            *self.observer.gathered.lock() = Some(traces);
        }
    }
}
