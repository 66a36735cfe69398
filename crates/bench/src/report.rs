//! The report of a bench run: read the run directory (`load`), summarize it (`build`) into a
//! `Report` (written as `report.json`), and show it as a terminal table (`table`); the HTML page
//! is `crate::html`.
//!
//! Everything here is computed from the cells alone, so a run can be reported while it goes on:
//! a cell that is missing is listed, a cell that cannot be read is a warning, and the rates cover
//! the cells present.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::record::{BENCH_FORMAT, Cell, Manifest};

/// Bumped when `report.json` changes incompatibly.
pub const REPORT_FORMAT: u32 = 1;

/// Shown first in every output of a run whose candidates came from the simulator.
pub const SIMULATED_BANNER: &str = "SIMULATED POLICY: candidates drawn by ponder's simulator from the gold patches, \
     not by a model. These numbers measure the search strategies, not a model's ability.";

/// The strategies whose candidates at budget k are k independent whole rollouts (the same ones
/// for all three, see `record`), in the order one is picked to stand for them.
pub const WHOLE_ROLLOUT: [&str; 3] = ["best-of-n", "vote", "endpoint-verify"];

/// The strategy whose search tree differs per budget; its candidates are not independent.
pub const DEV_SEARCH: &str = "dev-search";

/// Difficulty buckets in the order they are shown; any other bucket name follows these.
pub const BUCKETS: [&str; 3] = ["easy", "medium", "hard"];

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// A run directory as read: its manifest, the cells that could be read, and what could not.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub manifest: Manifest,
    pub cells: Vec<Cell>,
    /// One line per cell file that was skipped, naming it and what to do.
    pub warnings: Vec<String>,
}

impl Loaded {
    /// The report of this run, with the warnings from reading it.
    pub fn report(&self) -> Report {
        let mut report = build(&self.manifest, &self.cells);
        // Reading problems first: they explain why cells are missing.
        let mut warnings = self.warnings.clone();
        warnings.append(&mut report.warnings);
        report.warnings = warnings;
        report
    }
}

/// Reads `bench.json` and every cell under `cells/`. A missing or unreadable manifest is an
/// error; a cell file that cannot be read or parsed is skipped with a warning.
pub fn load(run_dir: &Path) -> anyhow::Result<Loaded> {
    let manifest_path = run_dir.join("bench.json");
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "cannot read {}: is {} the run directory of a `ponder bench` run?",
            manifest_path.display(),
            run_dir.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a bench manifest (bench.json as `ponder bench` writes it)",
            manifest_path.display()
        )
    })?;
    if manifest.format != BENCH_FORMAT {
        bail!(
            "{} has format {}, this ponder reads format {BENCH_FORMAT}: report it with the ponder \
             version that wrote it ({})",
            manifest_path.display(),
            manifest.format,
            manifest.ponder_version
        );
    }

    let mut cells = Vec::new();
    let mut warnings = Vec::new();
    let cells_dir = run_dir.join("cells");
    for path in cell_files(&cells_dir, &mut warnings) {
        match read_cell(&path) {
            Ok(cell) => cells.push(cell),
            Err(why) => warnings.push(format!(
                "skipped cell {}: {why}; delete it and rerun `ponder bench` on the same run \
                 directory to remake it",
                path.display()
            )),
        }
    }
    Ok(Loaded {
        manifest,
        cells,
        warnings,
    })
}

/// The `cells/<instance>/<file>.json` paths, sorted so the report does not depend on the order
/// the file system lists them in. A missing `cells/` is a run that has no cell yet.
fn cell_files(cells_dir: &Path, warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let instances = match std::fs::read_dir(cells_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return files,
        Err(e) => {
            warnings.push(format!("cannot list {}: {e}", cells_dir.display()));
            return files;
        }
    };
    for entry in instances.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        match std::fs::read_dir(&dir) {
            Ok(entries) => files.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json")),
            ),
            Err(e) => warnings.push(format!("cannot list {}: {e}", dir.display())),
        }
    }
    files.sort();
    files
}

