//! Typed configuration parameters for unidist, read from `UNIDIST_*` environment variables.
//!
//! **This is an internal crate of unidist for Rust.** Use it through the `unidist` crate, which
//! re-exports it as `unidist::config`; its API may change between any two releases.
//!
//! Each parameter is a unit struct with `get`, `put`, `get_value_source` and `reset`. A value
//! is resolved once, from [`put`](Parameter::put) if called, else from the environment
//! variable, else from the default, and then cached, as in upstream unidist: set configuration
//! before `unidist::init()`.
//!
//! # Parameters
//!
//! | parameter | env var | type | default | accepted |
//! |---|---|---|---|---|
//! | [`Backend`] | `UNIDIST_BACKEND` | [`BackendName`] | auto-detected (see [`set_backend_detector`]), else `pymp` | `mpi`, `pymp`, `pyseq` (any case) |
//! | [`CpuCount`] | `UNIDIST_CPUS` | int | number of cores | 1 to 65536 |
//! | [`IsMpiSpawnWorkers`] | `UNIDIST_IS_MPI_SPAWN_WORKERS` or its alias `UNIDIST_MPI_SPAWN` | bool | `true` | `true/yes/1`, `false/no/0` (any case) |
//! | [`MpiHosts`] | `UNIDIST_MPI_HOSTS` | string (comma separated) | none | non-empty host names of at most 255 bytes, without whitespace |
//! | [`MpiPickleThreshold`] | `UNIDIST_MPI_PICKLE_THRESHOLD` | int (bytes) | 262144 | 0 to 2^40 |
//! | [`MpiBackoff`] | `UNIDIST_MPI_BACKOFF` | float (seconds) | 0.0001 | finite, 0 to 10 |
//! | [`MpiHeartbeat`] | `UNIDIST_MPI_HEARTBEAT` | float (seconds) | 10 | finite, 1 to 86400 |
//! | [`MpiLog`] | `UNIDIST_MPI_LOG` | bool | `false` | `true/yes/1`, `false/no/0` (any case) |
//! | [`Progress`] | `UNIDIST_PROGRESS` | bool | `false` | `true/yes/1`, `false/no/0` (any case) |
//! | [`Timeline`] | `UNIDIST_TIMELINE` | path | none | a non-empty file path (its directory must exist and be writable at `init`) |
//!
//! # Decoding environment values
//!
//! - Surrounding whitespace is ignored; an empty or whitespace-only value is an error
//!   ([`ConfigError::EmptyValue`]), not "unset".
//! - Bools: `true`, `yes`, `1` and `false`, `no`, `0`, in any case; anything else is an error.
//! - Integers: decimal digits only (no sign); overflow is an error.
//! - Floats: decimal with optional sign, fraction and exponent (`0.0001`, `1e-4`, `.5`, `2.`);
//!   `nan`, `inf` and hexadecimal are errors.
//! - `UNIDIST_BACKEND=ray` or `dask` gives [`ConfigError::UnsupportedBackend`]: those
//!   backends of upstream unidist do not exist in unidist for Rust.
//!
//! Every error names the variable, the value and what is accepted, e.g.
//! `invalid value "abc" for UNIDIST_CPUS: expected a positive integer (decimal) between 1 and 65536`.
//!
//! # Example
//!
//! ```
//! use unidist_config::{Backend, BackendName, ConfigError, CpuCount, ValueSource};
//!
//! Backend::put(BackendName::Pyseq)?;
//! assert_eq!(Backend::get()?, BackendName::Pyseq);
//! assert_eq!(Backend::get_value_source(), ValueSource::SetByUser);
//!
//! CpuCount::put(4)?;
//! assert_eq!(CpuCount::get()?, 4);
//!
//! // Out-of-range values are rejected and leave the current value in place.
//! let err = CpuCount::put(0).unwrap_err();
//! assert!(matches!(&err, ConfigError::InvalidValue { variable, .. } if variable == "UNIDIST_CPUS"));
//! assert_eq!(CpuCount::get()?, 4);
//!
//! // What a spawned process needs to see the same configuration.
//! let env = unidist_config::user_set_env();
//! assert!(env.contains(&("UNIDIST_BACKEND", "pyseq".to_owned())));
//! assert!(env.contains(&("UNIDIST_CPUS", "4".to_owned())));
//!
//! print!("{}", unidist_config::render_table());
//! # Ok::<(), ConfigError>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend_name;
mod decode;
mod error;
mod parameter;
mod params;
mod registry;
#[cfg(test)]
mod test_support;

pub use backend_name::BackendName;
pub use error::{ConfigError, Result};
#[doc(hidden)]
pub use parameter::Slot;
pub use parameter::{Parameter, ValueSource};
pub use params::{
    set_backend_detector, Backend, CpuCount, IsMpiSpawnWorkers, MpiBackoff, MpiHeartbeat, MpiHosts,
    MpiLog, MpiPickleThreshold, MpiSharedObjectStore, MpiSharedObjectStoreMemory,
    MpiSharedObjectStoreThreshold, Progress, Timeline,
};
pub use registry::{
    env_vars, parameters, render_table, reset_all, user_set_env, validate_all, ParameterInfo,
};
