//! Crate-level tests: round trips, error cases, fuzzing with proptest, and the out-of-band scheme.

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use crate::buffer::WireRef;
use crate::*;

/// Frames `body` with the header of `T`, to build inputs the encoder would never produce.
pub(crate) fn frame_as<T: ?Sized + 'static>(body: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    header::write::<T>(&mut out, header::Layout::Compact);
    codec::encode_into(body, &mut out).expect("test body encodes");
    out
}

/// `value` in the compact serde form under the header of `H`, its big `Buffer`s out of band: the
/// form a `Buffer` inside a struct takes (a whole `Buffer` value gets the raw layout instead).
pub(crate) fn compact_with_oob<H: 'static>(value: &impl Serialize, threshold: usize) -> Encoded {
    let (inline, buffers) = oob::encode_in_scope(Some(threshold), |out| {
        header::write::<H>(out, header::Layout::Compact);
        codec::encode_into(value, out)
    });
    Encoded {
        inline: inline.expect("test value encodes"),
        buffers,
    }
}

fn round_trip<T>(value: &T)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + 'static,
{
    let bytes = encode(value).expect("encodable");
    let back: T = decode(&bytes).expect("decodable");
    assert_eq!(&back, value);
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Unit;

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Inner {
    id: u64,
    tags: Vec<String>,
    weight: Option<f32>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
enum Shape {
    Empty,
    Circle(f64),
    Rect { w: u32, h: u32 },
    Nested(Box<Shape>, Inner),
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Outer {
    name: String,
    inner: Inner,
    shapes: Vec<Shape>,
    by_pair: HashMap<(u32, String), i64>,
    ordered: BTreeMap<i8, ()>,
    unit: Unit,
    nothing: (),
    ch: char,
}

fn sample() -> Outer {
    Outer {
        name: "sample ünïcode".into(),
        inner: Inner {
            id: u64::MAX,
            tags: vec!["a".into(), String::new()],
            weight: Some(-0.5),
        },
        shapes: vec![
            Shape::Empty,
            Shape::Circle(1.5),
            Shape::Rect { w: 3, h: 70000 },
            Shape::Nested(
                Box::new(Shape::Empty),
                Inner {
                    id: 1,
                    tags: vec![],
                    weight: None,
                },
            ),
        ],
        by_pair: HashMap::from([((1, "x".into()), -1), ((2, "y".into()), i64::MIN)]),
        ordered: BTreeMap::from([(-3, ()), (4, ())]),
        unit: Unit,
        nothing: (),
        ch: '✓',
    }
}

#[test]
fn public_types_can_cross_threads() {
    // Values, encodings and errors move between the caller and the MPI communication thread.
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Buffer<f64>>();
    assert_send_sync::<OobBuffer>();
    assert_send_sync::<Encoded>();
    assert_send_sync::<SerializeError>();
}

#[test]
fn primitives_round_trip() {
    round_trip(&true);
    round_trip(&0u8);
    round_trip(&-7i16);
    round_trip(&u32::MAX);
    round_trip(&i64::MIN);
    round_trip(&u128::MAX);
    round_trip(&1.25f32);
    round_trip(&f64::MIN_POSITIVE);
    round_trip(&'z');
    round_trip(&());
    round_trip(&Unit);
}

#[test]
fn containers_and_nested_types_round_trip() {
    round_trip(&String::from("hello"));
    round_trip(&String::new());
    round_trip(&vec![1u16, 2, 3]);
    round_trip(&Vec::<String>::new());
    round_trip(&Some(vec![Some(1i8), None]));
    round_trip(&Option::<u8>::None);
    round_trip(&(1u8, "two".to_string(), [3.0f64; 4]));
    round_trip(&Shape::Rect { w: 1, h: 2 });
    round_trip(&sample());
    let by_pair: HashMap<(u8, String), Vec<u8>> = HashMap::from([((1, "k".into()), vec![9])]);
    round_trip(&by_pair);
}

#[test]
fn wrong_type_is_type_mismatch() {
    let bytes = encode(&42u32).expect("encodable");
    let err = decode::<i32>(&bytes).expect_err("wrong type");
    assert!(
        matches!(err, SerializeError::TypeMismatch { expected: "i32", found, .. }
            if found == fingerprint::<u32>()),
        "{err:?}"
    );
    assert!(matches!(
        decode::<Outer>(&encode(&sample().inner).unwrap()),
        Err(SerializeError::TypeMismatch { .. })
    ));
}

#[test]
fn every_truncated_prefix_is_an_error() {
    let bytes = encode(&sample()).expect("encodable");
    for len in 0..bytes.len() {
        let err = decode::<Outer>(&bytes[..len]).expect_err("prefix must not decode");
        assert!(
            matches!(err, SerializeError::Truncated { len: l, .. } if l == len),
            "prefix of {len} bytes gave {err:?}"
        );
    }
    assert_eq!(decode::<Outer>(&bytes).expect("full input"), sample());
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut bytes = encode(&7u64).expect("encodable");
    bytes.extend_from_slice(&[0, 0]);
    assert!(matches!(
        decode::<u64>(&bytes),
        Err(SerializeError::TrailingBytes { count: 2, .. })
    ));
}

#[test]
fn invalid_body_is_corrupt_with_source() {
    let bytes = frame_as::<bool>(&7u8); // 7 is not a bool
    let err = decode::<bool>(&bytes).expect_err("invalid bool");
    assert!(matches!(err, SerializeError::Corrupt { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
    // The message names the type and does not repeat the source.
    assert_eq!(
        err.to_string(),
        "input is not a valid encoding of a value of type bool"
    );
}

#[test]
fn encode_errors_name_the_type_and_keep_the_source() {
    #[derive(Deserialize)]
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refused by user code"))
        }
    }
    let err = encode(&Refuses).expect_err("must fail");
    assert!(
        matches!(err, SerializeError::Encode { type_name, .. } if type_name.ends_with("Refuses"))
    );
    let source = std::error::Error::source(&err).expect("has a source");
    assert!(
        source.to_string().contains("refused by user code"),
        "{source}"
    );
}

/// A header for `T` followed by a varint length prefix claiming `2^62` bytes.
fn huge_length_prefix<T: 'static>() -> Vec<u8> {
    let mut bytes = Vec::new();
    header::write::<T>(&mut bytes, header::Layout::Compact);
    bytes.push(253); // bincode varint marker for a following u64
    bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
    bytes.extend_from_slice(b"only a few bytes follow");
    bytes
}

#[test]
fn corrupted_length_prefix_does_not_allocate_the_claimed_size() {
    // Without the guard bincode would call `vec![0u8; 1 << 62]` for the first two: an abort.
    assert!(matches!(
        decode::<String>(&huge_length_prefix::<String>()),
        Err(SerializeError::Truncated { .. })
    ));
    assert!(matches!(
        decode::<serde_bytes::ByteBuf>(&huge_length_prefix::<serde_bytes::ByteBuf>()),
        Err(SerializeError::Truncated { .. })
    ));
    assert!(matches!(
        decode::<Vec<u64>>(&huge_length_prefix::<Vec<u64>>()),
        Err(SerializeError::Truncated { .. })
    ));
    assert!(matches!(
        decode::<HashMap<String, String>>(&huge_length_prefix::<HashMap<String, String>>()),
        Err(SerializeError::Truncated { .. })
    ));
    // A Buffer's inline data: variant tag 0 first, then the huge prefix.
    let mut bytes = Vec::new();
    header::write::<Buffer<f64>>(&mut bytes, header::Layout::Compact);
    bytes.push(0);
    bytes.extend_from_slice(&huge_length_prefix::<()>()[HEADER_LEN..]);
    assert!(matches!(
        decode::<Buffer<f64>>(&bytes),
        Err(SerializeError::Truncated { .. })
    ));
}

#[test]
fn size_hints_seen_by_visitors_are_capped_by_the_input_length() {
    // A visitor that trusts the size hint, as some third-party collections do.
    struct Hint(Option<usize>);
    impl<'de> Deserialize<'de> for Hint {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Hint;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a sequence")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, a: A) -> Result<Hint, A::Error> {
                    Ok(Hint(a.size_hint()))
                }
            }
            d.deserialize_seq(V)
        }
    }
    let body = huge_length_prefix::<()>().split_off(HEADER_LEN);
    let (Hint(hint), _) = codec::decode_from::<Hint>(&body).expect("only the hint is read");
    assert_eq!(hint, Some(body.len()));
    let (Hint(hint), _) = codec::decode_from::<Hint>(&[3]).expect("only the hint is read");
    assert_eq!(
        hint,
        Some(1),
        "a small length is reported as the input length cap"
    );
}

