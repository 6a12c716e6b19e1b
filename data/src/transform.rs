//! Per-sample transforms on one `[C, H, W]` image: the resizing, cropping, flipping and
//! normalisation of the AlexNet recipe (random 224 crops of 256 images plus horizontal flips for
//! training; ten crops for testing). PCA colour augmentation lives in [`super::pca`].
//!
//! A transform takes the generator it may draw from, so the loader can hand each sample its own
//! seeded generator and results do not depend on which thread ran it.
//!
//! ```
//! use tapegrad_autograd::{rng, Tensor};
//! use tapegrad_data::{Compose, RandomCrop, RandomHorizontalFlip, Transform};
//! let augment = Compose::new()
//!     .then(RandomCrop::new(28, 4, 0.0))
//!     .then(RandomHorizontalFlip::new(0.5));
//! let x = Tensor::ones([1, 28, 28]);
//! assert_eq!(augment.apply(&x, &mut rng(0)).unwrap().dims(), &[1, 28, 28]);
//! ```

use super::folder::MAX_IMAGE_PIXELS;
use rand::Rng as _;
use tapegrad_autograd::{Error, Result, Rng, Tensor};

/// A (possibly random) map from one `[C, H, W]` image to another.
pub trait Transform: Send + Sync {
    fn apply(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor>;
}

/// `(C, H, W)` of a rank-3 tensor, or an error naming `op`.
pub(crate) fn chw(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize)> {
    match *x.dims() {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok((c, h, w)),
        _ => Err(Error::shape(
            op,
            &[x.shape()],
            "one non-empty [C, H, W] image",
        )),
    }
}

/// The size after resizing the shorter side to `s`, keeping the aspect ratio (the longer side
/// is truncated, as torchvision does); an error when `s` or a side is zero, or the result has
/// more than `max_pixels` pixels.
pub(crate) fn shorter_side_dims(
    h: usize,
    w: usize,
    s: usize,
    max_pixels: u64,
) -> std::result::Result<(usize, usize), String> {
    let refuse =
        |why: &str| format!("cannot resize a {h}x{w} image to a shorter side of {s}: {why}");
    if s == 0 || h == 0 || w == 0 {
        return Err(refuse("no side may be zero"));
    }
    let (short, long) = (h.min(w) as u64, h.max(w) as u64);
    // The longer side grows to s * long / short, which needs s * long first.
    let grown = (s as u64).checked_mul(long).map(|p| (p / short).max(1));
    let pixels = grown.and_then(|g| g.checked_mul(s as u64));
    let (Some(grown), Some(pixels)) = (grown, pixels) else {
        return Err(refuse("the size overflows"));
    };
    if pixels > max_pixels {
        return Err(refuse(&format!(
            "the result would have {pixels} pixels, over the limit of {max_pixels}"
        )));
    }
    let grown = grown as usize;
    Ok(if h <= w { (s, grown) } else { (grown, s) })
}

/// Bilinear resampling of `[C, h, w]` to `[C, oh, ow]` with half-pixel centres
/// (`align_corners = false`, no antialiasing; PyTorch's `interpolate(mode="bilinear")`):
/// output pixel `o` samples input position `(o + 0.5) * in / out - 0.5`, clamped at the border.
pub(crate) fn resize_raw(
    data: &[f32],
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    // For each output coordinate: the two input indices and the weight of the second.
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (src.floor() as usize).min(n_in - 1);
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, src - i0 as f32)
            })
            .collect()
    };
    let (ty, tx) = (taps(h, oh), taps(w, ow));
    let mut out = Vec::with_capacity(c * oh * ow);
    for plane in data.chunks(h * w) {
        for &(y0, y1, fy) in &ty {
            for &(x0, x1, fx) in &tx {
                let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
                let bot = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
                out.push(top * (1.0 - fy) + bot * fy);
            }
        }
    }
    out
}

/// The `[C, oh, ow]` window of `[C, h, w]` whose top-left corner is `(top, left)`; the caller
/// guarantees it fits.
pub(crate) fn crop_raw(
    data: &[f32],
    (h, w): (usize, usize),
    (top, left): (usize, usize),
    (oh, ow): (usize, usize),
) -> Vec<f32> {
    let mut out = Vec::with_capacity(data.len() / (h * w) * oh * ow);
    for plane in data.chunks(h * w) {
        for y in top..top + oh {
            out.extend_from_slice(&plane[y * w + left..y * w + left + ow]);
        }
    }
    out
}

/// The central `[C, oh, ow]` window (rounding the offset down when the margin is odd).
pub(crate) fn center_crop_raw(
    data: &[f32],
    _c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    crop_raw(data, (h, w), ((h - oh) / 2, (w - ow) / 2), (oh, ow))
}

