//! Backprop by hand and by tape: the chain rule on z = f(x, y), and the lecture's 3x3 / 2x2
//! convolution, whose backward pass is itself a pair of convolutions.
//!
//! A node z = f(x, y) receives dL/dz from above and sends dL/dx = dL/dz * dz/dx and
//! dL/dy = dL/dz * dz/dy to its inputs. For the convolution h = X (*) W (cross-correlation,
//! stride 1, no padding):
//! - h_ij = sum_ab W_ab X_(i+a)(j+b), so h11 = W11X11 + W12X12 + W21X21 + W22X22;
//! - dW_ab = sum_ij X_(i+a)(j+b) dh_ij: X correlated with dh
//!   (dW12 = X12dh11 + X13dh12 + X22dh21 + X23dh22);
//! - dX_kl = sum over i + a = k, j + b = l of W_ab dh_ij: the full convolution of dh (padded by
//!   one on every side) with the filter flipped in both directions.

use tapegrad_autograd::{BackwardOptions, Conv2dOptions, Result, Tape, Tensor};

/// The chain rule on `z = f(x, y) = x^2 y + y`, whose derivatives are dz/dx = 2xy and
/// dz/dy = x^2 + 1.
#[derive(Clone, Debug)]
pub struct ChainRule {
    pub x: f32,
    pub y: f32,
    pub z: f32,
    /// The gradient that arrives from above (dL/dz).
    pub upstream: f32,
    /// dz/dx and dz/dy, from a backward pass seeded with 1.
    pub dz_dx: f32,
    pub dz_dy: f32,
    /// dL/dx and dL/dy, from a backward pass seeded with `upstream`.
    pub dl_dx: f32,
    pub dl_dy: f32,
    /// The step-by-step trace of the backward pass seeded with `upstream`.
    pub trace: String,
}

/// Runs the chain-rule example at (x, y), with dL/dz = `upstream` arriving from above.
pub fn chain_rule(x: f32, y: f32, upstream: f32) -> Result<ChainRule> {
    // Records z = x^2 y + y on a fresh tape and runs backward seeded with `seed`.
    let run = |seed: f32, trace: bool| -> Result<(f32, f32, f32, String)> {
        let tape = Tape::new();
        let xv = tape.var(Tensor::scalar(x)).label("x");
        let yv = tape.var(Tensor::scalar(y)).label("y");
        let z = xv
            .square()
            .label("x^2")
            .mul(yv)?
            .label("x^2 y")
            .add(yv)?
            .label("z");
        let grads = z.backward_with_options(
            Tensor::scalar(seed),
            BackwardOptions {
                trace,
                ..BackwardOptions::default()
            },
        )?;
        let text = grads.trace().map(|t| t.to_string()).unwrap_or_default();
        Ok((
            z.item()?,
            grads.get_or_zeros(xv).item()?,
            grads.get_or_zeros(yv).item()?,
            text,
        ))
    };
    let (z, dz_dx, dz_dy, _) = run(1.0, false)?;
    let (_, dl_dx, dl_dy, trace) = run(upstream, true)?;
    Ok(ChainRule {
        x,
        y,
        z,
        upstream,
        dz_dx,
        dz_dy,
        dl_dx,
        dl_dy,
        trace,
    })
}

/// The lecture's input (golden `seed_examples.json`, `conv_3x3_2x2`).
pub const CONV_X: [[f32; 3]; 3] = [[1.0, 2.0, 0.0], [3.0, -1.0, 2.0], [0.0, 1.0, 4.0]];
/// The filter.
pub const CONV_W: [[f32; 2]; 2] = [[1.0, -1.0], [2.0, 0.0]];
/// The gradient arriving at the output, dL/dh.
pub const CONV_DH: [[f32; 2]; 2] = [[1.0, 2.0], [-1.0, 3.0]];

/// The convolution example: forward, backward by the tape, and the two convolutions that give
/// the same gradients. All tensors are 2-d.
#[derive(Clone, Debug)]
pub struct ConvExample {
    pub x: Tensor,
    pub w: Tensor,
    pub dh: Tensor,
    /// h = X (*) W.
    pub h: Tensor,
    /// dL/dW and dL/dX from the tape.
    pub dw: Tensor,
    pub dx: Tensor,
    /// X correlated with dh (a 2x2 "filter" sliding over X).
    pub dw_as_correlation: Tensor,
    /// dh padded by 1 on every side, correlated with W flipped in both directions.
    pub dx_as_full_convolution: Tensor,
    /// The flipped filter.
    pub w_flipped: Tensor,
}

fn grid<const N: usize>(rows: &[[f32; N]]) -> Result<Tensor> {
    Tensor::from_vec(rows.concat(), [rows.len(), N])
}

/// A 2-d correlation computed by `conv2d` on an inference tape.
fn correlate(input: &Tensor, filter: &Tensor) -> Result<Tensor> {
    let tape = Tape::inference();
    let as4 = |t: &Tensor| t.reshape([1, 1, t.dims()[0], t.dims()[1]]);
    let out = tape
        .input(as4(input)?)
        .conv2d(tape.input(as4(filter)?), None, Conv2dOptions::default())?
        .value();
    let d = out.dims().to_vec();
    out.reshape([d[2], d[3]])
}

