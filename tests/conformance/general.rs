//! General: upstream's `test_general.py` (refs from every source, `wait`, `get_ip`, `num_cpus`,
//! `cluster_resources`) and the lifecycle rows of the API. `shutdown` is the last case.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use unidist::config::{CpuCount, IsMpiSpawnWorkers};
use unidist::{ErrorKind, ObjectRef};

use crate::fixtures::{slow, square, TestActor, SLOW_MS};
use crate::harness::{
    capabilities, cases, child_backend, ensure, ensure_eq, expect_err, fetch, Case, Outcome,
};
use crate::probe;

pub(crate) fn cases() -> Vec<Case> {
    cases!("general":
        is_object_ref,
        upstream_wait,
        get_ip,
        num_cpus,
        cluster_resources,
        is_initialized,
        init_twice_is_noop,
        lazy_init,
        shutdown_is_idempotent,
    )
}

/// Upstream `test_is_object_ref`: refs from `put`, a task and an actor method are all typed refs
/// that `get` reads.
fn is_object_ref() -> Outcome {
    let from_put: ObjectRef<i64> = unidist::put(1);
    let from_task: ObjectRef<i64> = square::remote(3);
    let from_actor: ObjectRef<i64> = TestActor::remote(0).task(1);
    ensure_eq!(
        unidist::get_all(&[from_put, from_task, from_actor])?,
        vec![1, 9, 2]
    );
    Ok(())
}

/// Upstream `test_wait`, including the case of refs that are all ready (upstream #354).
fn upstream_wait() -> Outcome {
    let refs = vec![square::remote(5), slow::remote(SLOW_MS, 1)];
    let (ready, not_ready) = unidist::wait(&refs, 1)?;
    ensure_eq!((ready.len(), not_ready.len()), (1, 1));
    let (ready, not_ready) = unidist::wait(&refs, 2)?;
    ensure_eq!((ready.len(), not_ready.len()), (2, 0));
    let refs = vec![unidist::put(1i64), unidist::put(2i64)];
    let (ready, not_ready) = unidist::wait(&refs, 1)?;
    ensure_eq!((ready.len(), not_ready.len()), (1, 1));
    let (ready, not_ready) = unidist::wait(&refs, 2)?;
    ensure_eq!((ready.len(), not_ready.len()), (2, 0));
    Ok(())
}

/// Upstream `test_get_ip`: an IP address of this host.
fn get_ip() -> Outcome {
    let ip = unidist::get_ip();
    ensure!(
        ip.parse::<IpAddr>().is_ok(),
        "get_ip() gave {ip:?}, not an IP address"
    );
    Ok(())
}

/// Upstream `test_num_cpus`: 1 where every call runs in the caller; the configured CPUs where
/// they set the worker count.
fn num_cpus() -> Outcome {
    let n = unidist::num_cpus();
    let caps = capabilities()?;
    if !caps.pending_objects {
        // Every call runs in the caller's thread: the caller is the one worker.
        ensure_eq!(n, 1);
    } else if caps.separate_processes && !IsMpiSpawnWorkers::get()? {
        // SPMD: the worker count comes from `mpiexec -n`, not from UNIDIST_CPUS.
        ensure!(n >= 1, "num_cpus() is 0");
    } else {
        ensure_eq!(n, CpuCount::get()?);
    }
    Ok(())
}

/// Upstream `test_cluster_resources`: `{get_ip(): {"CPU": num_cpus()}}` on one host. Where the
/// workers are separate processes they may run on other hosts (`cluster_resources()` lists the
/// workers' hosts only): there the CPU counts are whole, positive, keyed by IP addresses and add
/// up to `num_cpus()`, and every IP a task reports from its worker is listed.
fn cluster_resources() -> Outcome {
    let res = unidist::cluster_resources()?;
    let n = unidist::num_cpus();
    if !capabilities()?.separate_processes {
        let expected: BTreeMap<String, BTreeMap<String, f64>> = [(
            unidist::get_ip(),
            [("CPU".to_string(), n as f64)].into_iter().collect(),
        )]
        .into_iter()
        .collect();
        ensure_eq!(res, expected);
        return Ok(());
    }
    let mut total = 0.0;
    for (ip, resources) in &res {
        ensure!(
            ip.parse::<IpAddr>().is_ok(),
            "host key {ip:?} is not an IP address"
        );
        let cpus = resources.get("CPU").copied().unwrap_or(0.0);
        ensure!(
            cpus >= 1.0 && cpus.fract() == 0.0,
            "{ip} has {cpus} CPUs, expected a whole count of at least 1"
        );
        total += cpus;
    }
    ensure_eq!(total, n as f64);
    let refs: Vec<_> = (0..2 * n).map(|_| worker_ip::remote()).collect();
    for ip in unidist::get_all(&refs)? {
        ensure!(
            res.contains_key(&ip),
            "a task ran on {ip}, which cluster_resources() {res:?} does not list"
        );
    }
    Ok(())
}

/// The IP of the worker that runs it.
#[unidist::remote]
fn worker_ip() -> String {
    unidist::get_ip()
}

fn is_initialized() -> Outcome {
    ensure!(
        unidist::is_initialized(),
        "is_initialized() is false while running"
    );
    Ok(())
}

/// A second `init` is a no-op: the runtime and its objects stay.
fn init_twice_is_noop() -> Outcome {
    let r = unidist::put(11i64);
    unidist::init()?;
    unidist::init()?;
    ensure!(
        unidist::is_initialized(),
        "is_initialized() is false after init"
    );
    ensure_eq!(fetch(&r)?, 11);
    ensure_eq!(fetch(&square::remote(&r))?, 121);
    Ok(())
}

/// Calls start the runtime with defaults when `init` was not called (in a fresh process; when
/// this backend's workers are other processes the child uses an in-process backend, as it is
/// not part of the job).
fn lazy_init() -> Outcome {
    let name = child_backend()?;
    let out = probe::run("--lazy-probe", &[("UNIDIST_BACKEND", name.as_str())])?;
    ensure!(
        out.code == Some(0),
        "the lazy probe failed: exit {:?}, stderr {:?}",
        out.code,
        out.stderr
    );
    ensure_eq!(
        out.stdout.trim(),
        "value=49 initialized_before=false initialized=true"
    );
    Ok(())
}

/// `shutdown` with a task in flight returns, is idempotent, and afterwards calls fail with
/// `ShutDown` and old refs with `StaleRef`. Restartable backends then start again with `init`;
/// others (MPI: its processes end with the runtime) cannot, so this is the last case of a run.
fn shutdown_is_idempotent() -> Outcome {
    let old = unidist::put(5i64);
    let in_flight = slow::remote(SLOW_MS, 1);
    let restartable = capabilities()?.restartable;
    let started = Instant::now();
    unidist::shutdown()?;
    ensure!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown took {:?}",
        started.elapsed()
    );
    unidist::shutdown()?;
    ensure!(
        !unidist::is_initialized(),
        "is_initialized() is true after shutdown"
    );
    expect_err(unidist::get(&old), ErrorKind::StaleRef)?;
    expect_err(unidist::get(&unidist::put(6i64)), ErrorKind::ShutDown)?;
    drop(in_flight);
    if !restartable {
        return Ok(());
    }
    unidist::init()?;
    ensure!(
        unidist::is_initialized(),
        "is_initialized() is false after a new init"
    );
    ensure_eq!(fetch(&square::remote(4))?, 16);
    Ok(())
}