/// One cell, checked against the place it was found in (a cell under another instance's folder
/// or file name is as good as malformed: it would be counted twice or in the wrong place).
fn read_cell(path: &Path) -> Result<Cell, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it ({e})"))?;
    let cell: Cell =
        serde_json::from_str(&text).map_err(|e| format!("it is not a valid cell ({e})"))?;
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let dir = path
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|d| d.to_str())
        .unwrap_or("");
    let expected = format!("{}-b{}.json", cell.strategy, cell.budget);
    if file != expected || dir != cell.instance_id {
        return Err(format!(
            "it holds {}/{expected}, not what its path says",
            cell.instance_id
        ));
    }
    Ok(cell)
}

/// The summary of a bench run (`report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: u32,
    /// True when the candidates came from the simulated policy, not a model.
    pub simulated: bool,
    /// `SIMULATED_BANNER` when simulated; every view of the report shows it first.
    pub banner: Option<String>,
    pub dataset: String,
    pub policy: String,
    pub ponder_version: String,
    /// When the run started, RFC 3339.
    pub started: String,
    pub strategies: Vec<String>,
    pub budgets: Vec<usize>,
    /// The simulator's settings, when simulated.
    pub sim_config: Option<serde_json::Value>,
    /// Which cells the run has and which it lacks.
    pub completeness: Completeness,
    /// One row per (strategy, budget) that has cells, strategies in the manifest's order.
    pub rows: Vec<Row>,
    /// Resolve rates per repository.
    pub by_repo: Vec<GroupRates>,
    /// Resolve rates per difficulty bucket (easy, medium, hard).
    pub by_difficulty: Vec<GroupRates>,
    /// Mean reasoning and answer tokens per (strategy, budget, bucket).
    pub tokens_by_difficulty: Vec<BucketTokens>,
    /// pass@k from the independent rollouts, when the run has them.
    pub pass_at_k: Option<PassAtK>,
    /// Oracle best-of-k against 1-(1-p)^k, when p is known or can be estimated.
    pub theory: Option<Theory>,
    /// Cells skipped or left out, and why.
    pub warnings: Vec<String>,
}

/// Which cells a run has: the manifest names the instances, strategies and budgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completeness {
    /// Instances in the manifest.
    pub instances: usize,
    /// Instances with at least one cell.
    pub instances_with_cells: usize,
    /// Instances with every expected cell.
    pub instances_complete: usize,
    pub cells_expected: usize,
    pub cells_found: usize,
    /// The instances that lack cells, with the cells they lack (`<strategy>-b<budget>`).
    pub missing: Vec<MissingCells>,
    /// True when any expected cell is missing.
    pub partial: bool,
    /// What a partial run means for the numbers, when partial.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MissingCells {
    pub instance_id: String,
    pub cells: Vec<String>,
}

/// A proportion's 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// One (strategy, budget) over the instances that have its cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub strategy: String,
    pub budget: usize,
    /// Instances with this cell.
    pub instances: usize,
    pub resolved: usize,
    pub resolve_rate: f64,
    /// Wilson 95% interval of the resolve rate.
    pub resolve_ci: Interval,
    /// Instances where some candidate at this budget resolves (oracle best-of-k).
    pub oracle: usize,
    pub oracle_rate: f64,
    pub oracle_ci: Interval,
    /// resolved / oracle: how often the strategy picks a resolving candidate when it has one.
    /// None when no candidate resolves anywhere.
    pub selection_efficiency: Option<f64>,
    pub tokens: TokenTotals,
    pub tokens_mean: TokenMeans,
    /// All tokens (prompt + completion) per resolved instance; None when none is resolved.
    pub tokens_per_resolved: Option<f64>,
    pub seconds_total: f64,
    pub seconds_mean: f64,
    /// Cells that record an error (they count as not resolved).
    pub errors: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenTotals {
    pub prompt: u64,
    /// Reasoning included.
    pub completion: u64,
    pub reasoning: u64,
    /// Completion minus reasoning.
    pub answer: u64,
    /// Prompt plus completion.
    pub total: u64,
}

