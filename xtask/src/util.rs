//! Process plumbing shared by the subcommands: the workspace root, tool lookup in `PATH`, and
//! running a command with its output streamed, captured and bounded in time.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workspace root (the parent of this crate).
pub(crate) fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo that runs us, so that the same toolchain builds everything.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// The full path of `name` if an executable of that name is in `PATH`.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// True when running in CI (`CI` set to anything but empty, `0` or `false`).
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// `1.2s` / `3m04s`.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// How a bounded run ended.
pub(crate) struct Finished {
    /// The exit status, unless the run was killed for its time limit.
    pub status: Option<ExitStatus>,
    /// True when the time limit ran out and the process group was killed.
    pub timed_out: bool,
    /// Every line the command wrote to stdout.
    pub lines: Vec<String>,
    pub elapsed: Duration,
}

/// When a bounded run must end: `limit` in all, and `grace` after a line that `last_line`
/// recognises as the run's final line (so that a process that hangs after reporting, for
/// example MPI ranks that never exit, costs seconds, not the whole limit).
pub(crate) struct Bounds {
    pub limit: Duration,
    pub last_line: Option<(LineTest, Duration)>,
}

/// Recognises a line of a command's output.
pub(crate) type LineTest = fn(&str) -> bool;

/// Runs `cmd` in its own process group, echoing its stdout line by line (stderr goes straight
/// through) and keeping the lines. When a bound runs out the whole group is killed: MPI
/// launchers and spawned workers go with it, and a hang becomes a failure instead of a stuck
/// run. The group is also killed after a normal exit, so that no stray process outlives a row.
pub(crate) fn run_bounded(cmd: &mut Command, bounds: &Bounds) -> std::io::Result<Finished> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pgid = child.id();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reported: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let (done_tx, done_rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        let lines = lines.clone();
        let reported = reported.clone();
        let is_last = bounds.last_line.map(|(f, _)| f);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                println!("{line}");
                if is_last.is_some_and(|f| f(&line)) {
                    *reported.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                }
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
            let _ = done_tx.send(());
        });
    }
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait()? {
            break (Some(status), false);
        }
        let since_report = *reported.lock().unwrap_or_else(|p| p.into_inner());
        let grace_over = match (since_report, bounds.last_line) {
            (Some(at), Some((_, grace))) => at.elapsed() > grace,
            _ => false,
        };
        if started.elapsed() > bounds.limit || grace_over {
            kill_group(pgid);
            // In case the group could not be signalled, at least the direct child goes.
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    kill_group(pgid);
    // The reader ends when every writer of the pipe is gone; do not wait forever for a writer
    // that escaped the process group.
    let _ = done_rx.recv_timeout(Duration::from_secs(5));
    let lines = lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(Finished {
        status,
        timed_out,
        lines,
        elapsed: started.elapsed(),
    })
}

/// Kills process group `pgid` with SIGKILL.
pub(crate) fn kill_group(pgid: u32) {
    // std has no killpg; the `kill` utility does it without unsafe code.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs a command to completion with inherited output; Ok when it exits 0.
pub(crate) fn run_step(cmd: &mut Command) -> Result<(), String> {
    let shown = describe(cmd);
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{shown}` failed ({s})")),
        Err(e) => Err(format!("cannot run `{shown}`: {e}")),
    }
}

/// Like [`run_step`], but the command's stderr is also kept: when it fails, the error ends with
/// the lines that say why (cargo's `error` lines, or the last lines written), so a summary table
/// far below the build's own output still names the cause.
pub(crate) fn run_step_with_cause(cmd: &mut Command) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Write};
    let shown = describe(cmd);
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let mut kept: Vec<String> = Vec::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = writeln!(std::io::stderr(), "{line}");
            kept.push(line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for `{shown}`: {e}"))?;
    if status.success() {
        return Ok(());
    }
    Err(format!(
        "`{shown}` failed ({status}): {}",
        failure_cause(&kept)
    ))
}

/// The lines of a failed command's stderr that say why: cargo's and rustc's `error` lines with
/// the line after each, else the last three lines.
fn failure_cause(lines: &[String]) -> String {
    let mut picked: Vec<&str> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("error") {
            picked.push(l.trim());
            if let Some(next) = lines.get(i + 1) {
                picked.push(next.trim());
            }
        }
    }
    if picked.is_empty() {
        picked = lines.iter().rev().take(3).rev().map(|l| l.trim()).collect();
    }
    picked.truncate(12);
    picked.join(" | ")
}

/// Runs a command with `input` on its standard input; Ok when it exits 0.
pub(crate) fn run_with_input(cmd: &mut Command, input: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("cannot write its input: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot wait for it: {e}"))?;
    output_ok(&out, &describe(cmd))
}

/// Ok when a finished command (shown as `shown`) exited 0; else what it wrote on stderr.
pub(crate) fn output_ok(out: &std::process::Output, shown: &str) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The command line as a user would type it (environment assignments first).
pub(crate) fn describe(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))
        .collect();
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn a_failed_build_names_its_error_lines() {
        let err = run_step_with_cause(&mut sh(
            "echo 'Compiling x' >&2; echo 'error: could not write output' >&2; \
             echo '  No space left on device' >&2; echo 'warning: build failed' >&2; exit 101",
        ))
        .unwrap_err();
        assert!(err.contains("exit status: 101"), "{err}");
        assert!(
            err.ends_with("error: could not write output | No space left on device"),
            "{err}"
        );
        // Without an error line, the last lines say it.
        let err = run_step_with_cause(&mut sh(
            "echo a >&2; echo b >&2; echo c >&2; echo d >&2; exit 2",
        ))
        .unwrap_err();
        assert!(err.ends_with("b | c | d"), "{err}");
        assert!(run_step_with_cause(&mut sh("echo fine >&2")).is_ok());
    }

    #[test]
    fn output_lines_and_status_are_kept() {
        let bounds = Bounds {
            limit: Duration::from_secs(30),
            last_line: None,
        };
        let f = run_bounded(&mut sh("echo one; echo two; exit 3"), &bounds).unwrap();
        assert_eq!(f.lines, ["one", "two"]);
        assert_eq!(f.status.and_then(|s| s.code()), Some(3));
        assert!(!f.timed_out);
    }

    #[test]
    fn the_limit_kills_the_whole_group() {
        let bounds = Bounds {
            limit: Duration::from_millis(500),
            last_line: None,
        };
        // The background sleep keeps the pipe open: only killing the group ends the run.
        let f = run_bounded(&mut sh("sleep 60 & sleep 60"), &bounds).unwrap();
        assert!(f.timed_out);
        assert!(f.elapsed < Duration::from_secs(20), "took {:?}", f.elapsed);
    }

    #[test]
    fn a_hang_after_the_last_line_is_cut_short() {
        let bounds = Bounds {
            limit: Duration::from_secs(60),
            last_line: Some((|l| l == "done", Duration::from_millis(300))),
        };
        let f = run_bounded(&mut sh("echo done; sleep 60"), &bounds).unwrap();
        assert!(f.timed_out);
        assert_eq!(f.lines, ["done"]);
        assert!(f.elapsed < Duration::from_secs(20), "took {:?}", f.elapsed);
    }
}
