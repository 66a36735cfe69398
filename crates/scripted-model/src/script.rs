//! What the scripted server answers: replies (choices, usage, timing, faults) and the script that
//! hands one reply to each chat request. Plain data, no IO.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

/// One content token with its log-probability and the alternatives reported next to it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedLogprob {
    pub token: String,
    pub logprob: f64,
    /// Emitted as `top_logprobs`, cut to the request's `top_logprobs` count.
    pub top: Vec<(String, f64)>,
}

/// `(token, logprob, [(alternative, logprob), ..])`: one content token for `with_logprobs`.
pub type LogprobSpec<'a> = (&'a str, f64, Vec<(&'a str, f64)>);

fn to_logprobs<'a>(tokens: impl IntoIterator<Item = LogprobSpec<'a>>) -> Vec<ScriptedLogprob> {
    tokens
        .into_iter()
        .map(|(token, logprob, top)| ScriptedLogprob {
            token: token.to_string(),
            logprob,
            top: top
                .into_iter()
                .map(|(alt, lp)| (alt.to_string(), lp))
                .collect(),
        })
        .collect()
}

/// A function call the scripted model makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedToolCall {
    /// `None`: the server makes one up (`call_<request>_<choice>_<call>`).
    pub id: Option<String>,
    pub name: String,
    /// Sent as written, so broken JSON can be scripted too.
    pub arguments: String,
}

/// One sample of a reply.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScriptedChoice {
    /// The answer text, sent as `content` exactly as given (inline `<think>` tags included).
    pub content: String,
    /// Sent in the reasoning field (`ServerOptions::reasoning_field_name`).
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ScriptedToolCall>,
    /// `None`: `"tool_calls"` if the choice calls tools, otherwise `"stop"`.
    pub finish_reason: Option<String>,
    /// Per content token. `None` while logprobs are asked for: the server invents them (see
    /// the crate docs).
    pub logprobs: Option<Vec<ScriptedLogprob>>,
}

impl ScriptedChoice {
    pub fn text(content: impl Into<String>) -> Self {
        ScriptedChoice {
            content: content.into(),
            ..ScriptedChoice::default()
        }
    }

    pub fn reasoning(reasoning: impl Into<String>, content: impl Into<String>) -> Self {
        ScriptedChoice {
            content: content.into(),
            reasoning: Some(reasoning.into()),
            ..ScriptedChoice::default()
        }
    }

    pub fn with_finish_reason(mut self, reason: impl Into<String>) -> Self {
        self.finish_reason = Some(reason.into());
        self
    }

    pub fn with_tool_call(mut self, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        self.tool_calls.push(ScriptedToolCall {
            id: None,
            name: name.into(),
            arguments: arguments.into(),
        });
        self
    }

    /// `(token, logprob, [(alternative, logprob), ..])` per content token.
    pub fn with_logprobs<'a>(mut self, tokens: impl IntoIterator<Item = LogprobSpec<'a>>) -> Self {
        self.logprobs = Some(to_logprobs(tokens));
        self
    }

    /// The finish reason the server reports for this choice.
    pub fn effective_finish_reason(&self) -> String {
        match &self.finish_reason {
            Some(reason) => reason.clone(),
            None if !self.tool_calls.is_empty() => "tool_calls".to_string(),
            None => "stop".to_string(),
        }
    }
}

/// Token counts to report instead of the estimate (see the crate docs for the estimate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageSpec {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Emitted as `prompt_tokens_details.cached_tokens` when set.
    pub cached_tokens: Option<u64>,
    /// Emitted as `completion_tokens_details.reasoning_tokens` when set.
    pub reasoning_tokens: Option<u64>,
}

