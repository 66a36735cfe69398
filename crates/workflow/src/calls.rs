//! Tool calls written in text, for servers without native function calling: the model writes
//! calls as Python-style function calls (`search_method_in_class("save", "Model")`, the
//! AutoCodeRover convention) or as JSON objects (`{"name": ..., "arguments": {...}}`). Each call
//! found is checked against the tools of ponder-code; what cannot be used comes back as a message
//! that tells the model what was wrong, so it can try again.

use ponder_code::{CallError, TOOLS, ToolCall};
use serde_json::Value;

/// One call found in a reply: usable, or the reason it is not.
pub type Extracted = Result<ToolCall, CallError>;

/// Every tool call in `reply`, in order. Python-style calls are looked for first (by tool name);
/// JSON objects with a `name`/`tool` and `arguments` are read where no such call is present.
pub fn extract_calls(reply: &str) -> Vec<Extracted> {
    let mut found: Vec<(usize, Extracted)> = Vec::new();
    for spec in TOOLS {
        let mut from = 0;
        while let Some(at) = reply[from..].find(spec.name).map(|i| i + from) {
            from = at + spec.name.len();
            // A whole word, followed by an opening parenthesis.
            let before_ok = reply[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let rest = reply[from..].trim_start();
            if !before_ok || !rest.starts_with('(') {
                continue;
            }
            let open = reply.len() - rest.len();
            found.push((at, parse_arguments(spec.name, &reply[open + 1..])));
        }
    }
    if found.is_empty() {
        found.extend(json_calls(reply));
    }
    found.sort_by_key(|(at, _)| *at);
    found.into_iter().map(|(_, call)| call).collect()
}

/// Parses `"a", 'b', name="c")` after a tool name's parenthesis.
fn parse_arguments(tool: &str, text: &str) -> Extracted {
    let mut positional: Vec<String> = Vec::new();
    let mut named = serde_json::Map::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|(_, c)| c.is_whitespace() || *c == ',')
        {
            chars.next();
        }
        let Some(&(start, c)) = chars.peek() else {
            return Err(CallError(format!(
                "The call to {tool} is missing its closing parenthesis."
            )));
        };
        if c == ')' {
            break;
        }
        // An optional `name=` before the value.
        let mut key = None;
        if c.is_alphabetic() || c == '_' {
            let word: String = text[start..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let after = text[start + word.len()..].trim_start();
            if let Some(value) = after.strip_prefix('=') {
                key = Some(word);
                let skip = text.len() - value.len();
                while chars.peek().is_some_and(|(i, _)| *i < skip) {
                    chars.next();
                }
                while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                    chars.next();
                }
            }
        }
        let Some(&(vstart, quote)) = chars.peek() else {
            break;
        };
        if quote != '"' && quote != '\'' {
            return Err(CallError(format!(
                "The arguments of {tool} must be quoted strings, e.g. {tool}(\"name\"); found {:?}.",
                text[vstart..].chars().take(20).collect::<String>()
            )));
        }
        chars.next();
        let mut value = String::new();
        let mut closed = false;
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                c if c == quote => {
                    closed = true;
                    break;
                }
                c => value.push(c),
            }
        }
        if !closed {
            return Err(CallError(format!(
                "A string argument of {tool} is never closed."
            )));
        }
        match key {
            Some(k) => {
                named.insert(k, Value::String(value));
            }
            None => positional.push(value),
        }
    }
    if named.is_empty() {
        ToolCall::from_args(tool, &positional)
    } else if positional.is_empty() {
        ToolCall::parse(tool, &Value::Object(named))
    } else {
        Err(CallError(format!(
            "Give the arguments of {tool} either all by position or all by name."
        )))
    }
}

