//! Which tests to run for an instance and with which command, as the harness decides it: the
//! test files its test patch touches (Django's as dotted module names), appended to the
//! version's test command; or the command line the instance's own `eval_script` runs.

use crate::dataset::Instance;
use crate::specs::RepoVersionSpec;
use crate::{END_TEST_OUTPUT, START_TEST_OUTPUT};

/// File endings the harness never passes to a test runner.
const NON_TEST_EXTS: &[&str] = &[
    ".json", ".png", "csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml",
];

/// Paths a diff touches, from its `diff --git a/X b/Y` headers (the `b/` side).
pub fn diff_paths(diff: &str) -> Vec<String> {
    diff.lines()
        .filter_map(|l| l.strip_prefix("diff --git a/"))
        .filter_map(|rest| rest.split_once(" b/").map(|(_, b)| b.to_owned()))
        .collect()
}

/// Files a diff creates (`--- /dev/null`), which a reset must delete rather than check out.
pub fn new_files(diff: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = diff.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "--- /dev/null"
            && let Some(next) = lines.peek()
            && let Some(path) = next.strip_prefix("+++ b/")
        {
            out.push(path.trim_end().to_owned());
        }
    }
    out
}

fn is_django_test_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "tests.py"
        || name.starts_with("test_")
        || path.contains("/tests/")
        || path.contains("/test_")
}

/// The test directives of an instance: the test files its test patch touches.
pub fn test_directives(repo: &str, test_patch: &str) -> Vec<String> {
    let files = diff_paths(test_patch)
        .into_iter()
        .filter(|d| !NON_TEST_EXTS.iter().any(|ext| d.ends_with(ext)));
    if repo != "django/django" {
        return files.collect();
    }
    files
        .filter(|d| is_django_test_file(d))
        .map(|d| {
            let d = d.strip_suffix(".py").unwrap_or(&d);
            let d = d.strip_prefix("tests/").unwrap_or(d);
            d.replace('/', ".")
        })
        .collect()
}

/// The command line between the start and end markers of an `eval_script`.
pub fn command_from_eval_script(script: &str) -> Option<String> {
    let start = format!(": '{START_TEST_OUTPUT}'");
    let end = format!(": '{END_TEST_OUTPUT}'");
    let mut lines = script.lines().skip_while(|l| l.trim() != start).skip(1);
    let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != end).collect();
    let command = body.join("\n").trim().to_owned();
    (!command.is_empty()).then_some(command)
}

/// The test command for an instance: the one its eval script runs when it has one, else the
/// spec's `test_cmd` followed by the test directives. `None` when neither exists.
pub fn test_command(instance: &Instance, spec: Option<&RepoVersionSpec>) -> Option<String> {
    if let Some(cmd) = instance
        .eval_script
        .as_deref()
        .and_then(command_from_eval_script)
    {
        return Some(cmd);
    }
    let base = spec?.test_cmd.as_deref()?;
    let mut parts = vec![base.to_owned()];
    parts.extend(test_directives(&instance.repo, &instance.test_patch));
    Some(parts.join(" "))
}

/// Environment exports from a spec's `eval_commands` (`export K=V`); other commands (e.g.
/// `locale-gen`, which needs root on the host) are returned separately so the caller can log
/// that they were not run.
pub fn eval_exports(spec: &RepoVersionSpec) -> (Vec<(String, String)>, Vec<String>) {
    let mut exports = Vec::new();
    let mut skipped = Vec::new();
    for command in &spec.eval_commands {
        match command
            .trim()
            .strip_prefix("export ")
            .and_then(|kv| kv.split_once('='))
        {
            Some((k, v)) => exports.push((
                k.trim().to_owned(),
                v.trim().trim_matches(|c| c == '"' || c == '\'').to_owned(),
            )),
            None => skipped.push(command.clone()),
        }
    }
    (exports, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "diff --git a/tests/test_utils/tests.py b/tests/test_utils/tests.py\n--- a/tests/test_utils/tests.py\n+++ b/tests/test_utils/tests.py\n@@ -1 +1 @@\n-a\n+b\ndiff --git a/tests/forms_tests/field_tests/test_x.py b/tests/forms_tests/field_tests/test_x.py\nnew file mode 100644\n--- /dev/null\n+++ b/tests/forms_tests/field_tests/test_x.py\n@@ -0,0 +1 @@\n+x\ndiff --git a/tests/data/fixture.json b/tests/data/fixture.json\n";

    #[test]
    fn django_directives_are_dotted_modules_without_data_files() {
        assert_eq!(
            test_directives("django/django", PATCH),
            vec!["test_utils.tests", "forms_tests.field_tests.test_x"]
        );
        assert_eq!(test_directives("o/n", PATCH).len(), 2);
        assert_eq!(
            new_files(PATCH),
            vec!["tests/forms_tests/field_tests/test_x.py"]
        );
    }

    #[test]
    fn eval_script_command_and_exports() {
        let script = "cd /testbed\n: '>>>>> Start Test Output'\npytest -rA tests/a.py\n: '>>>>> End Test Output'\ngit checkout x\n";
        assert_eq!(
            command_from_eval_script(script).as_deref(),
            Some("pytest -rA tests/a.py")
        );
        assert_eq!(command_from_eval_script("no markers"), None);
        let spec = RepoVersionSpec {
            eval_commands: vec!["locale-gen".into(), "export LANG=en_US.UTF-8".into()],
            ..Default::default()
        };
        let (ex, skipped) = eval_exports(&spec);
        assert_eq!(ex, vec![("LANG".to_owned(), "en_US.UTF-8".to_owned())]);
        assert_eq!(skipped, vec!["locale-gen"]);
    }
}
