//! How a stage talks to the model: one conversation whose history holds only answers (earlier
//! turns' reasoning is kept in the trajectory, not sent back: system.md's history pruning, which
//! `Sampling::keep_reasoning` turns off), each
//! turn recorded as a [`Turn`]. A reply that cannot be used at all (reasoning never closed, an
//! empty answer) is recorded with the reason and asked again, a bounded number of times.

use crate::trajectory::{SentMessage, ToolCallRecord, Turn};
use ponder_llm::{ChatRequest, Completion, LlmClient, LlmError, Message, Role, TaskBudget};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// Sampling settings of the stages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    pub temperature: f32,
    pub max_tokens: u32,
    /// Send tool schemas through the server's function calling; otherwise tools are described
    /// in the prompt and calls are read from the text.
    pub native_tools: bool,
    /// Tries of a reply that is unusable as a whole (empty, or cut inside its reasoning).
    pub unusable_retries: usize,
    /// Send earlier turns' reasoning back (as a `<think>` block before the answer) instead of
    /// pruning it from the history, for models trained to see it.
    pub keep_reasoning: bool,
    /// Sent as the request's `seed`. The search gives each sample its own, so that samples of
    /// one prompt differ, and a rerun asks (and the replay cache answers) exactly the same.
    pub seed: Option<u64>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            max_tokens: 4096,
            native_tools: false,
            unusable_retries: 2,
            keep_reasoning: false,
            seed: None,
        }
    }
}

/// The model as the stages see it: a client, this task's budget and the sampling settings.
#[derive(Clone)]
pub struct StageModel {
    pub client: Arc<LlmClient>,
    pub budget: TaskBudget,
    pub sampling: Sampling,
}

/// Why a stage could not go on talking to the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("the model gave {tries} unusable replies in a row (last: {reason})")]
    Unusable { tries: usize, reason: String },
}

/// A conversation: the messages to send next, and the turns so far.
#[derive(Debug, Default)]
pub struct Conversation {
    messages: Vec<Message>,
    pub turns: Vec<Turn>,
}

/// What one usable reply holds.
#[derive(Debug, Clone)]
pub struct Reply {
    pub answer: String,
    pub tool_calls: Vec<ponder_llm::ToolCallRequest>,
}

impl Conversation {
    pub fn new(system: Option<String>, user: String) -> Conversation {
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(Message::system(s));
        }
        messages.push(Message::user(user));
        Conversation {
            messages,
            turns: Vec::new(),
        }
    }

    pub fn push_user(&mut self, text: impl Into<String>) {
        self.messages.push(Message::user(text));
    }

    /// Adds the result of a native tool call.
    pub fn push_tool_result(&mut self, id: &str, text: impl Into<String>) {
        let mut m = Message::new(Role::Tool, text);
        m.tool_call_id = Some(id.to_owned());
        self.messages.push(m);
    }

    /// Marks the last turn as unusable for `reason` (the caller then tells the model and asks
    /// again).
    pub fn reject_last(&mut self, reason: impl Into<String>) {
        if let Some(t) = self.turns.last_mut() {
            t.recovery = Some(reason.into());
        }
    }

    /// Records tool calls and their results on the last turn.
    pub fn record_calls(&mut self, calls: Vec<ToolCallRecord>) {
        if let Some(t) = self.turns.last_mut() {
            t.tool_calls.extend(calls);
        }
    }

    /// [`Conversation::ask`], with this call's turns moved into `record` whatever the outcome,
    /// so a stage's record keeps every turn, the failed ones too.
    pub async fn ask_recorded(
        &mut self,
        model: &StageModel,
        tools: Option<&Value>,
        record: &mut crate::trajectory::StageRecord,
    ) -> Result<Reply, ModelError> {
        let reply = self.ask(model, tools).await;
        record.turns.append(&mut self.turns);
        reply
    }

    /// Sends the conversation, records the turn, appends the answer to the history. Unusable
    /// replies are recorded, and asked again up to the sampling's bound.
    pub async fn ask(
        &mut self,
        model: &StageModel,
        tools: Option<&Value>,
    ) -> Result<Reply, ModelError> {
        let mut last_reason = String::new();
        for _ in 0..=model.sampling.unusable_retries {
            let mut request = ChatRequest::new(self.messages.clone());
            request.temperature = Some(model.sampling.temperature);
            request.max_tokens = Some(model.sampling.max_tokens);
            request.seed = model.sampling.seed;
            if model.sampling.native_tools {
                request.tools = tools.cloned();
            }
            let started = Instant::now();
            let response = model.client.chat(&request, &model.budget).await?;
            let completion = response.choices.into_iter().next().unwrap_or_else(empty);
            let mut turn = Turn {
                request: self.messages.iter().map(sent).collect(),
                answer: completion.answer.clone(),
                reasoning: completion.reasoning.clone(),
                tool_calls: Vec::new(),
                recovery: None,
                finish_reason: completion.finish_reason.0.clone(),
                usage: response.usage,
                seconds: started.elapsed().as_secs_f64(),
            };
            if let Some(reason) = unusable(&completion) {
                turn.recovery = Some(reason.clone());
                self.turns.push(turn);
                last_reason = reason;
                continue;
            }
            self.turns.push(turn);
            let sent = match (&completion.reasoning, model.sampling.keep_reasoning) {
                (Some(r), true) => format!("<think>{r}</think>\n{}", completion.answer),
                _ => completion.answer.clone(),
            };
            let mut message = Message::assistant(sent);
            message.tool_calls = completion.tool_calls.clone();
            self.messages.push(message);
            return Ok(Reply {
                answer: completion.answer,
                tool_calls: completion.tool_calls,
            });
        }
        Err(ModelError::Unusable {
            tries: model.sampling.unusable_retries + 1,
            reason: last_reason,
        })
    }
}

fn empty() -> Completion {
    Completion {
        index: 0,
        answer: String::new(),
        reasoning: None,
        finish_reason: ponder_llm::FinishReason("missing".into()),
        cut_in_reasoning: false,
        tool_calls: Vec::new(),
        logprobs: None,
    }
}

/// Why a reply cannot be used at all, if it cannot.
fn unusable(c: &Completion) -> Option<String> {
    if c.cut_in_reasoning {
        return Some(
            "the reply ended inside its reasoning (the think block was never closed)".to_owned(),
        );
    }
    if c.answer.trim().is_empty() && c.tool_calls.is_empty() {
        return Some("the reply had no answer".to_owned());
    }
    None
}

fn sent(m: &Message) -> SentMessage {
    SentMessage {
        role: match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
        .to_owned(),
        content: m.content.clone(),
        tool_call_id: m.tool_call_id.clone(),
    }
}
