#!/usr/bin/env python3
"""Peer benchmark workloads: the same measurements on Python unidist, Ray and Dask.

Each workload has one meaning on every system, so its row can be set beside the Rust row of the
same name:

  async_empty_tasks   submit N no-op tasks, then get all results            tasks/s   (higher is better)
  sync_round_trip     submit one no-op task and get it, K times; median     us
  put_get_small       put an 8-byte integer and get it back, K times        us
  put_get_large       put a 64 MiB float64 array and get it back            GB/s (1e9 bytes / s)
  task_sum_large      a task receives a 64 MiB array by ref, returns sum    s  (put not timed)
  actor_async_calls   N method calls on one actor, then get all             calls/s
  actor_sync_call     one actor method call and get, K times; median        us
  cpu_scaling         8 tasks of fixed pure-Python work against the same 8
                      calls run one after another in this process           ratio parallel/sequential
  nested_fib          fib(20) where every call is a task that submits its
                      two children and waits for them                       s

The data-plane rows (issue 11 of unidist for Rust), with the natural Python equivalent of each
Rust type:

  vec_f64_by_ref      a 64 MiB float64 numpy array already put; a task sums
                      it; timed: the task and the get of the sum            s  (put not timed)
  buffer_f64_by_ref   the same (Rust: &Buffer<f64>; in Python both rows are
                      the numpy array of task_sum_large)                    s
  bytes_round_trip    64 MiB `bytes` passed by value to a task that returns
                      it; timed: the submit, the task and the get           s
  string_round_trip   the same with a 16 MiB `str`                          s
  big_object          put a 2.5 GiB uint8 numpy array, a task reads its
                      length and three bytes, get the whole array back      GB/s

big_object runs in full mode only, and only where MemAvailable is at least three times the
object; otherwise its row is "skipped: <why>". It gets four times the per-workload time limit and
starts another run only when that should end within three quarters of it.

Every workload is measured --repeats times after one untimed warm-up (the 64 MiB and 16 MiB
rows, put_get_large, task_sum_large and the four data rows, at least 9 times, so that one cold
first run does not set their median); a row carries the median, min, max and every run. A
workload runs in its own thread under --time-limit seconds; one that raises is recorded as
"failed: <reason>", one that overruns as "timeout", and the next workload runs anyway. The JSON
file is rewritten after every workload, so an outer kill still leaves the rows measured so far
(the rest stay "running"/"pending" for the caller to mark).

nested_fib has two extra bounds: its fib(3) warm-up gets 10 s (5 s quick), since runtimes whose
workers block on nested gets deadlock right there; and it is stopped ("failed: stopped, ...") when
the runtime starts more than PEER_MAX_PROCS (96) new processes or available memory falls under
20%, which is how Ray keeps nested blocking gets from deadlocking. Such rows carry "stuck_in"
(the step that never finished) and "extra.peak_child_processes". --quick uses fib(10).

Row keys: workload, unit, median, min, max, runs (one value per completed run), status ("ok",
"failed: <reason>", "timeout"), elapsed_s, params (sizes used), and where relevant extra
(cpu_scaling: sequential_s/parallel_s per run, workers, ideal_ratio; actor_async_calls: note when
calls ran out of submission order), stuck_in, after_timeout_of (an earlier workload was abandoned
while still running and may have loaded the runtime).

Systems:
  --system unidist --backend pyseq|pymp|mpi|ray|dask   Python unidist 0.7.x API
  --system ray                                         Ray's own API
  --system dask                                        dask.distributed LocalCluster + Client

For MPI the script is started by mpiexec (spawn: `mpiexec -n 1`, SPMD: `mpiexec -n N` with
UNIDIST_MPI_SPAWN=False); in SPMD mode only rank 0 returns from unidist.init(), so nothing is
measured or written before init.

Task functions are looked up by workers in the module `workloads` (this file imported by name), so
the directory of this file must be importable in worker processes; the script adds it to
PYTHONPATH for processes it starts, and run.sh exports it for processes mpiexec starts.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))

WORKLOADS = [
    "async_empty_tasks",
    "sync_round_trip",
    "put_get_small",
    "put_get_large",
    "task_sum_large",
    "actor_async_calls",
    "actor_sync_call",
    "cpu_scaling",
    "nested_fib",
    "vec_f64_by_ref",
    "buffer_f64_by_ref",
    "bytes_round_trip",
    "string_round_trip",
    "big_object",
]

LARGE_BYTES = 64 * 1024 * 1024
STRING_BYTES = 16 * 1024 * 1024
BIG_OBJECT_BYTES = 5 << 29  # 2.5 GiB, past the 2 GiB an MPI message of int count can carry
BIG_MEMORY_FACTOR = 3
SMALL_VALUE = 0x0123456789ABCDEF  # fits in 8 bytes, like a u64 on the Rust side

# Sizes per mode. cpu_iters is a fixed amount of work (about 0.2 s of CPython 3.11 per task at
# full size, 0.08 s quick, on an idle 2020s x86 core), fixed rather than calibrated so every peer does
# identical work; much smaller tasks would measure scheduling overhead instead of scaling.
SIZES = {
    "full": {
        "async_n": 1000,
        "sync_k": 200,
        "small_k": 500,
        "actor_n": 1000,
        "actor_k": 200,
        "cpu_tasks": 8,
        "cpu_iters": 5_000_000,
        "fib_n": 20,
        "fib_warmup_limit": 10.0,
    },
    "quick": {
        "async_n": 200,
        "sync_k": 50,
        "small_k": 100,
        "actor_n": 200,
        "actor_k": 50,
        "cpu_tasks": 8,
        "cpu_iters": 2_000_000,
        "fib_n": 10,
        "fib_warmup_limit": 5.0,
    },
}


# --------------------------------------------------------------------------------------------
# Task bodies. They are plain module-level functions so workers import them by name.


def noop():
    return None


def array_sum(arr):
    return float(arr.sum())


def echo(value):
    return value


def big_probe(arr):
    """The length and three bytes spread over the array, so the task touches its argument."""
    n = len(arr)
    return n ^ (int(arr[0]) | int(arr[n // 2]) << 8 | int(arr[n - 1]) << 16)


def cpu_work(iters):
    acc = 0
    for i in range(iters):
        acc = (acc + i * 7) & 0xFFFFFFFF
    return acc


def fib_plain(n):
    return n if n < 2 else fib_plain(n - 1) + fib_plain(n - 2)


class BenchActor:
    """Actor whose method changes state, so calls cannot be reordered or merged unnoticed."""

    def __init__(self):
        self.count = 0

    def bump(self):
        self.count += 1
        return self.count


# Remote handles created inside worker processes for the nested workload, cached per process so a
# nested call does not rebuild (and, on MPI, re-send) the function each time.
_NESTED = {}


def unidist_fib(n):
    if n < 2:
        return n
    import unidist

    handle = _NESTED.get("unidist")
    if handle is None:
        handle = _NESTED["unidist"] = unidist.remote(unidist_fib)
    left = handle.remote(n - 1)
    right = handle.remote(n - 2)
    return unidist.get(left) + unidist.get(right)


def ray_fib(n):
    if n < 2:
        return n
    import ray

    handle = _NESTED.get("ray")
    if handle is None:
        handle = _NESTED["ray"] = ray.remote(ray_fib)
    return sum(ray.get([handle.remote(n - 1), handle.remote(n - 2)]))


def dask_fib(n):
    if n < 2:
        return n
    from distributed import worker_client

    # worker_client secedes this task from the worker's thread pool while it waits, which is the
    # documented way to block on child tasks in Dask.
    with worker_client() as client:
        left = client.submit(dask_fib, n - 1, pure=False)
        right = client.submit(dask_fib, n - 2, pure=False)
        return left.result() + right.result()


# --------------------------------------------------------------------------------------------
# One adapter per system: the workloads below only use these methods.


class UnidistSystem:
    def __init__(self, backend, cpus):
        os.environ["UNIDIST_BACKEND"] = backend
        os.environ.setdefault("UNIDIST_CPUS", str(cpus))
        import unidist

        self.u = unidist
        self.backend = backend
        unidist.init()

    def task(self, fn):
        return self.u.remote(fn)

    def submit(self, handle, *args):
        return handle.remote(*args)

    def get(self, refs):
        return self.u.get(refs)

    get_calls = get

    def put(self, value):
        return self.u.put(value)

    def actor(self, cls):
        return self.u.remote(cls).remote()

    def call(self, actor, method):
        return getattr(actor, method).remote()

    def fib_handle(self):
        return self.u.remote(unidist_fib)

    def workers(self):
        return self.u.num_cpus()

    def shutdown(self):
        if self.backend == "pymp":
            # unidist's pymp backend raises NotImplementedError for shutdown; its pool is torn
            # down at exit.
            return
        self.u.shutdown()


class RaySystem:
    def __init__(self, cpus):
        import ray

        self.ray = ray
        self.cpus = cpus
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)

    def task(self, fn):
        return self.ray.remote(fn)

    def submit(self, handle, *args):
        return handle.remote(*args)

    def get(self, refs):
        return self.ray.get(refs)

    get_calls = get

    def put(self, value):
        return self.ray.put(value)

    def actor(self, cls):
        return self.ray.remote(cls).remote()

    def call(self, actor, method):
        return getattr(actor, method).remote()

    def fib_handle(self):
        return self.ray.remote(ray_fib)

    def workers(self):
        return self.cpus

    def shutdown(self):
        self.ray.shutdown()


class DaskSystem:
    def __init__(self, cpus):
        from distributed import Client, LocalCluster

        self.cpus = cpus
        # One single-threaded worker process per core: the same shape unidist's Dask backend uses.
        self.cluster = LocalCluster(
            n_workers=cpus, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self.client = Client(self.cluster)

    def task(self, fn):
        return fn

    def submit(self, fn, *args):
        # pure=False: identical no-op submissions are distinct tasks, not one deduplicated key.
        return self.client.submit(fn, *args, pure=False)

    def get(self, refs):
        if isinstance(refs, list):
            return self.client.gather(refs)
        return refs.result()

    def put(self, value):
        # hash=False: every put is a new object; with content hashing two puts of one value share
        # a key, and releasing the first future cancels the second.
        return self.client.scatter(value, hash=False)

    def actor(self, cls):
        return self.client.submit(cls, actor=True, pure=False).result()

    def call(self, actor, method):
        return getattr(actor, method)()

    def get_calls(self, futures):
        # Actor calls return ActorFutures, which Client.gather does not accept.
        if isinstance(futures, list):
            return [f.result() for f in futures]
        return futures.result()

    def fib_handle(self):
        return dask_fib

    def workers(self):
        return self.cpus

    def shutdown(self):
        self.client.close()
        self.cluster.close()


# --------------------------------------------------------------------------------------------
# Workloads. Each gets the system, the sizes, the repeat count and a list to append one value per
# completed run to (so a timeout still shows what finished); it returns (params, extra).


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def w_async_empty_tasks(s, sz, repeats, runs):
    n = sz["async_n"]
    f = s.task(noop)
    s.get([s.submit(f) for _ in range(min(n, 50))])
    for _ in range(repeats):
        t0 = time.perf_counter()
        refs = [s.submit(f) for _ in range(n)]
        out = s.get(refs)
        dt = time.perf_counter() - t0
        check(len(out) == n, "wrong number of results")
        runs.append(n / dt)
    return {"n": n}, {}


def latency_runs(repeats, k, once, runs):
    for _ in range(repeats):
        lat = []
        for _ in range(k):
            t0 = time.perf_counter()
            once()
            lat.append((time.perf_counter() - t0) * 1e6)
        runs.append(statistics.median(lat))


def w_sync_round_trip(s, sz, repeats, runs):
    k = sz["sync_k"]
    f = s.task(noop)
    s.get(s.submit(f))

    def once():
        check(s.get(s.submit(f)) is None, "no-op returned a value")

    latency_runs(repeats, k, once, runs)
    return {"k": k}, {}


def w_put_get_small(s, sz, repeats, runs):
    k = sz["small_k"]
    s.get(s.put(SMALL_VALUE))

    def once():
        check(s.get(s.put(SMALL_VALUE)) == SMALL_VALUE, "value changed in put/get")

    latency_runs(repeats, k, once, runs)
    return {"k": k, "value_bytes": 8}, {}


def large_array():
    import numpy as np

    arr = np.arange(LARGE_BYTES // 8, dtype=np.float64)
    check(arr.nbytes == LARGE_BYTES, "array size")
    return arr


def w_put_get_large(s, sz, repeats, runs):
    arr = large_array()
    s.get(s.put(arr[:1024]))
    for _ in range(repeats):
        t0 = time.perf_counter()
        ref = s.put(arr)
        back = s.get(ref)
        dt = time.perf_counter() - t0
        check(back.shape == arr.shape and back[-1] == arr[-1], "array changed in put/get")
        del ref, back
        runs.append(LARGE_BYTES / dt / 1e9)
    return {"bytes": LARGE_BYTES}, {}


def w_task_sum_large(s, sz, repeats, runs):
    arr = large_array()
    expected = float(arr.sum())
    f = s.task(array_sum)
    s.get(s.submit(f, s.put(arr[:1024])))
    for _ in range(repeats):
        ref = s.put(arr)  # a fresh object each run, so no worker has it cached yet
        t0 = time.perf_counter()
        total = s.get(s.submit(f, ref))
        dt = time.perf_counter() - t0
        check(total == expected, "wrong sum")
        del ref
        runs.append(dt)
    return {"bytes": LARGE_BYTES}, {}


def w_actor_async_calls(s, sz, repeats, runs):
    n = sz["actor_n"]
    a = s.actor(BenchActor)
    done = s.get_calls(s.call(a, "bump"))
    reordered = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        futs = [s.call(a, "bump") for _ in range(n)]
        out = list(s.get_calls(futs))
        dt = time.perf_counter() - t0
        expected = list(range(done + 1, done + n + 1))
        check(sorted(out) == expected, "actor calls lost or repeated")
        # Calls that all ran exactly once but not in submission order are still timed; the row
        # says so, since in-order execution is part of the actor contract being compared.
        reordered += out != expected
        done += n
        runs.append(n / dt)
    extra = {}
    if reordered:
        extra["note"] = f"calls ran out of submission order in {reordered} of {repeats} runs"
    return {"n": n}, extra


def w_actor_sync_call(s, sz, repeats, runs):
    k = sz["actor_k"]
    a = s.actor(BenchActor)
    state = {"count": s.get_calls(s.call(a, "bump"))}

    def once():
        got = s.get_calls(s.call(a, "bump"))
        check(got == state["count"] + 1, "actor call lost")
        state["count"] = got

    latency_runs(repeats, k, once, runs)
    return {"k": k}, {}


def w_cpu_scaling(s, sz, repeats, runs):
    tasks, iters = sz["cpu_tasks"], sz["cpu_iters"]
    f = s.task(cpu_work)
    expected = cpu_work(iters)
    # Warm up with the full batch: runtimes that start worker processes on demand (Ray) would
    # otherwise charge process start-up to the first timed runs.
    s.get([s.submit(f, iters) for _ in range(tasks)])
    seq, par = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(tasks):
            cpu_work(iters)
        t_seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = s.get([s.submit(f, iters) for _ in range(tasks)])
        t_par = time.perf_counter() - t0
        check(all(v == expected for v in out), "wrong cpu_work result")
        seq.append(t_seq)
        par.append(t_par)
        runs.append(t_par / t_seq)
    return {"tasks": tasks, "iters": iters}, {
        "sequential_s": seq,
        "parallel_s": par,
        "workers": s.workers(),
        "ideal_ratio": 1.0 / max(1, min(tasks, s.workers(), os.cpu_count() or 1)),
    }


def w_nested_fib(s, sz, repeats, runs):
    n = sz["fib_n"]
    expected = fib_plain(n)
    f = s.fib_handle()
    # A runtime that deadlocks on nested blocking gets does so already on fib(3): give that step
    # its own short limit instead of spending the whole workload limit on it.
    set_progress("nested_fib", "warm-up fib(3)", limit=sz["fib_warmup_limit"])
    check(s.get(s.submit(f, 3)) == 2, "fib(3) through tasks")
    for i in range(repeats):
        set_progress("nested_fib", f"run {i + 1} of fib({n})")
        t0 = time.perf_counter()
        got = s.get(s.submit(f, n))
        dt = time.perf_counter() - t0
        check(got == expected, f"fib({n}) returned {got}, expected {expected}")
        runs.append(dt)
    return {"n": n, "tasks": 2 * fib_plain(n + 1) - 1}, {}


def w_array_by_ref(s, sz, repeats, runs):
    # vec_f64_by_ref and buffer_f64_by_ref: a numpy array is Python's natural type for both Rust
    # types, so both rows time task_sum_large's measurement.
    params, _ = w_task_sum_large(s, sz, repeats, runs)
    return params, {"value": "numpy float64 array (the measurement of task_sum_large)"}


def round_trip(s, repeats, runs, data, what):
    f = s.task(echo)
    check(s.get(s.submit(f, data[:1024])) == data[:1024], f"{what} changed on its round trip")
    for _ in range(repeats):
        t0 = time.perf_counter()
        back = s.get(s.submit(f, data))
        dt = time.perf_counter() - t0
        check(back == data, f"{what} changed on its round trip")
        del back
        runs.append(dt)
    return {"bytes": len(data)}, {"value": what}


def w_bytes_round_trip(s, sz, repeats, runs):
    data = (bytes(range(251)) * (LARGE_BYTES // 251 + 1))[:LARGE_BYTES]
    return round_trip(s, repeats, runs, data, "bytes")


def w_string_round_trip(s, sz, repeats, runs):
    data = ("abcdefghijklmnopqrstuvwxyz" * (STRING_BYTES // 26 + 1))[:STRING_BYTES]
    return round_trip(s, repeats, runs, data, "str")


def big_object_skip_reason(quick):
    """Why big_object cannot run here, or None."""
    if quick:
        return "full mode only (--quick given)"
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
        have = info["MemAvailable"]
    except (OSError, KeyError, ValueError, IndexError):
        return "cannot read MemAvailable from /proc/meminfo to check memory"
    need = BIG_MEMORY_FACTOR * BIG_OBJECT_BYTES
    if have < need:
        return (f"needs MemAvailable of at least {need / 2**30:.1f} GiB ({BIG_MEMORY_FACTOR}x the "
                f"object), the machine has {have / 2**30:.1f} GiB")
    return None


def w_big_object(s, sz, repeats, runs):
    import numpy as np

    started = time.perf_counter()
    budget = sz["big_budget_s"]
    set_progress("big_object", f"filling {BIG_OBJECT_BYTES} bytes")
    arr = np.resize(np.arange(251, dtype=np.uint8), BIG_OBJECT_BYTES)
    expected = big_probe(arr)
    f = s.task(big_probe)
    set_progress("big_object", "warm-up with 1 KiB")
    s.get(s.submit(f, s.put(arr[:1024].copy())))
    last, done = 0.0, 0
    for i in range(repeats):
        # Another run starts only when it should end within the budget, so a slow system keeps
        # the runs it finished instead of timing out with none.
        if done and time.perf_counter() - started + 1.2 * last > budget:
            break
        set_progress("big_object", f"run {i + 1} of {repeats}")
        t0 = time.perf_counter()
        ref = s.put(arr)
        seen = s.get(s.submit(f, ref))
        back = s.get(ref)
        last = time.perf_counter() - t0
        check(seen == expected, "the task saw a different object")
        check(len(back) == BIG_OBJECT_BYTES and big_probe(back) == expected,
              "the object changed between put and get")
        del ref, back
        done += 1
        runs.append(BIG_OBJECT_BYTES / last / 1e9)
    return {"bytes": BIG_OBJECT_BYTES}, {"runs_done": done, "budget_s": budget}


def time_limit(workload, base):
    """big_object moves 2.5 GiB several times per run and gets four times the limit."""
    return 4 * base if workload == "big_object" else base


# Where a workload that can hang has got to, so a timeout row says which step never finished:
# workload -> (step label, step start, step time limit or None).
PROGRESS = {}


def set_progress(workload, label, limit=None):
    PROGRESS[workload] = (label, time.perf_counter(), limit)

UNITS = {
    "async_empty_tasks": "tasks/s",
    "sync_round_trip": "us",
    "put_get_small": "us",
    "put_get_large": "GB/s",
    "task_sum_large": "s",
    "actor_async_calls": "calls/s",
    "actor_sync_call": "us",
    "cpu_scaling": "ratio",
    "nested_fib": "s",
    "vec_f64_by_ref": "s",
    "buffer_f64_by_ref": "s",
    "bytes_round_trip": "s",
    "string_round_trip": "s",
    "big_object": "GB/s",
}

# The 64 MiB and 16 MiB rows take milliseconds a run, and their first run is cold (fresh memory,
# first mappings): they run at least LARGE_RUNS_MIN times, so that the median is one of the warm
# runs; the cold one stays in min/max and runs. The Rust harnesses apply the same rule.
LARGE_ROWS = ("put_get_large", "task_sum_large", "vec_f64_by_ref", "buffer_f64_by_ref",
              "bytes_round_trip", "string_round_trip")
LARGE_RUNS_MIN = 9


def runs_of(workload, repeats):
    """How many runs `workload` gets when --repeats is `repeats`."""
    return max(repeats, LARGE_RUNS_MIN) if workload in LARGE_ROWS else repeats


FUNCS = {
    "async_empty_tasks": w_async_empty_tasks,
    "sync_round_trip": w_sync_round_trip,
    "put_get_small": w_put_get_small,
    "put_get_large": w_put_get_large,
    "task_sum_large": w_task_sum_large,
    "actor_async_calls": w_actor_async_calls,
    "actor_sync_call": w_actor_sync_call,
    "cpu_scaling": w_cpu_scaling,
    "nested_fib": w_nested_fib,
    "vec_f64_by_ref": w_array_by_ref,
    "buffer_f64_by_ref": w_array_by_ref,
    "bytes_round_trip": w_bytes_round_trip,
    "string_round_trip": w_string_round_trip,
    "big_object": w_big_object,
}


# --------------------------------------------------------------------------------------------
# Driver.


def descendant_count(root):
    """Number of live processes below `root`, from /proc (0 where /proc is unavailable)."""
    children = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        fields = stat[stat.rfind(")") + 2:].split()
        if fields and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    count, todo = 0, [root]
    while todo:
        kids = children.get(todo.pop(), [])
        count += len(kids)
        todo.extend(kids)
    return count


def available_memory_fraction():
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) for line in fh}
        return info["MemAvailable"] / info["MemTotal"]
    except (OSError, KeyError, ValueError, IndexError):
        return 1.0


# Nested blocking gets make some runtimes start a worker process per blocked task (Ray does, to
# avoid deadlock). Left alone for a minute that is hundreds of processes and many GiB on a small
# machine, so the nested workload is stopped when it grows past these bounds.
MAX_PROCESSES = int(os.environ.get("PEER_MAX_PROCS", "96"))
MIN_MEMORY_FRACTION = 0.2


class Guard:
    """Watches the processes and memory a workload makes the runtime use; keeps the peak."""

    def __init__(self):
        self.base = descendant_count(os.getpid())
        self.peak = self.base
        self.next_check = 0.0

    def tripped(self, now):
        if now < self.next_check:
            return None
        self.next_check = now + 1.0
        n = descendant_count(os.getpid())
        self.peak = max(self.peak, n)
        if n - self.base > MAX_PROCESSES:
            return f"{n - self.base} new processes (limit {MAX_PROCESSES}, PEER_MAX_PROCS)"
        frac = available_memory_fraction()
        if frac < MIN_MEMORY_FRACTION:
            return f"available memory down to {frac:.0%}"
        return None


def run_limited(fn, limit, workload=None, guard=None):
    """Runs fn in a daemon thread under a time limit.

    Returns (status, result, traceback text) with status "ok", "failed: <reason>" or "timeout".
    A step registered with set_progress(workload, ..., limit=...) may time out earlier; a guard
    that trips stops the workload with "failed: stopped, <reason>".
    """
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:  # a benchmark records every failure instead of dying
            box["error"] = f"{type(e).__name__}: {e}".strip()
            box["trace"] = traceback.format_exc()

    t = threading.Thread(target=target, daemon=True)
    t.start()
    deadline = time.perf_counter() + limit
    while t.is_alive():
        now = time.perf_counter()
        step = PROGRESS.get(workload)
        if now >= deadline or (step and step[2] is not None and now - step[1] >= step[2]):
            return "timeout", None, None
        reason = guard.tripped(now) if guard else None
        if reason:
            return f"failed: stopped, {reason}", None, None
        t.join(min(0.2, deadline - now))
    if "error" in box:
        return "failed: " + " ".join(box["error"].split())[:400], None, box["trace"]
    return "ok", box["result"], None


def package_versions():
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("unidist", "ray", "dask", "distributed", "numpy", "mpi4py", "cloudpickle"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    if "mpi4py" in sys.modules:
        try:
            from mpi4py import MPI

            out["mpi_library"] = MPI.Get_library_version().replace("\0", "").splitlines()[0].strip()
            out["mpi_world_size"] = MPI.COMM_WORLD.Get_size()
        except Exception as e:  # versions are informative; never fail the run on them
            out["mpi_library"] = f"unknown ({e})"
    return out


def machine_info():
    info = {
        "platform": platform.platform(),
        "logical_cpus": os.cpu_count(),
        "hostname": platform.node(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    return info


def summarize(values):
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def write_json(path, doc):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--system", required=True, choices=["unidist", "ray", "dask"])
    p.add_argument("--backend", choices=["pyseq", "pymp", "mpi", "ray", "dask"],
                   help="unidist backend (required with --system unidist)")
    p.add_argument("--mode", help="label written to the JSON (default: backend, or 'native')")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 1,
                   help="workers for Ray/Dask, UNIDIST_CPUS default for unidist")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smaller N for a development loop")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds per workload (default 60, 15 with --quick)")
    p.add_argument("--only", help="comma-separated subset of: " + ",".join(WORKLOADS))
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    if args.system == "unidist" and not args.backend:
        p.error("--system unidist needs --backend (pyseq, pymp, mpi, ray or dask)")
    if args.system != "unidist" and args.backend:
        p.error(f"--backend is only accepted with --system unidist, not with --system {args.system}")
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    args.workloads = WORKLOADS
    if args.only:
        args.workloads = [w.strip() for w in args.only.split(",") if w.strip()]
        bad = [w for w in args.workloads if w not in FUNCS]
        if bad:
            p.error(f"unknown workload(s) {bad}; accepted: {WORKLOADS}")
    if args.time_limit is None:
        args.time_limit = 15.0 if args.quick else 60.0
    if args.mode is None:
        args.mode = args.backend if args.system == "unidist" else "native"
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    sizes = dict(SIZES["quick" if args.quick else "full"])
    sizes["big_budget_s"] = 0.75 * time_limit("big_object", args.time_limit)
    doc = {
        "system": args.system,
        "mode": args.mode,
        "quick": args.quick,
        "repeats": args.repeats,
        "time_limit_s": args.time_limit,
        "status": "starting",
        "versions": {},
        "machine": machine_info(),
        "rows": [],
    }

    # Start the runtime. On MPI SPMD only rank 0 returns from here.
    t0 = time.perf_counter()
    holder = {}

    def start():
        if args.system == "unidist":
            holder["s"] = UnidistSystem(args.backend, args.cpus)
        elif args.system == "ray":
            holder["s"] = RaySystem(args.cpus)
        else:
            holder["s"] = DaskSystem(args.cpus)

    # Always on the main thread: MPI non-root ranks never return from init, unidist's Dask init
    # only starts a cluster from the main thread, and Ray's daemons die with the thread that
    # started them (parent-death signal). A hang here is bounded by the caller's timeout.
    try:
        start()
        status = "ok"
    except Exception as e:
        status = f"failed: {type(e).__name__}: {e}"
        traceback.print_exc()
    doc["versions"] = package_versions()
    doc["init_s"] = round(time.perf_counter() - t0, 3)
    if status != "ok":
        doc["status"] = "init " + status
        doc["rows"] = [
            {"workload": w, "unit": UNITS[w], "median": None, "min": None, "max": None,
             "runs": [], "status": "not run: runtime init " + status}
            for w in args.workloads
        ]
        write_json(args.out, doc)
        print(f"[{args.system}-{args.mode}] init {status}", file=sys.stderr)
        os._exit(1)
    system = holder["s"]
    doc["versions"]["workers"] = system.workers()
    doc["status"] = "running"
    doc["rows"] = [
        {"workload": w, "unit": UNITS[w], "median": None, "min": None, "max": None,
         "runs": [], "status": "pending"}
        for w in args.workloads
    ]
    write_json(args.out, doc)

    timed_out = []
    for row in doc["rows"]:
        w = row["workload"]
        skip = big_object_skip_reason(args.quick) if w == "big_object" else None
        if skip:
            row["status"] = f"skipped: {skip}"
            write_json(args.out, doc)
            print(f"[{args.system}-{args.mode}] {w:18s} skipped: {skip}", file=sys.stderr, flush=True)
            continue
        runs = []
        row["status"] = "running"
        write_json(args.out, doc)
        start_w = time.perf_counter()
        guard = Guard() if w == "nested_fib" else None
        status, result, trace = run_limited(
            lambda: FUNCS[w](system, sizes, runs_of(w, args.repeats), runs),
            time_limit(w, args.time_limit), w,
            guard
        )
        elapsed = time.perf_counter() - start_w
        row["runs"] = list(runs)
        row["status"] = status
        row["elapsed_s"] = round(elapsed, 3)
        if result is not None:
            row["params"], extra = result
            if extra:
                row["extra"] = extra
        if status == "ok":
            row["median"], row["min"], row["max"] = summarize(runs)
        if timed_out:
            # A timed-out workload keeps running in its thread and may still load the runtime.
            row["after_timeout_of"] = list(timed_out)
        if guard:
            row.setdefault("extra", {})["peak_child_processes"] = guard.peak
        if status == "timeout" or status.startswith("failed: stopped"):
            timed_out.append(w)
            if w in PROGRESS:
                row["stuck_in"] = PROGRESS[w][0]
        if trace:
            sys.stderr.write(f"--- {w} ---\n{trace}")
        write_json(args.out, doc)
        shown = f"{row['median']:.4g} {row['unit']}" if row["median"] is not None else status[:90]
        if "stuck_in" in row:
            shown += f" in {row['stuck_in']}"
        print(f"[{args.system}-{args.mode}] {w:18s} {shown} ({elapsed:.1f}s)",
              file=sys.stderr, flush=True)

    # Shut down under a bound too: a runtime left with hung tasks may never shut down.
    st, _, _ = run_limited(system.shutdown, 5.0 if timed_out else 30.0)
    doc["shutdown"] = st
    doc["status"] = "done"
    write_json(args.out, doc)
    sys.stderr.flush()
    sys.stdout.flush()
    if timed_out or st != "ok":
        # Threads stuck in the runtime would block interpreter exit (and MPI finalization).
        os._exit(0)
    return 0


if __name__ == "__main__":
    # Run as the module `workloads`, not `__main__`, so task functions pickle by reference and
    # workers import the same definitions.
    sys.path.insert(0, HERE)
    import workloads

    sys.exit(workloads.main())
