//! Where a repository's history comes from, and a cache that turns every kind of source into a
//! local git directory ponder can check commits out of.

use crate::git::Git;
use crate::sdist;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::path::{Path, PathBuf};

/// A place repositories come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoSource {
    /// A folder of repositories named `owner__name` (bare or not, with or without `.git`).
    Mirrors(PathBuf),
    /// A clone URL template with `{repo}` (owner/name), `{owner}` and `{name}` placeholders, for
    /// machines that can reach a git host; clones are kept in the store's cache.
    CloneUrl(String),
    /// One repository on disk, used whatever the task's repository is called.
    Local(PathBuf),
    /// A PyPI source distribution (`pypi:NAME==VERSION`), unpacked and committed as a one-commit
    /// git repository: real code with its own tests, available wherever PyPI is.
    Pypi { name: String, version: String },
}

impl RepoSource {
    /// Reads the `--repos` argument: `pypi:NAME==VERSION`, a URL template containing `{repo}`,
    /// `{owner}` or `{name}`, a git repository (used as is), or a folder of mirrors.
    pub fn parse(arg: &str) -> Result<RepoSource> {
        if let Some(spec) = arg.strip_prefix("pypi:") {
            let (name, version) = spec
                .split_once("==")
                .with_context(|| format!("{arg:?}: a PyPI source is written pypi:NAME==VERSION"))?;
            if name.is_empty() || version.is_empty() {
                bail!("{arg:?}: a PyPI source is written pypi:NAME==VERSION");
            }
            return Ok(RepoSource::Pypi {
                name: name.to_owned(),
                version: version.to_owned(),
            });
        }
        if ["{repo}", "{owner}", "{name}"]
            .iter()
            .any(|p| arg.contains(p))
        {
            return Ok(RepoSource::CloneUrl(arg.to_owned()));
        }
        let path = PathBuf::from(arg);
        if !path.is_dir() {
            bail!(
                "{arg:?} is neither a folder of repository mirrors, a git repository, \
                 pypi:NAME==VERSION nor a clone URL template containing {{repo}}"
            );
        }
        if is_git_dir(&path) {
            Ok(RepoSource::Local(path))
        } else {
            Ok(RepoSource::Mirrors(path))
        }
    }
}

fn is_git_dir(path: &Path) -> bool {
    path.join(".git").exists() || (path.join("HEAD").is_file() && path.join("objects").is_dir())
}

/// Resolves sources to local git directories, caching clones and unpacked distributions under
/// one folder. Safe to share between threads and processes: work on one entry is serialised by
/// a file lock.
#[derive(Debug, Clone)]
pub struct RepoStore {
    cache: PathBuf,
}

impl RepoStore {
    pub fn new(cache: impl Into<PathBuf>) -> Self {
        Self {
            cache: cache.into(),
        }
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    fn lock(&self, key: &str) -> Result<File> {
        let dir = self.cache.join("locks");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let file = File::create(dir.join(format!("{key}.lock")))?;
        file.lock().context("cannot lock the repository cache")?;
        Ok(file)
    }

    /// The local git directory holding `repo` (`owner/name`) from `source`.
    pub fn resolve(&self, source: &RepoSource, repo: &str) -> Result<PathBuf> {
        let slug = repo.replace('/', "__");
        match source {
            RepoSource::Local(path) => Ok(path.clone()),
            RepoSource::Mirrors(dir) => {
                let name = repo.rsplit('/').next().unwrap_or(repo);
                let candidates = [
                    dir.join(&slug),
                    dir.join(format!("{slug}.git")),
                    dir.join(name),
                    dir.join(format!("{name}.git")),
                ];
                candidates
                    .iter()
                    .find(|p| is_git_dir(p))
                    .cloned()
                    .with_context(|| {
                        format!(
                            "no mirror of {repo} in {}: expected a git repository at {}; clone it \
                             there, or pass --repos with a clone URL template",
                            dir.display(),
                            candidates[0].display()
                        )
                    })
            }
            RepoSource::CloneUrl(template) => {
                let (owner, name) = repo.split_once('/').unwrap_or(("", repo));
                let url = template
                    .replace("{repo}", repo)
                    .replace("{owner}", owner)
                    .replace("{name}", name);
                let dest = self.cache.join("clones").join(format!("{slug}.git"));
                let _lock = self.lock(&format!("clone-{slug}"))?;
                if !dest.join("HEAD").exists() {
                    std::fs::create_dir_all(dest.parent().expect("has parent"))?;
                    let tmp = dest.with_extension("partial");
                    let _ = std::fs::remove_dir_all(&tmp);
                    Git::new(&self.cache)
                        .run(&["clone", "--bare", "--quiet", &url, &tmp.to_string_lossy()])
                        .with_context(|| format!("cannot clone {repo} from {url}"))?;
                    std::fs::rename(&tmp, &dest)?;
                }
                Ok(dest)
            }
            RepoSource::Pypi { name, version } => {
                let dest = self.cache.join("pypi").join(format!("{name}-{version}"));
                let _lock = self.lock(&format!("pypi-{name}-{version}"))?;
                if !dest.join(".git").exists() {
                    sdist::import(name, version, &self.cache.join("sdists"), &dest)?;
                }
                Ok(dest)
            }
        }
    }

    /// Makes sure `commit` is present in `git_dir`, fetching it from the source's remote when
    /// the source is a clone; otherwise fails with what to do.
    pub fn ensure_commit(&self, source: &RepoSource, git_dir: &Path, commit: &str) -> Result<()> {
        let git = Git::new(git_dir);
        if git.has_commit(commit) {
            return Ok(());
        }
        if let RepoSource::CloneUrl(_) = source {
            let _ = git.run(&["fetch", "--quiet", "origin", commit]);
            let _ = git.run(&["fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*"]);
            if git.has_commit(commit) {
                return Ok(());
            }
        }
        bail!(
            "commit {commit} is not in {}: update that repository (git fetch --all) or point \
             --repos at a complete clone",
            git_dir.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_of_source() {
        assert_eq!(
            RepoSource::parse("pypi:flask==2.0.3").unwrap(),
            RepoSource::Pypi {
                name: "flask".into(),
                version: "2.0.3".into()
            }
        );
        assert!(RepoSource::parse("pypi:flask").is_err());
        assert!(matches!(
            RepoSource::parse("https://example.invalid/{repo}.git").unwrap(),
            RepoSource::CloneUrl(_)
        ));
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            RepoSource::parse(tmp.path().to_str().unwrap()).unwrap(),
            RepoSource::Mirrors(_)
        ));
        Git::new(tmp.path()).run(&["init", "-q"]).unwrap();
        assert!(matches!(
            RepoSource::parse(tmp.path().to_str().unwrap()).unwrap(),
            RepoSource::Local(_)
        ));
        let err = RepoSource::parse("/does/not/exist")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pypi:NAME==VERSION"), "{err}");
    }
}
