//! SWE-bench dataset rows: loading JSONL or JSON files, tolerating bad rows, and selecting
//! instances by id or pattern.
//!
//! A bad row never stops the load: it becomes a [`RowError`] carrying the row number, the
//! instance id when one could be read, and what to fix, so a run can report it per instance and
//! go on with the others.

use anyhow::{Context, Result, bail};
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One task instance, as the SWE-bench datasets describe it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Instance {
    pub instance_id: String,
    /// `owner/name`.
    pub repo: String,
    pub base_commit: String,
    /// The gold fix (may be empty in datasets that hide it).
    #[serde(default)]
    pub patch: String,
    pub test_patch: String,
    #[serde(default)]
    pub problem_statement: String,
    #[serde(default)]
    pub hints_text: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(deserialize_with = "string_or_number")]
    pub version: String,
    #[serde(rename = "FAIL_TO_PASS", deserialize_with = "list_or_encoded_list")]
    pub fail_to_pass: Vec<String>,
    #[serde(rename = "PASS_TO_PASS", deserialize_with = "list_or_encoded_list")]
    pub pass_to_pass: Vec<String>,
    #[serde(default)]
    pub environment_setup_commit: Option<String>,
    /// The official bash script that applies the test patch and runs the tests.
    #[serde(default)]
    pub eval_script: Option<String>,
    /// One of the harness's `parse_log_*` names.
    #[serde(default)]
    pub log_parser: Option<String>,
    /// Fields this crate does not interpret (`image`, `difficulty`, ...), kept for round trips.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Instance {
    /// The commit whose dependency files define the environment.
    pub fn env_commit(&self) -> &str {
        self.environment_setup_commit
            .as_deref()
            .filter(|c| !c.is_empty())
            .unwrap_or(&self.base_commit)
    }

    /// `owner__name`, the folder name the harness and ponder use for a repository mirror.
    pub fn repo_slug(&self) -> String {
        self.repo.replace('/', "__")
    }
}

/// A row that could not be read as an [`Instance`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowError {
    /// 1-based row number (line number for JSONL, array index + 1 for JSON).
    pub row: usize,
    /// The row's `instance_id` when it had a readable one.
    pub instance_id: Option<String>,
    pub message: String,
}

/// The readable instances of a dataset file and the rows that were not.
#[derive(Debug, Default)]
pub struct Dataset {
    pub instances: Vec<Instance>,
    pub errors: Vec<RowError>,
}

impl Dataset {
    /// Loads a `.jsonl` file (one object a line) or a `.json` file (an array of objects, or one
    /// object a line). Only an unreadable file is an error; bad rows land in `errors`.
    pub fn load(path: &Path) -> Result<Dataset> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read dataset {}", path.display()))?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
        {
            bail!(
                "{} is parquet, which ponder does not read; convert it to JSONL first, e.g. \
                 python -c \"import pandas as p; p.read_parquet('{}').to_json('out.jsonl', orient='records', lines=True)\"",
                path.display(),
                path.display()
            );
        }
        Ok(Self::parse(&text))
    }

    /// Parses dataset text, JSON array or JSONL, detected from the first non-blank character.
    pub fn parse(text: &str) -> Dataset {
        let mut out = Dataset::default();
        if text.trim_start().starts_with('[') {
            match serde_json::from_str::<Vec<serde_json::Value>>(text) {
                Ok(rows) => {
                    for (i, value) in rows.into_iter().enumerate() {
                        out.push_value(i + 1, value);
                    }
                }
                Err(e) => out.errors.push(RowError {
                    row: 0,
                    instance_id: None,
                    message: format!(
                        "the file is not a valid JSON array ({e}); fix it or use JSONL"
                    ),
                }),
            }
            return out;
        }
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(value) => out.push_value(i + 1, value),
                Err(e) => out.errors.push(RowError {
                    row: i + 1,
                    instance_id: None,
                    message: format!("not valid JSON ({e}); fix or remove line {}", i + 1),
                }),
            }
        }
        out
    }

    fn push_value(&mut self, row: usize, value: serde_json::Value) {
        let instance_id = value
            .get("instance_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        match serde_json::from_value::<Instance>(value) {
            Ok(instance) => self.instances.push(instance),
            Err(e) => self.errors.push(RowError {
                row,
                message: format!(
                    "row {row}{}: {e}; fix the row in the dataset or leave it out of the run",
                    instance_id
                        .as_deref()
                        .map(|id| format!(" ({id})"))
                        .unwrap_or_default()
                ),
                instance_id,
            }),
        }
    }

    /// Keeps the instances (and row errors) that the selection names, in dataset order.
    pub fn select(&mut self, selection: &Selection) {
        self.instances.retain(|i| selection.matches(&i.instance_id));
        self.errors.retain(|e| match &e.instance_id {
            Some(id) => selection.matches(id),
            None => selection.is_all(),
        });
    }

    pub fn get(&self, instance_id: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.instance_id == instance_id)
    }
}