/// A way for the server to misbehave instead of (or part way through) answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and this body (sent as `application/json`, whatever it is).
    /// [`Fault::error`] builds an OpenAI-style error body.
    Status(u16, String),
    /// 429 with `Retry-After` (whole seconds, rounded up) and `retry-after-ms` headers and an
    /// OpenAI-style error body.
    RateLimited { retry_after: Duration },
    /// Read the request, then close the TCP connection without sending a single byte.
    DropConnection,
    /// Send the status line, headers and the first `after_chunks` chunks, then go silent while
    /// keeping the connection open, until the client gives up or the server shuts down.
    StallStream { after_chunks: usize },
    /// Send the first `after_chunks` chunks, then end the HTTP body properly, without
    /// `data: [DONE]` (or, for a non-streaming request, with the JSON cut short).
    TruncatedStream { after_chunks: usize },
    /// Send the first `after_chunks` chunks, then close the connection mid-body, so the HTTP
    /// body itself is incomplete (the chunked encoding never ends).
    CutStream { after_chunks: usize },
    /// 200 with a body that is not JSON; when streaming, a `data:` line with broken JSON after
    /// the role chunk, then `data: [DONE]`.
    MalformedJson,
}

impl Fault {
    /// A [`Fault::Status`] whose body is an OpenAI-style error object.
    pub fn error(status: u16, message: &str) -> Fault {
        Fault::Status(status, error_body(status, message).to_string())
    }
}

/// `{"error": {"message", "type", "param", "code"}}` as OpenAI (and recent vLLM) send it.
pub(crate) fn error_body(status: u16, message: &str) -> Value {
    let kind = match status {
        400 | 404 | 422 => "invalid_request_error",
        401 => "authentication_error",
        429 => "rate_limit_error",
        _ => "server_error",
    };
    json!({
        "error": {"message": message, "type": kind, "param": null, "code": status}
    })
}

/// Everything the server does with one chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The samples. When the request asks for `n` choices and the server honours `n`, choice
    /// `i` is `choices[i % choices.len()]` (an exact copy when repeated); when the request asks
    /// for fewer, only the first `n` are sent. No choices at all: one empty `"stop"` choice.
    pub choices: Vec<ScriptedChoice>,
    /// `None`: estimated from the characters (see the crate docs).
    pub usage: Option<UsageSpec>,
    pub fault: Option<Fault>,
    /// Wait this long after reading the request, before anything is sent (faults included).
    pub delay: Duration,
    /// Wait this long before each streamed chunk after the first (streaming and faulty bodies).
    pub chunk_delay: Duration,
}

impl Reply {
    pub fn choices(choices: Vec<ScriptedChoice>) -> Self {
        Reply {
            choices,
            usage: None,
            fault: None,
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
        }
    }

    /// A plain answer.
    pub fn text(content: impl Into<String>) -> Self {
        Reply::choices(vec![ScriptedChoice::text(content)])
    }

    /// One choice per text, in order: distinct samples for `n > 1`.
    pub fn texts<S: Into<String>>(contents: impl IntoIterator<Item = S>) -> Self {
        Reply::choices(contents.into_iter().map(ScriptedChoice::text).collect())
    }

    /// Reasoning in the reasoning field, then the answer in `content`.
    pub fn reasoning(reasoning: impl Into<String>, content: impl Into<String>) -> Self {
        Reply::choices(vec![ScriptedChoice::reasoning(reasoning, content)])
    }

    /// Reasoning inline in `content` (`"<think>..</think>answer"`), as servers without a
    /// reasoning parser send it. The text is sent exactly as given.
    pub fn inline_think(content: impl Into<String>) -> Self {
        Reply::text(content)
    }

    /// A reply that only misbehaves.
    pub fn fault(fault: Fault) -> Self {
        Reply::text("").with_fault(fault)
    }

    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn with_chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Sets the finish reason of every choice.
    pub fn with_finish_reason(mut self, reason: &str) -> Self {
        self.choices = self
            .choices
            .into_iter()
            .map(|c| c.with_finish_reason(reason))
            .collect();
        self
    }

    /// Adds the call to every choice.
    pub fn with_tool_call(mut self, name: &str, arguments: &str) -> Self {
        self.choices = self
            .choices
            .into_iter()
            .map(|c| c.with_tool_call(name, arguments))
            .collect();
        self
    }

