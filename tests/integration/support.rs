//! Helpers shared by the integration tests: running the built binary and fresh directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

use fetchflow::metadata::Catalogue;
use sha2::{Digest, Sha256};

/// Runs `fetchflow` with `args` in `dir`, without colours, and waits for it.
pub(crate) fn fetchflow(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fetchflow"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Output bytes as text, for assertions and failure messages.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A new, empty directory unique to this process and call.
pub(crate) fn tempdir(label: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fetchflow-test-{label}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// SHA-256 of `org export` of every built-in table of the org at `dir/org.db`: equal before and
/// after a command proves the command wrote nothing.
pub(crate) fn org_checksum(dir: &Path) -> String {
    let mut hasher = Sha256::new();
    for entity in Catalogue::builtin().entity_names() {
        let output = fetchflow(dir, &["org", "export", entity, "--org", "org.db"]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        hasher.update(entity.as_bytes());
        hasher.update(&output.stdout);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
