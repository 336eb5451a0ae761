//! `cargo xtask cluster up|down|run`: several simulated hosts on this machine, each a network
//! namespace with its own address on 10.77.0.0/24, its own host name and an `/etc/hosts` line,
//! joined by a bridge in a switch namespace, plus the launcher agent that Open MPI
//! (`plm_rsh_agent`) and MPICH (`-launcher-exec`) use instead of ssh to start processes there.
//!
//! Everything this file creates carries the prefix `unidist-` (namespaces `unidist-sw` and
//! `unidist-h1`..) and every `/etc/hosts` line it adds ends with [`HOSTS_MARK`]; `down` removes
//! exactly those and nothing else, so that the command never touches a namespace or address it
//! did not make.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, run_step, which};

/// The prefix of every namespace and host name of the simulated cluster.
const PREFIX: &str = "unidist-";
/// The switch namespace that holds the bridge.
const SWITCH: &str = "unidist-sw";
/// The subnet of the hosts: host `i` is `10.77.0.i`.
pub(crate) const SUBNET: &str = "10.77.0.0/24";
/// The end of every `/etc/hosts` line this command adds.
const HOSTS_MARK: &str = "# added by cargo xtask cluster";
/// The nftables table of [`Cluster::lossy`] in each host's namespace.
const LOSS_TABLE: &str = "unidist_loss";
const HOSTS_FILE: &str = "/etc/hosts";
/// Hosts when `--hosts` is not given.
pub(crate) const DEFAULT_HOSTS: u32 = 3;
/// The most hosts `--hosts` accepts (each is a namespace, a veth pair and a few processes).
const MAX_HOSTS: u32 = 32;

const USAGE: &str = "usage: cargo xtask cluster up [--hosts N] | down | run [--hosts N] -- CMD...";

/// A subcommand of `cargo xtask cluster`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Up { hosts: u32 },
    Down,
    Run { hosts: u32, command: Vec<String> },
}

impl Action {
    pub(crate) fn parse(args: &[String]) -> Result<Action, String> {
        let (verb, rest) = args
            .split_first()
            .ok_or_else(|| "missing subcommand: expected up, down or run".to_string())?;
        // Everything after `--` is the command of `run`, whatever it looks like.
        let (flags, command) = match rest.iter().position(|a| a == "--") {
            Some(i) => (&rest[..i], Some(rest[i + 1..].to_vec())),
            None => (rest, None),
        };
        let mut hosts = None;
        let mut it = flags.iter();
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--hosts" if verb != "down" => {
                    let raw = it.next().ok_or("--hosts needs a value")?;
                    hosts = Some(parse_hosts(raw)?);
                }
                other => return Err(format!("unknown option {other:?} for cluster {verb}")),
            }
        }
        let hosts = hosts.unwrap_or(DEFAULT_HOSTS);
        match (verb.as_str(), command) {
            ("up", None) => Ok(Action::Up { hosts }),
            ("down", None) => Ok(Action::Down),
            ("run", Some(command)) if !command.is_empty() => Ok(Action::Run { hosts, command }),
            ("run", _) => Err("cluster run needs a command after `--`".into()),
            ("up" | "down", Some(_)) => Err(format!("cluster {verb} takes no command")),
            (other, _) => Err(format!(
                "unknown subcommand {other:?}: expected up, down or run"
            )),
        }
    }
}

fn parse_hosts(raw: &str) -> Result<u32, String> {
    raw.parse()
        .ok()
        .filter(|n| (1..=MAX_HOSTS).contains(n))
        .ok_or_else(|| {
            format!("invalid --hosts {raw:?}: expected a host count from 1 to {MAX_HOSTS}")
        })
}

/// The name of host `i` (from 1): its namespace, host name and `/etc/hosts` name at once.
pub(crate) fn host(i: u32) -> String {
    format!("{PREFIX}h{i}")
}

fn address(i: u32) -> String {
    format!("10.77.0.{i}")
}

