//! `BackendName`: the closed set of backends that unidist for Rust implements.

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
    /// Every backend, in the order used by messages and listings.
    pub const ALL: [BackendName; 3] = [BackendName::Mpi, BackendName::Pymp, BackendName::Pyseq];

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
        Err(ConfigError::invalid(variable, raw, &expected()))
    }
}

/// What a backend name accepts, for error messages.
pub(crate) fn expected() -> String {
    format!("one of {} (case-insensitive)", BackendName::list())
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
