//! The registry index: every registered function, actor type and method by a number that is
//! the same on every rank (the registry check at init guarantees equal registries).

use std::collections::HashMap;

use unidist_core::registry::{self, ActorClassEntry, ActorMethodEntry, RemoteFunction};
use unidist_core::Error;

use super::state::backend_err;

/// The registered items by index, and the index of each name.
pub(super) struct Table {
    pub(super) functions: Vec<&'static RemoteFunction>,
    pub(super) classes: Vec<&'static ActorClassEntry>,
    pub(super) methods: Vec<&'static ActorMethodEntry>,
    pub(super) function_index: HashMap<&'static str, u32>,
    pub(super) class_index: HashMap<&'static str, u32>,
    pub(super) method_index: HashMap<&'static str, u32>,
}

impl Table {
    pub(super) fn build() -> Table {
        let r = registry::registry();
        let mut t = Table {
            functions: Vec::new(),
            classes: Vec::new(),
            methods: Vec::new(),
            function_index: HashMap::new(),
            class_index: HashMap::new(),
            method_index: HashMap::new(),
        };
        for n in r.names() {
            if let Some(f) = n.strip_prefix("fn ").and_then(|n| r.function(n)) {
                t.function_index.insert(f.name, t.functions.len() as u32);
                t.functions.push(f);
            } else if let Some(c) = n.strip_prefix("actor ").and_then(|n| r.class(n)) {
                t.class_index.insert(c.name, t.classes.len() as u32);
                t.classes.push(c);
            } else if let Some(m) = n.strip_prefix("method ").and_then(|n| r.method(n)) {
                t.method_index.insert(m.name, t.methods.len() as u32);
                t.methods.push(m);
            }
        }
        t
    }
}

pub(super) fn unregistered(what: &str, name: &str) -> Error {
    backend_err(format!(
        "{what} {name} is not registered in this binary (define it with #[unidist::remote] or \
         #[unidist::actor] in a crate the program links)"
    ))
}
