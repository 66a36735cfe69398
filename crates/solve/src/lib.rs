//! `ponder solve`: one issue in, a patch out, through the four stages of SWE-SynInfer+.
//!
//! The user's repository is never touched: the commit to solve is checked out into a private
//! tree (a dirty work tree's uncommitted changes are not seen, and the user is told), the code
//! index is built there, and verification runs in further private trees with their own
//! environment layers. Each stage's record goes into the trajectory as soon as it ends, and
//! the trajectory is written after every stage, so a failure keeps what was done.

pub mod executor;
pub mod normalize;
pub mod search;

use anyhow::{Context, Result, bail};
use executor::{EnvExecutor, canonical};
use ponder_code::{CodeIndex, IndexOptions};
use ponder_env::{BuildOptions, EnvRecipe, EnvStore};
use ponder_repo::git::Git;
use ponder_repo::{Checkout, RepoSource, RepoStore};
use ponder_sandbox::Sandbox;
use ponder_swebench::dataset::{Dataset, Selection};
use ponder_swebench::specs::Specs;
use ponder_workflow::{
    Prompts, Regression, StageInput, StageLimits, StageModel, StageRecord, Trajectory, Verification,
};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to solve.
#[derive(Debug, Clone)]
pub enum Target {
    /// A git repository on disk; its HEAD commit is solved.
    Repo { path: PathBuf },
    /// A benchmark instance: its repository from `repos` (or the row's own source), at its base
    /// commit, with the benchmark's environment.
    Instance {
        dataset: PathBuf,
        id: String,
        repos: Option<RepoSource>,
    },
}

#[derive(Debug, Clone)]
pub struct SolveOptions {
    pub target: Target,
    /// The issue text; for an instance, empty means the row's problem statement.
    pub issue: String,
    pub verify: bool,
    pub limits: StageLimits,
    pub cache_dir: PathBuf,
    /// Where private trees go while solving.
    pub work_dir: PathBuf,
    pub keep: bool,
    pub test_timeout: Duration,
    /// Settings applied to an instance's recipe (`--resolve-before`), as `ponder eval` applies
    /// them, so that a patch is verified in the environment it is graded in.
    pub recipe_defaults: ponder_eval::RecipeDefaults,
    /// Where the trajectory is written after every stage.
    pub trajectory_path: Option<PathBuf>,
    /// Print one line per stage to stderr.
    pub progress: bool,
}

/// The result of a solve run.
#[derive(Debug, Clone, Serialize)]
pub struct SolveResult {
    pub patch: Option<String>,
    /// Whether at least one check ran on the final patch and every check that ran passed
    /// (None: not verified).
    pub verified: Option<bool>,
    /// What was checked and how it came out, one sentence each.
    pub checks: Vec<String>,
    pub trajectory: Trajectory,
}

/// What the target resolves to.
struct Prepared {
    git_dir: PathBuf,
    commit: String,
    name: String,
    issue: String,
    recipe: Option<EnvRecipe>,
    warnings: Vec<String>,
}

