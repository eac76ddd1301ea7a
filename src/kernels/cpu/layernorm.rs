//! LayerNorm over the last dimension: `γ ⊙ (z − μ) / sqrt(σ² + ε) + β`,
//! with the biased variance and ε = 1e-5.

use super::scalar::wide_simd;
use super::threads::{for_each_rows, SharedMut};
use super::{sum_by, sum_of, Scalar};

pub const LN_EPS: f64 = 1e-5;

/// Rows per thread below which splitting costs more than it saves.
const MIN_ROWS: usize = 64;

/// LayerNorm forward. Also stores each row's mean and `rstd = 1/sqrt(σ² + ε)`
/// for the backward pass and for the gradient bound under the final norm.
///
/// Shapes: inp [N, d], gamma [d], beta [d]; out [N, d], mean [N], rstd [N].
pub fn layernorm_forward<F: Scalar>(
    out: &mut [F], mean: &mut [F], rstd: &mut [F],
    inp: &[F], gamma: &[F], beta: &[F], d: usize,
) {
    let rows = mean.len();
    assert_eq!(rstd.len(), rows, "layernorm_forward: mean and rstd differ in length");
    assert_eq!(inp.len(), rows * d, "layernorm_forward: inp is not [N, d]");
    assert_eq!(out.len(), rows * d, "layernorm_forward: out is not [N, d]");
    let (mean, rstd) = (SharedMut(mean.as_mut_ptr()), SharedMut(rstd.as_mut_ptr()));
    for_each_rows(out, rows, MIN_ROWS, |first, out| {
        let n = out.len() / d.max(1);
        // SAFETY: each part owns rows first..first + n of every output.
        let (mean, rstd) = unsafe {
            (std::slice::from_raw_parts_mut(mean.get().add(first), n), std::slice::from_raw_parts_mut(rstd.get().add(first), n))
        };
        forward_rows(out, mean, rstd, &inp[first * d..][..n * d], gamma, beta, d);
    });
}

wide_simd! {
#[allow(clippy::too_many_arguments)]
fn forward_rows<F: Scalar>(
    out: &mut [F], mean: &mut [F], rstd: &mut [F],
    inp: &[F], gamma: &[F], beta: &[F], d: usize,
) {
    let eps = F::of(LN_EPS);
    let count = F::of(d as f64);
    for (row, ((out_row, mean_out), rstd_out)) in inp
        .chunks_exact(d)
        .zip(out.chunks_exact_mut(d).zip(mean.iter_mut()).zip(rstd.iter_mut()))
    {
        // Two passes: the mean first, then squared deviations from it. A
        // one-pass E[z²] − E[z]² loses every digit for rows like
        // [40000, 40001, 40002, 40003] in f32.
        let mu = sum_of(row, |z| z) / count;
        let var = sum_of(row, |z| (z - mu) * (z - mu)) / count;
        let r = F::one() / (var + eps).sqrt();
        for (((o, &z), &g), &b) in out_row.iter_mut().zip(row).zip(&gamma[..d]).zip(&beta[..d]) {
            *o = g * ((z - mu) * r) + b;
        }
        *mean_out = mu;
        *rstd_out = r;
    }
}
}

/// LayerNorm backward. Writes `dinp`; adds into `dgamma` and `dbeta`.
///
/// Shapes: dout [N, d], inp [N, d], mean [N], rstd [N], gamma [d];
/// dinp [N, d], dgamma [d], dbeta [d].
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward<F: Scalar>(
    dinp: &mut [F], dgamma: &mut [F], dbeta: &mut [F],
    dout: &[F], inp: &[F], mean: &[F], rstd: &[F], gamma: &[F], d: usize,
) {
    let rows = mean.len();
    assert_eq!(rstd.len(), rows, "layernorm_backward: mean and rstd differ in length");
    for (name, len) in [("dinp", dinp.len()), ("dout", dout.len()), ("inp", inp.len())] {
        assert_eq!(len, rows * d, "layernorm_backward: {name} is not [N, d]");
    }
    for_each_rows(dinp, rows, MIN_ROWS, |first, dinp| {
        let n = dinp.len() / d.max(1);
        let (dout, inp) = (&dout[first * d..][..n * d], &inp[first * d..][..n * d]);
        input_grad_rows(dinp, dout, inp, &mean[first..][..n], &rstd[first..][..n], gamma, d);
    });
    // The parameter gradients sum over rows, so they stay on one thread
    // and add the rows in order, whatever the thread count.
    param_grads(dgamma, dbeta, dout, inp, mean, rstd, d);
}

