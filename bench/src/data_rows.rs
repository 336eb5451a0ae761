//! The data-plane rows of `unidist-bench workloads` (issue 11): the large values users actually
//! pass, `Vec<f64>`, `Buffer<f64>`, `Vec<u8>` and `String`, by reference and by value, and one
//! object larger than 2 GiB.
//!
//! | row | what is timed | unit |
//! |---|---|---|
//! | `vec_f64_by_ref` | a 64 MiB `Vec<f64>` already put; a task sums it through `&Vec<f64>`, and the get of the sum | s |
//! | `buffer_f64_by_ref` | the same with `&Buffer<f64>` | s |
//! | `bytes_round_trip` | a 64 MiB `Vec<u8>` by value into a task that returns it, and the get | s |
//! | `string_round_trip` | the same with a 16 MiB `String` | s |
//! | `big_object` | put a 2.5 GiB `Buffer<u8>`, a task reads it by reference, get it back whole | GB/s |
//!
//! `big_object` runs in full mode only and only where `MemAvailable` is at least three times the
//! object ([`skip_reason`]); it stops repeating when another run would overrun its budget, so a
//! slow backend reports the runs it finished instead of a timeout.

use std::time::Instant;

use serde_json::json;
use unidist::Buffer;

use crate::measure::{check, ok, push, set_progress, Progress, Runs};
use crate::workloads::{lanes_sum, Fields, Sizes, LARGE_BYTES};

/// Bytes of the `String` of `string_round_trip`: 16 MiB.
pub(crate) const STRING_BYTES: usize = 16 << 20;
/// Bytes of the object of `big_object`: 2.5 GiB, past the 2 GiB where a single MPI message of
/// `int` count ends.
pub(crate) const BIG_OBJECT_BYTES: usize = 5 << 29;
/// `big_object` runs only where this many times its size is available.
const BIG_MEMORY_FACTOR: u64 = 3;

// ---- task bodies ---------------------------------------------------------------------------

// `&Vec<f64>` rather than `&[f64]` is the point of the row: it is what a user writes for a
// `Vec<f64>` argument, and a parameter type must name the value type the call carries.
#[allow(clippy::ptr_arg)]
#[unidist::remote]
fn vec_sum(v: &Vec<f64>) -> f64 {
    lanes_sum(v)
}

#[unidist::remote]
fn buffer_sum(b: &Buffer<f64>) -> f64 {
    lanes_sum(b)
}

#[unidist::remote]
fn echo_bytes(v: Vec<u8>) -> Vec<u8> {
    v
}

#[unidist::remote]
fn echo_string(s: String) -> String {
    s
}

/// What the `big_object` task reads: the length and a few bytes spread over the object, so the
/// task touches its argument without the row becoming a memory-bandwidth test of the body.
fn probe(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let at = |i: usize| bytes.get(i).map_or(0, |b| u64::from(*b));
    n as u64 ^ (at(0) | at(n / 2) << 8 | at(n.saturating_sub(1)) << 16)
}

#[unidist::remote]
fn big_probe(b: &Buffer<u8>) -> u64 {
    probe(b)
}

// ---- values --------------------------------------------------------------------------------

fn large_vec() -> Vec<f64> {
    (0..LARGE_BYTES / 8).map(|i| i as f64).collect()
}

