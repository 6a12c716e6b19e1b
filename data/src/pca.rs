//! AlexNet's PCA colour augmentation, and the 3x3 symmetric eigen-solver it needs.
//!
//! Over the training set, the RGB values of all pixels have a 3x3 covariance with eigenvectors
//! p1, p2, p3 and eigenvalues l1 >= l2 >= l3. For each image, draw alpha_i ~ N(0, 0.1) once and
//! add `[p1 p2 p3] [alpha1 l1, alpha2 l2, alpha3 l3]^T` to every pixel: the image's colour shifts
//! along the directions in which natural colours vary, by amounts proportional to how much they
//! vary there, so the network learns that object identity does not depend on illumination.

use super::dataset::Dataset;
use super::transform::{chw, Transform};
use rand::Rng as _;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use tapegrad_autograd::{Error, Result, Rng, Tensor};

/// Eigen-decomposition of a symmetric 3x3 matrix by cyclic Jacobi rotations: returns the
/// eigenvalues in descending order and the matching unit eigenvectors as rows
/// (`a * vecs[i] = vals[i] * vecs[i]`). Fails on a non-symmetric or non-finite matrix.
///
/// Each rotation in the (p, q) plane zeroes `a[p][q]`; the sum of squares off the diagonal
/// shrinks quadratically once small, so a handful of sweeps reach machine precision.
pub fn symmetric_eigen3(a: [[f64; 3]; 3]) -> Result<([f64; 3], [[f64; 3]; 3])> {
    if a.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "symmetric_eigen3",
            format!("matrix {a:?} has non-finite entries"),
        ));
    }
    let scale = a.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    for (p, q) in [(0, 1), (0, 2), (1, 2)] {
        if (a[p][q] - a[q][p]).abs() > 1e-9 * scale.max(1e-300) {
            return Err(Error::invalid(
                "symmetric_eigen3",
                format!("matrix {a:?} is not symmetric ([{p}][{q}] != [{q}][{p}])"),
            ));
        }
    }
    let mut m = a;
    // Columns of v are the eigenvectors found so far.
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..64 {
        let off = m[0][1].powi(2) + m[0][2].powi(2) + m[1][2].powi(2);
        if off <= (1e-30 * scale * scale).max(f64::MIN_POSITIVE) {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if m[p][q] == 0.0 {
                continue;
            }
            // theta = cot(2 phi); t = tan(phi), the smaller root, for stability.
            let theta = (m[q][q] - m[p][p]) / (2.0 * m[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            let mut r = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
            r[p][p] = c;
            r[q][q] = c;
            r[p][q] = s;
            r[q][p] = -s;
            // m <- r^T m r, v <- v r
            m = matmul3(&transpose3(&r), &matmul3(&m, &r));
            v = matmul3(&v, &r);
        }
    }
    let mut order = [0, 1, 2];
    order.sort_by(|&i, &j| m[j][j].total_cmp(&m[i][i]));
    let vals = order.map(|i| m[i][i]);
    let vecs = order.map(|i| [v[0][i], v[1][i], v[2][i]]);
    Ok((vals, vecs))
}

fn matmul3(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

fn transpose3(a: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in a.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            out[j][i] = x;
        }
    }
    out
}

/// Images summed in one task by [`rgb_covariance`].
const IMAGES_PER_GROUP: usize = 16;

