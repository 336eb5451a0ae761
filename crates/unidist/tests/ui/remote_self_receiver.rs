//! `#[remote]` on a method with a `self` receiver.

struct Thing;

impl Thing {
    #[unidist::remote]
    fn value(&self) -> i64 {
        1
    }
}

fn main() {}
