//! Behaviour without bubblewrap: the refusal and its message, and what an accepted unconfined
//! sandbox still enforces (own process group, timeout kill, limits, output cap).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use ponder_sandbox::{
    AllowUnconfined, CommandSpec, MemoryLimit, Protection, Sandbox, SandboxError, Termination,
};

#[test]
fn missing_bwrap_is_refused_with_the_fix() {
    let err = Sandbox::detect_with_bwrap(None, AllowUnconfined::No).unwrap_err();
    assert!(matches!(err, SandboxError::BwrapMissing { .. }));
    let text = err.to_string();
    eprintln!("refusal message:\n{text}");
    for needle in [
        "network isolation",
        "read-only system",
        "private /tmp",
        "pid namespace",
        "install the `bubblewrap` package",
        "--allow-unconfined",
        "PONDER_BWRAP",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn broken_bwrap_is_refused_too() {
    let err =
        Sandbox::detect_with_bwrap(Some(Path::new("/nonexistent/bwrap")), AllowUnconfined::No)
            .unwrap_err();
    assert!(matches!(err, SandboxError::BwrapUnusable { .. }), "{err}");
    assert!(err.to_string().contains("--allow-unconfined"));
    // A binary that is not bwrap at all fails the trial run.
    let err =
        Sandbox::detect_with_bwrap(Some(Path::new("/bin/false")), AllowUnconfined::No).unwrap_err();
    assert!(matches!(err, SandboxError::BwrapUnusable { .. }), "{err}");
    // Accepting the risk turns both into an unconfined sandbox with a note.
    let sb =
        Sandbox::detect_with_bwrap(Some(Path::new("/bin/false")), AllowUnconfined::Yes).unwrap();
    assert!(!sb.is_confined());
    assert!(
        sb.diagnostics()
            .iter()
            .any(|d| d.contains("running unconfined"))
    );
}

#[test]
fn unconfined_reports_what_is_lost() {
    let sb = common::unconfined();
    assert!(!sb.is_confined());
    assert_eq!(sb.lost_protections(), Protection::ALL);
    assert!(sb.bwrap().is_none());
    let text = sb.describe();
    assert!(text.starts_with("UNCONFINED"), "{text}");
    eprintln!("describe: {text}");
}

#[test]
fn unconfined_runs_commands() {
    let sb = common::unconfined();
    let dir = tempfile::tempdir().unwrap();
    let out = common::sh(&sb, dir.path(), "echo out; echo err >&2; pwd; exit 4");
    assert_eq!(out.termination, Termination::Exited(4));
    let real = dir.path().canonicalize().unwrap();
    assert_eq!(out.output, format!("out\nerr\n{}\n", real.display()));
    // Signals are reported as such without bwrap in between.
    let out = sb
        .run(
            &CommandSpec::new(["sh", "-c", "kill -TERM $$"]).cwd(dir.path()),
            &common::policy(dir.path()),
        )
        .unwrap();
    assert_eq!(out.termination, Termination::Signaled(15));
    // stdin and the minimal environment, with a private HOME that is removed afterwards.
    let out = sb
        .run(
            &CommandSpec::shell("cat; echo; echo $HOME; echo $LANG; touch $HOME/f && echo home-ok")
                .cwd(dir.path())
                .stdin("in"),
            &common::policy(dir.path()),
        )
        .unwrap();
    let lines: Vec<&str> = out.output.lines().collect();
    assert_eq!(lines[0], "in");
    assert!(lines[1].contains("ponder-sandbox-"), "{}", out.output);
    assert_eq!(lines[2], "C.UTF-8");
    assert_eq!(lines[3], "home-ok");
    assert!(!Path::new(lines[1]).exists(), "scratch HOME left behind");
    // A missing program is an error, not an outcome, since nothing ran.
    let err = sb
        .run(
            &CommandSpec::new(["ponder-no-such-program"]).cwd(dir.path()),
            &common::policy(dir.path()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("ponder-no-such-program"), "{err}");
}

#[test]
fn unconfined_timeout_kills_the_tree() {
    let sb = common::unconfined();
    let dir = tempfile::tempdir().unwrap();
    let marker = common::marker("unconfined-timeout");
    // The grandchild stays in the process group but ignores SIGTERM; the setsid one leaves it,
    // and only a cgroup can catch it without a pid namespace.
    let cmd = format!(
        "bash -c 'trap \"\" TERM; sleep 1000' {marker}-grp & \
         setsid bash -c 'trap \"\" TERM; sleep 1000' {marker}-sid & sleep 1000"
    );
    let policy = common::policy(dir.path()).timeout(Duration::from_secs(1));
    let started = Instant::now();
    let out = sb
        .run(&CommandSpec::shell(cmd).cwd(dir.path()), &policy)
        .unwrap();
    assert_eq!(out.termination, Termination::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(common::processes_with(&format!("{marker}-grp")).is_empty());
    let escaped = common::processes_with(&format!("{marker}-sid"));
    if out.enforcement.cgroup_kill {
        assert!(escaped.is_empty(), "cgroup kill missed {escaped:?}");
    } else {
        eprintln!(
            "note: without cgroups the setsid grandchild escaped, as documented: {escaped:?}"
        );
        for pid in escaped {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

#[test]
fn unconfined_enforces_limits_and_output_cap() {
    let sb = common::unconfined();
    let dir = tempfile::tempdir().unwrap();
    let policy = common::policy(dir.path()).output_cap(4096);
    let out = common::sh(&sb, dir.path(), "head -c 100000 /dev/zero");
    assert_eq!(out.dropped_bytes, 0);
    let out = sb
        .run(
            &CommandSpec::shell("head -c 100000 /dev/zero").cwd(dir.path()),
            &policy,
        )
        .unwrap();
    assert_eq!(out.dropped_bytes, 100000 - 4096);
    let Some(python) = common::python3() else {
        eprintln!("SKIPPED: unconfined memory part: no python3");
        return;
    };
    let policy = common::policy(dir.path()).memory_bytes(Some(256 << 20));
    let out = sb
        .run(
            &CommandSpec::new([python.as_str(), "-c", "x = b'x' * (1 << 30)"]).cwd(dir.path()),
            &policy,
        )
        .unwrap();
    assert!(!out.termination.success());
    match out.enforcement.memory {
        MemoryLimit::CgroupV1 | MemoryLimit::CgroupV2 => {
            assert!(out.memory_limit_hit);
            assert_eq!(out.termination, Termination::Signaled(9));
        }
        _ => assert!(out.output.contains("MemoryError"), "{}", out.output),
    }
}
