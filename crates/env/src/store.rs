//! The content-addressed store of base environments: `<root>/envs/<hash>/`.
//!
//! A base environment is a virtual environment holding an interpreter and every requirement of
//! a recipe. Its folder name is a hash of everything that defines it (interpreter, requirement
//! lines, packages, variables, installer, [`RECIPE_FORMAT`]), so equal recipes share one build.
//! Layout of one entry:
//!
//! ```text
//! envs/<hash>/venv/              the virtual environment (read-only once ready)
//! envs/<hash>/requirements.txt   the requirement lines as installed
//! envs/<hash>/build.log          every build step's command, output, exit and duration
//! envs/<hash>/status.json        state (building / ready / failed), reason, time, size
//! envs/<hash>.lock               held while building; concurrent builders wait on it
//! ```
//!
//! Invariant: `status.json` says `ready` only after every step succeeded, and it is written
//! last (atomically), so a folder without it, or one still saying `building` while nobody holds
//! the lock, is a crashed build and is rebuilt from scratch.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ponder_sandbox::Sandbox;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::EnvError;
use crate::dated_index::DatedIndex;
use crate::python::{Interpreter, Interpreters};
use crate::recipe::{BaseKey, EnvRecipe, requirement_name};
use crate::run::{StepRunner, host_installer_env, path_with};
use crate::tools::{Tool, ToolBox, ToolChoice};
use crate::unavailable::unavailable_requirements;

/// Bumped whenever the way a base environment is built changes, so old builds are not reused.
/// 2: bytecode compiled at install time (as pip does), unavailable requirements dropped.
pub const RECIPE_FORMAT: u32 = 2;

/// Bumped whenever the builder learns to build something it could not (a new retry path), so
/// that failures it recorded earlier are tried again instead of being reported as remembered.
/// 1: pip's legacy setup.py path as the last retry of a failed distribution build.
pub const BUILDER_VERSION: u32 = 1;

/// How many requirement lines a build may drop as unavailable before it gives up.
pub const MAX_DROPPED_REQUIREMENTS: usize = 20;

/// Default time allowed for one build step.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub tool: ToolChoice,
    /// Rebuild even when a ready or failed build exists.
    pub force: bool,
    /// Time allowed for each build step.
    pub step_timeout: Duration,
    /// Who needs this environment, for error messages ("django/django 3.0").
    pub needed_by: Option<String>,
    /// How many unavailable requirement lines the build may drop before it fails (0: none).
    /// A limit, not part of the environment's identity.
    pub max_dropped: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            tool: ToolChoice::Auto,
            force: false,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            needed_by: None,
            max_dropped: MAX_DROPPED_REQUIREMENTS,
        }
    }
}

/// The lifecycle of a base environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvState {
    Building,
    Ready,
    Failed,
    /// Listing only: a folder whose build stopped without finishing (no status, or `building`
    /// while nobody builds it).
    Interrupted,
    /// Listing only: built by a ponder with another [`RECIPE_FORMAT`]; never reused, so only
    /// taking space until removed.
    Outdated,
}

impl std::fmt::Display for EnvState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EnvState::Building => "building",
            EnvState::Ready => "ready",
            EnvState::Failed => "failed",
            EnvState::Interrupted => "interrupted",
            EnvState::Outdated => "outdated",
        })
    }
}

/// A requirement line left out of a base environment because the installer said no version of
/// it can be installed here (not on the registry, no such version, none for this Python).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedRequirement {
    /// The line as the recipe gave it.
    pub requirement: String,
    /// What the installer said about it.
    pub reason: String,
}

/// `status.json` of one base environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvStatus {
    pub format: u32,
    /// [`BUILDER_VERSION`] of the ponder that wrote it (0 before it was recorded).
    #[serde(default)]
    pub builder: u32,
    pub hash: String,
    pub state: EnvState,
    /// Why the build failed (the failing step and its error lines).
    pub reason: Option<String>,
    /// Full interpreter version, e.g. "3.11.7".
    pub python: String,
    pub python_path: PathBuf,
    pub tool: Tool,
    /// Output of `uv --version` when uv built it.
    pub tool_version: Option<String>,
    /// Seconds since the Unix epoch when the build started.
    pub created_unix: u64,
    pub build_secs: f64,
    /// Disk usage of the folder, like `du` (hard links counted once).
    pub size_bytes: u64,
    /// The venv's site-packages folders (purelib, then platlib when different).
    pub site_packages: Vec<PathBuf>,
    pub requirements: Vec<String>,
    pub packages: Vec<String>,
    /// The recipe's pip pin, if any.
    #[serde(default)]
    pub pip: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Requirement lines the build left out because they cannot be installed here; the rest
    /// of `requirements` is installed. Never holds an entry of `packages`.
    #[serde(default)]
    pub dropped: Vec<DroppedRequirement>,
    /// Process that wrote the status (for diagnosing interrupted builds).
    pub pid: u32,
}

