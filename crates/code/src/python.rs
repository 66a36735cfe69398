//! Python definitions from tree-sitter, with the line spans Python's own `ast` module reports.
//!
//! The spans must agree with `ast` exactly (a wrong span misleads the model), so two tree-sitter
//! habits are undone here: a decorated definition starts at its first decorator (tree-sitter wraps
//! it in `decorated_definition`), and a body ends at its last statement, not at comments that
//! tree-sitter keeps inside the block.

use crate::symbol::{Symbol, kind_and_qualname};
use std::cell::RefCell;
use tree_sitter::{Node, Parser, Tree};

/// How many lines with syntax errors a file's status remembers.
const ERROR_LINES_KEPT: usize = 5;

thread_local! {
    // A parser is cheap to reuse and not `Sync`: one per thread keeps rayon workers independent.
    static PARSER: RefCell<Option<Parser>> = const { RefCell::new(None) };
}

/// Parses Python source. `None` only if tree-sitter gave up (it recovers from syntax errors, so
/// in practice this means the grammar failed to load, which a test catches).
pub fn parse(source: &[u8]) -> Option<Tree> {
    PARSER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut parser = Parser::new();
            parser
                .set_language(&tree_sitter_python::LANGUAGE.into())
                .ok()?;
            *slot = Some(parser);
        }
        slot.as_mut()?.parse(source, None)
    })
}

/// The definitions of one file and the lines where the parser had to recover from errors.
#[derive(Debug, Default)]
pub struct Outline {
    pub symbols: Vec<Symbol>,
    pub error_lines: Vec<u32>,
}

/// Parses `source` and lists its classes, functions and methods in source order.
pub fn outline(source: &[u8]) -> Outline {
    let Some(tree) = parse(source) else {
        return Outline {
            symbols: Vec::new(),
            error_lines: vec![1],
        };
    };
    outline_of(&tree, source)
}

/// Lists the definitions of an already parsed tree.
pub fn outline_of(tree: &Tree, source: &[u8]) -> Outline {
    let mut out = Outline::default();
    let root = tree.root_node();
    if root.has_error() {
        collect_error_lines(root, &mut out.error_lines);
    }
    // Iterative pre-order walk: generated files can nest deeper than a recursive walk's stack.
    // Each entry carries the index of the enclosing definition (if any).
    let mut stack: Vec<(Node, Option<u32>)> = vec![(root, None)];
    while let Some((node, scope)) = stack.pop() {
        let mut child_scope = scope;
        if let Some(def) = definition_symbol(node, scope, &out.symbols, source) {
            out.symbols.push(def);
            child_scope = Some((out.symbols.len() - 1) as u32);
        }
        // Push children in reverse so they are visited in source order.
        let mut cursor = node.walk();
        let children: Vec<Node> = node
            .named_children(&mut cursor)
            .filter(|c| may_contain_definitions(c.kind()))
            .collect();
        for child in children.into_iter().rev() {
            stack.push((child, child_scope));
        }
    }
    out
}

/// Node kinds worth descending into. Definitions live in statements and blocks (and, in broken
/// files, inside ERROR nodes); expressions never hold one, so skipping them saves most of the walk.
fn may_contain_definitions(kind: &str) -> bool {
    matches!(
        kind,
        "module"
            | "block"
            | "class_definition"
            | "function_definition"
            | "decorated_definition"
            | "ERROR"
    ) || (kind.ends_with("_statement") && kind != "expression_statement")
        || kind.ends_with("_clause")
}

/// If `node` is a class or function definition, the symbol it defines.
fn definition_symbol(
    node: Node,
    scope: Option<u32>,
    symbols: &[Symbol],
    source: &[u8],
) -> Option<Symbol> {
    let is_class = match node.kind() {
        "class_definition" => true,
        "function_definition" => false,
        _ => return None,
    };
    let name_node = node.child_by_field_name("name")?;
    let name = String::from_utf8_lossy(&source[name_node.byte_range()]).into_owned();
    let parent = scope.map(|i| &symbols[i as usize]);
    let (kind, qualname) = kind_and_qualname(is_class, &name, parent);
    let start = match node.parent() {
        Some(p) if p.kind() == "decorated_definition" => p.start_position().row,
        _ => node.start_position().row,
    };
    let header_end = header_colon(node)
        .map(|c| c.start_position().row)
        .unwrap_or(start);
    let is_async = !is_class && node.child(0).is_some_and(|c| c.kind() == "async");
    Some(Symbol {
        kind,
        name,
        qualname,
        start_line: start as u32 + 1,
        end_line: code_end_row(node) as u32 + 1,
        header_end_line: header_end as u32 + 1,
        parent: scope,
        is_async,
    })
}

/// The `:` that ends a definition's header (a direct child, so never one inside the parameters).
fn header_colon(node: Node) -> Option<Node> {
    let mut cursor = node.walk();
    node.children(&mut cursor).find(|c| c.kind() == ":")
}

/// Row of the last token of `node` that is code: trailing comments, which tree-sitter may keep
/// inside a block, and zero-width nodes inserted by error recovery are not.
pub(crate) fn code_end_row(node: Node) -> usize {
    let mut current = node;
    loop {
        let mut last = None;
        for i in (0..current.child_count()).rev() {
            let Some(child) = current.child(i) else {
                continue;
            };
            if child.kind() == "comment" || child.is_missing() || child.byte_range().is_empty() {
                continue;
            }
            last = Some(child);
            break;
        }
        match last {
            Some(child) => current = child,
            None => break,
        }
    }
    let end = current.end_position();
    // A token that ends with a newline (rare; some error tokens do) ends on the line before.
    if end.column == 0 && end.row > current.start_position().row {
        end.row - 1
    } else {
        end.row
    }
}

