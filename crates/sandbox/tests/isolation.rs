//! What a confined command can reach: the network (off by default), the file system (read-only
//! except the policy's writable paths) and /tmp (private).

mod common;

use std::net::TcpListener;

use ponder_sandbox::{CommandSpec, Termination};

fn connect_cmd(port: u16) -> String {
    format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected")
}

#[test]
fn network_is_blocked_by_default() {
    let Some(sb) = common::confined("network_is_blocked_by_default") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A listener outside the sandbox: reachable from the host, not from inside.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = common::sh(&sb, dir.path(), &connect_cmd(port));
    assert!(
        !out.termination.success(),
        "connected from inside: {}",
        out.output
    );
    assert!(!out.output.contains("connected\n"), "{}", out.output);
    // Only a loopback interface (down or up, but alone) exists inside.
    let out = common::sh(
        &sb,
        dir.path(),
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
    );
    assert_eq!(out.output.trim(), "lo", "{}", out.output);
}

#[test]
fn network_is_allowed_when_asked() {
    let Some(sb) = common::confined("network_is_allowed_when_asked") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = sb
        .run(
            &CommandSpec::shell(connect_cmd(port)).cwd(dir.path()),
            &common::policy(dir.path()).network(true),
        )
        .unwrap();
    assert_eq!(out.termination, Termination::Exited(0), "{}", out.output);
    assert_eq!(out.output, "connected\n");
    // DNS configuration is visible for pip and friends.
    let out = sb
        .run(
            &CommandSpec::shell("test -r /etc/resolv.conf && echo readable").cwd(dir.path()),
            &common::policy(dir.path()).network(true),
        )
        .unwrap();
    assert_eq!(out.output, "readable\n");
}

#[test]
fn writes_outside_writable_paths_fail() {
    let Some(sb) = common::confined("writes_outside_writable_paths_fail") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Not under /tmp, so it is visible (read-only) inside rather than hidden by the private /tmp.
    let outside = tempfile::tempdir_in("/var/tmp").unwrap();
    let target = outside.path().join("written");
    let out = common::sh(&sb, dir.path(), &format!("echo x > '{}'", target.display()));
    assert!(!out.termination.success());
    assert!(
        out.output.contains("Read-only file system"),
        "{}",
        out.output
    );
    assert!(!target.exists());

    // The host's home directory is read-only too.
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_string());
    let target = std::path::Path::new(&home).join(common::marker("home-write"));
    let out = common::sh(&sb, dir.path(), &format!("touch '{}'", target.display()));
    assert!(!out.termination.success(), "{}", out.output);
    assert!(!target.exists());
    let _ = std::fs::remove_file(&target);

    // And so are system directories, even for root.
    let out = common::sh(&sb, dir.path(), "touch /usr/ponder-sandbox-probe");
    assert!(!out.termination.success());
    // Remounting read-write needs CAP_SYS_ADMIN, which is dropped.
    let out = common::sh(
        &sb,
        dir.path(),
        "mount -o remount,rw / 2>&1; touch /usr/ponder-sandbox-probe",
    );
    assert!(!out.termination.success(), "{}", out.output);
    assert!(!std::path::Path::new("/usr/ponder-sandbox-probe").exists());
}

#[test]
fn writes_inside_writable_paths_are_visible_outside() {
    let Some(sb) = common::confined("writes_inside_writable_paths_are_visible_outside") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let extra = tempfile::tempdir_in("/var/tmp").unwrap();
    let created = extra.path().join("made/by/policy");
    let policy = common::policy(dir.path()).writable(&created);
    let cmd = format!(
        "echo inside > result.txt && echo more > '{}/f'",
        created.display()
    );
    let out = sb
        .run(&CommandSpec::shell(cmd).cwd(dir.path()), &policy)
        .unwrap();
    assert_eq!(out.termination, Termination::Exited(0), "{}", out.output);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("result.txt")).unwrap(),
        "inside\n"
    );
    assert_eq!(
        std::fs::read_to_string(created.join("f")).unwrap(),
        "more\n"
    );
}

#[test]
fn tmp_is_private() {
    let Some(sb) = common::confined("tmp_is_private") else {
        return;
    };
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let host_file = std::path::PathBuf::from("/tmp").join(common::marker("tmp-host"));
    std::fs::write(&host_file, "host").unwrap();
    let inside_name = common::marker("tmp-inside");
    let cmd = format!(
        "test -e '{}' && echo host-visible; echo x > /tmp/{inside_name} && echo wrote",
        host_file.display()
    );
    let out = common::sh(&sb, dir.path(), &cmd);
    std::fs::remove_file(&host_file).unwrap();
    assert_eq!(out.output, "wrote\n");
    assert!(!std::path::Path::new("/tmp").join(&inside_name).exists());
    // Nothing survives from one run to the next either.
    let out = common::sh(
        &sb,
        dir.path(),
        &format!("ls /tmp/{inside_name} 2>&1; true"),
    );
    assert!(out.output.contains("No such file"), "{}", out.output);
}

#[test]
fn shared_memory_is_writable() {
    let Some(sb) = common::confined("shared_memory_is_writable") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = common::sh(
        &sb,
        dir.path(),
        "echo x > /dev/shm/probe && cat /dev/shm/probe",
    );
    assert_eq!(out.output, "x\n");
}

#[test]
fn paths_under_tmp_are_hidden_unless_bound_read_only() {
    let Some(sb) = common::confined("paths_under_tmp_are_hidden_unless_bound_read_only") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    // A cache kept under the host's /tmp, as a user's PONDER_CACHE may be.
    let cache = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::write(cache.path().join("tool.txt"), "from the cache\n").unwrap();
    let read = format!("cat {}/tool.txt", cache.path().display());
    let hidden = common::sh(&sb, work.path(), &read);
    assert!(!hidden.termination.success(), "{}", hidden.output);
    let policy = common::policy(work.path()).readable(cache.path());
    let shown = sb
        .run(&CommandSpec::shell(read.clone()).cwd(work.path()), &policy)
        .unwrap();
    assert_eq!(shown.output, "from the cache\n");
    // Bound read-only: writing there still fails.
    let write = format!("echo x > {}/new.txt", cache.path().display());
    let out = sb
        .run(&CommandSpec::shell(write).cwd(work.path()), &policy)
        .unwrap();
    assert!(!out.termination.success());
    assert!(!cache.path().join("new.txt").exists());
    assert_eq!(out.termination, Termination::Exited(1));
}

#[test]
fn a_working_directory_spelled_with_dotdot_under_tmp_works() {
    let Some(sb) = common::confined("a_working_directory_spelled_with_dotdot_under_tmp_works")
    else {
        return;
    };
    // /tmp/X/b exists on the host only; inside, just /tmp/X/a is bound. The spelling
    // /tmp/X/b/../a must still reach it.
    let outer = tempfile::tempdir_in("/tmp").unwrap();
    let work = outer.path().join("a");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(outer.path().join("b")).unwrap();
    let spelled = outer.path().join("b/../a");
    let policy = common::policy(&spelled);
    let out = sb
        .run(
            &CommandSpec::shell("echo ok > here.txt && pwd").cwd(&spelled),
            &policy,
        )
        .unwrap();
    assert_eq!(out.termination, Termination::Exited(0), "{}", out.output);
    assert!(work.join("here.txt").exists());
}