fn prepare(opts: &SolveOptions, envs: &EnvStore) -> Result<Prepared> {
    match &opts.target {
        Target::Repo { path } => {
            let git = Git::new(path);
            let top = git.run(&["rev-parse", "--show-toplevel"]).with_context(|| {
                format!(
                    "{} is not a git repository; ponder solves a commit of one (run `git init` and commit first)",
                    path.display()
                )
            })?;
            let commit = git
                .run(&["rev-parse", "HEAD"])
                .context("the repository has no commit yet; commit the code to solve first")?
                .trim()
                .to_owned();
            let mut warnings = Vec::new();
            let status = git.run(&["status", "--porcelain", "--untracked-files=no"])?;
            if !status.trim().is_empty() {
                warnings.push(format!(
                    "the work tree has uncommitted changes; they are left alone and not seen: \
                     ponder solves the HEAD commit {}",
                    &commit[..12.min(commit.len())]
                ));
            }
            if opts.issue.trim().is_empty() {
                bail!("the issue is empty; write what is wrong in the issue file");
            }
            let name = Path::new(top.trim())
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "repository".into());
            let recipe =
                if opts.verify {
                    Some(EnvRecipe::detect(Path::new(top.trim()), envs.interpreters()).context(
                    "no environment could be detected for the repository; pass --no-verify to \
                     solve without running code",
                )?)
                } else {
                    None
                };
            Ok(Prepared {
                git_dir: PathBuf::from(top.trim()),
                commit,
                name,
                issue: opts.issue.clone(),
                recipe,
                warnings,
            })
        }
        Target::Instance { dataset, id, repos } => {
            let mut data = Dataset::load(dataset)?;
            data.select(&Selection::new(Some(vec![id.clone()]), None)?);
            let inst = data
                .instances
                .into_iter()
                .next()
                .with_context(|| format!("{id} is not an instance of {}", dataset.display()))?;
            let store = RepoStore::new(opts.cache_dir.join("repos"));
            let source = ponder_eval::runner::source_for(repos.as_ref(), &inst)?;
            let git_dir = store.resolve(&source, &inst.repo)?;
            store.ensure_commit(&source, &git_dir, &inst.base_commit)?;
            let _ = store.ensure_commit(&source, &git_dir, inst.env_commit());
            let issue = if opts.issue.trim().is_empty() {
                inst.problem_statement.clone()
            } else {
                opts.issue.clone()
            };
            if issue.trim().is_empty() {
                bail!("{id} has an empty problem statement; pass --issue");
            }
            let recipe = if opts.verify {
                let specs = Specs::load(&Specs::default_path_for(dataset))?;
                let spec = specs
                    .get(&inst.repo, &inst.version)
                    .with_context(|| specs.missing_reason(&inst.repo, &inst.version))?;
                let mut recipe = ponder_eval::recipe::recipe_for(&inst, spec, &git_dir)?;
                opts.recipe_defaults.validate()?;
                opts.recipe_defaults.apply(&mut recipe, &inst);
                let uv = || Ok(envs.uv(Duration::from_secs(600))?);
                ponder_eval::recipe::fill_submodules(&mut recipe, &inst, &git_dir, &uv)?;
                Some(recipe)
            } else {
                None
            };
            Ok(Prepared {
                git_dir,
                commit: inst.base_commit.clone(),
                name: inst.repo.clone(),
                issue,
                recipe,
                warnings: Vec::new(),
            })
        }
    }
}

/// Runs the four stages. Only setup problems (no repository, an empty issue, a dead model
/// server before anything was done) are `Err`; a stage that produces nothing ends the run
/// with `patch: None` and the reason in the trajectory.
pub async fn solve(
    opts: &SolveOptions,
    model: &StageModel,
    sandbox: Sandbox,
) -> Result<SolveResult> {
    let started = Instant::now();
    // The sandbox binds canonical paths only: a cache reached through `..` or a symlink (and
    // under /tmp, which the sandbox replaces) would not be found inside it.
    let mut opts = opts.clone();
    opts.cache_dir = canonical(&opts.cache_dir)?;
    opts.work_dir = canonical(&opts.work_dir)?;
    let opts = &opts;
    let envs = EnvStore::new(opts.cache_dir.join("envs"), sandbox.clone())
        .with_download_cache(opts.cache_dir.join("downloads"));
    let prepared = prepare(opts, &envs)?;
    for w in &prepared.warnings {
        eprintln!("warning: {w}");
    }
    let work = canonical(&opts.work_dir)?.join(format!(
        "solve-{}-{}",
        std::process::id(),
        started.elapsed().as_nanos() % 1_000_000
    ));
    let tree = work.join("original");
    Checkout::create(&prepared.git_dir, &prepared.commit, &tree)?;
    let (index, _) = CodeIndex::open(
        &tree,
        IndexOptions {
            cache_dir: Some(opts.cache_dir.join("code")),
            ..IndexOptions::default()
        },
    )?;
    let prompts = Prompts::new();
    let input = StageInput {
        repo: &prepared.name,
        issue: &prepared.issue,
        index: &index,
        prompts: &prompts,
        limits: opts.limits,
        model,
    };
    let mut traj = Trajectory::new(&prepared.name, &prepared.issue, &model.client.spec().model);
    traj.base_commit = Some(prepared.commit.clone());
    let mut run = Run {
        opts,
        traj: &mut traj,
        started,
    };
    let outcome = stages(&mut run, &input, &tree, &prepared, &envs, sandbox, &work).await;
    let (patch, verified, checks) = match outcome {
        Ok(r) => r,
        Err(e) => {
            run.traj.failure = Some(format!("{e:#}"));
            (None, None, Vec::new())
        }
    };
    run.traj.patch = patch.clone().unwrap_or_default();
    if patch.is_none() && run.traj.failure.is_none() {
        run.traj.failure = Some("no patch was produced".into());
    }
    run.save();
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(SolveResult {
        patch,
        verified,
        checks,
        trajectory: traj,
    })
}

