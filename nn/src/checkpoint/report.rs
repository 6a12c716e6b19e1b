//! What a load found besides the keys that matched.

use std::fmt;
use tapegrad_autograd::Shape;

/// A key whose shape in the file differs from the model's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub name: String,
    pub model: Shape,
    pub file: Shape,
}

/// What a load found besides the keys that matched: keys the model has and the file lacks,
/// keys the file has and the model lacks, and keys whose shapes differ (not loaded).
///
/// Generator states are reported apart: they are optional, never make a load fail and do not
/// count against [`LoadReport::is_clean`], which speaks of the `state_dict` keys only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    pub mismatched: Vec<ShapeMismatch>,
    /// Generators of the model the file holds no state for; they keep their current state,
    /// so a resumed run draws other numbers than the saved one would have.
    pub rng_missing: Vec<String>,
    /// Generator states in the file that no generator of the model is named for (ignored).
    pub rng_unexpected: Vec<String>,
}

impl LoadReport {
    /// Every key of the model was loaded and the file held nothing else (generator states
    /// aside; see [`LoadReport::restored_every_rng`]).
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }

    /// Every generator of the model was restored from the file, and the file held no other
    /// generator state: training continues with the random numbers of the saved run.
    pub fn restored_every_rng(&self) -> bool {
        self.rng_missing.is_empty() && self.rng_unexpected.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing keys: {}", self.missing.join(", ")));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!("unexpected keys: {}", self.unexpected.join(", ")));
        }
        if !self.mismatched.is_empty() {
            let m: Vec<String> = self
                .mismatched
                .iter()
                .map(|m| format!("{} (file {}, model {})", m.name, m.file, m.model))
                .collect();
            parts.push(format!("wrong shapes: {}", m.join(", ")));
        }
        if parts.is_empty() {
            parts.push("every key matched".into());
        }
        if !self.rng_missing.is_empty() {
            let m = self.rng_missing.join(", ");
            parts.push(format!(
                "generators without a saved state (not restored): {m}"
            ));
        }
        if !self.rng_unexpected.is_empty() {
            let m = self.rng_unexpected.join(", ");
            parts.push(format!("generator states for no generator (ignored): {m}"));
        }
        write!(f, "{}", parts.join("; "))
    }
}
