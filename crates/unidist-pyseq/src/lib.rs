//! Sequential backend for unidist; internal crate, use unidist
