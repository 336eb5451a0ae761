//! The per-process runtime: object table, ownership and reference counts, scheduling, call
//! bookkeeping, and the [`Backend`] implementation. It never calls MPI: it hands messages to the
//! communication thread through a channel, and the communication thread hands it what arrives.
//!
//! Objects. An [`ObjectId`]'s `owner` is the rank that allocated it (the submitter of the task
//! or the putter). The owner knows the object's location (the worker that runs the producing
//! task, chosen at submission, or the putter), its readiness, and who references it: local
//! handles (`local`) and registered borrowers in other processes (`remote`). When both drop to
//! zero the owner sends `Free` to the location, which drops the value and forwards `Free` to every
//! rank it sent a copy to. No global quiescence is involved.
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
//! wake threads collects the work in [`Fx`] and does it after unlocking, because encoding or
//! dropping a value that contains refs re-enters the backend.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex, MutexGuard};
use unidist_core::registry::{self, ActorClassEntry, ActorMethodEntry, RemoteFunction};
use unidist_core::{ActorId, AnyRef, Arg, ErasedValue, Error, ObjectId, Payload, Result};
use unidist_serialize::Encoded;

use crate::comm::Out;
use crate::exec::{self, ActorCmd, ActorTx, Args, Job, Pool};
use crate::wire::{ArgWire, Msg, OutResult, Slot, WireError};

mod actors;
mod backend;
mod calls;
mod dispatch;
mod effects;
mod execute;
mod lost;
mod objects;
mod schedule;
mod state;
mod table;
#[cfg(test)]
mod tests;
mod wait;

use calls::*;
use effects::*;
use state::*;
use table::*;
use wait::*;

/// The runtime of one process; implements [`Backend`](unidist_core::Backend).
pub struct Node {
    pub rank: u32,
    pub size: u32,
    ips: Vec<String>,
    out: Sender<Out>,
    st: Mutex<State>,
    cv: Condvar,
    threshold: usize,
    table: Table,
    pool: OnceLock<Arc<Pool>>,
    closed: AtomicBool,
    /// Set once a rank is lost: messages to lost ranks are then checked for in [`Node::apply`].
    any_lost: AtomicBool,
    me: Weak<Node>,
}

impl Node {
    pub fn new(
        rank: u32,
        size: u32,
        ips: Vec<String>,
        out: Sender<Out>,
        threshold: usize,
    ) -> Arc<Node> {
        Arc::new_cyclic(|me| {
            let st = State {
                load: vec![0; size as usize],
                actors_on: vec![0; size as usize],
                ..Default::default()
            };
            Node {
                rank,
                size,
                ips,
                out,
                st: Mutex::new(st),
                cv: Condvar::new(),
                threshold,
                table: Table::build(),
                pool: OnceLock::new(),
                closed: AtomicBool::new(false),
                any_lost: AtomicBool::new(false),
                me: me.clone(),
            }
        })
    }

    /// Starts the task pool (worker ranks).
    pub fn start_pool(&self, threads: usize) {
        let _ = self.pool.set(Pool::start(threads, self.me.clone()));
    }

    pub(super) fn arc(&self) -> Option<Arc<Node>> {
        self.me.upgrade()
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    /// Sends a message through the communication thread.
    pub fn send(&self, dest: u32, msg: Msg) {
        let _ = self.out.send(Out::Msg(dest, msg));
    }

    /// Stops running new work (shutdown): queued calls are dropped, actors end.
    pub fn stop_work(&self) {
        self.closed.store(true, Ordering::Release);
        self.with(|st, fx| {
            st.stopped = true;
            let actors: Vec<ActorId> = st.actors_here.keys().copied().collect();
            for a in actors {
                if let Some(ActorSlot::Alive(tx)) = st
                    .actors_here
                    .insert(a, ActorSlot::Dead("shut down".into()))
                {
                    let _ = tx.send(ActorCmd::Stop { now: true });
                }
            }
            let execs: Vec<Exec> = st.execs.drain().map(|(_, x)| x).collect();
            fx.drop_later(execs);
            fx.notify = true;
        });
    }

    /// Measures the raw rsmpi floors with rank 1 (rank 0 only).
    pub fn raw_bench(&self, iters: u32, bytes: u64) -> Result<(f64, f64)> {
        if self.rank != 0 || self.size < 2 {
            return Err(backend_err(
                "the raw benchmark runs on rank 0 with at least 2 ranks",
            ));
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = self.out.send(Out::RawBench {
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
        if self.out.send(Out::Shutdown(tx)).is_err() {
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(r) => r,
            Err(_) => Err(backend_err("shutdown did not finish within 60 s")),
        }
    }
}
