//! The wire format between ranks: the messages, their batching into one control message per
//! destination, and the segments (large inline bodies and out-of-band buffers) that follow it.
//!
//! One logical send to a rank is:
//! 1. one message on [`TAG_CTRL`]: the encoded `Vec<Msg>` (a batch), never larger than a few MiB;
//! 2. then, on [`TAG_SEG`], every segment the batch refers to, in order: for each value payload
//!    of each message, its inline bytes when they exceed [`INLINE_MAX`], then each out-of-band
//!    buffer. A segment longer than [`CHUNK`] bytes travels as several messages, so that MPI's
//!    `int` counts never overflow.
//!
//! The receiver decodes the batch, learns every segment length from it, and receives the
//! segments straight into their final buffers (out-of-band buffers are allocated with their
//! element type, so the value takes them over without a copy). MPI keeps messages of one
//! (source, tag) pair in order, and each rank has a single sending thread, so the segments of a
//! batch are the next [`TAG_SEG`] messages from that source.
// The fuzz crate compiles this file by path and re-exports its items, so they stay `pub` although
// nothing outside this crate reaches them here.
#![allow(unreachable_pub)]

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unidist_core::{ActorId, DeadReason, Error, ErrorKind, ObjectId, TaskError};
use unidist_serialize::{ElemType, Encoded, OobBuffer};

/// Tag of batch (control) messages.
pub const TAG_CTRL: i32 = 11;
/// Tag of segment messages that follow a batch.
pub const TAG_SEG: i32 = 12;
/// Tag of the raw ping-pong used by the benchmark floor.
pub const TAG_RAW: i32 = 13;
/// Largest MPI message of a segment: below `i32::MAX`, so that counts fit a C `int`, and small
/// enough that each piece of a long transfer completes well within the liveness bound, so that
/// both ends keep seeing each other alive while gigabytes cross a slow link.
pub const CHUNK: usize = 64 << 20;
/// Inline bodies up to this size travel inside the batch; larger ones as a segment.
pub const INLINE_MAX: usize = 64 * 1024;
/// A batch stops growing once its inline payloads reach this many bytes.
pub const BATCH_BYTES: usize = 4 << 20;

/// An encoded value inside a message: in memory on the sending side, a description of its
/// parts right after decoding on the receiving side, until its segments are received.
#[derive(Debug, Clone)]
pub enum Slot {
    /// The full value.
    Ready(Arc<Encoded>),
    /// Inline bytes (if small) and the lengths of the segments still to receive.
    Wire(WireDesc),
}

impl Slot {
    /// The value; only valid once segments are received.
    pub fn ready(&self) -> Option<&Arc<Encoded>> {
        match self {
            Slot::Ready(e) => Some(e),
            Slot::Wire(_) => None,
        }
    }
}

/// How the inline bytes of a value travel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum InlineDesc {
    /// Inside the batch.
    Bytes(serde_bytes::ByteBuf),
    /// As a segment of this length.
    Segment(u64),
}

/// The wire description of a [`Slot`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireDesc {
    /// The inline bytes, or their segment length.
    pub inline: InlineDesc,
    /// Element type and byte length of each out-of-band buffer.
    pub buffers: Vec<(ElemType, u64)>,
}

#[derive(Serialize)]
enum InlineRef<'a> {
    Bytes(&'a serde_bytes::Bytes),
    Segment(u64),
}

#[derive(Serialize)]
struct WireDescRef<'a> {
    inline: InlineRef<'a>,
    buffers: Vec<(ElemType, u64)>,
}

impl Serialize for Slot {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Slot::Ready(e) => {
                let inline = if e.inline.len() <= INLINE_MAX {
                    InlineRef::Bytes(serde_bytes::Bytes::new(&e.inline))
                } else {
                    InlineRef::Segment(e.inline.len() as u64)
                };
                let buffers = e
                    .buffers
                    .iter()
                    .map(|b| (b.elem(), b.len() as u64))
                    .collect();
                WireDescRef { inline, buffers }.serialize(s)
            }
            Slot::Wire(d) => d.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Slot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WireDesc::deserialize(d).map(Slot::Wire)
    }
}

