//! Instance layers: a small virtual environment per work tree that sees a base environment.
//!
//! The layer is a fresh venv of the same interpreter whose site-packages holds one `.pth` file
//! calling `site.addsitedir(<base site-packages>)`, read after every other `.pth` of the layer
//! ([`BASE_PTH`]). Python then sees the base's packages after the layer's own (the work tree's
//! editable entries included), and pip (which scans `sys.path`) treats them as installed, so installing the
//! work tree only adds the project itself. The base is never written: it is not among the
//! sandbox's writable paths, and pip refuses to uninstall distributions outside the running
//! environment (it shadows them in the layer instead).
//!
//! uv does not read `sys.path` beyond the environment's own site-packages, so it would not see
//! the base and would reinstall every dependency into the layer. uv therefore only replaces pip
//! for install commands that already say `--no-deps`; everything else runs with pip.
//!
//! Console scripts of the base (pytest, ...) start with a shebang naming the base's python,
//! which does not see the layer; the layer gets copies whose shebang names its own python.
//!
//! A Python 3 layer's `bin/python` points at a copy of the interpreter in a stand-in prefix
//! beside the venv ([`crate::standin`]), so that a symlink to it made elsewhere (tox
//! `--current-env` makes `.tox/<env>/bin/python`) still runs as the layer, as a conda
//! environment's interpreter would.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ponder_sandbox::{CommandSpec, Outcome, Policy, Sandbox, SandboxError};
use serde::{Deserialize, Serialize};

use crate::EnvError;
use crate::dated_index::DatedIndex;
use crate::recipe::{EnvRecipe, classify_command, simple_commands};
use crate::run::{StepFailure, StepRunner, path_with};
use crate::standin;
use crate::store::{
    BaseEnv, DEFAULT_STEP_TIMEOUT, EnvState, EnvStore, query_site_packages, write_json_atomic,
};
use crate::tools::{Tool, ToolChoice};

/// Name of the `.pth` file that links a layer to its base. Python reads a site-packages' `.pth`
/// files in name order, and the name sorts after the ones installers write (`easy-install.pth`,
/// `__editable__.*.pth`, `<name>-nspkg.pth`), so the work tree's path entries come before the
/// base's site-packages, as the project's files come first in the harness's single environment
/// (where installing the project removes a PyPI copy of it). Namespace packages depend on it:
/// matplotlib 3.3's `mpl_toolkits` came from the base's PyPI matplotlib when the base came first.
pub const BASE_PTH: &str = "zzz_ponder_base.pth";
/// How a layer of a recipe with `resolve_before` resolves as of the date; callers that key
/// prepared layers by their recipe add it to the key of dated recipes, so layers made another
/// way are not reused. 1: pip through the dated index, uv with `UV_EXCLUDE_NEWER`.
pub const DATED_LAYERS: u32 = 1;
/// The layer's record, next to its venv.
pub const LAYER_RECORD: &str = "ponder-layer.json";

/// How to set up a layer.
#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// `Auto` follows the base's tool. With uv, the venv is made by uv and `--no-deps` pip
    /// installs run through uv; with pip, everything runs as written.
    pub tool: ToolChoice,
    pub step_timeout: Duration,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            tool: ToolChoice::Auto,
            step_timeout: DEFAULT_STEP_TIMEOUT,
        }
    }
}

/// One recipe command of a layer and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub phase: String,
    pub command: String,
    /// "bash", "pip" or "uv"; `None` when skipped.
    pub ran_with: Option<String>,
    pub skipped: Option<String>,
    pub secs: f64,
}

/// `ponder-layer.json`: what was done to make the layer, and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub base_hash: String,
    pub worktree: PathBuf,
    pub python: String,
    /// The tool that created the layer's venv.
    pub tool: Tool,
    pub site_packages: Vec<PathBuf>,
    /// The stand-in prefix that lets the interpreter be started through a symlink elsewhere
    /// (see [`crate::standin`]); `None` for Python 2 layers, which need none, or when it could
    /// not be made (the build log says why).
    #[serde(default)]
    pub standin: Option<PathBuf>,
    pub commands: Vec<CommandRecord>,
    pub ok: bool,
    pub reason: Option<String>,
    pub venv_secs: f64,
    pub total_secs: f64,
    pub created_unix: u64,
}

/// A ready layer for one work tree.
#[derive(Debug, Clone)]
pub struct Layer {
    pub dir: PathBuf,
    pub worktree: PathBuf,
    pub base_hash: String,
    pub base_bin: PathBuf,
    pub record: LayerRecord,
    env: BTreeMap<String, String>,
}

