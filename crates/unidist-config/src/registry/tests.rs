//! Tests of the whole-configuration operations: listing, table, forwarding round trip, validation.

use super::*;
use crate::test_support::isolate;
use crate::BackendName;

#[test]
fn parameters_lists_every_parameter_in_order() {
    let _env = isolate();
    let infos = parameters();
    let names: Vec<_> = infos.iter().map(|i| (i.name, i.env_var)).collect();
    assert_eq!(
        names,
        [
            ("Backend", "UNIDIST_BACKEND"),
            ("CpuCount", "UNIDIST_CPUS"),
            ("IsMpiSpawnWorkers", "UNIDIST_IS_MPI_SPAWN_WORKERS"),
            ("MpiHosts", "UNIDIST_MPI_HOSTS"),
            ("MpiPickleThreshold", "UNIDIST_MPI_PICKLE_THRESHOLD"),
            ("MpiBackoff", "UNIDIST_MPI_BACKOFF"),
            ("MpiHeartbeat", "UNIDIST_MPI_HEARTBEAT"),
            ("MpiLog", "UNIDIST_MPI_LOG"),
            ("Progress", "UNIDIST_PROGRESS"),
            ("Timeline", "UNIDIST_TIMELINE"),
            ("MpiSharedObjectStore", "UNIDIST_MPI_SHARED_OBJECT_STORE"),
            (
                "MpiSharedObjectStoreMemory",
                "UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY"
            ),
            (
                "MpiSharedObjectStoreThreshold",
                "UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD"
            ),
        ]
    );
    let defaults: Vec<_> = infos.iter().map(|i| i.default.as_str()).collect();
    let cores = CpuCount::get().unwrap().to_string();
    let shm_memory = crate::MpiSharedObjectStoreMemory::get()
        .unwrap()
        .to_string();
    assert_eq!(
        defaults,
        [
            BackendName::UNDETECTED_DEFAULT.as_str(),
            cores.as_str(),
            "true",
            "none",
            "262144",
            "0.0001",
            "10",
            "false",
            "false",
            "none",
            "true",
            shm_memory.as_str(),
            "100000"
        ]
    );
    for info in &infos {
        assert_eq!(info.source, ValueSource::Default, "{}", info.name);
        assert_eq!(
            info.value.as_deref(),
            Ok(info.default.as_str()),
            "{}",
            info.name
        );
        assert!(!info.help.is_empty() && !info.accepted.is_empty() && !info.type_name.is_empty());
    }
    assert_eq!(infos[2].aliases, ["UNIDIST_MPI_SPAWN"]);
    assert_eq!(
        env_vars(),
        [
            "UNIDIST_BACKEND",
            "UNIDIST_CPUS",
            "UNIDIST_IS_MPI_SPAWN_WORKERS",
            "UNIDIST_MPI_SPAWN",
            "UNIDIST_MPI_HOSTS",
            "UNIDIST_MPI_PICKLE_THRESHOLD",
            "UNIDIST_MPI_BACKOFF",
            "UNIDIST_MPI_HEARTBEAT",
            "UNIDIST_MPI_LOG",
            "UNIDIST_PROGRESS",
            "UNIDIST_TIMELINE",
            "UNIDIST_MPI_SHARED_OBJECT_STORE",
            "UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY",
            "UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD",
        ]
    );
}

#[test]
fn parameters_show_current_values_sources_and_errors() {
    let env = isolate();
    env.set("UNIDIST_MPI_LOG", "maybe");
    env.set("UNIDIST_MPI_BACKOFF", "1e-3");
    CpuCount::put(3).unwrap();
    let infos = parameters();
    let by_name = |name: &str| infos.iter().find(|i| i.name == name).unwrap();

    assert_eq!(by_name("CpuCount").value.as_deref(), Ok("3"));
    assert_eq!(by_name("CpuCount").source, ValueSource::SetByUser);
    assert_eq!(by_name("MpiBackoff").value.as_deref(), Ok("0.001"));
    assert_eq!(by_name("MpiBackoff").source, ValueSource::GotFromCfgSource);
    let log = by_name("MpiLog");
    assert_eq!(log.source, ValueSource::GotFromCfgSource);
    let err = log.value.as_ref().unwrap_err();
    assert_eq!(err.variable(), "UNIDIST_MPI_LOG");
    assert_eq!(err.value(), "maybe");
}

