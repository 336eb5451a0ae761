//! Test support: the pool backend installed through `unidist-testkit`, whose runtime helpers,
//! typed calls and fake registrations every test file uses.
#![allow(dead_code)]

use unidist_pymp::PoolOptions;
pub(crate) use unidist_testkit::*;

/// A pool backend of `threads` threads installed for this test (shut down on drop).
pub(crate) fn runtime(threads: usize) -> Installed {
    runtime_with(PoolOptions::new(threads))
}

/// A pool backend with `options` installed for this test (shut down on drop).
pub(crate) fn runtime_with(options: PoolOptions) -> Installed {
    install(|| unidist_pymp::start_with(options).expect("the pool backend starts"))
}

/// Starts a pool backend and installs it; call it during a [`turn`].
pub(crate) fn start_backend(options: PoolOptions) {
    replace_installed(unidist_pymp::start_with(options).expect("the pool backend starts"));
}

/// Shuts the installed backend down and removes it; call it during a [`turn`].
pub(crate) fn stop_backend() {
    remove_installed();
}
