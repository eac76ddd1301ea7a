//! GELU in the tanh form used by GPT-2:
//! `0.5·z·(1 + tanh(u))` with `u = sqrt(2/π)·(z + 0.044715·z³)`.
//!
//! Since `0.5·(1 + tanh(u)) = σ(2u) = 1/(1 + exp(−2u))`, both passes use
//! one `exp` per element instead of `tanh`, which costs several times
//! more in the C library. The two forms agree to rounding.

use super::scalar::wide_simd;
use super::threads::{for_each_rows, SharedMut};
use super::Scalar;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const CUBIC: f64 = 0.044715;

/// Elements per thread below which splitting costs more than it saves.
const MIN_PART: usize = 1 << 14;

/// Shapes: inp [N], out [N] (any layout).
pub fn gelu_forward<F: Scalar>(out: &mut [F], inp: &[F]) {
    assert_eq!(out.len(), inp.len(), "gelu_forward: out and inp differ in length");
    for_each_rows(out, inp.len(), MIN_PART, |first, out| forward_part(out, &inp[first..][..out.len()]));
}

/// Computes [`gelu_forward`] and also stores the gate σ(2u) of every
/// element, so that [`gelu_backward_with_gate`] needs no second `exp`.
///
/// Shapes: inp, out, gate [N].
pub fn gelu_forward_keeping_gate<F: Scalar>(out: &mut [F], gate: &mut [F], inp: &[F]) {
    assert_eq!(out.len(), inp.len(), "gelu_forward_keeping_gate: out and inp differ in length");
    assert_eq!(gate.len(), inp.len(), "gelu_forward_keeping_gate: gate and inp differ in length");
    let gate_at = SharedMut(gate.as_mut_ptr());
    for_each_rows(out, inp.len(), MIN_PART, |first, out| {
        let n = out.len();
        // SAFETY: each part owns elements first..first + n of `gate` too.
        let gate = unsafe { std::slice::from_raw_parts_mut(gate_at.get().add(first), n) };
        forward_gate_part(out, gate, &inp[first..][..n]);
    });
}

/// Writes `dinp = dout · GELU'(inp)`. Shapes: dout, inp, dinp [N].
pub fn gelu_backward<F: Scalar>(dinp: &mut [F], dout: &[F], inp: &[F]) {
    assert_eq!(dinp.len(), inp.len(), "gelu_backward: dinp and inp differ in length");
    assert_eq!(dout.len(), inp.len(), "gelu_backward: dout and inp differ in length");
    for_each_rows(dinp, inp.len(), MIN_PART, |first, dinp| {
        let n = dinp.len();
        backward_part(dinp, &dout[first..][..n], &inp[first..][..n]);
    });
}

/// Computes [`gelu_backward`] from the gate that [`gelu_forward_keeping_gate`]
/// stored. The results are identical. Shapes: dout, inp, gate, dinp [N].
pub fn gelu_backward_with_gate<F: Scalar>(dinp: &mut [F], dout: &[F], inp: &[F], gate: &[F]) {
    assert_eq!(dinp.len(), inp.len(), "gelu_backward_with_gate: dinp and inp differ in length");
    assert_eq!(dout.len(), inp.len(), "gelu_backward_with_gate: dout and inp differ in length");
    assert_eq!(gate.len(), inp.len(), "gelu_backward_with_gate: gate and inp differ in length");
    for_each_rows(dinp, inp.len(), MIN_PART, |first, dinp| {
        let n = dinp.len();
        backward_gate_part(dinp, &dout[first..][..n], &inp[first..][..n], &gate[first..][..n]);
    });
}

/// Returns exp(−2u) for input z, the one `exp` both passes need. Written
/// once so the forward's gate and the backward's σ agree to the bit.
#[inline(always)]
fn exp_minus_2u<F: Scalar>(z: F) -> F {
    let (two, s, c) = (F::of(2.0), F::of(SQRT_2_OVER_PI), F::of(CUBIC));
    (-(two * s * (z + c * z * z * z))).fast_exp()
}

/// Returns `g · GELU'(z)` given σ = σ(2u).
#[inline(always)]
fn derivative<F: Scalar>(g: F, z: F, sigma: F) -> F {
    let (s, c) = (F::of(SQRT_2_OVER_PI), F::of(CUBIC));
    let (two, three) = (F::of(2.0), F::of(3.0));
    // d(z·σ)/dz = σ + z·σ·(1 − σ)·2·du/dz.
    let slope = sigma * (F::one() - sigma);
    // Where σ saturates the second term is 0, even if z³ overflowed.
    let tail = if slope == F::zero() { F::zero() } else { two * z * slope * s * (F::one() + three * c * z * z) };
    g * (sigma + tail)
}

