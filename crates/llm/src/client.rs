//! The client of one model: several endpoints with load spreading and failover, a global limit on
//! requests in flight, retries with exponential backoff and full jitter (honouring
//! `Retry-After`), streaming with an idle timeout, `n` emulated where a server ignores it, token
//! budgets checked before a call is sent, and the replay cache consulted per sample.
//!
//! Knows nothing of tools, prompts or sandboxes: it moves requests and replies.

use crate::budget::{BudgetExceeded, TaskBudget};
use crate::cache::{CacheMode, CachedSample, ReplayCache};
use crate::sse::SseDecoder;
use crate::types::{ChatRequest, ChatResponse, Completion, Usage};
use crate::wire::{self, StreamGatherer};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::time::Sleep;

/// One server address of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Up to and including `/v1`, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// Prices per million tokens, only for showing cost; limits never use them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub prompt: f64,
    pub completion: f64,
    /// Cached prompt tokens, when the provider bills them differently (defaults to `prompt`).
    #[serde(default)]
    pub cached_prompt: Option<f64>,
}

impl Prices {
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_prompt_tokens.min(usage.prompt_tokens) as f64;
        let fresh = usage.prompt_tokens as f64 - cached;
        (fresh * self.prompt
            + cached * self.cached_prompt.unwrap_or(self.prompt)
            + usage.completion_tokens as f64 * self.completion)
            / 1e6
    }
}

/// A model as configured: its name on the server and where it is served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub model: String,
    pub endpoints: Vec<Endpoint>,
    /// Stream replies (server-sent events): needed for the idle timeout that catches a stalled
    /// server. On by default.
    #[serde(default = "yes")]
    pub stream: bool,
    /// Whether the servers honour `n`; `None` finds out on the first call with n > 1.
    #[serde(default)]
    pub supports_n: Option<bool>,
    #[serde(default)]
    pub prices: Option<Prices>,
}

fn yes() -> bool {
    true
}

/// Limits and timings of the client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Requests in flight at once, over all endpoints.
    pub max_in_flight: usize,
    /// Whole-request limit.
    pub request_timeout: Duration,
    /// Longest silence inside a stream before the attempt is abandoned.
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries after the first attempt, for failures that may pass (connection, 429, 5xx,
    /// timeouts, malformed or cut replies).
    pub retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Completion tokens a call without `max_tokens` is assumed to possibly use, for budgets.
    pub assumed_max_tokens: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_in_flight: 64,
            request_timeout: Duration::from_secs(900),
            idle_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            retries: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            assumed_max_tokens: 32_768,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
    #[error(
        "the replay cache has no answer for sample {index} of this request and the mode is replay-only; \
         run with the read-write cache mode to call the model"
    )]
    ReplayMiss { index: u32 },
    #[error("{endpoint} refused the request (HTTP {status}): {message}")]
    Rejected {
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error("gave up after {attempts} attempts; last failure: {last}")]
    Exhausted { attempts: u32, last: String },
    #[error("{0}")]
    Config(String),
    #[error("replay cache: {0}")]
    Cache(String),
}

/// A failed attempt: worth retrying or not.
enum AttemptError {
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fatal(LlmError),
}

struct EndpointState {
    endpoint: Endpoint,
    /// `{base}/chat/completions`, built and parsed once (parsing a URL costs more than the rest
    /// of building a request). A text that is no URL is kept as it is, for reqwest to report on
    /// each attempt as it would without this.
    chat_url: Result<reqwest::Url, String>,
    in_flight: AtomicUsize,
    /// Milliseconds since the client started until which the endpoint is avoided.
    avoid_until_ms: std::sync::atomic::AtomicU64,
}

const N_UNKNOWN: u8 = 0;
const N_YES: u8 = 1;
const N_NO: u8 = 2;

/// A client for one model. Cheap to share (`Arc`); all methods take `&self`.
pub struct LlmClient {
    http: reqwest::Client,
    spec: ModelSpec,
    options: ClientOptions,
    endpoints: Vec<EndpointState>,
    permits: Arc<Semaphore>,
    cache: Arc<ReplayCache>,
    n_support: AtomicU8,
    rotation: AtomicUsize,
    started: Instant,
}

