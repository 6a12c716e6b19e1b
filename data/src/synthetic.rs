//! A built-in image set for when no real data is installed: ten classes of simple drawn
//! patterns, 28x28 grey like MNIST, with random placement, size, phase, contrast and pixel
//! noise. The same seed always gives the same images. Each class is defined by a shape or an
//! orientation that a small convolutional network tells apart easily, while the randomness keeps
//! memorising pixels from being enough.

use super::dataset::Dataset;
use rand::Rng as _;
use rand_distr::StandardNormal;
use tapegrad_autograd::{rng, Error, Result, Rng};

/// Image side, as MNIST.
pub const SIDE: usize = 28;

/// The class names, by label.
pub const CLASSES: [&str; 10] = [
    "horizontal stripes",
    "vertical stripes",
    "diagonal stripes",
    "anti-diagonal stripes",
    "checkerboard",
    "square",
    "ring",
    "disc",
    "plus",
    "cross",
];

/// Standard deviation of the Gaussian pixel noise.
const NOISE: f32 = 0.1;

/// Whether pixel (y, x) is foreground in one drawing of `class`; the closure's parameters are
/// drawn once per image.
fn pattern(class: usize, r: &mut Rng) -> Box<dyn Fn(i32, i32) -> bool> {
    let s = SIDE as i32;
    match class {
        0..=3 => {
            let period = r.gen_range(4..=7);
            let phase = r.gen_range(0..period);
            let width = period / 2;
            Box::new(move |y, x| {
                let t = match class {
                    0 => y,
                    1 => x,
                    2 => x + y,
                    _ => x - y + s,
                };
                (t + phase) % period < width
            })
        }
        4 => {
            let cell = r.gen_range(3..=5);
            let (oy, ox) = (r.gen_range(0..cell), r.gen_range(0..cell));
            Box::new(move |y, x| ((y + oy) / cell + (x + ox) / cell) % 2 == 0)
        }
        5 => {
            let side = r.gen_range(8..=16);
            let (top, left) = (r.gen_range(2..=s - side - 2), r.gen_range(2..=s - side - 2));
            Box::new(move |y, x| (top..top + side).contains(&y) && (left..left + side).contains(&x))
        }
        6 | 7 => {
            let radius = r.gen_range(6..=10) as f32;
            let m = radius as i32 + 2;
            let (cy, cx) = (r.gen_range(m..=s - m) as f32, r.gen_range(m..=s - m) as f32);
            Box::new(move |y, x| {
                let d = ((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)).sqrt();
                if class == 6 {
                    (d - radius).abs() <= 1.2
                } else {
                    d <= radius
                }
            })
        }
        8 => {
            let (cy, cx) = (r.gen_range(9..=s - 10), r.gen_range(9..=s - 10));
            let arm = r.gen_range(6..=9);
            Box::new(move |y, x| {
                let (dy, dx) = ((y - cy).abs(), (x - cx).abs());
                (dy <= 1 && dx <= arm) || (dx <= 1 && dy <= arm)
            })
        }
        _ => {
            let (cy, cx) = (r.gen_range(9..=s - 10), r.gen_range(9..=s - 10));
            let arm = r.gen_range(6..=9);
            Box::new(move |y, x| {
                let (dy, dx) = (y - cy, x - cx);
                dy.abs() <= arm && ((dy - dx).abs() <= 1 || (dy + dx).abs() <= 1)
            })
        }
    }
}

/// Draws one image of `class` into `out` (SIDE * SIDE values in [0, 1]).
fn draw(class: usize, r: &mut Rng, out: &mut [f32]) {
    let fg_mask = pattern(class, r);
    let background = r.gen_range(0.0..0.25f32);
    let foreground = r.gen_range(0.65..1.0f32);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let base = if fg_mask(y as i32, x as i32) {
                foreground
            } else {
                background
            };
            let noise = NOISE * r.sample::<f32, _>(StandardNormal);
            out[y * SIDE + x] = (base + noise).clamp(0.0, 1.0);
        }
    }
}

/// `per_class` images of each of the ten classes, `[1, 28, 28]` in [0, 1], classes interleaved
/// (sample i has label i % 10) so that any prefix is balanced.
pub fn shapes(per_class: usize, seed: u64) -> Result<Dataset> {
    let too_many = || {
        Error::invalid(
            "synthetic::shapes",
            format!("{per_class} images per class: too many to hold in memory"),
        )
    };
    let n = per_class.checked_mul(CLASSES.len()).ok_or_else(too_many)?;
    let values = n.checked_mul(SIDE * SIDE).ok_or_else(too_many)?;
    let mut r = rng(seed);
    let mut pixels = Vec::new();
    pixels.try_reserve_exact(values).map_err(|_| too_many())?;
    pixels.resize(values, 0f32);
    let mut labels = Vec::with_capacity(n);
    for (i, img) in pixels.chunks_mut(SIDE * SIDE).enumerate() {
        let class = i % CLASSES.len();
        draw(class, &mut r, img);
        labels.push(class);
    }
    Dataset::new(
        pixels,
        [1, SIDE, SIDE],
        labels,
        CLASSES.iter().map(|s| s.to_string()).collect(),
    )
}

/// A training and a test split drawn with different seeds (so no image is in both).
pub fn split(train_per_class: usize, test_per_class: usize, seed: u64) -> Result<super::Split> {
    Ok(super::Split {
        train: shapes(train_per_class, seed)?,
        test: shapes(test_per_class, seed ^ 0x7e57_7e57_7e57_7e57)?,
    })
}
