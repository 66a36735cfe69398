//! Bytecode in base environments built with uv: like pip, every install writes `.pyc` files, so
//! a base that is read-only while tests run never compiles at import. Reproduces the failure
//! seen with flask 2.0, whose tests run with `filterwarnings = error`: blinker 1.4's `base.py`
//! has an invalid escape sequence, and the DeprecationWarning its compilation emits becomes a
//! SyntaxError when the source has to be compiled at import time.

mod common;

use std::path::Path;

use ponder_env::{BuildOptions, EnvRecipe, Tool, ToolChoice};
use ponder_sandbox::{CommandSpec, Policy};

/// Names of the `.pyc` files in `dir/__pycache__`.
fn pycs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("__pycache__"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".pyc"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn uv_base_is_compiled_and_imports_under_warnings_as_errors() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("bytecode");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let recipe = EnvRecipe {
        python: py.minor_string(),
        requirements: vec!["blinker==1.4".into(), "six==1.16.0".into()],
        ..EnvRecipe::default()
    };
    let opts = BuildOptions {
        tool: ToolChoice::Uv,
        ..BuildOptions::default()
    };
    let base = store.ensure_base(&recipe, &opts).expect("base builds");
    assert_eq!(base.status.tool, Tool::Uv);
    let site = &base.status.site_packages[0];
    let blinker = pycs(&site.join("blinker"));
    assert!(
        blinker.iter().any(|n| n.starts_with("base.")),
        "blinker/base.py was not compiled: {blinker:?}"
    );
    assert!(
        pycs(site).iter().any(|n| n.starts_with("six.")),
        "six.py was not compiled: {:?}",
        pycs(site)
    );
    // uv's seed packages are compiled by the final compileall step.
    assert!(
        !pycs(&site.join("pip")).is_empty(),
        "the seeded pip was not compiled"
    );
    let log = std::fs::read_to_string(base.log_path()).unwrap();
    assert!(log.contains("--compile-bytecode"), "{log}");

    // A layer over it, where the base is read-only as in a test run.
    let wt = root.path().join("worktree");
    std::fs::create_dir_all(&wt).unwrap();
    std::fs::write(wt.join("README"), "empty project\n").unwrap();
    common::git_commit_all(&wt);
    let layer =
        common::layer(&store, &base, &recipe, &wt, &root.path().join("layer")).expect("layer");
    let run = |code: &str| {
        layer
            .run(
                store.sandbox(),
                CommandSpec::new(["python", "-W", "error", "-B", "-c", code]).cwd(&layer.worktree),
                Policy::tests(&layer.worktree),
            )
            .expect("sandbox run")
    };
    let out = run("import blinker.base; print('imported ' + blinker.__file__)");
    assert!(
        out.termination.success() && out.output.contains("imported"),
        "importing the compiled base under -W error failed: {}",
        out.output
    );

    // The control: the same source, compiled at import, fails exactly as flask's tests did.
    let copy = wt.join("uncompiled/blinker");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(site.join("blinker")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "py") {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    let out = run("import sys; sys.path.insert(0, 'uncompiled'); import blinker.base");
    assert!(
        !out.termination.success() && out.output.contains("invalid escape sequence"),
        "the uncompiled source should fail under -W error: {}",
        out.output
    );
    eprintln!(
        "MEASURED: uv base with blinker 1.4 + six built in {:.1}s; compiled import under -W \
         error works, source import fails with the SyntaxError",
        base.status.build_secs
    );
}

/// uv cannot compile for Python 3.6 (its compile script needs 3.7); the build's own
/// `compileall` step does it there.
#[test]
fn python36_base_with_uv_is_compiled_too() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("bytecode36");
    let store = common::store(root.path(), sandbox);
    if !common::has_python(&store, "3.6") {
        return;
    }
    let recipe = EnvRecipe {
        python: "3.6".into(),
        requirements: vec!["six==1.16.0".into()],
        ..EnvRecipe::default()
    };
    let opts = BuildOptions {
        tool: ToolChoice::Uv,
        ..BuildOptions::default()
    };
    let base = store.ensure_base(&recipe, &opts).expect("3.6 base builds");
    let site = &base.status.site_packages[0];
    assert!(
        pycs(site).iter().any(|n| n == "six.cpython-36.pyc"),
        "six.py was not compiled on 3.6: {:?}",
        pycs(site)
    );
    let log = std::fs::read_to_string(base.log_path()).unwrap();
    assert!(!log.contains("--compile-bytecode"), "{log}");
}
