//! The `ponder` command line: parses arguments, builds the options of the library crates, and
//! turns their results into terminal output and an exit code. No logic of its own lives here.

mod bench;
mod code;
mod llm;
mod solve;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use ponder_env::EnvStore;
use ponder_eval::{EvalOptions, PatchMode, RecipeDefaults, ResolveBefore, run_eval};
use ponder_repo::{RepoSource, RepoStore};
use ponder_sandbox::{AllowUnconfined, Sandbox};
use ponder_swebench::dataset::{Dataset, Selection};
use ponder_swebench::report::InstanceOutcome;
use ponder_swebench::specs::Specs;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ponder",
    version,
    about = "Resolve software issues with self-hosted models; grade patches on SWE-bench without Docker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Solve an issue: understand the repository, locate the fault, write a patch, verify it.
    Solve {
        #[command(flatten)]
        args: Box<solve::SolveArgs>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Grade patches on SWE-bench-style instances, as the official harness grades them.
    Eval(EvalArgs),
    /// Run strategies at several budgets over a dataset, grade them, and report the scaling
    /// curves (`--policy sim` studies search without a model).
    Bench {
        #[command(flatten)]
        args: Box<bench::BenchArgs>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Write and print the report of a `ponder bench` run directory (JSON, table, HTML).
    Report(bench::ReportArgs),
    /// Build, list or remove the cached Python environments.
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
    /// Check model servers and ask a model (OpenAI-compatible: vLLM, SGLang, llama.cpp, Ollama).
    Llm {
        #[command(subcommand)]
        command: llm::LlmCommand,
        /// Where ponder keeps its caches (the replay cache goes under llm/).
        #[arg(long, env = "PONDER_CACHE", default_value_os_t = default_cache(), global = true)]
        cache_dir: PathBuf,
    },
    /// Index a source tree and query it as the model does: symbols, skeletons, search tools,
    /// retrieval.
    Code {
        #[command(subcommand)]
        command: code::CodeCommand,
        /// Where ponder keeps its caches (indexes go under code/).
        #[arg(long, env = "PONDER_CACHE", default_value_os_t = default_cache(), global = true)]
        cache_dir: PathBuf,
    },
}

#[derive(Args)]
struct CommonArgs {
    /// Where repositories, environments and cached test runs are kept.
    #[arg(long, env = "PONDER_CACHE", default_value_os_t = default_cache())]
    cache_dir: PathBuf,
    /// Run without bubblewrap if it is missing (tests then have network access and can write
    /// anywhere the user can).
    #[arg(long)]
    allow_unconfined: bool,
}

#[derive(Args)]
struct SelectArgs {
    /// SWE-bench rows, JSONL or JSON.
    #[arg(long)]
    dataset: PathBuf,
    /// Environment specs per repository and version [default: python_specs.json beside the dataset].
    #[arg(long)]
    specs: Option<PathBuf>,
    /// Instance ids, comma separated (may be repeated).
    #[arg(long, value_delimiter = ',')]
    instances: Vec<String>,
    /// Regular expression over instance ids.
    #[arg(long)]
    filter: Option<String>,
    /// Repositories: a folder of owner__name mirrors, one git repository, pypi:NAME==VERSION, or
    /// a clone URL template containing {repo}. Rows with their own "source" field use that.
    #[arg(long)]
    repos: Option<String>,
}

impl SelectArgs {
    fn selection(&self) -> Result<Selection> {
        let ids = (!self.instances.is_empty()).then(|| self.instances.clone());
        Selection::new(ids, self.filter.as_deref())
    }
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Grade the dataset's own fixes (every instance should resolve).
    #[arg(long, conflicts_with_all = ["empty", "predictions"])]
    gold: bool,
    /// Run the tests with no patch (no instance should resolve).
    #[arg(long, conflicts_with = "predictions")]
    empty: bool,
    /// Predictions JSONL: {"instance_id", "model_name_or_path", "model_patch"} per line.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Run directory [default: runs/<run-id>].
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Name of the run, used for the default run directory.
    #[arg(long)]
    run_id: Option<String>,
    /// Instances graded at once.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Time limit of one instance's test command, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// Let test commands use the network, as the harness's containers can (off by default:
    /// tests that need it then fail, and say so in their logs).
    #[arg(long)]
    network: bool,
    /// Grade again instances this run directory already finished.
    #[arg(long)]
    redo: bool,
    /// Grade again only the instances this run directory finished with an error.
    #[arg(long)]
    retry_errors: bool,
    /// Run the tests even when an identical run is cached.
    #[arg(long)]
    no_cache: bool,
    /// Keep each instance's checkout and environment layer under <run-dir>/work (implies
    /// --cold for the kept instances).
    #[arg(long)]
    keep: bool,
    /// Check out and install every instance from scratch instead of reusing its warm instance
    /// (a checkout with the project installed at the base commit, kept under
    /// <cache-dir>/instances like the harness's instance images).
    #[arg(long)]
    cold: bool,
    /// Disk the warm instances may take, in GB; the least recently used go first.
    #[arg(long, value_name = "GB", default_value_t = 20.0)]
    warm_cache_gb: f64,
    #[command(flatten)]
    resolve: ResolveArgs,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Subcommand)]
