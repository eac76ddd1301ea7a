//! Certified bounds on the residual stream, derived from the current weights
//! and the measured M_0. Each holds for every token, with no assumption
//! about training, so a measurement above its bound is a bug in the lab.
//!
//! Notation: r(LN) = sqrt(d)·max_i|γ_i| + ‖β‖₂ bounds the norm of every
//! LayerNorm output (the normalised vector has norm at most sqrt(d)), and
//! ‖W‖ = min(‖W‖_F, sqrt(‖W‖₁·‖W‖_∞)) bounds the spectral norm from above.

use crate::config::{ModelConfig, Placement};
use crate::kernels::cpu::Scalar;
use crate::model::forward::{half_step_roles, Branch};
use crate::model::params::{LnIds, TensorSpec};
use crate::model::{Layout, Model};
use serde::{Deserialize, Serialize};

/// Norms of one (sub-)matrix, the inputs of the spectral-norm bound.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MatrixNorms {
    pub frobenius: f64,
    /// ‖W‖_∞: the largest absolute row sum.
    pub max_row_sum: f64,
    /// ‖W‖₁: the largest absolute column sum.
    pub max_column_sum: f64,
}

impl MatrixNorms {
    /// Norms of the `rows × cols` block starting at `job.offset` of `values`,
    /// whose rows are `job.row_stride` elements apart.
    pub fn of<F: Scalar>(values: &[F], job: &NormJob) -> MatrixNorms {
        let at = |r: usize, c: usize| values[job.offset + r * job.row_stride + c].as_f64();
        let mut squares = 0.0;
        let mut max_row_sum = 0.0f64;
        for r in 0..job.rows {
            let row_sum: f64 = (0..job.cols).map(|c| at(r, c).abs()).sum();
            squares += (0..job.cols).map(|c| at(r, c).powi(2)).sum::<f64>();
            max_row_sum = max_row_sum.max(row_sum);
        }
        let max_column_sum = (0..job.cols).map(|c| (0..job.rows).map(|r| at(r, c).abs()).sum::<f64>()).fold(0.0, f64::max);
        MatrixNorms { frobenius: squares.sqrt(), max_row_sum, max_column_sum }
    }

    /// Upper bound on the spectral norm: min(‖W‖_F, sqrt(‖W‖₁·‖W‖_∞)).
    pub fn spectral_bound(&self) -> f64 {
        self.frobenius.min((self.max_column_sum * self.max_row_sum).sqrt())
    }
}

/// Upper bound on the spectral norm of a row-major `rows × cols` matrix.
pub fn spectral_norm_bound<F: Scalar>(w: &[F], rows: usize, cols: usize) -> f64 {
    MatrixNorms::of(w, &NormJob { offset: 0, rows, cols, row_stride: cols }).spectral_bound()
}

/// A block of the flat parameter buffer whose norms a bound needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormJob {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl NormJob {
    /// The whole tensor as one row (its Frobenius norm is the vector norm,
    /// its max column sum the largest absolute entry).
    pub fn vector(spec: &TensorSpec) -> NormJob {
        NormJob { offset: spec.offset, rows: 1, cols: spec.len(), row_stride: spec.len() }
    }

    pub fn matrix(spec: &TensorSpec) -> NormJob {
        NormJob { offset: spec.offset, rows: spec.shape[0], cols: spec.shape[1], row_stride: spec.shape[1] }
    }
}

/// LayerNorm norms that enter the bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LnNorms {
    pub max_gain: f64,
    pub shift_norm: f64,
}

impl LnNorms {
    /// r(LN) = sqrt(d)·max|γ| + ‖β‖₂: no output of this LayerNorm is longer.
    pub fn radius(&self, d: usize) -> f64 {
        (d as f64).sqrt() * self.max_gain + self.shift_norm
    }
}

/// Norms of one block's weights.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockNorms {
    /// W_v,h: the d × d_h value block of each head inside `c_attn.weight`.
    pub value_heads: Vec<MatrixNorms>,
    /// ‖b_v,h‖ for each head.
    pub value_bias_heads: Vec<f64>,
    pub attn_proj: MatrixNorms,
    pub attn_proj_bias: f64,
    pub fc: MatrixNorms,
    pub fc_bias: f64,
    pub mlp_proj: MatrixNorms,
    pub mlp_proj_bias: f64,
    pub ln_1: Option<LnNorms>,
    pub ln_attn_out: Option<LnNorms>,
    pub ln_2: Option<LnNorms>,
    pub ln_mlp_out: Option<LnNorms>,
}

