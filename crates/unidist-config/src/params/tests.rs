//! Tests of each parameter: defaults, env decoding, `put`/`get`/value sources, aliases, errors.

use super::*;
use crate::test_support::isolate;
use crate::ValueSource;

/// Asserts that `err` is `InvalidValue` naming `variable`, quoting `value` and describing what is
/// accepted with `expected_part`, in both the structured fields and the message.
#[track_caller]
fn assert_invalid(err: &ConfigError, variable: &str, value: &str, expected_part: &str) {
    let ConfigError::InvalidValue {
        variable: v,
        value: val,
        expected,
    } = err
    else {
        panic!("expected InvalidValue, got {err:?}");
    };
    assert_eq!(v, variable);
    assert_eq!(val, value);
    assert!(
        expected.contains(expected_part),
        "{expected:?} lacks {expected_part:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(variable), "{msg}");
    assert!(msg.contains(&format!("{value:?}")), "{msg}");
    assert!(msg.contains(expected_part), "{msg}");
}

#[test]
fn backend_expected_matches_backend_list() {
    assert_eq!(
        Backend::EXPECTED,
        format!("one of {} (case-insensitive)", BackendName::list())
    );
}

/// Backends other than the no-detector default, so that a detector's choice, an environment
/// value and a `put` can each be told apart from the default (and from each other).
fn not_default(i: usize) -> BackendName {
    let others: Vec<BackendName> = BackendName::ALL
        .into_iter()
        .filter(|b| *b != BackendName::UNDETECTED_DEFAULT)
        .collect();
    others[i % others.len()]
}

#[test]
fn defaults_without_environment() {
    let _env = isolate();
    assert_eq!(Backend::get(), Ok(BackendName::UNDETECTED_DEFAULT));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(CpuCount::get(), Ok(cores));
    assert_eq!(IsMpiSpawnWorkers::get(), Ok(true));
    assert_eq!(MpiHosts::get(), Ok(None));
    assert_eq!(MpiHosts::hosts(), Ok(Vec::new()));
    assert_eq!(MpiPickleThreshold::get(), Ok(262_144));
    assert_eq!(MpiBackoff::get(), Ok(0.0001));
    assert_eq!(MpiLog::get(), Ok(false));

    assert_eq!(Backend::get_value_source(), ValueSource::Default);
    assert_eq!(CpuCount::get_value_source(), ValueSource::Default);
    assert_eq!(IsMpiSpawnWorkers::get_value_source(), ValueSource::Default);
    assert_eq!(MpiHosts::get_value_source(), ValueSource::Default);
    assert_eq!(MpiPickleThreshold::get_value_source(), ValueSource::Default);
    assert_eq!(MpiBackoff::get_value_source(), ValueSource::Default);
    assert_eq!(MpiLog::get_value_source(), ValueSource::Default);
}

#[test]
fn value_source_resolves_before_get() {
    let env = isolate();
    env.set("UNIDIST_CPUS", "3");
    // Asking for the source first must read the environment, as upstream does.
    assert_eq!(CpuCount::get_value_source(), ValueSource::GotFromCfgSource);
    assert_eq!(CpuCount::get(), Ok(3));
}

#[test]
fn backend_detector_decides_the_default() {
    let env = isolate();
    fn first_other() -> BackendName {
        not_default(0)
    }
    fn second_other() -> BackendName {
        not_default(1)
    }
    let default = BackendName::UNDETECTED_DEFAULT;
    // A default cached before the detector is registered is recomputed after.
    assert_eq!(Backend::get(), Ok(default));
    set_backend_detector(first_other);
    assert_eq!(Backend::get(), Ok(first_other()));
    assert_eq!(Backend::get_value_source(), ValueSource::Default);

    // The environment beats the detector, and registering again does not drop an env value.
    Backend::reset();
    env.set("UNIDIST_BACKEND", default.as_str());
    set_backend_detector(second_other);
    assert_eq!(Backend::get(), Ok(default));
    env.unset("UNIDIST_BACKEND");
    set_backend_detector(first_other);
    assert_eq!(Backend::get(), Ok(default), "env value is cached");

    // `put` beats everything and survives a new detector.
    Backend::put(second_other()).unwrap();
    set_backend_detector(first_other);
    assert_eq!(Backend::get(), Ok(second_other()));
    assert_eq!(Backend::get_value_source(), ValueSource::SetByUser);
}

#[test]
fn put_beats_env_and_env_beats_default() {
    let env = isolate();
    env.set("UNIDIST_CPUS", "7");
    assert_eq!(CpuCount::get(), Ok(7));
    assert_eq!(CpuCount::get_value_source(), ValueSource::GotFromCfgSource);
    CpuCount::put(4).unwrap();
    assert_eq!(CpuCount::get(), Ok(4));
    assert_eq!(CpuCount::get_value_source(), ValueSource::SetByUser);
    CpuCount::reset();
    assert_eq!(CpuCount::get(), Ok(7));
    assert_eq!(CpuCount::get_value_source(), ValueSource::GotFromCfgSource);
}

#[test]
fn values_are_cached_until_reset() {
    let env = isolate();
    env.set("UNIDIST_MPI_LOG", "yes");
    assert_eq!(MpiLog::get(), Ok(true));
    env.set("UNIDIST_MPI_LOG", "no");
    assert_eq!(MpiLog::get(), Ok(true), "the first value read is kept");
    MpiLog::reset();
    assert_eq!(MpiLog::get(), Ok(false));
    env.unset("UNIDIST_MPI_LOG");
    MpiLog::reset();
    assert_eq!(MpiLog::get(), Ok(false));
    assert_eq!(MpiLog::get_value_source(), ValueSource::Default);
}

#[test]
fn errors_are_not_cached() {
    let env = isolate();
    env.set("UNIDIST_CPUS", "abc");
    let err = CpuCount::get().unwrap_err();
    assert_invalid(&err, "UNIDIST_CPUS", "abc", "between 1 and 65536");
    assert_eq!(
        err.to_string(),
        r#"invalid value "abc" for UNIDIST_CPUS: expected a positive integer (decimal) between 1 and 65536"#
    );
    assert_eq!(CpuCount::get_value_source(), ValueSource::GotFromCfgSource);
    env.set("UNIDIST_CPUS", "2");
    assert_eq!(CpuCount::get(), Ok(2));
}

#[test]
fn put_validates_and_keeps_the_old_value_on_error() {
    let _env = isolate();
    CpuCount::put(8).unwrap();
    let err = CpuCount::put(0).unwrap_err();
    assert_invalid(&err, "UNIDIST_CPUS", "0", "between 1 and 65536");
    assert_invalid(
        &CpuCount::put(65_537).unwrap_err(),
        "UNIDIST_CPUS",
        "65537",
        "between 1 and 65536",
    );
    assert_eq!(CpuCount::get(), Ok(8));
    assert_eq!(CpuCount::get_value_source(), ValueSource::SetByUser);
    CpuCount::put(1).unwrap();
    CpuCount::put(65_536).unwrap();
    assert_eq!(CpuCount::get(), Ok(65_536));
}

#[test]
fn bool_put_is_typed() {
    // Upstream turns put("false") into True; here put takes a bool and keeps it.
    let _env = isolate();
    MpiLog::put(false).unwrap();
    assert_eq!(MpiLog::get(), Ok(false));
    assert_eq!(MpiLog::get_value_source(), ValueSource::SetByUser);
    MpiLog::put(true).unwrap();
    assert_eq!(MpiLog::get(), Ok(true));
    IsMpiSpawnWorkers::put(false).unwrap();
    assert_eq!(IsMpiSpawnWorkers::get(), Ok(false));
}

#[test]
fn bool_env_values() {
    let env = isolate();
    for (raw, want) in [
        ("true", true),
        ("TRUE", true),
        (" Yes ", true),
        ("1", true),
        ("false", false),
        ("No", false),
        ("\t0\n", false),
        ("FALSE", false),
    ] {
        env.set("UNIDIST_MPI_LOG", raw);
        MpiLog::reset();
        assert_eq!(MpiLog::get(), Ok(want), "{raw:?}");
        assert_eq!(MpiLog::get_value_source(), ValueSource::GotFromCfgSource);
    }
    for raw in ["maybe", "on", "2", "tru", "y"] {
        env.set("UNIDIST_MPI_LOG", raw);
        MpiLog::reset();
        let err = MpiLog::get().unwrap_err();
        assert_invalid(&err, "UNIDIST_MPI_LOG", raw, "true, yes, 1, false, no, 0");
    }
}

#[test]
fn int_env_values() {
    let env = isolate();
    for (raw, want) in [("1", 1), (" 16 ", 16), ("007", 7), ("65536", 65_536)] {
        env.set("UNIDIST_CPUS", raw);
        CpuCount::reset();
        assert_eq!(CpuCount::get(), Ok(want), "{raw:?}");
    }
    for raw in [
        "0",
        "-1",
        "+4",
        "4.0",
        "1e2",
        "0x10",
        "four",
        "65537",
        "99999999999999999999999",
    ] {
        env.set("UNIDIST_CPUS", raw);
        CpuCount::reset();
        let err = CpuCount::get().unwrap_err();
        assert_invalid(&err, "UNIDIST_CPUS", raw, "between 1 and 65536");
    }

    let max = 1_u64 << 40;
    for (raw, want) in [("0", 0), ("1024", 1024), (" 1099511627776 ", max)] {
        env.set("UNIDIST_MPI_PICKLE_THRESHOLD", raw);
        MpiPickleThreshold::reset();
        let want = usize::try_from(want).unwrap();
        assert_eq!(MpiPickleThreshold::get(), Ok(want), "{raw:?}");
    }
    for raw in ["1099511627777", "-0", "1k", "18446744073709551616"] {
        env.set("UNIDIST_MPI_PICKLE_THRESHOLD", raw);
        MpiPickleThreshold::reset();
        let err = MpiPickleThreshold::get().unwrap_err();
        assert_invalid(
            &err,
            "UNIDIST_MPI_PICKLE_THRESHOLD",
            raw,
            "between 0 and 1099511627776",
        );
    }
}

#[test]
fn pickle_threshold_put_bounds() {
    let _env = isolate();
    MpiPickleThreshold::put(0).unwrap();
    assert_eq!(MpiPickleThreshold::get(), Ok(0));
    if let Ok(max) = usize::try_from(1_u64 << 40) {
        MpiPickleThreshold::put(max).unwrap();
        let err = MpiPickleThreshold::put(max + 1).unwrap_err();
        assert_invalid(
            &err,
            "UNIDIST_MPI_PICKLE_THRESHOLD",
            &(max + 1).to_string(),
            "between 0 and 1099511627776",
        );
        assert_eq!(MpiPickleThreshold::get(), Ok(max));
    }
}

#[test]
fn float_env_values() {
    let env = isolate();
    for (raw, want) in [
        ("0.0001", 0.0001),
        ("1e-4", 1e-4),
        (" .5 ", 0.5),
        ("2.", 2.0),
        ("0", 0.0),
        ("10", 10.0),
        ("+1E-3", 1e-3),
    ] {
        env.set("UNIDIST_MPI_BACKOFF", raw);
        MpiBackoff::reset();
        assert_eq!(MpiBackoff::get(), Ok(want), "{raw:?}");
    }
    for raw in [
        "nan", "inf", "-inf", "0x1p-4", "-0.5", "10.5", "1e2", "abc", "1e", "1,5",
    ] {
        env.set("UNIDIST_MPI_BACKOFF", raw);
        MpiBackoff::reset();
        let err = MpiBackoff::get().unwrap_err();
        assert_invalid(&err, "UNIDIST_MPI_BACKOFF", raw, "between 0 and 10");
    }
}

#[test]
fn backoff_put_bounds() {
    let _env = isolate();
    MpiBackoff::put(0.0).unwrap();
    MpiBackoff::put(10.0).unwrap();
    MpiBackoff::put(0.5).unwrap();
    for (bad, shown) in [
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (-0.001, "-0.001"),
        (10.001, "10.001"),
    ] {
        let err = MpiBackoff::put(bad).unwrap_err();
        assert_invalid(
            &err,
            "UNIDIST_MPI_BACKOFF",
            shown,
            "finite decimal number of seconds",
        );
    }
    assert_eq!(MpiBackoff::get(), Ok(0.5));
}

#[test]
fn empty_and_whitespace_values_are_errors_saying_empty() {
    let env = isolate();
    for (var, raw) in [
        ("UNIDIST_CPUS", ""),
        ("UNIDIST_MPI_LOG", "   "),
        ("UNIDIST_BACKEND", "\t"),
        ("UNIDIST_MPI_HOSTS", " "),
        ("UNIDIST_MPI_BACKOFF", ""),
    ] {
        env.set(var, raw);
        let err = crate::validate_all().unwrap_err();
        let ConfigError::EmptyValue {
            variable,
            value,
            expected,
        } = &err
        else {
            panic!("expected EmptyValue for {var}={raw:?}, got {err:?}");
        };
        assert_eq!(variable, var);
        assert_eq!(value, raw);
        assert!(!expected.is_empty());
        let msg = err.to_string();
        assert!(msg.starts_with("empty value"), "{msg}");
        assert!(msg.contains(var), "{msg}");
        assert!(msg.contains(expected.as_str()), "{msg}");
        env.unset(var);
        crate::reset_all();
    }
}

#[cfg(unix)]
#[test]
fn non_utf8_values_are_errors() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let _env = isolate();
    std::env::set_var("UNIDIST_CPUS", OsString::from_vec(vec![b'4', 0xff]));
    let err = CpuCount::get().unwrap_err();
    let ConfigError::InvalidValue {
        variable, expected, ..
    } = &err
    else {
        panic!("expected InvalidValue, got {err:?}");
    };
    assert_eq!(variable, "UNIDIST_CPUS");
    assert!(expected.contains("not valid UTF-8"), "{expected}");
}

