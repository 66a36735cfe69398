//! `ponder code`: the code index, skeletons, search tools and retrieval from the command line.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ponder_code::{
    CodeIndex, FileStatus, IndexOptions, IndexStats, SearchLimits, SkeletonOptions, ToolCall,
    Visibility,
};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum CodeCommand {
    /// Build or refresh the on-disk index of a source tree; prints counts and time.
    Index {
        #[command(flatten)]
        tree: TreeArgs,
        /// Print the counts as one JSON object.
        #[arg(long)]
        json: bool,
        /// List every file that could not be indexed fully, not only the first ten.
        #[arg(long)]
        verbose: bool,
    },
    /// List classes, functions and methods with their line spans (1-based, inclusive,
    /// decorators included).
    Symbols {
        #[command(flatten)]
        tree: TreeArgs,
        /// One JSON object a line: {"file","kind","name","qualname","start_line","end_line"}.
        #[arg(long)]
        json: bool,
    },
    /// Show a file as stage 1 shows it: signatures kept, bodies elided.
    Skeleton {
        #[command(flatten)]
        tree: TreeArgs,
        /// The file, relative to PATH (a unique ending is enough).
        file: String,
        /// Prefix kept lines with their line numbers.
        #[arg(long)]
        line_numbers: bool,
    },
    /// Run one search tool as the model would: search_class NAME, search_class_in_file NAME
    /// FILE, search_method NAME, search_method_in_class METHOD CLASS, search_method_in_file
    /// METHOD FILE, search_code TEXT, search_code_in_file TEXT FILE.
    Search {
        #[command(flatten)]
        tree: TreeArgs,
        tool: String,
        args: Vec<String>,
        /// Print the structured result (text, found, hits) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rank the visible files against a query (usually the issue text) with BM25.
    Retrieve {
        #[command(flatten)]
        tree: TreeArgs,
        /// File holding the query, e.g. the issue text.
        #[arg(long, conflicts_with = "query", required_unless_present = "query")]
        query_file: Option<PathBuf>,
        /// The query itself.
        #[arg(long)]
        query: Option<String>,
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// One JSON object a line: {"file","score"}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct TreeArgs {
    /// Root of the source tree.
    path: PathBuf,
    /// Make every indexed file visible (tests and documentation included).
    #[arg(long)]
    all: bool,
    /// Show test files to the search tools and retrieval.
    #[arg(long)]
    include_tests: bool,
    /// Show documentation folders to the search tools and retrieval.
    #[arg(long)]
    include_docs: bool,
    /// Hide files matching this glob (relative to the root, e.g. 'examples/**'); may be repeated.
    #[arg(long)]
    exclude: Vec<String>,
    /// Where indexes are cached [default: <ponder cache>/code].
    #[arg(long, env = "PONDER_CODE_CACHE")]
    index_dir: Option<PathBuf>,
    /// Index in memory only; neither read nor write the cache.
    #[arg(long)]
    no_cache: bool,
}

impl TreeArgs {
    fn open(&self, cache_root: &Path) -> Result<(CodeIndex, IndexStats)> {
        let mut visibility = if self.all {
            Visibility::all()
        } else {
            Visibility::default()
        };
        visibility.tests |= self.include_tests;
        visibility.docs |= self.include_docs;
        let visibility = visibility.with_excludes(&self.exclude)?;
        let cache_dir = (!self.no_cache).then(|| {
            self.index_dir
                .clone()
                .unwrap_or_else(|| cache_root.join("code"))
        });
        let options = IndexOptions {
            cache_dir,
            visibility,
            ..IndexOptions::default()
        };
        CodeIndex::open(&self.path, options)
            .with_context(|| format!("indexing {}", self.path.display()))
    }
}

/// Writes a line to stdout; a closed pipe ends the program quietly.
fn line(text: impl std::fmt::Display) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{text}")
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

pub fn run(command: CodeCommand, cache_root: &Path) -> Result<ExitCode> {
    match command {
        CodeCommand::Index {
            tree,
            json,
            verbose,
        } => {
            let (index, stats) = tree.open(cache_root)?;
            if json {
                line(serde_json::to_string(&stats)?);
            } else {
                print_index_summary(&index, &stats, verbose);
            }
            Ok(ExitCode::SUCCESS)
        }
        CodeCommand::Symbols { tree, json } => {
            let (index, _) = tree.open(cache_root)?;
            for i in index.visible_files() {
                let file = index.file(i);
                for s in &file.symbols {
                    if json {
                        line(json!({
                            "file": file.path,
                            "kind": s.kind.as_str(),
                            "name": s.name,
                            "qualname": s.qualname,
                            "start_line": s.start_line,
                            "end_line": s.end_line,
                        }));
                    } else {
                        line(format_args!(
                            "{}:{}-{} {} {}",
                            file.path,
                            s.start_line,
                            s.end_line,
                            s.kind.as_str(),
                            s.qualname
                        ));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CodeCommand::Skeleton {
            tree,
            file,
            line_numbers,
        } => {
            let (index, _) = tree.open(cache_root)?;
            let options = SkeletonOptions {
                line_numbers,
                ..SkeletonOptions::default()
            };
            match index.skeleton(&file, &options) {
                Ok(text) => {
                    print!("{text}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(message) => bail!("{message}"),
            }
        }
        CodeCommand::Search {
            tree,
            tool,
            args,
            json,
        } => {
            let call = ToolCall::from_args(&tool, &args)?;
            let (index, _) = tree.open(cache_root)?;
            let output = index.run_tool(&call, &SearchLimits::default());
            if json {
                line(serde_json::to_string_pretty(&output)?);
            } else {
                print!("{}", output.text);
                if !output.text.ends_with('\n') {
                    line("");
                }
            }
            // Like grep: nothing found is exit status 1, so scripts can tell.
            Ok(if output.found {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        CodeCommand::Retrieve {
            tree,
            query_file,
            query,
            top,
            json,
        } => {
            let query = match (query, query_file) {
                (Some(q), _) => q,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the query from {}", path.display()))?,
                (None, None) => bail!("give --query TEXT or --query-file FILE"),
            };
            let (index, _) = tree.open(cache_root)?;
            for hit in index.retrieve(&query, top) {
                if json {
                    line(serde_json::to_string(&hit)?);
                } else {
                    line(format_args!("{:8.3}  {}", hit.score, hit.file));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_index_summary(index: &CodeIndex, stats: &IndexStats, verbose: bool) {
    line(format_args!(
        "indexed {} Python files ({} visible) in {:.0} ms: {} parsed, {} unchanged, {} re-hashed, {} removed",
        stats.files,
        stats.visible_files,
        stats.elapsed_ms,
        stats.parsed,
        stats.reused,
        stats.rehashed,
        stats.removed
    ));
    line(format_args!(
        "symbols: {} ({} classes, {} functions, {} methods)",
        stats.symbols,
        index.count_kind(ponder_code::SymbolKind::Class),
        index.count_kind(ponder_code::SymbolKind::Function),
        index.count_kind(ponder_code::SymbolKind::Method)
    ));
    let problems: Vec<String> = index
        .files()
        .iter()
        .filter_map(|f| {
            let what = match &f.status {
                FileStatus::Parsed if f.invalid_utf8 => "not valid UTF-8 (decoded lossily)".into(),
                FileStatus::Parsed => return None,
                FileStatus::SyntaxErrors { lines } => format!(
                    "syntax errors near line {} (Python 2?); definitions elsewhere indexed",
                    lines
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                FileStatus::TooLarge { bytes } => {
                    format!("{bytes} bytes, too large to parse; searchable as text")
                }
                FileStatus::Binary => "binary content; left out".into(),
                FileStatus::Unreadable { reason } => format!("unreadable: {reason}"),
            };
            Some(format!("  {}: {what}", f.path))
        })
        .collect();
    if !problems.is_empty() {
        line(format_args!(
            "{} files not indexed fully ({} with syntax errors, {} too large, {} binary, {} unreadable, {} not UTF-8):",
            problems.len(),
            stats.syntax_errors,
            stats.too_large,
            stats.binary,
            stats.unreadable,
            stats.invalid_utf8
        ));
        let shown = if verbose { problems.len() } else { 10 };
        for p in problems.iter().take(shown) {
            line(p);
        }
        if problems.len() > shown {
            line(format_args!(
                "  ... {} more (--verbose lists all)",
                problems.len() - shown
            ));
        }
    }
    if stats.skipped_links + stats.skipped_paths > 0 {
        line(format_args!(
            "skipped: {} symbolic links (not followed), {} paths that are not UTF-8",
            stats.skipped_links, stats.skipped_paths
        ));
    }
    line(format_args!(
        "cache: {}",
        if stats.cache_written {
            "written"
        } else if stats.cache_loaded {
            "up to date"
        } else {
            "off"
        }
    ));
}
