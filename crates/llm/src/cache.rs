//! The replay cache: every sample a model returned, stored in a SQLite file under a key derived
//! from what was asked, so that a crashed, resumed or repeated run gets the same samples again
//! without paying for them.
//!
//! This module owns the file format (schema, versioning, locking between processes) and the key
//! derivation. It does not decide when to call the model: the client asks [`ReplayCache::get`]
//! before sending and [`ReplayCache::put`] after each sample arrives.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::types::{ChatRequest, Completion, Usage};

/// Bump when the table layout or the meaning of a key changes; an older file is then refused
/// with a message rather than misread.
const SCHEMA_VERSION: i64 = 1;

/// Several processes (parallel `ponder` runs on one machine) may share a cache file. Writes are
/// single-row and take milliseconds, so a generous wait only matters when something holds the
/// file far longer than normal, and then failing with a message beats failing at once.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How the cache takes part in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheMode {
    /// No file is read or written; every call goes to the server.
    Off,
    /// Hits are served from the file, misses are sent and their samples stored.
    #[default]
    #[serde(alias = "rw")]
    ReadWrite,
    /// Only the file answers: a miss is an error and nothing is sent. For reproducing a run
    /// exactly, or running tests and analyses without a server.
    Replay,
}

impl CacheMode {
    /// The spelling accepted by [`FromStr`](std::str::FromStr) and written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheMode::Off => "off",
            CacheMode::ReadWrite => "read-write",
            CacheMode::Replay => "replay",
        }
    }
}

impl std::fmt::Display for CacheMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cache mode that is none of the accepted spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cache mode {0:?}: use \"off\", \"read-write\" (or \"rw\") or \"replay\"")]
pub struct ParseCacheModeError(pub String);

impl std::str::FromStr for CacheMode {
    type Err = ParseCacheModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(CacheMode::Off),
            "read-write" | "readwrite" | "read_write" | "rw" => Ok(CacheMode::ReadWrite),
            "replay" => Ok(CacheMode::Replay),
            _ => Err(ParseCacheModeError(s.to_string())),
        }
    }
}

/// One stored sample: what the model produced and what producing it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedSample {
    /// The model name the server reported when the sample was made.
    pub model: String,
    pub completion: Completion,
    /// The usage of the call that produced the sample (shared among its samples as the client
    /// chooses to split it); recorded so reports can say what a replayed run would have cost.
    pub usage: Usage,
}

/// A replay of `mode` [`CacheMode::Replay`] found no sample under a key: the run asked something
/// the recorded run did not. The client can downcast to this to tell it from IO errors.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "replay cache {path} has no sample for key {key}: the request differs from the recorded run \
     (model, messages, sampling settings or sample index); run with --cache-mode read-write to \
     call the model for it"
)]
pub struct ReplayMiss {
    pub path: PathBuf,
    pub key: String,
}

/// The samples of past calls, in a SQLite file shared safely between threads and processes.
#[derive(Debug)]
pub struct ReplayCache {
    mode: CacheMode,
    /// `None` exactly when the mode is `Off`.
    store: Option<Store>,
}

#[derive(Debug)]
struct Store {
    path: PathBuf,
    // A rusqlite `Connection` is `Send` but not `Sync`; the mutex makes the cache shareable by
    // the client's concurrent calls. Statements are tiny, so the lock is never held for long
    // except while SQLite waits for another process (bounded by BUSY_TIMEOUT).
    conn: Mutex<Connection>,
}

