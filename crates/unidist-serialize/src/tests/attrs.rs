//! The serde attribute matrix: every data-model feature round-trips through `encode`/`decode`
//! and `encode_with_oob`/`decode_with_oob`, and the types that need it get the self-describing
//! layout by themselves.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::choice::layout_of;
use crate::header::Layout;
use crate::*;

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
#[serde(tag = "type")]
enum Internal {
    Unit,
    Named {
        id: u64,
        label: String,
    },
    Wrapped(Point),
    Data {
        samples: Buffer<f64>,
        keys: BTreeMap<u32, String>,
    },
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    Unit,
    Number(i64),
    Pair(u8, String),
    Named { values: Vec<u16> },
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
#[serde(untagged)]
enum Untagged {
    // Before `Point`: serde also reads a struct from a sequence, so `[0, 0]` would match it.
    List(Vec<u32>),
    Point(Point),
    Number(i64),
    Text(String),
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct FlatInner {
    a: u8,
    b: String,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Flattened {
    id: u64,
    #[serde(flatten)]
    inner: FlatInner,
    #[serde(flatten)]
    extra: BTreeMap<String, u32>,
}

fn seven() -> u32 {
    7
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Skips {
    kept: u32,
    #[serde(skip)]
    cache: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    maybe: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    list: Vec<u8>,
    #[serde(default = "seven", skip_serializing_if = "is_seven")]
    level: u32,
}

fn is_seven(v: &u32) -> bool {
    *v == 7
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone, Default)]
#[serde(default)]
struct Defaults {
    a: u32,
    b: Option<String>,
    c: Vec<i8>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
#[serde(rename_all = "camelCase")]
struct Renamed {
    #[serde(rename = "ID")]
    id: u64,
    long_field_name: String,
    kind: RenamedKind,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
enum RenamedKind {
    #[serde(rename = "first-kind")]
    First,
    #[serde(alias = "old-second")]
    Second(u8),
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Borrowed {
    name: Cow<'static, str>,
    tags: Vec<Cow<'static, str>>,
    boxed: Box<str>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Keys {
    by_pair: HashMap<(u32, String), Vec<u8>>,
    by_int: BTreeMap<i64, String>,
    by_enum: BTreeMap<u8, Point>,
    by_point: Vec<(Point, f32)>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Options {
    nested: Option<Option<u32>>,
    deep: Option<Option<Option<String>>>,
    list: Vec<Option<Option<i8>>>,
}

/// Everything at once, in one value: a type that needs the self-describing layout.
#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Everything {
    internal: Vec<Internal>,
    adjacent: Vec<Adjacent>,
    untagged: Vec<Untagged>,
    flattened: Flattened,
    skips: Skips,
    defaults: Defaults,
    renamed: Renamed,
    borrowed: Borrowed,
    keys: Keys,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<Options>,
    big: Buffer<u32>,
}

fn internal() -> Vec<Internal> {
    vec![
        Internal::Unit,
        Internal::Named {
            id: u64::MAX,
            label: "ü".into(),
        },
        Internal::Wrapped(Point { x: -1, y: 2 }),
        Internal::Data {
            samples: (0..600).map(f64::from).collect(),
            keys: BTreeMap::from([(1, "one".into()), (u32::MAX, String::new())]),
        },
    ]
}

fn adjacent() -> Vec<Adjacent> {
    vec![
        Adjacent::Unit,
        Adjacent::Number(i64::MIN),
        Adjacent::Pair(3, "three".into()),
        Adjacent::Named {
            values: vec![1, 2, u16::MAX],
        },
    ]
}

fn untagged() -> Vec<Untagged> {
    vec![
        Untagged::Point(Point { x: 5, y: -5 }),
        Untagged::Number(-42),
        Untagged::Text("text".into()),
        Untagged::List(vec![1, 2, 3]),
    ]
}

fn flattened() -> Flattened {
    Flattened {
        id: 9,
        inner: FlatInner {
            a: 1,
            b: "b".into(),
        },
        extra: BTreeMap::from([("x".into(), 1), ("y".into(), 2)]),
    }
}

fn skips(present: bool) -> Skips {
    Skips {
        kept: 1,
        cache: 0, // skipped: comes back as the default
        maybe: present.then(|| "here".into()),
        list: if present { vec![1, 2] } else { vec![] },
        level: if present { 3 } else { 7 },
    }
}

fn renamed() -> Renamed {
    Renamed {
        id: 77,
        long_field_name: "camel".into(),
        kind: RenamedKind::First,
    }
}

fn borrowed() -> Borrowed {
    Borrowed {
        name: Cow::Borrowed("static name"),
        tags: vec![Cow::Borrowed("a"), Cow::Owned("b".into())],
        boxed: "boxed".into(),
    }
}

fn keys() -> Keys {
    Keys {
        by_pair: HashMap::from([((1, "k".into()), vec![9]), ((2, String::new()), vec![])]),
        by_int: BTreeMap::from([(-1, "neg".into()), (i64::MAX, "max".into())]),
        by_enum: BTreeMap::from([(0, Point { x: 0, y: 0 })]),
        by_point: vec![(Point { x: 1, y: 1 }, 0.5)],
    }
}

fn options() -> Options {
    Options {
        nested: Some(None),
        deep: Some(Some(None)),
        list: vec![None, Some(None), Some(Some(-1))],
    }
}

fn everything() -> Everything {
    Everything {
        internal: internal(),
        adjacent: adjacent(),
        untagged: untagged(),
        flattened: flattened(),
        skips: skips(false),
        defaults: Defaults::default(),
        renamed: renamed(),
        borrowed: borrowed(),
        keys: keys(),
        options: None,
        big: (0..2000).collect(),
    }
}

/// Round-trips `value` with every buffer inline, and with big buffers out of band.
fn round_trips<T>(value: &T) -> Layout
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + 'static,
{
    let bytes = encode(value).expect("encodes");
    assert_eq!(&decode::<T>(&bytes).expect("decodes"), value);
    let encoded = encode_with_oob(value, 1024).expect("encodes");
    let back: T = decode_with_oob(&encoded.inline, encoded.buffers).expect("decodes");
    assert_eq!(&back, value);
    layout_of::<T>().expect("chosen on the first encode")
}

#[test]
fn internally_tagged_enums_round_trip_self_described() {
    for value in internal() {
        assert_eq!(round_trips(&value), Layout::SelfDescribing);
    }
    let data = internal().pop().expect("has data");
    // The buffer inside a self-described value still travels out of band.
    assert_eq!(
        encode_with_oob(&data, 1024).expect("encodes").buffers.len(),
        1
    );
}

#[test]
fn adjacently_tagged_enums_round_trip() {
    for value in adjacent() {
        round_trips(&value);
    }
}

#[test]
fn untagged_enums_round_trip_self_described() {
    for value in untagged() {
        assert_eq!(round_trips(&value), Layout::SelfDescribing);
    }
}

#[test]
fn flattened_structs_round_trip_self_described() {
    assert_eq!(round_trips(&flattened()), Layout::SelfDescribing);
}

#[test]
fn skipped_fields_round_trip() {
    assert_eq!(round_trips(&skips(false)), Layout::SelfDescribing);
    assert_eq!(round_trips(&skips(true)), Layout::SelfDescribing);
}

#[test]
fn a_field_skipped_only_in_a_later_value_switches_the_type() {
    // A type of its own, so that no other test has chosen its layout yet.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Later {
        a: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<u8>,
        c: String,
    }
    let full = Later {
        a: 1,
        b: Some(2),
        c: "c".into(),
    };
    assert_eq!(round_trips(&full), Layout::Compact, "nothing skipped yet");
    let sparse = Later {
        a: 1,
        b: None,
        c: "c".into(),
    };
    assert_eq!(round_trips(&sparse), Layout::SelfDescribing);
    // For good: the full value is now self-described too.
    assert_eq!(round_trips(&full), Layout::SelfDescribing);
}

#[test]
fn defaults_renames_borrowed_and_keyed_values_stay_compact() {
    assert_eq!(round_trips(&Defaults::default()), Layout::Compact);
    assert_eq!(round_trips(&renamed()), Layout::Compact);
    assert_eq!(
        round_trips(&RenamedKind::Second(4)),
        Layout::Compact,
        "an alias is only another accepted name"
    );
    let back: Borrowed = decode(&encode(&borrowed()).expect("encodes")).expect("decodes");
    assert!(
        matches!(back.name, Cow::Owned(_)),
        "decoded into an owned string"
    );
    assert_eq!(round_trips(&borrowed()), Layout::Compact);
    assert_eq!(round_trips(&keys()), Layout::Compact);
    assert_eq!(round_trips(&options()), Layout::Compact);
}

#[test]
fn a_field_default_is_used_when_the_field_is_absent() {
    // Written by a peer that skipped `list` and `level`: the defaults fill them in.
    let back: Skips = decode(&encode(&skips(false)).expect("encodes")).expect("decodes");
    assert_eq!((back.list, back.level, back.cache), (vec![], 7, 0));
}

#[test]
fn nested_options_in_a_self_described_type_keep_some_of_some() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(tag = "kind")]
    enum WithOptions {
        Holder {
            nested: Option<Option<u32>>,
            list: Vec<Option<u8>>,
        },
    }
    let value = WithOptions::Holder {
        nested: Some(Some(3)),
        list: vec![None, Some(1)],
    };
    assert_eq!(round_trips(&value), Layout::SelfDescribing);
    let none = WithOptions::Holder {
        nested: None,
        list: vec![],
    };
    round_trips(&none);
}

#[test]
fn self_described_some_none_reads_back_as_none() {
    // MessagePack, like JSON, writes `Some(x)` as `x`: `Some(None)` and `None` are both nil.
    // Documented in the crate docs; in compact types (above) `Some(None)` is kept.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(untagged)]
    enum Maybe {
        Value { v: Option<Option<u32>> },
    }
    let bytes = encode(&Maybe::Value { v: Some(None) }).expect("encodes");
    assert_eq!(
        decode::<Maybe>(&bytes).expect("decodes"),
        Maybe::Value { v: None }
    );
}

#[test]
fn everything_in_one_value_round_trips() {
    let value = everything();
    assert_eq!(round_trips(&value), Layout::SelfDescribing);
    let with_options = Everything {
        options: Some(options()),
        skips: skips(true),
        ..everything()
    };
    // `Some(None)` inside a self-described type is read back as `None` (see above).
    let bytes = encode(&with_options).expect("encodes");
    let back: Everything = decode(&bytes).expect("decodes");
    assert_eq!(back.options.expect("kept").list[2], Some(Some(-1)));
    assert_eq!(back.skips, skips(true));
    let encoded = encode_with_oob(&value, 1024).expect("encodes");
    assert_eq!(encoded.buffers.len(), 2, "the two big buffers");
}

#[test]
fn a_serialize_error_is_reported_once_not_retried_forever() {
    #[derive(Deserialize, Debug)]
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refused by user code"))
        }
    }
    let err = encode(&Refuses).expect_err("refused");
    assert!(matches!(err, SerializeError::Encode { .. }));
    assert_eq!(
        layout_of::<Refuses>(),
        None,
        "a refused value decides nothing"
    );
}

#[test]
fn the_serde_fast_helper_round_trips_and_goes_out_of_band() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Fields {
        #[serde(with = "crate::serde_fast")]
        values: Vec<f64>,
        #[serde(with = "crate::serde_fast")]
        boxed: Box<[i16]>,
        #[serde(with = "crate::serde_fast")]
        small: Vec<u8>,
    }
    let value = Fields {
        values: (0..1000).map(f64::from).collect(),
        boxed: (0..600).collect(),
        small: vec![1, 2, 3],
    };
    let encoded = encode_with_oob(&value, 1024).expect("encodes");
    assert_eq!(encoded.buffers.len(), 2);
    assert!(encoded.inline.len() < 64, "{}", encoded.inline.len());
    let back: Fields = decode_with_oob(&encoded.inline, encoded.buffers).expect("decodes");
    assert_eq!(back, value);
    assert_eq!(round_trips(&value), Layout::Compact);
    // Inline, the field is one length and one memcpy.
    let bytes = encode(&value).expect("encodes");
    assert!(bytes.len() < 8000 + 1200 + 64, "{}", bytes.len());
}

fn untagged_strategy() -> impl Strategy<Value = Untagged> {
    prop_oneof![
        (any::<i32>(), any::<i32>()).prop_map(|(x, y)| Untagged::Point(Point { x, y })),
        any::<i64>().prop_map(Untagged::Number),
        ".{0,12}".prop_map(Untagged::Text),
        proptest::collection::vec(any::<u32>(), 0..8).prop_map(Untagged::List),
    ]
}

proptest! {
    #[test]
    fn random_self_described_values_round_trip(
        values in proptest::collection::vec(untagged_strategy(), 0..8),
        maybe in proptest::option::of(".{0,8}"),
        extra in proptest::collection::btree_map("[a-z]{1,4}", any::<u32>(), 0..4),
    ) {
        let skips = Skips { kept: 3, cache: 0, list: vec![], level: 1, maybe };
        let bytes = encode(&skips).unwrap();
        prop_assert_eq!(decode::<Skips>(&bytes).unwrap(), skips);
        let bytes = encode(&values).unwrap();
        prop_assert_eq!(decode::<Vec<Untagged>>(&bytes).unwrap(), values);
        // Keys of a flattened map must not collide with the struct's own fields.
        let extra: BTreeMap<String, u32> =
            extra.into_iter().filter(|(k, _)| k != "a" && k != "b" && k != "id").collect();
        let flat = Flattened { extra, ..flattened() };
        let bytes = encode(&flat).unwrap();
        prop_assert_eq!(decode::<Flattened>(&bytes).unwrap(), flat);
    }

    #[test]
    fn mutated_self_described_encodings_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let encoded = encode_with_oob(&everything(), 1024).unwrap();
        let mut bytes = encoded.inline.clone();
        for (at, xor) in flips {
            let i = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
            bytes[i] ^= xor;
        }
        let _ = decode_with_oob::<Everything>(&bytes, encoded.buffers.clone());
        bytes.truncate(HEADER_LEN + cut.index(bytes.len() - HEADER_LEN));
        let _ = decode_with_oob::<Everything>(&bytes, encoded.buffers);
    }
}
