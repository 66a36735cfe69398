//! The decisions of external test-time scaling (system.md section 2): how samples are drawn,
//! which candidates survive a stage, how reward models are asked, and which patch is chosen.
//! The search tree that records all of it is here too; `ponder-solve` drives the search and
//! does the IO.
//!
//! Budget semantics: the budget B is the number of rollouts. A strategy that samples whole
//! rollouts (best-of-n, vote, endpoint-verify) makes B of them. Dev-Search samples B stage-1
//! candidates, keeps the `beam` best by the process reward model, splits B among the survivors
//! for stage-2 candidates, keeps the `beam` best of those, and splits B among them again for
//! patches: at most B candidates at every stage. The first sample of every stage uses the low
//! temperature, the others the high one; every sample has its own seed, derived from its path
//! of sample indices, so a rerun asks the model exactly the same things.

use crate::model::{ModelError, Sampling, StageModel};
use crate::trajectory::StageRecord;
use crate::verify::{Regression, Verification};
use ponder_llm::{ChatRequest, Message, Usage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped when the search tree's format changes incompatibly.
pub const SEARCH_SCHEMA_VERSION: u32 = 1;

/// How the budget is spent and the final patch chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Sample and prune at each stage with the process reward model, verify every patch by
    /// execution, choose by execution, then the outcome reward model, then agreement.
    DevSearch,
    /// B full rollouts, one of their patches picked at random (seeded).
    BestOfN,
    /// B full rollouts, the patch most of them agree on (after normalization).
    Vote,
    /// B full rollouts, only the final patches verified, chosen as Dev-Search chooses.
    EndpointVerify,
    /// One rollout.
    Single,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::DevSearch,
        Strategy::BestOfN,
        Strategy::Vote,
        Strategy::EndpointVerify,
        Strategy::Single,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::DevSearch => "dev-search",
            Strategy::BestOfN => "best-of-n",
            Strategy::Vote => "vote",
            Strategy::EndpointVerify => "endpoint-verify",
            Strategy::Single => "single",
        }
    }

    /// Whether the strategy runs the patches it chooses from.
    pub fn verifies(self) -> bool {
        matches!(self, Strategy::DevSearch | Strategy::EndpointVerify)
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Strategy::ALL.iter().map(|k| k.name()).collect();
                format!("unknown strategy {s:?}; one of: {}", names.join(", "))
            })
    }
}

/// The signals that choose and prune; each can be switched off, and each candidate's record
/// shows what each one said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Signals {
    /// Prune stage 1 and 2 candidates by the process reward model (off: keep the first ones).
    pub prm: bool,
    /// Rank patches by regression failures, then by the reproduction script.
    pub execution: bool,
    /// Rank patches by the outcome reward model.
    pub orm: bool,
    /// Break ties by how many patches agree after normalization.
    pub agreement: bool,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            prm: true,
            execution: true,
            orm: true,
            agreement: true,
        }
    }
}

/// A search's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    pub strategy: Strategy,
    /// Rollouts (see the module documentation).
    pub budget: usize,
    /// Candidates kept at each pruned stage (Dev-Search).
    pub beam: usize,
    /// Temperature of each stage's first sample.
    pub first_temperature: f32,
    /// Temperature of the other samples.
    pub temperature: f32,
    pub signals: Signals,
    /// Base of the samples' seeds (and of best-of-n's random pick).
    pub seed: u64,
    /// Dev-Search: write no more patches once one passes both checks and `beam` patches agree
    /// with it (reported in the tree as an early stop).
    pub early_stop: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            strategy: Strategy::Single,
            budget: 1,
            beam: 2,
            first_temperature: 0.3,
            temperature: 0.8,
            signals: Signals::default(),
            seed: 0,
            early_stop: false,
        }
    }
}