/// An error carried across ranks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireError {
    /// A task or actor method failed.
    Task(TaskError),
    /// Any other error, as its kind and message.
    Other(ErrorKind, String),
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::Task(t) => WireError::Task((**t).clone()),
            other => {
                let (kind, message) = other.to_remote();
                WireError::Other(kind, message)
            }
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Task(t) => Error::Task(Arc::new(t)),
            WireError::Other(kind, message) => Error::Remote { kind, message },
        }
    }
}

/// One argument of a call on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ArgWire {
    /// A value given directly.
    Value(Slot),
    /// A ref: fetch it from `from` (its location if the sender knew it, else its owner).
    Ref { id: ObjectId, from: u32 },
    /// A ref that holds an error (a stale ref, or a failed one): the call fails without
    /// running, with this error for its argument.
    Failed(WireError),
    /// A large value given directly, written into a shared-memory segment of the receiver's
    /// host. The sender registered one reader of it for the receiver, who keeps that
    /// registration while it uses the value (see the backend's `shm.rs`).
    Shared(SegDesc),
}

/// The result of one output of a finished call: its size, or its error.
pub type OutResult = Result<u64, WireError>;

/// A message between ranks: the node's traffic or the communication threads' own. Both travel
/// in one ordered stream per destination. The source rank is known from MPI and passed beside
/// it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Msg {
    /// Objects, calls and actors: handled by the node.
    Node(NodeMsg),
    /// Beacons, the shutdown handshake and lost ranks: handled by the communication thread.
    Control(ControlMsg),
}

impl From<NodeMsg> for Msg {
    fn from(m: NodeMsg) -> Msg {
        Msg::Node(m)
    }
}

impl From<ControlMsg> for Msg {
    fn from(m: ControlMsg) -> Msg {
        Msg::Control(m)
    }
}

