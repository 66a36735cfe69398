//! The pytest-family parsers: plain `-rA` summaries (pytest, flask, xarray), with option
//! normalisation (requests, pylint), the ANSI-tolerant "v2" (astropy, scikit-learn, sphinx),
//! matplotlib's and seaborn's variants. Each follows its harness counterpart line by line.

use super::python::words;
use super::{STATUS_NAMES, status_named};
use crate::{StatusMap, TestStatus};
use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

/// pytest's `SKIPPED [N] file:line: reason` summary names a count, not a test. The harness
/// drops only that shape: `PASSED [100%]` (a wrapped progress line) stays a "test" because two
/// pytest instances list `[100%]` in PASS_TO_PASS.
fn is_skip_summary(status: &str, name: &str) -> bool {
    static COUNT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^\[\d+\]$").expect("count pattern is valid"));
    status == "SKIPPED" && COUNT.is_match(name)
}

fn starts_with_status(line: &str) -> bool {
    STATUS_NAMES.iter().any(|s| line.starts_with(s))
}

/// `STATUS id` lines where the id is the second word. With `matplotlib`, enum members in
/// parametrized ids are first rewritten to their values.
pub(super) fn parse_plain(log: &str, matplotlib: bool) -> StatusMap {
    let mut map = StatusMap::new();
    for (id, status) in plain_results(log, matplotlib) {
        map.insert(id.to_string(), status);
    }
    map
}

/// [`parse_plain`] with each id's parametrization normalised by [`normalize_option`].
pub(super) fn parse_options(log: &str) -> StatusMap {
    let mut map = StatusMap::new();
    for (id, status) in plain_results(log, false) {
        map.insert(normalize_option(&id), status);
    }
    map
}

fn plain_results(log: &str, matplotlib: bool) -> Vec<(String, TestStatus)> {
    let mut results = Vec::new();
    for raw in log.split('\n') {
        let mut line = Cow::Borrowed(raw);
        if matplotlib {
            line = Cow::Owned(
                line.replace("MouseButton.LEFT", "1")
                    .replace("MouseButton.RIGHT", "3"),
            );
        }
        if !starts_with_status(&line) {
            continue;
        }
        if line.starts_with("FAILED") {
            // `FAILED id - message`: the harness joins the dash away so the id stays word two.
            line = Cow::Owned(line.replace(" - ", " "));
        }
        let mut w = words(&line);
        let (Some(first), Some(second)) = (w.next(), w.next()) else {
            continue;
        };
        if is_skip_summary(first, second) {
            continue;
        }
        if let Some(status) = status_named(first) {
            results.push((second.to_string(), status));
        }
    }
    results
}

/// `main[option]` → `main[option']`, where the option runs from the first `[` to the last `]`
/// (anything after that `]` is dropped) and an absolute-path option keeps only its last
/// component, so ids do not depend on where the checkout lives.
fn normalize_option(id: &str) -> String {
    let (Some(open), Some(close)) = (id.find('['), id.rfind(']')) else {
        return id.to_string();
    };
    if close < open {
        return id.to_string();
    }
    let main = &id[..open];
    let mut option = &id[open + 1..close];
    if option.starts_with('/') && !option.starts_with("//") && !option.contains('*') {
        // rsplit always yields at least one piece.
        option = option.rsplit('/').next().unwrap_or(option);
        return format!("{main}[/{option}]");
    }
    format!("{main}[{option}]")
}

/// The "v2" parser: strips colour codes and control characters, keeps ids with spaces whole,
/// and also reads `id STATUS` lines.
pub(super) fn parse_v2(log: &str) -> StatusMap {
    static COLOUR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\[(\d+)m").expect("colour pattern is valid"));
    let mut map = StatusMap::new();
    for raw in log.split('\n') {
        let uncoloured = COLOUR.replace_all(raw, "");
        let line: String = uncoloured
            .chars()
            .filter(|c| !('\u{1}'..='\u{1f}').contains(c))
            .collect();
        if starts_with_status(&line) {
            let mut line = line.as_str();
            if line.starts_with("FAILED") {
                // Only FAILED lines lose their ` - message`; the harness keeps it on the others.
                line = line.split(" - ").next().unwrap_or(line);
            }
            let w: Vec<&str> = words(line).collect();
            if w.len() >= 2
                && !is_skip_summary(w[0], w[1])
                && let Some(status) = status_named(w[0])
            {
                map.insert(w[1..].join(" "), status);
            }
        } else if STATUS_NAMES.iter().any(|s| line.ends_with(s)) {
            let w: Vec<&str> = words(&line).collect();
            if let [id @ .., last] = w.as_slice()
                && !id.is_empty()
                && let Some(status) = status_named(last)
            {
                map.insert(id.join(" "), status);
            }
        }
    }
    map
}

/// seaborn's parser: `FAILED id`, `id PASSED ...` and `PASSED id` only.
pub(super) fn parse_seaborn(log: &str) -> StatusMap {
    let mut map = StatusMap::new();
    for line in log.split('\n') {
        let parts: Vec<&str> = words(line).collect();
        if parts.len() < 2 {
            continue;
        }
        if line.starts_with("FAILED") {
            map.insert(parts[1].to_string(), TestStatus::Failed);
        } else if line.contains(" PASSED ") {
            if parts[1] == "PASSED" {
                map.insert(parts[0].to_string(), TestStatus::Passed);
            }
        } else if line.starts_with("PASSED") {
            map.insert(parts[1].to_string(), TestStatus::Passed);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_first_open_to_last_close_and_shorten_paths() {
        assert_eq!(normalize_option("t.py::f[a[b]c]d"), "t.py::f[a[b]c]");
        assert_eq!(normalize_option("t.py::f[/tmp/x/y.py]"), "t.py::f[/y.py]");
        assert_eq!(normalize_option("t.py::f[//net/x]"), "t.py::f[//net/x]");
        assert_eq!(normalize_option("t.py::f[/a/*.py]"), "t.py::f[/a/*.py]");
        assert_eq!(normalize_option("t.py::f]x["), "t.py::f]x[");
        assert_eq!(normalize_option("t.py::f"), "t.py::f");
    }

    #[test]
    fn skip_summary_is_only_a_bracketed_count_after_skipped() {
        assert!(is_skip_summary("SKIPPED", "[12]"));
        assert!(!is_skip_summary("PASSED", "[100%]"));
        assert!(!is_skip_summary("SKIPPED", "t.py::f[1]"));
    }
}
