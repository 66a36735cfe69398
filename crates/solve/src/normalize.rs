//! Whether two patches make the same change: each patch is applied to copies of the files it
//! touches, the results are normalized (Python files parsed, comments and docstrings dropped,
//! layout ignored: `ponder_code::python::normalized`) and hashed. Patches with equal hashes
//! make the same change, whatever their comments, docstrings or formatting.

use ponder_eval::cache::sha256_hex;
use std::path::Path;
use std::process::{Command, Stdio};

/// The hash of what `diff` does to the files of `tree` once normalized. A diff that cannot be
/// applied hashes as its own text with blank and comment-only lines dropped, so it still
/// agrees with an identical diff.
pub fn normalized_change(tree: &Path, diff: &str) -> String {
    match applied_files(tree, diff) {
        Some(files) => {
            let mut text = String::new();
            for (path, content) in files {
                let content = match content {
                    Some(c) if path.ends_with(".py") => {
                        ponder_code::python::normalized(c.as_bytes())
                    }
                    Some(c) => c,
                    None => "<deleted>".to_owned(),
                };
                text.push_str(&format!("{path}\0{content}\0"));
            }
            sha256_hex(&text)
        }
        None => {
            let kept: Vec<&str> = diff
                .lines()
                .filter(|l| {
                    let body = l.get(1..).unwrap_or("").trim();
                    !(l.starts_with(['+', '-']) && (body.is_empty() || body.starts_with('#')))
                })
                .collect();
            sha256_hex(&kept.join("\n"))
        }
    }
}

/// The touched files' contents after the patch (None: deleted), sorted by path; None when the
/// patch does not apply to `tree`.
pub fn applied_files(tree: &Path, diff: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut paths: Vec<String> = Vec::new();
    for line in diff.lines() {
        for (prefix, strip) in [("--- a/", 6), ("+++ b/", 6)] {
            if line.starts_with(prefix) {
                let p = line[strip..].trim_end().to_owned();
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
    }
    if paths.is_empty() || paths.iter().any(|p| p.contains("..")) {
        return None;
    }
    let scratch = tempfile::tempdir().ok()?;
    for p in &paths {
        if let Ok(text) = std::fs::read(tree.join(p)) {
            let dest = scratch.path().join(p);
            std::fs::create_dir_all(dest.parent()?).ok()?;
            std::fs::write(&dest, text).ok()?;
        }
    }
    let mut child = Command::new("git")
        .args(["apply", "--whitespace=nowarn", "-"])
        .current_dir(scratch.path())
        .env("GIT_CEILING_DIRECTORIES", scratch.path().parent()?)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take()?;
        let mut text = diff.to_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        stdin.write_all(text.as_bytes()).ok()?;
    }
    if !child.wait().ok()?.success() {
        return None;
    }
    let mut files: Vec<(String, Option<String>)> = paths
        .into_iter()
        .map(|p| {
            let content = std::fs::read_to_string(scratch.path().join(&p)).ok();
            (p, content)
        })
        .collect();
    files.sort();
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_differing_in_comments_and_layout_agree_and_others_do_not() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("pkg")).unwrap();
        std::fs::write(tree.path().join("pkg/m.py"), "def f(x):\n    return x\n").unwrap();
        let a = "--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1,2 +1,3 @@\n def f(x):\n-    return x\n+    # never negative\n+    return abs(x)\n";
        let b = "--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return x\n+    return abs( x )  # fixed\n";
        let c = "--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return x\n+    return -x\n";
        let (na, nb, nc) = (
            normalized_change(tree.path(), a),
            normalized_change(tree.path(), b),
            normalized_change(tree.path(), c),
        );
        assert_eq!(na, nb);
        assert_ne!(na, nc);
        // A diff that does not apply still agrees with itself.
        let broken = "--- a/pkg/m.py\n+++ b/pkg/m.py\n@@ -1,2 +1,2 @@\n def g(x):\n-    return y\n+    return z\n";
        assert_eq!(
            normalized_change(tree.path(), broken),
            normalized_change(tree.path(), broken)
        );
    }
}
