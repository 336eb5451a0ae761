//! Fault tolerance of the calls that run on this rank and of the calls this process sent:
//! who settles a task's outputs (its run, the timer that sees a run take too long, or a
//! cancel), retries on panic and on timeout, and the routing of `unidist::cancel` from a ref's
//! holder to its owner and on to the rank that holds the call.
//!
//! A run cannot be interrupted. One that loses (timed out, or cancelled while its body runs)
//! gives its pool slot back: the pool counts its thread as blocked, as for a task waiting in
//! `get`, and starts a replacement, so the next task runs at once; the body's result is dropped
//! when it returns, and its thread retires if the pool has enough threads by then.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use unidist_core::observe::stats::{self, Counter};
use unidist_core::registry::RemoteFunction;
use unidist_core::{retry, Arg, ObjectId, Payload, Result, TaskOptions};
use unidist_serialize::Encoded;

use super::calls::EncodedArgs;
use super::effects::Effects;
use super::state::{CallKind, Sending, State};
use super::{Node, Reply};
use crate::exec::{Job, Pool};
use crate::wire::{NodeMsg, WireOptions};

/// The wire form of a task's options, or `None` when none of them is set (the task travels as
/// a plain `Task`).
pub(super) fn wire_options(options: &TaskOptions) -> Option<WireOptions> {
    let w = WireOptions {
        runs: 0,
        max_retries: options.max_retries,
        retry_exceptions: options.retry_exceptions,
        timeout_nanos: options
            .timeout
            .map(|t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)),
    };
    (w != WireOptions::default()).then_some(w)
}

/// The task options a worker applies for `w` (the default for a plain `Task`).
pub(super) fn task_options(w: &WireOptions) -> TaskOptions {
    let mut o = TaskOptions::default()
        .max_retries(w.max_retries)
        .retry_exceptions(w.retry_exceptions);
    if let Some(n) = w.timeout_nanos {
        o = o.timeout(Duration::from_nanos(n));
    }
    o
}

/// Who settles the outputs of one task received here: its runs, the timer, or a cancel.
pub(crate) struct Ticket {
    pub(crate) options: TaskOptions,
    pub(crate) func: &'static RemoteFunction,
    pub(crate) reply: Reply,
    /// The arguments again, kept only when a timed-out run is re-run on another thread.
    retry_args: Option<Vec<Payload>>,
    state: Mutex<TicketState>,
}

#[derive(Default)]
struct TicketState {
    /// Runs started so far.
    runs: u32,
    /// A run is in progress (started and neither finished nor abandoned).
    running: bool,
    /// When the current run started.
    started: Option<Instant>,
    /// Runs up to this number were abandoned: their results are dropped and their threads
    /// gave their slots back.
    abandoned: u32,
    /// The outputs are settled (by a run, the timer or a cancel).
    settled: bool,
}

/// What a cancel found.
pub(crate) enum CancelOutcome {
    /// The task had not started: it never will.
    Queued,
    /// Its body is running: its thread gave its slot back.
    Running,
    /// Its outputs were settled before.
    Settled,
}

impl Ticket {
    /// The ticket of task `func` received with `wire` options, reporting to `reply`; `args` are
    /// kept only when a run that times out can be re-run.
    pub(crate) fn new(
        func: &'static RemoteFunction,
        wire: &WireOptions,
        reply: Reply,
        args: &Result<Vec<Payload>, unidist_core::TaskError>,
    ) -> Arc<Ticket> {
        let options = task_options(wire);
        let retry_args = match args {
            Ok(a) if options.timeout.is_some() && options.max_retries > 0 => Some(a.clone()),
            _ => None,
        };
        Arc::new(Ticket {
            options,
            func,
            reply,
            retry_args,
            state: Mutex::new(TicketState {
                runs: wire.runs,
                ..TicketState::default()
            }),
        })
    }

