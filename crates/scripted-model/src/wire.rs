//! Turns scripted choices into the OpenAI chat-completions wire format: the `chat.completion`
//! object, the `chat.completion.chunk` stream events (shaped like vLLM's), usage and logprobs.

use serde_json::{Map, Value, json};

use crate::script::{ScriptedChoice, ScriptedLogprob, UsageSpec};

/// Per-request facts every rendered object shares.
pub(crate) struct Frame<'a> {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub request_number: usize,
    pub reasoning_field: &'a str,
    pub chunk_chars: usize,
    /// `Some(top_logprobs)` when logprobs are asked for and supported.
    pub logprobs: Option<usize>,
}

/// The request's `n`, at least 1; junk counts as 1 (a real server would reject it, but the
/// double's job is to answer).
pub(crate) fn requested_n(request: &Value) -> usize {
    request
        .get("n")
        .and_then(Value::as_u64)
        .map_or(1, |n| n.clamp(1, 1024) as usize)
}

/// The `n` choices to send: cycled from the script, or a single empty one.
pub(crate) fn pick_choices(scripted: &[ScriptedChoice], n: usize) -> Vec<ScriptedChoice> {
    if scripted.is_empty() {
        return vec![ScriptedChoice::default(); n];
    }
    (0..n)
        .map(|i| scripted[i % scripted.len()].clone())
        .collect()
}

fn chars(s: &str) -> u64 {
    s.chars().count() as u64
}

fn message_chars(message: &Value) -> u64 {
    match message.get("content") {
        Some(Value::String(s)) => chars(s),
        // Content parts: count the text ones.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(chars)
            .sum(),
        _ => 0,
    }
}

/// The reported usage: the script's, or an estimate of 4 characters per token.
pub(crate) fn usage(request: &Value, choices: &[ScriptedChoice], spec: Option<UsageSpec>) -> Value {
    let spec = spec.unwrap_or_else(|| {
        let prompt_chars: u64 = request
            .get("messages")
            .and_then(Value::as_array)
            .map(|ms| ms.iter().map(message_chars).sum())
            .unwrap_or(0);
        let completion_tokens = choices
            .iter()
            .map(|c| {
                let text = chars(&c.content)
                    + c.reasoning.as_deref().map_or(0, chars)
                    + c.tool_calls
                        .iter()
                        .map(|t| chars(&t.arguments))
                        .sum::<u64>();
                (text / 4).max(1)
            })
            .sum();
        UsageSpec {
            prompt_tokens: (prompt_chars / 4).max(1),
            completion_tokens,
            cached_tokens: None,
            reasoning_tokens: None,
        }
    });
    let mut usage = json!({
        "prompt_tokens": spec.prompt_tokens,
        "completion_tokens": spec.completion_tokens,
        "total_tokens": spec.prompt_tokens + spec.completion_tokens,
    });
    if let Some(cached) = spec.cached_tokens {
        usage["prompt_tokens_details"] = json!({ "cached_tokens": cached });
    }
    if let Some(reasoning) = spec.reasoning_tokens {
        usage["completion_tokens_details"] = json!({ "reasoning_tokens": reasoning });
    }
    usage
}

