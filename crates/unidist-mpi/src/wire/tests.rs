//! Tests of the wire format: round trips, batches, segments, and bytes that are not valid.

use super::*;
use unidist_serialize::{decode_with_oob, encode_with_oob, Buffer};

/// Sends a batch through an in-memory "network" that chunks every segment at `chunk` bytes,
/// as the MPI path does, and decodes it on the other side.
fn round_trip(mut batch: Vec<Msg>, chunk: usize) -> Vec<Msg> {
    let (ctrl, segs) = encode_batch(&mut batch).unwrap();
    let mut wire: std::collections::VecDeque<Vec<u8>> = Default::default();
    for s in &segs {
        for r in chunks(s.bytes().len(), chunk) {
            wire.push_back(s.bytes()[r].to_vec());
        }
    }
    let out = decode_batch(&ctrl, |buf| {
        for r in chunks(buf.len(), chunk) {
            let m = wire.pop_front().expect("a chunk is missing");
            assert_eq!(m.len(), r.len(), "chunk length");
            buf[r].copy_from_slice(&m);
        }
        Ok(())
    })
    .unwrap();
    assert!(wire.is_empty(), "segments left over");
    out
}

fn value_of(m: &Msg) -> Arc<Encoded> {
    match m {
        Msg::Node(NodeMsg::Data { value, .. } | NodeMsg::Push { value, .. }) => {
            value.ready().unwrap().clone()
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn small_values_travel_inside_the_batch() {
    let e = Arc::new(encode_with_oob(&(1u32, "abc".to_string()), 1024).unwrap());
    let batch: Vec<Msg> = vec![
        NodeMsg::Data {
            id: ObjectId::new(0, 1),
            value: Slot::Ready(e.clone()),
        }
        .into(),
        NodeMsg::Free {
            ids: vec![ObjectId::new(0, 2)],
        }
        .into(),
    ];
    let mut b2 = batch.clone();
    let (_, segs) = encode_batch(&mut b2).unwrap();
    assert!(segs.is_empty());
    let out = round_trip(batch, 7);
    assert_eq!(out.len(), 2);
    let got: (u32, String) =
        decode_with_oob(&value_of(&out[0]).inline, Vec::<OobBuffer>::new()).unwrap();
    assert_eq!(got, (1, "abc".to_string()));
    assert!(matches!(&out[1], Msg::Node(NodeMsg::Free { ids }) if ids == &[ObjectId::new(0, 2)]));
}

#[test]
fn large_inline_and_oob_buffers_are_segments_and_chunked() {
    // A big inline body (a plain Vec) and two out-of-band buffers, chunked at 1000 bytes.
    let big_inline: Vec<u64> = (0..100_000).collect();
    let value = (
        big_inline.clone(),
        Buffer::<f64>::from(vec![1.5; 3000]),
        Buffer::<u8>::from(vec![7u8; 999]),
    );
    let e = Arc::new(encode_with_oob(&value, 512).unwrap());
    assert_eq!(e.buffers.len(), 2);
    let mut batch: Vec<Msg> = vec![NodeMsg::Push {
        id: ObjectId::new(3, 9),
        value: Slot::Ready(e),
    }
    .into()];
    let (_, segs) = encode_batch(&mut batch).unwrap();
    assert_eq!(segs.len(), 3, "inline body + 2 buffers");
    let out = round_trip(batch, 100_000);
    let got = value_of(&out[0]);
    assert_eq!(got.buffers[0].elem(), ElemType::F64);
    let back: (Vec<u64>, Buffer<f64>, Buffer<u8>) =
        decode_with_oob(&got.inline, got.buffers.clone()).unwrap();
    assert_eq!(back, value);
}

#[test]
fn chunk_ranges_cover_exactly() {
    assert_eq!(chunks(0, 10).count(), 0);
    assert_eq!(chunks(10, 10).collect::<Vec<_>>(), vec![0..10]);
    assert_eq!(
        chunks(25, 10).collect::<Vec<_>>(),
        vec![0..10, 10..20, 20..25]
    );
    // The real chunk size keeps every MPI count within a C int.
    assert!(CHUNK <= i32::MAX as usize);
    let n = 5 * CHUNK / 2;
    let parts: Vec<_> = chunks(n, CHUNK).collect();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|r| r.len() <= i32::MAX as usize));
    assert_eq!(parts.last().unwrap().end, n);
}

#[test]
fn every_message_kind_round_trips() {
    let te = TaskError::new("m::f", unidist_core::TaskFailure::Panicked, "boom");
    let a = ActorId { owner: 0, seq: 4 };
    let batch: Vec<Msg> = vec![
        NodeMsg::Task {
            seq: 1,
            func: 2,
            args: vec![ArgWire::Ref {
                id: ObjectId::new(0, 3),
                from: 1,
            }],
            outputs: vec![ObjectId::new(0, 4)],
        }
        .into(),
        NodeMsg::Done {
            seq: 1,
            results: vec![Ok(8), Err(WireError::Task(te.clone()))],
        }
        .into(),
        NodeMsg::ActorCall {
            actor: a,
            method: 0,
            args: vec![],
            outputs: vec![],
            seq: 2,
        }
        .into(),
        NodeMsg::ActorWhere {
            actor: a,
            worker: Err(DeadReason::Killed),
        }
        .into(),
        NodeMsg::Failed {
            id: ObjectId::new(1, 1),
            error: WireError::Other(ErrorKind::ActorDead, "x".into()),
        }
        .into(),
        NodeMsg::Borrow {
            id: ObjectId::new(1, 1),
            delta: -1,
        }
        .into(),
        ControlMsg::Shutdown.into(),
    ];
    let out = round_trip(batch, 16);
    assert_eq!(out.len(), 7);
    match &out[1] {
        Msg::Node(NodeMsg::Done { results, .. }) => match &results[1] {
            Err(WireError::Task(t)) => assert_eq!(t, &te),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let err: Error = WireError::Other(ErrorKind::ActorDead, "x".into()).into();
    assert_eq!(err.kind(), ErrorKind::ActorDead);
}

/// Runs one input of the receive-path fuzz target (`fuzz/src/wire.rs` documents the
/// layout: flags, control length, control bytes, segment stream); whether it decoded.
fn replay_fuzz_input(data: &[u8]) -> bool {
    let Some((&[flags, lo, hi], rest)) = data.split_first_chunk::<3>() else {
        return false;
    };
    let len = usize::from(u16::from_le_bytes([lo, hi])).min(rest.len());
    let (body, mut stream) = rest.split_at(len);
    let ctrl = if flags & 1 == 1 {
        let mut framed = unidist_serialize::encode(&Vec::<Msg>::new()).unwrap();
        framed.truncate(unidist_serialize::HEADER_LEN);
        framed.extend_from_slice(body);
        framed
    } else {
        body.to_vec()
    };
    decode_batch(&ctrl, |dst| {
        if dst.len() > stream.len() {
            return Err(Error::backend("mpi", "the segment stream ran dry"));
        }
        let (head, tail) = stream.split_at(dst.len());
        dst.copy_from_slice(head);
        stream = tail;
        Ok(())
    })
    .is_ok()
}

#[test]
fn fuzz_corpus_and_regressions_replay() {
    // This file is compiled by the backend crate and, through a path, by the fuzz crate.
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fuzz = if manifest.join("corpus").is_dir() {
        manifest.to_path_buf()
    } else {
        manifest.join("../../fuzz")
    };
    let files = |kind: &str| {
        let mut files: Vec<_> = std::fs::read_dir(fuzz.join(kind).join("wire"))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    };
    let seeds = files("corpus");
    assert!(!seeds.is_empty(), "no committed seeds in fuzz/corpus/wire");
    for seed in seeds {
        let data = std::fs::read(&seed).unwrap();
        assert!(
            replay_fuzz_input(&data),
            "seed {} does not decode",
            seed.display()
        );
    }
    // Inputs that once crashed the receive path: each must now be an error or a value.
    for input in files("regressions") {
        let data = std::fs::read(&input).unwrap();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| replay_fuzz_input(&data)));
        assert!(outcome.is_ok(), "fuzz input {} fails", input.display());
    }
}

#[test]
fn impossible_segment_lengths_are_errors_not_aborts() {
    // A corrupted batch can claim any length; allocating it must fail cleanly.
    let desc = |inline, buffers| {
        Msg::from(NodeMsg::Data {
            id: ObjectId::new(0, 1),
            value: Slot::Wire(WireDesc { inline, buffers }),
        })
    };
    for msg in [
        desc(InlineDesc::Segment(u64::MAX / 2), vec![]),
        desc(
            InlineDesc::Bytes(Default::default()),
            vec![(ElemType::F64, 1 << 62)],
        ),
    ] {
        let ctrl = unidist_serialize::encode(&vec![msg]).unwrap();
        let err = decode_batch(&ctrl, |_| panic!("nothing may be received")).unwrap_err();
        assert!(
            err.to_string().contains("bytes"),
            "the error names the length: {err}"
        );
    }
}

#[test]
fn corrupt_batches_are_errors() {
    assert!(decode_batch(b"not a batch", |_| Ok(())).is_err());
    // A batch promising a segment the network never delivers reports the receive error.
    let e = Arc::new(encode_with_oob(&Buffer::<u8>::from(vec![1u8; 100]), 10).unwrap());
    let mut batch: Vec<Msg> = vec![NodeMsg::Data {
        id: ObjectId::new(0, 1),
        value: Slot::Ready(e),
    }
    .into()];
    let (ctrl, _) = encode_batch(&mut batch).unwrap();
    let err = decode_batch(&ctrl, |_| Err(Error::backend("mpi", "peer gone"))).unwrap_err();
    assert!(err.to_string().contains("peer gone"));
}
