//! PyPI source distributions as git repositories: download with the machine's own pip (so its
//! index and certificate settings apply), unpack, and commit the tree with a fixed identity and
//! date so the commit id is the same on every machine.

use crate::git::Git;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Author and committer date of every imported tree, so that imports are reproducible.
const FIXED_DATE: &str = "2000-01-01T00:00:00+00:00";

/// The Python used to run pip: `PONDER_PIP_PYTHON`, else `python3`.
fn pip_python() -> String {
    std::env::var("PONDER_PIP_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Downloads the source distribution of `name==version` into `dir` (reusing one already there)
/// and returns the archive's path.
pub fn download(name: &str, version: &str, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if let Some(found) = find_archive(dir, name, version)? {
        return Ok(found);
    }
    let python = pip_python();
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--quiet",
        ])
        .arg(format!("{name}=={version}"))
        .arg("-d")
        .arg(dir)
        .output()
        .with_context(|| format!("cannot run {python} -m pip (set PONDER_PIP_PYTHON)"))?;
    if !out.status.success() {
        bail!(
            "pip could not download the source distribution of {name}=={version}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    find_archive(dir, name, version)?.with_context(|| {
        format!(
            "pip reported success but no archive of {name}=={version} is in {}",
            dir.display()
        )
    })
}

fn normalise(s: &str) -> String {
    s.to_ascii_lowercase().replace(['-', '.'], "_")
}

fn find_archive(dir: &Path, name: &str, version: &str) -> Result<Option<PathBuf>> {
    let want = normalise(&format!("{name}-{version}"));
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let stem = file
            .strip_suffix(".tar.gz")
            .or_else(|| file.strip_suffix(".zip"))
            .or_else(|| file.strip_suffix(".tar.bz2"));
        if stem.is_some_and(|s| normalise(s) == want) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Unpacks an archive into `dest`, dropping the single top-level folder sdists have.
pub fn unpack(archive: &Path, dest: &Path) -> Result<()> {
    let staging = tempfile::tempdir_in(dest.parent().unwrap_or(Path::new(".")))?;
    let name = archive.to_string_lossy();
    let file = std::fs::File::open(archive)
        .with_context(|| format!("cannot open {}", archive.display()))?;
    if name.ends_with(".zip") {
        zip::ZipArchive::new(file)
            .and_then(|mut z| z.extract(staging.path()))
            .with_context(|| format!("cannot unpack {}", archive.display()))?;
    } else if name.ends_with(".tar.gz") {
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(staging.path())
            .with_context(|| format!("cannot unpack {}", archive.display()))?;
    } else {
        bail!(
            "{}: unsupported archive type (expected .tar.gz or .zip)",
            archive.display()
        );
    }
    let entries: Vec<_> = std::fs::read_dir(staging.path())?.collect::<Result<_, _>>()?;
    let root = match entries.as_slice() {
        [one] if one.path().is_dir() => one.path(),
        _ => staging.path().to_path_buf(),
    };
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    std::fs::rename(&root, dest)
        .with_context(|| format!("cannot move the unpacked tree to {}", dest.display()))?;
    Ok(())
}

/// Commits everything under `dir` as the first commit of a new repository, with a fixed
/// identity and date. Returns the commit id.
pub fn commit_tree(dir: &Path, message: &str) -> Result<String> {
    let git = Git::new(dir);
    git.run(&["init", "--quiet", "--initial-branch=main"])?;
    // -f: the tree is the distribution as published, whatever its own .gitignore says.
    git.run(&["add", "--all", "--force", "."])?;
    let env = [
        ("GIT_AUTHOR_DATE", FIXED_DATE),
        ("GIT_COMMITTER_DATE", FIXED_DATE),
    ];
    git.run_with_env(&["commit", "--quiet", "--no-verify", "-m", message], &env)?;
    Ok(git.run(&["rev-parse", "HEAD"])?.trim().to_owned())
}

/// Downloads, unpacks and commits `name==version` as a git repository at `dest`.
pub fn import(name: &str, version: &str, archives: &Path, dest: &Path) -> Result<String> {
    let archive = download(name, version, archives)?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    unpack(&archive, dest)?;
    commit_tree(dest, &format!("{name} {version} source distribution"))
}