/// Runs the lecture's 3x3 / 2x2 convolution forward and backward (dL/dh = `CONV_DH`).
pub fn conv_example() -> Result<ConvExample> {
    let (x, w, dh) = (grid(&CONV_X)?, grid(&CONV_W)?, grid(&CONV_DH)?);
    let tape = Tape::new();
    let xv = tape.var(x.reshape([1, 1, 3, 3])?).label("X");
    let wv = tape.var(w.reshape([1, 1, 2, 2])?).label("W");
    let h = xv.conv2d(wv, None, Conv2dOptions::default())?;
    let grads = h.backward_with(dh.reshape([1, 1, 2, 2])?)?;
    let w_flipped = Tensor::from_vec(w.data().iter().rev().copied().collect(), [2, 2])?;
    Ok(ConvExample {
        h: h.value().reshape([2, 2])?,
        dw: grads.get_or_zeros(wv).reshape([2, 2])?,
        dx: grads.get_or_zeros(xv).reshape([3, 3])?,
        dw_as_correlation: correlate(&x, &dh)?,
        dx_as_full_convolution: correlate(&dh.pad(&[(1, 1), (1, 1)], 0.0)?, &w_flipped)?,
        w_flipped,
        x,
        w,
        dh,
    })
}

/// One sum of the example, written out with 1-based indices as on the slides, with the numbers
/// substituted and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Formula {
    /// `dW12 = X12dh11 + X13dh12 + X22dh21 + X23dh22`
    pub symbolic: String,
    /// `2*1 + 0*2 + (-1)*(-1) + 2*3`
    pub numeric: String,
    pub value: f32,
}

impl std::fmt::Display for Formula {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {} = {}", self.symbolic, self.numeric, self.value)
    }
}

/// The sums of the example: the four outputs h_ij, the four filter gradients dW_ab and the nine
/// input gradients dX_kl.
pub struct ConvFormulas {
    pub h: Vec<Formula>,
    pub dw: Vec<Formula>,
    pub dx: Vec<Formula>,
}

/// Builds one formula from its products `(name_a, a, name_b, b)`.
fn formula(lhs: String, terms: &[(String, f32, String, f32)]) -> Formula {
    let num = |v: f32| {
        if v < 0.0 {
            format!("({v})")
        } else {
            format!("{v}")
        }
    };
    Formula {
        symbolic: format!(
            "{lhs} = {}",
            terms
                .iter()
                .map(|(a, _, b, _)| format!("{a}{b}"))
                .collect::<Vec<_>>()
                .join(" + ")
        ),
        numeric: terms
            .iter()
            .map(|(_, a, _, b)| format!("{}*{}", num(*a), num(*b)))
            .collect::<Vec<_>>()
            .join(" + "),
        value: terms.iter().map(|(_, a, _, b)| a * b).sum(),
    }
}

/// Writes out every sum of the 3x3 / 2x2 example (`h11 = W11X11 + W12X12 + W21X21 + W22X22`)
/// with the example's numbers.
pub fn conv_formulas(e: &ConvExample) -> ConvFormulas {
    let (n, k) = (3, 2);
    let m = n - k + 1;
    let (x, w, dh) = (e.x.data(), e.w.data(), e.dh.data());
    let xn = |r: usize, c: usize| (format!("X{}{}", r + 1, c + 1), x[r * n + c]);
    let wn = |a: usize, b: usize| (format!("W{}{}", a + 1, b + 1), w[a * k + b]);
    let dn = |i: usize, j: usize| (format!("dh{}{}", i + 1, j + 1), dh[i * m + j]);
    let pairs = |s: usize| (0..s).flat_map(move |a| (0..s).map(move |b| (a, b)));
    let product = |(a, va): (String, f32), (b, vb): (String, f32)| (a, va, b, vb);

    let h = pairs(m)
        .map(|(i, j)| {
            let t: Vec<_> = pairs(k)
                .map(|(a, b)| product(wn(a, b), xn(i + a, j + b)))
                .collect();
            formula(format!("h{}{}", i + 1, j + 1), &t)
        })
        .collect();
    let dw = pairs(k)
        .map(|(a, b)| {
            let t: Vec<_> = pairs(m)
                .map(|(i, j)| product(xn(i + a, j + b), dn(i, j)))
                .collect();
            formula(format!("dW{}{}", a + 1, b + 1), &t)
        })
        .collect();
    let dx = pairs(n)
        .map(|(r, c)| {
            // X_rc fed h_ij through W_(r-i)(c-j), wherever that index is inside the filter.
            let t: Vec<_> = pairs(m)
                .filter(|&(i, j)| r >= i && c >= j && r - i < k && c - j < k)
                .map(|(i, j)| product(wn(r - i, c - j), dn(i, j)))
                .collect();
            formula(format!("dX{}{}", r + 1, c + 1), &t)
        })
        .collect();
    ConvFormulas { h, dw, dx }
}