#[test]
fn backend_env_values() {
    let env = isolate();
    for want in BackendName::ALL {
        let name = want.as_str();
        let mixed: String = name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        for raw in [name.to_owned(), format!(" {} ", name.to_uppercase()), mixed] {
            env.set("UNIDIST_BACKEND", &raw);
            Backend::reset();
            assert_eq!(Backend::get(), Ok(want), "{raw:?}");
            assert_eq!(Backend::get_value_source(), ValueSource::GotFromCfgSource);
        }
    }
    env.set("UNIDIST_BACKEND", "threads");
    Backend::reset();
    assert_invalid(
        &Backend::get().unwrap_err(),
        "UNIDIST_BACKEND",
        "threads",
        &BackendName::list(),
    );
}

#[test]
fn ray_and_dask_from_env_say_they_do_not_exist() {
    let env = isolate();
    for raw in ["ray", "dask", "Ray"] {
        env.set("UNIDIST_BACKEND", raw);
        Backend::reset();
        let err = Backend::get().unwrap_err();
        let ConfigError::UnsupportedBackend {
            variable,
            value,
            available,
        } = &err
        else {
            panic!("expected UnsupportedBackend, got {err:?}");
        };
        assert_eq!(variable, "UNIDIST_BACKEND");
        assert_eq!(value, raw);
        assert_eq!(*available, BackendName::list());
        let msg = err.to_string();
        assert!(msg.contains("UNIDIST_BACKEND"), "{msg}");
        assert!(msg.contains(&format!("{raw:?}")), "{msg}");
        assert!(msg.contains("does not exist in unidist for Rust"), "{msg}");
        assert!(msg.contains(&BackendName::list()), "{msg}");
    }
}

