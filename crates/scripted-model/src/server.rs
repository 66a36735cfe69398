//! The HTTP side: a tokio runtime on its own thread, an accept loop that serves each connection
//! with hyper (so a connection can be closed without an answer), and the axum handlers for
//! `POST /v1/chat/completions` and `GET /v1/models`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Notify, oneshot};
use tower::ServiceExt;

use crate::script::{Fault, Reply, Script, error_body, lock};
use crate::wire::{self, Frame};

/// How the scripted server behaves as a server (the script decides what it says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Answer every request with exactly one choice, whatever its `n` (like servers that do
    /// not implement `n`).
    pub ignores_n: bool,
    /// `false`: never send logprobs, even when asked (`"logprobs": null`).
    pub supports_logprobs: bool,
    /// Listed by `GET /v1/models`. The first one is the reported model when a request names
    /// none; otherwise the request's `model` is echoed back.
    pub models: Vec<String>,
    /// When set, requests without `Authorization: Bearer <key>` get 401.
    pub api_key: Option<String>,
    /// Where reasoning goes: `"reasoning_content"` (vLLM, DeepSeek, SGLang) or `"reasoning"`.
    pub reasoning_field_name: String,
    /// Streamed text (content, reasoning, tool arguments) is cut into pieces of at most this
    /// many characters, one per chunk, so clients must put them back together.
    pub stream_chunk_chars: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            ignores_n: false,
            supports_logprobs: true,
            models: vec!["scripted-model".to_string()],
            api_key: None,
            reasoning_field_name: "reasoning_content".to_string(),
            stream_chunk_chars: 4,
        }
    }
}

/// Chat requests so far. Queued replies are taken while this lock is held, so request number
/// `k` always gets the `k`-th queued reply.
#[derive(Default)]
struct Log {
    requests: Vec<Value>,
}

struct Shared {
    options: ServerOptions,
    script: Script,
    log: Mutex<Log>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    unauthorized: AtomicUsize,
}

/// Counts a chat request as in flight from the moment its body is read until its response
/// (for a stream: its last byte) has been handed to the connection, or the connection is gone.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> InFlight {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Lets a handler ask its connection task to close the socket without answering.
#[derive(Clone)]
struct CloseConnection(Arc<Notify>);

/// A real HTTP server on `127.0.0.1` that speaks the OpenAI chat-completions wire format with
/// scripted replies. It runs on its own thread and runtime, so plain `#[test]` functions and
/// async tests alike can use it. Dropping it stops the server and closes every connection.
pub struct ScriptedServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    /// Starts the server and returns once it is listening.
    ///
    /// # Panics
    /// If the server cannot start (no free port, no threads): a test cannot go on without it.
    /// Use [`ScriptedServer::try_start`] to handle that instead.
    pub fn start(options: ServerOptions, script: Script) -> ScriptedServer {
        ScriptedServer::try_start(options, script).unwrap_or_else(|e| {
            panic!("the scripted model server could not start on 127.0.0.1: {e}")
        })
    }

    /// Starts the server and returns once it is listening, or says why it could not.
    pub fn try_start(options: ServerOptions, script: Script) -> io::Result<ScriptedServer> {
        let shared = Arc::new(Shared {
            options,
            script,
            log: Mutex::new(Log::default()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
        });
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<SocketAddr>>();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread_shared = shared.clone();
        // The runtime lives and dies on this thread, so starting or dropping the server from
        // inside another runtime (an async test) is fine.
        let thread = std::thread::Builder::new()
            .name("scripted-model".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("scripted-model-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match bind() {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let addr = listener.local_addr();
                    let ok = addr.is_ok();
                    let _ = ready_tx.send(addr);
                    if ok {
                        serve(listener, thread_shared, shutdown_rx).await;
                    }
                });
                // Dropping the runtime here drops every connection task: stalled streams end.
                drop(runtime);
            })?;
        let addr = match ready_rx.recv() {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(io::Error::other(
                    "the scripted model server thread stopped before it was listening",
                ));
            }
        };
        Ok(ScriptedServer {
            addr,
            shared,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL an OpenAI client wants.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every chat request body received (authorised and valid JSON), in arrival order.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.shared.log).requests.clone()
    }

    /// How many chat requests were received (the length of [`ScriptedServer::requests`]).
    pub fn request_count(&self) -> usize {
        lock(&self.shared.log).requests.len()
    }

    /// The most chat requests that were in flight at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Chat requests in flight right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Requests (chat or models) turned away with 401 because of a missing or wrong key.
    pub fn unauthorized_count(&self) -> usize {
        self.shared.unauthorized.load(Ordering::SeqCst)
    }

    /// Replies still waiting in a queue script (0 for a function script).
    pub fn remaining_replies(&self) -> usize {
        self.shared.script.remaining()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("addr", &self.addr)
            .field("options", &self.shared.options)
            .field("request_count", &self.request_count())
            .finish()
    }
}

