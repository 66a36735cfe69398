//! Well-behaved answers over real HTTP: non-streaming and streaming chat completions, `n`,
//! logprobs, tool calls, usage, the models list, the API key, and the script's order.

mod common;

use std::time::{Duration, Instant};

use common::{chat_request, sse_chunks, sse_data};
use futures_util::StreamExt;
use ponder_scripted_model::{
    DEFAULT_REPLY_TEXT, Reply, Script, ScriptedChoice, ScriptedServer, ServerOptions,
};
use serde_json::{Value, json};

async fn post(server: &ScriptedServer, body: &Value) -> reqwest::Response {
    common::http()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(body)
        .send()
        .await
        .expect("the scripted server answers")
}

async fn post_json(server: &ScriptedServer, body: &Value) -> Value {
    let response = post(server, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("a JSON body")
}

async fn post_stream(server: &ScriptedServer, body: &Value) -> String {
    let response = post(server, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    response.text().await.expect("a complete SSE body")
}

/// Puts streamed deltas back together per choice: (reasoning, content, finish_reason).
fn aggregate(chunks: &[Value], reasoning_field: &str) -> Vec<(String, String, Option<String>)> {
    let mut out: Vec<(String, String, Option<String>)> = Vec::new();
    for chunk in chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        for choice in chunk["choices"].as_array().unwrap() {
            let i = choice["index"].as_u64().unwrap() as usize;
            if out.len() <= i {
                out.resize(i + 1, Default::default());
            }
            let delta = &choice["delta"];
            if let Some(r) = delta[reasoning_field].as_str() {
                out[i].0.push_str(r);
            }
            if let Some(c) = delta["content"].as_str() {
                out[i].1.push_str(c);
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                assert!(out[i].2.is_none(), "one finish_reason per choice");
                out[i].2 = Some(f.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn non_streaming_text_reply() {
    let server =
        ScriptedServer::start(ServerOptions::default(), Script::queue([Reply::text("42")]));
    let request = chat_request("What is six times seven? Answer briefly.", json!({}));
    let body = post_json(&server, &request).await;

    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], "chatcmpl-scripted-0");
    assert_eq!(body["model"], "scripted-model");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[0]["message"]["role"], "assistant");
    assert_eq!(choices[0]["message"]["content"], "42");
    assert!(choices[0]["message"].get("reasoning_content").is_none());
    assert_eq!(choices[0]["finish_reason"], "stop");
    assert!(choices[0]["logprobs"].is_null());
    // 40 prompt characters / 4 = 10; "42" is 2 characters, so at least 1.
    assert_eq!(body["usage"]["prompt_tokens"], 10);
    assert_eq!(body["usage"]["completion_tokens"], 1);
    assert_eq!(body["usage"]["total_tokens"], 11);

    assert_eq!(server.requests(), vec![request]);
    assert_eq!(server.request_count(), 1);
    assert_eq!(server.in_flight(), 0);
}

#[tokio::test]
async fn queue_runs_in_order_then_falls_back() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([Reply::text("first"), Reply::text("second")]),
    );
    let mut answers = Vec::new();
    for _ in 0..3 {
        let body = post_json(&server, &chat_request("hi", json!({}))).await;
        answers.push(
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(answers, vec!["first", "second", DEFAULT_REPLY_TEXT]);
    assert_eq!(server.remaining_replies(), 0);
}

#[tokio::test]
async fn function_script_sees_request_and_number() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::from_fn(|request, number| {
            let asked = request["messages"][0]["content"].as_str().unwrap_or("");
            Reply::text(format!("#{number}: {}", asked.to_uppercase()))
        }),
    );
    let a = post_json(&server, &chat_request("alpha", json!({}))).await;
    let b = post_json(&server, &chat_request("beta", json!({}))).await;
    assert_eq!(a["choices"][0]["message"]["content"], "#0: ALPHA");
    assert_eq!(b["choices"][0]["message"]["content"], "#1: BETA");
}

#[tokio::test]
async fn reasoning_field_usage_details_and_inline_think() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([
            Reply::reasoning("Six sevens are forty-two.", "42")
                .with_usage(100, 20, 64)
                .with_reasoning_tokens(15),
            Reply::inline_think("<think>short</think>42"),
        ]),
    );
    let body = post_json(&server, &chat_request("q", json!({}))).await;
    let message = &body["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], "Six sevens are forty-two.");
    assert_eq!(message["content"], "42");
    assert_eq!(body["usage"]["prompt_tokens"], 100);
    assert_eq!(body["usage"]["completion_tokens"], 20);
    assert_eq!(body["usage"]["total_tokens"], 120);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 64);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        15
    );

    let body = post_json(&server, &chat_request("q", json!({}))).await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "<think>short</think>42"
    );
}

