//! Per-run cgroups: memory and process caps for a whole process tree, and a way to find and kill
//! every process of a run even when it left its process group.
//!
//! Both cgroup v2 (one unified hierarchy) and v1 (one hierarchy per controller, as on hosts and
//! containers with the "hybrid" layout) are handled, because which one a machine offers is not
//! ours to choose. Each hierarchy gets a directory `ponder-sandbox/` below this process's own
//! cgroup (v1) or below the mount root (v2), and each run a child `run-<pid>-<n>` of it that is
//! removed after the run. Written by hand rather than with a cgroup crate because the child must
//! join its group between fork and exec, which only raw async-signal-safe writes can do, and the
//! rest is a handful of file writes.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BASE_NAME: &str = "ponder-sandbox";

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// A directory under which per-run groups are created.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Base {
    dir: PathBuf,
    version: Version,
    /// For v2: controllers to enable in the base's `cgroup.subtree_control`.
    enable: Vec<&'static str>,
}

/// The cgroup hierarchies this process may use, found by [`CgroupSupport::detect`].
#[derive(Debug, Clone)]
pub(crate) struct CgroupSupport {
    memory: Option<Base>,
    pids: Option<Base>,
    /// A v2 base whose groups have `cgroup.kill`.
    kill: Option<Base>,
}

impl CgroupSupport {
    pub(crate) fn memory_version(&self) -> Option<Version> {
        self.memory.as_ref().map(|b| b.version)
    }

    pub(crate) fn pids_version(&self) -> Option<Version> {
        self.pids.as_ref().map(|b| b.version)
    }

    /// Finds usable hierarchies, checks each by running a trivial command inside a fresh group,
    /// and removes groups left by earlier processes that died. `None` when nothing is usable.
    pub(crate) fn detect(notes: &mut Vec<String>) -> Option<CgroupSupport> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        let mounts = parse_mountinfo(&mountinfo);
        let own = parse_proc_cgroup(&own);

        let mut checked = |base: Base| -> Option<Base> {
            sweep_stale(&base);
            let result = check_base(&base);
            remove_base_if_empty(&base);
            match result {
                Ok(()) => Some(base),
                Err(e) => {
                    notes.push(format!("cgroup {} is not usable: {e}", base.dir.display()));
                    None
                }
            }
        };
        let v2 = v2_base(&mounts).and_then(&mut checked);
        let v2_with = |c: &str| v2.clone().filter(|b| b.enable.contains(&c));
        let memory =
            v2_with("memory").or_else(|| v1_base(&mounts, &own, "memory").and_then(&mut checked));
        let pids =
            v2_with("pids").or_else(|| v1_base(&mounts, &own, "pids").and_then(&mut checked));
        let support = CgroupSupport {
            memory,
            pids,
            kill: v2.clone(),
        };
        if support.memory.is_none() && support.pids.is_none() && support.kill.is_none() {
            notes.push("no usable cgroup hierarchy: falling back to rlimits".to_string());
            return None;
        }
        for (role, base) in [
            ("memory", &support.memory),
            ("pids", &support.pids),
            ("kill", &support.kill),
        ] {
            if let Some(base) = base {
                notes.push(format!(
                    "cgroup {role}: {:?} under {}",
                    base.version,
                    base.dir.display()
                ));
            }
        }
        Some(support)
    }
}

/// One mount from /proc/self/mountinfo.
struct Mount {
    root: String,
    point: PathBuf,
    fstype: String,
    super_options: Vec<String>,
}

fn unescape_mount_field(field: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo octal.
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                root: unescape_mount_field(left.get(3)?),
                point: PathBuf::from(unescape_mount_field(left.get(4)?)),
                fstype: right.first()?.to_string(),
                super_options: right
                    .get(2)
                    .map(|o| o.split(',').map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// controller name ("" for v2) -> path of this process's cgroup in that hierarchy.
fn parse_proc_cgroup(text: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            map.insert(String::new(), path.to_string());
        }
        for c in controllers.split(',').filter(|c| !c.is_empty()) {
            map.insert(c.to_string(), path.to_string());
        }
    }
    map
}

