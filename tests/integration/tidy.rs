//! Code invariants that ARCHITECTURE.md states, checked as tests: every module says what it
//! owns, no placeholders or debugging macros in the product, and the core does no I/O.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn src_files() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

#[test]
fn every_module_starts_with_a_doc_line_saying_what_it_owns() {
    let missing: Vec<String> = src_files()
        .into_iter()
        .filter(|(_, text)| !text.starts_with("//!"))
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a `//!` line: {missing:?}"
    );
}

#[test]
fn no_placeholders_or_debugging_macros_in_src() {
    let forbidden = [
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("dbg", "!("),
    ];
    for (path, text) in src_files() {
        for word in forbidden {
            assert!(!text.contains(word), "{} contains {word}", path.display());
        }
    }
}

/// The core (model, compile, fetchxml, template, schedule, metadata, diagnostics, source) is
/// pure: it never touches files, the network, the environment or the clock.
#[test]
fn the_core_does_no_io() {
    let core = [
        "src/model/",
        "src/compile/",
        "src/fetchxml/",
        "src/template/",
        "src/schedule/",
        "src/metadata/",
        "src/diagnostics.rs",
        "src/source.rs",
        "src/engine/render.rs",
        "src/engine/vars.rs",
        "src/engine/convert.rs",
        // `callback/http.rs` is the one file of `callback` that talks to the network.
        "src/callback/mod.rs",
        "src/callback/hmac.rs",
        "src/callback/payload.rs",
        "src/callback/render.rs",
        "src/callback/backoff.rs",
        "src/callback/transport.rs",
    ];
    let forbidden = [
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "tokio",
        "reqwest",
        "rusqlite",
        "Utc::now",
        "SystemTime::now",
        "Instant::now",
        "crate::load",
        "crate::cli",
        "crate::config",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, text) in src_files() {
        let relative = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let test_file = relative.ends_with("/tests.rs")
            || relative.ends_with("_test.rs")
            || relative.ends_with("_tests.rs");
        if test_file || !core.iter().any(|prefix| relative.starts_with(prefix)) {
            continue;
        }
        // Tests inside a module may time themselves or read fixtures.
        let product: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for word in forbidden {
            assert!(
                !product.contains(word),
                "{relative} uses {word}: the core must stay pure"
            );
        }
    }
}
