//! The codec fuzz target's body: decode arbitrary bytes as a few representative types, inline
//! and out of band, and check that whatever decodes re-encodes consistently.
//!
//! This file is also compiled into `unidist-serialize`'s test suite (by path), so that the
//! committed corpus and regressions replay under plain `cargo test` without fuzz tooling.
//!
//! Input layout: byte 0 selects the type (modulo the number of types), byte 1 the mode (bits
//! 0-1) and the body layout (bits 2-3); the rest is the input proper.
//! - mode 0: `decode::<T>(rest)`, header included, so header checks are exercised.
//! - mode 1: `decode::<T>(header of T ++ rest)`, so the fuzzer spends its time on the body; the
//!   header names the layout from bits 2-3 (0 compact bincode, 1 self-describing MessagePack,
//!   2 the natural types' raw layout, 3 invalid), so every decoder meets every type.
//! - mode 2: `decode_with_oob::<T>` with the out-of-band buffers cut from the front of `rest`
//!   (byte count, then a 16-bit length and an element type per buffer), as bytes; inline bytes
//!   get T's header as in mode 1.
//! - mode 3: as mode 2, but the buffers are typed receive buffers made by
//!   `OobBuffer::zeroed`, as the MPI backend allocates them, and the inline bytes are raw.
//!
//! The types cover the three layouts: plain structs and enums (compact), natural types (raw:
//! `String`, `Vec`/`Box<[T]>` of numbers, `Buffer`), and types that need the self-describing
//! layout (internally tagged and untagged enums, `flatten`, `skip_serializing_if`).
//!
//! The types defined in this file are named by their module path, which differs between the
//! fuzz crate and the test that replays the corpus, and so does their header's fingerprint;
//! their input is therefore always a body that gets its header here (modes 0 and 3 act like 1
//! and 2 for the inline bytes), so that every input means the same in both places.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use unidist_serialize::{
    decode, decode_with_oob, encode, encode_shared, encode_with_oob, Buffer, ElemType, OobBuffer,
    HEADER_LEN,
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

/// An internally tagged enum: needs the self-describing layout, and carries a `Buffer` there.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(tag = "kind")]
pub enum Tagged {
    #[default]
    Empty,
    Named {
        id: u64,
        label: String,
    },
    Data {
        samples: Buffer<f64>,
        keys: BTreeMap<u32, String>,
    },
}

/// An untagged enum: decoded through `deserialize_any`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(untagged)]
pub enum Loose {
    List(Vec<u32>),
    Number(i64),
    Text(String),
    Nested(Box<Loose>, Option<Box<Loose>>),
}

/// Skipped fields, defaults, a flattened map, nested options.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Sparse {
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    list: Vec<i16>,
    nested: Option<Option<u8>>,
    #[serde(flatten)]
    extra: BTreeMap<String, u32>,
}

/// Runs one input; panics only on a bug (a decoder panic, or an inconsistent round trip).
/// Returns whether the input decoded, so that tests can check the seeds are valid inputs.
pub fn run(data: &[u8]) -> bool {
    let Some((&[selector, mode], rest)) = data.split_first_chunk::<2>() else {
        return false;
    };
    let index = selector % TYPES;
    let layout = (mode >> 2) & 3;
    let mode = mode & 3;
    let local = LOCAL_TYPES.contains(&index);
    let input = Input {
        mode,
        layout,
        local,
        rest,
    };
    match index {
        0 => input.one::<u64>(),
        1 => input.one::<String>(),
        2 => input.one::<serde_bytes::ByteBuf>(),
        3 => input.one::<(u32, String, Vec<f64>)>(),
        4 => input.one::<BTreeMap<String, Vec<i64>>>(),
        5 => input.one::<Option<Box<(char, bool, i16)>>>(),
        6 => input.one::<Record>(),
        7 => input.one::<Vec<Shape>>(),
        8 => input.one::<Buffer<f64>>(),
        9 => input.one::<Buffer<u8>>(),
        10 => input.one::<(String, Buffer<f32>, Buffer<u8>)>(),
        11 => input.one::<Frame>(),
        12 => input.one::<Vec<Record>>(),
        13 => input.one::<Vec<f64>>(),
        14 => input.one::<Vec<u8>>(),
        15 => input.one::<Box<[i16]>>(),
        16 => input.one::<Tagged>(),
        17 => input.one::<Vec<Loose>>(),
        _ => input.one::<Sparse>(),
    }
}

/// Number of types `run` selects from.
const TYPES: u8 = 19;

/// Selectors of the types defined in this file (see `run`).
const LOCAL_TYPES: [u8; 7] = [6, 7, 11, 12, 16, 17, 18];

