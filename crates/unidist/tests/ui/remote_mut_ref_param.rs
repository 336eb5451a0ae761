//! `#[remote]` with a `&mut T` parameter.

#[unidist::remote]
fn push(v: &mut Vec<i64>, x: i64) {
    v.push(x);
}

fn main() {}
