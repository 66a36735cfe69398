//! The first three stages as functions from an explicit input state to one candidate output
//! with its record, so that a search can call each several times and compare (system.md
//! section 2). Nothing is hidden in a shared conversation: a stage's input is its arguments.
//!
//! - [`understand`]: file ranking merged with BM25, skeletons, suspicious locations, their code,
//!   an analysis.
//! - [`localize`]: the search-tool loop until the model names bug locations that resolve.
//! - [`write_patch`]: edit blocks, applied with whitespace-tolerant matching and a syntax
//!   check, retried with the reason.
//!
//! Every unusable reply (unknown tool, bad arguments, broken JSON, locations or edits that
//! match nothing, reasoning never closed) is told to the model and retried within the stage's
//! bound; each such turn carries its `recovery` in the record.

use crate::calls::extract_calls;
use crate::edit::{EditedFiles, parse_edits};
use crate::locations::{CodeSpan, Location, parse_locations, resolve_all, tagged};
use crate::model::{Conversation, ModelError, StageModel};
use crate::prompts::{Prompts, StageLimits};
use crate::trajectory::{StageRecord, ToolCallRecord};
use ponder_code::{CodeIndex, SearchLimits, SkeletonOptions, TOOLS, ToolCall};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Instant;

/// What every stage reads: the issue, the code, the model, the prompts and limits.
pub struct StageInput<'a> {
    /// The repository's name as the prompts show it.
    pub repo: &'a str,
    pub issue: &'a str,
    pub index: &'a CodeIndex,
    pub prompts: &'a Prompts,
    pub limits: StageLimits,
    pub model: &'a StageModel,
}

/// Why a stage produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    NoResult(String),
    #[error("prompt template: {0}")]
    Prompt(#[from] minijinja::Error),
}

/// Stage 1's output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Understanding {
    /// Files the model ranked (existing ones only), best first.
    pub ranked_files: Vec<String>,
    /// Files BM25 retrieved with the issue as query.
    pub retrieved_files: Vec<String>,
    /// The merged files shown as skeletons.
    pub shown_files: Vec<String>,
    pub locations: Vec<Location>,
    pub code: Vec<CodeSpan>,
    pub analysis: String,
}

/// Stage 2's output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Localization {
    pub locations: Vec<Location>,
    pub code: Vec<CodeSpan>,
    /// The model's last answer, with its explanation of the bug.
    pub explanation: String,
}

/// Stage 3's output: a patch that applies to the tree and keeps it parsing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PatchCandidate {
    pub diff: String,
    pub files: Vec<String>,
}

/// Runs `body` and fills the record's time and failure.
async fn recorded<T: Serialize>(
    stage: &str,
    body: impl AsyncFnOnce(&mut StageRecord) -> Result<T, StageError>,
) -> (Result<T, StageError>, StageRecord) {
    let started = Instant::now();
    let mut record = StageRecord::new(stage);
    let result = body(&mut record).await;
    match &result {
        Ok(out) => record.output = serde_json::to_value(out).unwrap_or(Value::Null),
        Err(e) => record.failure = Some(e.to_string()),
    }
    record.seconds = started.elapsed().as_secs_f64();
    (result, record)
}