/// Our v1 group for `controller`, as a directory on its mount.
fn v1_base(mounts: &[Mount], own: &HashMap<String, String>, controller: &str) -> Option<Base> {
    let mount = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.super_options.iter().any(|o| o == controller))?;
    let path = own.get(controller)?;
    let relative = path
        .strip_prefix(mount.root.trim_end_matches('/'))
        .unwrap_or(path)
        .trim_start_matches('/');
    let own_dir = mount.point.join(relative);
    if !own_dir.is_dir() {
        return None;
    }
    Some(Base {
        dir: own_dir.join(BASE_NAME),
        version: Version::V1,
        enable: Vec::new(),
    })
}

/// The v2 hierarchy's root, when mounted and writable. Groups go directly below the mount root
/// because a v2 group that holds processes (like ours) cannot delegate controllers to children.
fn v2_base(mounts: &[Mount]) -> Option<Base> {
    let mount = mounts.iter().find(|m| m.fstype == "cgroup2")?;
    let controllers = fs::read_to_string(mount.point.join("cgroup.controllers")).ok()?;
    let enable: Vec<&'static str> = ["memory", "pids"]
        .into_iter()
        .filter(|c| controllers.split_whitespace().any(|x| x == *c))
        .collect();
    Some(Base {
        dir: mount.point.join(BASE_NAME),
        version: Version::V2,
        enable,
    })
}

