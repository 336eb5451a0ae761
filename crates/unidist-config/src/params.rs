//! The parameters themselves (`Backend`, `CpuCount`, the `Mpi*` knobs) and the backend detector.

use std::ops::RangeInclusive;
use std::sync::{PoisonError, RwLock};

use crate::backend_name::BackendName;
use crate::decode::{self, BOOL_EXPECTED};
use crate::error::{ConfigError, Result};
use crate::parameter::{inherent_api, Parameter, Slot};

/// The variable that selects the backend; also named by [`BackendName`]'s parse errors.
pub(crate) const BACKEND_VAR: &str = "UNIDIST_BACKEND";

/// Decodes an unsigned integer in `range` into a `usize`; errors quote `raw`.
fn decode_usize(
    variable: &str,
    raw: &str,
    range: RangeInclusive<u64>,
    expected: &str,
) -> Result<usize> {
    decode::parse_uint(raw)
        .filter(|v| range.contains(v))
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| ConfigError::invalid(variable, raw, expected))
}

/// Checks that a `put` value lies in `range`.
fn check_usize(
    variable: &str,
    value: usize,
    range: RangeInclusive<u64>,
    expected: &str,
) -> Result<usize> {
    match u64::try_from(value) {
        Ok(v) if range.contains(&v) => Ok(value),
        _ => Err(ConfigError::invalid(variable, value.to_string(), expected)),
    }
}

/// Whether `value` is a finite number in `range` (NaN is in no range).
fn float_in(value: f64, range: &RangeInclusive<f64>) -> bool {
    value.is_finite() && range.contains(&value)
}

/// Decodes a finite float in `range`; errors quote `raw`.
fn decode_float(
    variable: &str,
    raw: &str,
    range: RangeInclusive<f64>,
    expected: &str,
) -> Result<f64> {
    decode::parse_float(raw)
        .filter(|v| float_in(*v, &range))
        .ok_or_else(|| ConfigError::invalid(variable, raw, expected))
}

/// Checks that a `put` float is finite and lies in `range`.
fn check_float(
    variable: &str,
    value: f64,
    range: RangeInclusive<f64>,
    expected: &str,
) -> Result<f64> {
    if float_in(value, &range) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(variable, value.to_string(), expected))
    }
}

/// Decodes a bool word; errors quote `raw`.
fn decode_bool(variable: &str, raw: &str) -> Result<bool> {
    decode::parse_bool(raw).ok_or_else(|| ConfigError::invalid(variable, raw, BOOL_EXPECTED))
}

// ---------------------------------------------------------------------------------------------

/// The registered backend detector; a plain `fn` so it can live in a static without boxing.
static BACKEND_DETECTOR: RwLock<Option<fn() -> BackendName>> = RwLock::new(None);

/// Registers the function that picks the default backend when `UNIDIST_BACKEND` is not set.
///
/// The facade registers it, because only the facade knows which backends were compiled in and
/// whether a usable MPI is present. Without a detector the default is the local pool (`pymp`).
/// Registering replaces any earlier detector and forgets a cached *default* backend (values from
/// `put` or the environment stay), so the next [`Backend::get`] asks the new detector.
///
/// The detector must not call [`Backend::get`] (that would recurse); reading other parameters
/// is fine.
pub fn set_backend_detector(detector: fn() -> BackendName) {
    *BACKEND_DETECTOR
        .write()
        .unwrap_or_else(PoisonError::into_inner) = Some(detector);
    <Backend as Parameter>::slot().forget_default();
}

/// Removes the detector, so tests can check the no-detector default.
#[cfg(test)]
pub(crate) fn clear_backend_detector() {
    *BACKEND_DETECTOR
        .write()
        .unwrap_or_else(PoisonError::into_inner) = None;
    <Backend as Parameter>::slot().forget_default();
}

/// The backend to start: `UNIDIST_BACKEND`, one of `mpi`, `pymp`, `pyseq` (case-insensitive).
///
/// Default: decided by the detector registered with [`set_backend_detector`] (the facade picks
/// `mpi` when built with MPI support and a usable MPI is present), else `pymp`. Upstream's `ray`
/// and `dask` give [`ConfigError::UnsupportedBackend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backend;

impl Parameter for Backend {
    type Value = BackendName;
    const NAME: &'static str = "Backend";
    const VARNAME: &'static str = BACKEND_VAR;
    const TYPE_NAME: &'static str = "BackendName";
    const EXPECTED: &'static str = crate::backend_name::EXPECTED;
    const HELP: &'static str =
        "backend to start (auto-detected when unset: mpi if usable, else pymp)";

    fn default_value() -> BackendName {
        let detector = *BACKEND_DETECTOR
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        detector.map_or(BackendName::UNDETECTED_DEFAULT, |detect| detect())
    }

