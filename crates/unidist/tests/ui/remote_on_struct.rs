//! `#[remote]` on a struct instead of a function.

#[unidist::remote]
struct Counter {
    n: i64,
}

fn main() {}
