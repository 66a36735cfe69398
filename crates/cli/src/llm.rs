//! `ponder llm`: check the configured model servers and talk to a model from the command line.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ponder_llm::{
    CacheMode, ChatRequest, EnvVars, LlmClient, LlmConfig, Message, ReplayCache, RunBudget,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum LlmCommand {
    /// For each endpoint of a model: reachable, latency, model names, and whether it honours n,
    /// returns logprobs and separates reasoning.
    Ping {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Ask a model one question.
    Chat {
        /// The question (the user message).
        prompt: String,
        #[command(flatten)]
        model: ModelArgs,
        /// A system message to send first.
        #[arg(long)]
        system: Option<String>,
        /// Samples to draw.
        #[arg(long, default_value_t = 1)]
        n: u32,
        #[arg(long)]
        temperature: Option<f32>,
        #[arg(long)]
        top_p: Option<f32>,
        #[arg(long)]
        max_tokens: Option<u32>,
        #[arg(long)]
        seed: Option<u64>,
        /// Print each sample's reasoning too.
        #[arg(long)]
        show_reasoning: bool,
        /// Print {"choices":[{"answer","reasoning","finish_reason"}],"usage":{..}}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct ModelArgs {
    /// The model's role in the configuration (policy, prm, orm, teacher, ...).
    #[arg(long, default_value = "policy")]
    role: String,
    /// Server address up to /v1, overriding the configuration and OPENAI_BASE_URL.
    #[arg(long)]
    base_url: Option<String>,
    /// Model name on the server, overriding the configuration and PONDER_MODEL.
    #[arg(long)]
    model: Option<String>,
    /// Configuration file [default: ./ponder.toml if present].
    #[arg(long, env = "PONDER_CONFIG")]
    config: Option<PathBuf>,
    /// Replay cache: read-write (reuse what was paid for), replay (a miss is an error) or off.
    #[arg(long, default_value = "read-write")]
    cache: CacheMode,
    /// Retries after the first attempt.
    #[arg(long)]
    retries: Option<u32>,
    /// Refuse a call whose worst case (prompt estimate + max_tokens x n) passes this many tokens.
    #[arg(long)]
    max_tokens_per_call: Option<u64>,
    /// Stop sending calls once this many tokens are used or reserved (one command is one run
    /// and one task here).
    #[arg(long)]
    max_tokens_per_run: Option<u64>,
}

impl ModelArgs {
    /// The configuration file in use, if any.
    pub(crate) fn config_file(&self) -> Option<PathBuf> {
        LlmConfig::file_path(self.config.as_deref())
    }

    fn budget(&self, config: &LlmConfig) -> RunBudget {
        let mut limits = config.limits;
        limits.per_call = self.max_tokens_per_call.or(limits.per_call);
        limits.per_run = self.max_tokens_per_run.or(limits.per_run);
        RunBudget::new(limits)
    }

    pub(crate) fn client(&self, cache_root: &Path) -> Result<(LlmClient, RunBudget)> {
        self.client_with(
            &self.role,
            self.base_url.as_deref(),
            self.model.as_deref(),
            cache_root,
        )
    }

    /// A client for a reward model named on the command line, with this command's cache and
    /// limits: a model role of the configuration when `name` is one, otherwise a model of
    /// that name served where the main model is (its endpoints, --base-url included).
    pub(crate) fn client_for_judge(
        &self,
        name: &str,
        cache_root: &Path,
    ) -> Result<(LlmClient, RunBudget)> {
        let env = EnvVars::from_process();
        let config = LlmConfig::load(self.config.as_deref(), &env)?;
        if config.models.contains_key(name) {
            self.client_with(name, None, None, cache_root)
        } else {
            self.client_with(&self.role, self.base_url.as_deref(), Some(name), cache_root)
        }
    }

    /// What names the main model on the command line, for keys that must change with it.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}|{}|{}",
            self.role,
            self.base_url.as_deref().unwrap_or(""),
            self.model.as_deref().unwrap_or("")
        )
    }

    fn client_with(
        &self,
        role: &str,
        base_url: Option<&str>,
        model: Option<&str>,
        cache_root: &Path,
    ) -> Result<(LlmClient, RunBudget)> {
        let env = EnvVars::from_process();
        let config = LlmConfig::load(self.config.as_deref(), &env)?
            .with_overrides(role, &env, base_url, model);
        let spec = config.model(role)?;
        let cache = match self.cache {
            CacheMode::Off => ReplayCache::disabled(),
            mode => ReplayCache::open(&cache_root.join("llm/replay.sqlite"), mode)?,
        };
        let mut options = config.client.clone();
        if let Some(r) = self.retries {
            options.retries = r;
        }
        let budget = self.budget(&config);
        Ok((LlmClient::new(spec, options, Arc::new(cache))?, budget))
    }
}

