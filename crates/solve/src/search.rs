//! `ponder solve --budget N`: external test-time scaling over the stages.
//!
//! Candidates are sampled at the decision points the strategy names (see
//! `ponder_workflow::search` for the budget's meaning and the choice rule), every one recorded
//! as a node of the search tree with its parent, its stage record, its scores and its checks.
//! The tree is written atomically after every node, so a run that is killed and started again
//! with the same tree file finds the nodes it already has and does not make them again;
//! reruns that do call the model again ask exactly the same questions (each sample has its own
//! seed), so the model client's replay cache answers them.
//!
//! Model calls of one stage run concurrently (within the model client's in-flight limit);
//! patches are checked in parallel threads, one private tree each. A patch that makes the
//! same normalized change as one already checked or scored takes that one's results.

use crate::executor::{EnvExecutor, canonical};
use crate::{Prepared, prepare};
use anyhow::{Context, Result};
use futures_util::future::join_all;
use ponder_code::{CodeIndex, IndexOptions};
use ponder_env::{BuildOptions, EnvStore};
use ponder_repo::Checkout;
use ponder_sandbox::Sandbox;
use ponder_workflow::locations::CodeSpan;
use ponder_workflow::search::{Evidence, SEARCH_SCHEMA_VERSION};
use ponder_workflow::{
    Localization, PatchCandidate, Prompts, Regression, RewardScore, SearchConfig, SearchNode,
    SearchTree, StageInput, StageModel, StageRecord, Strategy, Understanding, Verification, choose,
    judge, keep_best,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where candidates come from when not from the policy model: `ponder bench --policy sim`'s
/// simulated policy. With a source, the search asks it for every stage candidate, reward
/// score and reproduction script, and never calls the model; everything else (pruning, checks
/// run for real, the choice, the tree) is the same. Every method is deterministic in its
/// arguments, so a rerun makes the same candidates.
pub trait CandidateSource: Send + Sync {
    /// The name written in the tree where the model's name would be.
    fn name(&self) -> String;
    /// A stage 1 candidate: the record, its output an `Understanding` (or a failure).
    fn understand(&self, index: &CodeIndex, seed: u64) -> StageRecord;
    /// A stage 2 candidate from an understanding: its output a `Localization`.
    fn localize(&self, index: &CodeIndex, parent: &Understanding, seed: u64) -> StageRecord;
    /// A patch for `code` in `tree` (the original checkout): its output a `PatchCandidate`.
    fn patch(&self, tree: &Path, code: &[CodeSpan], seed: u64) -> StageRecord;
    /// The process reward of a stage 1 or 2 candidate's code.
    fn prm(&self, code: &[CodeSpan], seed: u64) -> RewardScore;
    /// The outcome reward of a patch.
    fn orm(&self, tree: &Path, diff: &str, seed: u64) -> RewardScore;
    /// A reproduction script for the original checkout `tree` (None: it writes none).
    fn reproduction(&self, tree: &Path, seed: u64) -> Option<String>;
    /// What one of its scripts' output says: Some(true) the issue is resolved, Some(false)
    /// it is reproduced, None: not its script's output. The verdict is added to the output
    /// as the words a model's script would print.
    fn script_verdict(&self, output: &str) -> Option<bool>;
}

/// The search's own settings, beside the solve's.
#[derive(Clone)]
pub struct SearchOptions {
    pub config: SearchConfig,
    /// The process reward model (default: the policy model as a prompted judge).
    pub prm: Option<StageModel>,
    /// The outcome reward model (default: the policy model as a prompted judge).
    pub orm: Option<StageModel>,
    /// Where the tree is written; an existing tree of the same search is resumed.
    pub tree_path: PathBuf,
    /// Patches checked at once.
    pub parallel_checks: usize,
    /// Candidates from this source instead of the model (see [`CandidateSource`]).
    pub source: Option<Arc<dyn CandidateSource>>,
    /// Checks shared with other searches of the same target and policy (see
    /// [`SharedChecks`]).
    pub shared: Option<Arc<SharedChecks>>,
}

/// Checks shared by several searches of one target with the same policy and seed, such as
/// `ponder bench`'s budgets: the reproduction script (the same request, hence the same
/// script), regression baselines by their test files, and each normalized change's
/// verification under a given script and baseline. Nothing is shared across targets.
#[derive(Default)]
pub struct SharedChecks {
    reproduction: Mutex<Option<StageRecord>>,
    baselines: Mutex<BTreeMap<Vec<String>, Regression>>,
    verified: Mutex<BTreeMap<(String, String), Verification>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a search returns.
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub patch: Option<String>,
    /// Whether the chosen patch passed every check that ran, at least one having run (None:
    /// the strategy does not run code, or verification is off).
    pub verified: Option<bool>,
    pub checks: Vec<String>,
    pub tree: SearchTree,
    /// Nodes found in the tree file from an earlier run and not made again.
    pub resumed_nodes: usize,
}

const UNDERSTAND: &str = "understand";
const LOCALIZE: &str = "localize";
const PATCH: &str = "patch";

/// Everything the search's steps share.
struct Ctx<'a> {
    opts: &'a crate::SolveOptions,
    search: &'a SearchOptions,
    model: &'a StageModel,
    prepared: &'a Prepared,
    index: &'a CodeIndex,
    prompts: &'a Prompts,
    tree_dir: &'a Path,
    tree: Mutex<SearchTree>,
    /// Held across serializing, writing and renaming, so saves from parallel checks never
    /// interleave on the one temporary file.
    save_lock: Mutex<()>,
    started: Instant,
}

