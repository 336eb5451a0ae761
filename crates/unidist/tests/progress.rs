//! `UNIDIST_PROGRESS`: a `get_all` on many refs that lasts over a second draws a bar on stderr
//! when stderr is a terminal (checked under `script`, which gives the child a pseudo-terminal),
//! and writes nothing to stderr otherwise. Each test starts this test binary again as the child
//! that does the waiting.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Set in the child: it runs the workload instead of spawning.
const CHILD: &str = "UNIDIST_PROGRESS_TEST_CHILD";
/// Tasks of the workload; the bar's final line shows `TASKS/TASKS`.
const TASKS: u64 = 6;
/// A child that has not finished within this fails the test.
const LIMIT: Duration = Duration::from_secs(120);

/// Sleeps, then returns `x`: six of them on two threads take about 1.2 s.
#[unidist::remote]
fn nap(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(400));
    x
}

/// The child's work: on the first in-process backend where objects can be pending (so that
/// `get_all` really waits), one `get_all` on [`TASKS`] refs lasting over a second.
fn workload() {
    unidist::config::CpuCount::put(2).expect("2 workers");
    unidist::config::Progress::put(true).expect("progress on");
    for name in unidist::in_process_backends() {
        unidist::config::Backend::put(name).expect("choosing the backend");
        unidist::init().expect("init");
        if unidist::capabilities()
            .expect("capabilities")
            .pending_objects
        {
            let refs: Vec<_> = (0..TASKS).map(nap::remote).collect();
            let values = unidist::get_all(&refs).expect("get_all");
            assert_eq!(values, (0..TASKS).collect::<Vec<_>>());
            unidist::shutdown().expect("shutdown");
            return;
        }
        unidist::shutdown().expect("shutdown");
    }
    panic!("no in-process backend can hold pending objects in this build");
}

/// This test binary, running only `test` as the child.
fn child_command(program: &str, test: &str) -> (String, Vec<String>) {
    let exe = std::env::current_exe().expect("the test binary");
    let args = vec![
        exe.display().to_string(),
        test.to_string(),
        "--exact".into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
    ];
    (program.to_string(), args)
}

/// Reads a child's stream to its end on a thread of its own, so that a child writing more than
/// a pipe holds never blocks on it while [`bounded`] waits.
fn drain(stream: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut s) = stream {
            let _ = s.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Waits for `child` at most [`LIMIT`], killing it when it takes longer; its output is read
/// meanwhile and shown in the failure.
fn bounded(mut child: Child) -> Output {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("polling the child") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "the child did not finish within {LIMIT:?}; stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

#[test]
fn a_long_get_all_draws_a_bar_in_a_terminal() {
    if std::env::var_os(CHILD).is_some() {
        workload();
        return;
    }
    let script = Command::new("script").arg("--version").output();
    assert!(
        script.is_ok_and(|o| o.status.success()),
        "`script` (package bsdutils) is needed to give the child a pseudo-terminal"
    );
    let (_, args) = child_command("", "a_long_get_all_draws_a_bar_in_a_terminal");
    let line = args.join(" ");
    // `script` runs the command with stdin, stdout and stderr on a pseudo-terminal and copies
    // everything written there to its own stdout.
    let child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting script");
    let out = bounded(child);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the child failed: {text}");
    // The bar redraws its line with `\r` and escape sequences; its last drawing is the final
    // state.
    let total = format!("/{TASKS} (");
    let last = text
        .split(['\r', '\n'])
        .rfind(|l| l.contains(&total))
        .unwrap_or_else(|| panic!("no progress bar in the terminal output: {text:?}"));
    assert!(
        last.contains(&format!("{TASKS}/{TASKS} (")),
        "the bar's final line does not show the total: {last:?}"
    );
}

#[test]
fn nothing_is_written_when_stderr_is_not_a_terminal() {
    if std::env::var_os(CHILD).is_some() {
        workload();
        return;
    }
    let (program, args) = child_command(
        &std::env::current_exe()
            .expect("the test binary")
            .display()
            .to_string(),
        "nothing_is_written_when_stderr_is_not_a_terminal",
    );
    let child = Command::new(program)
        .args(&args[1..])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the child");
    let out = bounded(child);
    assert!(
        out.status.success(),
        "the child failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "stderr is a pipe, so nothing may be drawn there"
    );
}
