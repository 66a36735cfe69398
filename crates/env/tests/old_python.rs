//! Old and new interpreters: a pinned package into Python 3.6 with uv and with pip (and a layer
//! on it), and the tool matrix over every interpreter found here. uv is refused for Python 2.7,
//! where pip (through virtualenv) takes over.
//!
//! `PONDER_TEST_FULL_MATRIX=1` also builds every version with pip (slower).

mod common;

use std::time::Instant;

use ponder_env::{BuildOptions, EnvError, EnvRecipe, EnvStore, Tool, ToolChoice};
use ponder_sandbox::{CommandSpec, Policy};

fn six_recipe(minor: &str) -> EnvRecipe {
    EnvRecipe {
        python: minor.to_string(),
        packages: vec!["six==1.16.0".to_string()],
        ..EnvRecipe::default()
    }
}

/// Builds six into `minor` with `tool` and checks the venv's python imports the pinned version.
fn build_and_check(store: &EnvStore, minor: &str, tool: ToolChoice) -> Result<(Tool, f64), String> {
    let t = Instant::now();
    let base = store
        .ensure_base(
            &six_recipe(minor),
            &BuildOptions {
                tool,
                ..BuildOptions::default()
            },
        )
        .map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    let spec = CommandSpec::new([
        base.python().display().to_string(),
        "-c".to_string(),
        "import six, sys; sys.stdout.write(six.__version__ + ' %d.%d' % sys.version_info[:2])"
            .to_string(),
    ])
    .cwd(&base.dir);
    let out = store
        .sandbox()
        .run(&spec, &Policy::tests(&base.dir))
        .map_err(|e| e.to_string())?;
    let want = format!("1.16.0 {minor}");
    if !out.termination.success() || !out.output.contains(&want) {
        return Err(format!("expected {want:?}, got {:?}", out.output));
    }
    Ok((base.status.tool, secs))
}

#[test]
fn python36_with_uv_and_pip_and_a_layer() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("py36");
    let store = common::store(root.path(), sandbox);
    if !common::has_python(&store, "3.6") {
        return;
    }
    for tool in [ToolChoice::Uv, ToolChoice::Pip] {
        let (used, secs) = build_and_check(&store, "3.6", tool).expect("3.6 base env");
        eprintln!("MEASURED: python 3.6 base env with {used} (six==1.16.0): {secs:.2}s");
    }
    // A layer on the 3.6 base: a tiny setup.py project installed editable with pip.
    let base = store
        .ensure_base(
            &six_recipe("3.6"),
            &BuildOptions {
                tool: ToolChoice::Pip,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(base.reused);
    let wt = root.path().join("wt");
    std::fs::create_dir_all(wt.join("tinypkg")).unwrap();
    std::fs::write(wt.join("tinypkg/__init__.py"), "VALUE = 36\n").unwrap();
    std::fs::write(
        wt.join("setup.py"),
        "from setuptools import setup\nsetup(name='tinypkg', version='0.1', packages=['tinypkg'])\n",
    )
    .unwrap();
    common::git_commit_all(&wt);
    let recipe = EnvRecipe {
        install: Some("python -m pip install -e .".into()),
        ..six_recipe("3.6")
    };
    let t = Instant::now();
    let layer =
        common::layer(&store, &base, &recipe, &wt, &root.path().join("layer")).expect("3.6 layer");
    eprintln!(
        "MEASURED: python 3.6 layer (setup.py project, pip): {:.2}s",
        t.elapsed().as_secs_f64()
    );
    let out = layer
        .run(
            store.sandbox(),
            CommandSpec::new([
                "python",
                "-c",
                "import tinypkg, six; print(tinypkg.VALUE, six.__version__)",
            ])
            .cwd(&wt),
            Policy::tests(&wt),
        )
        .unwrap();
    assert!(out.termination.success(), "{}", out.output);
    assert_eq!(out.output.trim(), "36 1.16.0");
}

#[test]
fn tool_matrix_over_every_interpreter() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("matrix");
    let store = common::store(root.path(), sandbox);
    let full = std::env::var_os("PONDER_TEST_FULL_MATRIX").is_some();
    let mut minors: Vec<String> = store
        .interpreters()
        .all()
        .iter()
        .map(|i| i.minor_string())
        .collect();
    minors.dedup();
    assert!(!minors.is_empty(), "no interpreter at all");
    let mut rows = Vec::new();
    for minor in &minors {
        let py = store.interpreters().find(minor).unwrap().clone();
        let (tool, secs) = build_and_check(&store, minor, ToolChoice::Auto)
            .unwrap_or_else(|e| panic!("python {minor} with the automatic tool: {e}"));
        let expected = if py.minor() >= ponder_env::tools::UV_MIN_PYTHON {
            Tool::Uv
        } else {
            Tool::Pip
        };
        assert_eq!(tool, expected, "python {minor}");
        rows.push(format!("{} auto->{tool} {secs:.2}s", py.version_string()));
        if full && tool == Tool::Uv {
            let (_, secs) = build_and_check(&store, minor, ToolChoice::Pip)
                .unwrap_or_else(|e| panic!("python {minor} with pip: {e}"));
            rows.push(format!("{} pip {secs:.2}s", py.version_string()));
        }
        if py.minor() < ponder_env::tools::UV_MIN_PYTHON {
            let err = store
                .ensure_base(
                    &six_recipe(minor),
                    &BuildOptions {
                        tool: ToolChoice::Uv,
                        ..Default::default()
                    },
                )
                .unwrap_err();
            assert!(matches!(err, EnvError::Tool(_)), "{err}");
            assert!(err.to_string().contains("use the pip tool"), "{err}");
            rows.push(format!("{} uv refused: {err}", py.version_string()));
        }
    }
    if !full {
        eprintln!("note: set PONDER_TEST_FULL_MATRIX=1 to also build every version with pip");
    }
    for r in rows {
        eprintln!("MEASURED: {r}");
    }
    // One entry per build, all ready.
    let listed = store.list().unwrap();
    assert!(
        listed
            .iter()
            .all(|e| e.state == ponder_env::EnvState::Ready)
    );
}

#[test]
fn missing_version_names_what_exists() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("missing");
    let store = common::store(root.path(), sandbox);
    let mut recipe = six_recipe("3.4");
    if store.interpreters().find("3.4").is_some() {
        recipe.python = "2.5".into();
    }
    let err = store
        .ensure_base(
            &recipe,
            &BuildOptions {
                needed_by: Some("django/django 1.7".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EnvError::MissingPython { .. }), "{text}");
    assert!(
        text.contains(&format!(
            "python {} needed by django/django 1.7",
            recipe.python
        )),
        "{text}"
    );
    assert!(text.contains(&store.interpreters().summary()), "{text}");
    assert!(text.contains("PONDER_PYTHONS"), "{text}");
    eprintln!("error as shown: {text}");
}