impl LlmClient {
    pub fn new(
        spec: ModelSpec,
        options: ClientOptions,
        cache: Arc<ReplayCache>,
    ) -> Result<LlmClient, LlmError> {
        if spec.endpoints.is_empty() {
            return Err(LlmError::Config(format!(
                "model {} has no endpoint: set OPENAI_BASE_URL, --base-url or endpoints in ponder.toml",
                spec.model
            )));
        }
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .pool_max_idle_per_host(options.max_in_flight)
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build the HTTP client: {e}")))?;
        let n_support = match spec.supports_n {
            Some(true) => N_YES,
            Some(false) => N_NO,
            None => N_UNKNOWN,
        };
        Ok(LlmClient {
            http,
            endpoints: spec
                .endpoints
                .iter()
                .map(|e| {
                    let url = format!("{}/chat/completions", e.base_url.trim_end_matches('/'));
                    EndpointState {
                        chat_url: reqwest::Url::parse(&url).map_err(|_| url),
                        endpoint: e.clone(),
                        in_flight: AtomicUsize::new(0),
                        avoid_until_ms: 0.into(),
                    }
                })
                .collect(),
            permits: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            spec,
            options,
            cache,
            n_support: AtomicU8::new(n_support),
            rotation: AtomicUsize::new(0),
            started: Instant::now(),
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether the servers were found to honour `n` (`None`: not known yet).
    pub fn supports_n(&self) -> Option<bool> {
        match self.n_support.load(Ordering::Relaxed) {
            N_YES => Some(true),
            N_NO => Some(false),
            _ => None,
        }
    }

    /// Asks for `request.n` samples. Cached samples are reused; the others are requested (one
    /// request with `n`, or one request each where the server ignores `n`) and cached as they
    /// arrive, so an error part-way loses nothing already paid for.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        budget: &TaskBudget,
    ) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let n = request.n.max(1);
        let mut samples: Vec<Option<Completion>> = vec![None; n as usize];
        let mut cached = 0;
        let mut model = String::new();
        // Each key hashes the whole request: computed once, for the lookup and the store.
        let keys: Vec<String> = if self.cache.mode() == CacheMode::Off {
            Vec::new()
        } else {
            (0..n)
                .map(|i| ReplayCache::key(&self.spec.model, request, i))
                .collect()
        };
        for (i, key) in keys.iter().enumerate() {
            let i = i as u32;
            let found = match self.cache.get(key) {
                Ok(found) => found,
                // Replay-only mode reports a miss as an error; the client decides what a
                // miss means (all of them are listed below, not just the first).
                Err(e) if e.downcast_ref::<crate::cache::ReplayMiss>().is_some() => None,
                Err(e) => return Err(LlmError::Cache(format!("{e:#}"))),
            };
            if let Some(hit) = found {
                model = hit.model;
                samples[i as usize] = Some(Completion {
                    index: i,
                    ..hit.completion
                });
                cached += 1;
            }
        }
        let mut missing: Vec<u32> = (0..n).filter(|i| samples[*i as usize].is_none()).collect();
        if let Some(first) = missing.first()
            && self.cache.mode() == CacheMode::Replay
        {
            return Err(LlmError::ReplayMiss { index: *first });
        }
        let mut usage = Usage::default();
        let mut emulated = false;
        if !missing.is_empty()
            && (missing.len() == 1 || self.n_support.load(Ordering::Relaxed) != N_NO)
        {
            let asked = missing.len() as u32;
            // A lone sample gets the seed an emulated one in its place would get, so that the
            // same sample comes back however it is asked for.
            let slot = (asked == 1).then(|| missing[0]);
            let (m, got, u) = self.call(request, asked, slot, budget).await?;
            model = m;
            usage.add(&u);
            if asked > 1 {
                let honoured = got.len() as u32 >= asked;
                self.n_support
                    .store(if honoured { N_YES } else { N_NO }, Ordering::Relaxed);
            }
            let share = split_usage(&u, got.len());
            let slots: Vec<u32> = missing.drain(..got.len().min(missing.len())).collect();
            for (slot, completion) in slots.into_iter().zip(got) {
                self.keep(&keys, slot, completion, &model, &share, &mut samples)?;
            }
        }
        if !missing.is_empty() {
            emulated = true;
            let calls = missing
                .iter()
                .map(|slot| self.call(request, 1, Some(*slot), budget));
            let results = futures_util::future::join_all(calls).await;
            let mut first_error = None;
            for (slot, result) in missing.iter().zip(results) {
                match result {
                    Ok((m, got, u)) => {
                        model = m;
                        usage.add(&u);
                        match got.into_iter().next() {
                            Some(c) => self.keep(&keys, *slot, c, &model, &u, &mut samples)?,
                            None => {
                                first_error.get_or_insert(LlmError::Exhausted {
                                    attempts: 1,
                                    last: "the reply had no choices".into(),
                                });
                            }
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(ChatResponse {
            model,
            choices: samples.into_iter().flatten().collect(),
            usage,
            cached_samples: cached,
            emulated_n: emulated,
            elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    fn keep(
        &self,
        keys: &[String],
        slot: u32,
        completion: Completion,
        model: &str,
        usage: &Usage,
        samples: &mut [Option<Completion>],
    ) -> Result<(), LlmError> {
        let completion = Completion {
            index: slot,
            ..completion
        };
        if self.cache.mode() == CacheMode::ReadWrite
            && let Some(key) = keys.get(slot as usize)
        {
            let sample = CachedSample {
                model: model.to_string(),
                completion: completion.clone(),
                usage: *usage,
            };
            self.cache
                .put(key, &sample)
                .map_err(|e| LlmError::Cache(format!("{e:#}")))?;
        }
        samples[slot as usize] = Some(completion);
        Ok(())
    }

    /// One logical call (with retries): `n` samples of `request`. `seed_slot` offsets the seed
    /// for an emulated sample, so that separate requests do not repeat one sample.
    async fn call(
        &self,
        request: &ChatRequest,
        n: u32,
        seed_slot: Option<u32>,
        budget: &TaskBudget,
    ) -> Result<(String, Vec<Completion>, Usage), LlmError> {
        let seed = match (seed_slot, request.seed) {
            (Some(slot), Some(seed)) => Some(seed.wrapping_add(slot as u64)),
            _ => None,
        };
        let body = bytes::Bytes::from(wire::request_bytes(
            &self.spec.model,
            request,
            n,
            self.spec.stream,
            seed,
        ));
        let completion_cap = request
            .max_tokens
            .unwrap_or(self.options.assumed_max_tokens) as u64
            * n as u64;
        let reservation = budget.reserve(prompt_estimate(request) + completion_cap)?;
        let mut last = String::new();
        let attempts = self.options.retries + 1;
        for attempt in 0..attempts {
            let ep = self.pick_endpoint();
            let outcome = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| LlmError::Config("the client was shut down".into()))?;
                let state = &self.endpoints[ep];
                state.in_flight.fetch_add(1, Ordering::Relaxed);
                // Boxed: an attempt's future is large (the body read, the stream's state, the
                // timer), and inline it made every call's future a few kilobytes that were copied
                // as futures were built and moved, and polled through cold cache lines.
                let r = Box::pin(self.attempt(ep, body.clone())).await;
                state.in_flight.fetch_sub(1, Ordering::Relaxed);
                r
            };
            match outcome {
                Ok((model, choices, usage)) => {
                    let usage = usage.unwrap_or_else(|| estimated_usage(request, &choices));
                    reservation.settle(&usage);
                    return Ok((model, choices, usage));
                }
                Err(AttemptError::Fatal(e)) => return Err(e),
                Err(AttemptError::Retry {
                    reason,
                    retry_after,
                }) => {
                    tracing::warn!(
                        "{} (attempt {} of {attempts}): {reason}",
                        self.endpoints[ep].endpoint.base_url,
                        attempt + 1
                    );
                    last = format!("{}: {reason}", self.endpoints[ep].endpoint.base_url);
                    if attempt + 1 == attempts {
                        break;
                    }
                    let wait = self.backoff(attempt, retry_after);
                    // Other calls go to other endpoints meanwhile.
                    let until = self.started.elapsed() + wait;
                    self.endpoints[ep]
                        .avoid_until_ms
                        .store(until.as_millis() as u64, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Err(LlmError::Exhausted { attempts, last })
    }

    /// Full jitter over an exponential ceiling; a server's `Retry-After` is a floor.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .options
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.options.backoff_max);
        let jittered = ceiling.mul_f64(rand::random::<f64>());
        retry_after.map_or(jittered, |r| r.max(jittered))
    }

    /// The endpoint with the fewest requests in flight among those not being avoided, rotating
    /// among equals.
    fn pick_endpoint(&self) -> usize {
        let now = self.started.elapsed().as_millis() as u64;
        let start = self.rotation.fetch_add(1, Ordering::Relaxed);
        let count = self.endpoints.len();
        let mut best: Option<(bool, usize, usize)> = None;
        for k in 0..count {
            let i = (start + k) % count;
            let e = &self.endpoints[i];
            let avoided = e.avoid_until_ms.load(Ordering::Relaxed) > now;
            let load = e.in_flight.load(Ordering::Relaxed);
            let better = match best {
                None => true,
                Some((b_avoided, b_load, _)) => (avoided, load) < (b_avoided, b_load),
            };
            if better {
                best = Some((avoided, load, i));
            }
        }
        best.map_or(0, |b| b.2)
    }

    /// One request to one endpoint. A single timer per attempt bounds both the whole request
    /// (`request_timeout`) and, in a stream, the wait for each event (`idle_timeout`): events
    /// only note when they came, and the timer is moved on when it fires early, so a reply of
    /// many events costs one timer rather than one per event.
    async fn attempt(
        &self,
        ep: usize,
        body: bytes::Bytes,
    ) -> Result<(String, Vec<Completion>, Option<Usage>), AttemptError> {
        let state = &self.endpoints[ep];
        let endpoint = &state.endpoint;
        let builder = match &state.chat_url {
            Ok(url) => self.http.post(url.clone()),
            Err(text) => self.http.post(text.as_str()),
        };
        let mut req = builder
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &endpoint.api_key {
            req = req.bearer_auth(key);
        }
        let request_deadline = tokio::time::Instant::now() + self.options.request_timeout;
        let mut timer = pin!(tokio::time::sleep_until(request_deadline));
        let whole_request_timed_out = || AttemptError::Retry {
            reason: format!(
                "timed out: no whole reply within {:?}",
                self.options.request_timeout
            ),
            retry_after: None,
        };
        let response = within(timer.as_mut(), req.send())
            .await
            .ok_or_else(whole_request_timed_out)?
            .map_err(|e| AttemptError::Retry {
                reason: describe(&e),
                retry_after: None,
            })?;
        if !response.status().is_success() {
            // Rare, and its body read is a large future: kept out of the attempt's own.
            return Err(Box::pin(self.refusal(ep, response, timer.as_mut())).await);
        }
        if !self.spec.stream {
            let bytes = within(timer.as_mut(), response.bytes())
                .await
                .ok_or_else(whole_request_timed_out)?
                .map_err(|e| AttemptError::Retry {
                    reason: describe(&e),
                    retry_after: None,
                })?;
            return wire::parse_reply(&bytes).map_err(|m| AttemptError::Retry {
                reason: m.0,
                retry_after: None,
            });
        }
        StreamWait {
            response,
            timer,
            request_deadline,
            idle: self.options.idle_timeout,
            last_event: tokio::time::Instant::now(),
        }
        .read_reply(&whole_request_timed_out)
        .await
    }

    /// What an HTTP error status means for the call: retry (429, 408, 5xx) or give up.
    async fn refusal(
        &self,
        ep: usize,
        response: reqwest::Response,
        timer: Pin<&mut Sleep>,
    ) -> AttemptError {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
        let text = within(timer, response.text())
            .await
            .and_then(Result::ok)
            .unwrap_or_default();
        let message = error_message(&text);
        let code = status.as_u16();
        if code == 429 || code == 408 || status.is_server_error() {
            AttemptError::Retry {
                reason: format!("HTTP {code}: {message}"),
                retry_after,
            }
        } else {
            AttemptError::Fatal(LlmError::Rejected {
                endpoint: self.endpoints[ep].endpoint.base_url.clone(),
                status: code,
                message,
            })
        }
    }

    /// `GET {base}/models` of every endpoint: the model names, or why not.
    pub async fn list_models(&self) -> Vec<(Endpoint, Result<(Vec<String>, Duration), String>)> {
        let mut out = Vec::new();
        for state in &self.endpoints {
            let e = &state.endpoint;
            let started = Instant::now();
            let mut req = self
                .http
                .get(format!("{}/models", e.base_url.trim_end_matches('/')))
                .timeout(self.options.connect_timeout * 3);
            if let Some(key) = &e.api_key {
                req = req.bearer_auth(key);
            }
            let result = async {
                let r = req.send().await.map_err(|e| describe(&e))?;
                let status = r.status();
                let text = r.text().await.map_err(|e| describe(&e))?;
                if !status.is_success() {
                    return Err(format!(
                        "HTTP {}: {}",
                        status.as_u16(),
                        error_message(&text)
                    ));
                }
                let v: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
                let names = v["data"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|m| m["id"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok((names, started.elapsed()))
            }
            .await;
            out.push((e.clone(), result));
        }
        out
    }
}

/// The body of a streamed reply being read, with the one timer of its attempt.
struct StreamWait<'a> {
    response: reqwest::Response,
    timer: Pin<&'a mut Sleep>,
    request_deadline: tokio::time::Instant,
    idle: Duration,
    /// When the last event came (or the stream began): the next one is due `idle` later.
    last_event: tokio::time::Instant,
}

impl StreamWait<'_> {
    /// Reads the events of the reply to its end and gathers them into samples.
    async fn read_reply(
        mut self,
        whole: &impl Fn() -> AttemptError,
    ) -> Result<(String, Vec<Completion>, Option<Usage>), AttemptError> {
        self.timer
            .as_mut()
            .reset(self.request_deadline.min(self.last_event + self.idle));
        let mut events = SseDecoder::default();
        let mut gatherer = StreamGatherer::default();
        loop {
            let mut any = false;
            while !gatherer.is_done()
                && let Some(data) = events.next_event().map_err(|e| AttemptError::Retry {
                    reason: format!("the stream broke: {e}"),
                    retry_after: None,
                })?
            {
                any = true;
                gatherer.push(data).map_err(|m| AttemptError::Retry {
                    reason: m.0,
                    retry_after: None,
                })?;
            }
            if any && !gatherer.is_done() {
                self.last_event = tokio::time::Instant::now();
            }
            // One wait for the next chunk serves both reading and, after `[DONE]`, draining.
            let chunk = self.next_chunk(whole).await;
            if gatherer.is_done() {
                // The connection goes back to the pool only once the body is read to its end,
                // which a server sends right after `[DONE]`; left unread, it would be closed and
                // the next call would open a new one. A server that does not end the body is
                // waited for no longer than for an event, and the reply stands.
                if let Ok(Some(_)) = chunk {
                    continue;
                }
                return Ok(gatherer.finish());
            }
            match chunk? {
                Some(bytes) => events.feed(&bytes),
                None => break,
            }
        }
        if !gatherer.all_finished() {
            return Err(AttemptError::Retry {
                reason: "the stream ended before the reply was complete".into(),
                retry_after: None,
            });
        }
        Ok(gatherer.finish())
    }

    /// The next chunk of the body, `None` at its end; an error if it broke or a time limit
    /// passed (`whole` makes the one for `request_timeout`).
    async fn next_chunk(
        &mut self,
        whole: &impl Fn() -> AttemptError,
    ) -> Result<Option<bytes::Bytes>, AttemptError> {
        loop {
            if let Some(chunk) = within(self.timer.as_mut(), self.response.chunk()).await {
                return chunk.map_err(|e| AttemptError::Retry {
                    reason: format!("the stream broke: {}", describe(&e)),
                    retry_after: None,
                });
            }
            let now = tokio::time::Instant::now();
            if now >= self.request_deadline {
                return Err(whole());
            }
            let due = self.last_event + self.idle;
            if now >= due {
                return Err(AttemptError::Retry {
                    reason: format!("the stream stalled: nothing for {:?}", self.idle),
                    retry_after: None,
                });
            }
            // Events came since the timer was set: it waits out the rest from the last one.
            self.timer.as_mut().reset(self.request_deadline.min(due));
        }
    }
}

/// `fut`'s output, or `None` if `timer` fires first. `fut` is polled first, so a reply that is
/// already there is taken even at the deadline.
async fn within<F: Future>(mut timer: Pin<&mut Sleep>, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Divides a call's usage among its samples, for the cache's per-sample record.
fn split_usage(u: &Usage, parts: usize) -> Usage {
    let p = parts.max(1) as u64;
    Usage {
        prompt_tokens: u.prompt_tokens / p,
        completion_tokens: u.completion_tokens / p,
        cached_prompt_tokens: u.cached_prompt_tokens / p,
        reasoning_tokens: u.reasoning_tokens / p,
    }
}

/// An upper estimate of prompt tokens before the server counts them: about three bytes a token
/// for code and English (tokenizers average nearer four), plus per-message framing.
pub fn prompt_estimate(request: &ChatRequest) -> u64 {
    request
        .messages
        .iter()
        .map(|m| {
            m.content.len() as u64 / 3
                + 8
                + m.tool_calls
                    .iter()
                    .map(|c| c.arguments.len() as u64 / 3)
                    .sum::<u64>()
        })
        .sum()
}

/// When a server reports no usage: the estimate of the prompt, and four bytes a token of output.
fn estimated_usage(request: &ChatRequest, choices: &[Completion]) -> Usage {
    let completion: u64 = choices
        .iter()
        .map(|c| (c.answer.len() + c.reasoning.as_ref().map_or(0, String::len)) as u64 / 4 + 1)
        .sum();
    Usage {
        prompt_tokens: prompt_estimate(request),
        completion_tokens: completion,
        ..Usage::default()
    }
}

/// The `error.message` of an OpenAI-style error body, else the body's start.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("detail"))
                .and_then(|m| m.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the reply broke off"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}
