//! `ponder bench` and `ponder report`: the command line of ponder-bench.

use crate::llm::ModelArgs;
use crate::solve::{SearchModels, search_models};
use anyhow::{Context, Result};
use clap::Args;
use ponder_bench::report::{load, table};
use ponder_bench::runner::{BenchOptions, Policy, run_bench};
use ponder_bench::sim::SimConfig;
use ponder_repo::RepoSource;
use ponder_sandbox::Sandbox;
use ponder_workflow::{SearchConfig, Signals, Strategy};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct BenchArgs {
    /// SWE-bench rows (JSONL or JSON); python_specs.json beside it gives the environments.
    #[arg(long)]
    dataset: PathBuf,
    /// Comma-separated instance ids [default: every row].
    #[arg(long, value_delimiter = ',')]
    instances: Option<Vec<String>>,
    /// Repositories: a folder of owner__name mirrors, one git repository, pypi:NAME==VERSION,
    /// or a clone URL template containing {repo} (rows with a `source` bring their own).
    #[arg(long)]
    repos: Option<String>,
    /// Strategies, comma-separated: dev-search, best-of-n, vote, endpoint-verify, single
    /// [default: all five].
    #[arg(long, value_delimiter = ',')]
    strategy: Option<Vec<Strategy>>,
    /// Budgets in rollouts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    budgets: Vec<usize>,
    /// Where candidates come from: `model` (the configuration's policy model, or --base-url
    /// and --model) or `sim` (the simulated policy, drawing from the gold patches).
    #[arg(long, default_value = "model")]
    policy: String,
    /// The simulated policy's probabilities (TOML; see docs/bench.md).
    #[arg(long, value_name = "FILE")]
    sim_config: Option<PathBuf>,
    /// Candidates kept at each pruned stage of dev-search.
    #[arg(long, default_value_t = 2)]
    beam: usize,
    /// The process reward model: a configuration role or a model name at the policy's server.
    #[arg(long, value_name = "MODEL")]
    prm: Option<String>,
    /// The outcome reward model: a configuration role or a model name at the policy's server.
    #[arg(long, value_name = "MODEL")]
    orm: Option<String>,
    /// Base of the samples' seeds.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Instances worked on at once.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Where cells, trees, grades, predictions and the report go; rerunning resumes.
    #[arg(long, default_value = "runs/bench")]
    run_dir: PathBuf,
    /// Time limit of one test run, in seconds.
    #[arg(long, default_value_t = 1800)]
    test_timeout: u64,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    resolve: crate::ResolveArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
pub struct ReportArgs {
    /// A `ponder bench` run directory.
    run_dir: PathBuf,
    /// Where the HTML page goes [default: <run-dir>/report.html].
    #[arg(long)]
    html: Option<PathBuf>,
}

pub fn run(args: BenchArgs, cache_dir: &Path, sandbox: Sandbox) -> Result<ExitCode> {
    let strategies = args
        .strategy
        .clone()
        .unwrap_or_else(|| Strategy::ALL.to_vec());
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let policy = match args.policy.as_str() {
        "sim" => {
            let config = match &args.sim_config {
                Some(p) => SimConfig::load(p)?,
                None => SimConfig::default(),
            };
            eprintln!(
                "bench: SIMULATED policy (candidates drawn from the gold patches, not by a \
                 model); P(rollout right) = {:.3}",
                config.p_rollout()
            );
            Policy::Sim(config)
        }
        "model" => {
            let _guard = runtime.enter();
            let (_, sampling) =
                crate::solve::workflow_settings(args.model.config_file().as_deref())?;
            let SearchModels { model, prm, orm } =
                search_models(&args.model, cache_dir, sampling, &args.prm, &args.orm)?;
            Policy::Model { model, prm, orm }
        }
        other => anyhow::bail!("--policy {other:?}: use `model` or `sim`"),
    };
    let opts = BenchOptions {
        dataset: args.dataset.clone(),
        instances: args.instances.clone(),
        repos: args.repos.as_deref().map(RepoSource::parse).transpose()?,
        strategies,
        budgets: args.budgets.clone(),
        search: SearchConfig {
            beam: args.beam,
            seed: args.seed,
            signals: Signals::default(),
            ..SearchConfig::default()
        },
        policy,
        workers: args.workers,
        run_dir: args.run_dir.clone(),
        cache_dir: cache_dir.to_path_buf(),
        test_timeout: Duration::from_secs(args.test_timeout),
        progress: !args.quiet,
        recipe_defaults: args.resolve.defaults(),
    };
    let summary = run_bench(&opts, sandbox)?;
    for (id, why) in &summary.failed_instances {
        eprintln!("failed: {id}: {why}");
    }
    report(&args.run_dir, None)?;
    Ok(if summary.failed_instances.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes report.json and the HTML page of a run directory and prints the table.
pub fn report(run_dir: &Path, html: Option<&Path>) -> Result<()> {
    let loaded = load(run_dir)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let report = loaded.report();
    let json = run_dir.join("report.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let page = html
        .map(Path::to_path_buf)
        .unwrap_or_else(|| run_dir.join("report.html"));
    std::fs::write(&page, ponder_bench::html::html(&report))
        .with_context(|| format!("cannot write {}", page.display()))?;
    print!("{}", table(&report));
    println!("report: {} and {}", json.display(), page.display());
    Ok(())
}

pub fn run_report(args: ReportArgs) -> Result<ExitCode> {
    report(&args.run_dir, args.html.as_deref())?;
    Ok(ExitCode::SUCCESS)
}