fn collect_error_lines(root: Node, lines: &mut Vec<u32>) {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if lines.len() >= ERROR_LINES_KEPT {
            break;
        }
        if node.is_error() || node.is_missing() {
            let line = node.start_position().row as u32 + 1;
            if !lines.contains(&line) {
                lines.push(line);
            }
            continue;
        }
        if !node.has_error() {
            continue;
        }
        let mut cursor = node.walk();
        let children: Vec<Node> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    lines.sort_unstable();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(src: &str) -> Vec<(String, &'static str, u32, u32)> {
        outline(src.as_bytes())
            .symbols
            .into_iter()
            .map(|s| (s.qualname, s.kind.as_str(), s.start_line, s.end_line))
            .collect()
    }

    #[test]
    fn decorators_nesting_async_and_trailing_comments() {
        let src = "\
import x

@dec
@other(1,
       2)
class A(B):
    x = 1

    async def m(self):
        def inner():
            return 1
        # trailing comment in body

    # comment at class level
    if True:
        def cond(self): pass

def f(a,
      b):
    '''doc'''
    class Local:
        pass
# end
";
        assert_eq!(
            spans(src),
            vec![
                ("A".into(), "class", 3, 16),
                ("A.m".into(), "method", 9, 11),
                ("A.m.<locals>.inner".into(), "function", 10, 11),
                ("A.cond".into(), "method", 16, 16),
                ("f".into(), "function", 18, 22),
                ("f.<locals>.Local".into(), "class", 21, 22),
            ]
        );
        let out = outline(src.as_bytes());
        assert!(out.symbols[1].is_async);
        assert_eq!(out.symbols[4].header_end_line, 19);
        assert!(out.error_lines.is_empty());
    }

    #[test]
    fn broken_file_is_indexed_as_far_as_possible() {
        // Python 2's `print` statement is in the grammar; a broken parameter list is not.
        let src = "def ok():\n    return 1\n\nprint 'hello'\n\ndef broken(:\n    pass\n\nclass C:\n    def m(self):\n        pass\n";
        let out = outline(src.as_bytes());
        assert!(!out.error_lines.is_empty());
        assert!(out.error_lines.contains(&6), "{:?}", out.error_lines);
        assert!(out.symbols.iter().any(|s| s.qualname == "ok"));
        assert!(out.symbols.iter().any(|s| s.qualname == "C.m"));
    }
}

/// The code of `source` with what does not change its meaning dropped: comments, docstrings
/// (any statement that is only a string), and layout. Tokens are separated by one space and
/// blocks are marked with `{` and `}`, so code that differs only in comments, docstrings,
/// blank lines or line breaks inside brackets gives the same text, while moving a statement in
/// or out of a block does not. Used to tell whether two patches make the same change.
pub fn normalized(source: &[u8]) -> String {
    let Some(tree) = parse(source) else {
        return String::from_utf8_lossy(source).into_owned();
    };
    let mut out = String::new();
    let mut cursor = tree.walk();
    let mut stack = vec![(tree.root_node(), false)];
    while let Some((node, closing)) = stack.pop() {
        if closing {
            out.push_str("} ");
            continue;
        }
        let kind = node.kind();
        if kind == "comment" || is_string_statement(&node) {
            continue;
        }
        if node.child_count() == 0 || kind == "string" {
            let text = node.utf8_text(source).unwrap_or("");
            if !text.trim().is_empty() {
                out.push_str(text.trim());
                out.push(' ');
            }
            continue;
        }
        if kind == "block" {
            out.push_str("{ ");
            stack.push((node, true));
        }
        let children: Vec<Node> = node.children(&mut cursor).collect();
        for child in children.into_iter().rev() {
            stack.push((child, false));
        }
    }
    out.trim_end().to_owned()
}

/// A statement that is a lone string: a docstring, or a string used as a comment.
fn is_string_statement(node: &Node) -> bool {
    node.kind() == "expression_statement"
        && node.named_child_count() == 1
        && node
            .named_child(0)
            .is_some_and(|c| matches!(c.kind(), "string" | "concatenated_string"))
}

#[cfg(test)]
mod normalized_tests {
    use super::normalized;

    #[test]
    fn comments_docstrings_and_layout_do_not_count_but_blocks_do() {
        let a = "def f(x):\n    \"\"\"Doc.\"\"\"\n    # note\n    if x:\n        return g(1,\n                 2)\n    return 0\n";
        let b = "def f(x):\n\n    if x:  # why\n        return g(1, 2)\n    return 0\n";
        assert_eq!(normalized(a.as_bytes()), normalized(b.as_bytes()));
        let moved = "def f(x):\n    if x:\n        return g(1, 2)\n        return 0\n";
        assert_ne!(normalized(b.as_bytes()), normalized(moved.as_bytes()));
        let changed = "def f(x):\n    if not x:\n        return g(1, 2)\n    return 0\n";
        assert_ne!(normalized(b.as_bytes()), normalized(changed.as_bytes()));
        // A string that is a value, not a statement, counts.
        assert_ne!(normalized(b"x = 'a'\n"), normalized(b"x = 'b'\n"));
    }
}