/// JSON objects naming a tool: `{"name": "search_class", "arguments": {"class_name": "X"}}`
/// (also `tool`/`args`, and arguments as a JSON string, as function-calling models write them).
fn json_calls(reply: &str) -> Vec<(usize, Extracted)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = reply[from..].find('{').map(|i| i + from) {
        let mut stream = serde_json::Deserializer::from_str(&reply[at..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(Value::Object(map))) => {
                from = at + stream.byte_offset();
                let name = ["name", "tool", "function"]
                    .iter()
                    .find_map(|k| map.get(*k).and_then(Value::as_str));
                let Some(name) = name else { continue };
                let args = ["arguments", "args", "parameters"]
                    .iter()
                    .find_map(|k| map.get(*k))
                    .cloned()
                    .unwrap_or(Value::Object(Default::default()));
                let args = match args {
                    Value::String(s) => match serde_json::from_str::<Value>(&s) {
                        Ok(v) => v,
                        Err(e) => {
                            out.push((
                                at,
                                Err(CallError(format!(
                                    "The arguments of {name} are not valid JSON ({e})."
                                ))),
                            ));
                            continue;
                        }
                    },
                    v => v,
                };
                out.push((at, ToolCall::parse(name, &args)));
            }
            Some(Err(e))
                if reply[at..]
                    .trim_start_matches('{')
                    .trim_start()
                    .starts_with('"') =>
            {
                // It looked like a JSON call but does not parse: say so rather than ignore it.
                out.push((
                    at,
                    Err(CallError(format!(
                        "A tool call in JSON could not be read ({e}); write it as valid JSON."
                    ))),
                ));
                // Its inner objects are part of the broken call, not calls of their own.
                from = match e.classify() {
                    serde_json::error::Category::Eof => reply.len(),
                    _ => at + 1,
                };
            }
            _ => from = at + 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_style_calls_in_prose() {
        let reply = "Let me look.\nsearch_class(\"QuerySet\")\nsearch_method_in_class(method_name='filter', class_name=\"QuerySet\")\nand search_code(\"x = \\\"a\\\"\")";
        let calls: Vec<ToolCall> = extract_calls(reply)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            calls,
            vec![
                ToolCall::SearchClass {
                    class_name: "QuerySet".into()
                },
                ToolCall::SearchMethodInClass {
                    method_name: "filter".into(),
                    class_name: "QuerySet".into()
                },
                ToolCall::SearchCode {
                    code_str: "x = \"a\"".into()
                },
            ]
        );
        // A mention without parentheses is not a call.
        assert!(extract_calls("I will use search_class next.").is_empty());
    }

    #[test]
    fn json_calls_and_what_goes_wrong() {
        let calls = extract_calls(
            "```json\n{\"name\": \"search_method\", \"arguments\": \"{\\\"method_name\\\": \\\"save\\\"}\"}\n```",
        );
        assert_eq!(
            calls,
            vec![Ok(ToolCall::SearchMethod {
                method_name: "save".into()
            })]
        );
        let calls =
            extract_calls("{\"tool\": \"search_klass\", \"args\": {\"class_name\": \"A\"}}");
        assert!(
            calls[0]
                .as_ref()
                .unwrap_err()
                .0
                .contains("no tool named \"search_klass\"")
        );
        let calls =
            extract_calls("{\"name\": \"search_class\", \"arguments\": {\"class_name\": \"A\"");
        assert!(
            calls[0]
                .as_ref()
                .unwrap_err()
                .0
                .contains("could not be read"),
            "{calls:?}"
        );
        let calls = extract_calls("search_class(QuerySet)");
        assert!(
            calls[0]
                .as_ref()
                .unwrap_err()
                .0
                .contains("must be quoted strings")
        );
        let calls = extract_calls("search_method_in_file(\"save\")");
        assert!(
            calls[0]
                .as_ref()
                .unwrap_err()
                .0
                .contains("takes 2 argument(s), got 1")
        );
        let calls = extract_calls("search_class(\"A\"");
        assert!(
            calls[0]
                .as_ref()
                .unwrap_err()
                .0
                .contains("closing parenthesis")
        );
    }
}
