//! Time, memory, process and output limits, and that the whole process tree dies at the deadline.

mod common;

use std::time::{Duration, Instant};

use ponder_sandbox::{CommandSpec, MemoryLimit, ProcessLimit, Sandbox, Termination};

/// A command whose grandchild leaves the process group (setsid), ignores SIGTERM and sleeps
/// forever, while the command itself also sleeps.
fn stubborn_tree(marker: &str) -> String {
    format!(
        "setsid bash -c 'trap \"\" TERM; while :; do sleep 1; done' {marker} & \
         bash -c 'trap \"\" TERM; sleep 1000' {marker} & \
         echo started; sleep 1000"
    )
}

fn assert_tree_dies(sb: &Sandbox, label: &str) {
    let dir = tempfile::tempdir().unwrap();
    let marker = common::marker(label);
    let policy = common::policy(dir.path()).timeout(Duration::from_secs(2));
    let started = Instant::now();
    let out = sb
        .run(
            &CommandSpec::shell(stubborn_tree(&marker)).cwd(dir.path()),
            &policy,
        )
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.termination, Termination::TimedOut, "{}", out.output);
    assert!(out.output.starts_with("started"), "{}", out.output);
    assert!(took < Duration::from_secs(5), "returned after {took:?}");
    let left = common::processes_with(&marker);
    assert!(
        left.is_empty(),
        "{label}: processes left after the timeout ({}): {left:?}",
        out.enforcement
    );
    eprintln!(
        "{label}: timed out and returned after {took:?}; no process left ({})",
        out.enforcement
    );
}

#[test]
fn timeout_kills_the_whole_tree() {
    let Some(sb) = common::confined("timeout_kills_the_whole_tree") else {
        return;
    };
    assert_tree_dies(&sb, "confined-timeout");
}

