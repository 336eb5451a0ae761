//! Conformance suite for unidist backends
