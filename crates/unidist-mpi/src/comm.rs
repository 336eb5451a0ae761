//! The communication thread: the only thread of a process that calls MPI.
//!
//! It initializes MPI (on itself, so `Funneled` is enough), establishes the communicator,
//! checks the registries, then loops: it drains the outgoing channel into one batch per
//! destination, starts non-blocking sends that own their bytes, polls for incoming batches with
//! `MPI_Improbe` and hands each message to the [`Node`]. After activity it keeps polling (yielding
//! the CPU) for a short window, so request/reply traffic sees MPI latency; when idle it parks for
//! at most `UNIDIST_MPI_BACKOFF` ([`poke`] wakes it when something is queued to send), so a quiet
//! rank sleeps but still notices incoming messages. At shutdown it runs the handshake, drains its
//! sends and finalizes MPI on this same thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::Equivalence;
use unidist_core::{Error, Result};

use crate::ffi::{Keep, SendReq};
use crate::launch::{self, Established, InitInfo};
use crate::node::Node;
use crate::process::LostPeers;
use crate::wire::{self, ControlMsg, Msg, NodeMsg, BATCH_BYTES, CHUNK, TAG_CTRL, TAG_RAW, TAG_SEG};

/// The communication thread of this process, once it runs: [`poke`] wakes it.
static COMM_THREAD: std::sync::OnceLock<std::thread::Thread> = std::sync::OnceLock::new();
/// The communication thread is (about to be) parked, idle.
static PARKED: AtomicBool = AtomicBool::new(false);

/// Wakes the communication thread if it is parked idle: something was queued for it to send.
/// Cheap when it is busy (one load). A wake-up missed in a race costs at most one backoff.
pub(crate) fn poke() {
    if PARKED.load(Ordering::SeqCst) {
        if let Some(t) = COMM_THREAD.get() {
            t.unpark();
        }
    }
}

/// How long the loop keeps polling after the last activity before it starts to block.
const SPIN: Duration = Duration::from_millis(2);
/// Rank 0 waits this long for every worker to acknowledge shutdown.
const ACK_TIMEOUT: Duration = Duration::from_secs(20);
/// Pending sends get this long to complete before MPI is finalized.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A worker that acknowledged shutdown waits this long for rank 0's final message.
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(30);
/// The smallest send whose completion shows that its peer is alive: far above the eager limit
/// of any transport, so that it completes only once the peer received it.
const PROOF_OF_LIFE: usize = 16 << 20;
/// How often peers' liveness is checked.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// How long peers may stay silent, from `UNIDIST_MPI_HEARTBEAT`, and the beacon and listening
/// intervals derived from it.
///
/// Any message is a sign of life, so a peer gets an `Alive` beacon only when this rank sent it
/// nothing for [`Liveness::beacon`]: a busy job sends none. Beacons come from the communication
/// thread, which user work never blocks, so only a dead or wedged process or a broken network
/// stays silent for [`Liveness::silence`].
#[derive(Clone, Copy, Debug, PartialEq)]
struct Liveness {
    /// A peer silent this long is lost.
    silence: Duration,
    /// A peer this rank sent nothing to for this long gets a beacon: four chances per bound,
    /// and at least one a second.
    beacon: Duration,
    /// A pause of this thread longer than this (a long blocking transfer, a stopped process)
    /// means it was not listening: silence is counted again from its end.
    gap: Duration,
}

impl Liveness {
    fn new(heartbeat_secs: f64) -> Liveness {
        let silence = Duration::from_secs_f64(heartbeat_secs.max(0.001));
        Liveness {
            silence,
            beacon: (silence / 4).min(Duration::from_secs(1)),
            gap: (silence / 2).min(Duration::from_secs(5)),
        }
    }

    /// Why a peer silent for `silence` is lost, as its error says.
    fn silent(&self) -> String {
        format!(
            "it stopped answering: no message from it for {} s (UNIDIST_MPI_HEARTBEAT); its host \
             crashed or is cut off",
            decimal(self.silence.as_secs_f64())
        )
    }
}

