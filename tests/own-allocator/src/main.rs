//! An application with its own `#[global_allocator]` that trains with tapegrad. It builds only
//! if no crate of tapegrad installs a global allocator of its own (two would not link), and its
//! test checks that tapegrad's tensors are allocated through the application's allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use tapegrad::prelude::*;

/// The system allocator, counting the bytes it hands out.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    // Safety: forwards to `System` with the caller's layout and pointer unchanged, so every
    // precondition the caller meets for `GlobalAlloc` is met for `System`.
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One SGD step of a linear classifier on a random batch; the loss before the step.
fn train_step() -> Result<f32> {
    let mut g = rng(0);
    let mut w = Param::new(Tensor::randn([10, 256], &mut g));
    let tape = Tape::new();
    let x = tape.input(Tensor::randn([64, 256], &mut g));
    let loss = x.linear(tape.param(&w), None)?.cross_entropy(&[3; 64])?;
    let grads = loss.backward()?;
    let dw = grads.param(&w).expect("w is on the path to the loss");
    w.set(w.value().sub(&dw.mul_scalar(0.1))?)?;
    loss.item()
}

fn main() -> Result<()> {
    println!("loss {:.4}", train_step()?);
    Ok(())
}

#[test]
fn tapegrad_allocates_through_the_applications_allocator() {
    let before = ALLOCATED.load(Ordering::Relaxed);
    let loss = train_step().unwrap();
    assert!(loss.is_finite());
    // At least the 64x256 input and the 10x256 weight and its gradient went through it.
    let counted = ALLOCATED.load(Ordering::Relaxed) - before;
    assert!(counted >= (64 * 256 + 2 * 10 * 256) * 4, "{counted} bytes");
}

/// A module derived in a crate that depends on the facade alone (the derive finds
/// `tapegrad::nn` from this package's manifest).
#[cfg(test)]
#[derive(Module)]
struct Classifier {
    fc: Linear,
}

#[cfg(test)]
impl Classifier {
    fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> {
        self.fc.forward(x)
    }
}

#[test]
fn a_module_derives_through_the_facade() {
    let mut m = Classifier {
        fc: Linear::new(4, 2, &mut rng(0)).unwrap(),
    };
    assert_eq!(m.parameter_names(), ["fc.weight", "fc.bias"]);
    let tape = Tape::new();
    let y = Module::forward(&mut m, tape.input(Tensor::zeros([3, 4]))).unwrap();
    assert_eq!(y.shape().dims(), &[3, 2]);
}
