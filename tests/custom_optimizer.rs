//! An optimiser written outside the `nn` crate, with only its public API: Adagrad (PyTorch's
//! `torch.optim.Adagrad` without learning-rate decay), `sum += g^2; p -= lr g / (sqrt(sum) + eps)`.
//! It trains a small network, saves and restores its state, and follows its rule exactly.

use tapegrad::nn::layers::{Linear, ReLU};
use tapegrad::nn::optim::{Core, Groups, Optimizer};
use tapegrad::prelude::*;

struct Adagrad {
    eps: f32,
    core: Core,
}

impl Adagrad {
    fn new(lr: f32, eps: f32) -> Result<Adagrad> {
        Ok(Adagrad {
            eps,
            core: Core::new(Groups::new("Adagrad::new", lr, 0.0)?, &["sum"]),
        })
    }
}

impl Optimizer for Adagrad {
    fn step_param(&mut self, name: &str, param: &mut Param, grad: &Tensor) -> Result<()> {
        self.core.check(name, param.value(), grad)?;
        let lr = self.core.groups.resolve(name).lr;
        let slot = self.core.slot_mut(name);
        slot.step += 1;
        let sum = slot.buffer_or_zeros(0, grad).data_mut();
        for ((p, &g), s) in param.data_mut().iter_mut().zip(grad.data()).zip(sum) {
            *s += g * g;
            *p -= lr * g / (s.sqrt() + self.eps);
        }
        Ok(())
    }

    fn core(&self) -> &Core {
        &self.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}

/// Points of two classes split by the sign of `x0 * x1` (XOR): not linearly separable.
fn xor_data(n: usize) -> (Tensor, Vec<usize>) {
    let mut r = rng(3);
    let x = Tensor::rand([n, 2], -1.0, 1.0, &mut r);
    let labels = x
        .data()
        .chunks(2)
        .map(|p| usize::from(p[0] * p[1] > 0.0))
        .collect();
    (x, labels)
}

#[test]
fn adagrad_from_outside_the_crate_trains_a_network() -> Result<()> {
    let mut r = rng(0);
    let mut model = Sequential::new()
        .add(Linear::new(2, 16, &mut r)?)
        .add(ReLU)
        .add(Linear::new(16, 2, &mut r)?);
    let mut opt = Adagrad::new(0.1, 1e-10)?;
    let (x, labels) = xor_data(256);
    // One step: forward, loss, backward, update; returns the loss before the update.
    let mut step = |model: &mut Sequential| -> Result<f32> {
        let tape = Tape::new();
        let loss = model
            .forward(tape.input(x.clone()))?
            .cross_entropy(&labels)?;
        let grads = loss.backward()?;
        opt.step(model, &grads)?;
        loss.item()
    };
    let first = step(&mut model)?;
    let mut last = first;
    for _ in 1..300 {
        last = step(&mut model)?;
    }
    assert!(
        last < 0.25 * first,
        "Adagrad did not train: loss {first} -> {last}"
    );
    // Its state is saved and restored through the trait, by parameter name.
    let state = opt.state_dict();
    assert_eq!(state.steps.len(), 4);
    assert!(state.steps.iter().all(|(_, s)| *s == 300));
    let mut again = Adagrad::new(0.1, 1e-10)?;
    again.load_state_dict(&state)?;
    assert_eq!(again.state_dict().buffers, state.buffers);
    Ok(())
}

#[test]
fn adagrad_follows_its_rule_step_by_step() -> Result<()> {
    let mut p = Param::new(Tensor::from_slice(&[1.0, -2.0]));
    let mut opt = Adagrad::new(0.5, 1e-10)?;
    let grads = [[0.5f32, -1.0], [0.25, 2.0]];
    let mut expect = [1.0f32, -2.0];
    let mut sum = [0.0f32; 2];
    for g in grads {
        opt.step_param("w", &mut p, &Tensor::from_slice(&g))?;
        for i in 0..2 {
            sum[i] += g[i] * g[i];
            expect[i] -= 0.5 * g[i] / (sum[i].sqrt() + 1e-10);
        }
        assert_eq!(p.value().data(), &expect[..]);
    }
    // A gradient of the wrong shape is refused before anything changes.
    let err = opt
        .step_param("w", &mut p, &Tensor::zeros([3]))
        .unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
    assert_eq!(p.value().data(), &expect[..]);
    Ok(())
}
