//! `Tensor`: an n-d array of f32 in row-major order with shared, immutable storage.
//!
//! A tensor is a value: it has no history and knows nothing of tapes. Cloning one shares its
//! storage (an `Arc`), so passing tensors around never copies data; every op returns a new tensor.
//! The kernels live beside this file, one family each: elementwise, reduce, movement, matmul,
//! unfold.

pub(crate) mod display;
mod elementwise;
mod gemm;
mod gemm_bounds;
mod matmul;
mod movement;
mod norm;
mod pool;
pub(crate) use movement::infer_shape;
pub(crate) mod buffer_pool;
mod reduce;
mod unfold;

use buffer_pool::Storage;
pub use buffer_pool::{buffer_pool_stats, set_buffer_pool_limit};
pub use gemm::sgemm;
pub use matmul::Transpose;
pub use unfold::Window2d;

use crate::error::{Error, Result};
use crate::shape::Shape;
use rand::{Rng as _, SeedableRng};
use std::sync::Arc;

/// The seeded random generator used throughout tapegrad: ChaCha with 12 rounds, reproducible
/// across platforms for a given seed. It draws the same numbers as rand's `StdRng` (a wrapper
/// of the same generator), but named directly its state (key, stream, position) can be read
/// and set, so checkpoints can save it and a resumed run draws what the uninterrupted one would.
pub type Rng = rand_chacha::ChaCha12Rng;

/// A generator from a seed: the same seed always gives the same numbers.
pub fn rng(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Work below this many elements runs on one thread: spawning costs more than it saves.
pub(crate) const PAR_THRESHOLD: usize = 1 << 15;

/// An n-d array of f32, row-major, with shared immutable storage.
#[derive(Clone)]
pub struct Tensor {
    data: Arc<Storage>,
    shape: Shape,
}

impl Tensor {
    /// A tensor from row-major data; fails if `data.len()` is not the shape's element count.
    pub fn from_vec(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        let numel = shape.check_size("from_vec")?;
        if data.len() != numel {
            return Err(Error::invalid(
                "from_vec",
                format!(
                    "{} values cannot fill shape {shape}, which holds {numel}",
                    data.len(),
                ),
            ));
        }
        Ok(Tensor {
            data: Arc::new(Storage::new(data)),
            shape,
        })
    }

    /// Internal constructor for kernels whose output length is right by construction (and
    /// whose shape passed [`Shape::check_size`], as every tensor's has).
    pub(crate) fn from_parts(data: Vec<f32>, shape: Shape) -> Tensor {
        debug_assert_eq!(Some(data.len()), shape.checked_numel());
        Tensor {
            data: Arc::new(Storage::new(data)),
            shape,
        }
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar(v: f32) -> Tensor {
        Tensor::from_parts(vec![v], Shape::scalar())
    }

    /// A 1-d tensor copied from a slice.
    pub fn from_slice(v: &[f32]) -> Tensor {
        Tensor::from_parts(v.to_vec(), Shape::new(&[v.len()]))
    }

    /// A tensor of `shape` filled with `v`; an error if the shape is too large to exist or its
    /// storage cannot be allocated.
    pub fn try_full(shape: impl Into<Shape>, v: f32) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.check_size("full")?;
        let data = buffer_pool::try_full("full", n, v)?;
        Ok(Tensor::from_parts(data, shape))
    }

    /// [`Tensor::try_full`], panicking with its error's message.
    pub fn full(shape: impl Into<Shape>, v: f32) -> Tensor {
        Tensor::try_full(shape, v).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Zeros of `shape`, or an error if it is too large to exist or be allocated.
    pub fn try_zeros(shape: impl Into<Shape>) -> Result<Tensor> {
        Tensor::try_full(shape, 0.0)
    }

    /// [`Tensor::try_zeros`], panicking with its error's message.
    pub fn zeros(shape: impl Into<Shape>) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    /// Ones of `shape`, or an error if it is too large to exist or be allocated.
    pub fn try_ones(shape: impl Into<Shape>) -> Result<Tensor> {
        Tensor::try_full(shape, 1.0)
    }

    /// [`Tensor::try_ones`], panicking with its error's message.
    pub fn ones(shape: impl Into<Shape>) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// `[start, start + step, ...]` up to but excluding `end`.
    pub fn arange(start: f32, end: f32, step: f32) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid(
                "arange",
                format!("start {start}, end {end} and a non-zero step {step} must be finite"),
            ));
        }
        // The float-to-int cast saturates, so a huge count becomes an error below, not a wrap.
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let shape = Shape::new(&[n]);
        shape.check_size("arange")?;
        let mut data = buffer_pool::try_for_overwrite("arange", n)?;
        data.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = start + i as f32 * step);
        Ok(Tensor::from_parts(data, shape))
    }

    /// Samples of N(0, 1) from a seeded generator; an error if the shape is too large.
    pub fn try_randn(shape: impl Into<Shape>, rng: &mut Rng) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.check_size("randn")?;
        let mut data = buffer_pool::try_for_overwrite("randn", n)?;
        data.iter_mut()
            .for_each(|v| *v = rng.sample::<f32, _>(rand_distr::StandardNormal));
        Ok(Tensor::from_parts(data, shape))
    }

    /// [`Tensor::try_randn`], panicking with its error's message.
    pub fn randn(shape: impl Into<Shape>, rng: &mut Rng) -> Tensor {
        Tensor::try_randn(shape, rng).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Samples of U[low, high) from a seeded generator; an error if the shape is too large.
    pub fn try_rand(shape: impl Into<Shape>, low: f32, high: f32, rng: &mut Rng) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.check_size("rand")?;
        let mut data = buffer_pool::try_for_overwrite("rand", n)?;
        data.iter_mut()
            .for_each(|v| *v = low + (high - low) * rng.gen::<f32>());
        Ok(Tensor::from_parts(data, shape))
    }

    /// [`Tensor::try_rand`], panicking with its error's message.
    pub fn rand(shape: impl Into<Shape>, low: f32, high: f32, rng: &mut Rng) -> Tensor {
        Tensor::try_rand(shape, low, high, rng).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The row-major data.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn to_vec(&self) -> Vec<f32> {
        self.data.to_vec()
    }

    /// The data for writing, copied first only if another tensor shares it.
    pub fn data_mut(&mut self) -> &mut [f32] {
        Arc::make_mut(&mut self.data).as_mut_slice()
    }

    /// Takes the data out, copying only if it is shared.
    pub fn into_vec(self) -> Vec<f32> {
        match Arc::try_unwrap(self.data) {
            Ok(s) => s.into_vec(),
            Err(shared) => shared.to_vec(),
        }
    }

    /// Whether two tensors share one storage (a clone or a reshape of each other).
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                &[&self.shape],
                "a tensor with exactly one element",
            ));
        }
        Ok(self.data[0])
    }

    /// The element at a multi-index, with bounds checked.
    pub fn get(&self, index: &[usize]) -> Result<f32> {
        Ok(self.data[self.offset("get", index)?])
    }

    fn offset(&self, op: &'static str, index: &[usize]) -> Result<usize> {
        if index.len() != self.rank() || index.iter().zip(self.dims()).any(|(&i, &d)| i >= d) {
            return Err(Error::invalid(
                op,
                format!("index {index:?} is outside shape {}", self.shape),
            ));
        }
        Ok(index
            .iter()
            .zip(self.shape.strides())
            .map(|(i, s)| i * s)
            .sum())
    }

    /// Whether `|self - other| <= atol + rtol * |other|` everywhere (shapes must be equal).
    pub fn allclose(&self, other: &Tensor, rtol: f32, atol: f32) -> bool {
        self.shape == other.shape
            && self
                .data
                .iter()
                .zip(other.data.iter())
                .all(|(&a, &b)| (a - b).abs() <= atol + rtol * b.abs() || a == b)
    }

    /// Largest absolute elementwise difference (infinite if the shapes differ).
    pub fn max_abs_diff(&self, other: &Tensor) -> f32 {
        if self.shape != other.shape {
            return f32::INFINITY;
        }
        self.data
            .iter()
            .zip(other.data.iter())
            .map(|(a, b)| if a == b { 0.0 } else { (a - b).abs() })
            .fold(0.0, f32::max)
    }
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Tensor) -> bool {
        self.shape == other.shape && self.data == other.data
    }
}

