//! A definition scanner for Python: classes, functions and methods with their `ast` line spans,
//! found by a single pass of a tokenizer-level state machine instead of a full parse.
//!
//! Why it exists beside tree-sitter: profiling the cold index of Django showed nearly all of the
//! time inside tree-sitter's parser (7 MB/s a core), which kept indexing at 3 to 6 times the speed
//! of Python's own `ast` when the goal is 10. Definitions and their extents only need what
//! Python's tokenizer knows (strings, comments, brackets, line joins, indentation), so this pass
//! runs at tokenizer speed. The exactness test holds it, and the tree-sitter outline, to `ast` on
//! real projects; tree-sitter still renders skeletons and signatures, where structure matters.
//!
//! Rules, as CPython's tokenizer has them: a logical line ends at a newline outside brackets and
//! strings that is not escaped by a backslash; blank and comment-only lines do not count for
//! indentation; a tab advances to the next multiple of 8, a form feed resets the column; string
//! prefixes combine r, b, u, f and t; f-strings may nest strings of any quote inside replacement
//! fields (PEP 701). A definition ends at the last code token of the last logical line indented
//! deeper than it, or at the end of its own line when the body follows the colon.

use crate::symbol::{Symbol, kind_and_qualname};

/// Definitions of `source` in source order, plus the lines of lexical errors (unterminated
/// strings or brackets, a stray closing bracket), at most five.
pub fn scan(source: &[u8]) -> (Vec<Symbol>, Vec<u32>) {
    let mut s = Scanner {
        src: source,
        pos: 0,
        line: 1,
        errors: Vec::new(),
    };
    if s.src.starts_with(b"\xEF\xBB\xBF") {
        s.pos = 3;
    }
    s.run()
}

struct Scanner<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
    errors: Vec<u32>,
}

/// A definition whose block is still open.
struct Open {
    symbol: usize,
    indent: u32,
}

/// Closes the open definitions whose block a line at `indent` is not part of (all of them for
/// `None`, at the end of the file); each passes its end on to the one enclosing it.
fn close_blocks(open: &mut Vec<Open>, symbols: &mut [Symbol], indent: Option<u32>) {
    while let Some(top) = open.last() {
        if indent.is_some_and(|i| top.indent < i) {
            break;
        }
        let closed = open.pop().expect("checked non-empty");
        let end = symbols[closed.symbol].end_line;
        extend_innermost(open, symbols, end);
    }
}

/// Code up to `line` belongs to the innermost open definition.
fn extend_innermost(open: &[Open], symbols: &mut [Symbol], line: u32) {
    if let Some(top) = open.last() {
        let s = &mut symbols[top.symbol];
        s.end_line = s.end_line.max(line);
    }
}

enum Head {
    Decorator,
    Def {
        is_class: bool,
        is_async: bool,
        name: String,
    },
    Other,
}

