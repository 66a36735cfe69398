//! A layer's stand-in prefix: makes the layer's interpreter work when it is started through a
//! symlink somewhere else, as `tox --current-env` does (it links `.tox/<env>/bin/python` to
//! the running interpreter).
//!
//! Why a copied interpreter alone is not enough (measured on CPython 3.6 to 3.13): Python
//! looks for `pyvenv.cfg` next to the path it was started as (3.11+), or finds it through the
//! resolved path but then `site.py` looks again next to the unresolved `sys.executable` (3.10
//! and older). Either way a symlink in a foreign folder loses the venv, and the interpreter
//! falls back to the prefix it finds by walking up from its *real* file looking for
//! `lib/pythonX.Y/os.py`. So the real file must sit in a prefix that leads back to the layer:
//!
//! ```text
//! <layer>/venv/bin/python        -> <layer>/prefix/bin/python (python3, python3.X -> python)
//! <layer>/prefix/bin/python      a copy of the interpreter's executable
//! <layer>/prefix/<entry>         -> <base install>/<entry>   (include, share, ...)
//! <layer>/prefix/lib/<entry>     -> <base install>/lib/<entry>  (the stdlib folder itself,
//!                                   so realpaths of stdlib modules stay under the stdlib dir)
//! <layer>/prefix/lib/pythonXY.zip/sitecustomize.py
//! ```
//!
//! `lib/pythonXY.zip` is always on `sys.path` (CPython lists it whether or not it exists, and a
//! folder of that name imports like any folder), so the hook runs in both cases. Started
//! normally, the venv is found and the hook does nothing but hand over to any other
//! `sitecustomize`. Started through a foreign symlink, `sys.prefix` is the stand-in prefix,
//! and the hook does what the venv machinery would have: the layer's site-packages (whose
//! `.pth` adds the base's) replace the base install's, and `sys.prefix` names the layer.
//!
//! On 3.10 and older the stand-in is also `sys.base_prefix` of normal runs, since those
//! resolve the symlink before looking for a home; its entries are symlinks to the real install,
//! so the standard library, headers and build configuration are the same files.
//! Python 2 layers are made by virtualenv, whose interpreter is a copy that finds its
//! `lib/python2.7/os.py` landmark inside the venv: they need none of this.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::EnvError;
use crate::run::StepRunner;

/// The stand-in prefix folder, beside the layer's `venv`.
pub const STANDIN_DIR: &str = "prefix";

/// What the stand-in is made from, asked of the freshly made venv.
#[derive(Debug, Clone)]
pub(crate) struct InterpreterFacts {
    pub base_prefix: PathBuf,
    /// The `pythonXY.zip` entry of `sys.path`, relative to `base_prefix`.
    pub zip: PathBuf,
    /// The real executable file (symlinks resolved).
    pub executable: PathBuf,
}

/// Asks the venv's interpreter (before any change) for the facts the stand-in needs.
pub(crate) fn query(
    runner: &mut StepRunner<'_>,
    python: &Path,
    cwd: &Path,
) -> Result<Result<InterpreterFacts, String>, EnvError> {
    const QUERY: &str = "import os, sys; z = [p for p in sys.path if p.endswith('.zip')]; \
                         sys.stdout.write('@@' + sys.base_prefix + '\\n@@' + (z[0] if z else '') \
                         + '\\n@@' + os.path.realpath(sys.executable) + '\\n')";
    let argv = vec![
        python.display().to_string(),
        "-c".to_string(),
        QUERY.to_string(),
    ];
    let out = runner.run("interpreter facts", &argv, cwd, &[])?;
    if !out.termination.success() {
        return Ok(Err(crate::run::failure_reason(
            "asking the venv about its interpreter",
            &out,
        )));
    }
    let answers: Vec<&str> = out
        .output
        .lines()
        .filter_map(|l| l.strip_prefix("@@"))
        .map(str::trim)
        .collect();
    let [base_prefix, zip, executable] = answers[..] else {
        return Ok(Err(format!(
            "unexpected answer about the interpreter: {}",
            crate::run::error_excerpt(&out.output)
        )));
    };
    let base_prefix = PathBuf::from(base_prefix);
    let Ok(zip) = Path::new(zip)
        .strip_prefix(&base_prefix)
        .map(Path::to_path_buf)
    else {
        return Ok(Err(format!(
            "sys.path has no stdlib zip entry under {} (got {zip:?})",
            base_prefix.display()
        )));
    };
    Ok(Ok(InterpreterFacts {
        base_prefix,
        zip,
        executable: PathBuf::from(executable),
    }))
}

