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
    /// the slices, and no two elements of C may share an address (f32 rows
    /// may be written from different threads); `matmul.rs` checks both
    /// before calling.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize, k: usize, n: usize, alpha: Self,
        a: *const Self, rsa: isize, csa: isize,
        b: *const Self, rsb: isize, csb: isize,
        beta: Self,
        c: *mut Self, rsc: isize, csc: isize,
    );

    /// Writes `out = inp·w + bias` on row-major matrices: inp m×k, w k×n,
    /// bias [n], out m×n. The default copies the bias into every row and
    /// adds the product. f32 adds the bias as it stores the product, which
    /// rounds the same way.
    fn affine(m: usize, k: usize, n: usize, inp: &[Self], w: &[Self], bias: &[Self], out: &mut [Self]) {
        for row in out.chunks_exact_mut(n.max(1)) {
            row.copy_from_slice(bias);
        }
        super::matmul::gemm(m, k, n, Self::one(), inp, super::matmul::Op::Plain, w, super::matmul::Op::Plain, Self::one(), out);
    }

    /// `exp(self)` in a branch-free form the compiler can vectorise. The
    /// default is the standard library's; f32 overrides it.
    fn fast_exp(self) -> Self {
        self.exp()
    }

    fn of(value: f64) -> Self {
        Self::from_f64(value).expect("every f64 converts to a float type")
    }

    fn as_f64(self) -> f64 {
        self.to_f64().expect("every float converts to f64")
    }
}

impl Scalar for f32 {
    fn affine(m: usize, k: usize, n: usize, inp: &[f32], w: &[f32], bias: &[f32], out: &mut [f32]) {
        super::sgemm::affine(m, k, n, inp, w, bias, out);
    }

    /// Computes exp by range reduction, `x = n·ln 2 + r` with |r| ≤ ln 2 / 2,
    /// and a degree-7 polynomial for exp(r). The tests check a relative
    /// error of at most 2·2⁻²³ against f64 on a grid of step 0.0013.
    /// Returns +inf above 88 and 0 below −87, although exp is finite up to
    /// about 88.72 and normal down to about −87.34. NaN stays NaN. The C
    /// library's `expf` is a call per element that no loop vectorises,
    /// which made it a tenth of a training step's time.
    #[inline(always)]
    fn fast_exp(self) -> f32 {
        const LOG2_E: f32 = std::f32::consts::LOG2_E;
        // ln 2 split so that n·LN2_HIGH is exact for the n in range.
        const LN2_HIGH: f32 = 0.693_359_4;
        const LN2_LOW: f32 = -2.121_944_4e-4;
        // Adding and subtracting 1.5·2^23 rounds to the nearest integer.
        const ROUND: f32 = 12_582_912.0;

        let x = self.clamp(-87.0, 88.0);
        let shifted = x * LOG2_E + ROUND;
        let n = shifted - ROUND;
        let r = (x - n * LN2_HIGH) - n * LN2_LOW;

        let mut p = 1.987_569_2e-4_f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 1.666_666_5e-1;
        p = p * r + 0.5;
        let exp_r = p * r * r + r + 1.0;

        // 2^n is built in the exponent bits. After the clamp n is in
        // [-126, 127] and sits in the low mantissa bits of `shifted`, so no
        // float-to-integer conversion stops vectorisation.
        let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
        let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
        let value = exp_r * scale;

        if self > 88.0 {
            f32::INFINITY
        } else if self < -87.0 {
            0.0
        } else {
            value
        }
    }

