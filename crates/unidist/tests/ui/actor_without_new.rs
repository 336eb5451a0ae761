//! Actor impl blocks without a `new(..) -> Self` constructor.

pub struct Counter {
    n: i64,
}

#[unidist::actor]
impl Counter {
    pub fn start(n: i64) -> Self {
        Counter { n }
    }

    pub fn get(&self) -> i64 {
        self.n
    }
}

pub struct Wrong;

#[unidist::actor]
impl Wrong {
    pub fn new() -> Option<Self> {
        Some(Wrong)
    }
}

fn main() {}
