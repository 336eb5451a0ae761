//! Actor methods taking `self` by value or boxed.

pub struct Counter {
    n: i64,
}

#[unidist::actor]
impl Counter {
    pub fn new() -> Self {
        Counter { n: 0 }
    }

    pub fn into_inner(self) -> i64 {
        self.n
    }

    pub fn boxed(self: Box<Self>) -> i64 {
        self.n
    }
}

fn main() {}