/// Which instances a run covers: all, an explicit id list, a regular expression, or both (an
/// instance is selected when it is in the list or matches the pattern).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    ids: Option<Vec<String>>,
    pattern: Option<Regex>,
}

impl Selection {
    pub fn all() -> Self {
        Self::default()
    }

    pub fn new(ids: Option<Vec<String>>, pattern: Option<&str>) -> Result<Self> {
        let pattern = pattern
            .map(|p| Regex::new(p).with_context(|| format!("--filter {p:?} is not a valid regex")))
            .transpose()?;
        Ok(Self { ids, pattern })
    }

    pub fn is_all(&self) -> bool {
        self.ids.is_none() && self.pattern.is_none()
    }

    pub fn matches(&self, id: &str) -> bool {
        if self.is_all() {
            return true;
        }
        self.ids
            .as_ref()
            .is_some_and(|ids| ids.iter().any(|x| x == id))
            || self.pattern.as_ref().is_some_and(|p| p.is_match(id))
    }

    /// Ids the selection names that the dataset does not contain.
    pub fn missing<'a>(&'a self, dataset: &Dataset) -> Vec<&'a str> {
        let Some(ids) = &self.ids else {
            return Vec::new();
        };
        ids.iter()
            .map(String::as_str)
            .filter(|id| {
                dataset.get(id).is_none()
                    && !dataset
                        .errors
                        .iter()
                        .any(|e| e.instance_id.as_deref() == Some(*id))
            })
            .collect()
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a version string, found {other}"
        ))),
    }
}

/// `FAIL_TO_PASS` and `PASS_TO_PASS` are JSON-encoded lists inside a string in the published
/// files, and plain lists in some re-exports; accept both.
fn list_or_encoded_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(Vec::new()),
        serde_json::Value::String(s) => serde_json::from_str(&s).map_err(|e| {
            serde::de::Error::custom(format!("test list is not a JSON-encoded list: {e}"))
        }),
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                other => Err(serde::de::Error::custom(format!(
                    "test ids must be strings, found {other}"
                ))),
            })
            .collect(),
        serde_json::Value::Null => Ok(Vec::new()),
        other => Err(serde::de::Error::custom(format!(
            "expected a list of test ids, found {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> serde_json::Value {
        serde_json::json!({
            "instance_id": id, "repo": "o/n", "base_commit": "abc", "patch": "",
            "test_patch": "diff --git a/t.py b/t.py\n", "version": 1.2,
            "FAIL_TO_PASS": "[\"t.py::test_a\"]", "PASS_TO_PASS": ["t.py::test_b"],
            "image": "x"
        })
    }

    #[test]
    fn accepts_encoded_and_plain_lists_and_numeric_versions() {
        let text = format!("{}\n", row("o__n-1"));
        let d = Dataset::parse(&text);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let i = &d.instances[0];
        assert_eq!(i.version, "1.2");
        assert_eq!(i.fail_to_pass, vec!["t.py::test_a"]);
        assert_eq!(i.pass_to_pass, vec!["t.py::test_b"]);
        assert_eq!(i.extra["image"], "x");
        assert_eq!(i.env_commit(), "abc");
    }

    #[test]
    fn bad_rows_are_reported_and_the_rest_load() {
        let mut missing = row("o__n-2");
        missing.as_object_mut().unwrap().remove("base_commit");
        let text = format!("{}\n{{not json\n{}\n\n", missing, row("o__n-3"));
        let d = Dataset::parse(&text);
        assert_eq!(d.instances.len(), 1);
        assert_eq!(d.errors.len(), 2);
        assert_eq!(d.errors[0].instance_id.as_deref(), Some("o__n-2"));
        assert!(
            d.errors[0].message.contains("base_commit"),
            "{}",
            d.errors[0].message
        );
        assert_eq!(d.errors[1].row, 2);
    }

    #[test]
    fn json_array_and_selection() {
        let text =
            serde_json::to_string(&vec![row("a__b-1"), row("a__b-2"), row("c__d-1")]).unwrap();
        let mut d = Dataset::parse(&text);
        assert_eq!(d.instances.len(), 3);
        let sel =
            Selection::new(Some(vec!["c__d-1".into(), "zz".into()]), Some("^a__b-2$")).unwrap();
        assert_eq!(sel.missing(&d), vec!["zz"]);
        d.select(&sel);
        let ids: Vec<_> = d.instances.iter().map(|i| i.instance_id.as_str()).collect();
        assert_eq!(ids, vec!["a__b-2", "c__d-1"]);
        assert!(Selection::new(None, Some("(")).is_err());
    }
}
