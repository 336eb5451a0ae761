//! The per-process runtime (the node): object table, ownership and reference counts, scheduling,
//! call bookkeeping, and the [`Backend`](unidist_core::Backend) implementation. It never calls
//! MPI: it hands messages to the communication thread through a channel, and the communication
//! thread hands it what arrives.
//!
//! Objects. An [`ObjectId`](unidist_core::ObjectId)'s `owner` is the rank that allocated it (the
//! submitter of the task or the putter). The owner knows the object's location (the worker that
//! runs the producing task, chosen at submission, or the putter), its readiness, and who
//! references it: local handles (`local`) and registered borrowers in other processes (`remote`).
//! When both drop to zero the owner sends `Free` to the location, which drops the value and
//! forwards `Free` to every rank it sent a copy to. No global quiescence is involved.
//!
//! Refs nested inside values: a process that deserializes a ref registers with the owner
//! (`Borrow +1`, and `-1` when its last handle drops). A process that serializes a ref it owns
//! inside a call's arguments pins it until that call is done: the worker that decodes the
//! arguments registers as a borrower before it reports the call done, on the same ordered
//! channel. Any other serialization (refs inside `put` values or task results, refs owned by
//! another process) pins the object at its owner for good, because such an encoded value may be
//! decoded any number of times, anywhere; those objects live until shutdown (a documented limit).
//!
//! Locking. One mutex guards the state; code that needs to encode, decode, drop user values or
//! wake threads collects the work in [`Effects`](effects::Effects) and does it after unlocking,
//! because encoding or dropping a value that contains refs re-enters the backend.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};
use unidist_core::registry::{self, Registry};
use unidist_core::{DeadReason, Error, Result};

use crate::comm::Out;
use crate::exec::Pool;
use crate::process::LostPeers;
use crate::shm::Store;
use crate::wire::NodeMsg;
use state::{backend_err, ActorSlot, ReceivedCall, State};

// Each file owns one concern; the methods of `Node` are spread over them.
mod actors; // actors: placement, lookup, their calls here, kill and release
mod backend; // `impl Backend for Node`: delegates to the concerns
mod calls; // calls this process sends: arguments, outputs, completion
mod control;
mod dispatch; // incoming messages: one delegating line per kind
mod effects; // work collected under the lock and done after it
mod execute; // calls received here: arguments, start, completion
mod lineage; // lost objects made again by running their task again
mod lost; // ranks that were lost: what fails, what is not sent
mod objects; // objects: fetch, push, subscriptions, outputs, failures
mod observe; // stats and timeline of every rank, clocks, flows, transfers
mod ready; // futures awaiting objects: subscriptions fired by the events that wake threads
mod refs; // reference counts: handles, borrowers, pins, freeing
mod restart; // actor restarts: the kept creation, sent again when the actor's rank is lost
mod schedule; // choosing a worker: load, locality, throttling
mod state; // the state behind the mutex and its sub-structs
#[cfg(test)]
mod tests;
mod wait; // blocked threads: `block_until`, `get`, `wait` // fault tolerance: retries, time limits, cancel

pub(crate) use control::{Ticket, Timer};
pub(crate) use execute::Reply;
pub(crate) use observe::{actor_call_flow, call_flow};

/// The runtime of one process; implements [`Backend`](unidist_core::Backend).
pub(crate) struct Node {
    pub rank: u32,
    pub size: u32,
    ips: Vec<String>,
    out: Sender<Out>,
    state: Mutex<State>,
    /// The submission throttle waits on it.
    progress: Condvar,
    threshold: usize,
    /// Registry entries cross the wire as their index, the same on every rank (the registry
    /// check at init makes sure every rank runs one binary).
    registry: &'static Registry,
    pool: OnceLock<Arc<Pool>>,
    closed: AtomicBool,
    /// The ranks this process knows are lost (shared with the communication thread).
    lost: Arc<LostPeers>,
    /// The shared-memory object store of this host (see `shm.rs`).
    store: Arc<Store>,
    me: Weak<Node>,
    /// Stats and timeline gathering, clock offsets and flows (see `observe.rs`).
    observer: observe::Observer,
}

impl Node {
    pub(crate) fn new(
        rank: u32,
        size: u32,
        ips: Vec<String>,
        out: Sender<Out>,
        threshold: usize,
        lost: Arc<LostPeers>,
        store: Arc<Store>,
    ) -> Arc<Node> {
        Arc::new_cyclic(|me| Node {
            rank,
            size,
            ips,
            out,
            state: Mutex::new(State::new(size)),
            progress: Condvar::new(),
            threshold,
            registry: registry::registry(),
            pool: OnceLock::new(),
            closed: AtomicBool::new(false),
            lost,
            store,
            me: me.clone(),
            observer: observe::Observer::default(),
        })
    }

    /// Starts the task pool (worker ranks).
    pub(crate) fn start_pool(&self, threads: usize) {
        let _ = self.pool.set(Pool::start(threads, self.me.clone()));
    }

    /// The lost-peer registry this node reports to and schedules by.
    pub(crate) fn lost_peers(&self) -> Arc<LostPeers> {
        self.lost.clone()
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    /// Sends a message through the communication thread.
    pub(crate) fn send(&self, dest: u32, msg: NodeMsg) {
        self.observe_send(dest, &msg);
        self.to_comm(Out::Msg(dest, msg));
    }

    /// Hands `o` to the communication thread, waking it if it sleeps idle.
    pub(crate) fn to_comm(&self, o: Out) -> bool {
        let sent = self.out.send(o).is_ok();
        crate::comm::poke();
        sent
    }

    /// Stops running new work (shutdown): queued calls are dropped, actors end.
    pub(crate) fn stop_work(&self) {
        self.closed.store(true, Ordering::Release);
        self.with(|state, effects| {
            state.stopped = true;
            for slot in state.actors.hosted.values_mut() {
                let old = std::mem::replace(slot, ActorSlot::Dead(DeadReason::ThreadEnded));
                if let ActorSlot::Alive(thread, fate) = old {
                    let _ = fate.set(DeadReason::ThreadEnded);
                    effects.ending.push((thread, true));
                }
            }
            let queued: Vec<ReceivedCall> =
                state.received.calls.drain().map(|(_, call)| call).collect();
            effects.drop_later(queued);
            effects.notify = true;
        });
    }

    /// Measures the raw rsmpi floors with rank 1 (rank 0 only).
    pub(crate) fn raw_bench(&self, iters: u32, bytes: u64) -> Result<(f64, f64)> {
        if self.rank != 0 || self.size < 2 {
            return Err(backend_err(
                "the raw benchmark runs on rank 0 with at least 2 ranks",
            ));
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.to_comm(Out::RawBench {
            iters,
            bytes,
            reply: tx,
        });
        rx.recv()
            .map_err(|_| backend_err("the communication thread ended"))
    }

    /// Asks the communication thread to shut the job down and waits for it.
    fn shutdown_job(&self) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if !self.to_comm(Out::Shutdown(tx)) {
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(r) => r,
            Err(_) => Err(backend_err("shutdown did not finish within 60 s")),
        }
    }
}