impl SearchConfig {
    /// Refuses settings that cannot work, saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.budget == 0 {
            return Err("the budget must be at least 1 rollout".into());
        }
        if self.beam == 0 {
            return Err("the beam must keep at least 1 candidate".into());
        }
        if self.strategy == Strategy::Single && self.budget != 1 {
            return Err(format!(
                "the single strategy makes one rollout; a budget of {} needs another strategy \
                 (dev-search, best-of-n, vote, endpoint-verify)",
                self.budget
            ));
        }
        Ok(())
    }

    /// Rollouts of the whole-rollout strategies; stage-1 samples of Dev-Search.
    pub fn rollouts(&self) -> usize {
        match self.strategy {
            Strategy::Single => 1,
            _ => self.budget,
        }
    }

    /// Children sampled from survivor `rank` (0-based) of `survivors`: the budget split among
    /// them, the first `budget % survivors` getting one more, so a stage never has more than
    /// `budget` candidates.
    pub fn children_of(&self, rank: usize, survivors: usize) -> usize {
        let k = survivors.max(1);
        self.budget / k + usize::from(rank < self.budget % k)
    }

    /// The sampling of a sample: temperature by `draw` (0: the low one), and a seed that
    /// depends only on the settings' seed, the stage and `path`, the sample indices from stage 1
    /// down to this sample. The same search thus sends the same seeds on every run, whatever
    /// order its samples finish in.
    pub fn sampling_for(
        &self,
        base: Sampling,
        stage: u64,
        path: &[usize],
        draw: usize,
    ) -> Sampling {
        let mut s = base;
        s.temperature = if draw == 0 {
            self.first_temperature
        } else {
            self.temperature
        };
        let mut h = splitmix64(self.seed ^ stage.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for &i in path {
            h = splitmix64(h ^ (i as u64).wrapping_add(1));
        }
        h = splitmix64(h ^ (draw as u64).wrapping_add(0x5151));
        // Seeds stay within i64, which every server accepts.
        s.seed = Some(h >> 1);
        s
    }
}

/// A reward model's verdict on one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RewardScore {
    /// Probability of "yes", 0 to 1.
    pub p_yes: f64,
    /// `logprobs` or `sampling`.
    pub method: String,
    pub samples: u32,
    pub usage: Usage,
}

/// One candidate of one stage, with where it came from and what was said about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchNode {
    pub id: usize,
    /// The candidate this one was sampled from (None for stage 1).
    pub parent: Option<usize>,
    /// `understand`, `localize` or `patch`.
    pub stage: String,
    /// Index among its parent's samples.
    pub sample: usize,
    pub temperature: f32,
    pub seed: Option<u64>,
    /// The stage's run: turns, output (the candidate), failure.
    pub record: StageRecord,
    /// Process reward (stages 1 and 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prm: Option<RewardScore>,
    /// Whether pruning kept it (None: not pruned at this stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<bool>,
    /// Patches: the normalized change's hash (equal hashes make the same change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalized: Option<String>,
    /// Patches: the checks, when run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Patches: outcome reward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orm: Option<RewardScore>,
}

impl SearchNode {
    pub fn ok(&self) -> bool {
        self.record.failure.is_none()
    }
}

/// What each signal said about one patch, and where it ended in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ranked {
    pub node: usize,
    pub rank: usize,
    /// Regression tests that broke (None: not run).
    pub regressions: Option<usize>,
    /// Whether the reproduction script says resolved (None: no script or not run).
    pub reproduction: Option<bool>,
    pub orm: Option<f64>,
    /// Patches making the same normalized change, this one included.
    pub agreement: usize,
}

/// The final choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Choice {
    pub node: usize,
    /// The rule that chose, in words.
    pub rule: String,
    /// Every patch candidate, best first.
    pub ranking: Vec<Ranked>,
}

/// A whole search: settings, every candidate, the shared checks and the choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchTree {
    pub schema_version: u32,
    pub ponder_version: String,
    pub repo: String,
    pub base_commit: Option<String>,
    pub issue: String,
    pub model: String,
    /// The PRM's and the ORM's model names; `None` for the policy model as judge.
    #[serde(default)]
    pub reward_models: Vec<Option<String>>,
    pub config: SearchConfig,
    pub nodes: Vec<SearchNode>,
    /// The reproduction script's stage, shared by every patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reproduction: Option<StageRecord>,
    /// The regression tests and which of them pass on the original code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<Regression>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<Choice>,
    /// Why patch writing stopped before the budget, when the early stop fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<String>,
    /// Why there is no patch, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub usage: Usage,
    pub seconds: f64,
}

impl SearchTree {
    pub fn new(repo: &str, issue: &str, model: &str, config: SearchConfig) -> SearchTree {
        SearchTree {
            schema_version: SEARCH_SCHEMA_VERSION,
            ponder_version: env!("CARGO_PKG_VERSION").to_owned(),
            repo: repo.to_owned(),
            base_commit: None,
            issue: issue.to_owned(),
            model: model.to_owned(),
            reward_models: vec![None, None],
            config,
            nodes: Vec::new(),
            reproduction: None,
            regression: None,
            choice: None,
            early_stop: None,
            failure: None,
            usage: Usage::default(),
            seconds: 0.0,
        }
    }

