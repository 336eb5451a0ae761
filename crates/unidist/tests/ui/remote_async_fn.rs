//! `#[remote]` on an `async fn`.

#[unidist::remote]
async fn fetch(x: i64) -> i64 {
    x
}

fn main() {}