/// Images flipped left to right: `[C, H, W]` or a batch `[N, C, H, W]`, each row reversed
/// (test-time flips score a batch and its mirror images).
pub fn mirror(images: &Tensor) -> Result<Tensor> {
    if !(3..=4).contains(&images.rank()) {
        return Err(Error::shape(
            "mirror",
            &[images.shape()],
            "[C, H, W] or [N, C, H, W] images",
        ));
    }
    let w = images.dims()[images.rank() - 1].max(1);
    Tensor::from_vec(flip_raw(images.data(), w), images.shape().clone())
}

fn flip_raw(data: &[f32], w: usize) -> Vec<f32> {
    let mut out = data.to_vec();
    for row in out.chunks_mut(w) {
        row.reverse();
    }
    out
}

fn check_fits(op: &'static str, x: &Tensor, oh: usize, ow: usize) -> Result<()> {
    let (_, h, w) = chw(op, x)?;
    if oh == 0 || ow == 0 || oh > h || ow > w {
        return Err(Error::shape(
            op,
            &[x.shape()],
            format!("a crop of {oh}x{ow} inside the image (and not empty)"),
        ));
    }
    Ok(())
}

/// Transforms applied one after another.
#[derive(Default)]
pub struct Compose(Vec<Box<dyn Transform>>);

impl Compose {
    pub fn new() -> Compose {
        Compose(Vec::new())
    }

    /// Appends `t`, to run after the ones already there.
    pub fn then(mut self, t: impl Transform + 'static) -> Compose {
        self.0.push(Box::new(t));
        self
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Transform for Compose {
    fn apply(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let mut y = x.clone();
        for t in &self.0 {
            y = t.apply(&y, rng)?;
        }
        Ok(y)
    }
}

/// Resizes so that the shorter side is `N` pixels (bilinear), keeping the aspect ratio. A
/// result of more than [`MAX_IMAGE_PIXELS`] pixels is an error.
pub struct ResizeShorter(pub usize);

impl Transform for ResizeShorter {
    fn apply(&self, x: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        let (c, h, w) = chw("ResizeShorter", x)?;
        let (oh, ow) = shorter_side_dims(h, w, self.0, MAX_IMAGE_PIXELS)
            .map_err(|msg| Error::invalid("ResizeShorter", msg))?;
        Tensor::from_vec(resize_raw(x.data(), c, h, w, oh, ow), [c, oh, ow])
    }
}

/// The central `h x w` window.
pub struct CenterCrop {
    pub h: usize,
    pub w: usize,
}

impl CenterCrop {
    /// A square crop.
    pub fn new(size: usize) -> CenterCrop {
        CenterCrop { h: size, w: size }
    }
}

impl Transform for CenterCrop {
    fn apply(&self, x: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        check_fits("CenterCrop", x, self.h, self.w)?;
        let (c, h, w) = chw("CenterCrop", x)?;
        let out = center_crop_raw(x.data(), c, h, w, self.h, self.w);
        Tensor::from_vec(out, [c, self.h, self.w])
    }
}

/// A uniformly placed `h x w` window of the image padded by `padding` pixels of `fill` on every
/// side (the CIFAR recipe: pad 4, crop 32). With no padding, the AlexNet recipe: 224 of 256.
/// A padded image of more than [`MAX_IMAGE_PIXELS`] pixels is an error.
pub struct RandomCrop {
    pub h: usize,
    pub w: usize,
    pub padding: usize,
    pub fill: f32,
}

impl RandomCrop {
    /// A square crop of `size` after padding by `padding` pixels of `fill`.
    pub fn new(size: usize, padding: usize, fill: f32) -> RandomCrop {
        RandomCrop {
            h: size,
            w: size,
            padding,
            fill,
        }
    }
}

impl Transform for RandomCrop {
    fn apply(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        let (_, h, w) = chw("RandomCrop", x)?;
        let p = self.padding;
        let side = |n: usize| p.checked_mul(2).and_then(|p2| p2.checked_add(n));
        let pixels = side(h)
            .zip(side(w))
            .and_then(|(ph, pw)| (ph as u64).checked_mul(pw as u64));
        if pixels.is_none_or(|n| n > MAX_IMAGE_PIXELS) {
            return Err(Error::invalid(
                "RandomCrop",
                format!("padding a {h}x{w} image by {p} gives more than {MAX_IMAGE_PIXELS} pixels"),
            ));
        }
        let padded = if p > 0 {
            x.pad(&[(p, p), (p, p)], self.fill)?
        } else {
            x.clone()
        };
        check_fits("RandomCrop", &padded, self.h, self.w)?;
        let (c, h, w) = chw("RandomCrop", &padded)?;
        let top = rng.gen_range(0..=h - self.h);
        let left = rng.gen_range(0..=w - self.w);
        let out = crop_raw(padded.data(), (h, w), (top, left), (self.h, self.w));
        Tensor::from_vec(out, [c, self.h, self.w])
    }
}

/// Mirrors the image left to right.
pub struct HorizontalFlip;

impl Transform for HorizontalFlip {
    fn apply(&self, x: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        let (c, h, w) = chw("HorizontalFlip", x)?;
        Tensor::from_vec(flip_raw(x.data(), w), [c, h, w])
    }
}

/// Mirrors the image left to right with probability `p`.
pub struct RandomHorizontalFlip {
    pub p: f64,
}

impl RandomHorizontalFlip {
    pub fn new(p: f64) -> RandomHorizontalFlip {
        RandomHorizontalFlip { p }
    }
}

impl Transform for RandomHorizontalFlip {
    fn apply(&self, x: &Tensor, rng: &mut Rng) -> Result<Tensor> {
        chw("RandomHorizontalFlip", x)?;
        // Always draw, so the generator advances the same way whichever branch is taken.
        if rng.gen::<f64>() < self.p {
            HorizontalFlip.apply(x, rng)
        } else {
            Ok(x.clone())
        }
    }
}

/// `(x - mean[c]) / std[c]` per channel.
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// Fails unless `mean` and `std` have one entry per channel and every std is positive.
    pub fn new(mean: &[f32], std: &[f32]) -> Result<Normalize> {
        if mean.len() != std.len() || mean.is_empty() {
            return Err(Error::invalid(
                "Normalize",
                format!(
                    "{} means and {} stds: need one of each per channel",
                    mean.len(),
                    std.len()
                ),
            ));
        }
        if let Some(s) = std.iter().find(|&&s| !(s > 0.0 && s.is_finite())) {
            return Err(Error::invalid(
                "Normalize",
                format!("standard deviation {s} must be positive and finite"),
            ));
        }
        Ok(Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        })
    }
}