/// Variables that make commands use a layer: set these, and remove the unset ones when the
/// command inherits the caller's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub set: Vec<(String, String)>,
    pub unset: Vec<String>,
    /// Folders the layer's python reads: the layer and the base environment it points into.
    /// A sandbox must show them; under /tmp (which it replaces) they would otherwise vanish
    /// and python would silently run without the base's packages. See [`Activation::confine`].
    pub visible: Vec<PathBuf>,
}

impl Activation {
    /// Adds the variables to a sandbox command. The sandbox starts from a minimal environment
    /// unless the spec inherits the caller's; then PYTHONHOME is set empty, which CPython 3
    /// treats as unset.
    pub fn apply(&self, spec: CommandSpec) -> CommandSpec {
        let mut spec = spec.envs(self.set.iter().cloned());
        if spec.inherit_env {
            for name in &self.unset {
                spec = spec.env(name.clone(), "");
            }
        }
        spec
    }

    /// Adds the folders the layer's python reads to a sandbox policy, read-only.
    pub fn confine(&self, policy: Policy) -> Policy {
        self.visible
            .iter()
            .fold(policy, |policy, dir| policy.readable(dir.clone()))
    }

    /// The PATH value (layer's bin first).
    pub fn path(&self) -> Option<&str> {
        self.set
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
    }
}

impl Layer {
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

    /// PATH with the layer's bin first, VIRTUAL_ENV, the recipe's variables; PYTHONHOME unset.
    /// Runs `spec` in `sandbox` as a command of this layer: with the layer's activation
    /// variables, and with the folders its python reads added read-only to `policy`.
    pub fn run(
        &self,
        sandbox: &Sandbox,
        spec: CommandSpec,
        policy: Policy,
    ) -> Result<Outcome, SandboxError> {
        let activation = self.activation();
        sandbox.run(&activation.apply(spec), &activation.confine(policy))
    }

    pub fn activation(&self) -> Activation {
        let mut activation = activation_for(&self.venv(), &self.env);
        activation.visible.push(self.dir.clone());
        // base_bin is <base>/venv/bin: the base's whole venv must be visible.
        if let Some(base_venv) = self.base_bin.parent() {
            activation.visible.push(base_venv.to_path_buf());
        }
        activation
    }
}

