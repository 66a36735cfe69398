//! The OpenAI chat-completions wire format: request bodies, replies, and stream chunks gathered
//! into whole samples. Read leniently (missing fields default, unknown finish reasons and extra
//! fields are kept or ignored) because every server differs a little; written strictly.

use crate::reasoning;
use crate::types::{
    ChatRequest, Completion, FinishReason, Message, TokenLogprob, ToolCallRequest, Usage,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The JSON body for `POST {base}/chat/completions`, as a value (for inspection and tests).
pub fn request_body(model: &str, request: &ChatRequest, n: u32, stream: bool) -> Value {
    serde_json::from_slice(&request_bytes(model, request, n, stream, None)).unwrap_or(Value::Null)
}

/// The serialized body, written straight from the request (no intermediate JSON tree: at
/// hundreds of calls in flight the client's own CPU per call matters). `seed` replaces the
/// request's seed when given (emulated samples each get their own).
pub fn request_bytes(
    model: &str,
    request: &ChatRequest,
    n: u32,
    stream: bool,
    seed: Option<u64>,
) -> Vec<u8> {
    let body = BodyWire {
        model,
        messages: Messages(&request.messages),
        temperature: request.temperature,
        top_p: request.top_p,
        max_tokens: request.max_tokens,
        stop: &request.stop,
        seed: seed.or(request.seed),
        n: (n != 1).then_some(n),
        logprobs: request.logprobs.then_some(true),
        top_logprobs: request.top_logprobs.filter(|_| request.logprobs),
        tools: request.tools.as_ref(),
        tool_choice: request.tool_choice.as_ref(),
        stream: stream.then_some(true),
        // Usage arrives in a last chunk only when asked for.
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        extra: &request.extra,
    };
    // Sized for the texts it carries, so that it is not grown and copied as it is written.
    let texts: usize = request
        .messages
        .iter()
        .map(|m| {
            m.content.len()
                + 48
                + m.tool_calls
                    .iter()
                    .map(|c| c.id.len() + c.name.len() + c.arguments.len() + 80)
                    .sum::<usize>()
        })
        .sum();
    let mut out = Vec::with_capacity(texts + 256);
    match serde_json::to_writer(&mut out, &body) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// The messages, serialized one by one as they are read (no list of views is built first).
struct Messages<'a>(&'a [Message]);

impl Serialize for Messages<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(MessageOut::from))
    }
}

#[derive(Serialize)]
struct BodyWire<'a> {
    model: &'a str,
    messages: Messages<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    /// Server-specific fields, sent as they are.
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: crate::types::Role,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
}

impl<'a> From<&'a Message> for MessageOut<'a> {
    fn from(m: &'a Message) -> Self {
        MessageOut {
            role: m.role,
            content: &m.content,
            tool_call_id: m.tool_call_id.as_deref(),
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| ToolCallOut {
                    id: &c.id,
                    kind: "function",
                    function: FunctionOut {
                        name: &c.name,
                        arguments: &c.arguments,
                    },
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

// Typed views of replies and chunks: the fast path. Any field that does not fit (a server with
// its own ideas) sends the body to the lenient `Value` reader below instead. Texts are borrowed
// from the body where they hold no escapes, so reading a chunk allocates little: a streamed reply
// is many small chunks, and their parsing is most of the client's own CPU per call.

/// A text of the reply, borrowed unless it had to be unescaped.
type Text<'a> = Cow<'a, str>;

#[derive(Deserialize)]
struct ReplyIn<'a> {
    #[serde(default, borrow)]
    model: Option<Text<'a>>,
    #[serde(borrow)]
    choices: Vec<ChoiceIn<'a>>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct ChunkIn<'a> {
    #[serde(default, borrow)]
    model: Option<Text<'a>>,
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceIn<'a>>>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceIn<'a> {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default, borrow, alias = "delta")]
    message: Option<MessageIn<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Text<'a>>,
    #[serde(default, borrow)]
    logprobs: Option<LogprobsIn<'a>>,
}

#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(default, borrow)]
    content: Option<Text<'a>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Text<'a>>,
    #[serde(default, borrow)]
    reasoning: Option<Text<'a>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolCallIn<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallIn<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    id: Option<Text<'a>>,
    #[serde(default, borrow)]
    function: Option<FunctionIn<'a>>,
}

#[derive(Deserialize)]
struct FunctionIn<'a> {
    #[serde(default, borrow)]
    name: Option<Text<'a>>,
    #[serde(default, borrow)]
    arguments: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct LogprobsIn<'a> {
    #[serde(default, borrow)]
    content: Option<Vec<TokenIn<'a>>>,
}