    /// The node sampled as `sample` of `stage` from `parent`, if it exists (for resuming).
    pub fn find(&self, stage: &str, parent: Option<usize>, sample: usize) -> Option<&SearchNode> {
        self.nodes
            .iter()
            .find(|n| n.stage == stage && n.parent == parent && n.sample == sample)
    }

    /// Adds a node and returns its id.
    pub fn add(&mut self, mut node: SearchNode) -> usize {
        node.id = self.nodes.len();
        self.usage.add(&node.record.usage());
        let id = node.id;
        self.nodes.push(node);
        id
    }

    /// Puts a new run of node `id` in its place (a failed node made again); its tokens count
    /// on top of the failed run's, which were spent too.
    pub fn replace(&mut self, id: usize, mut node: SearchNode) -> usize {
        node.id = id;
        self.usage.add(&node.record.usage());
        self.nodes[id] = node;
        id
    }

    pub fn node_mut(&mut self, id: usize) -> &mut SearchNode {
        &mut self.nodes[id]
    }

    /// Tokens spent by reward models, on top of the stages' own.
    pub fn reward_usage(&self) -> Usage {
        let mut u = Usage::default();
        for n in &self.nodes {
            for s in [&n.prm, &n.orm].into_iter().flatten() {
                u.add(&s.usage);
            }
        }
        u
    }

    /// Every token of the search: stages, reproduction and reward models.
    pub fn total_usage(&self) -> Usage {
        let mut u = self.usage;
        u.add(&self.reward_usage());
        if let Some(r) = &self.reproduction {
            u.add(&r.usage());
        }
        u
    }
}

/// The JSON Schema of the search tree, derived from the types.
pub fn search_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SearchTree)).expect("a schema serializes")
}

/// The ids of the `k` best-scored candidates, best first; unscored candidates come after
/// scored ones, and ties keep the candidates' order.
pub fn keep_best(scored: &[(usize, Option<f64>)], k: usize) -> Vec<usize> {
    let mut order: Vec<(usize, &(usize, Option<f64>))> = scored.iter().enumerate().collect();
    order.sort_by(|(ia, (_, a)), (ib, (_, b))| {
        let a = a.unwrap_or(f64::NEG_INFINITY);
        let b = b.unwrap_or(f64::NEG_INFINITY);
        b.partial_cmp(&a)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(ia.cmp(ib))
    });
    order.into_iter().take(k).map(|(_, (id, _))| *id).collect()
}

/// What is known about one patch candidate when choosing.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub node: usize,
    pub regressions: Option<usize>,
    pub reproduction: Option<bool>,
    pub orm: Option<f64>,
    /// The normalized change (candidates with equal keys agree).
    pub normalized: String,
}

impl Evidence {
    /// What `node` (a verified patch candidate with id `id`) says for the final choice. A check
    /// that failed before any test ran counts as no regression evidence.
    pub fn of(id: usize, node: &SearchNode) -> Evidence {
        let v = node.verification.as_ref();
        Evidence {
            node: id,
            regressions: v
                .filter(|v| v.failure.is_none() || v.tests_run.is_some())
                .map(|v| v.regressions.len()),
            reproduction: v.and_then(|v| v.resolved_by_script),
            orm: node.orm.as_ref().map(|s| s.p_yes),
            normalized: node.normalized.clone().unwrap_or_default(),
        }
    }
}

