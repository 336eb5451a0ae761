//! An actor impl block with generic parameters.

pub struct Wrapper<T> {
    value: T,
}

#[unidist::actor]
impl<T: Clone + Send + 'static> Wrapper<T> {
    pub fn new(value: T) -> Self {
        Wrapper { value }
    }

    pub fn get(&self) -> T {
        self.value.clone()
    }
}

fn main() {}
