//! Per-layer statistics of the residual stream and of its gradient.

use crate::kernels::cpu::Scalar;
use serde::{Deserialize, Serialize};

/// Measurements and bounds for one residual-stream state x_l.
///
/// All variances are biased (divided by the count). The gradient entries
/// refer to ∂loss/∂x_l of the mean cross-entropy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerMetrics {
    /// Block boundary l = 0..L (or half-step index in half-step records).
    pub layer: usize,
    /// Mean over b, t, k of |x[b,t,k]|.
    #[serde(with = "crate::io::json_float")]
    pub mean_abs: f64,
    /// Mean over tokens of the variance across the d features.
    #[serde(with = "crate::io::json_float")]
    pub entry_var: f64,
    /// Mean over (t, k) of the variance across the B sequences.
    #[serde(with = "crate::io::json_float")]
    pub data_var: f64,
    /// sqrt(mean over b, t, k of x²).
    #[serde(with = "crate::io::json_float")]
    pub rms: f64,
    /// Max over b, t, k of |x[b,t,k]|.
    #[serde(with = "crate::io::json_float")]
    pub max_abs: f64,
    /// M_l: max over tokens of ‖x[b,t,:]‖₂.
    #[serde(with = "crate::io::json_float")]
    pub max_token_norm: f64,
    /// ‖∂loss/∂x_l‖_F / sqrt(B·T).
    #[serde(with = "crate::io::json_float")]
    pub grad_rms: f64,
    /// Max over tokens of ‖∂loss/∂x_l[b,t,:]‖₂.
    #[serde(with = "crate::io::json_float")]
    pub max_token_grad_norm: f64,
    /// Certified bound on `max_token_norm`.
    #[serde(with = "crate::io::json_float")]
    pub bound_max_token_norm: f64,
    /// Certified bound on `mean_abs`: bound_max_token_norm / sqrt(d).
    #[serde(with = "crate::io::json_float")]
    pub bound_mean_abs: f64,
    /// Certified bound on `entry_var` and `data_var`: bound_max_token_norm² / d.
    #[serde(with = "crate::io::json_float")]
    pub bound_entry_var: f64,
    /// Certified bound on `grad_rms`, only for x_L under a final LayerNorm.
    #[serde(default, with = "crate::io::json_float::option")]
    pub bound_grad_rms: Option<f64>,
    /// Max over tokens of ‖∂loss/∂x_L[b,t]‖ divided by that token's bound;
    /// at most 1 when the gradient bound holds. Only where `bound_grad_rms` is.
    #[serde(default, with = "crate::io::json_float::option")]
    pub grad_bound_ratio: Option<f64>,
}

/// Statistics of one [N, d] state with N = batch·context rows, and of its
/// gradient. Bounds are left at 0 for the caller to fill in.
pub fn measure_state<F: Scalar>(layer: usize, state: &[F], grad: &[F], batch: usize, context: usize, d: usize) -> LayerMetrics {
    let rows = batch * context;
    let count = (rows * d) as f64;

    let (mut abs_sum, mut square_sum, mut max_abs) = (0.0f64, 0.0f64, 0.0f64);
    let (mut entry_var_sum, mut max_token_norm) = (0.0f64, 0.0f64);
    for row in state.chunks_exact(d) {
        let mut row_sum = 0.0;
        let mut row_squares = 0.0;
        for &value in row {
            let x = value.as_f64();
            abs_sum += x.abs();
            row_squares += x * x;
            row_sum += x;
            max_abs = max_abs.max(x.abs());
        }
        square_sum += row_squares;
        max_token_norm = max_token_norm.max(row_squares.sqrt());
        let row_mean = row_sum / d as f64;
        entry_var_sum += row.iter().map(|&v| (v.as_f64() - row_mean).powi(2)).sum::<f64>() / d as f64;
    }

    // Variance across the batch of each (t, k) entry.
    let mut data_var_sum = 0.0;
    for t in 0..context {
        for k in 0..d {
            let at = |b: usize| state[(b * context + t) * d + k].as_f64();
            let mean = (0..batch).map(at).sum::<f64>() / batch as f64;
            data_var_sum += (0..batch).map(|b| (at(b) - mean).powi(2)).sum::<f64>() / batch as f64;
        }
    }

    let mut grad_square_sum = 0.0f64;
    let mut max_token_grad_norm = 0.0f64;
    for row in grad.chunks_exact(d) {
        let row_squares: f64 = row.iter().map(|&g| g.as_f64().powi(2)).sum();
        grad_square_sum += row_squares;
        max_token_grad_norm = max_token_grad_norm.max(row_squares.sqrt());
    }

    // NaN does not win a `max`, so a non-finite entry must reach the
    // reported maxima through the sums instead.
    let poison = |max: f64, sum: f64| if sum.is_finite() { max } else { sum };
    LayerMetrics {
        layer,
        mean_abs: abs_sum / count,
        entry_var: entry_var_sum / rows as f64,
        data_var: data_var_sum / (context * d) as f64,
        rms: (square_sum / count).sqrt(),
        max_abs: poison(max_abs, abs_sum),
        max_token_norm: poison(max_token_norm, square_sum),
        grad_rms: (grad_square_sum / rows as f64).sqrt(),
        max_token_grad_norm: poison(max_token_grad_norm, grad_square_sum),
        bound_max_token_norm: 0.0,
        bound_mean_abs: 0.0,
        bound_entry_var: 0.0,
        bound_grad_rms: None,
        grad_bound_ratio: None,
    }
}

/// Frobenius norms of one block's parameter gradients, by part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockGradNorms {
    pub block: usize,
    /// Over `attn.c_attn` and `attn.c_proj`, weights and biases.
    #[serde(with = "crate::io::json_float")]
    pub attention: f64,
    /// Over `mlp.c_fc` and `mlp.c_proj`, weights and biases.
    #[serde(with = "crate::io::json_float")]
    pub mlp: f64,
    /// Over every LayerNorm γ and β of the block (0 for No LN).
    #[serde(with = "crate::io::json_float")]
    pub layernorm: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_a_known_state() {
        // B = 2, T = 1, d = 2: tokens [3, 4] and [0, 0].
        let state = [3.0f64, 4.0, 0.0, 0.0];
        let grad = [1.0f64, 0.0, 0.0, 2.0];
        let m = measure_state(0, &state, &grad, 2, 1, 2);
        assert_eq!(m.mean_abs, 7.0 / 4.0);
        assert_eq!(m.max_token_norm, 5.0);
        assert_eq!(m.max_abs, 4.0);
        assert_eq!(m.rms, (25.0f64 / 4.0).sqrt());
        // Token variances 0.25 and 0.
        assert_eq!(m.entry_var, 0.125);
        // Across the batch: var(3, 0) = 2.25 and var(4, 0) = 4.
        assert_eq!(m.data_var, (2.25 + 4.0) / 2.0);
        assert_eq!(m.grad_rms, (5.0f64 / 2.0).sqrt());
        assert_eq!(m.max_token_grad_norm, 2.0);
    }

    #[test]
    fn nan_reaches_the_maxima() {
        let state = [1.0f32, f32::NAN, 0.0, 0.0];
        let m = measure_state(0, &state, &[0.0; 4], 2, 1, 2);
        assert!(m.max_token_norm.is_nan());
        assert!(m.max_abs.is_nan());
        assert!(m.grad_rms.is_finite());
    }
}