fn activation_for(venv: &Path, recipe_env: &BTreeMap<String, String>) -> Activation {
    let mut set = vec![
        ("PATH".to_string(), path_with(&venv.join("bin"))),
        ("VIRTUAL_ENV".to_string(), venv.display().to_string()),
    ];
    set.extend(recipe_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Activation {
        set,
        unset: vec!["PYTHONHOME".to_string()],
        visible: Vec::new(),
    }
}

impl EnvStore {
    /// Creates (or re-creates) the layer in `layer_dir` for `worktree` on top of `base`, and
    /// runs the recipe's `pre_install` and `install` in the work tree. `layer_dir` must be
    /// outside the work tree and either absent, empty, or an earlier layer. Of the recipe, only
    /// `pre_install`, `install` and `env` matter here (and `python`, which must match the base).
    pub fn create_layer(
        &self,
        base: &BaseEnv,
        recipe: &EnvRecipe,
        worktree: &Path,
        layer_dir: &Path,
        opts: &LayerOptions,
    ) -> Result<Layer, EnvError> {
        let started = Instant::now();
        if base.status.state != EnvState::Ready {
            return Err(EnvError::InvalidRecipe(format!(
                "base environment {} is {}, not ready",
                base.hash, base.status.state
            )));
        }
        let base_minor = crate::python::parse_minor(&base.status.python);
        if !recipe.python.trim().is_empty()
            && crate::python::parse_minor(&recipe.python) != base_minor
        {
            return Err(EnvError::InvalidRecipe(format!(
                "the recipe asks for python {} but base environment {} has {}",
                recipe.python, base.hash, base.status.python
            )));
        }
        let worktree = fs::canonicalize(worktree)
            .with_context(|| format!("work tree {} is not accessible", worktree.display()))?;
        if !worktree.is_dir() {
            return Err(EnvError::InvalidRecipe(format!(
                "work tree {} is not a directory",
                worktree.display()
            )));
        }
        let layer_dir = absolute(layer_dir)?;
        if layer_dir.starts_with(&worktree) {
            return Err(EnvError::InvalidRecipe(format!(
                "the layer {} is inside the work tree {}; put it outside, or test runners and \
                 git would see it",
                layer_dir.display(),
                worktree.display()
            )));
        }
        prepare_layer_dir(&layer_dir)?;
        let venv = layer_dir.join("venv");
        let python = &base.status.python_path;
        let python_version = base.status.python.clone();
        let minor = crate::python::parse_minor(&python_version).unwrap_or((3, 0));
        let tool = match opts.tool {
            ToolChoice::Auto => base.status.tool,
            ToolChoice::Uv if minor >= crate::tools::UV_MIN_PYTHON => Tool::Uv,
            ToolChoice::Uv => {
                return Err(EnvError::Tool(format!(
                    "uv cannot make layers for Python {python_version}; use pip"
                )));
            }
            ToolChoice::Pip => Tool::Pip,
        };

        let toolbox = self.toolbox(opts.step_timeout);
        let uv = match tool {
            Tool::Uv => Some(toolbox.uv()?),
            Tool::Pip => None,
        };
        let virtualenv = if uv.is_none() && minor < (3, 3) {
            Some(toolbox.virtualenv_python()?)
        } else {
            None
        };
        let app_data = self.tools_dir().join("virtualenv/app-data");

        let log_path = layer_dir.join("build.log");
        let extra_writable = virtualenv.is_some().then(|| app_data.clone());
        let (mut runner, dated) = self.layer_runner(
            &layer_dir,
            &worktree,
            minor,
            recipe,
            &log_path,
            extra_writable,
            opts,
        )?;
        runner.note(&format!(
            "layer over base {} ({} {}) for {}",
            base.hash,
            base.status.tool,
            python_version,
            worktree.display()
        ));
        if let Some((index, date)) = dated {
            note_dated(&mut runner, index, date);
        }

        let mut record = LayerRecord {
            base_hash: base.hash.clone(),
            worktree: worktree.clone(),
            python: python_version.clone(),
            tool,
            site_packages: Vec::new(),
            standin: None,
            commands: Vec::new(),
            ok: false,
            reason: None,
            venv_secs: 0.0,
            total_secs: 0.0,
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let fail = |record: &mut LayerRecord, reason: String| -> EnvError {
            record.reason = Some(reason.clone());
            record.total_secs = started.elapsed().as_secs_f64();
            if let Err(e) = write_json_atomic(&layer_dir.join(LAYER_RECORD), record) {
                return e;
            }
            EnvError::LayerFailed {
                dir: layer_dir.clone(),
                reason,
                log: log_path.clone(),
            }
        };

        // 1. The venv itself, without pip: pip comes from the base through the .pth file.
        let s = |p: &Path| p.display().to_string();
        let (argv, extra): (Vec<String>, Vec<(String, String)>) = match (&uv, &virtualenv) {
            (Some(uv), _) => (
                vec![s(uv), "venv".into(), "--python".into(), s(python), s(&venv)],
                vec![],
            ),
            (None, Some(vt)) => (
                vec![
                    s(vt),
                    "-m".into(),
                    "virtualenv".into(),
                    "--no-periodic-update".into(),
                    "--no-pip".into(),
                    "--no-setuptools".into(),
                    "--no-wheel".into(),
                    "-p".into(),
                    s(python),
                    s(&venv),
                ],
                vec![("VIRTUALENV_OVERRIDE_APP_DATA".into(), s(&app_data))],
            ),
            (None, None) => (
                vec![
                    s(python),
                    "-m".into(),
                    "venv".into(),
                    "--without-pip".into(),
                    s(&venv),
                ],
                vec![],
            ),
        };
        if let Err(f) = runner.run_checked("create venv", &argv, &layer_dir, &extra)? {
            return Err(fail(&mut record, f.reason));
        }
        let layer_python = venv.join("bin/python");
        match query_site_packages(&mut runner, &layer_python, &layer_dir)? {
            Ok(paths) => record.site_packages = paths,
            Err(reason) => return Err(fail(&mut record, reason)),
        }
        link_base(&record.site_packages, &base.status.site_packages)?;
        copy_base_scripts(&base.bin_dir(), &venv.join("bin"))?;
        if virtualenv.is_none() {
            record.standin = add_standin(
                &mut runner,
                &layer_dir,
                &venv,
                &layer_python,
                &record.site_packages,
            )?;
        }
        record.venv_secs = started.elapsed().as_secs_f64();
        runner.note(&format!("layer venv ready in {:.2}s", record.venv_secs));

        // 2. pre_install: one script, so variables set by one line reach the next.
        let steps = PreInstall::of(recipe);
        for (cmd, why) in &steps.skipped {
            runner.note(&format!(
                "=== [pre_install] SKIPPED: {cmd}\n    reason: {why}"
            ));
            record.commands.push(CommandRecord {
                phase: "pre_install".into(),
                command: cmd.clone(),
                ran_with: None,
                skipped: Some(why.clone()),
                secs: 0.0,
            });
        }
        if !steps.runnable.is_empty() {
            let t = Instant::now();
            let result = runner.run_checked("pre_install", &steps.argv(), &worktree, &[])?;
            for cmd in &steps.runnable {
                record.commands.push(CommandRecord {
                    phase: "pre_install".into(),
                    command: cmd.clone(),
                    ran_with: Some("bash".into()),
                    skipped: None,
                    secs: t.elapsed().as_secs_f64() / steps.runnable.len() as f64,
                });
            }
            if let Err(f) = result {
                return Err(fail(&mut record, f.reason));
            }
        }

        // 3. install.
        if let Some(install) = install_command(recipe) {
            let (command, result) = run_install(
                &mut runner,
                install,
                uv.as_deref(),
                &layer_python,
                &worktree,
            )?;
            record.commands.push(command);
            if let Err(f) = result {
                return Err(fail(&mut record, f.reason));
            }
        }
        record.ok = true;
        record.total_secs = started.elapsed().as_secs_f64();
        runner.note(&format!("layer ready in {:.2}s", record.total_secs));
        runner.flush();
        write_json_atomic(&layer_dir.join(LAYER_RECORD), &record)?;
        Ok(Layer {
            dir: layer_dir.clone(),
            worktree,
            base_hash: base.hash.clone(),
            base_bin: base.bin_dir(),
            record,
            env: recipe.env.clone(),
        })
    }

    /// Opens the layer [`EnvStore::create_layer`] finished earlier in `layer_dir`, for reuse:
    /// its record must say it is ready and that it sits on `base`.
    pub fn open_layer(
        &self,
        base: &BaseEnv,
        recipe: &EnvRecipe,
        layer_dir: &Path,
    ) -> Result<Layer, EnvError> {
        let path = layer_dir.join(LAYER_RECORD);
        let text = fs::read_to_string(&path)
            .with_context(|| format!("cannot read the layer record {}", path.display()))?;
        let record: LayerRecord = serde_json::from_str(&text)
            .with_context(|| format!("the layer record {} is damaged", path.display()))?;
        if !record.ok {
            return Err(EnvError::InvalidRecipe(format!(
                "the layer {} was never finished: {}",
                layer_dir.display(),
                record.reason.as_deref().unwrap_or("no reason recorded")
            )));
        }
        if record.base_hash != base.hash {
            return Err(EnvError::InvalidRecipe(format!(
                "the layer {} sits on base {}, not {}",
                layer_dir.display(),
                record.base_hash,
                base.hash
            )));
        }
        Ok(Layer {
            dir: layer_dir.to_path_buf(),
            worktree: record.worktree.clone(),
            base_hash: base.hash.clone(),
            base_bin: base.bin_dir(),
            record,
            env: recipe.env.clone(),
        })
    }

    /// The step runner of a layer's steps, logging to `log_path`: the layer's folder, its work
    /// tree and the package caches are writable (and `extra_writable`), the environment is the
    /// layer's build environment with the recipe's constraints, and a dated recipe resolves
    /// through the dated index, which is returned for the caller's log note.
    #[allow(clippy::too_many_arguments)]
    fn layer_runner<'r>(
        &'r self,
        layer_dir: &Path,
        worktree: &Path,
        minor: (u32, u32),
        recipe: &'r EnvRecipe,
        log_path: &Path,
        extra_writable: Option<PathBuf>,
        opts: &LayerOptions,
    ) -> Result<(StepRunner<'r>, DatedAs<'r>), EnvError> {
        let mut writable = vec![
            layer_dir.to_path_buf(),
            worktree.to_path_buf(),
            self.pip_cache(),
            self.uv_cache(),
        ];
        writable.extend(extra_writable);
        let mut env = self.build_env(&layer_dir.join("venv"), minor, &recipe.env);
        env.extend(constraints_env(layer_dir, recipe)?);
        let dated = dated_index_for(recipe)?;
        if let Some((index, date)) = dated {
            env.extend(dated_env(index, date));
        }
        let runner = StepRunner::new(self.sandbox(), log_path, writable, env, opts.step_timeout)?
            .with_readable(self.readable_paths());
        Ok((runner, dated))
    }

    /// Runs the recipe's runnable `pre_install` steps again in `layer`'s work tree, after the
    /// tree was reset to its base commit. A warm instance must hold what those steps changed,
    /// as the harness's instance image does, and a reset undoes edits to tracked files (astropy
    /// pins setuptools in `pyproject.toml`, sphinx pins packages in `setup.py`). The steps'
    /// output goes to `pre_install.log` in the layer.
    pub fn redo_pre_install(
        &self,
        layer: &Layer,
        recipe: &EnvRecipe,
        opts: &LayerOptions,
    ) -> Result<(), EnvError> {
        let steps = PreInstall::of(recipe);
        if steps.runnable.is_empty() {
            return Ok(());
        }
        let minor = crate::python::parse_minor(&layer.record.python).unwrap_or((3, 0));
        let log_path = layer.dir.join("pre_install.log");
        let (mut runner, _) = self.layer_runner(
            &layer.dir,
            &layer.worktree,
            minor,
            recipe,
            &log_path,
            None,
            opts,
        )?;
        let result = runner.run_checked("pre_install", &steps.argv(), &layer.worktree, &[])?;
        runner.flush();
        match result {
            Ok(_) => Ok(()),
            Err(f) => Err(EnvError::LayerFailed {
                dir: layer.dir.clone(),
                reason: f.reason,
                log: log_path,
            }),
        }
    }

    /// Runs the recipe's `install` again in the layer's work tree, as the harness's evaluation
    /// script does after the patch is applied to an instance image that installed the base
    /// commit: compiled parts the patch touched are rebuilt, the rest is reused. The log is
    /// `reinstall.log` in the layer. `Ok(None)` when the recipe has no install command.
    pub fn reinstall(
        &self,
        layer: &Layer,
        recipe: &EnvRecipe,
        opts: &LayerOptions,
    ) -> Result<Option<CommandRecord>, EnvError> {
        let Some(install) = install_command(recipe) else {
            return Ok(None);
        };
        let minor = crate::python::parse_minor(&layer.record.python).unwrap_or((3, 0));
        let toolbox = self.toolbox(opts.step_timeout);
        let uv = match layer.record.tool {
            Tool::Uv => Some(toolbox.uv()?),
            Tool::Pip => None,
        };
        let log_path = layer.dir.join("reinstall.log");
        let (mut runner, dated) = self.layer_runner(
            &layer.dir,
            &layer.worktree,
            minor,
            recipe,
            &log_path,
            None,
            opts,
        )?;
        if let Some((index, date)) = dated {
            note_dated(&mut runner, index, date);
        }
        let (command, result) = run_install(
            &mut runner,
            install,
            uv.as_deref(),
            &layer.python(),
            &layer.worktree,
        )?;
        runner.flush();
        match result {
            Ok(()) => Ok(Some(command)),
            Err(f) => Err(EnvError::LayerFailed {
                dir: layer.dir.clone(),
                reason: f.reason,
                log: log_path,
            }),
        }
    }
}

/// A recipe's `pre_install` split into the commands that run (as one bash script, so that
/// variables set by one line reach the next) and those skipped, with why.
struct PreInstall {
    runnable: Vec<String>,
    skipped: Vec<(String, String)>,
}

impl PreInstall {
    fn of(recipe: &EnvRecipe) -> PreInstall {
        let mut steps = PreInstall {
            runnable: Vec::new(),
            skipped: Vec::new(),
        };
        for cmd in &recipe.pre_install {
            match classify_command(cmd) {
                Some(skip) => steps.skipped.push((cmd.clone(), skip.0)),
                None => steps.runnable.push(cmd.clone()),
            }
        }
        steps
    }

    /// `bash -c` with the runnable commands, stopping at the first that fails.
    fn argv(&self) -> Vec<String> {
        let mut script = String::from("set -euo pipefail\n");
        for cmd in &self.runnable {
            script.push_str(cmd);
            script.push('\n');
        }
        vec!["bash".to_string(), "-c".to_string(), script]
    }
}

/// `PIP_CONSTRAINT` pointing at the recipe's build constraints, written into the layer; none
/// when the recipe has none.
fn constraints_env(
    layer_dir: &Path,
    recipe: &EnvRecipe,
) -> Result<Vec<(String, String)>, EnvError> {
    if recipe.build_constraints.is_empty() {
        return Ok(Vec::new());
    }
    let path = layer_dir.join("build-constraints.txt");
    let mut text = recipe.build_constraints.join("\n");
    text.push('\n');
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(vec![(
        "PIP_CONSTRAINT".to_string(),
        path.display().to_string(),
    )])
}

/// The dated index and the date a layer of `recipe` resolves as of, when it has one.
/// The dated index and the date a recipe resolves as of, if it has a date.
type DatedAs<'r> = Option<(&'static DatedIndex, &'r str)>;

fn dated_index_for(recipe: &EnvRecipe) -> Result<DatedAs<'_>, EnvError> {
    match recipe.resolve_before.as_deref().map(str::trim) {
        Some(date) => {
            crate::recipe::check_date(date).map_err(EnvError::InvalidRecipe)?;
            Ok(Some((DatedIndex::shared()?, date)))
        }
        None => Ok(None),
    }
}

