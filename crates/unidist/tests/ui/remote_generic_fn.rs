//! `#[remote]` on functions with a type parameter and a lifetime.

#[unidist::remote]
fn identity<T>(x: T) -> T {
    x
}

#[unidist::remote]
fn first<'a>(x: &'a str) -> usize {
    x.len()
}

fn main() {}
