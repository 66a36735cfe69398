//! Shared by the code index tests: real projects from PyPI source distributions, unpacked once
//! into the test cache, and the machine's newest Python for the `ast` reference.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The projects of the exactness acceptance test, pinned so that results are reproducible.
pub const PROJECTS: &[(&str, &str)] = &[
    ("Django", "5.1.4"),
    ("sympy", "1.13.3"),
    ("requests", "2.32.3"),
    ("flask", "3.0.3"),
    ("pytest", "8.3.3"),
];

pub fn cache_dir() -> PathBuf {
    let dir = std::env::var_os("PONDER_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ponder-test-cache")
        });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The unpacked source tree of `name==version`, downloaded with pip on first use. `Err` says why
/// it is unavailable (no registry access), for a loud skip.
pub fn project_tree(name: &str, version: &str) -> Result<PathBuf, String> {
    let cache = cache_dir();
    let trees = cache.join("code-trees");
    std::fs::create_dir_all(&trees).map_err(|e| e.to_string())?;
    let dest = trees.join(format!("{name}-{version}"));
    let done = trees.join(format!("{name}-{version}.done"));
    // Tests run as separate processes under nextest: a file lock keeps one unpacker per tree.
    let lock = std::fs::File::create(trees.join(format!("{name}-{version}.lock")))
        .map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    if done.exists() && dest.is_dir() {
        return Ok(dest);
    }
    let archive = ponder_repo::sdist::download(name, version, &cache.join("sdists"))
        .map_err(|e| format!("{e:#}"))?;
    ponder_repo::sdist::unpack(&archive, &dest).map_err(|e| format!("{e:#}"))?;
    std::fs::write(&done, b"").map_err(|e| e.to_string())?;
    Ok(dest)
}

/// The newest Python 3.12 or later on the machine (new enough for every project above).
pub fn reference_python() -> Result<PathBuf, String> {
    let found = ponder_env::Interpreters::discover();
    found
        .newest_at_least((3, 12))
        .map(|i| i.path.clone())
        .ok_or_else(|| "no Python 3.12 or newer found (pyenv, PATH or PONDER_PYTHONS)".to_string())
}

/// One definition as both sides print it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Def {
    pub file: String,
    pub start_line: u32,
    pub end_line: u32,
    pub kind: String,
    pub name: String,
    pub qualname: String,
}

/// What Python's `ast` finds under `root`: the definitions, and the files it could not parse.
pub fn ast_reference(python: &Path, root: &Path) -> (Vec<Def>, Vec<String>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ast_symbols.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(root)
        .output()
        .expect("run the ast reference");
    assert!(
        out.status.success(),
        "ast reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let defs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Def {
                file: v["file"].as_str().unwrap().to_string(),
                start_line: v["start_line"].as_u64().unwrap() as u32,
                end_line: v["end_line"].as_u64().unwrap() as u32,
                kind: v["kind"].as_str().unwrap().to_string(),
                name: v["name"].as_str().unwrap().to_string(),
                qualname: v["qualname"].as_str().unwrap().to_string(),
            }
        })
        .collect();
    let unparsed = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("UNPARSED ").map(str::to_string))
        .collect();
    (defs, unparsed)
}

pub fn skip(reason: &str) {
    eprintln!("SKIPPED: {reason}");
}
