//! A package whose old setup.py needs the environment's own, older setuptools: the isolated
//! build (newest setuptools) fails, and the builder tries again without isolation, as pip's
//! legacy setup.py path did in the harness's old environments.

mod common;

use ponder_env::{BuildOptions, EnvRecipe, EnvState, ToolChoice};
use ponder_sandbox::{CommandSpec, Policy};

#[test]
fn a_build_that_needs_the_environments_setuptools_is_retried_without_isolation() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("build-isolation");
    let store = common::store(root.path(), sandbox);
    let Some(py) = store.interpreters().find("3.9").cloned() else {
        eprintln!("SKIPPED: needs Python 3.9 (markupsafe 1.0 with setuptools < 46)");
        return;
    };
    // markupsafe 1.0's setup.py imports setuptools.Feature, removed in setuptools 46.
    let recipe = EnvRecipe {
        python: py.minor_string(),
        requirements: vec!["setuptools<46".into(), "wheel<0.38".into()],
        packages: vec!["markupsafe==1.0".into()],
        ..EnvRecipe::default()
    };
    let opts = BuildOptions {
        tool: ToolChoice::Uv,
        ..BuildOptions::default()
    };
    let base = store
        .ensure_base(&recipe, &opts)
        .expect("builds after the retry");
    assert_eq!(base.status.state, EnvState::Ready);
    let log = std::fs::read_to_string(base.log_path()).unwrap();
    assert!(
        log.contains("install packages without build isolation"),
        "{log}"
    );
    let spec = CommandSpec::new([
        base.python().display().to_string(),
        "-c".into(),
        "import markupsafe; print(markupsafe.__version__)".into(),
    ])
    .cwd(&base.dir);
    let out = store
        .sandbox()
        .run(&spec, &Policy::tests(&base.dir))
        .unwrap();
    assert_eq!(out.output.trim(), "1.0", "{}", out.output);
}