impl Store {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic elsewhere while holding the lock cannot leave the connection half-written
        // (every statement is its own transaction), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ReplayCache {
    /// Opens (creating it and its folder if needed) the cache file at `path`.
    ///
    /// With [`CacheMode::Off`] the file is not touched. With [`CacheMode::Replay`] the file must
    /// already exist, since an empty cache could only fail every call.
    pub fn open(path: &Path, mode: CacheMode) -> anyhow::Result<ReplayCache> {
        if mode == CacheMode::Off {
            return Ok(ReplayCache::disabled());
        }
        if mode == CacheMode::Replay && !path.is_file() {
            bail!(
                "replay cache {} does not exist; replay needs the cache file of a recorded run \
                 (pass it with --cache, or use --cache-mode read-write to call the model)",
                path.display()
            );
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| {
                format!(
                    "cannot create the folder {} for the replay cache",
                    parent.display()
                )
            })?;
        }
        let mut conn = Connection::open(path).map_err(|e| unusable(path, e))?;
        setup(&mut conn).map_err(|e| unusable(path, e))?;
        check_schema(&mut conn, path)?;
        Ok(ReplayCache {
            mode,
            store: Some(Store {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
            }),
        })
    }

    /// A cache that stores nothing and never hits.
    pub fn disabled() -> ReplayCache {
        ReplayCache {
            mode: CacheMode::Off,
            store: None,
        }
    }

    pub fn mode(&self) -> CacheMode {
        self.mode
    }

    /// The file behind the cache, if any.
    pub fn path(&self) -> Option<&Path> {
        self.store.as_ref().map(|s| s.path.as_path())
    }

    /// Key of sample `index` of `request` as sent to `model`.
    ///
    /// `n` is left out: sample 3 of a request for 4 samples is the same draw as sample 3 of the
    /// same request for 8, so asking for more samples later reuses the ones already paid for.
    /// Object keys are sorted before hashing so the key does not depend on field order nor on
    /// whether serde_json was built with `preserve_order` (a feature any crate in the build can
    /// switch on).
    pub fn key(model: &str, request: &ChatRequest, index: u32) -> String {
        let mut request = serde_json::to_value(request).unwrap_or_else(|e| {
            // Not reachable for these types (string keys only; non-finite floats become null),
            // but a key must never panic; the Debug text still tells distinct requests apart.
            Value::String(format!("unserializable request ({e}): {request:?}"))
        });
        if let Value::Object(fields) = &mut request {
            fields.remove("n");
        }
        let mut material = Map::new();
        material.insert("index".to_string(), Value::from(index));
        material.insert("model".to_string(), Value::from(model));
        material.insert("request".to_string(), request);
        let canonical = canonical_json(&Value::Object(material));
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The sample stored under `key`.
    ///
    /// `Off` never hits. In `ReadWrite` a miss is `Ok(None)`. In `Replay` a miss is an error
    /// ([`ReplayMiss`]), so a client that sends on `None` can never reach the server in replay.
    pub fn get(&self, key: &str) -> anyhow::Result<Option<CachedSample>> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let text: Option<String> = store
            .conn()
            .prepare_cached("SELECT sample FROM samples WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row(params![key], |row| row.get(0)).optional())
            .with_context(|| {
                format!(
                    "cannot read key {key} from replay cache {}",
                    store.path.display()
                )
            })?;
        match text {
            Some(text) => {
                let sample = serde_json::from_str(&text).with_context(|| {
                    format!(
                        "replay cache {} holds an unreadable sample under key {key}; delete the \
                         file or use another --cache path",
                        store.path.display()
                    )
                })?;
                Ok(Some(sample))
            }
            None if self.mode == CacheMode::Replay => Err(ReplayMiss {
                path: store.path.clone(),
                key: key.to_string(),
            }
            .into()),
            None => Ok(None),
        }
    }

    /// Stores `sample` under `key`, replacing what was there. The row is committed before this
    /// returns, so a crash right after loses nothing. `Off` and `Replay` write nothing: a replay
    /// must leave the recorded run exactly as it was.
    pub fn put(&self, key: &str, sample: &CachedSample) -> anyhow::Result<()> {
        if self.mode != CacheMode::ReadWrite {
            return Ok(());
        }
        let Some(store) = &self.store else {
            return Ok(());
        };
        let text = serde_json::to_string(sample).context("cannot encode a sample for the cache")?;
        store
            .conn()
            .prepare_cached(
                "INSERT INTO samples (key, model, sample, created_at) \
                 VALUES (?1, ?2, ?3, unixepoch()) \
                 ON CONFLICT(key) DO UPDATE SET \
                 model = excluded.model, sample = excluded.sample, created_at = excluded.created_at",
            )
            .and_then(|mut stmt| stmt.execute(params![key, sample.model, text]))
            .with_context(|| {
                format!(
                    "cannot write key {key} to replay cache {}",
                    store.path.display()
                )
            })?;
        Ok(())
    }

    /// How many samples the file holds (0 when off).
    pub fn len(&self) -> anyhow::Result<u64> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let count: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM samples", [], |row| row.get(0))
            .with_context(|| format!("cannot count replay cache {}", store.path.display()))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub fn is_empty(&self) -> anyhow::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// Connection settings. SQLite opens files lazily, so this is also where a file that is not a
/// database is first noticed.
fn setup(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers proceed while another process writes, and its journal mode is stored in
    // the file, so later openers inherit it.
    let journal = switch_to_wal(conn)?;
    if !journal.eq_ignore_ascii_case("wal") {
        // Some filesystems (network mounts) cannot share WAL memory; the cache still works,
        // only with coarser locking.
        tracing::warn!(journal, "replay cache could not switch to WAL journaling");
    }
    // FULL syncs every commit: one fsync per sample is nothing next to a model call, and it makes
    // "written immediately" hold through a power loss too, not just a process crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Sets WAL journaling, waiting out other openers.
///
/// SQLite does not call the busy handler for a journal-mode change: when two processes open a
/// new file at once, the one that finds the other mid-switch gets SQLITE_BUSY immediately
/// (measured: about one open in fifteen in the parallel test). So this one statement is retried
/// by hand within the same time bound as every other wait.
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0)) {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

/// Creates the tables in a new file, or checks that an existing file is a cache of this version.
fn check_schema(conn: &mut Connection, path: &Path) -> anyhow::Result<()> {
    // IMMEDIATE takes the write lock up front, so two processes creating the same new file do
    // not both see it empty and race to create the tables.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| unusable(path, e))?;
    let has_meta: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| unusable(path, e))?;
    if has_meta {
        let version: Option<i64> = tx
            .query_row("SELECT version FROM meta", [], |row| row.get(0))
            .optional()
            .map_err(|e| unusable(path, e))?;
        match version {
            Some(SCHEMA_VERSION) => {}
            Some(other) => bail!(
                "replay cache {} has format version {other}, this ponder reads version \
                 {SCHEMA_VERSION}; delete the file or use another --cache path",
                path.display()
            ),
            None => bail!(
                "replay cache {} has no format version (an interrupted creation or another \
                 program's file); delete the file or use another --cache path",
                path.display()
            ),
        }
    } else {
        let tables: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| unusable(path, e))?;
        if tables > 0 {
            bail!(
                "{} is a SQLite database but not a ponder replay cache; delete it or use \
                 another --cache path",
                path.display()
            );
        }
        tx.execute_batch(
            "CREATE TABLE meta (version INTEGER NOT NULL);
             CREATE TABLE samples (
                 key        TEXT PRIMARY KEY NOT NULL,
                 model      TEXT NOT NULL,
                 sample     TEXT NOT NULL,
                 created_at INTEGER NOT NULL
             );",
        )
        .and_then(|()| tx.execute("INSERT INTO meta (version) VALUES (?1)", [SCHEMA_VERSION]))
        .with_context(|| format!("cannot create the replay cache {}", path.display()))?;
    }
    tx.commit()
        .with_context(|| format!("cannot create the replay cache {}", path.display()))?;
    Ok(())
}

