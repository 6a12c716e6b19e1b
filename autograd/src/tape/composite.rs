//! Composite ops: a convolution, a pooling layer, a normalisation is recorded as the primitives
//! it is made of, so its gradient comes from their rules; what the composite adds is memory
//! care, since its intermediate values are out of the caller's reach once it returns.

use super::{NodeId, NodeKind, Op, Tape, Var};

impl Tape {
    /// Runs the composition `f` of a composite op (convolution, pooling, normalisation) over
    /// `inputs`.
    ///
    /// - When some input needs a gradient, the composition's nodes stay on the tape for
    ///   backward, and every intermediate one (all but the result) is released as
    ///   [`Var::release`] does: freed at once unless a rule reads it, else once backward has
    ///   passed it. A convolution's product before its bias is added, say, is read by no rule.
    /// - When none does (inference, `no_grad`), backward can never reach the intermediate
    ///   nodes, so they are dropped as soon as the result is known and the result is recorded
    ///   as one constant named `op`: an inference pass then holds each layer's output, not
    ///   every unfolded image and temporary of every layer.
    ///
    /// `f` records ops only (no parameters, whose nodes the tape remembers).
    pub(crate) fn composite<'t>(
        &'t self,
        op: Op,
        inputs: &[Var<'t>],
        f: impl FnOnce() -> crate::Result<Var<'t>>,
    ) -> crate::Result<Var<'t>> {
        self.check_own(op.name, inputs)?;
        let mark = self.len();
        if inputs.iter().any(|v| v.requires_grad()) {
            let y = f()?;
            for i in mark..self.len() {
                if i != y.id().index() {
                    self.release_node(NodeId(i as u32));
                }
            }
            return Ok(y);
        }
        let value = f()?.value();
        self.truncate(mark);
        Ok(self.push_leaf(op, NodeKind::Constant, value, false))
    }
}
