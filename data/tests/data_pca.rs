//! PCA colour augmentation and its 3x3 symmetric eigen-solver.

use rand::Rng as _;
use tapegrad_autograd::{rng, Tensor};
use tapegrad_data::{rgb_covariance, symmetric_eigen3, synthetic, Dataset, PcaColor, Transform};

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    (0..3).map(|i| a[i] * b[i]).sum()
}

fn mat_vec(a: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [dot(a[0], v), dot(a[1], v), dot(a[2], v)]
}

#[test]
fn jacobi_solves_hand_worked_matrices() {
    // Diagonal: the eigenvalues are the diagonal, sorted.
    let (vals, vecs) =
        symmetric_eigen3([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 2.0]]).unwrap();
    assert_eq!(vals, [3.0, 2.0, 1.0]);
    assert_eq!(vecs[0].map(f64::abs), [0.0, 1.0, 0.0]);
    // [[2, 1], [1, 2]] has eigenvalues 3 (along (1, 1)/sqrt 2) and 1 (along (1, -1)/sqrt 2);
    // the third axis is decoupled with eigenvalue 5.
    let a = [[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 5.0]];
    let (vals, vecs) = symmetric_eigen3(a).unwrap();
    for (got, want) in vals.iter().zip([5.0, 3.0, 1.0]) {
        assert!((got - want).abs() < 1e-12, "{vals:?}");
    }
    let h = 0.5f64.sqrt();
    assert!((dot(vecs[0], [0.0, 0.0, 1.0]).abs() - 1.0).abs() < 1e-12);
    assert!((dot(vecs[1], [h, h, 0.0]).abs() - 1.0).abs() < 1e-12);
    assert!((dot(vecs[2], [h, -h, 0.0]).abs() - 1.0).abs() < 1e-12);
    assert!(symmetric_eigen3([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).is_err());
    assert!(symmetric_eigen3([[f64::NAN, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).is_err());
}

#[test]
#[allow(clippy::needless_range_loop)] // filling a symmetric matrix reads best with indices
fn jacobi_decomposes_random_symmetric_matrices() {
    let r = &mut rng(11);
    for _ in 0..64 {
        let mut a = [[0.0f64; 3]; 3];
        for i in 0..3 {
            for j in i..3 {
                a[i][j] = r.gen_range(-2.0..2.0);
                a[j][i] = a[i][j];
            }
        }
        let (vals, vecs) = symmetric_eigen3(a).unwrap();
        // A v = lambda v, unit orthogonal vectors, descending order, trace preserved.
        for i in 0..3 {
            let av = mat_vec(&a, vecs[i]);
            for k in 0..3 {
                assert!((av[k] - vals[i] * vecs[i][k]).abs() < 1e-10, "{a:?}");
            }
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot(vecs[i], vecs[j]) - want).abs() < 1e-10);
            }
        }
        assert!(vals[0] >= vals[1] && vals[1] >= vals[2]);
        assert!((vals.iter().sum::<f64>() - (a[0][0] + a[1][1] + a[2][2])).abs() < 1e-10);
    }
}

/// Images whose every pixel is `base + t * dir` with t ~ U(-0.2, 0.2): the colour covariance is
/// var(t) dir dir^T = (0.4^2 / 12) dir dir^T, rank 1 along `dir`.
fn rank_one_dataset(dir: [f32; 3]) -> Dataset {
    let r = &mut rng(3);
    let (n, hw) = (20, 64);
    let mut pixels = Vec::new();
    for _ in 0..n {
        let ts: Vec<f32> = (0..hw).map(|_| r.gen_range(-0.2..0.2)).collect();
        for d in dir {
            pixels.extend(ts.iter().map(|t| 0.4 + t * d));
        }
    }
    Dataset::new(pixels, [3, 8, 8], vec![0; n], vec!["x".into()]).unwrap()
}

#[test]
fn a_rank_one_covariance_shifts_colours_along_its_one_axis() {
    // dir = (1, 2, 2) / 3 is a unit vector.
    let dir = [1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0];
    let data = rank_one_dataset(dir);
    let cov = rgb_covariance(&data).unwrap();
    // var(U(-0.2, 0.2)) = 0.4^2 / 12 = 0.01333; cov[1][2] = var * (2/3)(2/3) = 0.005926.
    assert!((cov[1][2] - 0.04 / 3.0 * 4.0 / 9.0).abs() < 1e-3, "{cov:?}");
    let pca = PcaColor::fit(&data).unwrap().with_std(1.0);
    let vals = pca.eigenvalues();
    assert!((vals[0] - 0.04 / 3.0).abs() < 1.5e-3, "{vals:?}");
    assert!(vals[1] < 1e-5 && vals[2] < 1e-5, "{vals:?}");
    let r = &mut rng(4);
    let img = data.image(0).unwrap();
    for _ in 0..50 {
        let out = pca.apply(&img, &mut r.clone()).unwrap();
        let shift = pca.draw_shift(r);
        // The transform adds the same shift it would draw from the same generator state.
        let delta = out
            .sub(&img)
            .unwrap()
            .mean(&[1, 2], false)
            .unwrap()
            .to_vec();
        let len = shift.iter().map(|s| s * s).sum::<f32>().sqrt();
        assert!(len > 0.0);
        // Parallel to dir: the cross product vanishes (relative to the shift's length).
        let cross = [
            shift[1] * dir[2] - shift[2] * dir[1],
            shift[2] * dir[0] - shift[0] * dir[2],
            shift[0] * dir[1] - shift[1] * dir[0],
        ];
        assert!(cross.iter().all(|c| c.abs() < 1e-3 * len), "{shift:?}");
        assert!(
            delta.iter().zip(shift).all(|(d, s)| (d - s).abs() < 1e-5),
            "{delta:?}"
        );
    }
}

