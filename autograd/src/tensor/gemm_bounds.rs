//! The bounds a strided product must keep before the GEMM kernels may touch its slices: every
//! element inside its slice, extents computed without overflow, no two output elements in
//! one cell. The kernels' `unsafe` calls rest on these checks.

use crate::error::{Error, Result};

/// Checks that a strided `rows x cols` matrix lies inside a slice of `len` elements: every
/// stride fits in `isize` (the kernels take signed strides) and the extent, one past the last
/// element `(rows - 1) rs + (cols - 1) cs`, is computed without overflow and is at most `len`.
/// With `distinct`, also that no two elements share a cell (the output, which the kernels may
/// write from several threads): one of the strides is at least 1 and the other steps over a
/// whole row or column of it. Layouts that interleave in other ways are refused too.
pub(super) fn check_matrix(
    op: &'static str,
    name: &str,
    (rows, cols): (usize, usize),
    (rs, cs): (usize, usize),
    len: usize,
    distinct: bool,
) -> Result<()> {
    let err = |what: String| {
        Err(Error::invalid(
            op,
            format!("{name} ({rows} x {cols}, strides {rs}, {cs}, slice of {len}): {what}"),
        ))
    };
    if rs > isize::MAX as usize || cs > isize::MAX as usize {
        return err("strides must be at most isize::MAX".into());
    }
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let extent = (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
        .and_then(|e| e.checked_add(1));
    match extent {
        Some(e) if e <= len => {}
        Some(e) => return err(format!("the matrix spans {e} elements")),
        None => return err("the matrix's extent overflows usize".into()),
    }
    let separate = (rows == 1 || rs >= 1)
        && (cols == 1 || cs >= 1)
        && (rows == 1 || cols == 1 || rs >= cols * cs || cs >= rows * rs);
    if distinct && !separate {
        return err("the strides make elements of the output share cells".into());
    }
    Ok(())
}

/// The checks that make a product `c (m x n) = a (m x k) @ b (k x n)` through these strides
/// touch only the slices' own elements, and write each element of `c` once.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_product(
    op: &'static str,
    (m, k, n): (usize, usize, usize),
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    c: (usize, usize, usize),
) -> Result<()> {
    check_matrix(op, "a", (m, k), (a.1, a.2), a.0.len(), false)?;
    check_matrix(op, "b", (k, n), (b.1, b.2), b.0.len(), false)?;
    check_matrix(op, "c", (m, n), (c.1, c.2), c.0, true)
}