#[tokio::test]
async fn reasoning_field_name_can_be_reasoning() {
    let options = ServerOptions {
        reasoning_field_name: "reasoning".into(),
        ..ServerOptions::default()
    };
    let server = ScriptedServer::start(
        options,
        Script::always(Reply::reasoning("thinking hard", "done")),
    );
    let body = post_json(&server, &chat_request("q", json!({}))).await;
    assert_eq!(body["choices"][0]["message"]["reasoning"], "thinking hard");
    assert!(
        body["choices"][0]["message"]
            .get("reasoning_content")
            .is_none()
    );

    let text = post_stream(&server, &chat_request("q", json!({"stream": true}))).await;
    let merged = aggregate(&sse_chunks(&text), "reasoning");
    assert_eq!(merged[0].0, "thinking hard");
    assert_eq!(merged[0].1, "done");
}

#[tokio::test]
async fn streaming_splits_and_aggregates_reasoning_and_content() {
    let reasoning = "First think about the question, then answer it.";
    let answer = "The answer is forty-two, as everybody knows.";
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::reasoning(reasoning, answer).with_finish_reason("length")),
    );
    let request = chat_request(
        "q",
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let text = post_stream(&server, &request).await;
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(text.ends_with("data: [DONE]\n\n"));

    let chunks = sse_chunks(&text);
    // Role chunk, 12 reasoning pieces, 11 content pieces (4 characters each), usage chunk.
    assert_eq!(chunks.len(), 1 + 12 + 11 + 1);
    let first = &chunks[0]["choices"][0];
    assert_eq!(first["delta"]["role"], "assistant");
    assert!(first["finish_reason"].is_null());
    for chunk in &chunks {
        assert_eq!(chunk["id"], "chatcmpl-scripted-0");
        assert_eq!(chunk["model"], "scripted-model");
        assert!(chunk["created"].is_u64());
    }
    for chunk in &chunks[..chunks.len() - 1] {
        assert!(chunk["usage"].is_null());
        let choice = &chunk["choices"][0];
        assert!(choice.get("logprobs").is_some());
        assert!(choice.get("finish_reason").is_some());
    }
    // Reasoning pieces come before content pieces.
    assert!(chunks[1]["choices"][0]["delta"]["reasoning_content"].is_string());
    assert!(chunks[13]["choices"][0]["delta"]["content"].is_string());

    let merged = aggregate(&chunks, "reasoning_content");
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].0, reasoning);
    assert_eq!(merged[0].1, answer);
    assert_eq!(merged[0].2.as_deref(), Some("length"));
    // The finish reason rides on the last content piece.
    let last_choice_chunk = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(last_choice_chunk["finish_reason"], "length");
    assert_eq!(last_choice_chunk["delta"]["content"], "ows.");

    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        (reasoning.len() + answer.len()) / 4
    );
}

#[tokio::test]
async fn streaming_without_include_usage_has_no_usage_chunk() {
    let server = ScriptedServer::start(ServerOptions::default(), Script::default());
    let text = post_stream(&server, &chat_request("q", json!({"stream": true}))).await;
    let chunks = sse_chunks(&text);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty())
    );
    assert_eq!(
        aggregate(&chunks, "reasoning_content")[0].1,
        DEFAULT_REPLY_TEXT
    );
}

