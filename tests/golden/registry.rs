//! The dispatch table (op name -> function, grouped in families, one module file each), the
//! loading of every `*.json` file of the golden folder, and the test driver that runs the cases
//! and reports per-family counts.

use super::case::{Case, Layout, Outputs, Result};
use super::compare::compare;
use super::{
    activations, avg_pool2d, batch_norm2d, conv2d, elementwise, linear, local_response_norm,
    losses, matmul, max_pool2d, optimizers, reductions, softmax,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Runs one case through tapegrad and returns its results, keyed as `Case::expected`.
pub type OpFn = fn(&Case) -> Result<Outputs>;

/// A family of ops: one module file under tests/golden/, one `#[test]`, one line of the report.
pub struct Family {
    pub name: &'static str,
    pub layout: Layout,
    pub ops: &'static [(&'static str, OpFn)],
}

/// Every family the runner knows. An op found in no family fails its case.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "activations",
        layout: Layout::Differentiated,
        ops: activations::OPS,
    },
    Family {
        name: "softmax",
        layout: Layout::Differentiated,
        ops: softmax::OPS,
    },
    Family {
        name: "losses",
        layout: Layout::Differentiated,
        ops: losses::OPS,
    },
    Family {
        name: "linear",
        layout: Layout::Differentiated,
        ops: linear::OPS,
    },
    Family {
        name: "matmul",
        layout: Layout::Differentiated,
        ops: matmul::OPS,
    },
    Family {
        name: "elementwise",
        layout: Layout::Differentiated,
        ops: elementwise::OPS,
    },
    Family {
        name: "reductions",
        layout: Layout::Differentiated,
        ops: reductions::OPS,
    },
    Family {
        name: "conv2d",
        layout: Layout::Differentiated,
        ops: conv2d::OPS,
    },
    Family {
        name: "max_pool2d",
        layout: Layout::Differentiated,
        ops: max_pool2d::OPS,
    },
    Family {
        name: "avg_pool2d",
        layout: Layout::Differentiated,
        ops: avg_pool2d::OPS,
    },
    Family {
        name: "local_response_norm",
        layout: Layout::Differentiated,
        ops: local_response_norm::OPS,
    },
    Family {
        name: "batch_norm2d",
        layout: Layout::Differentiated,
        ops: batch_norm2d::OPS,
    },
    Family {
        name: "optimizers",
        layout: Layout::Steps,
        ops: optimizers::OPS,
    },
];

/// JSON files of the golden folder that are not case lists. Each is checked by its own test
/// (`seed_examples.json`: worked examples, see `seed_examples.rs`); any other file that is not a
/// case list fails the run.
pub const NOT_CASE_LISTS: &[&str] = &["seed_examples.json"];

/// The folder of the PyTorch reference cases: `$GOLDEN_DIR`, else `tests/golden/data` in the
/// workspace.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => default_golden_dir(),
    }
}

/// `tests/golden/data` of the workspace: the cases that ship with the repository.
pub fn default_golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/data")
}

/// The family registering `op`, and its function.
pub fn lookup(op: &str) -> Option<(&'static Family, OpFn)> {
    FAMILIES.iter().find_map(|fam| {
        fam.ops
            .iter()
            .find(|(name, _)| *name == op)
            .map(|&(_, f)| (fam, f))
    })
}

/// Every case of every case-list file in `dir`, and the problems found on the way (unreadable
/// files, malformed cases, JSON files that are neither case lists nor known examples).
pub fn load(dir: &Path) -> (Vec<Case>, Vec<String>) {
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!(
                "{}: cannot read the golden folder: {e}",
                dir.display()
            ));
            return (cases, problems);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        problems.push(format!("{}: no *.json files", dir.display()));
    }
    for path in files {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()));
        match parsed {
            Err(e) => problems.push(format!("{file}: {e}")),
            Ok(Value::Array(list)) => {
                for (i, v) in list.iter().enumerate() {
                    match Case::from_json(&file, i, v) {
                        Ok(c) => cases.push(c),
                        Err(e) => problems.push(e.to_string()),
                    }
                }
            }
            Ok(_) if NOT_CASE_LISTS.contains(&file.as_str()) => {}
            Ok(_) => problems.push(format!(
                "{file}: not a case list, and not one of the known example files {NOT_CASE_LISTS:?}"
            )),
        }
    }
    (cases, problems)
}

