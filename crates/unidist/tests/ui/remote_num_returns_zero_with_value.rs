//! `num_returns = 0` on a function that returns a value.

#[unidist::remote(num_returns = 0)]
fn value(x: i64) -> i64 {
    x
}

fn main() {}
