//! Child processes of the suite itself: `--init-probe` and `--lazy-probe` modes, and running
//! them with a controlled environment, bounded in time.

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures::square;
use crate::harness::Fail;

/// `--init-probe`: only `unidist::init()`. On success prints every parameter as `VAR=value` and
/// `source VAR=<ValueSource>`, and exits 0; on failure prints `kind=<ErrorKind>` to stdout and the error to stderr, exit 3.
pub(crate) fn init_probe() -> ExitCode {
    match unidist::init() {
        Ok(()) => {
            for p in unidist::config::parameters() {
                if let Ok(value) = &p.value {
                    println!("{}={value}", p.env_var);
                }
                println!("source {}={:?}", p.env_var, p.source);
            }
            match unidist::shutdown() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(4)
                }
            }
        }
        Err(e) => {
            println!("kind={:?}", e.kind());
            eprintln!("{e}");
            ExitCode::from(3)
        }
    }
}

/// `--lazy-probe`: a task and a `get` without `init`; prints `value=<v> initialized=<bool>`.
pub(crate) fn lazy_probe() -> ExitCode {
    let before = unidist::is_initialized();
    let r = square::remote(7);
    match unidist::get_timeout(&r, Duration::from_secs(30)) {
        Ok(v) => {
            println!(
                "value={v} initialized_before={before} initialized={}",
                unidist::is_initialized()
            );
            let _ = unidist::shutdown();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(3)
        }
    }
}

/// What a probe child did.
pub(crate) struct ProbeOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Variables removed from a probe's environment: unidist's own, so that only what the case sets
/// counts, and the MPI launcher's, so that a child of an MPI rank does not take itself for one.
const SCRUBBED_PREFIXES: [&str; 7] = [
    "UNIDIST_", "OMPI_", "PMI_", "PMIX_", "PRTE_", "HYDRA_", "HYDI_",
];

/// Runs this binary with `mode` and exactly the `UNIDIST_*` variables in `env`, for at most 30 s.
pub(crate) fn run(mode: &str, env: &[(&str, &str)]) -> Result<ProbeOutput, Fail> {
    let exe = std::env::current_exe()
        .map_err(|e| Fail(format!("cannot find the suite's own executable: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg(mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if SCRUBBED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd
        .spawn()
        .map_err(|e| Fail(format!("cannot start a probe process: {e}")))?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Fail(format!(
                    "the probe {mode} with {env:?} did not exit within 30 s"
                )));
            }
            Err(e) => return Err(Fail(format!("waiting for a probe failed: {e}"))),
        }
    };
    let collect = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(ProbeOutput {
        code: status.code(),
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
