//! Django's test runner (`tests/runtests.py --verbosity 2`, i.e. unittest's verbose output).
//!
//! unittest prints `test_name (module.Class) ... ok`. When a test has a docstring, Python before
//! 3.11 prints the id on one line and the docstring's first line, followed by ` ... ok`, on the
//! next, so the harness — and therefore the dataset — uses the docstring line as the test's id.
//! Failures are also announced as `FAIL: test_name (module.Class)`, of which the harness keeps
//! only the second word. Output printed by a test between ` ... ` and its verdict pushes the
//! verdict onto a later line starting with `ok`, which then applies to the last ` ... ` line seen.
//! Three known interruptions of that kind are also matched across lines, as the harness does.

use super::python::{lstrip, strip, words};
use crate::{StatusMap, TestStatus};
use regex::Regex;
use std::sync::LazyLock;

const VERSION_TEST: &str = "--version is equivalent to version";
const PASS_SUFFIXES: [&str; 3] = [" ... ok", " ... OK", " ...  OK"];
/// django__django-7188's log runs a migration message into a test line.
const MIGRATION_PREFIX: &str = "Applying sites.0002_alter_domain_unique...test_no_migrations";

/// Verdicts separated from their test by one known multi-line message. `[\s\x1c-\x1f]` is
/// Python's `\s`.
static INTERRUPTED: LazyLock<[Regex; 3]> = LazyLock::new(|| {
    [
        r"(?m)^(.*?)[\s\x1c-\x1f]\.\.\.[\s\x1c-\x1f]Testing against Django installed in ((?s:.*?)) silenced\)\.\nok$",
        r"(?m)^(.*?)[\s\x1c-\x1f]\.\.\.[\s\x1c-\x1f]Internal Server Error: /(.*)/\nok$",
        r"(?m)^(.*?)[\s\x1c-\x1f]\.\.\.[\s\x1c-\x1f]System check identified no issues \(0 silenced\)\nok$",
    ]
    .map(|p| Regex::new(p).expect("django patterns are valid"))
});

pub(super) fn parse(log: &str) -> StatusMap {
    let mut map = StatusMap::new();
    let mut prev_test: Option<String> = None;
    for raw in log.split('\n') {
        let mut line = strip(raw);

        if line.contains(VERSION_TEST) {
            map.insert(VERSION_TEST.to_string(), TestStatus::Passed);
        }
        if let Some((test, _)) = line.split_once(" ... ") {
            prev_test = Some(test.to_string());
        }
        for suffix in PASS_SUFFIXES {
            if line.ends_with(suffix) {
                if line.starts_with(MIGRATION_PREFIX) {
                    // The harness rebinds the line here, and the checks below see the rebound one.
                    line = strip(line.split_once("...").map_or(line, |(_, rest)| rest));
                }
                let test = line.rsplit_once(suffix).map_or(line, |(test, _)| test);
                map.insert(test.to_string(), TestStatus::Passed);
                break;
            }
        }
        if let Some((test, _)) = line.split_once(" ... skipped") {
            map.insert(test.to_string(), TestStatus::Skipped);
        }
        if line.ends_with(" ... FAIL") {
            let test = line.split_once(" ... FAIL").map_or(line, |(t, _)| t);
            map.insert(test.to_string(), TestStatus::Failed);
        }
        if line.starts_with("FAIL:")
            && let Some(test) = words(line).nth(1)
        {
            map.insert(test.to_string(), TestStatus::Failed);
        }
        if line.ends_with(" ... ERROR") {
            let test = line.split_once(" ... ERROR").map_or(line, |(t, _)| t);
            map.insert(test.to_string(), TestStatus::Error);
        }
        if line.starts_with("ERROR:")
            && let Some(test) = words(line).nth(1)
        {
            map.insert(test.to_string(), TestStatus::Error);
        }
        if lstrip(line).starts_with("ok")
            && let Some(test) = &prev_test
        {
            map.insert(test.clone(), TestStatus::Passed);
        }
    }
    for pattern in INTERRUPTED.iter() {
        for found in pattern.captures_iter(log) {
            if let Some(test) = found.get(1) {
                map.insert(test.as_str().to_string(), TestStatus::Passed);
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_after_printed_output_goes_to_the_last_test_line() {
        let log = "test_a (m.T) ... some output\nmore output\nok\n";
        assert_eq!(parse(log).get("test_a (m.T)"), Some(&TestStatus::Passed));
    }

    #[test]
    fn known_interruptions_are_matched_across_lines() {
        let log = "test_b (m.T) ... System check identified no issues (0 silenced)\nok\n";
        assert_eq!(parse(log).get("test_b (m.T)"), Some(&TestStatus::Passed));
        let log = "test_c (m.T) ... Internal Server Error: /x/\nok\n";
        assert_eq!(parse(log).get("test_c (m.T)"), Some(&TestStatus::Passed));
    }

    #[test]
    fn migration_message_run_into_a_test_line() {
        let log = "  Applying sites.0002_alter_domain_unique...test_no_migrations (m.T) ... ok\n";
        let map = parse(log);
        assert_eq!(
            map.get("test_no_migrations (m.T)"),
            Some(&TestStatus::Passed)
        );
    }

    #[test]
    fn fail_header_keeps_only_the_method_name_and_bare_headers_are_ignored() {
        let map = parse("FAIL: test_x (m.T)\nFAIL:\nERROR:\n");
        assert_eq!(map.get("test_x"), Some(&TestStatus::Failed));
        assert_eq!(map.len(), 1);
    }
}
