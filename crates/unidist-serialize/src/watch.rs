//! A pass-through serde `Serializer` that notices, on every encode, the value-dependent shapes
//! the compact codec cannot carry: a skipped struct field (`skip_serializing_if`) and a sequence
//! or map of unknown length (`flatten`, or a hand-written impl).
//!
//! Why on every encode: both depend on the value, not only on the type. A struct whose
//! `skip_serializing_if` field is present in the first value encodes and decodes fine with
//! bincode, and the next value, with the field skipped, would shift every field after it. The
//! wrapper adds one `Cell` write at the rare event and no work otherwise: every method forwards
//! to the codec's serializer and inlines away.

use std::cell::Cell;

use serde::ser::{
    Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// `value`, serialized through [`Watch`]: sets `seen` when a shape the compact codec cannot
/// carry appears anywhere in it.
pub(crate) struct Watched<'a, T: ?Sized> {
    value: &'a T,
    seen: &'a Cell<bool>,
}

impl<'a, T: ?Sized> Watched<'a, T> {
    pub(crate) fn new(value: &'a T, seen: &'a Cell<bool>) -> Self {
        Self { value, seen }
    }
}

impl<T: Serialize + ?Sized> Serialize for Watched<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Watch {
            inner: s,
            seen: self.seen,
        })
    }
}

/// The wrapping serializer, and (with `S` a compound) the wrapping compound serializers.
pub(crate) struct Watch<'a, S> {
    inner: S,
    seen: &'a Cell<bool>,
}

impl<'a, S> Watch<'a, S> {
    fn watched<'v, T: ?Sized>(&self, value: &'v T) -> Watched<'v, T>
    where
        'a: 'v,
    {
        Watched {
            value,
            seen: self.seen,
        }
    }
}

/// Forwards `serialize_*` methods whose argument is plain data.
macro_rules! forward {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method(self, v: $ty) -> Result<S::Ok, S::Error> {
            self.inner.$method(v)
        }
    )*};
}

impl<'a, S: Serializer> Serializer for Watch<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Watch<'a, S::SerializeSeq>;
    type SerializeTuple = Watch<'a, S::SerializeTuple>;
    type SerializeTupleStruct = Watch<'a, S::SerializeTupleStruct>;
    type SerializeTupleVariant = Watch<'a, S::SerializeTupleVariant>;
    type SerializeMap = Watch<'a, S::SerializeMap>;
    type SerializeStruct = Watch<'a, S::SerializeStruct>;
    type SerializeStructVariant = Watch<'a, S::SerializeStructVariant>;

    forward! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_unit_struct(&'static str);
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let value = self.watched(value);
        self.inner.serialize_some(&value)
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let value = self.watched(value);
        self.inner.serialize_newtype_struct(name, &value)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let value = self.watched(value);
        self.inner
            .serialize_newtype_variant(name, index, variant, &value)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        if len.is_none() {
            self.seen.set(true);
        }
        let seen = self.seen;
        self.inner
            .serialize_seq(len)
            .map(|inner| Watch { inner, seen })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let seen = self.seen;
        self.inner
            .serialize_tuple(len)
            .map(|inner| Watch { inner, seen })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let seen = self.seen;
        self.inner
            .serialize_tuple_struct(name, len)
            .map(|inner| Watch { inner, seen })
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let seen = self.seen;
        self.inner
            .serialize_tuple_variant(name, index, variant, len)
            .map(|inner| Watch { inner, seen })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        if len.is_none() {
            self.seen.set(true);
        }
        let seen = self.seen;
        self.inner
            .serialize_map(len)
            .map(|inner| Watch { inner, seen })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let seen = self.seen;
        self.inner
            .serialize_struct(name, len)
            .map(|inner| Watch { inner, seen })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let seen = self.seen;
        self.inner
            .serialize_struct_variant(name, index, variant, len)
            .map(|inner| Watch { inner, seen })
    }

    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<S: SerializeSeq> SerializeSeq for Watch<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.watched(value);
        self.inner.serialize_element(&value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeTuple> SerializeTuple for Watch<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.watched(value);
        self.inner.serialize_element(&value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeTupleStruct> SerializeTupleStruct for Watch<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.watched(value);
        self.inner.serialize_field(&value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeTupleVariant> SerializeTupleVariant for Watch<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.watched(value);
        self.inner.serialize_field(&value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeMap> SerializeMap for Watch<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        let key = self.watched(key);
        self.inner.serialize_key(&key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.watched(value);
        self.inner.serialize_value(&value)
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        let (key, value) = (self.watched(key), self.watched(value));
        self.inner.serialize_entry(&key, &value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeStruct> SerializeStruct for Watch<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        let value = self.watched(value);
        self.inner.serialize_field(key, &value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.seen.set(true);
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeStructVariant> SerializeStructVariant for Watch<'_, S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        let value = self.watched(value);
        self.inner.serialize_field(key, &value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.seen.set(true);
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serializes `value` through the watch into a throwaway format and reports what it saw.
    fn sees<T: Serialize>(value: &T) -> bool {
        let seen = Cell::new(false);
        let mut out = Vec::new();
        let _ = crate::codec::encode_described_into(&Watched::new(value, &seen), &mut out);
        seen.get()
    }

    #[derive(serde::Serialize)]
    struct MaybeSkipped {
        a: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<u8>,
    }

    #[derive(serde::Serialize)]
    struct Flat {
        a: u8,
        #[serde(flatten)]
        rest: std::collections::BTreeMap<String, u8>,
    }

    #[test]
    fn sees_skipped_fields_only_when_skipped() {
        assert!(!sees(&MaybeSkipped { a: 1, b: Some(2) }));
        assert!(sees(&MaybeSkipped { a: 1, b: None }));
        // Nested anywhere: in a sequence, an option, a map value.
        assert!(sees(&vec![Some(MaybeSkipped { a: 1, b: None })]));
        assert!(sees(&std::collections::BTreeMap::from([(
            1u8,
            MaybeSkipped { a: 1, b: None }
        )])));
    }

    #[test]
    fn sees_unknown_lengths() {
        assert!(sees(&Flat {
            a: 1,
            rest: Default::default()
        }));
        assert!(!sees(&(1u8, vec![String::new()], Some(2.5f64))));
    }
}