/// Splits text into pieces of at most `size` characters (at character boundaries).
pub(crate) fn split_text(text: &str, size: usize) -> Vec<String> {
    let size = size.max(1);
    let mut pieces = Vec::new();
    let mut current = String::new();
    for (i, c) in text.chars().enumerate() {
        if i > 0 && i % size == 0 {
            pieces.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// The logprobs of a choice's content tokens: the script's, or made up when the script has
/// none: one token per streamed piece, logprob -0.25, alternatives `alt1`, `alt2`, .. with
/// logprobs -2, -3, ..
fn content_logprobs(choice: &ScriptedChoice, chunk_chars: usize) -> Vec<ScriptedLogprob> {
    if let Some(scripted) = &choice.logprobs {
        return scripted.clone();
    }
    split_text(&choice.content, chunk_chars)
        .into_iter()
        .map(|token| {
            let mut top = vec![(token.clone(), -0.25)];
            top.extend((1..20).map(|k| (format!("alt{k}"), -(k as f64) - 1.0)));
            ScriptedLogprob {
                token,
                logprob: -0.25,
                top,
            }
        })
        .collect()
}

fn logprob_entry(token: &str, logprob: f64) -> Map<String, Value> {
    let mut entry = Map::new();
    entry.insert("token".into(), json!(token));
    entry.insert("logprob".into(), json!(logprob));
    entry.insert("bytes".into(), json!(token.as_bytes()));
    entry
}

fn logprobs_json(tokens: &[ScriptedLogprob], top_n: usize) -> Value {
    let content: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let mut entry = logprob_entry(&t.token, t.logprob);
            let top: Vec<Value> = t
                .top
                .iter()
                .take(top_n)
                .map(|(alt, lp)| Value::Object(logprob_entry(alt, *lp)))
                .collect();
            entry.insert("top_logprobs".into(), Value::Array(top));
            Value::Object(entry)
        })
        .collect();
    json!({ "content": content })
}

fn tool_call_id(frame: &Frame<'_>, choice: usize, call: usize, id: &Option<String>) -> String {
    id.clone()
        .unwrap_or_else(|| format!("call_{}_{}_{}", frame.request_number, choice, call))
}

/// The non-streaming `chat.completion` object.
pub(crate) fn completion(frame: &Frame<'_>, choices: &[ScriptedChoice], usage: Value) -> Value {
    let choices: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut message = Map::new();
            message.insert("role".into(), json!("assistant"));
            // Real servers send `null` content for a pure tool call; clients must cope.
            let content = if c.content.is_empty() && !c.tool_calls.is_empty() {
                Value::Null
            } else {
                json!(c.content)
            };
            message.insert("content".into(), content);
            if let Some(reasoning) = &c.reasoning {
                message.insert(frame.reasoning_field.into(), json!(reasoning));
            }
            if !c.tool_calls.is_empty() {
                let calls: Vec<Value> = c
                    .tool_calls
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        json!({
                            "id": tool_call_id(frame, i, k, &t.id),
                            "type": "function",
                            "function": {"name": t.name, "arguments": t.arguments},
                        })
                    })
                    .collect();
                message.insert("tool_calls".into(), Value::Array(calls));
            }
            let logprobs = match frame.logprobs {
                Some(top_n) => logprobs_json(&content_logprobs(c, frame.chunk_chars), top_n),
                None => Value::Null,
            };
            json!({
                "index": i,
                "message": Value::Object(message),
                "logprobs": logprobs,
                "finish_reason": c.effective_finish_reason(),
            })
        })
        .collect();
    json!({
        "id": frame.id,
        "object": "chat.completion",
        "created": frame.created,
        "model": frame.model,
        "choices": choices,
        "usage": usage,
    })
}

/// One choice's part of a chunk, before it is wrapped.
struct Delta {
    delta: Value,
    logprobs: Value,
    finish_reason: Value,
}

impl Delta {
    fn new(delta: Value) -> Self {
        Delta {
            delta,
            logprobs: Value::Null,
            finish_reason: Value::Null,
        }
    }
}

/// Pairs each content piece with the logprob tokens it carries. When the scripted tokens spell
/// the content exactly, each token is its own piece (as a real server streams them); otherwise
/// the content is cut into `chunk_chars` pieces and the tokens are spread over them in order.
fn content_pieces(
    choice: &ScriptedChoice,
    chunk_chars: usize,
    with_logprobs: bool,
) -> Vec<(String, Vec<ScriptedLogprob>)> {
    if !with_logprobs {
        return split_text(&choice.content, chunk_chars)
            .into_iter()
            .map(|p| (p, Vec::new()))
            .collect();
    }
    let tokens = content_logprobs(choice, chunk_chars);
    let spelled: String = tokens.iter().map(|t| t.token.as_str()).collect();
    if spelled == choice.content && !tokens.is_empty() {
        return tokens
            .into_iter()
            .map(|t| (t.token.clone(), vec![t]))
            .collect();
    }
    let pieces = split_text(&choice.content, chunk_chars);
    if pieces.is_empty() {
        // Tokens but no text: carry them on one empty delta so none is lost.
        return if tokens.is_empty() {
            Vec::new()
        } else {
            vec![(String::new(), tokens)]
        };
    }
    let mut out: Vec<(String, Vec<ScriptedLogprob>)> =
        pieces.into_iter().map(|p| (p, Vec::new())).collect();
    let (n_pieces, n_tokens) = (out.len(), tokens.len());
    for (j, token) in tokens.into_iter().enumerate() {
        out[j * n_pieces / n_tokens].1.push(token);
    }
    out
}

fn choice_deltas(frame: &Frame<'_>, index: usize, choice: &ScriptedChoice) -> Vec<Delta> {
    let mut deltas = vec![Delta::new(json!({"role": "assistant", "content": ""}))];
    if let Some(reasoning) = &choice.reasoning {
        for piece in split_text(reasoning, frame.chunk_chars) {
            deltas.push(Delta::new(json!({ frame.reasoning_field: piece })));
        }
    }
    for (piece, tokens) in content_pieces(choice, frame.chunk_chars, frame.logprobs.is_some()) {
        let mut delta = Delta::new(json!({ "content": piece }));
        if let Some(top_n) = frame.logprobs {
            delta.logprobs = logprobs_json(&tokens, top_n);
        }
        deltas.push(delta);
    }
    for (k, call) in choice.tool_calls.iter().enumerate() {
        deltas.push(Delta::new(json!({
            "tool_calls": [{
                "index": k,
                "id": tool_call_id(frame, index, k, &call.id),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }]
        })));
        for piece in split_text(&call.arguments, frame.chunk_chars) {
            deltas.push(Delta::new(json!({
                "tool_calls": [{"index": k, "function": {"arguments": piece}}]
            })));
        }
    }
    // Like vLLM, the finish reason rides on the last delta that carries text.
    if deltas.len() == 1 {
        deltas.push(Delta::new(json!({ "content": "" })));
    }
    if let Some(last) = deltas.last_mut() {
        last.finish_reason = json!(choice.effective_finish_reason());
    }
    deltas
}

