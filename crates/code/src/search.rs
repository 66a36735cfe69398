//! The code-search tools of stage 2, with the semantics of the AutoCodeRover lineage: classes show
//! their signature, methods and `*_in_file` / `*_in_class` lookups show full code, exact-text
//! search shows a few lines of context and the enclosing definition, too many matches collapse
//! into a list of files, and a miss says clearly what was not found (with near names when there
//! are some). Every tool returns text for the model and structured hits for the program.

use crate::index::{CodeIndex, SymbolRef};
use crate::skeleton::{SkeletonOptions, class_signature};
use crate::symbol::SymbolKind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One tool call, with the argument names the AutoCodeRover family uses (models trained on those
/// traces call them this way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "snake_case")]
pub enum ToolCall {
    SearchClass {
        class_name: String,
    },
    SearchClassInFile {
        class_name: String,
        file_name: String,
    },
    SearchMethod {
        method_name: String,
    },
    SearchMethodInClass {
        method_name: String,
        class_name: String,
    },
    SearchMethodInFile {
        method_name: String,
        file_name: String,
    },
    SearchCode {
        code_str: String,
    },
    SearchCodeInFile {
        code_str: String,
        file_name: String,
    },
}

/// A tool as offered to the model: name, what it does, its parameters in order.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: &'static [(&'static str, &'static str)],
}

const CLASS: (&str, &str) = ("class_name", "Name of the class, e.g. QuerySet");
const METHOD: (&str, &str) = ("method_name", "Name of the method or function, e.g. filter");
const FILE: (&str, &str) = (
    "file_name",
    "Path of the file relative to the repository root; a unique ending such as models/query.py is enough",
);
const CODE: (&str, &str) = (
    "code_str",
    "Exact text to look for, e.g. a line of code or an error message",
);

pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "search_class",
        description: "Find classes by name; shows each class's signature (header, class attributes, method headers).",
        parameters: &[CLASS],
    },
    ToolSpec {
        name: "search_class_in_file",
        description: "Show the full code of a class defined in one file.",
        parameters: &[CLASS, FILE],
    },
    ToolSpec {
        name: "search_method",
        description: "Find functions and methods by name anywhere; shows their code.",
        parameters: &[METHOD],
    },
    ToolSpec {
        name: "search_method_in_class",
        description: "Show the code of a method of a class.",
        parameters: &[METHOD, CLASS],
    },
    ToolSpec {
        name: "search_method_in_file",
        description: "Show the code of a function or method defined in one file.",
        parameters: &[METHOD, FILE],
    },
    ToolSpec {
        name: "search_code",
        description: "Find an exact piece of text in the code; shows each match with a few lines around it and the function or class it is in.",
        parameters: &[CODE],
    },
    ToolSpec {
        name: "search_code_in_file",
        description: "Find an exact piece of text in one file.",
        parameters: &[CODE, FILE],
    },
];

impl ToolSpec {
    /// The function-calling schema (OpenAI `tools` entry) of this tool.
    pub fn json_schema(&self) -> Value {
        let properties: serde_json::Map<String, Value> = self
            .parameters
            .iter()
            .map(|(n, d)| (n.to_string(), json!({"type": "string", "description": d})))
            .collect();
        let required: Vec<&str> = self.parameters.iter().map(|(n, _)| *n).collect();
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {"type": "object", "properties": properties, "required": required},
            }
        })
    }
}

/// Why a requested call could not be made; the message is written for the model to correct it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CallError(pub String);

