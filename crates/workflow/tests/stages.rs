//! Stages 1 to 3 against a real HTTP model server that replays a script written for this
//! fixture (`scripted_model_*`: a test double of a competent model, with bad replies injected
//! where the test says so), on a real code index of a small shop package with a known bug:
//! `Cart.total` ignores quantities.

use ponder_code::{CodeIndex, IndexOptions};
use ponder_llm::{ClientOptions, Endpoint, LlmClient, ModelSpec, ReplayCache, RunBudget};
use ponder_scripted_model::{Reply, Script, ScriptedServer, ServerOptions};
use ponder_workflow::{
    Prompts, Sampling, StageInput, StageLimits, StageModel, localize, understand, write_patch,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const CART: &str = "\
class Cart:
    def __init__(self):
        self.items = []

    def add(self, price, qty=1):
        self.items.append((price, qty))

    def total(self):
        return sum(price for price, qty in self.items)
";

const PRICE: &str = "\
def fmt(amount):
    return f\"{amount:.2f} EUR\"
";

const ISSUE: &str =
    "Cart.total() ignores quantities: after cart.add(2.0, qty=3) the total is 2.0, not 6.0.";

fn fixture(dir: &Path) -> CodeIndex {
    std::fs::create_dir_all(dir.join("shop")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("shop/__init__.py"), "").unwrap();
    std::fs::write(dir.join("shop/cart.py"), CART).unwrap();
    std::fs::write(dir.join("shop/price.py"), PRICE).unwrap();
    std::fs::write(
        dir.join("tests/test_cart.py"),
        "from shop.cart import Cart\n\ndef test_total():\n    c = Cart()\n    c.add(2.0, qty=3)\n    assert c.total() == 6.0\n",
    )
    .unwrap();
    let cache = dir.join(".cache");
    let (index, _) = CodeIndex::open(
        dir,
        IndexOptions {
            cache_dir: Some(cache),
            ..IndexOptions::default()
        },
    )
    .unwrap();
    index
}

fn model(server: &ScriptedServer, native_tools: bool) -> StageModel {
    let client = LlmClient::new(
        ModelSpec {
            model: "scripted-model".into(),
            endpoints: vec![Endpoint {
                base_url: server.base_url(),
                api_key: None,
            }],
            stream: true,
            supports_n: None,
            prices: None,
        },
        ClientOptions {
            retries: 1,
            request_timeout: Duration::from_secs(20),
            ..ClientOptions::default()
        },
        Arc::new(ReplayCache::disabled()),
    )
    .unwrap();
    StageModel {
        client: Arc::new(client),
        budget: RunBudget::unlimited().task(),
        sampling: Sampling {
            native_tools,
            ..Sampling::default()
        },
    }
}

/// What every stage reads, for the fixture, with system.md's limits.
fn input<'a>(index: &'a CodeIndex, prompts: &'a Prompts, model: &'a StageModel) -> StageInput<'a> {
    StageInput {
        repo: "acme/shop",
        issue: ISSUE,
        index,
        prompts,
        limits: StageLimits::default(),
        model,
    }
}

const RIGHT_LOCATION: &str = "<location><file>shop/cart.py</file><class>Cart</class><method>total</method><why>quantities are dropped</why></location>";

