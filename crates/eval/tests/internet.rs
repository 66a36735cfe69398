//! The stand-in internet, for real: httpbin from PyPI under gunicorn inside a real bubblewrap
//! network namespace, reached over HTTP and HTTPS by name from a real Python, an unroutable
//! address that hangs instead of refusing, and the setup's capability gone from the command.

use ponder_env::EnvStore;
use ponder_eval::internet::{Fixture, StandIn, unsupported};
use ponder_sandbox::{AllowUnconfined, CommandSpec, Policy, Sandbox};
use std::path::{Path, PathBuf};

fn shared_cache() -> PathBuf {
    match std::env::var_os("PONDER_TEST_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("ponder-env-test-cache"),
    }
}

/// What the probe prints, one line per check.
const PROBE: &str = r#"
import json, os, socket, ssl, subprocess, urllib.error, urllib.request
body = json.load(urllib.request.urlopen("http://httpbin.org/get?x=1", timeout=10))
print("http", body["args"]["x"], body["headers"]["Host"])
ctx = ssl.create_default_context(cafile=os.environ["BUNDLE"])
try:
    urllib.request.urlopen("https://www.httpbin.org/status/418", context=ctx, timeout=10)
except urllib.error.HTTPError as e:
    print("https", e.code)
try:
    socket.create_connection(("10.255.255.1", 80), timeout=1)
    print("unroutable connected")
except socket.timeout:
    print("unroutable timeout")
except OSError as e:
    print("unroutable error", e)
added = subprocess.run(["ip", "link", "add", "x0", "type", "dummy"], capture_output=True)
print("net_admin", "kept" if added.returncode == 0 else "dropped")
print("variable", os.environ.get("PROBE_URL"))
"#;

#[test]
fn httpbin_answers_by_name_over_http_and_https_and_the_tarpit_hangs() {
    let sandbox = match Sandbox::detect(AllowUnconfined::No) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIPPED: no working sandbox: {e}");
            return;
        }
    };
    if let Some(why) = unsupported(&sandbox) {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("ponder-internet-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    // The "CA bundle of the code under test": a file the query names, here an empty one.
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, "").unwrap();
    let query: &'static str =
        Box::leak(format!("print({:?})", bundle.display().to_string()).into_boxed_str());
    let fixture: &'static Fixture = Box::leak(Box::new(Fixture {
        repo: "example/probe",
        hosts: &["httpbin.org", "www.httpbin.org"],
        unroutable: &["10.255.255.1"],
        env: &[("PROBE_URL", "http://httpbin.org/")],
        ca_bundle_query: Some(query),
    }));
    let shared = shared_cache();
    let envs = EnvStore::new(dir.path().join("envs"), sandbox.clone())
        .with_tools_dir(shared.join("tools"))
        .with_download_cache(shared.join("downloads"));
    let stand_in = StandIn::prepare(fixture, &envs, &dir.path().join("stand-in"))
        .expect("httpbin installs from the package index");
    let python = envs
        .interpreters()
        .newest_at_least((3, 8))
        .expect("a Python 3.8+")
        .path
        .clone();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let spec = CommandSpec::new(["true"]).cwd(&work).env(
        "PATH",
        format!("{}:/usr/bin:/bin", python.parent().unwrap().display()),
    );
    let policy = Policy::tests(&work);
    let ca = stand_in
        .ca_bundle(&sandbox, spec.clone(), policy.clone(), &work)
        .unwrap()
        .expect("the fixture names a bundle");
    assert_eq!(ca.1, bundle);
    let mut spec = spec.env("BUNDLE", bundle.display().to_string());
    spec.argv = stand_in.wrap(&format!("{} -c '{}'", python.display(), PROBE));
    let spec = spec.envs(stand_in.env());
    let outcome = sandbox
        .run(&spec, &stand_in.confine(policy, Some(&ca)))
        .unwrap();
    let out = outcome.output;
    assert!(outcome.termination.success(), "{out}");
    for line in [
        "http 1 httpbin.org",
        "https 418",
        "unroutable timeout",
        "net_admin dropped",
        "variable http://httpbin.org/",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }
    // Nothing of it outlives the command: the host's own hosts file is untouched.
    assert!(
        !std::fs::read_to_string("/etc/hosts")
            .unwrap()
            .contains("httpbin.org")
    );
}
