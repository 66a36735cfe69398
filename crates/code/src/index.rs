//! The code index of one source tree: every Python file git would track, its definitions and its
//! status, kept on disk and refreshed incrementally.
//!
//! Refresh rule: a file whose size and modification time match the cached entry is reused without
//! being read; otherwise it is read and hashed, and only a changed hash is parsed again. An entry
//! whose modification time is too close to the moment the cache was written is always re-hashed,
//! because a same-size edit in the same clock tick would otherwise go unnoticed (git's "racily
//! clean" problem).

use crate::python;
use crate::symbol::{FileStatus, Symbol, SymbolKind};
use crate::visibility::Visibility;
use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bumped whenever what an entry holds, or how it is computed, changes.
const INDEX_FORMAT: u32 = 1;
/// Files larger than this are kept for text search but not parsed.
pub const DEFAULT_MAX_PARSE_BYTES: u64 = 64 * 1024 * 1024;
/// How many leading bytes are checked for NUL to call a file binary (as git and ripgrep do).
const BINARY_SNIFF: usize = 8192;
/// Entries modified this close to the cache write are re-hashed on the next load.
const RACY_WINDOW_NS: u64 = 2_000_000_000;

/// One indexed file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the root, `/`-separated.
    pub path: String,
    pub size: u64,
    pub mtime_ns: u64,
    /// BLAKE3 of the content, first 16 bytes.
    pub hash: [u8; 16],
    pub status: FileStatus,
    /// Not valid UTF-8: names and text were decoded lossily.
    pub invalid_utf8: bool,
    pub lines: u32,
    pub symbols: Vec<Symbol>,
}

/// A reference to one symbol: file index and symbol index in that file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SymbolRef {
    pub file: u32,
    pub symbol: u32,
}

/// What the cache file holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    grammar: String,
    written_ns: u64,
    files: Vec<FileEntry>,
}

/// Which parser finds definitions for the index. Both are held to `ast` by the exactness test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefinitionParser {
    /// The tokenizer-level scanner: several times faster (see scanner.rs).
    #[default]
    Scanner,
    /// A full tree-sitter parse: slower, and reports syntax errors beyond lexical ones.
    TreeSitter,
}

#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Folder for the on-disk cache; `None` keeps the index in memory only.
    pub cache_dir: Option<PathBuf>,
    pub visibility: Visibility,
    pub max_parse_bytes: u64,
    pub parser: DefinitionParser,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            cache_dir: None,
            visibility: Visibility::default(),
            max_parse_bytes: DEFAULT_MAX_PARSE_BYTES,
            parser: DefinitionParser::default(),
        }
    }
}

/// Counts from one build or refresh, for `ponder code index` and the benchmark.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexStats {
    pub files: usize,
    pub visible_files: usize,
    /// Taken from the cache without reading the file.
    pub reused: usize,
    /// Read and hashed, content unchanged.
    pub rehashed: usize,
    /// Parsed anew.
    pub parsed: usize,
    pub removed: usize,
    pub symbols: usize,
    pub syntax_errors: usize,
    pub too_large: usize,
    pub binary: usize,
    pub unreadable: usize,
    pub invalid_utf8: usize,
    /// Symbolic links are not followed (a link cannot loop the walk, and a linked file would be
    /// indexed twice); they are only counted.
    pub skipped_links: usize,
    /// Paths that are not valid UTF-8 cannot be named to the model and are skipped.
    pub skipped_paths: usize,
    pub cache_loaded: bool,
    /// Time spent walking the tree and in reading, hashing and parsing files.
    pub walk_ms: f64,
    pub analyze_ms: f64,
    pub cache_written: bool,
    pub elapsed_ms: f64,
}

/// The index of one tree, shared read-only by concurrent searches.
pub struct CodeIndex {
    root: PathBuf,
    files: Vec<FileEntry>,
    visible: Vec<bool>,
    by_path: HashMap<String, u32>,
    /// Built on first use: a warm load that only lists or refreshes does not pay for it.
    by_name: OnceLock<HashMap<String, Vec<SymbolRef>>>,
    contents: Vec<OnceLock<Option<Arc<[u8]>>>>,
    pub(crate) bm25: OnceLock<crate::bm25::Bm25Index>,
    options: IndexOptions,
}

