//! Helpers shared by the integration tests: request bodies, a raw HTTP/1.1 exchange over a
//! std `TcpStream` (for byte-level fault checks from plain `#[test]`s) and an SSE splitter.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ponder_scripted_model::ScriptedServer;
use serde_json::{Value, json};

/// A one-message chat request with the given extra fields merged in.
pub fn chat_request(text: &str, extra: Value) -> Value {
    let mut request = json!({
        "model": "scripted-model",
        "messages": [{"role": "user", "content": text}],
    });
    if let (Some(r), Some(e)) = (request.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            r.insert(k.clone(), v.clone());
        }
    }
    request
}

/// Sends one `POST /v1/chat/completions` with `Connection: close` and returns every byte the
/// server sent before closing (or the read error, e.g. a reset).
pub fn raw_chat(server: &ScriptedServer, body: &Value, extra_headers: &str) -> io::Result<Vec<u8>> {
    let mut stream = raw_send(server, body, extra_headers)?;
    let mut received = Vec::new();
    stream.read_to_end(&mut received)?;
    Ok(received)
}

/// Sends the request and hands back the open stream (5 s read timeout).
pub fn raw_send(
    server: &ScriptedServer,
    body: &Value,
    extra_headers: &str,
) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(server.addr())?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let body = body.to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        server.addr(),
        body.len(),
        extra_headers
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    Ok(stream)
}

/// The payloads of the `data:` lines of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.trim().strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

/// The parsed JSON chunks of an SSE body, stopping at `[DONE]`.
pub fn sse_chunks(body: &str) -> Vec<Value> {
    sse_data(body)
        .into_iter()
        .take_while(|d| d != "[DONE]")
        .map(|d| serde_json::from_str(&d).expect("every chunk before [DONE] is JSON"))
        .collect()
}

/// A reqwest client builder. When the whole workspace is built together, reqwest's features merge
/// with ponder-llm's (`rustls-no-provider`), and rustls then needs a crypto provider installed.
pub fn http_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub fn http() -> reqwest::Client {
    http_builder().build().expect("a reqwest client")
}
