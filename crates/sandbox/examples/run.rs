//! Runs one shell command through the sandbox and prints the outcome: a manual probe of what a
//! policy allows.
//!
//! `cargo run -p ponder-sandbox --example run -- [--network] [--unconfined] [--timeout SECS]
//! [--writable DIR]... [--pass-env NAME]... CWD 'shell command'`

use std::path::PathBuf;
use std::time::Duration;

use ponder_sandbox::{AllowUnconfined, CommandSpec, NETWORK_ENV, Policy, Sandbox};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut network = false;
    let mut allow = AllowUnconfined::No;
    let mut timeout = Duration::from_secs(600);
    let mut writable: Vec<PathBuf> = Vec::new();
    let mut pass: Vec<String> = Vec::new();
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--network" => network = true,
            "--unconfined" => allow = AllowUnconfined::Yes,
            "--timeout" => {
                let secs = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                    eprintln!("--timeout needs a number of seconds");
                    std::process::exit(2)
                });
                timeout = Duration::from_secs(secs);
            }
            "--writable" => writable.extend(args.next().map(PathBuf::from)),
            "--pass-env" => pass.extend(args.next()),
            _ => positional.push(arg),
        }
    }
    let [cwd, command] = positional.as_slice() else {
        eprintln!(
            "usage: run [--network] [--unconfined] [--timeout SECS] [--writable DIR]... [--pass-env NAME]... CWD 'command'"
        );
        std::process::exit(2);
    };
    let sandbox = match Sandbox::detect(allow) {
        Ok(sb) => sb,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("sandbox: {}", sandbox.describe());
    let mut policy = Policy::tests(cwd).network(network).timeout(timeout);
    policy.writable.extend(writable);
    let mut spec = CommandSpec::shell(command.as_str()).cwd(cwd);
    if network {
        spec = spec.pass_env(NETWORK_ENV);
    }
    spec = spec.pass_env(&pass);
    match sandbox.run(&spec, &policy) {
        Ok(out) => {
            print!("{}", out.output);
            eprintln!(
                "--- {} in {:.2?}; dropped {} bytes; {}; memory hit {}, process cap hit {}",
                out.termination,
                out.elapsed,
                out.dropped_bytes,
                out.enforcement,
                out.memory_limit_hit,
                out.process_limit_hit
            );
            for note in &out.diagnostics {
                eprintln!("note: {note}");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
