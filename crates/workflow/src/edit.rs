//! Stage 3's edits: blocks of file / original text / patched text, as the model writes them,
//! applied to a file the way a careful developer would.
//!
//! The original is matched line by line ignoring surrounding whitespace (models re-indent what
//! they quote); it must match exactly one place, or the model is told why not (nothing matched,
//! with the closest place; or several did, with their lines). The patched text is re-indented to
//! the matched place. A Python file must still parse afterwards. Every refusal is a sentence the
//! model can act on. Accepted edits become a unified diff that `git apply` takes.

use std::collections::BTreeMap;

/// One edit as the model wrote it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EditBlock {
    pub file: String,
    pub original: String,
    pub patched: String,
}

/// Why an edit was refused; `Display` is written for the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error(
        "No edit was found. Write each edit as <file>path</file> <original>the exact lines to \
         replace</original> <patched>the new lines</patched>."
    )]
    NoEdits,
    #[error("Edit {index}: {reason}")]
    Malformed { index: usize, reason: String },
    #[error("The file {file} does not exist in the repository.")]
    NoSuchFile { file: String },
    #[error(
        "The original text of the edit to {file} does not match the file.{}",
        closest.as_ref().map(|(line, text)| format!(" The closest lines start at line {line}:\n{text}")).unwrap_or_default()
    )]
    NotFound {
        file: String,
        closest: Option<(u32, String)>,
    },
    #[error(
        "The original text of the edit to {file} matches {} places (lines {}); include more \
         surrounding lines so that it matches one.",
        lines.len(),
        lines.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )]
    Ambiguous { file: String, lines: Vec<u32> },
    #[error(
        "After the edit, {file} no longer parses (syntax error near line {}); check indentation \
         and brackets of the patched text.",
        lines.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )]
    Syntax { file: String, lines: Vec<u32> },
}

/// Reads the edit blocks of a reply. Tags are `<file>`, `<original>`, `<patched>`; code fences
/// inside them are dropped.
pub fn parse_edits(reply: &str) -> Result<Vec<EditBlock>, EditError> {
    let mut edits = Vec::new();
    let mut rest = reply;
    while let Some((file, after)) = tag(rest, "file") {
        let index = edits.len() + 1;
        let (original, after) = tag(after, "original").ok_or_else(|| EditError::Malformed {
            index,
            reason: format!(
                "the edit to {} has no <original>...</original> block.",
                file.trim()
            ),
        })?;
        let (patched, after) = tag(after, "patched").ok_or_else(|| EditError::Malformed {
            index,
            reason: format!(
                "the edit to {} has no <patched>...</patched> block.",
                file.trim()
            ),
        })?;
        let file = file.trim().trim_start_matches("./").to_string();
        if file.is_empty() {
            return Err(EditError::Malformed {
                index,
                reason: "the <file> tag is empty.".into(),
            });
        }
        edits.push(EditBlock {
            file,
            original: unfence(original),
            patched: unfence(patched),
        });
        rest = after;
    }
    if edits.is_empty() {
        return Err(EditError::NoEdits);
    }
    Ok(edits)
}

/// The text between `<name>` and `</name>` and what follows the closing tag.
fn tag<'a>(text: &'a str, name: &str) -> Option<(&'a str, &'a str)> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some((&text[start..end], &text[end + close.len()..]))
}

/// Drops a surrounding ``` fence and the blank lines at both ends.
fn unfence(block: &str) -> String {
    let mut lines: Vec<&str> = block.lines().collect();
    while lines.first().is_some_and(|l| l.trim().is_empty()) {
        lines.remove(0);
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    if lines
        .first()
        .is_some_and(|l| l.trim_start().starts_with("```"))
    {
        lines.remove(0);
        if lines.last().is_some_and(|l| l.trim() == "```") {
            lines.pop();
        }
    }
    lines.join("\n")
}

/// Where an edit landed: 1-based inclusive lines of the replaced text in the old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start_line: u32,
    pub end_line: u32,
}