enum EnvCommand {
    /// Build the base environments the selected instances need (one per repository + version).
    Build {
        #[command(flatten)]
        select: SelectArgs,
        /// Rebuild even if built (or failed) before.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        resolve: ResolveArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// List the cached environments.
    List {
        #[arg(long, env = "PONDER_CACHE", default_value_os_t = default_cache())]
        cache_dir: PathBuf,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
    },
    /// Remove cached environments by hash prefix, or all of them.
    Rm {
        hashes: Vec<String>,
        #[arg(long, conflicts_with = "hashes")]
        all: bool,
        #[arg(long, env = "PONDER_CACHE", default_value_os_t = default_cache())]
        cache_dir: PathBuf,
    },
}

/// `--resolve-before`, shared by every command that builds environments, so that `eval`,
/// `env build`, `solve` and `bench` given the same value use the same environments.
#[derive(Args, Clone)]
pub struct ResolveArgs {
    /// Resolve unpinned dependencies as PyPI stood before this date (YYYY-MM-DD), in the base
    /// environments and in each instance's install; `latest` resolves against today's PyPI.
    /// The default, `harness-era`, is 2024-11-01 (when the harness's images were built) for
    /// instances created before it and today's PyPI for newer ones. Specs with a date of their
    /// own (conda packages for Python 3.5-3.7) keep it.
    #[arg(long, value_name = "YYYY-MM-DD|latest", default_value = "harness-era", value_parser = parse_resolve_before)]
    resolve_before: ResolveBefore,
}

impl ResolveArgs {
    pub fn defaults(&self) -> RecipeDefaults {
        RecipeDefaults {
            resolve_before: self.resolve_before.clone(),
        }
    }
}

/// A `--resolve-before` value.
fn parse_resolve_before(text: &str) -> Result<ResolveBefore, String> {
    ResolveBefore::parse(text).map_err(|e| format!("{e:#}"))
}

fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("ponder")
}

fn sandbox(common: &CommonArgs) -> Result<Sandbox> {
    let allow = if common.allow_unconfined {
        AllowUnconfined::Yes
    } else {
        AllowUnconfined::No
    };
    let sandbox = Sandbox::detect(allow)?;
    if !sandbox.is_confined() {
        eprintln!(
            "warning: running tests without a sandbox: {}",
            sandbox.describe()
        );
    }
    Ok(sandbox)
}

/// Prints to stdout; a closed pipe (`ponder ... | head`) ends output quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = writeln!(stdout, $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Solve { args, common } => {
            sandbox(&common).and_then(|s| solve::run(*args, &common.cache_dir, s))
        }
        Command::Eval(args) => eval(args),
        Command::Bench { args, common } => {
            sandbox(&common).and_then(|s| bench::run(*args, &common.cache_dir, s))
        }
        Command::Report(args) => bench::run_report(args),
        Command::Env { command } => env(command),
        Command::Code { command, cache_dir } => code::run(command, &cache_dir),
        Command::Llm { command, cache_dir } => llm::run(command, &cache_dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn eval(args: EvalArgs) -> Result<ExitCode> {
    let mode = match (&args.predictions, args.gold, args.empty) {
        (Some(p), _, _) => PatchMode::Predictions(p.clone()),
        (None, true, _) => PatchMode::Gold,
        (None, false, true) => PatchMode::Empty,
        (None, false, false) => bail!("say what to grade: --predictions FILE, --gold or --empty"),
    };
    let run_id = args.run_id.clone().unwrap_or_else(|| {
        format!(
            "eval-{}",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        )
        .replace(':', "")
    });
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&run_id));
    let opts = EvalOptions {
        dataset: args.select.dataset.clone(),
        specs: args.select.specs.clone(),
        selection: args.select.selection()?,
        mode,
        repos: args
            .select
            .repos
            .as_deref()
            .map(RepoSource::parse)
            .transpose()?,
        run_dir: run_dir.clone(),
        cache_dir: args.common.cache_dir.clone(),
        workers: args.workers,
        redo: args.redo,
        retry_errors: args.retry_errors,
        no_cache: args.no_cache,
        keep: args.keep,
        cold: args.cold,
        warm_limit_bytes: (args.warm_cache_gb.max(0.0) * 1e9) as u64,
        test_timeout: Duration::from_secs(args.timeout),
        test_network: args.network,
        show_progress: !args.quiet,
        recipe_defaults: args.resolve.defaults(),
    };
    let summary = run_eval(&opts, sandbox(&args.common)?)?;
    for id in &summary.unknown_ids {
        eprintln!("warning: {id} is not in {}", opts.dataset.display());
    }
    for e in &summary.prediction_errors {
        eprintln!("warning: predictions: {e}");
    }
    print_summary(&summary.results);
    let r = &summary.report;
    out!(
        "\n{} instances: {} resolved, {} unresolved, {} empty patch, {} error, {} without prediction",
        r.total_instances,
        r.resolved_instances,
        r.unresolved_instances,
        r.empty_patch_instances,
        r.error_instances,
        r.incomplete_ids.len()
    );
    out!("report: {}", summary.report_path.display());
    out!("per instance: {}/<instance_id>/", run_dir.display());
    Ok(ExitCode::SUCCESS)
}