/// Per instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenMeans {
    pub prompt: f64,
    pub completion: f64,
    pub reasoning: f64,
    pub answer: f64,
    pub total: f64,
}

/// Resolve rates of one repository or difficulty bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRates {
    pub group: String,
    /// Instances of the group with at least one cell.
    pub instances: usize,
    pub rates: Vec<GroupRate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRate {
    pub strategy: String,
    pub budget: usize,
    pub instances: usize,
    pub resolved: usize,
    pub rate: f64,
}

/// Mean tokens of one (strategy, budget) on one difficulty bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketTokens {
    pub strategy: String,
    pub budget: usize,
    pub bucket: String,
    pub instances: usize,
    pub mean_reasoning: f64,
    pub mean_answer: f64,
}

/// The unbiased pass@k estimator (Chen et al. 2021) over the candidates of `strategy` at
/// `budget`, the run's largest for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassAtK {
    pub strategy: String,
    pub budget: usize,
    pub values: Vec<PassAtKValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassAtKValue {
    pub k: usize,
    /// Instances with at least k samples.
    pub instances: usize,
    pub value: f64,
}

/// The check of oracle best-of-k against independent sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Theory {
    pub statement: String,
    /// Success probability of one candidate.
    pub p: f64,
    /// Where p comes from.
    pub p_source: String,
    /// The whole-rollout strategy measured, when the run has one.
    pub strategy: Option<String>,
    /// One row per budget of `strategy`.
    pub rows: Vec<TheoryRow>,
    /// True when every row is inside its band.
    pub all_inside: bool,
    /// dev-search's oracle against the same curve: informational only, its candidates are
    /// not independent, so falling outside the band says nothing is wrong.
    pub dev_search: Vec<TheoryRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TheoryRow {
    pub k: usize,
    pub instances: usize,
    pub measured: f64,
    /// 1-(1-p)^k.
    pub expected: f64,
    /// The 2.5% and 97.5% quantiles of Binomial(instances, expected) / instances.
    pub band_low: f64,
    pub band_high: f64,
    pub inside: bool,
}

/// Wilson score 95% interval of `successes` out of `n`; with n = 0 nothing is known: [0, 1].
pub fn wilson(successes: usize, n: usize) -> Interval {
    if n == 0 {
        return Interval {
            low: 0.0,
            high: 1.0,
        };
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Interval {
        low: (center - half).max(0.0),
        high: (center + half).min(1.0),
    }
}

/// Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k), computed
/// as a product so it stays exact for large n (Chen et al. 2021). Needs k <= n.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(k >= 1 && k <= n && c <= n, "pass@{k} of {c}/{n}");
    if n - c < k {
        return 1.0;
    }
    // C(n-c, k) / C(n, k) = prod_{i = n-c+1}^{n} (1 - k / i)
    let miss: f64 = (n - c + 1..=n).map(|i| 1.0 - k as f64 / i as f64).product();
    1.0 - miss
}

/// P(X <= x) for X ~ Binomial(n, q), summed exactly from the probabilities in logs.
pub fn binomial_cdf(x: usize, n: usize, q: f64) -> f64 {
    (0..=x.min(n))
        .map(|i| binomial_pmf(i, n, q))
        .sum::<f64>()
        .min(1.0)
}

fn binomial_pmf(i: usize, n: usize, q: f64) -> f64 {
    // The edges by hand: ln(0) would turn 0 * ln(0) into NaN.
    if q <= 0.0 {
        return if i == 0 { 1.0 } else { 0.0 };
    }
    if q >= 1.0 {
        return if i == n { 1.0 } else { 0.0 };
    }
    let ln_choose = ln_factorial(n) - ln_factorial(i) - ln_factorial(n - i);
    (ln_choose + i as f64 * q.ln() + (n - i) as f64 * (1.0 - q).ln()).exp()
}

