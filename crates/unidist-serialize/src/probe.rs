//! A deserializer that reads no input: it walks a type's `Deserialize` impl, answering every
//! request with a small made-up value, to find out whether the type ever asks for
//! `deserialize_any` (untagged and internally tagged enums, and everything that buffers input
//! the same way), which only a self-describing format can answer.
//!
//! Why: the compact codec fails such a type only when a value actually holds the part that
//! asks. A trial decode of the first value misses a `Vec<Untagged>` that was empty then, or an
//! enum variant not taken then; the next value would fail on the receiving side. The probe
//! explores the type instead of a value: sequences and maps get one element, options are
//! `Some`, and each enum takes another variant on each pass until every variant of every enum
//! met was taken (bounded: [`MAX_PASSES`], and [`MAX_DEPTH`] for recursive types).
//!
//! It cannot see everything: a `Deserialize` impl that rejects the made-up values (a `NonZero`
//! that gets 0, a date parsed from an empty string) ends that pass early, and what follows it in
//! the type is not explored on that pass. The choice then falls back on the trial decode (see
//! `choice`).

use std::cell::Cell;
use std::fmt;
use std::panic::AssertUnwindSafe;

use serde::de::value::U32Deserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use crate::buffer::WIRE_NAME;

/// Nesting below which options are `None` and sequences and maps are empty, and at which an
/// enum ends the pass (it may be recursive through a `Box`).
const MAX_DEPTH: usize = 24;
/// Passes at most; each takes the next variant of every enum.
const MAX_PASSES: usize = 64;

/// Whether values of `T` ever need `deserialize_any` to be decoded.
pub(crate) fn needs_any<T: DeserializeOwned>() -> bool {
    let state = State {
        pass: Cell::new(0),
        needs_any: Cell::new(false),
        widest: Cell::new(1),
    };
    while state.pass.get() < state.widest.get().min(MAX_PASSES) {
        let probe = Probe {
            state: &state,
            depth: 0,
        };
        // An error only ends this pass: made-up values can be refused by a validating impl. So
        // does a panic: an impl may assert on values no real input holds, and encoding must not
        // fail because of what the probe made up.
        let pass = std::panic::catch_unwind(AssertUnwindSafe(|| T::deserialize(probe).is_ok()));
        if pass.is_err() {
            return state.needs_any.get();
        }
        if state.needs_any.get() {
            return true;
        }
        state.pass.set(state.pass.get() + 1);
    }
    false
}

struct State {
    pass: Cell<usize>,
    needs_any: Cell<bool>,
    /// The most variants of any enum met so far: the number of passes needed.
    widest: Cell<usize>,
}

/// The probe's only error: the pass ends.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probe pass ended")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

#[derive(Clone, Copy)]
struct Probe<'s> {
    state: &'s State,
    depth: usize,
}

impl Probe<'_> {
    fn deeper(self) -> Self {
        Probe {
            depth: self.depth + 1,
            ..self
        }
    }

    fn at_limit(self) -> bool {
        self.depth >= MAX_DEPTH
    }

    fn elements(self, left: usize) -> Elements<Self> {
        Elements {
            probe: self.deeper(),
            left,
        }
    }

    fn one_unless_deep(self) -> usize {
        usize::from(!self.at_limit())
    }
}