/// What a layer's steps resolve as of `date` with: pip through the dated index, uv with
/// `UV_EXCLUDE_NEWER` (for the `--no-deps` installs it runs).
fn dated_env(index: &DatedIndex, date: &str) -> Vec<(String, String)> {
    let mut env = index.pip_env(date);
    env.push((
        "UV_EXCLUDE_NEWER".to_string(),
        crate::dated_index::exclude_newer(date),
    ));
    env
}

fn note_dated<'a>(runner: &mut StepRunner<'a>, index: &'a DatedIndex, date: &str) {
    runner.note(&format!(
        "pip resolves through ponder's dated index as of {date}: {} (upstream {}, files uploaded \
         before {date}T00:00:00Z); uv excludes newer uploads",
        index.index_url(date),
        index.upstream()
    ));
    for bypass in crate::dated_index::bypasses() {
        runner.note(&format!("note: {bypass}"));
    }
    runner.set_dated_index(index);
}

/// The recipe's install command, when it has one.
fn install_command(recipe: &EnvRecipe) -> Option<&str> {
    recipe
        .install
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

/// Runs `install` in the work tree: through uv when the base uses uv and the command can be
/// rewritten for it (see [`uv_install`]), otherwise with bash, failing on any failing part.
fn run_install(
    runner: &mut StepRunner<'_>,
    install: &str,
    uv: Option<&Path>,
    layer_python: &Path,
    worktree: &Path,
) -> Result<(CommandRecord, Result<(), StepFailure>), EnvError> {
    let t = Instant::now();
    let (argv, ran_with) = match uv.and_then(|uv| uv_install(install, uv, layer_python)) {
        Some(argv) => (argv, "uv"),
        None => {
            let with = if install.contains("pip") {
                "pip"
            } else {
                "bash"
            };
            let script = format!("set -euo pipefail\n{install}");
            (vec!["bash".to_string(), "-c".to_string(), script], with)
        }
    };
    if ran_with == "pip" && uv.is_some() {
        runner.note(
            "install runs with pip: uv cannot see the base's packages unless the command says \
             --no-deps",
        );
    }
    let result = runner.run_checked("install", &argv, worktree, &[])?;
    let record = CommandRecord {
        phase: "install".into(),
        command: install.to_string(),
        ran_with: Some(ran_with.into()),
        skipped: None,
        secs: t.elapsed().as_secs_f64(),
    };
    Ok((record, result.map(|_| ())))
}

/// Gives a Python 3 layer its stand-in prefix and checks that its interpreter starts as the
/// layer both directly and through a symlink in another folder. Any problem keeps the plain
/// venv (which works except through such symlinks), with the reason in the log.
fn add_standin(
    runner: &mut StepRunner<'_>,
    layer_dir: &Path,
    venv: &Path,
    python: &Path,
    site_dirs: &[PathBuf],
) -> Result<Option<PathBuf>, EnvError> {
    let facts = match standin::query(runner, python, layer_dir)? {
        Ok(facts) => facts,
        Err(reason) => {
            runner.note(&format!("no stand-in prefix: {reason}"));
            return Ok(None);
        }
    };
    let installed = match standin::install(layer_dir, venv, &facts, site_dirs)? {
        Ok(installed) => installed,
        Err(reason) => {
            runner.note(&format!("no stand-in prefix: {reason}"));
            return Ok(None);
        }
    };
    let probe_bin = layer_dir.join(".ponder-probe/bin");
    fs::create_dir_all(&probe_bin)
        .with_context(|| format!("cannot create {}", probe_bin.display()))?;
    let probe = probe_bin.join("python");
    std::os::unix::fs::symlink(python, &probe)
        .with_context(|| format!("cannot create {}", probe.display()))?;
    const PREFIX: &str = "import sys; sys.stdout.write('@@' + sys.prefix + '\\n')";
    let want = fs::canonicalize(venv).ok();
    let mut problem = None;
    for (label, exe) in [
        ("check interpreter", python),
        ("check symlinked interpreter", &probe),
    ] {
        let argv = vec![exe.display().to_string(), "-c".into(), PREFIX.into()];
        let out = runner.run(label, &argv, layer_dir, &[])?;
        let got = out
            .output
            .lines()
            .find_map(|l| l.strip_prefix("@@"))
            .and_then(|p| fs::canonicalize(p.trim()).ok());
        if !out.termination.success() || got.is_none() || got != want {
            problem = Some(format!(
                "{label}: expected sys.prefix {}, got {}",
                venv.display(),
                crate::run::error_excerpt(&out.output)
            ));
            break;
        }
    }
    let probe_root = layer_dir.join(".ponder-probe");
    fs::remove_dir_all(&probe_root)
        .with_context(|| format!("cannot remove {}", probe_root.display()))?;
    if let Some(reason) = problem {
        runner.note(&format!(
            "no stand-in prefix: {reason}; the layer keeps its plain venv"
        ));
        standin::undo(installed)?;
        return Ok(None);
    }
    runner.note(&format!(
        "stand-in prefix {} (the interpreter also works through symlinks elsewhere)",
        installed.prefix.display()
    ));
    Ok(Some(installed.prefix))
}

fn absolute(p: &Path) -> Result<PathBuf, EnvError> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(cwd.join(p))
}