#[test]
fn exit_of_the_command_kills_its_leftovers() {
    let Some(sb) = common::confined("exit_of_the_command_kills_its_leftovers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = common::marker("leftover");
    let cmd =
        format!("setsid bash -c 'trap \"\" TERM; sleep 1000' {marker} >/dev/null 2>&1 & echo bye");
    let started = Instant::now();
    let out = common::sh(&sb, dir.path(), &cmd);
    assert_eq!(out.termination, Termination::Exited(0));
    assert_eq!(out.output, "bye\n");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(common::processes_with(&marker).is_empty());
}

#[test]
fn memory_cap_stops_a_big_allocation() {
    let Some(sb) = common::confined("memory_cap_stops_a_big_allocation") else {
        return;
    };
    let Some(python) = common::python3() else {
        eprintln!("SKIPPED: memory_cap_stops_a_big_allocation: no python3");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let policy = common::policy(dir.path()).memory_bytes(Some(256 << 20));
    // 1 GiB, every page touched, against a 256 MiB cap.
    let big = sb
        .run(
            &CommandSpec::new([
                python.as_str(),
                "-c",
                "x = b'x' * (1 << 30); print('allocated')",
            ])
            .cwd(dir.path()),
            &policy,
        )
        .unwrap();
    eprintln!(
        "big allocation: {} memory_limit_hit={} ({})",
        big.termination, big.memory_limit_hit, big.enforcement
    );
    assert!(!big.termination.success(), "{}", big.output);
    assert!(!big.output.contains("allocated"));
    match big.enforcement.memory {
        MemoryLimit::CgroupV1 | MemoryLimit::CgroupV2 => {
            assert!(big.memory_limit_hit);
            assert_eq!(big.termination, Termination::Exited(128 + 9));
        }
        MemoryLimit::AddressSpaceRlimit => assert!(big.output.contains("MemoryError")),
        MemoryLimit::None => panic!("memory cap requested but not enforced"),
    }
    // A modest allocation under the same cap works.
    let small = sb
        .run(
            &CommandSpec::new([
                python.as_str(),
                "-c",
                "x = b'x' * (50 << 20); print('allocated')",
            ])
            .cwd(dir.path()),
            &policy,
        )
        .unwrap();
    assert_eq!(
        small.termination,
        Termination::Exited(0),
        "{}",
        small.output
    );
    assert!(!small.memory_limit_hit);
}

#[test]
fn process_cap_stops_a_fork_loop() {
    let Some(sb) = common::confined("process_cap_stops_a_fork_loop") else {
        return;
    };
    let Some(python) = common::python3() else {
        eprintln!("SKIPPED: process_cap_stops_a_fork_loop: no python3");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let policy = common::policy(dir.path()).max_processes(Some(16));
    // Bounded: at most 60 children, each sleeping briefly; count the forks that succeeded.
    let script = r#"
import os, time
made = 0
for _ in range(60):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    made += 1
print("forked", made)
"#;
    let out = sb
        .run(
            &CommandSpec::new([python.as_str(), "-c", script]).cwd(dir.path()),
            &policy,
        )
        .unwrap();
    eprintln!("fork loop: {} ({})", out.output.trim(), out.enforcement);
    match out.enforcement.processes {
        ProcessLimit::None => {
            eprintln!("SKIPPED: process_cap_stops_a_fork_loop: no process cap is enforceable here");
        }
        _ => {
            let made: u32 = out
                .output
                .trim()
                .strip_prefix("forked ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected output: {}", out.output));
            assert!(made < 16, "forked {made} children under a cap of 16");
            assert!(made >= 5, "cap too tight: only {made} forks");
            if matches!(
                out.enforcement.processes,
                ProcessLimit::CgroupV1 | ProcessLimit::CgroupV2
            ) {
                assert!(out.process_limit_hit);
            }
        }
    }
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
}

#[test]
fn output_cap_counts_dropped_bytes_without_deadlock() {
    let Some(sb) = common::confined("output_cap_counts_dropped_bytes_without_deadlock") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cap = 1 << 20;
    let total: u64 = 64 << 20;
    let policy = common::policy(dir.path()).output_cap(cap);
    let cmd = format!(
        "echo FIRST; head -c {} /dev/zero | tr '\\0' a; echo; echo LAST",
        total
    );
    let started = Instant::now();
    let out = sb
        .run(&CommandSpec::shell(cmd).cwd(dir.path()), &policy)
        .unwrap();
    eprintln!("64 MiB through a 1 MiB cap in {:?}", started.elapsed());
    assert_eq!(out.termination, Termination::Exited(0));
    let produced = "FIRST\n".len() as u64 + total + "\nLAST\n".len() as u64;
    assert_eq!(out.dropped_bytes, produced - cap as u64);
    assert!(out.output.starts_with("FIRST\naaa"));
    assert!(out.output.ends_with("aaa\nLAST\n"));
    assert!(out.output.contains(&format!(
        "[ponder-sandbox: {} bytes of output dropped]",
        out.dropped_bytes
    )));
    let marker_len = out.output.len() - cap;
    assert!(marker_len < 80, "kept {} bytes", out.output.len());
}

#[test]
fn output_exactly_at_cap_is_kept_whole() {
    let Some(sb) = common::confined("output_exactly_at_cap_is_kept_whole") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let policy = common::policy(dir.path()).output_cap(1000);
    let out = sb
        .run(
            &CommandSpec::shell("head -c 1000 /dev/zero | tr '\\0' b").cwd(dir.path()),
            &policy,
        )
        .unwrap();
    assert_eq!(out.dropped_bytes, 0);
    assert_eq!(out.output, "b".repeat(1000));
}

#[test]
fn without_cgroups_the_pid_namespace_still_kills_the_tree() {
    let Some(sb) = common::confined("without_cgroups_the_pid_namespace_still_kills_the_tree")
    else {
        return;
    };
    let sb = sb.without_cgroups();
    assert!(!sb.enforcement().cgroup_kill);
    assert_tree_dies(&sb, "confined-no-cgroup-timeout");
}

#[test]
fn without_cgroups_memory_falls_back_to_rlimit_as() {
    let Some(sb) = common::confined("without_cgroups_memory_falls_back_to_rlimit_as") else {
        return;
    };
    let Some(python) = common::python3() else {
        eprintln!("SKIPPED: without_cgroups_memory_falls_back_to_rlimit_as: no python3");
        return;
    };
    let sb = sb.without_cgroups();
    let dir = tempfile::tempdir().unwrap();
    let policy = common::policy(dir.path()).memory_bytes(Some(512 << 20));
    let out = sb
        .run(
            &CommandSpec::new([
                python.as_str(),
                "-c",
                "x = b'x' * (1 << 30); print('allocated')",
            ])
            .cwd(dir.path()),
            &policy,
        )
        .unwrap();
    assert_eq!(out.enforcement.memory, MemoryLimit::AddressSpaceRlimit);
    assert_eq!(out.termination, Termination::Exited(1), "{}", out.output);
    assert!(out.output.contains("MemoryError"), "{}", out.output);
    assert!(
        !out.memory_limit_hit,
        "not detectable without a memory cgroup"
    );
    let is_root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if is_root {
        assert_eq!(out.enforcement.processes, ProcessLimit::None);
        assert!(
            out.diagnostics.iter().any(|d| d.contains("RLIMIT_NPROC")),
            "{:?}",
            out.diagnostics
        );
    } else {
        assert_eq!(out.enforcement.processes, ProcessLimit::UserRlimit);
    }
}

#[test]
fn parallel_runs_do_not_interfere() {
    let Some(sb) = common::confined("parallel_runs_do_not_interfere") else {
        return;
    };
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let sb = sb.clone();
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().unwrap();
                let out = sb
                    .run(
                        &CommandSpec::shell(format!(
                            "echo run {i} > out.txt; cat out.txt; exit {i}"
                        ))
                        .cwd(dir.path()),
                        &common::policy(dir.path()).max_processes(Some(32)),
                    )
                    .unwrap();
                assert_eq!(out.termination, Termination::Exited(i), "{}", out.output);
                assert_eq!(out.output, format!("run {i}\n"));
                assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn test_policy_defaults() {
    let policy = ponder_sandbox::Policy::tests("/work/tree");
    assert!(!policy.network);
    assert_eq!(
        policy.writable,
        vec![std::path::PathBuf::from("/work/tree")]
    );
    assert_eq!(policy.timeout, Duration::from_secs(1800));
    assert_eq!(policy.memory_bytes, Some(8 << 30));
    assert_eq!(policy.max_processes, Some(1024));
    assert_eq!(policy.output_cap, 16 << 20);
}
