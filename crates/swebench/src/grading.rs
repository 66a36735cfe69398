//! Grading one instance the way the SWE-bench harness does (`swebench/harness/grading.py`):
//! from a full eval log to a status map ([`read_eval_log`], the harness's `get_logs_eval`),
//! from a status map and the instance's expected tests to the per-test report ([`grade`],
//! `get_eval_tests_report`), and from that report to FULL / PARTIAL / NO
//! ([`TestsStatus::resolution`], `get_resolution_status`).
//!
//! The rules, as the harness has them:
//! - A FAIL_TO_PASS test succeeds when it PASSED or is an XFAIL, and fails when it FAILED,
//!   ERRORed, was SKIPPED or is missing from the log. A skipped F2P test is not a fix.
//! - A PASS_TO_PASS test succeeds when it PASSED, is an XFAIL or was SKIPPED (a skip is not a
//!   regression), and fails when it FAILED, ERRORed or is missing.
//! - An expected id that is not in the log but has more `[` than `]` was truncated in the dataset
//!   (676 such ids in Verified); it stands for the logged ids it is a prefix of, provided they
//!   all agree on passing (PASSED/XFAIL) or not. Well-formed ids match exactly.
//! - Resolution: with `f2p` and `p2p` the fractions of successes (1 when the list is empty),
//!   FULL when both are 1, PARTIAL when `0 < f2p < 1` and `p2p` is 1, NO otherwise. Only FULL
//!   counts as resolved.
//! - Under [`EvalType::FailOnly`] (repositories whose parser only records failures) a test fails
//!   only when the log says FAILED for exactly its id.

use crate::logparse::{LogFormat, extract_test_output};
use crate::{END_TEST_OUTPUT, START_TEST_OUTPUT, StatusMap, TestStatus};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Written to the log when the model patch could not be applied.
pub const APPLY_PATCH_FAIL: &str = ">>>>> Patch Apply Failed";
/// Written to the log when resetting the repository failed.
pub const RESET_FAILED: &str = ">>>>> Reset Failed";
/// Written to the log when the test command could not be run.
pub const TESTS_ERROR: &str = ">>>>> Tests Errored";
/// Written to the log when the test command ran out of time.
pub const TESTS_TIMEOUT: &str = ">>>>> Tests Timed Out";
/// Prefix of the line, after the end marker, that records the test command's exit status:
/// `>>>>> Test Exit Code: N`.
pub const TEST_EXIT_CODE: &str = ">>>>> Test Exit Code";

/// Whether a repository's tests are graded on passes and failures or on failures alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalType {
    /// Every dataset row of SWE-bench's Python repositories.
    #[default]
    PassAndFail,
    /// For parsers that only see failures: anything not logged as FAILED counts as a success.
    FailOnly,
}

/// The harness's resolution levels, serialized with its strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResolvedStatus {
    #[serde(rename = "RESOLVED_FULL")]
    Full,
    #[serde(rename = "RESOLVED_PARTIAL")]
    Partial,
    #[serde(rename = "RESOLVED_NO")]
    No,
}

impl ResolvedStatus {
    /// The harness's string for this level, e.g. `RESOLVED_FULL`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ResolvedStatus::Full => "RESOLVED_FULL",
            ResolvedStatus::Partial => "RESOLVED_PARTIAL",
            ResolvedStatus::No => "RESOLVED_NO",
        }
    }
}

/// Expected tests split by how the run treated them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcomes {
    pub success: Vec<String>,
    pub failure: Vec<String>,
}

/// The harness's `tests_status`: one [`TestOutcomes`] per category. The `*_TO_FAIL` categories
/// are always present and, as in the harness's evaluation, always empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestsStatus {
    #[serde(rename = "FAIL_TO_PASS")]
    pub fail_to_pass: TestOutcomes,
    #[serde(rename = "PASS_TO_PASS")]
    pub pass_to_pass: TestOutcomes,
    #[serde(rename = "FAIL_TO_FAIL", default)]
    pub fail_to_fail: TestOutcomes,
    #[serde(rename = "PASS_TO_FAIL", default)]
    pub pass_to_fail: TestOutcomes,
}

impl TestsStatus {
    /// Share of FAIL_TO_PASS tests that succeeded; 1 when there are none.
    pub fn fail_to_pass_rate(&self) -> f64 {
        rate(&self.fail_to_pass)
    }

    /// Share of PASS_TO_PASS tests that succeeded; 1 when there are none.
    pub fn pass_to_pass_rate(&self) -> f64 {
        rate(&self.pass_to_pass)
    }

    /// FULL, PARTIAL or NO, by the harness's `get_resolution_status`.
    pub fn resolution(&self) -> ResolvedStatus {
        // Counted rather than compared as floats; the two agree for any realistic list length.
        let f2p = &self.fail_to_pass;
        let p2p_whole = self.pass_to_pass.failure.is_empty();
        if f2p.failure.is_empty() && p2p_whole {
            ResolvedStatus::Full
        } else if !f2p.success.is_empty() && !f2p.failure.is_empty() && p2p_whole {
            ResolvedStatus::Partial
        } else {
            ResolvedStatus::No
        }
    }