/// Answers `deserialize_*` methods with a fixed visit.
macro_rules! answer {
    ($($method:ident => $visit:ident($value:expr);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
            visitor.$visit($value)
        }
    )*};
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.state.needs_any.set(true);
        Err(Stop)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.state.needs_any.set(true);
        Err(Stop)
    }

    answer! {
        deserialize_bool => visit_bool(false);
        deserialize_i8 => visit_i8(0);
        deserialize_i16 => visit_i16(0);
        deserialize_i32 => visit_i32(0);
        deserialize_i64 => visit_i64(0);
        deserialize_i128 => visit_i128(0);
        deserialize_u8 => visit_u8(0);
        deserialize_u16 => visit_u16(0);
        deserialize_u32 => visit_u32(0);
        deserialize_u64 => visit_u64(0);
        deserialize_u128 => visit_u128(0);
        deserialize_f32 => visit_f32(0.0);
        deserialize_f64 => visit_f64(0.0);
        deserialize_char => visit_char('0');
        deserialize_str => visit_borrowed_str("");
        deserialize_string => visit_borrowed_str("");
        deserialize_bytes => visit_borrowed_bytes(&[]);
        deserialize_byte_buf => visit_borrowed_bytes(&[]);
        deserialize_identifier => visit_u32(0);
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        if self.at_limit() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self.deeper())
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self.deeper())
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(self.elements(self.one_unless_deep()))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(self.elements(len))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_seq(self.elements(len))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_map(self.elements(self.one_unless_deep()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        // The compact codec's form: the fields in order, as a sequence.
        visitor.visit_seq(self.elements(fields.len()))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if variants.is_empty() || self.at_limit() {
            return Err(Stop);
        }
        // A `Buffer`'s out-of-band variant needs a decoding scope with buffers; its inline
        // variant has the same shape for this purpose.
        let index = if name == WIRE_NAME {
            0
        } else {
            self.state
                .widest
                .set(self.state.widest.get().max(variants.len()));
            self.state.pass.get() % variants.len()
        };
        visitor.visit_enum(Variant {
            probe: self.deeper(),
            index: index as u32,
        })
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a made-up sequence or map (one key and value per entry).
struct Elements<P> {
    probe: P,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<Probe<'_>> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.probe).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> MapAccess<'de> for Elements<Probe<'_>> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.probe).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Stop> {
        seed.deserialize(self.probe)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The variant chosen for this pass, by index (the compact codec's form).
struct Variant<'s> {
    probe: Probe<'s>,
    index: u32,
}

impl<'de, 's> EnumAccess<'de> for Variant<'s> {
    type Error = Stop;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Stop> {
        let chosen = seed.deserialize(U32Deserializer::<Stop>::new(self.index))?;
        Ok((chosen, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = Stop;

    fn unit_variant(self) -> Result<(), Stop> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Stop> {
        seed.deserialize(self.probe)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(self.probe.elements(len))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_seq(self.probe.elements(fields.len()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Deserialize;

    use super::*;
    use crate::Buffer;

    #[derive(Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)] // only probed
    enum Untagged {
        A(u8),
        B(String),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Plain {
        A,
        B(Vec<Option<Box<Plain>>>),
        C { deep: Vec<Untagged> },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Recursive {
        Leaf(u64),
        Node(Box<Recursive>, Box<Recursive>),
    }

    #[derive(Deserialize)]
    #[serde(tag = "kind")]
    #[allow(dead_code)]
    enum Internal {
        A { x: u8 },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Validated {
        first: std::num::NonZeroU32,
        then: Vec<Untagged>,
    }

    #[test]
    fn finds_any_wherever_the_type_can_hold_it() {
        assert!(needs_any::<Untagged>());
        assert!(needs_any::<Internal>());
        assert!(
            needs_any::<Vec<Untagged>>(),
            "in an empty vector's element type"
        );
        assert!(needs_any::<Option<BTreeMap<u8, Untagged>>>());
        assert!(needs_any::<Plain>(), "in the third variant only");
    }

    #[test]
    fn plain_types_need_no_any() {
        assert!(!needs_any::<(u8, String, Vec<f64>, Option<char>)>());
        assert!(!needs_any::<HashMap<(u32, String), Vec<Option<bool>>>>());
        assert!(
            !needs_any::<Recursive>(),
            "recursion ends at the depth limit"
        );
        assert!(!needs_any::<Buffer<f64>>());
        assert!(!needs_any::<(Buffer<u8>, Vec<Buffer<i32>>)>());
    }

    #[test]
    fn a_panicking_impl_ends_the_probe_without_a_verdict() {
        struct Picky;
        impl<'de> Deserialize<'de> for Picky {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let n = u32::deserialize(d)?;
                assert!(n > 0, "picky: zero is impossible in real input");
                Ok(Picky)
            }
        }
        assert!(!needs_any::<(Picky, Vec<Untagged>)>());
        assert!(
            needs_any::<(Vec<Untagged>, Picky)>(),
            "found before the panic"
        );
    }

    #[test]
    fn a_refused_made_up_value_ends_the_pass_without_a_verdict() {
        // `NonZeroU32` refuses 0, so what follows it is not explored: the trial decode of the
        // first value has to catch it (see `choice`).
        assert!(!needs_any::<Validated>());
    }
}
