//! Matrix products and the affine layer `y = x·W + b` built on them.
//!
//! Matrices are row-major. Weights use the GPT-2 "Conv1D" layout
//! `[in, out]`, so a layer reads `x·W` as in the equations.

use super::Scalar;

/// Whether an operand is read as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Plain,
    Transposed,
}

/// `C = alpha·op(A)·op(B) + beta·C` with op(A) m×k, op(B) k×n, C m×n.
///
/// `a` contains A as stored: m×k when plain, k×m when transposed (likewise `b`).
/// With `beta = 0` the old contents of `c` are ignored, NaN included.
#[allow(clippy::too_many_arguments)]
pub fn gemm<F: Scalar>(
    m: usize, k: usize, n: usize,
    alpha: F, a: &[F], op_a: Op, b: &[F], op_b: Op,
    beta: F, c: &mut [F],
) {
    assert_eq!(a.len(), m * k, "gemm: A has {} elements, expected {m}×{k}", a.len());
    assert_eq!(b.len(), k * n, "gemm: B has {} elements, expected {k}×{n}", b.len());
    assert_eq!(c.len(), m * n, "gemm: C has {} elements, expected {m}×{n}", c.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // The product is empty, so C = beta·C; matrixmultiply does the same
        // but this keeps the zero-beta rule explicit.
        for value in c.iter_mut() {
            *value = if beta == F::zero() { F::zero() } else { beta * *value };
        }
        return;
    }
    let (rsa, csa) = match op_a {
        Op::Plain => (k as isize, 1),
        Op::Transposed => (1, m as isize),
    };
    let (rsb, csb) = match op_b {
        Op::Plain => (n as isize, 1),
        Op::Transposed => (1, k as isize),
    };
    // SAFETY: the asserts above pin each slice to exactly the extent that
    // these shapes and strides address.
    unsafe {
        F::gemm_raw(m, k, n, alpha, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), n as isize, 1);
    }
}

/// A matrix inside a slice: element (i, j) sits at `offset + i·row + j·col`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub offset: usize,
    pub row: usize,
    pub col: usize,
}

impl View {
    /// Returns a row-major matrix with `row` elements between rows.
    pub fn rows(offset: usize, row: usize) -> View {
        View { offset, row, col: 1 }
    }

    /// Returns the transpose of [`View::rows`]: element (i, j) is stored element (j, i).
    pub fn transposed(offset: usize, row: usize) -> View {
        View { offset, row: 1, col: row }
    }

    /// Panics unless every element of a `rows`×`cols` matrix is inside `len`.
    fn check(&self, rows: usize, cols: usize, len: usize, name: &str) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = (rows - 1)
            .checked_mul(self.row)
            .and_then(|r| (cols - 1).checked_mul(self.col).and_then(|c| r.checked_add(c)))
            .and_then(|span| span.checked_add(self.offset));
        match last {
            Some(last) if last < len => {}
            _ => panic!("gemm_view: {name} reaches past element {len}"),
        }
    }

    /// Panics if two elements of a `rows`×`cols` matrix share an address,
    /// which a product's output must not: its rows may be written from
    /// different threads.
    fn check_distinct(&self, rows: usize, cols: usize) {
        let distinct = match (rows > 1, cols > 1) {
            (false, false) => true,
            (true, false) => self.row > 0,
            (false, true) => self.col > 0,
            // Row-major or column-major without overlap.
            (true, true) => (self.col == 1 && self.row >= cols) || (self.row == 1 && self.col >= rows),
        };
        assert!(distinct, "gemm_view: C's elements overlap (row step {}, column step {})", self.row, self.col);
    }
}

/// `C = alpha·A·B + beta·C` on matrices inside larger slices, such as one
/// head's columns of the packed attention input. A is m×k, B is k×n and C
/// is m×n, each placed by its [`View`]. With `beta = 0` the old contents
/// of C are ignored.
#[allow(clippy::too_many_arguments)]
pub fn gemm_view<F: Scalar>(
    m: usize, k: usize, n: usize,
    alpha: F, a: &[F], va: View, b: &[F], vb: View,
    beta: F, c: &mut [F], vc: View,
) {
    va.check(m, k, a.len(), "A");
    vb.check(k, n, b.len(), "B");
    vc.check(m, n, c.len(), "C");
    vc.check_distinct(m, n);
    if m == 0 || n == 0 {
        return;
    }
    assert!(k > 0, "gemm_view: the inner dimension is empty");
    // SAFETY: the checks above keep every addressed element inside its slice.
    unsafe {
        F::gemm_raw(
            m, k, n, alpha,
            a.as_ptr().add(va.offset), va.row as isize, va.col as isize,
            b.as_ptr().add(vb.offset), vb.row as isize, vb.col as isize,
            beta,
            c.as_mut_ptr().add(vc.offset), vc.row as isize, vc.col as isize,
        );
    }
}

