//! The simulated policy: a drop-in candidate generator (`ponder_solve::search::CandidateSource`)
//! for instances whose gold patch is known, so that search strategies can be studied without a
//! model. Each stage's candidate is right with a set probability:
//!
//! - understanding: right when its code covers every gold location (the definitions the gold
//!   patch changes), else definitions from other source files;
//! - localization: right (the gold locations) with `localize` when its understanding was right,
//!   with `localize_recover` when it was not; wrong ones are other definitions;
//! - patch: from a right localization, the gold patch with `patch`, else a realistic wrong one
//!   (a condition of the fix mutated, a hunk left out, or a change that does not fix it); from
//!   a wrong localization, a change at that wrong place. Every patch applies and parses.
//! - reproduction: a right script (with `reproduction`) runs the instance's FAIL_TO_PASS tests
//!   for real and says resolved exactly when they pass, read with the benchmark's log parser;
//!   a wrong one reproduces on every tree, so its verdict carries no information;
//! - PRM and ORM: noisy scores whose ROC AUC between right and wrong candidates is
//!   `prm_auc` / `orm_auc` (right ones score N(d, 1), wrong ones N(0, 1), d = sqrt(2) *
//!   Phi^-1(AUC), p(yes) the logistic of the score less d/2).
//!
//! Tokens are simulated too (from the gold patch's size), and everything it makes says it is
//! simulated. All draws come from the sample's seed, so a rerun makes the same candidates.

use crate::record::Difficulty;
use ponder_code::search::slice_lines;
use ponder_code::{CodeIndex, SymbolKind};
use ponder_llm::Usage;
use ponder_solve::normalize::{applied_files, normalized_change};
use ponder_solve::search::CandidateSource;
use ponder_swebench::dataset::Instance;
use ponder_swebench::logparse::LogFormat;
use ponder_workflow::trajectory::Turn;
use ponder_workflow::{
    CodeSpan, Localization, PatchCandidate, RewardScore, StageRecord, Understanding,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};
use std::path::Path;
use std::sync::OnceLock;

/// The name the simulated policy goes by in trees, cells and prediction files.
pub const SIM_NAME: &str = "ponder-sim (SIMULATED policy, not a model)";

/// Marks the output of a right reproduction script's test run.
const REPRO_BEGIN: &str = "=== ponder-sim reproduction: test output begins ===";
const REPRO_END: &str = "=== ponder-sim reproduction: test output ends ===";

/// The simulated policy's probabilities (`sim.toml`; every field optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// P(stage 1 covers every gold location).
    pub understand: f64,
    /// P(stage 2 names the gold locations | stage 1 was right).
    pub localize: f64,
    /// P(stage 2 names the gold locations | stage 1 was wrong).
    pub localize_recover: f64,
    /// P(the patch is the gold patch | stage 2 was right).
    pub patch: f64,
    /// P(the reproduction script is right).
    pub reproduction: f64,
    /// ROC AUC of the process reward model between right and wrong candidates.
    pub prm_auc: f64,
    /// ROC AUC of the outcome reward model between right and wrong patches.
    pub orm_auc: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            understand: 0.7,
            localize: 0.7,
            localize_recover: 0.1,
            patch: 0.5,
            reproduction: 0.7,
            prm_auc: 0.75,
            orm_auc: 0.75,
        }
    }
}

impl SimConfig {
    /// Reads `sim.toml`.
    pub fn load(path: &Path) -> anyhow::Result<SimConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let config: SimConfig = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a simulated policy's settings: {e}\nfields: understand, localize, \
                 localize_recover, patch, reproduction (probabilities), prm_auc, orm_auc (0.5 \
                 to 1)",
                path.display()
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, p) in [
            ("understand", self.understand),
            ("localize", self.localize),
            ("localize_recover", self.localize_recover),
            ("patch", self.patch),
            ("reproduction", self.reproduction),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&p),
                "{name} = {p} is not a probability (0 to 1)"
            );
        }
        for (name, auc) in [("prm_auc", self.prm_auc), ("orm_auc", self.orm_auc)] {
            anyhow::ensure!(
                (0.5..1.0).contains(&auc),
                "{name} = {auc} must be at least 0.5 (no information) and below 1"
            );
        }
        Ok(())
    }

    /// P(one whole rollout ends in the gold patch).
    pub fn p_rollout(&self) -> f64 {
        (self.understand * self.localize + (1.0 - self.understand) * self.localize_recover)
            * self.patch
    }
}