/// `secs` without a fraction when it is whole (`10`, `2.5`).
fn decimal(secs: f64) -> String {
    let s = format!("{secs:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A request to the communication thread.
pub(crate) enum Out {
    /// Send a node message (to this rank itself: handled locally without MPI).
    Msg(u32, NodeMsg),
    /// Rank 0: shut every rank down, finalize, then answer.
    Shutdown(Sender<Result<()>>),
    /// Rank 0: measure the raw rsmpi floors with rank 1 and answer (8-byte half round trip in
    /// seconds, bandwidth in bytes per second).
    RawBench {
        iters: u32,
        bytes: u64,
        reply: Sender<(f64, f64)>,
    },
}

/// Runs the thread: establishes MPI, reports `init`, waits for the node, serves until shutdown.
pub(crate) fn run(
    settings: launch::Settings,
    init_tx: Sender<std::result::Result<InitInfo, (bool, Error)>>,
    node_rx: Receiver<Arc<Node>>,
    out_rx: Receiver<Out>,
) {
    let est = match launch::establish(&settings) {
        Ok(e) => e,
        Err(e) => {
            let _ = init_tx.send(Err((false, e)));
            return;
        }
    };
    let info = match launch::handshake(&est) {
        Ok(info) => info,
        Err(e) => {
            use mpi::topology::Communicator as _;
            let _ = init_tx.send(Err((est.comm.rank() != 0, e)));
            finalize(est);
            return;
        }
    };
    let backoff = Duration::from_secs_f64(settings.backoff);
    let liveness = Liveness::new(settings.heartbeat);
    let _ = init_tx.send(Ok(info.clone()));
    let Ok(node) = node_rx.recv() else {
        finalize(est);
        return;
    };
    let now = Instant::now();
    let n = info.size as usize;
    let lost = node.lost_peers();
    let mut comm = Comm {
        rank: info.rank,
        size: info.size,
        node,
        out_rx,
        pending: Vec::new(),
        batches: BTreeMap::new(),
        backoff,
        shutdown: None,
        acked: vec![false; n],
        finalize_at: None,
        done: false,
        result: Ok(()),
        pids: info.pids.clone(),
        heard: vec![now; n],
        sent: vec![now; n],
        lost,
        liveness,
        next_watch: now,
        last_watch: now,
        ack_deadline: None,
    };
    comm.serve(&est.comm);
    comm.drain(&est.comm);
    let reply = comm.shutdown.take();
    let result = comm.result.clone();
    let any_lost = comm.lost.any();
    drop(comm);
    if any_lost {
        // MPI_Finalize waits for every process of the job, including the lost one: it would
        // never return. The process ends without it (rank 0 at exit, with a non-zero status).
        tracing::warn!("a rank was lost: MPI is left unfinalized");
        std::mem::forget(est);
    } else {
        tracing::info!(rank = info.rank, "finalizing MPI");
        finalize(est);
    }
    if let Some(r) = reply {
        let _ = r.send(result);
    }
}

fn finalize(est: Established) {
    // Communicators first (free / disconnect), then the universe (MPI_Finalize), all on this
    // thread.
    let Established {
        universe,
        comm,
        inter,
        ..
    } = est;
    crate::ffi::free_comm(comm);
    if let Some(inter) = inter {
        crate::ffi::free_intercomm(inter);
    }
    // A spawned worker frees its parent communicator too, so that the universe finds none to
    // disconnect.
    if let Some(parent) = universe.world().parent() {
        crate::ffi::free_intercomm(parent);
    }
    drop(universe);
}

struct Comm {
    rank: u32,
    size: u32,
    node: Arc<Node>,
    out_rx: Receiver<Out>,
    pending: Vec<SendReq>,
    batches: BTreeMap<u32, (Vec<Msg>, usize)>,
    backoff: Duration,
    shutdown: Option<Sender<Result<()>>>,
    /// Rank 0: workers that acknowledged shutdown.
    acked: Vec<bool>,
    finalize_at: Option<Instant>,
    done: bool,
    result: Result<()>,
    /// Each rank's process id, and whether this process can check it locally.
    pids: Vec<(u32, bool)>,
    /// When each rank last sent something here, and when this rank last sent to it.
    heard: Vec<Instant>,
    sent: Vec<Instant>,
    /// Ranks known to be gone (the process's one record): nothing is sent to them any more.
    lost: Arc<LostPeers>,
    liveness: Liveness,
    next_watch: Instant,
    last_watch: Instant,
    /// Rank 0, during shutdown: when it stops waiting for acknowledgements.
    ack_deadline: Option<Instant>,
}

impl Comm {
    fn serve(&mut self, comm: &SimpleCommunicator) {
        let _ = COMM_THREAD.set(std::thread::current());
        let mut last_active = Instant::now();
        while !self.done {
            // Outgoing: everything queued now, in order, batched per destination.
            let mut active = self.take_outgoing(comm);
            active |= self.flush(comm);
            self.progress_sends();
            active |= self.receive(comm);
            self.watch(comm);
            self.check_deadlines(comm);
            if active {
                last_active = Instant::now();
                continue;
            }
            if last_active.elapsed() < SPIN || !self.pending.is_empty() {
                std::thread::yield_now();
                continue;
            }
            // Idle: sleep until something is queued to send (`poke`) or `backoff` passes.
            // A plain park: no spinning or yielding first, which would take the CPU from the
            // process's other threads every `backoff` while it is quiet.
            PARKED.store(true, Ordering::SeqCst);
            if self.out_rx.is_empty() {
                std::thread::park_timeout(self.backoff);
            }
            PARKED.store(false, Ordering::SeqCst);
            match self.out_rx.try_recv() {
                Ok(o) => {
                    self.accept(o, comm);
                    last_active = Instant::now();
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    // Every handle to the node is gone: nothing can be sent any more.
                    if self.rank == 0 {
                        self.begin_shutdown(comm);
                    }
                    std::thread::sleep(self.backoff);
                }
            }
        }
    }

    /// Progress of non-blocking sends. A large send completes only once its peer's MPI took the
    /// bytes (a small one may complete into the local socket buffer and proves nothing), so its
    /// completion is a sign of life of a peer that is busy receiving a long transfer.
    fn progress_sends(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let heard = &mut self.heard;
        let mut now = None;
        self.pending.retain_mut(|r| {
            let done = r.test();
            if done && r.len() >= PROOF_OF_LIFE {
                if let Some(h) = heard.get_mut(r.dest() as usize) {
                    *h = *now.get_or_insert_with(Instant::now);
                }
            }
            !done
        });
    }

    /// Accepts what the node queued (at most a bounded number at a time, so that receiving
    /// keeps up); returns whether there was anything.
    fn take_outgoing(&mut self, comm: &SimpleCommunicator) -> bool {
        let mut taken = 0;
        while taken < 4096 {
            let Ok(o) = self.out_rx.try_recv() else {
                break;
            };
            self.accept(o, comm);
            taken += 1;
        }
        taken > 0
    }

    /// Receives the batches that arrived (a bounded number at a time) and dispatches their
    /// messages; returns whether there was anything.
    fn receive(&mut self, comm: &SimpleCommunicator) -> bool {
        let mut active = false;
        for _ in 0..64 {
            let Some((m, status)) = comm
                .any_process()
                .immediate_matched_probe_with_tag(TAG_CTRL)
            else {
                break;
            };
            active = true;
            let n = status.count(u8::equivalent_datatype()) as usize;
            let mut buf = vec![0u8; n];
            m.matched_receive_into(&mut buf[..]);
            let src = status.source_rank();
            if let Some(h) = self.heard.get_mut(src as usize) {
                *h = Instant::now();
            }
            match self.receive_batch(comm, src, &buf) {
                Ok(batch) => {
                    for msg in batch {
                        self.dispatch(src as u32, msg, comm);
                    }
                }
                Err(e) => {
                    tracing::error!(src, error = %e, "dropping an undecodable batch");
                }
            }
        }
        active
    }

    /// Decodes a batch from `src` and receives the segments it announces, straight into their
    /// final buffers. Between the pieces of a long transfer this rank keeps watching its peers
    /// and sending beacons, so that neither `src` nor a third rank takes it for lost.
    fn receive_batch(
        &mut self,
        comm: &SimpleCommunicator,
        src: i32,
        buf: &[u8],
    ) -> Result<Vec<Msg>> {
        let peer = comm.process_at_rank(src);
        wire::decode_batch(buf, |dst| {
            crate::ffi::prefer_huge_pages(dst);
            for r in wire::chunks(dst.len(), CHUNK) {
                let want = r.len();
                let status = peer.receive_into_with_tag(&mut dst[r], TAG_SEG);
                let got = status.count(u8::equivalent_datatype());
                if usize::try_from(got).ok() != Some(want) {
                    return Err(Error::backend(
                        "mpi",
                        format!(
                            "a value segment from rank {src} had {got} bytes where its batch \
                             announced {want}"
                        ),
                    ));
                }
                if let Some(h) = self.heard.get_mut(src as usize) {
                    *h = Instant::now();
                }
                self.watch(comm);
            }
            Ok(())
        })
    }

    /// Ends the shutdown handshake when its time is up: rank 0 stops waiting for
    /// acknowledgements, a worker stops waiting for rank 0's final message.
    fn check_deadlines(&mut self, comm: &SimpleCommunicator) {
        if self.ack_deadline.is_some_and(|d| Instant::now() >= d) {
            let missing: Vec<u32> = (1..self.size)
                .filter(|r| !self.acked[*r as usize] && !self.lost.contains(*r))
                .collect();
            tracing::warn!(?missing, "shutdown: not every worker acknowledged in time");
            self.result = Err(Error::backend(
                "mpi",
                format!(
                    "shutdown: workers {missing:?} of {} did not acknowledge within {:?}",
                    self.size - 1,
                    ACK_TIMEOUT
                ),
            ));
            self.finish_rank0(comm);
            self.ack_deadline = None;
        }
        if self.finalize_at.is_some_and(|d| Instant::now() >= d) {
            tracing::warn!("no final message from rank 0; finalizing anyway");
            self.done = true;
        }
    }

    fn accept(&mut self, o: Out, comm: &SimpleCommunicator) {
        match o {
            Out::Msg(dest, msg) => self.queue(dest, Msg::Node(msg)),
            Out::Shutdown(reply) => {
                if self.shutdown.is_none() {
                    self.shutdown = Some(reply);
                    self.begin_shutdown(comm);
                } else {
                    let _ = reply.send(Ok(()));
                }
            }
            Out::RawBench {
                iters,
                bytes,
                reply,
            } => {
                self.queue(1, ControlMsg::RawBench { iters, bytes }.into());
                self.flush(comm);
                let r = raw_bench_root(comm, iters, bytes);
                let _ = reply.send(r);
            }
        }
    }

    fn begin_shutdown(&mut self, comm: &SimpleCommunicator) {
        if self.ack_deadline.is_some() || self.done {
            return;
        }
        tracing::info!("shutdown: asking {} workers to stop", self.size - 1);
        self.node.stop_work();
        for r in 1..self.size {
            self.queue(r, ControlMsg::Shutdown.into());
        }
        self.flush(comm);
        if self.all_acked() {
            self.finish_rank0(comm);
        } else {
            self.ack_deadline = Some(Instant::now() + ACK_TIMEOUT);
        }
    }

    /// Checks the liveness of the peers this rank watches (rank 0 watches every worker, a
    /// worker watches rank 0) and sends beacons. A peer is lost when its process is seen gone
    /// (same host) or when it stays silent for the heartbeat bound.
    fn watch(&mut self, comm: &SimpleCommunicator) {
        let now = Instant::now();
        if now < self.next_watch {
            return;
        }
        let gap = now.duration_since(self.last_watch);
        self.last_watch = now;
        self.next_watch = now + WATCH_EVERY;
        if gap > self.liveness.gap.max(self.backoff * 3) {
            self.heard.fill(now);
        }
        let peers: Vec<u32> = if self.rank == 0 {
            (1..self.size).collect()
        } else {
            vec![0]
        };
        for p in peers {
            let i = p as usize;
            if self.lost.contains(p) {
                continue;
            }
            let (pid, local) = self.pids[i];
            if local && !crate::ffi::process_alive(pid) {
                self.lose(p, format!("its process {pid} ended"), comm);
            } else if now.duration_since(self.heard[i]) > self.liveness.silence {
                self.lose(p, self.liveness.silent(), comm);
            } else if now.duration_since(self.sent[i]) > self.liveness.beacon && !self.done {
                self.queue(p, ControlMsg::Alive.into());
                self.flush(comm);
            }
        }
    }

    /// Rank `peer` is gone. Rank 0 tells the other workers and fails what only `peer` could
    /// deliver; a worker that lost rank 0 can never be shut down and exits.
    fn lose(&mut self, peer: u32, why: String, comm: &SimpleCommunicator) {
        if peer >= self.size || !self.lost.mark(peer, &why) {
            return;
        }
        self.batches.remove(&peer);
        let (gone, keep): (Vec<SendReq>, Vec<SendReq>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|r| r.dest() == peer);
        self.pending = keep;
        for r in gone {
            r.abandon();
        }
        tracing::error!(rank = peer, why = %why, "rank lost");
        if self.rank != 0 {
            if self.finalize_at.is_some() {
                // Shutdown was under way: end without waiting for rank 0's final message.
                self.done = true;
                return;
            }
            crate::process::exit_after_losing_root(&why);
        }
        self.result = Err(Error::backend(
            "mpi",
            format!("worker rank {peer} was lost ({why})"),
        ));
        for r in 1..self.size {
            if r != peer {
                let why = why.clone();
                self.queue(r, ControlMsg::PeerLost { rank: peer, why }.into());
            }
        }
        self.flush(comm);
        self.node.peer_lost(peer, &why);
        self.finish_if_all_acked(comm);
    }

    /// Rank 0: whether every worker still there acknowledged shutdown.
    fn all_acked(&self) -> bool {
        (1..self.size).all(|r| self.acked[r as usize] || self.lost.contains(r))
    }

    fn finish_rank0(&mut self, comm: &SimpleCommunicator) {
        for r in 1..self.size {
            self.queue(r, ControlMsg::Finalize.into());
        }
        self.flush(comm);
        self.done = true;
    }

    fn queue(&mut self, dest: u32, mut msg: Msg) {
        if self.lost.contains(dest) {
            tracing::debug!(dest, "dropping a message to a lost rank");
            return;
        }
        let w = msg.inline_weight();
        let b = self.batches.entry(dest).or_default();
        b.0.push(msg);
        b.1 += w;
    }

    /// Sends every queued batch; returns whether anything was sent.
    fn flush(&mut self, comm: &SimpleCommunicator) -> bool {
        if self.batches.is_empty() {
            return false;
        }
        let batches = std::mem::take(&mut self.batches);
        for (dest, (msgs, _)) in batches {
            if dest == self.rank {
                // Only the node addresses this rank itself; control traffic goes to peers.
                for m in msgs {
                    if let Msg::Node(m) = m {
                        self.node.handle(self.rank, m);
                    }
                }
                continue;
            }
            // Large batches are split so that the control message stays small.
            let mut part = Vec::new();
            let mut weight = 0;
            for mut m in msgs {
                weight += m.inline_weight();
                part.push(m);
                if weight >= BATCH_BYTES {
                    self.send_batch(dest, std::mem::take(&mut part), comm);
                    weight = 0;
                }
            }
            if !part.is_empty() {
                self.send_batch(dest, part, comm);
            }
        }
        true
    }

    fn send_batch(&mut self, dest: u32, mut msgs: Vec<Msg>, comm: &SimpleCommunicator) {
        let (ctrl, segs) = match wire::encode_batch(&mut msgs) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(dest, error = %e, "a batch could not be encoded");
                return;
            }
        };
        if let Some(t) = self.sent.get_mut(dest as usize) {
            *t = Instant::now();
        }
        let mut start = |keep: Keep, tag: i32| match SendReq::start(keep, dest as i32, tag, comm) {
            Ok(r) => self.pending.push(r),
            Err(code) => tracing::error!(dest, code, "MPI_Isend failed"),
        };
        start(Keep::Owned(ctrl), TAG_CTRL);
        for s in segs {
            for r in wire::chunks(s.bytes().len(), CHUNK) {
                start(Keep::Segment(s.clone(), r), TAG_SEG);
            }
        }
    }

    /// Hands a received message to its owner: the node, or this thread for control traffic.
    fn dispatch(&mut self, src: u32, msg: Msg, comm: &SimpleCommunicator) {
        match msg {
            Msg::Node(m) => self.node.handle(src, m),
            Msg::Control(c) => self.control(src, c, comm),
        }
    }

    fn control(&mut self, src: u32, msg: ControlMsg, comm: &SimpleCommunicator) {
        match msg {
            ControlMsg::ShutdownAck => {
                if let Some(a) = self.acked.get_mut(src as usize) {
                    *a = true;
                }
                self.finish_if_all_acked(comm);
            }
            ControlMsg::Shutdown => {
                tracing::info!("shutdown requested by rank {src}");
                self.node.stop_work();
                self.queue(0, ControlMsg::ShutdownAck.into());
                self.flush(comm);
                self.finalize_at = Some(Instant::now() + FINALIZE_TIMEOUT);
            }
            ControlMsg::Finalize => self.done = true,
            ControlMsg::Alive => {}
            ControlMsg::PeerLost { rank, why } => {
                if self.lost.mark(rank, &why) {
                    self.node.peer_lost(rank, &why);
                }
            }
            ControlMsg::RawBench { iters, bytes } => {
                self.flush(comm);
                raw_bench_peer(comm, iters, bytes);
            }
        }
    }

    /// Rank 0, during shutdown: finalizes once every worker still there acknowledged.
    fn finish_if_all_acked(&mut self, comm: &SimpleCommunicator) {
        if self.ack_deadline.is_some() && self.all_acked() {
            self.ack_deadline = None;
            self.finish_rank0(comm);
        }
    }

    /// Completes pending sends, giving up after [`DRAIN_TIMEOUT`] (a peer that is gone never
    /// receives).
    fn drain(&mut self, comm: &SimpleCommunicator) {
        self.flush(comm);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while !self.pending.is_empty() && Instant::now() < deadline {
            self.progress_sends();
            // Keep receiving so that peers blocked on us can finish their sends too.
            while let Some((m, status)) = comm.any_process().immediate_matched_probe() {
                let n = status.count(u8::equivalent_datatype()) as usize;
                let mut buf = vec![0u8; n];
                m.matched_receive_into(&mut buf[..]);
            }
            std::thread::yield_now();
        }
        for r in self.pending.drain(..) {
            r.abandon();
        }
    }
}

