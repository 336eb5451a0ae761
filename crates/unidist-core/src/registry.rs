//! The registry of remote functions and actor types, collected from `#[remote]` and
//! `#[actor]` expansions at link time, with stable names that processes running the same binary
//! can check against each other and stable indices ([`Indexed`]) that name entries on the wire.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
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
    /// Reads the arguments, runs the body and splits the result into outputs. It owns the
    /// arguments, so a by-value parameter can take its value without a copy
    /// ([`Payload::into_owned`]).
    pub invoke: fn(Vec<Payload>) -> Result<Outputs>,
}

/// An actor type.
pub struct ActorClassEntry {
    /// `module::path::Type`, unique in the binary.
    pub name: &'static str,
    /// Runs `new` on the arguments, which it owns (as [`RemoteFunction::invoke`]).
    pub construct: fn(Vec<Payload>) -> Result<ActorState>,
}

/// How an actor method takes the actor.
#[derive(Clone, Copy)]
pub enum MethodKind {
    /// `fn(&self, ..)`. Every trampoline owns its arguments (as [`RemoteFunction::invoke`]).
    Ref(fn(&dyn Any, Vec<Payload>) -> Result<Outputs>),
    /// `fn(&mut self, ..)`.
    Mut(fn(&mut dyn Any, Vec<Payload>) -> Result<Outputs>),
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

/// Registry entries of one kind, sorted by their stable name and addressed by a `u32` index.
///
/// Processes running the same binary have the same entries, so an index names the same entry
/// in each of them: it is what crosses a process boundary instead of the name. The registry
/// check at start-up ([`Registry::fingerprint`]) makes sure the processes do run one binary.
pub struct Indexed<T: 'static> {
    entries: Vec<&'static T>,
    by_name: HashMap<&'static str, u32>,
}

impl<T: Named> Indexed<T> {
    fn new(sorted: BTreeMap<&'static str, &'static T>) -> Self {
        let entries: Vec<&'static T> = sorted.into_values().collect();
        let by_name = (0u32..).zip(&entries).map(|(i, e)| (e.name(), i)).collect();
        Indexed { entries, by_name }
    }

    /// The entry at `index`.
    pub fn get(&self, index: u32) -> Option<&'static T> {
        self.entries.get(index as usize).copied()
    }

    /// The index of the entry called `name`.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The entry called `name`.
    pub fn by_name(&self, name: &str) -> Option<&'static T> {
        self.index_of(name).and_then(|i| self.get(i))
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry with its index, in index (name) order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &'static T)> + '_ {
        (0u32..).zip(self.entries.iter().copied())
    }
}

impl<T: Named> fmt::Debug for Indexed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| e.name()))
            .finish()
    }
}

/// A registry entry with a stable name.
pub trait Named: Sync + 'static {
    /// `module::path::name`, unique among entries of its kind in the binary.
    fn name(&self) -> &'static str;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn name(&self) -> &'static str {
                self.name
            }
        }
    )*};
}
named!(RemoteFunction, ActorClassEntry, ActorMethodEntry);

/// Every registration linked into this binary, by name and by index.
#[derive(Debug)]
pub struct Registry {
    functions: Indexed<RemoteFunction>,
    classes: Indexed<ActorClassEntry>,
    methods: Indexed<ActorMethodEntry>,
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
        let mut functions = BTreeMap::new();
        let mut classes = BTreeMap::new();
        let mut methods = BTreeMap::new();
        let mut duplicates = Vec::new();
        for reg in iter {
            let (name, fresh) = match reg {
                Registration::Function(f) => (f.name, functions.insert(f.name, f).is_none()),
                Registration::Class(c) => (c.name, classes.insert(c.name, c).is_none()),
                Registration::Method(m) => (m.name, methods.insert(m.name, m).is_none()),
            };
            if !fresh {
                duplicates.push(name);
            }
        }
        Registry {
            functions: Indexed::new(functions),
            classes: Indexed::new(classes),
            methods: Indexed::new(methods),
            duplicates,
        }
    }
}

impl Registry {
    /// Every remote function, by stable index.
    pub fn functions(&self) -> &Indexed<RemoteFunction> {
        &self.functions
    }

    /// Every actor type, by stable index.
    pub fn classes(&self) -> &Indexed<ActorClassEntry> {
        &self.classes
    }

    /// Every actor method, by stable index.
    pub fn methods(&self) -> &Indexed<ActorMethodEntry> {
        &self.methods
    }

    /// The remote function called `name`.
    pub fn function(&self, name: &str) -> Option<&'static RemoteFunction> {
        self.functions.by_name(name)
    }

    /// The actor type called `name`.
    pub fn class(&self, name: &str) -> Option<&'static ActorClassEntry> {
        self.classes.by_name(name)
    }

    /// The actor method called `name`.
    pub fn method(&self, name: &str) -> Option<&'static ActorMethodEntry> {
        self.methods.by_name(name)
    }

    /// Every registered name, sorted, each prefixed with its kind (`fn `, `actor `, `method `):
    /// what [`fingerprint`](Registry::fingerprint) hashes and what processes compare. To name
    /// an entry across processes, use its index in [`functions`](Registry::functions),
    /// [`classes`](Registry::classes) or [`methods`](Registry::methods).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .functions
            .iter()
            .map(|(_, f)| format!("fn {}", f.name))
            .chain(
                self.classes
                    .iter()
                    .map(|(_, c)| format!("actor {}", c.name)),
            )
            .chain(
                self.methods
                    .iter()
                    .map(|(_, m)| format!("method {}", m.name)),
            )
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

    fn nothing(_: Vec<Payload>) -> Result<Outputs> {
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
        // Indices follow the sorted names, whatever the registration order.
        let reversed: Registry = [Registration::Function(&B), Registration::Function(&A)]
            .into_iter()
            .collect();
        assert_eq!(reversed.functions().index_of("m::a"), Some(0));
        assert_eq!(reversed.functions().get(1).map(|f| f.name), Some("m::b"));
        assert_eq!(reversed.functions().get(2).map(|f| f.name), None);
        assert_eq!(reversed.functions().len(), 2);
        assert!(reversed.classes().is_empty());
        let dup: Registry = [Registration::Function(&A), Registration::Function(&A)]
            .into_iter()
            .collect();
        assert_eq!(dup.duplicates(), ["m::a"]);
    }
}