#[test]
fn shifts_are_eigenvectors_weighted_by_alpha_times_eigenvalue() {
    // A covariance with three distinct positive eigenvalues along tilted axes.
    let a = [
        [0.02, 0.01, 0.003],
        [0.01, 0.018, 0.002],
        [0.003, 0.002, 0.0145],
    ];
    let pca = PcaColor::from_covariance(a).unwrap();
    let (vals, vecs) = (pca.eigenvalues(), pca.eigenvectors());
    assert!(
        vals[0] > vals[1] && vals[1] > vals[2] && vals[2] > 0.005,
        "{vals:?}"
    );
    // shift = sum_i alpha_i lambda_i p_i, so p_i . shift / lambda_i recovers alpha_i ~ N(0, 0.1).
    let r = &mut rng(8);
    let n = 4000;
    let mut sum = [0f64; 3];
    let mut sq = [0f64; 3];
    for _ in 0..n {
        let s = pca.draw_shift(r);
        for i in 0..3 {
            let alpha = (0..3).map(|k| vecs[i][k] * s[k]).sum::<f32>() / vals[i];
            sum[i] += alpha as f64;
            sq[i] += (alpha as f64).powi(2);
        }
    }
    for i in 0..3 {
        let mean = sum[i] / n as f64;
        let sd = (sq[i] / n as f64 - mean * mean).sqrt();
        // Standard error of the mean 0.1 / sqrt(4000) = 0.0016; of the sd about 0.0011.
        assert!(mean.abs() < 0.0065, "alpha_{i} mean {mean}");
        assert!((sd - 0.1).abs() < 0.006, "alpha_{i} sd {sd}");
    }
}

#[test]
fn the_mean_colour_is_preserved_in_expectation() {
    // Covariance with eigenvalues around 0.5 so that shifts are large (sd up to 0.1 * 0.6).
    let a = [[0.5, 0.1, 0.05], [0.1, 0.4, 0.02], [0.05, 0.02, 0.3]];
    let pca = PcaColor::from_covariance(a).unwrap();
    let img = Tensor::rand([3, 4, 4], 0.0, 1.0, &mut rng(1));
    let r = &mut rng(2);
    let n = 2000;
    let mut acc = vec![0f64; img.numel()];
    let mut moved = 0f64;
    for _ in 0..n {
        let out = pca.apply(&img, r).unwrap();
        for (a, (o, x)) in acc.iter_mut().zip(out.data().iter().zip(img.data())) {
            *a += (o - x) as f64;
            moved += ((o - x) as f64).abs();
        }
    }
    // Each shift is clearly non-zero on average (|shift| ~ 0.05) ...
    assert!(moved / (n * img.numel()) as f64 > 0.01);
    // ... yet they average out: the mean shift has standard error <= 0.06 / sqrt(2000) = 0.0013.
    assert!(acc.iter().all(|a| (a / n as f64).abs() < 0.006), "{acc:?}");
}

#[test]
fn fitting_needs_rgb_images() {
    let grey = synthetic::shapes(2, 0).unwrap();
    assert!(PcaColor::fit(&grey).is_err());
    let rgb = rank_one_dataset([1.0, 0.0, 0.0]);
    let pca = PcaColor::fit(&rgb).unwrap();
    assert!(pca.apply(&Tensor::zeros([1, 4, 4]), &mut rng(0)).is_err());
    // The square-root variant scales by sqrt(lambda): with alpha fixed by the same generator,
    // its shift is the plain one times 1 / sqrt(lambda1) on this rank-one covariance.
    let plain = pca.draw_shift(&mut rng(9));
    let rooted = pca.clone().with_sqrt_eigenvalues().draw_shift(&mut rng(9));
    let l1 = pca.eigenvalues()[0];
    assert!((rooted[0] - plain[0] / l1.sqrt()).abs() < 1e-4 * rooted[0].abs().max(1e-3));
}
