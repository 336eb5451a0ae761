//! The MPI shared-memory object store's parameters: on/off, its memory limit and its threshold.

use crate::decode;
use crate::error::Result;
use crate::parameter::{inherent_api, Parameter, Slot};

use super::{check_usize, decode_bool, decode_usize};

/// The largest accepted byte count for the store's limit and threshold: 1 PiB.
const BYTES_MAX: u64 = 1 << 50;

/// Whether the MPI backend keeps large objects once per host in shared memory:
/// `UNIDIST_MPI_SHARED_OBJECT_STORE`, a bool. Default: `true`: a large object is written once
/// per host, a `&Buffer<T>` parameter reads the shared mapping in place, and a natural type
/// (`Vec`, `String`) is copied out of it once. `false` sends every object as bytes over MPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpiSharedObjectStore;

impl Parameter for MpiSharedObjectStore {
    type Value = bool;
    const NAME: &'static str = "MpiSharedObjectStore";
    const VARNAME: &'static str = "UNIDIST_MPI_SHARED_OBJECT_STORE";
    const TYPE_NAME: &'static str = "bool";
    const EXPECTED: &'static str = decode::BOOL_EXPECTED;
    const HELP: &'static str = "mpi: keep large objects once per host in shared memory";

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
inherent_api!(MpiSharedObjectStore);

/// The bytes of shared memory the MPI backend's object store may use on a host:
/// `UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY`, a positive integer of bytes up to 2^50.
///
/// Default: 30% of the host's memory (`MemTotal` in `/proc/meminfo`; 1 GiB where that cannot
/// be read). Each rank counts the segments it created against the limit, so the limit holds per
/// creating rank (an approximation of the per-host total). Past it, objects stay private to
/// their process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpiSharedObjectStoreMemory;

impl MpiSharedObjectStoreMemory {
    /// 30% of `MemTotal` from a `/proc/meminfo` text, in bytes.
    fn fraction_of_meminfo(meminfo: &str) -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib.saturating_mul(1024) / 10 * 3)
    }
}

impl Parameter for MpiSharedObjectStoreMemory {
    type Value = usize;
    const NAME: &'static str = "MpiSharedObjectStoreMemory";
    const VARNAME: &'static str = "UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY";
    const TYPE_NAME: &'static str = "int (bytes)";
    const EXPECTED: &'static str =
        "a positive integer of bytes (decimal) between 1 and 1125899906842624";
    const HELP: &'static str =
        "mpi: shared memory in bytes for the object store per host (default 30% of memory)";

    fn default_value() -> usize {
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| Self::fraction_of_meminfo(&m))
            .unwrap_or(1 << 30)
            .clamp(1, BYTES_MAX);
        usize::try_from(total).unwrap_or(usize::MAX)
    }

    fn decode(variable: &str, raw: &str) -> Result<usize> {
        decode_usize(variable, raw, 1..=BYTES_MAX, Self::EXPECTED)
    }

    fn validate(value: usize) -> Result<usize> {
        check_usize(Self::VARNAME, value, 1..=BYTES_MAX, Self::EXPECTED)
    }

    fn encode(value: &usize) -> Option<String> {
        Some(value.to_string())
    }

    fn slot() -> &'static Slot<usize> {
        static SLOT: Slot<usize> = Slot::new();
        &SLOT
    }
}
inherent_api!(MpiSharedObjectStoreMemory);

/// The encoded size in bytes from which the MPI backend puts an object into the shared-memory
/// store: `UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD`, an integer from 0 to 2^50.
///
/// Default: 100000, as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MpiSharedObjectStoreThreshold;

impl Parameter for MpiSharedObjectStoreThreshold {
    type Value = usize;
    const NAME: &'static str = "MpiSharedObjectStoreThreshold";
    const VARNAME: &'static str = "UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD";
    const TYPE_NAME: &'static str = "int (bytes)";
    const EXPECTED: &'static str =
        "a non-negative integer of bytes (decimal) between 0 and 1125899906842624";
    const HELP: &'static str = "mpi: encoded size in bytes from which objects go to shared memory";

    fn default_value() -> usize {
        100_000
    }

    fn decode(variable: &str, raw: &str) -> Result<usize> {
        decode_usize(variable, raw, 0..=BYTES_MAX, Self::EXPECTED)
    }

    fn validate(value: usize) -> Result<usize> {
        check_usize(Self::VARNAME, value, 0..=BYTES_MAX, Self::EXPECTED)
    }

    fn encode(value: &usize) -> Option<String> {
        Some(value.to_string())
    }

    fn slot() -> &'static Slot<usize> {
        static SLOT: Slot<usize> = Slot::new();
        &SLOT
    }
}
inherent_api!(MpiSharedObjectStoreThreshold);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::isolate;
    use crate::ConfigError;

    #[test]
    fn defaults() {
        let _env = isolate();
        assert_eq!(MpiSharedObjectStore::get(), Ok(true));
        assert_eq!(MpiSharedObjectStoreThreshold::get(), Ok(100_000));
        assert!(MpiSharedObjectStoreMemory::get().unwrap() >= 1);
        assert_eq!(
            MpiSharedObjectStoreMemory::fraction_of_meminfo(
                "MemFree: 5 kB\nMemTotal:       1000 kB\n"
            ),
            Some(307_200)
        );
        assert_eq!(MpiSharedObjectStoreMemory::fraction_of_meminfo("x"), None);
    }

    #[test]
    fn environment_values_and_errors_name_the_variable() {
        let env = isolate();
        env.set("UNIDIST_MPI_SHARED_OBJECT_STORE", "False");
        MpiSharedObjectStore::reset();
        assert_eq!(MpiSharedObjectStore::get(), Ok(false));
        env.set("UNIDIST_MPI_SHARED_OBJECT_STORE", "maybe");
        MpiSharedObjectStore::reset();
        let err = MpiSharedObjectStore::get().unwrap_err();
        assert!(matches!(err, ConfigError::InvalidValue { .. }));
        assert!(err.to_string().contains("UNIDIST_MPI_SHARED_OBJECT_STORE"));
        assert!(err.to_string().contains("\"maybe\""));

        env.set("UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY", " 4096 ");
        MpiSharedObjectStoreMemory::reset();
        assert_eq!(MpiSharedObjectStoreMemory::get(), Ok(4096));
        for raw in ["0", "-1", "1GB", "1.5", "1125899906842625"] {
            env.set("UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY", raw);
            MpiSharedObjectStoreMemory::reset();
            let err = MpiSharedObjectStoreMemory::get().unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY")
                    && msg.contains(&format!("{raw:?}"))
                    && msg.contains("a positive integer of bytes"),
                "{msg}"
            );
        }
        assert!(MpiSharedObjectStoreMemory::put(0).is_err());

        env.set("UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD", "0");
        MpiSharedObjectStoreThreshold::reset();
        assert_eq!(MpiSharedObjectStoreThreshold::get(), Ok(0));
        env.set("UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD", "100k");
        MpiSharedObjectStoreThreshold::reset();
        let msg = MpiSharedObjectStoreThreshold::get()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD") && msg.contains("\"100k\"")
        );
    }
}