impl ToolCall {
    /// Builds a call from a tool name and its arguments: a JSON object with the parameter names,
    /// or a JSON array of positional values.
    pub fn parse(name: &str, args: &Value) -> Result<ToolCall, CallError> {
        let spec = TOOLS.iter().find(|t| t.name == name).ok_or_else(|| {
            let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
            CallError(format!(
                "There is no tool named {name:?}. The tools are: {}.",
                names.join(", ")
            ))
        })?;
        let values: Vec<String> = match args {
            Value::Object(map) => {
                let mut out = Vec::new();
                for (param, _) in spec.parameters {
                    match map.get(*param) {
                        Some(Value::String(s)) => out.push(s.clone()),
                        Some(other) if !other.is_null() => out.push(other.to_string()),
                        _ => return Err(missing(spec, param)),
                    }
                }
                if let Some(extra) = map
                    .keys()
                    .find(|k| !spec.parameters.iter().any(|(p, _)| p == k))
                {
                    return Err(CallError(format!(
                        "{name} has no parameter {extra:?}; {}",
                        usage(spec)
                    )));
                }
                out
            }
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect(),
            Value::String(s) => vec![s.clone()],
            _ => {
                return Err(CallError(format!(
                    "arguments of {name} must be an object; {}",
                    usage(spec)
                )));
            }
        };
        ToolCall::from_values(spec, values)
    }

    /// Builds a call from positional strings (the command line).
    pub fn from_args(name: &str, args: &[String]) -> Result<ToolCall, CallError> {
        ToolCall::parse(
            name,
            &Value::Array(args.iter().cloned().map(Value::String).collect()),
        )
    }

    fn from_values(spec: &ToolSpec, values: Vec<String>) -> Result<ToolCall, CallError> {
        if values.len() != spec.parameters.len() {
            return Err(CallError(format!(
                "{} takes {} argument(s), got {}; {}",
                spec.name,
                spec.parameters.len(),
                values.len(),
                usage(spec)
            )));
        }
        if let Some(i) = values.iter().position(|v| v.trim().is_empty()) {
            return Err(CallError(format!(
                "{} needs a non-empty {}; {}",
                spec.name,
                spec.parameters[i].0,
                usage(spec)
            )));
        }
        let mut v = values.into_iter();
        let mut next = || v.next().unwrap_or_default();
        Ok(match spec.name {
            "search_class" => ToolCall::SearchClass { class_name: next() },
            "search_class_in_file" => ToolCall::SearchClassInFile {
                class_name: next(),
                file_name: next(),
            },
            "search_method" => ToolCall::SearchMethod {
                method_name: next(),
            },
            "search_method_in_class" => ToolCall::SearchMethodInClass {
                method_name: next(),
                class_name: next(),
            },
            "search_method_in_file" => ToolCall::SearchMethodInFile {
                method_name: next(),
                file_name: next(),
            },
            "search_code" => ToolCall::SearchCode { code_str: next() },
            _ => ToolCall::SearchCodeInFile {
                code_str: next(),
                file_name: next(),
            },
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            ToolCall::SearchClass { .. } => "search_class",
            ToolCall::SearchClassInFile { .. } => "search_class_in_file",
            ToolCall::SearchMethod { .. } => "search_method",
            ToolCall::SearchMethodInClass { .. } => "search_method_in_class",
            ToolCall::SearchMethodInFile { .. } => "search_method_in_file",
            ToolCall::SearchCode { .. } => "search_code",
            ToolCall::SearchCodeInFile { .. } => "search_code_in_file",
        }
    }
}

fn usage(spec: &ToolSpec) -> String {
    let params: Vec<&str> = spec.parameters.iter().map(|(n, _)| *n).collect();
    format!("call it as {}({}).", spec.name, params.join(", "))
}

fn missing(spec: &ToolSpec, param: &str) -> CallError {
    CallError(format!(
        "{} needs the argument {param}; {}",
        spec.name,
        usage(spec)
    ))
}

/// How much a tool shows before it collapses to a list.
#[derive(Debug, Clone)]
pub struct SearchLimits {
    /// Matches shown in full; beyond this, a list of files.
    pub show: usize,
    /// Lines of context around an exact-text match.
    pub context_lines: u32,
    /// Code longer than this is cut (a class shows its signature instead).
    pub max_code_lines: u32,
    /// Files listed when matches collapse.
    pub max_files_listed: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            show: 3,
            context_lines: 3,
            max_code_lines: 300,
            max_files_listed: 30,
        }
    }
}

