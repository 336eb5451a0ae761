//! Actor methods the macro rejects: a name the handle hides, an arity mismatch, `#[remote]`
//! without a receiver, generics, a `&mut` parameter, and a function named `remote`.

pub struct Counter {
    n: i64,
}

#[unidist::actor]
impl Counter {
    pub fn new() -> Self {
        Counter { n: 0 }
    }

    pub fn kill(&self) -> i64 {
        self.n
    }

    #[remote(num_returns = 2)]
    pub fn pair(&self) -> i64 {
        self.n
    }

    #[remote]
    pub fn helper() -> i64 {
        1
    }

    pub fn generic<T: Into<i64>>(&self, x: T) -> i64 {
        self.n + x.into()
    }

    pub fn update(&self, target: &mut i64) {
        *target = self.n;
    }

    pub fn remote() {}
}

fn main() {}