impl Ctx<'_> {
    fn with_tree<T>(&self, f: impl FnOnce(&mut SearchTree) -> T) -> T {
        let mut tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut tree)
    }

    /// Writes the tree as it is now (atomically: a reader never sees half a tree).
    fn save(&self) {
        let _saving = self.save_lock.lock().unwrap_or_else(|e| e.into_inner());
        let text = self.with_tree(|t| serde_json::to_vec_pretty(&*t));
        if let Ok(text) = text {
            write_atomically(&self.search.tree_path, &text);
        }
    }

    /// The sample indices from stage 1 down to `node` (for seeds that do not depend on the
    /// order in which nodes finished).
    fn path_of(&self, node: Option<usize>) -> Vec<usize> {
        let mut path = Vec::new();
        let mut at = node;
        while let Some(id) = at {
            let n = self.node(id);
            path.push(n.sample);
            at = n.parent;
        }
        path.reverse();
        path
    }

    fn progress(&self, line: &str) {
        if self.opts.progress {
            eprintln!("search {line}");
        }
    }

    fn input<'b>(&'b self, model: &'b StageModel) -> StageInput<'b> {
        StageInput {
            repo: &self.prepared.name,
            issue: &self.prepared.issue,
            index: self.index,
            prompts: self.prompts,
            limits: self.opts.limits,
            model,
        }
    }

    fn node(&self, id: usize) -> SearchNode {
        self.with_tree(|t| t.nodes[id].clone())
    }

    /// Sample `sample` of `stage` from `parent`, made by `run` unless the tree has it already.
    /// `draw` decides the temperature (0: the low one) and, with the stage, the seed.
    async fn sample(
        &self,
        stage: &str,
        stage_no: u64,
        parent: Option<usize>,
        sample: usize,
        draw: usize,
        run: impl AsyncFnOnce(&StageInput<'_>, u64) -> StageRecord,
    ) -> usize {
        // A node the tree has is kept. One that failed (a server that was down, a reply that
        // could not be used) is made again in its place, but only while the search has no
        // choice yet and nothing was made from it, so a retry never changes what later stages
        // built on.
        let found = self.with_tree(|t| {
            t.find(stage, parent, sample).map(|n| {
                let leaf = !t.nodes.iter().any(|c| c.parent == Some(n.id));
                (n.id, n.ok() || t.choice.is_some() || !leaf)
            })
        });
        let retry = match found {
            Some((id, true)) => return id,
            Some((id, false)) => Some(id),
            None => None,
        };
        let mut path = self.path_of(parent);
        path.push(sample);
        let sampling = self
            .search
            .config
            .sampling_for(self.model.sampling, stage_no, &path, draw);
        let model = StageModel {
            sampling,
            ..self.model.clone()
        };
        let record = run(&self.input(&model), sampling.seed.unwrap_or(0)).await;
        let failure = record.failure.clone();
        let node = SearchNode {
            id: 0,
            parent,
            stage: stage.to_owned(),
            sample,
            temperature: sampling.temperature,
            seed: sampling.seed,
            record,
            prm: None,
            kept: None,
            normalized: None,
            verification: None,
            orm: None,
        };
        let id = self.with_tree(|t| match retry {
            Some(id) => t.replace(id, node),
            None => t.add(node),
        });
        self.progress(&format!(
            "{stage:<10} node {id} (from {}, sample {sample}, T={}): {}",
            parent.map_or("the issue".to_owned(), |p| format!("node {p}")),
            sampling.temperature,
            failure
                .map(|f| format!("FAILED: {}", first_line(&f)))
                .unwrap_or_else(|| "ok".into())
        ));
        self.save();
        id
    }

    /// Stage 1 candidate `i`.
    async fn understand(&self, sample: usize, draw: usize) -> usize {
        self.sample(
            UNDERSTAND,
            1,
            None,
            sample,
            draw,
            async |input, seed| match &self.search.source {
                Some(source) => source.understand(self.index, seed),
                None => ponder_workflow::understand(input).await.1,
            },
        )
        .await
    }

    /// Stage 2 candidate from understanding `parent`.
    async fn localize(&self, parent: usize, sample: usize, draw: usize) -> usize {
        let Some(u) = self.understanding(parent) else {
            return usize::MAX;
        };
        self.sample(
            LOCALIZE,
            2,
            Some(parent),
            sample,
            draw,
            async |input, seed| match &self.search.source {
                Some(source) => source.localize(self.index, &u, seed),
                None => ponder_workflow::localize(input, &u).await.1,
            },
        )
        .await
    }

    /// A patch from `parent`: a localization, or (when no localization worked) an
    /// understanding, whose code is patched.
    async fn patch(&self, parent: usize, sample: usize, draw: usize) -> usize {
        let Some((code, analysis)) = self.code_for(parent) else {
            return usize::MAX;
        };
        let tree = self.prepared_tree();
        self.sample(PATCH, 3, Some(parent), sample, draw, async |input, seed| {
            if let Some(source) = &self.search.source {
                return source.patch(&tree, &code, seed);
            }
            let read = |p: &str| std::fs::read_to_string(tree.join(p)).ok();
            let analysis = (!analysis.is_empty()).then_some(analysis.as_str());
            ponder_workflow::write_patch(input, &code, analysis, read)
                .await
                .1
        })
        .await
    }

    fn prepared_tree(&self) -> PathBuf {
        self.tree_dir.to_path_buf()
    }

    fn understanding(&self, id: usize) -> Option<Understanding> {
        let n = self.node(id);
        (n.ok() && n.stage == UNDERSTAND)
            .then(|| serde_json::from_value(n.record.output).ok())
            .flatten()
    }

    /// The code to patch from a node, and the analysis of the understanding it descends from.
    fn code_for(&self, id: usize) -> Option<(Vec<CodeSpan>, String)> {
        let n = self.node(id);
        if !n.ok() {
            return None;
        }
        match n.stage.as_str() {
            UNDERSTAND => {
                let u: Understanding = serde_json::from_value(n.record.output).ok()?;
                (!u.code.is_empty()).then_some((u.code, u.analysis))
            }
            LOCALIZE => {
                let l: Localization = serde_json::from_value(n.record.output).ok()?;
                let analysis = n
                    .parent
                    .and_then(|p| self.understanding(p))
                    .map(|u| u.analysis)
                    .unwrap_or_default();
                Some((l.code, analysis))
            }
            _ => None,
        }
    }

    fn patch_of(&self, id: usize) -> Option<PatchCandidate> {
        let n = self.node(id);
        (n.ok() && n.stage == PATCH)
            .then(|| serde_json::from_value(n.record.output).ok())
            .flatten()
    }

    /// Scores the working candidates among `ids` with the process reward model (unless the
    /// signal is off) and marks the `beam` best as kept. Returns the kept ids, best first.
    async fn prune(&self, ids: &[usize], step: &str) -> Vec<usize> {
        let cfg = &self.search.config;
        let ok: Vec<usize> = ids
            .iter()
            .copied()
            .filter(|&id| id != usize::MAX && self.node(id).ok())
            .collect();
        if cfg.signals.prm {
            let prm = self.search.prm.as_ref().unwrap_or(self.model);
            // Candidates the PRM would see the same way are scored once.
            let mut by_prompt: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for &id in &ok {
                let Some((code, explanation)) = self.prm_view(id) else {
                    continue;
                };
                let prompt = self.prompts.render(
                    "prm",
                    json!({"repo": self.prepared.name, "issue": self.prepared.issue, "step": step,
                           "code": code, "explanation": explanation}),
                );
                if let Ok(prompt) = prompt {
                    by_prompt.entry(prompt).or_default().push(id);
                }
            }
            join_all(by_prompt.into_iter().map(|(prompt, ids)| async move {
                let done = ids.iter().find_map(|&id| self.node(id).prm);
                let fresh = done.is_none();
                let score = match (done, &self.search.source) {
                    (Some(score), _) => Ok(score),
                    (None, Some(source)) => {
                        let lead = self.node(ids[0]);
                        let code = self.prm_view(lead.id).map(|(c, _)| c).unwrap_or_default();
                        Ok(source.prm(&code, lead.seed.unwrap_or(0)))
                    }
                    (None, None) => judge(prm, prompt).await,
                };
                let id = ids[0];
                match score {
                    Ok(score) => {
                        self.progress(&format!(
                            "prm        node {id}{}: p(yes) {:.3}",
                            if ids.len() > 1 {
                                format!(" (and {} identical)", ids.len() - 1)
                            } else {
                                String::new()
                            },
                            score.p_yes
                        ));
                        self.with_tree(|t| {
                            for (i, &id) in ids.iter().enumerate() {
                                let node = t.node_mut(id);
                                if node.prm.is_none() {
                                    node.prm = Some(if i == 0 && fresh {
                                        score.clone()
                                    } else {
                                        shared(&score)
                                    });
                                }
                            }
                        });
                        self.save();
                    }
                    Err(e) => self.progress(&format!(
                        "prm        node {id}: no score ({}); it ranks after scored candidates",
                        first_line(&e.to_string())
                    )),
                }
            }))
            .await;
        }
        let scored: Vec<(usize, Option<f64>)> = ok
            .iter()
            .map(|&id| (id, self.node(id).prm.map(|s| s.p_yes)))
            .collect();
        let kept = if cfg.signals.prm {
            keep_best(&scored, cfg.beam)
        } else {
            ok.iter().copied().take(cfg.beam).collect()
        };
        self.with_tree(|t| {
            for &id in &ok {
                t.node_mut(id).kept = Some(kept.contains(&id));
            }
        });
        self.save();
        kept
    }

    /// What the process reward model sees of a stage 1 or 2 candidate.
    fn prm_view(&self, id: usize) -> Option<(Vec<CodeSpan>, String)> {
        let n = self.node(id);
        match n.stage.as_str() {
            UNDERSTAND => {
                let u: Understanding = serde_json::from_value(n.record.output).ok()?;
                Some((u.code, u.analysis))
            }
            LOCALIZE => {
                let l: Localization = serde_json::from_value(n.record.output).ok()?;
                Some((l.code, l.explanation))
            }
            _ => None,
        }
    }
}