/// Chooses the final patch among `candidates` (in the order they were made) by the strategy's
/// rule, with the switched-off signals left out. `None` when there is no candidate.
pub fn choose(
    strategy: Strategy,
    signals: Signals,
    seed: u64,
    candidates: &[Evidence],
) -> Option<Choice> {
    if candidates.is_empty() {
        return None;
    }
    let mut agreement: BTreeMap<&str, usize> = BTreeMap::new();
    for c in candidates {
        *agreement.entry(c.normalized.as_str()).or_default() += 1;
    }
    let agrees = |c: &Evidence| agreement[c.normalized.as_str()];
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    let rule = match strategy {
        Strategy::Single => "the only rollout's patch".to_owned(),
        Strategy::BestOfN => {
            let pick = (splitmix64(seed) % candidates.len() as u64) as usize;
            order.retain(|&i| i != pick);
            order.insert(0, pick);
            format!(
                "picked at random (seed {seed}) among {} patches",
                candidates.len()
            )
        }
        Strategy::Vote => {
            order.sort_by_key(|&i| std::cmp::Reverse(agrees(&candidates[i])));
            "the normalized change most patches make (ties: the first made)".to_owned()
        }
        Strategy::DevSearch | Strategy::EndpointVerify => {
            order.sort_by(|&a, &b| {
                let (ca, cb) = (&candidates[a], &candidates[b]);
                let mut o = std::cmp::Ordering::Equal;
                if signals.execution {
                    // Fewer regressions first; a patch whose tests did not run goes last.
                    let reg = |c: &Evidence| c.regressions.unwrap_or(usize::MAX);
                    // Resolved by the script, then no verdict, then not resolved.
                    let rep = |c: &Evidence| match c.reproduction {
                        Some(true) => 0,
                        None => 1,
                        Some(false) => 2,
                    };
                    o = o.then(reg(ca).cmp(&reg(cb))).then(rep(ca).cmp(&rep(cb)));
                }
                if signals.orm {
                    let s = |c: &Evidence| c.orm.unwrap_or(-1.0);
                    o = o.then(
                        s(cb)
                            .partial_cmp(&s(ca))
                            .unwrap_or(std::cmp::Ordering::Equal),
                    );
                }
                if signals.agreement {
                    o = o.then(agrees(cb).cmp(&agrees(ca)));
                }
                o.then(a.cmp(&b))
            });
            let mut parts = Vec::new();
            if signals.execution {
                parts.push("fewest regression failures, then the reproduction script resolved");
            }
            if signals.orm {
                parts.push("highest outcome reward");
            }
            if signals.agreement {
                parts.push("most patches agreeing");
            }
            parts.push("first made");
            parts.join(", then ")
        }
    };
    let ranking = order
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            let c = &candidates[i];
            Ranked {
                node: c.node,
                rank,
                regressions: c.regressions,
                reproduction: c.reproduction,
                orm: c.orm,
                agreement: agrees(c),
            }
        })
        .collect();
    Some(Choice {
        node: candidates[order[0]].node,
        rule,
        ranking,
    })
}