/// What the rest of a logical line held.
struct LineEnd {
    /// Line on which the last code token ended.
    last_code_line: u32,
    /// For a definition header: line of the colon that ends it, and whether code follows it.
    colon_line: Option<u32>,
    body_inline: bool,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

impl<'a> Scanner<'a> {
    fn peek(&self, offset: usize) -> u8 {
        *self.src.get(self.pos + offset).unwrap_or(&0)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn error(&mut self, line: u32) {
        if self.errors.len() < 5 && !self.errors.contains(&line) {
            self.errors.push(line);
        }
    }

    fn run(mut self) -> (Vec<Symbol>, Vec<u32>) {
        let mut symbols: Vec<Symbol> = Vec::new();
        let mut open: Vec<Open> = Vec::new();
        let mut decorator_line: Option<u32> = None;
        while !self.at_end() {
            // Start of a physical line: measure indentation, skip blank and comment-only lines.
            let mut indent = 0u32;
            loop {
                match self.peek(0) {
                    b' ' => indent += 1,
                    b'\t' => indent = (indent / 8 + 1) * 8,
                    b'\x0c' => indent = 0,
                    _ => break,
                }
                self.pos += 1;
            }
            match self.peek(0) {
                _ if self.at_end() => break,
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    continue;
                }
                b'\r' if self.peek(1) == b'\n' => {
                    self.pos += 2;
                    self.line += 1;
                    continue;
                }
                b'#' => {
                    self.skip_comment();
                    continue;
                }
                b'\\' if matches!(self.peek(1), b'\n' | b'\r') => {
                    // A backslash-joined line that starts with the join: still the same
                    // physical indentation context, treat as blank.
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            let start_line = self.line;
            // Close the definitions this line is not inside of.
            close_blocks(&mut open, &mut symbols, Some(indent));
            let head = self.head();
            let is_def = matches!(head, Head::Def { .. });
            let end = self.rest_of_logical_line(is_def);
            match head {
                Head::Decorator => {
                    decorator_line.get_or_insert(start_line);
                }
                Head::Def {
                    is_class,
                    is_async,
                    name,
                } => {
                    let parent = open.last().map(|o| o.symbol);
                    let parent_symbol = parent.map(|p| &symbols[p]);
                    let (kind, qualname) = kind_and_qualname(is_class, &name, parent_symbol);
                    symbols.push(Symbol {
                        kind,
                        name,
                        qualname,
                        start_line: decorator_line.take().unwrap_or(start_line),
                        end_line: end.last_code_line,
                        header_end_line: end.colon_line.unwrap_or(end.last_code_line),
                        parent: parent.map(|p| p as u32),
                        is_async,
                    });
                    if !end.body_inline {
                        open.push(Open {
                            symbol: symbols.len() - 1,
                            indent,
                        });
                    } else {
                        extend_innermost(&open, &mut symbols, end.last_code_line);
                    }
                }
                Head::Other => {
                    decorator_line = None;
                    extend_innermost(&open, &mut symbols, end.last_code_line);
                }
            }
        }
        close_blocks(&mut open, &mut symbols, None);
        self.errors.sort_unstable();
        (symbols, self.errors)
    }

    /// Reads the first word of a logical line; leaves the position after it for definitions and
    /// decorators, and at the line start otherwise.
    fn head(&mut self) -> Head {
        if self.peek(0) == b'@' {
            return Head::Decorator;
        }
        let start = self.pos;
        let word = self.ident();
        let (is_class, is_async) = match word {
            b"class" => (true, false),
            b"def" => (false, false),
            b"async" => {
                self.skip_inline_space();
                if self.ident() == b"def" {
                    (false, true)
                } else {
                    self.pos = start;
                    return Head::Other;
                }
            }
            _ => {
                self.pos = start;
                return Head::Other;
            }
        };
        self.skip_inline_space();
        let name_start = self.pos;
        let name = self.ident();
        if name.is_empty() {
            self.pos = name_start;
            return Head::Other;
        }
        let name = String::from_utf8_lossy(name).into_owned();
        Head::Def {
            is_class,
            is_async,
            name,
        }
    }

    fn ident(&mut self) -> &'a [u8] {
        let start = self.pos;
        while !self.at_end() && is_ident_byte(self.src[self.pos]) {
            self.pos += 1;
        }
        &self.src[start..self.pos]
    }

    fn skip_inline_space(&mut self) {
        loop {
            match self.peek(0) {
                b' ' | b'\t' | b'\x0c' => self.pos += 1,
                b'\\' if self.peek(1) == b'\n' => {
                    self.pos += 2;
                    self.line += 1;
                }
                b'\\' if self.peek(1) == b'\r' && self.peek(2) == b'\n' => {
                    self.pos += 3;
                    self.line += 1;
                }
                _ => break,
            }
        }
    }

    fn skip_comment(&mut self) {
        while !self.at_end() && self.src[self.pos] != b'\n' {
            self.pos += 1;
        }
    }

    /// Consumes tokens up to and including the newline that ends the logical line.
    fn rest_of_logical_line(&mut self, header: bool) -> LineEnd {
        let mut depth: Vec<(u8, u32)> = Vec::new();
        let mut end = LineEnd {
            last_code_line: self.line,
            colon_line: None,
            body_inline: false,
        };
        // The first word (keyword and name) was consumed by `head` on this line.
        while !self.at_end() {
            let b = self.src[self.pos];
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    if depth.is_empty() {
                        return end;
                    }
                }
                b' ' | b'\t' | b'\x0c' | b'\r' => self.pos += 1,
                b'#' => self.skip_comment(),
                b'\\' => {
                    self.pos += 1;
                    if self.peek(0) == b'\r' && self.peek(1) == b'\n' {
                        self.pos += 2;
                        self.line += 1;
                    } else if self.peek(0) == b'\n' {
                        self.pos += 1;
                        self.line += 1;
                    }
                }
                b'(' | b'[' | b'{' => {
                    depth.push((b, self.line));
                    self.pos += 1;
                    self.code(&mut end, header);
                }
                b')' | b']' | b'}' => {
                    if depth.pop().is_none() {
                        self.error(self.line);
                    }
                    self.pos += 1;
                    self.code(&mut end, header);
                }
                b':' if header && depth.is_empty() && end.colon_line.is_none() => {
                    end.colon_line = Some(self.line);
                    end.last_code_line = self.line;
                    self.pos += 1;
                }
                b'\'' | b'"' => {
                    self.code(&mut end, header);
                    self.string(0);
                    end.last_code_line = self.line;
                }
                _ if is_ident_byte(b) => {
                    self.code(&mut end, header);
                    let word = self.ident();
                    if is_string_prefix(word) && matches!(self.peek(0), b'\'' | b'"') {
                        let flags = prefix_flags(word);
                        self.string(flags);
                    }
                    end.last_code_line = self.line;
                }
                _ => {
                    self.code(&mut end, header);
                    self.pos += 1;
                }
            }
        }
        if let Some((_, line)) = depth.first() {
            self.error(*line);
        }
        end
    }