/// Applies one edit to `content`. An empty original on an empty file writes the patched text.
pub fn apply_edit(
    file: &str,
    content: &str,
    edit: &EditBlock,
) -> Result<(String, Span), EditError> {
    let crlf = content.contains("\r\n");
    let lines: Vec<&str> = content.lines().collect();
    let wanted: Vec<&str> = edit.original.lines().collect();
    if wanted.iter().all(|l| l.trim().is_empty()) {
        if lines.iter().all(|l| l.trim().is_empty()) {
            return Ok((
                finish(
                    edit.patched.lines().map(str::to_string).collect(),
                    crlf,
                    true,
                ),
                Span {
                    start_line: 1,
                    end_line: 1,
                },
            ));
        }
        return Err(EditError::NotFound {
            file: file.into(),
            closest: None,
        });
    }
    let starts: Vec<usize> = (0..lines.len().saturating_sub(wanted.len()) + 1)
        .filter(|&i| {
            i + wanted.len() <= lines.len()
                && wanted
                    .iter()
                    .zip(&lines[i..])
                    .all(|(w, l)| w.trim() == l.trim())
        })
        .collect();
    let start = match starts.as_slice() {
        [one] => *one,
        [] => {
            return Err(EditError::NotFound {
                file: file.into(),
                closest: closest(&lines, &wanted),
            });
        }
        many => {
            return Err(EditError::Ambiguous {
                file: file.into(),
                lines: many.iter().map(|i| *i as u32 + 1).collect(),
            });
        }
    };
    let end = start + wanted.len();
    let patched = reindent(
        &edit.patched,
        first_indent(&wanted),
        first_indent(&lines[start..end]),
    );
    let mut out: Vec<String> = lines[..start].iter().map(|l| l.to_string()).collect();
    out.extend(patched);
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    let trailing_newline = content.ends_with('\n') || content.is_empty();
    Ok((
        finish(out, crlf, trailing_newline),
        Span {
            start_line: start as u32 + 1,
            end_line: end as u32,
        },
    ))
}

fn finish(lines: Vec<String>, crlf: bool, trailing_newline: bool) -> String {
    let sep = if crlf { "\r\n" } else { "\n" };
    let mut s = lines.join(sep);
    if trailing_newline && !s.is_empty() {
        s.push_str(sep);
    }
    s
}

/// Leading whitespace of the first non-blank line.
fn first_indent<'a>(lines: &[&'a str]) -> &'a str {
    lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .map(|l| &l[..l.len() - l.trim_start().len()])
        .unwrap_or("")
}

fn width(indent: &str) -> usize {
    indent
        .chars()
        .fold(0, |w, c| if c == '\t' { (w / 8 + 1) * 8 } else { w + 1 })
}

/// Moves the patched text by the difference between where the model put the original and where
/// it really is, keeping the patched text's own relative indentation.
fn reindent(patched: &str, model_indent: &str, file_indent: &str) -> Vec<String> {
    let delta = width(file_indent) as isize - width(model_indent) as isize;
    let unit = if file_indent.contains('\t') {
        "\t"
    } else {
        " "
    };
    patched
        .lines()
        .map(|line| {
            if line.trim().is_empty() {
                return String::new();
            }
            let body = line.trim_start();
            let current = width(&line[..line.len() - body.len()]) as isize;
            let target = (current + delta).max(0) as usize;
            let indent = if unit == "\t" {
                "\t".repeat(target / 8) + &" ".repeat(target % 8)
            } else {
                " ".repeat(target)
            };
            format!("{indent}{body}")
        })
        .collect()
}

/// The place that shares the most trimmed lines with the wanted text, to show the model.
fn closest(lines: &[&str], wanted: &[&str]) -> Option<(u32, String)> {
    if lines.is_empty() {
        return None;
    }
    let span = wanted.len().min(lines.len());
    let (best, score) = (0..=lines.len() - span)
        .map(|i| {
            (
                i,
                wanted
                    .iter()
                    .zip(&lines[i..i + span])
                    .filter(|(w, l)| w.trim() == l.trim() && !w.trim().is_empty())
                    .count(),
            )
        })
        .max_by_key(|(i, s)| (*s, std::cmp::Reverse(*i)))?;
    (score > 0).then(|| (best as u32 + 1, lines[best..best + span].join("\n")))
}