/// Empties the layer folder, refusing to delete anything that is not an earlier layer.
fn prepare_layer_dir(dir: &Path) -> Result<(), EnvError> {
    if dir.exists() {
        let entries: Vec<PathBuf> = fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        if !entries.is_empty() {
            let ours = dir.join(LAYER_RECORD).exists() || dir.join("venv/pyvenv.cfg").exists();
            if !ours {
                return Err(EnvError::InvalidRecipe(format!(
                    "{} exists and is not a ponder layer; choose an empty or new folder",
                    dir.display()
                )));
            }
            fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear the old layer {}", dir.display()))?;
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(())
}

/// Writes the `.pth` file that adds the base's site-packages after the layer's own.
fn link_base(layer_site: &[PathBuf], base_site: &[PathBuf]) -> Result<(), EnvError> {
    let target = layer_site.first().ok_or_else(|| {
        EnvError::Other(anyhow::anyhow!("the layer venv reported no site-packages"))
    })?;
    let mut text = String::new();
    for dir in base_site {
        // A JSON string is a valid Python string literal for any path.
        let literal = serde_json::to_string(&dir.display().to_string())
            .context("cannot quote a site-packages path")?;
        // Not inside pip's isolated build environment (its `site` folder is on PYTHONPATH):
        // there the build must see only its own build requirements, as it would in the
        // harness's single environment. Seeing the base's setuptools made pylint's
        // `setuptools~=62.6` build a PEP 660 editable install, which the harness's does not.
        text.push_str(&format!(
            "import os, site; 'pip-build-env-' in os.environ.get('PYTHONPATH', '') or site.addsitedir({literal})\n"
        ));
    }
    let pth = target.join(BASE_PTH);
    fs::create_dir_all(target).with_context(|| format!("cannot create {}", target.display()))?;
    fs::write(&pth, text).with_context(|| format!("cannot write {}", pth.display()))?;
    Ok(())
}

/// Gives the layer its own copy of each base console script, with the shebang pointing at the
/// layer's python; other executables get a small wrapper that execs the base's file (a symlink
/// would let an installer that writes through it modify the base). Existing layer files win.
fn copy_base_scripts(base_bin: &Path, layer_bin: &Path) -> Result<(), EnvError> {
    let base_prefix = base_bin.display().to_string();
    let layer_prefix = layer_bin.display().to_string();
    let entries =
        fs::read_dir(base_bin).with_context(|| format!("cannot list {}", base_bin.display()))?;
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let name_s = name.to_string_lossy();
        let is_python =
            name_s == "python" || name_s.starts_with("python2") || name_s.starts_with("python3");
        if is_python
            || name_s.starts_with("activate")
            || name_s.starts_with("Activate")
            || name_s == "deactivate"
        {
            continue;
        }
        let dest = layer_bin.join(&name);
        if dest.symlink_metadata().is_ok() {
            continue;
        }
        let src = entry.path();
        if !src.is_file() {
            continue;
        }
        let mut head = [0u8; 2];
        let is_script = fs::File::open(&src)
            .and_then(|mut f| f.read_exact(&mut head))
            .map(|_| &head == b"#!")
            .unwrap_or(false);
        let text = if is_script {
            fs::read_to_string(&src).ok()
        } else {
            None
        };
        match text {
            Some(text) if text.lines().take(3).any(|l| l.contains(&base_prefix)) => {
                // Only the header names the interpreter; the body is left as it is.
                let (head, body) = split_header(&text);
                let new = head.replace(&base_prefix, &layer_prefix) + body;
                fs::write(&dest, new)
                    .with_context(|| format!("cannot write {}", dest.display()))?;
                let perms = fs::metadata(&src)
                    .with_context(|| format!("cannot stat {}", src.display()))?
                    .permissions();
                fs::set_permissions(&dest, perms)
                    .with_context(|| format!("cannot set permissions on {}", dest.display()))?;
            }
            _ => {
                let quoted = shlex::try_quote(&src.display().to_string())
                    .map(|q| q.into_owned())
                    .unwrap_or_else(|_| format!("'{}'", src.display()));
                let wrapper = format!("#!/bin/sh\nexec {quoted} \"$@\"\n");
                fs::write(&dest, wrapper)
                    .with_context(|| format!("cannot write {}", dest.display()))?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("cannot set permissions on {}", dest.display()))?;
            }
        }
    }
    Ok(())
}

