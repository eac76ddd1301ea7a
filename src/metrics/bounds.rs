//! Certified bounds on the residual stream, derived from the current weights
//! and the measured M_0. Each holds for every token, with no assumption
//! about training, so a measurement above its bound is a bug in the lab.
//!
//! Notation: r(LN) = sqrt(d)·max_i|γ_i| + ‖β‖₂ bounds the norm of every
//! LayerNorm output (the normalised vector has norm at most sqrt(d)), and
//! ‖W‖ = min(‖W‖_F, sqrt(‖W‖₁·‖W‖_∞)) bounds the spectral norm from above.

use crate::config::Placement;
use crate::kernels::cpu::Scalar;
use crate::model::forward::{half_step_norms, Branch, ForwardPass};
use crate::model::params::{BlockIds, LnIds};
use crate::model::Model;
use serde::{Deserialize, Serialize};

/// Upper bound on the spectral norm of a row-major `rows × cols` matrix:
/// min(Frobenius, sqrt(max column abs sum · max row abs sum)).
pub fn spectral_norm_bound<F: Scalar>(w: &[F], rows: usize, cols: usize) -> f64 {
    let frobenius = w.iter().map(|v| v.as_f64().powi(2)).sum::<f64>().sqrt();
    let max_row_sum = w.chunks_exact(cols).map(|row| row.iter().map(|v| v.as_f64().abs()).sum::<f64>()).fold(0.0, f64::max);
    let mut column_sums = vec![0.0f64; cols];
    for row in w.chunks_exact(cols) {
        for (sum, v) in column_sums.iter_mut().zip(row) {
            *sum += v.as_f64().abs();
        }
    }
    let max_column_sum = column_sums.into_iter().fold(0.0, f64::max);
    debug_assert_eq!(w.len(), rows * cols);
    frobenius.min((max_column_sum * max_row_sum).sqrt())
}

fn l2_norm<F: Scalar>(v: &[F]) -> f64 {
    v.iter().map(|x| x.as_f64().powi(2)).sum::<f64>().sqrt()
}

/// r(LN) = sqrt(d)·max|γ| + ‖β‖₂: no output of this LayerNorm is longer.
pub fn ln_output_radius<F: Scalar>(model: &Model<F>, ids: LnIds) -> f64 {
    let d = model.config.width as f64;
    let max_gain = model.tensor(ids.weight).iter().map(|g| g.as_f64().abs()).fold(0.0, f64::max);
    d.sqrt() * max_gain + l2_norm(model.tensor(ids.bias))
}

/// Largest norm of Attn(u) over inputs with ‖u‖ ≤ `radius`:
/// A = ‖W_o‖·sqrt(Σ_h (‖W_v,h‖·R + ‖b_v,h‖)²) + ‖b_o‖, because each head's
/// output is an average of its values.
pub fn attention_gain<F: Scalar>(model: &Model<F>, block: &BlockIds, radius: f64) -> f64 {
    let d = model.config.width;
    let dh = model.config.head_dim();
    let w_qkv = model.tensor(block.c_attn_weight);
    let b_qkv = model.tensor(block.c_attn_bias);
    let mut heads_sum = 0.0;
    for h in 0..model.config.heads {
        let first_column = 2 * d + h * dh;
        let w_v: Vec<F> = w_qkv.chunks_exact(3 * d).flat_map(|row| row[first_column..first_column + dh].iter().copied()).collect();
        let head_radius = spectral_norm_bound(&w_v, d, dh) * radius + l2_norm(&b_qkv[first_column..first_column + dh]);
        heads_sum += head_radius * head_radius;
    }
    let w_o = spectral_norm_bound(model.tensor(block.attn_proj_weight), d, d);
    w_o * heads_sum.sqrt() + l2_norm(model.tensor(block.attn_proj_bias))
}

/// Largest norm of MLP(u) over inputs with ‖u‖ ≤ `radius`:
/// F = ‖W_2‖·(‖W_1‖·R + ‖b_1‖) + ‖b_2‖, because |GELU(z)| ≤ |z|.
pub fn mlp_gain<F: Scalar>(model: &Model<F>, block: &BlockIds, radius: f64) -> f64 {
    let (d, hidden) = (model.config.width, model.config.hidden());
    let w_1 = spectral_norm_bound(model.tensor(block.c_fc_weight), d, hidden);
    let w_2 = spectral_norm_bound(model.tensor(block.mlp_proj_weight), hidden, d);
    w_2 * (w_1 * radius + l2_norm(model.tensor(block.c_fc_bias))) + l2_norm(model.tensor(block.mlp_proj_bias))
}

/// Exponential fit c·e^{κ·l·Δt} of the measured max token norms, by least
/// squares on their logarithms. It shows the shape of the exponential
/// bound, not a certified constant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrowthFit {
    #[serde(with = "crate::io::json_float")]
    pub c: f64,
    #[serde(with = "crate::io::json_float")]
    pub kappa: f64,
}