    /// A run is about to start on this thread, whose previous run of the task (if any) was
    /// `mine`: the number of the new run, or `None` if the task must not run here again.
    pub(crate) fn begin_run(&self, mine: &mut Option<u32>) -> Option<u32> {
        let mut s = self.state.lock();
        if s.settled || mine.is_some_and(|r| r <= s.abandoned) {
            return None;
        }
        s.runs += 1;
        s.running = true;
        s.started = Some(Instant::now());
        *mine = Some(s.runs);
        Some(s.runs)
    }

    /// The runs of this thread ended (its last being `mine`): true if it settles the outputs,
    /// false if they were settled without it (its result is dropped).
    pub(crate) fn finish(&self, mine: Option<u32>) -> bool {
        let mut s = self.state.lock();
        if s.settled || mine.is_some_and(|r| r <= s.abandoned) {
            return false;
        }
        s.settled = true;
        s.running = false;
        true
    }

    /// True if this thread's run `mine` was abandoned: its slot was given back.
    pub(crate) fn was_abandoned(&self, mine: Option<u32>) -> bool {
        let s = self.state.lock();
        mine.is_some_and(|r| r <= s.abandoned)
    }

    /// `unidist::cancel`: settles the outputs unless they were settled.
    pub(crate) fn cancel(&self) -> CancelOutcome {
        let mut s = self.state.lock();
        if s.settled {
            return CancelOutcome::Settled;
        }
        s.settled = true;
        if s.running {
            s.running = false;
            s.abandoned = s.runs;
            CancelOutcome::Running
        } else {
            CancelOutcome::Queued
        }
    }

    /// The deadline of the running run, if it has a time limit.
    fn deadline(&self) -> Option<Instant> {
        let limit = self.options.timeout?;
        let s = self.state.lock();
        if s.settled || !s.running {
            return None;
        }
        s.started.map(|t| t + limit)
    }

    fn is_settled(&self) -> bool {
        self.state.lock().settled
    }

    /// The run in progress took longer than its limit at `now`: it is abandoned; returns its
    /// number and whether the task runs again (else the outputs are settled with the timeout).
    fn time_out(&self, now: Instant) -> Option<(u32, bool)> {
        let limit = self.options.timeout?;
        let mut s = self.state.lock();
        let started = s.started?;
        if s.settled || !s.running || now < started + limit {
            return None;
        }
        s.running = false;
        s.abandoned = s.runs;
        let error = retry::timed_out(self.func.name, limit, s.runs, &self.options);
        let again = self.retry_args.is_some() && retry::may_retry(&self.options, s.runs, &error);
        if !again {
            s.settled = true;
        }
        Some((s.runs, again))
    }
}

/// The timer of a pool: watches the running tasks that have a time limit.
pub(crate) struct Timer {
    tx: Sender<Arc<Ticket>>,
}

/// How often the timer looks at tasks with a limit that have not started yet.
const TIMER_POLL: Duration = Duration::from_millis(20);

impl Timer {
    /// Starts the timer thread of `pool`.
    pub(crate) fn start(pool: Weak<Pool>, node: Weak<Node>) -> Timer {
        let (tx, rx) = crossbeam_channel::unbounded();
        let r = std::thread::Builder::new()
            .name("unidist-timer".into())
            .spawn(move || timer_main(rx, pool, node));
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot start the task timer thread");
        }
        Timer { tx }
    }

    /// Watches `ticket` until it is settled.
    pub(crate) fn watch(&self, ticket: Arc<Ticket>) {
        let _ = self.tx.send(ticket);
    }
}

