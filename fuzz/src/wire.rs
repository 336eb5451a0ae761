//! The MPI receive-path fuzz target's body: what the communication thread does with the bytes
//! of a control message and the segments that follow it.
//!
//! The wire module of `unidist-mpi` uses no MPI call (receiving is a closure), so it is compiled
//! here from its source file: the target exercises exactly the code the backend runs, without
//! linking MPI.
//!
//! Input layout: `[flags][ctrl_len: u16 LE][ctrl bytes][segment stream]`. With flag bit 0 set
//! the control bytes are the body only and get the header of `Vec<Msg>` in front (the header
//! names the type by its path, which differs between this crate and the backend, so seeds are
//! written in this form to replay in both). Segments are served from the stream in order, as
//! MPI would deliver them; a stream that runs dry is a receive error. What is left of the
//! stream after the batch is the content of the shared-memory segment its descriptors name:
//! rebuilt into an encoding with the backend's own code (`SegDesc::encoding`, whose buffers a
//! `Buffer<T>` reads in place) and decoded, as a rank of the segment's host would.

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../crates/unidist-mpi/src/wire.rs"]
mod mpi_wire;

pub use mpi_wire::{
    decode_batch, encode_batch, ArgWire, ControlMsg, Msg, NodeMsg, PeerDesc, SegDesc, Slot,
    WireError, INLINE_MAX, PEER_BUFFERS_MAX, SEG_HEADER,
};

use unidist_core::Error;
use unidist_serialize::{decode_with_oob, encode, Buffer, Encoded, HEADER_LEN};

/// Splits an input into its control bytes (framed if asked) and its segment stream.
pub fn split(data: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let (&[flags, lo, hi], rest) = data.split_first_chunk::<3>()?;
    let len = usize::from(u16::from_le_bytes([lo, hi])).min(rest.len());
    let (ctrl, stream) = rest.split_at(len);
    let ctrl = if flags & 1 == 1 {
        let mut framed = encode(&Vec::<Msg>::new()).expect("an empty batch encodes");
        framed.truncate(HEADER_LEN);
        framed.extend_from_slice(ctrl);
        framed
    } else {
        ctrl.to_vec()
    };
    Some((ctrl, stream))
}