/// Lines with syntax errors in `content` if it is Python; empty otherwise or when it parses.
/// tree-sitter's recovery accepts a block whose body is not indented (`def f():` followed by a
/// line at the same depth), which Python rejects; such headers are added by a line check.
pub fn syntax_errors(file: &str, content: &str) -> Vec<u32> {
    if !file.ends_with(".py") {
        return Vec::new();
    }
    let mut lines = ponder_code::python::outline(content.as_bytes()).error_lines;
    lines.extend(unindented_blocks(content));
    lines.sort_unstable();
    lines.dedup();
    lines
}

/// One-line block headers (`def`, `class`, `if`, ... ending in `:`) whose next code line is
/// not indented deeper. Lines inside triple-quoted strings can look like headers, which is why
/// callers compare counts before and after an edit rather than require none.
fn unindented_blocks(content: &str) -> Vec<u32> {
    const HEADERS: &[&str] = &[
        "def ",
        "async def ",
        "class ",
        "if ",
        "elif ",
        "else:",
        "for ",
        "async for ",
        "while ",
        "with ",
        "async with ",
        "try:",
        "except",
        "finally:",
    ];
    let indent = |l: &str| l.len() - l.trim_start().len();
    let code: Vec<(usize, &str)> = content
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    code.windows(2)
        .filter(|w| {
            let (header, next) = (w[0].1, w[1].1);
            let t = header.trim();
            HEADERS.iter().any(|h| t.starts_with(h))
                && t.ends_with(':')
                && indent(next) <= indent(header)
        })
        .map(|w| w[0].0 as u32 + 1)
        .collect()
}

/// A set of edits applied to the files of a tree, in memory.
#[derive(Debug, Clone, Default)]
pub struct EditedFiles {
    /// Path → (content before, content after).
    pub files: BTreeMap<String, (String, String)>,
    pub spans: Vec<(String, Span)>,
}

impl EditedFiles {
    /// Applies `edits` in order, reading files with `read` (None: the file does not exist).
    /// Later edits of one file see the earlier ones. The first refusal stops and is returned,
    /// so the model can fix that edit.
    pub fn apply(
        edits: &[EditBlock],
        mut read: impl FnMut(&str) -> Option<String>,
    ) -> Result<EditedFiles, EditError> {
        let mut out = EditedFiles::default();
        for edit in edits {
            let current = match out.files.get(&edit.file) {
                Some((_, after)) => after.clone(),
                None => match read(&edit.file) {
                    Some(c) => c,
                    None if edit.original.trim().is_empty() => String::new(),
                    None => {
                        return Err(EditError::NoSuchFile {
                            file: edit.file.clone(),
                        });
                    }
                },
            };
            let (after, span) = apply_edit(&edit.file, &current, edit)?;
            let before_errors = syntax_errors(&edit.file, &current);
            let errors = syntax_errors(&edit.file, &after);
            // Only errors the edit introduced count: a file that never parsed is not the model's doing.
            if errors.len() > before_errors.len() {
                return Err(EditError::Syntax {
                    file: edit.file.clone(),
                    lines: errors,
                });
            }
            out.files
                .entry(edit.file.clone())
                .or_insert_with(|| (current.clone(), String::new()))
                .1 = after;
            out.spans.push((edit.file.clone(), span));
        }
        Ok(out)
    }