#[derive(Deserialize)]
struct TokenIn<'a> {
    #[serde(borrow)]
    token: Text<'a>,
    logprob: f64,
    #[serde(default, borrow)]
    top_logprobs: Option<Vec<TopIn<'a>>>,
}

#[derive(Deserialize)]
struct TopIn<'a> {
    #[serde(borrow)]
    token: Text<'a>,
    logprob: f64,
}

#[derive(Deserialize)]
struct UsageIn {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<CachedIn>,
    #[serde(default)]
    completion_tokens_details: Option<ReasoningIn>,
}

#[derive(Deserialize)]
struct CachedIn {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ReasoningIn {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl UsageIn {
    fn into_usage(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.unwrap_or(0),
            completion_tokens: self.completion_tokens.unwrap_or(0),
            cached_prompt_tokens: self
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning_tokens: self
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

impl Accumulated {
    /// Adds one typed choice (a whole message or a stream delta).
    fn add_typed(&mut self, choice: ChoiceIn) {
        if let Some(m) = choice.message {
            if let Some(c) = m.content {
                append(&mut self.content, c);
            }
            if let Some(r) = m.reasoning_content.or(m.reasoning) {
                append(&mut self.reasoning, r);
            }
            for (k, call) in m.tool_calls.into_iter().flatten().enumerate() {
                let key = call.index.unwrap_or(k as u64);
                let entry = self
                    .tool_calls
                    .entry(key)
                    .or_insert_with(|| ToolCallRequest {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                if let Some(id) = call.id.filter(|i| !i.is_empty()) {
                    entry.id = id.into_owned();
                }
                if let Some(f) = call.function {
                    append(&mut entry.name, f.name.unwrap_or_default());
                    append(&mut entry.arguments, f.arguments.unwrap_or_default());
                }
            }
        }
        if let Some(tokens) = choice.logprobs.and_then(|l| l.content) {
            let list = self.logprobs.get_or_insert_with(Vec::new);
            list.extend(tokens.into_iter().map(|t| {
                TokenLogprob {
                    token: t.token.into_owned(),
                    logprob: t.logprob,
                    top: t
                        .top_logprobs
                        .into_iter()
                        .flatten()
                        .map(|a| (a.token.into_owned(), a.logprob))
                        .collect(),
                }
            }));
        }
        if let Some(f) = choice.finish_reason {
            self.finish_reason = Some(f.into_owned());
        }
    }
}

/// Adds a piece of text (a whole message, or one delta of a stream) to what was gathered.
fn append(gathered: &mut String, piece: Text) {
    if gathered.is_empty() {
        *gathered = piece.into_owned();
    } else {
        gathered.push_str(&piece);
    }
}

/// A reply that could not be read as the format says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// A whole (non-streamed) reply: model name, samples, usage.
pub fn parse_reply(body: &[u8]) -> Result<(String, Vec<Completion>, Option<Usage>), Malformed> {
    // The body is checked to be UTF-8 once, rather than string by string as reading bytes would;
    // one that is not goes to the lenient reader, which says why it cannot be read.
    let typed = std::str::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::from_str::<ReplyIn>(text).ok());
    if let Some(reply) = typed {
        let mut out = Vec::with_capacity(reply.choices.len());
        for (i, c) in reply.choices.into_iter().enumerate() {
            let index = c.index.unwrap_or(i as u32);
            let mut acc = Accumulated::default();
            acc.add_typed(c);
            out.push(acc.finish(index));
        }
        return Ok((
            reply.model.unwrap_or_default().into_owned(),
            out,
            reply.usage.map(UsageIn::into_usage),
        ));
    }
    parse_reply_lenient(body)
}

fn parse_reply_lenient(body: &[u8]) -> Result<(String, Vec<Completion>, Option<Usage>), Malformed> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Malformed(format!("the reply is not JSON ({e}): {}", preview(body))))?;
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| Malformed(format!("the reply has no \"choices\": {}", preview(body))))?;
    let mut out = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64) as u32;
        let msg = c.get("message").cloned().unwrap_or(Value::Null);
        let mut acc = Accumulated {
            content: text(&msg, "content"),
            reasoning: reasoning_field(&msg).unwrap_or_default(),
            ..Accumulated::default()
        };
        acc.finish_reason = c
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
            for (k, call) in calls.iter().enumerate() {
                acc.tool_calls.insert(k as u64, tool_call(call));
            }
        }
        acc.add_logprobs(c.get("logprobs"));
        out.push(acc.finish(index));
    }
    Ok((model_name(&v), out, v.get("usage").and_then(usage)))
}

fn model_name(v: &Value) -> String {
    v.get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// vLLM's `reasoning_content`, or `reasoning` (newer vLLM, OpenRouter, Ollama).
fn reasoning_field(v: &Value) -> Option<String> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::to_string)
}

