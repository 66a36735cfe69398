//! Hundreds of requests in flight at once, each answered after a fixed delay: the load the
//! client's benchmark puts on the server. Every request must be answered, in about one delay.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::chat_request;
use ponder_scripted_model::{Reply, Script, ScriptedServer, ServerOptions};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_delayed_requests_are_all_answered_concurrently() {
    const REQUESTS: usize = 200;
    let delay = Duration::from_millis(1500);
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::from_fn(move |request, _| {
            let asked = request["messages"][0]["content"].as_str().unwrap_or("");
            Reply::text(format!("echo {asked}")).with_delay(delay)
        }),
    );
    let client = common::http();
    let url = Arc::new(format!("{}/chat/completions", server.base_url()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..REQUESTS {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let streaming = i % 2 == 0;
            let request = chat_request(&format!("request {i}"), json!({"stream": streaming}));
            let response = client.post(url.as_str()).json(&request).send().await?;
            assert_eq!(response.status(), 200);
            let text = response.text().await?;
            Ok::<(usize, bool, String), reqwest::Error>((i, streaming, text))
        }));
    }
    for task in tasks {
        let (i, streaming, text) = task.await.expect("task ran").expect("request answered");
        if streaming {
            assert!(text.ends_with("data: [DONE]\n\n"));
            let content: String = text
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .filter_map(|d| {
                    let chunk: Value = serde_json::from_str(d).unwrap();
                    chunk["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_string)
                })
                .collect();
            assert_eq!(content, format!("echo request {i}"));
        } else {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                body["choices"][0]["message"]["content"],
                format!("echo request {i}")
            );
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{REQUESTS} requests with a {delay:?} delay took {elapsed:?}; peak in flight {}",
        server.max_in_flight()
    );
    assert_eq!(server.request_count(), REQUESTS);
    assert_eq!(server.in_flight(), 0);
    // Served side by side, not one after another (serially this would take 300 s).
    assert!(elapsed < delay * 4, "took {elapsed:?}");
    assert!(
        server.max_in_flight() >= REQUESTS * 9 / 10,
        "peak in flight was only {}",
        server.max_in_flight()
    );
}
