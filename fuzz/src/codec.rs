//! The codec fuzz target's body: decode arbitrary bytes as a few representative types, inline
//! and out of band, and check that whatever decodes re-encodes consistently.
//!
//! This file is also compiled into `unidist-serialize`'s test suite (by path), so that the
//! committed corpus and regressions replay under plain `cargo test` without fuzz tooling.
//!
//! Input layout: byte 0 selects the type (low nibble) and the mode (bits 4-5); the rest is the
//! input proper.
//! - mode 0: `decode::<T>(rest)`, header included, so header checks are exercised.
//! - mode 1: `decode::<T>(header of T ++ rest)`, so the fuzzer spends its time on the body.
//! - mode 2: `decode_with_oob::<T>` with the out-of-band buffers cut from the front of `rest`
//!   (byte count, then a 16-bit length per buffer), as bytes; inline bytes get T's header.
//! - mode 3: as mode 2, but the buffers are typed receive buffers made by
//!   `OobBuffer::zeroed`, as the MPI backend allocates them, and the inline bytes are raw.
//!
//! The types defined in this file are named by their module path, which differs between the
//! fuzz crate and the test that replays the corpus, and so does their header's fingerprint;
//! their input is therefore always a body that gets its header here (modes 0 and 3 act like 1
//! and 2 for the inline bytes), so that every input means the same in both places.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use unidist_serialize::{
    decode, decode_with_oob, encode, encode_with_oob, Buffer, ElemType, OobBuffer, HEADER_LEN,
};

/// A struct and an enum covering the serde shapes user values take.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Record {
    name: String,
    id: u64,
    delta: i32,
    tags: Vec<String>,
    weight: Option<f64>,
    shape: Shape,
    bytes: serde_bytes::ByteBuf,
    table: BTreeMap<(u8, String), Vec<i64>>,
    ch: char,
    flag: bool,
}

/// An enum with every variant kind.
#[derive(Serialize, Deserialize, Debug, Default)]
pub enum Shape {
    #[default]
    Empty,
    Circle(f32),
    Rect {
        w: u32,
        h: u32,
    },
    Nested(Box<Shape>, u128),
}

/// A value mixing inline data and several `Buffer`s, the shape that goes out of band.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Frame {
    label: String,
    values: Buffer<f64>,
    mask: Buffer<u8>,
    index: Vec<Buffer<i32>>,
    extra: Option<Buffer<u16>>,
}

/// Runs one input; panics only on a bug (a decoder panic, or an inconsistent round trip).
/// Returns whether the input decoded, so that tests can check the seeds are valid inputs.
pub fn run(data: &[u8]) -> bool {
    let Some((&selector, rest)) = data.split_first() else {
        return false;
    };
    let mode = (selector >> 4) & 3;
    let index = selector & 0x0f;
    let local = LOCAL_TYPES.contains(&index);
    match index {
        0 => one::<u64>(mode, local, rest),
        1 => one::<String>(mode, local, rest),
        2 => one::<serde_bytes::ByteBuf>(mode, local, rest),
        3 => one::<(u32, String, Vec<f64>)>(mode, local, rest),
        4 => one::<BTreeMap<String, Vec<i64>>>(mode, local, rest),
        5 => one::<Option<Box<(char, bool, i16)>>>(mode, local, rest),
        6 => one::<Record>(mode, local, rest),
        7 => one::<Vec<Shape>>(mode, local, rest),
        8 => one::<Buffer<f64>>(mode, local, rest),
        9 => one::<Buffer<u8>>(mode, local, rest),
        10 => one::<(String, Buffer<f32>, Buffer<u8>)>(mode, local, rest),
        11 => one::<Frame>(mode, local, rest),
        _ => one::<Vec<Record>>(mode, local, rest),
    }
}

/// Selectors of the types defined in this file (see `run`).
const LOCAL_TYPES: [u8; 4] = [6, 7, 11, 12];