impl CodeIndex {
    /// Builds the index of `root`, reusing the cache under `options.cache_dir` when present.
    pub fn open(root: &Path, options: IndexOptions) -> Result<(CodeIndex, IndexStats)> {
        let started = Instant::now();
        let root = root.canonicalize().with_context(|| {
            format!(
                "cannot open {}: give the path of a source tree",
                root.display()
            )
        })?;
        anyhow::ensure!(
            root.is_dir(),
            "{} is not a folder: give the root of a source tree",
            root.display()
        );
        let mut stats = IndexStats::default();
        let cache_path = options
            .cache_dir
            .as_deref()
            .map(|dir| cache_file(dir, &root));
        let cached = cache_path
            .as_deref()
            .and_then(|p| load_cache(p, options.parser));
        stats.cache_loaded = cached.is_some();
        let (cached_files, written_ns) = match cached {
            Some(s) => (s.files, s.written_ns),
            None => (Vec::new(), 0),
        };
        let (files, changed) = scan(&root, cached_files, written_ns, &options, &mut stats)?;
        if let Some(path) = cache_path.as_deref()
            && (changed || !stats.cache_loaded)
        {
            match write_cache(path, &files, options.parser) {
                Ok(()) => stats.cache_written = true,
                Err(e) => {
                    tracing::warn!("the code index could not be cached ({e:#}); it stays in memory")
                }
            }
        }
        let index = CodeIndex::from_entries(root, files, options);
        index.fill_stats(&mut stats);
        stats.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok((index, stats))
    }

    /// Re-scans the tree after edits (a patch candidate changed files) and updates the index.
    pub fn refresh(&mut self) -> Result<IndexStats> {
        let started = Instant::now();
        let mut stats = IndexStats::default();
        let old = std::mem::take(&mut self.files);
        // In memory the entries were all just computed, so no entry is "racy" relative to a write;
        // any file touched since has a new mtime or size, or is re-hashed if in the racy window.
        let (files, changed) = scan(
            &self.root,
            old,
            now_ns().saturating_sub(RACY_WINDOW_NS),
            &self.options,
            &mut stats,
        )?;
        if changed && let Some(dir) = self.options.cache_dir.as_deref() {
            let path = cache_file(dir, &self.root);
            stats.cache_written = write_cache(&path, &files, self.options.parser).is_ok();
        }
        let options = self.options.clone();
        *self = CodeIndex::from_entries(self.root.clone(), files, options);
        self.fill_stats(&mut stats);
        stats.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(stats)
    }

