//! Which indexed files the model may see. The index holds every Python file that git would track
//! (tests are needed later to pick regression tests); the search tools, skeletons and retrieval
//! see only the visible ones. Tests and documentation are hidden by default, as in Agentless and
//! AutoCodeRover, since a fix almost never belongs there and they crowd out the real candidates.

use anyhow::{Context, Result};
use globset::{Glob, GlobSet, GlobSetBuilder};

/// Folder names that hold a project's tests. `test` (singular) is left out on purpose: Django's
/// `django/test/` is library code that issues do touch.
const TEST_DIRS: &[&str] = &["tests", "testing"];
const DOC_DIRS: &[&str] = &["doc", "docs", "documentation"];

#[derive(Debug, Clone)]
pub struct Visibility {
    pub tests: bool,
    pub docs: bool,
    exclude: Vec<String>,
    exclude_set: GlobSet,
}

impl Default for Visibility {
    fn default() -> Self {
        Visibility {
            tests: false,
            docs: false,
            exclude: Vec::new(),
            exclude_set: GlobSet::empty(),
        }
    }
}

impl Visibility {
    /// Everything indexed is visible.
    pub fn all() -> Self {
        Visibility {
            tests: true,
            docs: true,
            ..Visibility::default()
        }
    }

    /// Adds glob patterns (gitignore-like, matched against the path relative to the root, e.g.
    /// `examples/**` or `**/migrations/*.py`) of files to hide.
    pub fn with_excludes(mut self, patterns: &[String]) -> Result<Self> {
        self.exclude.extend(patterns.iter().cloned());
        let mut builder = GlobSetBuilder::new();
        for pattern in &self.exclude {
            builder.add(Glob::new(pattern).with_context(|| {
                format!(
                    "invalid exclude pattern {pattern:?}: use glob syntax such as 'examples/**'"
                )
            })?);
        }
        self.exclude_set = builder.build().context("building the exclude patterns")?;
        Ok(self)
    }

    /// Whether a file at `path` (relative, `/`-separated) is shown to the model.
    pub fn is_visible(&self, path: &str) -> bool {
        if !self.tests && is_test_path(path) {
            return false;
        }
        if !self.docs && is_doc_path(path) {
            return false;
        }
        !self.exclude_set.is_match(path)
    }
}

/// A test module by the conventions pytest and unittest discover, or anything under a tests folder.
pub fn is_test_path(path: &str) -> bool {
    let mut parts = path.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            let stem = part.strip_suffix(".py").unwrap_or(part);
            return stem.starts_with("test_")
                || stem.ends_with("_test")
                || stem == "tests"
                || stem == "conftest";
        }
        if TEST_DIRS.contains(&part) {
            return true;
        }
    }
    false
}

pub fn is_doc_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts[..parts.len().saturating_sub(1)]
        .iter()
        .any(|p| DOC_DIRS.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hides_tests_and_docs_only() {
        let v = Visibility::default();
        assert!(v.is_visible("django/db/models/base.py"));
        assert!(v.is_visible("django/test/testcases.py"));
        assert!(!v.is_visible("tests/admin_views/models.py"));
        assert!(!v.is_visible("sympy/core/tests/test_basic.py"));
        assert!(!v.is_visible("src/pkg/test_io.py"));
        assert!(!v.is_visible("conftest.py"));
        assert!(!v.is_visible("testing/python/approx.py"));
        assert!(!v.is_visible("doc/conf.py"));
        assert!(v.is_visible("docutils_helpers.py"));
        let all = Visibility::all();
        assert!(all.is_visible("tests/admin_views/models.py"));
        let ex = Visibility::default()
            .with_excludes(&["examples/**".to_string()])
            .unwrap();
        assert!(!ex.is_visible("examples/demo.py"));
        assert!(
            Visibility::default()
                .with_excludes(&["[".to_string()])
                .is_err()
        );
    }
}
