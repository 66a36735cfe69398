//! The plain data the index hands out: definitions with exact line spans, and what happened to
//! each file while it was indexed.

use serde::{Deserialize, Serialize};

/// What a definition is. A function whose nearest enclosing definition is a class is a method,
/// also when it sits inside an `if` or `try` in the class body, as Python's own scoping has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolKind {
    Class,
    Function,
    Method,
}

impl SymbolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SymbolKind::Class => "class",
            SymbolKind::Function => "function",
            SymbolKind::Method => "method",
        }
    }

    pub fn is_callable(self) -> bool {
        !matches!(self, SymbolKind::Class)
    }
}

/// One class, function or method of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    pub kind: SymbolKind,
    pub name: String,
    /// Dotted path inside the module, built as Python builds `__qualname__`: `Outer.Inner.method`,
    /// and `func.<locals>.helper` for definitions inside a function.
    pub qualname: String,
    /// First line, 1-based, decorators included.
    pub start_line: u32,
    /// Last line of the last statement of the body (trailing comments are not part of it).
    pub end_line: u32,
    /// Line of the colon that ends the header (`def f(...) -> T:`), where the body begins.
    pub header_end_line: u32,
    /// Index, in the same file's list, of the innermost enclosing class or function.
    pub parent: Option<u32>,
    pub is_async: bool,
}

/// The kind and qualified name of a definition named `name` whose innermost enclosing definition
/// is `parent`, by Python's rules: a function directly in a class scope is a method, and names
/// nest as `__qualname__` does (`Outer.method`, `func.<locals>.helper`).
pub fn kind_and_qualname(
    is_class: bool,
    name: &str,
    parent: Option<&Symbol>,
) -> (SymbolKind, String) {
    let kind = match (is_class, parent.map(|p| p.kind)) {
        (true, _) => SymbolKind::Class,
        (false, Some(SymbolKind::Class)) => SymbolKind::Method,
        (false, _) => SymbolKind::Function,
    };
    let qualname = match parent {
        None => name.to_string(),
        Some(p) if p.kind == SymbolKind::Class => format!("{}.{name}", p.qualname),
        Some(p) => format!("{}.<locals>.{name}", p.qualname),
    };
    (kind, qualname)
}

impl Symbol {
    pub fn contains_line(&self, line: u32) -> bool {
        self.start_line <= line && line <= self.end_line
    }

    pub fn line_count(&self) -> u32 {
        self.end_line + 1 - self.start_line
    }
}

/// How far a file could be indexed. Anything but `Parsed` is reported by `ponder code index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Externally tagged (serde's default): the binary cache format cannot read internally tagged enums.
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Parsed without a syntax error.
    Parsed,
    /// Parsed with error recovery; definitions outside the broken regions are still indexed.
    /// Typical cause: Python 2 syntax. `lines` holds the first few lines with errors.
    SyntaxErrors { lines: Vec<u32> },
    /// Larger than the parse limit: kept for text search, no definitions.
    TooLarge { bytes: u64 },
    /// Contains NUL bytes: not source code, left out of search.
    Binary,
    /// Could not be read (permissions, vanished during the walk).
    Unreadable { reason: String },
}

impl FileStatus {
    pub fn is_searchable(&self) -> bool {
        matches!(
            self,
            FileStatus::Parsed | FileStatus::SyntaxErrors { .. } | FileStatus::TooLarge { .. }
        )
    }
}
