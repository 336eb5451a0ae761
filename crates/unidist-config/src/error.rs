//! The error type of this crate: every way a configuration value can be rejected.

/// A `Result` whose error defaults to [`ConfigError`].
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// A configuration value was rejected.
///
/// Every variant names the environment variable (or, for [`put`](crate::Parameter::put), the
/// variable of the parameter that was set), the offending value as the user wrote it, and what
/// is accepted, so that the message alone is enough to fix the configuration. Match on the
/// variants and fields rather than on the message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The value could not be decoded, or is outside the accepted range.
    #[error("invalid value {value:?} for {variable}: expected {expected}")]
    InvalidValue {
        /// The environment variable of the parameter, e.g. `UNIDIST_CPUS`.
        variable: String,
        /// The rejected value, as read from the environment or rendered from `put`.
        value: String,
        /// What is accepted, e.g. `a positive integer (decimal) between 1 and 65536`.
        expected: String,
    },

    /// The environment variable is set but empty or whitespace only.
    ///
    /// This is an error rather than "unset" because an empty assignment is almost always a
    /// script bug (`UNIDIST_CPUS=$UNSET_VAR`), and silently using the default would hide it.
    #[error("empty value {value:?} for {variable}: expected {expected}")]
    EmptyValue {
        /// The environment variable that is set to an empty value.
        variable: String,
        /// The value exactly as set (empty or whitespace only).
        value: String,
        /// What is accepted.
        expected: String,
    },

    /// A backend name that upstream unidist knows (`ray`, `dask`) but unidist for Rust does not
    /// implement.
    #[error(
        "unsupported backend {value:?} for {variable}: that backend does not exist in unidist \
         for Rust; available backends: {available}"
    )]
    UnsupportedBackend {
        /// The variable the name came from, `UNIDIST_BACKEND`.
        variable: String,
        /// The rejected backend name, as written.
        value: String,
        /// The backends that exist, e.g. `mpi, pymp, pyseq`.
        available: String,
    },

    /// Two environment variables that set the same parameter (a name and its alias) are both set
    /// and decode to different values.
    #[error(
        "conflicting values for one parameter: {variable}={value:?} and \
         {other_variable}={other_value:?}; unset one of them or give both the same value"
    )]
    Conflict {
        /// The first variable found set (the parameter's main variable when it is set).
        variable: String,
        /// The value of `variable`, as written.
        value: String,
        /// The other variable, an alias of the same parameter.
        other_variable: String,
        /// The value of `other_variable`, as written.
        other_value: String,
    },
}

impl ConfigError {
    /// The environment variable this error is about (the first one, for a conflict).
    ///
    /// Callers that wrap this error (the facade's `init`) use it to say which setting to fix
    /// without parsing the message.
    pub fn variable(&self) -> &str {
        match self {
            ConfigError::InvalidValue { variable, .. }
            | ConfigError::EmptyValue { variable, .. }
            | ConfigError::UnsupportedBackend { variable, .. }
            | ConfigError::Conflict { variable, .. } => variable,
        }
    }

    /// The rejected value, as written (the first one, for a conflict).
    pub fn value(&self) -> &str {
        match self {
            ConfigError::InvalidValue { value, .. }
            | ConfigError::EmptyValue { value, .. }
            | ConfigError::UnsupportedBackend { value, .. }
            | ConfigError::Conflict { value, .. } => value,
        }
    }

    /// Builds an [`InvalidValue`](ConfigError::InvalidValue) error.
    pub(crate) fn invalid(variable: &str, value: impl Into<String>, expected: &str) -> Self {
        ConfigError::InvalidValue {
            variable: variable.to_owned(),
            value: value.into(),
            expected: expected.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_value_message_names_variable_value_and_expectation() {
        let e = ConfigError::invalid("UNIDIST_CPUS", "abc", "a positive integer");
        assert_eq!(
            e.to_string(),
            r#"invalid value "abc" for UNIDIST_CPUS: expected a positive integer"#
        );
        assert_eq!(e.variable(), "UNIDIST_CPUS");
        assert_eq!(e.value(), "abc");
    }

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        let errors = [
            ConfigError::invalid("V", "x", "y"),
            ConfigError::EmptyValue {
                variable: "V".into(),
                value: " ".into(),
                expected: "y".into(),
            },
            ConfigError::UnsupportedBackend {
                variable: "V".into(),
                value: "ray".into(),
                available: crate::BackendName::list(),
            },
            ConfigError::Conflict {
                variable: "A".into(),
                value: "1".into(),
                other_variable: "B".into(),
                other_value: "0".into(),
            },
        ];
        for e in errors {
            let msg = e.to_string();
            let first = msg.chars().next().unwrap();
            assert!(first.is_lowercase(), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
    }

    #[test]
    fn conflict_names_both_variables() {
        let e = ConfigError::Conflict {
            variable: "UNIDIST_IS_MPI_SPAWN_WORKERS".into(),
            value: "true".into(),
            other_variable: "UNIDIST_MPI_SPAWN".into(),
            other_value: "no".into(),
        };
        let msg = e.to_string();
        assert!(
            msg.contains(r#"UNIDIST_IS_MPI_SPAWN_WORKERS="true""#),
            "{msg}"
        );
        assert!(msg.contains(r#"UNIDIST_MPI_SPAWN="no""#), "{msg}");
        assert_eq!(e.variable(), "UNIDIST_IS_MPI_SPAWN_WORKERS");
    }
}