/// Fit `values[l] ≈ c·e^{κ·l·dt}`; `None` when a value is not positive and
/// finite or there are fewer than two.
pub fn fit_growth(values: &[f64], dt: f64) -> Option<GrowthFit> {
    if values.len() < 2 || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let n = values.len() as f64;
    let xs: Vec<f64> = (0..values.len()).map(|l| l as f64 * dt).collect();
    let ys: Vec<f64> = values.iter().map(|v| v.ln()).collect();
    let (x_mean, y_mean) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - x_mean).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - x_mean) * (y - y_mean)).sum();
    let kappa = sxy / sxx;
    Some(GrowthFit { c: (y_mean - kappa * x_mean).exp(), kappa })
}

/// Bounds for one forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Bounds {
    /// Bound on the max token norm of every half-step state (2L + 1 values).
    pub token_norm: Vec<f64>,
    /// Per-token bound on ‖∂loss/∂x_L[b,t]‖ under LN_f, [N]; empty without LN_f.
    pub final_grad_per_token: Vec<f64>,
}

impl Bounds {
    /// Compute every bound of the current weights, starting from the
    /// measured M_0 = `max_token_norm_0`.
    pub fn compute<F: Scalar>(model: &Model<F>, pass: &ForwardPass<F>, max_token_norm_0: f64) -> Bounds {
        let dt = model.config.dt;
        let placement = model.config.placement;
        let mut token_norm = Vec::with_capacity(2 * model.config.layers + 1);
        let mut bound = max_token_norm_0;
        token_norm.push(bound);
        for block in &model.layout.blocks {
            for branch in [Branch::Attention, Branch::Mlp] {
                let (ln_in, ln_out, ln_post) = half_step_norms(placement, block, branch);
                let gain = |radius: f64| match branch {
                    Branch::Attention => attention_gain(model, block, radius),
                    Branch::Mlp => mlp_gain(model, block, radius),
                };
                bound = match placement {
                    // Post-LN: the state is an LN output, M ≤ r(LN).
                    Placement::Post => ln_output_radius(model, ln_post.expect("Post-LN has a norm per half-step")),
                    // Peri-LN: each update is an LN output, so M grows by at most Δt·r(LN_out).
                    Placement::Peri => bound + dt * ln_output_radius(model, ln_out.expect("Peri-LN has an output norm")),
                    // Pre-LN: the branch sees a vector of norm ≤ r(LN_in).
                    Placement::Pre => bound + dt * gain(ln_output_radius(model, ln_in.expect("Pre-LN has an input norm"))),
                    // No LN: the branch sees the stream itself (a Grönwall recursion).
                    Placement::None => bound + dt * gain(bound),
                };
                token_norm.push(bound);
            }
        }

        // ‖∂loss/∂x_L[b,t]‖ ≤ sqrt(2)·‖W_U‖·max|γ_f| / (s·B·T) with
        // s = sqrt(σ² + ε) = 1/rstd: the logit gradient of one token has norm
        // at most sqrt(2)/(B·T), and the LN Jacobian is a projection scaled by γ/s.
        let mut final_grad_per_token = Vec::new();
        if let (Some(ids), Some(stats)) = (model.layout.ln_f, &pass.ln_f) {
            let (v, d) = (model.config.vocab, model.config.width);
            let w_u = spectral_norm_bound(model.tensor(model.layout.head_weight()), v, d);
            let max_gain = model.tensor(ids.weight).iter().map(|g| g.as_f64().abs()).fold(0.0, f64::max);
            let rows = pass.rows() as f64;
            final_grad_per_token = stats.rstd.iter().map(|r| 2f64.sqrt() * w_u * max_gain * r.as_f64() / rows).collect();
        }
        Bounds { token_norm, final_grad_per_token }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectral_bound_is_exact_for_diagonal() {
        let w = [3.0f64, 0.0, 0.0, -2.0];
        assert_eq!(spectral_norm_bound(&w, 2, 2), 3.0);
    }

    #[test]
    fn spectral_bound_covers_power_iteration() {
        let (rows, cols) = (5, 3);
        let w: Vec<f64> = (0..rows * cols).map(|i| ((i * 7) as f64).sin()).collect();
        let mut x = vec![1.0f64; cols];
        let mut estimate = 0.0;
        for _ in 0..200 {
            let y: Vec<f64> = (0..rows).map(|r| (0..cols).map(|c| w[r * cols + c] * x[c]).sum()).collect();
            let z: Vec<f64> = (0..cols).map(|c| (0..rows).map(|r| w[r * cols + c] * y[r]).sum()).collect();
            let norm = z.iter().map(|v| v * v).sum::<f64>().sqrt();
            estimate = norm.sqrt();
            x = z.iter().map(|v| v / norm).collect();
        }
        assert!(estimate <= spectral_norm_bound(&w, rows, cols) + 1e-12);
    }

    #[test]
    fn growth_fit_recovers_rate() {
        let values: Vec<f64> = (0..6).map(|l| 2.0 * (0.3 * l as f64 * 0.5).exp()).collect();
        let fit = fit_growth(&values, 0.5).unwrap();
        assert!((fit.kappa - 0.3).abs() < 1e-12);
        assert!((fit.c - 2.0).abs() < 1e-12);
        assert!(fit_growth(&[1.0, 0.0], 1.0).is_none());
    }
}
