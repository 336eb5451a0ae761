//! Configuration: typed `get`/`put`/`get_value_source`, and environment values decoded (or
//! rejected by `init`) in child processes, since the environment of this process is fixed.

use unidist::config::{Backend, BackendName, ConfigError, CpuCount, ValueSource};

use crate::harness::{cases, ensure, ensure_eq, ensure_mentions, Case, Fail, Outcome};
use crate::probe::{self, ProbeOutput};

pub fn cases() -> Vec<Case> {
    cases!("config":
        backend_get_put_source,
        backend_names,
        cpu_count_put_invalid,
        env_bad_cpus,
        env_bad_mpi_log,
        env_upstream_backends,
        env_bool_forms,
        env_numbers,
        env_spawn_alias,
    )
}

/// `put` of the running backend's name: `get` returns it and the source is `SetByUser`.
fn backend_get_put_source() -> Outcome {
    let current = Backend::get()?;
    Backend::put(current)?;
    ensure_eq!(Backend::get()?, current);
    ensure_eq!(Backend::get_value_source(), ValueSource::SetByUser);
    let cpus = CpuCount::get()?;
    CpuCount::put(cpus)?;
    ensure_eq!(CpuCount::get()?, cpus);
    ensure_eq!(CpuCount::get_value_source(), ValueSource::SetByUser);
    Ok(())
}

/// Backend names parse trimmed and in any case; upstream-only names are a distinct error.
fn backend_names() -> Outcome {
    ensure_eq!(" PySeq ".parse::<BackendName>()?, BackendName::Pyseq);
    ensure_eq!("MPI".parse::<BackendName>()?, BackendName::Mpi);
    ensure_eq!("pymp".parse::<BackendName>()?, BackendName::Pymp);
    match "dask".parse::<BackendName>() {
        Err(ConfigError::UnsupportedBackend {
            variable, value, ..
        }) => {
            ensure_eq!(
                (variable.as_str(), value.as_str()),
                ("UNIDIST_BACKEND", "dask")
            );
        }
        other => return Err(Fail(format!("expected UnsupportedBackend, got {other:?}"))),
    }
    match "threads".parse::<BackendName>() {
        Err(ConfigError::InvalidValue {
            variable, value, ..
        }) => {
            ensure_eq!(
                (variable.as_str(), value.as_str()),
                ("UNIDIST_BACKEND", "threads")
            );
        }
        other => return Err(Fail(format!("expected InvalidValue, got {other:?}"))),
    }
    Ok(())
}

/// A rejected `put` names the variable and the value and leaves the value unchanged.
fn cpu_count_put_invalid() -> Outcome {
    let before = CpuCount::get()?;
    let Err(e) = CpuCount::put(0) else {
        return Err(Fail("CpuCount::put(0) was accepted".into()));
    };
    ensure_eq!((e.variable(), e.value()), ("UNIDIST_CPUS", "0"));
    ensure_eq!(CpuCount::get()?, before);
    Ok(())
}

/// `init` in a child with `env` must fail with a configuration error whose message names each of
/// `parts`.
fn init_fails(env: &[(&str, &str)], parts: &[&str]) -> Outcome {
    let out = probe::run("--init-probe", env)?;
    ensure!(
        out.code == Some(3),
        "init with {env:?} did not fail as expected: exit {:?}, stdout {:?}, stderr {:?}",
        out.code,
        out.stdout,
        out.stderr
    );
    ensure!(
        out.stdout.lines().any(|l| l == "kind=Config"),
        "init with {env:?} failed with another kind: {}",
        out.stdout
    );
    ensure_mentions(&out.stderr, parts)
}

/// `init` in a child with `env` must succeed; returns what it printed.
fn init_succeeds(env: &[(&str, &str)]) -> Result<ProbeOutput, Fail> {
    let out = probe::run("--init-probe", env)?;
    ensure!(
        out.code == Some(0),
        "init with {env:?} failed: exit {:?}, stderr {:?}",
        out.code,
        out.stderr
    );
    Ok(out)
}

/// The value a probe printed for `var`.
fn printed<'a>(out: &'a ProbeOutput, var: &str) -> Result<&'a str, Fail> {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(var).and_then(|rest| rest.strip_prefix('=')))
        .ok_or_else(|| Fail(format!("the probe printed no {var}: {}", out.stdout)))
}

fn env_bad_cpus() -> Outcome {
    init_fails(
        &[("UNIDIST_BACKEND", "pyseq"), ("UNIDIST_CPUS", "abc")],
        &["UNIDIST_CPUS", "abc", "integer"],
    )
}

fn env_bad_mpi_log() -> Outcome {
    init_fails(
        &[("UNIDIST_BACKEND", "pyseq"), ("UNIDIST_MPI_LOG", "maybe")],
        &["UNIDIST_MPI_LOG", "maybe", "true", "false"],
    )
}

/// `ray` and `dask` say those backends do not exist here and list those that do.
fn env_upstream_backends() -> Outcome {
    for name in ["ray", "dask"] {
        init_fails(
            &[("UNIDIST_BACKEND", name)],
            &["UNIDIST_BACKEND", name, "mpi", "pymp", "pyseq"],
        )?;
    }
    Ok(())
}

/// Bools: `true/yes/1` and `false/no/0`, any case, trimmed; a value from the environment has
/// the source `GotFromCfgSource`, an unset one `Default`.
fn env_bool_forms() -> Outcome {
    let forms = [
        (" Yes ", "true"),
        ("TRUE", "true"),
        ("1", "true"),
        ("no", "false"),
        ("False ", "false"),
        ("0", "false"),
    ];
    for (raw, expected) in forms {
        let out = init_succeeds(&[("UNIDIST_BACKEND", "pyseq"), ("UNIDIST_MPI_LOG", raw)])?;
        ensure_eq!(printed(&out, "UNIDIST_MPI_LOG")?, expected);
        ensure_eq!(printed(&out, "source UNIDIST_MPI_LOG")?, "GotFromCfgSource");
        ensure_eq!(printed(&out, "source UNIDIST_MPI_BACKOFF")?, "Default");
    }
    Ok(())
}

/// Ints are decimal; floats take a fraction and an exponent.
fn env_numbers() -> Outcome {
    let out = init_succeeds(&[
        ("UNIDIST_BACKEND", "pyseq"),
        ("UNIDIST_CPUS", " 3 "),
        ("UNIDIST_MPI_BACKOFF", "1e-3"),
        ("UNIDIST_MPI_PICKLE_THRESHOLD", "1024"),
    ])?;
    ensure_eq!(printed(&out, "UNIDIST_CPUS")?, "3");
    ensure_eq!(printed(&out, "UNIDIST_MPI_PICKLE_THRESHOLD")?, "1024");
    let backoff: f64 = printed(&out, "UNIDIST_MPI_BACKOFF")?
        .parse()
        .map_err(|e| Fail(format!("the printed backoff is not a number: {e}")))?;
    let close = (backoff - 0.001).abs() < 1e-12;
    ensure!(close, "UNIDIST_MPI_BACKOFF=1e-3 decoded as {backoff}");
    Ok(())
}

/// `UNIDIST_MPI_SPAWN` is accepted for `UNIDIST_IS_MPI_SPAWN_WORKERS`.
fn env_spawn_alias() -> Outcome {
    let out = init_succeeds(&[("UNIDIST_BACKEND", "pyseq"), ("UNIDIST_MPI_SPAWN", "no")])?;
    ensure_eq!(printed(&out, "UNIDIST_IS_MPI_SPAWN_WORKERS")?, "false");
    Ok(())
}
