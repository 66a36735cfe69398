//! Applying a patch to a checkout the way the SWE-bench harness does: `git apply`, then
//! `git apply --reject`, then `patch --batch --fuzz=5 -p1`, taking the first that succeeds.
//!
//! Unlike the harness, a failed attempt is undone before the next one (the files the patch
//! names are restored and `.rej` / `.orig` leftovers removed), so a later method never applies
//! on top of a half-applied earlier one.

use crate::git::Git;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which of the harness's methods applied the patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyMethod {
    GitApply,
    GitApplyReject,
    PatchFuzz,
}

/// The result of applying one patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// The patch has no content; nothing was changed.
    Empty,
    Applied {
        method: ApplyMethod,
        files: Vec<String>,
        log: String,
    },
    /// No method worked; the tree is as it was before. `log` has each method's complaint.
    Failed { reason: String, log: String },
}

impl ApplyOutcome {
    pub fn is_applied(&self) -> bool {
        matches!(self, ApplyOutcome::Applied { .. })
    }
}

/// Applies patches to one work tree.
#[derive(Debug, Clone)]
pub struct PatchApplier {
    dir: PathBuf,
}

impl PatchApplier {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Applies `patch`, trying each method in the harness's order.
    pub fn apply(&self, patch: &str) -> Result<ApplyOutcome> {
        if patch.trim().is_empty() {
            return Ok(ApplyOutcome::Empty);
        }
        // git and patch both want the final newline; models and JSON exports often drop it.
        let mut patch = patch.to_owned();
        if !patch.ends_with('\n') {
            patch.push('\n');
        }
        let files = patched_paths(&patch);
        let saved = Snapshot::take(&self.dir, &files)?;
        let git = Git::new(&self.dir);
        let mut log = String::new();
        let attempts: [(ApplyMethod, &[&str]); 2] = [
            (ApplyMethod::GitApply, &["apply", "--verbose"]),
            (
                ApplyMethod::GitApplyReject,
                &["apply", "--verbose", "--reject"],
            ),
        ];
        for (method, args) in attempts {
            let mut args = args.to_vec();
            args.push("-");
            let out = git.output(&args, Some(patch.as_bytes()))?;
            log.push_str(&format!("$ git {}\n", args.join(" ")));
            log.push_str(&String::from_utf8_lossy(&out.stdout));
            log.push_str(&String::from_utf8_lossy(&out.stderr));
            if out.status.success() {
                return Ok(ApplyOutcome::Applied {
                    method,
                    files: files.into_iter().collect(),
                    log,
                });
            }
            saved.restore()?;
        }
        let out = run_patch(&self.dir, &patch)?;
        log.push_str("$ patch --batch --fuzz=5 -p1 -i -\n");
        log.push_str(&out.1);
        if out.0 {
            return Ok(ApplyOutcome::Applied {
                method: ApplyMethod::PatchFuzz,
                files: files.into_iter().collect(),
                log,
            });
        }
        saved.restore()?;
        Ok(ApplyOutcome::Failed {
            reason: failure_reason(&log),
            log,
        })
    }
}

/// The most telling line of the methods' complaints, for a one-line status.
fn failure_reason(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.starts_with("error:"))
        .or_else(|| {
            log.lines()
                .find(|l| l.contains("FAILED") || l.contains("malformed"))
        })
        .unwrap_or("no method could apply the patch");
    format!("patch does not apply ({})", line.trim())
}

fn run_patch(dir: &Path, patch: &str) -> Result<(bool, String)> {
    let mut child = match Command::new("patch")
        .current_dir(dir)
        .args(["--batch", "--fuzz=5", "-p1", "-i", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Ok((
                false,
                format!(
                    "cannot run `patch` ({e}); install the patch package for the last fallback\n"
                ),
            ));
        }
    };
    let mut stdin = child.stdin.take().expect("piped");
    let input = patch.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().context("waiting for patch")?;
    let _ = writer.join();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// Paths a patch names, from `diff --git` headers and `---` / `+++` lines, without the `a/`
/// `b/` prefixes.
pub fn patched_paths(patch: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            if let Some((a, b)) = rest.split_once(" b/") {
                out.insert(a.to_owned());
                out.insert(b.to_owned());
            }
        } else if let Some(p) = line
            .strip_prefix("--- a/")
            .or_else(|| line.strip_prefix("+++ b/"))
        {
            // Unified diffs may put a timestamp after a tab.
            out.insert(p.split('\t').next().unwrap_or(p).trim_end().to_owned());
        }
    }
    out
}

/// The content (or absence) of some files, to put them back after a failed attempt.
struct Snapshot {
    dir: PathBuf,
    files: Vec<(String, Option<Vec<u8>>)>,
}

impl Snapshot {
    fn take(dir: &Path, files: &BTreeSet<String>) -> Result<Snapshot> {
        let mut saved = Vec::new();
        for f in files {
            if f.contains("..") || f.starts_with('/') {
                continue;
            }
            let content = std::fs::read(dir.join(f)).ok();
            saved.push((f.clone(), content));
        }
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            files: saved,
        })
    }

    fn restore(&self) -> Result<()> {
        for (f, content) in &self.files {
            let path = self.dir.join(f);
            match content {
                Some(bytes) => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&path, bytes)
                        .with_context(|| format!("cannot restore {}", path.display()))?;
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
            for leftover in [".rej", ".orig"] {
                let _ = std::fs::remove_file(self.dir.join(format!("{f}{leftover}")));
            }
        }
        Ok(())
    }
}
