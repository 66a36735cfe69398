//! A thin runner for the `git` command line, with errors that quote the command and its stderr.
//!
//! ponder shells out to git rather than linking a git library because the harness's behaviour
//! (`git apply` and its fallbacks, worktree semantics) is defined by the command line tool.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// git run in one directory, with a fixed identity and no user or system configuration, so a
/// user's aliases, hooks or signing settings cannot change what ponder does.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

impl Git {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        cmd.current_dir(&self.dir)
            .args([
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "advice.detachedHead=false",
            ])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "ponder")
            .env("GIT_AUTHOR_EMAIL", "ponder@localhost")
            .env("GIT_COMMITTER_NAME", "ponder")
            .env("GIT_COMMITTER_EMAIL", "ponder@localhost")
            .env("LC_ALL", "C");
        cmd
    }

    /// Runs git and returns its raw output, whatever the exit status.
    pub fn output(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
        self.output_with_env(args, stdin, &[])
    }

    pub fn output_with_env(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        env: &[(&str, &str)],
    ) -> Result<Output> {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .context("cannot run git: is it installed and on PATH?")?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            let input = input.to_vec();
            // A writer thread keeps a large patch from deadlocking against git's output.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        child
            .wait_with_output()
            .with_context(|| format!("waiting for git {}", args.join(" ")))
    }

    /// Runs git, failing with its stderr when it exits non-zero; returns stdout as text.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        self.run_with_env(args, &[])
    }

    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let out = self.output_with_env(args, None, env)?;
        if !out.status.success() {
            bail!(
                "`git {}` failed in {}: {}",
                args.join(" "),
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether `rev` names a commit this repository has.
    pub fn has_commit(&self, rev: &str) -> bool {
        self.output(&["cat-file", "-e", &format!("{rev}^{{commit}}")], None)
            .is_ok_and(|o| o.status.success())
    }
}
