//! `#[remote]` with `impl Trait` as a parameter and as the return type.

#[unidist::remote]
fn show(x: impl std::fmt::Display) -> String {
    x.to_string()
}

#[unidist::remote]
fn numbers() -> impl Iterator<Item = i64> {
    0..3
}

fn main() {}
