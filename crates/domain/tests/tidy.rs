//! The layering is a checked invariant: the domain crate stays pure. It may
//! depend only on a short list of pure crates, and its source may not reach
//! for files, sockets, processes, the environment, threads, the clock,
//! randomness or async. Time and new IDs come in with the command.
//!
//! The checks are plain text scans (no new dependencies); each has a test of
//! its own below proving it catches what it claims to.

use std::fmt;
use std::path::{Path, PathBuf};

/// The only crates the domain may depend on (normal dependencies).
/// `hmac` (RustCrypto, pure) keys the card-number fingerprints; `strum`
/// (a derive, no runtime code) names each command for logs and traces.
const ALLOWED_DEPENDENCIES: &[&str] = &[
    "serde",
    "postcard",
    "thiserror",
    "uuid",
    "sha2",
    "hex",
    "hmac",
    "strum",
];

/// Crates that must not appear even among dev-dependencies: the domain's own
/// tests need no async runtime, transport, or other layer of paycore.
fn forbidden_anywhere(name: &str) -> bool {
    name.starts_with("paycore")
        || name.starts_with("tokio")
        || name.starts_with("async-")
        || name.starts_with("async_")
        || name.starts_with("tonic")
        || name.starts_with("prost")
        || matches!(
            name,
            "futures" | "hyper" | "reqwest" | "sqlx" | "postgres" | "rand" | "getrandom" | "chrono"
        )
}

/// Text that means I/O, the clock, randomness or async in Rust source.
const FORBIDDEN_TEXT: &[(&str, &str)] = &[
    ("std::fs", "file system access"),
    ("std::net", "network access"),
    ("std::process", "process control"),
    ("std::env", "environment access"),
    ("std::thread", "threads"),
    ("SystemTime", "the wall clock"),
    ("Instant::now", "the clock"),
    ("now_v7", "a clock-based ID generated inside the domain"),
    ("new_v4", "a random ID generated inside the domain"),
    ("thread_rng", "randomness"),
    ("async fn", "async"),
    ("async move", "async"),
    (".await", "async"),
];

/// Identifiers that mean a forbidden crate is used (`tokio::spawn`, `use rand;`).
const FORBIDDEN_IDENTS: &[&str] = &[
    "tokio",
    "rand",
    "getrandom",
    "async_std",
    "async_trait",
    "futures",
    "tonic",
    "prost",
];

/// Modules of `std` that may not be imported, e.g. `use std::{fmt, fs};`.
const FORBIDDEN_STD_MODULES: &[&str] = &["fs", "net", "process", "env", "thread"];

#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

fn report(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("  {v}\n")).collect::<String>()
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// Cargo.toml
// ---------------------------------------------------------------------------

/// What kind of dependency table a section header opens, and the dependency
/// it names itself for the `[dependencies.foo]` form.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Section {
    Normal(Option<String>),
    Dev(Option<String>),
    Other,
}

fn section(header: &str) -> Section {
    let parts: Vec<&str> = header.split('.').map(|p| p.trim().trim_matches('"')).collect();
    // `target.'cfg(..)'.dependencies` and `target.x.dependencies.foo` count too.
    let parts = if parts.first() == Some(&"target") {
        let at = parts
            .iter()
            .position(|p| p.ends_with("dependencies"))
            .unwrap_or(parts.len());
        &parts[at.min(parts.len())..]
    } else {
        &parts[..]
    };
    let named = parts.get(1).map(|name| (*name).to_owned());
    match parts.first() {
        Some(&"dependencies") | Some(&"build-dependencies") => Section::Normal(named),
        Some(&"dev-dependencies") => Section::Dev(named),
        _ => Section::Other,
    }
}