fn ensure_base(base: &Base) -> io::Result<()> {
    match fs::create_dir(&base.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if base.version == Version::V2 && !base.enable.is_empty() {
        let wanted: String = base
            .enable
            .iter()
            .map(|c| format!("+{c} "))
            .collect::<String>();
        let parent_control = base.dir.parent().map(|p| p.join("cgroup.subtree_control"));
        if let Some(parent_control) = parent_control {
            let current = fs::read_to_string(&parent_control).unwrap_or_default();
            if !base
                .enable
                .iter()
                .all(|c| current.split_whitespace().any(|x| x == *c))
            {
                fs::write(&parent_control, wanted.trim())?;
            }
        }
        fs::write(base.dir.join("cgroup.subtree_control"), wanted.trim())?;
    }
    Ok(())
}

fn remove_base_if_empty(base: &Base) {
    // Fails harmlessly (EBUSY) while another run still has a group below it.
    let _ = fs::remove_dir(&base.dir);
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes run groups whose creating process is gone (it crashed or was killed before cleanup).
fn sweep_stale(base: &Base) {
    let Ok(entries) = fs::read_dir(&base.dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner != std::process::id() && !pid_alive(owner) {
            let dir = RunDir {
                path: entry.path(),
                version: base.version,
            };
            kill_members(std::slice::from_ref(&dir));
            let _ = remove_dir_patiently(&dir.path);
        }
    }
}

/// Creates a group, joins a trivial command to it and removes it again.
fn check_base(base: &Base) -> Result<(), String> {
    let mut run = RunCgroup::create_in(std::slice::from_ref(base)).map_err(|e| e.to_string())?;
    run.set_memory(0, 1 << 30)
        .map_err(|e| format!("setting memory cap: {e}"))?;
    run.set_pids(0, 64)
        .map_err(|e| format!("setting pids cap: {e}"))?;
    if base.enable.contains(&"memory") && run.memory.is_none() {
        return Err("memory controller not delegated".to_string());
    }
    if base.enable.contains(&"pids") && run.pids.is_none() {
        return Err("pids controller not delegated".to_string());
    }
    let procs = run.procs_files();
    let shell = crate::bwrap::find_on_path("sh").unwrap_or_else(|| PathBuf::from("/bin/sh"));
    let mut cmd = Command::new(shell);
    cmd.args(["-c", ":"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure only makes async-signal-safe system calls (open/write/close).
    unsafe {
        cmd.pre_exec(move || join_self(&procs));
    }
    let status = cmd
        .status()
        .map_err(|e| format!("joining a process failed: {e}"))?;
    if !status.success() {
        return Err(format!("trial process failed: {status}"));
    }
    run.remove().map_err(|e| format!("cleanup failed: {e}"))
}

/// Moves the calling process into each group. Runs in the child between fork and exec, so it
/// must not allocate or lock: only raw system calls on paths prepared by the parent.
pub(crate) fn join_self(procs_files: &[CString]) -> io::Result<()> {
    for file in procs_files {
        // SAFETY: `file` is a valid NUL-terminated path; the buffer is a static byte string.
        unsafe {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // Writing "0" moves the writing process itself.
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(err);
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct RunDir {
    path: PathBuf,
    version: Version,
}

/// The groups of one run: one directory per hierarchy used.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    dirs: Vec<RunDir>,
    memory: Option<usize>,
    pids: Option<usize>,
    removed: bool,
}

impl RunCgroup {
    /// Creates this run's groups with the given limits. `memory_bytes`/`max_tasks` of `None`
    /// leave that controller out (its group is still created when it is the only way to track
    /// the run's processes).
    pub(crate) fn create(
        support: &CgroupSupport,
        memory_bytes: Option<u64>,
        max_tasks: Option<u64>,
    ) -> io::Result<RunCgroup> {
        let mut bases: Vec<Base> = Vec::new();
        let mut add = |b: &Option<Base>| {
            if let Some(b) = b
                && !bases.contains(b)
            {
                bases.push(b.clone());
            }
        };
        if memory_bytes.is_some() {
            add(&support.memory);
        }
        if max_tasks.is_some() {
            add(&support.pids);
        }
        // Tracking for the kill: cgroup.kill when there is one, else any group at all.
        if support.kill.is_some() {
            add(&support.kill);
        } else if support.pids.is_some() {
            add(&support.pids);
        } else {
            add(&support.memory);
        }
        let memory = memory_bytes.and(support.memory.clone());
        let pids = max_tasks.and(support.pids.clone());
        let mut run = RunCgroup::create_in(&bases)?;
        if let (Some(bytes), Some(base)) = (memory_bytes, memory) {
            let idx = bases.iter().position(|b| *b == base).unwrap_or(0);
            run.set_memory(idx, bytes)?;
        }
        if let (Some(max), Some(base)) = (max_tasks, pids) {
            let idx = bases.iter().position(|b| *b == base).unwrap_or(0);
            run.set_pids(idx, max)?;
        }
        Ok(run)
    }

    fn create_in(bases: &[Base]) -> io::Result<RunCgroup> {
        let name = format!(
            "run-{}-{}",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut run = RunCgroup {
            dirs: Vec::new(),
            memory: None,
            pids: None,
            removed: false,
        };
        for base in bases {
            let path = base.dir.join(&name);
            let mut attempt = 0;
            loop {
                ensure_base(base)?;
                match fs::create_dir(&path) {
                    Ok(()) => break,
                    // Another run removed the empty base between our ensure and mkdir.
                    Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 10 => attempt += 1,
                    Err(e) => return Err(e),
                }
            }
            run.dirs.push(RunDir {
                path,
                version: base.version,
            });
        }
        Ok(run)
    }

    /// Sets the memory cap on group `idx` if it has the memory controller.
    fn set_memory(&mut self, idx: usize, bytes: u64) -> io::Result<()> {
        let dir = &self.dirs[idx];
        let (limit, no_swap, swap_value) = match dir.version {
            Version::V2 => ("memory.max", "memory.swap.max", "0".to_string()),
            // memsw (memory + swap) must be at least the memory limit; equal means no swap.
            Version::V1 => (
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                bytes.to_string(),
            ),
        };
        let limit = dir.path.join(limit);
        if !limit.exists() {
            return Ok(());
        }
        fs::write(limit, bytes.to_string())?;
        let no_swap = dir.path.join(no_swap);
        if no_swap.exists() {
            // Absent or refused when the kernel does not account swap; the memory cap stands.
            let _ = fs::write(no_swap, swap_value);
        }
        self.memory = Some(idx);
        Ok(())
    }

    /// Sets the task cap on group `idx` if it has the pids controller.
    fn set_pids(&mut self, idx: usize, max: u64) -> io::Result<()> {
        let file = self.dirs[idx].path.join("pids.max");
        if !file.exists() {
            return Ok(());
        }
        fs::write(file, max.to_string())?;
        self.pids = Some(idx);
        Ok(())
    }

    /// The hierarchy enforcing this run's memory cap, if any.
    pub(crate) fn memory_version(&self) -> Option<Version> {
        self.memory.map(|i| self.dirs[i].version)
    }

    /// The hierarchy enforcing this run's process cap, if any.
    pub(crate) fn pids_version(&self) -> Option<Version> {
        self.pids.map(|i| self.dirs[i].version)
    }

    /// The files the child writes to join every group (see [`join_self`]).
    pub(crate) fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|d| CString::new(d.path.join("cgroup.procs").as_os_str().as_bytes()).ok())
            .collect()
    }

    /// Kills every process in the run's groups and waits (briefly) until they are gone.
    pub(crate) fn kill_all(&self) {
        kill_members(&self.dirs);
    }

    /// Whether the kernel OOM-killed something because of the memory cap.
    pub(crate) fn memory_limit_hit(&self) -> bool {
        let Some(dir) = self.memory.map(|i| &self.dirs[i]) else {
            return false;
        };
        let file = match dir.version {
            Version::V2 => "memory.events",
            Version::V1 => "memory.oom_control",
        };
        counter(&dir.path.join(file), "oom_kill") > 0
    }

    /// Whether a fork failed because of the process cap.
    pub(crate) fn pids_limit_hit(&self) -> bool {
        let Some(dir) = self.pids.map(|i| &self.dirs[i]) else {
            return false;
        };
        counter(&dir.path.join("pids.events"), "max") > 0
    }

    /// Kills what is left and removes the groups; the error names groups that could not be
    /// removed.
    pub(crate) fn remove(mut self) -> Result<(), String> {
        self.removed = true;
        self.remove_now()
    }

    fn remove_now(&self) -> Result<(), String> {
        kill_members(&self.dirs);
        let mut failures = Vec::new();
        for dir in &self.dirs {
            if let Err(e) = remove_dir_patiently(&dir.path) {
                failures.push(format!("{}: {e}", dir.path.display()));
            }
            if let Some(parent) = dir.path.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!("could not remove cgroup {}", failures.join(", ")))
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove_now();
        }
    }
}

/// Reads `key N` from a flat-keyed cgroup file.
fn counter(file: &Path, key: &str) -> u64 {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let (k, v) = line.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

fn members(dir: &RunDir) -> Vec<i32> {
    fs::read_to_string(dir.path.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn kill_members(dirs: &[RunDir]) {
    for dir in dirs {
        if dir.version == Version::V2 {
            let _ = fs::write(dir.path.join("cgroup.kill"), "1");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut any = false;
        for dir in dirs {
            for pid in members(dir) {
                any = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if !any || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn remove_dir_patiently(path: &Path) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_layout() {
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n\
                         31 25 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                         32 25 0:28 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let mounts = parse_mountinfo(mountinfo);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[1].fstype, "cgroup2");
        assert_eq!(mounts[2].super_options, vec!["rw", "pids"]);
        let own = parse_proc_cgroup("8:pids:/\n4:memory:/a/b\n0::/\n");
        assert_eq!(own["memory"], "/a/b");
        assert_eq!(own[""], "/");
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape_mount_field(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount_field(r"/plain\"), r"/plain\");
    }

    #[test]
    fn reads_counters() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        fs::write(&file, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(counter(&file, "oom_kill"), 1);
        assert_eq!(counter(&file, "max"), 3);
        assert_eq!(counter(&file, "absent"), 0);
    }
}
