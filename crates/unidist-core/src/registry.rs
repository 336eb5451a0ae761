//! The registry of remote functions and actor types, collected from `#[remote]` and
//! `#[actor]` expansions at link time, with stable names that processes running the same binary
//! can check against each other.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use crate::actor::{ActorReadGuard, ActorState, ActorWriteGuard, LocalBoxFuture};
use crate::error::Result;
use crate::value::{Outputs, Payload};

/// A remote function: its stable name, arity of results and type-erased trampoline.
pub struct RemoteFunction {
    /// `module::path::name`, unique in the binary.
    pub name: &'static str,
    /// How many objects a call produces.
    pub num_returns: usize,
    /// Reads the arguments, runs the body and splits the result into outputs.
    pub invoke: fn(&[Payload]) -> Result<Outputs>,
}

/// An actor type.
pub struct ActorClassEntry {
    /// `module::path::Type`, unique in the binary.
    pub name: &'static str,
    /// Runs `new` on the arguments.
    pub construct: fn(&[Payload]) -> Result<ActorState>,
}

/// How an actor method takes the actor.
#[derive(Clone, Copy)]
pub enum MethodKind {
    /// `fn(&self, ..)`.
    Ref(fn(&dyn Any, &[Payload]) -> Result<Outputs>),
    /// `fn(&mut self, ..)`.
    Mut(fn(&mut dyn Any, &[Payload]) -> Result<Outputs>),
    /// `async fn(&self, ..)`.
    Async(fn(ActorReadGuard, Vec<Payload>) -> LocalBoxFuture<Result<Outputs>>),
    /// `async fn(&mut self, ..)`.
    AsyncMut(fn(ActorWriteGuard, Vec<Payload>) -> LocalBoxFuture<Result<Outputs>>),
}

impl MethodKind {
    /// True for `async fn` methods.
    pub fn is_async(&self) -> bool {
        matches!(self, MethodKind::Async(_) | MethodKind::AsyncMut(_))
    }
}

/// An actor method.
pub struct ActorMethodEntry {
    /// `module::path::Type::method`, unique in the binary.
    pub name: &'static str,
    /// The name of its actor type.
    pub class: &'static str,
    /// How many objects a call produces.
    pub num_returns: usize,
    /// How it takes the actor, with its trampoline.
    pub kind: MethodKind,
}

macro_rules! debug_by_name {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name)
            }
        }
    )*};
}
debug_by_name!(RemoteFunction, ActorClassEntry, ActorMethodEntry);

/// One registration emitted by the macros.
#[derive(Debug, Clone, Copy)]
pub enum Registration {
    /// A `#[remote]` function.
    Function(&'static RemoteFunction),
    /// An `#[actor]` type.
    Class(&'static ActorClassEntry),
    /// A method of an `#[actor]` type.
    Method(&'static ActorMethodEntry),
}

inventory::collect!(Registration);

/// Every registration linked into this binary, by name.
#[derive(Debug)]
pub struct Registry {
    functions: BTreeMap<&'static str, &'static RemoteFunction>,
    classes: BTreeMap<&'static str, &'static ActorClassEntry>,
    methods: BTreeMap<&'static str, &'static ActorMethodEntry>,
    duplicates: Vec<&'static str>,
}

/// The registry of this binary, built on first use.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY
        .get_or_init(|| Registry::from_iter(inventory::iter::<Registration>.into_iter().copied()))
}

impl FromIterator<Registration> for Registry {
    fn from_iter<I: IntoIterator<Item = Registration>>(iter: I) -> Self {
        let mut r = Registry {
            functions: BTreeMap::new(),
            classes: BTreeMap::new(),
            methods: BTreeMap::new(),
            duplicates: Vec::new(),
        };
        for reg in iter {
            let (name, fresh) = match reg {
                Registration::Function(f) => (f.name, r.functions.insert(f.name, f).is_none()),
                Registration::Class(c) => (c.name, r.classes.insert(c.name, c).is_none()),
                Registration::Method(m) => (m.name, r.methods.insert(m.name, m).is_none()),
            };
            if !fresh {
                r.duplicates.push(name);
            }
        }
        r
    }
}

impl Registry {
    /// The remote function called `name`.
    pub fn function(&self, name: &str) -> Option<&'static RemoteFunction> {
        self.functions.get(name).copied()
    }

    /// The actor type called `name`.
    pub fn class(&self, name: &str) -> Option<&'static ActorClassEntry> {
        self.classes.get(name).copied()
    }

    /// The actor method called `name`.
    pub fn method(&self, name: &str) -> Option<&'static ActorMethodEntry> {
        self.methods.get(name).copied()
    }

    /// Every registered name, sorted, each prefixed with its kind (`fn `, `actor `, `method `).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .functions
            .keys()
            .map(|n| format!("fn {n}"))
            .chain(self.classes.keys().map(|n| format!("actor {n}")))
            .chain(self.methods.keys().map(|n| format!("method {n}")))
            .collect();
        v.sort();
        v
    }

    /// Names registered more than once (possible only with hand-written registrations).
    pub fn duplicates(&self) -> &[&'static str] {
        &self.duplicates
    }

    /// A 64-bit FNV-1a hash of [`names`](Registry::names); equal in processes of one binary.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for name in self.names() {
            for b in name.bytes().chain(std::iter::once(0)) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    /// The first name where `other` (another process's [`names`](Registry::names)) differs from
    /// this registry, described for an error message; `None` if they are equal.
    pub fn first_difference(&self, other: &[String]) -> Option<String> {
        let mine = self.names();
        for (i, (a, b)) in mine.iter().zip(other).enumerate() {
            if a != b {
                return Some(format!("entry {i}: here {a}, there {b}"));
            }
        }
        match mine.len().cmp(&other.len()) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(format!("{} is missing there", mine[other.len()])),
            std::cmp::Ordering::Less => Some(format!("{} is missing here", other[mine.len()])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing(_: &[Payload]) -> Result<Outputs> {
        Ok(vec![])
    }
    static A: RemoteFunction = RemoteFunction {
        name: "m::a",
        num_returns: 0,
        invoke: nothing,
    };
    static B: RemoteFunction = RemoteFunction {
        name: "m::b",
        num_returns: 0,
        invoke: nothing,
    };

    #[test]
    fn lookup_fingerprint_and_difference() {
        let r: Registry = [Registration::Function(&A), Registration::Function(&B)]
            .into_iter()
            .collect();
        assert_eq!(r.function("m::a").map(|f| f.name), Some("m::a"));
        assert!(r.function("m::c").is_none());
        let r2: Registry = [Registration::Function(&A)].into_iter().collect();
        assert_ne!(r.fingerprint(), r2.fingerprint());
        assert_eq!(r.first_difference(&r.names()), None);
        let diff = r.first_difference(&r2.names()).unwrap();
        assert!(diff.contains("fn m::b"), "{diff}");
        let dup: Registry = [Registration::Function(&A), Registration::Function(&A)]
            .into_iter()
            .collect();
        assert_eq!(dup.duplicates(), ["m::a"]);
    }
}