/// The error for a file that cannot be used, worded by what SQLite found.
fn unusable(path: &Path, err: rusqlite::Error) -> anyhow::Error {
    let code = err.sqlite_error_code();
    let what = match code {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            "is corrupt or not a SQLite file"
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "stayed locked by another process for too long"
        }
        _ => "cannot be opened",
    };
    anyhow::Error::new(err).context(format!(
        "replay cache {} {what}; delete it or use another --cache path",
        path.display()
    ))
}

/// JSON text with object keys in sorted order at every depth, whatever map type serde_json uses.
fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                // Inserting in sorted order gives sorted output with either map implementation.
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FinishReason, Message};

    fn request() -> ChatRequest {
        let mut r = ChatRequest::new(vec![
            Message::system("You fix bugs."),
            Message::user("Fix the off-by-one in range_len."),
        ]);
        r.temperature = Some(0.7);
        r.max_tokens = Some(512);
        r
    }

    fn sample(answer: &str, index: u32) -> CachedSample {
        CachedSample {
            model: "qwen3-coder".to_string(),
            completion: Completion {
                index,
                answer: answer.to_string(),
                reasoning: Some("think first".to_string()),
                finish_reason: FinishReason("stop".to_string()),
                cut_in_reasoning: false,
                tool_calls: Vec::new(),
                logprobs: None,
            },
            usage: Usage {
                prompt_tokens: 40,
                completion_tokens: 12,
                cached_prompt_tokens: 32,
                reasoning_tokens: 3,
            },
        }
    }

    #[test]
    fn mode_parses_and_prints() {
        for (text, mode) in [
            ("off", CacheMode::Off),
            ("read-write", CacheMode::ReadWrite),
            ("rw", CacheMode::ReadWrite),
            ("RW", CacheMode::ReadWrite),
            ("replay", CacheMode::Replay),
        ] {
            assert_eq!(text.parse::<CacheMode>().unwrap(), mode, "{text}");
        }
        let err = "sometimes".parse::<CacheMode>().unwrap_err().to_string();
        assert!(err.contains("sometimes") && err.contains("replay"), "{err}");
        for mode in [CacheMode::Off, CacheMode::ReadWrite, CacheMode::Replay] {
            assert_eq!(mode.to_string().parse::<CacheMode>().unwrap(), mode);
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{mode}\""));
            assert_eq!(serde_json::from_str::<CacheMode>(&json).unwrap(), mode);
        }
        assert_eq!(CacheMode::default(), CacheMode::ReadWrite);
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ReplayCache::open(&dir.path().join("c.sqlite"), CacheMode::ReadWrite).unwrap();
        assert_eq!(cache.mode(), CacheMode::ReadWrite);
        let key = ReplayCache::key("qwen3-coder", &request(), 0);
        assert_eq!(cache.get(&key).unwrap(), None);
        cache.put(&key, &sample("diff A", 0)).unwrap();
        assert_eq!(cache.get(&key).unwrap(), Some(sample("diff A", 0)));
        // Upsert: a second put replaces, it does not add.
        cache.put(&key, &sample("diff B", 0)).unwrap();
        assert_eq!(cache.get(&key).unwrap(), Some(sample("diff B", 0)));
        assert_eq!(cache.len().unwrap(), 1);
    }

    #[test]
    fn key_is_canonical_and_discriminating() {
        let base = request();
        let k = ReplayCache::key("m", &base, 0);
        assert_eq!(k.len(), 64);
        assert!(k.chars().all(|c| c.is_ascii_hexdigit()));

        // Field order: the same request parsed from JSON written in another order.
        let reordered: ChatRequest = serde_json::from_str(
            r#"{"max_tokens":512,"temperature":0.7,"n":1,
                "messages":[{"content":"You fix bugs.","role":"system"},
                            {"role":"user","content":"Fix the off-by-one in range_len."}]}"#,
        )
        .unwrap();
        assert_eq!(ReplayCache::key("m", &reordered, 0), k);

        // Extra fields inserted in different orders hash the same.
        let mut a = base.clone();
        a.extra.insert("top_k".into(), 20.into());
        a.extra.insert(
            "chat_template_kwargs".into(),
            serde_json::json!({"z": 1, "a": 2}),
        );
        let mut b = base.clone();
        b.extra.insert(
            "chat_template_kwargs".into(),
            serde_json::json!({"a": 2, "z": 1}),
        );
        b.extra.insert("top_k".into(), 20.into());
        assert_eq!(ReplayCache::key("m", &a, 0), ReplayCache::key("m", &b, 0));
        assert_ne!(ReplayCache::key("m", &a, 0), k);

        // n does not change what sample i is.
        let mut more = base.clone();
        more.n = 8;
        assert_eq!(ReplayCache::key("m", &more, 0), k);

        // Everything else does.
        assert_ne!(ReplayCache::key("m", &base, 1), k);
        assert_ne!(ReplayCache::key("other-model", &base, 0), k);
        let mut hotter = base.clone();
        hotter.temperature = Some(1.0);
        assert_ne!(ReplayCache::key("m", &hotter, 0), k);
        let mut other_messages = base.clone();
        other_messages.messages.push(Message::assistant("ok"));
        assert_ne!(ReplayCache::key("m", &other_messages, 0), k);
        let mut longer = base.clone();
        longer.max_tokens = Some(1024);
        assert_ne!(ReplayCache::key("m", &longer, 0), k);

        // Stable across calls (and processes: nothing random goes in).
        assert_eq!(ReplayCache::key("m", &base, 0), k);
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let v = serde_json::json!({"b": [{"y": 1, "x": 2}], "a": {"d": null, "c": true}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":true,"d":null},"b":[{"x":2,"y":1}]}"#
        );
    }

    #[test]
    fn persists_across_reopen_and_creates_folders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/cache.sqlite");
        let key = ReplayCache::key("m", &request(), 2);
        {
            let cache = ReplayCache::open(&path, CacheMode::ReadWrite).unwrap();
            cache.put(&key, &sample("kept", 2)).unwrap();
            assert_eq!(cache.path(), Some(path.as_path()));
        }
        let cache = ReplayCache::open(&path, CacheMode::ReadWrite).unwrap();
        assert_eq!(cache.len().unwrap(), 1);
        assert_eq!(cache.get(&key).unwrap(), Some(sample("kept", 2)));
        let replay = ReplayCache::open(&path, CacheMode::Replay).unwrap();
        assert_eq!(replay.get(&key).unwrap(), Some(sample("kept", 2)));
    }

    #[test]
    fn two_handles_write_in_parallel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.sqlite");
        // Both open the new file at the same moment: schema creation must not race either.
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for writer in 0..2u32 {
                let (path, barrier) = (&path, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let cache = ReplayCache::open(path, CacheMode::ReadWrite).unwrap();
                    for i in 0..200u32 {
                        let key = ReplayCache::key(&format!("m{writer}"), &request(), i);
                        cache
                            .put(&key, &sample(&format!("w{writer} s{i}"), i))
                            .unwrap();
                    }
                });
            }
        });
        let cache = ReplayCache::open(&path, CacheMode::ReadWrite).unwrap();
        assert_eq!(cache.len().unwrap(), 400);
        let key = ReplayCache::key("m1", &request(), 199);
        assert_eq!(cache.get(&key).unwrap(), Some(sample("w1 s199", 199)));
    }

    #[test]
    fn one_handle_shared_by_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ReplayCache>();
        let dir = tempfile::tempdir().unwrap();
        let cache = ReplayCache::open(&dir.path().join("c.sqlite"), CacheMode::ReadWrite).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let cache = &cache;
                s.spawn(move || {
                    for i in 0..25u32 {
                        let key = ReplayCache::key("m", &request(), t * 100 + i);
                        cache.put(&key, &sample("x", i)).unwrap();
                        assert!(cache.get(&key).unwrap().is_some());
                    }
                });
            }
        });
        assert_eq!(cache.len().unwrap(), 100);
    }

    #[test]
    fn replay_reads_but_never_writes_and_misses_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let missing = dir.path().join("none.sqlite");
        let err = ReplayCache::open(&missing, CacheMode::Replay).unwrap_err();
        assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
        assert!(!missing.exists(), "replay must not create a cache");

        let hit = ReplayCache::key("m", &request(), 0);
        let miss = ReplayCache::key("m", &request(), 1);
        ReplayCache::open(&path, CacheMode::ReadWrite)
            .unwrap()
            .put(&hit, &sample("recorded", 0))
            .unwrap();

        let replay = ReplayCache::open(&path, CacheMode::Replay).unwrap();
        assert_eq!(replay.mode(), CacheMode::Replay);
        assert_eq!(replay.get(&hit).unwrap(), Some(sample("recorded", 0)));
        let err = replay.get(&miss).unwrap_err();
        let replay_miss = err.downcast_ref::<ReplayMiss>().expect("a ReplayMiss");
        assert_eq!(replay_miss.key, miss);
        assert!(err.to_string().contains("read-write"), "{err}");
        replay.put(&miss, &sample("new", 1)).unwrap();
        replay.put(&hit, &sample("changed", 0)).unwrap();
        assert_eq!(replay.len().unwrap(), 1);
        assert_eq!(replay.get(&hit).unwrap(), Some(sample("recorded", 0)));
    }

    #[test]
    fn off_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/c.sqlite");
        for cache in [
            ReplayCache::disabled(),
            ReplayCache::open(&path, CacheMode::Off).unwrap(),
        ] {
            assert_eq!(cache.mode(), CacheMode::Off);
            assert_eq!(cache.path(), None);
            let key = ReplayCache::key("m", &request(), 0);
            cache.put(&key, &sample("x", 0)).unwrap();
            assert_eq!(cache.get(&key).unwrap(), None);
            assert_eq!(cache.len().unwrap(), 0);
        }
        assert!(!path.exists() && !path.parent().unwrap().exists());
    }

    #[test]
    fn unusable_files_are_named_with_a_remedy() {
        let dir = tempfile::tempdir().unwrap();

        let garbage = dir.path().join("garbage.sqlite");
        std::fs::write(
            &garbage,
            b"this is not a database, just some text ".repeat(200),
        )
        .unwrap();
        let err = ReplayCache::open(&garbage, CacheMode::ReadWrite).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&garbage.display().to_string()), "{msg}");
        assert!(
            msg.contains("delete it or use another --cache path"),
            "{msg}"
        );
        assert!(msg.contains("corrupt or not a SQLite file"), "{msg}");

        let foreign = dir.path().join("foreign.sqlite");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE people (name TEXT)")
            .unwrap();
        let msg = format!(
            "{:#}",
            ReplayCache::open(&foreign, CacheMode::ReadWrite).unwrap_err()
        );
        assert!(msg.contains("not a ponder replay cache"), "{msg}");

        let future = dir.path().join("future.sqlite");
        drop(ReplayCache::open(&future, CacheMode::ReadWrite).unwrap());
        Connection::open(&future)
            .unwrap()
            .execute_batch("UPDATE meta SET version = 99")
            .unwrap();
        let msg = format!(
            "{:#}",
            ReplayCache::open(&future, CacheMode::Replay).unwrap_err()
        );
        assert!(
            msg.contains("version 99") && msg.contains("--cache path"),
            "{msg}"
        );
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let cache = ReplayCache::open(&path, CacheMode::ReadWrite).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO samples VALUES ('k', 'm', '{\"model\": 3}', 0)",
                [],
            )
            .unwrap();
        let msg = format!("{:#}", cache.get("k").unwrap_err());
        assert!(msg.contains("unreadable sample under key k"), "{msg}");
    }
}