/// The node's traffic: objects, calls and actors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeMsg {
    /// Run function `func` (an index into the shared registry table); report to the source.
    Task {
        seq: u64,
        func: u32,
        args: Vec<ArgWire>,
        outputs: Vec<ObjectId>,
    },
    /// Create an actor of class `class` here.
    ActorCreate {
        actor: ActorId,
        class: u32,
        args: Vec<ArgWire>,
        seq: u64,
    },
    /// Call method `method` of an actor living here; report to the source.
    ActorCall {
        actor: ActorId,
        method: u32,
        args: Vec<ArgWire>,
        outputs: Vec<ObjectId>,
        seq: u64,
    },
    /// End an actor: `now` drops queued calls, otherwise it ends after them.
    ActorKill { actor: ActorId, now: bool },
    /// Where does this actor live? (to its owner)
    ActorLocate { actor: ActorId },
    /// Answer to `ActorLocate`: its worker, or why it is gone.
    ActorWhere {
        actor: ActorId,
        worker: Result<u32, DeadReason>,
    },
    /// A handle to the actor reached another process: never end it on release.
    ActorPin { actor: ActorId },
    /// A call the source sent finished.
    Done { seq: u64, results: Vec<OutResult> },
    /// Data of an object pushed by its owner ahead of a task that needs it.
    Push { id: ObjectId, value: Slot },
    /// Send object `id` to `requester` when it is ready (forwarded by an owner to the location).
    Fetch { id: ObjectId, requester: u32 },
    /// The data of an object.
    Data { id: ObjectId, value: Slot },
    /// The object failed (its task failed) or is gone.
    Failed { id: ObjectId, error: WireError },
    /// Tell the source when object `id` is ready (to its owner).
    Subscribe { id: ObjectId },
    /// Object `id` is ready at `loc`, or failed.
    Ready {
        id: ObjectId,
        loc: u32,
        error: Option<WireError>,
    },
    /// Objects to free (to their location, which forwards to ranks holding copies).
    Free { ids: Vec<ObjectId> },
    /// The source registers (+1) or drops (-1) a reference to an object owned here.
    Borrow { id: ObjectId, delta: i32 },
    /// The data of an object, in a shared-memory segment on the receiver's host: `Push` or
    /// `Data` (as `push` says) for a receiver that can map it (see `shm.rs`).
    Shared {
        id: ObjectId,
        push: bool,
        seg: SegDesc,
    },
    /// The call with sequence number `seq` that follows from the source continues timeline
    /// flow `flow` (sent just before the call, only while the timeline records).
    Flow { seq: u64, flow: u64 },
    /// Rank 0 to a worker, at init while the timeline records: answer with the time on your
    /// clock now (the ping of the clock alignment); start recording if not yet.
    ClockPing { ask: u64 },
    /// Answer to `ClockPing`: the worker's clock (nanoseconds since its time origin).
    ClockPong { ask: u64, at_ns: u64 },
    /// Rank 0 to a worker: send your counters (`unidist::stats()`).
    StatsAsk { ask: u64 },
    /// Answer to `StatsAsk`.
    StatsReply {
        ask: u64,
        stats: unidist_core::observe::WorkerStats,
    },
    /// Rank 0 to a worker: send your timeline recording.
    TraceAsk { ask: u64 },
    /// Answer to `TraceAsk`: the encoded `ProcessTrace`, as a value so that a long recording
    /// travels as a segment, not inside the batch.
    TraceReply { ask: u64, trace: Slot },
    /// [`NodeMsg::Task`] with fault-tolerance options (retries, a time limit): sent instead of
    /// `Task` when any is set, so a task without options travels as before.
    TaskWith {
        seq: u64,
        func: u32,
        args: Vec<ArgWire>,
        outputs: Vec<ObjectId>,
        options: WireOptions,
    },
    /// Cancel the call numbered `seq` that the source sent here (`unidist::cancel`).
    Cancel { seq: u64 },
    /// Cancel the call that produces `id` (to its owner, which routes it to the call's rank).
    CancelRef { id: ObjectId },
    /// Pause (`on: false`) or resume the timeline recorder of a worker (rank 0 to workers).
    RecordSwitch { ask: u64, on: bool },
    /// Answer to `RecordSwitch`: the worker's recorder is as asked.
    RecordSwitched { ask: u64 },
    /// Answers rank 0's fetch of `id` from a rank of its host: the value lies in the sender's
    /// memory, where rank 0 reads it directly (see [`PeerDesc`]); the sender keeps it there,
    /// unchanged, until the object is freed.
    PeerRead { id: ObjectId, desc: PeerDesc },
    /// Rank 0 to a rank of its host: reading that rank's memory failed, so answer fetches
    /// with the value itself (a segment or the bytes) from now on.
    PeerReadOff,
}

/// Where an object's encoding lies in the memory of the process that holds it, for rank 0 of
/// the same host to read with `process_vm_readv`: one copy from the holder's memory into the
/// value `get` returns, where a segment costs a copy into it and one out of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerDesc {
    /// The holder's process id.
    pub pid: u32,
    /// Where the holder keeps its peer token, and the token: read back after the bytes, so a
    /// reader notices a holder that ended while it read (and a process id used again).
    pub token_at: u64,
    pub token: u64,
    /// The inline bytes (small: at most [`INLINE_MAX`]).
    pub inline: Vec<u8>,
    /// Each out-of-band buffer: element type, address in the holder's memory, length in bytes.
    pub buffers: Vec<(ElemType, u64, u64)>,
}

/// At most this many buffers in a [`PeerDesc`].
pub const PEER_BUFFERS_MAX: usize = 1024;