/// Affine layer forward: `out = inp·w + bias`.
///
/// Shapes: inp [N, C_in], w [C_in, C_out], bias [C_out], out [N, C_out].
pub fn linear_forward<F: Scalar>(out: &mut [F], inp: &[F], w: &[F], bias: Option<&[F]>, c_in: usize, c_out: usize) {
    let rows = inp.len() / c_in.max(1);
    match bias {
        Some(bias) => F::affine(rows, c_in, c_out, inp, w, bias, out),
        None => gemm(rows, c_in, c_out, F::one(), inp, Op::Plain, w, Op::Plain, F::zero(), out),
    }
}

/// Affine layer backward. Writes `dinp`; adds into `dw` and `dbias`.
///
/// Shapes: dout [N, C_out], inp [N, C_in], w [C_in, C_out];
/// dinp [N, C_in], dw [C_in, C_out], dbias [C_out].
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<F: Scalar>(
    dinp: &mut [F], dw: &mut [F], dbias: Option<&mut [F]>,
    dout: &[F], inp: &[F], w: &[F], c_in: usize, c_out: usize,
) {
    let rows = dout.len() / c_out.max(1);
    // dinp = dout·wᵀ, dw += inpᵀ·dout, dbias += Σ_rows dout
    gemm(rows, c_out, c_in, F::one(), dout, Op::Plain, w, Op::Transposed, F::zero(), dinp);
    gemm(c_in, rows, c_out, F::one(), inp, Op::Transposed, dout, Op::Plain, F::one(), dw);
    if let Some(dbias) = dbias {
        for row in dout.chunks_exact(c_out) {
            for (db, &g) in dbias.iter_mut().zip(row) {
                *db = *db + g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(rows: usize, cols: usize, x: &[f64]) -> Vec<f64> {
        let mut t = vec![0.0; x.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = x[r * cols + c];
            }
        }
        t
    }

    #[test]
    fn gemm_matches_naive_for_all_transposes() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let expected = naive(m, k, n, &a, &b);
        let at = transpose(m, k, &a);
        let bt = transpose(k, n, &b);
        for (a_in, op_a) in [(&a, Op::Plain), (&at, Op::Transposed)] {
            for (b_in, op_b) in [(&b, Op::Plain), (&bt, Op::Transposed)] {
                let mut c = vec![f64::NAN; m * n];
                gemm(m, k, n, 1.0, a_in, op_a, b_in, op_b, 0.0, &mut c);
                for (got, want) in c.iter().zip(&expected) {
                    assert!((got - want).abs() < 1e-12, "{op_a:?} {op_b:?}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "C's elements overlap")]
    fn overlapping_output_rows_are_rejected() {
        let (a, b) = (vec![1.0f32; 4 * 2], vec![1.0f32; 2 * 3]);
        let mut c = vec![0.0f32; 3];
        gemm_view(4, 2, 3, 1.0, &a, View::rows(0, 2), &b, View::rows(0, 3), 0.0, &mut c, View { offset: 0, row: 0, col: 1 });
    }

    #[test]
    #[should_panic(expected = "reaches past element")]
    fn wrapping_view_is_rejected() {
        let (a, b) = (vec![1.0f32; 4], vec![1.0f32; 4]);
        let mut c = vec![0.0f32; 4];
        let huge = View { offset: 1, row: usize::MAX, col: 1 };
        gemm_view(2, 2, 2, 1.0, &a, huge, &b, View::rows(0, 2), 0.0, &mut c, View::rows(0, 2));
    }

    #[test]
    fn linear_adds_bias_to_every_row() {
        let inp = [1.0f32, 2.0, 3.0, 4.0];
        let w = [1.0f32, 0.0, 0.0, 1.0];
        let mut out = [0.0f32; 4];
        linear_forward(&mut out, &inp, &w, Some(&[10.0, 20.0]), 2, 2);
        assert_eq!(out, [11.0, 22.0, 13.0, 24.0]);
    }
}