/// One instance's simulated policy.
pub struct SimPolicy {
    config: SimConfig,
    instance: Instance,
    /// The instance's test command and exports (for the right reproduction script).
    test_command: String,
    exports: Vec<(String, String)>,
    format: Option<LogFormat>,
    difficulty: Difficulty,
    /// The gold locations, computed from the first index seen.
    gold: OnceLock<Vec<CodeSpan>>,
    gold_normalized: OnceLock<String>,
    /// Mixed into every draw, so instances draw independently of each other.
    salt: u64,
}

/// Where the gold patch changes a file: the old file's lines it removes or inserts before.
fn gold_lines(diff: &str) -> Vec<(String, Vec<u32>)> {
    let mut out: Vec<(String, Vec<u32>)> = Vec::new();
    let mut old_line = 0u32;
    for line in diff.lines() {
        if let Some(path) = line.strip_prefix("--- a/") {
            out.push((path.trim_end().to_owned(), Vec::new()));
        } else if line.starts_with("--- ") || line.starts_with("+++ ") {
            continue;
        } else if let Some(rest) = line.strip_prefix("@@ -") {
            old_line = rest
                .split([',', ' '])
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
        } else if let Some((_, lines)) = out.last_mut() {
            if line.starts_with('-') {
                lines.push(old_line);
                old_line += 1;
            } else if line.starts_with('+') {
                lines.push(old_line.max(1));
            } else if line.starts_with(' ') || line.is_empty() {
                old_line += 1;
            }
        }
    }
    out.retain(|(_, l)| !l.is_empty());
    out
}

/// The gold patch's size, as a difficulty.
pub fn difficulty(gold: &str) -> Difficulty {
    let files = gold.lines().filter(|l| l.starts_with("diff --git")).count();
    let hunks = gold.lines().filter(|l| l.starts_with("@@")).count();
    let lines = gold
        .lines()
        .filter(|l| {
            (l.starts_with('+') && !l.starts_with("+++"))
                || (l.starts_with('-') && !l.starts_with("---"))
        })
        .count();
    let bucket = if hunks <= 1 && lines <= 5 {
        "easy"
    } else if files <= 1 {
        "medium"
    } else {
        "hard"
    };
    Difficulty {
        files,
        hunks,
        lines,
        bucket: bucket.to_owned(),
    }
}

fn salt_of(id: &str) -> u64 {
    let hex = ponder_eval::cache::sha256_hex(id);
    u64::from_str_radix(&hex[..16], 16).unwrap_or(0)
}

