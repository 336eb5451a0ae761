//! TODO

use super::*;

/// registry check at init guarantees equal registries).
pub(super) struct Table {
    pub(super) funcs: Vec<&'static RemoteFunction>,
    pub(super) classes: Vec<&'static ActorClassEntry>,
    pub(super) methods: Vec<&'static ActorMethodEntry>,
    pub(super) fidx: HashMap<&'static str, u32>,
    pub(super) cidx: HashMap<&'static str, u32>,
    pub(super) midx: HashMap<&'static str, u32>,
}

impl Table {
    pub(super) fn build() -> Table {
        let r = registry::registry();
        let mut t = Table {
            funcs: Vec::new(),
            classes: Vec::new(),
            methods: Vec::new(),
            fidx: HashMap::new(),
            cidx: HashMap::new(),
            midx: HashMap::new(),
        };
        for n in r.names() {
            if let Some(f) = n.strip_prefix("fn ").and_then(|n| r.function(n)) {
                t.fidx.insert(f.name, t.funcs.len() as u32);
                t.funcs.push(f);
            } else if let Some(c) = n.strip_prefix("actor ").and_then(|n| r.class(n)) {
                t.cidx.insert(c.name, t.classes.len() as u32);
                t.classes.push(c);
            } else if let Some(m) = n.strip_prefix("method ").and_then(|n| r.method(n)) {
                t.midx.insert(m.name, t.methods.len() as u32);
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
