//! The domain's layers, bottom up, and what each may import (`crate::x`):
//!
//! 1. the kernel (`src/kernel/`): only itself;
//! 2. the decision context (`src/context.rs`): only the kernel;
//! 3. the families (`src/<family>/`): the kernel, the context, and another
//!    family only through the named interface listed in [`FAMILIES`]; never
//!    the routers, nor anything else of the crate root;
//! 4. on top, the routers (`command.rs`, `aggregate.rs`, `events.rs`) and
//!    the views beside them (`TOP`), which may import anything.
//!
//! So there is no import circle among the domain's modules: nothing below
//! the routers names `Command`, `Event` or `Aggregate`.

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("read {}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// `text` without its comments (`//`, `///` and `//!` to the end of the
/// line), lines kept in place.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn line_at(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The items of a braced list (`{a, b::c, d}` → `a`, `b`, `d`): each
/// top-level entry's first path segment.
fn braced_heads(list: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut entry = String::new();
    for c in list.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.push(std::mem::take(&mut entry));
                continue;
            }
            _ => {}
        }
        entry.push(c);
    }
    heads.push(entry);
    heads
        .iter()
        .map(|entry| {
            entry
                .trim()
                .chars()
                .take_while(|c| is_ident(*c))
                .collect::<String>()
        })
        .filter(|head| !head.is_empty())
        .collect()
}

/// The modules of the crate root `text` refers to outside comments
/// (`crate::x::…` and `crate::{x, y::…}` → `x`, `y`), with their lines.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code = code_of(text);
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at + "crate::".len();
        let line = line_at(&code, start);
        let rest = &code[start..];
        if let Some(list) = rest.strip_prefix('{') {
            found.extend(braced_heads(list).into_iter().map(|head| (line, head)));
        } else {
            found.push((line, rest.chars().take_while(|c| is_ident(*c)).collect()));
        }
        from = start;
    }
    found
}

/// What `text` names of the crate root that `allowed` does not contain,
/// and any way around `crate::` to the root (`super::super::`).
fn violations_in(text: &str, allowed: &[&str]) -> Vec<(usize, String)> {
    let mut violations: Vec<(usize, String)> = crate_paths(text)
        .into_iter()
        .filter(|(_, name)| !allowed.contains(&name.as_str()))
        .map(|(line, name)| (line, format!("crate::{name}")))
        .collect();
    let code = code_of(text);
    for (at, _) in code.match_indices("super::super") {
        violations.push((line_at(&code, at), "super::super".to_owned()));
    }
    violations.sort();
    violations
}

fn check_layer(files: &[PathBuf], allowed: &[&str], violations: &mut Vec<String>) {
    let root = crate_dir();
    for path in files {
        for (line, name) in violations_in(&read(path), allowed) {
            let file = path.strip_prefix(&root).unwrap_or(path).display();
            violations.push(format!("{file}:{line}: {name}"));
        }
    }
}

/// The routers: nothing below them may name them.
const ROUTERS: &[&str] = &["command", "aggregate", "events"];

/// The modules of the top layer besides the routers: the crate root and the
/// views over the routers and families.
const TOP: &[&str] = &["lib", "history", "footprint", "sandbox_network"];

#[test]
fn every_module_of_the_crate_root_has_a_layer() {
    let src = crate_dir().join("src");
    let families: Vec<&str> = FAMILIES.iter().map(|(family, _)| *family).collect();
    let entries = std::fs::read_dir(&src).unwrap_or_else(|error| panic!("read {}: {error}", src.display()));
    let mut unplaced = Vec::new();
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_owned();
        let placed = name == "kernel"
            || name == "context"
            || families.contains(&name.as_str())
            || ROUTERS.contains(&name.as_str())
            || TOP.contains(&name.as_str());
        if !placed {
            unplaced.push(path.display().to_string());
        }
    }
    assert!(
        unplaced.is_empty(),
        "place each module in a layer (tests/layers.rs: FAMILIES, ROUTERS or TOP): {unplaced:?}"
    );
}

