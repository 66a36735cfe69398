//! The SWE-SynInfer+ workflow's stages (repository understanding, fault localization, patch
//! generation, patch verification; see ../shared/docs/system.md). So far: stage 3's edit blocks
//! and the diff they make, and tool calls read from text for servers without function calling. The stages talk to models through ponder-llm and see code through
//! ponder-code; this crate owns the decisions, not the IO.

pub mod calls;
pub mod edit;
pub mod prompts;

pub use calls::{Extracted, extract_calls};
pub use edit::{EditBlock, EditError, EditedFiles, Span, apply_edit, parse_edits};
pub use prompts::{Prompts, StageLimits};
