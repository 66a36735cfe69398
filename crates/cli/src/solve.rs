//! `ponder solve`: the command line of ponder-solve.

use crate::llm::ModelArgs;
use anyhow::{Context, Result};
use clap::Args;
use ponder_repo::RepoSource;
use ponder_sandbox::Sandbox;
use ponder_solve::search::{SearchOptions, search};
use ponder_solve::{SolveOptions, Target, solve};
use ponder_workflow::{Sampling, SearchConfig, Signals, StageLimits, StageModel, Strategy};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct SolveArgs {
    /// A git repository; its HEAD commit is solved (the work tree itself is never changed).
    #[arg(long, conflicts_with = "dataset")]
    repo: Option<PathBuf>,
    /// The issue, as a text or Markdown file ("-" reads standard input). For a dataset
    /// instance it defaults to the row's problem statement.
    #[arg(long)]
    issue: Option<PathBuf>,
    /// SWE-bench rows (JSONL or JSON) holding --instance.
    #[arg(long, requires = "instance")]
    dataset: Option<PathBuf>,
    /// The instance of --dataset to solve.
    #[arg(long, requires = "dataset")]
    instance: Option<String>,
    /// Repositories for --dataset: a folder of owner__name mirrors, one git repository,
    /// pypi:NAME==VERSION, or a clone URL template containing {repo}.
    #[arg(long)]
    repos: Option<String>,
    /// Where the patch is written [default: standard output].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the trajectory (JSON, schema in docs/trajectory.md) is written, after every stage.
    #[arg(long)]
    trajectory: Option<PathBuf>,
    /// Skip stage 4 (no environment is built, no code is run).
    #[arg(long)]
    no_verify: bool,
    /// Send tool schemas through the server's function calling instead of describing the
    /// tools in the prompt.
    #[arg(long)]
    native_tools: bool,
    /// Sampling temperature of every stage [default: [sampling] of the configuration, else 0].
    #[arg(long)]
    temperature: Option<f32>,
    /// max_tokens of every model call [default: [sampling] of the configuration, else 4096].
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Send earlier turns' reasoning back to the model instead of pruning it from the history.
    #[arg(long)]
    keep_reasoning: bool,
    /// Search rounds of fault localization.
    #[arg(long)]
    rounds: Option<usize>,
    /// Debug rounds after a failed verification.
    #[arg(long)]
    debug_rounds: Option<usize>,
    /// Time limit of one regression-test run, in seconds.
    #[arg(long, default_value_t = 600)]
    test_timeout: u64,
    /// Keep the private trees and layers (under the cache's solve/ folder).
    #[arg(long)]
    keep: bool,
    /// Rollouts to spend (test-time scaling). Above 1 the strategy defaults to dev-search.
    #[arg(long, default_value_t = 1)]
    budget: usize,
    /// How the budget is spent: dev-search, best-of-n, vote, endpoint-verify or single
    /// [default: single for a budget of 1, else dev-search].
    #[arg(long)]
    strategy: Option<Strategy>,
    /// Candidates kept at each pruned stage of dev-search.
    #[arg(long, default_value_t = 2)]
    beam: usize,
    /// The process reward model: a model role of the configuration, or a model name served
    /// where the policy model is [default: the policy model as a prompted judge].
    #[arg(long, value_name = "MODEL")]
    prm: Option<String>,
    /// The outcome reward model: a model role of the configuration, or a model name served
    /// where the policy model is [default: the policy model as a prompted judge].
    #[arg(long, value_name = "MODEL")]
    orm: Option<String>,
    /// Do not prune by the process reward model (keep the first candidates).
    #[arg(long)]
    no_prm: bool,
    /// Do not rank patches by the outcome reward model.
    #[arg(long)]
    no_orm: bool,
    /// Do not rank patches by their checks (regression failures, reproduction).
    #[arg(long)]
    no_execution: bool,
    /// Do not break ties by agreement among normalized patches.
    #[arg(long)]
    no_agreement: bool,
    /// Dev-search: stop writing patches once `beam` of them make the same normalized change.
    #[arg(long)]
    early_stop: bool,
    /// Base of the samples' seeds.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the search tree (JSON) is written after every node; rerunning the same search
    /// with the same file resumes it [default: <cache-dir>/search/<hash of the search>.json].
    #[arg(long)]
    tree: Option<PathBuf>,
    #[command(flatten)]
    resolve: crate::ResolveArgs,
    #[command(flatten)]
    model: ModelArgs,
}

