//! A layer whose dated index's upstream does not speak PEP 691: the install fails, and the
//! failure says why (pip itself only says it found no versions). Its own test binary, because
//! the process's dated index reads `PIP_INDEX_URL` once.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use ponder_env::{BuildOptions, EnvError, EnvRecipe};

/// An index that answers every request with a PEP 503 HTML page only.
fn html_only_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = "<html><body><a href=\"six-1.0.tar.gz\">six-1.0.tar.gz</a></body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/simple/")
}

#[test]
fn a_layer_says_when_the_upstream_cannot_resolve_as_of_a_date() {
    let Some(sandbox) = common::sandbox() else {
        return;
    };
    let root = common::temp_dir("dated-upstream");
    let store = common::store(root.path(), sandbox);
    let Some(py) = common::test_python(store.interpreters()) else {
        return;
    };
    let recipe = EnvRecipe {
        python: py.minor_string(),
        install: Some("python -m pip install six".into()),
        resolve_before: Some("2019-01-01".into()),
        ..EnvRecipe::default()
    };
    // The base (and the tools) come from the real index; only then is the upstream replaced.
    let base = store
        .ensure_base(&recipe, &BuildOptions::default())
        .expect("base builds");
    let upstream = html_only_upstream();
    // SAFETY: this test binary has one test, and nothing else reads the environment now.
    unsafe { std::env::set_var("PIP_INDEX_URL", &upstream) };
    let wt = root.path().join("wt");
    std::fs::create_dir_all(&wt).unwrap();
    std::fs::write(wt.join("README"), "nothing to install\n").unwrap();
    common::git_commit_all(&wt);
    let err = common::layer(&store, &base, &recipe, &wt, &root.path().join("layer"))
        .expect_err("the install cannot find six");
    let EnvError::LayerFailed { reason, log, .. } = err else {
        panic!("unexpected error: {err}");
    };
    eprintln!("layer failed as it should: {reason}");
    assert!(
        reason.contains("ponder's dated index cannot list six"),
        "{reason}"
    );
    assert!(
        reason.contains(&upstream) && reason.contains("PEP 691"),
        "{reason}"
    );
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("    dated index: ponder's dated index cannot list six"),
        "{log}"
    );
}
