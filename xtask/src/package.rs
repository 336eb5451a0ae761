//! `cargo xtask package` and `cargo xtask msrv`: the crates.io dry run of every published crate
//! (metadata, file lists, the shipped licence, `cargo package` with its verification build) and
//! the MSRV checks that stand in for a `cargo +<MSRV>` build on a machine with one toolchain.
//!
//! The published crates are the workspace members without `publish = false`, read from
//! `cargo metadata`, so a new crate is checked as soon as it joins the workspace. They depend on
//! each other and are not on crates.io yet, so they are packaged in one `cargo package`
//! invocation: cargo (1.83 and later) then resolves each one's unidist dependencies against the
//! packages it has just made (a local registry overlay) and verifies every crate by building it
//! from its `.crate` file alone.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::backend_table;
use crate::backends::Impl;
use crate::util::{self, human};

/// Locked packages allowed above the MSRV, with the reason. Every entry is debt: it means the
/// MSRV in `[workspace.package]` is not true for a user of the crate named in the reason. Remove
/// the entry when the reason is gone (or the MSRV is raised).
pub(crate) const MSRV_EXCEPTIONS: &[(&str, &str)] = &[];

/// Path prefixes a published package may contain: its sources, the example gallery, a build
/// script, and the files cargo and crates.io need. Anything else (tests needing the unpublished
/// test-support crate, fuzz corpora, build output) is a mistake in an `include` list.
const ALLOWED_PREFIXES: &[&str] = &[
    "src/",
    "examples/",
    "build.rs",
    "Cargo.toml",
    "Cargo.toml.orig",
    "Cargo.lock",
    ".cargo_vcs_info.json",
    "README.md",
    "LICENSE",
];

/// Path fragments no package may contain, whatever the prefix lists say.
const FORBIDDEN_FRAGMENTS: &[&str] = &["target/", "corpus", "fuzz/", "proptest-regressions"];

/// Cargo warnings expected from the `include` lists: integration tests are left out on
/// purpose (they use the unpublished test-support crate), and cargo says it drops them.
fn expected_warning(line: &str) -> bool {
    line.starts_with("warning: ignoring test `")
        && line.contains("` as `tests/")
        && line.ends_with("is not included in the published package")
}

/// Options of `cargo xtask package`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// Skip the verification builds (`cargo package --no-verify`).
    pub no_verify: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options::default();
        for arg in args {
            match arg.as_str() {
                "--no-verify" => options.no_verify = true,
                other => {
                    return Err(format!(
                        "invalid argument {other:?}: expected --no-verify or nothing"
                    ))
                }
            }
        }
        Ok(options)
    }
}

/// The workspace as `cargo metadata` reports it, with the lock file as it is.
pub(crate) struct Metadata {
    json: Value,
}

impl Metadata {
    pub(crate) fn load() -> Result<Metadata, String> {
        let out = util::cargo()
            .args(["metadata", "--format-version", "1", "--locked"])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo metadata failed ({})", out.status));
        }
        let json = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("cannot parse the output of cargo metadata: {e}"))?;
        Ok(Metadata { json })
    }

    fn packages(&self) -> impl Iterator<Item = &Value> {
        self.json["packages"].as_array().into_iter().flatten()
    }

    fn members(&self) -> impl Iterator<Item = &Value> {
        let ids: BTreeSet<&str> = self.json["workspace_members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        self.packages()
            .filter(move |p| p["id"].as_str().is_some_and(|id| ids.contains(id)))
    }

    /// The members that go to crates.io: `publish` is `null` (anywhere) unless the manifest
    /// says `publish = false` (an empty list).
    pub(crate) fn published(&self) -> Vec<&Value> {
        self.members().filter(|p| p["publish"].is_null()).collect()
    }

    /// The workspace MSRV: the one `rust-version` every member inherits.
    fn msrv(&self) -> Result<Version, String> {
        let versions: BTreeSet<&str> = self
            .members()
            .map(|p| p["rust_version"].as_str().unwrap_or("(none)"))
            .collect();
        match versions.iter().collect::<Vec<_>>().as_slice() {
            [one] => Version::parse(one),
            _ => Err(format!(
                "the workspace members disagree on rust-version: {versions:?}; expected one value \
                 from [workspace.package]"
            )),
        }
    }
}

