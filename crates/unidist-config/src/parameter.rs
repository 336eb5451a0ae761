//! The `Parameter` machinery, written once: caching, `get`/`put`, value sources and env reading.
//!
//! Like upstream's `Parameter` class, a value is resolved once (from `put`, else the environment,
//! else the default) and cached, so every part of a program sees the same configuration even if
//! the environment changes later. Unlike upstream, `put` takes a typed value and validates it.

use std::fmt;
use std::iter;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::decode;
use crate::error::{ConfigError, Result};

/// Where the current value of a parameter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueSource {
    /// The parameter's default (nothing was set).
    Default,
    /// A call to `put`.
    SetByUser,
    /// The environment variable of the parameter (or its alias).
    GotFromCfgSource,
}

impl ValueSource {
    /// A short lowercase label for listings: `default`, `set by user` or `environment`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ValueSource::Default => "default",
            ValueSource::SetByUser => "set by user",
            ValueSource::GotFromCfgSource => "environment",
        }
    }
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cached state of one parameter; opaque, one `static` per parameter.
///
/// It is public only because [`Parameter::slot`] returns it.
pub struct Slot<V> {
    state: Mutex<SlotState<V>>,
}

struct SlotState<V> {
    cached: Option<(V, ValueSource)>,
    /// Bumped by every reset, so that a value read from the environment before a reset is not
    /// cached after it (the read happens without the lock held; see [`Parameter::get`]).
    generation: u64,
}

impl<V> Slot<V> {
    /// An empty slot: nothing cached yet.
    pub const fn new() -> Self {
        Slot {
            state: Mutex::new(SlotState {
                cached: None,
                generation: 0,
            }),
        }
    }

    /// Locks the state. A panic while the lock was held cannot leave it half-written (every
    /// update is a single assignment), so poisoning is ignored rather than spreading panics.
    fn lock(&self) -> MutexGuard<'_, SlotState<V>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn clear(&self) {
        let mut state = self.lock();
        state.cached = None;
        state.generation = state.generation.wrapping_add(1);
    }

    /// Forgets the cached value only if it is the default, so that a default computed before a
    /// backend detector was registered is recomputed, while `put` and env values stay.
    pub(crate) fn forget_default(&self) {
        let mut state = self.lock();
        if matches!(state.cached, Some((_, ValueSource::Default))) {
            state.cached = None;
            state.generation = state.generation.wrapping_add(1);
        }
    }
}

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// A typed configuration parameter read from environment variables.
///
/// Each parameter of this crate is a unit struct implementing this trait, and also has inherent
/// `get`, `put`, `get_value_source` and `reset` functions that forward here, so
/// `CpuCount::get()` works without importing the trait.
///
/// Implementors describe the parameter (constants, default, decoding, validation, encoding);
/// the provided functions hold the caching logic.
pub trait Parameter: 'static {
    /// The typed value.
    type Value: Clone + PartialEq + fmt::Debug + Send + Sync + 'static;

    /// The name of the parameter, e.g. `"CpuCount"`.
    const NAME: &'static str;
    /// The environment variable, e.g. `"UNIDIST_CPUS"`; errors from `put` also name it.
    const VARNAME: &'static str;
    /// Other environment variables accepted for the same parameter (older or newer upstream
    /// names). When several are set they must decode to the same value.
    const ALIASES: &'static [&'static str] = &[];
    /// The type as shown in listings, e.g. `"int"`.
    const TYPE_NAME: &'static str;
    /// What is accepted, as used in error messages after "expected".
    const EXPECTED: &'static str;
    /// One line of help for listings.
    const HELP: &'static str;

    /// The value used when neither `put` nor the environment sets one. Called at most once per
    /// resolution; the result is cached.
    fn default_value() -> Self::Value;

    /// Decodes and validates an environment value read from `variable` (`VARNAME` or an alias).
    ///
    /// `raw` is already trimmed and non-empty. Errors name `variable` and quote `raw`.
    fn decode(variable: &str, raw: &str) -> Result<Self::Value>;

    /// Validates a value given to `put` and returns it normalized (e.g. trimmed host names).
    ///
    /// Errors name [`VARNAME`](Parameter::VARNAME).
    fn validate(value: Self::Value) -> Result<Self::Value>;

    /// Encodes a value for the environment so that [`decode`](Parameter::decode) gives it back.
    ///
    /// `None` means the value is expressed by leaving the variable unset (an absent optional
    /// value).
    fn encode(value: &Self::Value) -> Option<String>;

    /// Renders a value for listings.
    fn render(value: &Self::Value) -> String {
        Self::encode(value).unwrap_or_else(|| "none".to_owned())
    }

    /// The cached state of this parameter.
    #[doc(hidden)]
    fn slot() -> &'static Slot<Self::Value>;

    /// Returns the current value: the value given to `put`, else the environment's, else the
    /// default. The first successful resolution is cached.
    ///
    /// An invalid environment value is an error naming the variable, the value and what is
    /// accepted; errors are not cached, so fixing the environment and calling again works.
    fn get() -> Result<Self::Value> {
        Self::get_with_source().map(|(value, _)| value)
    }

    /// Sets the value, after validating it; it takes precedence over the environment.
    ///
    /// A rejected value leaves the current value unchanged.
    fn put(value: Self::Value) -> Result<()> {
        let value = Self::validate(value)?;
        Self::slot().lock().cached = Some((value, ValueSource::SetByUser));
        Ok(())
    }

    /// Where the current value comes from, resolving it first if needed.
    ///
    /// When the environment value is invalid the value cannot be resolved, and the source is
    /// [`ValueSource::GotFromCfgSource`] since the environment is what is being used.
    fn get_value_source() -> ValueSource {
        match Self::get_with_source() {
            Ok((_, source)) => source,
            Err(_) => ValueSource::GotFromCfgSource,
        }
    }

    /// Forgets any `put` value or cached environment/default value, so the next `get` reads the
    /// environment again. Used by tests, and by `init` after `shutdown`.
    fn reset() {
        Self::slot().clear();
    }

    /// The current value and where it came from; resolves and caches it when needed.
    #[doc(hidden)]
    fn get_with_source() -> Result<(Self::Value, ValueSource)> {
        let slot = Self::slot();
        let generation = {
            let state = slot.lock();
            if let Some(cached) = &state.cached {
                return Ok(cached.clone());
            }
            state.generation
        };
        // Resolve without holding the lock: the default may call a backend detector that reads
        // other parameters, and a slow environment read must not block readers of cached values.
        let resolved = match read_env::<Self>()? {
            Some(value) => (value, ValueSource::GotFromCfgSource),
            None => (Self::default_value(), ValueSource::Default),
        };
        let mut state = slot.lock();
        if let Some(cached) = &state.cached {
            // A concurrent `put` or `get` got there first; keep one value for everyone.
            return Ok(cached.clone());
        }
        if state.generation == generation {
            state.cached = Some(resolved.clone());
        }
        Ok(resolved)
    }
}