fn ln_factorial(n: usize) -> f64 {
    (2..=n).map(|i| (i as f64).ln()).sum()
}

/// The central 95% band of the measured rate of `n` instances when each succeeds with
/// probability `q`: the 2.5% and 97.5% quantiles of Binomial(n, q), divided by n.
pub fn binomial_band(n: usize, q: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    // The q-quantile is the smallest x with P(X <= x) >= q; a little slack keeps a CDF that
    // sums to 0.975 exactly from missing it by a rounding error.
    let quantile = |level: f64| {
        (0..=n)
            .find(|&x| binomial_cdf(x, n, q) >= level - 1e-12)
            .unwrap_or(n)
    };
    (
        quantile(0.025) as f64 / n as f64,
        quantile(0.975) as f64 / n as f64,
    )
}

/// The (strategy, budget) cells a complete run has per instance: `single` only at budget 1.
pub fn expected_cells(manifest: &Manifest) -> Vec<(String, usize)> {
    let mut budgets = manifest.budgets.clone();
    budgets.sort_unstable();
    budgets.dedup();
    let mut cells = Vec::new();
    for strategy in &manifest.strategies {
        if strategy == "single" {
            cells.push((strategy.clone(), 1));
        } else {
            cells.extend(budgets.iter().map(|&b| (strategy.clone(), b)));
        }
    }
    cells
}

/// Summarizes the cells of a run. Cells of instances, strategies or budgets the manifest does
/// not name are left out with a warning (they belong to another run's settings).
pub fn build(manifest: &Manifest, cells: &[Cell]) -> Report {
    let mut warnings = Vec::new();
    let expected = expected_cells(manifest);
    let expected_set: BTreeSet<(&str, usize)> =
        expected.iter().map(|(s, b)| (s.as_str(), *b)).collect();
    let instance_set: BTreeSet<&str> = manifest.instances.iter().map(String::as_str).collect();

    // Keep one cell per (instance, strategy, budget) of this run's settings.
    let mut seen = BTreeSet::new();
    let mut kept: Vec<&Cell> = Vec::new();
    for cell in cells {
        let key = (cell.strategy.as_str(), cell.budget);
        if !instance_set.contains(cell.instance_id.as_str()) {
            warnings.push(format!(
                "left out the cell {}/{}-b{}: the instance is not in bench.json",
                cell.instance_id, cell.strategy, cell.budget
            ));
        } else if !expected_set.contains(&key) {
            warnings.push(format!(
                "left out the cell {}/{}-b{}: bench.json does not name that strategy and budget",
                cell.instance_id, cell.strategy, cell.budget
            ));
        } else if !seen.insert((cell.instance_id.as_str(), key.0, key.1)) {
            warnings.push(format!(
                "left out a second cell {}/{}-b{}",
                cell.instance_id, cell.strategy, cell.budget
            ));
        } else {
            kept.push(cell);
        }
    }

    let completeness = completeness(manifest, &expected, &seen);
    let rows = expected
        .iter()
        .filter_map(|(s, b)| {
            let group: Vec<&Cell> = kept
                .iter()
                .copied()
                .filter(|c| &c.strategy == s && c.budget == *b)
                .collect();
            (!group.is_empty()).then(|| row(s, *b, &group))
        })
        .collect::<Vec<_>>();

    let by_repo = group_rates(&expected, &kept, |c| c.repo.clone(), |a, b| a.cmp(b));
    let by_difficulty = group_rates(&expected, &kept, bucket_of, bucket_order);
    let tokens_by_difficulty = tokens_by_difficulty(&expected, &kept);
    let pass_at_k = pass_at_k_of(manifest, &kept);
    let theory = theory(manifest, &kept, &rows);

    Report {
        format: REPORT_FORMAT,
        simulated: manifest.simulated,
        banner: manifest.simulated.then(|| SIMULATED_BANNER.to_string()),
        dataset: manifest.dataset.clone(),
        policy: manifest.policy.clone(),
        ponder_version: manifest.ponder_version.clone(),
        started: manifest.started.clone(),
        strategies: manifest.strategies.clone(),
        budgets: manifest.budgets.clone(),
        sim_config: manifest.sim.as_ref().map(|s| s.config.clone()),
        completeness,
        rows,
        by_repo,
        by_difficulty,
        tokens_by_difficulty,
        pass_at_k,
        theory,
        warnings,
    }
}

