//! Stage 4, patch verification (the "+" of SWE-SynInfer+): a reproduction script that counts
//! only if it prints "Issue reproduced" on the original code, regression tests that pass on the
//! original code and must still pass with the patch, and debug rounds that feed a failed check's
//! log back to the model for a new patch.
//!
//! Running code is the caller's: an [`Executor`] runs a script or tests in the repository's
//! environment and sandbox, with or without a patch. This module decides what to run and what
//! the results mean.

use crate::edit::{EditedFiles, parse_edits};
use crate::locations::CodeSpan;
use crate::model::Conversation;
use crate::stages::{PatchCandidate, StageError, StageInput};
use crate::trajectory::StageRecord;
use ponder_code::CodeIndex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Instant;

pub const REPRODUCED: &str = "Issue reproduced";
pub const RESOLVED: &str = "Issue resolved";

/// What a script or test command printed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ExecRun {
    pub output: String,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub seconds: f64,
}

/// Runs code of the repository for stage 4. `patch` is applied to a clean tree first (None:
/// the original code); nothing persists between calls.
pub trait Executor {
    fn run_script(&self, patch: Option<&str>, script: &str) -> Result<ExecRun, String>;
    /// Runs the tests in `files` and returns each test's status (`PASSED`, `FAILED`, ...) and
    /// the run.
    fn run_tests(
        &self,
        patch: Option<&str>,
        files: &[String],
    ) -> Result<(BTreeMap<String, String>, ExecRun), String>;
}

/// A reproduction script that reproduces the issue on the original code.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Reproduction {
    pub script: String,
    /// Its output on the original code.
    pub original: ExecRun,
}

/// The tests chosen as regression tests and those of them that pass on the original code.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Regression {
    pub files: Vec<String>,
    pub passing: Vec<String>,
    /// The original run, when tests were run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<ExecRun>,
}

/// One patch's checks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Verification {
    /// Whether the reproduction script printed "Issue resolved" with the patch (None: no
    /// script).
    pub resolved_by_script: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_run: Option<ExecRun>,
    /// Regression tests that passed on the original code and do not pass with the patch.
    pub regressions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_run: Option<ExecRun>,
    /// Every check that ran passed.
    pub passed: bool,
    /// Why it failed, for the model and the reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The Python script in a reply: the last fenced block (```python or plain ```).
pub fn extract_script(reply: &str) -> Option<String> {
    let mut found = None;
    let mut rest = reply;
    while let Some(at) = rest.find("```") {
        let after = &rest[at + 3..];
        let body_start = after.find('\n').map(|i| i + 1).unwrap_or(after.len());
        let body = &after[body_start..];
        let Some(end) = body.find("```") else {
            break;
        };
        let text = &body[..end];
        if !text.trim().is_empty() {
            found = Some(text.to_owned());
        }
        rest = &body[end + 3..];
    }
    found
}

/// Stage 4a: a reproduction script, tried on the original code; retried with what it printed
/// until it prints "Issue reproduced" there, within `limits.patch_retries` retries.
pub async fn write_reproduction(
    input: &StageInput<'_>,
    executor: &dyn Executor,
) -> (Result<Reproduction, StageError>, StageRecord) {
    let started = Instant::now();
    let mut record = StageRecord::new("reproduce");
    let result = async {
        let prompt = input.prompts.render(
            "reproduce",
            json!({"repo": input.repo, "issue": input.issue}),
        )?;
        let mut conv = Conversation::new(None, prompt);
        let mut last = String::new();
        for _ in 0..=input.limits.patch_retries {
            let reply = conv.ask_recorded(input.model, None, &mut record).await?;
            let Some(script) = extract_script(&reply.answer) else {
                last = "the reply has no ```python block".to_owned();
                mark(&mut record, &last);
                conv.push_user("Your reply has no script. Answer with the whole script in one ```python block.");
                continue;
            };
            let run = executor
                .run_script(None, &script)
                .map_err(StageError::NoResult)?;
            if run.output.contains(REPRODUCED) {
                return Ok(Reproduction {
                    script,
                    original: run,
                });
            }
            last = format!(
                "on the original code the script did not print \"{REPRODUCED}\" (exit code {:?})",
                run.exit_code
            );
            mark(&mut record, &last);
            conv.push_user(format!(
                "On the original code your script printed:\n{}\nIt must print \"{REPRODUCED}\" there, because the issue is present. Fix the script and answer with the whole script again.",
                tail(&run.output, 3000)
            ));
        }
        Err(StageError::NoResult(format!(
            "no script reproduced the issue in {} tries ({last})",
            input.limits.patch_retries + 1
        )))
    }
    .await;
    finish(&mut record, &result, started);
    (result, record)
}

/// The test files near the changed files, at most `limit`: `test_<stem>.py` and `<stem>_test.py`
/// anywhere (shortest paths first), then `test_<package>.py` for the changed file's top folder.
pub fn regression_files(index: &CodeIndex, changed: &[String], limit: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let is_test = |p: &str| {
        let name = p.rsplit('/').next().unwrap_or(p);
        p.ends_with(".py") && (name.starts_with("test_") || name.ends_with("_test.py"))
    };
    for path in changed {
        let name = path.rsplit('/').next().unwrap_or(path);
        let stem = name.trim_end_matches(".py");
        let mut wanted = vec![format!("test_{stem}.py"), format!("{stem}_test.py")];
        // A package's suite named after the package (requests' test_requests.py).
        if let Some((package, _)) = path.split_once('/') {
            wanted.push(format!("test_{package}.py"));
        }
        let mut by_name: Vec<&str> = index
            .files()
            .iter()
            .map(|f| f.path.as_str())
            .filter(|p| {
                wanted
                    .iter()
                    .any(|w| p.rsplit('/').next() == Some(w.as_str()))
            })
            .collect();
        by_name.sort_by_key(|p| p.len());
        for p in by_name {
            if !out.iter().any(|o| o == p) {
                out.push(p.to_owned());
            }
        }
    }
    out.retain(|p| is_test(p));
    out.truncate(limit);
    out
}

