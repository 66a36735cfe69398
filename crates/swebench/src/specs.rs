//! Per-repository, per-version environment specs (`python_specs.json`): the Python version,
//! packages, install steps and test command the harness uses for each `repo` + `version`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The spec of one repository at one version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RepoVersionSpec {
    /// Minor Python version, e.g. "3.9".
    pub python: String,
    /// `requirements.txt`, `environment.yml`, or a space-separated conda package list.
    #[serde(default)]
    pub packages: Option<String>,
    #[serde(default)]
    pub pip_packages: Vec<String>,
    #[serde(default)]
    pub pre_install: Vec<String>,
    #[serde(default)]
    pub install: Option<String>,
    #[serde(default)]
    pub eval_commands: Vec<String>,
    #[serde(default)]
    pub test_cmd: Option<String>,
    #[serde(default)]
    pub no_use_env: Option<bool>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// What `packages` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSource<'a> {
    None,
    /// Requirements files read from the repository at the environment commit.
    RequirementsTxt,
    /// A conda environment file read from the repository at the environment commit.
    EnvironmentYml,
    /// Conda package names, space separated (possibly quoted and pinned).
    CondaList(&'a str),
}

impl RepoVersionSpec {
    pub fn package_source(&self) -> PackageSource<'_> {
        match self.packages.as_deref().map(str::trim) {
            None | Some("") => PackageSource::None,
            Some("requirements.txt") => PackageSource::RequirementsTxt,
            Some("environment.yml") => PackageSource::EnvironmentYml,
            Some(list) => PackageSource::CondaList(list),
        }
    }
}

/// All specs: repository → version → spec.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Specs(pub BTreeMap<String, BTreeMap<String, RepoVersionSpec>>);

impl Specs {
    pub fn load(path: &Path) -> Result<Specs> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read environment specs {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a python_specs.json ({{repo: {{version: spec}}}})",
                path.display()
            )
        })
    }

    /// The spec file to use when the user names none: `python_specs.json` beside the dataset.
    pub fn default_path_for(dataset: &Path) -> PathBuf {
        dataset
            .parent()
            .unwrap_or(Path::new("."))
            .join("python_specs.json")
    }

    pub fn get(&self, repo: &str, version: &str) -> Option<&RepoVersionSpec> {
        self.0.get(repo)?.get(version)
    }

    /// An explanation for a missing spec, naming the versions that do exist.
    pub fn missing_reason(&self, repo: &str, version: &str) -> String {
        match self.0.get(repo) {
            None => format!(
                "no environment spec for repository {repo}; add it to python_specs.json (--specs)"
            ),
            Some(versions) => format!(
                "no environment spec for {repo} version {version} (known: {}); add it to python_specs.json (--specs)",
                versions.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Files, in order of preference, that hold the requirements of `repo` (as the harness
    /// looks for them at the environment commit).
    pub fn requirements_paths(repo: &str) -> &'static [&'static str] {
        match repo {
            "django/django" => &["tests/requirements/py3.txt"],
            "matplotlib/matplotlib" => &[
                "requirements/dev/dev-requirements.txt",
                "requirements/testing/travis_all.txt",
            ],
            "pallets/flask" => &["requirements/dev.txt"],
            "pylint-dev/pylint" => &["requirements_test.txt"],
            "pyvista/pyvista" => &["requirements_test.txt", "requirements.txt"],
            "sqlfluff/sqlfluff" => &["requirements_dev.txt"],
            "sympy/sympy" => &["requirements-dev.txt", "requirements-test.txt"],
            "dbt-labs/dbt-core" => &["dev-requirements.txt", "dev_requirements.txt"],
            _ => &["requirements.txt"],
        }
    }

    /// Files that hold the conda environment of `repo`.
    pub fn environment_yml_paths(repo: &str) -> &'static [&'static str] {
        match repo {
            "pydata/xarray" => &["ci/requirements/environment.yml", "environment.yml"],
            _ => &["environment.yml"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shared_specs() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/swebench/python_specs.json");
        if !path.exists() {
            eprintln!("SKIPPED: {} not present", path.display());
            return;
        }
        let specs = Specs::load(&path).unwrap();
        let flask = specs.get("pallets/flask", "2.0").unwrap();
        assert_eq!(flask.python, "3.9");
        assert_eq!(flask.package_source(), PackageSource::RequirementsTxt);
        assert!(flask.pip_packages.iter().any(|p| p == "Werkzeug==2.3.7"));
        let mpl = specs.get("matplotlib/matplotlib", "3.5").unwrap();
        assert_eq!(mpl.package_source(), PackageSource::EnvironmentYml);
        let sympy = specs.get("sympy/sympy", "1.1").unwrap();
        assert_eq!(
            sympy.package_source(),
            PackageSource::CondaList("mpmath flake8")
        );
        assert!(specs.missing_reason("pallets/flask", "9.9").contains("2.0"));
    }
}