wide_simd! {
fn forward_part<F: Scalar>(out: &mut [F], inp: &[F]) {
    for (o, &z) in out.iter_mut().zip(inp) {
        // z·σ(2u); for very negative u, exp overflows to inf and z/inf = 0.
        *o = z / (F::one() + exp_minus_2u(z));
    }
}
}

wide_simd! {
fn forward_gate_part<F: Scalar>(out: &mut [F], gate: &mut [F], inp: &[F]) {
    for ((o, g), &z) in out.iter_mut().zip(gate.iter_mut()).zip(inp) {
        let e = exp_minus_2u(z);
        *o = z / (F::one() + e);
        *g = F::one() / (F::one() + e);
    }
}
}

wide_simd! {
fn backward_part<F: Scalar>(dinp: &mut [F], dout: &[F], inp: &[F]) {
    for ((di, &g), &z) in dinp.iter_mut().zip(dout).zip(inp) {
        *di = derivative(g, z, F::one() / (F::one() + exp_minus_2u(z)));
    }
}
}

wide_simd! {
fn backward_gate_part<F: Scalar>(dinp: &mut [F], dout: &[F], inp: &[F], gate: &[F]) {
    for (((di, &g), &z), &sigma) in dinp.iter_mut().zip(dout).zip(inp).zip(gate) {
        *di = derivative(g, z, sigma);
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_gate_gives_identical_bits() {
        let inp: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.013).chain([-1e30, -200.0, 200.0, 1e30]).collect();
        let dout: Vec<f32> = inp.iter().map(|z| (z * 1.7).cos()).collect();
        let n = inp.len();
        let (mut out, mut gated_out, mut gate) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        gelu_forward(&mut out, &inp);
        gelu_forward_keeping_gate(&mut gated_out, &mut gate, &inp);
        assert!(out.iter().zip(&gated_out).all(|(a, b)| a.to_bits() == b.to_bits()));
        let (mut plain, mut from_gate) = (vec![0.0; n], vec![0.0; n]);
        gelu_backward(&mut plain, &dout, &inp);
        gelu_backward_with_gate(&mut from_gate, &dout, &inp, &gate);
        assert!(plain.iter().zip(&from_gate).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn gelu_is_bounded_by_identity_magnitude() {
        let inp: Vec<f64> = (-400..=400).map(|i| i as f64 * 0.05).collect();
        let mut out = vec![0.0; inp.len()];
        gelu_forward(&mut out, &inp);
        for (z, g) in inp.iter().zip(&out) {
            assert!(g.abs() <= z.abs() + 1e-15, "GELU({z}) = {g}");
        }
    }

    #[test]
    fn sigmoid_form_matches_tanh_form() {
        let s = SQRT_2_OVER_PI;
        let inp: Vec<f64> = (-300..=300).map(|i| i as f64 * 0.05).collect();
        let mut out = vec![0.0; inp.len()];
        gelu_forward(&mut out, &inp);
        for (z, g) in inp.iter().zip(&out) {
            let tanh_form = 0.5 * z * (1.0 + (s * (z + CUBIC * z * z * z)).tanh());
            assert!((g - tanh_form).abs() <= 1e-14 * (1.0 + z.abs()), "GELU({z}) = {g}, tanh form {tanh_form}");
        }
    }

    #[test]
    fn extreme_inputs_stay_finite() {
        let inp = [-1e30f32, -200.0, 200.0, 1e30];
        let mut out = [0.0f32; 4];
        gelu_forward(&mut out, &inp);
        assert_eq!(out, [0.0, 0.0, 200.0, 1e30]);
        let mut grad = [0.0f32; 4];
        gelu_backward(&mut grad, &[1.0; 4], &inp);
        assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
    }

    #[test]
    fn derivative_matches_central_difference() {
        for z in [-3.0f64, -0.7, 0.0, 0.4, 2.5] {
            let h = 1e-6;
            let (mut plus, mut minus) = ([0.0], [0.0]);
            gelu_forward(&mut plus, &[z + h]);
            gelu_forward(&mut minus, &[z - h]);
            let mut grad = [0.0];
            gelu_backward(&mut grad, &[1.0], &[z]);
            let numeric = (plus[0] - minus[0]) / (2.0 * h);
            assert!((grad[0] - numeric).abs() < 1e-8, "z = {z}: {} vs {numeric}", grad[0]);
        }
    }
}
