//! Per-layer gradient statistics: the 2-norm of a layer's gradients and the fraction of them
//! that are exactly zero (a layer behind dead ReLUs, or one the loss does not reach, shows up
//! as a high fraction; a vanishing or exploding norm as one far from its neighbours).
//!
//! A layer is the dotted prefix of its parameters' names: `features.0.weight` and
//! `features.0.bias` are layer `features.0`; parameters of the model itself (no dot) are layer
//! `(root)`.

use std::fmt::Write as _;
use tapegrad_nn::module::{EntryRef, Module};
use tapegrad_nn::optim::GradMap;

/// The gradients of one layer's parameters, taken together.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerGradStats {
    pub layer: String,
    /// Scalars with a gradient.
    pub numel: usize,
    /// 2-norm of all of them.
    pub norm: f32,
    /// Fraction exactly zero.
    pub zero_fraction: f32,
}

fn layer_of(param: &str) -> &str {
    param.rsplit_once('.').map_or("(root)", |(layer, _)| layer)
}

/// The statistics of every layer of `model` that has gradients in `grads`, in the model's
/// parameter order.
pub fn grad_stats(model: &dyn Module, grads: &GradMap) -> Vec<LayerGradStats> {
    // (layer, numel, sum of squares, zeros)
    let mut acc: Vec<(String, usize, f64, usize)> = Vec::new();
    model.visit("", &mut |name, e| {
        let EntryRef::Param(_) = e else { return };
        let Some(g) = grads.get(name) else { return };
        let layer = layer_of(name);
        if acc.last().is_none_or(|l| l.0 != layer) {
            acc.push((layer.to_string(), 0, 0.0, 0));
        }
        let last = acc.last_mut().expect("pushed above");
        for &v in g.data() {
            last.2 += v as f64 * v as f64;
            last.3 += usize::from(v == 0.0);
        }
        last.1 += g.numel();
    });
    acc.into_iter()
        .map(|(layer, numel, sq, zeros)| LayerGradStats {
            layer,
            numel,
            norm: sq.sqrt() as f32,
            zero_fraction: zeros as f32 / numel.max(1) as f32,
        })
        .collect()
}

/// Gradient statistics summed over the steps of an epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GradStatsEpoch {
    /// (layer, numel, sum of norms, zeros, values seen)
    layers: Vec<(String, usize, f64, u64, u64)>,
    steps: u64,
}

impl GradStatsEpoch {
    /// Adds one step's statistics.
    pub fn add(&mut self, stats: &[LayerGradStats]) {
        for s in stats {
            let i = match self.layers.iter().position(|l| l.0 == s.layer) {
                Some(i) => i,
                None => {
                    self.layers.push((s.layer.clone(), s.numel, 0.0, 0, 0));
                    self.layers.len() - 1
                }
            };
            let l = &mut self.layers[i];
            l.2 += s.norm as f64;
            l.3 += (s.zero_fraction as f64 * s.numel as f64).round() as u64;
            l.4 += s.numel as u64;
        }
        self.steps += 1;
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Per layer: the mean of the per-step norms, and the fraction of zero gradients over
    /// all steps.
    pub fn summary(&self) -> Vec<LayerGradStats> {
        self.layers
            .iter()
            .map(|(layer, numel, norm_sum, zeros, seen)| LayerGradStats {
                layer: layer.clone(),
                numel: *numel,
                norm: (norm_sum / self.steps.max(1) as f64) as f32,
                zero_fraction: *zeros as f32 / (*seen).max(1) as f32,
            })
            .collect()
    }
}

/// A table: layer, parameters, gradient norm, percentage of zero gradients.
pub fn format_grad_stats(stats: &[LayerGradStats]) -> String {
    let w = stats
        .iter()
        .map(|s| s.layer.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<w$}  {:>10}  {:>11}  {:>7}\n",
        "layer", "params", "grad norm", "zero %"
    );
    for s in stats {
        let _ = writeln!(
            out,
            "{:<w$}  {:>10}  {:>11.4e}  {:>6.2}%",
            s.layer,
            s.numel,
            s.norm,
            100.0 * s.zero_fraction
        );
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapegrad_autograd::{rng, Tensor};
    use tapegrad_nn::layers::Linear;

    #[test]
    fn norm_and_zeros_per_layer() {
        let m = Linear::new(2, 2, &mut rng(0)).unwrap();
        let mut g = GradMap::new();
        // weight gradient [[3, 0], [0, 4]]: norm sqrt(9 + 16) = 5 with the bias [0, 0]; 4 of
        // the 6 scalars are zero.
        g.insert(
            "weight",
            Tensor::from_vec(vec![3.0, 0.0, 0.0, 4.0], [2, 2]).unwrap(),
        );
        g.insert("bias", Tensor::zeros([2]));
        let s = grad_stats(&m, &g);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].layer, "(root)");
        assert_eq!(s[0].numel, 6);
        assert!((s[0].norm - 5.0).abs() < 1e-6);
        assert!((s[0].zero_fraction - 4.0 / 6.0).abs() < 1e-6);
    }

    #[test]
    fn epoch_means_norms_and_pools_zeros() {
        let mut e = GradStatsEpoch::default();
        let step = |norm, zf| LayerGradStats {
            layer: "fc".into(),
            numel: 10,
            norm,
            zero_fraction: zf,
        };
        // Norms 1 and 3 average to 2; 2 + 6 zeros of 20 values is 40%.
        e.add(&[step(1.0, 0.2)]);
        e.add(&[step(3.0, 0.6)]);
        let s = e.summary();
        assert_eq!(e.steps(), 2);
        assert!((s[0].norm - 2.0).abs() < 1e-6);
        assert!((s[0].zero_fraction - 0.4).abs() < 1e-6);
        assert!(format_grad_stats(&s).contains("40.00%"));
    }

    #[test]
    fn layer_is_the_prefix() {
        assert_eq!(layer_of("features.0.weight"), "features.0");
        assert_eq!(layer_of("bias"), "(root)");
    }
}
