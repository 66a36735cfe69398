//! Shared by the command-line tests: run the built `ponder` with a private cache folder, in that
//! folder, without the model settings of the environment the tests run in.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub const PONDER: &str = env!("CARGO_BIN_EXE_ponder");

pub fn ponder(args: &[&str], cache: &Path) -> (i32, String, String) {
    let out = Command::new(PONDER)
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("PONDER_MODEL")
        .env_remove("PONDER_CONFIG")
        .current_dir(cache)
        .output()
        .expect("run ponder");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The repository's root folder.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The end-to-end tests' shared cache (repositories, environments), kept across runs.
pub fn cache_dir() -> PathBuf {
    let dir = std::env::var_os("PONDER_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/ponder-test-cache"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Why the end-to-end tests cannot run here, if they cannot.
pub fn missing_prerequisite() -> Option<String> {
    if which("bwrap").is_none() {
        return Some("bubblewrap (bwrap) is not installed; scripts/setup.sh installs it".into());
    }
    let out = Command::new(PONDER)
        .args(["env", "list", "--cache-dir"])
        .arg(cache_dir())
        .output()
        .ok()?;
    if !out.status.success() {
        return Some(format!(
            "ponder env list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    let has_39 = pyenv
        .map(|p| p.join("versions"))
        .and_then(|v| std::fs::read_dir(v).ok())
        .is_some_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("3.9")))
        })
        || which("python3.9").is_some()
        || std::env::var_os("PONDER_PYTHONS").is_some();
    if !has_39 {
        return Some("no Python 3.9 interpreter (pyenv, PATH or PONDER_PYTHONS)".into());
    }
    None
}

pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}
