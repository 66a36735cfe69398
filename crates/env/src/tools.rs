//! The installers ponder uses, and getting them without anyone installing them by hand.
//!
//! uv is fast but refuses Python 2 (it needs the `-I` flag, which 2.7 lacks); measured on this
//! machine it creates and fills environments for every CPython from 3.6 to 3.13. pip (through
//! `python -m venv`, or virtualenv for 2.7) works everywhere and is the fallback. uv and
//! virtualenv come from PyPI into private virtual environments under the tools folder, built
//! once through the sandbox and reused.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ponder_sandbox::Sandbox;
use serde::{Deserialize, Serialize};

use crate::EnvError;
use crate::python::{Interpreter, Interpreters};
use crate::run::{StepRunner, host_installer_env, path_with};

/// The installer that builds an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    Uv,
    Pip,
}

impl Tool {
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Uv => "uv",
            Tool::Pip => "pip",
        }
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which installer the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    /// uv where it works (CPython 3.6 and newer), pip otherwise.
    #[default]
    Auto,
    Uv,
    Pip,
}

/// The oldest CPython uv handles here (2.7 is refused by uv itself).
pub const UV_MIN_PYTHON: (u32, u32) = (3, 6);

impl ToolChoice {
    /// The tool for this interpreter; asking for uv on a Python it cannot serve is an error.
    pub fn resolve(self, python: &Interpreter) -> Result<Tool, EnvError> {
        let uv_ok = python.minor() >= UV_MIN_PYTHON;
        match self {
            ToolChoice::Auto if uv_ok => Ok(Tool::Uv),
            ToolChoice::Auto | ToolChoice::Pip => Ok(Tool::Pip),
            ToolChoice::Uv if uv_ok => Ok(Tool::Uv),
            ToolChoice::Uv => Err(EnvError::Tool(format!(
                "uv cannot build environments for Python {} (it needs {}.{} or newer); use the \
                 pip tool instead",
                python.version_string(),
                UV_MIN_PYTHON.0,
                UV_MIN_PYTHON.1
            ))),
        }
    }
}

/// What ponder installs uv from; `PONDER_UV_REQUIREMENT` overrides it.
pub const UV_REQUIREMENT: &str = "uv==0.13.9";
/// The last virtualenv that still creates Python 2.7 environments.
pub const VIRTUALENV_REQUIREMENT: &str = "virtualenv==20.21.1";

/// Where the private tools live and how to build them.
pub(crate) struct ToolBox<'a> {
    pub dir: &'a Path,
    pub download_cache: &'a Path,
    pub sandbox: &'a Sandbox,
    pub pythons: &'a Interpreters,
    pub timeout: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct ToolMarker {
    requirement: String,
    version: String,
    python: String,
}

impl ToolBox<'_> {
    /// The private uv binary, installed from PyPI on first use.
    pub fn uv(&self) -> Result<PathBuf, EnvError> {
        let requirement =
            std::env::var("PONDER_UV_REQUIREMENT").unwrap_or_else(|_| UV_REQUIREMENT.to_string());
        let dir = self.ensure("uv", &[requirement.as_str()], &["-m", "uv", "--version"])?;
        Ok(dir.join("venv/bin/uv"))
    }

    /// A Python (3.8+) that can run `-m virtualenv`, for environments `venv` cannot make.
    pub fn virtualenv_python(&self) -> Result<PathBuf, EnvError> {
        let dir = self.ensure(
            "virtualenv",
            &[VIRTUALENV_REQUIREMENT],
            &["-m", "virtualenv", "--version"],
        )?;
        Ok(dir.join("venv/bin/python"))
    }

    /// Builds `<tools>/<name>/venv` with `requirements` once; later calls reuse it. A file lock
    /// keeps concurrent callers from building it twice. `check` runs with the venv's Python
    /// and its output is recorded as the tool's version.
    pub fn ensure(
        &self,
        name: &str,
        requirements: &[&str],
        check: &[&str],
    ) -> Result<PathBuf, EnvError> {
        let requirement = requirements.join(" ");
        let requirement = requirement.as_str();
        let dir = self.dir.join(name);
        let marker_path = dir.join("ready.json");
        let venv_python = dir.join("venv/bin/python");
        let ready = |path: &Path| -> bool {
            fs::read(path)
                .ok()
                .and_then(|b| serde_json::from_slice::<ToolMarker>(&b).ok())
                .is_some_and(|m| m.requirement == requirement)
                && venv_python.exists()
        };
        if ready(&marker_path) {
            return Ok(dir);
        }
        fs::create_dir_all(self.dir)
            .with_context(|| format!("cannot create the tools folder {}", self.dir.display()))?;
        let lock_path = self.dir.join(format!("{name}.lock"));
        let lock = File::create(&lock_path)
            .with_context(|| format!("cannot create lock file {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        if ready(&marker_path) {
            return Ok(dir);
        }
        let python = self.pythons.newest_at_least((3, 8)).ok_or_else(|| {
            EnvError::Tool(format!(
                "installing {name} needs a Python 3.8 or newer to run it; found {}. Install one \
                 with pyenv or point PONDER_PYTHONS at one",
                self.pythons.summary()
            ))
        })?;
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove the half-built {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let pip_cache = self.download_cache.join("pip");
        let mut env = host_installer_env();
        env.push(("PIP_CACHE_DIR".into(), pip_cache.display().to_string()));
        env.push(("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()));
        env.push(("PATH".into(), path_with(&dir.join("venv/bin"))));
        let mut runner = StepRunner::new(
            self.sandbox,
            &dir.join("build.log"),
            vec![dir.clone(), pip_cache],
            env,
            self.timeout,
        )?;
        runner.note(&format!("installing {requirement} with {python}"));
        let fail = |reason: String, log: &Path| {
            EnvError::Tool(format!(
                "could not install {requirement} into {}: {reason}\nlog: {}",
                dir.display(),
                log.display()
            ))
        };
        let venv = dir.join("venv");
        let steps: Vec<(&str, Vec<String>)> = vec![
            (
                "venv",
                vec![
                    python.path.display().to_string(),
                    "-m".into(),
                    "venv".into(),
                    venv.display().to_string(),
                ],
            ),
            (
                "install",
                vec![
                    venv_python.display().to_string(),
                    "-m".into(),
                    "pip".into(),
                    "install".into(),
                ]
                .into_iter()
                .chain(requirements.iter().map(|r| r.to_string()))
                .collect(),
            ),
        ];
        for (label, argv) in steps {
            if let Err(f) = runner.run_checked(label, &argv, &dir, &[])? {
                return Err(fail(f.reason, &runner.log_path));
            }
        }
        let mut argv = vec![venv_python.display().to_string()];
        argv.extend(check.iter().map(|s| s.to_string()));
        let out = match runner.run_checked("check", &argv, &dir, &[])? {
            Ok(out) => out,
            Err(f) => return Err(fail(f.reason, &runner.log_path)),
        };
        runner.flush();
        let marker = ToolMarker {
            requirement: requirement.to_string(),
            version: out.output.trim().to_string(),
            python: python.version_string(),
        };
        crate::store::write_json_atomic(&marker_path, &marker)?;
        Ok(dir)
    }
}