/// What a recipe resolves to before anything is built.
#[derive(Debug, Clone)]
pub struct BasePlan {
    pub hash: String,
    pub python: Interpreter,
    pub tool: Tool,
    pub dir: PathBuf,
}

/// A ready base environment.
#[derive(Debug, Clone)]
pub struct BaseEnv {
    pub hash: String,
    pub dir: PathBuf,
    pub status: EnvStatus,
    /// True when an existing build was reused, false when this call built it.
    pub reused: bool,
    /// Time this call spent (waiting for another builder included).
    pub elapsed: Duration,
}

impl BaseEnv {
    pub fn venv(&self) -> PathBuf {
        self.dir.join("venv")
    }
    pub fn bin_dir(&self) -> PathBuf {
        self.venv().join("bin")
    }
    pub fn python(&self) -> PathBuf {
        self.bin_dir().join("python")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("build.log")
    }
}

/// One line of `ponder env list`.
#[derive(Debug, Clone, Serialize)]
pub struct EnvSummary {
    pub hash: String,
    pub state: EnvState,
    pub python: Option<String>,
    pub tool: Option<Tool>,
    pub size_bytes: u64,
    pub created_unix: Option<u64>,
    pub build_secs: Option<f64>,
    /// Why the build failed; for a ready one that dropped requirements, which ones.
    pub reason: Option<String>,
    /// Requirement lines left out as unavailable (see [`EnvStatus::dropped`]).
    pub dropped: Vec<DroppedRequirement>,
    pub dir: PathBuf,
}

/// Base environments under one root, plus the tools and download caches they are built with.
#[derive(Debug, Clone)]
pub struct EnvStore {
    root: PathBuf,
    tools_dir: PathBuf,
    download_cache: PathBuf,
    sandbox: Sandbox,
    pythons: Interpreters,
}

impl EnvStore {
    /// A store at `root` (created on first build), discovering interpreters now.
    pub fn new(root: impl Into<PathBuf>, sandbox: Sandbox) -> EnvStore {
        let root = root.into();
        EnvStore {
            tools_dir: root.join("tools"),
            download_cache: root.join("cache"),
            root,
            sandbox,
            pythons: Interpreters::discover(),
        }
    }

