//! Shared by the command-line tests: run the built `ponder` with a private cache folder, in that
//! folder, without the model settings of the environment the tests run in.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub const PONDER: &str = env!("CARGO_BIN_EXE_ponder");

pub fn ponder(args: &[&str], cache: &Path) -> (i32, String, String) {
    let out = Command::new(PONDER)
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("PONDER_MODEL")
        .env_remove("PONDER_CONFIG")
        .current_dir(cache)
        .output()
        .expect("run ponder");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
