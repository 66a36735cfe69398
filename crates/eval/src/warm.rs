//! Warm instances: a checkout of an instance's base commit with its environment layer built
//! and the project installed, kept between runs. It is ponder's counterpart of the harness's
//! instance image, and it is used the way the harness uses that image: the tree is put back to
//! the base commit, the patch is applied, the install command runs again (rebuilding only what
//! the patch touched), then the tests run.
//!
//! Layout under the pool's root: `<key>/<slot>/{tree,layer,warm.json}` and `<key>/<slot>.lock`.
//! The key hashes everything that defines the prepared state (base environment, install
//! commands, repository, commit). A slot is held under an exclusive file lock while in use, so
//! workers and concurrent runs never share one; a second user of the same key gets the next
//! slot. `warm.json` is written only once the slot is fully built, and a slot is deleted
//! whenever it may no longer match its key (a failed reset or reinstall, a patch that changes
//! how the project is packaged). The pool is kept under a size limit by evicting the slots used
//! least recently.
//!
//! What persists between uses, as in a container started from one image many times over a
//! mounted volume: ignored files (build products, `__pycache__`), which `git clean -fd` leaves
//! alone. The reinstall brings compiled parts up to date with the sources (git rewrites the
//! files it restores, so their timestamps are newer than the old build products).

use crate::cache::sha256_hex;
use anyhow::{Context, Result};
use ponder_env::{BaseEnv, EnvError, EnvRecipe, EnvStore, Layer, LayerOptions};
use ponder_repo::Checkout;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Bumped when what a slot holds changes, so old slots are no longer found.
/// 2: layers hide the base from pip's isolated builds, which get the recipe's build
/// constraints.
const WARM_FORMAT: u32 = 2;
/// Disk the warm instances may take when the user says nothing (`--warm-cache-gb`).
pub const DEFAULT_LIMIT_BYTES: u64 = 20_000_000_000;
/// Slots per key: more workers than this on one instance wait for none, they build privately.
pub const MAX_SLOTS: usize = 8;
const META: &str = "warm.json";

/// The files that decide what an install puts in place; a patch touching one of them leaves
/// the slot's layer in a state another patch would not get, so the slot is dropped after use.
const PACKAGING_FILES: &[&str] = &[
    "setup.py",
    "setup.cfg",
    "pyproject.toml",
    "MANIFEST.in",
    "environment.yml",
];

/// Where warm instances live and how much disk they may take.
#[derive(Debug, Clone)]
pub struct WarmPool {
    root: PathBuf,
    limit_bytes: u64,
}

/// What a warm instance is made from.
pub struct WarmSpec<'a> {
    pub git_dir: &'a Path,
    pub base_commit: &'a str,
    pub base: &'a BaseEnv,
    pub recipe: &'a EnvRecipe,
    pub layer_options: &'a LayerOptions,
}

/// Why a warm instance could not be had, by the step a user would look at.
#[derive(Debug)]
pub enum WarmError {
    /// The checkout could not be made.
    Repository(anyhow::Error),
    /// The layer could not be built.
    Environment(EnvError),
    /// ponder's own files (locks, metadata, removal).
    Io(anyhow::Error),
}

impl std::fmt::Display for WarmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WarmError::Repository(e) | WarmError::Io(e) => write!(f, "{e:#}"),
            WarmError::Environment(e) => write!(f, "{e}"),
        }
    }
}

/// `warm.json`: written when a slot is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SlotMeta {
    format: u32,
    base_commit: String,
    missing_files: Vec<String>,
    bytes: u64,
    built_secs: f64,
    last_used_unix: u64,
}

/// A slot in use: the checkout and its layer, held under the slot's lock until dropped.
pub struct WarmInstance {
    dir: PathBuf,
    pub checkout: Checkout,
    pub layer: Layer,
    /// Built by this acquisition (the project was just installed at the base commit).
    pub fresh: bool,
    discard: bool,
    /// One more slot beyond `MAX_SLOTS`, private to this use.
    extra: bool,
    // Dropped last: the lock outlives any removal in `Drop`.
    _lock: File,
}

impl WarmInstance {
    /// Deletes the slot when it is released instead of keeping it. Its `warm.json` goes at
    /// once, so a run killed before the release leaves a slot that is rebuilt, not reused.
    pub fn discard(&mut self) {
        self.discard = true;
        let _ = fs::remove_file(self.dir.join(META));
    }

