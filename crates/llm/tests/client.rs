//! The client against a real HTTP server speaking the OpenAI wire format (ponder-scripted-model:
//! a test double whose replies are scripted): reasoning in both deliveries, streamed and not,
//! `n` honoured and ignored, logprobs and yes/no scores, injected faults, failover, the
//! concurrency limit, budgets and the replay cache.

use ponder_llm::{
    CacheMode, ChatRequest, ClientOptions, Endpoint, Limits, LlmClient, LlmError, Message,
    ModelSpec, ReplayCache, RunBudget, ScoreMethod,
};
use ponder_scripted_model::{Fault, Reply, Script, ScriptedServer, ServerOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn spec(server: &ScriptedServer, stream: bool) -> ModelSpec {
    ModelSpec {
        model: "scripted-model".into(),
        endpoints: vec![Endpoint {
            base_url: server.base_url(),
            api_key: None,
        }],
        stream,
        supports_n: None,
        prices: None,
    }
}

fn fast() -> ClientOptions {
    ClientOptions {
        retries: 3,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

fn client(server: &ScriptedServer, stream: bool) -> LlmClient {
    LlmClient::new(
        spec(server, stream),
        fast(),
        Arc::new(ReplayCache::disabled()),
    )
    .unwrap()
}

fn ask(text: &str) -> ChatRequest {
    let mut r = ChatRequest::new(vec![Message::system("be brief"), Message::user(text)]);
    r.max_tokens = Some(64);
    r
}

fn unlimited() -> ponder_llm::TaskBudget {
    RunBudget::unlimited().task()
}

#[tokio::test]
async fn reasoning_is_split_streamed_or_not() {
    for stream in [true, false] {
        let server = ScriptedServer::start(
            ServerOptions::default(),
            Script::queue([
                Reply::reasoning("two plus two", "4").with_usage(30, 12, 24),
                Reply::inline_think("<think>add them</think>\n<answer>4</answer>"),
                Reply::reasoning("a long thought that never", "").with_finish_reason("length"),
            ]),
        );
        let c = client(&server, stream);
        let r = c.chat(&ask("2+2?"), &unlimited()).await.unwrap();
        let s = &r.choices[0];
        assert_eq!(
            (s.reasoning.as_deref(), s.answer.as_str()),
            (Some("two plus two"), "4"),
            "stream={stream}"
        );
        assert_eq!(
            (
                r.usage.prompt_tokens,
                r.usage.completion_tokens,
                r.usage.cached_prompt_tokens
            ),
            (30, 12, 24)
        );
        assert_eq!(r.model, "scripted-model");
        let r = c.chat(&ask("again"), &unlimited()).await.unwrap();
        assert_eq!(
            (
                r.choices[0].reasoning.as_deref(),
                r.choices[0].answer.as_str()
            ),
            (Some("add them"), "4")
        );
        let r = c.chat(&ask("long"), &unlimited()).await.unwrap();
        assert!(
            r.choices[0].cut_in_reasoning,
            "stream={stream}: {:?}",
            r.choices[0]
        );
        assert!(r.choices[0].finish_reason.is_length());
        let sent = &server.requests()[0];
        assert_eq!(sent["stream"].as_bool().unwrap_or(false), stream);
        assert_eq!(sent["max_tokens"], 64);
    }
}

#[tokio::test]
async fn n_is_emulated_where_the_server_ignores_it() {
    let honours = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::texts(["a", "b", "c"])),
    );
    let c = client(&honours, true);
    let mut req = ask("three please");
    req.n = 3;
    let r = c.chat(&req, &unlimited()).await.unwrap();
    assert_eq!(
        r.choices
            .iter()
            .map(|c| c.answer.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert!(!r.emulated_n);
    assert_eq!(honours.request_count(), 1);
    assert_eq!(c.supports_n(), Some(true));

    let ignores = ScriptedServer::start(
        ServerOptions {
            ignores_n: true,
            ..ServerOptions::default()
        },
        Script::always(Reply::text("one")),
    );
    let c = client(&ignores, true);
    req.seed = Some(7);
    let r = c.chat(&req, &unlimited()).await.unwrap();
    assert_eq!(r.choices.len(), 3);
    assert_eq!(
        r.choices.iter().map(|c| c.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(r.emulated_n);
    assert_eq!(
        ignores.request_count(),
        3,
        "one request with n, then one per missing sample"
    );
    assert_eq!(c.supports_n(), Some(false));
    // Known now: the next call goes straight to one request per sample, each with its own seed.
    let before = ignores.request_count();
    c.chat(&req, &unlimited()).await.unwrap();
    let sent = ignores.requests();
    assert_eq!(sent.len() - before, 3);
    let mut seeds: Vec<u64> = sent[before..]
        .iter()
        .map(|r| r["seed"].as_u64().unwrap())
        .collect();
    seeds.sort();
    assert_eq!(seeds, [7, 8, 9]);
    assert!(sent[before..].iter().all(|r| r.get("n").is_none()));
}

#[tokio::test]
async fn logprobs_give_yes_scores_and_sampling_stands_in_without_them() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::text("Yes").with_logprobs([(
            "Yes",
            (0.7f64).ln(),
            vec![("Yes", (0.7f64).ln()), ("No", (0.3f64).ln())],
        )])),
    );
    let c = client(&server, true);
    let score = c
        .score_yes(
            &ask("Is this patch right? Answer yes or no."),
            4,
            &unlimited(),
        )
        .await
        .unwrap();
    assert_eq!(score.method, ScoreMethod::Logprobs);
    assert!((score.p_yes - 0.7).abs() < 1e-6, "{score:?}");
    let sent = &server.requests()[0];
    assert_eq!(
        (
            sent["logprobs"].as_bool(),
            sent["top_logprobs"].as_u64(),
            sent["max_tokens"].as_u64()
        ),
        (Some(true), Some(20), Some(1))
    );

    let no_logprobs = ScriptedServer::start(
        ServerOptions {
            supports_logprobs: false,
            ..ServerOptions::default()
        },
        Script::from_fn(|_, i| {
            Reply::texts(if i == 0 {
                vec!["Yes"]
            } else {
                vec!["Yes", "No", "yes.", "No"]
            })
        }),
    );
    let c = client(&no_logprobs, false);
    let score = c
        .score_yes(&ask("Is this patch right?"), 4, &unlimited())
        .await
        .unwrap();
    assert_eq!((score.method, score.samples), (ScoreMethod::Sampling, 4));
    assert!((score.p_yes - 0.5).abs() < 1e-9, "{score:?}");
}

#[tokio::test]
async fn time_limits_count_from_the_last_event_and_the_request_start() {
    // Events 200 ms apart take longer than the 500 ms idle limit in all, and the reply stands.
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(
            Reply::text("one two three four five").with_chunk_delay(Duration::from_millis(200)),
        ),
    );
    let started = Instant::now();
    let r = client(&server, true)
        .chat(&ask("hi"), &unlimited())
        .await
        .unwrap();
    assert_eq!(r.choices[0].answer, "one two three four five");
    assert!(started.elapsed() > Duration::from_millis(500));
    assert_eq!(server.request_count(), 1);

    // The whole-request limit ends an attempt, streamed or not, however lively the stream.
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        ..fast()
    };
    for stream in [true, false] {
        let slow = if stream {
            Reply::text("a long text that trickles in").with_chunk_delay(Duration::from_millis(100))
        } else {
            Reply::text("a slow text").with_delay(Duration::from_millis(600))
        };
        let server = ScriptedServer::start(
            ServerOptions::default(),
            Script::queue([slow, Reply::text("quick")]),
        );
        let c = LlmClient::new(
            spec(&server, stream),
            options.clone(),
            Arc::new(ReplayCache::disabled()),
        )
        .unwrap();
        let r = c.chat(&ask("hi"), &unlimited()).await.unwrap();
        assert_eq!(r.choices[0].answer, "quick", "stream: {stream}");
        assert_eq!(server.request_count(), 2, "stream: {stream}");
    }
}

