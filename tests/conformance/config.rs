//! Configuration: typed `get`/`put`/`get_value_source`, and environment values decoded (or
//! rejected by `init`) in child processes, since the environment of this process is fixed.

use unidist::config::{
    Backend, BackendName, ConfigError, CpuCount, MpiBackoff, MpiHosts, MpiPickleThreshold,
    ValueSource,
};

use crate::harness::{
    cases, child_backend, ensure, ensure_eq, ensure_mentions, Case, Fail, Outcome,
};
use crate::probe::{self, ProbeOutput};

pub(crate) fn cases() -> Vec<Case> {
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
        env_bad_values_every_variable,
        env_alias_conflict,
        put_out_of_range,
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
    for name in BackendName::ALL {
        ensure_eq!(name.as_str().parse::<BackendName>()?, name);
        ensure_eq!(
            format!(" {} ", name.as_str().to_uppercase()).parse::<BackendName>()?,
            name
        );
    }
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
    let child = child_backend()?.as_str();
    init_fails(
        &[("UNIDIST_BACKEND", child), ("UNIDIST_CPUS", "abc")],
        &["UNIDIST_CPUS", "abc", "integer"],
    )
}

fn env_bad_mpi_log() -> Outcome {
    let child = child_backend()?.as_str();
    init_fails(
        &[("UNIDIST_BACKEND", child), ("UNIDIST_MPI_LOG", "maybe")],
        &["UNIDIST_MPI_LOG", "maybe", "true", "false"],
    )
}

