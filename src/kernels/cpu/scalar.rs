//! The float type the reference runs in: f32 for training, f64 for
//! finite-difference gradient checks.

use num_traits::{Float, FromPrimitive, ToPrimitive};
use std::fmt::{Debug, Display};
use std::iter::Sum;

pub trait Scalar:
    Float + FromPrimitive + ToPrimitive + Sum + Default + Debug + Display + Send + Sync + bytemuck::Pod + 'static
{
    /// `C = alpha·A·B + beta·C` on strided row- or column-major views,
    /// where A is m×k, B is k×n and C is m×n (strides in elements).
    ///
    /// # Safety
    /// Every index reachable through the shapes and strides must be inside
    /// the slices; `matmul.rs` checks this before calling.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize, k: usize, n: usize, alpha: Self,
        a: *const Self, rsa: isize, csa: isize,
        b: *const Self, rsb: isize, csb: isize,
        beta: Self,
        c: *mut Self, rsc: isize, csc: isize,
    );

    fn of(value: f64) -> Self {
        Self::from_f64(value).expect("every f64 converts to a float type")
    }

    fn as_f64(self) -> f64 {
        self.to_f64().expect("every float converts to f64")
    }
}

impl Scalar for f32 {
    unsafe fn gemm_raw(
        m: usize, k: usize, n: usize, alpha: f32,
        a: *const f32, rsa: isize, csa: isize,
        b: *const f32, rsb: isize, csb: isize,
        beta: f32,
        c: *mut f32, rsc: isize, csc: isize,
    ) {
        matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
    }
}

impl Scalar for f64 {
    unsafe fn gemm_raw(
        m: usize, k: usize, n: usize, alpha: f64,
        a: *const f64, rsa: isize, csa: isize,
        b: *const f64, rsb: isize, csb: isize,
        beta: f64,
        c: *mut f64, rsc: isize, csc: isize,
    ) {
        matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
    }
}

/// Returns `Σ a_i·b_i` over the shorter length, summed in eight
/// interleaved partial sums so the compiler can use SIMD lanes.
pub fn dot<F: Scalar>(a: &[F], b: &[F]) -> F {
    const LANES: usize = 8;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut partial = [F::zero(); LANES];
    let mut chunks_a = a.chunks_exact(LANES);
    let mut chunks_b = b.chunks_exact(LANES);
    for (ca, cb) in (&mut chunks_a).zip(&mut chunks_b) {
        for lane in 0..LANES {
            partial[lane] = partial[lane] + ca[lane] * cb[lane];
        }
    }
    let mut total = partial.iter().fold(F::zero(), |sum, &p| sum + p);
    for (&x, &y) in chunks_a.remainder().iter().zip(chunks_b.remainder()) {
        total = total + x * y;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_plain_sum_for_every_length() {
        for n in 0..40 {
            let a: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-12, "length {n}");
        }
    }
}