    /// The unified diff of all edited files, with git's headers (`git apply` accepts it).
    pub fn diff(&self) -> String {
        let mut out = String::new();
        for (path, (before, after)) in &self.files {
            if before == after {
                continue;
            }
            let diff = similar::TextDiff::from_lines(before.as_str(), after.as_str());
            let (old, new) = if before.is_empty() {
                ("/dev/null".to_string(), format!("b/{path}"))
            } else {
                (format!("a/{path}"), format!("b/{path}"))
            };
            out.push_str(&format!("diff --git a/{path} b/{path}\n"));
            if before.is_empty() {
                out.push_str("new file mode 100644\n");
            }
            out.push_str(
                &diff
                    .unified_diff()
                    .context_radius(3)
                    .header(&old, &new)
                    .to_string(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "class Cart:\n    def total(self):\n        return sum(self.items)\n\n    def empty(self):\n        return not self.items\n";

    #[test]
    fn a_body_left_at_its_header_depth_is_a_syntax_error() {
        // tree-sitter alone accepts this; Python says "expected an indented block".
        let edit = EditBlock {
            file: "cart.py".into(),
            original: "        return sum(self.items)".into(),
            patched: "    return sum(self.items)".into(),
        };
        let err = EditedFiles::apply(&[edit], |_| Some(FILE.to_owned())).unwrap_err();
        assert!(
            matches!(err, EditError::Syntax { ref lines, .. } if lines.contains(&2)),
            "{err}"
        );
        assert!(syntax_errors("cart.py", FILE).is_empty());
    }

    #[test]
    fn edits_are_parsed_with_or_without_fences() {
        let reply = "Here is the fix.\n# modification 1\n<file>./shop/cart.py</file>\n<original>\n```python\n    def total(self):\n        return sum(self.items)\n```\n</original>\n<patched>\ndef total(self):\n    return sum(i.price for i in self.items)\n</patched>\n";
        let edits = parse_edits(reply).unwrap();
        assert_eq!(edits.len(), 1);
        assert_eq!(edits[0].file, "shop/cart.py");
        assert_eq!(
            edits[0].original,
            "    def total(self):\n        return sum(self.items)"
        );
        assert_eq!(parse_edits("no edits here"), Err(EditError::NoEdits));
        let err = parse_edits("<file>a.py</file><original>x</original>").unwrap_err();
        assert!(err.to_string().contains("has no <patched>"), "{err}");
    }

    #[test]
    fn originals_match_ignoring_indentation_and_patches_are_reindented() {
        // The model quoted the method without its class indentation.
        let edit = EditBlock {
            file: "cart.py".into(),
            original: "def total(self):\n    return sum(self.items)".into(),
            patched: "def total(self):\n    if not self.items:\n        return 0\n    return sum(self.items)".into(),
        };
        let (after, span) = apply_edit("cart.py", FILE, &edit).unwrap();
        assert_eq!(
            span,
            Span {
                start_line: 2,
                end_line: 3
            }
        );
        assert_eq!(
            after,
            "class Cart:\n    def total(self):\n        if not self.items:\n            return 0\n        return sum(self.items)\n\n    def empty(self):\n        return not self.items\n"
        );
    }

    #[test]
    fn refusals_say_what_to_do() {
        let ambiguous = EditBlock {
            file: "f.py".into(),
            original: "return 1".into(),
            patched: "return 2".into(),
        };
        let err = apply_edit(
            "f.py",
            "def a():\n    return 1\ndef b():\n    return 1\n",
            &ambiguous,
        )
        .unwrap_err();
        assert_eq!(
            err,
            EditError::Ambiguous {
                file: "f.py".into(),
                lines: vec![2, 4]
            }
        );
        assert!(err.to_string().contains("include more surrounding lines"));
        let missing = EditBlock {
            file: "cart.py".into(),
            original: "def total(self):\n    return max(self.items)".into(),
            patched: "x".into(),
        };
        let err = apply_edit("cart.py", FILE, &missing).unwrap_err();
        assert!(
            err.to_string().contains("closest lines start at line 2"),
            "{err}"
        );
        let breaks = EditBlock {
            file: "cart.py".into(),
            original: "return not self.items".into(),
            patched: "return (not self.items".into(),
        };
        let err = EditedFiles::apply(&[breaks], |_| Some(FILE.to_string())).unwrap_err();
        assert!(matches!(err, EditError::Syntax { .. }), "{err}");
        let err = EditedFiles::apply(&[missing], |_| None).unwrap_err();
        assert_eq!(
            err,
            EditError::NoSuchFile {
                file: "cart.py".into()
            }
        );
    }
}
