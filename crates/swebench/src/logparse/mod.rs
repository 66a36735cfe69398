//! Test-log parsers: turn the output of a SWE-bench test command into a [`StatusMap`].
//!
//! A dataset row names its parser in `log_parser` (`parse_log_django`, `parse_log_sympy`, ...);
//! [`LogFormat`] has one variant per name in SWE-bench (Lite/Verified/full) and
//! [`LogFormat::parse`] reproduces what the harness's parser of that name
//! (`swebench/harness/log_parsers/python.py`) puts in its status map, quirks included, because
//! the dataset's `FAIL_TO_PASS`/`PASS_TO_PASS` ids were produced by those same parsers: an id
//! only matches when it is cut out of the log the same way.
//!
//! Seven behaviours lie behind the twelve names (see [`ParserKind`]):
//!
//! | `log_parser` | behaviour |
//! |---|---|
//! | `parse_log_pytest`, `_flask`, `_xarray` | [`ParserKind::Pytest`] |
//! | `parse_log_requests`, `_pylint` | [`ParserKind::PytestOptions`] |
//! | `parse_log_astropy`, `_scikit`, `_sphinx` | [`ParserKind::PytestV2`] |
//! | `parse_log_matplotlib` | [`ParserKind::Matplotlib`] |
//! | `parse_log_seaborn` | [`ParserKind::Seaborn`] |
//! | `parse_log_django` | [`ParserKind::Django`] |
//! | `parse_log_sympy` | [`ParserKind::Sympy`] |
//!
//! Where the harness would store a status word that is not one of the five statuses (a line
//! such as `ERROR: file not found: x`, whose first word is `ERROR:`), these parsers skip the
//! line instead: [`TestStatus`] has no room for it, and grading would ignore such an entry anyway
//! unless its id happened to equal an expected test id.
//!
//! Parsers never panic, whatever the input (a property test feeds them arbitrary text).

mod django;
mod pytest;
mod python;
mod sympy;

use crate::{END_TEST_OUTPUT, START_TEST_OUTPUT, StatusMap, TestStatus};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The log formats of SWE-bench's Python repositories, one per dataset `log_parser` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LogFormat {
    Django,
    Sympy,
    Sphinx,
    Matplotlib,
    Scikit,
    Astropy,
    Xarray,
    Pytest,
    Pylint,
    Requests,
    Seaborn,
    Flask,
}

/// The parsing behaviour behind a [`LogFormat`]; several formats share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParserKind {
    /// pytest `-rA` summary lines `STATUS id`: the id is the second whitespace-separated word
    /// (so an id containing spaces is cut at the first one); on `FAILED` lines ` - ` is first
    /// replaced by a space; `SKIPPED [N] file:line: reason` lines are not tests.
    Pytest,
    /// [`ParserKind::Pytest`], then a parametrized id `name[option]` keeps only what lies
    /// between its first `[` and its last `]`, and an option that is an absolute path
    /// (`/a/b/c`, not `//` and without `*`) is shortened to its last component (`/c`).
    PytestOptions,
    /// Colour codes (`[<digits>m`) and control characters are removed first; `STATUS id` lines
    /// keep the whole rest of the line as the id (spaces collapsed, the ` - message` of `FAILED`
    /// lines dropped); lines ending in a status (`pytest -v` without progress, or
    /// `console_output_style=classic`) count too, the id being everything before it.
    PytestV2,
    /// [`ParserKind::Pytest`] after rewriting `MouseButton.LEFT` to `1` and `MouseButton.RIGHT`
    /// to `3`, so parametrized ids agree across Python versions.
    Matplotlib,
    /// Only `FAILED id`, `PASSED id` and `id PASSED ...` lines; no skips, errors or xfails.
    Seaborn,
    /// Django's `runtests.py --verbosity 2` (unittest) output, see the `django` module.
    Django,
    /// sympy's `bin/test --verbose` output, see the `sympy` module.
    Sympy,
}

/// A `log_parser` name (or repository) that SWE-bench's Python harness does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown log parser {0:?}: expected one of the dataset's log_parser names, e.g. \
     parse_log_django or django (known: django, sympy, sphinx, matplotlib, scikit, astropy, \
     xarray, pytest, pylint, requests, seaborn, flask)"
)]
pub struct UnknownLogFormat(pub String);

impl LogFormat {
    /// Every format, in the order of the dataset documentation.
    pub const ALL: [LogFormat; 12] = [
        LogFormat::Django,
        LogFormat::Sympy,
        LogFormat::Sphinx,
        LogFormat::Matplotlib,
        LogFormat::Scikit,
        LogFormat::Astropy,
        LogFormat::Xarray,
        LogFormat::Pytest,
        LogFormat::Pylint,
        LogFormat::Requests,
        LogFormat::Seaborn,
        LogFormat::Flask,
    ];

