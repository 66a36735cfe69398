//! The run report in the harness's format (schema_version 2): counts and sorted id lists of the
//! instances a run covered.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How one instance of a run ended, as far as the run report is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceOutcome {
    /// No prediction for it in this run.
    Incomplete,
    /// The prediction's patch is empty.
    EmptyPatch,
    Resolved,
    Unresolved,
    /// Graded could not complete (environment, bad row, timeout of the run itself, ...).
    Error,
}

/// `report.json` of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunReport {
    pub total_instances: usize,
    pub submitted_instances: usize,
    pub completed_instances: usize,
    pub resolved_instances: usize,
    pub unresolved_instances: usize,
    pub empty_patch_instances: usize,
    pub error_instances: usize,
    pub completed_ids: Vec<String>,
    pub incomplete_ids: Vec<String>,
    pub empty_patch_ids: Vec<String>,
    pub submitted_ids: Vec<String>,
    pub resolved_ids: Vec<String>,
    pub unresolved_ids: Vec<String>,
    pub error_ids: Vec<String>,
    pub schema_version: u32,
}

impl RunReport {
    /// Builds the report from every selected instance's outcome and the ids that had a
    /// prediction. As in the harness, an instance with a graded report counts as completed
    /// (resolved or not), an empty patch is neither completed nor an error.
    pub fn build<'a>(
        outcomes: impl IntoIterator<Item = (&'a str, InstanceOutcome)>,
        submitted: impl IntoIterator<Item = &'a str>,
    ) -> RunReport {
        let mut sets: [BTreeSet<String>; 5] = Default::default();
        let mut total = 0;
        for (id, outcome) in outcomes {
            total += 1;
            let slot = match outcome {
                InstanceOutcome::Incomplete => 0,
                InstanceOutcome::EmptyPatch => 1,
                InstanceOutcome::Resolved => 2,
                InstanceOutcome::Unresolved => 3,
                InstanceOutcome::Error => 4,
            };
            sets[slot].insert(id.to_owned());
        }
        let [incomplete, empty, resolved, unresolved, error] = sets;
        let submitted: BTreeSet<String> = submitted.into_iter().map(str::to_owned).collect();
        let completed: BTreeSet<String> = resolved.union(&unresolved).cloned().collect();
        RunReport {
            total_instances: total,
            submitted_instances: submitted.len(),
            completed_instances: completed.len(),
            resolved_instances: resolved.len(),
            unresolved_instances: unresolved.len(),
            empty_patch_instances: empty.len(),
            error_instances: error.len(),
            completed_ids: completed.into_iter().collect(),
            incomplete_ids: incomplete.into_iter().collect(),
            empty_patch_ids: empty.into_iter().collect(),
            submitted_ids: submitted.into_iter().collect(),
            resolved_ids: resolved.into_iter().collect(),
            unresolved_ids: unresolved.into_iter().collect(),
            error_ids: error.into_iter().collect(),
            schema_version: 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_sorted_lists() {
        let r = RunReport::build(
            [
                ("b", InstanceOutcome::Resolved),
                ("a", InstanceOutcome::Unresolved),
                ("c", InstanceOutcome::EmptyPatch),
                ("d", InstanceOutcome::Error),
                ("e", InstanceOutcome::Incomplete),
            ],
            ["a", "b", "c", "d"],
        );
        assert_eq!(r.total_instances, 5);
        assert_eq!(r.submitted_instances, 4);
        assert_eq!(r.completed_ids, vec!["a", "b"]);
        assert_eq!(r.resolved_ids, vec!["b"]);
        assert_eq!(r.empty_patch_ids, vec!["c"]);
        assert_eq!(r.error_ids, vec!["d"]);
        assert_eq!(r.incomplete_ids, vec!["e"]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["schema_version"], 2);
        assert_eq!(json.as_object().unwrap().len(), 15);
    }
}
