//! Finding CPython interpreters on this machine, by minor version.
//!
//! Sources, in priority order: `PONDER_PYTHONS` (colon-separated interpreter paths or directories
//! holding `bin/python`), the pyenv versions folder (`$PYENV_ROOT`, else `~/.pyenv`), and
//! `pythonX.Y` executables on `PATH`. Every candidate is verified by running it, so a stale
//! symlink or a pyenv shim that refuses to dispatch never counts; nothing is cached on disk.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::EnvError;

/// One verified CPython interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interpreter {
    /// (major, minor, micro) as the interpreter itself reported it.
    pub version: (u32, u32, u32),
    /// The path it was found at (not canonicalised: a venv made from it points here).
    pub path: PathBuf,
    /// Where it came from: "PONDER_PYTHONS", "pyenv" or "PATH".
    pub source: String,
}

impl Interpreter {
    /// "3.11.7".
    pub fn version_string(&self) -> String {
        let (a, b, c) = self.version;
        format!("{a}.{b}.{c}")
    }

    /// "3.11".
    pub fn minor_string(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }

    /// (major, minor).
    pub fn minor(&self) -> (u32, u32) {
        (self.version.0, self.version.1)
    }
}

impl fmt::Display for Interpreter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CPython {} at {} ({})",
            self.version_string(),
            self.path.display(),
            self.source
        )
    }
}

/// The interpreters found by one discovery, best first within each minor version.
#[derive(Debug, Clone, Default)]
pub struct Interpreters {
    found: Vec<Interpreter>,
    /// Candidates that did not verify, with the reason (for diagnostics).
    rejected: Vec<(PathBuf, String)>,
}

/// Parses "3.9", "3.9.18" or "python3.9" into (major, minor).
pub fn parse_minor(text: &str) -> Option<(u32, u32)> {
    let t = text.trim().trim_start_matches("python");
    let mut parts = t.split('.');
    let major = parts.next()?.trim().parse().ok()?;
    let minor = parts.next()?.trim().parse().ok()?;
    Some((major, minor))
}

/// Where discovery looks; [`DiscoveryConfig::from_env`] reads the process environment.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryConfig {
    /// The value of `PONDER_PYTHONS`.
    pub ponder_pythons: Option<OsString>,
    /// The pyenv root (`$PYENV_ROOT`, else `~/.pyenv`).
    pub pyenv_root: Option<PathBuf>,
    /// The value of `PATH`.
    pub path: Option<OsString>,
}

impl DiscoveryConfig {
    pub fn from_env() -> DiscoveryConfig {
        let pyenv_root = match std::env::var_os("PYENV_ROOT") {
            Some(root) if !root.is_empty() => Some(PathBuf::from(root)),
            _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")),
        };
        DiscoveryConfig {
            ponder_pythons: std::env::var_os("PONDER_PYTHONS"),
            pyenv_root,
            path: std::env::var_os("PATH"),
        }
    }
}

impl Interpreters {
    /// Looks for interpreters in `PONDER_PYTHONS`, pyenv and `PATH` (see the module doc).
    pub fn discover() -> Interpreters {
        Interpreters::discover_with(&DiscoveryConfig::from_env())
    }

