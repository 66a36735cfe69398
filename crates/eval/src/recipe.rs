//! From a SWE-bench spec (`python_specs.json` entry) and the repository at the instance's
//! environment commit to a plain [`EnvRecipe`]: what the harness's environment image holds,
//! expressed for a virtual environment instead of conda.

use anyhow::{Context, Result, bail};
use ponder_env::{EnvRecipe, conda_to_pip};
use ponder_repo::git::Git;
use ponder_swebench::dataset::Instance;
use ponder_swebench::specs::{PackageSource, RepoVersionSpec, Specs};
use std::path::Path;

/// The build tools the harness's conda environments held when its images were made. Newer ones
/// change what the benchmark's install steps do: pip >= 25.3 and setuptools >= 80 never make
/// the legacy `setup.py develop` install (so the checkout is not on sys.path, which pylint's
/// tests need), and setuptools 82 no longer ships pkg_resources (pytest's tests import it).
/// Ranges rather than pins, so that old interpreters get the newest version they support.
const ERA_PIP: &str = "pip<25.3";
const ERA_BUILD_TOOLS: &[&str] = &["setuptools<80", "wheel<0.46"];

/// When conda's channels stopped building packages for an old Python: the harness's conda
/// resolved unpinned names for that Python to releases before this date, while PyPI may offer
/// later ones that still install (Cython 3 for Python 3.6, which cannot build 2018's
/// scikit-learn). Anaconda stopped regular 3.6 builds at Python 3.10's release and conda-forge
/// dropped 3.6 then too; conda-forge dropped 3.7 at Python 3.11's release.
fn conda_cutoff(python: &str) -> Option<&'static str> {
    match python {
        "3.5" => Some("2018-09-30"),
        "3.6" => Some("2021-10-04"),
        "3.7" => Some("2022-10-24"),
        _ => None,
    }
}

/// When the harness's environment images were built: unpinned dependencies of SWE-bench
/// instances resolve as PyPI stood before this date unless told otherwise. The pins of the
/// harness's specs fit it (coverage 7.6.4 is there, packaging 24.2 is not), and later releases
/// break instances that resolved in the images (pytest 9, docutils 0.22 without
/// `docutils.utils.roman`).
pub const HARNESS_ERA: &str = "2024-11-01";

/// Which registry snapshot unpinned dependencies resolve against (`--resolve-before`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ResolveBefore {
    /// [`HARNESS_ERA`] for instances created before it; instances created after it, or with
    /// no creation date, resolve against today's registry.
    #[default]
    HarnessEra,
    /// This date (`YYYY-MM-DD`) for every instance.
    Date(String),
    /// Today's registry.
    Latest,
}

/// As `--resolve-before` takes it: `harness-era`, `latest` or the date.
impl std::fmt::Display for ResolveBefore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveBefore::HarnessEra => f.write_str("harness-era"),
            ResolveBefore::Date(date) => f.write_str(date.trim()),
            ResolveBefore::Latest => f.write_str("latest"),
        }
    }
}

impl ResolveBefore {
    /// `YYYY-MM-DD`, `latest` or `harness-era`.
    pub fn parse(text: &str) -> Result<ResolveBefore> {
        match text.trim() {
            "latest" => Ok(ResolveBefore::Latest),
            "harness-era" => Ok(ResolveBefore::HarnessEra),
            date => {
                ponder_env::check_date(date).map_err(|e| {
                    anyhow::anyhow!(
                        "{e} (or `latest` for today's registry, `harness-era` for the default)"
                    )
                })?;
                Ok(ResolveBefore::Date(date.to_owned()))
            }
        }
    }
}

/// What a run sets on every recipe it makes, unless the recipe says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipeDefaults {
    /// The date for recipes that have none of their own; recipes with one (the conda cutoffs
    /// for old Pythons) keep it whatever this says.
    pub resolve_before: ResolveBefore,
}