/// A change made to the venv's `bin`, for undoing it.
#[derive(Debug)]
pub(crate) struct Installed {
    pub prefix: PathBuf,
    relinked: Vec<(PathBuf, PathBuf)>,
}

/// Builds `<layer_dir>/prefix` and points the venv's interpreter links at its executable.
/// An `Err` inside is a reason to keep the plain venv; the outer one is an I/O failure.
pub(crate) fn install(
    layer_dir: &Path,
    venv: &Path,
    facts: &InterpreterFacts,
    site_dirs: &[PathBuf],
) -> Result<Result<Installed, String>, EnvError> {
    let zip_parent = match facts.zip.parent() {
        Some(p) if !p.as_os_str().is_empty() && facts.zip.file_name().is_some() => p,
        _ => return Ok(Err(format!("odd stdlib zip path {}", facts.zip.display()))),
    };
    if facts.base_prefix.join(&facts.zip).exists() {
        return Ok(Err(format!(
            "{} exists: this interpreter keeps its standard library in a zip",
            facts.base_prefix.join(&facts.zip).display()
        )));
    }
    if !facts.executable.is_file() {
        return Ok(Err(format!(
            "the interpreter {} is not a file",
            facts.executable.display()
        )));
    }
    let prefix = layer_dir.join(STANDIN_DIR);
    if prefix.symlink_metadata().is_ok() {
        fs::remove_dir_all(&prefix)
            .with_context(|| format!("cannot remove the old {}", prefix.display()))?;
    }
    mirror(
        &facts.base_prefix,
        &prefix,
        Path::new(""),
        &[zip_parent],
        &[Path::new("bin")],
    )?;
    let prefix_bin = prefix.join("bin");
    fs::create_dir_all(&prefix_bin)
        .with_context(|| format!("cannot create {}", prefix_bin.display()))?;
    let python = prefix_bin.join("python");
    fs::copy(&facts.executable, &python).with_context(|| {
        format!(
            "cannot copy {} to {}",
            facts.executable.display(),
            python.display()
        )
    })?;
    let hook_dir = prefix.join(&facts.zip);
    fs::create_dir_all(&hook_dir)
        .with_context(|| format!("cannot create {}", hook_dir.display()))?;
    let hook = hook_dir.join("sitecustomize.py");
    fs::write(&hook, hook_source(venv, site_dirs)?)
        .with_context(|| format!("cannot write {}", hook.display()))?;

    // The venv's own interpreter links: those pointing out of the venv now point at the copy;
    // `python3 -> python` style links inside the venv follow along by themselves.
    let venv_bin = venv.join("bin");
    let mut relinked = Vec::new();
    let entries =
        fs::read_dir(&venv_bin).with_context(|| format!("cannot list {}", venv_bin.display()))?;
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_python_name(&name) {
            continue;
        }
        let link = entry.path();
        let Ok(target) = fs::read_link(&link) else {
            continue;
        };
        if target.components().count() == 1 && target.is_relative() {
            continue;
        }
        fs::remove_file(&link).with_context(|| format!("cannot replace {}", link.display()))?;
        symlink(&python, &link)
            .with_context(|| format!("cannot link {} to {}", link.display(), python.display()))?;
        relinked.push((link, target));
    }
    if relinked.is_empty() {
        fs::remove_dir_all(&prefix)
            .with_context(|| format!("cannot remove {}", prefix.display()))?;
        return Ok(Err(format!(
            "{} has no interpreter link to replace",
            venv_bin.display()
        )));
    }
    Ok(Ok(Installed { prefix, relinked }))
}

/// Puts the venv's links back and removes the stand-in.
pub(crate) fn undo(installed: Installed) -> Result<(), EnvError> {
    for (link, target) in &installed.relinked {
        let _ = fs::remove_file(link);
        symlink(target, link).with_context(|| format!("cannot restore {}", link.display()))?;
    }
    fs::remove_dir_all(&installed.prefix)
        .with_context(|| format!("cannot remove {}", installed.prefix.display()))?;
    Ok(())
}

/// `python`, `python3`, `python3.11`.
fn is_python_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("python") else {
        return false;
    };
    rest.is_empty() || rest.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Makes `dst/rel` a real folder whose entries are symlinks to those of `src/rel`, except the