    unsafe fn gemm_raw(
        m: usize, k: usize, n: usize, alpha: f32,
        a: *const f32, rsa: isize, csa: isize,
        b: *const f32, rsb: isize, csb: isize,
        beta: f32,
        c: *mut f32, rsc: isize, csc: isize,
    ) {
        super::sgemm::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
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

/// Returns whether this CPU has AVX2 and FMA (std caches the detection).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Returns whether this CPU has the AVX-512 subsets the widest kernel
/// copies are compiled for, besides AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub fn has_avx512() -> bool {
    has_avx2_fma()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

/// Defines a kernel generic over [`Scalar`] that runs a copy of its body
/// compiled for AVX-512 or for AVX2 when the CPU has it, and the baseline
/// (SSE2) copy otherwise. Loops over slices then vectorise sixteen or
/// eight f32 lanes wide instead of four. Rust never fuses a multiply and
/// an add, nor reorders a sum, on its own, so every copy rounds
/// identically.
macro_rules! wide_simd {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident<F: Scalar>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$meta])*
        $vis fn $name<F: Scalar>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body<F: Scalar>($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn widest<F: Scalar>($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide<F: Scalar>($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::kernels::cpu::scalar::has_avx512() {
                    // SAFETY: the CPU was just checked for these features.
                    return unsafe { widest($($arg),*) };
                }
                if $crate::kernels::cpu::scalar::has_avx2_fma() {
                    // SAFETY: the CPU was just checked for both features.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use wide_simd;

/// Returns `Σ a_i·b_i` over the shorter length, summed in eight
/// interleaved partial sums so the compiler can use SIMD lanes.
#[inline(always)]
pub fn dot<F: Scalar>(a: &[F], b: &[F]) -> F {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    sum_by(n, |i| a[i] * b[i])
}

/// Returns `Σ f(x_i)`, summed in eight interleaved partial sums like
/// [`dot`] so that the loop vectorises.
#[inline(always)]
pub fn sum_of<F: Scalar>(values: &[F], f: impl Fn(F) -> F) -> F {
    sum_by(values.len(), |i| f(values[i]))
}

/// Returns the largest value, or −∞ for an empty slice, ignoring NaN as
/// `F::max` does, in eight lanes so that the loop vectorises. The maximum
/// is exact, so the lanes change nothing in the result.
#[inline(always)]
pub fn max_of<F: Scalar>(values: &[F]) -> F {
    const LANES: usize = 8;
    let mut partial = [F::neg_infinity(); LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (best, &x) in partial.iter_mut().zip(chunk) {
            *best = if x > *best { x } else { *best };
        }
    }
    let tail = chunks.remainder().iter().fold(F::neg_infinity(), |best, &x| best.max(x));
    partial.iter().fold(tail, |best, &x| best.max(x))
}

/// Returns `Σ f(i)` for i in 0..len, summed in eight interleaved partial
/// sums. `f` should index slices whose length is provably at least `len`,
/// so that the compiler drops the bounds checks in the loop.
#[inline(always)]
pub fn sum_by<F: Scalar>(len: usize, f: impl Fn(usize) -> F) -> F {
    const LANES: usize = 8;
    let mut partial = [F::zero(); LANES];
    let full = len - len % LANES;
    for start in (0..full).step_by(LANES) {
        for (lane, sum) in partial.iter_mut().enumerate() {
            *sum = *sum + f(start + lane);
        }
    }
    let mut total = partial.iter().fold(F::zero(), |sum, &p| sum + p);
    for i in full..len {
        total = total + f(i);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = (x as f64).exp();
            let got = x.fast_exp() as f64;
            // One unit in the last place of an f32 near `want`.
            let ulp = (want as f32).abs() * f32::EPSILON;
            worst = worst.max((got - want).abs() / ulp as f64);
            x += 0.001_3;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn fast_exp_keeps_special_values() {
        assert_eq!(0.0f32.fast_exp(), 1.0);
        assert_eq!(f32::NEG_INFINITY.fast_exp(), 0.0);
        assert_eq!((-200.0f32).fast_exp(), 0.0);
        assert_eq!(f32::INFINITY.fast_exp(), f32::INFINITY);
        assert_eq!(100.0f32.fast_exp(), f32::INFINITY);
        assert!(f32::NAN.fast_exp().is_nan());
        assert_eq!(1.5f64.fast_exp(), 1.5f64.exp());
    }

    #[test]
    fn sum_of_matches_plain_sum_for_every_length() {
        for n in 0..40 {
            let values: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let plain: f64 = values.iter().map(|x| x * x).sum();
            assert!((sum_of(&values, |x| x * x) - plain).abs() < 1e-12, "length {n}");
        }
    }

    #[test]
    fn max_of_matches_fold_and_skips_nan() {
        for n in 0..40 {
            let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
            let fold = values.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            assert_eq!(max_of(&values), fold, "length {n}");
        }
        assert_eq!(max_of(&[1.0f32, f32::NAN, 3.0, f32::NAN, 2.0, 0.0, 0.0, 0.0, f32::NAN]), 3.0);
    }

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