    fn from_entries(root: PathBuf, files: Vec<FileEntry>, options: IndexOptions) -> CodeIndex {
        let visible: Vec<bool> = files
            .iter()
            .map(|f| f.status.is_searchable() && options.visibility.is_visible(&f.path))
            .collect();
        let by_path = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.clone(), i as u32))
            .collect();
        let contents = (0..files.len()).map(|_| OnceLock::new()).collect();
        CodeIndex {
            root,
            files,
            visible,
            by_path,
            by_name: OnceLock::new(),
            contents,
            bm25: OnceLock::new(),
            options,
        }
    }

    fn name_map(&self) -> &HashMap<String, Vec<SymbolRef>> {
        self.by_name.get_or_init(|| {
            let mut by_name: HashMap<String, Vec<SymbolRef>> = HashMap::new();
            for (fi, file) in self.files.iter().enumerate() {
                for (si, symbol) in file.symbols.iter().enumerate() {
                    by_name
                        .entry(symbol.name.clone())
                        .or_default()
                        .push(SymbolRef {
                            file: fi as u32,
                            symbol: si as u32,
                        });
                }
            }
            by_name
        })
    }

    fn fill_stats(&self, stats: &mut IndexStats) {
        stats.files = self.files.len();
        stats.visible_files = self.visible.iter().filter(|v| **v).count();
        for f in &self.files {
            stats.symbols += f.symbols.len();
            stats.invalid_utf8 += f.invalid_utf8 as usize;
            match f.status {
                FileStatus::Parsed => {}
                FileStatus::SyntaxErrors { .. } => stats.syntax_errors += 1,
                FileStatus::TooLarge { .. } => stats.too_large += 1,
                FileStatus::Binary => stats.binary += 1,
                FileStatus::Unreadable { .. } => stats.unreadable += 1,
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    pub fn file(&self, index: u32) -> &FileEntry {
        &self.files[index as usize]
    }

    pub fn is_visible(&self, index: u32) -> bool {
        self.visible[index as usize]
    }

    pub fn visibility(&self) -> &Visibility {
        &self.options.visibility
    }

    /// Indices of the files the model may see, in path order.
    pub fn visible_files(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.files.len() as u32).filter(|i| self.visible[*i as usize])
    }

    pub fn file_index(&self, path: &str) -> Option<u32> {
        self.by_path.get(path).copied()
    }

    pub fn symbol(&self, r: SymbolRef) -> &Symbol {
        &self.files[r.file as usize].symbols[r.symbol as usize]
    }

    /// Symbols with this simple name, in visible files, in path then source order.
    pub fn symbols_named(&self, name: &str) -> impl Iterator<Item = SymbolRef> + '_ {
        self.name_map()
            .get(name)
            .into_iter()
            .flatten()
            .copied()
            .filter(|r| self.visible[r.file as usize])
    }

    /// All simple names of visible symbols of a kind; for "did you mean" suggestions.
    pub fn names(&self) -> impl Iterator<Item = (&str, &[SymbolRef])> + '_ {
        self.name_map()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The innermost class, function or method of a file that contains `line`.
    pub fn enclosing(&self, file: u32, line: u32) -> Option<SymbolRef> {
        let entry = &self.files[file as usize];
        // Symbols are in source order and nested ones come after their parent, so the last one
        // containing the line is the innermost.
        entry
            .symbols
            .iter()
            .enumerate()
            .rev()
            .find(|(_, s)| s.contains_line(line))
            .map(|(i, _)| SymbolRef {
                file,
                symbol: i as u32,
            })
    }

    /// The content of a file as indexed, read once and then shared. `None` if it cannot be read
    /// any more (deleted since the index was built).
    pub fn content(&self, file: u32) -> Option<Arc<[u8]>> {
        self.contents[file as usize]
            .get_or_init(|| {
                std::fs::read(self.root.join(&self.files[file as usize].path))
                    .ok()
                    .map(Arc::from)
            })
            .clone()
    }

    /// Reads every visible file into memory, in parallel; later text searches then do no IO.
    pub fn load_visible_contents(&self) {
        let visible: Vec<u32> = self.visible_files().collect();
        visible.par_iter().for_each(|i| {
            self.content(*i);
        });
    }

    /// Kinds of definition, counted over the whole index.
    pub fn count_kind(&self, kind: SymbolKind) -> usize {
        self.files
            .iter()
            .flat_map(|f| &f.symbols)
            .filter(|s| s.kind == kind)
            .count()
    }
}

/// Where the cache of `root` lives: one file per tree, named by the hash of its canonical path.
pub fn cache_file(cache_dir: &Path, root: &Path) -> PathBuf {
    let key = blake3::hash(root.as_os_str().as_encoded_bytes());
    cache_dir.join(format!("{}.idx", &key.to_hex()[..24]))
}

/// Identifies how entries were computed; a cache made another way is rebuilt.
fn grammar_id(parser: DefinitionParser) -> String {
    match parser {
        DefinitionParser::Scanner => "scanner".to_string(),
        DefinitionParser::TreeSitter => {
            format!("tree-sitter-python-abi{}", tree_sitter::LANGUAGE_VERSION)
        }
    }
}

fn load_cache(path: &Path, parser: DefinitionParser) -> Option<Stored> {
    let bytes = std::fs::read(path).ok()?;
    match postcard::from_bytes::<Stored>(&bytes) {
        Ok(s) if s.format == INDEX_FORMAT && s.grammar == grammar_id(parser) => Some(s),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(
                "ignoring the unreadable code index cache {} ({e}); rebuilding it",
                path.display()
            );
            None
        }
    }
}