struct Run<'a> {
    opts: &'a SolveOptions,
    traj: &'a mut Trajectory,
    started: Instant,
}

impl Run<'_> {
    /// Says on stderr which stage starts.
    fn start(&self, stage: &str, what: &str) {
        if self.opts.progress {
            eprintln!("stage {stage:<10} ... {what}");
        }
    }

    /// Adds a stage's record, reports it, and writes the trajectory so far.
    fn push(&mut self, record: StageRecord) {
        if self.opts.progress {
            let usage = record.usage();
            let calls: usize = record.turns.iter().map(|t| t.tool_calls.len()).sum();
            let recoveries = record.recoveries().count();
            eprintln!(
                "stage {:<10} done: {} turn(s), {} tool call(s), {} recovery(ies), {} tokens, {:.1}s{}",
                record.stage,
                record.turns.len(),
                calls,
                recoveries,
                usage.total(),
                record.seconds,
                record
                    .failure
                    .as_deref()
                    .map(|f| format!(
                        ": FAILED: {}",
                        f.lines()
                            .next()
                            .unwrap_or("")
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ))
                    .unwrap_or_default()
            );
        }
        self.traj.push(record);
        self.save();
    }

    fn save(&mut self) {
        self.traj.seconds = self.started.elapsed().as_secs_f64();
        if let Some(path) = &self.opts.trajectory_path
            && let Ok(text) = serde_json::to_vec_pretty(&*self.traj)
        {
            let tmp = path.with_extension("json.tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, path);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn stages(
    run: &mut Run<'_>,
    input: &StageInput<'_>,
    tree: &Path,
    prepared: &Prepared,
    envs: &EnvStore,
    sandbox: Sandbox,
    work: &Path,
) -> Result<(Option<String>, Option<bool>, Vec<String>)> {
    run.start("understand", "ranking files, naming suspicious locations");
    let (understanding, record) = ponder_workflow::understand(input).await;
    run.push(record);
    let understanding = understanding?;
    run.start("localize", "searching the code");
    let (localization, record) = ponder_workflow::localize(input, &understanding).await;
    run.push(record);
    let code = match localization {
        Ok(l) => l.code,
        // Stage 1's suspicious code is the fallback when the search found nothing.
        Err(e) if !understanding.code.is_empty() => {
            eprintln!("warning: localization failed ({e}); patching stage 1's locations");
            understanding.code.clone()
        }
        Err(e) => return Err(e.into()),
    };
    let read = |p: &str| std::fs::read_to_string(tree.join(p)).ok();
    let analysis = (!understanding.analysis.is_empty()).then_some(understanding.analysis.as_str());
    run.start("patch", "writing edits");
    let (patch, record) = ponder_workflow::write_patch(input, &code, analysis, read).await;
    run.push(record);
    let mut patch = patch?;
    let Some(recipe) = prepared.recipe.clone() else {
        return Ok((Some(patch.diff), None, Vec::new()));
    };

    // Stage 4: the environment, the reproduction, the regression baseline, the checks.
    let base = envs
        .ensure_base(
            &recipe,
            &BuildOptions {
                needed_by: Some(prepared.name.clone()),
                ..BuildOptions::default()
            },
        )
        .context("the environment for verification could not be built (pass --no-verify to skip verification)")?;
    let executor = EnvExecutor::new(
        sandbox,
        EnvStore::new(run.opts.cache_dir.join("envs"), envs.sandbox().clone())
            .with_download_cache(run.opts.cache_dir.join("downloads")),
        base,
        recipe,
        prepared.git_dir.clone(),
        prepared.commit.clone(),
        work.join("verify"),
        warm_pool(&run.opts.cache_dir),
        run.opts.test_timeout,
    );
    run.start(
        "reproduce",
        "writing a reproduction script and running it on the original code",
    );
    let (repro, record) = ponder_workflow::write_reproduction(input, &executor).await;
    run.push(record);
    let repro = repro.ok();
    run.start(
        "regression",
        "running the tests near the changed files on the original code",
    );
    let mut record = StageRecord::new("regression");
    let t = Instant::now();
    let regression = ponder_workflow::regression_baseline(
        &executor,
        ponder_workflow::regression_files(input.index, &patch.files, 5),
    )
    .unwrap_or_else(|e| {
        record.failure = Some(e);
        Regression::default()
    });
    record.output = serde_json::to_value(&regression).unwrap_or_default();
    record.seconds = t.elapsed().as_secs_f64();
    run.push(record);

    let mut verified = false;
    let mut last = Verification::default();
    for round in 0..=input.limits.debug_rounds {
        let mut record = StageRecord::new("verify");
        let t = Instant::now();
        run.start(
            "verify",
            &format!("round {}: running the checks on the patch", round + 1),
        );
        let v = ponder_workflow::verify_patch(&executor, &patch.diff, repro.as_ref(), &regression)
            .unwrap_or_else(|e| Verification {
                failure: Some(e),
                ..Verification::default()
            });
        record.output = serde_json::to_value(&v).unwrap_or_default();
        record.failure = v.failure.clone();
        record.seconds = t.elapsed().as_secs_f64();
        run.push(record);
        last = v.clone();
        if v.passed {
            verified = true;
            break;
        }
        if round == input.limits.debug_rounds {
            break;
        }
        let read = |p: &str| std::fs::read_to_string(tree.join(p)).ok();
        let (next, record) =
            ponder_workflow::debug_patch(input, &code, &patch.diff, &v, read).await;
        run.push(record);
        match next {
            Ok(p) => patch = p,
            Err(_) => break,
        }
    }
    if !run.opts.keep {
        executor.clean_up();
    }
    let checks = describe_checks(repro.is_some(), last.resolved_by_script, &regression, &last);
    let ran_any = repro.is_some() || !regression.passing.is_empty();
    Ok((Some(patch.diff), Some(verified && ran_any), checks))
}

/// The checks of a final patch, one sentence each.
pub(crate) fn describe_checks(
    reproduction_found: bool,
    resolved_by_script: Option<bool>,
    regression: &Regression,
    last: &Verification,
) -> Vec<String> {
    let mut checks = vec![match (reproduction_found, resolved_by_script) {
        (false, _) => {
            "no reproduction script (none printed \"Issue reproduced\" on the original code)"
                .to_owned()
        }
        (true, Some(true)) => {
            "the reproduction script prints \"Issue resolved\" with the patch".to_owned()
        }
        (true, _) => {
            "the reproduction script does NOT print \"Issue resolved\" with the patch".to_owned()
        }
    }];
    checks.push(if regression.passing.is_empty() {
        "no regression tests (none found near the changed files, or none passed before)".to_owned()
    } else {
        format!(
            "{} of {} regression tests still pass",
            regression.passing.len() - last.regressions.len().min(regression.passing.len()),
            regression.passing.len()
        )
    });
    checks
}

/// The warm instances checks run on: the same pool as `ponder eval`'s, under the cache.
pub(crate) fn warm_pool(cache_dir: &Path) -> ponder_eval::warm::WarmPool {
    ponder_eval::warm::WarmPool::new(
        cache_dir.join("instances"),
        ponder_eval::warm::DEFAULT_LIMIT_BYTES,
    )
}
