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
//!
//! The command router stays a router: `command.rs` names no family item but
//! the families' command enums, no stream but the caller's project and the
//! idempotency record, and calls no decider itself; every family has its
//! `<Family>Command` in `<family>/command.rs` with its `FamilyCommand` impl
//! and a `Command` variant. And each module has one path: the crate root
//! re-exports items, never a module (`pub use kernel::money;` fails).

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
/// define (`account`, `movement`, `pending_change`, `customer`, `project`, `file`, `card`,
/// `bank_account`, `use_token`, `fx_rate`, `create_project`,
/// `active_institution`, `aggregation_connection`,
/// `running_aggregation_import`) need no
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
        &[(
            "account",
            &["Account", "AccountEvent", "TransactionKind", "PendingPhase"],
        )],
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
    // Open banking: activations (`Context::active_institution`), then
    // connections, imports (reading a connection through
    // `Context::aggregation_connection`) and aggregated accounts (writing
    // the connection's accounts found, checking the import a batch names
    // through `Context::running_aggregation_import`).
    ("institution", &[]),
    ("aggregation_connection", &[]),
    (
        "aggregation_import",
        &[(
            "aggregation_connection",
            &["ActionRequiredReason", "ConnectionStatus"],
        )],
    ),
    (
        "aggregated_account",
        &[
            (
                "aggregation_connection",
                &[
                    "AggregationConnection",
                    "AggregationConnectionAccountsFound",
                    "AggregationConnectionEvent",
                    "ConnectionStatus",
                ],
            ),
            (
                "aggregation_import",
                &["HISTORY_LIMIT_DAYS", "oldest_history_date"],
            ),
        ],
    ),
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

// ------------------------------------------------------------ the command router

/// The name of a family's command enum (`transfer` →
/// `TransferCommand`).
fn command_type_of(family: &str) -> String {
    let camel: String = family
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    format!("{camel}Command")
}

/// The streams the router names by itself: the caller's project (read by
/// every command) and the idempotency key's record.
const ROUTER_STREAMS: &[&str] = &["Project", "Idempotency"];

/// What in the command router's `text` is a family's logic rather than
/// dispatch: a family item other than its command enum, a stream other than
/// the router's own, or a decider called directly on the context.
fn family_logic_in_router(text: &str) -> Vec<(usize, String)> {
    let code = code_of(text);
    let mut found = Vec::new();
    for (family, _) in FAMILIES {
        let command = command_type_of(family);
        for (line, item) in items_used_of(text, family) {
            if item != command {
                found.push((line, format!("crate::{family}::{item}")));
            }
        }
    }
    for (at, _) in code.match_indices("StreamRef::") {
        let variant: String = code[at + "StreamRef::".len()..]
            .chars()
            .take_while(|c| is_ident(*c))
            .collect();
        if !ROUTER_STREAMS.contains(&variant.as_str()) {
            found.push((line_at(&code, at), format!("StreamRef::{variant}")));
        }
    }
    for (at, _) in code.match_indices("ctx.") {
        found.push((line_at(&code, at), "a decider called on the context".to_owned()));
    }
    found.sort();
    found
}

#[test]
fn the_command_router_only_dispatches_and_keeps_idempotency() {
    let text = read(&crate_dir().join("src/command.rs"));
    let logic = family_logic_in_router(&text);
    assert!(
        logic.is_empty(),
        "src/command.rs routes each command to its family (`FamilyCommand`) and keeps \
         idempotency; what a command reads and decides belongs in <family>/command.rs:\n{logic:?}"
    );
}