impl PeerDesc {
    /// Checks the fields that come from a peer before anything is read or allocated: the
    /// inline bytes within [`INLINE_MAX`], at most [`PEER_BUFFERS_MAX`] buffers, each a whole
    /// number of elements whose address range does not wrap, and `pid` the process id this
    /// rank knows for the sender (`expected_pid`).
    pub fn check(&self, expected_pid: u32) -> Result<(), Error> {
        let corrupt = |what: &str| {
            Err(Error::backend(
                "mpi",
                format!(
                    "a descriptor of a value in process {}'s memory is invalid: {what}",
                    self.pid
                ),
            ))
        };
        if self.pid != expected_pid {
            return corrupt(&format!(
                "the sender's process id is {expected_pid}, not {}",
                self.pid
            ));
        }
        if self.inline.len() > INLINE_MAX {
            return corrupt(&format!(
                "{} inline bytes, at most {INLINE_MAX} are accepted",
                self.inline.len()
            ));
        }
        if self.buffers.len() > PEER_BUFFERS_MAX {
            return corrupt(&format!(
                "{} buffers, at most {PEER_BUFFERS_MAX} are accepted",
                self.buffers.len()
            ));
        }
        for &(elem, at, len) in &self.buffers {
            if at.checked_add(len).is_none() || usize::try_from(len).is_err() {
                return corrupt(&format!("a buffer of {len} bytes at {at:#x} wraps around"));
            }
            if len % elem.size() as u64 != 0 {
                return corrupt(&format!(
                    "a buffer of {len} bytes is not a whole number of {elem:?} elements"
                ));
            }
        }
        Ok(())
    }

    /// The bytes of the value: its inline bytes and what its buffers hold.
    pub fn total_len(&self) -> u64 {
        self.buffers
            .iter()
            .fold(self.inline.len() as u64, |sum, (_, _, len)| {
                sum.saturating_add(*len)
            })
    }
}

/// The fault-tolerance options of a task on the wire (see `TaskOptions` in core).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireOptions {
    /// Runs after the first one.
    pub max_retries: u32,
    /// Re-run a body that panicked.
    pub retry_exceptions: bool,
    /// The time limit of one run, in nanoseconds.
    pub timeout_nanos: Option<u64>,
    /// Runs already made on workers that were lost (they count against `max_retries`).
    pub runs: u32,
}

/// The communication threads' own traffic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlMsg {
    /// Stop accepting work and acknowledge (rank 0 to workers).
    Shutdown,
    /// A worker stopped (worker to rank 0).
    ShutdownAck,
    /// Finalize MPI and exit (rank 0 to workers).
    Finalize,
    /// Run the raw ping-pong floor with rank 0.
    RawBench { iters: u32, bytes: u64 },
    /// Liveness beacon, sent when nothing else went to the peer for a while.
    Alive,
    /// Rank `rank` is lost (its process ended or fell silent); rank 0 to the other workers.
    PeerLost { rank: u32, why: String },
}

impl Msg {
    /// The value slots of this message in wire order.
    pub fn slots_mut(&mut self) -> Vec<&mut Slot> {
        fn args(a: &mut [ArgWire]) -> Vec<&mut Slot> {
            a.iter_mut()
                .filter_map(|a| match a {
                    ArgWire::Value(s) => Some(s),
                    ArgWire::Ref { .. } | ArgWire::Failed(_) | ArgWire::Shared(_) => None,
                })
                .collect()
        }
        match self {
            Msg::Node(NodeMsg::Task { args: a, .. })
            | Msg::Node(NodeMsg::ActorCreate { args: a, .. })
            | Msg::Node(NodeMsg::ActorCall { args: a, .. }) => args(a),
            Msg::Node(NodeMsg::TaskWith { args: a, .. }) => args(a),
            Msg::Node(NodeMsg::Push { value, .. } | NodeMsg::Data { value, .. }) => vec![value],
            Msg::Node(NodeMsg::TraceReply { trace, .. }) => vec![trace],
            _ => Vec::new(),
        }
    }

    /// Bytes of inline payload this message puts into its batch (for batch sizing).
    pub fn inline_weight(&mut self) -> usize {
        let peer = match self {
            Msg::Node(NodeMsg::PeerRead { desc, .. }) => desc.inline.len(),
            _ => 0,
        };
        peer + self
            .slots_mut()
            .iter()
            .map(|s| match s {
                Slot::Ready(e) if e.inline.len() <= INLINE_MAX => e.inline.len(),
                _ => 0,
            })
            .sum::<usize>()
            + 64
    }
}

