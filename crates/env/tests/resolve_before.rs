//! Resolving requirements as the registry stood on a date: what a conda channel offered for an
//! old Python is approximated by the newest release before the date the channel stopped
//! building for it. Checked against PyPI's real release history.

mod common;

use ponder_env::{BuildOptions, EnvError, EnvRecipe, EnvStore, ToolChoice};
use ponder_sandbox::{CommandSpec, Policy};

fn version_of(store: &EnvStore, base: &ponder_env::BaseEnv, module: &str) -> String {
    let spec = CommandSpec::new([
        base.python().display().to_string(),
        "-c".into(),
        format!("import {module}; print({module}.__version__)"),
    ])
    .cwd(&base.dir);
    let out = store
        .sandbox()
        .run(&spec, &Policy::tests(&base.dir))
        .expect("sandbox run");
    assert!(out.termination.success(), "{}", out.output);
    out.output.trim().to_string()
}

#[test]
fn requirements_resolve_as_of_the_date_and_packages_do_not() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("resolve-before");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let recipe = EnvRecipe {
        python: py.minor_string(),
        // six 1.12.0 came out in December 2018, 1.13.0 in November 2019.
        requirements: vec!["six".into()],
        // A package pinned explicitly is installed as asked, whatever the date.
        packages: vec!["iniconfig==2.0.0".into()],
        resolve_before: Some("2019-01-01".into()),
        ..EnvRecipe::default()
    };
    let opts = BuildOptions {
        tool: ToolChoice::Uv,
        ..BuildOptions::default()
    };
    let base = store.ensure_base(&recipe, &opts).expect("builds");
    assert_eq!(version_of(&store, &base, "six"), "1.12.0");
    // The date is part of the environment's identity.
    let later = EnvRecipe {
        resolve_before: Some("2020-01-01".into()),
        ..recipe.clone()
    };
    assert_ne!(store.plan(&later, &opts).unwrap().hash, base.hash);
    let undated = EnvRecipe {
        resolve_before: None,
        ..recipe.clone()
    };
    assert_ne!(store.plan(&undated, &opts).unwrap().hash, base.hash);
    // A malformed date is refused before anything is built.
    let bad = EnvRecipe {
        resolve_before: Some("Jan 2019".into()),
        ..recipe
    };
    assert!(matches!(
        store.ensure_base(&bad, &opts),
        Err(EnvError::InvalidRecipe(_))
    ));
}