fn name(package: &Value) -> &str {
    package["name"].as_str().unwrap_or("?")
}

/// A Rust version (`1.85` or `1.85.1`), compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version([u32; 3]);

impl Version {
    pub(crate) fn parse(text: &str) -> Result<Version, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let mut out = [0; 3];
        if parts.is_empty() || parts.len() > 3 {
            return Err(format!(
                "invalid rust-version {text:?}: expected major.minor[.patch]"
            ));
        }
        for (slot, part) in out.iter_mut().zip(&parts) {
            *slot = part.parse().map_err(|_| {
                format!("invalid rust-version {text:?}: expected major.minor[.patch]")
            })?;
        }
        Ok(Version(out))
    }
}

/// What is wrong with a published crate's manifest for crates.io and docs.rs.
pub(crate) fn manifest_problems(package: &Value) -> Vec<String> {
    let crate_name = name(package);
    let mut problems = Vec::new();
    for field in [
        "description",
        "license",
        "repository",
        "documentation",
        "readme",
    ] {
        if package[field].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{crate_name}: `{field}` is not set"));
        }
    }
    if package["license"].as_str() != Some("Apache-2.0") {
        problems.push(format!(
            "{crate_name}: license is {}, expected \"Apache-2.0\"",
            package["license"]
        ));
    }
    for field in ["keywords", "categories"] {
        let count = package[field].as_array().map_or(0, Vec::len);
        if !(1..=5).contains(&count) {
            problems.push(format!(
                "{crate_name}: {count} {field}, expected 1 to 5 (crates.io keeps 5)"
            ));
        }
    }
    for dep in package["dependencies"].as_array().into_iter().flatten() {
        let is_dev = dep["kind"].as_str() == Some("dev");
        let path_only = dep["path"].is_string() && dep["req"].as_str() == Some("*");
        // Cargo drops a path-only dev-dependency from the published manifest (its tests then
        // do not build from the package, which is why they are not included), but a normal or
        // build dependency without a version cannot be published at all.
        if path_only && !is_dev {
            problems.push(format!(
                "{crate_name}: dependency {} has a path and no version; crates.io needs a version",
                dep["name"]
            ));
        }
    }
    problems
}

/// What is wrong with a package's file list (from `cargo package --list`).
pub(crate) fn file_list_problems(
    crate_name: &str,
    files: &[String],
    has_readme: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for file in files {
        if let Some(bad) = FORBIDDEN_FRAGMENTS.iter().find(|f| file.contains(*f)) {
            problems.push(format!("{crate_name}: ships {file} (matches {bad:?})"));
        } else if !ALLOWED_PREFIXES.iter().any(|p| file.starts_with(p)) {
            problems.push(format!(
                "{crate_name}: ships {file}, outside the allowed paths {ALLOWED_PREFIXES:?}"
            ));
        }
    }
    let mut needed = vec!["LICENSE", "Cargo.toml", "src/lib.rs"];
    if has_readme {
        needed.push("README.md");
    }
    for needed in needed {
        if !files.iter().any(|f| f == needed) {
            problems.push(format!("{crate_name}: the package has no {needed}"));
        }
    }
    problems
}

