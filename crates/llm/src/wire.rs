//! The OpenAI chat-completions wire format: request bodies, replies, and stream chunks gathered
//! into whole samples. Read leniently (missing fields default, unknown finish reasons and extra
//! fields are kept or ignored) because every server differs a little; written strictly.

use crate::reasoning;
use crate::types::{
    ChatRequest, Completion, FinishReason, Message, TokenLogprob, ToolCallRequest, Usage,
};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The JSON body for `POST {base}/chat/completions`.
pub fn request_body(model: &str, request: &ChatRequest, n: u32, stream: bool) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert(
        "messages".into(),
        Value::Array(request.messages.iter().map(message).collect()),
    );
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(k.into(), v);
        }
    };
    put("temperature", request.temperature.map(|t| json!(t)));
    put("top_p", request.top_p.map(|t| json!(t)));
    put("max_tokens", request.max_tokens.map(|t| json!(t)));
    put(
        "stop",
        (!request.stop.is_empty()).then(|| json!(request.stop)),
    );
    put("seed", request.seed.map(|s| json!(s)));
    put("n", (n != 1).then(|| json!(n)));
    put("logprobs", request.logprobs.then_some(json!(true)));
    put(
        "top_logprobs",
        request
            .top_logprobs
            .filter(|_| request.logprobs)
            .map(|k| json!(k)),
    );
    put("tools", request.tools.clone());
    put("tool_choice", request.tool_choice.clone());
    if stream {
        put("stream", Some(json!(true)));
        // Usage arrives in a last chunk only when asked for.
        put("stream_options", Some(json!({"include_usage": true})));
    }
    for (k, v) in &request.extra {
        body.insert(k.clone(), v.clone());
    }
    Value::Object(body)
}

fn message(m: &Message) -> Value {
    let mut v = json!({"role": m.role, "content": m.content});
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = Value::Array(
            m.tool_calls
                .iter()
                .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                .collect(),
        );
    }
    v
}

/// A reply that could not be read as the format says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

/// A whole (non-streamed) reply: model name, samples, usage.
pub fn parse_reply(body: &[u8]) -> Result<(String, Vec<Completion>, Option<Usage>), Malformed> {
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