/// Checks a manifest's dependency tables; `file` names it in the report.
fn check_manifest(file: &str, manifest: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut current = Section::Other;
    let mut depth: i32 = 0;
    let flag = |line: usize, name: &str, dev: bool, violations: &mut Vec<Violation>| {
        let bad = if dev {
            forbidden_anywhere(name)
        } else {
            !ALLOWED_DEPENDENCIES.contains(&name) || forbidden_anywhere(name)
        };
        if bad {
            violations.push(Violation {
                file: file.to_owned(),
                line,
                what: format!(
                    "{}dependency `{name}` is not allowed in the pure domain (allowed: {})",
                    if dev { "dev-" } else { "" },
                    ALLOWED_DEPENDENCIES.join(", ")
                ),
            });
        }
    };
    for (index, raw) in manifest.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if depth == 0 && line.starts_with('[') && !line.starts_with("[[") {
            let header = line.trim_start_matches('[').trim_end_matches(']');
            current = section(header);
            match &current {
                Section::Normal(Some(name)) => flag(line_no, name, false, &mut violations),
                Section::Dev(Some(name)) => flag(line_no, name, true, &mut violations),
                _ => {}
            }
            continue;
        }
        if line.starts_with("[[") {
            current = Section::Other;
            continue;
        }
        let at_top = depth == 0;
        depth += line.matches(['{', '[']).count() as i32 - line.matches(['}', ']']).count() as i32;
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().trim_matches('"');
        // A renamed dependency: `alias = { package = "tokio", ... }`.
        let renamed = value
            .split("package")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1));
        match &current {
            Section::Normal(None) | Section::Dev(None) if at_top => {
                let dev = matches!(current, Section::Dev(_));
                let name = key.split('.').next().unwrap_or(key).trim();
                flag(line_no, name, dev, &mut violations);
                if let Some(package) = renamed {
                    flag(line_no, package, dev, &mut violations);
                }
            }
            Section::Normal(Some(_)) | Section::Dev(Some(_)) if key == "package" => {
                let dev = matches!(current, Section::Dev(_));
                if let Some(package) = value.split('"').nth(1) {
                    flag(line_no, package, dev, &mut violations);
                }
            }
            _ => {}
        }
        if at_top && key == "build" && !matches!(current, Section::Normal(_) | Section::Dev(_)) {
            violations.push(Violation {
                file: file.to_owned(),
                line: line_no,
                what: "a build script runs arbitrary I/O at build time; the domain has none".into(),
            });
        }
    }
    violations
}

#[test]
fn domain_depends_only_on_pure_crates() {
    let path = crate_dir().join("Cargo.toml");
    let manifest = std::fs::read_to_string(&path).expect("read Cargo.toml");
    assert!(
        manifest.contains("name = \"paycore-domain\""),
        "{} is not the domain's manifest",
        path.display()
    );
    let violations = check_manifest("crates/domain/Cargo.toml", &manifest);
    assert!(
        violations.is_empty(),
        "the domain must stay pure:\n{}",
        report(&violations)
    );
}

#[test]
fn domain_has_no_build_script() {
    assert!(
        !crate_dir().join("build.rs").exists(),
        "crates/domain/build.rs: a build script runs arbitrary I/O at build time"
    );
}

#[test]
fn manifest_check_catches_impure_dependencies() {
    let manifest = r#"
[package]
name = "paycore-domain"
build = "build.rs"

[dependencies]
serde.workspace = true
uuid = { workspace = true, features = [
    "v4",
] }
tokio.workspace = true
async-trait = "0.1"
paycore-store = { path = "../store" }
stealth = { package = "tonic", version = "0.14" }
"hex" = "0.4"

[dependencies.prost]
version = "0.14"

[dependencies.innocent]
package = "reqwest"

[target.'cfg(unix)'.dependencies]
rustix = "1"

[build-dependencies]
cc = "1"

[dev-dependencies]
proptest.workspace = true
tokio = { version = "1", features = ["rt"] }

[features]
default = []
"#;
    let found: Vec<String> = check_manifest("Cargo.toml", manifest)
        .iter()
        .map(|v| format!("{}:{}", v.line, v.what.split(" is not").next().unwrap_or("")))
        .collect();
    assert_eq!(
        found,
        [
            "4:a build script runs arbitrary I/O at build time; the domain has none",
            "11:dependency `tokio`",
            "12:dependency `async-trait`",
            "13:dependency `paycore-store`",
            "14:dependency `stealth`",
            "14:dependency `tonic`",
            "17:dependency `prost`",
            "20:dependency `innocent`",
            "21:dependency `reqwest`",
            "24:dependency `rustix`",
            "27:dependency `cc`",
            "31:dev-dependency `tokio`",
        ],
    );
}

// ---------------------------------------------------------------------------
// Source
// ---------------------------------------------------------------------------

