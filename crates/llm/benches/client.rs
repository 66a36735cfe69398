//! What `LlmClient::chat` costs on top of plain HTTP: `cargo bench -p ponder-llm --bench client`.
//!
//! One scripted model server (ponder-scripted-model, a real HTTP server on 127.0.0.1 with its own
//! 2-thread runtime) lives in the parent process for the whole run. Every measured phase runs in
//! a child process of this same binary, started with `--child ...`, that talks to that server:
//! either through `LlmClient::chat` (replay cache off, unlimited budget, streamed or not) or
//! through a bare `reqwest::Client` that POSTs the very same JSON body and reads the whole
//! response body (SSE included) without parsing it. Children keep the measures apart: the
//! server's memory (it logs every request body) and CPU never count as the client's, and each
//! phase starts from a fresh heap so its peak RSS (VmHWM) belongs to that phase alone.
//!
//! Measured: per-call latency at 1 request in flight (client and bare interleaved in blocks, so
//! drift from other load hits both alike), throughput, latency and peak RSS at 256 in flight,
//! and CPU time per call of the client process (all its threads, from
//! `/proc/self/task/*/schedstat`), which is the cost that stays when the model server runs on
//! another machine. Last, the client's own JSON and SSE work per call is timed on one thread
//! without HTTP, to show how much of the difference it explains.
//!
//! The server shares the machine's cores with the client, so at 256 in flight the whole system
//! is CPU-bound and the wall-clock throughput ratio moves with any other load; the table also
//! gives the ratio that the measured CPU times predict, which does not.

