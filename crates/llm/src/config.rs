//! Where models are served, from `ponder.toml` and the usual environment variables.
//!
//! ```toml
//! [client]                 # all optional
//! max_in_flight = 64
//! timeout_secs = 900
//! idle_timeout_secs = 120
//! retries = 5
//!
//! [budget]                 # hard token limits (prompt + completion), all optional
//! max_tokens_per_call = 40000
//! max_tokens_per_task = 2000000
//! max_tokens_per_run = 50000000
//!
//! [models.policy]          # roles: policy, prm, orm, teacher, or any name
//! model = "Qwen/Qwen2.5-Coder-32B-Instruct"
//! endpoints = ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]
//! api_key_env = "VLLM_API_KEY"   # or api_key = "..."
//! stream = true
//! supports_n = true              # leave out to detect
//! prices = { prompt = 0.2, completion = 0.6 }   # per million tokens; only for showing cost
//!
//! [stages]                 # ponder solve's limits (ponder-workflow's StageLimits)
//! localization_rounds = 6
//!
//! [sampling]               # ponder solve's sampling (ponder-workflow's Sampling)
//! temperature = 0.0
//! ```
//!
//! Without a file, `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `PONDER_MODEL` (or `OPENAI_MODEL`)
//! define one model that serves every role; a role the file lacks also falls back to them.

use crate::budget::Limits;
use crate::client::{ClientOptions, Endpoint, ModelSpec, Prices};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    client: ClientSection,
    #[serde(default)]
    budget: BudgetSection,
    #[serde(default)]
    models: BTreeMap<String, ModelSection>,
    /// The solving workflow's own sections (`[stages]` limits, `[sampling]`), read by
    /// ponder-workflow's callers; listed so that they are not refused here as unknown.
    #[serde(default)]
    #[allow(dead_code)]
    stages: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    sampling: Option<toml::Table>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetSection {
    max_tokens_per_call: Option<u64>,
    max_tokens_per_task: Option<u64>,
    max_tokens_per_run: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientSection {
    max_in_flight: Option<usize>,
    timeout_secs: Option<f64>,
    idle_timeout_secs: Option<f64>,
    connect_timeout_secs: Option<f64>,
    retries: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    model: String,
    #[serde(default)]
    endpoints: Vec<String>,
    api_key: Option<String>,
    api_key_env: Option<String>,
    #[serde(default = "yes")]
    stream: bool,
    supports_n: Option<bool>,
    prices: Option<Prices>,
}

fn yes() -> bool {
    true
}

/// The models and client options in effect.
#[derive(Debug, Clone, Default)]
pub struct LlmConfig {
    pub models: BTreeMap<String, ModelSpec>,
    pub client: ClientOptions,
    /// Token limits from `[budget]`; command-line options override them.
    pub limits: Limits,
    /// The file read, if any.
    pub source: Option<PathBuf>,
}

/// The environment variables the configuration reads, passed in so tests need not change the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct EnvVars {
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub model: Option<String>,
}

impl EnvVars {
    pub fn from_process() -> EnvVars {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        EnvVars {
            base_url: get("OPENAI_BASE_URL").or_else(|| get("OPENAI_API_BASE")),
            api_key: get("OPENAI_API_KEY"),
            model: get("PONDER_MODEL").or_else(|| get("OPENAI_MODEL")),
        }
    }
}