/// `ray` and `dask` say those backends do not exist here and list those that do.
fn env_upstream_backends() -> Outcome {
    let mut parts: Vec<&str> = BackendName::ALL.iter().map(|b| b.as_str()).collect();
    parts.push("UNIDIST_BACKEND");
    for name in ["ray", "dask"] {
        parts.push(name);
        init_fails(&[("UNIDIST_BACKEND", name)], &parts)?;
        parts.pop();
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
    let child = child_backend()?.as_str();
    for (raw, expected) in forms {
        let out = init_succeeds(&[("UNIDIST_BACKEND", child), ("UNIDIST_MPI_LOG", raw)])?;
        ensure_eq!(printed(&out, "UNIDIST_MPI_LOG")?, expected);
        ensure_eq!(printed(&out, "source UNIDIST_MPI_LOG")?, "GotFromCfgSource");
        ensure_eq!(printed(&out, "source UNIDIST_MPI_BACKOFF")?, "Default");
    }
    Ok(())
}

/// Ints are decimal; floats take a fraction and an exponent.
fn env_numbers() -> Outcome {
    let out = init_succeeds(&[
        ("UNIDIST_BACKEND", child_backend()?.as_str()),
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
    let child = child_backend()?.as_str();
    let out = init_succeeds(&[("UNIDIST_BACKEND", child), ("UNIDIST_MPI_SPAWN", "no")])?;
    ensure_eq!(printed(&out, "UNIDIST_IS_MPI_SPAWN_WORKERS")?, "false");
    Ok(())
}

/// What each variable accepts, as its error messages say it (a fragment of `expected`); the
/// backend names come from their one table.
fn accepted() -> Vec<(&'static str, String)> {
    let names: Vec<&str> = BackendName::ALL.iter().map(|b| b.as_str()).collect();
    let mut accepted = vec![("UNIDIST_BACKEND", names.join(", "))];
    accepted.extend(ACCEPTED.iter().map(|(v, a)| (*v, a.to_string())));
    accepted
}

/// What each variable other than `UNIDIST_BACKEND` accepts (see [`accepted`]).
const ACCEPTED: &[(&str, &str)] = &[
    ("UNIDIST_CPUS", "between 1 and 65536"),
    ("UNIDIST_IS_MPI_SPAWN_WORKERS", "true, yes, 1, false, no, 0"),
    ("UNIDIST_MPI_SPAWN", "true, yes, 1, false, no, 0"),
    ("UNIDIST_MPI_HOSTS", "comma-separated list of host names"),
    (
        "UNIDIST_MPI_PICKLE_THRESHOLD",
        "between 0 and 1099511627776",
    ),
    ("UNIDIST_MPI_BACKOFF", "between 0 and 10"),
    ("UNIDIST_MPI_HEARTBEAT", "between 1 and 86400"),
    ("UNIDIST_MPI_LOG", "true, yes, 1, false, no, 0"),
    ("UNIDIST_PROGRESS", "true, yes, 1, false, no, 0"),
    ("UNIDIST_TIMELINE", "existing, writable directory"),
    (
        "UNIDIST_MPI_SHARED_OBJECT_STORE",
        "true, yes, 1, false, no, 0",
    ),
    (
        "UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY",
        "a positive integer of bytes",
    ),
    (
        "UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD",
        "between 0 and 1125899906842624",
    ),
];

/// Bad values for every variable: malformed, negative, empty (which is an error, never
/// "unset"), whitespace only, and huge (out of range, overflowing, or absurdly long).
fn bad_values(variable: &str) -> Vec<String> {
    let huge_text = "x".repeat(4096);
    if variable == "UNIDIST_TIMELINE" {
        // Almost any text is a file name: what is bad is a directory that does not exist, or
        // a name longer than a file name can be.
        return vec![
            String::new(),
            "   ".to_owned(),
            "/nonexistent-unidist-dir/trace.json".to_owned(),
            huge_text,
        ];
    }
    let mut values = vec![
        String::new(),
        "   ".to_owned(),
        "-1".to_owned(),
        huge_text,
        "18446744073709551616".to_owned(),
    ];
    let names = BackendName::ALL.map(BackendName::as_str);
    // A name with a space inside, two names, a name with a suffix.
    let backend_values = [
        format!("{} {}", &names[0][..1], &names[0][1..]),
        format!("{},{}", names[0], names[1]),
        format!("{}!", names[names.len() - 1]),
    ];
    let backend_values: Vec<&str> = backend_values.iter().map(String::as_str).collect();
    let specific: &[&str] = match variable {
        "UNIDIST_BACKEND" => &backend_values,
        "UNIDIST_CPUS" => &["abc", "0", "65537", "1.5", "+2", "0x10", "4 4"],
        "UNIDIST_MPI_PICKLE_THRESHOLD" => &["abc", "1099511627777", "1e6", "-0", "256k"],
        "UNIDIST_MPI_BACKOFF" => &["abc", "-0.5", "nan", "inf", "1e999", "10.5", "0x1p-3"],
        "UNIDIST_MPI_HEARTBEAT" => &["abc", "0", "0.5", "nan", "inf", "86401", "10s"],
        "UNIDIST_MPI_HOSTS" => &["a,,b", "a b", ",", "a,", "host\tname"],
        "UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY" => &["abc", "0", "1GB", "1.5", "-0"],
        "UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD" => &["abc", "1125899906842625", "1e5", "100k"],
        // The bools.
        _ => &["maybe", "2", "truee", "on", "y"],
    };
    values.extend(specific.iter().map(|v| v.to_string()));
    if variable == "UNIDIST_MPI_HOSTS" {
        // Digits and a leading dash can be host names; a name longer than any host name can
        // be (255 bytes), alone or in a list, cannot.
        values.retain(|v| v != "-1" && v != "18446744073709551616");
        values.push(format!("a,{}", "h".repeat(256)));
    }
    values
}

/// Every configuration variable, with each bad value, makes `init` fail (in a child process)
/// with a configuration error naming the variable, the value and what is accepted: never a
/// panic, an abort or a hang (a child that does not exit within 30 s fails the case).
fn env_bad_values_every_variable() -> Outcome {
    let accepted = accepted();
    // Every variable the configuration knows is covered, so a new one cannot be forgotten.
    for p in unidist::config::parameters() {
        for var in std::iter::once(p.env_var).chain(p.aliases.iter().copied()) {
            ensure!(
                accepted.iter().any(|(v, _)| *v == var),
                "{var} has no bad-value cases"
            );
        }
    }
    let child = child_backend()?.as_str();
    for (variable, accepted) in &accepted {
        let (variable, accepted) = (*variable, accepted.as_str());
        for value in bad_values(variable) {
            let mut env = vec![(variable, value.as_str())];
            if variable != "UNIDIST_BACKEND" {
                env.push(("UNIDIST_BACKEND", child));
            }
            // The message quotes the value (escaped); a huge one is checked by its start.
            let start: String = value.chars().take(64).collect();
            let quoted = format!("{start:?}");
            let shown = quoted.strip_suffix('"').unwrap_or(&quoted);
            init_fails(&env, &[variable, shown, accepted]).map_err(|Fail(m)| {
                // A huge value would make the report unreadable; its start is enough.
                let m: String = m.chars().take(600).collect();
                Fail(format!("{variable}={shown:?}: {m}"))
            })?;
        }
    }
    Ok(())
}

/// A variable and its alias set to different values is an error naming both.
fn env_alias_conflict() -> Outcome {
    init_fails(
        &[
            ("UNIDIST_BACKEND", child_backend()?.as_str()),
            ("UNIDIST_IS_MPI_SPAWN_WORKERS", "yes"),
            ("UNIDIST_MPI_SPAWN", "no"),
        ],
        &[
            "UNIDIST_IS_MPI_SPAWN_WORKERS",
            "UNIDIST_MPI_SPAWN",
            "yes",
            "no",
        ],
    )
}

/// `put` of negative, huge, NaN or empty values is rejected with the variable and value named,
/// and leaves the running configuration as it was.
fn put_out_of_range() -> Outcome {
    fn rejected(result: Result<(), ConfigError>, variable: &str, value: &str) -> Outcome {
        match result {
            Err(e) => {
                ensure_eq!(e.variable(), variable);
                ensure_mentions(&e.to_string(), &[variable, value])
            }
            Ok(()) => Err(Fail(format!("{variable}: put of {value} was accepted"))),
        }
    }
    let cpus = CpuCount::get()?;
    rejected(
        CpuCount::put(usize::MAX),
        "UNIDIST_CPUS",
        &usize::MAX.to_string(),
    )?;
    ensure_eq!(CpuCount::get()?, cpus);
    let threshold = MpiPickleThreshold::get()?;
    rejected(
        MpiPickleThreshold::put(usize::MAX),
        "UNIDIST_MPI_PICKLE_THRESHOLD",
        &usize::MAX.to_string(),
    )?;
    ensure_eq!(MpiPickleThreshold::get()?, threshold);
    let backoff = MpiBackoff::get()?;
    for bad in [-1.0, f64::NAN, f64::INFINITY, 1e300] {
        rejected(
            MpiBackoff::put(bad),
            "UNIDIST_MPI_BACKOFF",
            &bad.to_string(),
        )?;
    }
    ensure_eq!(MpiBackoff::get()?, backoff);
    let hosts = MpiHosts::get()?;
    for bad in ["", " ", "a,,b", "a b"] {
        rejected(
            MpiHosts::put(Some(bad.to_owned())),
            "UNIDIST_MPI_HOSTS",
            bad,
        )?;
    }
    ensure_eq!(MpiHosts::get()?, hosts);
    Ok(())
}