/// Stage 1: repository understanding.
pub async fn understand(
    input: &StageInput<'_>,
) -> (Result<Understanding, StageError>, StageRecord) {
    recorded("understand", async |record: &mut StageRecord| {
        let index = input.index;
        let limits = input.limits;
        // Ranking by the model.
        let files: Vec<&str> = index
            .visible_files()
            .map(|f| index.file(f).path.as_str())
            .filter(|p| p.ends_with(".py"))
            .collect();
        let prompt = input.prompts.render(
            "rank_files",
            json!({"repo": input.repo, "issue": input.issue, "files": files, "limit": limits.ranked_files}),
        )?;
        let mut conv = Conversation::new(None, prompt);
        let mut ranked = Vec::new();
        for attempt in 0..=limits.tool_call_retries {
            let reply = conv.ask_recorded(input.model, None, record).await?;
            let named: Vec<String> = tagged_last(&reply.answer, "files")
                .unwrap_or("")
                .lines()
                .map(|l| l.trim().trim_start_matches("- ").trim_matches('`').to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            ranked = named
                .iter()
                .filter_map(|n| index.resolve_file(n).ok())
                .map(|f| index.file(f).path.clone())
                .fold(Vec::new(), dedup_push);
            ranked.truncate(limits.ranked_files);
            if !ranked.is_empty() || attempt == limits.tool_call_retries {
                break;
            }
            let why = if named.is_empty() {
                "no <files> block with paths was found in your answer".to_owned()
            } else {
                format!("none of {} is a file of the list", named.join(", "))
            };
            mark_recovery(record, &why);
            conv.push_user(format!(
                "Your answer could not be used: {why}. Answer again with a <files> block of paths exactly as listed."
            ));
        }
        // Merged with BM25: the model's ranking first.
        let retrieved: Vec<String> = index
            .retrieve(input.issue, limits.bm25_files)
            .into_iter()
            .map(|r| r.file)
            .collect();
        let shown: Vec<String> = ranked
            .iter()
            .chain(retrieved.iter())
            .cloned()
            .fold(Vec::new(), dedup_push)
            .into_iter()
            .take(limits.skeleton_files)
            .collect();
        let skeletons: Vec<Value> = shown
            .iter()
            .filter_map(|p| {
                let text = index.skeleton(p, &SkeletonOptions::default()).ok()?;
                Some(json!({"path": p, "text": text}))
            })
            .collect();
        // Suspicious locations.
        let prompt = input.prompts.render(
            "locations",
            json!({"repo": input.repo, "issue": input.issue, "skeletons": skeletons,
                   "limit": limits.suspicious_locations}),
        )?;
        let mut conv = Conversation::new(None, prompt);
        let mut locations = Vec::new();
        let mut code = Vec::new();
        for attempt in 0..=limits.tool_call_retries {
            let reply = conv.ask_recorded(input.model, None, record).await?;
            locations = parse_locations(&reply.answer, "locations");
            locations.truncate(limits.suspicious_locations);
            let (spans, misses) = resolve_all(index, &locations);
            code = spans;
            if !code.is_empty() || attempt == limits.tool_call_retries {
                break;
            }
            let why = if locations.is_empty() {
                "no <locations> block with <location> entries was found".to_owned()
            } else {
                format!("none of the locations names real code: {}", misses.join("; "))
            };
            mark_recovery(record, &why);
            conv.push_user(format!(
                "Your answer could not be used: {why}. Answer again with a <locations> block."
            ));
        }
        // Analysis of the retrieved code.
        let analysis = if code.is_empty() {
            String::new()
        } else {
            let prompt = input.prompts.render(
                "analysis",
                json!({"repo": input.repo, "issue": input.issue, "code": code}),
            )?;
            let mut conv = Conversation::new(None, prompt);
            conv.ask_recorded(input.model, None, record).await?.answer
        };
        Ok(Understanding {
            ranked_files: ranked,
            retrieved_files: retrieved,
            shown_files: shown,
            locations,
            code,
            analysis,
        })
    })
    .await
}

/// Stage 2: fault localization with the search tools.
pub async fn localize(
    input: &StageInput<'_>,
    understanding: &Understanding,
) -> (Result<Localization, StageError>, StageRecord) {
    recorded("localize", async |record: &mut StageRecord| {
        let limits = input.limits;
        let native = input.model.sampling.native_tools;
        let tools: Vec<Value> = TOOLS
            .iter()
            .map(|t| {
                json!({"name": t.name, "description": t.description,
                       "params": t.parameters.iter().map(|(n, _)| *n).collect::<Vec<_>>()})
            })
            .collect();
        let schemas = Value::Array(TOOLS.iter().map(|t| t.json_schema()).collect());
        let system = input.prompts.render(
            "localize_system",
            json!({"repo": input.repo, "tools": tools, "native_tools": native,
                   "rounds": limits.localization_rounds,
                   "example": "search_method_in_class(\"method_name\", \"ClassName\")"}),
        )?;
        let user = input.prompts.render(
            "localize_user",
            json!({"issue": input.issue,
                   "analysis": (!understanding.analysis.is_empty()).then_some(&understanding.analysis)}),
        )?;
        let mut conv = Conversation::new(Some(system), user);
        let search = SearchLimits::default();
        let mut rounds = 0;
        let mut retries = 0;
        loop {
            let reply = conv.ask_recorded(input.model, Some(&schemas), record).await?;
            if reply.answer.contains("<bug_locations>") {
                let locations = parse_locations(&reply.answer, "bug_locations");
                let (code, misses) = resolve_all(input.index, &locations);
                if !code.is_empty() && misses.is_empty() {
                    return Ok(Localization {
                        locations,
                        code,
                        explanation: reply.answer,
                    });
                }
                let why = if locations.is_empty() {
                    "the <bug_locations> block has no <location> with a <file>".to_owned()
                } else {
                    format!("these locations name no real code: {}", misses.join("; "))
                };
                mark_recovery(record, &why);
                if retries >= limits.tool_call_retries {
                    if !code.is_empty() {
                        // Keep what resolves rather than lose the whole stage.
                        return Ok(Localization {
                            locations,
                            code,
                            explanation: reply.answer,
                        });
                    }
                    return Err(StageError::NoResult(format!(
                        "the model's bug locations never resolved to code ({why})"
                    )));
                }
                retries += 1;
                conv.push_user(format!(
                    "{why}. Search again if needed, then answer with corrected <bug_locations>."
                ));
                continue;
            }
            // Tool calls, native or written in the text.
            let mut results = Vec::new();
            let mut any_valid = false;
            if !reply.tool_calls.is_empty() {
                for call in &reply.tool_calls {
                    let args: Result<Value, _> = serde_json::from_str(&call.arguments);
                    let rec = match args {
                        Ok(args) => run_call(input.index, ToolCall::parse(&call.name, &args), &call.name, args, &search),
                        Err(e) => ToolCallRecord {
                            name: call.name.clone(),
                            arguments: Value::String(call.arguments.clone()),
                            result: format!("The arguments of {} are not valid JSON ({e}); send a JSON object.", call.name),
                            found: false,
                            valid: false,
                        },
                    };
                    any_valid |= rec.valid;
                    conv.push_tool_result(&call.id, rec.result.clone());
                    results.push(rec);
                }
            } else {
                let mut text = String::new();
                for extracted in extract_calls(&reply.answer) {
                    let rec = match extracted {
                        Ok(call) => {
                            let args = serde_json::to_value(&call).unwrap_or(Value::Null);
                            let name = call.name().to_owned();
                            run_call(input.index, Ok(call), &name, args, &search)
                        }
                        Err(e) => ToolCallRecord {
                            name: String::new(),
                            arguments: Value::Null,
                            result: e.to_string(),
                            found: false,
                            valid: false,
                        },
                    };
                    any_valid |= rec.valid;
                    text.push_str(&format!("Result of {}:\n{}\n\n", display_call(&rec), rec.result));
                    results.push(rec);
                }
                if results.is_empty() {
                    text = "Your reply has no tool call and no <bug_locations> block. Call a tool, or answer with <bug_locations>.".to_owned();
                    mark_recovery(record, "no tool call and no bug locations in the reply");
                }
                conv.push_user(text);
            }
            let invalid: Vec<String> = results.iter().filter(|r| !r.valid).map(|r| r.result.clone()).collect();
            if let Some(t) = record.turns.last_mut() {
                t.tool_calls = results;
            }
            if any_valid {
                rounds += 1;
            } else {
                if !invalid.is_empty() {
                    mark_recovery(record, &format!("invalid tool call: {}", invalid.join("; ")));
                }
                retries += 1;
                if retries > limits.tool_call_retries * limits.localization_rounds.max(1) {
                    return Err(StageError::NoResult("the model made no usable tool call".to_owned()));
                }
            }
            if rounds >= limits.localization_rounds {
                conv.push_user(
                    "The search rounds are used up. Answer now with <bug_locations> naming the code that must change.",
                );
                let reply = conv.ask_recorded(input.model, None, record).await?;
                let locations = parse_locations(&reply.answer, "bug_locations");
                let (code, _) = resolve_all(input.index, &locations);
                if code.is_empty() {
                    return Err(StageError::NoResult(format!(
                        "no bug locations that resolve to code after {rounds} search rounds"
                    )));
                }
                return Ok(Localization { locations, code, explanation: reply.answer });
            }
        }
    })
    .await
}

/// Stage 3: one patch for the located code. `read` gives a file's current text by path.
pub async fn write_patch(
    input: &StageInput<'_>,
    code: &[CodeSpan],
    analysis: Option<&str>,
    mut read: impl FnMut(&str) -> Option<String>,
) -> (Result<PatchCandidate, StageError>, StageRecord) {
    recorded("patch", async |record: &mut StageRecord| {
        let mut feedback: Option<String> = None;
        for _ in 0..=input.limits.patch_retries {
            let prompt = input.prompts.render(
                "patch",
                json!({"repo": input.repo, "issue": input.issue, "code": code,
                       "analysis": analysis, "feedback": feedback}),
            )?;
            let mut conv = Conversation::new(None, prompt);
            let reply = conv.ask_recorded(input.model, None, record).await?;
            let applied =
                parse_edits(&reply.answer).and_then(|edits| EditedFiles::apply(&edits, &mut read));
            match applied {
                Ok(edited) => {
                    let diff = edited.diff();
                    if diff.trim().is_empty() {
                        let why = "the edits change nothing".to_owned();
                        mark_recovery(record, &why);
                        feedback = Some(format!(
                            "{why}; the patched text must differ from the original."
                        ));
                        continue;
                    }
                    return Ok(PatchCandidate {
                        diff,
                        files: edited.files.keys().cloned().collect(),
                    });
                }
                Err(e) => {
                    mark_recovery(record, &e.to_string());
                    feedback = Some(e.to_string());
                }
            }
        }
        Err(StageError::NoResult(format!(
            "no usable edit in {} tries (last problem: {})",
            input.limits.patch_retries + 1,
            feedback.unwrap_or_default()
        )))
    })
    .await
}

fn run_call(
    index: &CodeIndex,
    call: Result<ToolCall, ponder_code::CallError>,
    name: &str,
    arguments: Value,
    limits: &SearchLimits,
) -> ToolCallRecord {
    match call {
        Ok(call) => {
            let out = index.run_tool(&call, limits);
            ToolCallRecord {
                name: name.to_owned(),
                arguments,
                result: out.text,
                found: out.found,
                valid: true,
            }
        }
        Err(e) => ToolCallRecord {
            name: name.to_owned(),
            arguments,
            result: e.to_string(),
            found: false,
            valid: false,
        },
    }
}

fn display_call(rec: &ToolCallRecord) -> String {
    if rec.name.is_empty() {
        "a call that could not be read".to_owned()
    } else {
        format!("{}({})", rec.name, rec.arguments)
    }
}

/// Sets the last turn's recovery (the reason its answer was not used).
fn mark_recovery(record: &mut StageRecord, why: &str) {
    if let Some(t) = record.turns.last_mut() {
        t.recovery = Some(why.to_owned());
    }
}

fn dedup_push(mut v: Vec<String>, s: String) -> Vec<String> {
    if !v.contains(&s) {
        v.push(s);
    }
    v
}

/// The content of the last `<tag>` block (the model may quote the tag while reasoning).
fn tagged_last<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let at = text.rfind(&format!("<{tag}>"))?;
    tagged(&text[at..], tag)
}
