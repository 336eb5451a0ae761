//! `num_returns = 2` on functions that do not return a tuple.

#[unidist::remote(num_returns = 2)]
fn one(x: i64) -> i64 {
    x
}

#[unidist::remote(num_returns = 2)]
fn none(_x: i64) {}

fn main() {}
