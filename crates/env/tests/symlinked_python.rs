//! A layer's interpreter started through a symlink in another folder, as `tox --current-env`
//! does with `.tox/<env>/bin/python`: it must still be the layer (its packages and, through
//! the `.pth` link, the base's), on every interpreter found here. Also the end-to-end case:
//! tox 4.16 with tox-current-env 0.0.11 running pytest in a layer, as SWE-bench's sphinx specs
//! do.

mod common;

use std::path::Path;

use ponder_env::{BaseEnv, BuildOptions, EnvRecipe, EnvStore, Interpreter, Layer, LayerOptions};
use ponder_env::{Tool, ToolChoice};
use ponder_sandbox::{CommandSpec, Policy};

/// An empty committed work tree at `dir`.
fn empty_worktree(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("README"), "empty project\n").unwrap();
    common::git_commit_all(dir);
}

fn layer_over(store: &EnvStore, base: &BaseEnv, dir: &Path) -> Result<Layer, String> {
    let wt = dir.join("worktree");
    empty_worktree(&wt);
    store
        .create_layer(
            base,
            &EnvRecipe::new(&base.status.python),
            &wt,
            &dir.join("layer"),
            &LayerOptions::default(),
        )
        .map_err(|e| e.to_string())
}

/// Python 2.7 compatible. Prints where six comes from, the prefix, and whether the stdlib's
/// modules resolve under sysconfig's stdlib folder (tools such as astroid compare realpaths).
const PROBE: &str = "import os, sys, sysconfig, six\n\
                     std = os.path.realpath(sysconfig.get_path('stdlib')) + os.sep\n\
                     ok = os.path.realpath(os.__file__).startswith(std)\n\
                     sys.stdout.write('@@%s|%s|%s\\n' % (os.path.realpath(six.__file__), \
                     os.path.realpath(sys.prefix), ok))";

/// Runs PROBE with `exe` (no activation: only the interpreter's own lookup counts).
fn probe(store: &EnvStore, layer: &Layer, exe: &Path) -> Result<(String, String, String), String> {
    let spec = CommandSpec::new([exe.display().to_string(), "-c".into(), PROBE.into()])
        .cwd(&layer.worktree);
    let out = store
        .sandbox()
        .run(
            &spec,
            &layer.activation().confine(Policy::tests(&layer.worktree)),
        )
        .map_err(|e| e.to_string())?;
    let line = out
        .output
        .lines()
        .find_map(|l| l.strip_prefix("@@"))
        .filter(|_| out.termination.success())
        .ok_or_else(|| format!("{} failed: {}", exe.display(), out.output))?;
    let parts: Vec<&str> = line.trim().split('|').collect();
    match parts[..] {
        [a, b, c] => Ok((a.to_string(), b.to_string(), c.to_string())),
        _ => Err(format!("odd answer {line:?}")),
    }
}

/// Base with six, a layer, and the layer's python run directly and through a symlink.
fn check(store: &EnvStore, dir: &Path, py: &Interpreter, tool: ToolChoice) -> Result<Tool, String> {
    let recipe = EnvRecipe {
        python: py.minor_string(),
        packages: vec!["six==1.16.0".into()],
        ..EnvRecipe::default()
    };
    let opts = BuildOptions {
        tool,
        ..BuildOptions::default()
    };
    let base = store
        .ensure_base(&recipe, &opts)
        .map_err(|e| e.to_string())?;
    let layer = layer_over(store, &base, dir)?;
    if py.version.0 >= 3 && layer.record.standin.is_none() {
        return Err(format!(
            "no stand-in prefix; see {}",
            layer.log_path().display()
        ));
    }
    let elsewhere = layer.worktree.join(".tox/py/bin");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let link = elsewhere.join("python");
    std::os::unix::fs::symlink(layer.python(), &link).unwrap();
    let venv = std::fs::canonicalize(layer.venv()).unwrap();
    for exe in [layer.python(), link] {
        let (six, prefix, std_ok) = probe(store, &layer, &exe)?;
        if !Path::new(&six).starts_with(&base.dir) {
            return Err(format!("{}: six from {six}, not the base", exe.display()));
        }
        if Path::new(&prefix) != venv {
            return Err(format!(
                "{}: sys.prefix {prefix}, not {}",
                exe.display(),
                venv.display()
            ));
        }
        // virtualenv's Python 2 layout links single stdlib modules into the venv's lib folder,
        // so there the check cannot hold (and never did).
        if std_ok != "True" && py.version.0 >= 3 {
            return Err(format!(
                "{}: stdlib modules do not resolve under sysconfig's stdlib folder",
                exe.display()
            ));
        }
    }
    Ok(base.status.tool)
}