    pub fn tree(&self) -> &Path {
        self.checkout.dir()
    }
}

impl Drop for WarmInstance {
    fn drop(&mut self) {
        if self.discard {
            let _ = clear_slot(&self.dir);
            if self.extra {
                // An extra slot is not found again: remove its folder and lock file too.
                let _ = fs::remove_dir_all(&self.dir);
                let _ = fs::remove_file(self.dir.with_extension("lock"));
            }
        }
    }
}

impl WarmPool {
    pub fn new(root: PathBuf, limit_bytes: u64) -> WarmPool {
        WarmPool { root, limit_bytes }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The key of a prepared state.
    pub fn key(spec: &WarmSpec<'_>) -> String {
        let mut text = format!(
            "{WARM_FORMAT}\n{}\n{:?}\n{:?}\n{:?}\n{:?}\n{}\n{}",
            spec.base.hash,
            spec.recipe.pre_install,
            spec.recipe.install,
            spec.recipe.env,
            spec.recipe.build_constraints,
            spec.git_dir.display(),
            spec.base_commit
        );
        // A dated recipe's layer resolves through the dated index: slots made before it are
        // retired, undated keys stay as they were.
        if spec.recipe.resolve_before.is_some() {
            text.push_str(&format!(
                "\ndated-layers {}",
                ponder_env::layer::DATED_LAYERS
            ));
        }
        sha256_hex(&text)[..24].to_owned()
    }

    /// A free slot for `spec`, reset to the base commit, or built there when it has none.
    pub fn acquire(&self, envs: &EnvStore, spec: &WarmSpec<'_>) -> Result<WarmInstance, WarmError> {
        let key_dir = self.root.join(Self::key(spec));
        fs::create_dir_all(&key_dir)
            .with_context(|| format!("cannot create {}", key_dir.display()))
            .map_err(WarmError::Io)?;
        for slot in 0..MAX_SLOTS {
            let lock_path = key_dir.join(format!("{slot}.lock"));
            let lock = File::create(&lock_path)
                .with_context(|| format!("cannot create {}", lock_path.display()))
                .map_err(WarmError::Io)?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    return Err(WarmError::Io(anyhow::anyhow!(
                        "cannot lock {}: {e}",
                        lock_path.display()
                    )));
                }
            }
            let dir = key_dir.join(slot.to_string());
            let instance = match reuse(&dir, envs, spec) {
                Some((checkout, layer)) => WarmInstance {
                    dir,
                    checkout,
                    layer,
                    fresh: false,
                    discard: false,
                    extra: false,
                    _lock: lock,
                },
                None => build(&dir, envs, spec, lock)?,
            };
            self.evict(&instance.dir);
            return Ok(instance);
        }
        // Every slot busy: one more private slot that is dropped after use.
        static EXTRA: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "extra-{}-{}",
            std::process::id(),
            EXTRA.fetch_add(1, Ordering::Relaxed)
        );
        let dir = key_dir.join(&name);
        let lock_path = key_dir.join(format!("{name}.lock"));
        let lock = File::create(&lock_path)
            .with_context(|| format!("cannot create {}", lock_path.display()))
            .map_err(WarmError::Io)?;
        // Locked like any slot, so another run's eviction leaves it alone.
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))
            .map_err(WarmError::Io)?;
        let mut instance = build(&dir, envs, spec, lock)?;
        instance.extra = true;
        instance.discard();
        Ok(instance)
    }

    /// Removes the least recently used free slots until the pool fits its limit. Best effort:
    /// a slot in use or unreadable is left alone.
    fn evict(&self, keep: &Path) {
        let mut slots: Vec<(u64, u64, PathBuf)> = Vec::new();
        let Ok(keys) = fs::read_dir(&self.root) else {
            return;
        };
        for key in keys.flatten() {
            let Ok(entries) = fs::read_dir(key.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let dir = entry.path();
                if let Some(meta) = read_meta(&dir) {
                    slots.push((meta.last_used_unix, meta.bytes, dir));
                }
            }
        }
        let mut total: u64 = slots.iter().map(|s| s.1).sum();
        slots.sort();
        for (_, bytes, dir) in slots {
            if total <= self.limit_bytes {
                break;
            }
            if dir == keep {
                continue;
            }
            let lock_path = dir.with_extension("lock");
            let Ok(lock) = File::create(&lock_path) else {
                continue;
            };
            if lock.try_lock().is_ok() && clear_slot(&dir).is_ok() {
                total = total.saturating_sub(bytes);
            }
        }
    }
}

