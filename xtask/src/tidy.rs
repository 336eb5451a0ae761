//! `cargo xtask tidy`: house rules that a compiler does not check, as a line-based scan of
//! every `.rs` file in the repository (also run by `cargo test` through the test below):
//!
//! - every file opens with a `//!` line saying what lives there;
//! - no file in a crate's `src/` is over [`MAX_FILE_LINES`] lines and no function there over
//!   [`MAX_FN_LINES`], except the entries of [`SIZE_ALLOWED`], each with its reason;
//! - backend names (the string literals and `BackendName` variants) appear only in the places
//!   that may name a backend ([`NAMING_PLACES`]) and the entries of [`NAMES_ALLOWED`].

use std::path::{Path, PathBuf};

use crate::backend_table;
use crate::util;

/// The most lines a file in a crate's `src/` may have.
pub(crate) const MAX_FILE_LINES: usize = 800;
/// The most lines a function in a crate's `src/` may have, from its `fn` line to its closing
/// brace.
pub(crate) const MAX_FN_LINES: usize = 100;

/// Files (or `file::function`) allowed over the size limits, with the reason. Every entry is
/// debt to pay: remove it when the file or function is split.
pub(crate) const SIZE_ALLOWED: &[(&str, &str)] = &[
    (
        "crates/unidist-macros/src/actor.rs::generate",
        "one quote! block for every item of #[unidist::actor]; not split yet",
    ),
    (
        "crates/unidist-macros/src/remote.rs::expand_fn",
        "one quote! block for every item of #[unidist::remote]; not split yet",
    ),
];

/// Where a backend may be named (path prefixes): its own crate, the `BackendName` table, the
/// facade's registrations and the xtask backend table. Cargo manifests (members, features) are
/// not `.rs` files and are not scanned.
pub(crate) const NAMING_PLACES: &[&str] = &[
    "crates/unidist-pyseq/",
    "crates/unidist-pymp/",
    "crates/unidist-mpi/",
    "crates/unidist-config/src/backend_name.rs",
    "crates/unidist/src/backends.rs",
    "xtask/src/backend_table.rs",
];

/// Other files that may name a backend, with the reason.
pub(crate) const NAMES_ALLOWED: &[(&str, &str)] = &[
    (
        "fuzz/src/wire.rs",
        "the fuzz harness of the MPI receive path builds the MPI crate's errors",
    ),
    (
        "crates/unidist/tests/macros.rs",
        "the macro tests pick the sequential backend so that every call has run when it returns",
    ),
];

/// Directories never scanned: build output, version control, fuzz inputs.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "corpus", "regressions", "artifacts"];

/// Runs the checks on the repository; returns the process exit code.
pub(crate) fn tidy() -> i32 {
    let problems = check(&util::root());
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("tidy: ok");
        0
    } else {
        println!("tidy: {} problem(s)", problems.len());
        1
    }
}

/// Every problem found under `root`, as `path:line: what`.
pub(crate) fn check(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    collect(root, &mut files);
    files.sort();
    let patterns = name_patterns();
    let mut problems = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let Ok(text) = std::fs::read_to_string(&path) else {
            problems.push(format!("{rel}: cannot be read as UTF-8"));
            continue;
        };
        check_file(&rel, &text, &patterns, &mut problems);
    }
    problems
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) && !name.starts_with('.') {
                collect(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The backend names as code writes them: `"name"` and `BackendName::Variant`.
fn name_patterns() -> Vec<String> {
    let mut patterns = Vec::new();
    for name in backend_table::names() {
        patterns.push(format!("\"{name}\""));
        let mut variant = name.to_string();
        variant[..1].make_ascii_uppercase();
        patterns.push(format!("BackendName::{variant}"));
    }
    patterns
}

fn check_file(rel: &str, text: &str, patterns: &[String], problems: &mut Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    if !lines.first().is_some_and(|l| l.starts_with("//!")) {
        problems.push(format!(
            "{rel}:1: the file does not open with a `//!` line saying what lives there"
        ));
    }
    if rel.contains("src/") && !allowed(SIZE_ALLOWED, rel) {
        if lines.len() > MAX_FILE_LINES {
            problems.push(format!(
                "{rel}: {} lines, more than {MAX_FILE_LINES}: split it by concern",
                lines.len()
            ));
        }
        for (name, start, len) in functions(&lines) {
            if len > MAX_FN_LINES && !allowed(SIZE_ALLOWED, &format!("{rel}::{name}")) {
                problems.push(format!(
                    "{rel}:{}: fn {name} has {len} lines, more than {MAX_FN_LINES}",
                    start + 1
                ));
            }
        }
    }
    let may_name = NAMING_PLACES.iter().any(|p| rel.starts_with(p)) || allowed(NAMES_ALLOWED, rel);
    if !may_name {
        for (i, line) in lines.iter().enumerate() {
            let code = code_of(line);
            if let Some(p) = patterns.iter().find(|p| code.contains(p.as_str())) {
                problems.push(format!(
                    "{rel}:{}: names a backend ({p}) outside the backend tables; derive it from \
                     the table or ask `capabilities()`",
                    i + 1
                ));
            }
        }
    }
}

fn allowed(list: &[(&str, &str)], key: &str) -> bool {
    list.iter().any(|(k, _)| *k == key)
}

/// The line without its comment (a `//` outside a string literal, roughly: the scan does not
/// track strings across lines, which rustfmt'd code does not need).
fn code_of(line: &str) -> &str {
    let mut in_string = false;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '"' if prev != '\\' => in_string = !in_string,
            '/' if !in_string && prev == '/' => return &line[..i - 1],
            _ => {}
        }
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
    }
    line
}