impl LlmConfig {
    /// The configuration file in use: `path` if given, else `./ponder.toml` if present.
    pub fn file_path(path: Option<&Path>) -> Option<PathBuf> {
        match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from("ponder.toml")).filter(|p| p.is_file()),
        }
    }

    /// Reads `path` if given, else `./ponder.toml` if present, and the environment.
    pub fn load(path: Option<&Path>, env: &EnvVars) -> anyhow::Result<LlmConfig> {
        let chosen = LlmConfig::file_path(path);
        let file: File = match &chosen {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    anyhow::anyhow!("cannot read the configuration {}: {e}", p.display())
                })?;
                toml::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("{} is not a valid ponder configuration: {e}", p.display())
                })?
            }
            None => File::default(),
        };
        let mut client = ClientOptions::default();
        let c = &file.client;
        if let Some(v) = c.max_in_flight {
            client.max_in_flight = v.max(1);
        }
        let secs = |v: f64| Duration::from_secs_f64(v.max(0.001));
        if let Some(v) = c.timeout_secs {
            client.request_timeout = secs(v);
        }
        if let Some(v) = c.idle_timeout_secs {
            client.idle_timeout = secs(v);
        }
        if let Some(v) = c.connect_timeout_secs {
            client.connect_timeout = secs(v);
        }
        if let Some(v) = c.retries {
            client.retries = v;
        }
        let mut models = BTreeMap::new();
        for (role, m) in file.models {
            let key = match (&m.api_key, &m.api_key_env) {
                (Some(k), _) => Some(k.clone()),
                (None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                    anyhow::anyhow!("model {role} reads its API key from ${var}, which is not set")
                })?),
                (None, None) => env.api_key.clone(),
            };
            let urls = if m.endpoints.is_empty() {
                env.base_url.iter().cloned().collect()
            } else {
                m.endpoints.clone()
            };
            if urls.is_empty() {
                anyhow::bail!(
                    "model {role} has no endpoints: add endpoints = [\"http://host:8000/v1\"] or set OPENAI_BASE_URL"
                );
            }
            models.insert(
                role,
                ModelSpec {
                    model: m.model,
                    endpoints: urls
                        .into_iter()
                        .map(|u| Endpoint {
                            base_url: u,
                            api_key: key.clone(),
                        })
                        .collect(),
                    stream: m.stream,
                    supports_n: m.supports_n,
                    prices: m.prices,
                },
            );
        }
        let limits = Limits {
            per_call: file.budget.max_tokens_per_call,
            per_task: file.budget.max_tokens_per_task,
            per_run: file.budget.max_tokens_per_run,
        };
        Ok(LlmConfig {
            models,
            client,
            limits,
            source: chosen,
        })
    }

    /// The model serving `role`: the file's entry, else the one the environment defines.
    pub fn model(&self, role: &str) -> anyhow::Result<ModelSpec> {
        if let Some(m) = self.models.get(role) {
            return Ok(m.clone());
        }
        anyhow::bail!(
            "no model is configured for {role:?}: add [models.{role}] to ponder.toml, or set OPENAI_BASE_URL and PONDER_MODEL, or pass --base-url and --model{}",
            if self.models.is_empty() {
                String::new()
            } else {
                format!(
                    " (configured: {})",
                    self.models.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }
        )
    }

    /// Adds the environment's model under `role` where the file has none, and applies explicit
    /// overrides (command-line flags) to it.
    pub fn with_overrides(
        mut self,
        role: &str,
        env: &EnvVars,
        base_url: Option<&str>,
        model: Option<&str>,
    ) -> LlmConfig {
        let existing = self.models.get(role).cloned();
        let base = base_url.map(str::to_string).or_else(|| {
            if existing.is_none() {
                env.base_url.clone()
            } else {
                None
            }
        });
        let name = model.map(str::to_string).or_else(|| {
            if existing.is_none() {
                env.model.clone()
            } else {
                None
            }
        });
        match existing {
            Some(mut m) => {
                if let Some(b) = base {
                    let key = m
                        .endpoints
                        .first()
                        .and_then(|e| e.api_key.clone())
                        .or_else(|| env.api_key.clone());
                    m.endpoints = vec![Endpoint {
                        base_url: b,
                        api_key: key,
                    }];
                }
                if let Some(n) = name {
                    m.model = n;
                }
                self.models.insert(role.to_string(), m);
            }
            None => {
                if let (Some(b), Some(n)) = (base, name) {
                    self.models.insert(
                        role.to_string(),
                        ModelSpec {
                            model: n,
                            endpoints: vec![Endpoint {
                                base_url: b,
                                api_key: env.api_key.clone(),
                            }],
                            stream: true,
                            supports_n: None,
                            prices: None,
                        },
                    );
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_environment_and_flags_combine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ponder.toml");
        std::fs::write(
            &path,
            "[client]\nmax_in_flight = 8\nretries = 2\n\n[budget]\nmax_tokens_per_run = 1000\n\n[models.policy]\nmodel = \"qwen\"\nendpoints = [\"http://a:8000/v1\", \"http://b:8000/v1\"]\napi_key = \"k\"\nprices = { prompt = 0.2, completion = 0.6 }\n\n[models.prm]\nmodel = \"judge\"\n",
        )
        .unwrap();
        let env = EnvVars {
            base_url: Some("http://env:9000/v1".into()),
            api_key: Some("envkey".into()),
            model: Some("envmodel".into()),
        };
        let cfg = LlmConfig::load(Some(&path), &env).unwrap();
        assert_eq!(cfg.client.max_in_flight, 8);
        assert_eq!(
            (cfg.limits.per_run, cfg.limits.per_call),
            (Some(1000), None)
        );
        let policy = cfg.model("policy").unwrap();
        assert_eq!(policy.endpoints.len(), 2);
        assert_eq!(policy.endpoints[1].api_key.as_deref(), Some("k"));
        // A model without endpoints takes the environment's.
        let prm = cfg.model("prm").unwrap();
        assert_eq!(
            (
                prm.endpoints[0].base_url.as_str(),
                prm.endpoints[0].api_key.as_deref()
            ),
            ("http://env:9000/v1", Some("envkey"))
        );
        assert!(
            cfg.model("orm")
                .unwrap_err()
                .to_string()
                .contains("configured: policy, prm")
        );
        // Roles the file lacks come from the environment; flags win.
        let cfg = cfg.with_overrides("orm", &env, None, None).with_overrides(
            "policy",
            &env,
            Some("http://flag/v1"),
            Some("m2"),
        );
        assert_eq!(cfg.model("orm").unwrap().model, "envmodel");
        let policy = cfg.model("policy").unwrap();
        assert_eq!(
            (policy.model.as_str(), policy.endpoints[0].base_url.as_str()),
            ("m2", "http://flag/v1")
        );

        std::fs::write(
            &path,
            "[models.policy]\nmodel = \"x\"\nendpoint = \"typo\"\n",
        )
        .unwrap();
        let err = LlmConfig::load(Some(&path), &env).unwrap_err().to_string();
        assert!(
            err.contains("is not a valid ponder configuration") && err.contains("endpoint"),
            "{err}"
        );
    }
}
