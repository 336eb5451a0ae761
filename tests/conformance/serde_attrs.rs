//! Values that use serde's attributes, and the natural large types, across processes: the
//! attribute matrix (internally, adjacently and un-tagged enums, `flatten`, `skip`,
//! `skip_serializing_if`, `default`, `rename`, `Cow` fields read back owned, non-string map
//! keys, nested options) through `put`/`get`, task arguments and returns, and actor calls. On
//! the MPI backend these values pick a self-describing encoding by themselves.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::harness::{cases, ensure, ensure_eq, fetch, Case, Outcome};

pub(crate) fn cases() -> Vec<Case> {
    cases!("serde_attrs":
        put_get_each_shape,
        task_arguments_and_returns,
        task_argument_by_reference,
        actor_calls,
        field_skipped_only_in_a_later_value,
        untagged_first_seen_empty,
        natural_types_through_tasks,
        serde_fast_field_through_a_task,
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Point {
    x: i32,
    y: i32,
}

/// Internally tagged: decoded through `deserialize_any`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub(crate) enum Internal {
    Unit,
    Named { id: u64, label: String },
    Wrapped(Point),
}

/// Adjacently tagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c")]
pub(crate) enum Adjacent {
    Unit,
    Number(i64),
    Pair(u8, String),
}

/// Untagged: the first variant that fits wins (`List` before `Point`, which also reads from a
/// sequence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Untagged {
    List(Vec<u32>),
    Point(Point),
    Number(i64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Inner {
    a: u8,
    b: String,
}

/// Flattened struct and map: written as one map of unknown length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Flattened {
    id: u64,
    #[serde(flatten)]
    inner: Inner,
    #[serde(flatten)]
    extra: BTreeMap<String, u32>,
}

fn seven() -> u32 {
    7
}

fn is_seven(v: &u32) -> bool {
    *v == 7
}

/// Skipped, conditionally skipped and defaulted fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Skips {
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

/// Renamed fields and variants, and borrowed-looking fields that come back owned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Renamed {
    #[serde(rename = "ID")]
    id: u64,
    long_field_name: Cow<'static, str>,
    tags: Vec<Cow<'static, str>>,
    #[serde(default)]
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) enum Kind {
    #[default]
    #[serde(rename = "first-kind")]
    First,
    Second(u8),
}

/// Maps with non-string keys and nested options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Keys {
    by_pair: HashMap<(u32, String), Vec<u8>>,
    by_int: BTreeMap<i64, Option<Option<u32>>>,
    nested: Option<Option<Point>>,
}

/// Every shape in one value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Matrix {
    internal: Vec<Internal>,
    adjacent: Vec<Adjacent>,
    untagged: Vec<Untagged>,
    flattened: Flattened,
    skips: Vec<Skips>,
    renamed: Renamed,
    keys: Keys,
}

fn internal() -> Vec<Internal> {
    vec![
        Internal::Unit,
        Internal::Named {
            id: u64::MAX,
            label: "ünïcode".into(),
        },
        Internal::Wrapped(Point { x: -1, y: 2 }),
    ]
}

fn adjacent() -> Vec<Adjacent> {
    vec![
        Adjacent::Unit,
        Adjacent::Number(i64::MIN),
        Adjacent::Pair(3, "three".into()),
    ]
}

fn untagged() -> Vec<Untagged> {
    vec![
        Untagged::List(vec![1, 2, 3]),
        Untagged::Point(Point { x: 5, y: -5 }),
        Untagged::Number(-42),
        Untagged::Text("text".into()),
    ]
}

fn flattened() -> Flattened {
    Flattened {
        id: 9,
        inner: Inner {
            a: 1,
            b: "b".into(),
        },
        extra: BTreeMap::from([("x".into(), 1), ("y".into(), 2)]),
    }
}

fn skips(present: bool) -> Skips {
    Skips {
        kept: 1,
        cache: 0, // never sent: comes back as the default
        maybe: present.then(|| "here".into()),
        list: if present { vec![1, 2] } else { vec![] },
        level: if present { 3 } else { 7 },
    }
}

