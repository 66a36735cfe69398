//! Helpers shared by the sandbox's integration tests: getting a real bubblewrap sandbox (or
//! skipping loudly), temporary directories, and process checks.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use ponder_sandbox::{AllowUnconfined, CommandSpec, Outcome, Policy, Sandbox};

/// A bubblewrap sandbox, or `None` after printing why the test is skipped.
pub fn confined(test: &str) -> Option<Sandbox> {
    match Sandbox::detect(AllowUnconfined::No) {
        Ok(sandbox) => Some(sandbox),
        Err(e) => {
            eprintln!("SKIPPED: {test}: bubblewrap is not usable here: {e}");
            None
        }
    }
}

/// An unconfined sandbox (as if bubblewrap were missing and the user passed --allow-unconfined).
pub fn unconfined() -> Sandbox {
    Sandbox::detect_with_bwrap(None, AllowUnconfined::Yes).expect("unconfined detection")
}

/// A short policy for tests: the given directory writable, 60 s, default caps.
pub fn policy(dir: &Path) -> Policy {
    Policy::tests(dir).timeout(Duration::from_secs(60))
}

pub fn sh(sandbox: &Sandbox, dir: &Path, cmd: &str) -> Outcome {
    sandbox
        .run(&CommandSpec::shell(cmd).cwd(dir), &policy(dir))
        .expect("run")
}

/// Path of a real Python 3 interpreter (not a pyenv shim), if any.
pub fn python3() -> Option<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!path.is_empty()).then_some(path)
}

/// Pids of processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push(pid);
        }
    }
    found
}

/// A marker unique to this test process and call site.
pub fn marker(name: &str) -> String {
    format!("ponder-marker-{name}-{}", std::process::id())
}