/// The patches grouped by the change they make (a patch without a normalized hash is alone).
fn by_change(ctx: &Ctx<'_>, patches: &[usize]) -> BTreeMap<String, Vec<usize>> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &id in patches {
        let n = ctx.node(id);
        groups
            .entry(n.normalized.unwrap_or_else(|| format!("node-{id}")))
            .or_default()
            .push(id);
    }
    groups
}

/// A score given to a candidate identical to one already scored: the same verdict, with no
/// tokens of its own (the call's are counted once, on the first).
fn shared(score: &RewardScore) -> RewardScore {
    RewardScore {
        usage: Default::default(),
        ..score.clone()
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

/// The key that tells whether an existing tree file belongs to this search.
fn same_search(old: &SearchTree, new: &SearchTree) -> bool {
    old.schema_version == SEARCH_SCHEMA_VERSION
        && old.repo == new.repo
        && old.base_commit == new.base_commit
        && old.issue == new.issue
        && old.model == new.model
        && old.config == new.config
        && old.reward_models == new.reward_models
}

/// Runs the search. Setup problems are `Err`; a search that ends without a patch returns
/// `patch: None` with the reason in the tree.
pub async fn search(
    opts: &crate::SolveOptions,
    search: &SearchOptions,
    model: &StageModel,
    sandbox: Sandbox,
) -> Result<SearchResult> {
    search.config.validate().map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let mut opts = opts.clone();
    opts.cache_dir = canonical(&opts.cache_dir)?;
    opts.work_dir = canonical(&opts.work_dir)?;
    let opts = &opts;
    let mut search = search.clone();
    if !opts.verify {
        // Nothing runs: the execution signal has nothing to say.
        search.config.signals.execution = false;
    }
    let search = &search;
    let envs = EnvStore::new(opts.cache_dir.join("envs"), sandbox.clone())
        .with_download_cache(opts.cache_dir.join("downloads"));
    let prepared = prepare(opts, &envs)?;
    for w in &prepared.warnings {
        eprintln!("warning: {w}");
    }
    let work = opts.work_dir.join(format!(
        "search-{}-{}",
        std::process::id(),
        started.elapsed().as_nanos() % 1_000_000
    ));
    let tree_dir = work.join("original");
    Checkout::create(&prepared.git_dir, &prepared.commit, &tree_dir)?;
    let (index, _) = CodeIndex::open(
        &tree_dir,
        IndexOptions {
            cache_dir: Some(opts.cache_dir.join("code")),
            ..IndexOptions::default()
        },
    )?;
    let prompts = Prompts::new();

    let model_name = match &search.source {
        Some(source) => source.name(),
        None => model.client.spec().model.clone(),
    };
    let mut fresh = SearchTree::new(&prepared.name, &prepared.issue, &model_name, search.config);
    fresh.base_commit = Some(prepared.commit.clone());
    fresh.reward_models = [&search.prm, &search.orm]
        .iter()
        .map(|m| m.as_ref().map(|m| m.client.spec().model.clone()))
        .collect();
    let mut resumed_nodes = 0;
    let existing = match std::fs::read_to_string(&search.tree_path) {
        Ok(text) => match serde_json::from_str::<SearchTree>(&text) {
            Ok(tree) => Some(tree),
            Err(e) => {
                let kept = search.tree_path.with_extension("json.unreadable");
                let _ = std::fs::rename(&search.tree_path, &kept);
                eprintln!(
                    "warning: {} is not a search tree ponder can read ({e}); it was moved to {} \
                     and the search starts afresh",
                    search.tree_path.display(),
                    kept.display()
                );
                None
            }
        },
        Err(_) => None,
    };
    let tree = match existing {
        Some(old) if same_search(&old, &fresh) => {
            resumed_nodes = old.nodes.len();
            if opts.progress {
                eprintln!(
                    "search resuming {}: {resumed_nodes} node(s) already made",
                    search.tree_path.display()
                );
            }
            old
        }
        Some(_) => {
            eprintln!(
                "warning: {} holds another search (different issue, commit, model or settings); \
                 it is replaced",
                search.tree_path.display()
            );
            fresh
        }
        None => fresh,
    };
    if let Some(dir) = search.tree_path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let ctx = Ctx {
        opts,
        search,
        model,
        prepared: &prepared,
        index: &index,
        prompts: &prompts,
        tree_dir: &tree_dir,
        tree: Mutex::new(tree),
        save_lock: Mutex::new(()),
        started,
    };
    ctx.save();
    let outcome = run_strategy(&ctx, &envs, sandbox, &work).await;
    let mut tree = ctx.tree.into_inner().unwrap_or_else(|e| e.into_inner());
    let (patch, verified, checks) = match outcome {
        Ok(r) => r,
        Err(e) => {
            tree.failure = Some(format!("{e:#}"));
            (None, None, Vec::new())
        }
    };
    if patch.is_none() && tree.failure.is_none() {
        tree.failure = Some("no candidate patch was produced".into());
    }
    tree.seconds += ctx.started.elapsed().as_secs_f64();
    write_tree(&search.tree_path, &tree);
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(SearchResult {
        patch,
        verified,
        checks,
        tree,
        resumed_nodes,
    })
}

fn write_tree(path: &Path, tree: &SearchTree) {
    if let Ok(text) = serde_json::to_vec_pretty(tree) {
        write_atomically(path, &text);
    }
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, text: &[u8]) {
    let tmp = path.with_extension("json.tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

type Outcome = (Option<String>, Option<bool>, Vec<String>);

async fn run_strategy(
    ctx: &Ctx<'_>,
    envs: &EnvStore,
    sandbox: Sandbox,
    work: &Path,
) -> Result<Outcome> {
    let cfg = ctx.search.config;
    let verifying = cfg.strategy.verifies() && ctx.opts.verify;
    let mut checks = Checks::new(envs, sandbox, work);
    let patches: Vec<usize> = match cfg.strategy {
        Strategy::DevSearch => {
            let parents = dev_search_parents(ctx).await;
            patch_rounds(ctx, &parents, verifying, &mut checks).await?
        }
        _ => {
            // Whole rollouts, chain i at draw i, concurrently.
            join_all((0..cfg.rollouts()).map(|i| async move {
                let u = ctx.understand(i, i).await;
                if !ctx.node(u).ok() {
                    return None;
                }
                let l = ctx.localize(u, 0, i).await;
                // A failed search falls back to stage 1's code, as a single rollout does.
                let parent = if l != usize::MAX && ctx.node(l).ok() {
                    l
                } else {
                    u
                };
                Some(ctx.patch(parent, 0, i).await)
            }))
            .await
            .into_iter()
            .flatten()
            .collect()
        }
    };
    let patches: Vec<usize> = patches
        .into_iter()
        .filter(|&id| id != usize::MAX && ctx.patch_of(id).is_some())
        .collect();
    if patches.is_empty() {
        anyhow::bail!("no rollout produced a patch (see the failures in the tree)");
    }
    normalize_all(ctx, &patches);
    if verifying {
        checks.run(ctx, &patches).await?;
    }
    let (regression, reproduction_found) = checks.baseline();
    checks.clean_up(ctx);
    if cfg.strategy.verifies() && cfg.signals.orm {
        score_outcomes(ctx, &patches).await;
    }

    let evidence: Vec<Evidence> = patches
        .iter()
        .map(|&id| Evidence::of(id, &ctx.node(id)))
        .collect();
    let choice = choose(cfg.strategy, cfg.signals, cfg.seed, &evidence)
        .context("no patch to choose from")?;
    let chosen = ctx.node(choice.node);
    ctx.progress(&format!("chose node {}: {}", choice.node, choice.rule));
    ctx.with_tree(|t| t.choice = Some(choice));
    ctx.save();
    let patch = ctx.patch_of(chosen.id).map(|p| p.diff);
    if !verifying {
        return Ok((patch, None, Vec::new()));
    }
    let v = chosen.verification.clone().unwrap_or_default();
    let checks = crate::describe_checks(reproduction_found, v.resolved_by_script, &regression, &v);
    let ran_any = reproduction_found || !regression.passing.is_empty();
    Ok((patch, Some(v.passed && ran_any), checks))
}

/// Dev-Search's expansion up to the patches: B understandings, pruned to the beam; children of
/// each survivor, pruned again. Returns the candidates to write patches from.
async fn dev_search_parents(ctx: &Ctx<'_>) -> Vec<usize> {
    let cfg = ctx.search.config;
    let us: Vec<usize> = join_all((0..cfg.budget).map(|i| ctx.understand(i, i))).await;
    let kept_u = ctx.prune(&us, "repository understanding").await;
    let ls: Vec<usize> = join_all(
        kept_u
            .iter()
            .enumerate()
            .flat_map(|(rank, &u)| (0..cfg.children_of(rank, kept_u.len())).map(move |i| (u, i)))
            .map(|(u, i)| ctx.localize(u, i, i)),
    )
    .await;
    let parents = ctx.prune(&ls, "fault localization").await;
    if parents.is_empty() {
        // No search worked: patch the surviving understandings' own code, as one rollout
        // falls back to stage 1's code.
        return kept_u;
    }
    parents
}

/// Dev-Search's patches: the budget split among the parents, all at once; or, with the early
/// stop, one sample per parent at a time, each round checked, until a patch passes its checks
/// and `beam` patches make its change.
async fn patch_rounds(
    ctx: &Ctx<'_>,
    parents: &[usize],
    verifying: bool,
    checks: &mut Checks<'_>,
) -> Result<Vec<usize>> {
    let cfg = ctx.search.config;
    let children = |rank: usize| cfg.children_of(rank, parents.len());
    let most = children(0);
    let early = cfg.early_stop && verifying;
    let rounds: Vec<Vec<usize>> = if early {
        (0..most).map(|i| vec![i]).collect()
    } else {
        vec![(0..most).collect()]
    };
    let mut patches = Vec::new();
    for (round, samples) in rounds.iter().enumerate() {
        let made: Vec<usize> = join_all(
            parents
                .iter()
                .enumerate()
                .flat_map(|(rank, &p)| {
                    samples
                        .iter()
                        .filter(move |&&i| i < children(rank))
                        .map(move |&i| (p, i))
                })
                .map(|(p, i)| ctx.patch(p, i, i)),
        )
        .await;
        patches.extend(
            made.into_iter()
                .filter(|&id| id != usize::MAX && ctx.patch_of(id).is_some()),
        );
        if !early || round + 1 == rounds.len() {
            continue;
        }
        normalize_all(ctx, &patches);
        checks.run(ctx, &patches).await?;
        if let Some(why) = settled(ctx, &patches, cfg.beam.max(1)) {
            let why = format!(
                "{why} after {} of {} rounds; no more patches were written",
                round + 1,
                rounds.len()
            );
            ctx.progress(&format!("early stop: {why}"));
            ctx.with_tree(|t| t.early_stop = Some(why));
            ctx.save();
            break;
        }
    }
    Ok(patches)
}

/// Whether a patch passed both checks (the reproduction resolved, no regression) and at least
/// `k` patches make its change; the reason in words.
fn settled(ctx: &Ctx<'_>, ids: &[usize], k: usize) -> Option<String> {
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    for &id in ids {
        if let Some(n) = ctx.node(id).normalized {
            *groups.entry(n).or_default() += 1;
        }
    }
    ids.iter().find_map(|&id| {
        let n = ctx.node(id);
        let v = n.verification.as_ref()?;
        let agree = groups.get(n.normalized.as_ref()?).copied().unwrap_or(0);
        (v.passed && v.resolved_by_script == Some(true) && v.regressions.is_empty() && agree >= k)
            .then(|| format!("node {id} passed its checks and {agree} patches agree with it"))
    })
}

/// Gives every patch node its normalized change's hash.
fn normalize_all(ctx: &Ctx<'_>, ids: &[usize]) {
    for &id in ids {
        if ctx.node(id).normalized.is_some() {
            continue;
        }
        let Some(patch) = ctx.patch_of(id) else {
            continue;
        };
        let key = crate::normalize::normalized_change(ctx.tree_dir, &patch.diff);
        ctx.with_tree(|t| t.node_mut(id).normalized = Some(key));
    }
    ctx.save();
}

/// Stage 4 for a search: the executor, the reproduction script and the regression baseline
/// (made on first use, once per search, kept in the tree), and each patch's checks.
struct Checks<'a> {
    envs: &'a EnvStore,
    sandbox: Sandbox,
    work: &'a Path,
    ready: Option<Ready>,
}

struct Ready {
    executor: Option<EnvExecutor>,
    repro: Option<ponder_workflow::Reproduction>,
    regression: Regression,
}

impl<'a> Checks<'a> {
    fn new(envs: &'a EnvStore, sandbox: Sandbox, work: &'a Path) -> Checks<'a> {
        Checks {
            envs,
            sandbox,
            work,
            ready: None,
        }
    }

    /// The regression baseline and whether a reproduction script was found.
    fn baseline(&self) -> (Regression, bool) {
        match &self.ready {
            Some(r) => (r.regression.clone(), r.repro.is_some()),
            None => (Regression::default(), false),
        }
    }

    fn clean_up(&self, ctx: &Ctx<'_>) {
        if let Some(Ready {
            executor: Some(e), ..
        }) = &self.ready
            && !ctx.opts.keep
        {
            e.clean_up();
        }
    }

    async fn prepare(&mut self, ctx: &Ctx<'_>, patches: &[usize]) -> Result<&Ready> {
        if self.ready.is_none() {
            self.ready = Some(self.make(ctx, patches).await?);
        }
        Ok(self.ready.as_ref().expect("just made"))
    }

    async fn make(&self, ctx: &Ctx<'_>, patches: &[usize]) -> Result<Ready> {
        let Some(recipe) = ctx.prepared.recipe.clone() else {
            return Ok(Ready {
                executor: None,
                repro: None,
                regression: Regression::default(),
            });
        };
        let base = self
            .envs
            .ensure_base(
                &recipe,
                &BuildOptions {
                    needed_by: Some(ctx.prepared.name.clone()),
                    ..BuildOptions::default()
                },
            )
            .context(
                "the environment for verification could not be built (pass --no-verify to \
                 skip verification)",
            )?;
        let executor = EnvExecutor::new(
            self.sandbox.clone(),
            EnvStore::new(ctx.opts.cache_dir.join("envs"), self.envs.sandbox().clone())
                .with_download_cache(ctx.opts.cache_dir.join("downloads")),
            base,
            recipe,
            ctx.prepared.git_dir.clone(),
            ctx.prepared.commit.clone(),
            self.work.join("verify"),
            crate::warm_pool(&ctx.opts.cache_dir),
            ctx.opts.test_timeout,
        );
        // The reproduction script, asked of the policy at the low temperature, once.
        let shared = ctx.search.shared.as_deref();
        let known = ctx
            .with_tree(|t| t.reproduction.clone())
            .or_else(|| shared.and_then(|s| locked(&s.reproduction).clone()));
        let reproduction = match known {
            Some(record) => {
                ctx.with_tree(|t| t.reproduction.get_or_insert_with(|| record.clone()).clone())
            }
            None => {
                ctx.progress("reproduce  writing a reproduction script");
                let model = StageModel {
                    sampling: ctx
                        .search
                        .config
                        .sampling_for(ctx.model.sampling, 4, &[], 0),
                    ..ctx.model.clone()
                };
                let judged = Judged::new(&executor, ctx);
                let record = match &ctx.search.source {
                    Some(source) => source_reproduction(
                        source.as_ref(),
                        ctx.tree_dir,
                        model.sampling.seed.unwrap_or(0),
                        &judged,
                    ),
                    None => {
                        ponder_workflow::write_reproduction(&ctx.input(&model), &judged)
                            .await
                            .1
                    }
                };
                ctx.with_tree(|t| t.reproduction = Some(record.clone()));
                if let Some(s) = shared {
                    *locked(&s.reproduction) = Some(record.clone());
                }
                ctx.save();
                record
            }
        };
        let repro: Option<ponder_workflow::Reproduction> = reproduction
            .failure
            .is_none()
            .then(|| serde_json::from_value(reproduction.output.clone()).ok())
            .flatten();
        let regression = match ctx.with_tree(|t| t.regression.clone()) {
            Some(r) => r,
            None => {
                let mut files: Vec<String> = patches
                    .iter()
                    .filter_map(|&id| ctx.patch_of(id))
                    .flat_map(|p| p.files)
                    .collect();
                files.sort();
                files.dedup();
                let files = ponder_workflow::regression_files(ctx.index, &files, 5);
                let known = shared.and_then(|s| locked(&s.baselines).get(&files).cloned());
                let r = match known {
                    Some(r) => r,
                    None => {
                        ctx.progress("regression running the tests near the changed files");
                        let r = ponder_workflow::regression_baseline(
                            &Judged::new(&executor, ctx),
                            files.clone(),
                        )
                        .unwrap_or_default();
                        if let Some(s) = shared {
                            locked(&s.baselines).insert(files, r.clone());
                        }
                        r
                    }
                };
                ctx.with_tree(|t| t.regression = Some(r.clone()));
                ctx.save();
                r
            }
        };
        Ok(Ready {
            executor: Some(executor),
            repro,
            regression,
        })
    }

    /// Checks every patch of `patches` not checked yet, one per distinct change (the others
    /// copy its result), on parallel threads.
    async fn run(&mut self, ctx: &Ctx<'_>, patches: &[usize]) -> Result<()> {
        let ready = self.prepare(ctx, patches).await?;
        let Some(executor) = &ready.executor else {
            return Ok(());
        };
        let by_change = by_change(ctx, patches);
        // What a verification depends on besides the change: the script and the baseline.
        let context = ponder_eval::cache::sha256_hex(
            &serde_json::to_string(&(
                ready.repro.as_ref().map(|r| &r.script),
                &ready.regression.files,
                &ready.regression.passing,
            ))
            .unwrap_or_default(),
        );
        let shared = ctx.search.shared.as_deref();
        let key = |id: usize| (ctx.node(id).normalized.unwrap_or_default(), context.clone());
        // A change checked before gives its result to patches that make it too.
        let mut todo = Vec::new();
        for ids in by_change.into_values() {
            let done = ids
                .iter()
                .find_map(|&id| ctx.node(id).verification)
                .or_else(|| {
                    shared.and_then(|s| {
                        ctx.node(ids[0]).normalized.as_ref()?;
                        locked(&s.verified).get(&key(ids[0])).cloned()
                    })
                });
            match done {
                Some(v) => ctx.with_tree(|t| {
                    for &id in &ids {
                        t.node_mut(id).verification.get_or_insert_with(|| v.clone());
                    }
                }),
                None => {
                    if let Some(p) = ctx.patch_of(ids[0]) {
                        todo.push((ids[0], ids, p.diff));
                    }
                }
            }
        }
        let queue = Mutex::new(todo.into_iter());
        let threads = ctx.search.parallel_checks.max(1);
        let (repro, regression) = (ready.repro.as_ref(), &ready.regression);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                        let Some((lead, ids, diff)) = next else {
                            break;
                        };
                        let judged = Judged::new(executor, ctx);
                        let v = ponder_workflow::verify_patch(&judged, &diff, repro, regression)
                            .unwrap_or_else(|e| Verification {
                                failure: Some(e),
                                ..Verification::default()
                            });
                        ctx.progress(&format!(
                            "verify     node {lead}{}: {}",
                            if ids.len() > 1 {
                                format!(" (and {} agreeing)", ids.len() - 1)
                            } else {
                                String::new()
                            },
                            if v.passed {
                                "every check passed".to_owned()
                            } else {
                                v.failure.as_deref().map(first_line).unwrap_or_default()
                            }
                        ));
                        if let Some(s) = shared
                            && ctx.node(lead).normalized.is_some()
                        {
                            locked(&s.verified).insert(key(lead), v.clone());
                        }
                        ctx.with_tree(|t| {
                            for &id in &ids {
                                t.node_mut(id).verification = Some(v.clone());
                            }
                        });
                        ctx.save();
                    }
                });
            }
        });
        ctx.save();
        Ok(())
    }
}

