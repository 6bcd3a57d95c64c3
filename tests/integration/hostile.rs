//! Hostile input: every one is refused with a clear, located diagnostic, quickly, in bounded
//! memory, and no input makes the loader or compiler panic.

use std::time::{Duration, Instant};

use fetchflow::compile::CompileContext;
use fetchflow::load::compile_path;
use fetchflow::metadata::Catalogue;

use super::diagnostics::{BASE, compile_text};
use super::support::tempdir;

/// Generous for a debug build on a loaded 2-core machine; release numbers are in the README.
const LIMIT: Duration = Duration::from_millis(200);

fn check_file(name: &str, bytes: &[u8]) -> (Vec<(&'static str, usize, usize, String)>, Duration) {
    let dir = tempdir("hostile");
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let catalogue = Catalogue::builtin();
    let context = CompileContext {
        catalogue: &catalogue,
        connections: None,
    };
    let started = Instant::now();
    let outcome = compile_path(&path, &context);
    let elapsed = started.elapsed();
    assert!(outcome.workflow.is_none(), "{name} compiled");
    let diagnostics = outcome
        .diagnostics
        .into_iter()
        .map(|d| (d.code, d.line, d.column, d.message))
        .collect();
    (diagnostics, elapsed)
}

#[test]
fn a_yaml_alias_bomb_is_refused_quickly() {
    let mut text = String::from("name: bomb\nvars:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..10 {
        let previous = level - 1;
        let refs = vec![format!("*a{previous}"); 10].join(", ");
        text.push_str(&format!("  a{level}: &a{level} [{refs}]\n"));
    }
    text.push_str("select: {fetchxml: '<fetch/>'}\nactions: [{delete: {}}]\n");
    let (diagnostics, elapsed) = check_file("bomb.yaml", text.as_bytes());
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].0, "yaml-limit", "{diagnostics:?}");
    assert!(elapsed < LIMIT, "{elapsed:?}");
}

#[test]
fn deep_nesting_is_refused_quickly() {
    let depth = 10_000;
    let text = format!(
        "name: deep\nvars:\n  x: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let (diagnostics, elapsed) = check_file("deep.yaml", text.as_bytes());
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(
        matches!(diagnostics[0].0, "yaml-limit" | "yaml-syntax"),
        "{diagnostics:?}"
    );
    assert_eq!(diagnostics[0].1, 3, "{diagnostics:?}");
    assert!(elapsed < LIMIT, "{elapsed:?}");

    let mut text = String::from("name: deep\nvars:\n  x:\n");
    for level in 0..200 {
        text.push_str(&format!("{}k{level}:\n", "  ".repeat(level + 2)));
    }
    let (diagnostics, _) = check_file("deep-block.yaml", text.as_bytes());
    assert_eq!(diagnostics[0].0, "yaml-limit", "{diagnostics:?}");
}

#[test]
fn a_ten_megabyte_file_is_refused_before_parsing() {
    let mut text = BASE.to_string();
    while text.len() < 10 * 1024 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let (diagnostics, elapsed) = check_file("big.yaml", text.as_bytes());
    assert_eq!(diagnostics[0].0, "file-too-large", "{diagnostics:?}");
    assert!(elapsed < LIMIT, "{elapsed:?}");
}

#[test]
fn invalid_utf8_is_located() {
    let mut bytes = BASE.as_bytes().to_vec();
    let at = BASE.find("West").unwrap();
    bytes[at + 1] = 0xff;
    let (diagnostics, elapsed) = check_file("latin1.yaml", &bytes);
    assert_eq!(diagnostics.len(), 1);
    let (code, line, column, message) = &diagnostics[0];
    assert_eq!(
        (*code, *line, *column),
        ("invalid-utf8", 6, 15),
        "{message}"
    );
    assert!(message.contains("0xff"), "{message}");
    assert!(elapsed < LIMIT, "{elapsed:?}");
}

#[test]
fn nul_bytes_are_located() {
    let text = BASE.replacen("West", "We\0st", 1);
    let (diagnostics, _) = check_file("nul.yaml", text.as_bytes());
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(
        (diagnostics[0].0, diagnostics[0].1, diagnostics[0].2),
        ("nul-byte", 6, 16)
    );
}

#[test]
fn fetchxml_with_a_dtd_or_entities_is_refused() {
    let laughs = "<!DOCTYPE fetch [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>";
    for prefix in [laughs, "<!DOCTYPE fetch SYSTEM \"file:///etc/passwd\">"] {
        let text = BASE.replacen("    <fetch>", &format!("    {prefix}\n    <fetch>"), 1);
        let started = Instant::now();
        let outcome = compile_text(&text);
        assert!(started.elapsed() < LIMIT);
        assert!(outcome.workflow.is_none());
        let dtd = outcome
            .diagnostics
            .iter()
            .find(|d| d.code == "fetchxml-dtd");
        let dtd = dtd.unwrap_or_else(|| panic!("{:?}", outcome.diagnostics));
        assert_eq!((dtd.line, dtd.column), (9, 5));
    }
}

/// A small deterministic generator, so a failure names a seed that reproduces it.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const FRAGMENTS: &[&str] = &[
    ":",
    "-",
    " ",
    "\n",
    "\t",
    "\"",
    "'",
    "{",
    "}",
    "[",
    "]",
    "&a",
    "*a",
    "!!str",
    "#",
    "|",
    ">",
    "{{",
    "}}",
    "{%",
    "%}",
    "<",
    ">",
    "/>",
    "&amp;",
    "<!DOCTYPE x>",
    "é",
    "\u{feff}",
    "null",
    "~",
    "0x1F",
    "1e999",
    "---\n",
    "\r\n",
    "\\",
    "record.",
    "vars.",
    "secret(",
    "<condition attribute=\"x\" operator=\"in\"/>",
];