/// Bytes that are not all one value, so a lost or shifted chunk shows in the check.
fn patterned_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A `String` of `n` ASCII bytes with the same property.
fn patterned_string(n: usize) -> String {
    (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect()
}

// ---- the rows ------------------------------------------------------------------------------

pub(crate) fn vec_f64_by_ref(repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let v = large_vec();
    let expected = lanes_sum(&v);
    ok(unidist::get(&vec_sum::remote(unidist::put(
        v[..1024].to_vec(),
    ))))?;
    for _ in 0..repeats {
        // A fresh object each run, so no worker has it cached yet; the copy and the put are not
        // timed, as in task_sum_large.
        let r = unidist::put(v.clone());
        let t = Instant::now();
        let total = ok(unidist::get(&vec_sum::remote(&r)))?;
        let dt = t.elapsed().as_secs_f64();
        check(total == expected, "wrong sum of the Vec<f64>")?;
        drop(r);
        push(runs, dt);
    }
    Ok(vec![("bytes", json!(LARGE_BYTES))])
}

pub(crate) fn buffer_f64_by_ref(repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let b: Buffer<f64> = large_vec().into();
    let expected = lanes_sum(&b);
    let head: Buffer<f64> = b[..1024].to_vec().into();
    ok(unidist::get(&buffer_sum::remote(unidist::put(head))))?;
    for _ in 0..repeats {
        // `Buffer` shares storage, so the clone is a reference count; put is not timed.
        let r = unidist::put(b.clone());
        let t = Instant::now();
        let total = ok(unidist::get(&buffer_sum::remote(&r)))?;
        let dt = t.elapsed().as_secs_f64();
        check(total == expected, "wrong sum of the Buffer<f64>")?;
        drop(r);
        push(runs, dt);
    }
    Ok(vec![("bytes", json!(LARGE_BYTES))])
}

pub(crate) fn bytes_round_trip(repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let data = patterned_bytes(LARGE_BYTES);
    ok(unidist::get(&echo_bytes::remote(data[..1024].to_vec())))?;
    for _ in 0..repeats {
        // The argument is moved into the call, so each run needs its own copy, made untimed.
        let arg = data.clone();
        let t = Instant::now();
        let r = echo_bytes::remote(arg);
        let back = ok(unidist::get(&r))?;
        let dt = t.elapsed().as_secs_f64();
        check(back == data, "the Vec<u8> changed on its round trip")?;
        drop((r, back));
        push(runs, dt);
    }
    Ok(vec![("bytes", json!(LARGE_BYTES))])
}

pub(crate) fn string_round_trip(repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let data = patterned_string(STRING_BYTES);
    ok(unidist::get(&echo_string::remote(data[..1024].to_string())))?;
    for _ in 0..repeats {
        let arg = data.clone();
        let t = Instant::now();
        let r = echo_string::remote(arg);
        let back = ok(unidist::get(&r))?;
        let dt = t.elapsed().as_secs_f64();
        check(back == data, "the String changed on its round trip")?;
        drop((r, back));
        push(runs, dt);
    }
    Ok(vec![("bytes", json!(STRING_BYTES))])
}

/// Why `big_object` of `bytes` bytes cannot run here, if it cannot: quick mode, or less
/// available memory than three times the object.
pub(crate) fn skip_reason(quick: bool, bytes: usize) -> Option<String> {
    if quick {
        return Some("full mode only (--quick given)".into());
    }
    let need = BIG_MEMORY_FACTOR * bytes as u64;
    match mem_available() {
        Some(have) if have < need => Some(format!(
            "needs MemAvailable of at least {} GiB ({BIG_MEMORY_FACTOR}x the object), the machine has {} GiB",
            gib(need),
            gib(have)
        )),
        Some(_) => None,
        None => Some("cannot read MemAvailable from /proc/meminfo to check memory".into()),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1u32 << 30))
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub(crate) fn big_object(
    sz: Sizes,
    repeats: usize,
    runs: &Runs,
    progress: &Progress,
) -> Result<Fields, String> {
    let (bytes, budget) = (sz.big_bytes, sz.big_budget_s);
    let started = Instant::now();
    set_progress(progress, format!("filling {bytes} bytes"), None);
    let buf: Buffer<u8> = patterned_bytes(bytes).into();
    let expected = probe(&buf);
    set_progress(progress, "warm-up with 1 KiB".into(), None);
    let head: Buffer<u8> = buf[..bytes.min(1024)].to_vec().into();
    ok(unidist::get(&big_probe::remote(unidist::put(head))))?;
    let mut last = 0.0f64;
    let mut done = 0;
    for i in 0..repeats {
        // Another run is started only when it should end within the budget, so a slow backend
        // keeps the runs it finished instead of timing out with none.
        if done > 0 && started.elapsed().as_secs_f64() + 1.2 * last > budget {
            break;
        }
        set_progress(progress, format!("run {} of {repeats}", i + 1), None);
        let t = Instant::now();
        let r = unidist::put(buf.clone());
        let seen = ok(unidist::get(&big_probe::remote(&r)))?;
        let back = ok(unidist::get(&r))?;
        last = t.elapsed().as_secs_f64();
        check(seen == expected, "the task saw a different object")?;
        check(
            back.len() == bytes && probe(&back) == expected,
            "the object changed between put and get",
        )?;
        drop((r, back));
        done += 1;
        push(runs, bytes as f64 / last / 1e9);
    }
    Ok(vec![
        ("bytes", json!(bytes)),
        ("runs_done", json!(done)),
        ("budget_s", json!(budget)),
    ])
}
