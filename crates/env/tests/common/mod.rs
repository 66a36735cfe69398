//! Shared helpers of the environment tests: a real sandbox, per-test stores, and a persistent
//! download cache so repeated runs do not fetch the same packages again.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ponder_env::{
    BaseEnv, EnvError, EnvRecipe, EnvStore, Interpreter, Interpreters, Layer, LayerOptions,
};
use ponder_sandbox::{AllowUnconfined, Sandbox};

/// The real bubblewrap sandbox, or `None` after printing why the test is skipped.
pub fn sandbox() -> Option<Sandbox> {
    match Sandbox::detect(AllowUnconfined::No) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("SKIPPED: no working sandbox: {e}");
            None
        }
    }
}

/// Tools (uv, virtualenv) and pip/uv download caches shared by all tests and runs:
/// `PONDER_TEST_CACHE`, else a folder in the target directory.
pub fn shared_cache() -> PathBuf {
    match std::env::var_os("PONDER_TEST_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("ponder-env-test-cache"),
    }
}

/// A fresh temporary folder outside /tmp (the sandbox gives commands a private /tmp, so
/// anything a build must see has to live elsewhere).
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("create target tmp dir");
    tempfile::Builder::new()
        .prefix(&format!("ponder-env-{tag}-"))
        .tempdir_in(base)
        .expect("create temp dir")
}

/// A store rooted in `root` that shares tools and downloads with the other tests.
pub fn store(root: &Path, sandbox: Sandbox) -> EnvStore {
    let shared = shared_cache();
    EnvStore::new(root, sandbox)
        .with_tools_dir(shared.join("tools"))
        .with_download_cache(shared.join("downloads"))
}

/// The interpreter the tests build with: 3.11 if present, else the newest 3.8+.
pub fn test_python(pythons: &Interpreters) -> Option<Interpreter> {
    let found = pythons
        .find("3.11")
        .or_else(|| pythons.newest_at_least((3, 8)))
        .cloned();
    if found.is_none() {
        eprintln!(
            "SKIPPED: no CPython 3.8+ found (found {}); install one with pyenv",
            pythons.summary()
        );
    }
    found
}

/// Runs a host command and returns its stdout, panicking with its output on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes `dir` a git repository with everything committed.
pub fn git_commit_all(dir: &Path) {
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "ponder")
            .env("GIT_AUTHOR_EMAIL", "ponder@example.invalid")
            .env("GIT_COMMITTER_NAME", "ponder")
            .env("GIT_COMMITTER_EMAIL", "ponder@example.invalid"))
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "initial"]);
}

/// A layer over `base` for the work tree `wt`, with the default options, kept in `dir`.
pub fn layer(
    store: &EnvStore,
    base: &BaseEnv,
    recipe: &EnvRecipe,
    wt: &Path,
    dir: &Path,
) -> Result<Layer, EnvError> {
    store.create_layer(base, recipe, wt, dir, &LayerOptions::default())
}

/// Whether Python `minor` (e.g. "3.6") is on the machine; prints why the test is skipped if not.
pub fn has_python(store: &EnvStore, minor: &str) -> bool {
    let found = store.interpreters().find(minor).is_some();
    if !found {
        eprintln!(
            "SKIPPED: Python {minor} is not installed (found {}); `pyenv install {minor}` to run this test",
            store.interpreters().summary()
        );
    }
    found
}