/// Opens a complete slot and puts its tree back to the base commit with `pre_install`'s changes
/// made again; `None` when the slot is absent, incomplete or unusable (it is then rebuilt).
fn reuse(dir: &Path, envs: &EnvStore, spec: &WarmSpec<'_>) -> Option<(Checkout, Layer)> {
    let mut meta = read_meta(dir)?;
    if meta.format != WARM_FORMAT || meta.base_commit != spec.base_commit {
        return None;
    }
    let checkout = Checkout::open(
        &dir.join("tree"),
        spec.base_commit,
        meta.missing_files.clone(),
    )
    .ok()?;
    checkout.reset().ok()?;
    let layer = envs
        .open_layer(spec.base, spec.recipe, &dir.join("layer"))
        .ok()?;
    // The reset undid what pre_install changed in tracked files; the image has those changes.
    envs.redo_pre_install(&layer, spec.recipe, spec.layer_options)
        .ok()?;
    meta.last_used_unix = now_unix();
    let _ = write_meta(dir, &meta);
    Some((checkout, layer))
}

/// Builds a slot from nothing: checkout, layer, install at the base commit.
fn build(
    dir: &Path,
    envs: &EnvStore,
    spec: &WarmSpec<'_>,
    lock: File,
) -> Result<WarmInstance, WarmError> {
    let started = Instant::now();
    clear_slot(dir).map_err(WarmError::Io)?;
    let checkout = Checkout::create(spec.git_dir, spec.base_commit, &dir.join("tree"))
        .map_err(WarmError::Repository)?;
    let layer = envs
        .create_layer(
            spec.base,
            spec.recipe,
            checkout.dir(),
            &dir.join("layer"),
            spec.layer_options,
        )
        .map_err(WarmError::Environment)?;
    let meta = SlotMeta {
        format: WARM_FORMAT,
        base_commit: spec.base_commit.to_owned(),
        missing_files: checkout.missing_files.clone(),
        bytes: disk_usage(dir),
        built_secs: started.elapsed().as_secs_f64(),
        last_used_unix: now_unix(),
    };
    write_meta(dir, &meta).map_err(WarmError::Io)?;
    Ok(WarmInstance {
        dir: dir.to_path_buf(),
        checkout,
        layer,
        fresh: true,
        discard: false,
        extra: false,
        _lock: lock,
    })
}

/// Whether `patch` touches a file that decides what the install puts in place.
pub fn changes_packaging(patch: &str) -> bool {
    patch.lines().any(|line| {
        let Some(paths) = line.strip_prefix("diff --git ") else {
            return false;
        };
        paths.split(' ').any(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            PACKAGING_FILES.contains(&name)
                || (name.starts_with("requirements") && name.ends_with(".txt"))
        })
    })
}

fn read_meta(dir: &Path) -> Option<SlotMeta> {
    let text = fs::read_to_string(dir.join(META)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_meta(dir: &Path, meta: &SlotMeta) -> Result<()> {
    let tmp = dir.join(format!("{META}.tmp"));
    fs::write(&tmp, serde_json::to_vec_pretty(meta)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, dir.join(META))
        .with_context(|| format!("cannot write {META} in {}", dir.display()))
}

/// Deletes a slot's contents, its metadata first so that a half-deleted slot is never taken
/// for a complete one.
fn clear_slot(dir: &Path) -> Result<()> {
    let _ = fs::remove_file(dir.join(META));
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Bytes of the regular files under `dir`, symlinks not followed.
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packaging_changes_are_found_by_file_name() {
        let py_only = "diff --git a/pkg/mod.py b/pkg/mod.py\n--- a/pkg/mod.py\n+++ b/pkg/mod.py\n";
        assert!(!changes_packaging(py_only));
        assert!(changes_packaging(
            "diff --git a/setup.cfg b/setup.cfg\n--- a/setup.cfg\n"
        ));
        assert!(changes_packaging(
            "diff --git a/sub/requirements-dev.txt b/sub/requirements-dev.txt\n"
        ));
        assert!(!changes_packaging(""));
    }
}