fn completeness(
    manifest: &Manifest,
    expected: &[(String, usize)],
    seen: &BTreeSet<(&str, &str, usize)>,
) -> Completeness {
    let mut missing = Vec::new();
    let mut with_cells = 0;
    for instance in &manifest.instances {
        let lacking: Vec<String> = expected
            .iter()
            .filter(|(s, b)| !seen.contains(&(instance.as_str(), s.as_str(), *b)))
            .map(|(s, b)| format!("{s}-b{b}"))
            .collect();
        if lacking.len() < expected.len() {
            with_cells += 1;
        }
        if !lacking.is_empty() {
            missing.push(MissingCells {
                instance_id: instance.clone(),
                cells: lacking,
            });
        }
    }
    let instances = manifest.instances.len();
    let cells_expected = instances * expected.len();
    let cells_found = seen.len();
    let partial = cells_found < cells_expected;
    let note = partial.then(|| {
        format!(
            "PARTIAL RUN: {} of {instances} instances lack cells ({} of {cells_expected} cells \
             missing); each rate covers only the instances that have its cell",
            missing.len(),
            cells_expected - cells_found
        )
    });
    Completeness {
        instances,
        instances_with_cells: with_cells,
        instances_complete: instances - missing.len(),
        cells_expected,
        cells_found,
        missing,
        partial,
        note,
    }
}

fn row(strategy: &str, budget: usize, cells: &[&Cell]) -> Row {
    let n = cells.len();
    let resolved = cells.iter().filter(|c| c.resolved == Some(true)).count();
    let oracle = cells.iter().filter(|c| c.oracle == Some(true)).count();
    let mut tokens = TokenTotals::default();
    for c in cells {
        tokens.prompt += c.tokens.prompt;
        tokens.completion += c.tokens.completion;
        tokens.reasoning += c.tokens.reasoning;
        tokens.answer += c.tokens.answer();
        tokens.total += c.tokens.total();
    }
    let per = |x: u64| x as f64 / n as f64;
    let seconds_total: f64 = cells.iter().map(|c| c.seconds).sum();
    Row {
        strategy: strategy.to_string(),
        budget,
        instances: n,
        resolved,
        resolve_rate: resolved as f64 / n as f64,
        resolve_ci: wilson(resolved, n),
        oracle,
        oracle_rate: oracle as f64 / n as f64,
        oracle_ci: wilson(oracle, n),
        selection_efficiency: (oracle > 0).then(|| resolved as f64 / oracle as f64),
        tokens,
        tokens_mean: TokenMeans {
            prompt: per(tokens.prompt),
            completion: per(tokens.completion),
            reasoning: per(tokens.reasoning),
            answer: per(tokens.answer),
            total: per(tokens.total),
        },
        tokens_per_resolved: (resolved > 0).then(|| tokens.total as f64 / resolved as f64),
        seconds_total,
        seconds_mean: seconds_total / n as f64,
        errors: cells.iter().filter(|c| c.error.is_some()).count(),
    }
}

fn bucket_of(cell: &Cell) -> String {
    if cell.difficulty.bucket.is_empty() {
        "unknown".to_string()
    } else {
        cell.difficulty.bucket.clone()
    }
}

