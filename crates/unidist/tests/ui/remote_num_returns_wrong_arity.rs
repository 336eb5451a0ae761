//! `num_returns = 2` on a function returning a 3-tuple.

#[unidist::remote(num_returns = 2)]
fn three(x: i64) -> (i64, i64, i64) {
    (x, x, x)
}

fn main() {}