#[test]
fn render_table_is_aligned_and_reports_errors() {
    let env = isolate();
    env.set("UNIDIST_CPUS", "abc");
    let chosen = BackendName::ALL[BackendName::ALL.len() - 1];
    Backend::put(chosen).unwrap();
    let table = render_table();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("PARAMETER"), "{table}");
    // Header plus one row a parameter, then one error line.
    let rows = parameters().len();
    assert_eq!(lines.len(), rows + 2, "{table}");
    let column = lines[0].find("ENV VAR").unwrap();
    let value_column = lines[0].find("VALUE").unwrap();
    for (line, var) in lines[1..=rows]
        .iter()
        .zip(env_vars().into_iter().filter(|v| *v != "UNIDIST_MPI_SPAWN"))
    {
        assert_eq!(line.find(var), Some(column), "{table}");
        assert!(!line.ends_with(' '), "{line:?}");
    }
    assert!(
        lines[1][value_column..].starts_with(chosen.as_str()),
        "{table}"
    );
    assert!(lines[1].contains("set by user"), "{table}");
    assert!(lines[2][value_column..].starts_with("<invalid>"), "{table}");
    assert!(lines[3].contains("(alias UNIDIST_MPI_SPAWN)"), "{table}");
    assert!(
        lines[rows + 1].starts_with("error: invalid value \"abc\" for UNIDIST_CPUS"),
        "{table}"
    );
}

#[test]
fn validate_all_passes_on_defaults_and_reports_first_error() {
    let env = isolate();
    assert_eq!(validate_all(), Ok(()));

    let names = BackendName::list();
    let cases = [
        ("UNIDIST_CPUS", "abc", "a positive integer"),
        ("UNIDIST_MPI_LOG", "maybe", "true, yes, 1, false, no, 0"),
        ("UNIDIST_BACKEND", "ray", names.as_str()),
        ("UNIDIST_MPI_BACKOFF", "inf", "between 0 and 10"),
        ("UNIDIST_MPI_HEARTBEAT", "0.5", "between 1 and 86400"),
        (
            "UNIDIST_MPI_PICKLE_THRESHOLD",
            "-5",
            "between 0 and 1099511627776",
        ),
        ("UNIDIST_MPI_HOSTS", "a,,b", "host names"),
        ("UNIDIST_MPI_SPAWN", "2", "true, yes, 1"),
    ];
    for (var, raw, accepted) in cases {
        // The successful validation above cached every value; forget them to re-read.
        reset_all();
        env.set(var, raw);
        let err = validate_all().unwrap_err();
        assert_eq!(err.variable(), var);
        assert_eq!(err.value(), raw);
        let msg = err.to_string();
        assert!(msg.contains(var), "{msg}");
        assert!(msg.contains(&format!("{raw:?}")), "{msg}");
        assert!(msg.contains(accepted), "{msg}");
        env.unset(var);
        reset_all();
        assert_eq!(validate_all(), Ok(()));
    }

    // The first error in listing order wins.
    reset_all();
    env.set("UNIDIST_MPI_LOG", "maybe");
    env.set("UNIDIST_CPUS", "abc");
    assert_eq!(validate_all().unwrap_err().variable(), "UNIDIST_CPUS");
}

#[test]
fn user_set_env_is_empty_on_defaults() {
    let _env = isolate();
    assert_eq!(user_set_env(), Vec::<(&str, String)>::new());
}

#[test]
fn user_set_env_lists_put_and_env_values() {
    let env = isolate();
    env.set("UNIDIST_MPI_LOG", " YES ");
    CpuCount::put(12).unwrap();
    IsMpiSpawnWorkers::put(false).unwrap();
    MpiHosts::put(None).unwrap();
    let got = user_set_env();
    assert_eq!(
        got,
        [
            ("UNIDIST_CPUS", "12".to_owned()),
            ("UNIDIST_IS_MPI_SPAWN_WORKERS", "false".to_owned()),
            ("UNIDIST_MPI_SPAWN", "false".to_owned()),
            ("UNIDIST_MPI_LOG", "true".to_owned()),
        ]
    );
}

/// Backend `i` of the table, wrapping around, so the snapshots cover every backend.
fn nth_backend(i: usize) -> BackendName {
    BackendName::ALL[i % BackendName::ALL.len()]
}

/// One configuration of every parameter, to push through `user_set_env` and back.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    backend: BackendName,
    cpus: usize,
    spawn: bool,
    hosts: Option<String>,
    threshold: usize,
    backoff: f64,
    heartbeat: f64,
    log: bool,
    progress: bool,
    timeline: Option<String>,
}

