//! Benchmark of `ponder solve --budget`: how much of the search's model waiting overlaps, and
//! what each strategy spends per solved task.
//!
//! 1. Concurrency. A scripted model server (the test double of ponder-scripted-model) answers
//!    every request after a fixed delay D. Dev-Search at budget 8 (beam 2, no code run) is
//!    timed against the ideal: its critical path of dependent calls (stage 1: ranking,
//!    locations, analysis; PRM; stage 2: search, bug locations; PRM; patch; ORM: 9 calls)
//!    times D. The same for best-of-n (6 calls). The reference for the overhead is the same
//!    search with D = 0. Goal: ideal / wall >= 0.9 on 2 cores.
//! 2. Tokens per solved task, each strategy at budget 4 with verification (the bundled example
//!    task: requests from PyPI), with a scripted policy whose first sample at each stage writes
//!    a plausible patch that breaks other URLs. Solved = the chosen patch makes the gold
//!    patch's normalized change.
//!
//! Run: `cargo bench -p ponder-solve --bench search`. Needs PyPI (the example's sdist); part 2
//! also bubblewrap and Python 3.9, and is skipped with the reason when they are missing.

use ponder_llm::{ClientOptions, Endpoint, LlmClient, ModelSpec, ReplayCache, RunBudget};
use ponder_sandbox::{AllowUnconfined, Sandbox};
use ponder_scripted_model::{Reply, Script, ScriptedServer, ServerOptions};
use ponder_solve::search::{SearchOptions, search};
use ponder_solve::{SolveOptions, Target};
use ponder_workflow::{Sampling, SearchConfig, StageLimits, StageModel, Strategy};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ID: &str = "psf__requests-2.27.1-proxy-auth";
const LOCATION: &str =
    "<location><file>requests/utils.py</file><method>prepend_scheme_if_needed</method></location>";