/// The regression baseline: which tests of `files` pass on the original code.
pub fn regression_baseline(
    executor: &dyn Executor,
    files: Vec<String>,
) -> Result<Regression, String> {
    if files.is_empty() {
        return Ok(Regression::default());
    }
    let (statuses, run) = executor.run_tests(None, &files)?;
    Ok(Regression {
        passing: statuses
            .into_iter()
            .filter(|(_, s)| s == "PASSED")
            .map(|(t, _)| t)
            .collect(),
        files,
        original: Some(run),
    })
}

/// Stage 4b: the checks of one patch.
pub fn verify_patch(
    executor: &dyn Executor,
    patch: &str,
    reproduction: Option<&Reproduction>,
    regression: &Regression,
) -> Result<Verification, String> {
    let mut v = Verification::default();
    let mut failures = Vec::new();
    if let Some(repro) = reproduction {
        let run = executor.run_script(Some(patch), &repro.script)?;
        let ok = run.output.contains(RESOLVED) && !run.output.contains(REPRODUCED);
        if !ok {
            failures.push(format!(
                "the reproduction script did not print \"{RESOLVED}\" with the patch; it printed:\n{}",
                tail(&run.output, 3000)
            ));
        }
        v.resolved_by_script = Some(ok);
        v.script_run = Some(run);
    }
    if !regression.passing.is_empty() {
        let (statuses, run) = executor.run_tests(Some(patch), &regression.files)?;
        v.regressions = regression
            .passing
            .iter()
            .filter(|t| statuses.get(*t).map(String::as_str) != Some("PASSED"))
            .cloned()
            .collect();
        if !v.regressions.is_empty() {
            failures.push(format!(
                "tests that passed before fail with the patch: {}\n{}",
                v.regressions.join(", "),
                tail(&run.output, 4000)
            ));
        }
        v.tests_run = Some(run);
    }
    v.passed = failures.is_empty();
    if !v.passed {
        v.failure = Some(failures.join("\n\n"));
    }
    Ok(v)
}

/// Stage 4c: one debug round. The failed check's log goes back with the patch; the model
/// explains and writes new edits against the original files, which are applied as in stage 3
/// (edit problems retried with the reason).
pub async fn debug_patch(
    input: &StageInput<'_>,
    code: &[CodeSpan],
    patch: &str,
    verification: &Verification,
    mut read: impl FnMut(&str) -> Option<String>,
) -> (Result<PatchCandidate, StageError>, StageRecord) {
    let started = Instant::now();
    let mut record = StageRecord::new("debug");
    let result = async {
        let check = match (
            verification.resolved_by_script,
            verification.regressions.is_empty(),
        ) {
            (Some(false), true) => "the reproduction script",
            (Some(false), false) => "the reproduction script and the regression tests",
            _ => "the regression tests",
        };
        let mut prompt = input.prompts.render(
            "patch",
            json!({"repo": input.repo, "issue": input.issue, "code": code,
                   "analysis": null, "feedback": null}),
        )?;
        prompt.push_str("\n\n");
        prompt.push_str(&input.prompts.render(
            "debug",
            json!({"check": check, "patch": patch,
                   "log": verification.failure.clone().unwrap_or_default()}),
        )?);
        let mut conv = Conversation::new(None, prompt);
        let mut last = String::new();
        for _ in 0..=input.limits.patch_retries {
            let reply = conv.ask_recorded(input.model, None, &mut record).await?;
            match parse_edits(&reply.answer).and_then(|e| EditedFiles::apply(&e, &mut read)) {
                Ok(edited) => {
                    let diff = edited.diff();
                    if !diff.trim().is_empty() {
                        return Ok(PatchCandidate {
                            diff,
                            files: edited.files.keys().cloned().collect(),
                        });
                    }
                    last = "the edits change nothing".to_owned();
                }
                Err(e) => last = e.to_string(),
            }
            mark(&mut record, &last);
            conv.push_user(format!(
                "Your edit could not be used: {last}\nWrite the edits again."
            ));
        }
        Err(StageError::NoResult(format!(
            "no usable debug edit ({last})"
        )))
    }
    .await;
    finish(&mut record, &result, started);
    (result, record)
}

fn mark(record: &mut StageRecord, why: &str) {
    if let Some(t) = record.turns.last_mut() {
        t.recovery = Some(why.to_owned());
    }
}

fn finish<T: Serialize>(
    record: &mut StageRecord,
    result: &Result<T, StageError>,
    started: Instant,
) {
    match result {
        Ok(out) => record.output = serde_json::to_value(out).unwrap_or_default(),
        Err(e) => record.failure = Some(e.to_string()),
    }
    record.seconds = started.elapsed().as_secs_f64();
}

/// The last `max` bytes of `text`, on a character boundary.
fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut at = text.len() - max;
    while !text.is_char_boundary(at) {
        at += 1;
    }
    &text[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_fenced_block_is_the_script() {
        let reply =
            "Plan:\n```\nnot this\n```\nScript:\n```python\nprint('Issue reproduced')\n```\n";
        assert_eq!(
            extract_script(reply).unwrap(),
            "print('Issue reproduced')\n"
        );
        assert!(extract_script("no code").is_none());
    }
}
