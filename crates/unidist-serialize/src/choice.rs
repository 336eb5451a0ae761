//! Which body layout a value gets, and the per-type memory of that choice: the raw layout for a
//! natural type, else the compact codec (bincode) unless the type needs the self-describing one.
//!
//! bincode is not self-describing: the reader's type must ask for exactly what the writer wrote.
//! Ordinary serde attributes break that. `untagged` and internally tagged enums and `flatten`
//! decode through `deserialize_any`, which bincode cannot answer; `skip_serializing_if` leaves a
//! field out that the reader still expects; `flatten` writes a map of unknown length. The
//! choice, made without the user's help:
//!
//! 1. A type already known to need the self-describing codec gets it.
//! 2. Before the first encode of a type, the [`probe`](crate::probe) walks its `Deserialize`
//!    impl (every field, element type and enum variant, without a value): a type that asks for
//!    `deserialize_any` anywhere is self-describing from the start, also when the first value
//!    does not hold that part (an empty `Vec<Untagged>`).
//! 3. Otherwise the value is encoded compactly through [`Watched`], which notices a skipped field
//!    or an unknown length in this very value (value dependent, so checked on every encode).
//! 4. The first value of a type that passes is decoded back once (a trial decode), which catches
//!    what the probe cannot see: a field skipped only when deserializing, or a part behind a
//!    `Deserialize` impl that refused the probe's made-up values.
//! 5. A type that failed 2, 3 or 4 is remembered as self-describing for good and this value is
//!    encoded in that form; a type that passed 4 is remembered as compact.
//!
//! The layout is in the header flags, so a reader never guesses. What can still slip through is
//! narrow: a `deserialize_any` user that the probe could not reach (after a field whose impl
//! refuses made-up values, such as a `NonZeroU32`, in the same type) and that the first value
//! does not hold either.

use std::any::{type_name, TypeId};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::header::{self, Layout};
use crate::oob::{self, Encoded};
use crate::watch::Watched;
use crate::{codec, natural, probe, SerializeError};

/// The layout chosen for each serde-encoded type, by `TypeId` (natural types are not recorded:
/// their layout follows from the type alone).
static CHOSEN: RwLock<BTreeMap<TypeId, Layout>> = RwLock::new(BTreeMap::new());

fn chosen(id: TypeId) -> Option<Layout> {
    // A poisoned lock only means another thread panicked while inserting; the map is intact.
    let map = CHOSEN.read().unwrap_or_else(|e| e.into_inner());
    map.get(&id).copied()
}

fn choose(id: TypeId, layout: Layout) {
    let mut map = CHOSEN.write().unwrap_or_else(|e| e.into_inner());
    map.insert(id, layout);
}

/// The layout this process uses for values of type `T` so far: `Some(Layout::Raw)` for natural
/// types, the remembered choice for others, `None` before the first encode.
#[cfg(test)]
pub(crate) fn layout_of<T: 'static>() -> Option<Layout> {
    if natural::is_natural::<T>() {
        Some(Layout::Raw)
    } else {
        chosen(TypeId::of::<T>())
    }
}

/// Encodes `value` (header and body) with `threshold` as the out-of-band threshold, or with
/// every buffer inline when it is `None`.
pub(crate) fn encode<T: Serialize + DeserializeOwned + 'static>(
    value: &T,
    threshold: Option<usize>,
) -> Result<Encoded, SerializeError> {
    match natural::encode(value, threshold) {
        Some(encoded) => Ok(encoded),
        None => encode_serde(value, threshold),
    }
}

/// As [`encode`], but a natural value's out-of-band buffer shares `value`'s storage.
pub(crate) fn encode_shared<T: Serialize + DeserializeOwned + Send + Sync + 'static>(
    value: &Arc<T>,
    threshold: Option<usize>,
) -> Result<Encoded, SerializeError> {
    match natural::encode_shared(value, threshold) {
        Some(encoded) => Ok(encoded),
        None => encode_serde(&**value, threshold),
    }
}

fn encode_serde<T: Serialize + DeserializeOwned + 'static>(
    value: &T,
    threshold: Option<usize>,
) -> Result<Encoded, SerializeError> {
    let id = TypeId::of::<T>();
    let mut known = chosen(id);
    if known.is_none() && probe::needs_any::<T>() {
        known = Some(Layout::SelfDescribing);
    }
    let mut compact_error = None;
    if known != Some(Layout::SelfDescribing) {
        let seen = Cell::new(false);
        let watched = Watched::new(value, &seen);
        let (inline, buffers) = oob::encode_in_scope(threshold, |out| {
            header::write::<T>(out, Layout::Compact);
            codec::encode_into(&watched, out)
        });
        match inline {
            Ok(inline) if !seen.get() => {
                let encoded = Encoded { inline, buffers };
                if known == Some(Layout::Compact) {
                    return Ok(encoded);
                }
                // Buffers are shared storage: the trial decode copies none of them.
                let reads_back =
                    oob::decode_scoped::<T>(&encoded.inline, encoded.buffers.clone()).is_ok();
                if reads_back {
                    choose(id, Layout::Compact);
                    return Ok(encoded);
                }
            }
            Ok(_) => {}
            Err(e) => compact_error = Some(e),
        }
    }
    let (inline, buffers) = oob::encode_in_scope(threshold, |out| {
        header::write::<T>(out, Layout::SelfDescribing);
        codec::encode_described_into(value, out)
    });
    match inline {
        Ok(inline) => {
            if chosen(id) != Some(Layout::SelfDescribing) {
                choose(id, Layout::SelfDescribing);
            }
            Ok(Encoded { inline, buffers })
        }
        // Both codecs failed: the user's `Serialize` impl refused the value. Its first error
        // is the one to report.
        Err(e) => Err(SerializeError::Encode {
            type_name: type_name::<T>(),
            source: compact_error.unwrap_or(e),
        }),
    }
}