#[tokio::test]
async fn passing_faults_are_retried_and_lasting_ones_reported() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([
            Reply::fault(Fault::error(500, "overloaded")),
            Reply::fault(Fault::DropConnection),
            // Stream faults part-way through a text (a fault reply alone has one empty sample,
            // which can be complete within two chunks).
            Reply::text("a long text that stalls")
                .with_fault(Fault::StallStream { after_chunks: 2 }),
            Reply::text("a long text cut short")
                .with_fault(Fault::TruncatedStream { after_chunks: 2 }),
            Reply::text("a long text broken off").with_fault(Fault::CutStream { after_chunks: 1 }),
            Reply::fault(Fault::MalformedJson),
            Reply::text("finally"),
        ]),
    );
    let options = ClientOptions {
        retries: 6,
        ..fast()
    };
    let c = LlmClient::new(
        spec(&server, true),
        options,
        Arc::new(ReplayCache::disabled()),
    )
    .unwrap();
    let r = c.chat(&ask("hi"), &unlimited()).await.unwrap();
    assert_eq!(r.choices[0].answer, "finally");
    assert_eq!(server.request_count(), 7);

    // 429 waits at least what Retry-After says.
    let limited = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([
            Reply::fault(Fault::RateLimited {
                retry_after: Duration::from_secs(1),
            }),
            Reply::text("ok"),
        ]),
    );
    let started = Instant::now();
    let r = client(&limited, true)
        .chat(&ask("hi"), &unlimited())
        .await
        .unwrap();
    assert_eq!(r.choices[0].answer, "ok");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // A 400 cannot succeed by repeating it.
    let bad = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::fault(Fault::error(400, "max_tokens is too large"))),
    );
    let err = client(&bad, true)
        .chat(&ask("hi"), &unlimited())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Rejected { status: 400, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("max_tokens is too large"));
    assert_eq!(bad.request_count(), 1);

    // Failing every time: the attempts run out and the last reason is given.
    let down = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::fault(Fault::error(503, "no capacity"))),
    );
    let err = client(&down, true)
        .chat(&ask("hi"), &unlimited())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Exhausted { attempts: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no capacity"));
    assert_eq!(down.request_count(), 4);

    // Wrong key: 401, not retried.
    let locked = ScriptedServer::start(
        ServerOptions {
            api_key: Some("secret".into()),
            ..ServerOptions::default()
        },
        Script::always(Reply::text("x")),
    );
    let err = client(&locked, true)
        .chat(&ask("hi"), &unlimited())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Rejected { status: 401, .. }),
        "{err}"
    );
    let mut keyed = spec(&locked, true);
    keyed.endpoints[0].api_key = Some("secret".into());
    let c = LlmClient::new(keyed, fast(), Arc::new(ReplayCache::disabled())).unwrap();
    assert_eq!(
        c.chat(&ask("hi"), &unlimited()).await.unwrap().choices[0].answer,
        "x"
    );
}

