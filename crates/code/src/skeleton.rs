//! File skeletons and class signatures: what stage 1 shows of a file and what `search_class`
//! returns. Headers of classes, functions and methods are kept as written (decorators included),
//! bodies become `...`, class-level and module-level assignments are kept (long ones cut), and
//! definitions under `if`/`try`/`with` keep the clause lines that lead to them. Imports,
//! docstrings and other statements are left out.

use crate::python;
use crate::symbol::Symbol;
use tree_sitter::Node;

#[derive(Debug, Clone)]
pub struct SkeletonOptions {
    /// Prefix each kept line with its line number in the file.
    pub line_numbers: bool,
    /// An assignment longer than this many lines keeps its first lines and a `...` line.
    pub max_statement_lines: usize,
}

impl Default for SkeletonOptions {
    fn default() -> Self {
        SkeletonOptions {
            line_numbers: false,
            max_statement_lines: 3,
        }
    }
}

struct Renderer<'a> {
    lines: Vec<&'a str>,
    out: Vec<String>,
    /// Last source row already emitted; a row is never emitted twice.
    last_row: Option<usize>,
    /// Leading whitespace removed from every line (a nested class is shown from column 0).
    dedent: usize,
    options: &'a SkeletonOptions,
}

impl<'a> Renderer<'a> {
    fn new(text: &'a str, options: &'a SkeletonOptions, dedent: usize) -> Self {
        let lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        Renderer {
            lines,
            out: Vec::new(),
            last_row: None,
            dedent,
            options,
        }
    }

    fn emit_rows(&mut self, first: usize, last: usize) {
        for row in first..=last {
            if self.last_row.is_some_and(|r| row <= r) {
                continue;
            }
            let Some(line) = self.lines.get(row) else {
                break;
            };
            let cut = line.len() - line.trim_start().len();
            let line = &line[cut.min(self.dedent)..];
            self.out.push(if self.options.line_numbers {
                format!("{:>6} {line}", row + 1)
            } else {
                line.to_string()
            });
            self.last_row = Some(row);
        }
    }

    /// An elision marker, indented like the source line `like_row`.
    fn emit_ellipsis(&mut self, like_row: usize) {
        let line = self.lines.get(like_row).copied().unwrap_or("");
        let indent = &line[..line.len() - line.trim_start().len()];
        let indent = &indent[indent.len().min(self.dedent)..];
        let prefix = if self.options.line_numbers {
            "       "
        } else {
            ""
        };
        self.out.push(format!("{prefix}{indent}..."));
    }

    fn block(&mut self, block: Node) -> bool {
        let before = self.out.len();
        let mut cursor = block.walk();
        let children: Vec<Node> = block.named_children(&mut cursor).collect();
        for stmt in children {
            self.statement(stmt);
        }
        self.out.len() > before
    }

    fn statement(&mut self, stmt: Node) {
        match stmt.kind() {
            "decorated_definition" => {
                if let Some(def) = stmt.child_by_field_name("definition") {
                    self.definition(def, stmt.start_position().row);
                }
            }
            "function_definition" | "class_definition" => {
                self.definition(stmt, stmt.start_position().row)
            }
            "expression_statement" => {
                let is_assignment = stmt
                    .named_child(0)
                    .is_some_and(|c| matches!(c.kind(), "assignment" | "augmented_assignment"));
                if is_assignment {
                    let first = stmt.start_position().row;
                    let last = python::code_end_row(stmt);
                    let cap = self.options.max_statement_lines.max(1);
                    if last + 1 - first > cap {
                        self.emit_rows(first, first + cap - 1);
                        self.emit_ellipsis(first + 1);
                    } else {
                        self.emit_rows(first, last);
                    }
                }
            }
            "type_alias_statement" => {
                self.emit_rows(stmt.start_position().row, python::code_end_row(stmt))
            }
            kind if kind.ends_with("_statement") && holds_definition(stmt) => self.compound(stmt),
            _ => {}
        }
    }

    fn definition(&mut self, def: Node, start_row: usize) {
        let Some(body) = def.child_by_field_name("body") else {
            self.emit_rows(start_row, def.start_position().row);
            return;
        };
        let body_row = body.start_position().row;
        let colon_row = def
            .children(&mut def.walk())
            .find(|c| c.kind() == ":")
            .map(|c| c.start_position().row)
            .unwrap_or(start_row);
        if body_row <= colon_row {
            // `def f(): return 1` — the one line is its own skeleton.
            self.emit_rows(start_row, python::code_end_row(def));
            return;
        }
        self.emit_rows(start_row, colon_row);
        let shown = def.kind() == "class_definition" && self.block(body);
        if !shown {
            self.emit_ellipsis(body_row);
        }
    }

    /// An `if`/`try`/`with`/... that holds definitions: its clause lines and their blocks.
    fn compound(&mut self, stmt: Node) {
        let mut cursor = stmt.walk();
        let parts: Vec<Node> = stmt.named_children(&mut cursor).collect();
        let mut header_from = stmt.start_position().row;
        for part in parts {
            if part.kind() == "block" {
                self.clause_block(header_from, part);
            } else if part.kind().ends_with("_clause") {
                let mut inner = part.walk();
                let block = part
                    .named_children(&mut inner)
                    .find(|c| c.kind() == "block");
                if let Some(block) = block {
                    self.clause_block(part.start_position().row, block);
                }
            }
            header_from = part.end_position().row + 1;
        }
    }