fn rng(seed: u64, what: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ what.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A span of the definition of `index`'s file `file` enclosing `line` (the innermost function
/// or method, else a class, else the lines around it).
fn span_at(index: &CodeIndex, file: u32, line: u32) -> Option<CodeSpan> {
    let content = index.content(file)?;
    let path = index.file(file).path.clone();
    let (start, end, qualname) = match index.enclosing(file, line).map(|r| index.symbol(r)) {
        Some(s) => (s.start_line, s.end_line, Some(s.qualname.clone())),
        None => (line.saturating_sub(5).max(1), line + 5, None),
    };
    Some(CodeSpan {
        path,
        start_line: start,
        end_line: end,
        qualname,
        text: slice_lines(&content, start, end),
    })
}

/// Whether `code` covers every span of `gold` (same file, overlapping lines).
fn covers(code: &[CodeSpan], gold: &[CodeSpan]) -> bool {
    !gold.is_empty()
        && gold.iter().all(|g| {
            code.iter().any(|c| {
                c.path == g.path && c.start_line <= g.end_line && g.start_line <= c.end_line
            })
        })
}

impl SimPolicy {
    pub fn new(
        config: SimConfig,
        instance: Instance,
        test_command: String,
        exports: Vec<(String, String)>,
    ) -> SimPolicy {
        let format = instance
            .log_parser
            .as_deref()
            .and_then(|p| p.parse::<LogFormat>().ok())
            .or_else(|| LogFormat::for_repo(&instance.repo));
        let difficulty = difficulty(&instance.patch);
        let instance_id = instance.instance_id.clone();
        SimPolicy {
            config,
            instance,
            test_command,
            exports,
            format,
            difficulty,
            gold: OnceLock::new(),
            gold_normalized: OnceLock::new(),
            salt: salt_of(&instance_id),
        }
    }

    /// The generator of one draw: the sample's seed, the instance, and which draw it is.
    fn rng(&self, seed: u64, what: u64) -> ChaCha8Rng {
        rng(seed ^ self.salt, what)
    }

    /// The gold locations as code spans of `index`.
    fn gold(&self, index: &CodeIndex) -> &[CodeSpan] {
        self.gold.get_or_init(|| {
            let mut spans: Vec<CodeSpan> = Vec::new();
            for (path, lines) in gold_lines(&self.instance.patch) {
                let Some(file) = index.file_index(&path) else {
                    continue;
                };
                for line in lines {
                    if spans
                        .iter()
                        .any(|s| s.path == path && s.start_line <= line && line <= s.end_line)
                    {
                        continue;
                    }
                    if let Some(span) = span_at(index, file, line) {
                        spans.push(span);
                    }
                }
            }
            spans
        })
    }

    fn gold_normalized(&self, tree: &Path) -> &str {
        self.gold_normalized
            .get_or_init(|| normalized_change(tree, &self.instance.patch))
    }

    /// Definitions outside the gold locations, for wrong candidates: `n` of them, drawn.
    fn decoys(&self, index: &CodeIndex, rng: &mut ChaCha8Rng, n: usize) -> Vec<CodeSpan> {
        let gold = self.gold(index);
        let gold_files: Vec<&str> = gold.iter().map(|g| g.path.as_str()).collect();
        // Same-file definitions first half the time (a near miss), other files otherwise.
        let near = rng.random_bool(0.5);
        let mut pool: Vec<(u32, u32, u32)> = Vec::new();
        for f in index.visible_files() {
            let entry = index.file(f);
            if !entry.path.ends_with(".py") {
                continue;
            }
            let in_gold_file = gold_files.contains(&entry.path.as_str());
            if near != in_gold_file {
                continue;
            }
            for s in &entry.symbols {
                if s.kind == SymbolKind::Class || s.end_line < s.start_line + 2 {
                    continue;
                }
                let span = CodeSpan {
                    path: entry.path.clone(),
                    start_line: s.start_line,
                    end_line: s.end_line,
                    qualname: None,
                    text: String::new(),
                };
                if !covers(&[span], gold) {
                    pool.push((f, s.start_line, s.end_line));
                }
            }
        }
        if pool.is_empty() {
            return self.decoys_anywhere(index, rng, n);
        }
        let mut out = Vec::new();
        for _ in 0..n.min(pool.len()) {
            let (f, start, _) = pool.swap_remove(rng.random_range(0..pool.len()));
            if let Some(span) = span_at(index, f, start) {
                out.push(span);
            }
        }
        out
    }

    fn decoys_anywhere(&self, index: &CodeIndex, rng: &mut ChaCha8Rng, n: usize) -> Vec<CodeSpan> {
        let gold = self.gold(index);
        let mut pool: Vec<(u32, u32)> = Vec::new();
        for f in index.visible_files() {
            let entry = index.file(f);
            for s in &entry.symbols {
                if s.kind != SymbolKind::Class && s.end_line >= s.start_line + 2 {
                    pool.push((f, s.start_line));
                }
            }
        }
        let mut out = Vec::new();
        while out.len() < n && !pool.is_empty() {
            let (f, start) = pool.swap_remove(rng.random_range(0..pool.len()));
            if let Some(span) = span_at(index, f, start)
                && !covers(std::slice::from_ref(&span), gold)
            {
                out.push(span);
            }
        }
        out
    }

    /// Simulated tokens of one stage: more for a harder instance, noisy; most of the
    /// completion spent reasoning.
    fn turn(&self, stage: &str, rng: &mut ChaCha8Rng, answer: String) -> Turn {
        let scale = 1.0 + self.difficulty.lines as f64 / 20.0 + self.difficulty.files as f64 / 2.0;
        let base = match stage {
            "understand" => 900.0,
            "localize" => 1400.0,
            "patch" => 700.0,
            _ => 300.0,
        };
        let noise: f64 = (rng.random::<f64>() - 0.5) * 0.6 + 1.0;
        let completion = (base * scale * noise) as u64;
        let reasoning = completion * 7 / 10;
        Turn {
            request: Vec::new(),
            answer,
            reasoning: Some(format!("(simulated: {reasoning} reasoning tokens)")),
            tool_calls: Vec::new(),
            recovery: None,
            finish_reason: "stop".into(),
            usage: Usage {
                prompt_tokens: (3000.0 * scale) as u64,
                completion_tokens: completion,
                cached_prompt_tokens: 0,
                reasoning_tokens: reasoning,
            },
            seconds: 0.0,
        }
    }

    fn record<T: Serialize>(&self, stage: &str, rng: &mut ChaCha8Rng, out: &T) -> StageRecord {
        let mut record = StageRecord::new(stage);
        record.output = serde_json::to_value(out).unwrap_or_default();
        let note = format!("(simulated {stage} candidate)");
        record.turns.push(self.turn(stage, rng, note));
        record
    }

    /// A noisy reward score with the given AUC for a right or wrong candidate.
    fn score(&self, auc: f64, right: bool, seed: u64, what: u64) -> RewardScore {
        let normal = Normal::new(0.0, 1.0).expect("the standard normal");
        let d = std::f64::consts::SQRT_2 * normal.inverse_cdf(auc);
        let mut r = self.rng(seed, what);
        // Box-Muller from two uniforms.
        let (u1, u2): (f64, f64) = (r.random::<f64>().max(1e-12), r.random::<f64>());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let s = z + if right { d } else { 0.0 };
        RewardScore {
            p_yes: 1.0 / (1.0 + (-(s - d / 2.0)).exp()),
            method: "simulated".into(),
            samples: 1,
            usage: Usage::default(),
        }
    }

    /// A wrong patch for right locations: the fix with a condition mutated, a hunk left out,
    /// or a change at the gold place that does not fix it.
    fn wrong_fix(&self, tree: &Path, rng: &mut ChaCha8Rng) -> Option<String> {
        let gold = &self.instance.patch;
        let mut tries: Vec<String> = Vec::new();
        if let Some(m) = mutate_condition(gold, rng) {
            tries.push(m);
        }
        if let Some(p) = drop_hunk(gold, rng) {
            tries.push(p);
        }
        // Draw the order so both kinds appear.
        if tries.len() == 2 && rng.random_bool(0.5) {
            tries.swap(0, 1);
        }
        tries.into_iter().find(|d| valid_patch(tree, d))
    }

    /// A change at `span` that does not fix the issue: a condition there mutated, else a guard
    /// returning early, else a statement that does nothing.
    fn change_at(&self, tree: &Path, span: &CodeSpan, rng: &mut ChaCha8Rng) -> Option<String> {
        let before = std::fs::read_to_string(tree.join(&span.path)).ok()?;
        let lines: Vec<&str> = before.split_inclusive('\n').collect();
        let first = span.start_line.max(1) as usize - 1;
        let last = (span.end_line as usize).min(lines.len());
        let mut candidates: Vec<String> = Vec::new();
        // A mutated condition inside the span.
        let conds: Vec<usize> = (first..last)
            .filter(|&i| !mutations_of(lines[i]).is_empty() && is_condition_line(lines[i]))
            .collect();
        if !conds.is_empty() {
            let i = conds[rng.random_range(0..conds.len())];
            let mut after = lines.clone();
            let m = mutation_of(lines[i], rng).expect("checked");
            after[i] = &m;
            candidates.push(after.concat());
        }
        // After the header: a statement that does nothing, at the body's indentation.
        if let Some(h) = (first..last).find(|&i| lines[i].trim_end().ends_with(':')) {
            let body = (h + 1..last).find(|&i| !lines[i].trim().is_empty());
            if let Some(b) = body {
                let indent: String = lines[b].chars().take_while(|c| c.is_whitespace()).collect();
                let mut after: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
                after.insert(b, format!("{indent}pass\n"));
                candidates.push(after.concat());
            }
        }
        for after in candidates {
            if after == before
                || !ponder_workflow::edit::syntax_errors(&span.path, &after).is_empty()
            {
                continue;
            }
            let diff = unified(&span.path, &before, &after);
            if valid_patch(tree, &diff) {
                return Some(diff);
            }
        }
        None
    }

    /// The right reproduction script: writes the test patch's files, runs the instance's
    /// test command, puts the originals back, and prints the run between markers.
    fn right_script(&self, tree: &Path) -> Option<String> {
        let files = applied_files(tree, &self.instance.test_patch)?;
        let mut writes = String::new();
        for (path, content) in files {
            let content = content.unwrap_or_default();
            writes.push_str(&format!("    ({}, {}),\n", py_str(&path), py_str(&content)));
        }
        let env: String = self
            .exports
            .iter()
            .map(|(k, v)| format!("env[{}] = {}\n", py_str(k), py_str(v)))
            .collect();
        Some(format!(
            r#"# ponder-sim reproduction script (SIMULATED policy): runs the instance's
# FAIL_TO_PASS tests; ponder reads their statuses from the output below.
import os, subprocess, sys

FILES = [
{writes}]
saved = {{}}
for path, text in FILES:
    saved[path] = open(path, encoding="utf-8").read() if os.path.exists(path) else None
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
env = dict(os.environ)
{env}try:
    run = subprocess.run({cmd}, shell=True, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=1500)
    out = run.stdout.decode("utf-8", "replace")
finally:
    for path, text in saved.items():
        if text is None:
            os.remove(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
print({begin})
print(out)
print({end})
"#,
            cmd = py_str(&self.test_command),
            begin = py_str(REPRO_BEGIN),
            end = py_str(REPRO_END),
        ))
    }
}

impl CandidateSource for SimPolicy {
    fn name(&self) -> String {
        SIM_NAME.to_owned()
    }

    fn understand(&self, index: &CodeIndex, seed: u64) -> StageRecord {
        let mut r = self.rng(seed, 1);
        let gold = self.gold(index).to_vec();
        let right = !gold.is_empty() && r.random_bool(self.config.understand);
        let code = if right {
            gold
        } else {
            self.decoys(index, &mut r, 2)
        };
        let mut files: Vec<String> = Vec::new();
        for c in &code {
            if !files.contains(&c.path) {
                files.push(c.path.clone());
            }
        }
        let out = Understanding {
            ranked_files: files.clone(),
            retrieved_files: Vec::new(),
            shown_files: files,
            locations: Vec::new(),
            code,
            analysis: "(simulated understanding)".into(),
        };
        self.record("understand", &mut r, &out)
    }

    fn localize(&self, index: &CodeIndex, parent: &Understanding, seed: u64) -> StageRecord {
        let mut r = self.rng(seed, 2);
        let gold = self.gold(index).to_vec();
        let p = if covers(&parent.code, &gold) {
            self.config.localize
        } else {
            self.config.localize_recover
        };
        let right = !gold.is_empty() && r.random_bool(p);
        let code = if right {
            gold
        } else {
            let d = self.decoys(index, &mut r, 1);
            if d.is_empty() { parent.code.clone() } else { d }
        };
        let out = Localization {
            locations: Vec::new(),
            code,
            explanation: "(simulated localization)".into(),
        };
        self.record("localize", &mut r, &out)
    }

    fn patch(&self, tree: &Path, code: &[CodeSpan], seed: u64) -> StageRecord {
        let mut r = self.rng(seed, 3);
        let gold_spans = self.gold.get().cloned().unwrap_or_default();
        let right_place = covers(code, &gold_spans);
        let diff = if right_place && r.random_bool(self.config.patch) {
            Some(self.instance.patch.clone())
        } else if right_place {
            self.wrong_fix(tree, &mut r)
                .or_else(|| code.first().and_then(|s| self.change_at(tree, s, &mut r)))
        } else {
            code.iter().find_map(|s| self.change_at(tree, s, &mut r))
        };
        match diff {
            Some(diff) => {
                let files = ponder_swebench::directives::diff_paths(&diff);
                self.record("patch", &mut r, &PatchCandidate { diff, files })
            }
            None => {
                let mut record = StageRecord::new("patch");
                record.failure = Some("the simulated policy found no change to make here".into());
                record
            }
        }
    }

    fn prm(&self, code: &[CodeSpan], seed: u64) -> RewardScore {
        let gold = self.gold.get().cloned().unwrap_or_default();
        self.score(self.config.prm_auc, covers(code, &gold), seed, 4)
    }

    fn orm(&self, tree: &Path, diff: &str, seed: u64) -> RewardScore {
        let right = normalized_change(tree, diff) == self.gold_normalized(tree);
        self.score(self.config.orm_auc, right, seed, 5)
    }

    fn reproduction(&self, tree: &Path, seed: u64) -> Option<String> {
        let mut r = self.rng(seed, 6);
        if r.random_bool(self.config.reproduction) {
            self.right_script(tree)
        } else {
            // Reproduces everywhere: its verdict says nothing about a patch.
            Some(
                "# ponder-sim reproduction script (SIMULATED policy): a wrong one.\n\
                 print(\"Issue reproduced\")\n"
                    .to_owned(),
            )
        }
    }

    fn script_verdict(&self, output: &str) -> Option<bool> {
        let start = output.find(REPRO_BEGIN)? + REPRO_BEGIN.len();
        let end = output[start..]
            .find(REPRO_END)
            .map_or(output.len(), |e| start + e);
        let statuses = self.format?.parse(&output[start..end]);
        let passed = |t: &String| {
            statuses
                .get(t.as_str())
                .and_then(|s| serde_json::to_value(s).ok())
                .and_then(|v| v.as_str().map(|s| s == "PASSED" || s == "XFAIL"))
                .unwrap_or(false)
        };
        Some(
            !self.instance.fail_to_pass.is_empty() && self.instance.fail_to_pass.iter().all(passed),
        )
    }
}

/// A Python string literal for `s`.
fn py_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A unified diff with git's headers.
fn unified(path: &str, before: &str, after: &str) -> String {
    let diff = similar::TextDiff::from_lines(before, after);
    format!(
        "diff --git a/{path} b/{path}\n{}",
        diff.unified_diff()
            .context_radius(3)
            .header(&format!("a/{path}"), &format!("b/{path}"))
    )
}

/// Whether `diff` applies to `tree` and leaves its Python files parsing.
fn valid_patch(tree: &Path, diff: &str) -> bool {
    match applied_files(tree, diff) {
        Some(files) => files.iter().all(|(path, content)| {
            content
                .as_deref()
                .is_none_or(|c| ponder_workflow::edit::syntax_errors(path, c).is_empty())
        }),
        None => false,
    }
}

/// Condition mutations: each pattern and what it becomes.
const MUTATIONS: [(&str, &str); 12] = [
    (" is not ", " is "),
    (" not in ", " in "),
    (" == ", " != "),
    (" != ", " == "),
    (" <= ", " < "),
    (" >= ", " > "),
    (" < ", " <= "),
    (" > ", " >= "),
    (" and ", " or "),
    (" or ", " and "),
    ("if not ", "if "),
    (" is ", " is not "),
];

/// Every single-condition mutation of `line` (the first occurrence of each pattern).
fn mutations_of(line: &str) -> Vec<String> {
    MUTATIONS
        .iter()
        .filter(|(from, _)| line.contains(from))
        .map(|(from, to)| line.replacen(from, to, 1))
        .collect()
}

/// One of `line`'s mutations, drawn.
fn mutation_of(line: &str, rng: &mut ChaCha8Rng) -> Option<String> {
    let all = mutations_of(line);
    (!all.is_empty()).then(|| all[rng.random_range(0..all.len())].clone())
}

fn is_condition_line(line: &str) -> bool {
    let t = line.trim_start();
    ["if ", "elif ", "while ", "return ", "assert "]
        .iter()
        .any(|k| t.starts_with(k))
        || t.contains(" if ")
}

/// The gold diff with one condition on an added line mutated.
fn mutate_condition(gold: &str, rng: &mut ChaCha8Rng) -> Option<String> {
    let lines: Vec<&str> = gold.split_inclusive('\n').collect();
    let at: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            let l = lines[i];
            l.starts_with('+') && !l.starts_with("+++") && !mutations_of(&l[1..]).is_empty()
        })
        .collect();
    if at.is_empty() {
        return None;
    }
    let i = at[rng.random_range(0..at.len())];
    let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    out[i] = format!("+{}", mutation_of(&lines[i][1..], rng)?);
    Some(out.concat())
}