/// The code part of a line: without its `//` comment (doc comments included).
fn code_of(line: &str) -> &str {
    let mut in_string = false;
    let bytes = line.as_bytes();
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn identifiers(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
}

/// Checks one source file's text; `file` names it in the report.
fn check_source(file: &str, text: &str) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut in_block_comment = false;
    for (index, raw) in text.lines().enumerate() {
        let mut line = raw;
        if in_block_comment {
            match line.find("*/") {
                Some(end) => {
                    line = &line[end + 2..];
                    in_block_comment = false;
                }
                None => continue,
            }
        }
        let mut code = code_of(line).to_owned();
        if let Some(start) = code.find("/*") {
            if !code[start..].contains("*/") {
                in_block_comment = true;
            }
            code.truncate(start);
        }
        let mut add = |what: String| {
            violations.push(Violation {
                file: file.to_owned(),
                line: index + 1,
                what,
            })
        };
        for (pattern, meaning) in FORBIDDEN_TEXT {
            if code.contains(pattern) {
                add(format!("`{pattern}`: {meaning} has no place in the pure domain"));
            }
        }
        for ident in identifiers(&code) {
            if FORBIDDEN_IDENTS.contains(&ident) || ident.starts_with("paycore_") {
                add(format!(
                    "`{ident}`: the domain may not use this crate (I/O, async, randomness or another layer)"
                ));
            }
        }
        // `use std::{fmt, fs};` and `std::{io, net::TcpStream}`.
        if let Some(group) = code.split("std::{").nth(1) {
            let group = group.split('}').next().unwrap_or("");
            for module in group
                .split(',')
                .map(|m| m.split("::").next().unwrap_or("").trim())
            {
                if FORBIDDEN_STD_MODULES.contains(&module) {
                    add(format!("`std::{module}` has no place in the pure domain"));
                }
            }
        }
    }
    violations
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn domain_source_does_no_io_async_clock_or_randomness() {
    let root = crate_dir();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|path| path.strip_prefix(&root).unwrap_or(path).display().to_string())
        .collect();
    // Guard against a vacuous pass: the deciders are among the scanned files.
    for expected in [
        "src/lib.rs",
        "src/command.rs",
        "src/aggregate.rs",
        "src/events.rs",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} not scanned: {names:?}"
        );
    }
    let mut violations = Vec::new();
    for (path, name) in files.iter().zip(&names) {
        let text = std::fs::read_to_string(path).expect("read source");
        violations.extend(check_source(&format!("crates/domain/{name}"), &text));
    }
    assert!(
        violations.is_empty(),
        "the domain must stay pure (no I/O, async, clock or randomness):\n{}",
        report(&violations)
    );
}

#[test]
fn source_check_catches_impure_code() {
    let source = r#"//! No I/O, no async, no clock, no randomness: tokio and rand are not used.
use std::fs::File;
use std::{fmt, net::TcpStream};
use std::{collections::HashMap, env};
pub async fn load() {}
let now = std::time::SystemTime::now();
let t = Instant::now();
let id = Uuid::now_v7();
let id = Uuid::new_v4();
let x: u8 = rand::random();
tokio::spawn(async move { work().await });
use paycore_store::EventStore;
std::process::exit(1);
let url = "https://example.com"; std::thread::sleep(d);
/* a block comment mentioning tokio
   and std::fs is fine */
let operand = brand + randomness; // tokio in a trailing comment is fine
"#;
    let found: Vec<(usize, String)> = check_source("lib.rs", source)
        .into_iter()
        .map(|v| (v.line, v.what.split('`').nth(1).unwrap_or("").to_owned()))
        .collect();
    let lines = |line: usize| -> Vec<&str> {
        found
            .iter()
            .filter(|(l, _)| *l == line)
            .map(|(_, what)| what.as_str())
            .collect()
    };
    assert!(lines(1).is_empty(), "doc comments are not code: {:?}", lines(1));
    assert_eq!(lines(2), ["std::fs"]);
    assert_eq!(lines(3), ["std::net"]);
    assert_eq!(lines(4), ["std::env"]);
    assert_eq!(lines(5), ["async fn"]);
    assert_eq!(lines(6), ["SystemTime"]);
    assert_eq!(lines(7), ["Instant::now"]);
    assert_eq!(lines(8), ["now_v7"]);
    assert_eq!(lines(9), ["new_v4"]);
    assert_eq!(lines(10), ["rand"]);
    assert_eq!(lines(11), ["async move", ".await", "tokio"]);
    assert_eq!(lines(12), ["paycore_store"]);
    assert_eq!(lines(13), ["std::process"]);
    assert_eq!(lines(14), ["std::thread"]);
    for line in 15..=17 {
        assert!(lines(line).is_empty(), "line {line}: {:?}", lines(line));
    }
    assert_eq!(found.len(), 15, "{found:?}");
}