    fn decode(variable: &str, raw: &str) -> Result<BackendName> {
        BackendName::parse_for(variable, raw)
    }

    fn validate(value: BackendName) -> Result<BackendName> {
        Ok(value)
    }

    fn encode(value: &BackendName) -> Option<String> {
        Some(value.as_str().to_owned())
    }

    fn slot() -> &'static Slot<BackendName> {
        static SLOT: Slot<BackendName> = Slot::new();
        &SLOT
    }
}
inherent_api!(Backend);

// ---------------------------------------------------------------------------------------------

/// The largest accepted `UNIDIST_CPUS`; far above any real machine, low enough to catch typos.
const CPU_MAX: u64 = 65_536;

/// The number of workers: `UNIDIST_CPUS`, an integer from 1 to 65536.
///
/// On `pymp` it is the pool size; on `mpi` in spawn mode, the number of workers spawned.
/// Default: [`std::thread::available_parallelism`] (1 if unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CpuCount;

impl Parameter for CpuCount {
    type Value = usize;
    const NAME: &'static str = "CpuCount";
    const VARNAME: &'static str = "UNIDIST_CPUS";
    const TYPE_NAME: &'static str = "int";
    const EXPECTED: &'static str = "a positive integer (decimal) between 1 and 65536";
    const HELP: &'static str = "number of workers (pymp pool size, mpi workers to spawn)";

    fn default_value() -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Clamped so that the default always passes the same validation as a user value.
        cores.clamp(1, CPU_MAX as usize)
    }

    fn decode(variable: &str, raw: &str) -> Result<usize> {
        decode_usize(variable, raw, 1..=CPU_MAX, Self::EXPECTED)
    }

    fn validate(value: usize) -> Result<usize> {
        check_usize(Self::VARNAME, value, 1..=CPU_MAX, Self::EXPECTED)
    }

    fn encode(value: &usize) -> Option<String> {
        Some(value.to_string())
    }

    fn slot() -> &'static Slot<usize> {
        static SLOT: Slot<usize> = Slot::new();
        &SLOT
    }
}
inherent_api!(CpuCount);

// ---------------------------------------------------------------------------------------------

/// Whether the MPI backend spawns its workers: `UNIDIST_IS_MPI_SPAWN_WORKERS` (unidist 0.4.0's
/// name) or its alias `UNIDIST_MPI_SPAWN` (upstream's later name), a bool.
///
/// `true`: a plain `./app` starts the root and spawns the workers. `false`: SPMD, the program is
/// launched with `mpiexec -n N` and every rank runs it. Default: `true`. When both variables are
/// set they must agree, else [`ConfigError::Conflict`] names both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IsMpiSpawnWorkers;

impl Parameter for IsMpiSpawnWorkers {
    type Value = bool;
    const NAME: &'static str = "IsMpiSpawnWorkers";
    const VARNAME: &'static str = "UNIDIST_IS_MPI_SPAWN_WORKERS";
    const ALIASES: &'static [&'static str] = &["UNIDIST_MPI_SPAWN"];
    const TYPE_NAME: &'static str = "bool";
    const EXPECTED: &'static str = BOOL_EXPECTED;
    const HELP: &'static str = "mpi: spawn workers from a plain run (false: SPMD under mpiexec)";

    fn default_value() -> bool {
        true
    }

    fn decode(variable: &str, raw: &str) -> Result<bool> {
        decode_bool(variable, raw)
    }

    fn validate(value: bool) -> Result<bool> {
        Ok(value)
    }

    fn encode(value: &bool) -> Option<String> {
        Some(value.to_string())
    }

    fn slot() -> &'static Slot<bool> {
        static SLOT: Slot<bool> = Slot::new();
        &SLOT
    }
}
inherent_api!(IsMpiSpawnWorkers);

// ---------------------------------------------------------------------------------------------

/// The hosts to spawn MPI workers on: `UNIDIST_MPI_HOSTS`, a comma-separated list of host names.
///
/// Names are trimmed and stored joined by `,` (`" a , b "` becomes `"a,b"`); an empty list, an
/// empty name (`"a,,b"`), a name longer than 255 bytes or a name containing whitespace is an
/// error. Only used when the MPI
/// backend spawns its workers. Default: none (the MPI implementation's default placement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpiHosts;

/// The longest accepted host name in `UNIDIST_MPI_HOSTS`, in bytes.
const HOST_NAME_MAX: usize = 255;

impl MpiHosts {
    /// The configured hosts as a list; empty when none are configured.
    ///
    /// # Errors
    /// An invalid `UNIDIST_MPI_HOSTS`, as from [`MpiHosts::get`].
    pub fn hosts() -> Result<Vec<String>> {
        Ok(Self::get()?.map_or_else(Vec::new, |hosts| {
            hosts.split(',').map(str::to_owned).collect()
        }))
    }

