//! Procedural macros for unidist; internal crate, use unidist