/// Runs one case and compares every result; `Err` holds every reason it failed.
pub fn run_case(case: &Case) -> std::result::Result<(), Vec<String>> {
    let one = |e: Box<dyn std::error::Error>| vec![e.to_string()];
    let (family, f) = lookup(&case.op)
        .ok_or_else(|| vec![format!("unknown op `{}`: no family registers it", case.op)])?;
    case.check_keys(family.layout).map_err(one)?;
    let expected = case.expected(family.layout).map_err(one)?;
    let (rtol, atol) = case.tol().map_err(one)?;
    let got = f(case).map_err(one)?;
    let mut failures = Vec::new();
    let params = case.unused_params();
    if !params.is_empty() {
        failures.push(format!("unsupported params {params:?}"));
    }
    match case.unused_inputs() {
        Ok(inputs) if inputs.is_empty() => {}
        Ok(inputs) => failures.push(format!("inputs the op did not use: {inputs:?}")),
        Err(e) => failures.push(e.to_string()),
    }
    failures.extend(compare(&expected, &got, rtol, atol));
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// Per-family counts of one run.
#[derive(Default)]
struct Count {
    checked: usize,
    failed: usize,
}

/// The test driver: runs every case of `only` (a family name), or every case when `None`;
/// prints per-family counts; panics listing every failing case. A family with no case in the
/// folder fails too: a test that checked nothing must not pass.
pub fn check(only: Option<&str>) {
    if let Some(name) = only {
        assert!(
            FAMILIES.iter().any(|f| f.name == name),
            "no family named {name}"
        );
    }
    let dir = golden_dir();
    let (cases, mut failures) = load(&dir);
    // Families in table order, then cases whose op no family registers.
    let mut counts: Vec<(&str, Count)> = FAMILIES
        .iter()
        .filter(|f| only.is_none_or(|o| o == f.name))
        .map(|f| (f.name, Count::default()))
        .collect();
    for case in &cases {
        let family = lookup(&case.op).map_or("(unknown op)", |(f, _)| f.name);
        // An unknown op belongs to no family: only the run over everything reports it.
        if only.is_some_and(|o| o != family) {
            continue;
        }
        if !counts.iter().any(|(name, _)| *name == family) {
            counts.push((family, Count::default()));
        }
        let count = &mut counts
            .iter_mut()
            .find(|(name, _)| *name == family)
            .expect("just inserted")
            .1;
        count.checked += 1;
        if let Err(reasons) = run_case(case) {
            count.failed += 1;
            failures.push(format!(
                "{} / {} (op {}): {}",
                case.file,
                case.name,
                case.op,
                reasons.join("; ")
            ));
        }
    }
    println!("golden cases from {}:", dir.display());
    let (mut total, mut failed) = (0, 0);
    for (name, c) in &counts {
        println!(
            "  {name:<22} {:>3} checked, {:>3} passed, {:>3} failed",
            c.checked,
            c.checked - c.failed,
            c.failed
        );
        if c.checked == 0 {
            failures.push(format!(
                "family {name}: no cases found in {}",
                dir.display()
            ));
        }
        total += c.checked;
        failed += c.failed;
    }
    println!(
        "  {:<22} {total:>3} checked, {:>3} passed, {failed:>3} failed",
        "total",
        total - failed
    );
    assert!(
        failures.is_empty(),
        "{} golden failure(s):\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(v: Value) -> Case {
        Case::from_json("synthetic.json", 0, &v).unwrap()
    }

    fn tensor(shape: &[usize], data: &[f32]) -> Value {
        json!({"shape": shape, "dtype": "float32", "data": data})
    }

    /// sigmoid of [0] is 0.5 and its derivative s(1-s) = 0.25, so with grad_output 2 the
    /// gradient is 0.5.
    fn sigmoid_case(params: Value) -> Case {
        case(json!({
            "name": "s", "op": "sigmoid", "params": params,
            "inputs": {"x": tensor(&[1], &[0.0])},
            "output": tensor(&[1], &[0.5]),
            "grad_output": tensor(&[1], &[2.0]),
            "grads": {"x": tensor(&[1], &[0.5])},
        }))
    }

    #[test]
    fn the_table_names_each_op_and_family_once() {
        let mut seen = std::collections::BTreeSet::new();
        for fam in FAMILIES {
            assert!(!fam.ops.is_empty(), "family {} has no ops", fam.name);
            assert!(seen.insert(format!("family {}", fam.name)));
            for (op, _) in fam.ops {
                assert!(seen.insert(op.to_string()), "op {op} registered twice");
            }
        }
    }

    #[test]
    fn a_correct_case_passes_and_a_wrong_value_fails() {
        assert_eq!(run_case(&sigmoid_case(json!({}))), Ok(()));
        let wrong = case(json!({
            "name": "w", "op": "sigmoid",
            "inputs": {"x": tensor(&[1], &[0.0])},
            "output": tensor(&[1], &[0.5]),
            "grad_output": tensor(&[1], &[2.0]),
            "grads": {"x": tensor(&[1], &[0.4])},
        }));
        let err = run_case(&wrong).unwrap_err();
        assert!(err[0].starts_with("grads.x"), "{err:?}");
    }

    #[test]
    fn unknown_ops_params_fields_and_unused_inputs_fail() {
        let mut unknown = sigmoid_case(json!({}));
        unknown.op = "frobnicate".into();
        assert!(run_case(&unknown).unwrap_err()[0].contains("unknown op"));
        let extra_param = sigmoid_case(json!({"approximate": "tanh"}));
        assert!(run_case(&extra_param).unwrap_err()[0].contains("approximate"));
        let unused = case(json!({
            "name": "u", "op": "sigmoid",
            "inputs": {"x": tensor(&[1], &[0.0]), "y": tensor(&[1], &[1.0])},
            "output": tensor(&[1], &[0.5]),
            "grad_output": tensor(&[1], &[1.0]),
        }));
        assert!(run_case(&unused).unwrap_err()[0].contains("\"y\""));
        let field = case(json!({
            "name": "f", "op": "sigmoid", "reduction_hint": 1,
            "inputs": {"x": tensor(&[1], &[0.0])},
            "output": tensor(&[1], &[0.5]),
            "grad_output": tensor(&[1], &[1.0]),
        }));
        assert!(run_case(&field).unwrap_err()[0].contains("reduction_hint"));
    }

    #[test]
    fn a_case_missing_its_fields_fails() {
        let (_, f) = lookup("conv2d").unwrap();
        let c = case(json!({"name": "c", "op": "conv2d"}));
        // Either the op or the parse of the missing fields fails: never a pass.
        assert!(f(&c).is_err());
    }
}