/// A listener with a deep backlog: hundreds of clients may connect at once, and with the std
/// default (128) the overflow would wait for SYN retries (a second or more).
fn bind() -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.listen(2048)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: oneshot::Receiver<()>) {
    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .fallback(not_found)
        .with_state(shared);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or a connection reset before accept: wait, go on.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        tokio::spawn(async move {
            let close = Arc::new(Notify::new());
            let handler_close = close.clone();
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request
                        .extensions_mut()
                        .insert(CloseConnection(handler_close.clone()));
                    router.clone().oneshot(request)
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // Dropping the connection future drops the socket: the client gets no answer.
            tokio::select! {
                _ = connection => {}
                _ = close.notified() => {}
            }
        });
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, error_body(status.as_u16(), message).to_string())
}

/// `None` when the key matches or none is required.
fn check_key(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let key = shared.options.api_key.as_ref()?;
    let expected = format!("Bearer {key}");
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if given == Some(expected.as_str()) {
        return None;
    }
    shared.unauthorized.fetch_add(1, Ordering::SeqCst);
    Some(error_response(
        StatusCode::UNAUTHORIZED,
        "missing or wrong API key: send `Authorization: Bearer <key>`",
    ))
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "the scripted model server only serves POST /v1/chat/completions and GET /v1/models",
    )
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(denied) = check_key(&shared, &headers) {
        return denied;
    }
    let data: Vec<Value> = shared
        .options
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "ponder-scripted-model"}))
        .collect();
    json_response(
        StatusCode::OK,
        json!({"object": "list", "data": data}).to_string(),
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How a body ends once its chunks are sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The body ends normally (a stream's `[DONE]` is its last chunk).
    Complete,
    Stall,
    /// The body ends normally, short of what it should have said.
    Truncate,
    /// The connection is closed mid-body.
    Cut,
}

/// A body sent chunk by chunk, with an optional pause before each chunk after the first, then
/// the given ending. It holds the in-flight count until it is finished or dropped.
fn chunked_body(chunks: Vec<Bytes>, ending: Ending, pause: Duration, in_flight: InFlight) -> Body {
    struct Progress {
        chunks: std::vec::IntoIter<Bytes>,
        sent: usize,
        done: bool,
        _in_flight: InFlight,
    }
    let start = Progress {
        chunks: chunks.into_iter(),
        sent: 0,
        done: false,
        _in_flight: in_flight,
    };
    let body = stream::unfold(start, move |mut p| async move {
        if p.done {
            return None;
        }
        if let Some(chunk) = p.chunks.next() {
            if p.sent > 0 && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            p.sent += 1;
            return Some((Ok::<Bytes, io::Error>(chunk), p));
        }
        p.done = true;
        match ending {
            Ending::Complete | Ending::Truncate => None,
            Ending::Stall => {
                std::future::pending::<()>().await;
                None
            }
            Ending::Cut => {
                // Let hyper flush what was sent before the error makes it close the socket.
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((
                    Err(io::Error::other("scripted fault: connection cut mid-body")),
                    p,
                ))
            }
        }
    });
    Body::from_stream(body)
}

/// The ending and chunk count a stream fault asks for.
fn stream_fault(fault: &Option<Fault>) -> Option<(Ending, usize)> {
    match fault {
        Some(Fault::StallStream { after_chunks }) => Some((Ending::Stall, *after_chunks)),
        Some(Fault::TruncatedStream { after_chunks }) => Some((Ending::Truncate, *after_chunks)),
        Some(Fault::CutStream { after_chunks }) => Some((Ending::Cut, *after_chunks)),
        _ => None,
    }
}

/// The non-streaming JSON is cut into slices of this many bytes when a stream fault applies.
const BODY_SLICE: usize = 64;

async fn chat(
    State(shared): State<Arc<Shared>>,
    Extension(close): Extension<CloseConnection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = check_key(&shared, &headers) {
        return denied;
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("the request body is not JSON: {e}"),
            );
        }
    };
    let in_flight = InFlight::enter(&shared);
    let (number, queued) = {
        let mut log = lock(&shared.log);
        log.requests.push(request.clone());
        (log.requests.len() - 1, shared.script.next_queued())
    };
    let reply: Reply = match queued {
        Some(reply) => reply,
        None => shared
            .script
            .call(&request, number)
            .unwrap_or_else(|| Reply::text(crate::script::DEFAULT_REPLY_TEXT)),
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }

    let options = &shared.options;
    let streaming = request.get("stream").and_then(Value::as_bool) == Some(true);
    let wants_logprobs = request.get("logprobs").and_then(Value::as_bool) == Some(true);
    let top_n = request
        .get("top_logprobs")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| options.models.first().cloned())
        .unwrap_or_else(|| "scripted-model".to_string());
    let frame = Frame {
        id: format!("chatcmpl-scripted-{number}"),
        created: unix_now(),
        model,
        request_number: number,
        reasoning_field: &options.reasoning_field_name,
        chunk_chars: options.stream_chunk_chars,
        logprobs: (wants_logprobs && options.supports_logprobs).then_some(top_n),
    };

    match &reply.fault {
        Some(Fault::Status(code, body)) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return json_response(status, body.clone());
        }
        Some(Fault::RateLimited { retry_after }) => {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limited (scripted): retry after the Retry-After delay",
            );
            let seconds = retry_after.as_millis().div_ceil(1000);
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds as u64));
            headers.insert(
                "retry-after-ms",
                HeaderValue::from(retry_after.as_millis() as u64),
            );
            return response;
        }
        Some(Fault::DropConnection) => {
            close.0.notify_one();
            // The connection task drops this handler with the socket.
            let never: std::convert::Infallible = std::future::pending().await;
            match never {}
        }
        Some(Fault::MalformedJson) if streaming => {
            let chunks = wire::malformed_stream_chunks(&frame)
                .into_iter()
                .map(|c| Bytes::from(format!("data: {c}\n\n")))
                .chain([Bytes::from_static(b"data: [DONE]\n\n")])
                .collect();
            return sse_response(chunked_body(
                chunks,
                Ending::Complete,
                reply.chunk_delay,
                in_flight,
            ));
        }
        Some(Fault::MalformedJson) => {
            return json_response(StatusCode::OK, wire::malformed_completion(&frame));
        }
        _ => {}
    }

    let n = if options.ignores_n {
        1
    } else {
        wire::requested_n(&request)
    };
    let choices = wire::pick_choices(&reply.choices, n);
    let usage = wire::usage(&request, &choices, reply.usage);
    let fault = stream_fault(&reply.fault);

    if streaming {
        let include_usage = request
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        let events = wire::stream_chunks(&frame, &choices, include_usage.then_some(usage));
        let mut chunks: Vec<Bytes> = events
            .into_iter()
            .map(|e| Bytes::from(format!("data: {e}\n\n")))
            .collect();
        let ending = match fault {
            Some((ending, after)) => {
                chunks.truncate(after);
                ending
            }
            None => {
                chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
                Ending::Complete
            }
        };
        return sse_response(chunked_body(chunks, ending, reply.chunk_delay, in_flight));
    }

    let body = wire::completion(&frame, &choices, usage).to_string();
    match fault {
        None => json_response(StatusCode::OK, body),
        Some((ending, after)) => {
            let chunks = body
                .as_bytes()
                .chunks(BODY_SLICE)
                .take(after)
                .map(Bytes::copy_from_slice)
                .collect();
            let response_body = chunked_body(chunks, ending, reply.chunk_delay, in_flight);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                response_body,
            )
                .into_response()
        }
    }
}

fn sse_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