fn write_cache(path: &Path, files: &[FileEntry], parser: DefinitionParser) -> Result<()> {
    let dir = path.parent().context("cache path has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stored = Stored {
        format: INDEX_FORMAT,
        grammar: grammar_id(parser),
        written_ns: now_ns(),
        files: files.to_vec(),
    };
    let bytes = postcard::to_stdvec(&stored).context("encoding the code index")?;
    // Written beside the target and renamed: a reader never sees half a file, and concurrent
    // writers of the same tree each leave a complete one.
    let tmp = tempfile::NamedTempFile::new_in(dir).context("creating a temporary cache file")?;
    std::fs::write(tmp.path(), &bytes).context("writing the code index cache")?;
    tmp.persist(path)
        .with_context(|| format!("renaming the cache into {}", path.display()))?;
    Ok(())
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as u64
}

fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A file found by the walk, before analysis.
struct Found {
    path: String,
    abs: PathBuf,
    size: u64,
    mtime_ns: u64,
}

/// Walks the tree, reuses what the old entries still describe, analyzes the rest in parallel.
/// Returns the entries in path order and whether anything differs from `old`.
fn scan(
    root: &Path,
    old: Vec<FileEntry>,
    written_ns: u64,
    options: &IndexOptions,
    stats: &mut IndexStats,
) -> Result<(Vec<FileEntry>, bool)> {
    let walk_started = Instant::now();
    let found = walk(root, stats)?;
    stats.walk_ms = walk_started.elapsed().as_secs_f64() * 1e3;
    let analyze_started = Instant::now();
    let old_count = old.len();
    let mut old: HashMap<String, FileEntry> =
        old.into_iter().map(|e| (e.path.clone(), e)).collect();
    let racy_from = written_ns.saturating_sub(RACY_WINDOW_NS);
    let jobs: Vec<(Found, Option<FileEntry>)> = found
        .into_iter()
        .map(|f| {
            let prev = old.remove(&f.path);
            (f, prev)
        })
        .collect();
    stats.removed = old.len();
    let results: Vec<(FileEntry, Outcome)> = jobs
        .into_par_iter()
        .map(|(found, prev)| {
            if let Some(p) = &prev
                && p.size == found.size
                && p.mtime_ns == found.mtime_ns
                && found.mtime_ns < racy_from
                && let Some(prev) = prev
            {
                return (prev, Outcome::Reused);
            }
            analyze(found, prev, options)
        })
        .collect();
    stats.analyze_ms = analyze_started.elapsed().as_secs_f64() * 1e3;
    let mut files = Vec::with_capacity(results.len());
    let mut changed = stats.removed > 0 || results.len() != old_count;
    for (entry, outcome) in results {
        match outcome {
            Outcome::Reused => stats.reused += 1,
            Outcome::Rehashed { moved } => {
                stats.rehashed += 1;
                // Only a moved mtime is news; an entry re-hashed because it was racy stays as
                // stored, and is trusted once the window has passed.
                changed |= moved;
            }
            Outcome::Parsed => {
                stats.parsed += 1;
                changed = true;
            }
        }
        files.push(entry);
    }
    Ok((files, changed))
}

enum Outcome {
    Reused,
    Rehashed { moved: bool },
    Parsed,
}

/// What the walk met besides Python files, counted for the stats.
#[derive(Default)]
struct WalkCounts {
    unreadable: usize,
    skipped_links: usize,
    skipped_paths: usize,
}

