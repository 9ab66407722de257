//! The domain's layers: the kernel (`src/kernel/`) at the bottom imports
//! nothing else of the crate, so that families and routers can build on it
//! without an import circle through it; a family (`src/<family>/`) uses
//! another family only through the named interface listed here.

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

/// The crate paths `text` refers to outside comments (`crate::x::…` → `x`).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push((index + 1, name));
        }
    }
    found
}

#[test]
fn the_kernel_imports_nothing_above_it() {
    let root = crate_dir();
    let mut files = Vec::new();
    rust_files(&root.join("src/kernel"), &mut files);
    assert!(
        files.iter().any(|path| path.ends_with("kernel/stream.rs")),
        "the kernel was not scanned: {files:?}"
    );
    let mut violations = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read source");
        for (line, name) in crate_paths(&text) {
            if name != "kernel" {
                let file = path.strip_prefix(&root).unwrap_or(path).display();
                violations.push(format!("{file}:{line}: crate::{name}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the kernel may import only itself (use `super::`):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_layer_check_sees_imports_and_skips_comments() {
    let text = "use crate::aggregate::Aggregate;\n// see crate::events\nlet x = crate::kernel::id::AccountId::nil(); // crate::no\n";
    assert_eq!(
        crate_paths(text),
        vec![(1, "aggregate".to_owned()), (3, "kernel".to_owned())]
    );
}

/// Every aggregate family, and what it may use of other families (beyond
/// the kernel, the decision context and the routers' `Aggregate`/`Event`).
/// `Context` methods other families define (`account`, `movement`,
/// `customer`, `project`, `bank_account`, `use_token`) need no import.
/// A family, and the items of it another family may name.
type Interface = (&'static str, &'static [&'static str]);

const FAMILIES: &[(&str, &[Interface])] = &[
    ("project", &[]),
    ("customer", &[]),
    ("account", &[("project", &["Environment"])]),
    ("transfer", &[("account", &["TransactionKind"])]),
    ("card", &[]),
    (
        "card_payin",
        &[
            ("account", &["TransactionKind"]),
            (
                "card",
                &[
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
            ("account", &["TransactionKind"]),
            ("bank_account", &["BankAccountInfo", "check_beneficiary_name"]),
        ],
    ),
    ("bank_payin", &[("account", &["TransactionKind"])]),
    ("file", &[]),
    ("fx_rate", &[]),
    ("consumer", &[("project", &["Environment"])]),
    ("deployment", &[("project", &["Environment"])]),
];

/// What `text` names of `family`'s module outside comments: the items after
/// `crate::<family>::`, a braced list read whole.
fn items_used_of(text: &str, family: &str) -> Vec<(usize, String)> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let needle = format!("crate::{family}::");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(&needle) {
        let start = from + at + needle.len();
        let line = code[..start].matches('\n').count() + 1;
        let rest = &code[start..];
        let names = if let Some(list) = rest.strip_prefix('{') {
            list.split('}').next().unwrap_or("")
        } else {
            rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("")
        };
        for name in names.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            found.push((line, name.to_owned()));
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
            let text = std::fs::read_to_string(path).expect("read source");
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
}
