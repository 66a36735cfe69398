//! The index on hostile trees and across edits: Python 2 and broken files, invalid UTF-8, a 20 MB
//! generated file, binary content, symbolic-link loops, non-UTF-8 names, ignored and hidden
//! folders; then the on-disk cache: reuse, edits (also same-size edits in the same clock tick),
//! deletions, a corrupt cache file, and in-memory refresh.

use ponder_code::{
    CodeIndex, FileStatus, IndexOptions, SearchLimits, SymbolKind, ToolCall, Visibility,
};
use std::path::Path;

fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn options(cache: Option<&Path>) -> IndexOptions {
    IndexOptions {
        cache_dir: cache.map(Path::to_path_buf),
        visibility: Visibility::all(),
        ..IndexOptions::default()
    }
}

fn qualnames(index: &CodeIndex, path: &str) -> Vec<String> {
    let i = index
        .file_index(path)
        .unwrap_or_else(|| panic!("{path} not indexed"));
    index
        .file(i)
        .symbols
        .iter()
        .map(|s| s.qualname.clone())
        .collect()
}

#[test]
fn hostile_trees_are_indexed_as_far_as_possible() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "pkg/__init__.py",
        "class Base:\n    def run(self):\n        return 1\n",
    );
    // Python 2: print statements and the old except syntax lex fine, so definitions are found.
    write(
        root,
        "pkg/legacy.py",
        "def old():\n    print \"hello\"\n    try:\n        pass\n    except ValueError, e:\n        pass\n\nclass Legacy:\n    def m(self):\n        print 'x'\n",
    );
    // Broken: an unterminated string (it ends at the line end, as CPython's tokenizer reports it)
    // and a bracket never closed; the definitions around them are kept, the lines reported.
    write(
        root,
        "pkg/broken.py",
        "def before():\n    pass\n\nx = 'open\n\ndef after():\n    return (\n",
    );
    // Latin-1 source with a coding line: valid Python, invalid UTF-8.
    write(
        root,
        "pkg/latin.py",
        b"# -*- coding: latin-1 -*-\nname = 'caf\xe9'\ndef cafe():\n    return name\n",
    );
    // NUL bytes: not source.
    write(root, "pkg/blob.py", b"\x00\x01\x02def not_code(): pass\n");
    // A 20 MB generated table, then a definition whose line must still be exact.
    let mut big = String::from("TABLE = [\n");
    let row = "    (0x1234, 'generated row with some text', 3.14159, None),\n";
    while big.len() < 20 * 1024 * 1024 {
        big.push_str(row);
    }
    big.push_str("]\n\ndef lookup(key):\n    return TABLE[key]\n");
    let lookup_line = big.lines().count() as u32 - 1;
    write(root, "pkg/generated.py", &big);
    // Links: a folder loop and a linked module (neither followed).
    std::os::unix::fs::symlink("..", root.join("pkg/loop")).unwrap();
    std::os::unix::fs::symlink("__init__.py", root.join("pkg/alias.py")).unwrap();
    // A file name that is not UTF-8.
    let odd: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(b"pkg/odd\xff.py");
    std::fs::write(root.join(odd), "def odd(): pass\n").unwrap();
    // Ignored and hidden folders are not part of the project.
    write(root, ".gitignore", "build/\n");
    write(root, "build/lib/copy.py", "def copied(): pass\n");
    write(root, ".venv/lib/site.py", "def vendored(): pass\n");

    let (index, stats) = CodeIndex::open(root, options(None)).expect("index opens");
    let paths: Vec<&str> = index.files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "pkg/__init__.py",
            "pkg/blob.py",
            "pkg/broken.py",
            "pkg/generated.py",
            "pkg/latin.py",
            "pkg/legacy.py"
        ]
    );
    assert_eq!(
        qualnames(&index, "pkg/legacy.py"),
        ["old", "Legacy", "Legacy.m"]
    );
    assert_eq!(qualnames(&index, "pkg/broken.py"), ["before", "after"]);
    let broken = index.file(index.file_index("pkg/broken.py").unwrap());
    assert_eq!(
        broken.status,
        FileStatus::SyntaxErrors { lines: vec![4, 7] }
    );
    let latin = index.file(index.file_index("pkg/latin.py").unwrap());
    assert!(latin.invalid_utf8);
    assert_eq!(qualnames(&index, "pkg/latin.py"), ["cafe"]);
    let blob = index.file(index.file_index("pkg/blob.py").unwrap());
    assert_eq!(blob.status, FileStatus::Binary);
    assert!(blob.symbols.is_empty());
    let generated = index.file(index.file_index("pkg/generated.py").unwrap());
    assert_eq!(generated.status, FileStatus::Parsed);
    assert_eq!(generated.symbols.len(), 1);
    assert_eq!(
        (
            generated.symbols[0].start_line,
            generated.symbols[0].end_line
        ),
        (lookup_line, lookup_line + 1)
    );
    assert_eq!(stats.binary, 1);
    assert_eq!(stats.syntax_errors, 1);
    assert_eq!(stats.invalid_utf8, 1);
    assert_eq!(stats.skipped_links, 2);
    assert_eq!(stats.skipped_paths, 1);

    // The tools work over all of it, and the binary file is never searched.
    let limits = SearchLimits::default();
    let out = index.run_tool(
        &ToolCall::SearchCode {
            code_str: "return TABLE[key]".into(),
        },
        &limits,
    );
    assert!(out.found, "{}", out.text);
    assert_eq!(out.hits[0].qualname.as_deref(), Some("lookup"));
    let out = index.run_tool(
        &ToolCall::SearchCode {
            code_str: "not_code".into(),
        },
        &limits,
    );
    assert!(!out.found);
    let out = index.run_tool(
        &ToolCall::SearchCode {
            code_str: "name = 'caf".into(),
        },
        &limits,
    );
    assert!(
        out.text.contains("caf\u{fffd}"),
        "lossy decoding shows the rest: {}",
        out.text
    );

    // A file that is too large to parse under a lower limit is still searchable text.
    let small_limit = IndexOptions {
        max_parse_bytes: 1024 * 1024,
        ..options(None)
    };
    let (index, stats) = CodeIndex::open(root, small_limit).unwrap();
    assert_eq!(stats.too_large, 1);
    let out = index.run_tool(
        &ToolCall::SearchCode {
            code_str: "return TABLE[key]".into(),
        },
        &limits,
    );
    assert!(out.found);
    assert_eq!(
        out.hits[0].qualname, None,
        "no definitions in an unparsed file"
    );
}