fn walk(root: &Path, stats: &mut IndexStats) -> Result<Vec<Found>> {
    // The parallel walker: on a Django tree (10k entries) the serial one was the largest part of
    // a warm load.
    let found = std::sync::Mutex::new((Vec::new(), WalkCounts::default()));
    ignore::WalkBuilder::new(root)
        .hidden(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .build_parallel()
        .run(|| {
            let found = &found;
            Box::new(move |item| {
                let outcome = visit(root, item);
                let mut guard = found.lock().unwrap_or_else(|e| e.into_inner());
                match outcome {
                    Visit::File(f) => guard.0.push(f),
                    Visit::Unreadable => guard.1.unreadable += 1,
                    Visit::Link => guard.1.skipped_links += 1,
                    Visit::BadPath => guard.1.skipped_paths += 1,
                    Visit::Other => {}
                }
                ignore::WalkState::Continue
            })
        });
    let (mut found, counts) = found.into_inner().unwrap_or_else(|e| e.into_inner());
    stats.unreadable += counts.unreadable;
    stats.skipped_links += counts.skipped_links;
    stats.skipped_paths += counts.skipped_paths;
    found.sort_by(|a: &Found, b: &Found| a.path.cmp(&b.path));
    Ok(found)
}

enum Visit {
    File(Found),
    Unreadable,
    Link,
    BadPath,
    Other,
}

fn visit(root: &Path, item: Result<ignore::DirEntry, ignore::Error>) -> Visit {
    let entry = match item {
        Ok(e) => e,
        Err(e) => {
            // An unreadable folder or a broken .gitignore: report, keep walking.
            tracing::warn!("while walking {}: {e}", root.display());
            return Visit::Unreadable;
        }
    };
    let Some(file_type) = entry.file_type() else {
        return Visit::Other;
    };
    let is_python = entry.path().extension().is_some_and(|e| e == "py");
    if file_type.is_symlink() {
        // Counted when it would have mattered: a linked Python file or folder (a loop, maybe).
        return if is_python || entry.path().is_dir() {
            Visit::Link
        } else {
            Visit::Other
        };
    }
    if !file_type.is_file() || !is_python {
        return Visit::Other;
    }
    let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
    let Some(rel) = rel.to_str() else {
        return Visit::BadPath;
    };
    let Ok(meta) = entry.metadata() else {
        return Visit::Unreadable;
    };
    Visit::File(Found {
        path: rel.replace(std::path::MAIN_SEPARATOR, "/"),
        abs: entry.path().to_path_buf(),
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
    })
}

fn analyze(found: Found, prev: Option<FileEntry>, options: &IndexOptions) -> (FileEntry, Outcome) {
    let bytes = match std::fs::read(&found.abs) {
        Ok(b) => b,
        Err(e) => {
            let entry = FileEntry {
                path: found.path,
                size: found.size,
                mtime_ns: found.mtime_ns,
                hash: [0; 16],
                status: FileStatus::Unreadable {
                    reason: e.to_string(),
                },
                invalid_utf8: false,
                lines: 0,
                symbols: Vec::new(),
            };
            return (entry, Outcome::Parsed);
        }
    };
    let hash = content_hash(&bytes);
    if let Some(prev) = prev
        && prev.hash == hash
    {
        let moved = prev.mtime_ns != found.mtime_ns || prev.size != bytes.len() as u64;
        let entry = FileEntry {
            size: bytes.len() as u64,
            mtime_ns: found.mtime_ns,
            ..prev
        };
        return (entry, Outcome::Rehashed { moved });
    }
    (
        analyze_bytes(found.path, &bytes, found.mtime_ns, options),
        Outcome::Parsed,
    )
}

/// BLAKE3 of a file's content, shortened to 16 bytes (ample for telling versions of one file apart).
pub fn content_hash(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    out
}

/// Analyzes one file's bytes: status, definitions, line count.
pub fn analyze_bytes(
    path: String,
    bytes: &[u8],
    mtime_ns: u64,
    options: &IndexOptions,
) -> FileEntry {
    let mut entry = FileEntry {
        path,
        size: bytes.len() as u64,
        mtime_ns,
        hash: content_hash(bytes),
        status: FileStatus::Parsed,
        invalid_utf8: std::str::from_utf8(bytes).is_err(),
        lines: line_count(bytes),
        symbols: Vec::new(),
    };
    if memchr::memchr(0, &bytes[..bytes.len().min(BINARY_SNIFF)]).is_some() {
        entry.status = FileStatus::Binary;
        return entry;
    }
    if bytes.len() as u64 > options.max_parse_bytes {
        entry.status = FileStatus::TooLarge {
            bytes: bytes.len() as u64,
        };
        return entry;
    }
    let (symbols, error_lines) = match options.parser {
        DefinitionParser::Scanner => crate::scanner::scan(bytes),
        DefinitionParser::TreeSitter => {
            let outline = python::outline(bytes);
            (outline.symbols, outline.error_lines)
        }
    };
    entry.symbols = symbols;
    if !error_lines.is_empty() {
        entry.status = FileStatus::SyntaxErrors { lines: error_lines };
    }
    entry
}

fn line_count(bytes: &[u8]) -> u32 {
    let newlines = memchr::memchr_iter(b'\n', bytes).count();
    (newlines + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"))) as u32
}
