//! `ponder code` end to end: the binary on a small tree, its JSON output and exit statuses.

mod common;

use common::ponder;

#[test]
fn code_commands_on_a_small_tree() {
    let tree = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let root = tree.path();
    std::fs::create_dir_all(root.join("shop/tests")).unwrap();
    std::fs::write(
        root.join("shop/cart.py"),
        "import math\n\n\nclass Cart:\n    tax = 0.2\n\n    @property\n    def total(self):\n        return math.fsum(self.items) * (1 + self.tax)\n\n\ndef empty_cart():\n    return Cart()\n",
    )
    .unwrap();
    std::fs::write(
        root.join("shop/tests/test_cart.py"),
        "def test_total():\n    pass\n",
    )
    .unwrap();
    let path = root.to_str().unwrap();

    let (code, out, err) = ponder(&["code", "index", path], cache.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("indexed 2 Python files (1 visible)"),
        "{out}"
    );
    assert!(out.contains("cache: written"), "{out}");
    assert!(
        cache.path().join("code").is_dir(),
        "the index is cached under <cache>/code"
    );
    let (_, out, _) = ponder(&["code", "index", path], cache.path());
    assert!(
        out.contains("0 parsed") && out.contains("cache: up to date"),
        "{out}"
    );

    let (code, out, _) = ponder(&["code", "symbols", path, "--json"], cache.path());
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"file": "shop/cart.py", "kind": "class", "name": "Cart", "qualname": "Cart", "start_line": 4, "end_line": 9}),
            serde_json::json!({"file": "shop/cart.py", "kind": "method", "name": "total", "qualname": "Cart.total", "start_line": 7, "end_line": 9}),
            serde_json::json!({"file": "shop/cart.py", "kind": "function", "name": "empty_cart", "qualname": "empty_cart", "start_line": 12, "end_line": 13}),
        ]
    );
    let (_, out, _) = ponder(&["code", "symbols", path, "--all"], cache.path());
    assert!(
        out.contains("shop/tests/test_cart.py:1-2 function test_total"),
        "{out}"
    );

    let (_, out, _) = ponder(&["code", "skeleton", path, "cart.py"], cache.path());
    assert_eq!(
        out,
        "class Cart:\n    tax = 0.2\n    @property\n    def total(self):\n        ...\ndef empty_cart():\n    ...\n"
    );

    let (code, out, _) = ponder(
        &[
            "code",
            "search",
            path,
            "search_method_in_class",
            "total",
            "Cart",
        ],
        cache.path(),
    );
    assert_eq!(code, 0);
    assert!(out.contains("return math.fsum(self.items)"), "{out}");
    let (code, out, _) = ponder(
        &["code", "search", path, "search_class", "Basket", "--json"],
        cache.path(),
    );
    assert_eq!(code, 1, "nothing found is exit status 1");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["found"], false);
    let (code, _, err) = ponder(
        &["code", "search", path, "search_clas", "Cart"],
        cache.path(),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("There is no tool named \"search_clas\""),
        "{err}"
    );

    let (code, out, _) = ponder(
        &[
            "code",
            "retrieve",
            path,
            "--query",
            "cart total tax",
            "--json",
        ],
        cache.path(),
    );
    assert_eq!(code, 0);
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["file"], "shop/cart.py");

    let (code, _, err) = ponder(&["code", "index", "/nonexistent/tree"], cache.path());
    assert_eq!(code, 2);
    assert!(err.contains("give the path of a source tree"), "{err}");
}
