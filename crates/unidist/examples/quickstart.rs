//! The program of the README: five squares computed as remote tasks.
//!
//! `cargo run -p unidist --example quickstart` runs it on the local pool;
//! `UNIDIST_BACKEND=pyseq cargo run -p unidist --example quickstart` sequentially.

use unidist::ObjectRef;

#[unidist::remote]
fn square(x: i64) -> i64 {
    x * x
}

fn main() -> unidist::Result<()> {
    unidist::init()?; // backend from UNIDIST_BACKEND, else auto-detected
    let refs: Vec<ObjectRef<i64>> = (0..5).map(square::remote).collect();
    println!("{:?}", unidist::get_all(&refs)?); // [0, 1, 4, 9, 16]
    unidist::shutdown()
}