/// The gold diff with one of its hunks left out (None with a single hunk).
fn drop_hunk(gold: &str, rng: &mut ChaCha8Rng) -> Option<String> {
    let lines: Vec<&str> = gold.split_inclusive('\n').collect();
    let hunks: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("@@"))
        .collect();
    if hunks.len() < 2 {
        return None;
    }
    let drop = hunks[rng.random_range(0..hunks.len())];
    let end = (drop + 1..lines.len())
        .find(|&i| lines[i].starts_with("@@") || lines[i].starts_with("diff --git"))
        .unwrap_or(lines.len());
    let mut out: Vec<&str> = Vec::new();
    out.extend_from_slice(&lines[..drop]);
    out.extend_from_slice(&lines[end..]);
    // A file left with no hunk loses its headers too.
    let text = out.concat();
    let mut kept = String::new();
    for chunk in split_files(&text) {
        if chunk.contains("\n@@") {
            kept.push_str(&chunk);
        }
    }
    (!kept.is_empty()).then_some(kept)
}

/// A multi-file diff split into its files (each starting at its `diff --git` line).
fn split_files(diff: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in diff.split_inclusive('\n') {
        if line.starts_with("diff --git") || out.is_empty() {
            out.push(String::new());
        }
        out.last_mut().expect("pushed").push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gold_lines_are_the_old_lines_changed() {
        let d = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -3,4 +3,5 @@\n a\n b\n-c\n+C\n+D\n d\n";
        assert_eq!(gold_lines(d), vec![("m.py".to_owned(), vec![5, 6, 6])]);
    }

    #[test]
    fn a_rollout_succeeds_with_the_product_of_its_stages() {
        let c = SimConfig {
            understand: 0.5,
            localize: 0.8,
            localize_recover: 0.2,
            patch: 0.5,
            ..SimConfig::default()
        };
        assert!((c.p_rollout() - (0.5 * 0.8 + 0.5 * 0.2) * 0.5).abs() < 1e-12);
    }

    #[test]
    fn scores_separate_right_from_wrong_with_the_auc_asked() {
        let policy_auc = |auc: f64| {
            let c = SimConfig {
                prm_auc: auc,
                ..SimConfig::default()
            };
            let p = SimPolicy {
                config: c,
                instance: serde_json::from_value(serde_json::json!({
                    "instance_id": "x__y-1", "repo": "x/y", "base_commit": "0",
                    "patch": "", "test_patch": "", "problem_statement": "p",
                    "version": "1", "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]",
                    "created_at": "2020-01-01"}))
                .unwrap(),
                test_command: String::new(),
                exports: Vec::new(),
                format: None,
                difficulty: Difficulty::default(),
                gold: OnceLock::new(),
                gold_normalized: OnceLock::new(),
                salt: 7,
            };
            let right: Vec<f64> = (0..400).map(|s| p.score(auc, true, s, 4).p_yes).collect();
            let wrong: Vec<f64> = (0..400)
                .map(|s| p.score(auc, false, s + 10_000, 4).p_yes)
                .collect();
            let mut wins = 0.0;
            for a in &right {
                for b in &wrong {
                    wins += if a > b { 1.0 } else { 0.0 };
                }
            }
            wins / (right.len() * wrong.len()) as f64
        };
        for auc in [0.6, 0.75, 0.9] {
            let measured = policy_auc(auc);
            assert!(
                (measured - auc).abs() < 0.04,
                "asked {auc}, measured {measured}"
            );
        }
    }

    const MODULE: &str = "def f(x, y):\n    if x > 0:\n        return x\n    return y\n\n\ndef g(items):\n    total = 0\n    for i in items:\n        total += i\n    return total\n\n\ndef h(a):\n    while a < 10:\n        a = a * 2\n    return a\n";
    const GOLD: &str = "diff --git a/pkg/m.py b/pkg/m.py\n--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1,4 +1,4 @@\n def f(x, y):\n-    if x > 0:\n+    if x is not None and x >= 0:\n         return x\n     return y\n";

    fn policy(config: SimConfig) -> (tempfile::TempDir, CodeIndex, SimPolicy) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/m.py"), MODULE).unwrap();
        let (index, _) = CodeIndex::open(dir.path(), Default::default()).unwrap();
        let inst: Instance = serde_json::from_value(serde_json::json!({
            "instance_id": "o__p-1", "repo": "o/p", "base_commit": "0", "patch": GOLD,
            "test_patch": "", "problem_statement": "f rejects zero", "version": "1",
            "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]", "created_at": "2020-01-01"}))
        .unwrap();
        let p = SimPolicy::new(config, inst, "pytest".into(), Vec::new());
        (dir, index, p)
    }

    fn output<T: serde::de::DeserializeOwned>(r: &StageRecord) -> T {
        serde_json::from_value(r.output.clone()).unwrap()
    }

    #[test]
    fn right_stages_give_the_gold_patch_and_wrong_ones_valid_wrong_patches() {
        let sure = SimConfig {
            understand: 1.0,
            localize: 1.0,
            patch: 1.0,
            ..SimConfig::default()
        };
        let (dir, index, p) = policy(sure.clone());
        let u: Understanding = output(&p.understand(&index, 1));
        assert_eq!(u.code[0].qualname.as_deref(), Some("f"));
        let l: Localization = output(&p.localize(&index, &u, 2));
        let patch: PatchCandidate = output(&p.patch(dir.path(), &l.code, 3));
        assert_eq!(patch.diff, GOLD);
        assert!(p.orm(dir.path(), &patch.diff, 4).method == "simulated");

        // A right place with a wrong fix: many draws, all apply and parse, none is the gold.
        let (dir, index, p) = policy(SimConfig {
            patch: 0.0,
            ..sure.clone()
        });
        let u: Understanding = output(&p.understand(&index, 1));
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let c: PatchCandidate = output(&p.patch(dir.path(), &u.code, seed));
            assert_ne!(c.diff, GOLD);
            assert!(valid_patch(dir.path(), &c.diff), "{}", c.diff);
            kinds.insert(c.diff);
        }
        assert!(kinds.len() >= 2, "wrong patches vary: {kinds:?}");

        // A wrong understanding names other code, and a patch there is wrong but valid.
        let (dir, index, p) = policy(SimConfig {
            understand: 0.0,
            localize_recover: 0.0,
            ..sure
        });
        for seed in 0..10 {
            let u: Understanding = output(&p.understand(&index, seed));
            assert!(!u.code.is_empty());
            assert!(
                u.code.iter().all(|c| c.qualname.as_deref() != Some("f")),
                "{u:?}"
            );
            let l: Localization = output(&p.localize(&index, &u, seed));
            let c: PatchCandidate = output(&p.patch(dir.path(), &l.code, seed));
            assert!(valid_patch(dir.path(), &c.diff), "{}", c.diff);
            assert!(!c.diff.contains("def f"), "{}", c.diff);
        }
    }

    #[test]
    fn mutations_flip_one_condition_and_hunks_can_be_dropped() {
        let gold = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return x\n+    return x if x is not None else 0\n@@ -10,2 +10,2 @@\n def g(y):\n-    return y\n+    return y or 1\n";
        let mut r = rng(1, 1);
        let m = mutate_condition(gold, &mut r).unwrap();
        assert_ne!(m, gold);
        assert_eq!(m.lines().count(), gold.lines().count());
        let d = drop_hunk(gold, &mut r).unwrap();
        assert_eq!(d.matches("\n@@").count(), 1);
        assert!(d.starts_with("diff --git a/m.py"));
    }
}
