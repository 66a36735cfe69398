//! The committed trajectory and search-tree schemas (docs/*.schema.json) are the ones the types
//! derive, and a trajectory the types produce validates against its schema.

use ponder_workflow::{StageRecord, Trajectory, Turn, json_schema};
use std::path::Path;

fn committed_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/trajectory.schema.json")
}

#[test]
fn the_committed_schema_matches_the_types() {
    let derived = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
    let path = committed_path();
    if std::env::var_os("PONDER_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &derived).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == derived,
        "docs/trajectory.schema.json is out of date with the types; regenerate it with \
         PONDER_WRITE_SCHEMA=1 cargo test -p ponder-workflow --test schema (and bump \
         TRAJECTORY_SCHEMA_VERSION if a field changed meaning or was removed)"
    );
}

#[test]
fn a_trajectory_validates_and_a_broken_one_does_not() {
    let schema = json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut traj = Trajectory::new("acme/shop", "issue", "m");
    let mut record = StageRecord::new("patch");
    record.turns.push(Turn {
        answer: "a".into(),
        reasoning: Some("r".into()),
        recovery: Some("the original matches nothing".into()),
        ..Turn::default()
    });
    traj.push(record);
    let value = serde_json::to_value(&traj).unwrap();
    assert!(
        validator.is_valid(&value),
        "{:?}",
        validator.validate(&value)
    );
    let mut broken = value.clone();
    broken["stages"][0]["turns"][0]["usage"] = serde_json::json!("many");
    assert!(!validator.is_valid(&broken));
    let mut missing = value;
    missing.as_object_mut().unwrap().remove("schema_version");
    assert!(!validator.is_valid(&missing));
}

#[test]
fn the_committed_search_schema_matches_the_types() {
    let derived = serde_json::to_string_pretty(&ponder_workflow::search_schema()).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/search.schema.json");
    if std::env::var_os("PONDER_WRITE_SCHEMA").is_some() {
        std::fs::write(&path, &derived).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == derived,
        "docs/search.schema.json is out of date with the types; regenerate it with \
         PONDER_WRITE_SCHEMA=1 cargo test -p ponder-workflow --test schema (and bump \
         SEARCH_SCHEMA_VERSION if a field changed meaning or was removed)"
    );
}