    /// Discovery with explicit locations instead of the process environment.
    pub fn discover_with(config: &DiscoveryConfig) -> Interpreters {
        let mut candidates: Vec<(PathBuf, &'static str)> = Vec::new();
        if let Some(list) = &config.ponder_pythons {
            for entry in std::env::split_paths(list) {
                if entry.as_os_str().is_empty() {
                    continue;
                }
                candidates.push((interpreter_in(&entry), "PONDER_PYTHONS"));
            }
        }
        if let Some(root) = &config.pyenv_root {
            for path in pyenv_candidates(root) {
                candidates.push((path, "pyenv"));
            }
        }
        if let Some(path) = &config.path {
            for path in path_candidates(path) {
                candidates.push((path, "PATH"));
            }
        }
        Interpreters::from_candidates(candidates)
    }

    /// Verifies the given paths (files, or directories holding `bin/python`) and nothing else.
    pub fn from_paths<I: IntoIterator<Item = PathBuf>>(paths: I) -> Interpreters {
        Interpreters::from_candidates(
            paths
                .into_iter()
                .map(|p| (interpreter_in(&p), "given"))
                .collect(),
        )
    }

    fn from_candidates(candidates: Vec<(PathBuf, &'static str)>) -> Interpreters {
        let mut out = Interpreters::default();
        let mut seen = BTreeSet::new();
        // pyenv lists every patch release; within one source prefer the newest patch.
        let mut verified: Vec<(usize, Interpreter)> = Vec::new();
        for (rank, (path, source)) in candidates.into_iter().enumerate() {
            let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if !seen.insert(key) {
                continue;
            }
            match probe(&path) {
                Ok(version) => verified.push((
                    rank,
                    Interpreter {
                        version,
                        path,
                        source: source.to_string(),
                    },
                )),
                Err(reason) => out.rejected.push((path, reason)),
            }
        }
        let source_rank = |s: &str| match s {
            "PONDER_PYTHONS" | "given" => 0,
            "pyenv" => 1,
            _ => 2,
        };
        verified.sort_by(|(ra, a), (rb, b)| {
            a.minor()
                .cmp(&b.minor())
                .then(source_rank(&a.source).cmp(&source_rank(&b.source)))
                .then(b.version.2.cmp(&a.version.2))
                .then(ra.cmp(rb))
        });
        out.found = verified.into_iter().map(|(_, i)| i).collect();
        out
    }

    /// Every verified interpreter, ordered by version; the preferred one of a minor comes first.
    pub fn all(&self) -> &[Interpreter] {
        &self.found
    }

    /// Candidates that were looked at but did not run as CPython, with the reason.
    pub fn rejected(&self) -> &[(PathBuf, String)] {
        &self.rejected
    }

    /// The preferred interpreter for a minor version such as "3.9" (a patch part is ignored).
    pub fn find(&self, version: &str) -> Option<&Interpreter> {
        let minor = parse_minor(version)?;
        self.found.iter().find(|i| i.minor() == minor)
    }

    /// Like [`Interpreters::find`], but a missing version is an error that lists what exists
    /// and how to add one. `needed_by` names who asked ("django/django 1.7", "the recipe").
    pub fn require(&self, version: &str, needed_by: &str) -> Result<&Interpreter, EnvError> {
        if parse_minor(version).is_none() {
            return Err(EnvError::InvalidRecipe(format!(
                "python version {version:?} (needed by {needed_by}) is not of the form X.Y"
            )));
        }
        self.find(version).ok_or_else(|| EnvError::MissingPython {
            wanted: version.trim().to_string(),
            needed_by: needed_by.to_string(),
            found: self.summary(),
        })
    }

    /// The newest interpreter at or above `min` (major, minor).
    pub fn newest_at_least(&self, min: (u32, u32)) -> Option<&Interpreter> {
        let mut best: Option<&Interpreter> = None;
        for i in &self.found {
            if i.minor() < min {
                continue;
            }
            // The first of each minor is the preferred one; later ones of the same minor lose.
            match best {
                Some(b) if b.minor() >= i.minor() => {}
                _ => best = Some(i),
            }
        }
        best
    }

    /// "2.7.18, 3.6.15, 3.9.18" (one per minor version), or "none".
    pub fn summary(&self) -> String {
        let mut seen = BTreeSet::new();
        let list: Vec<String> = self
            .found
            .iter()
            .filter(|i| seen.insert(i.minor()))
            .map(|i| i.version_string())
            .collect();
        if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        }
    }
}

/// An entry of `PONDER_PYTHONS` may be the interpreter itself or a prefix directory.
fn interpreter_in(entry: &Path) -> PathBuf {
    if entry.is_dir() {
        for name in ["bin/python", "bin/python3", "python"] {
            let p = entry.join(name);
            if p.is_file() {
                return p;
            }
        }
        return entry.join("bin/python");
    }
    entry.to_path_buf()
}

fn pyenv_candidates(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join("versions")) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/python"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// `pythonX.Y` files on PATH. pyenv's shim directory is left out: its shims only dispatch to
/// versions already found under the pyenv root, or fail.
fn path_candidates(path: &OsStr) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::env::split_paths(path) {
        if dir.components().any(|c| c.as_os_str() == "shims") {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.strip_prefix("python")
                    .and_then(parse_minor_exact)
                    .is_some()
            })
            .map(|e| e.path())
            .collect();
        names.sort();
        out.extend(names);
    }
    out
}

/// "3.9" exactly (no suffix such as "3.9-config" or "3.9m").
fn parse_minor_exact(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once('.')?;
    if a.is_empty() || b.is_empty() || !a.chars().chain(b.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Works on Python 2.7 as well as 3.x: no f-strings, no `sys.implementation`.
const PROBE: &str = "import sys, platform; sys.stdout.write('%d %d %d %s' % \
                     (sys.version_info[0], sys.version_info[1], sys.version_info[2], \
                     platform.python_implementation()))";

const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the interpreter and returns its version, or why it does not count.
pub fn probe(path: &Path) -> Result<(u32, u32, u32), String> {
    if !path.is_file() {
        return Err("not a file".to_string());
    }
    let mut child = Command::new(path)
        .args(["-E", "-c", PROBE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not answer within {}s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    if !status.success() {
        return Err(format!("exited with {status}"));
    }
    let parts: Vec<&str> = text.split_whitespace().collect();
    match parts.as_slice() {
        [a, b, c, "CPython"] => match (a.parse(), b.parse(), c.parse()) {
            (Ok(a), Ok(b), Ok(c)) => Ok((a, b, c)),
            _ => Err(format!("unexpected version answer {text:?}")),
        },
        [_, _, _, other] => Err(format!("{other} is not CPython")),
        _ => Err(format!("unexpected version answer {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minor_versions() {
        assert_eq!(parse_minor("3.9"), Some((3, 9)));
        assert_eq!(parse_minor(" 3.10.4 "), Some((3, 10)));
        assert_eq!(parse_minor("python2.7"), Some((2, 7)));
        assert_eq!(parse_minor("3"), None);
        assert_eq!(parse_minor("x.y"), None);
        assert_eq!(parse_minor_exact("3.9"), Some((3, 9)));
        assert_eq!(parse_minor_exact("3.9-config"), None);
        assert_eq!(parse_minor_exact("3.9m"), None);
    }
}
