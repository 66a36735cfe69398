//! The run directory: one folder per instance with its patch, test log, parsed statuses, the
//! harness-style report and ponder's own result record, plus the run's `report.json`.
//!
//! Invariant: an instance's `result.json` is written last and atomically (write to a temporary
//! file, then rename), so its presence means everything else of that instance is complete. A
//! rerun skips exactly the instances that have one.

use anyhow::{Context, Result};
use ponder_swebench::report::InstanceOutcome;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// ponder's record of one instance in a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceResult {
    pub instance_id: String,
    pub repo: String,
    pub version: String,
    pub outcome: InstanceOutcome,
    /// For errors and unresolved instances: why, with what to do where there is something.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The step that failed, for errors: `row`, `spec`, `repository`, `environment`,
    /// `patch`, `test_patch`, `tests`, `internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// How the model patch was applied (`git_apply`, `git_apply_reject`, `patch_fuzz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_hash: Option<String>,
    /// The date unpinned dependencies resolved as of (`--resolve-before`, the harness era or
    /// the spec's own); absent when they resolved against today's PyPI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_before: Option<String>,
    /// FULL / PARTIAL / NO, when graded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// True when the test run came from the cache.
    #[serde(default)]
    pub cached: bool,
    /// True when the test command hit its time limit (the log up to then was graded).
    #[serde(default)]
    pub timed_out: bool,
    /// Wall time of the test command alone.
    #[serde(default)]
    pub test_seconds: f64,
    /// Wall time of making the checkout and layer ready for the tests: with a warm instance
    /// the reset, patch and reinstall (or the whole build, when this run made it); cold, the
    /// layer with pre_install and install.
    #[serde(default)]
    pub setup_seconds: f64,
    /// `built` when this run made the instance's warm instance, `reused` when it reused one;
    /// absent for cold runs (`--cold`, `--keep`) and cached test runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<String>,
    /// Wall time of the whole instance, environment base build excluded.
    #[serde(default)]
    pub total_seconds: f64,
    /// Things worth knowing that did not stop grading (missing blobs, skipped commands, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl InstanceResult {
    pub fn new(instance_id: &str, repo: &str, version: &str, outcome: InstanceOutcome) -> Self {
        InstanceResult {
            instance_id: instance_id.to_owned(),
            repo: repo.to_owned(),
            version: version.to_owned(),
            outcome,
            reason: None,
            failed_step: None,
            apply_method: None,
            env_hash: None,
            resolve_before: None,
            resolution: None,
            cached: false,
            timed_out: false,
            test_seconds: 0.0,
            setup_seconds: 0.0,
            warm: None,
            total_seconds: 0.0,
            warnings: Vec::new(),
        }
    }

    pub fn error(instance_id: &str, repo: &str, version: &str, step: &str, reason: String) -> Self {
        let mut r = Self::new(instance_id, repo, version, InstanceOutcome::Error);
        r.failed_step = Some(step.to_owned());
        r.reason = Some(reason);
        r
    }
}

/// The folder a run writes to.
#[derive(Debug, Clone)]
pub struct RunStore {
    root: PathBuf,
}

pub const RESULT_FILE: &str = "result.json";
pub const REPORT_FILE: &str = "report.json";
pub const PATCH_FILE: &str = "patch.diff";
pub const LOG_FILE: &str = "test_output.txt";
pub const STATUS_FILE: &str = "test_statuses.json";

impl RunStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create run directory {}", root.display()))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one instance (created on demand). Ids are used as folder names, so an id
    /// with a path separator is flattened.
    pub fn instance_dir(&self, instance_id: &str) -> Result<PathBuf> {
        let dir = self.root.join(instance_id.replace(['/', '\\'], "__"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// The finished result of an instance, if a previous run completed it.
    pub fn finished(&self, instance_id: &str) -> Option<InstanceResult> {
        let path = self
            .root
            .join(instance_id.replace(['/', '\\'], "__"))
            .join(RESULT_FILE);
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Forgets an instance's previous result (for `--redo`), keeping nothing stale beside it.
    pub fn clear(&self, instance_id: &str) -> Result<()> {
        let dir = self.root.join(instance_id.replace(['/', '\\'], "__"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        Ok(())
    }

    /// Writes a file of an instance.
    pub fn write(&self, instance_id: &str, name: &str, content: &[u8]) -> Result<()> {
        let dir = self.instance_dir(instance_id)?;
        write_atomic(&dir.join(name), content)
    }

    pub fn write_json<T: Serialize>(&self, instance_id: &str, name: &str, value: &T) -> Result<()> {
        self.write(instance_id, name, &serde_json::to_vec_pretty(value)?)
    }

    /// Records the result of an instance: the last write of an instance, marking it finished.
    pub fn finish(&self, result: &InstanceResult) -> Result<()> {
        self.write_json(&result.instance_id, RESULT_FILE, result)
    }

    pub fn write_run_file<T: Serialize>(&self, name: &str, value: &T) -> Result<PathBuf> {
        let path = self.root.join(name);
        write_atomic(&path, &serde_json::to_vec_pretty(value)?)?;
        Ok(path)
    }
}

/// Writes through a temporary file in the same folder and renames it into place, so a reader
/// (or a run killed midway) sees either the old content or the new, never half of it.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, content)?;
    tmp.as_file().sync_data().ok();
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