/// easy, medium, hard, then the rest by name.
fn bucket_order(a: &String, b: &String) -> std::cmp::Ordering {
    let rank = |s: &String| BUCKETS.iter().position(|x| x == s).unwrap_or(BUCKETS.len());
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

fn group_rates(
    expected: &[(String, usize)],
    cells: &[&Cell],
    key: impl Fn(&Cell) -> String,
    order: impl Fn(&String, &String) -> std::cmp::Ordering,
) -> Vec<GroupRates> {
    let mut groups: BTreeMap<String, Vec<&Cell>> = BTreeMap::new();
    for cell in cells {
        groups.entry(key(cell)).or_default().push(cell);
    }
    let mut out: Vec<GroupRates> = groups
        .into_iter()
        .map(|(group, cells)| {
            let instances = cells
                .iter()
                .map(|c| c.instance_id.as_str())
                .collect::<BTreeSet<_>>()
                .len();
            let rates = expected
                .iter()
                .filter_map(|(s, b)| {
                    let these: Vec<&&Cell> = cells
                        .iter()
                        .filter(|c| &c.strategy == s && c.budget == *b)
                        .collect();
                    let n = these.len();
                    let resolved = these.iter().filter(|c| c.resolved == Some(true)).count();
                    (n > 0).then(|| GroupRate {
                        strategy: s.clone(),
                        budget: *b,
                        instances: n,
                        resolved,
                        rate: resolved as f64 / n as f64,
                    })
                })
                .collect();
            GroupRates {
                group,
                instances,
                rates,
            }
        })
        .collect();
    out.sort_by(|a, b| order(&a.group, &b.group));
    out
}

fn tokens_by_difficulty(expected: &[(String, usize)], cells: &[&Cell]) -> Vec<BucketTokens> {
    let mut buckets: Vec<String> = cells
        .iter()
        .map(|c| bucket_of(c))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    buckets.sort_by(bucket_order);
    let mut out = Vec::new();
    for (strategy, budget) in expected {
        for bucket in &buckets {
            let these: Vec<&&Cell> = cells
                .iter()
                .filter(|c| {
                    &c.strategy == strategy && c.budget == *budget && bucket_of(c) == *bucket
                })
                .collect();
            if these.is_empty() {
                continue;
            }
            let n = these.len() as f64;
            out.push(BucketTokens {
                strategy: strategy.clone(),
                budget: *budget,
                bucket: bucket.clone(),
                instances: these.len(),
                mean_reasoning: these.iter().map(|c| c.tokens.reasoning as f64).sum::<f64>() / n,
                mean_answer: these.iter().map(|c| c.tokens.answer() as f64).sum::<f64>() / n,
            });
        }
    }
    out
}

/// The whole-rollout strategy that stands for the three (they share their rollouts) and its
/// largest budget with cells, with those cells.
fn whole_rollout_source<'a>(cells: &[&'a Cell]) -> Option<(&'static str, usize, Vec<&'a Cell>)> {
    WHOLE_ROLLOUT.iter().find_map(|&strategy| {
        let budget = cells
            .iter()
            .filter(|c| c.strategy == strategy)
            .map(|c| c.budget)
            .max()?;
        let these = cells
            .iter()
            .copied()
            .filter(|c| c.strategy == strategy && c.budget == budget)
            .collect();
        Some((strategy, budget, these))
    })
}

/// Samples and successes of one whole-rollout cell. A rollout that ended without a patch has no
/// candidate but was still a sample, so the sample count is at least the budget; a candidate
/// that could not be graded counts as not resolving.
fn samples(cell: &Cell) -> (usize, usize) {
    let n = cell.budget.max(cell.candidates.len());
    let c = cell.candidates.iter().filter(|g| **g == Some(true)).count();
    (n, c)
}