/// One decoded input: the mode, the layout for framed bodies, and the bytes.
struct Input<'a> {
    mode: u8,
    layout: u8,
    local: bool,
    rest: &'a [u8],
}

impl Input<'_> {
    fn one<T>(&self) -> bool
    where
        T: Serialize + DeserializeOwned + Default + Send + Sync + 'static,
    {
        one::<T>(self.mode, self.layout, self.local, self.rest)
    }
}

/// Decodes `rest` as a `T` in `mode` (see the module docs); `local` types always get framed.
fn one<T>(mode: u8, layout: u8, local: bool, rest: &[u8]) -> bool
where
    T: Serialize + DeserializeOwned + Default + Send + Sync + 'static,
{
    match mode {
        0 if !local => check_inline::<T>(rest),
        0 | 1 => check_inline::<T>(&framed::<T>(layout, rest)),
        _ => {
            let (buffers, inline) = cut_buffers(rest, mode == 3);
            let inline = if mode == 2 || local {
                framed::<T>(layout, inline)
            } else {
                inline.to_vec()
            };
            let decoded = decode_with_oob::<T>(&inline, buffers);
            decoded.map(|value| reencode(&value)).is_ok()
        }
    }
}

fn check_inline<T>(bytes: &[u8]) -> bool
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    decode::<T>(bytes).map(|value| reencode(&value)).is_ok()
}

/// `body` behind a valid header for `T` (taken from the encoding of a default value) whose
/// layout flag is `layout`.
fn framed<T: Serialize + DeserializeOwned + Default + 'static>(layout: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = encode(&T::default()).expect("a default value encodes");
    bytes.truncate(HEADER_LEN);
    bytes[5] = (bytes[5] & !0b110) | (layout << 1);
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
/// (inline, out of band, and out of band shared); the second round is the oracle because the
/// first input may use non-canonical encodings (varints, MessagePack's wider integer forms).
fn reencode<T: Serialize + DeserializeOwned + Send + Sync + 'static>(value: &T) {
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

    let shared = encode_shared(&Arc::new(again), 16).expect("a decoded value encodes shared");
    let back: T =
        decode_with_oob(&shared.inline, shared.buffers).expect("a shared encoding decodes");
    assert_eq!(encode(&back).expect("encodes"), first, "shared round trip");
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
        Box::new(|t| encode_with_oob(&vec![0.5f64, -1.0, 3.25, 8.0], t)),
        Box::new(|t| encode_with_oob(&(0..40u8).collect::<Vec<u8>>(), t)),
        Box::new(|t| encode_with_oob(&vec![-3i16; 11].into_boxed_slice(), t)),
        Box::new(|t| {
            let tagged = Tagged::Data {
                samples: Buffer::from(vec![0.25f64; 5]),
                keys: BTreeMap::from([(1, "one".into())]),
            };
            encode_with_oob(&tagged, t)
        }),
        Box::new(|t| {
            let loose = vec![
                Loose::List(vec![1, 2]),
                Loose::Number(-4),
                Loose::Text("t".into()),
                Loose::Nested(Box::new(Loose::Number(1)), None),
            ];
            encode_with_oob(&loose, t)
        }),
        Box::new(|t| {
            let sparse = Sparse {
                id: 3,
                note: None,
                list: vec![1, -1],
                nested: Some(Some(2)),
                extra: BTreeMap::from([("x".into(), 9)]),
            };
            encode_with_oob(&sparse, t)
        }),
    ];
    frame_seeds(&samples)
}

/// Frames every sample in each fuzz mode: whole or body only, buffers inline or out of band.
fn frame_seeds(samples: &[Encoder]) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (index, sample) in samples.iter().enumerate() {
        let index = index as u8;
        let plain = sample(usize::MAX).expect("a sample encodes");
        // The layout bits of the sample's own header, so framed bodies mean what they were.
        let layout = (plain.inline[5] & 0b110) << 1;
        let local = LOCAL_TYPES.contains(&index);
        // Mode 0: the whole encoding; mode 1: its body (local types: the body in both).
        let whole = if local { HEADER_LEN } else { 0 };
        seeds.push([&[index, layout][..], &plain.inline[whole..]].concat());
        seeds.push([&[index, 1 | layout][..], &plain.inline[HEADER_LEN..]].concat());
        // Modes 2 and 3: buffers of 16 bytes or more out of band.
        let oob = sample(16).expect("a sample encodes out of band");
        for (mode, skip) in [(2, HEADER_LEN), (3, whole)] {
            let mut seed = vec![index, mode | layout, oob.buffers.len() as u8];
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