#[tokio::test]
async fn a_dead_endpoint_fails_over_and_load_spreads() {
    let a = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::text("from a").with_delay(Duration::from_millis(50))),
    );
    let b = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::text("from b").with_delay(Duration::from_millis(50))),
    );
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let spec = ModelSpec {
        model: "scripted-model".into(),
        endpoints: vec![
            Endpoint {
                base_url: dead,
                api_key: None,
            },
            Endpoint {
                base_url: a.base_url(),
                api_key: None,
            },
            Endpoint {
                base_url: b.base_url(),
                api_key: None,
            },
        ],
        stream: true,
        supports_n: None,
        prices: None,
    };
    let c = Arc::new(LlmClient::new(spec, fast(), Arc::new(ReplayCache::disabled())).unwrap());
    let calls = (0..20).map(|i| {
        let c = c.clone();
        tokio::spawn(async move { c.chat(&ask(&format!("q{i}")), &unlimited()).await })
    });
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(a.request_count() + b.request_count(), 20);
    assert!(
        a.request_count() >= 5 && b.request_count() >= 5,
        "spread: a {} b {}",
        a.request_count(),
        b.request_count()
    );
}

#[tokio::test]
async fn requests_in_flight_stay_under_the_limit() {
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(Reply::text("ok").with_delay(Duration::from_millis(100))),
    );
    let options = ClientOptions {
        max_in_flight: 4,
        ..fast()
    };
    let c = Arc::new(
        LlmClient::new(
            spec(&server, true),
            options,
            Arc::new(ReplayCache::disabled()),
        )
        .unwrap(),
    );
    let calls: Vec<_> = (0..24)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.chat(&ask(&format!("q{i}")), &unlimited()).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(server.request_count(), 24);
    assert!(
        server.max_in_flight() <= 4,
        "peak {}",
        server.max_in_flight()
    );
    assert_eq!(server.max_in_flight(), 4);
}