/// Reads the parameter's variable and aliases; `Ok(None)` when none is set.
fn read_env<P: Parameter + ?Sized>() -> Result<Option<P::Value>> {
    let mut found: Option<(&'static str, String, P::Value)> = None;
    for variable in iter::once(P::VARNAME).chain(P::ALIASES.iter().copied()) {
        let Some(raw) = decode::raw_env(variable, P::EXPECTED)? else {
            continue;
        };
        let value = P::decode(variable, &raw)?;
        match &found {
            Some((first, first_raw, first_value)) if *first_value != value => {
                return Err(ConfigError::Conflict {
                    variable: (*first).to_owned(),
                    value: first_raw.clone(),
                    other_variable: variable.to_owned(),
                    other_value: raw,
                });
            }
            Some(_) => {}
            None => found = Some((variable, raw, value)),
        }
    }
    Ok(found.map(|(_, _, value)| value))
}

/// Adds inherent `get`, `put`, `get_value_source` and `reset` to a parameter, forwarding to its
/// [`Parameter`] impl, so that callers need not import the trait.
macro_rules! inherent_api {
    ($param:ident) => {
        impl $param {
            /// Returns the current value: the value given to `put`, else the environment's,
            /// else the default (see [`Parameter::get`]).
            ///
            /// # Errors
            /// An invalid environment value, naming the variable, the value and what is accepted.
            pub fn get() -> $crate::Result<<$param as $crate::Parameter>::Value> {
                <$param as $crate::Parameter>::get()
            }

            /// Sets the value after validating it (see [`Parameter::put`]).
            ///
            /// # Errors
            /// A value outside the accepted range, naming the variable, the value and the range.
            pub fn put(value: <$param as $crate::Parameter>::Value) -> $crate::Result<()> {
                <$param as $crate::Parameter>::put(value)
            }

            /// Where the current value comes from (see [`Parameter::get_value_source`]).
            pub fn get_value_source() -> $crate::ValueSource {
                <$param as $crate::Parameter>::get_value_source()
            }

            /// Forgets any `put` or cached value so the next `get` re-reads the environment
            /// (see [`Parameter::reset`]); used by tests and by `init` after `shutdown`.
            pub fn reset() {
                <$param as $crate::Parameter>::reset()
            }
        }
    };
}
pub(crate) use inherent_api;
