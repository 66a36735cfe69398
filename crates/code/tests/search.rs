//! The search tools, skeletons and retrieval on a real project (requests 2.32.3 from PyPI): what
//! the model reads (signature versus code, collapsing, misses with near names) and the structured
//! hits the program uses. Also how tool calls are checked before they run.

mod common;

use common::{project_tree, skip};
use ponder_code::{
    CodeIndex, IndexOptions, SearchLimits, SkeletonOptions, SymbolKind, TOOLS, ToolCall, Visibility,
};
use serde_json::json;

fn requests(visibility: Visibility) -> Option<CodeIndex> {
    match project_tree("requests", "2.32.3") {
        Ok(root) => {
            let options = IndexOptions {
                visibility,
                ..IndexOptions::default()
            };
            Some(CodeIndex::open(&root, options).expect("index requests").0)
        }
        Err(reason) => {
            skip(&format!("cannot get requests==2.32.3 from PyPI: {reason}"));
            None
        }
    }
}

fn run(index: &CodeIndex, tool: &str, args: serde_json::Value) -> ponder_code::ToolOutput {
    let call = ToolCall::parse(tool, &args).expect("a valid call");
    index.run_tool(&call, &SearchLimits::default())
}

#[test]
fn class_and_method_tools_show_signatures_and_code() {
    let Some(index) = requests(Visibility::default()) else {
        return;
    };

    let out = run(&index, "search_class", json!({"class_name": "Session"}));
    assert!(out.found);
    assert_eq!(out.hits.len(), 1);
    let hit = &out.hits[0];
    assert_eq!(
        (hit.file.as_str(), hit.kind),
        ("src/requests/sessions.py", Some(SymbolKind::Class))
    );
    assert!(
        out.text.contains("class Session(SessionRedirectMixin):"),
        "{}",
        out.text
    );
    assert!(
        out.text
            .contains("    def send(self, request, **kwargs):\n        ...\n"),
        "{}",
        out.text
    );
    assert!(
        !out.text.contains("adapter.send"),
        "a signature has no bodies"
    );

    // In one file a class is shown whole, unless it is longer than the limit (Session has 461
    // lines): then its signature, with a pointer to the narrower tool.
    let call = ToolCall::parse(
        "search_class_in_file",
        &json!(["Session", "requests/sessions.py"]),
    )
    .unwrap();
    let out = index.run_tool(&call, &SearchLimits::default());
    assert!(
        out.text.contains(
            "(461 lines; its signature is shown, ask for one method with search_method_in_class)"
        ),
        "{}",
        out.text
    );
    let generous = SearchLimits {
        max_code_lines: 1000,
        ..SearchLimits::default()
    };
    let out = index.run_tool(&call, &generous);
    assert!(
        out.text.contains("r = adapter.send(request, **kwargs)"),
        "the full class: {}",
        out.text
    );

    let out = run(
        &index,
        "search_method_in_class",
        json!({"method_name": "send", "class_name": "Session"}),
    );
    assert_eq!(out.hits.len(), 1);
    assert_eq!(out.hits[0].qualname.as_deref(), Some("Session.send"));
    assert!(
        out.text
            .starts_with("Found 1 definition named send in class Session:"),
        "{}",
        out.text
    );
    assert!(out.text.contains("def send(self, request, **kwargs):"));

    // Many definitions collapse to a list of files; the hits keep every one.
    let out = run(&index, "search_method", json!({"method_name": "__init__"}));
    assert!(out.hits.len() > 3);
    assert!(out.text.contains("too many to show"), "{}", out.text);
    assert!(
        out.text.contains("- src/requests/adapters.py ("),
        "{}",
        out.text
    );
    assert!(!out.text.contains("```"));

    let out = run(
        &index,
        "search_method_in_file",
        json!(["request", "api.py"]),
    );
    assert_eq!(out.hits.len(), 1);
    assert_eq!(out.hits[0].kind, Some(SymbolKind::Function));
    assert!(
        out.text.contains("with sessions.Session() as session:"),
        "{}",
        out.text
    );

    // A dotted name narrows by qualified name.
    let out = run(&index, "search_method", json!(["Session.request"]));
    assert_eq!(out.hits.len(), 1, "{}", out.text);
}

#[test]
fn exact_text_search_shows_context_and_the_enclosing_definition() {
    let Some(index) = requests(Visibility::default()) else {
        return;
    };
    let out = run(
        &index,
        "search_code",
        json!({"code_str": "def merge_setting("}),
    );
    assert_eq!(out.hits.len(), 1);
    assert_eq!(out.hits[0].qualname.as_deref(), Some("merge_setting"));
    let line = out.hits[0].start_line;
    assert!(
        out.text.contains(&format!(
            "src/requests/sessions.py, line {line}, in function merge_setting"
        )),
        "{}",
        out.text
    );
    assert!(
        out.text.contains(
            "def merge_setting(request_setting, session_setting, dict_class=OrderedDict):"
        )
    );

    let out = run(&index, "search_code", json!({"code_str": "import"}));
    assert!(out.hits.len() > 3);
    assert!(
        out.text.contains("search_code_in_file"),
        "collapsed: {}",
        out.text
    );

    let out = run(
        &index,
        "search_code_in_file",
        json!(["to_native_string", "src/requests/models.py"]),
    );
    assert!(out.found);
    assert!(out.hits.iter().all(|h| h.file == "src/requests/models.py"));
}

