//! Fuzz target: arbitrary bytes through the codec's decoders (see `unidist_fuzz::codec`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    unidist_fuzz::codec::run(data);
});