impl Snapshot {
    fn put(&self) {
        Backend::put(self.backend).unwrap();
        CpuCount::put(self.cpus).unwrap();
        IsMpiSpawnWorkers::put(self.spawn).unwrap();
        MpiHosts::put(self.hosts.clone()).unwrap();
        MpiPickleThreshold::put(self.threshold).unwrap();
        MpiBackoff::put(self.backoff).unwrap();
        MpiHeartbeat::put(self.heartbeat).unwrap();
        MpiLog::put(self.log).unwrap();
        Progress::put(self.progress).unwrap();
        Timeline::put(self.timeline.clone()).unwrap();
    }

    fn get() -> Snapshot {
        Snapshot {
            backend: Backend::get().unwrap(),
            cpus: CpuCount::get().unwrap(),
            spawn: IsMpiSpawnWorkers::get().unwrap(),
            hosts: MpiHosts::get().unwrap(),
            threshold: MpiPickleThreshold::get().unwrap(),
            backoff: MpiBackoff::get().unwrap(),
            heartbeat: MpiHeartbeat::get().unwrap(),
            log: MpiLog::get().unwrap(),
            progress: Progress::get().unwrap(),
            timeline: Timeline::get().unwrap(),
        }
    }
}

#[test]
fn user_set_env_round_trips_through_the_environment() {
    let env = isolate();
    let max_threshold = usize::try_from(1_u64 << 40).unwrap_or(usize::MAX);
    let snapshots = [
        Snapshot {
            backend: nth_backend(0),
            cpus: 1,
            spawn: false,
            hosts: Some("node1,node2".into()),
            threshold: 0,
            backoff: 0.0,
            heartbeat: 1.0,
            log: true,
            progress: true,
            timeline: Some("/tmp/a trace.json".into()),
        },
        Snapshot {
            backend: nth_backend(1),
            cpus: 65_536,
            spawn: true,
            hosts: None,
            threshold: max_threshold,
            backoff: 10.0,
            heartbeat: 86_400.0,
            log: false,
            progress: false,
            timeline: None,
        },
        Snapshot {
            backend: nth_backend(2),
            cpus: 37,
            spawn: false,
            hosts: Some("localhost".into()),
            threshold: 262_145,
            backoff: 1.0 / 3.0,
            heartbeat: 2.5,
            log: true,
            progress: true,
            timeline: Some("t.json".into()),
        },
        Snapshot {
            backend: nth_backend(3),
            cpus: 2,
            spawn: true,
            hosts: Some("a.example.org,10.0.0.2".into()),
            threshold: 1,
            backoff: 5e-324,
            heartbeat: 10.0,
            log: false,
            progress: false,
            timeline: None,
        },
        Snapshot {
            backend: nth_backend(4),
            cpus: 3,
            spawn: true,
            hosts: None,
            threshold: 7,
            backoff: 1e-7,
            heartbeat: 1.0 / 3.0 + 1.0,
            log: false,
            progress: true,
            timeline: None,
        },
    ];
    // A stale alias inherited from the parent must not conflict with the forwarded value.
    env.set("UNIDIST_MPI_SPAWN", "true");
    for snapshot in &snapshots {
        reset_all();
        snapshot.put();
        let forwarded = user_set_env();

        // What a spawned worker sees: the inherited environment plus the forwarded variables.
        reset_all();
        env.unset("UNIDIST_MPI_HOSTS");
        env.unset("UNIDIST_TIMELINE");
        for (var, value) in &forwarded {
            env.set(var, value);
        }
        assert_eq!(Snapshot::get(), *snapshot, "forwarded {forwarded:?}");
        for info in parameters() {
            let unset = (info.name == "MpiHosts" && snapshot.hosts.is_none())
                || (info.name == "Timeline" && snapshot.timeline.is_none())
                // The snapshots leave the shared store's parameters at their defaults.
                || info.name.starts_with("MpiSharedObjectStore");
            let expect = if unset {
                ValueSource::Default
            } else {
                ValueSource::GotFromCfgSource
            };
            assert_eq!(info.source, expect, "{}", info.name);
        }
        // Forwarding again from the worker gives the same variables.
        assert_eq!(user_set_env(), forwarded);
    }
}

#[test]
fn reset_all_forgets_every_put() {
    let _env = isolate();
    Backend::put(BackendName::ALL[0]).unwrap();
    MpiLog::put(true).unwrap();
    MpiBackoff::put(1.0).unwrap();
    reset_all();
    assert!(parameters()
        .iter()
        .all(|i| i.source == ValueSource::Default));
    assert_eq!(MpiLog::get(), Ok(false));
}
