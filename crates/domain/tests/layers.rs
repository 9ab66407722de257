//! The domain's layers: the kernel (`src/kernel/`) at the bottom imports
//! nothing else of the crate, so that families and routers can build on it
//! without an import circle through it.

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
