//! `cargo xtask mpi-impls abi`: one build of the conformance suite against the MPI-5 standard
//! ABI (MPICH 5's `mpicc_abi`, `libmpi_abi.so.1`), run unchanged on every implementation here
//! that ships that ABI (MPICH 5 and Intel MPI), SPMD and spawn. Not in CI: it is one more
//! fresh build. See docs/mpi-implementations.md.

use std::path::PathBuf;
use std::time::Duration;

use crate::backend_table;
use crate::backends::{self, Launch, Row};
use crate::cluster_rows::failed;
use crate::mpi_impls::{check_links, Impl};
use crate::util;

/// The implementations that ship `libmpi_abi.so.1`; the first one builds.
const ABI_LIBRARIES: [Impl; 2] = [Impl::Mpich5, Impl::IntelMpi];

/// Builds against the ABI and runs the quick subset on each ABI library; returns the exit code.
pub(crate) fn abi() -> i32 {
    let Some(backend) = backend_table::mpi_backends().next() else {
        eprintln!("no MPI-launched backend in the backend table");
        return 1;
    };
    let mut reports = Vec::new();
    let bin = match ABI_LIBRARIES.iter().find_map(|i| i.missing()) {
        Some(why) => Err(why),
        None => build(backend.features),
    };
    for imp in ABI_LIBRARIES {
        for launch in [Launch::Spmd { np: 3 }, Launch::Spawn { cpus: 2 }] {
            let row = Row::mpi(backend, imp, launch);
            let label = format!("{} (one MPI ABI build)", row.label());
            let report = match &bin {
                Ok(bin) => match check_links(imp, bin) {
                    Ok(()) => backends::run_labelled(
                        label,
                        &mut backends::command(&row, bin, &[]),
                        Duration::from_secs(600),
                    ),
                    Err(e) => failed(label, e),
                },
                Err(e) => failed(label, e.clone()),
            };
            reports.push(report);
        }
    }
    let (_, failed) = backends::print_table(&reports);
    i32::from(failed > 0)
}

/// The build: `mpicc_abi`, with what rsmpi 0.8's build does not pass on by itself: bindgen
/// gets `-DMPI_ABI` (build-probe-mpi keeps only `-I`, `-L`, `-l` of `mpicc -show`), and both
/// bindgen and the C shim get `MPI_Fint` (the shim uses it; `mpi_abi.h` does not declare it;
/// `int` is the default Fortran integer of both libraries).
fn build(features: &[&str]) -> Result<PathBuf, String> {
    let builder = ABI_LIBRARIES[0];
    let venv = builder
        .venv()
        .ok_or("the ABI build needs a PyPI implementation")?;
    backends::build_suite(features, |cmd| {
        cmd.env("MPICC", venv.join("bin").join("mpicc_abi"))
            .env("CFLAGS", "-DMPI_Fint=int")
            .env("BINDGEN_EXTRA_CLANG_ARGS", "-DMPI_ABI -DMPI_Fint=int")
            .env(
                "CARGO_TARGET_DIR",
                util::root().join("target").join("mpi-abi"),
            )
            .envs(builder.env().iter().copied());
        Ok(())
    })
}