    /// Resolved in the run report's sense: the resolution is FULL.
    pub fn resolved(&self) -> bool {
        self.resolution() == ResolvedStatus::Full
    }
}

fn rate(outcomes: &TestOutcomes) -> f64 {
    let total = outcomes.success.len() + outcomes.failure.len();
    if total == 0 {
        1.0
    } else {
        outcomes.success.len() as f64 / total as f64
    }
}

/// The status-map entry an expected test id stands for: the entry with exactly that id, or, for
/// an id truncated inside its parametrization (more `[` than `]`), the entries it is a prefix
/// of when they all agree on passing (PASSED/XFAIL) versus not.
///
/// When several prefix matches agree, the harness takes the first in log order; a [`StatusMap`]
/// is ordered by id, so this takes the smallest id. The two can differ only when the matches
/// mix SKIPPED with FAILED/ERROR, which matters for PASS_TO_PASS alone.
pub fn resolve_case<'m>(case: &str, status_map: &'m StatusMap) -> Option<(&'m str, TestStatus)> {
    if let Some((id, status)) = status_map.get_key_value(case) {
        return Some((id.as_str(), *status));
    }
    if case.matches('[').count() <= case.matches(']').count() {
        return None;
    }
    let mut matches = status_map
        .range::<str, _>((std::ops::Bound::Included(case), std::ops::Bound::Unbounded))
        .take_while(|(id, _)| id.starts_with(case));
    let (first_id, first_status) = matches.next()?;
    let passing = is_passing(*first_status);
    if matches.all(|(_, status)| is_passing(*status) == passing) {
        Some((first_id.as_str(), *first_status))
    } else {
        None
    }
}

fn is_passing(status: TestStatus) -> bool {
    matches!(status, TestStatus::Passed | TestStatus::Xfail)
}

/// The harness's `test_passed`: PASSED or XFAIL.
pub fn test_passed(case: &str, status_map: &StatusMap) -> bool {
    resolve_case(case, status_map).is_some_and(|(_, status)| is_passing(status))
}

/// The harness's `test_maintained` (PASS_TO_PASS): passed, or SKIPPED.
pub fn test_maintained(case: &str, status_map: &StatusMap) -> bool {
    resolve_case(case, status_map)
        .is_some_and(|(_, status)| is_passing(status) || status == TestStatus::Skipped)
}

/// The harness's `test_failed`: missing, FAILED, ERROR or SKIPPED.
pub fn test_failed(case: &str, status_map: &StatusMap) -> bool {
    resolve_case(case, status_map).is_none_or(|(_, status)| {
        matches!(
            status,
            TestStatus::Failed | TestStatus::Error | TestStatus::Skipped
        )
    })
}

/// Grades the expected tests against a status map (the harness's `get_eval_tests_report`).
/// Lists keep the order of the inputs.
pub fn grade(
    fail_to_pass: &[String],
    pass_to_pass: &[String],
    status_map: &StatusMap,
    eval_type: EvalType,
) -> TestsStatus {
    let mut report = TestsStatus::default();
    for case in fail_to_pass {
        let ok = match eval_type {
            EvalType::PassAndFail => {
                if test_passed(case, status_map) {
                    true
                } else if test_failed(case, status_map) {
                    false
                } else {
                    // Every status is either passing or failing for F2P; kept for parity.
                    continue;
                }
            }
            EvalType::FailOnly => !failed_exactly(case, status_map),
        };
        push(&mut report.fail_to_pass, case, ok);
    }
    for case in pass_to_pass {
        let ok = match eval_type {
            EvalType::PassAndFail => {
                if test_maintained(case, status_map) {
                    true
                } else if test_failed(case, status_map) {
                    false
                } else {
                    continue;
                }
            }
            EvalType::FailOnly => !failed_exactly(case, status_map),
        };
        push(&mut report.pass_to_pass, case, ok);
    }
    report
}

fn failed_exactly(case: &str, status_map: &StatusMap) -> bool {
    status_map.get(case) == Some(&TestStatus::Failed)
}

fn push(outcomes: &mut TestOutcomes, case: &str, ok: bool) {
    if ok {
        outcomes.success.push(case.to_string());
    } else {
        outcomes.failure.push(case.to_string());
    }
}

/// Whether an instance is resolved (FULL) given its expected tests and its status map.
pub fn is_resolved(
    fail_to_pass: &[String],
    pass_to_pass: &[String],
    status_map: &StatusMap,
    eval_type: EvalType,
) -> bool {
    grade(fail_to_pass, pass_to_pass, status_map, eval_type).resolved()
}

