//! Injected faults as a client sees them over TCP: error statuses, 429 with `Retry-After`,
//! dropped connections, stalled / truncated / cut streams and broken JSON. Most checks use a raw
//! std `TcpStream` from plain `#[test]`s, to see the exact bytes (and prove the server works
//! without an async test harness); a few use reqwest to show the errors a client library gets.

mod common;

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use common::{chat_request, raw_chat, raw_send, sse_chunks, sse_data};
use futures_util::StreamExt;
use ponder_scripted_model::{Fault, Reply, Script, ScriptedServer, ServerOptions};
use serde_json::{Value, json};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The body of a raw response, with the chunked framing left in (fine for substring checks).
fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[test]
fn status_faults_send_the_scripted_status_and_body() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([
            Reply::fault(Fault::error(500, "the engine died")),
            Reply::fault(Fault::Status(
                400,
                r#"{"object":"error","message":"too long"}"#.into(),
            )),
            Reply::text("recovered"),
        ]),
    );
    let first = text(&raw_chat(&server, &chat_request("q", json!({"stream": true})), "").unwrap());
    assert!(first.starts_with("HTTP/1.1 500"), "{first}");
    assert!(
        first
            .to_lowercase()
            .contains("content-type: application/json")
    );
    let error: Value = serde_json::from_str(body_of(&first)).unwrap();
    assert_eq!(error["error"]["message"], "the engine died");
    assert_eq!(error["error"]["code"], 500);

    let second = text(&raw_chat(&server, &chat_request("q", json!({})), "").unwrap());
    assert!(second.starts_with("HTTP/1.1 400"), "{second}");
    assert!(second.ends_with(r#"{"object":"error","message":"too long"}"#));

    let third = text(&raw_chat(&server, &chat_request("q", json!({})), "").unwrap());
    assert!(third.starts_with("HTTP/1.1 200"));
    assert!(third.contains("recovered"));
    assert_eq!(server.request_count(), 3, "faulty requests are logged too");
}

#[tokio::test]
async fn rate_limit_sends_retry_after() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([
            Reply::fault(Fault::RateLimited {
                retry_after: Duration::from_millis(1500),
            }),
            Reply::fault(Fault::RateLimited {
                retry_after: Duration::from_secs(3),
            }),
        ]),
    );
    let client = common::http();
    let url = format!("{}/chat/completions", server.base_url());
    let response = client
        .post(&url)
        .json(&chat_request("q", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["retry-after"],
        "2",
        "whole seconds, rounded up"
    );
    assert_eq!(response.headers()["retry-after-ms"], "1500");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error");

    let response = client
        .post(&url)
        .json(&chat_request("q", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "3");
}

#[test]
fn dropped_connection_sends_nothing() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([Reply::fault(Fault::DropConnection), Reply::text("after")]),
    );
    match raw_chat(&server, &chat_request("q", json!({})), "") {
        Ok(bytes) => assert!(bytes.is_empty(), "got {:?}", text(&bytes)),
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ),
            "unexpected error {e}"
        ),
    }
    // The server itself carries on.
    let next = text(&raw_chat(&server, &chat_request("q", json!({})), "").unwrap());
    assert!(next.contains("after"));
    assert_eq!(server.request_count(), 2);
    assert_eq!(server.in_flight(), 0);
}

#[tokio::test]
async fn dropped_connection_is_a_connection_error_for_reqwest() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::fault(Fault::DropConnection).with_delay(Duration::from_millis(50))),
    );
    let error = common::http()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&chat_request("q", json!({})))
        .send()
        .await
        .expect_err("no response at all");
    assert!(error.is_request() || error.is_connect(), "{error:?}");
    assert!(error.status().is_none());
}

#[test]
fn truncated_stream_ends_without_done() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([
            Reply::text("a long enough answer")
                .with_fault(Fault::TruncatedStream { after_chunks: 3 }),
            Reply::text("short").with_fault(Fault::TruncatedStream { after_chunks: 100 }),
        ]),
    );
    let request = chat_request("q", json!({"stream": true}));
    let response = text(&raw_chat(&server, &request, "").unwrap());
    assert!(response.starts_with("HTTP/1.1 200"));
    // The HTTP body ends properly (the last chunk of the chunked encoding is there)...
    assert!(response.ends_with("0\r\n\r\n"), "{response:?}");
    // ...but the SSE stream was cut: 3 events, no [DONE], no finish reason.
    assert!(!response.contains("[DONE]"));
    assert_eq!(response.matches("data: ").count(), 3);
    assert!(!response.contains("\"finish_reason\":\"stop\""));

    // Past the end: every event, still no [DONE].
    let response = text(&raw_chat(&server, &request, "").unwrap());
    assert!(response.contains("\"finish_reason\":\"stop\""));
    assert!(!response.contains("[DONE]"));
}

