//! What a bench run writes: the run's manifest (`bench.json`) and one cell per (instance,
//! strategy, budget) (`cells/<instance>/<strategy>-b<budget>.json`). The report reads only
//! these, so a run can be reported while it goes on, and any run directory reported later.

use serde::{Deserialize, Serialize};

/// Bumped when the run directory's format changes incompatibly.
pub const BENCH_FORMAT: u32 = 1;

/// The run's settings, written when it starts (`bench.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub ponder_version: String,
    pub dataset: String,
    /// `sim`, or the policy model's name.
    pub policy: String,
    /// True when the candidates came from the simulated policy, not a model.
    pub simulated: bool,
    /// The simulated policy's settings (for the theory check), when simulated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimSummary>,
    pub strategies: Vec<String>,
    pub budgets: Vec<usize>,
    pub instances: Vec<String>,
    /// `--resolve-before` as given (`harness-era`, `latest` or a date): the environments the
    /// candidates were checked and graded in. Absent in runs made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_before: Option<String>,
    /// When the run started, RFC 3339.
    pub started: String,
}

/// What the theory check needs of the simulated policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimSummary {
    /// Probability that one whole rollout ends in the gold patch (the product of the stages'
    /// probabilities of being right).
    pub p_rollout: f64,
    /// The settings as given (`sim.toml`), for the report to show.
    pub config: serde_json::Value,
}

/// How hard an instance is, read off its gold patch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Difficulty {
    pub files: usize,
    pub hunks: usize,
    /// Lines added plus lines removed.
    pub lines: usize,
    /// `easy` (one hunk, at most 5 changed lines), `medium` (one file), `hard` (the rest).
    pub bucket: String,
}

/// Tokens, as the model server reported them (simulated ones when the policy is simulated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    pub prompt: u64,
    /// Completion tokens, reasoning included.
    pub completion: u64,
    /// The part of `completion` spent reasoning.
    pub reasoning: u64,
}

impl Tokens {
    /// Answer tokens: completion minus reasoning.
    pub fn answer(&self) -> u64 {
        self.completion.saturating_sub(self.reasoning)
    }
    pub fn total(&self) -> u64 {
        self.prompt + self.completion
    }
}

/// One (instance, strategy, budget): what the strategy chose and how it graded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub instance_id: String,
    pub repo: String,
    pub strategy: String,
    pub budget: usize,
    pub difficulty: Difficulty,
    /// The chosen patch's grade by `ponder eval`: Some(true) resolved; Some(false) not
    /// resolved or no patch; None when it could not be graded (see `error`).
    pub resolved: Option<bool>,
    pub has_patch: bool,
    /// The grade of every patch candidate the strategy had at this budget, in the order they
    /// were made (None: that one could not be graded).
    pub candidates: Vec<Option<bool>>,
    /// Oracle best-of-k: whether any candidate at this budget resolves.
    pub oracle: Option<bool>,
    /// Tokens this budget cost (a smaller budget read off a larger one's samples counts only
    /// its own samples).
    pub tokens: Tokens,
    /// Model calls.
    pub calls: u64,
    /// Wall time this cell took to compute (for budgets read off a larger one: that one's
    /// share, see the docs).
    pub seconds: f64,
    /// What went wrong, when something did; the cell still counts as not resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
