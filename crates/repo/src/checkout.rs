//! A private checkout of one commit for one task.
//!
//! Made with `git clone --shared --no-checkout`, which borrows the source's objects instead of
//! copying them and never writes to the source, so any number of checkouts of one repository
//! can be made in parallel. The tree is populated from the index rather than with `git
//! checkout`, so that a snapshot missing a blob (large files left out of a mirror) still gives a
//! usable tree: the missing files are skipped, marked skip-worktree, and reported.

use crate::git::Git;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug)]
pub struct Checkout {
    dir: PathBuf,
    commit: String,
    /// Files of the commit whose content the source does not have.
    pub missing_files: Vec<String>,
}

impl Checkout {
    /// Checks `commit` of the repository at `source` out into `dest`, which must not exist.
    pub fn create(source: &Path, commit: &str, dest: &Path) -> Result<Checkout> {
        if dest.exists() {
            bail!(
                "{} already exists; remove it or choose another work folder",
                dest.display()
            );
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let src = Git::new(source);
        if !src.has_commit(commit) {
            bail!(
                "commit {commit} is not in {}: update that repository (git fetch --all) or point \
                 --repos at a complete clone",
                source.display()
            );
        }
        let parent = dest.parent().unwrap_or(Path::new("."));
        Git::new(parent).run(&[
            "clone",
            "--quiet",
            "--shared",
            "--no-checkout",
            &source.to_string_lossy(),
            &dest.to_string_lossy(),
        ])?;
        let git = Git::new(dest);
        git.run(&["read-tree", commit])?;
        let missing = missing_blobs(&git, commit)?;
        for chunk in missing.chunks(500) {
            let mut args = vec!["update-index", "--skip-worktree", "--"];
            args.extend(chunk.iter().map(String::as_str));
            git.run(&args)?;
        }
        // `--index` records the files' stat data, so a later `reset` rewrites only the files
        // that changed; without it every file looks changed, gets a new mtime, and build
        // tools rebuild everything (a full compile of scikit-learn).
        git.run(&["checkout-index", "--all", "--force", "--index"])?;
        git.run(&["update-ref", "--no-deref", "HEAD", commit])?;
        Ok(Checkout {
            dir: dest.to_path_buf(),
            commit: commit.to_owned(),
            missing_files: missing,
        })
    }

    /// Re-opens a checkout made earlier by [`Checkout::create`] in `dir` (kept between runs),
    /// with the missing files that `create` reported for it.
    pub fn open(dir: &Path, commit: &str, missing_files: Vec<String>) -> Result<Checkout> {
        if !dir.join(".git").exists() {
            bail!("{} is not a checkout made by ponder", dir.display());
        }
        Ok(Checkout {
            dir: dir.to_path_buf(),
            commit: commit.to_owned(),
            missing_files,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn commit(&self) -> &str {
        &self.commit
    }

    pub fn git(&self) -> Git {
        Git::new(&self.dir)
    }

    /// The work tree's changes against the checked-out commit as a git diff, new files
    /// included (they are added to the index with intent-to-add first).
    pub fn diff(&self) -> Result<String> {
        let git = self.git();
        git.run(&["add", "--intent-to-add", "--all", "."])?;
        git.run(&["diff", "--binary", &self.commit])
    }

    /// Puts tracked files back to the commit's content and deletes untracked files that are
    /// not ignored (ignored build products, such as compiled extensions, are kept).
    /// Files whose content is already right are not rewritten (their mtimes stay), so build
    /// products stay current.
    pub fn reset(&self) -> Result<()> {
        let git = self.git();
        // Stat data gone stale (a tree from an older ponder, files touched but not changed)
        // would make `reset` rewrite those files; refresh it from their content first.
        let _ = git.output(&["update-index", "-q", "--refresh"], None);
        git.run(&["reset", "--quiet", "--hard", &self.commit])?;
        git.run(&["clean", "--quiet", "-fd"])?;
        Ok(())
    }

    /// Deletes the checkout.
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("cannot remove {}", self.dir.display()))
    }
}

/// Paths of `commit`'s files whose blobs the repository lacks.
fn missing_blobs(git: &Git, commit: &str) -> Result<Vec<String>> {
    let listing = git.run(&["ls-tree", "-r", "-z", "--full-tree", commit])?;
    let mut entries = Vec::new();
    for record in listing.split('\0').filter(|r| !r.is_empty()) {
        // "<mode> <type> <sha>\t<path>"
        let Some((meta, path)) = record.split_once('\t') else {
            continue;
        };
        let mut parts = meta.split(' ');
        let (_mode, kind, sha) = (parts.next(), parts.next(), parts.next());
        if kind == Some("blob")
            && let Some(sha) = sha
        {
            entries.push((sha.to_owned(), path.to_owned()));
        }
    }
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut child = Command::new("git")
        .current_dir(git.dir())
        .args(["cat-file", "--batch-check"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run git cat-file")?;
    let input: String = entries.iter().map(|(sha, _)| format!("{sha}\n")).collect();
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    let answers = String::from_utf8_lossy(&out.stdout);
    Ok(answers
        .lines()
        .zip(&entries)
        .filter(|(line, _)| line.ends_with(" missing"))
        .map(|(_, (_, path))| path.clone())
        .collect())
}