#[test]
fn plain_decode_of_an_out_of_band_placeholder_is_missing_buffer() {
    let bytes = frame_as::<Buffer<u8>>(&WireRef::OutOfBand {
        index: 0,
        byte_len: 4,
    });
    assert!(matches!(
        decode::<Buffer<u8>>(&bytes),
        Err(SerializeError::MissingBuffer {
            index: 0,
            supplied: 0
        })
    ));
}

// Property tests
// ---------------------------------------------------------------------------------------------

/// A valid encoding of `T`'s header, so that fuzzed bodies get past the header checks.
fn header_of<T: 'static>() -> Vec<u8> {
    let mut out = Vec::new();
    header::write::<T>(&mut out, header::Layout::Compact);
    out
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Record {
    id: u64,
    small: i8,
    name: String,
    values: Vec<u32>,
    maybe: Option<bool>,
    by_pair: HashMap<(u8, String), i16>,
    floats_bits: Vec<u64>,
    shape: Shape,
    data: Buffer<i64>,
}

fn shape_strategy() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Empty),
        any::<u64>().prop_map(|bits| Shape::Circle(f64::from_bits(bits & !(0x7ff << 52)))),
        (any::<u32>(), any::<u32>()).prop_map(|(w, h)| Shape::Rect { w, h }),
    ]
}

