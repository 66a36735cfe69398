//! Edits applied to a real git repository: the diff they make is accepted by `git apply`, and
//! applying it gives exactly the edited files (also for a new file and a CRLF file).

use ponder_workflow::{EditedFiles, parse_edits};
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_diff_of_accepted_edits_applies_with_git() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    std::fs::create_dir_all(root.join("shop")).unwrap();
    let cart = "import math\n\n\nclass Cart:\n    def __init__(self):\n        self.items = []\n\n    def total(self):\n        return math.fsum(self.items)\n";
    std::fs::write(root.join("shop/cart.py"), cart).unwrap();
    std::fs::write(root.join("shop/legacy.py"), "def f():\r\n    return 1\r\n").unwrap();
    git(root, &["add", "-A"]);
    git(
        root,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "base",
        ],
    );

    let reply = r#"
I will guard against an empty cart, fix the legacy helper and add a test.

<file>shop/cart.py</file>
<original>
def total(self):
    return math.fsum(self.items)
</original>
<patched>
def total(self):
    if not self.items:
        return 0.0
    return math.fsum(self.items)
</patched>

<file>shop/legacy.py</file>
<original>return 1</original>
<patched>return 2</patched>

<file>shop/test_cart.py</file>
<original></original>
<patched>
from shop.cart import Cart


def test_empty_total():
    assert Cart().total() == 0.0
</patched>
"#;
    let edits = parse_edits(reply).unwrap();
    let edited =
        EditedFiles::apply(&edits, |p| std::fs::read_to_string(root.join(p)).ok()).unwrap();
    let diff = edited.diff();
    std::fs::write(root.join("fix.diff"), &diff).unwrap();
    git(root, &["apply", "--check", "fix.diff"]);
    git(root, &["apply", "fix.diff"]);
    for (path, (_, after)) in &edited.files {
        assert_eq!(
            &std::fs::read_to_string(root.join(path)).unwrap(),
            after,
            "{path}"
        );
    }
    assert!(
        std::fs::read_to_string(root.join("shop/legacy.py"))
            .unwrap()
            .contains("return 2\r\n"),
        "CRLF kept"
    );
    let status = git(root, &["status", "--porcelain"]);
    assert!(
        status.contains(" M shop/cart.py") && status.contains("?? shop/test_cart.py"),
        "{status}"
    );
}
