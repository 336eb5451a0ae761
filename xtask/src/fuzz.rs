//! `cargo xtask fuzz [--seconds N] [--target T]`: fuzz targets for a bounded time, then the
//! regression corpus.
//!
//! The targets live in `fuzz/` (cargo-fuzz layout, its own workspace). They are built here with
//! the sanitizer-coverage flags that `cargo fuzz build -s none` would pass, which work on a
//! stable toolchain, so CI needs no `cargo install`. Each target then runs under libFuzzer for
//! N seconds, starting from the committed seeds (`fuzz/corpus/<target>/`) and regressions
//! (`fuzz/regressions/<target>/`); new inputs go to `target/fuzz/corpus/<target>/`, which is not
//! committed. A crash is copied to `fuzz/regressions/<target>/` (commit it with the fix), and
//! the run fails naming the file. Finally every committed input is replayed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, human};

/// The fuzz targets (binaries of the `fuzz` package).
const TARGETS: [&str; 2] = ["codec", "wire"];

/// The coverage instrumentation libFuzzer needs, as `cargo fuzz build -s none` sets it, plus
/// `--cfg fuzzing` for code that wants to know.
const RUSTFLAGS: [&str; 7] = [
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg",
    "fuzzing",
];

struct Options {
    seconds: u64,
    targets: Vec<&'static str>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        seconds: 60,
        targets: TARGETS.to_vec(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let raw = it.next().ok_or("--seconds needs a value")?;
                options.seconds = raw
                    .parse()
                    .ok()
                    .filter(|s| (1..=86_400).contains(s))
                    .ok_or_else(|| {
                        format!("invalid --seconds {raw:?}: expected whole seconds from 1 to 86400")
                    })?;
            }
            "--target" => {
                let raw = it.next().ok_or("--target needs a value")?;
                let target = TARGETS.iter().find(|t| **t == raw).ok_or_else(|| {
                    format!("invalid --target {raw:?}: expected one of {TARGETS:?}")
                })?;
                options.targets = vec![target];
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

/// Runs the fuzz targets; returns the process exit code.
pub(crate) fn fuzz(args: &[String]) -> i32 {
    let options = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "xtask fuzz: {e}\nusage: cargo xtask fuzz [--seconds N] [--target codec|wire]"
            );
            return 2;
        }
    };
    let started = Instant::now();
    let bins = match build() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("xtask fuzz: {e}");
            return 1;
        }
    };
    println!("==> fuzz targets built in {}", human(started.elapsed()));
    let mut failures = Vec::new();
    for target in &options.targets {
        let bin = bins.join(target);
        match run_fuzzer(target, &bin, options.seconds) {
            Ok(summary) => println!("==> fuzz {target}: no crash ({summary})"),
            Err(e) => failures.push(format!("fuzz {target}: {e}")),
        }
        match replay(target, &bin) {
            Ok(n) => println!("==> replay {target}: {n} committed inputs ok"),
            Err(e) => failures.push(format!("replay {target}: {e}")),
        }
    }
    println!("==> fuzz finished in {}", human(started.elapsed()));
    for f in &failures {
        println!("FAILED {f}");
    }
    let total = 2 * options.targets.len();
    println!(
        "{} passed, {} failed",
        total - failures.len(),
        failures.len()
    );
    i32::from(!failures.is_empty())
}

fn fuzz_dir() -> PathBuf {
    util::root().join("fuzz")
}

fn work_dir() -> PathBuf {
    util::root().join("target").join("fuzz")
}

/// The host triple. Building for an explicit `--target` keeps the instrumentation flags away
/// from build scripts and proc macros, which cannot link the coverage callbacks.
fn host_triple() -> Result<String, String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV printed no host triple".to_owned())
}

/// Builds the fuzz binaries; returns the directory that holds them.
fn build() -> Result<PathBuf, String> {
    // libfuzzer-sys compiles libFuzzer's C++ sources.
    if ["c++", "g++", "clang++"]
        .iter()
        .all(|c| util::which(c).is_none())
    {
        return Err(
            "no C++ compiler (c++, g++ or clang++) in PATH: libFuzzer needs one \
                    (apt-get install g++)"
                .to_owned(),
        );
    }
    let host = host_triple()?;
    let mut cmd = util::cargo();
    cmd.args([
        "build",
        "--release",
        "--bins",
        "--target",
        &host,
        "--manifest-path",
    ])
    .arg(fuzz_dir().join("Cargo.toml"))
    .env("CARGO_TARGET_DIR", work_dir())
    .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS.join("\x1f"))
    .env_remove("RUSTFLAGS");
    util::run_step(&mut cmd)?;
    Ok(work_dir().join(host).join("release"))
}

