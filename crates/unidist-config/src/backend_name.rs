//! `BackendName`: the closed set of backends that unidist for Rust implements, and the one
//! table of their names from which every list in messages, docs and the facade is derived.

use std::fmt;
use std::str::FromStr;

use crate::error::{ConfigError, Result};

/// Backends of upstream unidist that do not exist here; naming one gets a dedicated error.
const UPSTREAM_ONLY: [&str; 2] = ["ray", "dask"];

/// A backend that unidist for Rust implements.
///
/// Parsing ([`FromStr`]) trims and ignores case, so `" MPI "` is [`BackendName::Mpi`]. The names
/// of upstream's Ray and Dask backends give [`ConfigError::UnsupportedBackend`]; any other name
/// gives [`ConfigError::InvalidValue`] listing the accepted names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BackendName {
    /// MPI: tasks and actors on MPI ranks, across hosts.
    Mpi,
    /// A local pool of worker threads in this process.
    Pymp,
    /// Sequential execution in the calling thread, for debugging.
    Pyseq,
}

impl BackendName {
    /// Every backend, in the order used by messages and listings. The facade also detects the
    /// default backend in this order (the first one built in and usable).
    ///
    /// This is the one table of backend names: configuration errors, the facade's list of
    /// built-in backends and the conformance suite derive their lists from it.
    pub const ALL: [BackendName; 3] = [BackendName::Mpi, BackendName::Pymp, BackendName::Pyseq];

    /// The default when no backend detector is registered (the facade always registers one).
    pub(crate) const UNDETECTED_DEFAULT: BackendName = BackendName::Pymp;

    /// The name as written in `UNIDIST_BACKEND`: `"mpi"`, `"pymp"` or `"pyseq"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BackendName::Mpi => "mpi",
            BackendName::Pymp => "pymp",
            BackendName::Pyseq => "pyseq",
        }
    }

    /// The accepted names joined with `", "`, for messages.
    pub(crate) fn list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// Parses a backend name, naming `variable` in the error.
    pub(crate) fn parse_for(variable: &str, raw: &str) -> Result<Self> {
        let name = raw.trim().to_ascii_lowercase();
        if let Some(found) = Self::ALL.into_iter().find(|b| b.as_str() == name) {
            return Ok(found);
        }
        if UPSTREAM_ONLY.contains(&name.as_str()) {
            return Err(ConfigError::UnsupportedBackend {
                variable: variable.to_owned(),
                value: raw.to_owned(),
                available: Self::list(),
            });
        }
        Err(ConfigError::invalid(variable, raw, EXPECTED))
    }
}

/// What a backend name accepts, for error messages and the parameter table:
/// `one of mpi, pymp, pyseq (case-insensitive)`, built from [`BackendName::ALL`] at compile time
/// because the parameter trait wants a `&'static str` constant.
pub(crate) const EXPECTED: &str = match std::str::from_utf8(&EXPECTED_BYTES) {
    Ok(text) => text,
    Err(_) => panic!("backend names are ASCII"),
};

const EXPECTED_PREFIX: &str = "one of ";
const EXPECTED_SEPARATOR: &str = ", ";
const EXPECTED_SUFFIX: &str = " (case-insensitive)";

/// The length of [`EXPECTED`].
const EXPECTED_LEN: usize = {
    let mut len = EXPECTED_PREFIX.len() + EXPECTED_SUFFIX.len();
    let mut i = 0;
    while i < BackendName::ALL.len() {
        if i > 0 {
            len += EXPECTED_SEPARATOR.len();
        }
        len += BackendName::ALL[i].as_str().len();
        i += 1;
    }
    len
};

/// The bytes of [`EXPECTED`]: the prefix, the names with separators, the suffix.
const EXPECTED_BYTES: [u8; EXPECTED_LEN] = {
    let mut buf = [0u8; EXPECTED_LEN];
    let mut at = append(&mut buf, 0, EXPECTED_PREFIX);
    let mut i = 0;
    while i < BackendName::ALL.len() {
        if i > 0 {
            at = append(&mut buf, at, EXPECTED_SEPARATOR);
        }
        at = append(&mut buf, at, BackendName::ALL[i].as_str());
        i += 1;
    }
    append(&mut buf, at, EXPECTED_SUFFIX);
    buf
};

/// Copies `text` into `buf` at `at`; returns the position after it.
const fn append(buf: &mut [u8], at: usize, text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        buf[at + i] = bytes[i];
        i += 1;
    }
    at + bytes.len()
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendName {
    type Err = ConfigError;

    /// Parses a backend name; errors name `UNIDIST_BACKEND`, where backend names come from.
    fn from_str(s: &str) -> Result<Self> {
        Self::parse_for(crate::params::BACKEND_VAR, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_as_str_agree_with_parse() {
        assert_eq!(BackendName::ALL.len(), 3);
        for b in BackendName::ALL {
            assert_eq!(b.to_string(), b.as_str());
            assert_eq!(b.as_str().parse::<BackendName>(), Ok(b));
        }
        assert_eq!(BackendName::Mpi.as_str(), "mpi");
        assert_eq!(BackendName::Pymp.as_str(), "pymp");
        assert_eq!(BackendName::Pyseq.as_str(), "pyseq");
    }

    #[test]
    fn expected_lists_every_name_in_table_order() {
        let names: Vec<&str> = BackendName::ALL.iter().map(|b| b.as_str()).collect();
        assert_eq!(
            EXPECTED,
            format!("one of {} (case-insensitive)", names.join(", "))
        );
        assert_eq!(EXPECTED, "one of mpi, pymp, pyseq (case-insensitive)");
    }

    #[test]
    fn parse_is_trimmed_and_case_insensitive() {
        assert_eq!(" MPI ".parse(), Ok(BackendName::Mpi));
        assert_eq!("PyMp".parse(), Ok(BackendName::Pymp));
        assert_eq!("\tPYSEQ\n".parse(), Ok(BackendName::Pyseq));
    }

    #[test]
    fn ray_and_dask_say_they_do_not_exist_here() {
        for raw in ["ray", "Dask", " RAY "] {
            let err = raw.parse::<BackendName>().unwrap_err();
            let ConfigError::UnsupportedBackend {
                variable,
                value,
                available,
            } = &err
            else {
                panic!("expected UnsupportedBackend for {raw:?}, got {err:?}");
            };
            assert_eq!(variable, "UNIDIST_BACKEND");
            assert_eq!(value, raw);
            assert_eq!(available, "mpi, pymp, pyseq");
            let msg = err.to_string();
            assert!(msg.contains("does not exist in unidist for Rust"), "{msg}");
            assert!(msg.contains(&format!("{raw:?}")), "{msg}");
            assert!(msg.contains("UNIDIST_BACKEND"), "{msg}");
            assert!(msg.contains("mpi, pymp, pyseq"), "{msg}");
        }
    }

    #[test]
    fn other_names_are_invalid_and_list_accepted_names() {
        for raw in ["threads", "", "mpi4py", "py seq"] {
            let err = raw.parse::<BackendName>().unwrap_err();
            let ConfigError::InvalidValue {
                variable,
                value,
                expected,
            } = &err
            else {
                panic!("expected InvalidValue for {raw:?}, got {err:?}");
            };
            assert_eq!(variable, "UNIDIST_BACKEND");
            assert_eq!(value, raw);
            assert!(expected.contains("mpi, pymp, pyseq"), "{expected}");
            assert!(err.to_string().contains("mpi, pymp, pyseq"));
        }
    }
}
