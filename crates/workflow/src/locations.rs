//! Code locations as the model names them (`<location><file>..</file><class>..</class>
//! <method>..</method></location>`, or a verbatim snippet) and their resolution to real code in
//! the index. A location that names nothing real resolves to an error message for the model.

use ponder_code::search::slice_lines;
use ponder_code::{CodeIndex, SymbolKind};
use serde::{Deserialize, Serialize};

/// A location the model named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
    /// The model's reason, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A stretch of real code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeSpan {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualname: Option<String>,
    pub text: String,
}

/// Lines shown around a snippet that lies outside any definition.
const SNIPPET_CONTEXT: u32 = 5;
/// Longest span shown whole; a longer class shows its first lines.
const MAX_SPAN_LINES: u32 = 300;

/// The text between `<tag>` and `</tag>`, first occurrence, trimmed.
pub fn tagged<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    Some(text[start..end].trim())
}

/// Every `<location>` inside the last `<outer>` block of `reply`.
pub fn parse_locations(reply: &str, outer: &str) -> Vec<Location> {
    let open = format!("<{outer}>");
    let Some(at) = reply.rfind(&open) else {
        return Vec::new();
    };
    let block = &reply[at..];
    let block = match block.find(&format!("</{outer}>")) {
        Some(end) => &block[..end],
        None => block,
    };
    let field = |loc: &str, tag: &str| {
        tagged(loc, tag)
            .map(str::to_owned)
            .filter(|s| !s.is_empty())
    };
    block
        .split("<location>")
        .skip(1)
        .filter_map(|part| {
            let loc = part.split("</location>").next().unwrap_or(part);
            Some(Location {
                file: field(loc, "file")?,
                class: field(loc, "class"),
                method: field(loc, "method").or_else(|| field(loc, "function")),
                snippet: field(loc, "snippet"),
                why: field(loc, "why"),
            })
        })
        .collect()
}

/// The code `location` names, or a message saying why it names nothing.
pub fn resolve(index: &CodeIndex, location: &Location) -> Result<CodeSpan, String> {
    let file = index.resolve_file(&location.file)?;
    let path = index.file(file).path.clone();
    let content = index
        .content(file)
        .ok_or_else(|| format!("{path} could not be read"))?;
    let span = |start: u32, end: u32, qualname: Option<String>| {
        let end = end.min(start + MAX_SPAN_LINES - 1);
        CodeSpan {
            path: path.clone(),
            start_line: start,
            end_line: end,
            qualname,
            text: slice_lines(&content, start, end),
        }
    };
    let in_file = |name: &str| {
        index
            .symbols_named(name)
            .filter(|r| r.file == file)
            .map(|r| index.symbol(r).clone())
            .collect::<Vec<_>>()
    };
    match (&location.class, &location.method) {
        (Some(class), Some(method)) => {
            let wanted = format!("{class}.{method}");
            in_file(method)
                .into_iter()
                .find(|s| s.qualname == wanted || s.qualname.ends_with(&format!(".{wanted}")))
                .map(|s| span(s.start_line, s.end_line, Some(s.qualname)))
                .ok_or_else(|| format!("there is no method {method} in class {class} in {path}"))
        }
        (None, Some(method)) => {
            let found = in_file(method);
            found
                .iter()
                .find(|s| s.kind == SymbolKind::Function && s.parent.is_none())
                .or_else(|| found.first())
                .map(|s| span(s.start_line, s.end_line, Some(s.qualname.clone())))
                .ok_or_else(|| format!("there is no function or method {method} in {path}"))
        }
        (Some(class), None) => in_file(class)
            .into_iter()
            .find(|s| s.kind == SymbolKind::Class)
            .map(|s| span(s.start_line, s.end_line, Some(s.qualname)))
            .ok_or_else(|| format!("there is no class {class} in {path}")),
        (None, None) => {
            let Some(snippet) = location.snippet.as_deref() else {
                return Err(format!(
                    "the location in {path} names no class, method or snippet"
                ));
            };
            let text = String::from_utf8_lossy(&content);
            let first = snippet
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("");
            let line = text
                .lines()
                .position(|l| !first.is_empty() && l.trim() == first)
                .or_else(|| {
                    text.lines()
                        .position(|l| !first.is_empty() && l.contains(first))
                })
                .ok_or_else(|| format!("the snippet {first:?} is not in {path}"))?
                as u32
                + 1;
            Ok(match index.enclosing(file, line) {
                Some(r) => {
                    let s = index.symbol(r);
                    span(s.start_line, s.end_line, Some(s.qualname.clone()))
                }
                None => span(
                    line.saturating_sub(SNIPPET_CONTEXT).max(1),
                    line + SNIPPET_CONTEXT,
                    None,
                ),
            })
        }
    }
}

/// Resolves every location, keeping distinct spans in order; the misses are returned as
/// messages.
pub fn resolve_all(index: &CodeIndex, locations: &[Location]) -> (Vec<CodeSpan>, Vec<String>) {
    let mut spans: Vec<CodeSpan> = Vec::new();
    let mut misses = Vec::new();
    for loc in locations {
        match resolve(index, loc) {
            Ok(s) => {
                let contained = spans.iter().any(|o| {
                    o.path == s.path && o.start_line <= s.start_line && s.end_line <= o.end_line
                });
                if !contained {
                    spans.retain(|o| {
                        !(o.path == s.path
                            && s.start_line <= o.start_line
                            && o.end_line <= s.end_line)
                    });
                    spans.push(s);
                }
            }
            Err(m) => misses.push(m),
        }
    }
    (spans, misses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_read_from_the_last_block() {
        let reply = "I think <locations>old</locations> hmm.\n<locations>\n\
            <location><file>a.py</file><class>A</class><method>m</method></location>\n\
            <location><file>b.py</file><function>f</function><why>bad</why></location>\n\
            <location><class>NoFile</class></location>\n</locations>";
        let locs = parse_locations(reply, "locations");
        assert_eq!(locs.len(), 2);
        assert_eq!(locs[0].class.as_deref(), Some("A"));
        assert_eq!(locs[1].method.as_deref(), Some("f"));
        assert_eq!(locs[1].why.as_deref(), Some("bad"));
    }
}
