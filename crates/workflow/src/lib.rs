//! The SWE-SynInfer+ workflow's stages (repository understanding, fault localization, patch
//! generation, patch verification; see ../shared/docs/system.md), each a function from explicit
//! inputs to a candidate and its record: stages 1 to 3 in [`stages`], stage 4 in [`verify`]
//! (code runs through the caller's [`Executor`]). Around them: the conversation with history
//! pruning ([`model`]), locations and their resolution ([`locations`]), edit blocks and the diff
//! they make ([`edit`]), tool calls read from text ([`calls`]), prompts as templates
//! ([`prompts`]) and the trajectory's types and schema ([`trajectory`]). `ponder-solve` runs
//! them in order. The stages talk to models through ponder-llm and see code through
//! ponder-code; this crate owns the decisions, not the IO.

pub mod calls;
pub mod edit;
pub mod locations;
pub mod model;
pub mod prompts;
pub mod search;
pub mod stages;
pub mod trajectory;
pub mod verify;

pub use calls::{Extracted, extract_calls};
pub use edit::{EditBlock, EditError, EditedFiles, Span, apply_edit, parse_edits};
pub use locations::{CodeSpan, Location};
pub use model::{Conversation, Sampling, StageModel};
pub use prompts::{Prompts, StageLimits};
pub use search::{
    Choice, Evidence, RewardScore, SearchConfig, SearchNode, SearchTree, Signals, Strategy, choose,
    judge, keep_best, search_schema,
};
pub use stages::{
    Localization, PatchCandidate, StageError, StageInput, Understanding, localize, understand,
    write_patch,
};
pub use trajectory::{
    StageRecord, TRAJECTORY_SCHEMA_VERSION, ToolCallRecord, Trajectory, Turn, json_schema,
};
pub use verify::{
    ExecRun, Executor, Regression, Reproduction, Verification, debug_patch, regression_baseline,
    regression_files, verify_patch, write_reproduction,
};
