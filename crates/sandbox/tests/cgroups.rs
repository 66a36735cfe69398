//! Runs leave no cgroup behind, whatever way they end. A separate test binary, so no other test
//! of this process creates groups at the same time.

mod common;

use std::time::Duration;

use ponder_sandbox::CommandSpec;

fn leftover_groups() -> Vec<String> {
    let prefix = format!("run-{}-", std::process::id());
    let mut found = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if !kind.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                found.push(entry.path().display().to_string());
            }
            // Our groups sit at most a few levels deep; stay shallow to keep this fast.
            if entry.path().components().count() < 10 {
                stack.push(entry.path());
            }
        }
    }
    found
}

#[test]
fn runs_leave_no_cgroups_behind() {
    let Some(sb) = common::confined("runs_leave_no_cgroups_behind") else {
        return;
    };
    if !sb.enforcement().cgroup_kill {
        eprintln!("SKIPPED: runs_leave_no_cgroups_behind: no usable cgroups here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = common::policy(dir.path()).timeout(Duration::from_secs(1));
    for cmd in [
        "true",
        "exit 7",
        "sleep 100 & sleep 100",
        "setsid sleep 100 & echo",
    ] {
        let out = sb
            .run(&CommandSpec::shell(cmd).cwd(dir.path()), &policy)
            .unwrap();
        assert!(out.diagnostics.is_empty(), "{cmd}: {:?}", out.diagnostics);
    }
    let unconfined = common::unconfined();
    unconfined
        .run(&CommandSpec::shell("sleep 100").cwd(dir.path()), &policy)
        .unwrap();
    let left = leftover_groups();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}
