//! Stage 4's runs, for real: each patch (and the original code) gets its own private checkout
//! and environment layer, installed after the patch is applied (as the harness re-runs the
//! install), and scripts and tests run there in the sandbox. Trees are made on first use and
//! reused by later runs of the same patch.

use anyhow::{Context, Result};
use ponder_env::{BaseEnv, EnvRecipe, EnvStore, Layer, LayerOptions};
use ponder_repo::{ApplyOutcome, Checkout, PatchApplier};
use ponder_sandbox::{CommandSpec, Policy, Sandbox};
use ponder_swebench::logparse::LogFormat;
use ponder_workflow::{ExecRun, Executor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A patch's tree and layer, made once (or the reason it could not be).
type TreeCell = Arc<OnceLock<Result<(PathBuf, Layer), String>>>;

/// Runs code in the repository's environment, one tree per patch.
pub struct EnvExecutor {
    pub sandbox: Sandbox,
    pub envs: EnvStore,
    pub base: BaseEnv,
    pub recipe: EnvRecipe,
    /// The repository checkouts are made from, and the commit.
    pub git_dir: PathBuf,
    pub commit: String,
    /// Where trees, layers and scripts go.
    pub work: PathBuf,
    pub script_timeout: Duration,
    pub test_timeout: Duration,
    trees: Mutex<HashMap<String, TreeCell>>,
    counter: Mutex<usize>,
}

impl EnvExecutor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sandbox: Sandbox,
        envs: EnvStore,
        base: BaseEnv,
        recipe: EnvRecipe,
        git_dir: PathBuf,
        commit: String,
        work: PathBuf,
        test_timeout: Duration,
    ) -> EnvExecutor {
        EnvExecutor {
            sandbox,
            envs,
            base,
            recipe,
            git_dir,
            commit,
            work,
            script_timeout: Duration::from_secs(120),
            test_timeout,
            trees: Mutex::new(HashMap::new()),
            counter: Mutex::new(0),
        }
    }

    /// The tree and layer for `patch` (empty: the original code), made on first use. Trees of
    /// different patches are made in parallel; callers asking for the same patch at once wait
    /// for the one tree.
    pub fn tree(&self, patch: Option<&str>) -> Result<(PathBuf, Layer)> {
        let key = patch.unwrap_or("").to_owned();
        let cell = {
            let mut trees = self.trees.lock().unwrap_or_else(|e| e.into_inner());
            trees.entry(key).or_default().clone()
        };
        cell.get_or_init(|| self.make_tree(patch).map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(|e| anyhow::anyhow!(e))
    }

    fn make_tree(&self, patch: Option<&str>) -> Result<(PathBuf, Layer)> {
        let n = {
            let mut c = self.counter.lock().unwrap_or_else(|e| e.into_inner());
            *c += 1;
            *c
        };
        let tree = self.work.join(format!("tree-{n}"));
        let layer_dir = self.work.join(format!("layer-{n}"));
        Checkout::create(&self.git_dir, &self.commit, &tree)?;
        if let Some(patch) = patch {
            match PatchApplier::new(&tree).apply(patch)? {
                ApplyOutcome::Applied { .. } | ApplyOutcome::Empty => {}
                ApplyOutcome::Failed { reason, .. } => {
                    anyhow::bail!("the patch does not apply: {reason}")
                }
            }
        }
        let layer = self
            .envs
            .create_layer(
                &self.base,
                &self.recipe,
                &tree,
                &layer_dir,
                &LayerOptions::default(),
            )
            .context("the environment layer could not be installed")?;
        Ok((tree, layer))
    }

    /// Runs `argv` in the tree of `patch`; returns the run and that tree.
    fn run_in(
        &self,
        patch: Option<&str>,
        argv: Vec<String>,
        timeout: Duration,
    ) -> Result<(ExecRun, PathBuf)> {
        let (tree, layer) = self.tree(patch)?;
        let spec = layer.activation().apply(CommandSpec::new(argv).cwd(&tree));
        let policy = layer
            .activation()
            .confine(Policy::tests(&tree))
            .writable(layer.dir.clone())
            .readable(self.work.join("scripts"))
            .timeout(timeout);
        let outcome = self.sandbox.run(&spec, &policy)?;
        let run = ExecRun {
            exit_code: match outcome.termination {
                ponder_sandbox::Termination::Exited(c) => Some(c),
                _ => None,
            },
            timed_out: outcome.termination == ponder_sandbox::Termination::TimedOut,
            output: outcome.output,
            seconds: outcome.elapsed.as_secs_f64(),
        };
        Ok((run, tree))
    }

    /// Removes every tree and layer made.
    pub fn clean_up(&self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

impl Executor for EnvExecutor {
    fn run_script(&self, patch: Option<&str>, script: &str) -> Result<ExecRun, String> {
        let scripts = self.work.join("scripts");
        let n = {
            let mut c = self.counter.lock().unwrap_or_else(|e| e.into_inner());
            *c += 1;
            *c
        };
        let path = scripts.join(format!("reproduce_{n}.py"));
        std::fs::create_dir_all(&scripts)
            .and_then(|_| std::fs::write(&path, script))
            .map_err(|e| format!("cannot write the script {}: {e}", path.display()))?;
        self.run_in(
            patch,
            vec!["python".into(), path.display().to_string()],
            self.script_timeout,
        )
        .map(|(run, _)| run)
        .map_err(|e| format!("{e:#}"))
    }

    fn run_tests(
        &self,
        patch: Option<&str>,
        files: &[String],
    ) -> Result<(BTreeMap<String, String>, ExecRun), String> {
        let mut argv: Vec<String> = ["python", "-m", "pytest", "-rA", "-p", "no:cacheprovider"]
            .map(String::from)
            .to_vec();
        argv.extend(files.iter().cloned());
        let (run, tree) = self
            .run_in(patch, argv, self.test_timeout)
            .map_err(|e| format!("{e:#}"))?;
        // Each patch has its own tree, and parametrized test ids can hold the tree's path:
        // ids are compared with the path written as <tree>.
        let tree = tree.display().to_string();
        let statuses = LogFormat::for_repo("pytest-dev/pytest")
            .map(|f| f.parse(&run.output))
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let status = serde_json::to_value(v)
                    .ok()
                    .and_then(|s| s.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (k.replace(&tree, "<tree>"), status)
            })
            .collect();
        Ok((statuses, run))
    }
}

/// Canonical form of a folder that will be handed to the sandbox.
pub fn canonical(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))
}