/// Why a log yields no grade; the harness then reports the instance as not applied and not
/// resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogProblem {
    /// One of the failure markers ([`APPLY_PATCH_FAIL`], [`RESET_FAILED`], [`TESTS_ERROR`],
    /// [`TESTS_TIMEOUT`]) is in the log.
    #[error("the log contains the failure marker {0:?}; the tests' results cannot be trusted")]
    FailureMarker(&'static str),
    /// The start or end marker around the test output is missing.
    #[error(
        "the log lacks the {START_TEST_OUTPUT:?} / {END_TEST_OUTPUT:?} markers: the eval \
         script did not reach or did not finish its test command"
    )]
    MissingMarkers,
    /// Nothing parsed and nothing shows that a test runner ran.
    #[error("no test results in the log and no sign that the test runner ran")]
    NoResults,
    /// The test command exited non-zero, yet the log reports no failure or error: the output
    /// does not describe the run (for instance a patch printing its own PASSED lines).
    #[error(
        "the test command exited with {0} but the log reports no failed test; the log is not \
         trusted"
    )]
    ExitCodeContradicts(i64),
}

/// Evidence that a runner executed, for a log that parses to nothing (the harness's
/// `SUITE_RAN`; the patterns come from its JavaScript runners, and none is from pytest, Django or
/// sympy, so for SWE-bench's Python rows an empty parse is always [`LogProblem::NoResults`]).
static SUITE_RAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)Executed [1-9]\d* of \d+|TOTAL: [1-9]\d* (?:SUCCESS|FAILED)|[1-9]\d* passing|Tests:\s+[1-9]\d*|Test Suites:\s+(?:\d+ \w+, )*[1-9]\d* total|^# tests [1-9]\d*|[1-9]\d* specs?, \d+ failures?|': ok$",
    )
    .expect("suite evidence pattern is valid")
});

static EXIT_CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r">>>>> Test Exit Code:\s*(-?[0-9]+)").expect("exit code pattern is valid")
});

/// The test command's exit status recorded after the end marker, if the eval script recorded
/// one. A number too large for `i64` is reported as `i64::MAX` (it is non-zero either way).
pub fn parse_test_exit_code(full_log: &str) -> Option<i64> {
    let digits = EXIT_CODE.captures(full_log)?.get(1)?.as_str();
    Some(digits.parse().unwrap_or(if digits.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    }))
}

/// The status map of a full eval log (the harness's `get_logs_eval`): refuses logs with a
/// failure marker or without both output markers, parses the text between the markers with
/// `format`, falls back to the whole log when that yields nothing, refuses an empty result
/// without evidence of a run, and refuses a log whose recorded exit status contradicts it.
pub fn read_eval_log(full_log: &str, format: LogFormat) -> Result<StatusMap, LogProblem> {
    for marker in [APPLY_PATCH_FAIL, RESET_FAILED, TESTS_ERROR, TESTS_TIMEOUT] {
        if full_log.contains(marker) {
            return Err(LogProblem::FailureMarker(marker));
        }
    }
    let section = extract_test_output(full_log).ok_or(LogProblem::MissingMarkers)?;
    let mut status_map = format.parse(section);
    if status_map.is_empty() {
        // Results printed to the other stream can land outside the markers.
        status_map = format.parse(full_log);
    }
    if status_map.is_empty() && !SUITE_RAN.is_match(full_log) {
        return Err(LogProblem::NoResults);
    }
    if let Some(code) = parse_test_exit_code(full_log)
        && code != 0
        && !status_map.is_empty()
        && !status_map
            .values()
            .any(|s| matches!(s, TestStatus::Failed | TestStatus::Error))
    {
        return Err(LogProblem::ExitCodeContradicts(code));
    }
    Ok(status_map)
}

/// One instance's entry in the harness's per-instance `report.json` (`get_eval_report`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceReport {
    #[serde(rename = "patch_is_None")]
    pub patch_is_none: bool,
    pub patch_exists: bool,
    pub patch_successfully_applied: bool,
    pub resolved: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tests_status: Option<TestsStatus>,
}

/// What grading needs to know about one instance.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub fail_to_pass: &'a [String],
    pub pass_to_pass: &'a [String],
    pub format: LogFormat,
    pub eval_type: EvalType,
}

/// Grades one prediction from its eval log, as the harness's `get_eval_report` does with
/// `include_tests_status`: no patch → `patch_is_None`; an unusable log (see [`read_eval_log`])
/// → not applied, not resolved; otherwise the per-test report and `resolved` for FULL.
pub fn grade_instance(
    model_patch: Option<&str>,
    full_log: &str,
    expected: Expected<'_>,
) -> InstanceReport {
    let mut report = InstanceReport {
        patch_is_none: model_patch.is_none(),
        patch_exists: false,
        patch_successfully_applied: false,
        resolved: false,
        tests_status: None,
    };
    if model_patch.is_none() {
        return report;
    }
    report.patch_exists = true;
    let Ok(status_map) = read_eval_log(full_log, expected.format) else {
        return report;
    };
    report.patch_successfully_applied = true;
    let tests = grade(
        expected.fail_to_pass,
        expected.pass_to_pass,
        &status_map,
        expected.eval_type,
    );
    report.resolved = tests.resolved();
    report.tests_status = Some(tests);
    report
}
