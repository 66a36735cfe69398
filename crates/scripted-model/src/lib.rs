//! A scripted model server: replies are scripted, not generated.
//!
//! This crate is a **test double** for OpenAI-compatible model servers (vLLM, SGLang,
//! llama.cpp, ...). It is a real HTTP/1.1 server on `127.0.0.1` that speaks the
//! chat-completions wire format, so a client under test talks to it over TCP exactly as it
//! would talk to a real server, but every answer comes from a [`Script`] written by the test,
//! and faults (error statuses, rate limits, dropped connections, stalled, truncated or cut
//! streams, broken JSON) can be injected at will. It owns no model and no tokenizer, and it must
//! not be used as anything but a stand-in in tests and benchmarks.
//!
//! # Endpoints
//! * `POST /v1/chat/completions`: `chat.completion` objects, or Server-Sent Events of
//!   `chat.completion.chunk` objects when the request has `"stream": true`.
//! * `GET /v1/models`: `{"object": "list", "data": [{"id", "object": "model", ..}]}` from
//!   [`ServerOptions::models`].
//! * Anything else: 404 with an OpenAI-style error body.
//!
//! # Rules the server follows
//! * **Order.** Request number `k` (0-based, in arrival order of chat requests that passed the
//!   key check and were JSON) gets the `k`-th queued reply, or `f(&request, k)` for
//!   [`Script::from_fn`]. An exhausted queue answers [`DEFAULT_REPLY_TEXT`] (or its fallback).
//! * **n.** With `n` in the request (default 1) and [`ServerOptions::ignores_n`] false, choice
//!   `i` is the reply's `choices[i % len]`: a one-choice reply is repeated as exact copies (only
//!   `index` differs); script distinct choices (e.g. [`Reply::texts`]) to tell samples apart.
//!   Extra scripted choices beyond `n` are not sent. With `ignores_n`, exactly one choice.
//! * **Finish reason.** The scripted one, else `"tool_calls"` when the choice calls tools,
//!   else `"stop"`.
//! * **Usage.** The scripted [`UsageSpec`], else an estimate: `prompt_tokens` = characters of
//!   the messages' text / 4 (at least 1); `completion_tokens` = sum over the sent choices of
//!   characters of content + reasoning + tool arguments / 4 (at least 1 each). Details
//!   (`prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`) are
//!   sent only when scripted.
//! * **Logprobs.** Sent when the request has `"logprobs": true` and
//!   [`ServerOptions::supports_logprobs`], as `logprobs.content[]` entries
//!   `{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}`, with `top_logprobs`
//!   cut to the request's `top_logprobs` (absent: none). Scripted tokens are sent as given;
//!   without them the server makes them up: one token per stream piece, logprob -0.25,
//!   alternatives (the token itself at -0.25, then `alt1`, `alt2`, .. at -2, -3, ..).
//! * **Non-streaming.** `message` has `role`, `content` (`null` when empty and the choice calls
//!   tools), the reasoning field when scripted, `tool_calls` when any.
//! * **Streaming.** Like vLLM: per choice, a role chunk (`{"role":"assistant","content":""}`),
//!   then reasoning deltas, then content deltas, then tool-call deltas (a first one with `index`,
//!   `id`, `type`, `name` and empty `arguments`, then argument pieces with only `index`), all cut
//!   into pieces of [`ServerOptions::stream_chunk_chars`] characters (or one token per delta when
//!   scripted logprob tokens spell the content exactly). The finish reason rides on each
//!   choice's last delta. Each chunk carries one choice; with several choices the chunks are
//!   interleaved round-robin. Then, if `stream_options.include_usage`, a usage-only chunk with
//!   `"choices": []` (and `"usage": null` on all earlier chunks), then `data: [DONE]`.
//! * **Timing.** [`Reply::delay`] is waited after the request is read, before anything is sent
//!   (faults included); [`Reply::chunk_delay`] before each body chunk after the first.
//! * **Faults.** See [`Fault`]. For stream faults, "chunks" are SSE events (the role chunk is
//!   the first; `[DONE]` is never sent); for a non-streaming request they are 64-byte slices of
//!   the JSON body. `after_chunks` at or past the end sends everything, then the fault.
//!
//! # Example
//! ```
//! use ponder_scripted_model::{Reply, Script, ScriptedServer, ServerOptions};
//!
//! let server = ScriptedServer::start(
//!     ServerOptions::default(),
//!     Script::queue([Reply::reasoning("2 + 2 is 4", "4").with_usage(12, 3, 8)]),
//! );
//! let url = format!("{}/chat/completions", server.base_url());
//! assert!(url.starts_with("http://127.0.0.1:"));
//! // ... point the client under test at `server.base_url()`, then:
//! assert_eq!(server.request_count(), 0);
//! ```

mod script;
mod server;
mod wire;

pub use script::{
    DEFAULT_REPLY_TEXT, Fault, LogprobSpec, Reply, Script, ScriptedChoice, ScriptedLogprob,
    ScriptedToolCall, UsageSpec,
};
pub use server::{ScriptedServer, ServerOptions};
