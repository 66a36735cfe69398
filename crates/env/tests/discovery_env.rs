//! `PONDER_PYTHONS` read from the real process environment. Alone in its own test binary
//! because it sets a variable of the process.

use std::path::PathBuf;

use ponder_env::{DiscoveryConfig, Interpreters};

#[test]
fn ponder_pythons_variable_is_honoured() {
    let Some(root) = DiscoveryConfig::from_env().pyenv_root else {
        eprintln!("SKIPPED: no pyenv root");
        return;
    };
    let Some(python) = std::fs::read_dir(root.join("versions"))
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path().join("bin/python"))))
        .filter(|p: &PathBuf| p.is_file())
    else {
        eprintln!("SKIPPED: no pyenv interpreter under {}", root.display());
        return;
    };
    // SAFETY: this binary has a single test, so no other thread reads the environment.
    unsafe { std::env::set_var("PONDER_PYTHONS", &python) };
    let found = Interpreters::discover();
    let from_var: Vec<_> = found
        .all()
        .iter()
        .filter(|i| i.source == "PONDER_PYTHONS")
        .collect();
    assert_eq!(from_var.len(), 1, "{:?}", found.all());
    assert_eq!(from_var[0].path, python);
}