fn renamed() -> Renamed {
    Renamed {
        id: 77,
        long_field_name: Cow::Borrowed("borrowed here, owned there"),
        tags: vec![Cow::Borrowed("a"), Cow::Owned("b".into())],
        kind: Kind::Second(4),
    }
}

fn keys() -> Keys {
    Keys {
        by_pair: HashMap::from([((1, "k".into()), vec![9]), ((2, String::new()), vec![])]),
        by_int: BTreeMap::from([(-1, None), (0, Some(None)), (i64::MAX, Some(Some(3)))]),
        nested: Some(None),
    }
}

fn matrix() -> Matrix {
    Matrix {
        internal: internal(),
        adjacent: adjacent(),
        untagged: untagged(),
        flattened: flattened(),
        skips: vec![skips(true), skips(false)],
        renamed: renamed(),
        // Inside a self-described value `Some(None)` reads back as `None` (as in JSON), so the
        // matrix keeps nested options whose outer layer tells the difference.
        keys: Keys {
            by_int: BTreeMap::from([(-1, None), (i64::MAX, Some(Some(3)))]),
            nested: Some(Some(Point { x: 0, y: 1 })),
            ..keys()
        },
    }
}

/// Each shape on its own, and all of them in one value, through `put` and `get`.
fn put_get_each_shape() -> Outcome {
    for value in internal() {
        ensure_eq!(fetch(&unidist::put(value.clone()))?, value);
    }
    for value in adjacent() {
        ensure_eq!(fetch(&unidist::put(value.clone()))?, value);
    }
    for value in untagged() {
        ensure_eq!(fetch(&unidist::put(value.clone()))?, value);
    }
    ensure_eq!(fetch(&unidist::put(flattened()))?, flattened());
    ensure_eq!(fetch(&unidist::put(skips(false)))?, skips(false));
    ensure_eq!(fetch(&unidist::put(skips(true)))?, skips(true));
    ensure_eq!(fetch(&unidist::put(renamed()))?, renamed());
    ensure_eq!(fetch(&unidist::put(keys()))?, keys());
    ensure_eq!(fetch(&unidist::put(matrix()))?, matrix());
    let back = fetch(&unidist::put(renamed()))?;
    ensure!(
        back.tags.iter().all(|t| !t.is_empty()),
        "tags came back empty: {back:?}"
    );
    Ok(())
}

/// Returns the value unchanged: it crosses to the worker and back.
#[unidist::remote]
fn echo_matrix(m: Matrix) -> Matrix {
    m
}

/// What the worker sees, computed there: proves the worker decoded every field.
#[unidist::remote]
fn describe(m: Matrix) -> String {
    let tags: Vec<&str> = m.renamed.tags.iter().map(|t| t.as_ref()).collect();
    format!(
        "{} internal, {} adjacent, {:?}, id {}, extra {:?}, skips {:?}, tags {tags:?}, keys {}",
        m.internal.len(),
        m.adjacent.len(),
        m.untagged.last(),
        m.flattened.id,
        m.flattened.extra,
        m.skips
            .iter()
            .map(|s| (s.maybe.is_some(), s.level))
            .collect::<Vec<_>>(),
        m.keys.by_pair.len(),
    )
}

/// Builds a value of each shape on the worker and returns it.
#[unidist::remote(num_returns = 3)]
fn make_shapes(n: i64) -> (Vec<Untagged>, Skips, Flattened) {
    let mut f = flattened();
    f.extra.insert("n".into(), n as u32);
    (
        vec![Untagged::Number(n), Untagged::List(vec![])],
        skips(n > 0),
        f,
    )
}