fn timer_main(rx: Receiver<Arc<Ticket>>, pool: Weak<Pool>, node: Weak<Node>) {
    let mut watched: Vec<Arc<Ticket>> = Vec::new();
    loop {
        let now = Instant::now();
        watched.retain(|t| !t.is_settled());
        let mut next: Option<Instant> = None;
        for t in &watched {
            // A task that has not started yet is looked at again soon.
            let d = t.deadline().unwrap_or(now + TIMER_POLL);
            next = Some(next.map_or(d, |n| n.min(d)));
        }
        let got = match next {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(d) => rx.recv_timeout(d.saturating_duration_since(now)),
        };
        match got {
            Ok(t) => watched.push(t),
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let (Some(pool), Some(node)) = (pool.upgrade(), node.upgrade()) else {
            return;
        };
        let now = Instant::now();
        for t in &watched {
            if let Some((runs, again)) = t.time_out(now) {
                pool.lend();
                expired(&pool, &node, t, runs, again);
            }
        }
    }
}

/// A run of `ticket` timed out (its slot is given back): it runs again, or its outputs fail.
fn expired(pool: &Pool, node: &Node, ticket: &Arc<Ticket>, runs: u32, again: bool) {
    let limit = ticket.options.timeout.unwrap_or_default();
    let name = ticket.func.name;
    if again {
        stats::count(Counter::TasksRetried);
        tracing::debug!(function = name, runs, "retrying a task that timed out");
        let args = ticket.retry_args.clone().ok_or_else(|| {
            unidist_core::TaskError::new(
                name,
                unidist_core::TaskFailure::ArgumentFailed,
                "its arguments were not kept for a retry",
            )
        });
        pool.requeue(Job {
            func: ticket.func,
            args,
            reply: ticket.reply.clone(),
            ticket: ticket.clone(),
        });
    } else {
        let error = retry::timed_out(name, limit, runs, &ticket.options);
        node.complete(&ticket.reply, Err(error));
        stats::task_settled(false);
    }
}

impl Node {
    /// `Backend::cancel`: the owner of `id` routes the cancel to the rank that holds the call
    /// producing it; a holder that is not the owner sends it to the owner. A finished object
    /// (or one made by `put`) is untouched.
    pub(super) fn cancel_object(&self, id: ObjectId) -> Result<()> {
        self.with(|state, effects| self.cancel_owned(state, effects, id));
        Ok(())
    }

    /// Cancels the call producing `id` if this process owns it, else asks the owner to.
    pub(super) fn cancel_owned(&self, state: &mut State, effects: &mut Effects, id: ObjectId) {
        if id.owner != self.rank {
            effects.send(id.owner, NodeMsg::CancelRef { id });
            return;
        }
        let call = state
            .sent
            .iter()
            .find(|(_, c)| c.outputs.contains(&id))
            .map(|(seq, c)| (*seq, c.worker));
        if let Some((seq, worker)) = call {
            effects.send(worker, NodeMsg::Cancel { seq });
        }
    }

    /// Rank `src` cancels the call numbered `seq` it sent here: a call waiting for its
    /// arguments (or for its turn on an actor) never runs, a running task's outputs fail now
    /// and its result is dropped, and a finished call is untouched.
    pub(super) fn cancel_here(&self, state: &mut State, effects: &mut Effects, src: u32, seq: u64) {
        let waiting = state
            .received
            .calls
            .iter()
            .find(|(_, c)| c.reply.to == src && c.reply.seq == seq)
            .map(|(k, _)| *k);
        if let Some(call_id) = waiting {
            let Some(call) = state.received.calls.remove(&call_id) else {
                return;
            };
            if matches!(call.kind, CallKind::Create(_)) {
                // An actor creation has no outputs to cancel; it stays.
                state.received.calls.insert(call_id, call);
                return;
            }
            let error = retry::cancelled(call.kind.name());
            if let Some(actor) = call.actor {
                if let Some(q) = state.received.actor_queues.get_mut(&actor) {
                    q.retain(|c| *c != call_id);
                }
            }
            self.finish_call(state, effects, &call.reply, Err(error));
            if matches!(call.kind, CallKind::Task(_)) {
                count_cancelled();
            }
            let actor = call.actor;
            effects.drop_later(call);
            if let Some(actor) = actor {
                // The cancelled call may have held back the calls queued behind it.
                self.flush_actor(state, effects, actor);
            }
            return;
        }
        let Some(ticket) = state.running.get(&(src, seq)).cloned() else {
            return;
        };
        match ticket.cancel() {
            CancelOutcome::Settled => {}
            outcome => {
                if matches!(outcome, CancelOutcome::Running) {
                    if let Some(pool) = self.pool.get() {
                        pool.lend();
                    }
                }
                let error = retry::cancelled(ticket.func.name);
                self.finish_call(state, effects, &ticket.reply, Err(error));
                count_cancelled();
            }
        }
    }
}

/// Counts a cancelled task (after its outputs were settled): it is also a failed one.
fn count_cancelled() {
    stats::count(Counter::TasksCancelled);
    stats::count(Counter::TasksFailed);
}

/// What a task sent with `max_retries` keeps until its `Done`, to be sent again to another
/// worker when its worker is lost.
pub(super) struct Resend {
    /// The function's wire index and entry.
    pub(super) func: u32,
    pub(super) function: &'static RemoteFunction,
    /// Its arguments (refs are also held by the sent call) and their encoded values.
    pub(super) args: Vec<Arg>,
    pub(super) values: Vec<Option<Arc<Encoded>>>,
    pub(super) options: TaskOptions,
    /// How many times it was sent so far (the runs a lost worker made are counted as one).
    pub(super) runs: u32,
}

impl Node {
    /// The tasks this process sent to lost `rank` that may run again (`max_retries` left, and
    /// a live worker to take them) are sent again; the others are left to fail with `err`.
    ///
    /// Their outputs keep their ids and now live on the new worker, so they are not failed as
    /// objects only `rank` held. An argument that was lost with `rank` was rebuilt before this
    /// (see `lineage.rs`) when its task had retries left; otherwise it fails the new run, with
    /// an error naming the argument and the rank. Calls go out in the order they were first
    /// sent, so that a retried task's retried argument is placed before it.
    pub(super) fn resend_calls_sent_to(
        &self,
        state: &mut State,
        effects: &mut Effects,
        rank: u32,
        err: &unidist_core::Error,
    ) {
        let mut seqs: Vec<u64> = state
            .sent
            .iter()
            .filter(|(_, c)| {
                c.worker == rank
                    && c.retry
                        .as_ref()
                        .is_some_and(|r| retry::may_retry(&r.options, r.runs, err))
            })
            .map(|(s, _)| *s)
            .collect();
        seqs.sort_unstable();
        for seq in seqs {
            let Some(args) = state.sent.get(&seq).and_then(|c| c.retry.as_ref()) else {
                continue;
            };
            let holders = self.holders(state, &args.args);
            let Ok(w) = self.choose(state, &holders, false) else {
                // No live worker is left: the call fails with the others.
                return;
            };
            let Some(mut call) = state.sent.remove(&seq) else {
                continue;
            };
            let Some(resend) = call.retry.take() else {
                continue;
            };
            state.workers.finished(rank);
            for id in &call.outputs {
                if let Some(o) = state.objects.get_mut(id) {
                    o.location = Some(w);
                    o.requested = false;
                }
            }
            effects.touched.extend(call.outputs.iter().copied());
            let hold = std::mem::take(&mut call.hold);
            let nested = std::mem::take(&mut call.nested);
            let encoded = EncodedArgs::again(resend.values.clone(), hold, nested);
            let outputs = std::mem::take(&mut call.outputs);
            tracing::debug!(
                function = resend.function.name,
                lost = rank,
                worker = w,
                "retrying a task whose worker was lost"
            );
            self.send_again(state, effects, w, resend, encoded, outputs);
        }
    }

    /// Sends the task kept in `resend` to worker `w` as one more run producing `outputs` (a
    /// retry after a lost worker, or the rebuild of a lost object); the new call keeps the
    /// record for a later loss.
    pub(super) fn send_again(
        &self,
        state: &mut State,
        effects: &mut Effects,
        w: u32,
        mut resend: Box<Resend>,
        encoded: EncodedArgs,
        outputs: Vec<ObjectId>,
    ) {
        let sending = Sending::Task(&outputs);
        let (seq, args) = self.record_call(state, effects, w, &resend.args, encoded, sending);
        let mut options = wire_options(&resend.options).unwrap_or_default();
        options.runs = resend.runs;
        resend.runs += 1;
        stats::count(Counter::TasksRetried);
        let func = resend.func;
        if let Some(c) = state.sent.get_mut(&seq) {
            c.retry = Some(resend);
        }
        effects.send(
            w,
            NodeMsg::TaskWith {
                seq,
                func,
                args,
                outputs,
                options,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unidist_core::value::output;
    use unidist_core::Outputs;

    fn nothing(_: Vec<Payload>) -> Result<Outputs> {
        Ok(vec![output(0u8)])
    }
    static NOTHING: RemoteFunction = RemoteFunction {
        name: "tests::nothing",
        num_returns: 1,
        invoke: nothing,
    };

    fn ticket(wire: &WireOptions) -> Arc<Ticket> {
        let reply = Reply {
            outputs: vec![ObjectId::new(0, 1)],
            to: 0,
            seq: 1,
        };
        Ticket::new(&NOTHING, wire, reply, &Ok(Vec::new()))
    }

    #[test]
    fn options_travel_only_when_set_and_come_back_unchanged() {
        assert_eq!(wire_options(&TaskOptions::default()), None);
        let options = TaskOptions::default()
            .max_retries(3)
            .retry_exceptions(true)
            .timeout(Duration::from_millis(250));
        let wire = wire_options(&options).expect("options are set");
        assert_eq!(task_options(&wire), options);
    }

    #[test]
    fn a_cancel_settles_once_and_the_abandoned_run_gives_nothing() {
        let t = ticket(&WireOptions::default());
        let mut mine = None;
        assert_eq!(t.begin_run(&mut mine), Some(1));
        assert!(matches!(t.cancel(), CancelOutcome::Running));
        assert!(matches!(t.cancel(), CancelOutcome::Settled));
        assert!(!t.finish(mine), "the cancelled run's result is dropped");
        assert!(t.was_abandoned(mine), "its slot was given back");
        // A task cancelled before it started never runs.
        let t = ticket(&WireOptions::default());
        assert!(matches!(t.cancel(), CancelOutcome::Queued));
        let mut mine = None;
        assert_eq!(t.begin_run(&mut mine), None);
        assert!(!t.was_abandoned(mine));
    }

    #[test]
    fn a_timed_out_run_is_abandoned_and_retried_while_retries_are_left() {
        let wire = WireOptions {
            max_retries: 1,
            timeout_nanos: Some(1_000_000),
            ..WireOptions::default()
        };
        let t = ticket(&wire);
        let mut first = None;
        assert_eq!(t.begin_run(&mut first), Some(1));
        let later = Instant::now() + Duration::from_millis(5);
        assert_eq!(t.time_out(later), Some((1, true)));
        assert!(!t.finish(first), "the first run lost its outputs");
        let mut second = None;
        assert_eq!(t.begin_run(&mut second), Some(2));
        let later = Instant::now() + Duration::from_millis(5);
        assert_eq!(t.time_out(later), Some((2, false)), "no retry is left");
        assert!(t.is_settled());
        // Runs made on a lost worker count against the retries.
        let t = ticket(&WireOptions { runs: 1, ..wire });
        let mut mine = None;
        assert_eq!(t.begin_run(&mut mine), Some(2));
        let later = Instant::now() + Duration::from_millis(5);
        assert_eq!(t.time_out(later), Some((2, false)));
    }
}