/// Decodes `rest` as a `T` in `mode` (see the module docs); `local` types always get framed.
fn one<T>(mode: u8, local: bool, rest: &[u8]) -> bool
where
    T: Serialize + DeserializeOwned + Default + 'static,
{
    match mode {
        0 if !local => check_inline::<T>(rest),
        0 | 1 => check_inline::<T>(&framed::<T>(rest)),
        _ => {
            let (buffers, inline) = cut_buffers(rest, mode == 3);
            let inline = if mode == 2 || local {
                framed::<T>(inline)
            } else {
                inline.to_vec()
            };
            let decoded = decode_with_oob::<T>(&inline, buffers);
            decoded.map(|value| reencode(&value)).is_ok()
        }
    }
}

fn check_inline<T: Serialize + DeserializeOwned + 'static>(bytes: &[u8]) -> bool {
    decode::<T>(bytes).map(|value| reencode(&value)).is_ok()
}

/// `body` behind a valid header for `T` (taken from the encoding of a default value).
fn framed<T: Serialize + DeserializeOwned + Default + 'static>(body: &[u8]) -> Vec<u8> {
    let mut bytes = encode(&T::default()).expect("a default value encodes");
    bytes.truncate(HEADER_LEN);
    bytes.extend_from_slice(body);
    bytes
}

/// Splits `[count][len16 LE]*count[elem]*count` and the buffer bytes off the front of `rest`;
/// returns the buffers and the remaining inline bytes.
fn cut_buffers(rest: &[u8], typed: bool) -> (Vec<OobBuffer>, &[u8]) {
    const ELEMS: [ElemType; 10] = [
        ElemType::U8,
        ElemType::I8,
        ElemType::U16,
        ElemType::I16,
        ElemType::U32,
        ElemType::I32,
        ElemType::U64,
        ElemType::I64,
        ElemType::F32,
        ElemType::F64,
    ];
    let mut buffers = Vec::new();
    let Some((&count, mut rest)) = rest.split_first() else {
        return (buffers, rest);
    };
    for _ in 0..count % 8 {
        let Some((&[lo, hi, elem], tail)) = rest.split_first_chunk::<3>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes([lo, hi])).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        if typed {
            let elem = ELEMS[usize::from(elem) % ELEMS.len()];
            let usable = len - len % elem.size();
            let Ok(mut buffer) = OobBuffer::zeroed(elem, usable) else {
                continue;
            };
            if let Some(dst) = buffer.as_bytes_mut() {
                dst.copy_from_slice(&bytes[..usable]);
            }
            buffers.push(buffer);
        } else {
            buffers.push(OobBuffer::from(bytes.to_vec()));
        }
    }
    (buffers, rest)
}

/// A decoded value must encode, and its encoding must decode and re-encode to the same bytes
/// (inline and out of band); the second round is the oracle because the first input may use
/// non-canonical integer encodings.
fn reencode<T: Serialize + DeserializeOwned + 'static>(value: &T) {
    let first = encode(value).expect("a decoded value encodes");
    let again: T = decode(&first).expect("an encoding made here decodes");
    assert_eq!(
        encode(&again).expect("encodes"),
        first,
        "unstable round trip"
    );

    let oob = encode_with_oob(value, 16).expect("a decoded value encodes out of band");
    let back: T =
        decode_with_oob(&oob.inline, oob.buffers).expect("an out-of-band encoding decodes");
    assert_eq!(
        encode(&back).expect("encodes"),
        first,
        "out-of-band round trip"
    );
}