fn record_strategy() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        any::<i8>(),
        ".*",
        proptest::collection::vec(any::<u32>(), 0..20),
        any::<Option<bool>>(),
        proptest::collection::hash_map((any::<u8>(), "[a-z]{0,4}"), any::<i16>(), 0..6),
        proptest::collection::vec(any::<u64>(), 0..10),
        shape_strategy(),
        proptest::collection::vec(any::<i64>(), 0..40),
    )
        .prop_map(
            |(id, small, name, values, maybe, by_pair, floats_bits, shape, data)| Record {
                id,
                small,
                name,
                values,
                maybe,
                by_pair,
                floats_bits,
                shape,
                data: data.into(),
            },
        )
}

proptest! {
    #[test]
    fn random_values_round_trip(record in record_strategy(), threshold in 0usize..400) {
        let bytes = encode(&record).unwrap();
        prop_assert_eq!(&decode::<Record>(&bytes).unwrap(), &record);
        let encoded = encode_with_oob(&record, threshold).unwrap();
        prop_assert_eq!(encoded.buffers.len(), usize::from(record.data.byte_len() >= threshold));
        prop_assert_eq!(&decode_with_oob::<Record>(&encoded.inline, encoded.buffers).unwrap(), &record);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode::<Vec<String>>(&bytes);
        let _ = decode::<(u64, Vec<f64>, String)>(&bytes);
        let _ = decode_with_oob::<Frame>(&bytes, vec![OobBuffer::from(bytes.clone())]);
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        buffers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..4),
    ) {
        let framed = |mut header: Vec<u8>| { header.extend_from_slice(&body); header };
        let _ = decode::<Vec<String>>(&framed(header_of::<Vec<String>>()));
        let _ = decode::<(u64, Vec<f64>, String)>(&framed(header_of::<(u64, Vec<f64>, String)>()));
        let _ = decode::<Record>(&framed(header_of::<Record>()));
        let _ = decode_with_oob::<Frame>(&framed(header_of::<Frame>()), buffers.clone());
        let _ = decode_with_oob::<(Buffer<f64>, Buffer<u8>)>(
            &framed(header_of::<(Buffer<f64>, Buffer<u8>)>()),
            buffers,
        );
    }

    #[test]
    fn mutated_encodings_never_panic(
        record in record_strategy(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&record).unwrap();
        for (at, xor) in flips {
            let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
            bytes[i] ^= xor;
        }
        let _ = decode::<Record>(&bytes);
    }
}

mod attrs;
mod natural;
mod out_of_band;
use out_of_band::Frame;