pub fn run(args: SolveArgs, cache_dir: &Path, sandbox: Sandbox) -> Result<ExitCode> {
    let issue = match &args.issue {
        Some(p) if p.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("cannot read the issue from stdin")?
        }
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the issue file {}", p.display()))?,
        None => String::new(),
    };
    let target = match (&args.repo, &args.dataset, &args.instance) {
        (Some(path), _, _) => {
            if args.issue.is_none() {
                anyhow::bail!("--repo needs --issue FILE (the text of the issue to solve)");
            }
            Target::Repo { path: path.clone() }
        }
        (None, Some(dataset), Some(id)) => Target::Instance {
            dataset: dataset.clone(),
            id: id.clone(),
            repos: args.repos.as_deref().map(RepoSource::parse).transpose()?,
        },
        _ => anyhow::bail!(
            "say what to solve: --repo PATH --issue FILE, or --dataset FILE --instance ID"
        ),
    };
    let (mut limits, mut sampling) = workflow_settings(args.model.config_file().as_deref())?;
    if let Some(t) = args.temperature {
        sampling.temperature = t;
    }
    if let Some(m) = args.max_tokens {
        sampling.max_tokens = m;
    }
    sampling.native_tools |= args.native_tools;
    sampling.keep_reasoning |= args.keep_reasoning;
    if let Some(r) = args.rounds {
        limits.localization_rounds = r;
    }
    if let Some(r) = args.debug_rounds {
        limits.debug_rounds = r;
    }
    let opts = SolveOptions {
        target,
        issue,
        verify: !args.no_verify,
        limits,
        cache_dir: cache_dir.to_path_buf(),
        work_dir: cache_dir.join("solve"),
        keep: args.keep,
        recipe_defaults: args.resolve.defaults(),
        test_timeout: Duration::from_secs(args.test_timeout),
        trajectory_path: args.trajectory.clone(),
        progress: true,
    };
    let strategy = args.strategy.unwrap_or(if args.budget > 1 {
        Strategy::DevSearch
    } else {
        Strategy::Single
    });
    let searching = args.budget > 1 || args.strategy.is_some();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if searching {
        let config = SearchConfig {
            strategy,
            budget: args.budget,
            beam: args.beam,
            signals: Signals {
                prm: !args.no_prm,
                orm: !args.no_orm,
                execution: !args.no_execution,
                agreement: !args.no_agreement,
            },
            seed: args.seed,
            early_stop: args.early_stop,
            ..SearchConfig::default()
        };
        config.validate().map_err(anyhow::Error::msg)?;
        let tree_path = match &args.tree {
            Some(p) => p.clone(),
            None => cache_dir.join("search").join(format!(
                "{}.json",
                search_key(
                    &opts,
                    &config,
                    &format!(
                        "{}|{:?}|{:?}|verify={}",
                        args.model.describe(),
                        args.prm,
                        args.orm,
                        opts.verify
                    ),
                )
            )),
        };
        let result = runtime.block_on(async {
            let SearchModels { model, prm, orm } =
                search_models(&args.model, cache_dir, sampling, &args.prm, &args.orm)?;
            let options = SearchOptions {
                config,
                prm,
                orm,
                tree_path: tree_path.clone(),
                // One warm-instance slot per check; more than the pool's slots per instance
                // would build private ones.
                parallel_checks: std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
                    .min(ponder_eval::warm::MAX_SLOTS),
                source: None,
                shared: None,
            };
            search(&opts, &options, &model, sandbox).await
        })?;
        eprintln!("search tree: {}", tree_path.display());
        if let Some(choice) = &result.tree.choice {
            eprintln!(
                "chosen: node {} of {} patch candidate(s), by {}",
                choice.node,
                choice.ranking.len(),
                choice.rule
            );
        }
        let usage = result.tree.total_usage();
        eprintln!(
            "tokens: {} in all ({} prompt, {} completion), {} node(s) resumed",
            usage.total(),
            usage.prompt_tokens,
            usage.completion_tokens,
            result.resumed_nodes
        );
        let Some(patch) = result.patch else {
            eprintln!(
                "error: no patch: {}",
                result.tree.failure.as_deref().unwrap_or("unknown reason")
            );
            return Ok(ExitCode::from(1));
        };
        return finish(&args, &patch, &result.checks, result.verified);
    }
    let result = runtime.block_on(async {
        let (client, budget) = args.model.client(cache_dir)?;
        let model = StageModel {
            client: Arc::new(client),
            budget: budget.task(),
            sampling,
        };
        solve(&opts, &model, sandbox).await
    })?;
    if let Some(path) = &args.trajectory {
        eprintln!("trajectory: {}", path.display());
    }
    let Some(patch) = result.patch else {
        eprintln!(
            "error: no patch: {}",
            result
                .trajectory
                .failure
                .as_deref()
                .unwrap_or("unknown reason")
        );
        return Ok(ExitCode::from(1));
    };
    finish(&args, &patch, &result.checks, result.verified)
}

