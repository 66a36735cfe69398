//! The plain data of a chat call: what is asked, what comes back, what it cost. Shared by the
//! client, the cache, the budgets and every caller; no IO here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// A function call the model asked for (native function calling), as the wire carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallRequest {
    #[serde(default)]
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: JSON text, possibly broken.
    pub arguments: String,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// For `Role::Tool`: the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For `Role::Assistant`: the calls it made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRequest>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
            tool_call_id: None,
            tool_calls: Vec::new(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Message::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message::new(Role::Assistant, content)
    }
}

/// What to ask. The model name and endpoint come from the client's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Completion tokens per sample. Budgets reserve `max_tokens * n` before a call is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Samples wanted. Servers that ignore `n` are sent parallel requests instead.
    #[serde(default = "one")]
    pub n: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logprobs: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// OpenAI `tools` entries (function-calling schemas), passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Server-specific fields sent as they are (`top_k`, `min_p`, `chat_template_kwargs`, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

fn one() -> u32 {
    1
}

impl ChatRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest {
            messages,
            temperature: None,
            top_p: None,
            max_tokens: None,
            stop: Vec::new(),
            seed: None,
            n: 1,
            logprobs: false,
            top_logprobs: None,
            tools: None,
            tool_choice: None,
            extra: Map::new(),
        }
    }
}

/// Why generation stopped. Kept open: servers report more than OpenAI's list (vLLM's `abort`,
/// an empty string from some proxies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FinishReason(pub String);

impl FinishReason {
    /// The token limit cut the sample off.
    pub fn is_length(&self) -> bool {
        self.0 == "length"
    }
    pub fn is_stop(&self) -> bool {
        self.0 == "stop"
    }
}

/// One sampled token with its log-probability and the alternatives the server reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default)]
    pub top: Vec<(String, f64)>,
}

/// One sample of a reply, with its reasoning split from its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Position among the samples of the request (0-based), also across emulated `n`.
    pub index: u32,
    pub answer: String,
    /// From a `reasoning_content` (or `reasoning`) field, or from inline `<think>...</think>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    pub finish_reason: FinishReason,
    /// The sample ended (token limit, stream cut) while still reasoning: `answer` is empty and
    /// `reasoning` is incomplete.
    #[serde(default)]
    pub cut_in_reasoning: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallRequest>,
    /// Per content token, when requested and supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// Token counts as the server reported them. Also part of ponder-workflow's trajectory files,
/// hence the JSON Schema.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens served from the server's prefix cache (`prompt_tokens_details.cached_tokens`).
    #[serde(default)]
    pub cached_prompt_tokens: u64,
    /// Completion tokens spent reasoning, when the server says (`completion_tokens_details`).
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Adds another count; saturating, since the numbers come from servers.
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.cached_prompt_tokens = self
            .cached_prompt_tokens
            .saturating_add(other.cached_prompt_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
    }
}

/// The whole answer to a [`ChatRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model name the server reported.
    pub model: String,
    /// Exactly `n` samples, in index order.
    pub choices: Vec<Completion>,
    /// What the calls that produced the samples cost (cached samples cost nothing again).
    pub usage: Usage,
    /// How many samples came from the replay cache.
    pub cached_samples: u32,
    /// The server ignored `n` and the samples were requested separately.
    pub emulated_n: bool,
    /// Wall time of the call, milliseconds.
    pub elapsed_ms: f64,
}