#[test]
fn spawn_alias_alone_or_agreeing() {
    let env = isolate();
    env.set("UNIDIST_MPI_SPAWN", "false");
    assert_eq!(IsMpiSpawnWorkers::get(), Ok(false));
    assert_eq!(
        IsMpiSpawnWorkers::get_value_source(),
        ValueSource::GotFromCfgSource
    );

    // Different spellings of the same value agree.
    env.set("UNIDIST_IS_MPI_SPAWN_WORKERS", "NO");
    env.set("UNIDIST_MPI_SPAWN", "0");
    IsMpiSpawnWorkers::reset();
    assert_eq!(IsMpiSpawnWorkers::get(), Ok(false));

    env.unset("UNIDIST_MPI_SPAWN");
    env.set("UNIDIST_IS_MPI_SPAWN_WORKERS", "yes");
    IsMpiSpawnWorkers::reset();
    assert_eq!(IsMpiSpawnWorkers::get(), Ok(true));
}

#[test]
fn spawn_alias_conflict_names_both_variables() {
    let env = isolate();
    env.set("UNIDIST_IS_MPI_SPAWN_WORKERS", "true");
    env.set("UNIDIST_MPI_SPAWN", " no ");
    let err = IsMpiSpawnWorkers::get().unwrap_err();
    assert_eq!(
        err,
        ConfigError::Conflict {
            variable: "UNIDIST_IS_MPI_SPAWN_WORKERS".into(),
            value: "true".into(),
            other_variable: "UNIDIST_MPI_SPAWN".into(),
            other_value: "no".into(),
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("UNIDIST_IS_MPI_SPAWN_WORKERS"), "{msg}");
    assert!(msg.contains("UNIDIST_MPI_SPAWN="), "{msg}");
    assert!(msg.contains("\"no\""), "{msg}");
    // `put` resolves the conflict for this process.
    IsMpiSpawnWorkers::put(false).unwrap();
    assert_eq!(IsMpiSpawnWorkers::get(), Ok(false));
}

#[test]
fn spawn_alias_bad_value_names_the_alias() {
    let env = isolate();
    env.set("UNIDIST_MPI_SPAWN", "sometimes");
    let err = IsMpiSpawnWorkers::get().unwrap_err();
    assert_invalid(&err, "UNIDIST_MPI_SPAWN", "sometimes", "true, yes, 1");
}

#[test]
fn hosts_are_trimmed_and_listed() {
    let env = isolate();
    env.set("UNIDIST_MPI_HOSTS", " node1 , node2,node3 ");
    assert_eq!(MpiHosts::get(), Ok(Some("node1,node2,node3".to_owned())));
    assert_eq!(
        MpiHosts::hosts(),
        Ok(vec![
            "node1".to_owned(),
            "node2".to_owned(),
            "node3".to_owned()
        ])
    );
    env.set("UNIDIST_MPI_HOSTS", "localhost");
    MpiHosts::reset();
    assert_eq!(MpiHosts::hosts(), Ok(vec!["localhost".to_owned()]));

    MpiHosts::put(Some("a , b".to_owned())).unwrap();
    assert_eq!(MpiHosts::get(), Ok(Some("a,b".to_owned())));
    MpiHosts::put(None).unwrap();
    assert_eq!(MpiHosts::get(), Ok(None));
    assert_eq!(MpiHosts::get_value_source(), ValueSource::SetByUser);
}

#[test]
fn hosts_reject_empty_names_and_whitespace() {
    let env = isolate();
    let long_name = format!("a,{}", "h".repeat(256));
    for raw in [",", "a,,b", "a,", ",a", "a b", " , ", &long_name] {
        env.set("UNIDIST_MPI_HOSTS", raw);
        MpiHosts::reset();
        let err = MpiHosts::get().unwrap_err();
        assert_invalid(
            &err,
            "UNIDIST_MPI_HOSTS",
            raw.trim(),
            "comma-separated list of host names",
        );
        assert!(MpiHosts::hosts().is_err());
    }
    for raw in ["", "a,,b", "x y", &long_name] {
        let err = MpiHosts::put(Some(raw.to_owned())).unwrap_err();
        assert_invalid(
            &err,
            "UNIDIST_MPI_HOSTS",
            raw,
            "comma-separated list of host names",
        );
    }
}

#[test]
fn hosts_accept_names_up_to_255_bytes() {
    let _env = isolate();
    let longest = "h".repeat(255);
    MpiHosts::put(Some(format!("a,{longest}"))).expect("a 255-byte name is a host name");
    assert_eq!(MpiHosts::hosts(), Ok(vec!["a".to_owned(), longest]));
}

#[test]
fn concurrent_first_reads_agree() {
    let env = isolate();
    env.set("UNIDIST_MPI_PICKLE_THRESHOLD", "4096");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                (0..100)
                    .map(|_| MpiPickleThreshold::get())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for handle in handles {
        for got in handle.join().unwrap() {
            assert_eq!(got, Ok(4096));
        }
    }
    assert_eq!(
        MpiPickleThreshold::get_value_source(),
        ValueSource::GotFromCfgSource
    );
}

#[test]
fn trait_and_inherent_calls_agree() {
    let _env = isolate();
    <CpuCount as Parameter>::put(5).unwrap();
    assert_eq!(CpuCount::get(), Ok(5));
    CpuCount::put(6).unwrap();
    assert_eq!(<CpuCount as Parameter>::get(), Ok(6));
    <CpuCount as Parameter>::reset();
    assert_eq!(CpuCount::get_value_source(), ValueSource::Default);
}

#[test]
fn progress_decodes_bools_from_env() {
    let env = isolate();
    assert_eq!(Progress::get(), Ok(false));
    for (raw, want) in [("true", true), (" YES ", true), ("0", false)] {
        env.set("UNIDIST_PROGRESS", raw);
        Progress::reset();
        assert_eq!(Progress::get(), Ok(want), "{raw:?}");
        assert_eq!(Progress::get_value_source(), ValueSource::GotFromCfgSource);
    }
    env.set("UNIDIST_PROGRESS", "sometimes");
    Progress::reset();
    let err = Progress::get().unwrap_err();
    assert_invalid(&err, "UNIDIST_PROGRESS", "sometimes", "true, yes, 1");
}

#[test]
fn timeline_is_a_trimmed_path_and_empty_is_an_error() {
    let env = isolate();
    assert_eq!(Timeline::get(), Ok(None));
    env.set("UNIDIST_TIMELINE", " /tmp/trace.json ");
    Timeline::reset();
    assert_eq!(Timeline::get(), Ok(Some("/tmp/trace.json".to_string())));
    env.set("UNIDIST_TIMELINE", "  ");
    Timeline::reset();
    assert!(matches!(
        Timeline::get(),
        Err(ConfigError::EmptyValue { ref variable, .. }) if variable == "UNIDIST_TIMELINE"
    ));
    let err = Timeline::put(Some(" ".into())).unwrap_err();
    assert_invalid(&err, "UNIDIST_TIMELINE", " ", "writable directory");
    Timeline::put(Some("out.json".into())).unwrap();
    assert_eq!(Timeline::get(), Ok(Some("out.json".to_string())));
}

#[test]
fn heartbeat_is_seconds_from_1_to_a_day() {
    let env = isolate();
    assert_eq!(MpiHeartbeat::get(), Ok(10.0));
    for (raw, want) in [("3", 3.0), (" 2.5 ", 2.5), ("1", 1.0), ("86400", 86_400.0)] {
        env.set("UNIDIST_MPI_HEARTBEAT", raw);
        MpiHeartbeat::reset();
        assert_eq!(MpiHeartbeat::get(), Ok(want), "{raw:?}");
    }
    for raw in ["0", "0.99", "-3", "86401", "nan", "inf", "10s", "abc"] {
        env.set("UNIDIST_MPI_HEARTBEAT", raw);
        MpiHeartbeat::reset();
        let err = MpiHeartbeat::get().unwrap_err();
        assert_invalid(&err, "UNIDIST_MPI_HEARTBEAT", raw, "between 1 and 86400");
    }
    for (bad, shown) in [(0.5, "0.5"), (f64::NAN, "NaN"), (f64::INFINITY, "inf")] {
        let err = MpiHeartbeat::put(bad).unwrap_err();
        assert_invalid(&err, "UNIDIST_MPI_HEARTBEAT", shown, "seconds between 1");
    }
    MpiHeartbeat::put(4.0).unwrap();
    assert_eq!(MpiHeartbeat::get(), Ok(4.0));
    assert_eq!(MpiHeartbeat::get_value_source(), ValueSource::SetByUser);
}