impl approx::AbsDiffEq for Tensor {
    type Epsilon = f32;
    fn default_epsilon() -> f32 {
        1e-6
    }
    fn abs_diff_eq(&self, other: &Self, epsilon: f32) -> bool {
        self.shape == other.shape
            && self
                .data
                .iter()
                .zip(other.data.iter())
                .all(|(a, b)| a.abs_diff_eq(b, epsilon))
    }
}

impl approx::RelativeEq for Tensor {
    fn default_max_relative() -> f32 {
        1e-5
    }
    fn relative_eq(&self, other: &Self, epsilon: f32, max_relative: f32) -> bool {
        self.shape == other.shape
            && self
                .data
                .iter()
                .zip(other.data.iter())
                .all(|(a, b)| a.relative_eq(b, epsilon, max_relative))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_storage() {
        let a = Tensor::ones([2, 3]);
        let b = a.clone();
        assert!(a.shares_storage(&b));
        assert!(Tensor::from_vec(vec![1.0; 5], [2, 3]).is_err());
        assert_eq!(a.get(&[1, 2]).unwrap(), 1.0);
        assert!(a.get(&[2, 0]).is_err());
    }

    #[test]
    fn seeded_generators_repeat() {
        let a = Tensor::randn([4], &mut rng(7));
        let b = Tensor::randn([4], &mut rng(7));
        assert_eq!(a, b);
        assert_eq!(
            Tensor::arange(0.0, 1.0, 0.25).unwrap().to_vec(),
            vec![0.0, 0.25, 0.5, 0.75]
        );
    }
}
