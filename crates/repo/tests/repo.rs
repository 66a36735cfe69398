//! Checkouts, patch application and sources against real git repositories made by the tests,
//! and a real source distribution from PyPI.

use ponder_repo::git::Git;
use ponder_repo::{ApplyMethod, ApplyOutcome, Checkout, PatchApplier, RepoSource, RepoStore};
use std::path::Path;

fn repo_with(files: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let git = Git::new(tmp.path());
    git.run(&["init", "-q"]).unwrap();
    for (name, content) in files {
        let path = tmp.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    git.run(&["add", "-A"]).unwrap();
    git.run(&["commit", "-qm", "base"]).unwrap();
    let head = git.run(&["rev-parse", "HEAD"]).unwrap().trim().to_owned();
    (tmp, head)
}

const CALC: &str = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n\n\ndef neg(a):\n    return -a\n";

fn status(dir: &Path) -> String {
    Git::new(dir).run(&["status", "--porcelain"]).unwrap()
}

#[test]
fn checkout_is_private_and_clean() {
    let (src, head) = repo_with(&[("calc.py", CALC), ("pkg/__init__.py", "")]);
    let work = tempfile::tempdir().unwrap();
    let co = Checkout::create(src.path(), &head, &work.path().join("a")).unwrap();
    assert_eq!(
        std::fs::read_to_string(co.dir().join("calc.py")).unwrap(),
        CALC
    );
    assert!(co.missing_files.is_empty());
    assert_eq!(status(co.dir()), "");
    std::fs::write(co.dir().join("calc.py"), "changed\n").unwrap();
    std::fs::write(co.dir().join("new.py"), "x = 1\n").unwrap();
    let diff = co.diff().unwrap();
    assert!(
        diff.contains("+changed") && diff.contains("b/new.py"),
        "{diff}"
    );
    // The source is untouched.
    assert_eq!(
        std::fs::read_to_string(src.path().join("calc.py")).unwrap(),
        CALC
    );
    co.reset().unwrap();
    assert_eq!(status(co.dir()), "");
    assert!(!co.dir().join("new.py").exists());
    // A second checkout at the same place is refused, not clobbered.
    assert!(Checkout::create(src.path(), &head, co.dir()).is_err());
    // An unknown commit says what to do.
    let err = Checkout::create(
        src.path(),
        "0123456789abcdef0123456789abcdef01234567",
        &work.path().join("b"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("git fetch"), "{err}");
}

#[test]
fn reset_rewrites_only_the_files_that_changed() {
    // Build tools decide what to rebuild by mtime: a reset that rewrote every file would make
    // a warm instance rebuild all its compiled code.
    let (src, head) = repo_with(&[("calc.py", CALC), ("ext/fast.pyx", "def f(): pass\n")]);
    let work = tempfile::tempdir().unwrap();
    let co = Checkout::create(src.path(), &head, &work.path().join("a")).unwrap();
    let mtime = |p: &str| {
        std::fs::metadata(co.dir().join(p))
            .unwrap()
            .modified()
            .unwrap()
    };
    let untouched = mtime("ext/fast.pyx");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(co.dir().join("calc.py"), "changed\n").unwrap();
    co.reset().unwrap();
    assert_eq!(
        std::fs::read_to_string(co.dir().join("calc.py")).unwrap(),
        CALC
    );
    assert_eq!(
        mtime("ext/fast.pyx"),
        untouched,
        "an unchanged file was rewritten"
    );
    // A reopened checkout resets the same way.
    let again = Checkout::open(co.dir(), &head, Vec::new()).unwrap();
    std::fs::write(co.dir().join("calc.py"), "changed again\n").unwrap();
    again.reset().unwrap();
    assert_eq!(mtime("ext/fast.pyx"), untouched);
    assert_eq!(status(co.dir()), "");
}

#[test]
fn a_snapshot_missing_a_blob_checks_out_without_that_file() {
    let (src, head) = repo_with(&[("keep.py", "a = 1\n"), ("big.bin", "large content\n")]);
    let blob = Git::new(src.path())
        .run(&["rev-parse", "HEAD:big.bin"])
        .unwrap();
    let blob = blob.trim();
    std::fs::remove_file(
        src.path()
            .join(format!(".git/objects/{}/{}", &blob[..2], &blob[2..])),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let co = Checkout::create(src.path(), &head, &work.path().join("a")).unwrap();
    assert_eq!(co.missing_files, vec!["big.bin"]);
    assert!(co.dir().join("keep.py").exists());
    assert!(!co.dir().join("big.bin").exists());
    assert_eq!(
        status(co.dir()),
        "",
        "the skipped file must not show as deleted"
    );
}

fn checkout_of(files: &[(&str, &str)]) -> (tempfile::TempDir, tempfile::TempDir, Checkout) {
    let (src, head) = repo_with(files);
    let work = tempfile::tempdir().unwrap();
    let co = Checkout::create(src.path(), &head, &work.path().join("w")).unwrap();
    (src, work, co)
}

#[test]
fn exact_patch_applies_with_git_apply() {
    let (_s, _w, co) = checkout_of(&[("calc.py", CALC)]);
    let patch = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,4 +1,4 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n \n \n";
    let out = PatchApplier::new(co.dir()).apply(patch).unwrap();
    match out {
        ApplyOutcome::Applied { method, files, .. } => {
            assert_eq!(method, ApplyMethod::GitApply);
            assert_eq!(files, vec!["calc.py"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        std::fs::read_to_string(co.dir().join("calc.py"))
            .unwrap()
            .contains("a + b")
    );
}

#[test]
fn drifted_context_falls_back_to_patch_with_fuzz() {
    let (_s, _w, co) = checkout_of(&[("calc.py", CALC)]);
    // The first context line differs from the file: git apply refuses, patch --fuzz accepts.
    let patch = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,5 +1,5 @@\n def add(x, y):\n-    return a - b\n+    return a + b\n \n \n def mul(a, b):\n";
    let out = PatchApplier::new(co.dir()).apply(patch).unwrap();
    match &out {
        ApplyOutcome::Applied { method, log, .. } => {
            assert_eq!(*method, ApplyMethod::PatchFuzz, "{log}");
            assert!(
                log.contains("git apply"),
                "the log records the failed attempts: {log}"
            );
        }
        other => panic!("{other:?}"),
    }
    let text = std::fs::read_to_string(co.dir().join("calc.py")).unwrap();
    assert!(text.contains("return a + b"));
    assert!(!co.dir().join("calc.py.orig").exists() || status(co.dir()).contains("calc.py"));
}

#[test]
fn a_patch_that_does_not_apply_leaves_the_tree_as_it_was() {
    let (_s, _w, co) = checkout_of(&[("calc.py", CALC), ("other.py", "x = 1\n")]);
    // Two files: the first hunk would apply, the second cannot; nothing may remain.
    let patch = "diff --git a/other.py b/other.py\n--- a/other.py\n+++ b/other.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\ndiff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def nothing_like_this():\n-    return 42\n+    return 43\n";
    let out = PatchApplier::new(co.dir()).apply(patch).unwrap();
    match &out {
        ApplyOutcome::Failed { reason, .. } => {
            assert!(reason.contains("does not apply"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(status(co.dir()), "", "tree restored, no .rej/.orig left");
    assert_eq!(
        std::fs::read_to_string(co.dir().join("other.py")).unwrap(),
        "x = 1\n"
    );
}

#[test]
fn empty_new_file_and_binary_patches() {
    let (_s, _w, co) = checkout_of(&[("calc.py", CALC)]);
    let applier = PatchApplier::new(co.dir());
    assert_eq!(applier.apply("  \n").unwrap(), ApplyOutcome::Empty);
    // A patch made by git itself, with a new text file and a binary file, without a final newline.
    let (_s2, _w2, other) = checkout_of(&[("calc.py", CALC)]);
    std::fs::write(other.dir().join("new_mod.py"), "VALUE = 3\n").unwrap();
    std::fs::write(other.dir().join("blob.bin"), [0u8, 159, 146, 150, 0, 1, 2]).unwrap();
    let diff = other.diff().unwrap();
    assert!(diff.contains("GIT binary patch"), "{diff}");
    let out = applier.apply(diff.trim_end()).unwrap();
    assert!(out.is_applied(), "{out:?}");
    assert_eq!(
        std::fs::read(co.dir().join("blob.bin")).unwrap(),
        vec![0u8, 159, 146, 150, 0, 1, 2]
    );
    assert_eq!(
        std::fs::read_to_string(co.dir().join("new_mod.py")).unwrap(),
        "VALUE = 3\n"
    );
}

#[test]
fn mirrors_folder_resolves_owner_name_and_says_what_is_missing() {
    let (src, _head) = repo_with(&[("a.py", "")]);
    let mirrors = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(src.path(), mirrors.path().join("acme__widgets")).unwrap();
    let store = RepoStore::new(mirrors.path().join(".cache"));
    let source = RepoSource::Mirrors(mirrors.path().to_path_buf());
    assert_eq!(
        store.resolve(&source, "acme/widgets").unwrap(),
        mirrors.path().join("acme__widgets")
    );
    let err = store
        .resolve(&source, "acme/gadgets")
        .unwrap_err()
        .to_string();
    assert!(err.contains("acme__gadgets"), "{err}");
}

#[test]
fn pypi_source_distribution_becomes_a_reproducible_repository() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let source = RepoSource::parse("pypi:six==1.16.0").unwrap();
    let store_a = RepoStore::new(a.path());
    let repo = match store_a.resolve(&source, "benjaminp/six") {
        Ok(repo) => repo,
        Err(e) => {
            eprintln!("SKIPPED: cannot fetch six 1.16.0 from PyPI here: {e:#}");
            return;
        }
    };
    assert!(
        repo.join("test_six.py").is_file(),
        "the sdist ships its tests"
    );
    let head_a = Git::new(&repo).run(&["rev-parse", "HEAD"]).unwrap();
    // Same distribution, another cache: same commit id, so datasets can name it.
    let repo_b = RepoStore::new(b.path()).resolve(&source, "x/y").unwrap();
    let head_b = Git::new(&repo_b).run(&["rev-parse", "HEAD"]).unwrap();
    assert_eq!(head_a, head_b);
    // A second resolve reuses the import.
    assert_eq!(store_a.resolve(&source, "benjaminp/six").unwrap(), repo);
}

#[test]
fn a_clone_url_template_clones_once_into_the_cache() {
    let (src, head) = repo_with(&[("a.py", "x = 1\n")]);
    // A "host" holding repositories as owner/name, reached through a file URL template.
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(host.path().join("acme")).unwrap();
    std::os::unix::fs::symlink(src.path(), host.path().join("acme/widgets")).unwrap();
    let template = format!("file://{}/{{owner}}/{{name}}", host.path().display());
    let source = RepoSource::parse(&template).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = RepoStore::new(cache.path());
    let git_dir = store.resolve(&source, "acme/widgets").unwrap();
    assert!(git_dir.starts_with(cache.path()));
    assert_eq!(
        Git::new(&git_dir)
            .run(&["rev-parse", "HEAD"])
            .unwrap()
            .trim(),
        head
    );
    store.ensure_commit(&source, &git_dir, &head).unwrap();
    // Resolving again reuses the clone.
    assert_eq!(store.resolve(&source, "acme/widgets").unwrap(), git_dir);
    // A repository the host lacks: the error names what was tried.
    let err = store.resolve(&source, "acme/nothing").unwrap_err();
    assert!(format!("{err:#}").contains("acme/nothing"), "{err:#}");
}
