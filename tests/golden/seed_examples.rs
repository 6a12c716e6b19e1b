//! seed_examples.json is not a case list but a dict of worked examples from the lecture. Each
//! known example is recomputed with tapegrad here; an example this file does not know fails the
//! check, so a new one cannot go unverified.

use super::case::Result;
use super::compare::compare_tensor;
use super::registry::{default_golden_dir, golden_dir};
use serde_json::Value;
use tapegrad_autograd::{Tape, Tensor, Var};

pub const FILE: &str = "seed_examples.json";

/// The file from `$GOLDEN_DIR`, or from the public set when that folder has none.
fn path() -> std::path::PathBuf {
    let p = golden_dir().join(FILE);
    if p.exists() {
        p
    } else {
        default_golden_dir().join(FILE)
    }
}

/// Checks every example; returns how many were checked, or every failure.
pub fn check() -> std::result::Result<usize, Vec<String>> {
    let path = path();
    let text =
        std::fs::read_to_string(&path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    let examples: serde_json::Map<String, Value> = serde_json::from_str(&text)
        .map_err(|e| vec![format!("{}: not a dict of examples: {e}", path.display())])?;
    let mut failures = Vec::new();
    for (name, ex) in &examples {
        let result = match name.as_str() {
            "softmax_2_4_2_1" => softmax(ex),
            "swish" => swish(ex),
            "tanh_vs_sigmoid" => tanh_vs_sigmoid(ex),
            "conv_3x3_2x2" => conv_3x3_2x2(ex),
            "alexnet_conv1" => alexnet_conv1(ex),
            _ => Err("unknown example: add a check for it".into()),
        };
        if let Err(e) = result {
            failures.push(format!("{FILE} / {name}: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(examples.len())
    } else {
        Err(failures)
    }
}

/// A (possibly nested) list of numbers as a tensor of the nesting's shape.
fn nested(v: &Value, what: &str) -> Result<Tensor> {
    fn walk(v: &Value, depth: usize, dims: &mut Vec<usize>, out: &mut Vec<f32>) -> bool {
        match v {
            Value::Number(n) => {
                out.push(n.as_f64().unwrap_or(f64::NAN) as f32);
                depth == dims.len()
            }
            Value::Array(a) => {
                if depth == dims.len() {
                    dims.push(a.len());
                } else if dims[depth] != a.len() {
                    return false;
                }
                a.iter().all(|x| walk(x, depth + 1, dims, out))
            }
            _ => false,
        }
    }
    let (mut dims, mut data) = (Vec::new(), Vec::new());
    if !walk(v, 0, &mut dims, &mut data) {
        return Err(format!("`{what}` is not a rectangular list of numbers").into());
    }
    Ok(Tensor::from_vec(data, dims)?)
}

fn field(ex: &Value, key: &str) -> Result<Tensor> {
    nested(ex.get(key).ok_or_else(|| format!("missing `{key}`"))?, key)
}

/// Fails with `what` if `got` and `want` differ beyond the golden default tolerance.
fn close(what: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<()> {
    match compare_tensor(got, want, rtol, atol) {
        None => Ok(()),
        Some(msg) => Err(format!("{what}: {msg}").into()),
    }
}

/// softmax([2, 4, 2, 1]) = e^x / sum(e^x) = [0.1025, 0.7573, 0.1025, 0.0377].
fn softmax(ex: &Value) -> Result<()> {
    let tape = Tape::new();
    let y = tape.var(field(ex, "input")?).softmax(0)?.value();
    close("output", &y, &field(ex, "output")?, 1e-4, 1e-5)?;
    // f32 carries ~7 digits: the float64 values agree to well within 1e-6.
    close(
        "output_float64",
        &y,
        &field(ex, "output_float64")?,
        0.0,
        1e-6,
    )
}

/// swish f = x sigmoid(x); the tape's derivative must equal the closed form
/// f + sigmoid(x) (1 - f) (the product rule: sigmoid(x) + x s(1-s) = s + f(1-s) = f + s(1-f)).
fn swish(ex: &Value) -> Result<()> {
    let tape = Tape::new();
    let x = tape.var(field(ex, "x")?);
    let f = x.swish();
    let df = f
        .backward_with(Tensor::ones(f.shape()))?
        .get(x)
        .ok_or("no gradient for x")?;
    let fv = f.value();
    close("f", &fv, &field(ex, "f")?, 1e-4, 1e-5)?;
    close("df_autograd", &df, &field(ex, "df_autograd")?, 1e-4, 1e-5)?;
    close(
        "df_closed_form",
        &df,
        &field(ex, "df_closed_form")?,
        1e-4,
        1e-5,
    )?;
    let s = x.value().sigmoid();
    let closed = fv.add(&s.mul(&fv.neg().add_scalar(1.0))?)?;
    close("our closed form", &df, &closed, 0.0, 1e-6)
}

/// tanh(x) = 2 sigmoid(2x) - 1, to within f32 rounding.
fn tanh_vs_sigmoid(ex: &Value) -> Result<()> {
    let tape = Tape::new();
    let x = tape.var(field(ex, "x")?);
    let t = x.tanh().value();
    let via_sigmoid = (x.mul_scalar(2.0).sigmoid().mul_scalar(2.0).sub_scalar(1.0)).value();
    close("tanh", &t, &field(ex, "tanh")?, 1e-4, 1e-5)?;
    let want = field(ex, "two_sigmoid_2x_minus_1")?;
    close("two_sigmoid_2x_minus_1", &via_sigmoid, &want, 1e-4, 1e-5)?;
    close("the identity", &via_sigmoid, &t, 0.0, 1e-6)
}

/// h = X (3x3) correlated with W (2x2): h_ij = sum_ab W_ab X_(i+a)(j+b), built from narrows so
/// that the tape gives dW (X correlated with dh) and dX (dh fully convolved with flipped W).
/// Small integers: every value is exact in f32.
fn conv_3x3_2x2(ex: &Value) -> Result<()> {
    let tape = Tape::new();
    let x = tape.var(field(ex, "X")?);
    let w = tape.var(field(ex, "W")?);
    let mut h: Option<Var> = None;
    for a in 0..2 {
        for b in 0..2 {
            let window = x.narrow(0, a, 2)?.narrow(1, b, 2)?;
            let term = window.mul(w.narrow(0, a, 1)?.narrow(1, b, 1)?)?;
            h = Some(match h {
                None => term,
                Some(acc) => acc.add(term)?,
            });
        }
    }
    let h = h.ok_or("empty kernel")?;
    let grads = h.backward_with(field(ex, "dh")?)?;
    let dw = grads.get(w).ok_or("no gradient for W")?;
    let dx = grads.get(x).ok_or("no gradient for X")?;
    close("h", &h.value(), &field(ex, "h")?, 0.0, 0.0)?;
    for key in ["dW", "dW_as_correlation_of_X_with_dh"] {
        close(key, &dw, &field(ex, key)?, 0.0, 0.0)?;
    }
    for key in [
        "dX",
        "dX_as_full_convolution_of_dh_with_flipped_W",
        "dX_as_conv_transpose2d_of_dh_with_W",
    ] {
        close(key, &dx, &field(ex, key)?, 0.0, 0.0)?;
    }
    Ok(())
}

/// The AlexNet conv1 counts, recomputed from the layer description
/// `Conv2d(C, K, kernel_size=k, stride=s, padding=p) on CxHxW`: output size
/// floor((H + 2p - k) / s) + 1, weights k*k*C*K, MACs weights * out^2.
fn alexnet_conv1(ex: &Value) -> Result<()> {
    check_conv_counts(ex)?;
    let tv = ex
        .get("torchvision_alexnet_conv1")
        .ok_or("missing torchvision_alexnet_conv1")?;
    check_conv_counts(tv)
}

fn check_conv_counts(ex: &Value) -> Result<()> {
    let layer = ex
        .get("layer")
        .and_then(Value::as_str)
        .ok_or("missing `layer`")?;
    let nums: Vec<u64> = layer
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        // "Conv2d(...)": the 2 of the name comes first.
        .skip(1)
        .collect();
    let [c, k_out, k, s, p, _, h, w] = nums[..] else {
        return Err(format!("cannot read the layer `{layer}`").into());
    };
    let out_h = (h + 2 * p - k) / s + 1;
    let out_w = (w + 2 * p - k) / s + 1;
    let weights = k * k * c * k_out;
    let want = |key: &str| {
        ex.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("missing integer `{key}`"))
    };
    let shape: Vec<u64> = ex
        .get("output_shape")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let mut checks = vec![
        ("weights", weights, want("weights")?),
        ("bias", k_out, want("bias")?),
        ("macs", weights * out_h * out_w, want("macs")?),
    ];
    if ex.get("params_with_bias").is_some() {
        checks.push((
            "params_with_bias",
            weights + k_out,
            want("params_with_bias")?,
        ));
    }
    for (what, got, expected) in checks {
        if got != expected {
            return Err(format!("{layer}: {what} {got}, expected {expected}").into());
        }
    }
    if shape != [1, k_out, out_h, out_w] {
        return Err(format!(
            "{layer}: output shape [1, {k_out}, {out_h}, {out_w}], expected {shape:?}"
        )
        .into());
    }
    Ok(())
}