/// The executor the checks use: the environment's, with a candidate source's verdict added
/// to the output of that source's scripts.
struct Judged<'a> {
    inner: &'a EnvExecutor,
    source: Option<&'a dyn CandidateSource>,
}

impl<'a> Judged<'a> {
    fn new(inner: &'a EnvExecutor, ctx: &'a Ctx<'_>) -> Judged<'a> {
        Judged {
            inner,
            source: ctx.search.source.as_deref(),
        }
    }
}

impl ponder_workflow::Executor for Judged<'_> {
    fn run_script(
        &self,
        patch: Option<&str>,
        script: &str,
    ) -> Result<ponder_workflow::ExecRun, String> {
        let mut run = self.inner.run_script(patch, script)?;
        if let Some(verdict) = self.source.and_then(|s| s.script_verdict(&run.output)) {
            run.output.push_str(if verdict {
                "\nIssue resolved\n"
            } else {
                "\nIssue reproduced\n"
            });
        }
        Ok(run)
    }

    fn run_tests(
        &self,
        patch: Option<&str>,
        files: &[String],
    ) -> Result<(BTreeMap<String, String>, ponder_workflow::ExecRun), String> {
        self.inner.run_tests(patch, files)
    }
}

/// Stage 4a from a candidate source: its script, kept if it reproduces on the original code.
fn source_reproduction(
    source: &dyn CandidateSource,
    tree: &Path,
    seed: u64,
    executor: &dyn ponder_workflow::Executor,
) -> StageRecord {
    let started = Instant::now();
    let mut record = StageRecord::new("reproduce");
    let outcome = match source.reproduction(tree, seed) {
        None => Err("the policy wrote no reproduction script".to_owned()),
        Some(script) => match executor.run_script(None, &script) {
            Ok(run) if run.output.contains("Issue reproduced") => {
                Ok(ponder_workflow::Reproduction {
                    script,
                    original: run,
                })
            }
            Ok(run) => Err(format!(
                "on the original code the script did not print \"Issue reproduced\" (exit \
                 code {:?})",
                run.exit_code
            )),
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(r) => record.output = serde_json::to_value(r).unwrap_or_default(),
        Err(e) => record.failure = Some(e),
    }
    record.seconds = started.elapsed().as_secs_f64();
    record
}

/// Scores every patch with the outcome reward model, once per distinct change.
async fn score_outcomes(ctx: &Ctx<'_>, patches: &[usize]) {
    let orm = ctx.search.orm.as_ref().unwrap_or(ctx.model);
    let by_change = by_change(ctx, patches);
    join_all(by_change.into_values().map(|ids| async move {
        if ids.iter().all(|&id| ctx.node(id).orm.is_some()) {
            return;
        }
        let lead = ctx.node(ids[0]);
        let Some(patch) = ctx.patch_of(lead.id) else {
            return;
        };
        let checks: Vec<String> = lead
            .verification
            .as_ref()
            .map(|v| {
                let mut c = Vec::new();
                match v.resolved_by_script {
                    Some(true) => {
                        c.push("the reproduction script prints \"Issue resolved\"".to_owned())
                    }
                    Some(false) => c.push(
                        "the reproduction script does NOT print \"Issue resolved\"".to_owned(),
                    ),
                    None => {}
                }
                if !v.regressions.is_empty() {
                    c.push(format!(
                        "regression tests that now fail: {}",
                        v.regressions.join(", ")
                    ));
                }
                c
            })
            .unwrap_or_default();
        let Ok(prompt) = ctx.prompts.render(
            "orm",
            json!({"repo": ctx.prepared.name, "issue": ctx.prepared.issue, "patch": patch.diff,
                   "checks": checks}),
        ) else {
            return;
        };
        let score = match &ctx.search.source {
            Some(source) => Ok(source.orm(ctx.tree_dir, &patch.diff, lead.seed.unwrap_or(0))),
            None => judge(orm, prompt).await,
        };
        match score {
            Ok(score) => {
                ctx.progress(&format!(
                    "orm        node {}: p(yes) {:.3}",
                    lead.id, score.p_yes
                ));
                ctx.with_tree(|t| {
                    for (i, &id) in ids.iter().enumerate() {
                        t.node_mut(id).orm = Some(if i == 0 {
                            score.clone()
                        } else {
                            shared(&score)
                        });
                    }
                });
                ctx.save();
            }
            Err(e) => ctx.progress(&format!(
                "orm        node {}: no score ({})",
                lead.id,
                first_line(&e.to_string())
            )),
        }
    }))
    .await;
}