    /// The dataset's name for this format, e.g. `parse_log_django`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LogFormat::Django => "parse_log_django",
            LogFormat::Sympy => "parse_log_sympy",
            LogFormat::Sphinx => "parse_log_sphinx",
            LogFormat::Matplotlib => "parse_log_matplotlib",
            LogFormat::Scikit => "parse_log_scikit",
            LogFormat::Astropy => "parse_log_astropy",
            LogFormat::Xarray => "parse_log_xarray",
            LogFormat::Pytest => "parse_log_pytest",
            LogFormat::Pylint => "parse_log_pylint",
            LogFormat::Requests => "parse_log_requests",
            LogFormat::Seaborn => "parse_log_seaborn",
            LogFormat::Flask => "parse_log_flask",
        }
    }

    /// The name without its `parse_log_` prefix, e.g. `django`.
    pub fn short_name(&self) -> &'static str {
        &self.as_str()["parse_log_".len()..]
    }

    /// The format the harness uses for a repository (`owner/name` as in the dataset's `repo`).
    pub fn for_repo(repo: &str) -> Option<LogFormat> {
        Some(match repo {
            "django/django" => LogFormat::Django,
            "sympy/sympy" => LogFormat::Sympy,
            "sphinx-doc/sphinx" => LogFormat::Sphinx,
            "matplotlib/matplotlib" => LogFormat::Matplotlib,
            "scikit-learn/scikit-learn" => LogFormat::Scikit,
            "astropy/astropy" => LogFormat::Astropy,
            "pydata/xarray" => LogFormat::Xarray,
            "pytest-dev/pytest" => LogFormat::Pytest,
            "pylint-dev/pylint" => LogFormat::Pylint,
            "psf/requests" => LogFormat::Requests,
            "mwaskom/seaborn" => LogFormat::Seaborn,
            "pallets/flask" => LogFormat::Flask,
            _ => return None,
        })
    }

    /// The parsing behaviour the harness binds to this name.
    pub fn kind(&self) -> ParserKind {
        match self {
            LogFormat::Pytest | LogFormat::Flask | LogFormat::Xarray => ParserKind::Pytest,
            LogFormat::Requests | LogFormat::Pylint => ParserKind::PytestOptions,
            LogFormat::Astropy | LogFormat::Scikit | LogFormat::Sphinx => ParserKind::PytestV2,
            LogFormat::Matplotlib => ParserKind::Matplotlib,
            LogFormat::Seaborn => ParserKind::Seaborn,
            LogFormat::Django => ParserKind::Django,
            LogFormat::Sympy => ParserKind::Sympy,
        }
    }

    /// Parses test output into test id → status.
    ///
    /// Give it the test command's output, i.e. [`extract_test_output`] of the full log, which is
    /// what the harness's `get_logs_eval` passes to its parser. A whole log works too (the
    /// harness falls back to parsing the whole log when the slice yields nothing, see
    /// [`crate::grading::read_eval_log`]), but then lines printed by the setup around the test
    /// command can be mistaken for results. Later lines win when an id appears twice.
    pub fn parse(&self, test_output: &str) -> StatusMap {
        self.kind().parse(test_output)
    }
}

impl ParserKind {
    /// Parses test output with this behaviour; see [`LogFormat::parse`].
    pub fn parse(&self, test_output: &str) -> StatusMap {
        match self {
            ParserKind::Pytest => pytest::parse_plain(test_output, false),
            ParserKind::PytestOptions => pytest::parse_options(test_output),
            ParserKind::PytestV2 => pytest::parse_v2(test_output),
            ParserKind::Matplotlib => pytest::parse_plain(test_output, true),
            ParserKind::Seaborn => pytest::parse_seaborn(test_output),
            ParserKind::Django => django::parse(test_output),
            ParserKind::Sympy => sympy::parse(test_output),
        }
    }
}

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    /// Accepts the dataset name (`parse_log_django`), the short name (`django`) or a repository
    /// (`django/django`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        if let Some(format) = LogFormat::for_repo(name) {
            return Ok(format);
        }
        let short = name.strip_prefix("parse_log_").unwrap_or(name);
        LogFormat::ALL
            .into_iter()
            .find(|f| f.short_name() == short)
            .ok_or_else(|| UnknownLogFormat(s.to_string()))
    }
}

impl TryFrom<String> for LogFormat {
    type Error = UnknownLogFormat;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<LogFormat> for String {
    fn from(value: LogFormat) -> Self {
        value.as_str().to_string()
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The test command's output inside a full eval log, cut exactly as the harness's
/// `get_logs_eval` cuts it: `None` unless both [`START_TEST_OUTPUT`] and [`END_TEST_OUTPUT`]
/// occur somewhere in the log; otherwise the text from just after the first start marker up to
/// the first end marker after it (a second start marker also ends it).
///
/// The cut is by characters, not lines, so the slice keeps the remains of the marker lines as
/// the eval script's `set -x` trace prints them (`'` after the start marker, `+ : '` before the
/// end marker); no parser takes those for a result.
pub fn extract_test_output(full_log: &str) -> Option<&str> {
    if !full_log.contains(END_TEST_OUTPUT) {
        return None;
    }
    let start = full_log.find(START_TEST_OUTPUT)? + START_TEST_OUTPUT.len();
    let mut section = &full_log[start..];
    if let Some(next_start) = section.find(START_TEST_OUTPUT) {
        section = &section[..next_start];
    }
    if let Some(end) = section.find(END_TEST_OUTPUT) {
        section = &section[..end];
    }
    Some(section)
}

/// The status whose name is exactly `word` (`PASSED`, `FAILED`, `SKIPPED`, `ERROR`, `XFAIL`).
fn status_named(word: &str) -> Option<TestStatus> {
    Some(match word {
        "PASSED" => TestStatus::Passed,
        "FAILED" => TestStatus::Failed,
        "SKIPPED" => TestStatus::Skipped,
        "ERROR" => TestStatus::Error,
        "XFAIL" => TestStatus::Xfail,
        _ => return None,
    })
}

/// The status names in the order of the harness's `TestStatus` enum, which is the order its
/// parsers try them in.
const STATUS_NAMES: [&str; 5] = ["FAILED", "PASSED", "SKIPPED", "ERROR", "XFAIL"];
