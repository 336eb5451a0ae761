//! Misuses of `#[unidist::remote]` and `#[unidist::actor]` fail to compile with a message that
//! names what is wrong and what is accepted; `tests/ui/*.stderr` holds the expected messages.

#[test]
fn macro_misuse_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
