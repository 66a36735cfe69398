//! Interpreter discovery against the interpreters really installed here: the pyenv versions
//! folder, `PONDER_PYTHONS` entries (files and prefix folders, taking priority), `pythonX.Y` on
//! PATH, and candidates that fail to run.

mod common;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use ponder_env::{DiscoveryConfig, Interpreters};

/// The pyenv root and the X.Y.Z names in its versions folder, or `None` (after saying so).
fn pyenv_versions() -> Option<(PathBuf, Vec<String>)> {
    let root = DiscoveryConfig::from_env().pyenv_root?;
    let listing = std::fs::read_dir(root.join("versions")).ok();
    let Some(listing) = listing else {
        eprintln!("SKIPPED: no pyenv versions folder under {}", root.display());
        return None;
    };
    let mut names: Vec<String> = listing
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("bin/python").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.split('.').count() == 3 && n.split('.').all(|p| p.parse::<u32>().is_ok()))
        .collect();
    names.sort();
    if names.is_empty() {
        eprintln!("SKIPPED: the pyenv versions folder has no CPython X.Y.Z versions");
        return None;
    }
    Some((root, names))
}

#[test]
fn finds_every_pyenv_interpreter() {
    let Some((_root, names)) = pyenv_versions() else {
        return;
    };
    let found = Interpreters::discover();
    let pyenv_found: Vec<String> = found
        .all()
        .iter()
        .filter(|i| i.source == "pyenv")
        .map(|i| i.version_string())
        .collect();
    for name in &names {
        assert!(
            pyenv_found.contains(name),
            "pyenv has {name} but discovery found {pyenv_found:?} (rejected: {:?})",
            found.rejected()
        );
        let minor: String = name.rsplit_once('.').unwrap().0.to_string();
        assert!(found.find(&minor).is_some(), "find({minor}) failed");
    }
    eprintln!("found: {}", found.summary());
    for i in found.all() {
        eprintln!("  {i}");
    }
}

#[test]
fn ponder_pythons_takes_priority_and_accepts_folders() {
    let Some((root, names)) = pyenv_versions() else {
        return;
    };
    let versions = root.join("versions");
    let first = &names[0];
    let last = &names[names.len() - 1];
    // A venv is an interpreter of the same version at another path: listed first, it wins.
    let tmp = common::temp_dir("discovery");
    let venv = tmp.path().join("venv");
    common::run(
        Command::new(versions.join(last).join("bin/python"))
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv),
    );
    let list = std::env::join_paths([
        venv.clone(),                                 // a prefix folder holding bin/python
        versions.join(first).join("bin/python"),      // an interpreter file
        tmp.path().join("does-not-exist/bin/python"), // missing
        PathBuf::from("/bin/true"),                   // runs, but is no Python
    ])
    .unwrap();
    let config = DiscoveryConfig {
        ponder_pythons: Some(list),
        pyenv_root: Some(root.clone()),
        path: None,
    };
    let found = Interpreters::discover_with(&config);
    let last_minor: String = last.rsplit_once('.').unwrap().0.to_string();
    let chosen = found.find(&last_minor).unwrap();
    assert_eq!(chosen.source, "PONDER_PYTHONS");
    assert_eq!(chosen.path, venv.join("bin/python"));
    assert_eq!(&chosen.version_string(), last);
    let first_minor: String = first.rsplit_once('.').unwrap().0.to_string();
    assert_eq!(found.find(&first_minor).unwrap().source, "PONDER_PYTHONS");
    assert_eq!(found.rejected().len(), 2, "{:?}", found.rejected());

    // Only PONDER_PYTHONS: nothing else is found.
    let only = Interpreters::discover_with(&DiscoveryConfig {
        ponder_pythons: Some(OsString::from(versions.join(first).join("bin/python"))),
        pyenv_root: None,
        path: None,
    });
    assert_eq!(only.all().len(), 1);
    assert_eq!(&only.all()[0].version_string(), first);
    let err = only.require(&last_minor, "a test").unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "python {last_minor} needed by a test; found {first}"
        )),
        "{err}"
    );
}

#[test]
fn finds_versioned_names_on_path() {
    let Some((root, names)) = pyenv_versions() else {
        return;
    };
    let name = names.iter().rfind(|n| n.starts_with("3.")).unwrap();
    let minor: String = name.rsplit_once('.').unwrap().0.to_string();
    let bin = root.join("versions").join(name).join("bin");
    if !bin.join(format!("python{minor}")).exists() {
        eprintln!("SKIPPED: {} has no python{minor}", bin.display());
        return;
    }
    let found = Interpreters::discover_with(&DiscoveryConfig {
        ponder_pythons: None,
        pyenv_root: None,
        path: Some(std::env::join_paths([root.join("shims"), bin.clone()]).unwrap()),
    });
    let i = found.find(&minor).expect("found on PATH");
    assert_eq!(i.source, "PATH");
    assert_eq!(i.path, bin.join(format!("python{minor}")));
}