impl RecipeDefaults {
    /// Checks the settings before a run starts.
    pub fn validate(&self) -> Result<()> {
        if let ResolveBefore::Date(date) = &self.resolve_before {
            ponder_env::check_date(date).map_err(|e| anyhow::anyhow!("--resolve-before: {e}"))?;
        }
        Ok(())
    }

    /// Applies the settings to `recipe`, the recipe of `instance`.
    pub fn apply(&self, recipe: &mut EnvRecipe, instance: &Instance) {
        if recipe.resolve_before.is_some() {
            return;
        }
        match &self.resolve_before {
            ResolveBefore::Date(date) => {
                recipe.resolve_before = Some(date.trim().to_owned());
                recipe.notes.push(format!(
                    "resolved as PyPI stood before {} (--resolve-before)",
                    date.trim()
                ));
            }
            ResolveBefore::HarnessEra => match created_on(instance) {
                Some(day) if day < HARNESS_ERA => {
                    recipe.resolve_before = Some(HARNESS_ERA.to_owned());
                    recipe.notes.push(format!(
                        "resolved as PyPI stood before {HARNESS_ERA}, when the harness's images \
                         were built (--resolve-before latest for today's PyPI)"
                    ));
                }
                Some(day) => recipe.notes.push(format!(
                    "resolved against today's PyPI: the instance was created on {day}, after \
                     the harness's images ({HARNESS_ERA})"
                )),
                None => recipe.notes.push(
                    "resolved against today's PyPI: the instance has no creation date \
                     (created_at), so no registry date applies"
                        .to_owned(),
                ),
            },
            ResolveBefore::Latest => {}
        }
    }
}

/// The day an instance was created (`created_at`'s `YYYY-MM-DD`), when it has a valid one.
fn created_on(instance: &Instance) -> Option<&str> {
    let day = instance.created_at.trim().get(..10)?;
    ponder_env::check_date(day).ok().map(|()| day)
}

/// Packages that left PyPI, with what replaces them (as the harness replaces them).
const REPLACED_PACKAGES: &[(&str, &str)] = &[("types-pkg_resources", "types-setuptools")];

/// The recipe for `instance`, reading dependency files from `git_dir` at the environment commit.
///
/// Dependency files are read at the environment commit, as the harness reads them, or at the
/// base commit when the repository lacks the environment commit (the recipe notes it).
pub fn recipe_for(
    instance: &Instance,
    spec: &RepoVersionSpec,
    git_dir: &Path,
) -> Result<EnvRecipe> {
    let git = Git::new(git_dir);
    let mut commit = instance.env_commit();
    let mut fallback_note = None;
    if !git.has_commit(commit) {
        fallback_note = Some(format!(
            "environment commit {commit} is not in {}; dependency files read at the base commit {} instead",
            git_dir.display(),
            instance.base_commit
        ));
        commit = &instance.base_commit;
    }
    let mut recipe = EnvRecipe::new(spec.python.clone());
    recipe.notes.extend(fallback_note);
    match spec.package_source() {
        PackageSource::None => {}
        PackageSource::RequirementsTxt => {
            let (path, lines) =
                requirements_at(&git, commit, Specs::requirements_paths(&instance.repo))?;
            recipe
                .notes
                .push(format!("requirements from {path} at {commit}"));
            recipe.requirements = lines;
        }
        PackageSource::EnvironmentYml => {
            let paths = Specs::environment_yml_paths(&instance.repo);
            let (path, text) = first_file(&git, commit, paths)?;
            let mapping = conda_to_pip(&text)
                .map_err(|e| anyhow::anyhow!("cannot read {path} at {commit}: {e}"))?;
            recipe.notes.push(format!(
                "conda environment {path} at {commit} mapped to pip"
            ));
            note_mapping(&mut recipe, &mapping);
            recipe.requirements = mapping.requirements;
            recipe.resolve_before = conda_cutoff(&spec.python).map(str::to_owned);
        }
        PackageSource::CondaList(list) => {
            let mapping = conda_to_pip(list)
                .map_err(|e| anyhow::anyhow!("cannot map conda packages {list:?}: {e}"))?;
            note_mapping(&mut recipe, &mapping);
            recipe.requirements = mapping.requirements;
            recipe.resolve_before = conda_cutoff(&spec.python).map(str::to_owned);
        }
    }
    // First, so that the repository's own requirements and the spec's pinned packages (which
    // install after) can still choose other versions.
    recipe.pip = Some(ERA_PIP.to_owned());
    // Isolated builds install their build requirements from the registry; an unpinned
    // setuptools gets one of the harness's era, as in the base.
    recipe.build_constraints = ERA_BUILD_TOOLS.iter().map(|t| (*t).to_owned()).collect();
    recipe
        .requirements
        .splice(0..0, ERA_BUILD_TOOLS.iter().map(|t| (*t).to_owned()));
    recipe.packages = spec.pip_packages.clone();
    // The harness's images keep the checkout at /testbed; here steps run in the work tree.
    recipe.pre_install = spec.pre_install.iter().map(|c| at_work_tree(c)).collect();
    recipe.install = spec.install.as_deref().map(at_work_tree);
    build_offline(&instance.repo, &mut recipe);
    Ok(recipe)
}