/// The `packets N` of an nftables counter in `nft list` output.
fn packets_counted(listing: &str) -> Option<u64> {
    let mut words = listing.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// True for the namespace names this command makes (`unidist-sw`, `unidist-h<N>`).
fn is_ours(namespace: &str) -> bool {
    namespace == SWITCH
        || namespace
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_prefix('h'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The launcher agent: called as `agent HOST COMMAND...` (like ssh), it runs the command in the
/// host's namespace under its own host name. Open MPI names its session directory and
/// shared-memory files after the host name, and `/tmp` and `/dev/shm` are shared between the
/// namespaces, so each host needs its own name (`unshare --uts`).
fn agent_script() -> String {
    format!(
        r#"#!/bin/sh
# The launcher agent of the simulated cluster, written by `cargo xtask cluster up`:
# `agent HOST COMMAND...` runs COMMAND in HOST's network namespace with HOST as host name.
h="$1"; shift
case "$h" in
  {PREFIX}h[0-9]*) ;;
  *) echo "cluster agent: $h is not a host of the simulated cluster" >&2; exit 255 ;;
esac
exec ip netns exec "$h" unshare --uts -- sh -c 'hostname "$0" && exec sh -c "$1"' "$h" "$*"
"#
    )
}

/// Where the agent script is written.
pub(crate) fn agent_path() -> PathBuf {
    util::root().join("target").join("cluster").join("agent")
}

/// What is missing to run the simulated cluster here and how to fix it, or `None`.
pub(crate) fn missing() -> Option<String> {
    if effective_uid() != Some(0) {
        return Some(
            "the simulated cluster needs root (network namespaces, /etc/hosts): \
             run as root, e.g. with sudo"
                .into(),
        );
    }
    if which("ip").is_none() {
        return Some("`ip` not found in PATH: install iproute2 (apt-get install iproute2)".into());
    }
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !netns.is_ok_and(|s| s.success()) {
        return Some(
            "`ip netns list` fails: this kernel or container does not offer network \
             namespaces (needs CONFIG_NET_NS and CAP_SYS_ADMIN)"
                .into(),
        );
    }
    if which("unshare").is_none() {
        return Some("`unshare` not found in PATH: install util-linux".into());
    }
    None
}

/// The effective user id, from `/proc/self/status` (no unsafe `geteuid`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_effective_uid(&status)
}

fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    // Real, effective, saved, filesystem.
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A simulated cluster that is up: its hosts, in order.
pub(crate) struct Cluster {
    pub hosts: Vec<String>,
}

impl Cluster {
    /// Brings up `n` hosts, first removing what an earlier run may have left. On failure,
    /// whatever was made is removed again.
    pub(crate) fn up(n: u32) -> Result<Cluster, String> {
        if let Some(why) = missing() {
            return Err(why);
        }
        down()?;
        let cluster = Cluster {
            hosts: (1..=n).map(host).collect(),
        };
        if let Err(e) = cluster.build() {
            let _ = down();
            return Err(e);
        }
        Ok(cluster)
    }

