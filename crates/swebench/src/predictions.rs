//! Predictions files: `{"instance_id", "model_name_or_path", "model_patch"}` records, as JSONL,
//! a JSON array, or a JSON object keyed by instance id (all three circulate).

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Prediction {
    pub instance_id: String,
    #[serde(default = "unknown_model")]
    pub model_name_or_path: String,
    /// `None` when the record has `null`: the harness counts that as an empty patch.
    #[serde(default)]
    pub model_patch: Option<String>,
}

fn unknown_model() -> String {
    "unknown".to_owned()
}

impl Prediction {
    /// True when there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.model_patch
            .as_deref()
            .is_none_or(|p| p.trim().is_empty())
    }
}

/// Predictions by instance id, plus complaints about records that could not be read.
#[derive(Debug, Default)]
pub struct Predictions {
    pub by_id: BTreeMap<String, Prediction>,
    pub errors: Vec<String>,
}

impl Predictions {
    pub fn load(path: &Path) -> Result<Predictions> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read predictions {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in predictions file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Predictions> {
        let mut out = Predictions::default();
        let trimmed = text.trim_start();
        let records: Vec<(String, serde_json::Value)> = if trimmed.starts_with('[') {
            let values: Vec<serde_json::Value> =
                serde_json::from_str(text).context("not a valid JSON array")?;
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("item {}", i + 1), v))
                .collect()
        } else if trimmed.starts_with('{')
            && serde_json::from_str::<serde_json::Value>(text).is_ok()
        {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)?;
            if map.contains_key("instance_id") {
                vec![("the object".to_owned(), serde_json::Value::Object(map))]
            } else {
                map.into_iter()
                    .map(|(id, mut v)| {
                        if let Some(obj) = v.as_object_mut() {
                            obj.entry("instance_id")
                                .or_insert(serde_json::Value::String(id.clone()));
                        }
                        (format!("key {id}"), v)
                    })
                    .collect()
            }
        } else {
            let mut rows = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str(line) {
                    Ok(v) => rows.push((format!("line {}", i + 1), v)),
                    Err(e) => out
                        .errors
                        .push(format!("line {}: not valid JSON ({e})", i + 1)),
                }
            }
            rows
        };
        for (place, value) in records {
            match serde_json::from_value::<Prediction>(value) {
                Ok(p) => {
                    if out.by_id.insert(p.instance_id.clone(), p).is_some() {
                        out.errors
                            .push(format!("{place}: duplicate instance id; the last one wins"));
                    }
                }
                Err(e) => out.errors.push(format!(
                    "{place}: {e}; each record needs instance_id and model_patch"
                )),
            }
        }
        if out.by_id.is_empty() && !out.errors.is_empty() {
            bail!("no readable prediction: {}", out.errors.join("; "));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jsonl_arrays_and_keyed_objects() {
        let jsonl = "{\"instance_id\":\"a\",\"model_name_or_path\":\"m\",\"model_patch\":\"diff\"}\n\n{\"instance_id\":\"b\",\"model_patch\":null}\n{oops\n";
        let p = Predictions::parse(jsonl).unwrap();
        assert_eq!(p.by_id.len(), 2);
        assert!(!p.by_id["a"].is_empty());
        assert!(p.by_id["b"].is_empty());
        assert_eq!(p.by_id["b"].model_name_or_path, "unknown");
        assert_eq!(p.errors.len(), 1);
        let arr = "[{\"instance_id\":\"a\",\"model_patch\":\"\"}]";
        assert!(Predictions::parse(arr).unwrap().by_id["a"].is_empty());
        let keyed = "{\"x\": {\"model_name_or_path\":\"m\",\"model_patch\":\"d\"}}";
        assert_eq!(
            Predictions::parse(keyed).unwrap().by_id["x"].instance_id,
            "x"
        );
        assert!(Predictions::parse("{broken\n").is_err());
    }
}
