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
