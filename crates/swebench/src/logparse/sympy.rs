//! sympy's own runner (`bin/test --verbose`): one line per test, `test_name ok`, `test_name F`
//! or `test_name E`, and a `____ path.py:test_name ____` header above each failure's traceback.
//!
//! As in the harness, a header marks `path.py:test_name` as failed (an id the dataset never
//! uses) and the per-test lines give the bare `test_name`. Lines the harness does not read stay
//! unread here too: skips (`test_x reason s`), expected failures (`f`) and the last test of a
//! file, whose line ends in a `[OK]`/`[FAIL]` column instead of its verdict.

use super::python::{strip, words};
use crate::{StatusMap, TestStatus};
use regex::Regex;
use std::sync::LazyLock;

static FAILURE_HEADER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(_*) (.*)\.py:(.*) (_*)").expect("header pattern is valid"));

pub(super) fn parse(log: &str) -> StatusMap {
    let mut map = StatusMap::new();
    for found in FAILURE_HEADER.captures_iter(log) {
        let path = found.get(2).map_or("", |m| m.as_str());
        let name = found.get(3).map_or("", |m| m.as_str());
        map.insert(format!("{path}.py:{name}"), TestStatus::Failed);
    }
    for raw in log.split('\n') {
        let line = strip(raw);
        if !line.starts_with("test_") {
            continue;
        }
        let verdict = if line.ends_with(" E") {
            TestStatus::Error
        } else if line.ends_with(" F") {
            TestStatus::Failed
        } else if line.ends_with(" ok") {
            TestStatus::Passed
        } else {
            continue;
        };
        if let Some(test) = words(line).next() {
            map.insert(test.to_string(), verdict);
        }
    }
    map
}