#[tokio::test]
async fn scripted_model_reaches_the_bug_and_patches_it_recovering_from_bad_replies() {
    let dir = tempfile::tempdir().unwrap();
    let index = fixture(dir.path());
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([
            // Stage 1: ranking (with reasoning in its own field), locations, analysis.
            Reply::reasoning(
                "The issue is about Cart.total.",
                "<files>\nshop/cart.py\nshop/price.py\n</files>",
            ),
            Reply::text(format!("<locations>{RIGHT_LOCATION}</locations>")),
            Reply::text("total() sums prices and never multiplies by qty."),
            // Stage 2: a call with a missing argument, then a good one, then reasoning that
            // never closes, then a location that names nothing, then the right one.
            Reply::text("search_method_in_class(\"total\")"),
            Reply::text("search_method_in_class(\"total\", \"Cart\")"),
            Reply::inline_think("<think>The sum should weigh each price by"),
            Reply::text(
                "<bug_locations><location><file>shop/cart.py</file><class>Cart</class><method>totl</method></location></bug_locations>",
            ),
            Reply::text(format!(
                "The generator drops qty.\n<bug_locations>{RIGHT_LOCATION}</bug_locations>"
            )),
            // Stage 3: an original that matches nothing, an edit that breaks the syntax, then
            // the fix.
            Reply::text(
                "<file>shop/cart.py</file><original>return sum(self.items)</original><patched>return 0</patched>",
            ),
            Reply::text(
                "<file>shop/cart.py</file><original>return sum(price for price, qty in self.items)</original><patched>return sum(price * qty for price, qty in self.items</patched>",
            ),
            Reply::text(
                "<file>shop/cart.py</file><original>\n    return sum(price for price, qty in self.items)\n</original><patched>\n    return sum(price * qty for price, qty in self.items)\n</patched>",
            ),
        ]),
    );
    let prompts = Prompts::new();
    let model = model(&server, false);
    let input = input(&index, &prompts, &model);

    let (understanding, record) = understand(&input).await;
    let understanding = understanding.unwrap();
    assert_eq!(
        understanding.ranked_files,
        ["shop/cart.py", "shop/price.py"]
    );
    // Tests are hidden from the model; BM25 adds nothing new here but is recorded.
    assert!(
        understanding
            .shown_files
            .iter()
            .all(|f| f.starts_with("shop/"))
    );
    assert_eq!(
        understanding.code[0].qualname.as_deref(),
        Some("Cart.total")
    );
    assert!(understanding.analysis.contains("qty"));
    assert_eq!(record.turns.len(), 3);
    assert_eq!(
        record.turns[0].reasoning.as_deref(),
        Some("The issue is about Cart.total.")
    );

    let (localization, record) = localize(&input, &understanding).await;
    let localization = localization.unwrap();
    assert_eq!(localization.code.len(), 1);
    assert_eq!(localization.code[0].qualname.as_deref(), Some("Cart.total"));
    assert!(localization.code[0].text.contains("sum(price for price"));
    let recoveries: Vec<&str> = record.recoveries().collect();
    assert_eq!(recoveries.len(), 3, "{recoveries:#?}");
    assert!(
        recoveries[0].contains("invalid tool call"),
        "{}",
        recoveries[0]
    );
    assert!(recoveries[1].contains("never closed"), "{}", recoveries[1]);
    assert!(
        recoveries[2].contains("no method totl"),
        "{}",
        recoveries[2]
    );
    // The good call's result was shown to the model and recorded.
    let calls: Vec<_> = record.turns.iter().flat_map(|t| &t.tool_calls).collect();
    assert!(
        calls
            .iter()
            .any(|c| c.valid && c.found && c.result.contains("def total"))
    );
    // History pruning: no request ever carries the unclosed reasoning back.
    assert!(record.turns.iter().all(|t| {
        t.request
            .iter()
            .all(|m| !m.content.contains("weigh each price"))
    }));

    let root = dir.path().to_path_buf();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    let (patch, record) = write_patch(
        &input,
        &localization.code,
        Some(&understanding.analysis),
        read,
    )
    .await;
    let patch = patch.unwrap();
    assert_eq!(patch.files, ["shop/cart.py"]);
    assert!(
        patch
            .diff
            .contains("+        return sum(price * qty for price, qty in self.items)"),
        "{}",
        patch.diff
    );
    let recoveries: Vec<&str> = record.recoveries().collect();
    assert_eq!(recoveries.len(), 2, "{recoveries:#?}");
    assert!(
        recoveries[0].contains("does not match"),
        "{}",
        recoveries[0]
    );
    assert!(
        recoveries[1].contains("no longer parses"),
        "{}",
        recoveries[1]
    );
    // The refusal reason reached the model in the retry's prompt.
    assert!(
        record.turns[1].request[0]
            .content
            .contains("does not match the file")
    );
    assert_eq!(server.request_count(), 11);
}

#[tokio::test]
async fn scripted_model_with_native_tool_calls_recovers_from_unknown_tools_and_broken_json() {
    let dir = tempfile::tempdir().unwrap();
    let index = fixture(dir.path());
    let server = ScriptedServer::start(
        ServerOptions::default(),
        Script::queue([
            Reply::text("").with_tool_call("search_everything", "{\"q\": \"total\"}"),
            Reply::text("").with_tool_call("search_class", "{\"class_name\": "),
            Reply::text("").with_tool_call("search_class", "{\"class_name\": \"Cart\"}"),
            Reply::text(format!("<bug_locations>{RIGHT_LOCATION}</bug_locations>")),
        ]),
    );
    let prompts = Prompts::new();
    let model = model(&server, true);
    let input = input(&index, &prompts, &model);
    let (localization, record) = localize(&input, &ponder_workflow::Understanding::default()).await;
    let localization = localization.unwrap();
    assert_eq!(localization.code[0].qualname.as_deref(), Some("Cart.total"));
    let recoveries: Vec<&str> = record.recoveries().collect();
    assert_eq!(recoveries.len(), 2, "{recoveries:#?}");
    assert!(
        recoveries[0].contains("search_everything"),
        "{}",
        recoveries[0]
    );
    assert!(
        recoveries[1].contains("not valid JSON"),
        "{}",
        recoveries[1]
    );
    // The schemas went to the server, and tool results went back as tool messages.
    let requests = server.requests();
    assert!(
        requests[0]["tools"]
            .as_array()
            .is_some_and(|t| t.len() == 7)
    );
    let last = requests.last().unwrap()["messages"].as_array().unwrap();
    assert!(
        last.iter()
            .any(|m| m["role"] == "tool"
                && m["content"].as_str().unwrap_or("").contains("class Cart"))
    );
}

#[tokio::test]
async fn scripted_model_reasoning_goes_back_only_when_asked() {
    for keep in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let index = fixture(dir.path());
        let server = ScriptedServer::start(
            ServerOptions::default(),
            Script::queue([
                Reply::reasoning("Cart is the place to look.", "search_class(\"Cart\")"),
                Reply::text(format!("<bug_locations>{RIGHT_LOCATION}</bug_locations>")),
            ]),
        );
        let prompts = Prompts::new();
        let mut model = model(&server, false);
        model.sampling.keep_reasoning = keep;
        let input = input(&index, &prompts, &model);
        let (localization, record) =
            localize(&input, &ponder_workflow::Understanding::default()).await;
        localization.unwrap();
        assert_eq!(
            record.turns[0].reasoning.as_deref(),
            Some("Cart is the place to look.")
        );
        let second = &server.requests()[1]["messages"];
        let assistant = second
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "assistant")
            .unwrap()["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            assistant.contains("<think>Cart is the place to look.</think>"),
            keep,
            "{assistant}"
        );
    }
}
