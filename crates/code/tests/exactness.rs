//! Acceptance: on real projects from PyPI, the index's definitions agree with Python's own `ast`
//! (names, kinds, qualified names and line spans) on every file Python parses, for both the
//! default scanner and the tree-sitter parser. Mismatches are counted and printed; the goal is 0.

mod common;

use common::{Def, PROJECTS, ast_reference, project_tree, reference_python, skip};
use ponder_code::{CodeIndex, DefinitionParser, IndexOptions, Visibility};
use std::collections::BTreeSet;

fn ours(root: &std::path::Path, parser: DefinitionParser) -> Vec<Def> {
    let options = IndexOptions {
        visibility: Visibility::all(),
        parser,
        ..IndexOptions::default()
    };
    let (index, _) = CodeIndex::open(root, options).expect("index the tree");
    index
        .files()
        .iter()
        .flat_map(|f| {
            f.symbols.iter().map(move |s| Def {
                file: f.path.clone(),
                start_line: s.start_line,
                end_line: s.end_line,
                kind: s.kind.as_str().to_string(),
                name: s.name.clone(),
                qualname: s.qualname.clone(),
            })
        })
        .collect()
}

#[test]
fn definitions_agree_with_python_ast_on_real_projects() {
    let python = match reference_python() {
        Ok(p) => p,
        Err(reason) => return skip(&reason),
    };
    let mut total_mismatches = 0;
    for (name, version) in PROJECTS {
        let root = match project_tree(name, version) {
            Ok(r) => r,
            Err(reason) => {
                return skip(&format!("cannot get {name}=={version} from PyPI: {reason}"));
            }
        };
        let (reference, unparsed) = ast_reference(&python, &root);
        let unparsed: BTreeSet<String> = unparsed.into_iter().collect();
        let reference: BTreeSet<Def> = reference.into_iter().collect();
        for parser in [DefinitionParser::Scanner, DefinitionParser::TreeSitter] {
            let got: BTreeSet<Def> = ours(&root, parser)
                .into_iter()
                .filter(|d| !unparsed.contains(&d.file))
                .collect();
            let missing: Vec<&Def> = reference.difference(&got).collect();
            let extra: Vec<&Def> = got.difference(&reference).collect();
            eprintln!(
                "{name}=={version} {parser:?}: {} definitions by ast in {} files with definitions ({} files ast cannot parse); missing {}, extra {}",
                reference.len(),
                reference
                    .iter()
                    .map(|d| &d.file)
                    .collect::<BTreeSet<_>>()
                    .len(),
                unparsed.len(),
                missing.len(),
                extra.len()
            );
            for d in missing.iter().take(5) {
                eprintln!("  ast only:  {d:?}");
            }
            for d in extra.iter().take(5) {
                eprintln!("  ours only: {d:?}");
            }
            total_mismatches += missing.len() + extra.len();
        }
    }
    assert_eq!(
        total_mismatches, 0,
        "definitions that differ from ast (listed above)"
    );
}
