//! ponder's client for OpenAI-compatible model servers (vLLM, SGLang, llama.cpp's server, Ollama,
//! hosted APIs): chat completions streamed or not, reasoning split from answers, `n` emulated
//! where a server ignores it, logprobs and a yes/no scorer for reward models, retries and
//! failover, token budgets enforced before a call is sent, and a replay cache.
//!
//! It moves requests and replies and knows nothing of tools, prompts, repositories or sandboxes.

pub mod budget;
pub mod cache;
pub mod client;
pub mod config;
pub mod reasoning;
pub mod score;
pub mod sse;
pub mod types;
pub mod wire;

pub use budget::{BudgetExceeded, Limits, Reservation, RunBudget, TaskBudget};
pub use cache::{CacheMode, CachedSample, ReplayCache};
pub use client::{ClientOptions, Endpoint, LlmClient, LlmError, ModelSpec, Prices};
pub use config::{EnvVars, LlmConfig};
pub use score::{ScoreMethod, YesScore};
pub use types::{
    ChatRequest, ChatResponse, Completion, FinishReason, Message, Role, TokenLogprob,
    ToolCallRequest, Usage,
};

/// rustls needs one process-wide crypto provider; ring is used (it builds faster than aws-lc on
/// these machines and gives the same TLS). Installing twice is harmless.
pub(crate) fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
