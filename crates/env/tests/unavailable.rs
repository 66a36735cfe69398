//! Requirements the registry cannot provide: a base build drops exactly the lines the installer
//! blames (a name PyPI does not have, a version that does not exist), records them, and
//! installs the rest, with uv and with pip. Pins in `packages` are never dropped, and the number
//! of drops is bounded.

mod common;

use ponder_env::{BuildOptions, EnvError, EnvRecipe, EnvState, EnvStore, Tool, ToolChoice};
use ponder_sandbox::{CommandSpec, Policy};

fn recipe(python: &str) -> EnvRecipe {
    EnvRecipe {
        python: python.to_string(),
        requirements: vec![
            "iniconfig==2.0.0".into(),
            "ponder-no-such-package-xyz==1.0".into(),
            "six==99.0".into(),
        ],
        ..EnvRecipe::default()
    }
}

/// Exit status and output of `code` run by the base's own python.
fn base_runs(store: &EnvStore, base: &ponder_env::BaseEnv, code: &str) -> (bool, String) {
    let spec = CommandSpec::new([
        base.python().display().to_string(),
        "-c".into(),
        code.into(),
    ])
    .cwd(&base.dir);
    let out = store
        .sandbox()
        .run(&spec, &Policy::tests(&base.dir))
        .expect("sandbox run");
    (out.termination.success(), out.output)
}

fn drops_and_records(tool: ToolChoice) {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir(&format!("drop-{tool:?}"));
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let recipe = recipe(&py.minor_string());
    let opts = BuildOptions {
        tool,
        ..BuildOptions::default()
    };
    let base = store
        .ensure_base(&recipe, &opts)
        .expect("builds without the unavailable lines");
    assert_eq!(base.status.state, EnvState::Ready);
    assert_eq!(base.hash, store.plan(&recipe, &opts).unwrap().hash);
    let dropped: Vec<&str> = base
        .status
        .dropped
        .iter()
        .map(|d| d.requirement.as_str())
        .collect();
    let mut sorted = dropped.clone();
    sorted.sort();
    assert_eq!(sorted, ["ponder-no-such-package-xyz==1.0", "six==99.0"]);
    for d in &base.status.dropped {
        let name = d.requirement.split("==").next().unwrap();
        assert!(
            d.reason.contains(name),
            "the reason should name {name}: {}",
            d.reason
        );
    }
    eprintln!(
        "dropped with {:?}: {:#?}",
        base.status.tool, base.status.dropped
    );

    let (ok, out) = base_runs(&store, &base, "import iniconfig; print(iniconfig.__file__)");
    assert!(ok, "iniconfig should be installed: {out}");
    let (ok, out) = base_runs(&store, &base, "import six");
    assert!(!ok, "six was dropped, yet it imports: {out}");

    // Recorded in status.json, the build log, the list, and the file of what was installed.
    let status = store.status(&base.hash).unwrap();
    assert_eq!(status.dropped, base.status.dropped);
    assert_eq!(status.requirements, recipe.requirement_lines());
    let log = std::fs::read_to_string(base.log_path()).unwrap();
    assert_eq!(log.matches("=== dropped requirement").count(), 2, "{log}");
    let installed = std::fs::read_to_string(base.dir.join("requirements.txt")).unwrap();
    assert_eq!(installed.trim(), "iniconfig==2.0.0");
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].dropped, base.status.dropped);
    let reason = listed[0].reason.as_deref().unwrap_or("");
    assert!(reason.contains("dropped 2 unavailable"), "{reason}");

    // Same recipe, same environment.
    let again = store.ensure_base(&recipe, &opts).unwrap();
    assert!(again.reused);
    assert_eq!(again.hash, base.hash);
}

#[test]
fn unavailable_requirements_are_dropped_with_uv() {
    drops_and_records(ToolChoice::Uv);
}

#[test]
fn unavailable_requirements_are_dropped_with_pip() {
    drops_and_records(ToolChoice::Pip);
}

#[test]
fn pinned_packages_and_the_drop_limit_still_fail() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("drop-limits");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };

    // `packages` names six: the spec wants it, so its impossible requirement line stays and
    // the build fails as before.
    let pinned = EnvRecipe {
        python: py.minor_string(),
        requirements: vec!["six==99.0".into()],
        packages: vec!["six".into()],
        ..EnvRecipe::default()
    };
    let err = store
        .ensure_base(&pinned, &BuildOptions::default())
        .unwrap_err();
    let EnvError::BuildFailed { hash, reason, .. } = &err else {
        panic!("expected BuildFailed, got {err}");
    };
    assert!(reason.contains("six"), "{reason}");
    let status = store.status(hash).unwrap();
    assert_eq!(status.state, EnvState::Failed);
    assert!(status.dropped.is_empty(), "{:?}", status.dropped);
    let log = std::fs::read_to_string(store.envs_dir().join(hash).join("build.log")).unwrap();
    assert!(log.contains("`packages` pins it"), "{log}");

    // Two unavailable lines with room for one: the first is dropped, then the build gives up.
    let many = EnvRecipe {
        python: py.minor_string(),
        requirements: vec![
            "ponder-no-such-package-xyz==1.0".into(),
            "ponder-no-such-package-abc==1.0".into(),
        ],
        ..EnvRecipe::default()
    };
    let opts = BuildOptions {
        max_dropped: 1,
        ..BuildOptions::default()
    };
    let err = store.ensure_base(&many, &opts).unwrap_err();
    let EnvError::BuildFailed { hash, reason, .. } = &err else {
        panic!("expected BuildFailed, got {err}");
    };
    assert!(reason.contains("gave up"), "{reason}");
    let status = store.status(hash).unwrap();
    assert_eq!(status.dropped.len(), 1, "{:?}", status.dropped);
    assert_eq!(status.tool, Tool::Uv);
}