/// `cargo package --list` of one crate.
fn file_list(crate_name: &str) -> Result<Vec<String>, String> {
    let out = util::cargo()
        .args(["package", "--list", "--allow-dirty", "-p", crate_name])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo package --list: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo package --list -p {crate_name} failed ({})",
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// The crates that need a system MPI to build: the crates of the MPI-launched backends.
fn mpi_crates() -> Vec<String> {
    backend_table::mpi_backends()
        .map(|b| format!("unidist-{}", b.name))
        .collect()
}

/// The target directory of the packaging run. With Open MPI it is the one the MPI lint and
/// test builds use (same `MPICC`, so the verification builds reuse their dependencies);
/// without MPI, the default one.
fn target_dir() -> PathBuf {
    if Impl::OpenMpi.missing().is_none() {
        Impl::OpenMpi.target_dir()
    } else {
        util::root().join("target")
    }
}

/// Removes what earlier runs extracted of these crates from the local registries that
/// `cargo package` verifies against. Cargo extracts a `.crate` once per name and version and
/// reuses that source afterwards, so without this a second run (same version, changed code)
/// verifies against the first run's sources.
fn forget_verified_sources(crates: &[&str]) {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry").join("src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return;
    };
    // The local overlays cargo makes for `cargo package` have names starting with '-'; the
    // crates.io index's sources are never touched.
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = crates.iter().any(|c| {
                name.strip_prefix(c)
                    .is_some_and(|v| v.starts_with("-0") || v.starts_with("-1"))
            });
            if ours {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Removes the build fingerprints of this project's crates from the target directory that
/// verification builds in. Cargo takes a registry package of the same name and version to be
/// unchanged, so without this it would link the previous run's build of a crate whose code has
/// changed since; the workspace builds of these crates are simply rebuilt when next needed.
fn forget_verified_builds() {
    let fingerprints = target_dir().join("debug").join(".fingerprint");
    let Ok(entries) = std::fs::read_dir(&fingerprints) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("unidist-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs `cargo package` on every published crate at once. Cargo's warnings are echoed and the
/// unexpected ones returned as problems.
fn cargo_package(crates: &[&str], verify: bool) -> Result<Vec<String>, String> {
    forget_verified_sources(crates);
    forget_verified_builds();
    let mut cmd = util::cargo();
    cmd.args(["package", "--allow-dirty"]);
    if !verify {
        cmd.arg("--no-verify");
    }
    for c in crates {
        cmd.args(["-p", c]);
    }
    if Impl::OpenMpi.missing().is_none() {
        cmd.env("MPICC", Impl::OpenMpi.mpicc());
    }
    cmd.env("CARGO_TARGET_DIR", target_dir())
        .stderr(Stdio::piped());
    println!("==> {}", util::describe(&cmd));
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run cargo package: {e}"))?;
    let mut problems = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if line.starts_with("warning:") && !expected_warning(&line) {
                problems.push(format!("cargo package: {line}"));
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for cargo package: {e}"))?;
    if !status.success() {
        problems.push(format!("cargo package failed ({status})"));
    }
    Ok(problems)
}

/// Checks that the licence inside each `.crate` file is the repository's (the crates ship it
/// through a symbolic link to the root `LICENSE`, which a broken link would lose).
fn packaged_licence_problems(package: &Value) -> Vec<String> {
    let crate_name = name(package);
    let version = package["version"].as_str().unwrap_or("?");
    let dir = target_dir().join("package");
    let archive = dir.join(format!("{crate_name}-{version}.crate"));
    let inner = format!("{crate_name}-{version}/LICENSE");
    let root_licence = std::fs::read(util::root().join("LICENSE")).unwrap_or_default();
    match Command::new("tar")
        .arg("-xzOf")
        .arg(&archive)
        .arg(&inner)
        .output()
    {
        Ok(out) if out.status.success() && out.stdout == root_licence => Vec::new(),
        Ok(out) if out.status.success() => vec![format!(
            "{crate_name}: the packaged LICENSE differs from the repository's LICENSE"
        )],
        Ok(out) => vec![format!(
            "{crate_name}: cannot read {inner} from {}: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )],
        Err(e) => vec![format!("cannot run tar on {}: {e}", archive.display())],
    }
}

/// `cargo xtask package`: returns the process exit code.
pub(crate) fn package(args: &[String]) -> i32 {
    let options = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xtask package: {e}");
            return 2;
        }
    };
    let started = Instant::now();
    let result = run(&options);
    report("package", result, started)
}

/// `cargo xtask msrv`: returns the process exit code.
pub(crate) fn msrv() -> i32 {
    let started = Instant::now();
    let result = Metadata::load().map(|m| msrv_problems(&m, &util::root()));
    report("msrv", result, started)
}

fn report(what: &str, result: Result<Vec<String>, String>, started: Instant) -> i32 {
    let took = human(started.elapsed());
    match result {
        Ok(problems) if problems.is_empty() => {
            println!("xtask {what}: ok in {took}");
            0
        }
        Ok(problems) => {
            for p in &problems {
                eprintln!("xtask {what}: {p}");
            }
            eprintln!("xtask {what}: {} problem(s) in {took}", problems.len());
            1
        }
        Err(e) => {
            eprintln!("xtask {what}: {e}");
            1
        }
    }
}

fn run(options: &Options) -> Result<Vec<String>, String> {
    let metadata = Metadata::load()?;
    let mut problems = msrv_problems(&metadata, &util::root());
    let published = metadata.published();
    if published.is_empty() {
        return Err("no published crate found in cargo metadata".to_string());
    }
    for package in &published {
        problems.extend(manifest_problems(package));
        let crate_name = name(package);
        let files = file_list(crate_name)?;
        problems.extend(file_list_problems(
            crate_name,
            &files,
            !package["readme"].is_null(),
        ));
    }
    let names: Vec<&str> = published.iter().map(|p| name(p)).collect();
    let mpi_missing = Impl::OpenMpi.missing();
    let verify = !options.no_verify && mpi_missing.is_none();
    if let (false, Some(why)) = (options.no_verify, &mpi_missing) {
        // Verification builds every crate from its package, and cargo resolves the facade's
        // optional MPI backend too, so without MPI none of it can be verified.
        let skipped = format!(
            "verification SKIPPED: {why}; {} need a system MPI",
            mpi_crates().join(", ")
        );
        println!("==> {skipped}");
        if util::in_ci() {
            problems.push(skipped);
        }
    }
    problems.extend(cargo_package(&names, verify)?);
    for package in &published {
        problems.extend(packaged_licence_problems(package));
    }
    Ok(problems)
}

/// The MSRV checks: every locked package's `rust-version` is at most the workspace's, the
/// resolver falls back to MSRV-compatible releases, and clippy's `incompatible_msrv` lint (which
/// reads `rust-version` and flags standard library items stabilised later) is not turned off.
pub(crate) fn msrv_problems(metadata: &Metadata, root: &Path) -> Vec<String> {
    let msrv = match metadata.msrv() {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for package in metadata.packages() {
        let Some(needed) = package["rust_version"].as_str() else {
            continue;
        };
        let excepted = MSRV_EXCEPTIONS.iter().find(|(n, _)| *n == name(package));
        match Version::parse(needed) {
            Ok(v) if v > msrv && excepted.is_some() => println!(
                "xtask msrv: {} {} needs Rust {needed}, above the MSRV: known debt ({})",
                name(package),
                package["version"].as_str().unwrap_or("?"),
                excepted.map_or("", |(_, why)| why)
            ),
            Ok(v) if v > msrv => problems.push(format!(
                "{} {} needs Rust {needed}, above the MSRV {}; run `cargo update -p {}` \
                 (the resolver falls back to a release that builds on the MSRV)",
                name(package),
                package["version"].as_str().unwrap_or("?"),
                msrv.0.map(|n| n.to_string()).join("."),
                name(package)
            )),
            Ok(_) => {}
            Err(e) => problems.push(format!("{}: {e}", name(package))),
        }
    }
    for (excepted, _) in MSRV_EXCEPTIONS {
        let still_needed = metadata.packages().any(|p| {
            name(p) == *excepted
                && p["rust_version"]
                    .as_str()
                    .and_then(|v| Version::parse(v).ok())
                    .is_some_and(|v| v > msrv)
        });
        if !still_needed {
            problems.push(format!(
                "MSRV_EXCEPTIONS lists {excepted}, which no longer needs a newer Rust: remove it"
            ));
        }
    }
    let config = std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap_or_default();
    if !config
        .lines()
        .any(|l| l.replace(' ', "") == "incompatible-rust-versions=\"fallback\"")
    {
        problems.push(
            ".cargo/config.toml does not set [resolver] incompatible-rust-versions = \"fallback\""
                .to_string(),
        );
    }
    problems.extend(lint_allowed_anywhere(root));
    problems
}

/// Places that would turn `clippy::incompatible_msrv` off: the workspace lint table and any
/// `allow`/`expect` attribute in the sources.
fn lint_allowed_anywhere(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    if manifest
        .lines()
        .any(|l| l.trim_start().starts_with("incompatible_msrv") && l.contains("allow"))
    {
        problems.push("Cargo.toml allows clippy::incompatible_msrv".to_string());
    }
    let mut files = Vec::new();
    for dir in ["crates", "tests", "bench", "xtask"] {
        collect_rs(&root.join(dir), &mut files);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.lines().any(|l| {
            let l = l.trim_start();
            !l.starts_with("//") && l.contains("incompatible_msrv") && l.starts_with("#")
        }) {
            let rel = file.strip_prefix(root).unwrap_or(&file);
            problems.push(format!(
                "{} has an attribute naming clippy::incompatible_msrv",
                rel.display()
            ));
        }
    }
    problems
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let file_name = entry.file_name();
        if path.is_dir() && file_name != "target" {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(Version::parse("1.85").unwrap() < Version::parse("1.88.0").unwrap());
        assert!(Version::parse("1.100").unwrap() > Version::parse("1.85.1").unwrap());
        assert_eq!(
            Version::parse("1.85").unwrap(),
            Version::parse("1.85.0").unwrap()
        );
        let err = Version::parse("1.x").unwrap_err();
        assert!(
            err.contains("\"1.x\"") && err.contains("major.minor"),
            "{err}"
        );
    }

    #[test]
    fn file_lists_reject_tests_corpora_and_a_missing_licence() {
        let good = strings(&[
            "Cargo.toml",
            "LICENSE",
            "README.md",
            "src/lib.rs",
            "src/a/b.rs",
        ]);
        assert!(file_list_problems("demo", &good, true).is_empty());
        let bad = strings(&[
            "Cargo.toml",
            "src/lib.rs",
            "tests/it.rs",
            "src/corpus/x.bin",
        ]);
        let problems = file_list_problems("demo", &bad, true);
        assert!(
            problems.iter().any(|p| p.contains("tests/it.rs")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("src/corpus/x.bin")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("no LICENSE")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("no README.md")),
            "{problems:?}"
        );
    }

    #[test]
    fn manifests_need_metadata_and_versioned_dependencies() {
        let package = json!({
            "name": "demo",
            "description": "a demo",
            "license": "MIT",
            "repository": "https://example.org/demo",
            "documentation": null,
            "readme": "README.md",
            "keywords": ["a"],
            "categories": [],
            "dependencies": [
                {"name": "inner", "req": "*", "kind": null, "path": "/x/inner"},
                {"name": "support", "req": "*", "kind": "dev", "path": "/x/support"},
                {"name": "sibling", "req": "^0.1.0", "kind": null, "path": "/x/sibling"},
            ],
        });
        let problems = manifest_problems(&package);
        assert!(
            problems.iter().any(|p| p.contains("`documentation`")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("expected \"Apache-2.0\"")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("0 categories")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("\"inner\"")),
            "{problems:?}"
        );
        assert!(!problems
            .iter()
            .any(|p| p.contains("support") || p.contains("sibling")));
    }

    #[test]
    fn only_the_include_list_warning_is_expected() {
        assert!(expected_warning(
            "warning: ignoring test `tasks` as `tests/tasks.rs` is not included in the \
             published package"
        ));
        assert!(!expected_warning("warning: manifest has no documentation"));
    }

    #[test]
    fn the_workspace_meets_its_msrv() {
        let metadata = Metadata::load().unwrap();
        let problems = msrv_problems(&metadata, &util::root());
        assert!(problems.is_empty(), "{problems:#?}");
        let published = metadata.published();
        assert!(published.iter().any(|p| name(p) == "unidist"));
        for package in published {
            let problems = manifest_problems(package);
            assert!(problems.is_empty(), "{problems:#?}");
        }
    }
}