fn pass_at_k_of(manifest: &Manifest, cells: &[&Cell]) -> Option<PassAtK> {
    let (strategy, budget, these) = whole_rollout_source(cells)?;
    let mut ks = manifest.budgets.clone();
    ks.sort_unstable();
    ks.dedup();
    let values = ks
        .into_iter()
        .filter_map(|k| {
            let per_instance: Vec<f64> = these
                .iter()
                .map(|c| samples(c))
                .filter(|&(n, _)| k >= 1 && n >= k)
                .map(|(n, c)| pass_at_k(n, c, k))
                .collect();
            (!per_instance.is_empty()).then(|| PassAtKValue {
                k,
                instances: per_instance.len(),
                value: per_instance.iter().sum::<f64>() / per_instance.len() as f64,
            })
        })
        .collect();
    Some(PassAtK {
        strategy: strategy.to_string(),
        budget,
        values,
    })
}

fn theory(manifest: &Manifest, cells: &[&Cell], rows: &[Row]) -> Option<Theory> {
    let source = whole_rollout_source(cells);
    let (p, p_source) = match (&manifest.sim, &source) {
        (Some(sim), _) if manifest.simulated => (
            sim.p_rollout,
            "the simulator's p_rollout (bench.json)".to_string(),
        ),
        (_, Some((strategy, budget, these))) => {
            let fractions: Vec<f64> = these
                .iter()
                .map(|c| samples(c))
                .filter(|&(n, _)| n > 0)
                .map(|(n, c)| c as f64 / n as f64)
                .collect();
            if fractions.is_empty() {
                return None;
            }
            let p = fractions.iter().sum::<f64>() / fractions.len() as f64;
            let source = format!(
                "estimated: the mean fraction of resolving candidates of {strategy} at budget \
                 {budget} (the band is then a little wide, p being fitted to the same data)"
            );
            (p, source)
        }
        _ => return None,
    };
    let rows_of = |strategy: &str| -> Vec<TheoryRow> {
        rows.iter()
            .filter(|r| r.strategy == strategy)
            .map(|r| {
                let expected = 1.0 - (1.0 - p).powi(r.budget as i32);
                let (band_low, band_high) = binomial_band(r.instances, expected);
                // Measured and band are both counts over the same instances; the slack is for rounding.
                let inside = r.oracle_rate >= band_low - 1e-9 && r.oracle_rate <= band_high + 1e-9;
                TheoryRow {
                    k: r.budget,
                    instances: r.instances,
                    measured: r.oracle_rate,
                    expected,
                    band_low,
                    band_high,
                    inside,
                }
            })
            .collect()
    };
    let strategy = source.map(|(s, _, _)| s.to_string());
    let theory_rows = strategy.as_deref().map(rows_of).unwrap_or_default();
    Some(Theory {
        statement: "with independent candidates of success probability p, oracle best-of-k \
                    follows 1-(1-p)^k"
            .to_string(),
        p,
        p_source,
        all_inside: theory_rows.iter().all(|r| r.inside),
        strategy,
        rows: theory_rows,
        dev_search: rows_of(DEV_SEARCH),
    })
}

