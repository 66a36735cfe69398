//! `ponder llm` end to end against a real HTTP server speaking the OpenAI wire format
//! (ponder-scripted-model, a test double whose replies are scripted).

mod common;

use common::ponder;
use ponder_scripted_model::{Reply, Script, ScriptedServer, ServerOptions};

#[test]
fn chat_prints_answers_reasoning_and_usage() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(
            Reply::reasoning("the sky scatters blue light", "Blue.").with_usage(20, 9, 16),
        ),
    );
    let cache = tempfile::tempdir().unwrap();
    let url = server.base_url();
    let args = [
        "llm",
        "chat",
        "What colour is the sky?",
        "--base-url",
        &url,
        "--model",
        "scripted-model",
        "--n",
        "2",
        "--temperature",
        "0.8",
        "--json",
    ];
    let (code, out, err) = ponder(&args, cache.path());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert_eq!(v["choices"][0]["answer"], "Blue.");
    assert_eq!(v["choices"][0]["reasoning"], "the sky scatters blue light");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 20);
    assert_eq!(v["usage"]["cached_prompt_tokens"], 16);
    assert_eq!(server.requests()[0]["n"], 2);

    // The same question again comes from the replay cache: no new request.
    let (code, out, _) = ponder(&args, cache.path());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cached_samples"], 2);
    assert_eq!(server.request_count(), 1);

    // Plain output with the reasoning shown; replay-only mode refuses a question never asked.
    let (code, out, err) = ponder(
        &[
            "llm",
            "chat",
            "Another?",
            "--base-url",
            &url,
            "--model",
            "scripted-model",
            "--show-reasoning",
        ],
        cache.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "<think>\nthe sky scatters blue light\n</think>\nBlue.\n"
    );
    assert!(
        err.contains("tokens: 20 prompt (16 cached), 9 completion"),
        "{err}"
    );
    let (code, _, err) = ponder(
        &[
            "llm",
            "chat",
            "Never asked",
            "--base-url",
            &url,
            "--model",
            "scripted-model",
            "--cache",
            "replay",
        ],
        cache.path(),
    );
    assert_eq!(code, 2);
    assert!(err.contains("replay-only"), "{err}");
}

#[test]
fn ping_reports_capabilities_and_dead_endpoints() {
    let server = ScriptedServer::start(
        ServerOptions {
            ignores_n: true,
            supports_logprobs: false,
            ..ServerOptions::default()
        },
        Script::always(Reply::text("Yes")),
    );
    let cache = tempfile::tempdir().unwrap();
    let url = server.base_url();
    let (code, out, err) = ponder(
        &[
            "llm",
            "ping",
            "--base-url",
            &url,
            "--model",
            "scripted-model",
            "--cache",
            "off",
        ],
        cache.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(": up, ") && out.contains("serves scripted-model"),
        "{out}"
    );
    assert!(out.contains("n > 1: ignored"), "{out}");
    assert!(out.contains("logprobs: not returned"), "{out}");

    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let (code, out, _) = ponder(
        &[
            "llm",
            "ping",
            "--base-url",
            &dead,
            "--model",
            "m",
            "--cache",
            "off",
        ],
        cache.path(),
    );
    assert_eq!(code, 1);
    assert!(out.contains("DOWN"), "{out}");

    // A limit refuses the call before it is sent.
    let before = server.request_count();
    let (code, _, err) = ponder(
        &[
            "llm",
            "chat",
            "long",
            "--base-url",
            &url,
            "--model",
            "scripted-model",
            "--max-tokens",
            "500",
            "--max-tokens-per-call",
            "100",
            "--cache",
            "off",
        ],
        cache.path(),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("token budget per call exceeded") && err.contains("--max-tokens-per-call"),
        "{err}"
    );
    assert_eq!(server.request_count(), before);

    // No model anywhere: a message that says where to put one.
    let (code, _, err) = ponder(&["llm", "chat", "hi"], cache.path());
    assert_eq!(code, 2);
    assert!(
        err.contains("no model is configured for \"policy\""),
        "{err}"
    );
}