fn tool_call(call: &Value) -> ToolCallRequest {
    ToolCallRequest {
        id: text(call, "id"),
        name: call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        arguments: call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

/// Usage as the server reported it; `None` when absent or empty.
pub fn usage(v: &Value) -> Option<Usage> {
    if !v.is_object() {
        return None;
    }
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: n("/prompt_tokens"),
        completion_tokens: n("/completion_tokens"),
        cached_prompt_tokens: n("/prompt_tokens_details/cached_tokens"),
        reasoning_tokens: n("/completion_tokens_details/reasoning_tokens"),
    })
}

fn preview(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    if body.len() > 200 {
        format!("{s}...")
    } else {
        s
    }
}

/// One sample being gathered from stream chunks (or read whole).
#[derive(Debug, Default)]
struct Accumulated {
    content: String,
    reasoning: String,
    finish_reason: Option<String>,
    tool_calls: BTreeMap<u64, ToolCallRequest>,
    logprobs: Option<Vec<TokenLogprob>>,
}

impl Accumulated {
    fn add_logprobs(&mut self, lp: Option<&Value>) {
        let Some(content) = lp.and_then(|l| l.get("content")).and_then(Value::as_array) else {
            return;
        };
        let list = self.logprobs.get_or_insert_with(Vec::new);
        for t in content {
            list.push(TokenLogprob {
                token: text(t, "token"),
                logprob: t
                    .get("logprob")
                    .and_then(Value::as_f64)
                    .unwrap_or(f64::NEG_INFINITY),
                top: t
                    .get("top_logprobs")
                    .and_then(Value::as_array)
                    .map(|alts| {
                        alts.iter()
                            .map(|a| {
                                (
                                    text(a, "token"),
                                    a.get("logprob")
                                        .and_then(Value::as_f64)
                                        .unwrap_or(f64::NEG_INFINITY),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }

    fn finish(self, index: u32) -> Completion {
        let finish = self.finish_reason.unwrap_or_default();
        let split = reasoning::split(&self.content, Some(&self.reasoning), finish == "length");
        Completion {
            index,
            answer: split.answer,
            reasoning: split.reasoning,
            finish_reason: FinishReason(finish),
            cut_in_reasoning: split.cut_in_reasoning,
            tool_calls: self.tool_calls.into_values().collect(),
            logprobs: self.logprobs,
        }
    }
}

/// Gathers the chunks of one streamed reply.
#[derive(Debug, Default)]
pub struct StreamGatherer {
    model: String,
    samples: BTreeMap<u32, Accumulated>,
    usage: Option<Usage>,
    done: bool,
}

impl StreamGatherer {
    /// Takes the data of one server-sent event. `[DONE]` ends the stream.
    pub fn push(&mut self, data: &str) -> Result<(), Malformed> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        if let Ok(chunk) = serde_json::from_str::<ChunkIn>(data) {
            if let Some(err) = chunk.error {
                return Err(Malformed(format!(
                    "the server reported an error mid-stream: {err}"
                )));
            }
            if self.model.is_empty()
                && let Some(m) = chunk.model
            {
                self.model = m.into_owned();
            }
            if let Some(u) = chunk.usage {
                self.usage = Some(u.into_usage());
            }
            for (i, c) in chunk.choices.into_iter().flatten().enumerate() {
                let index = c.index.unwrap_or(i as u32);
                self.samples.entry(index).or_default().add_typed(c);
            }
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            Malformed(format!(
                "a stream chunk is not JSON ({e}): {}",
                preview(data.as_bytes())
            ))
        })?;
        if let Some(err) = v.get("error") {
            return Err(Malformed(format!(
                "the server reported an error mid-stream: {err}"
            )));
        }
        if self.model.is_empty() {
            self.model = model_name(&v);
        }
        if let Some(u) = v.get("usage").and_then(usage) {
            self.usage = Some(u);
        }
        for (i, c) in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(i as u64) as u32;
            let acc = self.samples.entry(index).or_default();
            let delta = c.get("delta").cloned().unwrap_or(Value::Null);
            acc.content.push_str(
                delta
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
            if let Some(r) = reasoning_field(&delta) {
                acc.reasoning.push_str(&r);
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let k = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let entry = acc.tool_calls.entry(k).or_insert_with(|| ToolCallRequest {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                let part = tool_call(call);
                if !part.id.is_empty() {
                    entry.id = part.id;
                }
                entry.name.push_str(&part.name);
                entry.arguments.push_str(&part.arguments);
            }
            acc.add_logprobs(c.get("logprobs"));
            if let Some(f) = c.get("finish_reason").and_then(Value::as_str) {
                acc.finish_reason = Some(f.to_string());
            }
        }
        Ok(())
    }

    /// Whether `[DONE]` arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether every sample seen so far has its finish reason (some servers omit `[DONE]`).
    pub fn all_finished(&self) -> bool {
        !self.samples.is_empty() && self.samples.values().all(|a| a.finish_reason.is_some())
    }

    pub fn finish(self) -> (String, Vec<Completion>, Option<Usage>) {
        let samples = self.samples.into_iter().map(|(i, a)| a.finish(i)).collect();
        (self.model, samples, self.usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_bodies_carry_only_what_was_asked() {
        let mut r = ChatRequest::new(vec![Message::system("s"), Message::user("u")]);
        r.temperature = Some(0.5);
        r.extra.insert("top_k".into(), json!(20));
        let b = request_body("m", &r, 1, false);
        assert_eq!(
            b,
            json!({"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "temperature": 0.5, "top_k": 20})
        );
        r.logprobs = true;
        r.top_logprobs = Some(5);
        let b = request_body("m", &r, 4, true);
        assert_eq!(
            (
                b["n"].clone(),
                b["top_logprobs"].clone(),
                b["stream_options"]["include_usage"].clone()
            ),
            (json!(4), json!(5), json!(true))
        );
    }

    #[test]
    fn odd_replies_fall_back_to_the_lenient_reader() {
        // `index` as a string does not fit the typed view; the lenient reader still reads it.
        let body = br#"{"model":"m","choices":[{"index":"0","message":{"content":"<think>t</think>x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
        let (model, samples, usage) = parse_reply(body).unwrap();
        assert_eq!(
            (
                model.as_str(),
                samples[0].answer.as_str(),
                samples[0].reasoning.as_deref()
            ),
            ("m", "x", Some("t"))
        );
        assert_eq!(usage.unwrap().total(), 5);
        let mut g = StreamGatherer::default();
        g.push(r#"{"choices":[{"index":0,"delta":{"content":"a","tool_calls":null},"logprobs":null,"finish_reason":null}],"usage":null}"#).unwrap();
        g.push(r#"{"choices":[{"index":"0","delta":{"content":"b"},"finish_reason":"stop"}]}"#)
            .unwrap();
        assert_eq!(g.finish().1[0].answer, "ab");
        assert!(parse_reply(b"<html>502 Bad Gateway</html>").is_err());
    }

    #[test]
    fn bodies_carry_tool_calls_and_seed_overrides() {
        let mut r = ChatRequest::new(vec![Message::assistant("")]);
        r.messages[0].tool_calls.push(ToolCallRequest {
            id: "c1".into(),
            name: "search_class".into(),
            arguments: "{}".into(),
        });
        r.messages.push(Message {
            role: crate::types::Role::Tool,
            content: "found".into(),
            tool_call_id: Some("c1".into()),
            tool_calls: vec![],
        });
        r.seed = Some(5);
        let v: Value = serde_json::from_slice(&request_bytes("m", &r, 1, false, Some(9))).unwrap();
        assert_eq!(v["seed"], 9);
        assert_eq!(
            v["messages"][0]["tool_calls"][0],
            json!({"id": "c1", "type": "function", "function": {"name": "search_class", "arguments": "{}"}})
        );
        assert_eq!(v["messages"][1]["tool_call_id"], "c1");
        assert!(v.get("stream").is_none());
    }

    #[test]
    fn streamed_chunks_gather_into_samples() {
        let mut g = StreamGatherer::default();
        for chunk in [
            r#"{"model":"m","choices":[{"index":0,"delta":{"role":"assistant"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think "}},{"index":1,"delta":{"content":"<think>b</think>"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"more","content":""}},{"index":1,"delta":{"content":"B"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"A","tool_calls":[{"index":0,"id":"c1","function":{"name":"search_class","arguments":"{\"class_"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"name\": \"X\"}"}}]},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":8}}}"#,
            "[DONE]",
        ] {
            g.push(chunk).unwrap();
        }
        assert!(g.is_done());
        let (model, samples, usage) = g.finish();
        assert_eq!(model, "m");
        assert_eq!(samples[0].reasoning.as_deref(), Some("think more"));
        assert_eq!(samples[0].answer, "A");
        assert_eq!(
            samples[0].tool_calls[0].arguments,
            "{\"class_name\": \"X\"}"
        );
        assert_eq!(samples[1].reasoning.as_deref(), Some("b"));
        assert_eq!(samples[1].answer, "B");
        assert_eq!(usage.unwrap().cached_prompt_tokens, 8);
        assert!(StreamGatherer::default().push("{not json").is_err());
    }
}