/// The 3x3 covariance of RGB values over every pixel of every image of an RGB dataset.
pub fn rgb_covariance(data: &Dataset) -> Result<[[f64; 3]; 3]> {
    let [c, h, w] = data.sample_shape();
    if c != 3 || data.is_empty() {
        return Err(Error::invalid(
            "rgb_covariance",
            format!(
                "needs a non-empty dataset of 3-channel images, got {} samples of {:?}",
                data.len(),
                data.sample_shape()
            ),
        ));
    }
    let hw = h * w;
    // Sums of x_c and x_c * x_d in f64 over fixed groups of images in parallel, then the
    // groups' sums added in order: the same bits on any number of threads.
    type Sums = ([f64; 3], [[f64; 3]; 3]);
    let add = |(mut s, mut ss): Sums, (s2, ss2): &Sums| -> Sums {
        for i in 0..3 {
            s[i] += s2[i];
            for j in 0..3 {
                ss[i][j] += ss2[i][j];
            }
        }
        (s, ss)
    };
    let zero: Sums = ([0.0; 3], [[0.0; 3]; 3]);
    let groups: Vec<Sums> = data
        .pixels()
        .par_chunks(3 * hw * IMAGES_PER_GROUP)
        .map(|group| {
            let (mut s, mut ss) = zero;
            for img in group.chunks_exact(3 * hw) {
                for p in 0..hw {
                    let x = [img[p] as f64, img[hw + p] as f64, img[2 * hw + p] as f64];
                    for i in 0..3 {
                        s[i] += x[i];
                        for j in 0..3 {
                            ss[i][j] += x[i] * x[j];
                        }
                    }
                }
            }
            (s, ss)
        })
        .collect();
    let (s, ss) = groups.iter().fold(zero, add);
    let n = (data.len() * hw) as f64;
    let mut cov = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            cov[i][j] = ss[i][j] / n - (s[i] / n) * (s[j] / n);
        }
    }
    Ok(cov)
}

/// PCA colour augmentation with alpha ~ N(0, `std`).
#[derive(Clone, Debug)]
pub struct PcaColor {
    eigenvalues: [f32; 3],
    eigenvectors: [[f32; 3]; 3],
    std: f32,
    sqrt_eigenvalues: bool,
}

impl PcaColor {
    /// From an RGB covariance matrix, with the paper's alpha standard deviation of 0.1.
    pub fn from_covariance(cov: [[f64; 3]; 3]) -> Result<PcaColor> {
        let (vals, vecs) = symmetric_eigen3(cov)?;
        Ok(PcaColor {
            // A covariance is positive semi-definite; round-off may leave a tiny negative value.
            eigenvalues: vals.map(|l| l.max(0.0) as f32),
            eigenvectors: vecs.map(|v| v.map(|x| x as f32)),
            std: 0.1,
            sqrt_eigenvalues: false,
        })
    }

    /// Fits the principal axes of RGB colour over a training set (see [`rgb_covariance`]).
    pub fn fit(train: &Dataset) -> Result<PcaColor> {
        PcaColor::from_covariance(rgb_covariance(train)?)
    }

    /// Uses another standard deviation for alpha.
    pub fn with_std(mut self, std: f32) -> PcaColor {
        self.std = std;
        self
    }

    /// Scales by sqrt(lambda_i), a standard deviation in pixel units, instead of lambda_i: the
    /// paper writes lambda_i, but most reimplementations use its root, since with pixels in
    /// [0, 1] the eigenvalues are small squares and the paper's shift becomes tiny.
    pub fn with_sqrt_eigenvalues(mut self) -> PcaColor {
        self.sqrt_eigenvalues = true;
        self
    }

    /// Eigenvalues of the covariance, descending.
    pub fn eigenvalues(&self) -> [f32; 3] {
        self.eigenvalues
    }

    /// Unit eigenvectors (rows), matching [`Self::eigenvalues`].
    pub fn eigenvectors(&self) -> [[f32; 3]; 3] {
        self.eigenvectors
    }

    /// One image's colour shift: sum_i alpha_i lambda_i p_i with fresh alpha_i ~ N(0, std).
    pub fn draw_shift(&self, rng: &mut Rng) -> [f32; 3] {
        let mut shift = [0f32; 3];
        for (lambda, p) in self.eigenvalues.iter().zip(&self.eigenvectors) {
            let alpha = self.std * rng.sample::<f32, _>(StandardNormal);
            let scale = if self.sqrt_eigenvalues {
                lambda.sqrt()
            } else {
                *lambda
            };
            for (s, &pc) in shift.iter_mut().zip(p) {
                *s += alpha * scale * pc;
            }
        }
        shift
    }
}

impl Transform for PcaColor {
    fn apply(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let (c, h, w) = chw("PcaColor", x)?;
        if c != 3 {
            return Err(Error::shape(
                "PcaColor",
                &[x.shape()],
                "an RGB image [3, H, W]",
            ));
        }
        let shift = self.draw_shift(rng);
        let mut out = x.to_vec();
        for (plane, s) in out.chunks_mut(h * w).zip(shift) {
            plane.iter_mut().for_each(|v| *v += s);
        }
        Tensor::from_vec(out, [c, h, w])
    }
}