    /// Trims each name and joins them with `,`; `None` if the list or a name is unusable.
    fn normalize(raw: &str) -> Option<String> {
        let mut names = Vec::new();
        for name in raw.split(',') {
            let name = name.trim();
            // 255 bytes is the longest host name DNS allows; a longer one is a mistake (a
            // pasted file, a missing comma) that would otherwise surface only at spawn time.
            if name.is_empty()
                || name.len() > HOST_NAME_MAX
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return None;
            }
            names.push(name);
        }
        Some(names.join(","))
    }
}

impl Parameter for MpiHosts {
    type Value = Option<String>;
    const NAME: &'static str = "MpiHosts";
    const VARNAME: &'static str = "UNIDIST_MPI_HOSTS";
    const TYPE_NAME: &'static str = "string (comma separated)";
    const EXPECTED: &'static str =
        "a comma-separated list of host names (non-empty, at most 255 bytes, without whitespace)";
    const HELP: &'static str = "mpi: hosts to spawn workers on";

    fn default_value() -> Option<String> {
        None
    }

    fn decode(variable: &str, raw: &str) -> Result<Option<String>> {
        Self::normalize(raw)
            .map(Some)
            .ok_or_else(|| ConfigError::invalid(variable, raw, Self::EXPECTED))
    }

    fn validate(value: Option<String>) -> Result<Option<String>> {
        match value {
            None => Ok(None),
            Some(raw) => Self::normalize(&raw)
                .map(Some)
                .ok_or_else(|| ConfigError::invalid(Self::VARNAME, raw, Self::EXPECTED)),
        }
    }

    fn encode(value: &Option<String>) -> Option<String> {
        value.clone()
    }

    fn slot() -> &'static Slot<Option<String>> {
        static SLOT: Slot<Option<String>> = Slot::new();
        &SLOT
    }
}
inherent_api!(MpiHosts);

// ---------------------------------------------------------------------------------------------

/// The largest accepted `UNIDIST_MPI_PICKLE_THRESHOLD`: 1 TiB.
const PICKLE_MAX: u64 = 1 << 40;

/// The size in bytes from which the MPI backend sends an object's serialized buffers
/// out-of-band instead of inline: `UNIDIST_MPI_PICKLE_THRESHOLD`, an integer from 0 to 2^40.
///
/// Default: 262144 (256 KiB), as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpiPickleThreshold;

impl Parameter for MpiPickleThreshold {
    type Value = usize;
    const NAME: &'static str = "MpiPickleThreshold";
    const VARNAME: &'static str = "UNIDIST_MPI_PICKLE_THRESHOLD";
    const TYPE_NAME: &'static str = "int (bytes)";
    const EXPECTED: &'static str =
        "a non-negative integer of bytes (decimal) between 0 and 1099511627776";
    const HELP: &'static str = "mpi: serialized size in bytes from which buffers go out-of-band";

    fn default_value() -> usize {
        262_144
    }

    fn decode(variable: &str, raw: &str) -> Result<usize> {
        decode_usize(variable, raw, 0..=PICKLE_MAX, Self::EXPECTED)
    }

    fn validate(value: usize) -> Result<usize> {
        check_usize(Self::VARNAME, value, 0..=PICKLE_MAX, Self::EXPECTED)
    }

    fn encode(value: &usize) -> Option<String> {
        Some(value.to_string())
    }

    fn slot() -> &'static Slot<usize> {
        static SLOT: Slot<usize> = Slot::new();
        &SLOT
    }
}
inherent_api!(MpiPickleThreshold);

// ---------------------------------------------------------------------------------------------

/// The largest accepted `UNIDIST_MPI_BACKOFF`, in seconds; a longer pause only adds latency.
const BACKOFF_MAX: f64 = 10.0;

/// The pause in seconds in the MPI backend's retry loops: `UNIDIST_MPI_BACKOFF`, a finite
/// decimal number from 0 to 10 (`0.0001`, `1e-4`, `.5` and `2.` are accepted).
///
/// Default: 0.0001 (0.1 ms), as upstream. Kept as a compatibility knob: the Rust MPI backend
/// prefers blocking waits to sleep-polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpiBackoff;

impl Parameter for MpiBackoff {
    type Value = f64;
    const NAME: &'static str = "MpiBackoff";
    const VARNAME: &'static str = "UNIDIST_MPI_BACKOFF";
    const TYPE_NAME: &'static str = "float (seconds)";
    const EXPECTED: &'static str =
        "a finite decimal number of seconds between 0 and 10 (e.g. 0.0001 or 1e-4)";
    const HELP: &'static str = "mpi: pause in seconds between polls of pending operations";

