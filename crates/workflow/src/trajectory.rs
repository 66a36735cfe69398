//! What a solve run records: every model turn (messages sent, answer, reasoning in full, tool
//! calls and their results, usage, time), every recovery from a bad reply, and each stage's
//! outcome. Serialized as JSON with a schema version. The types are the schema's definition:
//! [`json_schema`] derives the JSON Schema from them (committed as docs/trajectory.schema.json,
//! described for readers in docs/trajectory.md).

use ponder_llm::Usage;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bumped whenever a field changes meaning or is removed (adding optional fields is compatible).
pub const TRAJECTORY_SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of a trajectory file, derived from the types.
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Trajectory)).expect("a schema serializes")
}

/// One model turn: what was asked and what came back.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct Turn {
    /// The messages sent, in order (earlier turns' reasoning is never among them).
    pub request: Vec<SentMessage>,
    /// The visible answer.
    pub answer: String,
    /// The model's reasoning, in full; stored here, never sent back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Tool calls the model made, native or read from the text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRecord>,
    /// Why this answer could not be used, when it could not; the next turn is the retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<String>,
    pub finish_reason: String,
    pub usage: Usage,
    pub seconds: f64,
}

/// A message as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct SentMessage {
    pub role: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// One tool call and what it returned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct ToolCallRecord {
    pub name: String,
    pub arguments: Value,
    /// The text the model got back (a result, or what was wrong with the call).
    pub result: String,
    /// Whether the call was valid and found something.
    pub found: bool,
    /// Whether the call was valid at all.
    pub valid: bool,
}

/// One stage's run for one candidate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct StageRecord {
    /// `understand`, `localize`, `patch`, `reproduce`, `verify`.
    pub stage: String,
    pub turns: Vec<Turn>,
    /// The stage's output, as the stage's own type serializes it.
    pub output: Value,
    /// Set when the stage produced nothing usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub seconds: f64,
}

impl StageRecord {
    pub fn new(stage: &str) -> StageRecord {
        StageRecord {
            stage: stage.to_owned(),
            ..StageRecord::default()
        }
    }

    /// Tokens of all turns.
    pub fn usage(&self) -> Usage {
        let mut total = Usage::default();
        for t in &self.turns {
            total.add(&t.usage);
        }
        total
    }

    /// The recoveries of this stage, in order.
    pub fn recoveries(&self) -> impl Iterator<Item = &str> {
        self.turns.iter().filter_map(|t| t.recovery.as_deref())
    }
}

/// A whole solve run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct Trajectory {
    pub schema_version: u32,
    pub ponder_version: String,
    /// The repository (a name, or the path solved).
    pub repo: String,
    pub base_commit: Option<String>,
    pub issue: String,
    pub model: String,
    pub stages: Vec<StageRecord>,
    /// The final patch, empty when none was produced.
    pub patch: String,
    /// Why there is no patch, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub usage: Usage,
    pub seconds: f64,
}

impl Trajectory {
    pub fn new(repo: &str, issue: &str, model: &str) -> Trajectory {
        Trajectory {
            schema_version: TRAJECTORY_SCHEMA_VERSION,
            ponder_version: env!("CARGO_PKG_VERSION").to_owned(),
            repo: repo.to_owned(),
            base_commit: None,
            issue: issue.to_owned(),
            model: model.to_owned(),
            stages: Vec::new(),
            patch: String::new(),
            failure: None,
            usage: Usage::default(),
            seconds: 0.0,
        }
    }

    /// Adds a stage's record and its tokens.
    pub fn push(&mut self, record: StageRecord) {
        self.usage.add(&record.usage());
        self.stages.push(record);
    }
}