#[test]
fn every_family_has_its_command_enum_and_a_router_variant() {
    let root = crate_dir().join("src");
    let router = code_of(&read(&root.join("command.rs")));
    let mut missing = Vec::new();
    for (family, _) in FAMILIES {
        let command = command_type_of(family);
        let module = code_of(&read(&root.join(family).join("command.rs")));
        if !module.contains(&format!("pub enum {command}")) {
            missing.push(format!("src/{family}/command.rs: pub enum {command}"));
        }
        if !module.contains(&format!("FamilyCommand<E> for {command}")) {
            missing.push(format!(
                "src/{family}/command.rs: impl FamilyCommand<E> for {command}"
            ));
        }
        if !router.contains(&format!("({command})")) {
            missing.push(format!(
                "src/command.rs: a line `Variant({command})` in command_families!"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "each family owns its commands:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_router_check_catches_family_logic() {
    let dispatch = "use crate::transfer::TransferCommand;\nself.command.family().decide(&ctx)\nStreamRef::Project(p); StreamRef::Idempotency(p, k);";
    assert!(family_logic_in_router(dispatch).is_empty());
    assert_eq!(
        family_logic_in_router("use crate::card_payin::NewRefund;"),
        vec![(1, "crate::card_payin::NewRefund".to_owned())]
    );
    assert_eq!(
        family_logic_in_router("streams.push(StreamRef::Account(*id)); // StreamRef::Card"),
        vec![(1, "StreamRef::Account".to_owned())]
    );
    assert_eq!(
        family_logic_in_router("\nCommand::Transfer(c) => ctx.create_transfer(c),").len(),
        1
    );
    assert_eq!(command_type_of("card_payin"), "CardPayinCommand");
    assert_eq!(command_type_of("fx_rate"), "FxRateCommand");
}

// ------------------------------------------------------------ the crate root

/// The paths `pub use` statements of `text` re-export (`pub use a::{b,
/// c::d};` → `a::b`, `a::c::d`), with their lines.
fn reexported_paths(text: &str) -> Vec<(usize, String)> {
    fn expand(prefix: &str, list: &str, out: &mut Vec<String>) {
        let mut depth = 0;
        let mut entry = String::new();
        let mut entries = Vec::new();
        for c in list.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    entries.push(std::mem::take(&mut entry));
                    continue;
                }
                _ => {}
            }
            entry.push(c);
        }
        entries.push(entry);
        for entry in entries {
            // `a::b as c` re-exports the module `a::b` all the same.
            let entry = entry.split(" as ").next().unwrap_or("");
            let entry: String = entry.split_whitespace().collect();
            if entry.is_empty() {
                continue;
            }
            match entry.split_once("::{") {
                Some((head, rest)) => expand(
                    &format!("{prefix}{head}::"),
                    rest.strip_suffix('}').unwrap_or(rest),
                    out,
                ),
                None => out.push(format!("{prefix}{entry}")),
            }
        }
    }
    let code = code_of(text);
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("pub use ") {
        let start = from + at + "pub use ".len();
        let line = line_at(&code, start);
        let statement = code[start..].split(';').next().unwrap_or("");
        let mut paths = Vec::new();
        expand("", statement, &mut paths);
        found.extend(paths.into_iter().map(|path| (line, path)));
        from = start;
    }
    found
}

/// The re-exported paths of `text` that name a module of the crate (a
/// module alias such as `pub use kernel::money;`), `is_module` telling which
/// paths are modules.
fn module_aliases(text: &str, is_module: impl Fn(&str) -> bool) -> Vec<(usize, String)> {
    reexported_paths(text)
        .into_iter()
        .filter(|(_, path)| !path.ends_with('*') && is_module(path))
        .collect()
}

/// Whether `path` (`kernel::money`) names a module file of the crate.
fn is_crate_module(path: &str) -> bool {
    let relative = path.trim_start_matches("crate::").replace("::", "/");
    let src = crate_dir().join("src");
    src.join(format!("{relative}.rs")).is_file() || src.join(&relative).join("mod.rs").is_file()
}

#[test]
fn the_crate_root_has_no_module_path_aliases() {
    let aliases = module_aliases(&read(&crate_dir().join("src/lib.rs")), is_crate_module);
    assert!(
        aliases.is_empty(),
        "a module has one path (`paycore_domain::kernel::money`, `project::api_key`); \
         src/lib.rs re-exports only items: {aliases:?}"
    );
}

#[test]
fn the_alias_check_catches_module_reexports() {
    let text = "pub use kernel::{bank, error::DomainError};\npub use project::api_key as keys;\npub use kernel::id::*;\npub use command::{Command, decide};\n";
    assert_eq!(
        reexported_paths(text),
        vec![
            (1, "kernel::bank".to_owned()),
            (1, "kernel::error::DomainError".to_owned()),
            (2, "project::api_key".to_owned()),
            (3, "kernel::id::*".to_owned()),
            (4, "command::Command".to_owned()),
            (4, "command::decide".to_owned()),
        ]
    );
    assert_eq!(
        module_aliases(text, is_crate_module),
        vec![(1, "kernel::bank".to_owned()), (2, "project::api_key".to_owned())]
    );
    assert!(is_crate_module("customer::identity"));
    assert!(!is_crate_module("command::decide"));
}
