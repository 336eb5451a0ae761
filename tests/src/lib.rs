//! Conformance suite of unidist; the cases live in the `conformance` test target.
//!
//! Run it with `cargo test -p unidist-tests` (every in-process backend, one after another), or on
//! one backend with `cargo test -p unidist-tests --test conformance -- --backend pyseq`.
//! `cargo xtask test-backends` runs it on every backend and MPI launch mode.
#![forbid(unsafe_code)]