#[tokio::test]
async fn streaming_arrives_in_pieces_over_time() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::text("abcdefghijkl").with_chunk_delay(Duration::from_millis(80))),
    );
    let start = Instant::now();
    let response = post(&server, &chat_request("q", json!({"stream": true}))).await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = start.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""));
    let mut rest = Vec::new();
    while let Some(piece) = body.next().await {
        rest.extend_from_slice(&piece.unwrap());
    }
    let total = start.elapsed();
    // Role + 3 content pieces + [DONE]: four pauses of 80 ms after the first chunk.
    assert!(
        first_at < Duration::from_millis(250),
        "first chunk after {first_at:?}"
    );
    assert!(
        total >= Duration::from_millis(320),
        "whole stream in {total:?}"
    );
    assert!(String::from_utf8_lossy(&rest).ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn n_is_honoured_with_distinct_and_repeated_choices() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([
            Reply::texts(["alpha", "beta", "gamma"]),
            Reply::text("same"),
            Reply::texts(["one", "two"]).with_finish_reason("length"),
        ]),
    );
    let body = post_json(&server, &chat_request("q", json!({"n": 3}))).await;
    let contents: Vec<&str> = body["choices"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            assert_eq!(c["index"], i);
            c["message"]["content"].as_str().unwrap()
        })
        .collect();
    assert_eq!(contents, vec!["alpha", "beta", "gamma"]);

    let body = post_json(&server, &chat_request("q", json!({"n": 2}))).await;
    assert_eq!(body["choices"].as_array().unwrap().len(), 2);
    assert_eq!(body["choices"][1]["index"], 1);
    assert_eq!(body["choices"][1]["message"]["content"], "same");

    // Streaming with n = 2: chunks interleave, one choice per chunk.
    let text = post_stream(&server, &chat_request("q", json!({"n": 2, "stream": true}))).await;
    let chunks = sse_chunks(&text);
    let order: Vec<u64> = chunks
        .iter()
        .map(|c| {
            let choices = c["choices"].as_array().unwrap();
            assert_eq!(choices.len(), 1);
            choices[0]["index"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(&order[..4], &[0, 1, 0, 1]);
    let merged = aggregate(&chunks, "reasoning_content");
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0].1, "one");
    assert_eq!(merged[1].1, "two");
    assert_eq!(merged[1].2.as_deref(), Some("length"));
}

#[tokio::test]
async fn n_is_ignored_when_the_server_says_so() {
    let options = ServerOptions {
        ignores_n: true,
        ..ServerOptions::default()
    };
    let server = ScriptedServer::start(options, Script::always(Reply::texts(["a", "b", "c"])));
    let body = post_json(&server, &chat_request("q", json!({"n": 3}))).await;
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0]["message"]["content"], "a");

    let text = post_stream(&server, &chat_request("q", json!({"n": 3, "stream": true}))).await;
    let chunks = sse_chunks(&text);
    assert!(chunks.iter().all(|c| c["choices"][0]["index"] == 0));
}

#[tokio::test]
async fn logprobs_have_the_openai_shape() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::text("Yes.").with_logprobs(vec![
            (
                "Yes",
                -0.1,
                vec![("Yes", -0.1), ("No", -2.4), ("Maybe", -3.0)],
            ),
            (".", -0.01, vec![(".", -0.01), ("!", -4.6)]),
        ])),
    );
    let request = chat_request("q", json!({"logprobs": true, "top_logprobs": 2}));
    let body = post_json(&server, &request).await;
    let content = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["token"], "Yes");
    assert_eq!(content[0]["logprob"], -0.1);
    assert_eq!(content[0]["bytes"], json!([89, 101, 115]));
    let top = content[0]["top_logprobs"].as_array().unwrap();
    assert_eq!(top.len(), 2, "cut to the request's top_logprobs");
    assert_eq!(top[1]["token"], "No");
    assert_eq!(top[1]["logprob"], -2.4);
    assert_eq!(top[1]["bytes"], json!([78, 111]));

    // Streaming: the tokens spell the content, so each delta is one token with its logprob.
    let mut request = request.clone();
    request["stream"] = json!(true);
    let chunks = sse_chunks(&post_stream(&server, &request).await);
    let tokens: Vec<(String, Value)> = chunks
        .iter()
        .filter_map(|c| {
            let choice = &c["choices"][0];
            let content = choice["delta"]["content"].as_str()?;
            if content.is_empty() {
                return None;
            }
            let lp = choice["logprobs"]["content"].as_array().unwrap();
            assert_eq!(lp.len(), 1);
            assert_eq!(lp[0]["token"].as_str().unwrap(), content);
            Some((content.to_string(), lp[0]["logprob"].clone()))
        })
        .collect();
    assert_eq!(
        tokens,
        vec![
            ("Yes".to_string(), json!(-0.1)),
            (".".to_string(), json!(-0.01))
        ]
    );

    // Without top_logprobs: tokens but no alternatives.
    let body = post_json(&server, &chat_request("q", json!({"logprobs": true}))).await;
    let content = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    assert_eq!(content[0]["top_logprobs"], json!([]));
}