#[test]
fn the_kernel_imports_nothing_above_it() {
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src/kernel"), &mut files);
    assert!(
        files.iter().any(|path| path.ends_with("kernel/stream.rs")),
        "the kernel was not scanned: {files:?}"
    );
    let mut violations = Vec::new();
    check_layer(&files, &["kernel"], &mut violations);
    assert!(
        violations.is_empty(),
        "the kernel may import only itself (use `super::`):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_decision_context_imports_only_the_kernel() {
    let mut violations = Vec::new();
    check_layer(
        &[crate_dir().join("src/context.rs")],
        &["kernel"],
        &mut violations,
    );
    assert!(
        violations.is_empty(),
        "the decision context may import only the kernel (no family, no router):\n{}",
        violations.join("\n")
    );
}

#[test]
fn families_import_only_the_kernel_the_context_and_families() {
    let mut allowed = vec!["kernel", "context"];
    allowed.extend(FAMILIES.iter().map(|(family, _)| *family));
    let mut violations = Vec::new();
    for (family, _) in FAMILIES {
        let mut files = Vec::new();
        rust_files(&crate_dir().join("src").join(family), &mut files);
        assert!(!files.is_empty(), "family {family} has no module");
        check_layer(&files, &allowed, &mut violations);
    }
    assert!(
        violations.is_empty(),
        "a family may import the kernel, the decision context and other families' interfaces, \
         never a router ({ROUTERS:?}) or the rest of the crate root:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_layer_check_sees_imports_and_skips_comments() {
    let text = "use crate::aggregate::Aggregate;\n// see crate::events\nlet x = crate::kernel::id::AccountId::nil(); // crate::no\nuse crate::{\n    events::Event,\n    kernel::{id, money},\n};\n";
    assert_eq!(
        crate_paths(text),
        vec![
            (1, "aggregate".to_owned()),
            (3, "kernel".to_owned()),
            (4, "events".to_owned()),
            (4, "kernel".to_owned())
        ]
    );
}

/// The checks fail on each kind of violation they exist for.
#[test]
fn the_layer_checks_catch_violations() {
    let family = ["kernel", "context", "account"];
    for router in [
        "use crate::aggregate::Aggregate;",
        "use crate::events::Event;",
        "use crate::command::Command;",
    ] {
        assert_eq!(violations_in(router, &family).len(), 1, "{router}");
    }
    assert_eq!(
        violations_in("fn f(e: &crate::events::Event) {}", &family),
        vec![(1, "crate::events".to_owned())]
    );
    assert_eq!(
        violations_in("use crate::{context::Context, command::Lookup};", &family),
        vec![(1, "crate::command".to_owned())]
    );
    assert_eq!(
        violations_in("use super::super::aggregate::Aggregate;", &family),
        vec![(1, "super::super".to_owned())]
    );
    assert_eq!(violations_in("use crate::history::AsOf;", &family).len(), 1);
    // The context and the kernel: no family, no router.
    assert_eq!(
        violations_in("use crate::account::Account;", &["kernel"]).len(),
        1
    );
    assert_eq!(
        violations_in("use crate::aggregate::Aggregate;", &["kernel"]).len(),
        1
    );
    assert_eq!(
        violations_in("use crate::context::Context;", &["kernel"]).len(),
        1
    );
    // What is allowed passes.
    assert!(
        violations_in(
            "use crate::kernel::id::AccountId;\nuse crate::context::Context;\nuse super::events;",
            &family
        )
        .is_empty()
    );
}

/// Every aggregate family, and what it may use of other families (beyond
/// the kernel and the decision context). `Context` methods other families
/// define (`account`, `movement`, `customer`, `project`, `file`, `card`,
/// `bank_account`, `use_token`, `fx_rate`, `create_project`) need no
/// import; a family's event enum (`AccountEvent`, …) is named where a
/// decider emits that family's events through such a method.
/// A family, and the items of it another family may name.
type Interface = (&'static str, &'static [&'static str]);

const FAMILIES: &[(&str, &[Interface])] = &[
    ("project", &[]),
    ("customer", &[]),
    ("account", &[("project", &["Environment"])]),
    (
        "transfer",
        &[("account", &["Account", "AccountEvent", "TransactionKind"])],
    ),
    ("card", &[]),
    (
        "card_payin",
        &[
            ("account", &["AccountEvent", "TransactionKind"]),
            (
                "card",
                &[
                    "CardEvent",
                    "CardInfo",
                    "CardSource",
                    "TokenUse",
                    "CardNumber",
                    "Expiry",
                    "YearMonth",
                ],
            ),
        ],
    ),
    ("bank_account", &[]),
    (
        "bank_payout",
        &[
            ("account", &["AccountEvent", "TransactionKind"]),
            (
                "bank_account",
                &["BankAccount", "BankAccountInfo", "check_beneficiary_name"],
            ),
        ],
    ),
    ("bank_payin", &[("account", &["AccountEvent", "TransactionKind"])]),
    ("file", &[]),
    ("fx_rate", &[]),
    ("consumer", &[]),
    ("deployment", &[("project", &["Environment", "ProjectEvent"])]),
];

/// What `text` names of `family`'s module outside comments: the items after
/// `crate::<family>::`, a braced list read whole.
fn items_used_of(text: &str, family: &str) -> Vec<(usize, String)> {
    let code = code_of(text);
    let needle = format!("crate::{family}::");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(&needle) {
        let start = from + at + needle.len();
        let line = line_at(&code, start);
        let rest = &code[start..];
        let names = if let Some(list) = rest.strip_prefix('{') {
            list.split('}').next().unwrap_or("")
        } else {
            rest.split(|c: char| !is_ident(c)).next().unwrap_or("")
        };
        for name in names.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            found.push((line, name.to_owned()));
        }
        from = start;
    }
    // `crate::{family::Item, …}`: the same, one level into a braced list.
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::{") {
        let start = from + at + "crate::{".len();
        let line = line_at(&code, start);
        let prefix = format!("{family}::");
        let list = code[start..].split('}').next().unwrap_or("");
        for entry in list.split(',').map(str::trim) {
            if let Some(item) = entry.strip_prefix(&prefix) {
                found.push((line, item.trim_start_matches('{').trim().to_owned()));
            }
        }
        from = start;
    }
    found
}

#[test]
fn families_use_each_other_only_through_named_interfaces() {
    let root = crate_dir();
    let mut violations = Vec::new();
    for (family, allowed) in FAMILIES {
        let mut files = Vec::new();
        rust_files(&root.join("src").join(family), &mut files);
        assert!(!files.is_empty(), "family {family} has no module");
        for path in &files {
            let text = read(path);
            for (other, _) in FAMILIES.iter().filter(|(other, _)| other != family) {
                let interface = allowed
                    .iter()
                    .find(|(name, _)| name == other)
                    .map_or(&[][..], |(_, items)| items);
                for (line, item) in items_used_of(&text, other) {
                    if !interface.contains(&item.as_str()) {
                        let file = path.strip_prefix(&root).unwrap_or(path).display();
                        violations.push(format!("{file}:{line}: crate::{other}::{item}"));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "a family may use another only through its named interface (see FAMILIES):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_family_check_reads_paths_and_lists() {
    let text = "use crate::card::{CardInfo, CardSource};\n// crate::card::Secret\nlet kind = crate::account::TransactionKind::Magic;\nuse crate::card::{\n    TokenUse,\n};\n";
    assert_eq!(
        items_used_of(text, "card"),
        vec![
            (1, "CardInfo".to_owned()),
            (1, "CardSource".to_owned()),
            (4, "TokenUse".to_owned())
        ]
    );
    assert_eq!(
        items_used_of(text, "account"),
        vec![(3, "TransactionKind".to_owned())]
    );
    assert_eq!(
        items_used_of("use crate::{account::Account, kernel::id};", "account"),
        vec![(1, "Account".to_owned())]
    );
}