/// The build configuration matplotlib reads (`MPLSETUPCFG`): Debian's freetype and qhull instead
/// of the tarballs its setup downloads from hosts outside the package registries.
const MATPLOTLIB_SETUP_CFG: &str = "[libs]\nsystem_freetype = true\nsystem_qhull = true\n";

/// Repository-specific changes that let a build run without the network, each recorded in the
/// recipe's notes (and so in every instance's result).
fn build_offline(repo: &str, recipe: &mut EnvRecipe) {
    if repo == "matplotlib/matplotlib" {
        // The spec's steps that fetch and unpack qhull's source (the download itself is never
        // run, being a download) have nothing to do with the system library.
        let before = recipe.pre_install.len();
        recipe.pre_install.retain(|c| !c.contains("QHULL"));
        if recipe.pre_install.len() < before {
            recipe.notes.push(format!(
                "{} pre_install step(s) that fetch and unpack qhull's source left out",
                before - recipe.pre_install.len()
            ));
        }
        // `build/` is ignored by matplotlib's .gitignore (the harness unpacks qhull there too).
        // The variable is relative: setup.py runs in the work tree; it is set for every step
        // (pre_install and install run as separate scripts).
        recipe.pre_install.extend([
            "mkdir -p build".to_owned(),
            format!("printf '{MATPLOTLIB_SETUP_CFG}' > build/ponder-mplsetup.cfg"),
        ]);
        recipe.env.insert(
            "MPLSETUPCFG".to_owned(),
            "build/ponder-mplsetup.cfg".to_owned(),
        );
        recipe.notes.push(
            "matplotlib is built against the system's freetype and qhull (scripts/setup.sh installs \
             them) because its setup downloads them; image comparisons that draw text can differ \
             from baselines made with freetype 2.6.1"
                .to_owned(),
        );
    }
}

/// Git submodules whose content a package on PyPI supplies: (repository, submodule path, PyPI
/// name). The harness's images hold the checked-out submodule; a snapshot has only the gitlink,
/// and the build then clones it from the submodule's host. astropy's `astropy_helpers` (until
/// 2020) is the case in SWE-bench; its releases are made from the submodule's tags.
const SUBMODULES_FROM_PYPI: &[(&str, &str, &str)] =
    &[("astropy/astropy", "astropy_helpers", "astropy-helpers")];

