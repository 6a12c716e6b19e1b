//! Non-finite values in a model: after every training step, and before anything is saved. A
//! step whose update overflows leaves an infinite or NaN weight; caught at once, it stops the
//! run with the parameter's name, before the next step spreads it and before a checkpoint holds
//! it. The check is one vectorised pass over the parameters and buffers.

use tapegrad_nn::module::{EntryRef, Module};

/// The first parameter or buffer of a model, in registration order, that holds a value that is
/// not finite.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NonFinite {
    pub name: String,
    /// "parameter" or "buffer".
    pub kind: &'static str,
    /// Its first such value, and where.
    pub value: f32,
    pub index: usize,
    /// How many of its values are not finite, of how many.
    pub count: usize,
    pub len: usize,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} holds {} at index {} ({} of its {} values are not finite)",
            self.kind, self.name, self.value, self.index, self.count, self.len
        )
    }
}

/// Whether every value is finite: `v * 0` is 0 for a finite `v` and NaN for an infinite or NaN
/// one, and NaN survives a sum; sixteen lanes of sums let the loop vectorise.
fn all_finite(data: &[f32]) -> bool {
    let mut lanes = [0f32; 16];
    let chunks = data.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v * 0.0;
        }
    }
    let tail: f32 = rest.iter().map(|v| v * 0.0).sum();
    !(lanes.iter().sum::<f32>() + tail).is_nan()
}

/// The first parameter or buffer of `model` holding a value that is not finite, if any.
pub(crate) fn first_non_finite(model: &dyn Module) -> Option<NonFinite> {
    let mut found = None;
    model.visit("", &mut |name, e| {
        if found.is_some() {
            return;
        }
        let (kind, data) = match &e {
            EntryRef::Param(p) => ("parameter", p.value().data()),
            EntryRef::Buffer(b) => ("buffer", b.data()),
            EntryRef::Counter(_) | EntryRef::Rng(_) => return,
        };
        if all_finite(data) {
            return;
        }
        let bad = |v: &&f32| !v.is_finite();
        let index = data.iter().position(|v| bad(&v)).unwrap_or(0);
        found = Some(NonFinite {
            name: name.to_string(),
            kind,
            value: data[index],
            index,
            count: data.iter().filter(bad).count(),
            len: data.len(),
        });
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_infinity_or_nan_anywhere_is_found() {
        for len in [0, 1, 15, 16, 17, 100] {
            let mut data = vec![1.5f32; len];
            assert!(all_finite(&data), "{len}");
            for at in 0..len {
                for v in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN] {
                    data[at] = v;
                    assert!(!all_finite(&data), "{len} {at} {v}");
                }
                data[at] = f32::MAX;
            }
            // The largest finite values do not overflow the check.
            assert!(all_finite(&data), "{len}");
        }
    }
}
