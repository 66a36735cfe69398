//! Repository understanding for ponder: a code index of a source tree (definitions with exact
//! line spans, cached on disk and refreshed incrementally), file skeletons, the code-search tools
//! the model calls in fault localization, and BM25 retrieval over files.
//!
//! Definitions come from a tokenizer-level scanner (`scanner`) by default and from tree-sitter
//! (`python`) on request; skeletons and class signatures are rendered from tree-sitter's tree.
//!
//! This crate reads source trees and nothing else: it runs no code of the repository, talks to no
//! model and knows nothing of benchmarks. Python is the first language; `python.rs` is the one
//! place that knows a grammar.

pub mod bm25;
pub mod index;
pub mod python;
pub mod scanner;
pub mod search;
pub mod skeleton;
pub mod symbol;
pub mod visibility;

pub use bm25::Retrieved;
pub use index::{CodeIndex, DefinitionParser, FileEntry, IndexOptions, IndexStats, SymbolRef};
pub use search::{CallError, Hit, SearchLimits, TOOLS, ToolCall, ToolOutput, ToolSpec};
pub use skeleton::{SkeletonOptions, class_signature, file_skeleton};
pub use symbol::{FileStatus, Symbol, SymbolKind};
pub use visibility::Visibility;