fn chunk(frame: &Frame<'_>, choices: Value, usage: Option<Value>) -> Value {
    let mut chunk = json!({
        "id": frame.id,
        "object": "chat.completion.chunk",
        "created": frame.created,
        "model": frame.model,
        "choices": choices,
    });
    if let Some(usage) = usage {
        chunk["usage"] = usage;
    }
    chunk
}

/// The JSON of every stream event before `[DONE]`, choices interleaved round-robin (one choice
/// per chunk), then the usage-only chunk when `usage` is given. `include_usage` also puts
/// `"usage": null` on every other chunk, as OpenAI does.
pub(crate) fn stream_chunks(
    frame: &Frame<'_>,
    choices: &[ScriptedChoice],
    usage: Option<Value>,
) -> Vec<String> {
    let per_choice: Vec<Vec<Delta>> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| choice_deltas(frame, i, c))
        .collect();
    let rounds = per_choice.iter().map(Vec::len).max().unwrap_or(0);
    let null_usage = usage.as_ref().map(|_| Value::Null);
    let mut out = Vec::new();
    for round in 0..rounds {
        for (index, deltas) in per_choice.iter().enumerate() {
            if let Some(d) = deltas.get(round) {
                let choice = json!([{
                    "index": index,
                    "delta": d.delta,
                    "logprobs": d.logprobs,
                    "finish_reason": d.finish_reason,
                }]);
                out.push(chunk(frame, choice, null_usage.clone()).to_string());
            }
        }
    }
    if let Some(usage) = usage {
        out.push(chunk(frame, json!([]), Some(usage)).to_string());
    }
    out
}

/// The role chunk and a chunk whose JSON never closes.
pub(crate) fn malformed_stream_chunks(frame: &Frame<'_>) -> Vec<String> {
    let role = json!([{
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "logprobs": null,
        "finish_reason": null,
    }]);
    vec![
        chunk(frame, role, None).to_string(),
        format!(
            r#"{{"id":"{}","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"unterminated"#,
            frame.id
        ),
    ]
}

/// A `chat.completion` body that stops mid-object.
pub(crate) fn malformed_completion(frame: &Frame<'_>) -> String {
    format!(
        r#"{{"id":"{}","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"unterminated"#,
        frame.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_characters_whole() {
        assert_eq!(split_text("héllo wörld", 4), vec!["héll", "o wö", "rld"]);
        assert!(split_text("", 4).is_empty());
        assert_eq!(split_text("ab", 0), vec!["a", "b"]);
    }

    #[test]
    fn choices_cycle_and_cut() {
        let scripted = vec![ScriptedChoice::text("a"), ScriptedChoice::text("b")];
        let picked: Vec<String> = pick_choices(&scripted, 3)
            .into_iter()
            .map(|c| c.content)
            .collect();
        assert_eq!(picked, vec!["a", "b", "a"]);
        assert_eq!(pick_choices(&scripted, 1).len(), 1);
        assert_eq!(pick_choices(&[], 2)[1].content, "");
    }

    #[test]
    fn mismatched_tokens_are_spread_over_pieces_in_order() {
        let choice = ScriptedChoice::text("abcdefgh").with_logprobs(vec![
            ("x", -1.0, vec![]),
            ("y", -2.0, vec![]),
            ("z", -3.0, vec![]),
        ]);
        let pieces = content_pieces(&choice, 4, true);
        assert_eq!(pieces.len(), 2);
        let tokens: Vec<String> = pieces
            .iter()
            .flat_map(|(_, t)| t.iter().map(|t| t.token.clone()))
            .collect();
        assert_eq!(tokens, vec!["x", "y", "z"]);
    }

    #[test]
    fn usage_estimate_counts_characters() {
        let request = json!({"messages": [
            {"role": "user", "content": "12345678"},
            {"role": "user", "content": [{"type": "text", "text": "1234"}]},
        ]});
        let u = usage(
            &request,
            &[ScriptedChoice::reasoning("1234", "12345678")],
            None,
        );
        assert_eq!(u["prompt_tokens"], 3);
        assert_eq!(u["completion_tokens"], 3);
        assert_eq!(u["total_tokens"], 6);
        assert!(u.get("prompt_tokens_details").is_none());
    }
}
