//! `#[remote(..)]` with an unknown key, a non-integer `num_returns`, and a repeated key.

#[unidist::remote(num_cpus = 2)]
fn unknown_key(x: i64) -> i64 {
    x
}

#[unidist::remote(num_returns = "2")]
fn not_an_integer(x: i64) -> (i64, i64) {
    (x, x)
}

#[unidist::remote(num_returns = 1, num_returns = 1)]
fn twice(x: i64) -> i64 {
    x
}

fn main() {}