wide_simd! {
#[allow(clippy::too_many_arguments)]
fn input_grad_rows<F: Scalar>(dinp: &mut [F], dout: &[F], inp: &[F], mean: &[F], rstd: &[F], gamma: &[F], d: usize) {
    let count = F::of(d as f64);
    let gamma = &gamma[..d];
    for (n, (dinp_row, (dout_row, inp_row))) in dinp
        .chunks_exact_mut(d)
        .zip(dout.chunks_exact(d).zip(inp.chunks_exact(d)))
        .enumerate()
    {
        let (mu, r) = (mean[n], rstd[n]);
        // Slices of known length d let the loops below drop bounds checks.
        let (dout_row, inp_row) = (&dout_row[..d], &inp_row[..d]);
        // With x̂ the normalised row and g = γ ⊙ dout:
        // dinp = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)).
        let g_mean = sum_by(d, |k| gamma[k] * dout_row[k]) / count;
        let gx_mean = sum_by(d, |k| gamma[k] * dout_row[k] * ((inp_row[k] - mu) * r)) / count;
        for (((di, &z), &go), &ga) in dinp_row.iter_mut().zip(inp_row).zip(dout_row).zip(gamma) {
            let xhat = (z - mu) * r;
            let g = ga * go;
            *di = r * (g - g_mean - xhat * gx_mean);
        }
    }
}
}

wide_simd! {
#[allow(clippy::too_many_arguments)]
fn param_grads<F: Scalar>(dgamma: &mut [F], dbeta: &mut [F], dout: &[F], inp: &[F], mean: &[F], rstd: &[F], d: usize) {
    let (dgamma, dbeta) = (&mut dgamma[..d], &mut dbeta[..d]);
    for (n, (dout_row, inp_row)) in dout.chunks_exact(d).zip(inp.chunks_exact(d)).enumerate() {
        let (mu, r) = (mean[n], rstd[n]);
        for (((dg, db), &go), &z) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(dout_row).zip(inp_row) {
            let xhat = (z - mu) * r;
            *dg = *dg + go * xhat;
            *db = *db + go;
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalise_f32(row: &[f32]) -> (Vec<f32>, f32) {
        let d = row.len();
        let (mut out, mut mean, mut rstd) = (vec![0.0; d], [0.0f32], [0.0f32]);
        layernorm_forward(&mut out, &mut mean, &mut rstd, row, &vec![1.0; d], &vec![0.0; d], d);
        (out, rstd[0])
    }

    #[test]
    fn constant_row_gives_beta_and_finite_backward() {
        let d = 6;
        let row = [3.5f32; 6];
        let beta: Vec<f32> = (0..d).map(|k| k as f32 * 0.1 - 0.2).collect();
        let gamma = vec![1.7f32; d];
        let (mut out, mut mean, mut rstd) = (vec![0.0; d], [0.0f32], [0.0f32]);
        layernorm_forward(&mut out, &mut mean, &mut rstd, &row, &gamma, &beta, d);
        assert_eq!(out, beta);

        let dout: Vec<f32> = (0..d).map(|k| (k as f32).sin()).collect();
        let (mut dinp, mut dgamma, mut dbeta) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
        layernorm_backward(&mut dinp, &mut dgamma, &mut dbeta, &dout, &row, &mean, &rstd, &gamma, d);
        assert!(dinp.iter().all(|v| v.is_finite()), "{dinp:?}");
        assert!(dgamma.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn large_offset_row_normalises_in_f32() {
        let (out, _) = normalise_f32(&[40000.0, 40001.0, 40002.0, 40003.0]);
        let expected = [-1.3416, -0.4472, 0.4472, 1.3416];
        for (got, want) in out.iter().zip(expected) {
            assert!((got - want).abs() < 1e-3, "{out:?}");
        }
    }

    #[test]
    fn mean_2000_spread_1_keeps_unit_variance() {
        let row: Vec<f32> = (0..64).map(|k| 2000.0 + ((k as f32) * 0.7).sin()).collect();
        let (out, _) = normalise_f32(&row);
        let mean = out.iter().sum::<f32>() / 64.0;
        let var = out.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 64.0;
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((var - 1.0).abs() < 1e-3, "variance {var}");
    }

    #[test]
    fn backward_sums_to_zero_over_features() {
        let rows: [&[f64]; 4] = [
            &[0.3, -1.2, 2.2, 0.0, 5.5],
            &[7.0, 7.0, 7.0, 7.0, 7.0],
            &[40000.0, 40001.0, 40002.0, 40003.0, 40004.0],
            &[1e-3, -2e-3, 5e-4, 0.0, 1e-3],
        ];
        let d = 5;
        let gamma = [0.5, 1.5, -0.7, 2.0, 1.0];
        let beta = [0.0; 5];
        for row in rows {
            let (mut out, mut mean, mut rstd) = (vec![0.0; d], [0.0], [0.0]);
            layernorm_forward(&mut out, &mut mean, &mut rstd, row, &gamma, &beta, d);
            let dout = [0.9, -0.3, 0.25, 1.1, -2.0];
            let (mut dinp, mut dg, mut db) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
            layernorm_backward(&mut dinp, &mut dg, &mut db, &dout, row, &mean, &rstd, &gamma, d);
            let scale: f64 = dinp.iter().map(|v| v.abs()).sum::<f64>().max(1e-300);
            let sum: f64 = dinp.iter().sum();
            assert!(sum.abs() <= 1e-12 * scale.max(1.0), "row {row:?}: sum {sum}");
        }
    }
}