/// Where an object's encoding lies in a shared-memory segment of the receiver's host: the
/// small message a same-host rank gets instead of the bytes (see the backend's `shm.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegDesc {
    /// The shared-memory object's name.
    pub name: String,
    /// Which use of the segment this is: a segment is reused for another object once nobody
    /// reads it, and a descriptor of an earlier use no longer opens it.
    pub gen: u64,
    /// The segment's size in bytes.
    pub len: u64,
    /// Length of the inline bytes (at offset [`SEG_HEADER`], after the segment's header).
    pub inline: u64,
    /// Each out-of-band buffer: element type, offset and length in bytes.
    pub buffers: Vec<(ElemType, u64, u64)>,
}

/// Bytes at the start of every segment before its inline bytes: the header the processes that
/// map it share (its tag, the use it holds and its readers; see the backend's `shm.rs`).
pub const SEG_HEADER: u64 = 64;

/// The longest segment name accepted (POSIX `NAME_MAX`).
const SEG_NAME_MAX: usize = 255;

impl SegDesc {
    /// The inline range and each buffer's element type and range, checked against the
    /// `mapped` size of the segment: every field comes from a peer and is untrusted.
    #[allow(clippy::type_complexity)]
    pub fn ranges(
        &self,
        mapped: u64,
    ) -> Result<(Range<usize>, Vec<(ElemType, Range<usize>)>), Error> {
        self.check_name()?;
        if self.len != mapped {
            return Err(self.corrupt(&format!(
                "it claims {} bytes, the segment has {mapped}",
                self.len
            )));
        }
        let range = |off: u64, len: u64| -> Option<Range<usize>> {
            let end = off.checked_add(len)?;
            if end > mapped {
                return None;
            }
            Some(usize::try_from(off).ok()?..usize::try_from(end).ok()?)
        };
        let inline = range(SEG_HEADER, self.inline)
            .ok_or_else(|| self.corrupt("the inline bytes lie outside the segment"))?;
        let mut buffers = Vec::with_capacity(self.buffers.len().min(1024));
        for &(elem, off, len) in &self.buffers {
            if off < SEG_HEADER {
                return Err(self.corrupt("a buffer overlaps the segment's header"));
            }
            let r =
                range(off, len).ok_or_else(|| self.corrupt("a buffer lies outside the segment"))?;
            if r.len() % elem.size() != 0 {
                return Err(self.corrupt("a buffer is not a whole number of elements"));
            }
            buffers.push((elem, r));
        }
        Ok((inline, buffers))
    }

    /// Checks that the name is one of this project's segment names (before it is opened).
    pub fn check_name(&self) -> Result<(), Error> {
        let valid = self
            .name
            .strip_prefix("/unidist-")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
            && self.name.len() <= SEG_NAME_MAX;
        if valid {
            Ok(())
        } else {
            Err(self.corrupt("the name is not one of this project's segments"))
        }
    }

    /// The error of a descriptor that does not fit its segment.
    pub fn corrupt(&self, what: &str) -> Error {
        Error::backend(
            "mpi",
            format!(
                "a shared-memory descriptor for {:?} is invalid: {what}",
                self.name
            ),
        )
    }
}

impl SegDesc {
    /// The encoding held by the segment this descriptor names, whose bytes `map` keeps alive:
    /// the inline bytes copied out (they are small), each buffer a view of `map` that a
    /// `Buffer<T>` reads in place. Every field of the descriptor is checked against the size
    /// of `map` first, and the bytes themselves are as untrusted as received ones.
    pub fn encoding<M: AsRef<[u8]> + Send + Sync + 'static>(
        &self,
        map: Arc<M>,
    ) -> Result<Encoded, Error> {
        let (inline, ranges) = self.ranges((*map).as_ref().len() as u64)?;
        let inline = (*map).as_ref()[inline].to_vec();
        let mut buffers = Vec::with_capacity(ranges.len());
        for (elem, range) in ranges {
            let view = Arc::new(SegView {
                map: map.clone(),
                range,
            });
            let b = OobBuffer::from_owner(elem, view)
                .map_err(|e| self.corrupt(&format!("a buffer is invalid: {e}")))?;
            buffers.push(b);
        }
        Ok(Encoded { inline, buffers })
    }
}