impl Transform for Normalize {
    fn apply(&self, x: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        let (c, h, w) = chw("Normalize", x)?;
        if c != self.mean.len() {
            return Err(Error::shape(
                "Normalize",
                &[x.shape()],
                format!("{} channels, one per mean/std", self.mean.len()),
            ));
        }
        let mut out = x.to_vec();
        for (ch, plane) in out.chunks_mut(h * w).enumerate() {
            let (m, s) = (self.mean[ch], self.std[ch]);
            plane.iter_mut().for_each(|v| *v = (*v - m) / s);
        }
        Tensor::from_vec(out, [c, h, w])
    }
}

/// Subtracts a mean: a whole mean image `[C, H, W]` (AlexNet's) or one value per channel
/// `[C, 1, 1]`.
pub struct SubtractMean {
    mean: Tensor,
}

impl SubtractMean {
    /// Subtracts `mean`, which must be `[C, H, W]` or `[C, 1, 1]`.
    pub fn new(mean: Tensor) -> Result<SubtractMean> {
        chw("SubtractMean", &mean)?;
        Ok(SubtractMean { mean })
    }

    pub fn per_channel(mean: &[f32]) -> Result<SubtractMean> {
        SubtractMean::new(Tensor::from_vec(mean.to_vec(), [mean.len(), 1, 1])?)
    }
}

impl Transform for SubtractMean {
    fn apply(&self, x: &Tensor, _rng: &mut Rng) -> Result<Tensor> {
        let (c, h, w) = chw("SubtractMean", x)?;
        let m = self.mean.dims();
        if m[0] != c || !((m[1] == h && m[2] == w) || (m[1] == 1 && m[2] == 1)) {
            return Err(Error::shape(
                "SubtractMean",
                &[x.shape(), self.mean.shape()],
                "a mean of [C, H, W] or [C, 1, 1] matching the image",
            ));
        }
        x.sub(&self.mean)
    }
}

/// The lecture's test-time ten crops: the four corners and the centre, then the mirror image of
/// each, in the order top-left, top-right, bottom-left, bottom-right, centre (as torchvision).
pub struct TenCrop {
    pub h: usize,
    pub w: usize,
}

impl TenCrop {
    pub fn new(size: usize) -> TenCrop {
        TenCrop { h: size, w: size }
    }

    /// The ten views, each `[C, h, w]`.
    pub fn views(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        check_fits("TenCrop", x, self.h, self.w)?;
        let (c, h, w) = chw("TenCrop", x)?;
        let (oh, ow) = (self.h, self.w);
        let corners = [
            (0, 0),
            (0, w - ow),
            (h - oh, 0),
            (h - oh, w - ow),
            ((h - oh) / 2, (w - ow) / 2),
        ];
        let crops: Vec<Vec<f32>> = corners
            .iter()
            .map(|&at| crop_raw(x.data(), (h, w), at, (oh, ow)))
            .collect();
        let mirrors: Vec<Vec<f32>> = crops.iter().map(|v| flip_raw(v, ow)).collect();
        crops
            .into_iter()
            .chain(mirrors)
            .map(|v| Tensor::from_vec(v, [c, oh, ow]))
            .collect()
    }

    /// The ten views stacked as a batch `[10, C, h, w]`, ready for one forward pass whose
    /// softmax outputs are then averaged.
    pub fn batch(&self, x: &Tensor) -> Result<Tensor> {
        let views = self.views(x)?;
        Tensor::stack(&views.iter().collect::<Vec<_>>(), 0)
    }
}