const BREAKING: &str = "<file>requests/utils.py</file>\n<original>\n    if scheme is None:\n        scheme = new_scheme\n</original>\n<patched>\n    netloc = '@'.join([auth, netloc])\n    if scheme is None:\n        scheme = new_scheme\n</patched>";
const CORRECT: &str = "<file>requests/utils.py</file>\n<original>\n    if scheme is None:\n        scheme = new_scheme\n</original>\n<patched>\n    if auth:\n        netloc = '@'.join([auth, netloc])\n    if scheme is None:\n        scheme = new_scheme\n</patched>";
const REPRO: &str = "```python\nfrom requests.utils import prepend_scheme_if_needed\ngot = prepend_scheme_if_needed('http://user:pass@example.com/path?query', 'http')\nif got == 'http://user:pass@example.com/path?query':\n    print('Issue resolved')\nelse:\n    print('Issue reproduced')\n```";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The scripted policy and judges, every reply after `delay`.
fn script(delay: Duration) -> Script {
    Script::from_fn(move |body: &Value, _| {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let first = messages
            .first()
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_owned();
        let hot = body["temperature"].as_f64().unwrap_or(0.0) >= 0.5;
        let yes = |p: f64| {
            Reply::text("yes").with_logprobs([(
                "yes",
                p.ln(),
                vec![("yes", p.ln()), ("no", (1.0 - p).ln())],
            )])
        };
        let reply = if first.contains("point at the code that must change") {
            yes(0.8)
        } else if first.contains("Does this patch resolve the issue") {
            yes(if first.contains("+    if auth:") {
                0.6
            } else {
                0.9
            })
        } else if first.contains("locating the code") {
            if messages.iter().any(|m| {
                m["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("Result of search_"))
            }) {
                Reply::text(format!("<bug_locations>{LOCATION}</bug_locations>"))
            } else {
                Reply::text("search_method(\"prepend_scheme_if_needed\")")
            }
        } else if first.contains("Name the files you would most likely") {
            Reply::text("<files>\nrequests/utils.py\n</files>")
        } else if first.contains("Which code is most likely involved") {
            Reply::text(format!("<locations>{LOCATION}</locations>"))
        } else if first.contains("Analyse how this code") {
            Reply::text("The credentials are dropped when the URL is rebuilt.")
        } else if first.contains("Write the smallest change") {
            Reply::text(if hot { CORRECT } else { BREAKING })
        } else if first.contains("Write a standalone Python script") {
            Reply::text(REPRO)
        } else {
            Reply::text("unexpected prompt")
        };
        reply.with_delay(delay)
    })
}

fn model(server: &ScriptedServer) -> StageModel {
    let client = LlmClient::new(
        ModelSpec {
            model: "scripted-model".into(),
            endpoints: vec![Endpoint {
                base_url: server.base_url(),
                api_key: None,
            }],
            stream: true,
            supports_n: None,
            prices: None,
        },
        ClientOptions::default(),
        Arc::new(ReplayCache::disabled()),
    )
    .expect("client");
    StageModel {
        client: Arc::new(client),
        budget: RunBudget::unlimited().task(),
        sampling: Sampling::default(),
    }
}

fn solve_options(cache: &Path, verify: bool) -> SolveOptions {
    SolveOptions {
        target: Target::Instance {
            dataset: root().join("examples/tasks/tasks.jsonl"),
            id: ID.into(),
            repos: None,
        },
        issue: String::new(),
        verify,
        limits: StageLimits::default(),
        cache_dir: cache.to_path_buf(),
        work_dir: cache.join("solve"),
        keep: false,
        test_timeout: Duration::from_secs(600),
        trajectory_path: None,
        progress: false,
        recipe_defaults: Default::default(),
    }
}

struct Run {
    seconds: f64,
    tokens: u64,
    patch: Option<String>,
    normalized_gold: bool,
}

fn run(
    rt: &tokio::runtime::Runtime,
    cache: &Path,
    strategy: Strategy,
    budget: usize,
    delay: Duration,
    verify: bool,
) -> Run {
    let server = ScriptedServer::start(ServerOptions::default(), script(delay));
    let m = model(&server);
    let tree = tempfile::NamedTempFile::new().expect("temp file");
    let _ = std::fs::remove_file(tree.path());
    let options = SearchOptions {
        config: SearchConfig {
            strategy,
            budget,
            beam: 2,
            ..SearchConfig::default()
        },
        prm: None,
        orm: None,
        tree_path: tree.path().to_path_buf(),
        parallel_checks: 2,
        source: None,
        shared: None,
    };
    let opts = solve_options(cache, verify);
    let sandbox = Sandbox::detect(AllowUnconfined::No).expect("a sandbox");
    let started = Instant::now();
    let result = rt
        .block_on(search(&opts, &options, &m, sandbox))
        .expect("the search runs");
    let seconds = started.elapsed().as_secs_f64();
    let gold = gold_patch();
    let normalized_gold = result.patch.as_deref().is_some_and(|p| {
        let dir = checkout_for_normalizing(cache);
        ponder_solve::normalize::normalized_change(&dir, p)
            == ponder_solve::normalize::normalized_change(&dir, &gold)
    });
    Run {
        seconds,
        tokens: result.tree.total_usage().total(),
        patch: result.patch,
        normalized_gold,
    }
}

fn gold_patch() -> String {
    let text = std::fs::read_to_string(root().join("examples/tasks/tasks.jsonl")).unwrap();
    let row: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    row["patch"].as_str().unwrap().to_owned()
}

/// The example's original files, for comparing normalized changes.
fn checkout_for_normalizing(cache: &Path) -> PathBuf {
    let dir = cache.join("bench-original");
    if !dir.exists() {
        let text = std::fs::read_to_string(root().join("examples/tasks/tasks.jsonl")).unwrap();
        let row: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let source = ponder_repo::RepoSource::parse(row["source"].as_str().unwrap()).unwrap();
        let store = ponder_repo::RepoStore::new(cache.join("repos"));
        let git_dir = store.resolve(&source, "psf/requests").unwrap();
        ponder_repo::Checkout::create(&git_dir, row["base_commit"].as_str().unwrap(), &dir)
            .unwrap();
    }
    dir
}

fn main() {
    let cache = root().join("target/bench-search-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let cache = cache.canonicalize().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    println!("== concurrency: budget 8, beam 2, no code run, scripted model answering after D ==");
    println!(
        "{:<12} {:>6} {:>9} {:>9} {:>9} {:>8}",
        "strategy", "D s", "ideal s", "wall s", "D=0 s", "ratio"
    );
    for (strategy, chain) in [(Strategy::DevSearch, 9.0), (Strategy::BestOfN, 6.0)] {
        // Warm the repository import and the code index first.
        let zero = run(&rt, &cache, strategy, 8, Duration::ZERO, false);
        let zero = run(&rt, &cache, strategy, 8, Duration::ZERO, false)
            .seconds
            .min(zero.seconds);
        let d = Duration::from_millis(1000);
        let timed = run(&rt, &cache, strategy, 8, d, false);
        let ideal = chain * d.as_secs_f64();
        println!(
            "{:<12} {:>6.1} {:>9.2} {:>9.2} {:>9.2} {:>8.3}",
            strategy.name(),
            d.as_secs_f64(),
            ideal,
            timed.seconds,
            zero,
            ideal / timed.seconds
        );
    }
    println!(
        "(ratio = ideal / wall: the share of the critical path's waiting that the run achieves; goal >= 0.9)"
    );

    println!("\n== tokens per solved task, budget 4, with verification ==");
    if let Some(why) = missing_prerequisite() {
        println!("SKIPPED: {why}");
        return;
    }
    println!(
        "{:<16} {:>7} {:>9} {:>8} {:>9}",
        "strategy", "solved", "tokens", "wall s", "tok/solve"
    );
    for strategy in [
        Strategy::Single,
        Strategy::BestOfN,
        Strategy::Vote,
        Strategy::EndpointVerify,
        Strategy::DevSearch,
    ] {
        let budget = if strategy == Strategy::Single { 1 } else { 4 };
        let r = run(&rt, &cache, strategy, budget, Duration::ZERO, true);
        let solved = u64::from(r.normalized_gold && r.patch.is_some());
        println!(
            "{:<16} {:>7} {:>9} {:>8.1} {:>9}",
            strategy.name(),
            solved,
            r.tokens,
            r.seconds,
            if solved > 0 {
                r.tokens.to_string()
            } else {
                "-".into()
            }
        );
    }
    println!(
        "(the scripted policy's first sample at each stage breaks other URLs; best-of-n's pick is seeded)"
    );
}

fn missing_prerequisite() -> Option<String> {
    if Sandbox::detect(AllowUnconfined::No).is_err() {
        return Some("no bubblewrap sandbox".into());
    }
    if ponder_env::Interpreters::discover().find("3.9").is_none() {
        return Some("no Python 3.9 (pyenv, PATH or PONDER_PYTHONS)".into());
    }
    None
}