#[test]
fn misses_say_what_was_not_found_and_suggest() {
    let Some(index) = requests(Visibility::default()) else {
        return;
    };
    let out = run(&index, "search_class", json!(["Sesion"]));
    assert!(!out.found);
    assert_eq!(
        out.text,
        "Could not find a class named Sesion. Similar names: Session."
    );

    let out = run(
        &index,
        "search_method_in_class",
        json!(["sendd", "Session"]),
    );
    assert!(!out.found);
    assert!(
        out.text
            .starts_with("Class Session has no method named sendd. Its methods: "),
        "{}",
        out.text
    );
    assert!(out.text.contains("send,"));

    let out = run(
        &index,
        "search_method_in_class",
        json!(["send", "NoSuchClass"]),
    );
    assert!(
        out.text
            .starts_with("Could not find a class named NoSuchClass.")
    );

    let out = run(
        &index,
        "search_method_in_file",
        json!(["send", "nowhere/models.py"]),
    );
    assert!(
        out.text
            .starts_with("Could not find the file nowhere/models.py"),
        "{}",
        out.text
    );
    assert!(
        out.text.contains("src/requests/models.py"),
        "suggests files of that name: {}",
        out.text
    );

    let out = run(&index, "search_code", json!(["this text is nowhere"]));
    assert_eq!(
        out.text,
        "Could not find the text \"this text is nowhere\"."
    );

    // Tests are hidden by default, visible on request.
    let out = run(&index, "search_class", json!(["TestRequests"]));
    assert!(!out.found);
    let Some(all) = requests(Visibility::all()) else {
        return;
    };
    let out = run(&all, "search_class", json!(["TestRequests"]));
    assert!(out.found);
    assert_eq!(out.hits[0].file, "tests/test_requests.py");
}

#[test]
fn skeletons_and_retrieval() {
    let Some(index) = requests(Visibility::default()) else {
        return;
    };
    let skeleton = index
        .skeleton("src/requests/sessions.py", &SkeletonOptions::default())
        .unwrap();
    assert!(skeleton.contains("class Session(SessionRedirectMixin):\n"));
    assert!(skeleton.contains("    __attrs__ = [\n"));
    assert!(skeleton.contains("    def send(self, request, **kwargs):\n        ...\n"));
    assert!(!skeleton.contains("adapter.send"));
    assert!(!skeleton.contains("import"), "imports are left out");
    let numbered = SkeletonOptions {
        line_numbers: true,
        ..SkeletonOptions::default()
    };
    let with_numbers = index.skeleton("sessions.py", &numbered).unwrap();
    let session = index.symbols_named("Session").next().unwrap();
    let start = index.symbol(session).start_line;
    assert!(with_numbers.contains(&format!("{start:>6} class Session(SessionRedirectMixin):")));

    let issue = "Session.merge_environment_settings ignores the proxies from the environment \
                 when a request passes proxies=None; the cookie jar is fine.";
    let top = index.retrieve(issue, 3);
    assert_eq!(top.len(), 3);
    assert_eq!(top[0].file, "src/requests/sessions.py", "{top:?}");
    assert!(top[0].score > top[1].score);
    assert!(index.retrieve("zzzz qqqq", 5).is_empty());
    // Retrieval sees only visible files.
    assert!(
        index
            .retrieve("test_requests pytest fixture httpbin", 50)
            .iter()
            .all(|r| !r.file.starts_with("tests/"))
    );
}

#[test]
fn tool_calls_are_checked_before_they_run() {
    let err = ToolCall::parse("search_klass", &json!({"class_name": "A"})).unwrap_err();
    assert!(
        err.0
            .contains("There is no tool named \"search_klass\". The tools are: search_class,")
    );
    let err = ToolCall::parse("search_class_in_file", &json!({"class_name": "A"})).unwrap_err();
    assert_eq!(
        err.0,
        "search_class_in_file needs the argument file_name; call it as search_class_in_file(class_name, file_name)."
    );
    let err =
        ToolCall::parse("search_class", &json!({"class_name": "A", "file": "x.py"})).unwrap_err();
    assert!(err.0.contains("has no parameter \"file\""));
    let err = ToolCall::parse("search_method", &json!(["a", "b"])).unwrap_err();
    assert!(
        err.0
            .starts_with("search_method takes 1 argument(s), got 2")
    );
    let err = ToolCall::parse("search_code", &json!({"code_str": "  "})).unwrap_err();
    assert!(err.0.starts_with("search_code needs a non-empty code_str"));
    assert_eq!(
        ToolCall::parse("search_method_in_class", &json!(["m", "C"])).unwrap(),
        ToolCall::SearchMethodInClass {
            method_name: "m".into(),
            class_name: "C".into()
        }
    );
    assert_eq!(TOOLS.len(), 7);
    let schema = TOOLS[1].json_schema();
    assert_eq!(schema["function"]["name"], "search_class_in_file");
    assert_eq!(
        schema["function"]["parameters"]["required"],
        json!(["class_name", "file_name"])
    );
}
