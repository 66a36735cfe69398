//! A submodule that a PyPI package supplies: a real git repository (made here) whose commit has
//! astropy's `astropy_helpers` gitlink, dated in 2017-12, gets a step that fills it from PyPI
//! with the release current then (uv resolves it against the real index), and a checkout
//! without the submodule gets nothing.

use ponder_env::EnvStore;
use ponder_eval::recipe::fill_submodules;
use ponder_sandbox::{AllowUnconfined, Sandbox};
use ponder_swebench::dataset::Instance;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", "2017-12-21T12:00:00+00:00")
        .env("GIT_COMMITTER_DATE", "2017-12-21T12:00:00+00:00")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn instance(repo: &str, commit: &str) -> Instance {
    serde_json::from_value(serde_json::json!({
        "instance_id": "x__y-1", "repo": repo, "base_commit": commit, "test_patch": "",
        "version": "1.3", "FAIL_TO_PASS": [], "PASS_TO_PASS": []
    }))
    .unwrap()
}

#[test]
fn an_empty_astropy_helpers_gitlink_is_filled_with_the_release_of_its_day() {
    let sandbox = match Sandbox::detect(AllowUnconfined::No) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIPPED: no working sandbox (needed to install uv): {e}");
            return;
        }
    };
    let dir = tempfile::Builder::new()
        .prefix("ponder-submodules-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["config", "user.email", "t@example.com"]);
    git(&repo, &["config", "user.name", "t"]);
    std::fs::write(repo.join("setup.py"), "").unwrap();
    git(&repo, &["add", "setup.py"]);
    git(&repo, &["commit", "-qm", "plain"]);
    let plain = git(&repo, &["rev-parse", "HEAD"]);
    // The gitlink alone, as a snapshot without the submodule's objects has it.
    git(
        &repo,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            "160000,d23a53f46dd1c3703e5eee63dca3f53bd18a4e8b,astropy_helpers",
        ],
    );
    git(&repo, &["commit", "-qm", "helpers"]);
    let with_link = git(&repo, &["rev-parse", "HEAD"]);

    let shared = match std::env::var_os("PONDER_TEST_CACHE").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("ponder-env-test-cache"),
    };
    let envs = EnvStore::new(dir.path().join("envs"), sandbox)
        .with_tools_dir(shared.join("tools"))
        .with_download_cache(shared.join("downloads"));
    let uv = || Ok(envs.uv(Duration::from_secs(600))?);

    let mut recipe = ponder_env::EnvRecipe::new("3.6");
    fill_submodules(
        &mut recipe,
        &instance("astropy/astropy", &with_link),
        &repo,
        &uv,
    )
    .unwrap();
    assert_eq!(recipe.pre_install.len(), 1, "{:?}", recipe.pre_install);
    let step = &recipe.pre_install[0];
    assert!(step.contains("astropy-helpers==2.0.2"), "{step}");
    assert!(
        step.contains("git config submodule.astropy_helpers.update none"),
        "{step}"
    );
    assert!(
        recipe
            .notes
            .iter()
            .any(|n| n.contains("astropy-helpers 2.0.2"))
    );

    // No gitlink at that commit, or another repository: nothing to do, and uv is not needed.
    let never = || -> anyhow::Result<PathBuf> { panic!("uv must not be asked for") };
    for inst in [
        instance("astropy/astropy", &plain),
        instance("pallets/flask", &with_link),
    ] {
        let mut recipe = ponder_env::EnvRecipe::new("3.6");
        fill_submodules(&mut recipe, &inst, &repo, &never).unwrap();
        assert!(recipe.pre_install.is_empty());
    }
}
