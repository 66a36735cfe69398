//! `ponder solve`: the command line of ponder-solve.

use crate::llm::ModelArgs;
use anyhow::{Context, Result};
use clap::Args;
use ponder_repo::RepoSource;
use ponder_sandbox::Sandbox;
use ponder_solve::{SolveOptions, Target, solve};
use ponder_workflow::{Sampling, StageLimits, StageModel};
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
        test_timeout: Duration::from_secs(args.test_timeout),
        trajectory_path: args.trajectory.clone(),
        progress: true,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
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
    match &args.out {
        Some(path) => {
            std::fs::write(path, &patch)
                .with_context(|| format!("cannot write the patch to {}", path.display()))?;
            eprintln!("patch: {}", path.display());
        }
        None => print!("{patch}"),
    }
    for check in &result.checks {
        eprintln!("check: {check}");
    }
    match result.verified {
        Some(true) => eprintln!("verified: every check passed"),
        Some(false) if result.checks.iter().all(|c| c.starts_with("no ")) => {
            eprintln!("NOT verified: no check could run (see the trajectory)")
        }
        Some(false) => eprintln!("NOT verified: a check still fails (see the trajectory)"),
        None => eprintln!("not verified (--no-verify)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The `[stages]` and `[sampling]` sections of the configuration file, defaults where absent.
fn workflow_settings(file: Option<&Path>) -> Result<(StageLimits, Sampling)> {
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