    fn default_value() -> f64 {
        0.0001
    }

    fn decode(variable: &str, raw: &str) -> Result<f64> {
        decode_float(variable, raw, 0.0..=BACKOFF_MAX, Self::EXPECTED)
    }

    fn validate(value: f64) -> Result<f64> {
        check_float(Self::VARNAME, value, 0.0..=BACKOFF_MAX, Self::EXPECTED)
    }

    fn encode(value: &f64) -> Option<String> {
        Some(decode::encode_float(*value))
    }

    fn slot() -> &'static Slot<f64> {
        static SLOT: Slot<f64> = Slot::new();
        &SLOT
    }
}
inherent_api!(MpiBackoff);

// ---------------------------------------------------------------------------------------------

/// Whether the MPI backend writes debug logs: `UNIDIST_MPI_LOG`, a bool. Default: `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpiLog;

impl Parameter for MpiLog {
    type Value = bool;
    const NAME: &'static str = "MpiLog";
    const VARNAME: &'static str = "UNIDIST_MPI_LOG";
    const TYPE_NAME: &'static str = "bool";
    const EXPECTED: &'static str = BOOL_EXPECTED;
    const HELP: &'static str = "mpi: write per-rank debug logs";

    fn default_value() -> bool {
        false
    }

    fn decode(variable: &str, raw: &str) -> Result<bool> {
        decode_bool(variable, raw)
    }

    fn validate(value: bool) -> Result<bool> {
        Ok(value)
    }

    fn encode(value: &bool) -> Option<String> {
        Some(value.to_string())
    }

    fn slot() -> &'static Slot<bool> {
        static SLOT: Slot<bool> = Slot::new();
        &SLOT
    }
}
inherent_api!(MpiLog);

// ---------------------------------------------------------------------------------------------

/// Whether a long `get_all`/`wait` shows a progress bar on stderr: `UNIDIST_PROGRESS`, a bool.
/// Default: `false`. The bar appears only when stderr is a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Progress;

impl Parameter for Progress {
    type Value = bool;
    const NAME: &'static str = "Progress";
    const VARNAME: &'static str = "UNIDIST_PROGRESS";
    const TYPE_NAME: &'static str = "bool";
    const EXPECTED: &'static str = BOOL_EXPECTED;
    const HELP: &'static str = "progress bar on stderr for long waits on many refs";

    fn default_value() -> bool {
        false
    }

    fn decode(variable: &str, raw: &str) -> Result<bool> {
        decode_bool(variable, raw)
    }

    fn validate(value: bool) -> Result<bool> {
        Ok(value)
    }

    fn encode(value: &bool) -> Option<String> {
        Some(value.to_string())
    }

    fn slot() -> &'static Slot<bool> {
        static SLOT: Slot<bool> = Slot::new();
        &SLOT
    }
}
inherent_api!(Progress);

// ---------------------------------------------------------------------------------------------

/// Where `shutdown` writes the timeline trace: `UNIDIST_TIMELINE`, a file path. Default: none
/// (nothing is recorded). Surrounding whitespace is trimmed; an empty path is an error. Whether
/// the directory exists and is writable is checked by `unidist::init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timeline;

impl Parameter for Timeline {
    type Value = Option<String>;
    const NAME: &'static str = "Timeline";
    const VARNAME: &'static str = "UNIDIST_TIMELINE";
    const TYPE_NAME: &'static str = "path";
    const EXPECTED: &'static str = "a file path in an existing, writable directory";
    const HELP: &'static str = "write a Chrome/Perfetto trace of the run to this file at shutdown";

    fn default_value() -> Option<String> {
        None
    }

    fn decode(_variable: &str, raw: &str) -> Result<Option<String>> {
        Ok(Some(raw.trim().to_string()))
    }

    fn validate(value: Option<String>) -> Result<Option<String>> {
        match value {
            Some(p) if p.trim().is_empty() => {
                Err(ConfigError::invalid(Self::VARNAME, p, Self::EXPECTED))
            }
            other => Ok(other),
        }
    }

    fn encode(value: &Option<String>) -> Option<String> {
        value.clone()
    }

    fn slot() -> &'static Slot<Option<String>> {
        static SLOT: Slot<Option<String>> = Slot::new();
        &SLOT
    }
}
inherent_api!(Timeline);
mod heartbeat;
mod shared_store;
pub use heartbeat::MpiHeartbeat;
pub use shared_store::{
    MpiSharedObjectStore, MpiSharedObjectStoreMemory, MpiSharedObjectStoreThreshold,
};

#[cfg(test)]
mod tests;