    fn clause_block(&mut self, header_row: usize, block: Node) {
        let body_row = block.start_position().row;
        if body_row <= header_row {
            self.emit_rows(header_row, python::code_end_row(block));
            return;
        }
        self.emit_rows(header_row, body_row - 1);
        if !self.block(block) {
            self.emit_ellipsis(body_row);
        }
    }
}

/// Whether a compound statement has a class or function definition somewhere in its blocks.
fn holds_definition(stmt: Node) -> bool {
    let mut stack = vec![stmt];
    while let Some(node) = stack.pop() {
        let mut cursor = node.walk();
        for child in node.named_children(&mut cursor) {
            match child.kind() {
                "function_definition" | "class_definition" | "decorated_definition" => return true,
                k if k == "block" || k.ends_with("_clause") || k.ends_with("_statement") => {
                    stack.push(child)
                }
                _ => {}
            }
        }
    }
    false
}

impl crate::index::CodeIndex {
    /// The skeleton of a visible file named as the search tools accept it.
    pub fn skeleton(&self, file_name: &str, options: &SkeletonOptions) -> Result<String, String> {
        let file = self.resolve_file(file_name)?;
        let content = self
            .content(file)
            .ok_or_else(|| format!("The file {file_name} can no longer be read."))?;
        Ok(file_skeleton(&content, options))
    }
}

/// The skeleton of a whole file.
pub fn file_skeleton(source: &[u8], options: &SkeletonOptions) -> String {
    let text = String::from_utf8_lossy(source);
    let Some(tree) = python::parse(text.as_bytes()) else {
        return String::new();
    };
    let mut r = Renderer::new(&text, options, 0);
    r.block(tree.root_node());
    join(r.out)
}

/// The signature of one class of a file: its header, class-level assignments and the headers of
/// its methods and nested classes. `None` if `class` no longer matches the file.
pub fn class_signature(source: &[u8], class: &Symbol, options: &SkeletonOptions) -> Option<String> {
    let text = String::from_utf8_lossy(source);
    let tree = python::parse(text.as_bytes())?;
    let (node, start_row) = find_definition(tree.root_node(), class)?;
    let header = text.split('\n').nth(start_row).unwrap_or("");
    let dedent = header.len() - header.trim_start().len();
    let mut r = Renderer::new(&text, options, dedent);
    r.definition(node, start_row);
    Some(join(r.out))
}

/// The tree node of an indexed definition, found by its first line and name.
fn find_definition<'t>(root: Node<'t>, symbol: &Symbol) -> Option<(Node<'t>, usize)> {
    let wanted = symbol.start_line as usize - 1;
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if matches!(node.kind(), "class_definition" | "function_definition") {
            let start = match node.parent() {
                Some(p) if p.kind() == "decorated_definition" => p.start_position().row,
                _ => node.start_position().row,
            };
            if start == wanted {
                return Some((node, start));
            }
        }
        // Only descend into nodes that span the wanted line.
        let mut cursor = node.walk();
        for child in node.named_children(&mut cursor) {
            // A decorated definition's own node starts below its decorators.
            let spans =
                child.start_position().row <= wanted || node.kind() == "decorated_definition";
            if spans && wanted <= child.end_position().row {
                stack.push(child);
            }
        }
    }
    None
}

fn join(lines: Vec<String>) -> String {
    let mut s = lines.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "\
\"\"\"Module doc.\"\"\"
import os

CONSTANT = 3
TABLE = {
    1: 2,
    3: 4,
    5: 6,
}


@register
class Model(Base):
    \"\"\"Doc.\"\"\"
    name = 'x'

    def save(self, force=False,
             using=None):
        if force:
            return 1
        return 2

    class Meta:
        ordering = ['id']

    def short(self): return 0


try:
    from fast import speedup
except ImportError:
    def speedup(x):
        return x


def helper(a) -> int:
    return a
";

    #[test]
    fn skeleton_keeps_headers_and_assignments() {
        let got = file_skeleton(SRC.as_bytes(), &SkeletonOptions::default());
        let want = "\
CONSTANT = 3
TABLE = {
    1: 2,
    3: 4,
    ...
@register
class Model(Base):
    name = 'x'
    def save(self, force=False,
             using=None):
        ...
    class Meta:
        ordering = ['id']
    def short(self): return 0
try:
    ...
except ImportError:
    def speedup(x):
        ...
def helper(a) -> int:
    ...
";
        assert_eq!(got, want);
    }

    #[test]
    fn class_signature_of_a_nested_class_is_dedented() {
        let outline = python::outline(SRC.as_bytes());
        let meta = outline.symbols.iter().find(|s| s.name == "Meta").unwrap();
        let sig = class_signature(SRC.as_bytes(), meta, &SkeletonOptions::default()).unwrap();
        assert_eq!(sig, "class Meta:\n    ordering = ['id']\n");
        let numbered = SkeletonOptions {
            line_numbers: true,
            ..SkeletonOptions::default()
        };
        let model = outline.symbols.iter().find(|s| s.name == "Model").unwrap();
        let sig = class_signature(SRC.as_bytes(), model, &numbered).unwrap();
        assert!(
            sig.starts_with("    12 @register\n    13 class Model(Base):\n"),
            "{sig}"
        );
    }
}