/// Writes the patch and says how it was checked.
fn finish(
    args: &SolveArgs,
    patch: &str,
    checks: &[String],
    verified: Option<bool>,
) -> Result<ExitCode> {
    match &args.out {
        Some(path) => {
            std::fs::write(path, patch)
                .with_context(|| format!("cannot write the patch to {}", path.display()))?;
            eprintln!("patch: {}", path.display());
        }
        None => print!("{patch}"),
    }
    for check in checks {
        eprintln!("check: {check}");
    }
    match verified {
        Some(true) => eprintln!("verified: every check passed"),
        Some(false) if checks.iter().all(|c| c.starts_with("no ")) => {
            eprintln!("NOT verified: no check could run (see the trajectory)")
        }
        Some(false) => eprintln!("NOT verified: a check still fails (see the trajectory)"),
        None => eprintln!("not verified (--no-verify, or a strategy that runs no code)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A name for a search's tree file: the same search (target, issue, model, settings) gets the
/// same file, so running it again resumes it.
fn search_key(opts: &SolveOptions, config: &SearchConfig, model: &str) -> String {
    let target = match &opts.target {
        Target::Repo { path } => format!("repo:{}", path.display()),
        Target::Instance { dataset, id, .. } => format!("instance:{}:{id}", dataset.display()),
    };
    let text = format!(
        "{target}\n{}\n{model}\n{}",
        opts.issue,
        serde_json::to_string(config).unwrap_or_default()
    );
    let name = match &opts.target {
        Target::Repo { path } => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Target::Instance { id, .. } => id.clone(),
    };
    format!(
        "{}-{}",
        name.replace(['/', '\\', ' '], "_"),
        &ponder_eval::cache::sha256_hex(&text)[..16]
    )
}

/// The policy model and the reward-model judges a search talks to.
pub(crate) struct SearchModels {
    pub model: StageModel,
    pub prm: Option<StageModel>,
    pub orm: Option<StageModel>,
}

/// The policy model from `args`, and a judge for each of `prm` and `orm` that is set (a role in
/// the configuration or a model name); judges share the policy's per-task budget. Needs a Tokio
/// runtime entered.
pub(crate) fn search_models(
    args: &ModelArgs,
    cache_dir: &Path,
    sampling: Sampling,
    prm: &Option<String>,
    orm: &Option<String>,
) -> Result<SearchModels> {
    let (client, budget) = args.client(cache_dir)?;
    let model = StageModel {
        client: Arc::new(client),
        budget: budget.task(),
        sampling,
    };
    let judge = |role: &Option<String>| -> Result<Option<StageModel>> {
        role.as_deref()
            .map(|role| {
                let (client, _) = args.client_for_judge(role, cache_dir)?;
                Ok(StageModel {
                    client: Arc::new(client),
                    budget: model.budget.clone(),
                    sampling,
                })
            })
            .transpose()
    };
    Ok(SearchModels {
        prm: judge(prm)?,
        orm: judge(orm)?,
        model,
    })
}

/// The `[stages]` and `[sampling]` sections of the configuration file, defaults where absent.
pub(crate) fn workflow_settings(file: Option<&Path>) -> Result<(StageLimits, Sampling)> {
    let Some(path) = file else {
        return Ok((StageLimits::default(), Sampling::default()));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration {}", path.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let limits = match table.remove("stages") {
        Some(v) => v
            .try_into()
            .with_context(|| format!("[stages] in {} is not valid", path.display()))?,
        None => StageLimits::default(),
    };
    let sampling = match table.remove("sampling") {
        Some(v) => v
            .try_into()
            .with_context(|| format!("[sampling] in {} is not valid", path.display()))?,
        None => Sampling::default(),
    };
    Ok((limits, sampling))
}