pub fn run(command: LlmCommand, cache_root: &Path) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        match command {
            LlmCommand::Ping { model } => ping(model.client(cache_root)?.0).await,
            LlmCommand::Chat {
                prompt,
                model,
                system,
                n,
                temperature,
                top_p,
                max_tokens,
                seed,
                show_reasoning,
                json,
            } => {
                let (client, budget) = model.client(cache_root)?;
                let mut messages = Vec::new();
                if let Some(s) = system {
                    messages.push(Message::system(s));
                }
                messages.push(Message::user(prompt));
                let mut request = ChatRequest::new(messages);
                request.n = n.max(1);
                request.temperature = temperature;
                request.top_p = top_p;
                request.max_tokens = max_tokens;
                request.seed = seed;
                let reply = client.chat(&request, &budget.task()).await?;
                if json {
                    let choices: Vec<_> = reply
                        .choices
                        .iter()
                        .map(|c| {
                            json!({
                                "answer": c.answer,
                                "reasoning": c.reasoning,
                                "finish_reason": c.finish_reason,
                                "cut_in_reasoning": c.cut_in_reasoning,
                            })
                        })
                        .collect();
                    println!(
                        "{}",
                        json!({
                            "model": reply.model,
                            "choices": choices,
                            "usage": reply.usage,
                            "cached_samples": reply.cached_samples,
                            "emulated_n": reply.emulated_n,
                        })
                    );
                } else {
                    for c in &reply.choices {
                        if reply.choices.len() > 1 {
                            println!("--- sample {} ({})", c.index + 1, c.finish_reason.0);
                        }
                        if show_reasoning && let Some(r) = &c.reasoning {
                            println!("<think>\n{}\n</think>", r.trim());
                        }
                        if c.cut_in_reasoning {
                            println!("(cut off while reasoning: no answer)");
                        }
                        println!("{}", c.answer);
                    }
                    let u = reply.usage;
                    let mut line = format!(
                        "tokens: {} prompt ({} cached), {} completion; {:.0} ms",
                        u.prompt_tokens,
                        u.cached_prompt_tokens,
                        u.completion_tokens,
                        reply.elapsed_ms
                    );
                    if reply.cached_samples > 0 {
                        line.push_str(&format!(
                            "; {} sample(s) from the replay cache",
                            reply.cached_samples
                        ));
                    }
                    if let Some(prices) = client.spec().prices {
                        line.push_str(&format!("; cost {:.6}", prices.cost(&u)));
                    }
                    eprintln!("{line}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn ping(client: LlmClient) -> Result<ExitCode> {
    let spec = client.spec().clone();
    println!(
        "model {} ({} endpoint(s))",
        spec.model,
        spec.endpoints.len()
    );
    let mut all_ok = true;
    for (endpoint, result) in client.list_models().await {
        match result {
            Ok((names, latency)) => {
                let served = names.iter().any(|n| n == &spec.model);
                println!(
                    "  {}: up, {:.0} ms, serves {}{}",
                    endpoint.base_url,
                    latency.as_secs_f64() * 1e3,
                    if names.is_empty() {
                        "(no list)".to_string()
                    } else {
                        names.join(", ")
                    },
                    if served || names.is_empty() {
                        ""
                    } else {
                        "  <- the configured model is not among them"
                    }
                );
                all_ok &= served || names.is_empty();
            }
            Err(reason) => {
                println!("  {}: DOWN: {reason}", endpoint.base_url);
                all_ok = false;
            }
        }
    }
    if !all_ok {
        return Ok(ExitCode::from(1));
    }
    // One small probe: two samples of one token with logprobs, no cache.
    let probe_client = LlmClient::new(spec, Default::default(), Arc::new(ReplayCache::disabled()))?;
    let mut request = ChatRequest::new(vec![Message::user(
        "Answer with one word: is the sky blue?",
    )]);
    request.n = 2;
    request.max_tokens = Some(16);
    request.temperature = Some(1.0);
    request.logprobs = true;
    request.top_logprobs = Some(5);
    let started = std::time::Instant::now();
    let reply = probe_client
        .chat(&request, &RunBudget::unlimited().task())
        .await;
    match reply {
        Ok(r) => {
            println!("  probe: {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
            println!(
                "  n > 1: {}",
                if r.emulated_n {
                    "ignored (ponder sends one request per sample)"
                } else {
                    "honoured"
                }
            );
            let lp = r
                .choices
                .iter()
                .any(|c| c.logprobs.as_ref().is_some_and(|l| !l.is_empty()));
            println!(
                "  logprobs: {}",
                if lp {
                    "returned"
                } else {
                    "not returned (reward scores fall back to sampling)"
                }
            );
            let reasoning = r.choices.iter().any(|c| c.reasoning.is_some());
            println!(
                "  reasoning: {}",
                if reasoning {
                    "separated from the answer"
                } else {
                    "none seen in the probe"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => bail!("the endpoints answer /models but a chat request failed: {e}"),
    }
}