/// Arguments and returns of a task carry every shape.
fn task_arguments_and_returns() -> Outcome {
    ensure_eq!(fetch(&echo_matrix::remote(matrix()))?, matrix());
    let stored = unidist::put(matrix());
    ensure_eq!(fetch(&echo_matrix::remote(&stored))?, matrix());
    ensure_eq!(
        fetch(&describe::remote(&stored))?,
        "3 internal, 3 adjacent, Some(Text(\"text\")), id 9, extra {\"x\": 1, \"y\": 2}, \
         skips [(true, 3), (false, 7)], tags [\"a\", \"b\"], keys 2"
    );
    // A task's output as another task's argument.
    ensure_eq!(
        fetch(&echo_matrix::remote(echo_matrix::remote(matrix())))?,
        matrix()
    );
    let (list, skip, flat) = make_shapes::remote(5);
    ensure_eq!(
        fetch(&list)?,
        vec![Untagged::Number(5), Untagged::List(vec![])]
    );
    ensure_eq!(fetch(&skip)?, skips(true));
    ensure_eq!(fetch(&flat)?.extra.get("n").copied(), Some(5));
    let (_, skip, _) = make_shapes::remote(-1);
    ensure_eq!(fetch(&skip)?, skips(false));
    Ok(())
}

// `&Vec<T>` (not `&[T]`) is the form a remote function borrows a stored `Vec<T>` in.
#[allow(clippy::ptr_arg)]
#[unidist::remote]
fn count_untagged(values: &Vec<Untagged>, flat: &Flattened) -> (usize, u64) {
    (values.len(), flat.id)
}

/// `&T` parameters read the same shapes.
fn task_argument_by_reference() -> Outcome {
    let values = unidist::put(untagged());
    ensure_eq!(
        fetch(&count_untagged::remote(&values, flattened()))?,
        (4, 9)
    );
    Ok(())
}

/// Keeps the last values it was given.
pub(crate) struct Keeper {
    skips: Vec<Skips>,
    last: Option<Internal>,
}

#[unidist::actor]
impl Keeper {
    pub(crate) fn new(first: Skips) -> Self {
        Keeper {
            skips: vec![first],
            last: None,
        }
    }

    pub(crate) fn push(&mut self, value: Skips, tag: Internal) -> usize {
        self.skips.push(value);
        self.last = Some(tag);
        self.skips.len()
    }

    pub(crate) fn all(&self) -> Vec<Skips> {
        self.skips.clone()
    }

    pub(crate) fn last(&self) -> Option<Internal> {
        self.last.clone()
    }

    pub(crate) fn echo(&self, m: Matrix) -> Matrix {
        m
    }
}

/// Constructor arguments, method arguments and returns of an actor carry every shape.
fn actor_calls() -> Outcome {
    let keeper = Keeper::remote(skips(false));
    ensure_eq!(
        fetch(&keeper.push(skips(true), Internal::Wrapped(Point { x: 1, y: 2 })))?,
        2
    );
    ensure_eq!(fetch(&keeper.all())?, vec![skips(false), skips(true)]);
    ensure_eq!(
        fetch(&keeper.last())?,
        Some(Internal::Wrapped(Point { x: 1, y: 2 }))
    );
    ensure_eq!(fetch(&keeper.echo(matrix()))?, matrix());
    Ok(())
}

/// A type of its own whose first values have nothing skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Later {
    a: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    b: Option<u8>,
    c: String,
}

#[unidist::remote]
fn echo_later(v: Later) -> Later {
    v
}

/// A field skipped only in a later value still reads back (the encoding switches for good).
fn field_skipped_only_in_a_later_value() -> Outcome {
    let full = Later {
        a: 1,
        b: Some(2),
        c: "c".into(),
    };
    let sparse = Later {
        a: 3,
        b: None,
        c: "d".into(),
    };
    ensure_eq!(fetch(&echo_later::remote(full.clone()))?, full);
    ensure_eq!(fetch(&echo_later::remote(sparse.clone()))?, sparse);
    ensure_eq!(fetch(&unidist::put(sparse.clone()))?, sparse);
    ensure_eq!(fetch(&echo_later::remote(full.clone()))?, full);
    Ok(())
}

/// An untagged type of its own, first sent inside an empty vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum FirstEmpty {
    Number(u32),
    Text(String),
}

#[unidist::remote]
fn echo_first_empty(v: Vec<FirstEmpty>) -> Vec<FirstEmpty> {
    v
}