/// One byte range of a segment's bytes, keeping them alive for the buffers read from it.
struct SegView<M> {
    map: Arc<M>,
    range: Range<usize>,
}

impl<M: AsRef<[u8]>> AsRef<[u8]> for SegView<M> {
    fn as_ref(&self) -> &[u8] {
        &(*self.map).as_ref()[self.range.clone()]
    }
}

/// Bytes to send after a batch, sharing storage with the message's values (no copy).
#[derive(Clone)]
pub enum Segment {
    /// The inline bytes of a value.
    Inline(Arc<Encoded>),
    /// Out-of-band buffer `i` of a value.
    Buffer(Arc<Encoded>, usize),
}

impl Segment {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Segment::Inline(e) => &e.inline,
            Segment::Buffer(e, i) => e.buffers[*i].as_bytes(),
        }
    }
}

/// Encodes a batch: the control bytes and the segments to send after them.
pub fn encode_batch(batch: &mut Vec<Msg>) -> Result<(Vec<u8>, Vec<Segment>), Error> {
    let mut segments = Vec::new();
    for m in batch.iter_mut() {
        for s in m.slots_mut() {
            if let Slot::Ready(e) = s {
                if e.inline.len() > INLINE_MAX {
                    segments.push(Segment::Inline(e.clone()));
                }
                for i in 0..e.buffers.len() {
                    segments.push(Segment::Buffer(e.clone(), i));
                }
            }
        }
    }
    let bytes = unidist_serialize::encode(&*batch)?;
    Ok((bytes, segments))
}

/// Splits a length into chunk lengths (none for 0).
pub fn chunks(len: usize, chunk: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..len.div_ceil(chunk)).map(move |i| i * chunk..((i + 1) * chunk).min(len))
}

/// Decodes a batch, then fills every slot by receiving its segments in order with `recv`
/// (which receives exactly `buf.len()` bytes of the next segment, chunked as the sender did).
pub fn decode_batch(
    bytes: &[u8],
    mut recv: impl FnMut(&mut [u8]) -> Result<(), Error>,
) -> Result<Vec<Msg>, Error> {
    let mut batch: Vec<Msg> = unidist_serialize::decode(bytes)?;
    for m in batch.iter_mut() {
        for s in m.slots_mut() {
            let Slot::Wire(desc) = s else { continue };
            let inline = match std::mem::replace(&mut desc.inline, InlineDesc::Segment(0)) {
                InlineDesc::Bytes(b) => b.into_vec(),
                InlineDesc::Segment(n) => {
                    let mut v = receive_buffer(n)?;
                    recv(&mut v)?;
                    v
                }
            };
            let mut buffers = Vec::with_capacity(desc.buffers.len());
            for &(elem, n) in &desc.buffers {
                let mut b = OobBuffer::zeroed(elem, usize::try_from(n).map_err(|_| too_big(n))?)?;
                let dst = b.as_bytes_mut().ok_or_else(|| {
                    Error::backend("mpi", "a freshly allocated receive buffer is shared")
                })?;
                recv(dst)?;
                buffers.push(b);
            }
            *s = Slot::Ready(Arc::new(Encoded { inline, buffers }));
        }
    }
    Ok(batch)
}

/// A zeroed buffer of `n` bytes to receive a segment into.
///
/// `n` comes from the peer, so a length that cannot be allocated (a corrupted one) must be an
/// error: `vec![0; n]` would abort the process. The allocation is fallible and still takes the
/// allocator's already-zeroed pages (no memset of a large segment).
fn receive_buffer(n: u64) -> Result<Vec<u8>, Error> {
    let len = usize::try_from(n).map_err(|_| too_big(n))?;
    unidist_serialize::zeroed_bytes(len).map_err(|_| too_big(n))
}

fn too_big(n: u64) -> Error {
    Error::backend(
        "mpi",
        format!("a segment of {n} bytes does not fit in memory"),
    )
}

#[cfg(test)]
mod tests;