    /// Notes a code token at the current position.
    fn code(&mut self, end: &mut LineEnd, header: bool) {
        end.last_code_line = self.line;
        if header && end.colon_line.is_some() {
            end.body_inline = true;
        }
    }

    /// Consumes a string literal whose opening quote is at the position. `flags` says raw and
    /// formatted. Returns with the position after the closing quote.
    fn string(&mut self, flags: u8) {
        let formatted = flags & FORMATTED != 0;
        let quote = self.src[self.pos];
        let start_line = self.line;
        let triple = self.peek(1) == quote && self.peek(2) == quote;
        self.pos += if triple { 3 } else { 1 };
        while !self.at_end() {
            let b = self.src[self.pos];
            match b {
                b'\\' => {
                    // Even in raw strings a backslash keeps the next character (a quote does not
                    // close the string); a backslash-newline continues a single-quoted string.
                    self.pos += 1;
                    match self.peek(0) {
                        b'\n' => {
                            self.pos += 1;
                            self.line += 1;
                        }
                        b'\r' if self.peek(1) == b'\n' => {
                            self.pos += 2;
                            self.line += 1;
                        }
                        // In an f-string, raw or not, a brace after a backslash still opens or
                        // closes a field.
                        b'{' | b'}' if formatted => {}
                        _ => self.pos += 1,
                    }
                }
                b'\n' => {
                    if !triple {
                        self.error(start_line);
                        return;
                    }
                    self.pos += 1;
                    self.line += 1;
                }
                b'{' if formatted => {
                    if self.peek(1) == b'{' {
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                        self.replacement_field(quote, triple);
                    }
                }
                _ if b == quote => {
                    if !triple {
                        self.pos += 1;
                        return;
                    }
                    if self.peek(1) == quote && self.peek(2) == quote {
                        self.pos += 3;
                        return;
                    }
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
        self.error(start_line);
    }

    /// Consumes an f-string replacement field after its `{`, up to and including its `}`:
    /// an expression (strings of any quote may nest in it), then an optional `!conversion` and
    /// `:format spec`, which may hold nested fields.
    fn replacement_field(&mut self, outer_quote: u8, outer_triple: bool) {
        let mut depth = 0u32;
        while !self.at_end() {
            let b = self.src[self.pos];
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                }
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    self.pos += 1;
                }
                b')' | b']' => {
                    depth = depth.saturating_sub(1);
                    self.pos += 1;
                }
                b'}' => {
                    self.pos += 1;
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                }
                b':' if depth == 0 => {
                    self.pos += 1;
                    self.format_spec(outer_quote, outer_triple);
                    return;
                }
                b'#' if outer_triple => self.skip_comment(),
                b'\'' | b'"' => {
                    // Before PEP 701 the outer quote could not appear here, so a matching quote
                    // in an older file can only mean the end of the outer string (broken field).
                    if b == outer_quote && !outer_triple && !self.nested_quote_plausible(b) {
                        return;
                    }
                    self.string(0);
                }
                _ if is_ident_byte(b) => {
                    let word = self.ident();
                    if is_string_prefix(word) && matches!(self.peek(0), b'\'' | b'"') {
                        let flags = prefix_flags(word);
                        self.string(flags);
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// A quote equal to the enclosing single-quoted f-string's quote, met inside a replacement
    /// field: under PEP 701 it opens a nested string, which then closes on the same line.
    fn nested_quote_plausible(&self, quote: u8) -> bool {
        let rest = &self.src[self.pos + 1..];
        let line_end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        memchr::memchr(quote, &rest[..line_end]).is_some()
    }

    /// Consumes a format spec up to and including the `}` that closes its field.
    fn format_spec(&mut self, outer_quote: u8, outer_triple: bool) {
        while !self.at_end() {
            match self.src[self.pos] {
                b'{' => {
                    self.pos += 1;
                    self.replacement_field(outer_quote, outer_triple);
                }
                b'}' => {
                    self.pos += 1;
                    return;
                }
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                }
                b if b == outer_quote && !outer_triple => return,
                _ => self.pos += 1,
            }
        }
    }
}

const RAW: u8 = 1;
const FORMATTED: u8 = 2;

fn is_string_prefix(word: &[u8]) -> bool {
    if word.is_empty() || word.len() > 2 {
        return false;
    }
    let mut seen = 0u8;
    for &c in word {
        let bit = match c.to_ascii_lowercase() {
            b'r' => 1,
            b'b' => 2,
            b'u' => 4,
            b'f' => 8,
            b't' => 16,
            _ => return false,
        };
        if seen & bit != 0 {
            return false;
        }
        seen |= bit;
    }
    // u combines with nothing; b not with f or t.
    let lone_u = seen & 4 == 0 || word.len() == 1;
    let bytes_not_formatted = seen & 2 == 0 || seen & (8 | 16) == 0;
    lone_u && bytes_not_formatted
}

fn prefix_flags(word: &[u8]) -> u8 {
    let mut flags = 0;
    for &c in word {
        match c.to_ascii_lowercase() {
            b'r' => flags |= RAW,
            b'f' | b't' => flags |= FORMATTED,
            _ => {}
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(src: &str) -> Vec<(String, &'static str, u32, u32, u32)> {
        scan(src.as_bytes())
            .0
            .into_iter()
            .map(|s| {
                (
                    s.qualname,
                    s.kind.as_str(),
                    s.start_line,
                    s.end_line,
                    s.header_end_line,
                )
            })
            .collect()
    }

    #[test]
    fn strings_brackets_and_continuations_do_not_confuse_blocks() {
        let src = r#"
@dec(
  1)
class A(B):
    '''doc
def not_a_def():
'''
    x = f"{'a'}" + f'{d["k"]:>{w}}' + rb'\'' + "\"def\""

    async def m(self, a=(
1, 2)):  # comment
        return (a,
                b) \
            + 1
    # trailing comment

def g(): return 1
class C: pass
def h(x: int = {1: 2}) -> dict:
    s = """
x"""
"#;
        assert_eq!(
            spans(src),
            vec![
                // The values Python's ast reports for this source (checked with CPython 3.13).
                ("A".into(), "class", 2, 14, 4),
                ("A.m".into(), "method", 10, 14, 11),
                ("g".into(), "function", 17, 17, 17),
                ("C".into(), "class", 18, 18, 18),
                ("h".into(), "function", 19, 21, 19),
            ]
        );
        assert!(scan(src.as_bytes()).1.is_empty());
    }

    #[test]
    fn nested_functions_tabs_and_pep701() {
        let src = "def f():\n\tdef g():\n\t\tpass\n\tclass K:\n\t\tdef k(self): pass\n\treturn f\"{f'{\"x\"}'}\"\nz = 1\n";
        assert_eq!(
            spans(src),
            vec![
                ("f".into(), "function", 1, 6, 1),
                ("f.<locals>.g".into(), "function", 2, 3, 2),
                ("f.<locals>.K".into(), "class", 4, 5, 4),
                ("f.<locals>.K.k".into(), "method", 5, 5, 5),
            ]
        );
    }

    #[test]
    fn broken_input_never_panics() {
        for src in [
            "def",
            "def (",
            "class A(:\n",
            "x = '''",
            "f'{",
            "@",
            "async",
            "\\",
            "def f():\n  x = (\n",
        ] {
            let _ = scan(src.as_bytes());
        }
        assert_eq!(scan(b"x = (1,\n").1, vec![1]);
        assert_eq!(scan(b"s = 'abc\n").1, vec![1]);
    }
}