/// Seed inputs: a valid encoding of a sample of every type in every mode.
pub fn seeds() -> Vec<Vec<u8>> {
    let record = || Record {
        name: "seed ünïcode".into(),
        id: u64::MAX,
        delta: -7,
        tags: vec!["a".into(), String::new()],
        weight: Some(0.5),
        shape: Shape::Nested(Box::new(Shape::Rect { w: 3, h: 70_000 }), 1 << 100),
        bytes: serde_bytes::ByteBuf::from(vec![0, 255, 7]),
        table: BTreeMap::from([((1, "k".into()), vec![-1, i64::MAX])]),
        ch: '\u{1F600}',
        flag: true,
    };
    let frame = Frame {
        label: "frame".into(),
        values: Buffer::from(vec![1.5f64; 40]),
        mask: Buffer::from(vec![1u8; 3]),
        index: vec![Buffer::from(vec![-1i32; 20]), Buffer::default()],
        extra: Some(Buffer::from(vec![9u16; 9])),
    };
    let samples: Vec<Encoder> = vec![
        Box::new(|t| encode_with_oob(&42u64, t)),
        Box::new(|t| encode_with_oob(&String::from("text"), t)),
        Box::new(|t| encode_with_oob(&serde_bytes::ByteBuf::from(vec![1, 2, 3]), t)),
        Box::new(|t| encode_with_oob(&(7u32, String::from("x"), vec![0.25f64, -1.0]), t)),
        Box::new(|t| {
            let map = BTreeMap::from([(String::from("a"), vec![1i64, -2]), ("b".into(), vec![])]);
            encode_with_oob(&map, t)
        }),
        Box::new(|t| encode_with_oob(&Some(Box::new(('é', true, -3i16))), t)),
        Box::new(move |t| encode_with_oob(&record(), t)),
        Box::new(|t| {
            let shapes = vec![Shape::Empty, Shape::Circle(1.5), Shape::Rect { w: 1, h: 2 }];
            encode_with_oob(&shapes, t)
        }),
        Box::new(|t| encode_with_oob(&Buffer::from(vec![2.5f64; 30]), t)),
        Box::new(|t| encode_with_oob(&Buffer::from(vec![3u8; 50]), t)),
        Box::new(|t| {
            let v = (
                String::from("w"),
                Buffer::from(vec![0.5f32; 20]),
                Buffer::from(vec![1u8; 40]),
            );
            encode_with_oob(&v, t)
        }),
        Box::new(move |t| encode_with_oob(&frame, t)),
        Box::new(|t| encode_with_oob(&vec![Record::default()], t)),
    ];
    let mut seeds = Vec::new();
    for (index, sample) in samples.iter().enumerate() {
        let index = index as u8;
        let plain = sample(usize::MAX).expect("a sample encodes");
        let local = LOCAL_TYPES.contains(&index);
        // Mode 0: the whole encoding; mode 1: its body (local types: the body in both).
        let whole = if local { HEADER_LEN } else { 0 };
        seeds.push([&[index][..], &plain.inline[whole..]].concat());
        seeds.push([&[index | 0x10][..], &plain.inline[HEADER_LEN..]].concat());
        // Modes 2 and 3: buffers of 16 bytes or more out of band.
        let oob = sample(16).expect("a sample encodes out of band");
        for (mode, skip) in [(0x20, HEADER_LEN), (0x30, whole)] {
            let mut seed = vec![index | mode, oob.buffers.len() as u8];
            for buffer in &oob.buffers {
                let len = u16::try_from(buffer.len()).expect("seed buffers are small");
                seed.extend_from_slice(&len.to_le_bytes());
                seed.push(elem_index(buffer.elem()));
                seed.extend_from_slice(buffer.as_bytes());
            }
            seed.extend_from_slice(&oob.inline[skip..]);
            seeds.push(seed);
        }
    }
    seeds
}

type Encoder =
    Box<dyn Fn(usize) -> Result<unidist_serialize::Encoded, unidist_serialize::SerializeError>>;

fn elem_index(elem: ElemType) -> u8 {
    match elem {
        ElemType::U8 => 0,
        ElemType::I8 => 1,
        ElemType::U16 => 2,
        ElemType::I16 => 3,
        ElemType::U32 => 4,
        ElemType::I32 => 5,
        ElemType::U64 => 6,
        ElemType::I64 => 7,
        ElemType::F32 => 8,
        _ => 9,
    }
}