/// Adds `pre_install` steps that fill the instance's empty submodules from PyPI: the newest
/// release uploaded by the base commit's date (which matches the gitlink's tag where it is
/// one; uv picks it with `--exclude-newer`), unpacked into the submodule's folder. The
/// submodule is then marked not to be updated, so the build's bootstrap does not try to clone
/// it. Steps are first, before the spec's own.
pub fn fill_submodules(
    recipe: &mut EnvRecipe,
    instance: &Instance,
    git_dir: &Path,
    uv: &dyn Fn() -> Result<std::path::PathBuf>,
) -> Result<()> {
    let git = Git::new(git_dir);
    let mut steps = Vec::new();
    for (repo, path, package) in SUBMODULES_FROM_PYPI {
        if instance.repo != *repo {
            continue;
        }
        let entry = git
            .run(&["ls-tree", &instance.base_commit, "--", path])
            .unwrap_or_default();
        if !entry.starts_with("160000 ") {
            continue;
        }
        let date = git
            .run(&["log", "-1", "--format=%cI", &instance.base_commit])?
            .trim()
            .to_owned();
        let version = release_as_of(&uv()?, package, &date, &recipe.python)?;
        recipe.notes.push(format!(
            "submodule {path} filled from PyPI's {package} {version} (the release current at the \
             base commit's date, {date})"
        ));
        steps.push(format!(
            "if [ ! -e {path}/setup.py ]; then d=$(mktemp -d) && \
             python -m pip download --no-deps --no-binary :all: {package}=={version} -d \"$d\" && \
             mkdir -p {path} && tar -xzf \"$d\"/*.tar.gz -C {path} --strip-components=1 && \
             rm -rf \"$d\" && git config submodule.{path}.update none; fi"
        ));
    }
    recipe.pre_install.splice(0..0, steps);
    Ok(())
}

