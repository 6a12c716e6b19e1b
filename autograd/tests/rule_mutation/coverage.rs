//! The mutation test covers every op the tape can record: the ops are found in the sources.

use super::all_families;
use std::collections::BTreeSet;
use tapegrad_autograd::rng;

/// Names that `Op::new` gives results without a rule of their own: the leaves, and the
/// compositions' names, which the tape gives their result only when no input needs a gradient
/// (a constant: `Tape::composite`). With a gradient wanted they record their parts.
const LEAVES: [&str; 3] = ["input", "variable", "param"];
const COMPOSITIONS: [&str; 5] = [
    "conv2d",
    "conv_transpose2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "local_response_norm",
];

/// Every `Op::new("name", ..)` and `op!(CONST = "name", ..)` of the library crates' sources (outside doc comments and test
/// modules): the ops the tape can record.
fn declared_ops() -> BTreeSet<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = BTreeSet::new();
    let mut dirs = vec![
        root.join("src"),
        root.join("../nn/src"),
        root.join("../models/src"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let code: String = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            // `Op::new("name", ..)`, and the library's own `op!(CONST = "name", ..)`.
            let calls = code
                .match_indices("Op::new(")
                .map(|(at, m)| code[at + m.len()..].trim_start())
                .chain(code.match_indices("op!(").filter_map(|(at, m)| {
                    let rest = &code[at + m.len()..];
                    Some(rest[rest.find('=')? + 1..].trim_start())
                }));
            for rest in calls {
                if let Some(rest) = rest.strip_prefix('"') {
                    names.insert(rest[..rest.find('"').unwrap()].to_string());
                }
            }
        }
    }
    names
}

#[test]
fn every_op_with_a_rule_has_a_family() {
    let declared = declared_ops();
    assert!(
        declared.contains("matmul") && declared.len() > 30,
        "{declared:?}"
    );
    let families = all_families();
    let named: BTreeSet<&str> = families.iter().map(|f| f.name).collect();
    // What the families' backward passes run (one case each).
    let mut run = BTreeSet::new();
    for (i, f) in families.iter().enumerate() {
        let case = (f.build)(&mut rng(i as u64));
        let (_, ops) = case.gradient(0);
        if declared.contains(f.name) && !COMPOSITIONS.contains(&f.name) {
            assert!(
                ops.contains(f.name),
                "family {} does not run the rule of {}",
                f.name,
                f.name
            );
        }
        run.extend(ops);
    }
    for name in &declared {
        let name = name.as_str();
        if LEAVES.contains(&name) {
            continue;
        }
        assert!(
            named.contains(name),
            "op {name} has no family in the mutation test (a new primitive needs one, a new \
             composition's name belongs in COMPOSITIONS with a family)"
        );
    }
    for name in COMPOSITIONS {
        assert!(declared.contains(name), "{name} is no longer declared");
    }
    // And nothing runs a rule the scan did not find.
    for op in &run {
        assert!(
            declared.contains(*op),
            "rule of {op} ran but no Op::new declares it"
        );
    }
}