#[test]
fn layer_python_works_through_a_symlink_elsewhere_on_every_interpreter() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("symlinked");
    let store = common::store(root.path(), sandbox);
    let mut minors: Vec<&Interpreter> = Vec::new();
    for i in store.interpreters().all() {
        if minors.iter().all(|m| m.minor() != i.minor()) {
            minors.push(i);
        }
    }
    if minors.is_empty() {
        eprintln!("SKIPPED: no interpreters found");
        return;
    }
    let mut failures = Vec::new();
    let mut passed = Vec::new();
    for py in &minors {
        let dir = root.path().join(py.minor_string());
        let t = std::time::Instant::now();
        match check(&store, &dir, py, ToolChoice::Auto) {
            Ok(tool) => passed.push(format!(
                "{} ({tool}, {:.1}s)",
                py.minor_string(),
                t.elapsed().as_secs_f64()
            )),
            Err(e) => failures.push(format!("{}: {e}", py.minor_string())),
        }
    }
    // The pip tool makes the layer with `python -m venv`, whose links differ from uv's.
    if let Some(py) = common::test_python(store.interpreters()) {
        let dir = root.path().join(format!("{}-pip", py.minor_string()));
        match check(&store, &dir, &py, ToolChoice::Pip) {
            Ok(_) => passed.push(format!("{} (pip)", py.minor_string())),
            Err(e) => failures.push(format!("{} with pip: {e}", py.minor_string())),
        }
    }
    eprintln!("symlinked interpreter works for: {}", passed.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tox_current_env_runs_pytest_in_a_layer() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("tox");
    let store = common::store(root.path(), sandbox);
    // 3.9 is what SWE-bench's sphinx specs use (and takes the 3.10-and-older startup path);
    // the newest 3.11+ takes the other one.
    let mut pythons: Vec<Interpreter> = Vec::new();
    if let Some(p) = store.interpreters().find("3.9") {
        pythons.push(p.clone());
    }
    if let Some(p) = store.interpreters().newest_at_least((3, 11)) {
        pythons.push(p.clone());
    }
    if pythons.is_empty() {
        eprintln!(
            "SKIPPED: neither 3.9 nor 3.11+ found (found {})",
            store.interpreters().summary()
        );
        return;
    }
    for py in &pythons {
        let recipe = EnvRecipe {
            python: py.minor_string(),
            packages: vec![
                "tox==4.16.0".into(),
                "tox-current-env==0.0.11".into(),
                "pytest==7.4.0".into(),
            ],
            ..EnvRecipe::default()
        };
        let base = store
            .ensure_base(&recipe, &BuildOptions::default())
            .expect("base with tox builds");
        let dir = root.path().join(py.minor_string());
        let wt = dir.join("worktree");
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(
            wt.join("tox.ini"),
            "[tox]\nenvlist = py\nskipsdist = true\n\n[testenv]\ncommands = python -m pytest \
             {posargs}\n",
        )
        .unwrap();
        std::fs::write(
            wt.join("test_env.py"),
            "import sys\nimport pluggy\n\n\ndef test_sees_the_base():\n    \
             assert 'site-packages' in pluggy.__file__\n    assert sys.prefix != \
             sys.base_prefix or 'layer' in sys.prefix\n",
        )
        .unwrap();
        common::git_commit_all(&wt);
        let layer = common::layer(&store, &base, &recipe, &wt, &dir.join("layer")).expect("layer");
        let env = format!("py{}{}", py.version.0, py.version.1);
        let command = format!("tox --current-env -e{env} -v -- -q test_env.py");
        let out = layer
            .run(
                store.sandbox(),
                CommandSpec::shell(&command).cwd(&wt),
                Policy::tests(&wt),
            )
            .expect("sandbox run");
        assert!(
            out.termination.success() && out.output.contains("1 passed"),
            "{command} with {} failed:\n{}",
            py.version_string(),
            out.output
        );
        let tox_python = wt.join(format!(".tox/{env}/bin/python"));
        assert!(
            tox_python
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink()),
            "tox-current-env should have made {} a symlink",
            tox_python.display()
        );
        eprintln!(
            "tox --current-env ran pytest in a layer with {}",
            py.version_string()
        );
    }
}
