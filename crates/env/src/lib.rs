//! Python environments without Docker: interpreters, a shared base virtual environment per
//! dependency set, and a cheap per-work-tree layer on top of it.
//!
//! Owns: finding CPython interpreters ([`python`]), the private build tools (uv from PyPI, pip as
//! the fallback; [`tools`]), the plain build recipe and its best-effort detection ([`recipe`]),
//! mapping conda package lists to pip ([`conda`]), the content-addressed store of base
//! environments with locking, status and build logs ([`store`]; requirements the registry
//! cannot provide are dropped and recorded, see [`DroppedRequirement`]), and instance layers
//! ([`layer`], with a stand-in prefix so their interpreter also works through symlinks made
//! elsewhere, see [`standin`]), and the dated index that lets pip resolve as the registry stood
//! on a date ([`dated_index`]). Every command that installs packages or runs a repository's setup code goes
//! through [`ponder_sandbox::Sandbox::run`] with the network on and only the environment being
//! built, the work tree and the download caches writable.
//!
//! Must not: know SWE-bench (the caller maps its specs onto an [`EnvRecipe`]), run anything as
//! root on the host (such recipe commands are recorded as skipped), or modify a base
//! environment after it is marked ready.
//!
//! ```ignore
//! let store = EnvStore::new(EnvStore::default_root(), Sandbox::detect(AllowUnconfined::No)?);
//! let base = store.ensure_base(&recipe, &BuildOptions::default())?;      // built once, shared
//! let layer = store.create_layer(&base, &recipe, worktree, layer_dir, &LayerOptions::default())?;
//! let spec = layer.activation().apply(CommandSpec::shell("pytest -rA").cwd(worktree));
//! ```

pub mod conda;
pub mod dated_index;
pub mod layer;
pub mod python;
pub mod recipe;
mod run;
pub mod standin;
pub mod store;
pub mod tools;
mod unavailable;

use std::path::PathBuf;

pub use conda::{CondaMapping, conda_to_pip};
pub use dated_index::DatedIndex;
pub use layer::{Activation, CommandRecord, Layer, LayerOptions, LayerRecord};
pub use python::{DiscoveryConfig, Interpreter, Interpreters};
pub use recipe::{EnvRecipe, SkipReason, check_date, classify_command};
pub use store::{
    BUILDER_VERSION, BaseEnv, BasePlan, BuildOptions, DroppedRequirement, EnvState, EnvStatus,
    EnvStore, EnvSummary, MAX_DROPPED_REQUIREMENTS, RECIPE_FORMAT, disk_usage,
};
pub use tools::{Tool, ToolChoice};

/// The host's installer settings (index, certificates, proxies) as pip and uv read them, for
/// commands that reach the package index outside a build step.
pub fn installer_env() -> Vec<(String, String)> {
    run::host_installer_env()
}

/// Why an environment could not be provided. Every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(
        "python {wanted} needed by {needed_by}; found {found}; install it with pyenv \
         (`pyenv install {wanted}`) or point PONDER_PYTHONS at one"
    )]
    MissingPython {
        wanted: String,
        needed_by: String,
        found: String,
    },
    #[error("invalid recipe: {0}")]
    InvalidRecipe(String),
    #[error(
        "building environment {hash} failed: {reason}\nfull log: {}\n(the failure is remembered; \
         fix the recipe, or force a rebuild)",
        log.display()
    )]
    BuildFailed {
        hash: String,
        reason: String,
        log: PathBuf,
    },
    #[error(
        "environment {hash} failed to build earlier: {reason}\nlog: {}\n(force a rebuild to try \
         again)",
        log.display()
    )]
    PreviouslyFailed {
        hash: String,
        reason: String,
        log: PathBuf,
    },
    #[error("setting up the layer in {} failed: {reason}\nfull log: {}", dir.display(), log.display())]
    LayerFailed {
        dir: PathBuf,
        reason: String,
        log: PathBuf,
    },
    #[error("{0}")]
    Tool(String),
    #[error("the sandbox could not run a build step: {0}")]
    Sandbox(#[from] ponder_sandbox::SandboxError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}