/// Runs `cmd` with its output in `log`, killed after `limit`; returns the exit code (`None` if
/// killed by a signal or the limit).
fn run_logged(cmd: &mut Command, log: &Path, limit: Duration) -> Result<Option<i32>, String> {
    let file =
        fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", util::describe(cmd)))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.code()),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not finish within {} (log: {})",
                    human(limit),
                    log.display()
                ));
            }
            Err(e) => return Err(format!("waiting failed: {e}")),
        }
    }
}

/// The last `n` lines of a log, to show why a run failed.
fn tail(log: &Path, n: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Fuzzes `target` for `seconds`; a crash is moved into the regression corpus.
fn run_fuzzer(target: &str, bin: &Path, seconds: u64) -> Result<String, String> {
    let corpus = work_dir().join("corpus").join(target);
    let artifacts = work_dir().join("artifacts").join(target);
    for dir in [&corpus, &artifacts] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Leftovers of an earlier run would be reported as this run's crashes.
    for old in files_in(&artifacts) {
        let _ = fs::remove_file(old);
    }
    let log = work_dir().join(format!("{target}.log"));
    let mut prefix = artifacts.clone().into_os_string();
    prefix.push("/");
    let mut cmd = Command::new(bin);
    cmd.arg(format!("-max_total_time={seconds}"))
        // One input may take at most 10 s, and the process at most 2 GiB: a slower or larger
        // run is a hang or a memory blow-up to report, like a crash.
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg({
            let mut a = std::ffi::OsString::from("-artifact_prefix=");
            a.push(&prefix);
            a
        })
        .arg(&corpus);
    // libFuzzer stops on a missing corpus directory, and git keeps no empty ones.
    for dir in ["corpus", "regressions"] {
        let d = fuzz_dir().join(dir).join(target);
        if d.is_dir() {
            cmd.arg(d);
        }
    }
    println!("==> fuzz {target} for {seconds} s (log: {})", log.display());
    let code = run_logged(&mut cmd, &log, Duration::from_secs(seconds + 120))?;
    let found = files_in(&artifacts);
    if code == Some(0) && found.is_empty() {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let done = text
            .lines()
            .rfind(|l| l.starts_with("Done "))
            .unwrap_or("no summary line");
        let cov = text
            .lines()
            .rfind(|l| l.contains(" cov: "))
            .and_then(|l| l.split(" cov: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("?");
        return Ok(format!("{done}, coverage {cov} edges"));
    }
    let regressions = fuzz_dir().join("regressions").join(target);
    fs::create_dir_all(&regressions)
        .map_err(|e| format!("cannot create {}: {e}", regressions.display()))?;
    let mut kept = Vec::new();
    for artifact in found {
        let Some(name) = artifact.file_name() else {
            continue;
        };
        let dest = regressions.join(name);
        fs::copy(&artifact, &dest)
            .map_err(|e| format!("cannot copy {}: {e}", artifact.display()))?;
        kept.push(dest.display().to_string());
    }
    println!("{}", tail(&log, 40));
    if kept.is_empty() {
        Err(format!(
            "libFuzzer exited with {code:?} and left no input (log: {})",
            log.display()
        ))
    } else {
        Err(format!(
            "crashing input saved as {}: fix the bug and commit the file",
            kept.join(", ")
        ))
    }
}

/// Every regular file of a directory, sorted; none if it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every committed input of `target` once; returns how many there were.
fn replay(target: &str, bin: &Path) -> Result<usize, String> {
    let inputs: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .flat_map(|kind| files_in(&fuzz_dir().join(kind).join(target)))
        .collect();
    if inputs.is_empty() {
        return Ok(0);
    }
    let log = work_dir().join(format!("{target}-replay.log"));
    // Given files instead of directories, libFuzzer runs each once and prints its name first,
    // so the last name in the log is the input that failed.
    let mut cmd = Command::new(bin);
    cmd.arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .args(&inputs);
    let code = run_logged(&mut cmd, &log, Duration::from_secs(300))?;
    if code == Some(0) {
        return Ok(inputs.len());
    }
    let text = fs::read_to_string(&log).unwrap_or_default();
    let culprit = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Running: "))
        .unwrap_or("an unknown input");
    println!("{}", tail(&log, 40));
    Err(format!(
        "{culprit} fails (exit {code:?}, log: {})",
        log.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_and_reject_bad_values() {
        let o = parse(&[]).expect("no arguments");
        assert_eq!((o.seconds, o.targets.len()), (60, 2));
        let o = parse(&args(&["--seconds", "20", "--target", "wire"])).expect("valid");
        assert_eq!((o.seconds, o.targets), (20, vec!["wire"]));
        for bad in [
            &["--seconds", "0"][..],
            &["--seconds", "-5"],
            &["--seconds"],
            &["--target", "nope"],
            &["--fast"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn every_target_has_a_binary_and_a_seed_corpus() {
        let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz manifest");
        for target in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{target} is not a binary of the fuzz package"
            );
            assert!(
                !files_in(&fuzz_dir().join("corpus").join(target)).is_empty(),
                "{target} has no committed seeds"
            );
        }
    }
}