/// The first three lines (where shebangs and pip's `exec` trampolines live) and the rest.
fn split_header(text: &str) -> (String, &str) {
    let mut end = 0;
    for (n, (i, _)) in text.match_indices('\n').enumerate() {
        end = i + 1;
        if n == 2 {
            break;
        }
    }
    if end == 0 {
        end = text.len();
    }
    (text[..end].to_string(), &text[end..])
}

/// Options of `pip install` that `uv pip install` accepts with the same meaning.
const UV_FLAGS: &[&str] = &[
    "-e",
    "--editable",
    "--no-deps",
    "-v",
    "-vv",
    "--verbose",
    "-q",
    "--quiet",
    "--no-build-isolation",
    "-U",
    "--upgrade",
    "--pre",
    "--reinstall",
    "--force-reinstall",
    "--no-cache-dir",
];
const UV_FLAGS_WITH_VALUE: &[&str] = &[
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
];

/// `python -m pip install ARGS` as `uv pip install --python <layer python> ARGS`, when the
/// command is a single pip install with `--no-deps` and only options uv understands.
pub(crate) fn uv_install(command: &str, uv: &Path, python: &Path) -> Option<Vec<String>> {
    if simple_commands(command).len() != 1 || command.contains(['$', '`', '>', '<', '(', '*', '?'])
    {
        return None;
    }
    let words = shlex::split(command)?;
    let rest: &[String] = match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["python" | "python3", "-m", "pip", "install", ..] => &words[4..],
        ["pip" | "pip3", "install", ..] => &words[2..],
        _ => return None,
    };
    if !rest.iter().any(|w| w == "--no-deps") {
        return None;
    }
    let mut args = rest.iter();
    while let Some(a) = args.next() {
        if !a.starts_with('-') {
            continue;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, _)) => (f, true),
            None => (a.as_str(), false),
        };
        if UV_FLAGS.contains(&flag) && !inline {
            continue;
        }
        if UV_FLAGS_WITH_VALUE.contains(&flag) {
            if !inline {
                args.next()?;
            }
            continue;
        }
        return None;
    }
    let mut argv = vec![
        uv.display().to_string(),
        "pip".to_string(),
        "install".to_string(),
        "--python".to_string(),
        python.display().to_string(),
    ];
    argv.extend(rest.iter().cloned());
    Some(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_no_deps_installs() {
        let uv = Path::new("/t/uv");
        let py = Path::new("/l/venv/bin/python");
        let argv = uv_install("python -m pip install --no-deps -e .", uv, py).unwrap();
        assert_eq!(
            argv,
            vec![
                "/t/uv",
                "pip",
                "install",
                "--python",
                "/l/venv/bin/python",
                "--no-deps",
                "-e",
                "."
            ]
        );
        assert!(uv_install("python -m pip install -e .", uv, py).is_none());
        assert!(
            uv_install(
                "python -m pip install --no-deps --no-use-pep517 -e .",
                uv,
                py
            )
            .is_none()
        );
        assert!(uv_install("python setup.py install", uv, py).is_none());
        assert!(uv_install("python -m pip install --no-deps -e . && echo hi", uv, py).is_none());
        assert!(uv_install("pip install --no-deps -e '.[test]'", uv, py).is_some());
    }

    #[test]
    fn header_split_keeps_body() {
        let (h, b) = split_header("#!/a/python\n# c\nimport x\nrest\nmore\n");
        assert_eq!(h, "#!/a/python\n# c\nimport x\n");
        assert_eq!(b, "rest\nmore\n");
        let (h, b) = split_header("#!/a/python");
        assert_eq!(h, "#!/a/python");
        assert_eq!(b, "");
    }
}
