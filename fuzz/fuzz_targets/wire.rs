//! Fuzz target: arbitrary bytes through the MPI receive path (see `unidist_fuzz::wire`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    unidist_fuzz::wire::run(data);
});