/// The report as plain text for a terminal: the banner when simulated, the strategy x budget
/// table, pass@k and the theory check, then what is missing and the warnings.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    if let Some(banner) = &report.banner {
        let rule = "=".repeat(banner.len().min(100));
        let _ = writeln!(out, "{rule}\n{banner}\n{rule}\n");
    }
    let _ = writeln!(
        out,
        "ponder bench report: {} with policy {}, started {} (ponder {})",
        report.dataset, report.policy, report.started, report.ponder_version
    );
    let c = &report.completeness;
    let _ = writeln!(
        out,
        "instances: {} ({} complete, {} with cells); cells: {} of {}",
        c.instances, c.instances_complete, c.instances_with_cells, c.cells_found, c.cells_expected
    );
    if let Some(note) = &c.note {
        let _ = writeln!(out, "{note}");
    }
    out.push('\n');

    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| {
            vec![
                r.strategy.clone(),
                r.budget.to_string(),
                r.instances.to_string(),
                pct(r.resolve_rate),
                ci(r.resolve_ci),
                pct(r.oracle_rate),
                ci(r.oracle_ci),
                opt(r.selection_efficiency, |e| format!("{e:.2}")),
                tokens(r.tokens_mean.total),
                tokens(r.tokens_mean.reasoning),
                opt(r.tokens_per_resolved, tokens),
                format!("{:.1}", r.seconds_mean),
                r.errors.to_string(),
            ]
        })
        .collect();
    out.push_str(&aligned(
        &[
            "strategy",
            "budget",
            "n",
            "resolved",
            "95% CI",
            "oracle",
            "95% CI",
            "efficiency",
            "tokens/inst",
            "reasoning/inst",
            "tokens/resolved",
            "s/inst",
            "errors",
        ],
        &rows,
        &[],
    ));

    if let Some(pk) = &report.pass_at_k {
        let values: Vec<String> = pk
            .values
            .iter()
            .map(|v| format!("pass@{}={}", v.k, pct(v.value)))
            .collect();
        let _ = writeln!(
            out,
            "\npass@k (unbiased, from {} at budget {}): {}",
            pk.strategy,
            pk.budget,
            values.join("  ")
        );
    }

    if let Some(t) = &report.theory {
        let _ = writeln!(
            out,
            "\ntheory: {}; p = {:.3} ({})",
            t.statement, t.p, t.p_source
        );
        let mut rows = Vec::new();
        let mut push = |who: &str, r: &TheoryRow, verdict: &str| {
            rows.push(vec![
                who.to_string(),
                r.k.to_string(),
                r.instances.to_string(),
                pct(r.measured),
                pct(r.expected),
                format!("[{}, {}]", pct(r.band_low), pct(r.band_high)),
                verdict.to_string(),
            ]);
        };
        for r in &t.rows {
            let who = t.strategy.as_deref().unwrap_or("");
            push(who, r, if r.inside { "inside" } else { "OUTSIDE" });
        }
        for r in &t.dev_search {
            let verdict = if r.inside {
                "inside (informational)"
            } else {
                "outside (informational)"
            };
            push(DEV_SEARCH, r, verdict);
        }
        out.push_str(&aligned(
            &[
                "oracle of",
                "k",
                "n",
                "measured",
                "expected",
                "95% band",
                "",
            ],
            &rows,
            &[6],
        ));
        if !t.rows.is_empty() {
            let _ = writeln!(
                out,
                "{}",
                if t.all_inside {
                    "every measured oracle rate is inside its band"
                } else {
                    "SOME measured oracle rates fall outside their band"
                }
            );
        }
    }

    if !c.missing.is_empty() {
        let _ = writeln!(out, "\nmissing cells:");
        for m in c.missing.iter().take(20) {
            let _ = writeln!(out, "  {}: {}", m.instance_id, m.cells.join(", "));
        }
        if c.missing.len() > 20 {
            let _ = writeln!(out, "  ... and {} more instances", c.missing.len() - 20);
        }
    }
    if !report.warnings.is_empty() {
        let _ = writeln!(out, "\nwarnings:");
        for w in &report.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

/// Columns padded to their widest cell; the first column and the columns in `left` (words)
/// left-aligned, the rest (numbers) right-aligned.
fn aligned(headers: &[&str], rows: &[Vec<String>], left: &[usize]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let sep = if i == 0 { "" } else { "  " };
            if i == 0 || left.contains(&i) {
                let _ = write!(s, "{sep}{cell:<w$}");
            } else {
                let _ = write!(s, "{sep}{cell:>w$}");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out += &line(rule.iter().map(String::as_str).collect());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// A rate as a percentage with one decimal.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn ci(i: Interval) -> String {
    format!("[{:.1}, {:.1}]", 100.0 * i.low, 100.0 * i.high)
}

/// A token count, shortened: 950, 12.3k, 4.1M.
pub fn tokens(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn opt<T>(x: Option<T>, f: impl Fn(T) -> String) -> String {
    x.map(f).unwrap_or_else(|| "-".to_string())
}