#[tokio::test]
async fn truncated_stream_reads_as_a_clean_end_in_reqwest() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(
            Reply::reasoning("think", "answer")
                .with_fault(Fault::TruncatedStream { after_chunks: 2 }),
        ),
    );
    let body = common::http()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&chat_request("q", json!({"stream": true})))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .expect("the HTTP body itself is complete");
    let data = sse_data(&body);
    assert_eq!(data.len(), 2);
    assert!(!data.iter().any(|d| d == "[DONE]"));
    assert_eq!(
        sse_chunks(&body)[1]["choices"][0]["delta"]["reasoning_content"],
        "thin"
    );
}

#[tokio::test]
async fn cut_stream_is_a_body_error() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([
            Reply::text("some answer").with_fault(Fault::CutStream { after_chunks: 2 }),
            Reply::text("some answer").with_fault(Fault::CutStream { after_chunks: 1 }),
        ]),
    );
    let client = common::http();
    let url = format!("{}/chat/completions", server.base_url());
    let response = client
        .post(&url)
        .json(&chat_request("q", json!({"stream": true})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    let mut error = None;
    while let Some(piece) = body.next().await {
        match piece {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("the body ends in an error");
    assert!(
        error.is_body() || error.is_decode() || error.is_request(),
        "{error:?}"
    );
    assert_eq!(
        sse_data(&text(&received)).len(),
        2,
        "both events arrived first"
    );

    // Non-streaming: a 200 whose JSON body breaks off.
    let response = client
        .post(&url)
        .json(&chat_request("q", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.is_err());
}

#[test]
fn stalled_stream_keeps_the_connection_open_until_shutdown() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::text("answer").with_fault(Fault::StallStream { after_chunks: 2 })),
    );
    let mut stream = raw_send(&server, &chat_request("q", json!({"stream": true})), "").unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while text(&received).matches("data: ").count() < 2 {
        let n = stream.read(&mut buf).expect("the first two events arrive");
        assert!(n > 0, "closed early: {:?}", text(&received));
        received.extend_from_slice(&buf[..n]);
    }
    // Then silence, with the connection still open.
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let err = stream.read(&mut buf).expect_err("no more bytes");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    assert_eq!(server.in_flight(), 1);

    // Shutting the server down closes it.
    let start = Instant::now();
    drop(server);
    assert!(start.elapsed() < Duration::from_secs(2));
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    match stream.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "EOF after shutdown"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
}

#[tokio::test]
async fn stalled_stream_trips_a_client_read_timeout() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::text("answer").with_fault(Fault::StallStream { after_chunks: 1 })),
    );
    let response = common::http_builder()
        .read_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&chat_request("q", json!({"stream": true})))
        .send()
        .await
        .unwrap();
    let start = Instant::now();
    let error = response.text().await.expect_err("the read times out");
    assert!(
        error.is_timeout() || error.is_body() || error.is_decode(),
        "{error:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn malformed_json_in_both_formats() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::fault(Fault::MalformedJson)),
    );
    let response = text(&raw_chat(&server, &chat_request("q", json!({})), "").unwrap());
    assert!(response.starts_with("HTTP/1.1 200"));
    let body = body_of(&response);
    assert!(!body.is_empty());
    assert!(serde_json::from_str::<Value>(body).is_err(), "{body}");

    let response =
        text(&raw_chat(&server, &chat_request("q", json!({"stream": true})), "").unwrap());
    assert!(response.starts_with("HTTP/1.1 200"));
    let payloads: Vec<&str> = response
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| d.starts_with('{'))
        .collect();
    assert_eq!(payloads.len(), 2);
    assert!(
        serde_json::from_str::<Value>(payloads[0]).is_ok(),
        "the role chunk is fine"
    );
    assert!(
        serde_json::from_str::<Value>(payloads[1]).is_err(),
        "the next one is broken"
    );
    assert!(response.contains("data: [DONE]"));
}

#[test]
fn api_key_is_checked_before_faults() {
    let options = ServerOptions {
        api_key: Some("k".into()),
        ..ServerOptions::default()
    };
    let server =
        ScriptedServer::start(options, Script::always(Reply::fault(Fault::DropConnection)));
    let response = text(&raw_chat(&server, &chat_request("q", json!({})), "").unwrap());
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let response = text(
        &raw_chat(
            &server,
            &chat_request("q", json!({})),
            "Authorization: Bearer wrong\r\n",
        )
        .unwrap(),
    );
    assert!(response.starts_with("HTTP/1.1 401"));
    assert_eq!(server.unauthorized_count(), 2);
    assert_eq!(server.request_count(), 0);
}