fn mutate(rng: &mut XorShift, text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            1 => {
                let fragment = FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes();
                bytes.splice(at..at, fragment.iter().copied());
            }
            2 if at < bytes.len() => bytes[at] = (rng.next() & 0xff) as u8,
            3 => bytes.truncate(at),
            4 => {
                let end = (at + rng.below(80)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => {
                let end = (at + rng.below(20)).min(bytes.len());
                bytes[at..end].reverse();
            }
        }
    }
    bytes
}

#[test]
fn mutated_workflow_files_never_panic_and_every_position_is_in_the_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let mut seeds: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    seeds.push(BASE.to_string());
    let catalogue = Catalogue::builtin();
    let context = CompileContext {
        catalogue: &catalogue,
        connections: None,
    };
    let dir = tempdir("fuzz");
    let mut rng = XorShift(0x5eed_f00d_cafe_b0ba);
    let mut slowest = Duration::ZERO;
    for round in 0..1500 {
        let seed = &seeds[round % seeds.len()];
        let bytes = mutate(&mut rng, seed);
        let path = dir.join(format!("m{round}.yaml"));
        std::fs::write(&path, &bytes).unwrap();
        let started = Instant::now();
        let outcome =
            std::panic::catch_unwind(|| compile_path(&path, &context)).unwrap_or_else(|_| {
                panic!(
                    "panic on mutation {round}: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            });
        slowest = slowest.max(started.elapsed());
        let lines = outcome.source.text.lines().count().max(1) + 1;
        for diagnostic in &outcome.diagnostics {
            assert!(
                diagnostic.line >= 1 && diagnostic.line <= lines,
                "mutation {round}: {diagnostic:?}"
            );
            assert!(diagnostic.column >= 1);
            assert!(!diagnostic.message.is_empty());
            assert!(diagnostic.offset + diagnostic.len <= outcome.source.text.len());
        }
        let _ = std::fs::remove_file(&path);
    }
    assert!(slowest < LIMIT * 2, "slowest mutation took {slowest:?}");
}