use anyhow::{Context, Result, bail};
use ponder_llm::{
    ChatRequest, ClientOptions, Endpoint, LlmClient, Message, ModelSpec, ReplayCache, RunBudget,
    TaskBudget, sse::SseDecoder, wire,
};
use ponder_scripted_model::{Reply, Script, ScriptedServer, ServerOptions};
use serde_json::{Value, json};
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MODEL: &str = "scripted-model";
/// Short, so that timings are dominated by HTTP and client work. Streamed in 4-character pieces
/// (the server's default), it makes 5 content events plus role, usage and `[DONE]`.
const ANSWER: &str = "The answer is 42.";
/// The delay of the "small fixed delay" replies.
const DELAY_MS: u64 = 2;
/// Calls per 1-in-flight phase, for each of client and bare (after a warm-up of `BLOCK` each).
const LATENCY_CALLS_DELAYED: usize = 1_000;
const LATENCY_CALLS_IMMEDIATE: usize = 2_000;
/// Client and bare alternate every `BLOCK` calls in the 1-in-flight phases.
const BLOCK: usize = 100;
/// Requests per 256-in-flight run, and runs per driver and mode (medians are reported).
const LOAD_CALLS: usize = 5_000;
const LOAD_IN_FLIGHT: usize = 256;
const LOAD_ROUNDS: usize = 7;
const THROUGHPUT_GOAL: f64 = 0.95;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` adds `--bench`; only `--child` means something here.
    if let Some(at) = args.iter().position(|a| a == "--child") {
        return child(&args[at + 1..]);
    }
    if args.iter().any(|a| a == "--serve") {
        return serve();
    }
    parent()
}

// ---------------------------------------------------------------------------------------------
// Parent: the server, the children, the table.
// ---------------------------------------------------------------------------------------------

/// Latency summary of one driver in one phase, microseconds.
#[derive(Clone, Copy, Default)]
struct Timing {
    p50: f64,
    p90: f64,
    cpu_per_call: f64,
}

impl Timing {
    fn from_json(v: &Value) -> Result<Timing> {
        Ok(Timing {
            p50: number(v, "p50_us")?,
            p90: number(v, "p90_us")?,
            cpu_per_call: number(v, "cpu_us_per_call")?,
        })
    }
}

fn number(v: &Value, key: &str) -> Result<f64> {
    v[key]
        .as_f64()
        .with_context(|| format!("the phase's result has no number `{key}`: {v}"))
}

/// One 256-in-flight child run.
struct LoadRun {
    timing: Timing,
    calls_per_sec: f64,
    peak_rss_growth_kib: f64,
    /// CPU time of the server process (the parent) over the whole child, per request sent.
    server_cpu_per_call: f64,
}

/// A client run and a bare run of one round, made one right after the other.
struct Round {
    client: LoadRun,
    bare: LoadRun,
}

struct LatencyRow {
    delay_ms: u64,
    stream: bool,
    calls: usize,
    client: Timing,
    bare: Timing,
}

fn parent() -> Result<()> {
    let exe = std::env::current_exe().context("cannot find this benchmark's own executable")?;
    let load_before = load_average();
    // One server for every phase; the user message says how long to wait before answering.
    let server = ScriptedServer::try_start(
        ServerOptions::default(),
        Script::from_fn(|body, _| Reply::text(ANSWER).with_delay(delay_asked(body))),
    )
    .context("cannot start the scripted model server on 127.0.0.1")?;
    let url = server.base_url();
    let started = Instant::now();

    let mut latency_rows = Vec::new();
    for (delay_ms, calls) in [
        (DELAY_MS, LATENCY_CALLS_DELAYED),
        (0, LATENCY_CALLS_IMMEDIATE),
    ] {
        for stream in [true, false] {
            let args = [
                "latency",
                &url,
                &delay_ms.to_string(),
                &calls.to_string(),
                flag(stream),
            ];
            let out = run_child(&exe, &args)?;
            latency_rows.push(LatencyRow {
                delay_ms,
                stream,
                calls,
                client: Timing::from_json(&out["client"])?,
                bare: Timing::from_json(&out["bare"])?,
            });
        }
    }

    let breakdown = run_child(&exe, &["breakdown", &url])?;

    // Client and bare run back to back in each round, which of them first alternating, so that
    // other load on the machine falls on both alike; ratios are taken within a round.
    let mut rounds: [Vec<Round>; 2] = Default::default();
    for round in 0..LOAD_ROUNDS {
        for (mode, stream) in [true, false].into_iter().enumerate() {
            let run = |use_client| load_run(&exe, &url, use_client, stream);
            let (client, bare) = if round % 2 == 0 {
                let bare = run(false)?;
                (run(true)?, bare)
            } else {
                let client = run(true)?;
                (client, run(false)?)
            };
            rounds[mode].push(Round { client, bare });
        }
    }
    let elapsed = started.elapsed();
    let load_after = load_average();
    let server_max_in_flight = server.max_in_flight();
    let server_requests = server.request_count();
    drop(server);

    print_latency_table(&latency_rows, load_before.as_deref());
    print_load_table(&rounds, server_max_in_flight);
    print_breakdown(&breakdown)?;
    println!(
        "\n{server_requests} requests served in {:.1} s; load average before {}, after {}",
        elapsed.as_secs_f64(),
        load_before.as_deref().unwrap_or("?"),
        load_after.as_deref().unwrap_or("?"),
    );
    Ok(())
}

/// Only the server, until killed, for profiling a child by hand (e.g. under callgrind):
/// `BENCH --serve` prints the base URL to pass to `BENCH --child load URL client stream 2000 256`.
fn serve() -> Result<()> {
    let server = ScriptedServer::try_start(
        ServerOptions::default(),
        Script::from_fn(|body, _| Reply::text(ANSWER).with_delay(delay_asked(body))),
    )
    .context("cannot start the scripted model server on 127.0.0.1")?;
    println!("{}", server.base_url());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// One 256-in-flight child, with the server's CPU time over it.
fn load_run(exe: &std::path::Path, url: &str, use_client: bool, stream: bool) -> Result<LoadRun> {
    let cpu_before = process_cpu_ns();
    let out = run_child(
        exe,
        &[
            "load",
            url,
            if use_client { "client" } else { "bare" },
            flag(stream),
            &LOAD_CALLS.to_string(),
            &LOAD_IN_FLIGHT.to_string(),
        ],
    )?;
    let server_cpu_ns = process_cpu_ns().saturating_sub(cpu_before) as f64;
    Ok(LoadRun {
        timing: Timing::from_json(&out)?,
        calls_per_sec: number(&out, "calls_per_sec")?,
        peak_rss_growth_kib: number(&out, "peak_rss_growth_kib")?,
        server_cpu_per_call: server_cpu_ns / 1e3 / number(&out, "requests_sent")?,
    })
}

fn print_latency_table(rows: &[LatencyRow], load: Option<&str>) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "ponder-llm client benchmark: {cores} cores, load average at start {}",
        load.unwrap_or("?")
    );
    println!(
        "server: ponder-scripted-model on 127.0.0.1 in the parent process (2 worker threads); \
         each phase runs in a child process (2 worker threads) on the same cores"
    );
    println!(
        "reply: {ANSWER:?}; bare = reqwest POST of the same JSON body + whole body read, unparsed"
    );
    println!(
        "\n1 request in flight: per-call wall time in µs (client and bare alternate every {BLOCK} \
         calls); CPU = all threads of the calling process"
    );
    println!(
        "{:<18} {:>6} {:>16} {:>16} {:>18} {:>22}",
        "reply",
        "calls",
        "client p50/p90",
        "bare p50/p90",
        "overhead p50/p90",
        "CPU µs/call cl/bare"
    );
    for r in rows {
        let label = format!(
            "{} ms, {}",
            r.delay_ms,
            if r.stream { "stream" } else { "no stream" }
        );
        println!(
            "{:<18} {:>6} {:>16} {:>16} {:>18} {:>22}",
            label,
            r.calls,
            pair(r.client.p50, r.client.p90),
            pair(r.bare.p50, r.bare.p90),
            pair(r.client.p50 - r.bare.p50, r.client.p90 - r.bare.p90),
            pair(r.client.cpu_per_call, r.bare.cpu_per_call),
        );
    }
}

fn print_breakdown(b: &Value) -> Result<()> {
    let events = number(b, "events")?;
    let body = number(b, "body_us")?;
    let parse = number(b, "parse_us")?;
    let split = number(b, "split_us")?;
    let gather = number(b, "gather_us")?;
    println!(
        "\nclient-only work per call, one thread, no HTTP (µs): request body built and serialized \
         {body:.1}; whole reply parsed {parse:.1}; SSE body split into {events} events {split:.1}, \
         events gathered {gather:.1}; so no stream {:.1}, stream {:.1}",
        body + parse,
        body + split + gather
    );
    Ok(())
}

/// Median over the rounds of one value.
fn med(rounds: &[Round], f: impl Fn(&Round) -> f64) -> f64 {
    median(&mut rounds.iter().map(f).collect::<Vec<_>>())
}

/// The throughput ratio to expect when CPU is the limit and the server shares the cores: bare
/// loop plus server CPU per call over client plus server CPU per call. Unlike wall-clock
/// throughput, it does not move with other work on the machine.
fn cpu_bound(rounds: &[Round]) -> f64 {
    let client = med(rounds, |x| {
        x.client.timing.cpu_per_call + x.client.server_cpu_per_call
    });
    let bare = med(rounds, |x| {
        x.bare.timing.cpu_per_call + x.bare.server_cpu_per_call
    });
    bare / client
}

fn print_load_table(rounds: &[Vec<Round>; 2], server_max: usize) {
    println!(
        "\n{LOAD_IN_FLIGHT} requests in flight, {DELAY_MS} ms reply delay, {LOAD_CALLS} calls per \
         run, median of {LOAD_ROUNDS} rounds (the server saw up to {server_max} at once)"
    );
    let cell = |f: &dyn Fn(&[Round]) -> String| [f(&rounds[0]), f(&rounds[1])];
    let ratio = |r: &Round| r.client.calls_per_sec / r.bare.calls_per_sec;
    let rows: Vec<(&str, [String; 2])> = vec![
        (
            "client calls/s",
            cell(&|r| format!("{:.0}", med(r, |x| x.client.calls_per_sec))),
        ),
        (
            "bare calls/s",
            cell(&|r| format!("{:.0}", med(r, |x| x.bare.calls_per_sec))),
        ),
        (
            "ratio client/bare (min-max)",
            cell(&|r| {
                let all: Vec<f64> = r.iter().map(ratio).collect();
                let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                format!("{:.3} ({lo:.2}-{hi:.2})", med(r, ratio))
            }),
        ),
        (
            "client p50/p90 µs",
            cell(&|r| {
                pair(
                    med(r, |x| x.client.timing.p50),
                    med(r, |x| x.client.timing.p90),
                )
            }),
        ),
        (
            "bare p50/p90 µs",
            cell(&|r| pair(med(r, |x| x.bare.timing.p50), med(r, |x| x.bare.timing.p90))),
        ),
        (
            "overhead p50/p90 µs",
            cell(&|r| {
                pair(
                    med(r, |x| x.client.timing.p50 - x.bare.timing.p50),
                    med(r, |x| x.client.timing.p90 - x.bare.timing.p90),
                )
            }),
        ),
        (
            "CPU µs/call client/bare",
            cell(&|r| {
                pair(
                    med(r, |x| x.client.timing.cpu_per_call),
                    med(r, |x| x.bare.timing.cpu_per_call),
                )
            }),
        ),
        (
            "server CPU µs/call (cl/bare run)",
            cell(&|r| {
                pair(
                    med(r, |x| x.client.server_cpu_per_call),
                    med(r, |x| x.bare.server_cpu_per_call),
                )
            }),
        ),
        (
            "CPU-bound ratio, this server",
            cell(&|r| format!("{:.3}", cpu_bound(r))),
        ),
        (
            "goal >= 0.95: measured / CPU-bound",
            cell(&|r| {
                let verdict = |x: f64| {
                    if x >= THROUGHPUT_GOAL {
                        "met"
                    } else {
                        "not met"
                    }
                };
                format!("{} / {}", verdict(med(r, ratio)), verdict(cpu_bound(r)))
            }),
        ),
        (
            "CPU ratio bare/client alone",
            cell(&|r| {
                let client = med(r, |x| x.client.timing.cpu_per_call);
                let bare = med(r, |x| x.bare.timing.cpu_per_call);
                format!("{:.3}", bare / client)
            }),
        ),
        (
            "peak RSS growth MiB client/bare",
            cell(&|r| {
                format!(
                    "{:.1} / {:.1}",
                    med(r, |x| x.client.peak_rss_growth_kib) / 1024.0,
                    med(r, |x| x.bare.peak_rss_growth_kib) / 1024.0
                )
            }),
        ),
    ];
    println!("{:<34} {:>18} {:>18}", "measure", "stream", "no stream");
    for (name, [s, n]) in &rows {
        println!("{name:<34} {s:>18} {n:>18}");
    }
}

fn pair(a: f64, b: f64) -> String {
    format!("{a:.0} / {b:.0}")
}

fn flag(b: bool) -> &'static str {
    if b { "stream" } else { "plain" }
}

/// Runs this binary as a child and reads the JSON line it prints last.
fn run_child(exe: &std::path::Path, args: &[&str]) -> Result<Value> {
    let output = Command::new(exe)
        .arg("--child")
        .args(args)
        .output()
        .with_context(|| format!("cannot run {} --child {}", exe.display(), args.join(" ")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "the benchmark phase `{}` failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let line = stdout
        .lines()
        .last()
        .with_context(|| format!("the phase `{}` printed nothing", args.join(" ")))?;
    serde_json::from_str(line)
        .with_context(|| format!("the phase `{}` printed no JSON: {line}", args.join(" ")))
}

/// The reply delay the request asks for: its user message starts with `delay_ms=N`.
fn delay_asked(body: &Value) -> Duration {
    let text = body
        .pointer("/messages/1/content")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ms = text
        .strip_prefix("delay_ms=")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Duration::from_millis(ms)
}

fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

// ---------------------------------------------------------------------------------------------
// Children: one phase each, a JSON line on stdout.
// ---------------------------------------------------------------------------------------------

fn child(args: &[String]) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot build the tokio runtime")?;
    let kind = args.first().map(String::as_str).unwrap_or("");
    let result = match kind {
        "latency" => runtime.block_on(latency_phase(
            arg(args, 1, "url")?,
            arg(args, 2, "delay in ms")?,
            arg(args, 3, "calls")?,
            arg::<String>(args, 4, "stream or plain")? == "stream",
        ))?,
        "load" => runtime.block_on(load_phase(
            arg(args, 1, "url")?,
            arg::<String>(args, 2, "client or bare")? == "client",
            arg::<String>(args, 3, "stream or plain")? == "stream",
            arg(args, 4, "calls")?,
            arg(args, 5, "requests in flight")?,
        ))?,
        "breakdown" => runtime.block_on(breakdown_phase(arg(args, 1, "url")?))?,
        other => bail!(
            "unknown phase `{other}`: a child runs `latency URL DELAY_MS CALLS stream|plain` or \
             `load URL client|bare stream|plain CALLS IN_FLIGHT`"
        ),
    };
    println!("{result}");
    Ok(())
}

fn arg<T: FromStr>(args: &[String], at: usize, what: &str) -> Result<T> {
    let text = args
        .get(at)
        .with_context(|| format!("argument {at} ({what}) is missing"))?;
    text.parse()
        .map_err(|_| anyhow::anyhow!("argument {at} ({what}) is not valid: {text:?}"))
}

/// How a call is made: through the client under test, or as bare HTTP.
enum Driver {
    Client {
        client: Box<LlmClient>,
        request: ChatRequest,
        run: RunBudget,
    },
    Bare {
        http: reqwest::Client,
        url: String,
        body: &'static [u8],
        stream: bool,
    },
}

impl Driver {
    fn client(base_url: &str, stream: bool, delay_ms: u64) -> Result<Driver> {
        let spec = ModelSpec {
            model: MODEL.into(),
            endpoints: vec![Endpoint {
                base_url: base_url.to_string(),
                api_key: None,
            }],
            stream,
            supports_n: None,
            prices: None,
        };
        let options = ClientOptions {
            max_in_flight: LOAD_IN_FLIGHT,
            ..ClientOptions::default()
        };
        let client = LlmClient::new(spec, options, Arc::new(ReplayCache::disabled()))
            .context("cannot build the model client")?;
        Ok(Driver::Client {
            client: Box::new(client),
            request: request(delay_ms),
            run: RunBudget::unlimited(),
        })
    }

    fn bare(base_url: &str, stream: bool, delay_ms: u64) -> Result<Driver> {
        // reqwest is built without a default TLS provider; plain HTTP still wants one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(LOAD_IN_FLIGHT)
            .build()
            .context("cannot build the bare HTTP client")?;
        // The very body the client sends, serialized once: the bare loop does no JSON work.
        let body = wire::request_body(MODEL, &request(delay_ms), 1, stream);
        let body = serde_json::to_vec(&body).context("cannot serialize the request body")?;
        Ok(Driver::Bare {
            http,
            url: format!("{base_url}/chat/completions"),
            body: Box::leak(body.into_boxed_slice()),
            stream,
        })
    }

    /// One call, checked: a benchmark of wrong answers would measure nothing.
    async fn call(&self, budget: &Option<TaskBudget>) -> Result<()> {
        match self {
            Driver::Client {
                client, request, ..
            } => {
                let budget = budget.as_ref().context("a client call needs a budget")?;
                let reply = client
                    .chat(request, budget)
                    .await
                    .context("the client call failed")?;
                let answer = reply.choices.first().map(|c| c.answer.as_str());
                if answer != Some(ANSWER) {
                    bail!("the client returned {answer:?}, not {ANSWER:?}");
                }
            }
            Driver::Bare {
                http,
                url,
                body,
                stream,
            } => {
                let response = http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(*body)
                    .send()
                    .await
                    .context("the bare request failed")?;
                let status = response.status();
                let bytes = response.bytes().await.context("the bare body broke off")?;
                let expected: &[u8] = if *stream {
                    b"data: [DONE]"
                } else {
                    ANSWER.as_bytes()
                };
                // memmem, not a naive window scan: the bare loop should cost what the least a
                // real client does (read the body, see that it is whole), no more.
                if !status.is_success() || memchr::memmem::find(&bytes, expected).is_none() {
                    bail!(
                        "the bare request got HTTP {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
            }
        }
        Ok(())
    }

    /// Each worker is one task with its own budget, all charging one run, as in ponder.
    fn task_budget(&self) -> Option<TaskBudget> {
        match self {
            Driver::Client { run, .. } => Some(run.task()),
            Driver::Bare { .. } => None,
        }
    }
}

fn request(delay_ms: u64) -> ChatRequest {
    let mut r = ChatRequest::new(vec![
        Message::system("Answer in one short sentence."),
        Message::user(format!("delay_ms={delay_ms} What is six times seven?")),
    ]);
    r.max_tokens = Some(32);
    r.temperature = Some(0.0);
    r
}

/// `total` calls with `in_flight` workers; per-call wall times in nanoseconds.
async fn drive(driver: &Arc<Driver>, total: usize, in_flight: usize) -> Result<Vec<u64>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight.max(1) {
        let driver = Arc::clone(driver);
        let next = Arc::clone(&next);
        workers.spawn(async move {
            let budget = driver.task_budget();
            let mut times = Vec::with_capacity(total / in_flight.max(1) + 1);
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                driver.call(&budget).await?;
                times.push(t.elapsed().as_nanos() as u64);
            }
            Ok::<_, anyhow::Error>(times)
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(joined) = workers.join_next().await {
        all.extend(joined.context("a benchmark worker panicked")??);
    }
    Ok(all)
}

async fn latency_phase(url: String, delay_ms: u64, calls: usize, stream: bool) -> Result<Value> {
    let drivers = [
        Arc::new(Driver::client(&url, stream, delay_ms)?),
        Arc::new(Driver::bare(&url, stream, delay_ms)?),
    ];
    for d in &drivers {
        drive(d, BLOCK, 1).await?;
    }
    let mut times: [Vec<u64>; 2] = Default::default();
    let mut cpu = [0u64; 2];
    let mut done = 0;
    while done < calls {
        let n = BLOCK.min(calls - done);
        for (i, d) in drivers.iter().enumerate() {
            let before = process_cpu_ns();
            times[i].extend(drive(d, n, 1).await?);
            cpu[i] += process_cpu_ns().saturating_sub(before);
        }
        done += n;
    }
    let [client, bare] = [0, 1].map(|i| summary(&mut times[i], cpu[i], calls));
    Ok(json!({"client": client, "bare": bare}))
}

async fn load_phase(
    url: String,
    use_client: bool,
    stream: bool,
    calls: usize,
    in_flight: usize,
) -> Result<Value> {
    let driver = Arc::new(if use_client {
        Driver::client(&url, stream, DELAY_MS)?
    } else {
        Driver::bare(&url, stream, DELAY_MS)?
    });
    let rss_before = status_kib("VmRSS")?;
    // The first run opens the connections (memory counts them); the second is timed warm.
    drive(&driver, calls, in_flight).await?;
    let cpu_before = process_cpu_ns();
    let started = Instant::now();
    let mut times = drive(&driver, calls, in_flight).await?;
    let wall = started.elapsed();
    let cpu = process_cpu_ns().saturating_sub(cpu_before);
    let peak = status_kib("VmHWM")?;
    let mut out = summary(&mut times, cpu, calls);
    out["calls_per_sec"] = json!(calls as f64 / wall.as_secs_f64());
    out["peak_rss_growth_kib"] = json!(peak.saturating_sub(rss_before));
    out["rss_before_kib"] = json!(rss_before);
    out["requests_sent"] = json!(2 * calls);
    Ok(out)
}

/// Where the client's extra CPU goes: the JSON and SSE work it does per call and the bare loop
/// does not, timed on one thread without HTTP, on reply bodies fetched from the server.
async fn breakdown_phase(url: String) -> Result<Value> {
    let mut bodies = Vec::new();
    for stream in [false, true] {
        let Driver::Bare {
            http, url, body, ..
        } = Driver::bare(&url, stream, 0)?
        else {
            bail!("Driver::bare made something else");
        };
        let response = http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .context("cannot fetch a sample reply")?;
        bodies.push(
            response
                .bytes()
                .await
                .context("cannot read a sample reply")?
                .to_vec(),
        );
    }
    let [plain, sse] = [&bodies[0], &bodies[1]];
    // As the client reads a stream: each event's data handed on as it is split off.
    let events = |body: &[u8]| -> Vec<String> {
        let mut decoder = SseDecoder::default();
        decoder.feed(body);
        let mut out = Vec::new();
        while let Ok(Some(data)) = decoder.next_event() {
            out.push(data.to_string());
        }
        out
    };
    let data = events(sse);
    if data.is_empty() || wire::parse_reply(plain).is_err() {
        bail!(
            "the sample replies do not parse: {}",
            String::from_utf8_lossy(plain)
        );
    }
    let request = request(0);
    const ITERATIONS: u32 = 20_000;
    let time = |f: &dyn Fn()| {
        let started = Instant::now();
        for _ in 0..ITERATIONS {
            f();
        }
        started.elapsed().as_secs_f64() * 1e6 / f64::from(ITERATIONS)
    };
    let body_us = time(&|| {
        let r = std::hint::black_box(&request);
        std::hint::black_box(wire::request_bytes(MODEL, r, 1, true, None));
    });
    let parse_us = time(&|| {
        std::hint::black_box(wire::parse_reply(std::hint::black_box(plain)).ok());
    });
    let split_us = time(&|| {
        let mut decoder = SseDecoder::default();
        decoder.feed(std::hint::black_box(sse));
        while let Ok(Some(data)) = decoder.next_event() {
            std::hint::black_box(data);
        }
    });
    let gather_us = time(&|| {
        let mut g = wire::StreamGatherer::default();
        for d in std::hint::black_box(&data) {
            let _ = g.push(d);
        }
        std::hint::black_box(g.finish());
    });
    Ok(json!({
        "events": data.len(),
        "body_us": body_us,
        "parse_us": parse_us,
        "split_us": split_us,
        "gather_us": gather_us,
    }))
}

fn summary(times: &mut [u64], cpu_ns: u64, calls: usize) -> Value {
    times.sort_unstable();
    json!({
        "p50_us": percentile(times, 0.5) as f64 / 1e3,
        "p90_us": percentile(times, 0.9) as f64 / 1e3,
        "cpu_us_per_call": cpu_ns as f64 / 1e3 / calls as f64,
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("/proc/self/status has no {field} line"))
}

/// CPU time of every thread of this process so far, in nanoseconds (the first field of each
/// thread's schedstat, which counts user and kernel time at nanosecond resolution; the tick
/// counts of /proc/self/stat are too coarse for phases of a few hundred milliseconds). Threads
/// that have exited are not counted; the runtimes here keep theirs.
fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