#[tokio::test]
async fn logprobs_are_made_up_when_not_scripted_and_omitted_when_unsupported() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::text("abcdefgh")),
    );
    let request = chat_request("q", json!({"logprobs": true, "top_logprobs": 3}));
    let body = post_json(&server, &request).await;
    let content = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    let tokens: Vec<&str> = content
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, vec!["abcd", "efgh"]);
    assert_eq!(content[0]["logprob"], -0.25);
    let alts: Vec<&str> = content[0]["top_logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(alts, vec!["abcd", "alt1", "alt2"]);

    let options = ServerOptions {
        supports_logprobs: false,
        ..ServerOptions::default()
    };
    let server = ScriptedServer::start(
        options,
        Script::always(Reply::text("x").with_logprobs(vec![("x", -0.5, vec![])])),
    );
    let body = post_json(&server, &request).await;
    assert!(body["choices"][0]["logprobs"].is_null());
    let mut request = request.clone();
    request["stream"] = json!(true);
    let chunks = sse_chunks(&post_stream(&server, &request).await);
    assert!(chunks.iter().all(|c| c["choices"][0]["logprobs"].is_null()));
}

#[tokio::test]
async fn tool_calls_in_both_formats() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::choices(vec![
            ScriptedChoice::text("")
                .with_tool_call("search", r#"{"query": "def main", "limit": 5}"#)
                .with_tool_call("open", r#"{"path": "a.py"}"#),
        ])),
    );
    let body = post_json(&server, &chat_request("q", json!({}))).await;
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "call_0_0_0");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "search");
    assert_eq!(
        calls[0]["function"]["arguments"],
        r#"{"query": "def main", "limit": 5}"#
    );
    assert_eq!(calls[1]["function"]["name"], "open");

    let chunks =
        sse_chunks(&post_stream(&server, &chat_request("q", json!({"stream": true}))).await);
    let mut names = vec![String::new(); 2];
    let mut arguments = vec![String::new(); 2];
    let mut ids = vec![String::new(); 2];
    for chunk in &chunks {
        if let Some(calls) = chunk["choices"][0]["delta"]["tool_calls"].as_array() {
            for call in calls {
                let k = call["index"].as_u64().unwrap() as usize;
                if let Some(id) = call["id"].as_str() {
                    ids[k] = id.to_string();
                }
                if let Some(name) = call["function"]["name"].as_str() {
                    names[k].push_str(name);
                }
                arguments[k].push_str(call["function"]["arguments"].as_str().unwrap());
            }
        }
    }
    assert_eq!(ids, vec!["call_1_0_0", "call_1_0_1"]);
    assert_eq!(names, vec!["search", "open"]);
    assert_eq!(arguments[0], r#"{"query": "def main", "limit": 5}"#);
    assert_eq!(arguments[1], r#"{"path": "a.py"}"#);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn models_list_and_api_key() {
    let options = ServerOptions {
        models: vec!["qwen3-8b".into(), "tiny".into()],
        api_key: Some("sekret".into()),
        ..ServerOptions::default()
    };
    let server = ScriptedServer::start(options, Script::default());
    let client = common::http();
    let models_url = format!("{}/models", server.base_url());
    let chat_url = format!("{}/chat/completions", server.base_url());

    let denied = client.get(&models_url).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let error: Value = denied.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key")
    );

    let wrong = client
        .post(&chat_url)
        .bearer_auth("guess")
        .json(&chat_request("q", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(server.request_count(), 0, "refused requests are not logged");
    assert_eq!(server.unauthorized_count(), 2);

    let list: Value = client
        .get(&models_url)
        .bearer_auth("sekret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            m["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids, vec!["qwen3-8b", "tiny"]);

    // No `model` in the request: the first listed model is reported.
    let ok = client
        .post(&chat_url)
        .bearer_auth("sekret")
        .json(&json!({"messages": [{"role": "user", "content": "q"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["model"], "qwen3-8b");
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn unknown_paths_and_non_json_bodies_get_errors() {
    let server = ScriptedServer::start(ServerOptions::default(), Script::default());
    let client = common::http();
    let missing = client
        .post(format!("{}/completions", server.base_url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let bad = client
        .post(format!("{}/chat/completions", server.base_url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let error: Value = bad.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(server.request_count(), 0);
}