    /// Gives every choice these content-token logprobs,
    /// `(token, logprob, [(alternative, logprob), ..])` per token.
    pub fn with_logprobs<'a>(mut self, tokens: impl IntoIterator<Item = LogprobSpec<'a>>) -> Self {
        let tokens = to_logprobs(tokens);
        for choice in &mut self.choices {
            choice.logprobs = Some(tokens.clone());
        }
        self
    }

    /// Reports these counts; `cached` goes to `prompt_tokens_details.cached_tokens`.
    pub fn with_usage(mut self, prompt: u64, completion: u64, cached: u64) -> Self {
        let reasoning_tokens = self.usage.and_then(|u| u.reasoning_tokens);
        self.usage = Some(UsageSpec {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: Some(cached),
            reasoning_tokens,
        });
        self
    }

    /// Also reports `completion_tokens_details.reasoning_tokens` (call after `with_usage`, or
    /// the other counts are 0).
    pub fn with_reasoning_tokens(mut self, reasoning: u64) -> Self {
        let mut usage = self.usage.unwrap_or_default();
        usage.reasoning_tokens = Some(reasoning);
        self.usage = Some(usage);
        self
    }
}

type ReplyFn = dyn Fn(&Value, usize) -> Reply + Send + Sync;

/// Hands out one [`Reply`] per chat request: from a queue, in order, or from a function of the
/// request body and its number (0-based, in arrival order).
pub struct Script {
    kind: ScriptKind,
}

enum ScriptKind {
    Queue {
        replies: Mutex<VecDeque<Reply>>,
        fallback: Reply,
    },
    Function(Box<ReplyFn>),
}

/// What an exhausted queue answers unless [`Script::with_fallback`] says otherwise.
pub const DEFAULT_REPLY_TEXT: &str = "scripted default reply";

impl Script {
    /// Replies in order; once they run out, the fallback (`Reply::text(DEFAULT_REPLY_TEXT)`).
    pub fn queue(replies: impl IntoIterator<Item = Reply>) -> Self {
        Script {
            kind: ScriptKind::Queue {
                replies: Mutex::new(replies.into_iter().collect()),
                fallback: Reply::text(DEFAULT_REPLY_TEXT),
            },
        }
    }

    /// The same reply to every request.
    pub fn always(reply: Reply) -> Self {
        Script::queue([]).with_fallback(reply)
    }

    /// `f(request body, request number)` decides each reply. It runs on the server's threads,
    /// possibly for several requests at once.
    pub fn from_fn(f: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static) -> Self {
        Script {
            kind: ScriptKind::Function(Box::new(f)),
        }
    }

    /// What a queue answers once it is empty. No effect on a [`Script::from_fn`] script.
    pub fn with_fallback(mut self, reply: Reply) -> Self {
        if let ScriptKind::Queue { fallback, .. } = &mut self.kind {
            *fallback = reply;
        }
        self
    }

    /// Replies still queued (0 for a function script).
    pub fn remaining(&self) -> usize {
        match &self.kind {
            ScriptKind::Queue { replies, .. } => lock(replies).len(),
            ScriptKind::Function(_) => 0,
        }
    }

    /// The next queued reply (`None` for a function script). The server calls this while
    /// holding its request log, so the `k`-th queued reply goes to request number `k`.
    pub(crate) fn next_queued(&self) -> Option<Reply> {
        match &self.kind {
            ScriptKind::Queue { replies, fallback } => Some(
                lock(replies)
                    .pop_front()
                    .unwrap_or_else(|| fallback.clone()),
            ),
            ScriptKind::Function(_) => None,
        }
    }

    /// The function's reply (`None` for a queue script).
    pub(crate) fn call(&self, request: &Value, number: usize) -> Option<Reply> {
        match &self.kind {
            ScriptKind::Queue { .. } => None,
            ScriptKind::Function(f) => Some(f(request, number)),
        }
    }
}

impl Default for Script {
    /// An empty queue: every request gets the default reply.
    fn default() -> Self {
        Script::queue([])
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ScriptKind::Queue { replies, fallback } => f
                .debug_struct("Script::queue")
                .field("remaining", &lock(replies).len())
                .field("fallback", fallback)
                .finish(),
            ScriptKind::Function(_) => f.write_str("Script::from_fn(..)"),
        }
    }
}

/// A panicking script closure must not turn every later request into a poisoned-lock panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
