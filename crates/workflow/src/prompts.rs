//! The prompts of the four stages, as template files (`crates/workflow/prompts/*.j2`, compiled
//! into the binary) rendered with minijinja, and the limits the stages obey, with the defaults of
//! system.md. Snapshot tests (insta) pin the rendered text, so a change to a prompt shows up in
//! review as a diff of what the model will read.

use minijinja::Environment;
use serde::{Deserialize, Serialize};

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("rank_files", include_str!("../prompts/rank_files.j2")),
    ("locations", include_str!("../prompts/locations.j2")),
    ("analysis", include_str!("../prompts/analysis.j2")),
    (
        "localize_system",
        include_str!("../prompts/localize_system.j2"),
    ),
    ("localize_user", include_str!("../prompts/localize_user.j2")),
    ("patch", include_str!("../prompts/patch.j2")),
    ("reproduce", include_str!("../prompts/reproduce.j2")),
    ("debug", include_str!("../prompts/debug.j2")),
    ("prm", include_str!("../prompts/prm.j2")),
    ("orm", include_str!("../prompts/orm.j2")),
];

/// The stages' limits (system.md's values by default). Every one is a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StageLimits {
    /// Files the model ranks in stage 1.
    pub ranked_files: usize,
    /// Files BM25 adds to the model's ranking.
    pub bm25_files: usize,
    /// Files shown as skeletons after merging.
    pub skeleton_files: usize,
    /// Suspicious locations the model may name in stage 1.
    pub suspicious_locations: usize,
    /// Search rounds of fault localization.
    pub localization_rounds: usize,
    /// Tries of a tool call the model got wrong, per round.
    pub tool_call_retries: usize,
    /// Tries of an edit that does not apply or breaks the syntax.
    pub patch_retries: usize,
    /// Rounds of debugging after a failed verification.
    pub debug_rounds: usize,
}

impl Default for StageLimits {
    fn default() -> Self {
        StageLimits {
            ranked_files: 5,
            bm25_files: 10,
            skeleton_files: 5,
            suspicious_locations: 10,
            localization_rounds: 6,
            tool_call_retries: 2,
            patch_retries: 3,
            debug_rounds: 2,
        }
    }
}

/// The templates, ready to render.
pub struct Prompts {
    env: Environment<'static>,
}

impl Default for Prompts {
    fn default() -> Self {
        Prompts::new()
    }
}

impl Prompts {
    pub fn new() -> Prompts {
        let mut env = Environment::new();
        // A missing variable is a bug in the caller, not an empty string in a prompt.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("the built-in prompt templates parse");
        }
        Prompts { env }
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        TEMPLATES.iter().map(|(n, _)| *n)
    }

    /// Renders template `name` with `context`.
    pub fn render(&self, name: &str, context: impl Serialize) -> Result<String, minijinja::Error> {
        self.env
            .get_template(name)?
            .render(minijinja::value::Serde(context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issue() -> &'static str {
        "Cart.total() raises TypeError on an empty cart.\n\n```\n>>> Cart().total()\nTypeError: unsupported operand\n```"
    }

    fn code() -> serde_json::Value {
        json!([{"path": "shop/cart.py", "start_line": 8, "end_line": 9, "qualname": "Cart.total",
                "text": "    def total(self):\n        return math.fsum(self.items)\n"}])
    }

    #[test]
    fn every_prompt_renders_as_snapshotted() {
        let p = Prompts::new();
        let tools: Vec<_> = ponder_code::TOOLS
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "params": t.parameters.iter().map(|(n, _)| *n).collect::<Vec<_>>()}))
            .collect();
        let limits = StageLimits::default();
        let cases = [
            (
                "rank_files",
                json!({"repo": "acme/shop", "issue": issue(), "files": ["shop/__init__.py", "shop/cart.py", "shop/price.py"], "limit": limits.ranked_files}),
            ),
            (
                "locations",
                json!({"repo": "acme/shop", "issue": issue(), "limit": limits.suspicious_locations,
                "skeletons": [{"path": "shop/cart.py", "text": "class Cart:\n    def total(self):\n        ...\n"}]}),
            ),
            (
                "analysis",
                json!({"repo": "acme/shop", "issue": issue(), "code": code()}),
            ),
            (
                "localize_system",
                json!({"repo": "acme/shop", "tools": tools, "native_tools": false, "rounds": limits.localization_rounds,
                "example": "search_method_in_class(\"total\", \"Cart\")"}),
            ),
            (
                "localize_user",
                json!({"issue": issue(), "analysis": "total() sums items without a start value."}),
            ),
            (
                "patch",
                json!({"repo": "acme/shop", "issue": issue(), "code": code(), "analysis": null, "feedback": null}),
            ),
            ("reproduce", json!({"repo": "acme/shop", "issue": issue()})),
            (
                "debug",
                json!({"check": "the regression tests", "patch": "--- a/shop/cart.py\n+++ b/shop/cart.py\n", "log": "FAILED tests/test_cart.py::test_total"}),
            ),
            (
                "prm",
                json!({"repo": "acme/shop", "issue": issue(), "step": "fault localization", "code": code(),
                       "explanation": "total() has no start value for an empty sum."}),
            ),
            (
                "orm",
                json!({"repo": "acme/shop", "issue": issue(), "patch": "--- a/shop/cart.py\n+++ b/shop/cart.py\n",
                       "checks": ["the reproduction script prints \"Issue resolved\" with the patch"]}),
            ),
        ];
        assert_eq!(
            cases.len(),
            Prompts::names().count(),
            "every template has a snapshot case"
        );
        for (name, ctx) in cases {
            let text = p.render(name, ctx).unwrap();
            insta::assert_snapshot!(name, text);
        }
        // With feedback from a refused edit, the patch prompt says what to fix.
        let text = p
            .render("patch", json!({"repo": "r", "issue": "i", "code": [], "analysis": null,
                                    "feedback": "The original text of the edit to a.py does not match the file."}))
            .unwrap();
        assert!(
            text.trim_end()
                .ends_with("does not match the file.\nWrite the edits again."),
            "{text}"
        );
    }

    #[test]
    fn a_missing_variable_is_an_error() {
        let err = Prompts::new()
            .render("reproduce", json!({"repo": "r"}))
            .unwrap_err();
        assert!(err.to_string().contains("undefined"), "{err}");
    }
}