/// The functions of a file: (name, index of the `fn` line, lines up to the closing brace at the
/// same indentation). Declarations without a body are skipped.
fn functions(lines: &[&str]) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let indent = &line[..line.len() - line.trim_start().len()];
        // Find the body's opening brace, or a `;` that ends a declaration.
        let mut end = None;
        for (i, l) in lines.iter().enumerate().skip(start) {
            let code = code_of(l).trim_end();
            if code.ends_with(';') && !code.contains('{') {
                break;
            }
            if code.contains('{') {
                // A body that closes on the same line (`fn f() {}`).
                if code.ends_with('}') {
                    end = Some(i);
                    break;
                }
                end = lines
                    .iter()
                    .enumerate()
                    .skip(i + 1)
                    .find(|(_, l)| l.strip_prefix(indent) == Some("}"))
                    .map(|(j, _)| j);
                break;
            }
        }
        if let Some(end) = end {
            found.push((name, start, end - start + 1));
        }
    }
    found
}

/// The name of the function a line starts, if it starts one.
fn fn_name(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    if rest.starts_with("pub(") {
        rest = rest.split_once(')')?.1.trim_start();
    }
    for qualifier in ["pub ", "const ", "async ", "unsafe ", "extern \"C\" "] {
        if let Some(r) = rest.strip_prefix(qualifier) {
            rest = r.trim_start();
        }
    }
    let rest = rest.strip_prefix("fn ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed when dropped.
    struct Fixture(PathBuf);

    impl Fixture {
        fn new(tag: &str) -> Fixture {
            let dir = std::env::temp_dir().join(format!("xtask-tidy-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("crates/demo/src")).expect("fixture dir");
            Fixture(dir)
        }

        fn write(&self, rel: &str, text: &str) {
            let path = self.0.join(rel);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("fixture dir");
            std::fs::write(path, text).expect("fixture file");
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_repository_is_tidy() {
        let problems = check(&util::root());
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_file_without_its_purpose_line_fails() {
        let f = Fixture::new("purpose");
        f.write("crates/demo/src/lib.rs", "//! A demo.\npub fn a() {}\n");
        f.write("crates/demo/src/bare.rs", "pub fn b() {}\n");
        let problems = check(&f.0);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("crates/demo/src/bare.rs:1:"),
            "{problems:?}"
        );
    }

    #[test]
    fn long_functions_and_files_fail() {
        let f = Fixture::new("size");
        let body = "    let x = 1;\n".repeat(MAX_FN_LINES);
        f.write(
            "crates/demo/src/lib.rs",
            &format!("//! A demo.\nfn long() {{\n{body}}}\n\nfn short() {{\n    let y = 2;\n}}\n"),
        );
        f.write(
            "crates/demo/src/big.rs",
            &format!("//! Big.\n{}", "const A: u8 = 1;\n".repeat(MAX_FILE_LINES)),
        );
        let problems = check(&f.0);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems
            .iter()
            .any(|p| p.contains("big.rs") && p.contains("lines, more than")));
        assert!(problems.iter().any(|p| p.contains("fn long has")));
    }

    #[test]
    fn backend_names_outside_the_tables_fail() {
        let f = Fixture::new("names");
        let name = backend_table::names()[0];
        f.write(
            "crates/demo/src/lib.rs",
            &format!(
                "//! A demo.\n// \"{name}\" in a comment is fine.\nconst N: &str = \"{name}\";\n"
            ),
        );
        f.write(
            "xtask/src/backend_table.rs",
            &format!("//! Table.\nconst N: &str = \"{name}\";\n"),
        );
        let problems = check(&f.0);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("crates/demo/src/lib.rs:3:"),
            "{problems:?}"
        );
    }

    #[test]
    fn functions_are_measured_to_their_closing_brace() {
        let lines = [
            "impl A {",
            "    pub(crate) fn one(",
            "        x: u8,",
            "    ) -> u8 {",
            "        x",
            "    }",
            "    fn decl(&self);",
            "    const fn two() {}",
            "}",
        ];
        let found = functions(&lines);
        assert_eq!(
            found,
            [("one".to_string(), 1, 5), ("two".to_string(), 7, 1)]
        );
        assert_eq!(
            code_of("let s = \"a // b\"; // note"),
            "let s = \"a // b\"; "
        );
    }
}
