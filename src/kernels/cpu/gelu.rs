//! GELU in the tanh form used by GPT-2:
//! `0.5·z·(1 + tanh(sqrt(2/π)·(z + 0.044715·z³)))`.

use super::Scalar;

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const CUBIC: f64 = 0.044715;

/// Shapes: inp [N], out [N] (any layout).
pub fn gelu_forward<F: Scalar>(out: &mut [F], inp: &[F]) {
    let (s, c, half) = (F::of(SQRT_2_OVER_PI), F::of(CUBIC), F::of(0.5));
    for (o, &z) in out.iter_mut().zip(inp) {
        *o = half * z * (F::one() + (s * (z + c * z * z * z)).tanh());
    }
}

/// Writes `dinp = dout · GELU'(inp)`. Shapes: dout, inp, dinp [N].
pub fn gelu_backward<F: Scalar>(dinp: &mut [F], dout: &[F], inp: &[F]) {
    let (s, c, half) = (F::of(SQRT_2_OVER_PI), F::of(CUBIC), F::of(0.5));
    let three = F::of(3.0);
    for ((di, &g), &z) in dinp.iter_mut().zip(dout).zip(inp) {
        let t = (s * (z + c * z * z * z)).tanh();
        let du_dz = s * (F::one() + three * c * z * z);
        let local = half * (F::one() + t) + half * z * (F::one() - t * t) * du_dz;
        *di = g * local;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
