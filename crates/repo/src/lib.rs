//! Repositories as ponder sees them: where a repository's history comes from (a mirror folder,
//! a clone URL, a local path, a PyPI source distribution), a private checkout of one commit for
//! each task, and applying patches to that checkout the way the SWE-bench harness does.
//!
//! Owns: git plumbing and patch application. Must not: run tests, build environments, or know
//! about models. Every git call goes through [`git::Git`], so errors name the command that failed.

pub mod checkout;
pub mod git;
pub mod patch;
pub mod sdist;
pub mod source;

pub use checkout::Checkout;
pub use patch::{ApplyMethod, ApplyOutcome, PatchApplier};
pub use source::{RepoSource, RepoStore};
