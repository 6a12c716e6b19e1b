//! Reading the PyTorch reference cases of `tests/golden/data` (see its README for the format).

#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use tapegrad_autograd::Tensor;

/// `$GOLDEN_DIR`, else the workspace's `tests/golden/data`.
pub fn golden_dir() -> PathBuf {
    match std::env::var_os("GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/data"),
    }
}

/// The cases of one family file.
pub fn cases(file: &str) -> Vec<Value> {
    let path = golden_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).expect("golden JSON");
    v.as_array().expect("a list of cases").clone()
}

/// A stored tensor (`{"shape": [...], "data": [...]}`).
pub fn tensor(v: &Value) -> Tensor {
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let data: Vec<f32> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect();
    Tensor::from_vec(data, shape).expect("data fills shape")
}

/// Integer labels of an int64 tensor.
pub fn labels(v: &Value) -> Vec<usize> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x.as_u64().expect("label") as usize)
        .collect()
}

/// The case's `(rtol, atol)`.
pub fn tol(case: &Value) -> (f32, f32) {
    (
        case["tol"]["rtol"].as_f64().expect("rtol") as f32,
        case["tol"]["atol"].as_f64().expect("atol") as f32,
    )
}

/// Asserts `|got - want| <= atol + rtol |want|` elementwise, naming the case and the element.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, (rtol, atol): (f32, f32)) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    for (i, (&g, &w)) in got.data().iter().zip(want.data()).enumerate() {
        assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}: element {i}: got {g}, expected {w} (rtol {rtol}, atol {atol})"
        );
    }
}