    fn build(&self) -> Result<(), String> {
        let hosts_file = read_hosts()?;
        if let Some(line) = foreign_lines(&hosts_file, &self.hosts).first() {
            return Err(format!(
                "{HOSTS_FILE} already has {line:?}, a line this command did not add: \
                 remove it and try again"
            ));
        }
        ip(&["netns", "add", SWITCH])?;
        ip(&["-n", SWITCH, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", SWITCH, "link", "set", "br0", "up"])?;
        let mut lines = Vec::new();
        for (i, h) in (1..).zip(&self.hosts) {
            let port = format!("v{i}");
            ip(&["netns", "add", h])?;
            ip(&[
                "link", "add", &port, "netns", SWITCH, "type", "veth", "peer", "name", "eth0",
                "netns", h,
            ])?;
            ip(&["-n", SWITCH, "link", "set", &port, "master", "br0", "up"])?;
            ip(&[
                "-n",
                h,
                "addr",
                "add",
                &format!("{}/24", address(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", h, "link", "set", "eth0", "up"])?;
            ip(&["-n", h, "link", "set", "lo", "up"])?;
            limit_retransmissions(h)?;
            lines.push(format!("{} {h} {HOSTS_MARK}", address(i)));
        }
        let mut text = hosts_file;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&(lines.join("\n") + "\n"));
        write_hosts(&text)?;
        let agent = agent_path();
        let dir = agent.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::write(&agent, agent_script())
            .map_err(|e| format!("cannot write {}: {e}", agent.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot make {} executable: {e}", agent.display()))
    }

    /// The environment that makes Open MPI start remote daemons through the agent and talk
    /// TCP over the cluster's subnet only. MPICH's UCX gets TCP and shared memory: it sees one
    /// machine (one boot id), so it moves the bytes between the namespace hosts through shared
    /// memory, while its launch and PMI cross the subnet. With TCP alone (`UCX_TLS=tcp` or
    /// `tcp,self`) Debian's MPICH 4.0.2 with UCX hangs in `MPI_Finalize` in about 6 runs of 10,
    /// a ten-line C program as much as this project's jobs (`docs/cluster.md`).
    pub(crate) fn mpi_env(&self) -> Vec<(&'static str, String)> {
        let agent = agent_path().display().to_string();
        vec![
            ("OMPI_MCA_plm_rsh_agent", agent),
            ("OMPI_MCA_plm_rsh_no_tree_spawn", "1".into()),
            ("OMPI_MCA_pml", "ob1".into()),
            ("OMPI_MCA_btl", "self,vader,tcp".into()),
            ("OMPI_MCA_btl_tcp_if_include", SUBNET.into()),
            ("OMPI_MCA_oob_tcp_if_include", SUBNET.into()),
            ("UCX_TLS", "tcp,sm,self".into()),
            ("UCX_NET_DEVICES", "eth0".into()),
        ]
    }

    /// `cmd` as run inside `host`, under that host name: the same program, arguments,
    /// environment and working directory.
    pub(crate) fn inside(&self, host: &str, cmd: &Command) -> Command {
        let mut wrapped = Command::new("ip");
        wrapped
            .args(["netns", "exec", host, "unshare", "--uts", "--", "sh", "-c"])
            .arg(r#"hostname "$0" && exec "$@""#)
            .arg(host)
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            wrapped.current_dir(dir);
        }
        wrapped
    }

    /// Adds `tc netem` with `settings` (e.g. `delay 20ms loss 2%`) to every host's link, or
    /// with `None` removes it again.
    pub(crate) fn netem(&self, settings: Option<&[&str]>) -> Result<(), String> {
        for h in &self.hosts {
            let mut cmd = Command::new("tc");
            cmd.args(["-n", h, "qdisc"]);
            match settings {
                Some(s) => cmd.args(["add", "dev", "eth0", "root", "netem"]).args(s),
                None => cmd.args(["del", "dev", "eth0", "root"]),
            };
            let out = cmd
                .output()
                .map_err(|e| format!("cannot run tc (install iproute2): {e}"))?;
            util::output_ok(&out, &util::describe(&cmd))?;
        }
        Ok(())
    }

    /// Drops `percent`% of the packets arriving at every host's link, chosen at random
    /// (nftables, a `netdev` table on the ingress of `eth0`), or with `None` removes that
    /// table again: loss on the wire without `tc netem`, which some kernels lack.
    pub(crate) fn lossy(&self, percent: Option<u32>) -> Result<(), String> {
        for h in &self.hosts {
            let script = match percent {
                Some(p) => format!(
                    "table netdev {LOSS_TABLE} {{\n  chain ingress {{\n    type filter hook \
                     ingress device eth0 priority 0; policy accept;\n    numgen random mod 100 \
                     < {p} counter drop\n  }}\n}}\n"
                ),
                None => format!("delete table netdev {LOSS_TABLE}\n"),
            };
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", h, "nft", "-f", "-"]);
            util::run_with_input(&mut cmd, &script)
                .map_err(|e| format!("{e} (is nftables installed?)"))?;
        }
        Ok(())
    }

    /// The packets [`Cluster::lossy`] dropped so far, summed over the hosts.
    pub(crate) fn lost_packets(&self) -> Result<u64, String> {
        let mut total = 0;
        for h in &self.hosts {
            let out = Command::new("ip")
                .args([
                    "netns", "exec", h, "nft", "list", "table", "netdev", LOSS_TABLE,
                ])
                .output()
                .map_err(|e| format!("cannot run nft in {h}: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            total += packets_counted(&text)
                .ok_or_else(|| format!("no packet counter in {h}'s loss table: {text}"))?;
        }
        Ok(total)
    }

    /// Kills every process left in the cluster's namespaces (between runs).
    pub(crate) fn kill_processes(&self) {
        for ns in self.hosts.iter().map(String::as_str).chain([SWITCH]) {
            kill_in(ns);
        }
    }
}

/// Removes every namespace of the simulated cluster (after killing its processes) and every
/// `/etc/hosts` line this command added.
pub(crate) fn down() -> Result<(), String> {
    let mut problems = Vec::new();
    for ns in namespaces()?.iter().filter(|ns| is_ours(ns)) {
        kill_in(ns);
        if let Err(e) = ip(&["netns", "del", ns]) {
            problems.push(e);
        }
    }
    let text = read_hosts()?;
    let kept = without_our_lines(&text);
    if kept != text {
        write_hosts(&kept)?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The names of every network namespace (`ip netns list` prints `NAME (id: N)`).
fn namespaces() -> Result<Vec<String>, String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map_err(|e| format!("cannot run `ip netns list`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`ip netns list` failed ({})", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// The processes in namespace `ns`, as pid strings.
pub(crate) fn pids_in(ns: &str) -> Vec<String> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Kills every process in namespace `ns` (as a host crash would) and waits (a few seconds at
/// most) until none is left.
pub(crate) fn kill_in(ns: &str) {
    let started = Instant::now();
    loop {
        let pids = pids_in(ns);
        if pids.is_empty() || started.elapsed() > Duration::from_secs(5) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits, at most 5 s, until `host`'s `eth0` reports itself up.
pub(crate) fn wait_link_up(host: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let up = Command::new("ip")
            .args(["-n", host, "-o", "link", "show", "eth0"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("state UP"));
        if up {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many times a host's kernel retransmits unacknowledged TCP data before it gives the
/// connection up (`net.ipv4.tcp_retries2`, one value per network namespace).
const TCP_RETRIES: u32 = 5;

/// Sets [`TCP_RETRIES`] in `host`'s namespace. With the kernel's default of 15 a connection
/// with data in flight to a cut-off host is given up only after about 15 minutes, and TCP
/// keepalive does not probe such a connection: once, after a partition, `mpirun` (Open MPI
/// 4.1) waited over a minute for its daemon on the cut host, though every process of the job
/// on the reachable hosts had ended within 6 s. With 5 the kernel gives up after about 13 s,
/// as clusters tuned for failure detection do; this project's own detection (the heartbeat)
/// does not depend on it.
fn limit_retransmissions(host: &str) -> Result<(), String> {
    let file = "/proc/sys/net/ipv4/tcp_retries2";
    let out = Command::new("ip")
        .args(["netns", "exec", host, "sh", "-c"])
        .arg(format!("echo {TCP_RETRIES} > {file}"))
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    util::output_ok(&out, &format!("setting {file} to {TCP_RETRIES} in {host}"))
}

pub(crate) fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    util::output_ok(&out, &format!("ip {}", args.join(" ")))
}

fn read_hosts() -> Result<String, String> {
    std::fs::read_to_string(HOSTS_FILE).map_err(|e| format!("cannot read {HOSTS_FILE}: {e}"))
}

/// Writes `/etc/hosts` in place (it may be a bind mount, which a rename would not replace).
fn write_hosts(text: &str) -> Result<(), String> {
    std::fs::write(HOSTS_FILE, text).map_err(|e| format!("cannot write {HOSTS_FILE}: {e}"))
}

/// `text` without the lines this command added.
fn without_our_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_end().ends_with(HOSTS_MARK))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The lines of `text` that name one of `hosts` but were not added by this command.
fn foreign_lines(text: &str, hosts: &[String]) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_end().ends_with(HOSTS_MARK))
        .filter(|l| {
            let code = l.split('#').next().unwrap_or("");
            code.split_whitespace()
                .skip(1)
                .any(|name| hosts.iter().any(|h| h == name))
        })
        .map(str::to_string)
        .collect()
}

/// `cargo xtask cluster ...`; returns the exit code.
pub(crate) fn cluster(args: &[String]) -> i32 {
    let action = match Action::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xtask cluster: {e}\n{USAGE}");
            return 2;
        }
    };
    if let Some(why) = missing() {
        eprintln!("xtask cluster: {why}");
        return 1;
    }
    let result = match action {
        Action::Up { hosts } => Cluster::up(hosts).map(|c| {
            println!(
                "cluster up: {} on {SUBNET}; launcher agent {}",
                c.hosts.join(", "),
                agent_path().display()
            );
            0
        }),
        Action::Down => down().map(|()| {
            println!("cluster down: no namespace or /etc/hosts line of it is left");
            0
        }),
        Action::Run { hosts, command } => run(hosts, &command),
    };
    result.unwrap_or_else(|e| {
        eprintln!("xtask cluster: {e}");
        1
    })
}

/// Brings the cluster up, runs `command` inside its first host with the MPI environment and
/// `UNIDIST_CLUSTER_HOSTS`/`UNIDIST_CLUSTER_AGENT` set, and always takes the cluster down again.
fn run(hosts: u32, command: &[String]) -> Result<i32, String> {
    let cluster = Cluster::up(hosts)?;
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .envs(cluster.mpi_env())
        .env("UNIDIST_CLUSTER_HOSTS", cluster.hosts.join(","))
        .env("UNIDIST_CLUSTER_AGENT", agent_path());
    let mut inside = cluster.inside(&cluster.hosts[0], &cmd);
    println!("==> on {}: {}", cluster.hosts[0], command.join(" "));
    let status = run_step(&mut inside);
    let teardown = down();
    match (status, teardown) {
        (Ok(()), Ok(())) => Ok(0),
        (Err(e), Ok(())) => {
            eprintln!("xtask cluster: {e}");
            Ok(1)
        }
        (_, Err(e)) => Err(format!("taking the cluster down failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subcommands_parse() {
        assert_eq!(Action::parse(&args(&["up"])), Ok(Action::Up { hosts: 3 }));
        assert_eq!(
            Action::parse(&args(&["up", "--hosts", "5"])),
            Ok(Action::Up { hosts: 5 })
        );
        assert_eq!(Action::parse(&args(&["down"])), Ok(Action::Down));
        assert_eq!(
            Action::parse(&args(&[
                "run", "--hosts", "2", "--", "hostname", "--", "-x"
            ])),
            Ok(Action::Run {
                hosts: 2,
                command: args(&["hostname", "--", "-x"])
            })
        );
        assert_eq!(
            Action::parse(&args(&["run", "--", "true"])),
            Ok(Action::Run {
                hosts: 3,
                command: args(&["true"])
            })
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        for bad in [
            &[][..],
            &["sideways"],
            &["up", "--hosts"],
            &["up", "--hosts", "0"],
            &["up", "--hosts", "33"],
            &["up", "--hosts", "x"],
            &["down", "--hosts", "2"],
            &["up", "--", "true"],
            &["run"],
            &["run", "--"],
            &["run", "true"],
            &["run", "--verbose", "--", "true"],
        ] {
            assert!(Action::parse(&args(bad)).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn only_our_namespaces_are_ours() {
        assert!(is_ours("unidist-sw"));
        assert_eq!(
            packets_counted("numgen random mod 100 < 2 counter packets 417 bytes 9 drop"),
            Some(417)
        );
        assert_eq!(packets_counted("policy accept;"), None);
        assert!(is_ours("unidist-h1"));
        assert!(is_ours("unidist-h12"));
        for other in [
            "h1",
            "sw",
            "unidist-h",
            "unidist-hx",
            "unidist-h1x",
            "unidist-sw2",
            "x-unidist-h1",
        ] {
            assert!(!is_ours(other), "{other}");
        }
    }

    #[test]
    fn only_our_hosts_lines_are_removed() {
        let text = "127.0.0.1 localhost\n10.77.0.1 h1\n\
                    10.77.0.1 unidist-h1 # added by cargo xtask cluster\n\
                    10.77.0.2 unidist-h2 # added by cargo xtask cluster\n::1 ip6-localhost\n";
        assert_eq!(
            without_our_lines(text),
            "127.0.0.1 localhost\n10.77.0.1 h1\n::1 ip6-localhost\n"
        );
        assert_eq!(without_our_lines("a\nb"), "a\nb\n");
    }

    #[test]
    fn a_foreign_line_naming_a_host_is_found() {
        let hosts = vec![host(1), host(2)];
        let text = "127.0.0.1 localhost\n10.0.0.9 box unidist-h2\n# 1.2.3.4 unidist-h1\n\
                    10.77.0.1 unidist-h1 # added by cargo xtask cluster\n";
        assert_eq!(foreign_lines(text, &hosts), ["10.0.0.9 box unidist-h2"]);
    }

    #[test]
    fn the_effective_uid_is_the_second_field() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_effective_uid(status), Some(0));
        assert_eq!(parse_effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn the_agent_refuses_other_hosts_and_keeps_the_prefix() {
        let script = agent_script();
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("unidist-h[0-9]*) ;;"));
        assert!(script.contains("ip netns exec \"$h\" unshare --uts"));
    }

    #[test]
    fn a_command_inside_a_host_keeps_its_environment() {
        let mut cmd = Command::new("prog");
        cmd.args(["a", "b c"])
            .env("K", "v")
            .env_remove("GONE")
            .current_dir("/tmp");
        let c = Cluster {
            hosts: vec![host(1)],
        };
        let w = c.inside(&host(1), &cmd);
        let argv: Vec<String> = w
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(w.get_program(), "ip");
        assert_eq!(&argv[..3], ["netns", "exec", "unidist-h1"]);
        assert_eq!(&argv[argv.len() - 4..], ["unidist-h1", "prog", "a", "b c"]);
        let envs: Vec<_> = w.get_envs().collect();
        assert!(envs.contains(&("K".as_ref(), Some("v".as_ref()))));
        assert!(envs.contains(&("GONE".as_ref(), None)));
        assert_eq!(w.get_current_dir(), Some(Path::new("/tmp")));
    }
}