/// One structured result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hit {
    pub file: String,
    pub start_line: u32,
    pub end_line: u32,
    /// The definition found, or the one enclosing an exact-text match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qualname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<SymbolKind>,
}

/// What a tool returns.
#[derive(Debug, Clone, Serialize)]
pub struct ToolOutput {
    pub tool: &'static str,
    pub text: String,
    pub found: bool,
    /// Every match, also those the text collapsed into a file list.
    pub hits: Vec<Hit>,
}

impl CodeIndex {
    /// Runs one tool call.
    pub fn run_tool(&self, call: &ToolCall, limits: &SearchLimits) -> ToolOutput {
        let tool = call.name();
        let result = match call {
            ToolCall::SearchClass { class_name } => Ok(self.search_class(class_name, None, limits)),
            ToolCall::SearchClassInFile {
                class_name,
                file_name,
            } => self
                .resolve_file(file_name)
                .map(|f| self.search_class(class_name, Some(f), limits)),
            ToolCall::SearchMethod { method_name } => {
                Ok(self.search_method(method_name, None, None, limits))
            }
            ToolCall::SearchMethodInClass {
                method_name,
                class_name,
            } => Ok(self.search_method(method_name, Some(class_name), None, limits)),
            ToolCall::SearchMethodInFile {
                method_name,
                file_name,
            } => self
                .resolve_file(file_name)
                .map(|f| self.search_method(method_name, None, Some(f), limits)),
            ToolCall::SearchCode { code_str } => Ok(self.search_code(code_str, None, limits)),
            ToolCall::SearchCodeInFile {
                code_str,
                file_name,
            } => self
                .resolve_file(file_name)
                .map(|f| self.search_code(code_str, Some(f), limits)),
        };
        let (text, hits) = result.unwrap_or_else(|message| (message, Vec::new()));
        ToolOutput {
            tool,
            found: !hits.is_empty(),
            text,
            hits,
        }
    }

