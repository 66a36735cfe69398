//! `ponder eval`: grading patches on SWE-bench-style instances without Docker.
//!
//! Owns the orchestration of one evaluation run: selecting instances, mapping each instance's
//! spec to an environment recipe ([`recipe`]), running the per-instance pipeline on a pool of
//! workers ([`runner`]), the run directory with resume ([`store`]) and the test-run cache
//! ([`cache`]). It composes the execution crates (`ponder-repo`, `ponder-env`,
//! `ponder-sandbox`) with the benchmark's rules (`ponder-swebench`) and adds no rules of its own.

pub mod cache;
pub mod internet;
pub mod recipe;
pub mod runner;
pub mod store;
pub mod warm;

pub use recipe::{HARNESS_ERA, RecipeDefaults, ResolveBefore};
pub use runner::{EvalOptions, EvalSummary, PatchMode, run_eval};
pub use store::{InstanceResult, RunStore};