    /// `PONDER_CACHE`, else `$XDG_CACHE_HOME/ponder`, else `~/.cache/ponder`. It must not be
    /// under /tmp: the sandbox gives every command a private /tmp, where the store would be
    /// invisible.
    pub fn default_root() -> PathBuf {
        if let Some(p) = std::env::var_os("PONDER_CACHE").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
            return PathBuf::from(p).join("ponder");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".cache/ponder")
    }

    /// Uses these interpreters instead of discovering.
    pub fn with_interpreters(mut self, pythons: Interpreters) -> EnvStore {
        self.pythons = pythons;
        self
    }

    /// Keeps the private tools (uv, virtualenv) somewhere else, e.g. shared between stores.
    pub fn with_tools_dir(mut self, dir: impl Into<PathBuf>) -> EnvStore {
        self.tools_dir = dir.into();
        self
    }

    /// Keeps pip's and uv's download caches somewhere else (`<dir>/pip`, `<dir>/uv`).
    pub fn with_download_cache(mut self, dir: impl Into<PathBuf>) -> EnvStore {
        self.download_cache = dir.into();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn envs_dir(&self) -> PathBuf {
        self.root.join("envs")
    }
    pub fn interpreters(&self) -> &Interpreters {
        &self.pythons
    }
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }
    pub(crate) fn tools_dir(&self) -> &Path {
        &self.tools_dir
    }
    /// What every build step must see even if it lives under /tmp (which the sandbox replaces
    /// with a private one): the store, the tools and the download caches.
    pub(crate) fn readable_paths(&self) -> Vec<PathBuf> {
        vec![
            self.root().to_path_buf(),
            self.tools_dir().to_path_buf(),
            self.pip_cache(),
            self.uv_cache(),
        ]
    }

    pub(crate) fn pip_cache(&self) -> PathBuf {
        self.download_cache.join("pip")
    }
    pub(crate) fn uv_cache(&self) -> PathBuf {
        self.download_cache.join("uv")
    }

    /// A private tool: a virtual environment `<tools>/<name>/venv` with `requirements` from the
    /// package index, built once with the newest Python 3.8+ and reused after. `check` runs with
    /// its Python to prove it works. Returns `<tools>/<name>`.
    pub fn tool(
        &self,
        name: &str,
        requirements: &[&str],
        check: &[&str],
        timeout: Duration,
    ) -> Result<PathBuf, EnvError> {
        self.toolbox(timeout).ensure(name, requirements, check)
    }

    /// ponder's private uv (installed from PyPI on first use).
    pub fn uv(&self, timeout: Duration) -> Result<PathBuf, EnvError> {
        self.toolbox(timeout).uv()
    }

    pub(crate) fn toolbox(&self, timeout: Duration) -> ToolBox<'_> {
        ToolBox {
            dir: &self.tools_dir,
            download_cache: &self.download_cache,
            sandbox: &self.sandbox,
            pythons: &self.pythons,
            timeout,
        }
    }

    /// Variables every build step gets: the host's installer settings, private caches, no
    /// Python downloads by uv, bytecode compilation by uv where it can (see
    /// [`uv_compiles_bytecode`]), and the recipe's own variables.
    pub(crate) fn build_env(
        &self,
        venv: &Path,
        python: (u32, u32),
        recipe_env: &BTreeMap<String, String>,
    ) -> Vec<(String, String)> {
        let mut env = host_installer_env();
        env.extend([
            (
                "PIP_CACHE_DIR".to_string(),
                self.pip_cache().display().to_string(),
            ),
            (
                "UV_CACHE_DIR".to_string(),
                self.uv_cache().display().to_string(),
            ),
            ("UV_PYTHON_DOWNLOADS".to_string(), "never".to_string()),
            ("PIP_DISABLE_PIP_VERSION_CHECK".to_string(), "1".to_string()),
            ("PYTHONNOUSERSITE".to_string(), "1".to_string()),
            ("VIRTUAL_ENV".to_string(), venv.display().to_string()),
            ("PATH".to_string(), path_with(&venv.join("bin"))),
        ]);
        // pip writes .pyc files at install time and uv does not unless asked. Without them a
        // read-only base compiles at every import, and under `-W error` a compile-time
        // DeprecationWarning (an invalid escape in an old package) becomes a SyntaxError.
        if uv_compiles_bytecode(python) {
            env.push(("UV_COMPILE_BYTECODE".to_string(), "1".to_string()));
        }
        env.extend(recipe_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// Resolves the interpreter, the tool and the hash without building anything.
    pub fn plan(&self, recipe: &EnvRecipe, opts: &BuildOptions) -> Result<BasePlan, EnvError> {
        recipe.validate()?;
        let needed_by = opts.needed_by.as_deref().unwrap_or("the recipe");
        let python = self.pythons.require(&recipe.python, needed_by)?.clone();
        let tool = opts.tool.resolve(&python)?;
        let key = BaseKey {
            format: RECIPE_FORMAT,
            python_version: python.version_string(),
            python_path: python.path.display().to_string(),
            tool: tool.as_str(),
            requirements: recipe.requirement_lines(),
            packages: recipe.package_list(),
            pip: recipe.pip.as_deref().map(str::trim),
            env: &recipe.env,
            resolve_before: recipe.resolve_before.as_deref().map(str::trim),
            // pip bases with a date were built undated before the dated index existed.
            dated_index: (tool == Tool::Pip && recipe.resolve_before.is_some()).then_some(1),
        };
        let bytes = serde_json::to_vec(&key).context("cannot serialise the recipe key")?;
        let hash = hex::encode(&Sha256::digest(&bytes)[..8]);
        Ok(BasePlan {
            dir: self.envs_dir().join(&hash),
            hash,
            python,
            tool,
        })
    }

    /// Returns the ready base environment for `recipe`, building it if needed. Concurrent
    /// callers (threads or processes) asking for the same one wait for a single build. A failed
    /// build is remembered and reported without retrying unless `opts.force`.
    pub fn ensure_base(
        &self,
        recipe: &EnvRecipe,
        opts: &BuildOptions,
    ) -> Result<BaseEnv, EnvError> {
        let started = Instant::now();
        let plan = self.plan(recipe, opts)?;
        let reuse = |status: EnvStatus| BaseEnv {
            hash: plan.hash.clone(),
            dir: plan.dir.clone(),
            status,
            reused: true,
            elapsed: started.elapsed(),
        };
        // Fast path: a ready environment is never modified, so no lock is needed to use it.
        if !opts.force {
            match read_status(&plan.dir) {
                Some(s)
                    if s.state == EnvState::Ready && plan.dir.join("venv/bin/python").exists() =>
                {
                    return Ok(reuse(s));
                }
                Some(s) if s.state == EnvState::Failed && s.builder >= BUILDER_VERSION => {
                    return Err(previously_failed(&plan, s));
                }
                _ => {}
            }
        }
        let envs = self.envs_dir();
        fs::create_dir_all(&envs)
            .with_context(|| format!("cannot create the environment store {}", envs.display()))?;
        let lock_path = envs.join(format!("{}.lock", plan.hash));
        let lock = File::create(&lock_path)
            .with_context(|| format!("cannot create lock file {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        // Whoever held the lock before us may have finished the job.
        if !opts.force {
            match read_status(&plan.dir) {
                Some(s)
                    if s.state == EnvState::Ready && plan.dir.join("venv/bin/python").exists() =>
                {
                    return Ok(reuse(s));
                }
                Some(s) if s.state == EnvState::Failed && s.builder >= BUILDER_VERSION => {
                    return Err(previously_failed(&plan, s));
                }
                _ => {}
            }
        }
        let result = self.build(&plan, recipe, opts);
        drop(lock);
        result.map(|status| BaseEnv {
            hash: plan.hash.clone(),
            dir: plan.dir.clone(),
            status,
            reused: false,
            elapsed: started.elapsed(),
        })
    }

    /// Builds into `plan.dir` from scratch. Called with the lock held.
    fn build(
        &self,
        plan: &BasePlan,
        recipe: &EnvRecipe,
        opts: &BuildOptions,
    ) -> Result<EnvStatus, EnvError> {
        let started = Instant::now();
        let dir = &plan.dir;
        if dir.exists() {
            fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear the old build in {}", dir.display()))?;
        }
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let venv = dir.join("venv");
        let venv_python = venv.join("bin/python");
        let mut status = EnvStatus {
            format: RECIPE_FORMAT,
            builder: BUILDER_VERSION,
            hash: plan.hash.clone(),
            state: EnvState::Building,
            reason: None,
            python: plan.python.version_string(),
            python_path: plan.python.path.clone(),
            tool: plan.tool,
            tool_version: None,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            build_secs: 0.0,
            size_bytes: 0,
            site_packages: Vec::new(),
            requirements: recipe.requirement_lines(),
            packages: recipe.package_list(),
            pip: recipe.pip.clone(),
            env: recipe.env.clone(),
            dropped: Vec::new(),
            pid: std::process::id(),
        };
        write_json_atomic(&dir.join("status.json"), &status)?;

        let log_path = dir.join("build.log");
        let fail = |status: &mut EnvStatus, reason: String| -> EnvError {
            status.state = EnvState::Failed;
            status.reason = Some(reason.clone());
            status.build_secs = started.elapsed().as_secs_f64();
            status.size_bytes = disk_usage(dir);
            if let Err(e) = write_json_atomic(&dir.join("status.json"), status) {
                return e;
            }
            EnvError::BuildFailed {
                hash: plan.hash.clone(),
                reason,
                log: log_path.clone(),
            }
        };

        // Tools first: their own failures are reported as such, not as this recipe's.
        let toolbox = self.toolbox(opts.step_timeout);
        let uv = match plan.tool {
            Tool::Uv => match toolbox.uv() {
                Ok(uv) => Some(uv),
                Err(e) => return Err(fail(&mut status, e.to_string())),
            },
            Tool::Pip => None,
        };
        let has_venv_module = plan.python.minor() >= (3, 3);
        let virtualenv = if plan.tool == Tool::Pip && !has_venv_module {
            match toolbox.virtualenv_python() {
                Ok(p) => Some(p),
                Err(e) => return Err(fail(&mut status, e.to_string())),
            }
        } else {
            None
        };

        let mut writable = vec![dir.clone(), self.pip_cache(), self.uv_cache()];
        let app_data = self.tools_dir.join("virtualenv/app-data");
        if virtualenv.is_some() {
            writable.push(app_data.clone());
        }
        let env = self.build_env(&venv, plan.python.minor(), &recipe.env);
        let mut runner =
            StepRunner::new(&self.sandbox, &log_path, writable, env, opts.step_timeout)?
                .with_readable(self.readable_paths());
        runner.note(&format!(
            "base environment {} for {} with {}",
            plan.hash, plan.python, plan.tool
        ));
        let s = |p: &Path| p.display().to_string();
        let strs = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();

        // (label, argv, extra variables)
        type Step = (&'static str, Vec<String>, Vec<(String, String)>);
        let mut steps: Vec<Step> = Vec::new();
        match (&uv, &virtualenv) {
            (Some(uv), _) => {
                let mut v = vec![s(uv)];
                v.extend(strs(&["venv", "--seed", "--python"]));
                v.push(s(&plan.python.path));
                v.push(s(&venv));
                steps.push(("create venv", v, vec![]));
            }
            (None, Some(venv_tool)) => {
                let mut v = vec![s(venv_tool)];
                v.extend(strs(&["-m", "virtualenv", "--no-periodic-update", "-p"]));
                v.push(s(&plan.python.path));
                v.push(s(&venv));
                steps.push((
                    "create venv",
                    v,
                    vec![("VIRTUALENV_OVERRIDE_APP_DATA".into(), s(&app_data))],
                ));
            }
            (None, None) => {
                let mut v = vec![s(&plan.python.path)];
                v.extend(strs(&["-m", "venv"]));
                v.push(s(&venv));
                steps.push(("create venv", v, vec![]));
                // Match what `uv venv --seed` provides: current pip (and setuptools and wheel
                // before 3.12, where venv stopped bundling them).
                let mut v = vec![s(&venv_python)];
                v.extend(strs(&["-m", "pip", "install", "--upgrade"]));
                v.push(recipe.pip.clone().unwrap_or_else(|| "pip".to_string()));
                if plan.python.minor() < (3, 12) {
                    v.extend(strs(&["setuptools", "wheel"]));
                }
                steps.push(("seed", v, vec![]));
            }
        }
        let install_prefix = |args: &[&str]| -> Vec<String> {
            match &uv {
                Some(uv) => {
                    let mut v = vec![s(uv), "pip".into(), "install".into()];
                    if uv_compiles_bytecode(plan.python.minor()) {
                        v.push("--compile-bytecode".into());
                    }
                    v.push("--python".into());
                    v.push(s(&venv_python));
                    v.extend(strs(args));
                    v
                }
                None => {
                    let mut v = vec![s(&venv_python), "-m".into(), "pip".into(), "install".into()];
                    v.extend(strs(args));
                    v
                }
            }
        };
        // The pip the layers will run (uv and virtualenv seed their own choice first).
        if let (Some(pip), false) = (&recipe.pip, uv.is_none() && virtualenv.is_none()) {
            let mut v = install_prefix(&[]);
            v.push(pip.clone());
            steps.push(("pin pip", v, vec![]));
        }
        for (label, argv, extra) in &steps {
            match runner.run_checked(label, argv, dir, extra)? {
                Ok(_) => {}
                Err(f) => {
                    runner.flush();
                    return Err(fail(&mut status, f.reason));
                }
            }
        }

        // The requirements, in one go. A line the installer says cannot be had at all (a
        // conda-only name, a version the registry lacks or has none of for this Python) is
        // dropped and the rest tried again; the spec's explicit `packages` never are.
        let mut requirements = recipe.requirement_lines();
        let packages = recipe.package_list();
        let pinned: HashSet<String> = packages.iter().map(|p| requirement_name(p)).collect();
        let file = dir.join("requirements.txt");
        // As of a date: uv excludes newer uploads itself; pip asks ponder's dated index.
        let mut as_of: Vec<String> = Vec::new();
        let mut dated_env: Vec<(String, String)> = Vec::new();
        match (recipe.resolve_before.as_deref().map(str::trim), &uv) {
            (Some(date), Some(_)) => {
                as_of = vec![
                    "--exclude-newer".into(),
                    crate::dated_index::exclude_newer(date),
                ];
            }
            (Some(date), None) => {
                let index = match DatedIndex::shared() {
                    Ok(index) => index,
                    Err(e) => return Err(fail(&mut status, e.to_string())),
                };
                runner.note(&format!(
                    "pip resolves the requirements through ponder's dated index as of {date}: {} \
                     (upstream {}, files uploaded before {date}T00:00:00Z)",
                    index.index_url(date),
                    index.upstream()
                ));
                for bypass in crate::dated_index::bypasses() {
                    runner.note(&format!("note: {bypass}"));
                }
                runner.set_dated_index(index);
                dated_env = index.pip_env(date);
            }
            (None, _) => {}
        }
        while !requirements.is_empty() {
            fs::write(&file, requirements.join("\n") + "\n")
                .with_context(|| format!("cannot write {}", file.display()))?;
            let mut argv = install_prefix(&["-r"]);
            argv.push(s(&file));
            argv.extend(as_of.iter().cloned());
            let out = runner.run("install requirements", &argv, dir, &dated_env)?;
            if out.termination.success() {
                break;
            }
            let reason = runner.explain(crate::run::failure_reason("install requirements", &out));
            let blamed = unavailable_requirements(plan.tool, &out.output);
            let mut dropped_now = Vec::new();
            for u in &blamed {
                if pinned.contains(&u.name) {
                    runner.note(&format!(
                        "{} cannot be installed, but `packages` pins it: not dropping it",
                        u.name
                    ));
                    continue;
                }
                let (gone, kept): (Vec<String>, Vec<String>) = requirements
                    .drain(..)
                    .partition(|line| requirement_name(line) == u.name);
                requirements = kept;
                dropped_now.extend(gone.into_iter().map(|line| DroppedRequirement {
                    requirement: line,
                    reason: u.why.clone(),
                }));
            }
            if dropped_now.is_empty() {
                runner.flush();
                return Err(fail(&mut status, reason));
            }
            if status.dropped.len() + dropped_now.len() > opts.max_dropped {
                runner.flush();
                let reason = format!(
                    "{reason}\n(gave up: more than {} requirement(s) would have been dropped as \
                     unavailable; {})",
                    opts.max_dropped,
                    dropped_summary(&status.dropped)
                );
                return Err(fail(&mut status, reason));
            }
            for d in &dropped_now {
                runner.note(&format!(
                    "=== dropped requirement {:?}: {}",
                    d.requirement, d.reason
                ));
            }
            status.dropped.extend(dropped_now);
            write_json_atomic(&dir.join("status.json"), &status)?;
        }
        if requirements.is_empty() && !status.dropped.is_empty() {
            runner.note("every requirement line was dropped; nothing left to install");
        }
        if !packages.is_empty() {
            let mut argv = install_prefix(&[]);
            argv.extend(packages.iter().cloned());
            let out = runner.run("install packages", &argv, dir, &[])?;
            if !out.termination.success() {
                let first = crate::run::failure_reason("install packages", &out);
                if !failed_to_build(&out.output) {
                    runner.flush();
                    return Err(fail(&mut status, first));
                }
                // An old setup.py may need the environment's own (pinned, older) setuptools
                // rather than the newest one an isolated build brings; pip's legacy path, which
                // the harness's old environments used, built without isolation.
                runner.note(
                    "a distribution failed to build in an isolated build environment; trying \
                     again with the environment's own build tools (--no-build-isolation)",
                );
                // Only the distributions that failed, when the installer names them (uv does):
                // the others may need an isolated build with newer tools than the pins.
                let failed = failed_builds(&out.output);
                let mut retry = install_prefix(&[]);
                if uv.is_some() && !failed.is_empty() {
                    for name in &failed {
                        retry.push("--no-build-isolation-package".into());
                        retry.push(name.clone());
                    }
                } else {
                    retry.push("--no-build-isolation".into());
                }
                retry.extend(packages.iter().cloned());
                if let Err(f) = runner.run_checked(
                    "install packages without build isolation",
                    &retry,
                    dir,
                    &[],
                )? {
                    // Last resort, as the harness's old images built: pip's legacy path
                    // (`setup.py install`, no PEP 517), which setuptools releases older than
                    // the `__legacy__` backend (38.x, pinned by astropy 1.3's spec) still
                    // support. Only the distributions that failed; then everything again.
                    let legacy: Vec<String> = packages
                        .iter()
                        .filter(|p| failed.contains(&crate::recipe::requirement_name(p)))
                        .cloned()
                        .collect();
                    let has_pip = venv.join("bin/pip").exists();
                    let recovered = !legacy.is_empty()
                        && has_pip
                        && uv.is_some()
                        && {
                            runner.note(
                                "building again with pip's legacy setup.py path \
                                 (--no-use-pep517 --no-build-isolation)",
                            );
                            let mut argv = vec![
                                s(&venv_python),
                                "-m".into(),
                                "pip".into(),
                                "install".into(),
                                "--no-build-isolation".into(),
                                "--no-use-pep517".into(),
                            ];
                            argv.extend(legacy.iter().cloned());
                            runner
                                .run_checked(
                                    "install packages with pip's legacy build",
                                    &argv,
                                    dir,
                                    &[],
                                )?
                                .is_ok()
                        }
                        && {
                            let mut again = install_prefix(&[]);
                            again.extend(packages.iter().cloned());
                            runner
                                .run_checked(
                                    "install packages after the legacy build",
                                    &again,
                                    dir,
                                    &[],
                                )?
                                .is_ok()
                        };
                    if !recovered {
                        runner.flush();
                        return Err(fail(
                            &mut status,
                            format!("{first}\nwithout isolation: {}", f.reason),
                        ));
                    }
                }
            }
        }

        // Facts the layers need, asked of the finished venv itself.
        match query_site_packages(&mut runner, &venv_python, dir)? {
            Ok(paths) => status.site_packages = paths,
            Err(reason) => return Err(fail(&mut status, reason)),
        }
        // What the installers left uncompiled: uv's seed packages, and everything on Python 3.6,
        // where uv cannot compile. Like pip, files that do not compile for this Python (py2-only
        // modules shipped in a package) are not an error.
        let mut argv = vec![
            s(&venv_python),
            "-m".into(),
            "compileall".into(),
            "-q".into(),
        ];
        if plan.python.minor() >= (3, 5) {
            argv.push("-j0".into());
        }
        argv.extend(status.site_packages.iter().map(|p| s(p)));
        let out = runner.run("compile bytecode", &argv, dir, &[])?;
        if !out.termination.success() {
            runner.note("some files did not compile for this Python; left as they are");
        }
        if let Some(uv) = &uv {
            let out = runner.run("uv version", &[s(uv), "--version".into()], dir, &[])?;
            status.tool_version = Some(out.output.trim().to_string());
        }
        runner.note(&format!(
            "build finished in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
        runner.flush();
        status.state = EnvState::Ready;
        status.build_secs = started.elapsed().as_secs_f64();
        status.size_bytes = disk_usage(dir);
        write_json_atomic(&dir.join("status.json"), &status)?;
        Ok(status)
    }

    /// Every base environment in the store, oldest first.
    pub fn list(&self) -> Result<Vec<EnvSummary>, EnvError> {
        let envs = self.envs_dir();
        let entries = match fs::read_dir(&envs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot list {}", envs.display()))
                    .into());
            }
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            let hash = entry.file_name().to_string_lossy().into_owned();
            let status = read_status_any_format(&dir);
            let state = match &status {
                Some(s) if s.format != RECIPE_FORMAT => EnvState::Outdated,
                Some(s) if s.state == EnvState::Building => {
                    if self.is_locked(&hash) {
                        EnvState::Building
                    } else {
                        EnvState::Interrupted
                    }
                }
                Some(s) => s.state,
                None if self.is_locked(&hash) => EnvState::Building,
                None => EnvState::Interrupted,
            };
            let size_bytes = match &status {
                Some(s) if state == EnvState::Ready => s.size_bytes,
                _ => disk_usage(&dir),
            };
            out.push(EnvSummary {
                hash,
                state,
                python: status.as_ref().map(|s| s.python.clone()),
                tool: status.as_ref().map(|s| s.tool),
                size_bytes,
                created_unix: status.as_ref().map(|s| s.created_unix),
                build_secs: status.as_ref().map(|s| s.build_secs),
                reason: status
                    .as_ref()
                    .and_then(|s| match (&s.reason, s.dropped.is_empty()) {
                        (Some(r), _) => Some(r.clone()),
                        (None, false) => Some(dropped_summary(&s.dropped)),
                        (None, true) => None,
                    }),
                dropped: status
                    .as_ref()
                    .map(|s| s.dropped.clone())
                    .unwrap_or_default(),
                dir,
            });
        }
        out.sort_by(|a, b| {
            a.created_unix
                .cmp(&b.created_unix)
                .then(a.hash.cmp(&b.hash))
        });
        Ok(out)
    }

    /// Whether a build of `hash` is in progress (someone holds its lock).
    fn is_locked(&self, hash: &str) -> bool {
        let lock_path = self.envs_dir().join(format!("{hash}.lock"));
        match File::open(&lock_path) {
            Ok(f) => matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// Removes the environments whose hash starts with `prefix` (which must pick exactly one),
    /// or every environment when `prefix` is `None`. Environments being built are left alone
    /// and reported as an error. Returns the removed hashes.
    pub fn remove(&self, prefix: Option<&str>) -> Result<Vec<String>, EnvError> {
        let all = self.list()?;
        let targets: Vec<&EnvSummary> = match prefix {
            None => all.iter().collect(),
            Some(p) => {
                let p = p.trim();
                let hits: Vec<&EnvSummary> = all
                    .iter()
                    .filter(|e| !p.is_empty() && e.hash.starts_with(p))
                    .collect();
                match hits.len() {
                    0 => {
                        return Err(EnvError::Other(anyhow::anyhow!(
                            "no environment matches {p:?} in {}; `ponder env list` shows them",
                            self.envs_dir().display()
                        )));
                    }
                    1 => hits,
                    n => {
                        return Err(EnvError::Other(anyhow::anyhow!(
                            "{p:?} matches {n} environments; give more of the hash"
                        )));
                    }
                }
            }
        };
        let mut removed = Vec::new();
        let mut busy = Vec::new();
        for env in targets {
            let lock_path = self.envs_dir().join(format!("{}.lock", env.hash));
            let lock = File::create(&lock_path)
                .with_context(|| format!("cannot create lock file {}", lock_path.display()))?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    busy.push(env.hash.clone());
                    continue;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot lock {}", lock_path.display()))
                        .into());
                }
            }
            fs::remove_dir_all(&env.dir)
                .with_context(|| format!("cannot remove {}", env.dir.display()))?;
            // The lock file stays: removing it could let a waiting builder lock a stale inode.
            removed.push(env.hash.clone());
        }
        if !busy.is_empty() {
            return Err(EnvError::Other(anyhow::anyhow!(
                "removed {} environment(s); left {} that are being built right now: {}",
                removed.len(),
                busy.len(),
                busy.join(", ")
            )));
        }
        Ok(removed)
    }

    /// Reads the status of the environment with exactly this hash.
    pub fn status(&self, hash: &str) -> Option<EnvStatus> {
        read_status(&self.envs_dir().join(hash))
    }
}

/// Whether uv can compile bytecode for this interpreter: its compile script uses
/// `py_compile.PycInvalidationMode`, new in 3.7 (measured: on 3.6 the install fails). Bases on
/// 3.6 get their bytecode from the final `compileall` step instead.
pub(crate) fn uv_compiles_bytecode(python: (u32, u32)) -> bool {
    python >= (3, 7)
}

/// "dropped 2 unavailable requirement(s): cdms2, six==99.0".
pub(crate) fn dropped_summary(dropped: &[DroppedRequirement]) -> String {
    let lines: Vec<&str> = dropped.iter().map(|d| d.requirement.as_str()).collect();
    format!(
        "dropped {} unavailable requirement(s): {}",
        lines.len(),
        lines.join(", ")
    )
}

fn previously_failed(plan: &BasePlan, s: EnvStatus) -> EnvError {
    EnvError::PreviouslyFailed {
        hash: plan.hash.clone(),
        reason: s.reason.unwrap_or_else(|| "unknown".to_string()),
        log: plan.dir.join("build.log"),
    }
}

pub(crate) fn read_status(dir: &Path) -> Option<EnvStatus> {
    read_status_any_format(dir).filter(|s| s.format == RECIPE_FORMAT)
}

/// The status as written, even by a ponder with another [`RECIPE_FORMAT`] (for listing).
fn read_status_any_format(dir: &Path) -> Option<EnvStatus> {
    let bytes = fs::read(dir.join("status.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes JSON to a temporary sibling and renames it into place, so readers never see half a
/// file.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), EnvError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let bytes = serde_json::to_vec_pretty(value).context("cannot serialise status")?;
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Disk usage of a folder in bytes, counting each hard-linked file once (as `du` does).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.nlink() <= 1 || seen.insert((m.dev(), m.ino())))
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Asks a venv's interpreter for its site-packages folders (purelib, then platlib).
pub(crate) fn query_site_packages(
    runner: &mut StepRunner<'_>,
    python: &Path,
    cwd: &Path,
) -> Result<Result<Vec<PathBuf>, String>, EnvError> {
    // Python 2.7 compatible; the markers keep stray warnings out of the answer.
    const QUERY: &str = "import sysconfig, sys; p = sysconfig.get_paths(); \
                         sys.stdout.write('@@' + p['purelib'] + '\\n@@' + p['platlib'] + '\\n')";
    let argv = vec![
        python.display().to_string(),
        "-c".to_string(),
        QUERY.to_string(),
    ];
    let out = runner.run("site-packages", &argv, cwd, &[])?;
    if !out.termination.success() {
        return Ok(Err(crate::run::failure_reason(
            "asking the venv for site-packages",
            &out,
        )));
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    for line in out.output.lines() {
        if let Some(p) = line.strip_prefix("@@") {
            let p = PathBuf::from(p.trim());
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
    }
    if paths.is_empty() {
        return Ok(Err(format!(
            "the venv did not report its site-packages: {}",
            crate::run::error_excerpt(&out.output)
        )));
    }
    Ok(Ok(paths))
}

/// Names of the distributions uv reports as failed to build (``Failed to build `name==1.0` ``).
fn failed_builds(output: &str) -> Vec<String> {
    let mut names: Vec<String> = output
        .match_indices("Failed to build `")
        .filter_map(|(i, m)| {
            let rest = &output[i + m.len()..];
            let spec = &rest[..rest.find('`')?];
            let name = spec
                .split(['=', '<', '>', '!', '~', ' ', '@', '['])
                .next()
                .unwrap_or("")
                .trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether an installer's output says a distribution failed to build (as opposed to failing
/// to resolve or download).
fn failed_to_build(output: &str) -> bool {
    [
        "Failed to build",
        "Failed building wheel",
        "did not run successfully",
        "subprocess-exited-with-error",
    ]
    .iter()
    .any(|m| output.contains(m))
}

#[cfg(test)]
mod build_failure_tests {
    use super::failed_builds;

    #[test]
    fn names_of_failed_builds_are_read_from_uv_output() {
        let out = "  x Failed to build `markupsafe==1.0`\n  |-> The build backend returned an error\n  x Failed to build `pyerfa @ file:///x`\n";
        assert_eq!(failed_builds(out), vec!["markupsafe", "pyerfa"]);
        assert!(failed_builds("error: No solution found").is_empty());
    }
}