/// A fixed, well-mixed function of the seed (SplitMix64's finalizer).
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Asks a reward model a yes/no question (a rendered `prm` or `orm` prompt) and reads the
/// probability of "yes": from the first token's logprobs where the server gives them, else from
/// a few samples.
pub async fn judge(model: &StageModel, prompt: String) -> Result<RewardScore, ModelError> {
    let mut request = ChatRequest::new(vec![Message::user(prompt)]);
    request.seed = model.sampling.seed;
    let score = model
        .client
        .score_yes(&request, 4, &model.budget)
        .await
        .map_err(ModelError::Llm)?;
    Ok(RewardScore {
        p_yes: score.p_yes,
        method: match score.method {
            ponder_llm::ScoreMethod::Logprobs => "logprobs",
            ponder_llm::ScoreMethod::Sampling => "sampling",
        }
        .to_owned(),
        samples: score.samples,
        usage: score.usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(
        node: usize,
        reg: Option<usize>,
        rep: Option<bool>,
        orm: Option<f64>,
        norm: &str,
    ) -> Evidence {
        Evidence {
            node,
            regressions: reg,
            reproduction: rep,
            orm,
            normalized: norm.into(),
        }
    }

    #[test]
    fn execution_beats_the_reward_model_which_beats_agreement() {
        let all = Signals::default();
        // A plausible patch that breaks a regression test loses to a correct one even with a
        // higher outcome reward and more agreement.
        let c = [
            ev(0, Some(1), Some(true), Some(0.9), "a"),
            ev(1, Some(1), Some(true), Some(0.9), "a"),
            ev(2, Some(0), Some(true), Some(0.4), "b"),
        ];
        let choice = choose(Strategy::DevSearch, all, 0, &c).unwrap();
        assert_eq!(choice.node, 2);
        assert_eq!(choice.ranking[0].regressions, Some(0));
        assert_eq!(choice.ranking[1].agreement, 2);
        // Equal execution: the outcome reward decides; equal reward: agreement.
        let c = [
            ev(0, Some(0), Some(true), Some(0.5), "a"),
            ev(1, Some(0), Some(true), Some(0.7), "b"),
        ];
        assert_eq!(choose(Strategy::DevSearch, all, 0, &c).unwrap().node, 1);
        let c = [
            ev(0, Some(0), None, Some(0.5), "a"),
            ev(1, Some(0), None, Some(0.5), "b"),
            ev(2, Some(0), None, Some(0.5), "b"),
        ];
        assert_eq!(
            choose(Strategy::EndpointVerify, all, 0, &c).unwrap().node,
            1
        );
        // Switched off, a signal no longer counts.
        let no_exec = Signals {
            execution: false,
            ..all
        };
        let c = [
            ev(0, Some(0), Some(true), Some(0.2), "a"),
            ev(1, Some(3), Some(false), Some(0.8), "b"),
        ];
        assert_eq!(choose(Strategy::DevSearch, all, 0, &c).unwrap().node, 0);
        assert_eq!(choose(Strategy::DevSearch, no_exec, 0, &c).unwrap().node, 1);
        // A reproduction that still fails ranks below no verdict at all.
        let c = [
            ev(0, Some(0), Some(false), None, "a"),
            ev(1, Some(0), None, None, "b"),
        ];
        assert_eq!(choose(Strategy::DevSearch, all, 0, &c).unwrap().node, 1);
    }

    #[test]
    fn vote_takes_the_majority_and_best_of_n_is_seeded() {
        let c = [
            ev(0, None, None, None, "a"),
            ev(1, None, None, None, "b"),
            ev(2, None, None, None, "b"),
        ];
        let vote = choose(Strategy::Vote, Signals::default(), 0, &c).unwrap();
        assert_eq!((vote.node, vote.ranking[0].agreement), (1, 2));
        let picks: Vec<usize> = (0..32)
            .map(|seed| {
                choose(Strategy::BestOfN, Signals::default(), seed, &c)
                    .unwrap()
                    .node
            })
            .collect();
        assert_eq!(
            picks,
            (0..32)
                .map(
                    |seed| choose(Strategy::BestOfN, Signals::default(), seed, &c)
                        .unwrap()
                        .node
                )
                .collect::<Vec<_>>(),
            "the same seed picks the same"
        );
        for n in 0..3 {
            assert!(
                picks.contains(&n),
                "every candidate can be picked: {picks:?}"
            );
        }
        assert!(choose(Strategy::Vote, Signals::default(), 0, &[]).is_none());
    }

    #[test]
    fn pruning_keeps_the_best_scored_in_order() {
        let scored = [
            (10, Some(0.2)),
            (11, None),
            (12, Some(0.9)),
            (13, Some(0.2)),
        ];
        assert_eq!(keep_best(&scored, 2), vec![12, 10]);
        assert_eq!(keep_best(&scored, 9), vec![12, 10, 13, 11]);
    }

    #[test]
    fn samples_get_their_own_seeds_and_the_first_is_cooler() {
        let cfg = SearchConfig {
            strategy: Strategy::DevSearch,
            budget: 8,
            beam: 3,
            seed: 7,
            ..SearchConfig::default()
        };
        // Budget 8 over 3 survivors: 3, 3 and 2 children, never more than the budget.
        let children: Vec<usize> = (0..3).map(|r| cfg.children_of(r, 3)).collect();
        assert_eq!(children, vec![3, 3, 2]);
        assert_eq!(cfg.children_of(0, 1), 8);
        let base = Sampling::default();
        let a = cfg.sampling_for(base, 1, &[0], 0);
        let b = cfg.sampling_for(base, 1, &[1], 1);
        let c = cfg.sampling_for(base, 2, &[0, 0], 0);
        assert_eq!((a.temperature, b.temperature), (0.3, 0.8));
        assert_ne!(a.seed, b.seed);
        assert_ne!(a.seed, c.seed);
        assert_eq!(a, cfg.sampling_for(base, 1, &[0], 0));
        // Paths that a linear formula could confuse stay apart.
        let mut seeds = std::collections::BTreeSet::new();
        for stage in 1..=3u64 {
            for i in 0..20 {
                for j in 0..20 {
                    seeds.insert(cfg.sampling_for(base, stage, &[i, j], j).seed);
                }
            }
        }
        assert_eq!(seeds.len(), 3 * 400);
        assert!(
            SearchConfig {
                budget: 4,
                ..SearchConfig::default()
            }
            .validate()
            .unwrap_err()
            .contains("another strategy")
        );
        assert_eq!("vote".parse::<Strategy>(), Ok(Strategy::Vote));
        assert!(
            "best"
                .parse::<Strategy>()
                .unwrap_err()
                .contains("dev-search")
        );
    }
}