    /// Finds a visible file from what the model wrote: the exact relative path, an absolute path
    /// inside the root, or a unique ending at a `/` boundary.
    pub fn resolve_file(&self, name: &str) -> Result<u32, String> {
        let root = self.root().to_string_lossy();
        let mut wanted = name.trim().trim_start_matches("./");
        if let Some(rest) = wanted.strip_prefix(root.as_ref()) {
            wanted = rest;
        }
        let wanted = wanted.trim_start_matches('/');
        if let Some(i) = self.file_index(wanted) {
            return if self.is_visible(i) {
                Ok(i)
            } else {
                Err(format!(
                    "The file {wanted} is not searchable here (test, documentation, excluded or not source code)."
                ))
            };
        }
        let suffix = format!("/{wanted}");
        let matches: Vec<u32> = self
            .visible_files()
            .filter(|i| self.file(*i).path.ends_with(&suffix))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => {
                let base = wanted.rsplit('/').next().unwrap_or(wanted);
                let near: Vec<&str> = self
                    .visible_files()
                    .map(|i| self.file(i).path.as_str())
                    .filter(|p| p.rsplit('/').next() == Some(base))
                    .take(5)
                    .collect();
                let mut msg = format!("Could not find the file {wanted} in the repository.");
                if !near.is_empty() {
                    let _ = write!(msg, " Files with that name: {}.", near.join(", "));
                }
                Err(msg)
            }
            many => {
                let paths: Vec<&str> = many
                    .iter()
                    .take(10)
                    .map(|i| self.file(*i).path.as_str())
                    .collect();
                Err(format!(
                    "{wanted} matches several files: {}. Give more of the path.",
                    paths.join(", ")
                ))
            }
        }
    }

    /// Symbols named `name` (or whose qualname ends with a dotted `name`), of the wanted kinds,
    /// optionally in one file.
    fn find_symbols(&self, name: &str, classes: bool, file: Option<u32>) -> Vec<SymbolRef> {
        let (simple, dotted) = match name.rsplit_once('.') {
            Some((_, last)) => (last, Some(format!(".{name}"))),
            None => (name, None),
        };
        self.symbols_named(simple)
            .filter(|r| file.is_none_or(|f| r.file == f))
            .filter(|r| {
                let s = self.symbol(*r);
                (s.kind == SymbolKind::Class) == classes
                    && dotted.as_ref().is_none_or(|d| {
                        s.qualname == name || format!(".{}", s.qualname).ends_with(d.as_str())
                    })
            })
            .collect()
    }

    fn search_class(
        &self,
        name: &str,
        file: Option<u32>,
        limits: &SearchLimits,
    ) -> (String, Vec<Hit>) {
        let refs = self.find_symbols(name, true, file);
        let hits = self.hits(&refs);
        let mut text = String::new();
        if refs.is_empty() {
            let _ = write!(
                text,
                "Could not find a class named {name}{}.",
                self.where_(file)
            );
            self.suggest(&mut text, name, true);
            return (text, hits);
        }
        if file.is_none() && refs.len() > limits.show {
            self.collapse(
                &mut text,
                "classes",
                name,
                &refs,
                "search_class_in_file",
                limits,
            );
            return (text, hits);
        }
        let _ = writeln!(
            text,
            "Found {} {} named {name}{}:",
            refs.len(),
            plural(refs.len(), "class", "classes"),
            self.where_(file)
        );
        for r in &refs {
            let s = self.symbol(*r);
            let path = &self.file(r.file).path;
            let Some(content) = self.content(r.file) else {
                continue;
            };
            // A class is shown whole when asked for in one file, unless it is too long to help.
            let whole = file.is_some() && s.line_count() <= limits.max_code_lines;
            let body = if whole {
                slice_lines(&content, s.start_line, s.end_line)
            } else {
                class_signature(&content, s, &SkeletonOptions::default()).unwrap_or_default()
            };
            let _ = write!(
                text,
                "\n{path}, lines {}-{}, class {}",
                s.start_line, s.end_line, s.qualname
            );
            if file.is_some() && !whole {
                let _ = write!(
                    text,
                    " ({} lines; its signature is shown, ask for one method with search_method_in_class)",
                    s.line_count()
                );
            }
            let _ = write!(text, ":\n```python\n{}```\n", ensure_newline(body));
        }
        (text, hits)
    }

    fn search_method(
        &self,
        name: &str,
        class: Option<&str>,
        file: Option<u32>,
        limits: &SearchLimits,
    ) -> (String, Vec<Hit>) {
        let mut refs = self.find_symbols(name, false, file);
        if let Some(class) = class {
            let classes = self.find_symbols(class, true, None);
            if classes.is_empty() {
                let mut text = format!("Could not find a class named {class}.");
                self.suggest(&mut text, class, true);
                return (text, Vec::new());
            }
            refs.retain(|r| {
                let s = self.symbol(*r);
                s.parent.is_some_and(|p| {
                    classes.contains(&SymbolRef {
                        file: r.file,
                        symbol: p,
                    })
                })
            });
            if refs.is_empty() {
                let mut text = format!("Class {class} has no method named {name}.");
                let methods: Vec<&str> = classes
                    .iter()
                    .flat_map(|c| {
                        let file = self.file(c.file);
                        file.symbols.iter().filter(move |s| {
                            s.parent == Some(c.symbol) && s.kind == SymbolKind::Method
                        })
                    })
                    .map(|s| s.name.as_str())
                    .take(40)
                    .collect();
                if !methods.is_empty() {
                    let _ = write!(text, " Its methods: {}.", methods.join(", "));
                }
                return (text, Vec::new());
            }
        }
        let hits = self.hits(&refs);
        let scope = match class {
            Some(c) => format!(" in class {c}"),
            None => self.where_(file),
        };
        let mut text = String::new();
        if refs.is_empty() {
            let _ = write!(
                text,
                "Could not find a function or method named {name}{scope}."
            );
            self.suggest(&mut text, name, false);
            return (text, hits);
        }
        if refs.len() > limits.show && file.is_none() && class.is_none() {
            self.collapse(
                &mut text,
                "functions or methods",
                name,
                &refs,
                "search_method_in_file or search_method_in_class",
                limits,
            );
            return (text, hits);
        }
        let _ = writeln!(
            text,
            "Found {} {} named {name}{scope}:",
            refs.len(),
            plural(refs.len(), "definition", "definitions")
        );
        for r in &refs {
            let s = self.symbol(*r);
            let Some(content) = self.content(r.file) else {
                continue;
            };
            let end = s.end_line.min(s.start_line + limits.max_code_lines - 1);
            let _ = write!(
                text,
                "\n{}, lines {}-{}, {} {}:\n```python\n{}",
                self.file(r.file).path,
                s.start_line,
                s.end_line,
                s.kind.as_str(),
                s.qualname,
                ensure_newline(slice_lines(&content, s.start_line, end))
            );
            if end < s.end_line {
                let _ = writeln!(text, "... ({} more lines)", s.end_line - end);
            }
            text.push_str("```\n");
        }
        (text, hits)
    }

    fn search_code(
        &self,
        needle: &str,
        file: Option<u32>,
        limits: &SearchLimits,
    ) -> (String, Vec<Hit>) {
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let files: Vec<u32> = match file {
            Some(f) => vec![f],
            None => self.visible_files().collect(),
        };
        // (file, first line, last line) of each match; several matches on one line count once.
        let mut matches: Vec<(u32, u32, u32)> = Vec::new();
        for f in files {
            let Some(content) = self.content(f) else {
                continue;
            };
            let mut last_line = 0;
            let mut line = 1u32;
            let mut scanned = 0usize;
            for at in finder.find_iter(&content) {
                line += memchr::memchr_iter(b'\n', &content[scanned..at]).count() as u32;
                scanned = at;
                if line == last_line {
                    continue;
                }
                let end = line
                    + memchr::memchr_iter(b'\n', &content[at..at + needle.len()]).count() as u32;
                matches.push((f, line, end));
                last_line = line;
            }
        }
        let hits: Vec<Hit> = matches
            .iter()
            .map(|&(f, start, end)| {
                let enclosing = self.enclosing(f, start).map(|r| self.symbol(r));
                Hit {
                    file: self.file(f).path.clone(),
                    start_line: start,
                    end_line: end,
                    qualname: enclosing.map(|s| s.qualname.clone()),
                    kind: enclosing.map(|s| s.kind),
                }
            })
            .collect();
        let shown = format!("{needle:?}");
        let mut text = String::new();
        if hits.is_empty() {
            let _ = write!(
                text,
                "Could not find the text {shown}{}.",
                self.where_(file)
            );
            return (text, hits);
        }
        if hits.len() > limits.show {
            let mut per_file: BTreeMap<&str, usize> = BTreeMap::new();
            for h in &hits {
                *per_file.entry(h.file.as_str()).or_default() += 1;
            }
            if file.is_none() && per_file.len() > 1 {
                let _ = writeln!(
                    text,
                    "Found {} matches of {shown} in {} files; search within one file with search_code_in_file:",
                    hits.len(),
                    per_file.len()
                );
                list_files(&mut text, per_file, limits);
                return (text, hits);
            }
            let lines: Vec<String> = hits.iter().map(|h| h.start_line.to_string()).collect();
            let _ = writeln!(
                text,
                "Found {} matches of {shown} in {}, on lines {}. The first {} are shown:",
                hits.len(),
                hits[0].file,
                lines.join(", "),
                limits.show
            );
        } else {
            let _ = writeln!(
                text,
                "Found {} {} of {shown}{}:",
                hits.len(),
                plural(hits.len(), "match", "matches"),
                self.where_(file)
            );
        }
        for (h, &(f, start, end)) in hits.iter().zip(&matches).take(limits.show) {
            let Some(content) = self.content(f) else {
                continue;
            };
            let from = start.saturating_sub(limits.context_lines).max(1);
            let to = end + limits.context_lines;
            let place = match (&h.qualname, h.kind) {
                (Some(q), Some(k)) => format!("in {} {q}", k.as_str()),
                _ => "at module level".to_string(),
            };
            let _ = write!(
                text,
                "\n{}, line {start}, {place}:\n```python\n{}```\n",
                h.file,
                ensure_newline(slice_lines(&content, from, to))
            );
        }
        (text, hits)
    }

    fn hits(&self, refs: &[SymbolRef]) -> Vec<Hit> {
        refs.iter()
            .map(|r| {
                let s = self.symbol(*r);
                Hit {
                    file: self.file(r.file).path.clone(),
                    start_line: s.start_line,
                    end_line: s.end_line,
                    qualname: Some(s.qualname.clone()),
                    kind: Some(s.kind),
                }
            })
            .collect()
    }

    fn where_(&self, file: Option<u32>) -> String {
        file.map(|f| format!(" in {}", self.file(f).path))
            .unwrap_or_default()
    }

    fn collapse(
        &self,
        text: &mut String,
        what: &str,
        name: &str,
        refs: &[SymbolRef],
        narrower: &str,
        limits: &SearchLimits,
    ) {
        let mut per_file: BTreeMap<&str, usize> = BTreeMap::new();
        for r in refs {
            *per_file.entry(self.file(r.file).path.as_str()).or_default() += 1;
        }
        let _ = writeln!(
            text,
            "Found {} {what} named {name} in {} files, too many to show; narrow the search with {narrower}:",
            refs.len(),
            per_file.len()
        );
        list_files(text, per_file, limits);
    }

    /// Appends up to five visible names of the same sort that contain `name`, differ only in
    /// case, or are a likely misspelling of it (normalized edit distance).
    fn suggest(&self, text: &mut String, name: &str, classes: bool) {
        let wanted = name.rsplit('.').next().unwrap_or(name).to_lowercase();
        if wanted.len() < 3 {
            return;
        }
        let mut near: Vec<(f64, &str)> = self
            .names()
            .filter_map(|(n, refs)| {
                let lower = n.to_lowercase();
                let score = if lower.contains(&wanted) {
                    1.0
                } else {
                    strsim::normalized_damerau_levenshtein(&lower, &wanted)
                };
                let sort_fits = refs.iter().any(|r| {
                    self.is_visible(r.file)
                        && (self.symbol(*r).kind == SymbolKind::Class) == classes
                });
                (score >= 0.75 && sort_fits).then_some((score, n))
            })
            .collect();
        near.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(a.1.len().cmp(&b.1.len()))
                .then(a.1.cmp(b.1))
        });
        near.truncate(5);
        if !near.is_empty() {
            let names: Vec<&str> = near.iter().map(|(_, n)| *n).collect();
            let _ = write!(text, " Similar names: {}.", names.join(", "));
        }
    }
}

fn list_files(text: &mut String, per_file: BTreeMap<&str, usize>, limits: &SearchLimits) {
    let total = per_file.len();
    for (path, n) in per_file.into_iter().take(limits.max_files_listed) {
        let _ = writeln!(text, "- {path} ({n})");
    }
    if total > limits.max_files_listed {
        let _ = writeln!(
            text,
            "- ... and {} more files",
            total - limits.max_files_listed
        );
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// Lines `first..=last` (1-based) of a file, lossily decoded.
pub fn slice_lines(content: &[u8], first: u32, last: u32) -> String {
    let text = String::from_utf8_lossy(content);
    let mut out = String::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i as u32 + 1;
        if n > last {
            break;
        }
        if n >= first {
            out.push_str(line);
        }
    }
    out
}

fn ensure_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}