/// Runs one input; panics only on a bug. Returns whether the batch decoded.
pub fn run(data: &[u8]) -> bool {
    let Some((ctrl, mut stream)) = split(data) else {
        return false;
    };
    let received = decode_batch(&ctrl, |dst| {
        if dst.len() > stream.len() {
            return Err(Error::backend("mpi", "the segment stream ran dry"));
        }
        let (head, tail) = stream.split_at(dst.len());
        dst.copy_from_slice(head);
        stream = tail;
        Ok(())
    });
    let Ok(mut batch) = received else {
        return false;
    };
    let segment = std::sync::Arc::new(stream.to_vec());
    // A shared-memory descriptor is checked against the size of the segment it names before
    // anything is read: against its own claim and against a small segment.
    // Descriptors come in `Shared` messages and as call arguments.
    let descs = batch.iter().flat_map(|msg| -> Vec<&SegDesc> {
        match msg {
            Msg::Node(NodeMsg::Shared { seg, .. }) => vec![seg],
            Msg::Node(
                NodeMsg::Task { args, .. }
                | NodeMsg::TaskWith { args, .. }
                | NodeMsg::ActorCall { args, .. }
                | NodeMsg::ActorCreate { args, .. },
            ) => args
                .iter()
                .filter_map(|a| match a {
                    ArgWire::Shared(seg) => Some(seg),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    });
    for seg in descs {
        {
            if let Ok((inline, buffers)) = seg.ranges(seg.len) {
                let size = usize::try_from(seg.len).unwrap_or(usize::MAX);
                assert!(inline.end <= size && buffers.iter().all(|(_, r)| r.end <= size));
            }
            let _ = seg.ranges(4096);
            // The segment's bytes, as claimed and as sized to the descriptor's own length.
            let mut sized = seg.clone();
            sized.len = segment.len() as u64;
            for desc in [seg, &sized] {
                if let Ok(e) = desc.encoding(segment.clone()) {
                    decode_as_receiver(&e);
                }
            }
        }
    }
    // A descriptor of a value in another process's memory is checked before anything is
    // read or allocated: what passes is within the limits, and the sender's process id must
    // be the one the reader knows.
    for msg in &batch {
        if let Msg::Node(NodeMsg::PeerRead { desc, .. }) = msg {
            if desc.check(desc.pid).is_ok() {
                assert!(desc.inline.len() <= INLINE_MAX);
                assert!(desc.buffers.len() <= PEER_BUFFERS_MAX);
                for (elem, at, len) in &desc.buffers {
                    assert!(at.checked_add(*len).is_some());
                    assert_eq!(len % elem.size() as u64, 0);
                }
            }
            assert!(desc.check(desc.pid ^ 1).is_err());
        }
    }
    // The values inside travel on to `get` and task arguments: decode them as a value with
    // out-of-band buffers and as a plain one, as a receiver of either would.
    for msg in &mut batch {
        for slot in msg.slots_mut() {
            let encoded = slot.ready().expect("a decoded batch has every segment");
            decode_as_receiver(encoded);
        }
    }
    // What was received re-encodes (the sender side of a forwarded value).
    encode_batch(&mut batch).expect("a received batch encodes again");
    true
}

/// Decodes `encoded` as a few types, with its buffers, as a receiver of a value would; every
/// `Buffer` read in place is read through once.
fn decode_as_receiver(encoded: &Encoded) {
    let decoded = decode_with_oob::<(String, Buffer<f64>, Buffer<u8>)>(
        &encoded.inline,
        encoded.buffers.clone(),
    );
    if let Ok((_, floats, bytes)) = decoded {
        let _ = floats.iter().sum::<f64>();
        let _ = bytes.iter().map(|b| u64::from(*b)).sum::<u64>();
    }
    let _ = decode_with_oob::<(String, Buffer<f32>, Buffer<u8>)>(
        &encoded.inline,
        encoded.buffers.clone(),
    );
    let _ = decode_with_oob::<Vec<u64>>(&encoded.inline, encoded.buffers.clone());
    if let Ok(b) = decode_with_oob::<Buffer<u64>>(&encoded.inline, encoded.buffers.clone()) {
        // Wrapping: arbitrary numbers may overflow a plain sum, which is not the decoder's bug.
        let _ = b.iter().fold(0u64, |acc, x| acc.wrapping_add(*x));
    }
}

/// Seed inputs: batches with every message kind, values inline, as segments and out of band.
pub fn seeds() -> Vec<Vec<u8>> {
    use std::sync::Arc;
    use unidist_core::{ActorId, DeadReason, ErrorKind, ObjectId, TaskError, TaskFailure};
    use unidist_serialize::encode_with_oob;

    let value = |threshold| {
        let v = (
            String::from("w"),
            Buffer::from(vec![0.5f32; 20]),
            Buffer::from(vec![1u8; 40]),
        );
        Slot::Ready(Arc::new(encode_with_oob(&v, threshold).expect("encodes")))
    };
    let numbers = Slot::Ready(Arc::new(
        encode_with_oob(&vec![1u64, 2, 3], 16).expect("encodes"),
    ));
    let id = |n| ObjectId::new(1, n);
    let actor = ActorId { owner: 0, seq: 3 };
    let failure = TaskError::new("m::f", TaskFailure::Panicked, "boom");
    let batches: Vec<Vec<Msg>> = vec![
        vec![NodeMsg::Data {
            id: id(1),
            value: value(usize::MAX),
        }
        .into()],
        vec![NodeMsg::Push {
            id: id(2),
            value: value(16),
        }
        .into()],
        vec![
            NodeMsg::Task {
                seq: 1,
                func: 2,
                args: vec![ArgWire::Value(numbers), ArgWire::Ref { id: id(3), from: 0 }],
                outputs: vec![id(4)],
            }
            .into(),
            NodeMsg::ActorCreate {
                actor,
                class: 0,
                args: vec![ArgWire::Value(value(16))],
                seq: 2,
            }
            .into(),
            NodeMsg::ActorCall {
                actor,
                method: 1,
                args: vec![ArgWire::Failed(WireError::Other(
                    ErrorKind::StaleRef,
                    "stale".into(),
                ))],
                outputs: vec![id(5)],
                seq: 3,
            }
            .into(),
        ],
        vec![
            NodeMsg::Done {
                seq: 1,
                results: vec![Ok(8), Err(WireError::Task(failure))],
            }
            .into(),
            NodeMsg::Failed {
                id: id(6),
                error: WireError::Other(ErrorKind::ActorDead, "gone".into()),
            }
            .into(),
            NodeMsg::Ready {
                id: id(7),
                loc: 1,
                error: None,
            }
            .into(),
            NodeMsg::ActorWhere {
                actor,
                worker: Err(DeadReason::Killed),
            }
            .into(),
            NodeMsg::Free { ids: vec![id(8)] }.into(),
            NodeMsg::Borrow {
                id: id(9),
                delta: -1,
            }
            .into(),
            NodeMsg::ActorKill { actor, now: true }.into(),
            NodeMsg::Fetch {
                id: id(10),
                requester: 2,
            }
            .into(),
            ControlMsg::Shutdown.into(),
        ],
        shared_batch(id(11)),
        peer_batch(id(13)),
    ];
    let mut seeds = frame_batches(batches);
    seeds.extend(shared_seeds(id(12)));
    seeds
}

/// Inputs whose stream is a segment laid out as the backend writes one (inline bytes at 0,
/// each buffer at the next multiple of 64) under a descriptor of it: a value of buffers, a
/// natural `Buffer<u64>`, and the first again with its buffers one byte off alignment.
fn shared_seeds(id: unidist_core::ObjectId) -> Vec<Vec<u8>> {
    use unidist_serialize::encode_with_oob;
    let pair = (
        String::from("w"),
        Buffer::from(vec![0.25f64; 40]),
        Buffer::from(vec![3u8; 100]),
    );
    let natural = Buffer::from((0..50u64).collect::<Vec<_>>());
    let encodings = [
        (encode_with_oob(&pair, 16).expect("encodes"), 0),
        (encode_with_oob(&natural, 16).expect("encodes"), 0),
        (encode_with_oob(&pair, 16).expect("encodes"), 1),
    ];
    encodings
        .into_iter()
        .map(|(e, skew)| {
            // The header the processes share, then the inline bytes.
            let mut bytes = vec![0u8; SEG_HEADER as usize];
            bytes.extend_from_slice(&e.inline);
            let mut buffers = Vec::new();
            for b in &e.buffers {
                let at = bytes.len().next_multiple_of(64) + skew;
                bytes.resize(at, 0);
                buffers.push((b.elem(), at as u64, b.len() as u64));
                bytes.extend_from_slice(b.as_bytes());
            }
            let seg = SegDesc {
                name: format!("/unidist-100-101-1.{}", id.seq),
                gen: 1,
                len: bytes.len() as u64,
                inline: e.inline.len() as u64,
                buffers,
            };
            let batch = vec![NodeMsg::Shared { id, push: false, seg }.into()];
            let mut seed = frame_batches(vec![batch]).remove(0);
            seed.extend_from_slice(&bytes);
            seed
        })
        .collect()
}

/// A batch with a shared-memory descriptor whose ranges fill a 4096-byte segment exactly, as an
/// object and as a call's argument.
fn shared_batch(id: unidist_core::ObjectId) -> Vec<Msg> {
    let seg = SegDesc {
        name: "/unidist-100-101-1.11".into(),
        gen: 1,
        len: 4096,
        inline: 40,
        buffers: vec![
            (unidist_serialize::ElemType::F64, 128, 2048),
            (unidist_serialize::ElemType::U8, 2176, 1920),
        ],
    };
    vec![
        NodeMsg::Shared {
            id,
            push: true,
            seg: seg.clone(),
        }
        .into(),
        NodeMsg::Task {
            seq: 3,
            func: 1,
            args: vec![ArgWire::Shared(seg)],
            outputs: vec![id],
        }
        .into(),
    ]
}

/// A batch with a descriptor of a value in another process's memory, and the message that
/// turns such reads off.
fn peer_batch(id: unidist_core::ObjectId) -> Vec<Msg> {
    vec![
        NodeMsg::PeerRead {
            id,
            desc: PeerDesc {
                pid: 4242,
                token_at: 0x7f00_0000_1000,
                token: 0x1234_5678_9abc_def1,
                inline: vec![1, 2, 3, 4],
                buffers: vec![
                    (unidist_serialize::ElemType::F64, 0x7f00_0010_0000, 4096),
                    (unidist_serialize::ElemType::U8, 0x7f00_0020_0000, 17),
                ],
            },
        }
        .into(),
        NodeMsg::PeerReadOff.into(),
    ]
}

/// Frames each batch as a fuzz input: mode byte, control length, control body, then segments.
fn frame_batches(batches: Vec<Vec<Msg>>) -> Vec<Vec<u8>> {
    batches
        .into_iter()
        .map(|mut batch| {
            let (ctrl, segments) = encode_batch(&mut batch).expect("a seed batch encodes");
            let body = &ctrl[HEADER_LEN..];
            let len = u16::try_from(body.len()).expect("seed batches are small");
            let mut seed = vec![1];
            seed.extend_from_slice(&len.to_le_bytes());
            seed.extend_from_slice(body);
            for s in &segments {
                seed.extend_from_slice(s.bytes());
            }
            seed
        })
        .collect()
}