impl BlockNorms {
    /// Largest norm of Attn(u) over inputs with ‖u‖ ≤ `radius`:
    /// A = ‖W_o‖·sqrt(Σ_h (‖W_v,h‖·R + ‖b_v,h‖)²) + ‖b_o‖, because each
    /// head's output is an average of its values.
    pub fn attention_gain(&self, radius: f64) -> f64 {
        let heads_sum: f64 = self
            .value_heads
            .iter()
            .zip(&self.value_bias_heads)
            .map(|(w, b)| (w.spectral_bound() * radius + b).powi(2))
            .sum();
        self.attn_proj.spectral_bound() * heads_sum.sqrt() + self.attn_proj_bias
    }

    /// Largest norm of MLP(u) over inputs with ‖u‖ ≤ `radius`:
    /// F = ‖W_2‖·(‖W_1‖·R + ‖b_1‖) + ‖b_2‖, because |GELU(z)| ≤ |z|.
    pub fn mlp_gain(&self, radius: f64) -> f64 {
        self.mlp_proj.spectral_bound() * (self.fc.spectral_bound() * radius + self.fc_bias) + self.mlp_proj_bias
    }

    /// This block's norms in the roles of a half-step: (in front of the
    /// branch, on its output, after the residual add).
    fn roles(&self, placement: Placement, branch: Branch) -> (Option<LnNorms>, Option<LnNorms>, Option<LnNorms>) {
        let norms = match branch {
            Branch::Attention => (self.ln_1, self.ln_attn_out),
            Branch::Mlp => (self.ln_2, self.ln_mlp_out),
        };
        half_step_roles(placement, norms)
    }
}

/// Every weight norm the bounds use.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightNorms {
    pub blocks: Vec<BlockNorms>,
    /// W_U, [V, d].
    pub head: MatrixNorms,
    pub ln_f: Option<LnNorms>,
}

/// The jobs behind [`WeightNorms`], in the order [`WeightNorms::from_jobs`]
/// reads their results.
pub fn weight_norm_jobs(config: &ModelConfig, layout: &Layout) -> Vec<NormJob> {
    let (d, dh) = (config.width, config.head_dim());
    let spec = |id: usize| &layout.tensors[id];
    let mut jobs = Vec::new();
    let ln_jobs = |jobs: &mut Vec<NormJob>, ids: Option<LnIds>| {
        if let Some(ids) = ids {
            jobs.push(NormJob::vector(spec(ids.weight)));
            jobs.push(NormJob::vector(spec(ids.bias)));
        }
    };
    for block in &layout.blocks {
        let w_qkv = spec(block.c_attn_weight);
        let b_qkv = spec(block.c_attn_bias);
        for h in 0..config.heads {
            let column = 2 * d + h * dh;
            jobs.push(NormJob { offset: w_qkv.offset + column, rows: d, cols: dh, row_stride: 3 * d });
            jobs.push(NormJob { offset: b_qkv.offset + column, rows: 1, cols: dh, row_stride: dh });
        }
        jobs.push(NormJob::matrix(spec(block.attn_proj_weight)));
        jobs.push(NormJob::vector(spec(block.attn_proj_bias)));
        jobs.push(NormJob::matrix(spec(block.c_fc_weight)));
        jobs.push(NormJob::vector(spec(block.c_fc_bias)));
        jobs.push(NormJob::matrix(spec(block.mlp_proj_weight)));
        jobs.push(NormJob::vector(spec(block.mlp_proj_bias)));
        for ids in [block.ln_1, block.ln_attn_out, block.ln_2, block.ln_mlp_out] {
            ln_jobs(&mut jobs, ids);
        }
    }
    jobs.push(NormJob::matrix(spec(layout.head_weight())));
    ln_jobs(&mut jobs, layout.ln_f);
    jobs
}

impl WeightNorms {
    /// Norms of a model's current weights, on the CPU.
    pub fn of_model<F: Scalar>(model: &Model<F>) -> WeightNorms {
        let jobs = weight_norm_jobs(&model.config, &model.layout);
        let results: Vec<MatrixNorms> = jobs.iter().map(|job| MatrixNorms::of(&model.params, job)).collect();
        WeightNorms::from_jobs(&model.config, &model.layout, &results)
    }