/// A value whose first instance holds none of its untagged parts still works when a later one
/// does: the type is judged by its shape, not by the first value.
fn untagged_first_seen_empty() -> Outcome {
    ensure_eq!(fetch(&echo_first_empty::remote(Vec::new()))?, vec![]);
    let values = vec![FirstEmpty::Number(1), FirstEmpty::Text("two".into())];
    ensure_eq!(fetch(&echo_first_empty::remote(values.clone()))?, values);
    Ok(())
}

#[allow(clippy::ptr_arg)] // see `count_untagged`
#[unidist::remote]
fn sum_f64(v: &Vec<f64>) -> f64 {
    v.iter().sum()
}

#[unidist::remote]
fn reverse_text(s: String) -> String {
    s.chars().rev().collect()
}

// A boxed slice is the point: it is one of the natural types.
#[allow(clippy::boxed_local)]
#[unidist::remote]
fn doubled(v: Box<[i32]>) -> Box<[i32]> {
    v.iter().map(|x| x * 2).collect()
}

#[unidist::remote]
fn bytes_len(v: Vec<u8>, empty: Vec<i64>) -> (usize, usize) {
    (v.len(), empty.len())
}

/// The natural large types (a whole `Vec` of numbers, `Box<[T]>`, `String`, `Vec<u8>`), large
/// enough to travel out of band on MPI, and empty, through tasks, `put` and `get`.
fn natural_types_through_tasks() -> Outcome {
    let values: Vec<f64> = (0..1 << 20).map(|i| f64::from(i) * 0.5).collect();
    let expected: f64 = values.iter().sum();
    let stored = unidist::put(values.clone());
    ensure_eq!(fetch(&sum_f64::remote(&stored))?, expected);
    ensure_eq!(fetch(&sum_f64::remote(values.clone()))?, expected);
    ensure!(
        fetch(&stored)? == values,
        "the 8 MiB vector came back changed"
    );
    ensure_eq!(fetch(&sum_f64::remote(Vec::new()))?, 0.0);

    let text = "ünïcode text ".repeat(50_000);
    let reversed: String = text.chars().rev().collect();
    ensure!(
        fetch(&reverse_text::remote(text.clone()))? == reversed,
        "the long string came back changed"
    );
    ensure_eq!(fetch(&reverse_text::remote(String::new()))?, "");

    let ints: Box<[i32]> = (0..300_001).collect();
    let twice: Box<[i32]> = ints.iter().map(|x| x * 2).collect();
    ensure!(
        fetch(&doubled::remote(ints))? == twice,
        "the boxed slice came back changed"
    );
    let odd: Box<[i32]> = vec![1, 2, 3].into();
    ensure_eq!(
        fetch(&doubled::remote(odd))?,
        vec![2, 4, 6].into_boxed_slice()
    );

    let bytes = vec![7u8; 3 << 20];
    ensure_eq!(fetch(&bytes_len::remote(bytes, Vec::new()))?, (3 << 20, 0));
    Ok(())
}

/// A struct with a large vector field marked for the fast path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Samples {
    name: String,
    #[serde(with = "unidist::serde_fast")]
    values: Vec<f32>,
}

#[unidist::remote]
fn scale(s: Samples, by: f32) -> Samples {
    Samples {
        name: s.name,
        values: s.values.iter().map(|v| v * by).collect(),
    }
}

/// `#[serde(with = "unidist::serde_fast")]` on a large field crosses processes.
fn serde_fast_field_through_a_task() -> Outcome {
    let samples = Samples {
        name: "s".into(),
        values: (0..500_000).map(|i| i as f32).collect(),
    };
    let back = fetch(&scale::remote(samples.clone(), 2.0))?;
    ensure_eq!(back.name, "s");
    ensure!(
        back.values
            .iter()
            .zip(&samples.values)
            .all(|(b, s)| *b == s * 2.0),
        "the scaled field is wrong"
    );
    ensure_eq!(back.values.len(), samples.values.len());
    Ok(())
}