#[test]
fn the_cache_is_reused_refreshed_and_kept_outside_the_tree() {
    let tree = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let root = tree.path();
    for i in 0..20 {
        write(
            root,
            &format!("pkg/mod{i:02}.py"),
            format!("def f{i}():\n    return {i}\n"),
        );
    }
    let (_, cold) = CodeIndex::open(root, options(Some(cache.path()))).unwrap();
    assert_eq!(
        (cold.parsed, cold.reused, cold.cache_written),
        (20, 0, true)
    );
    let listing = |p: &Path| {
        let mut v: Vec<_> = walk(p);
        v.sort();
        v
    };
    assert_eq!(listing(root).len(), 20, "nothing is written into the tree");

    // Reopened at once: every entry is within the racy window of the write, so each is
    // re-hashed, found unchanged, and not parsed again.
    let (_, warm) = CodeIndex::open(root, options(Some(cache.path()))).unwrap();
    assert!(warm.cache_loaded);
    assert_eq!(warm.parsed, 0);
    assert_eq!(warm.reused + warm.rehashed, 20);

    // A same-size edit that keeps the modification time (same clock tick) is still caught.
    let path = root.join("pkg/mod03.py");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, "def g3():\n    return 3\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    // An ordinary edit, a deletion and a new file.
    write(
        root,
        "pkg/mod05.py",
        "class Five:\n    def five(self):\n        return 5\n",
    );
    std::fs::remove_file(root.join("pkg/mod07.py")).unwrap();
    write(root, "pkg/new.py", "async def fresh():\n    pass\n");
    let (mut index, stats) = CodeIndex::open(root, options(Some(cache.path()))).unwrap();
    assert_eq!(stats.parsed, 3, "{stats:?}");
    assert_eq!(stats.removed, 1);
    assert_eq!(qualnames(&index, "pkg/mod03.py"), ["g3"]);
    assert_eq!(qualnames(&index, "pkg/mod05.py"), ["Five", "Five.five"]);
    assert!(index.file_index("pkg/mod07.py").is_none());
    assert!(index.file(index.file_index("pkg/new.py").unwrap()).symbols[0].is_async);

    // In memory, as a patch candidate edits the work tree.
    write(
        root,
        "pkg/mod05.py",
        "class Five:\n    def five(self):\n        return 5\n\n    def six(self):\n        return 6\n",
    );
    let refreshed = index.refresh().unwrap();
    assert_eq!(refreshed.parsed, 1, "{refreshed:?}");
    let out = index.run_tool(
        &ToolCall::SearchMethodInClass {
            method_name: "six".into(),
            class_name: "Five".into(),
        },
        &SearchLimits::default(),
    );
    assert!(out.found, "{}", out.text);
    assert_eq!(
        index
            .symbol(index.symbols_named("six").next().unwrap())
            .kind,
        SymbolKind::Method
    );

    // A corrupt cache is ignored and rebuilt.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not an index").unwrap();
    }
    let (_, rebuilt) = CodeIndex::open(root, options(Some(cache.path()))).unwrap();
    assert!(!rebuilt.cache_loaded);
    assert_eq!((rebuilt.parsed, rebuilt.cache_written), (20, true));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_missing_root_is_a_clear_error() {
    let err = CodeIndex::open(Path::new("/nonexistent/tree"), options(None))
        .err()
        .expect("an error");
    assert!(
        format!("{err:#}").contains("give the path of a source tree"),
        "{err:#}"
    );
}