    /// Assemble the results of [`weight_norm_jobs`], computed anywhere.
    pub fn from_jobs(config: &ModelConfig, layout: &Layout, results: &[MatrixNorms]) -> WeightNorms {
        let mut next = results.iter().copied();
        let mut take = || next.next().expect("one result per norm job");
        let mut blocks = Vec::with_capacity(layout.blocks.len());
        for block in &layout.blocks {
            let mut value_heads = Vec::with_capacity(config.heads);
            let mut value_bias_heads = Vec::with_capacity(config.heads);
            for _ in 0..config.heads {
                value_heads.push(take());
                value_bias_heads.push(take().frobenius);
            }
            let attn_proj = take();
            let attn_proj_bias = take().frobenius;
            let fc = take();
            let fc_bias = take().frobenius;
            let mlp_proj = take();
            let mlp_proj_bias = take().frobenius;
            let mut ln = |ids: Option<LnIds>| ids.map(|_| LnNorms { max_gain: take().max_column_sum, shift_norm: take().frobenius });
            let ln_1 = ln(block.ln_1);
            let ln_attn_out = ln(block.ln_attn_out);
            let ln_2 = ln(block.ln_2);
            let ln_mlp_out = ln(block.ln_mlp_out);
            blocks.push(BlockNorms {
                value_heads, value_bias_heads, attn_proj, attn_proj_bias, fc, fc_bias, mlp_proj, mlp_proj_bias,
                ln_1, ln_attn_out, ln_2, ln_mlp_out,
            });
        }
        let head = take();
        let ln_f = layout.ln_f.map(|_| LnNorms { max_gain: take().max_column_sum, shift_norm: take().frobenius });
        WeightNorms { blocks, head, ln_f }
    }
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

/// Summary of the evaluation batch that the gradient bound under LN_f needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FinalGradSummary {
    /// Number of tokens B·T.
    pub rows: usize,
    /// Σ over tokens of rstd² = 1/(σ² + ε) of LN_f's input.
    pub rstd_square_sum: f64,
    /// Max over tokens of ‖∂loss/∂x_L[b,t]‖ / rstd.
    pub max_grad_over_rstd: f64,
}

impl FinalGradSummary {
    /// Shapes: rstd [N], grad [N, d].
    pub fn of<F: Scalar>(rstd: &[F], grad: &[F], d: usize) -> FinalGradSummary {
        let rstd_square_sum = rstd.iter().map(|r| r.as_f64().powi(2)).sum();
        let max_grad_over_rstd = grad
            .chunks_exact(d)
            .zip(rstd)
            .map(|(row, r)| row.iter().map(|g| g.as_f64().powi(2)).sum::<f64>().sqrt() / r.as_f64())
            .fold(0.0, f64::max);
        FinalGradSummary { rows: rstd.len(), rstd_square_sum, max_grad_over_rstd }
    }
}

/// Bounds for one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Bounds {
    /// Bound on the max token norm of every half-step state (2L + 1 values).
    pub token_norm: Vec<f64>,
    /// Bound on the gradient RMS at x_L under LN_f.
    pub final_grad_rms: Option<f64>,
    /// Largest ratio of a token's gradient norm at x_L to its bound.
    pub final_grad_ratio: Option<f64>,
}

impl Bounds {
    /// Compute every bound of the weights behind `norms`, starting from the measured
    /// M_0 = `max_token_norm_0`.
    pub fn compute(config: &ModelConfig, norms: &WeightNorms, max_token_norm_0: f64, final_grad: Option<FinalGradSummary>) -> Bounds {
        let dt = config.dt;
        let d = config.width;
        let mut token_norm = Vec::with_capacity(2 * config.layers + 1);
        let mut bound = max_token_norm_0;
        token_norm.push(bound);
        for block_norms in &norms.blocks {
            for branch in [Branch::Attention, Branch::Mlp] {
                let (ln_in, ln_out, ln_post) = block_norms.roles(config.placement, branch);
                let radius = |ln: Option<LnNorms>| ln.expect("the placement has this norm").radius(d);
                let gain = |r: f64| match branch {
                    Branch::Attention => block_norms.attention_gain(r),
                    Branch::Mlp => block_norms.mlp_gain(r),
                };
                bound = match config.placement {
                    // Post-LN: the state is an LN output, M ≤ r(LN).
                    Placement::Post => radius(ln_post),
                    // Peri-LN: each update is an LN output, so M grows by at most Δt·r(LN_out).
                    Placement::Peri => bound + dt * radius(ln_out),
                    // Pre-LN: the branch input is an LN output, of norm ≤ r(LN_in).
                    Placement::Pre => bound + dt * gain(radius(ln_in)),
                    // No LN: the branch input is the stream itself (a Grönwall recursion).
                    Placement::None => bound + dt * gain(bound),
                };
                token_norm.push(bound);
            }
        }

        // ‖∂loss/∂x_L[b,t]‖ ≤ c·rstd_bt with c = sqrt(2)·‖W_U‖·max|γ_f| / (B·T):
        // one token's logit gradient has norm at most sqrt(2)/(B·T), and the
        // LN Jacobian is a projection scaled by γ·rstd. The RMS of these
        // per-token bounds bounds the gradient RMS.
        let (mut final_grad_rms, mut final_grad_ratio) = (None, None);
        if let (Some(ln_f), Some(summary)) = (norms.ln_f, final_grad) {
            let rows = summary.rows as f64;
            let c = 2f64.sqrt() * norms.head.spectral_bound() * ln_f.max_gain / rows;
            final_grad_rms = Some(c * (summary.rstd_square_sum / rows).sqrt());
            final_grad_ratio = Some(summary.max_grad_over_rstd / c);
        }
        Bounds { token_norm, final_grad_rms, final_grad_ratio }
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