#[tokio::test]
async fn a_token_limit_holds_under_concurrency() {
    // Every call may use its max_tokens (100) and does; prompts are small and reported.
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::always(
            Reply::text("done")
                .with_usage(10, 100, 0)
                .with_delay(Duration::from_millis(20)),
        ),
    );
    let c = Arc::new(client(&server, true));
    let run = RunBudget::new(Limits {
        per_call: None,
        per_task: None,
        per_run: Some(2_000),
    });
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let c = c.clone();
            let task = run.task();
            tokio::spawn(async move {
                let mut r = ask(&format!("question {i}"));
                r.max_tokens = Some(100);
                c.chat(&r, &task).await
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(LlmError::Budget(e)) => {
                refused += 1;
                assert!(e.to_string().contains("run"), "{e}");
            }
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    let used = run.used();
    assert!(used.total() <= 2_000, "the limit was passed: {used:?}");
    assert_eq!(ok + refused, 64);
    assert!(ok >= 10, "only {ok} calls fitted");
    assert_eq!(server.request_count(), ok, "a refused call is never sent");
    // A call that could never fit is refused before it is sent, by the per-call limit.
    let strict = RunBudget::new(Limits {
        per_call: Some(50),
        per_task: None,
        per_run: None,
    });
    let err = c.chat(&ask("big"), &strict.task()).await.unwrap_err();
    assert!(matches!(err, LlmError::Budget(_)), "{err}");
}

#[tokio::test]
async fn the_replay_cache_pays_once_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite");
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::from_fn(|_, i| {
            Reply::texts([
                format!("s{i}a"),
                format!("s{i}b"),
                format!("s{i}c"),
                format!("s{i}d"),
            ])
        }),
    );
    let cache = Arc::new(ReplayCache::open(&path, CacheMode::ReadWrite).unwrap());
    let c = LlmClient::new(spec(&server, true), fast(), cache).unwrap();
    let mut req = ask("sample me");
    req.temperature = Some(0.8);
    req.n = 2;
    let first = c.chat(&req, &unlimited()).await.unwrap();
    assert_eq!(server.request_count(), 1);
    let again = c.chat(&req, &unlimited()).await.unwrap();
    assert_eq!(server.request_count(), 1, "paid once");
    assert_eq!(again.cached_samples, 2);
    assert_eq!(again.choices, first.choices);
    assert_eq!(again.usage.total(), 0);
    // Asking for more reuses the two it has and requests only the rest.
    req.n = 4;
    let more = c.chat(&req, &unlimited()).await.unwrap();
    assert_eq!((more.cached_samples, server.request_count()), (2, 2));
    assert_eq!(server.requests()[1]["n"], 2);
    assert_eq!(more.choices[..2], first.choices[..]);

    // A later process replays without a server; a miss there is an error and nothing is sent.
    drop(c);
    let replay = Arc::new(ReplayCache::open(&path, CacheMode::Replay).unwrap());
    let c = LlmClient::new(spec(&server, true), fast(), replay).unwrap();
    let r = c.chat(&req, &unlimited()).await.unwrap();
    assert_eq!(r.cached_samples, 4);
    let err = c.chat(&ask("never asked"), &unlimited()).await.unwrap_err();
    assert!(matches!(err, LlmError::ReplayMiss { index: 0 }), "{err}");
    assert_eq!(server.request_count(), 2);
}

#[tokio::test]
async fn samples_paid_for_survive_a_failure_part_way() {
    // The server ignores n; of three emulated samples, the second always fails.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.sqlite");
    let fail_second = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = fail_second.clone();
    let server = ScriptedServer::start(
        ServerOptions {
            ignores_n: true,
            ..ServerOptions::default()
        },
        Script::from_fn(move |req, _| {
            let seed = req["seed"].as_u64().unwrap_or(0);
            if seed == 11 && flag.load(std::sync::atomic::Ordering::SeqCst) {
                Reply::fault(Fault::error(500, "crashed"))
            } else {
                Reply::text(format!("seed {seed}"))
            }
        }),
    );
    let mut spec = spec(&server, true);
    spec.supports_n = Some(false);
    let options = ClientOptions {
        retries: 1,
        ..fast()
    };
    let c = LlmClient::new(
        spec.clone(),
        options.clone(),
        Arc::new(ReplayCache::open(&path, CacheMode::ReadWrite).unwrap()),
    )
    .unwrap();
    let mut req = ask("three");
    req.n = 3;
    req.seed = Some(10);
    assert!(c.chat(&req, &unlimited()).await.is_err());
    let paid = server.request_count();
    fail_second.store(false, std::sync::atomic::Ordering::SeqCst);
    let c = LlmClient::new(
        spec,
        options,
        Arc::new(ReplayCache::open(&path, CacheMode::ReadWrite).unwrap()),
    )
    .unwrap();
    let r = c.chat(&req, &unlimited()).await.unwrap();
    assert_eq!(r.cached_samples, 2, "the two that succeeded were kept");
    assert_eq!(
        server.request_count(),
        paid + 1,
        "only the missing sample is asked again"
    );
    assert_eq!(
        r.choices
            .iter()
            .map(|c| c.answer.as_str())
            .collect::<Vec<_>>(),
        ["seed 10", "seed 11", "seed 12"]
    );
}