fn print_summary(results: &[ponder_eval::InstanceResult]) {
    let mut by_repo: BTreeMap<&str, [usize; 5]> = BTreeMap::new();
    for r in results {
        let repo = if r.repo.is_empty() {
            "(bad rows)"
        } else {
            r.repo.as_str()
        };
        let row = by_repo.entry(repo).or_default();
        let slot = match r.outcome {
            InstanceOutcome::Resolved => 0,
            InstanceOutcome::Unresolved => 1,
            InstanceOutcome::EmptyPatch => 2,
            InstanceOutcome::Error => 3,
            InstanceOutcome::Incomplete => 4,
        };
        row[slot] += 1;
    }
    out!(
        "{:<28} {:>6} {:>9} {:>11} {:>6} {:>6}",
        "repository",
        "total",
        "resolved",
        "unresolved",
        "empty",
        "error"
    );
    for (repo, c) in by_repo {
        let total: usize = c.iter().sum();
        out!(
            "{:<28} {:>6} {:>9} {:>11} {:>6} {:>6}",
            repo,
            total,
            c[0],
            c[1],
            c[2],
            c[3]
        );
    }
}

fn env(command: EnvCommand) -> Result<ExitCode> {
    match command {
        EnvCommand::Build {
            select,
            force,
            resolve,
            common,
        } => {
            let defaults = resolve.defaults();
            let mut dataset = Dataset::load(&select.dataset)?;
            dataset.select(&select.selection()?);
            let specs_path = select
                .specs
                .clone()
                .unwrap_or_else(|| Specs::default_path_for(&select.dataset));
            let specs = Specs::load(&specs_path)?;
            let default_source = select.repos.as_deref().map(RepoSource::parse).transpose()?;
            let repos = RepoStore::new(common.cache_dir.join("repos"));
            let store = EnvStore::new(common.cache_dir.join("envs"), sandbox(&common)?)
                .with_download_cache(common.cache_dir.join("downloads"));
            let mut seen = BTreeSet::new();
            let mut failed = 0;
            for inst in &dataset.instances {
                if !seen.insert((inst.repo.clone(), inst.version.clone())) {
                    continue;
                }
                let label = format!("{} {}", inst.repo, inst.version);
                let built = (|| -> Result<ponder_env::BaseEnv> {
                    let spec = specs
                        .get(&inst.repo, &inst.version)
                        .with_context(|| specs.missing_reason(&inst.repo, &inst.version))?;
                    let source = ponder_eval::runner::source_for(default_source.as_ref(), inst)?;
                    let git_dir = repos.resolve(&source, &inst.repo)?;
                    repos.ensure_commit(&source, &git_dir, inst.env_commit())?;
                    let mut recipe = ponder_eval::recipe::recipe_for(inst, spec, &git_dir)?;
                    defaults.apply(&mut recipe, inst);
                    let opts = ponder_env::BuildOptions {
                        force,
                        needed_by: Some(label.clone()),
                        ..Default::default()
                    };
                    Ok(store.ensure_base(&recipe, &opts)?)
                })();
                match built {
                    Ok(base) => out!(
                        "{label:<36} ready  {} python {} {:.0}s {} MB{}",
                        &base.hash[..12.min(base.hash.len())],
                        base.status.python,
                        base.status.build_secs,
                        base.status.size_bytes / 1_000_000,
                        if base.reused { " (cached)" } else { "" }
                    ),
                    Err(e) => {
                        failed += 1;
                        out!("{label:<36} FAILED {e:#}");
                    }
                }
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        EnvCommand::List { cache_dir, json } => {
            let store = EnvStore::new(
                cache_dir.join("envs"),
                Sandbox::detect(AllowUnconfined::Yes)?,
            );
            for e in store.list()? {
                if json {
                    out!("{}", serde_json::to_string(&e)?);
                } else {
                    out!(
                        "{:<14} {:<8} python {:<8} {:>6} MB  {}",
                        &e.hash[..12.min(e.hash.len())],
                        e.state.to_string(),
                        e.python.as_deref().unwrap_or("?"),
                        e.size_bytes / 1_000_000,
                        e.reason.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EnvCommand::Rm {
            hashes,
            all,
            cache_dir,
        } => {
            let store = EnvStore::new(
                cache_dir.join("envs"),
                Sandbox::detect(AllowUnconfined::Yes)?,
            );
            if !all && hashes.is_empty() {
                bail!(
                    "name environments to remove (hash prefixes from `ponder env list`), or --all"
                );
            }
            let removed = if all {
                store.remove(None)?
            } else {
                let mut removed = Vec::new();
                for h in &hashes {
                    removed.extend(store.remove(Some(h))?);
                }
                removed
            };
            out!("removed {} environment(s)", removed.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}