/// Rank 0's side of the raw floors: `iters` 8-byte ping-pongs, then 3 transfers of `bytes`
/// each acknowledged by 8 bytes. Returns (half round trip, bandwidth).
fn raw_bench_root(comm: &SimpleCommunicator, iters: u32, bytes: u64) -> (f64, f64) {
    let peer = comm.process_at_rank(1);
    let mut small = [0u8; 8];
    for _ in 0..iters.min(100) {
        peer.send_with_tag(&small[..], TAG_RAW);
        peer.receive_into_with_tag(&mut small[..], TAG_RAW);
    }
    let t = Instant::now();
    for _ in 0..iters {
        peer.send_with_tag(&small[..], TAG_RAW);
        peer.receive_into_with_tag(&mut small[..], TAG_RAW);
    }
    let half_rtt = t.elapsed().as_secs_f64() / f64::from(iters.max(1)) / 2.0;
    let big = vec![1u8; bytes as usize];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for r in wire::chunks(big.len(), CHUNK) {
            peer.send_with_tag(&big[r], TAG_RAW);
        }
        peer.receive_into_with_tag(&mut small[..], TAG_RAW);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (half_rtt, bytes as f64 / best)
}

fn raw_bench_peer(comm: &SimpleCommunicator, iters: u32, bytes: u64) {
    let peer = comm.process_at_rank(0);
    let mut small = [0u8; 8];
    for _ in 0..iters + iters.min(100) {
        peer.receive_into_with_tag(&mut small[..], TAG_RAW);
        peer.send_with_tag(&small[..], TAG_RAW);
    }
    let mut big = vec![0u8; bytes as usize];
    for _ in 0..3 {
        for r in wire::chunks(big.len(), CHUNK) {
            peer.receive_into_with_tag(&mut big[r], TAG_RAW);
        }
        peer.send_with_tag(&small[..], TAG_RAW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacons_and_listening_gaps_follow_the_heartbeat() {
        let l = Liveness::new(10.0);
        assert_eq!(l.silence, Duration::from_secs(10));
        assert_eq!(l.beacon, Duration::from_secs(1));
        assert_eq!(l.gap, Duration::from_secs(5));
        let short = Liveness::new(2.0);
        assert_eq!(short.beacon, Duration::from_millis(500));
        assert_eq!(short.gap, Duration::from_secs(1));
        let long = Liveness::new(600.0);
        assert_eq!((long.beacon, long.gap), (l.beacon, l.gap));
    }

    #[test]
    fn a_silent_peer_is_said_to_have_stopped_answering() {
        let why = Liveness::new(3.0).silent();
        assert!(
            why.starts_with("it stopped answering: no message from it for 3 s"),
            "{why}"
        );
        assert!(!why.contains("ended"), "{why}");
        assert!(Liveness::new(2.5).silent().contains("for 2.5 s"));
    }
}