/// folders on the way to (and including) a path in `real`, which are mirrored the same way,
/// and the paths in `skip`, which are left for the caller.
fn mirror(
    src: &Path,
    dst: &Path,
    rel: &Path,
    real: &[&Path],
    skip: &[&Path],
) -> Result<(), EnvError> {
    let here = dst.join(rel);
    fs::create_dir_all(&here).with_context(|| format!("cannot create {}", here.display()))?;
    let from = src.join(rel);
    let entries = fs::read_dir(&from).with_context(|| format!("cannot list {}", from.display()))?;
    for entry in entries.filter_map(|e| e.ok()) {
        let child = rel.join(entry.file_name());
        if skip.contains(&child.as_path()) {
            continue;
        }
        if real.iter().any(|r| r.starts_with(&child)) && entry.path().is_dir() {
            mirror(src, dst, &child, real, skip)?;
            continue;
        }
        let link = dst.join(&child);
        symlink(entry.path(), &link).with_context(|| {
            format!(
                "cannot link {} to {}",
                link.display(),
                entry.path().display()
            )
        })?;
    }
    Ok(())
}

/// The hook, for Python 3.6 and newer. It never stops the interpreter from starting.
const HOOK: &str = r#"# Written by ponder for one environment layer.
# Imported from the layer's stand-in prefix. When the interpreter was started through a symlink
# outside the layer (tox --current-env makes one), Python cannot find the venv and lands here
# with sys.prefix == sys.base_prefix; this then makes the process the layer's environment, as
# the venv machinery would have. Otherwise it only hands over to any other sitecustomize.
import sys


def _ponder_enter_layer(venv, site_dirs):
    import os
    import site

    if sys.prefix != sys.base_prefix:
        return

    def norm(path):
        return os.path.normcase(os.path.abspath(path))

    foreign = set()
    try:
        foreign.update(norm(p) for p in site.getsitepackages([sys.prefix, sys.exec_prefix]))
    except Exception:
        pass
    user_site = getattr(site, "USER_SITE", None)
    if user_site:
        foreign.add(norm(user_site))
    kept = []
    position = None
    for entry in sys.path:
        if entry and norm(entry) in foreign:
            if position is None:
                position = len(kept)
            continue
        kept.append(entry)
    sys.path[:] = kept
    sys.prefix = sys.exec_prefix = venv
    site.PREFIXES = [venv]
    site.ENABLE_USER_SITE = False
    start = len(sys.path)
    for directory in site_dirs:
        site.addsitedir(directory)
    added = sys.path[start:]
    del sys.path[start:]
    if position is None:
        position = len(sys.path)
    sys.path[position:position] = added
    sysconfig = sys.modules.get("sysconfig")
    if sysconfig is not None:
        for name in ("_PREFIX", "_EXEC_PREFIX"):
            if hasattr(sysconfig, name):
                setattr(sysconfig, name, os.path.normpath(venv))
        if getattr(sysconfig, "_CONFIG_VARS", None) is not None:
            sysconfig._CONFIG_VARS = None
            if hasattr(sysconfig, "_CONFIG_VARS_INITIALIZED"):
                sysconfig._CONFIG_VARS_INITIALIZED = False


def _ponder_hand_over():
    import os
    import importlib.machinery
    import importlib.util

    here = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))
    path = [p for p in sys.path if os.path.normcase(os.path.abspath(p or ".")) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


try:
    _ponder_enter_layer(@VENV@, @SITE_DIRS@)
except Exception as error:
    sys.stderr.write("ponder: could not enter the layer environment: %r\n" % (error,))
_ponder_hand_over()
"#;

fn hook_source(venv: &Path, site_dirs: &[PathBuf]) -> Result<String, EnvError> {
    // JSON strings and arrays of them are valid Python literals.
    let venv_literal =
        serde_json::to_string(&venv.display().to_string()).context("cannot quote the venv path")?;
    let dirs: Vec<String> = site_dirs.iter().map(|d| d.display().to_string()).collect();
    let dirs_literal = serde_json::to_string(&dirs).context("cannot quote site-packages")?;
    Ok(HOOK
        .replace("@VENV@", &venv_literal)
        .replace("@SITE_DIRS@", &dirs_literal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_names() {
        assert!(is_python_name("python"));
        assert!(is_python_name("python3"));
        assert!(is_python_name("python3.11"));
        assert!(!is_python_name("python3-config"));
        assert!(!is_python_name("pythonw"));
        assert!(!is_python_name("pip"));
    }

    #[test]
    fn hook_quotes_paths() {
        let src = hook_source(
            Path::new("/l/it's \"here\"/venv"),
            &[PathBuf::from("/l/venv/lib/python3.11/site-packages")],
        )
        .unwrap();
        assert!(src.contains(
            r#"_ponder_enter_layer("/l/it's \"here\"/venv", ["/l/venv/lib/python3.11/site-packages"])"#
        ));
    }
}