/// The newest version of `package` uploaded no later than `date` that supports `python`.
fn release_as_of(uv: &Path, package: &str, date: &str, python: &str) -> Result<String> {
    use std::io::Write;
    let mut child = std::process::Command::new(uv)
        .args([
            "pip",
            "compile",
            "-",
            "--no-deps",
            "--no-header",
            "--no-annotate",
            "--quiet",
            "--exclude-newer",
            date,
            "--python-version",
            python,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .envs(ponder_env::installer_env())
        .spawn()
        .with_context(|| format!("cannot run {}", uv.display()))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(package.as_bytes())?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{package}==");
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&prefix).map(str::to_owned))
        .with_context(|| {
            format!(
                "uv found no release of {package} as of {date}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })
}

/// Rewrites the harness's checkout path `/testbed` to the step's working directory.
fn at_work_tree(command: &str) -> String {
    command.replace("/testbed/", "./").replace("/testbed", ".")
}

fn note_mapping(recipe: &mut EnvRecipe, mapping: &ponder_env::CondaMapping) {
    for (name, why) in &mapping.dropped {
        recipe
            .notes
            .push(format!("conda package {name} left out: {why}"));
    }
    if let Some(blocker) = mapping.blocker() {
        recipe
            .notes
            .push(format!("environment will lack {blocker}"));
    }
    recipe.notes.extend(mapping.notes.iter().cloned());
}

fn first_file(git: &Git, commit: &str, paths: &[&str]) -> Result<(String, String)> {
    for path in paths {
        if let Ok(text) = git.run(&["show", &format!("{commit}:{path}")]) {
            return Ok(((*path).to_owned(), text));
        }
    }
    bail!(
        "none of {} exists at {commit} in {}; the environment cannot be built",
        paths.join(", "),
        git.dir().display()
    )
}

/// The requirement lines of the first existing file, with `-r` includes inlined (one level, as
/// the harness does) and lines that install the repository itself left out.
fn requirements_at(git: &Git, commit: &str, paths: &[&str]) -> Result<(String, Vec<String>)> {
    let (path, text) = first_file(git, commit, paths)?;
    let dir = Path::new(&path).parent().unwrap_or(Path::new(""));
    let excluded = |line: &str| {
        let l = line.trim();
        l.starts_with("-e .") || l.starts_with('#') || l.starts_with(".[test") || l.is_empty()
    };
    let mut included = Vec::new();
    let mut own = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(file) = trimmed
            .strip_prefix("-r")
            .or_else(|| trimmed.strip_prefix("--requirement"))
        {
            let file = file.trim_start_matches('=').trim();
            let sub = dir.join(file);
            let sub = normalise(&sub);
            let body = git
                .run(&["show", &format!("{commit}:{sub}")])
                .with_context(|| format!("{path} includes {file}, which is missing at {commit}"))?;
            included.extend(body.lines().filter(|l| !excluded(l)).map(str::to_owned));
        } else if !excluded(line) {
            own.push(line.to_owned());
        }
    }
    included.extend(own);
    Ok((
        path,
        included.into_iter().map(|l| replace_packages(&l)).collect(),
    ))
}

/// `a/b/../c` → `a/c`, since git paths must be normalised.
fn normalise(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for comp in path.components() {
        match comp {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

fn replace_packages(line: &str) -> String {
    for (old, new) in REPLACED_PACKAGES {
        if let Some(rest) = line.trim().strip_prefix(old)
            && (rest.is_empty() || rest.starts_with(['<', '>', '=', '!', '~', ' ', ';']))
        {
            return (*new).to_owned();
        }
    }
    line.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance_created(created_at: &str) -> Instance {
        serde_json::from_value(serde_json::json!({
            "instance_id": "o__n-1", "repo": "o/n", "base_commit": "0", "test_patch": "",
            "version": "1.0", "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]",
            "created_at": created_at
        }))
        .unwrap()
    }

    #[test]
    fn instances_before_the_harness_era_resolve_as_of_it_by_default() {
        let defaults = RecipeDefaults::default();
        defaults.validate().unwrap();
        let old = instance_created("2022-01-05T00:00:00Z");
        let mut undated = EnvRecipe::new("3.9");
        defaults.apply(&mut undated, &old);
        assert_eq!(undated.resolve_before.as_deref(), Some(HARNESS_ERA));
        assert!(
            undated
                .notes
                .iter()
                .any(|n| n.contains("--resolve-before latest"))
        );
        // Newer than the images, or of unknown age: today's registry, and the note says why.
        for created in ["2025-03-01T10:00:00Z", "", "yesterday"] {
            let mut recipe = EnvRecipe::new("3.9");
            defaults.apply(&mut recipe, &instance_created(created));
            assert_eq!(recipe.resolve_before, None, "{created:?}");
            assert!(recipe.notes.iter().any(|n| n.contains("today's PyPI")));
        }
        // A conda cutoff is the recipe's own date and stays in every mode.
        for mode in [
            ResolveBefore::HarnessEra,
            ResolveBefore::Latest,
            ResolveBefore::Date("2023-05-01".into()),
        ] {
            let mut conda = EnvRecipe::new("3.6");
            conda.resolve_before = Some("2021-10-04".into());
            RecipeDefaults {
                resolve_before: mode,
            }
            .apply(&mut conda, &old);
            assert_eq!(conda.resolve_before.as_deref(), Some("2021-10-04"));
        }
    }

    #[test]
    fn an_explicit_date_or_latest_replaces_the_harness_era() {
        let new = instance_created("2026-01-05T00:00:00Z");
        let dated = RecipeDefaults {
            resolve_before: ResolveBefore::parse("2026-02-01").unwrap(),
        };
        let mut recipe = EnvRecipe::new("3.12");
        dated.apply(&mut recipe, &new);
        assert_eq!(recipe.resolve_before.as_deref(), Some("2026-02-01"));
        assert!(recipe.notes.iter().any(|n| n.contains("--resolve-before")));
        let latest = RecipeDefaults {
            resolve_before: ResolveBefore::parse("latest").unwrap(),
        };
        let mut recipe = EnvRecipe::new("3.9");
        latest.apply(&mut recipe, &instance_created("2020-01-01"));
        assert_eq!(recipe, EnvRecipe::new("3.9"));
        assert_eq!(
            ResolveBefore::parse(" harness-era ").unwrap(),
            ResolveBefore::HarnessEra
        );
        let bad = ResolveBefore::parse("2024-11-31").unwrap_err().to_string();
        assert!(bad.contains("latest"), "{bad}");
        let unchecked = RecipeDefaults {
            resolve_before: ResolveBefore::Date("2024-13-01".into()),
        };
        assert!(unchecked.validate().is_err());
    }

    #[test]
    fn recipes_carry_the_era_build_tools_before_the_spec_pins() {
        let tmp = tempfile::tempdir().unwrap();
        let git = Git::new(tmp.path());
        git.run(&["init", "-q"]).unwrap();
        std::fs::write(tmp.path().join("requirements.txt"), "six==1.16.0\n").unwrap();
        git.run(&["add", "-A"]).unwrap();
        git.run(&["commit", "-qm", "x"]).unwrap();
        let head = git.run(&["rev-parse", "HEAD"]).unwrap().trim().to_owned();
        let row = serde_json::json!({
            "instance_id": "o__n-1", "repo": "o/n", "base_commit": head, "test_patch": "",
            "version": "1.0", "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]",
            "environment_setup_commit": "0000000000000000000000000000000000000000"
        });
        let instance: Instance = serde_json::from_value(row).unwrap();
        let spec = RepoVersionSpec {
            python: "3.9".into(),
            packages: Some("requirements.txt".into()),
            pip_packages: vec!["setuptools==68.0.0".into()],
            pre_install: vec!["mkdir -p /testbed/build".into()],
            install: Some("python -m pip install -e .".into()),
            ..Default::default()
        };
        let recipe = recipe_for(&instance, &spec, tmp.path()).unwrap();
        assert_eq!(recipe.pip.as_deref(), Some("pip<25.3"));
        assert_eq!(
            recipe.requirements,
            vec!["setuptools<80", "wheel<0.46", "six==1.16.0"]
        );
        assert_eq!(recipe.packages, vec!["setuptools==68.0.0"]);
        assert_eq!(recipe.pre_install, vec!["mkdir -p ./build"]);
        // The environment commit is missing: the base commit's files were used, and it says so.
        assert!(
            recipe.notes.iter().any(|n| n.contains("instead")),
            "{:?}",
            recipe.notes
        );
    }

    #[test]
    fn matplotlib_builds_against_the_system_libraries() {
        let tmp = tempfile::tempdir().unwrap();
        let git = Git::new(tmp.path());
        git.run(&["init", "-q"]).unwrap();
        git.run(&["commit", "-q", "--allow-empty", "-m", "x"])
            .unwrap();
        let head = git.run(&["rev-parse", "HEAD"]).unwrap().trim().to_owned();
        let row = serde_json::json!({
            "instance_id": "matplotlib__matplotlib-1", "repo": "matplotlib/matplotlib",
            "base_commit": head, "test_patch": "", "version": "3.5",
            "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]"
        });
        let instance: Instance = serde_json::from_value(row).unwrap();
        let spec = RepoVersionSpec {
            python: "3.11".into(),
            install: Some("python -m pip install -e .".into()),
            pre_install: vec![
                "apt-get -y update".into(),
                "QHULL_TAR=\"/tmp/qhull-2020-src-8.0.2.tgz\"".into(),
                "wget -O \"$QHULL_TAR\" \"$QHULL_URL\"".into(),
                "tar -xvzf \"$QHULL_TAR\" -C \"$QHULL_BUILD_DIR\"".into(),
            ],
            ..Default::default()
        };
        let recipe = recipe_for(&instance, &spec, tmp.path()).unwrap();
        assert_eq!(recipe.pre_install[0], "apt-get -y update");
        assert!(
            recipe
                .notes
                .iter()
                .any(|n| n.starts_with("3 pre_install step(s)"))
        );
        let steps = recipe.pre_install.join("\n");
        assert!(!steps.contains("QHULL"), "{steps}");
        assert!(steps.contains("system_freetype = true"), "{steps}");
        assert!(steps.ends_with("> build/ponder-mplsetup.cfg"), "{steps}");
        assert_eq!(recipe.env["MPLSETUPCFG"], "build/ponder-mplsetup.cfg");
        assert!(recipe.notes.iter().any(|n| n.contains("freetype 2.6.1")));
        // Other repositories are left as their specs say.
        let other: Instance = serde_json::from_value(serde_json::json!({
            "instance_id": "o__n-1", "repo": "o/n", "base_commit": head, "test_patch": "",
            "version": "1.0", "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]"
        }))
        .unwrap();
        assert_eq!(
            recipe_for(&other, &spec, tmp.path()).unwrap().pre_install,
            spec.pre_install
        );
    }

    #[test]
    fn conda_packages_for_old_pythons_resolve_as_of_the_channels_last_builds() {
        let tmp = tempfile::tempdir().unwrap();
        let git = Git::new(tmp.path());
        git.run(&["init", "-q"]).unwrap();
        std::fs::write(tmp.path().join("requirements.txt"), "six\n").unwrap();
        git.run(&["add", "-A"]).unwrap();
        git.run(&["commit", "-qm", "x"]).unwrap();
        let head = git.run(&["rev-parse", "HEAD"]).unwrap().trim().to_owned();
        let row = serde_json::json!({
            "instance_id": "o__n-1", "repo": "o/n", "base_commit": head, "test_patch": "",
            "version": "1.0", "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]"
        });
        let instance: Instance = serde_json::from_value(row).unwrap();
        let conda = |python: &str| RepoVersionSpec {
            python: python.into(),
            packages: Some("numpy scipy cython".into()),
            ..Default::default()
        };
        let r = recipe_for(&instance, &conda("3.6"), tmp.path()).unwrap();
        assert_eq!(r.resolve_before.as_deref(), Some("2021-10-04"));
        assert!(
            r.requirements.iter().any(|l| l == "cython"),
            "{:?}",
            r.requirements
        );
        assert_eq!(
            recipe_for(&instance, &conda("3.9"), tmp.path())
                .unwrap()
                .resolve_before,
            None
        );
        // requirements.txt was installed with pip by the harness too: no date.
        let pip = RepoVersionSpec {
            python: "3.6".into(),
            packages: Some("requirements.txt".into()),
            ..Default::default()
        };
        assert_eq!(
            recipe_for(&instance, &pip, tmp.path())
                .unwrap()
                .resolve_before,
            None
        );
    }

    #[test]
    fn the_harness_checkout_path_becomes_the_work_tree() {
        assert_eq!(
            at_work_tree("QHULL_BUILD_DIR=\"/testbed/build\""),
            "QHULL_BUILD_DIR=\"./build\""
        );
        assert_eq!(at_work_tree("cd /testbed && make"), "cd . && make");
        assert_eq!(
            at_work_tree("python -m pip install -e ."),
            "python -m pip install -e ."
        );
    }

    #[test]
    fn requirements_follow_includes_and_skip_self_installs() {
        let tmp = tempfile::tempdir().unwrap();
        let git = Git::new(tmp.path());
        git.run(&["init", "-q"]).unwrap();
        std::fs::create_dir_all(tmp.path().join("requirements")).unwrap();
        std::fs::write(
            tmp.path().join("requirements/dev.txt"),
            "-r tests.txt\n-e .\n# comment\npytest==7.0\ntypes-pkg_resources==0.1\n",
        )
        .unwrap();
        std::fs::write(tmp.path().join("requirements/tests.txt"), "six==1.16.0\n").unwrap();
        git.run(&["add", "-A"]).unwrap();
        git.run(&["commit", "-qm", "x"]).unwrap();
        let (path, lines) =
            requirements_at(&git, "HEAD", &["requirements.txt", "requirements/dev.txt"]).unwrap();
        assert_eq!(path, "requirements/dev.txt");
        assert_eq!(
            lines,
            vec!["six==1.16.0", "pytest==7.0", "types-setuptools"]
        );
        let err = requirements_at(&git, "HEAD", &["nope.txt"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.txt"), "{err}");
    }
}
